/* merge.c -- memtally merge: several pprof profiles into one, as pprof merges them
 *
 * The profiles must have the same sample types (names and units, in order).
 * Functions with the same name and file are one; locations with the same
 * frames (function, line) are one, or, unsymbolized, the same address;
 * samples with the same stack and labels (thread, region) are one, their
 * values summed. The result starts at the earliest profile's time and lasts
 * until the latest one's end; its period and default type are the first
 * profile's. Written gzipped (zlib level 6) to a temporary created with
 * O_EXCL|O_NOFOLLOW and renamed into place. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../src/write/pprof_fields.h"
#include "merge.h"

/* ---- a growable byte buffer and the protobuf wire format ---- */

typedef struct buf {
  uint8_t *p;
  size_t n, cap;
  int failed;
} buf;

static void put(buf *b, const void *p, size_t n) {
  if (b->failed) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->n + n) cap *= 2;
    uint8_t *q = realloc(b->p, cap);
    if (q == NULL) {
      b->failed = 1;
      return;
    }
    b->p = q, b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

static void varint(buf *b, uint64_t v) {
  uint8_t t[10];
  size_t n = 0;
  for (; v > 0x7f; v >>= 7) t[n++] = (uint8_t)(v | 0x80);
  t[n++] = (uint8_t)v;
  put(b, t, n);
}
static void key(buf *b, unsigned field, unsigned wire) { varint(b, ((uint64_t)field << 3) | wire); }
static void uint_field(buf *b, unsigned field, uint64_t v) {
  if (v == 0) return;
  key(b, field, PB_WIRE_VARINT);
  varint(b, v);
}
static void bytes_field(buf *b, unsigned field, const void *p, size_t n) {
  key(b, field, PB_WIRE_BYTES);
  varint(b, n);
  put(b, p, n);
}
static void sub_field(buf *b, unsigned field, buf *sub) {
  bytes_field(b, field, sub->p, sub->n);
  if (sub->failed) b->failed = 1;
  sub->n = 0;
}

/* ---- interning: a key of bytes -> a dense number from 1 ---- */

typedef struct table {
  buf keys;       /* the keys, back to back */
  size_t *off;    /* per entry: offset and length of its key */
  size_t *len;
  uint32_t *slot; /* open addressing: entry number + 1 */
  size_t n, slots;
  int failed;
} table;

static uint64_t hash(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

/* The entry of key k (1-based), added if new; *added says which. 0: out of memory. */
static size_t intern(table *t, const void *k, size_t n, int *added) {
  *added = 0;
  if (t->failed) return 0;
  if (2 * (t->n + 1) > t->slots) {
    size_t slots = t->slots ? 2 * t->slots : 1024;
    uint32_t *s = calloc(slots, sizeof *s);
    size_t *off = realloc(t->off, slots / 2 * sizeof *off), *len = off ? realloc(t->len, slots / 2 * sizeof *len) : NULL;
    if (off) t->off = off;
    if (len) t->len = len;
    if (s == NULL || off == NULL || len == NULL) {
      free(s);
      t->failed = 1;
      return 0;
    }
    for (size_t i = 0; i < t->n; i++)
      for (size_t j = hash(t->keys.p + t->off[i], t->len[i]) & (slots - 1);; j = (j + 1) & (slots - 1))
        if (s[j] == 0) {
          s[j] = (uint32_t)i + 1;
          break;
        }
    free(t->slot);
    t->slot = s, t->slots = slots;
  }
  size_t j = hash(k, n) & (t->slots - 1);
  for (; t->slot[j] != 0; j = (j + 1) & (t->slots - 1)) {
    size_t e = t->slot[j] - 1;
    if (t->len[e] == n && memcmp(t->keys.p + t->off[e], k, n) == 0) return e + 1;
  }
  t->off[t->n] = t->keys.n;
  t->len[t->n] = n;
  put(&t->keys, k, n);
  if (t->keys.failed) {
    t->failed = 1;
    return 0;
  }
  t->slot[j] = (uint32_t)++t->n;
  *added = 1;
  return t->n;
}

static void table_free(table *t) {
  free(t->keys.p), free(t->off), free(t->len), free(t->slot);
  memset(t, 0, sizeof *t);
}

static size_t str_id(table *strings, buf *out, const char *s) {
  int added;
  if (s == NULL) s = "";
  size_t id = intern(strings, s, strlen(s), &added);
  if (added) bytes_field(out, PB_PROFILE_STRING_TABLE, s, strlen(s));
  return id - 1; /* string table indexes count from 0 ("" first) */
}

/* ---- the merge ---- */

typedef struct sample_sum {
  int64_t *values;
  buf key; /* the encoded sample without its values */
} sample_sum;

int mtt_merge(mtt_profile *in, size_t n, const char *outpath, char *err, size_t errlen) {
  return mtt_write_profiles(in, n, outpath, NULL, err, errlen);
}

int mtt_write_profiles(mtt_profile *in, size_t n, const char *outpath, const char *comment_text, char *err,
                       size_t errlen) {
  for (size_t i = 1; i < n; i++) {
    int same = in[i].ntypes == in[0].ntypes;
    for (size_t k = 0; same && k < in[0].ntypes; k++)
      same = strcmp(in[i].type_names[k], in[0].type_names[k]) == 0 &&
             strcmp(in[i].type_units[k], in[0].type_units[k]) == 0;
    if (!same) {
      snprintf(err, errlen, "profile %zu has other sample types than the first: profiles of one kind merge", i + 1);
      return 2;
    }
  }
  size_t ntypes = in[0].ntypes;
  buf strs = {0}, body = {0}, tmp = {0}, sub = {0};
  table strings = {0}, functions = {0}, locations = {0}, samples = {0}, mappings = {0};
  int added;
  str_id(&strings, &strs, "");
  for (size_t k = 0; k < ntypes; k++) { /* sample types */
    uint_field(&sub, PB_VALUE_TYPE_TYPE, str_id(&strings, &strs, in[0].type_names[k]));
    uint_field(&sub, PB_VALUE_TYPE_UNIT, str_id(&strings, &strs, in[0].type_units[k]));
    sub_field(&body, PB_PROFILE_SAMPLE_TYPE, &sub);
  }
  sample_sum *sums = NULL;
  size_t nsums = 0, capsums = 0;
  int64_t t0 = 0, t1 = 0;
  for (size_t i = 0; i < n; i++) {
    const mtt_profile *p = &in[i];
    int64_t start = p->time_nanos, end = p->time_nanos + p->duration_nanos;
    if (i == 0 || (start && start < t0)) t0 = start;
    if (end > t1) t1 = end;
    uint64_t *loc_id = calloc(p->nlocations + 1, sizeof *loc_id), *fn_id = calloc(p->nfunctions + 1, sizeof *fn_id);
    uint64_t *map_id = calloc(p->nmappings + 1, sizeof *map_id);
    if (loc_id == NULL || fn_id == NULL || map_id == NULL) {
      free(loc_id), free(fn_id), free(map_id);
      body.failed = 1;
      break;
    }
    for (size_t m = 0; m < p->nmappings; m++) { /* mappings by object and place */
      const mtt_mapping *M = &p->mappings[m];
      tmp.n = 0;
      put(&tmp, &M->start, sizeof M->start);
      put(&tmp, &M->limit, sizeof M->limit);
      put(&tmp, &M->offset, sizeof M->offset);
      put(&tmp, M->file, strlen(M->file) + 1);
      put(&tmp, M->build_id, strlen(M->build_id) + 1);
      map_id[m] = intern(&mappings, tmp.p, tmp.n, &added);
      if (added) {
        uint_field(&sub, PB_MAPPING_ID, map_id[m]);
        uint_field(&sub, PB_MAPPING_MEMORY_START, M->start);
        uint_field(&sub, PB_MAPPING_MEMORY_LIMIT, M->limit);
        uint_field(&sub, PB_MAPPING_FILE_OFFSET, M->offset);
        uint_field(&sub, PB_MAPPING_FILENAME, str_id(&strings, &strs, M->file));
        uint_field(&sub, PB_MAPPING_BUILD_ID, str_id(&strings, &strs, M->build_id));
        uint_field(&sub, PB_MAPPING_HAS_FUNCTIONS, 1);
        uint_field(&sub, PB_MAPPING_HAS_FILENAMES, 1);
        uint_field(&sub, PB_MAPPING_HAS_LINE_NUMBERS, 1);
        sub_field(&body, PB_PROFILE_MAPPING, &sub);
      }
    }
    for (size_t f = 0; f < p->nfunctions; f++) { /* functions by name and file */
      const mtt_function *F = &p->functions[f];
      tmp.n = 0;
      put(&tmp, F->name, strlen(F->name) + 1);
      put(&tmp, F->file, strlen(F->file) + 1);
      fn_id[f] = intern(&functions, tmp.p, tmp.n, &added);
      if (added) {
        uint_field(&sub, PB_FUNCTION_ID, fn_id[f]);
        uint_field(&sub, PB_FUNCTION_NAME, str_id(&strings, &strs, F->name));
        uint_field(&sub, PB_FUNCTION_SYSTEM_NAME, str_id(&strings, &strs, F->name));
        uint_field(&sub, PB_FUNCTION_FILENAME, str_id(&strings, &strs, F->file));
        sub_field(&body, PB_PROFILE_FUNCTION, &sub);
      }
    }
    for (size_t l = 0; l < p->nlocations; l++) { /* locations by their frames, else their address */
      const mtt_location *L = &p->locations[l];
      tmp.n = 0;
      uint64_t tagged = L->nlines ? 1 : 0, mid = L->mapping < p->nmappings ? map_id[L->mapping] : 0;
      put(&tmp, &tagged, sizeof tagged);
      put(&tmp, &mid, sizeof mid);
      if (L->nlines == 0) put(&tmp, &L->address, sizeof L->address);
      for (size_t k = 0; k < L->nlines; k++) {
        uint64_t f = L->lines[k].function < p->nfunctions ? fn_id[L->lines[k].function] : 0;
        put(&tmp, &f, sizeof f);
        put(&tmp, &L->lines[k].line, sizeof L->lines[k].line);
      }
      loc_id[l] = intern(&locations, tmp.p, tmp.n, &added);
      if (added) {
        uint_field(&sub, PB_LOCATION_ID, loc_id[l]);
        uint_field(&sub, PB_LOCATION_MAPPING_ID, mid);
        uint_field(&sub, PB_LOCATION_ADDRESS, L->address);
        buf line = {0};
        for (size_t k = 0; k < L->nlines; k++) {
          uint64_t f = L->lines[k].function < p->nfunctions ? fn_id[L->lines[k].function] : 0;
          uint_field(&line, PB_LINE_FUNCTION_ID, f);
          uint_field(&line, PB_LINE_LINE, (uint64_t)L->lines[k].line);
          sub_field(&sub, PB_LOCATION_LINE, &line);
        }
        free(line.p);
        sub_field(&body, PB_PROFILE_LOCATION, &sub);
      }
    }
    for (size_t s = 0; s < p->nsamples; s++) { /* samples by stack and labels, values summed */
      const mtt_sample *S = &p->samples[s];
      tmp.n = 0;
      key(&tmp, PB_SAMPLE_LOCATION_ID, PB_WIRE_BYTES);
      buf ids = {0};
      for (size_t k = 0; k < S->nlocs; k++) varint(&ids, S->locs[k] < p->nlocations ? loc_id[S->locs[k]] : 0);
      varint(&tmp, ids.n);
      put(&tmp, ids.p, ids.n);
      free(ids.p);
      if (S->thread) {
        uint_field(&sub, PB_LABEL_KEY, str_id(&strings, &strs, "thread"));
        uint_field(&sub, PB_LABEL_NUM, (uint64_t)S->thread);
        sub_field(&tmp, PB_SAMPLE_LABEL, &sub);
      }
      if (S->region) {
        uint_field(&sub, PB_LABEL_KEY, str_id(&strings, &strs, "region"));
        uint_field(&sub, PB_LABEL_STR, str_id(&strings, &strs, S->region));
        sub_field(&tmp, PB_SAMPLE_LABEL, &sub);
      }
      size_t e = intern(&samples, tmp.p, tmp.n, &added);
      if (e == 0) break;
      if (added) {
        if (nsums == capsums) {
          size_t cap = capsums ? 2 * capsums : 1024;
          sample_sum *q = realloc(sums, cap * sizeof *q);
          if (q == NULL) {
            body.failed = 1;
            break;
          }
          sums = q, capsums = cap;
        }
        sums[nsums].values = calloc(ntypes ? ntypes : 1, sizeof(int64_t));
        sums[nsums].key = (buf){0};
        put(&sums[nsums].key, tmp.p, tmp.n);
        if (sums[nsums].values == NULL) body.failed = 1;
        nsums++;
      }
      for (size_t k = 0; k < ntypes && sums[e - 1].values; k++) sums[e - 1].values[k] += mtt_value(S, (int)k);
    }
    free(loc_id), free(fn_id), free(map_id);
  }
  for (size_t e = 0; e < nsums; e++) {
    tmp.n = 0;
    put(&tmp, sums[e].key.p, sums[e].key.n);
    buf vals = {0};
    for (size_t k = 0; k < ntypes; k++) varint(&vals, (uint64_t)sums[e].values[k]);
    bytes_field(&tmp, PB_SAMPLE_VALUE, vals.p, vals.n);
    free(vals.p);
    bytes_field(&body, PB_PROFILE_SAMPLE, tmp.p, tmp.n);
    free(sums[e].values), free(sums[e].key.p);
  }
  free(sums);
  char comment[64];
  snprintf(comment, sizeof comment, "merged from %zu profiles", n);
  size_t c = str_id(&strings, &strs, comment_text ? comment_text : comment);
  size_t space = str_id(&strings, &strs, "space"), bytes = str_id(&strings, &strs, "bytes");
  size_t deftype = in[0].default_type >= 0 ? str_id(&strings, &strs, in[0].type_names[in[0].default_type]) : 0;
  buf msg = {0};
  put(&msg, body.p, body.n);
  put(&msg, strs.p, strs.n);
  uint_field(&msg, PB_PROFILE_TIME_NANOS, (uint64_t)t0);
  uint_field(&msg, PB_PROFILE_DURATION_NANOS, (uint64_t)(t1 > t0 ? t1 - t0 : 0));
  uint_field(&sub, PB_VALUE_TYPE_TYPE, space);
  uint_field(&sub, PB_VALUE_TYPE_UNIT, bytes);
  sub_field(&msg, PB_PROFILE_PERIOD_TYPE, &sub);
  uint_field(&msg, PB_PROFILE_PERIOD, (uint64_t)in[0].period);
  key(&msg, PB_PROFILE_COMMENT, PB_WIRE_VARINT);
  varint(&msg, c);
  uint_field(&msg, PB_PROFILE_DEFAULT_SAMPLE_TYPE, deftype);
  int failed = msg.failed || body.failed || strs.failed || tmp.failed || sub.failed || strings.failed ||
               functions.failed || locations.failed || samples.failed || mappings.failed;
  free(body.p), free(strs.p), free(tmp.p), free(sub.p);
  table_free(&strings), table_free(&functions), table_free(&locations), table_free(&samples);
  table_free(&mappings);
  if (failed) {
    free(msg.p);
    snprintf(err, errlen, "out of memory");
    return 2;
  }
  /* gzip it */
  z_stream z;
  memset(&z, 0, sizeof z);
  buf gz = {0};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    free(msg.p);
    snprintf(err, errlen, "cannot compress");
    return 2;
  }
  size_t bound = deflateBound(&z, (uLong)msg.n);
  gz.p = malloc(bound), gz.cap = bound;
  z.next_in = msg.p, z.avail_in = (uInt)msg.n, z.next_out = gz.p, z.avail_out = (uInt)bound;
  int ok = gz.p != NULL && deflate(&z, Z_FINISH) == Z_STREAM_END;
  gz.n = z.total_out;
  deflateEnd(&z);
  free(msg.p);
  if (!ok) {
    free(gz.p);
    snprintf(err, errlen, "cannot compress");
    return 2;
  }
  int rc = mtt_write_file(outpath, gz.p, gz.n, err, errlen);
  free(gz.p);
  return rc;
}

int mtt_write_file(const char *outpath, const void *data, size_t len, char *err, size_t errlen) {
  struct stat st;
  if (lstat(outpath, &st) == 0 && !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s exists and is not a regular file", outpath);
    return 2;
  }
  char tmp[4096];
  int fd = -1;
  for (int tries = 0; tries < 16 && fd < 0; tries++) {
    unsigned long long r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) r = (unsigned long long)getpid() * 2654435761u + (unsigned)tries;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%d.%016llx", outpath, (int)getpid(), r);
    if (n <= 0 || n >= (int)sizeof tmp) {
      snprintf(err, errlen, "output path too long");
      return 2;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    snprintf(err, errlen, "cannot create a file beside %s: %s", outpath, strerror(errno));
    return 2;
  }
  const uint8_t *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      break;
    }
    p += w, left -= (size_t)w;
  }
  int bad = left != 0 || close(fd) != 0;
  if (bad || rename(tmp, outpath) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", outpath, strerror(errno ? errno : EIO));
    unlink(tmp);
    return 2;
  }
  return 0;
}
