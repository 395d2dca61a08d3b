/* profile.c -- reading pprof profiles: gzip, then profile.proto, every read bounds-checked
 *
 * Reads any pprof profile (memtally's, Go's, gperftools' converted by go tool
 * pprof). Ids are mapped to array indexes after the whole message is read.
 * A truncated or corrupt file yields an error message, never a crash. */
#include "profile.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../src/write/pprof_fields.h"

mtt_limits mtt_limit = {MTT_DEFAULT_MAX_BYTES, MTT_DEFAULT_MAX_FRAMES};

typedef struct rd {
  const uint8_t *p, *end;
  int bad;
} rd;

static uint64_t varint(rd *r) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) break;
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = 1;
  return 0;
}

/* Read one field's key; returns 0 at the end. */
static int field(rd *r, unsigned *num, unsigned *wire) {
  if (r->p >= r->end || r->bad) return 0;
  uint64_t k = varint(r);
  *num = (unsigned)(k >> 3);
  *wire = (unsigned)(k & 7);
  return !r->bad;
}

static rd sub(rd *r) {
  uint64_t n = varint(r);
  rd s = {r->p, r->p, 0};
  if (r->bad || n > (uint64_t)(r->end - r->p)) {
    r->bad = 1;
    return s;
  }
  s.end = r->p + n;
  r->p += n;
  return s;
}

static void skip(rd *r, unsigned wire) {
  switch (wire) {
    case PB_WIRE_VARINT: varint(r); break;
    case PB_WIRE_FIXED64: if (r->end - r->p < 8) r->bad = 1; else r->p += 8; break;
    case PB_WIRE_BYTES: sub(r); break;
    case PB_WIRE_FIXED32: if (r->end - r->p < 4) r->bad = 1; else r->p += 4; break;
    default: r->bad = 1; break;
  }
}

/* The integers of one occurrence of a repeated field, packed (wire 2) or
 * not (wire 0), as a reader over their varints. */
static rd ints_of(rd *r, unsigned wire) {
  rd s = {r->p, r->p, 0};
  if (wire == PB_WIRE_BYTES) return sub(r);
  if (wire == PB_WIRE_VARINT) {
    varint(r);
    s.end = r->p;
  } else {
    r->bad = 1;
  }
  return s;
}

/* A message whose fields 1..4 are integers (a label, a line, a sample
 * type, a function): f[k] is field k's last value, 0 when absent; other
 * fields are skipped. A corrupt message marks parent bad. */
static void int_fields(rd *parent, uint64_t f[5]) {
  rd s = sub(parent);
  unsigned num, wire;
  memset(f, 0, 5 * sizeof *f);
  while (field(&s, &num, &wire)) {
    if (num >= 1 && num <= 4 && wire == PB_WIRE_VARINT) f[num] = varint(&s);
    else skip(&s, wire);
  }
  if (s.bad) parent->bad = 1;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* id -> index by binary search over (id, index) pairs sorted by id */
typedef struct idmap {
  uint64_t *pairs;
  size_t n;
} idmap;

static uint64_t idmap_get(const idmap *m, uint64_t id) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (m->pairs[2 * mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo < m->n && m->pairs[2 * lo] == id ? m->pairs[2 * lo + 1] : UINT64_MAX;
}

/* The decoder reads the message three times and allocates each array once,
 * at the size the first read counted, so memory is a fixed multiple of the
 * message (every record costs at most 48 bytes of memory for the 2 or more
 * bytes it takes in the message; a sample type is kept as 2 pointers, and a
 * sample's values as many as it has, not one per type):
 *   COUNT    checks the message and counts every kind of record;
 *   STRINGS  records the string table, sample types and scalars;
 *   FILL     decodes functions, locations and samples, names resolved. */
enum { COUNT, STRINGS, FILL };

typedef struct dec {
  mtt_profile *p;
  const uint8_t *data;
  size_t ntypes, nstrings, nfunctions, nlocations, nlines, nsamples, nlocs, nvalues, nmappings; /* COUNT */
  uint64_t *type_pairs, *strs; /* (name, unit) indexes; (offset, length) of each string */
  uint64_t default_type, comment;
  size_t ti, si; /* STRINGS cursors */
  size_t fi, li, lni, smi, lci, vi, mi; /* FILL cursors */
  const char *why;
  char msg[128];
} dec;

#define STR(p, i) ((i) < (p)->nstrings ? (p)->strings[(i)] : "")

static void dec_sample(dec *d, rd s, int pass) {
  mtt_profile *p = d->p;
  mtt_sample S = {0};
  S.lifetime = -1;
  size_t nlocs = 0, nvalues = 0;
  int any = 0;
  unsigned num, wire;
  if (pass == FILL) S.locs = p->loc_pool + d->lci, S.values = p->value_pool + d->vi;
  while (field(&s, &num, &wire)) {
    if (num == PB_SAMPLE_LOCATION_ID || num == PB_SAMPLE_VALUE) {
      rd v = ints_of(&s, wire);
      while (v.p < v.end && !v.bad) {
        uint64_t x = varint(&v);
        if (num == PB_SAMPLE_LOCATION_ID) {
          if (pass == FILL) S.locs[nlocs] = x;
          nlocs++;
        } else {
          if (pass == FILL) S.values[nvalues] = (int64_t)x;
          nvalues++;
          any |= x != 0;
        }
      }
      if (v.bad) s.bad = 1;
    } else if (num == PB_SAMPLE_LABEL && wire == PB_WIRE_BYTES) {
      uint64_t f[5];
      int_fields(&s, f);
      uint64_t key = f[PB_LABEL_KEY], str = f[PB_LABEL_STR], n = f[PB_LABEL_NUM];
      if (pass == FILL) {
        const char *k = STR(p, key);
        if (strcmp(k, "region") == 0 && str) S.region = STR(p, str);
        if (strcmp(k, "thread") == 0) S.thread = (int64_t)n;
        if (strcmp(k, "lifetime") == 0) S.lifetime = (int64_t)n;
        if (strcmp(k, "freed_by") == 0 && str) S.freed_by = STR(p, str);
        if (strcmp(k, "free_thread") == 0 && str) S.free_other = strcmp(STR(p, str), "other") == 0;
      }
    } else {
      skip(&s, wire);
    }
  }
  if (s.bad) {
    d->why = "corrupt or truncated profile data";
    return;
  }
  if (pass == COUNT) {
    if (nlocs > mtt_limit.max_frames) {
      snprintf(d->msg, sizeof d->msg, "a sample of %zu frames is over the limit of %zu (--max-frames)", nlocs,
               mtt_limit.max_frames);
      d->why = d->msg;
    }
    /* every sample's integers have room in the pools; only a sample with a
     * nonzero value gets a record (it adds nothing to any report otherwise,
     * and millions of empty samples fit in a small file) */
    d->nlocs += nlocs, d->nvalues += nvalues, d->nsamples += (size_t)any;
  } else if (pass == FILL && any) {
    S.nlocs = nlocs, S.nvalues = nvalues;
    p->samples[d->smi++] = S;
    d->lci += nlocs, d->vi += nvalues;
  }
}

static void dec_location(dec *d, rd s, int pass) {
  mtt_location *L = pass == FILL ? &d->p->locations[d->li++] : NULL;
  size_t nlines = 0;
  unsigned num, wire;
  if (L) L->lines = d->p->line_pool + d->lni;
  while (field(&s, &num, &wire)) {
    if (num == PB_LOCATION_ID && wire == PB_WIRE_VARINT && L) L->id = varint(&s);
    else if (num == PB_LOCATION_ADDRESS && wire == PB_WIRE_VARINT && L) L->address = varint(&s);
    else if (num == PB_LOCATION_MAPPING_ID && wire == PB_WIRE_VARINT && L) L->mapping = varint(&s);
    else if (num == PB_LOCATION_LINE && wire == PB_WIRE_BYTES) {
      uint64_t f[5];
      int_fields(&s, f);
      uint64_t fn = f[PB_LINE_FUNCTION_ID], line = f[PB_LINE_LINE];
      if (L) L->lines[nlines] = (mtt_line){fn, (int64_t)line}; /* function id, mapped to an index later */
      nlines++;
    } else {
      skip(&s, wire);
    }
  }
  if (s.bad) d->why = "corrupt or truncated profile data";
  if (pass == COUNT) d->nlocations++, d->nlines += nlines;
  if (L) L->nlines = nlines, d->lni += nlines;
}

static void dec_function(dec *d, rd *r, int pass) {
  uint64_t f[5];
  int_fields(r, f);
  if (r->bad) return;
  if (pass == COUNT) d->nfunctions++;
  if (pass == FILL)
    d->p->functions[d->fi++] =
        (mtt_function){f[PB_FUNCTION_ID], STR(d->p, f[PB_FUNCTION_NAME]), STR(d->p, f[PB_FUNCTION_FILENAME])};
}

static void dec_mapping(dec *d, rd s, int pass) {
  uint64_t f[PB_MAPPING_BUILD_ID + 1] = {0};
  unsigned num, wire;
  while (field(&s, &num, &wire)) {
    if (num >= PB_MAPPING_ID && num <= PB_MAPPING_BUILD_ID && wire == PB_WIRE_VARINT) f[num] = varint(&s);
    else skip(&s, wire);
  }
  if (s.bad) d->why = "corrupt or truncated profile data";
  if (pass == COUNT) d->nmappings++;
  if (pass == FILL)
    d->p->mappings[d->mi++] = (mtt_mapping){f[PB_MAPPING_ID], f[PB_MAPPING_MEMORY_START], f[PB_MAPPING_MEMORY_LIMIT],
                                            f[PB_MAPPING_FILE_OFFSET], STR(d->p, f[PB_MAPPING_FILENAME]),
                                            STR(d->p, f[PB_MAPPING_BUILD_ID])};
}

/* One read of the whole message; d->why says what was wrong, if anything. */
static void dec_pass(dec *d, rd r, int pass) {
  mtt_profile *p = d->p;
  unsigned num, wire;
  while (d->why == NULL && field(&r, &num, &wire)) {
    if (num == PB_PROFILE_SAMPLE_TYPE && wire == PB_WIRE_BYTES) {
      uint64_t f[5];
      int_fields(&r, f);
      if (pass == COUNT) d->ntypes++;
      if (pass == STRINGS)
        d->type_pairs[2 * d->ti] = f[PB_VALUE_TYPE_TYPE], d->type_pairs[2 * d->ti + 1] = f[PB_VALUE_TYPE_UNIT], d->ti++;
    } else if (num == PB_PROFILE_SAMPLE && wire == PB_WIRE_BYTES) {
      rd s = sub(&r);
      if (!r.bad) dec_sample(d, s, pass);
    } else if (num == PB_PROFILE_LOCATION && wire == PB_WIRE_BYTES) {
      rd s = sub(&r);
      if (!r.bad) dec_location(d, s, pass);
    } else if (num == PB_PROFILE_FUNCTION && wire == PB_WIRE_BYTES) {
      dec_function(d, &r, pass);
    } else if (num == PB_PROFILE_MAPPING && wire == PB_WIRE_BYTES) {
      rd s = sub(&r);
      if (!r.bad) dec_mapping(d, s, pass);
    } else if (num == PB_PROFILE_STRING_TABLE && wire == PB_WIRE_BYTES) {
      rd s = sub(&r);
      if (pass == COUNT) d->nstrings++;
      if (pass == STRINGS) d->strs[2 * d->si] = (uint64_t)(s.p - d->data), d->strs[2 * d->si + 1] = (uint64_t)(s.end - s.p), d->si++;
    } else if (num == PB_PROFILE_COMMENT) { /* the first index */
      rd v = ints_of(&r, wire);
      if (pass == STRINGS && v.p < v.end && d->comment == 0) d->comment = varint(&v);
    } else if (num == PB_PROFILE_TIME_NANOS && wire == PB_WIRE_VARINT) {
      p->time_nanos = (int64_t)varint(&r);
    } else if (num == PB_PROFILE_DURATION_NANOS && wire == PB_WIRE_VARINT) {
      p->duration_nanos = (int64_t)varint(&r);
    } else if (num == PB_PROFILE_PERIOD && wire == PB_WIRE_VARINT) {
      p->period = (int64_t)varint(&r);
    } else if (num == PB_PROFILE_DEFAULT_SAMPLE_TYPE && wire == PB_WIRE_VARINT) {
      d->default_type = varint(&r);
    } else {
      skip(&r, wire);
    }
  }
  if (r.bad && d->why == NULL) d->why = "corrupt or truncated profile data";
}

/* Equal strings become one pointer, so that whoever groups by a name can
 * compare pointers: a hostile profile can name a million frames with one
 * long string, and comparing its text each time would cost the length of
 * the name per frame. Hashes each string once. */
static int dedupe_strings(mtt_profile *p) {
  size_t cap = 16;
  while (cap < 2 * p->nstrings) cap *= 2;
  const char **slot = calloc(cap, sizeof *slot);
  if (slot == NULL) return -1;
  for (size_t i = 0; i < p->nstrings; i++) {
    uint64_t h = 1469598103934665603ULL;
    for (const char *s = p->strings[i]; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    size_t j = (h ^ (h >> 31)) & (cap - 1);
    for (; slot[j] != NULL; j = (j + 1) & (cap - 1))
      if (strcmp(slot[j], p->strings[i]) == 0) break;
    if (slot[j] == NULL) slot[j] = p->strings[i];
    else p->strings[i] = slot[j];
  }
  free(slot);
  return 0;
}

/* calloc of n records of size sz, at least one */
static void *dec_array(size_t n, size_t sz) { return calloc(n ? n : 1, sz); }

int mtt_profile_decode(const uint8_t *data, size_t len, mtt_profile *p, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  p->default_type = -1;
  dec d = {.p = p, .data = data};
  rd r = {data, data + len, 0};
  idmap fmap = {NULL, 0}, lmap = {NULL, 0}, mmap_ = {NULL, 0};
  dec_pass(&d, r, COUNT);
  if (d.why) goto fail;
  if (d.ntypes == 0 || d.nstrings == 0) {
    d.why = "not a pprof profile";
    goto fail;
  }
  d.type_pairs = dec_array(2 * d.ntypes, sizeof(uint64_t));
  d.strs = dec_array(2 * d.nstrings, sizeof(uint64_t));
  if (!d.type_pairs || !d.strs) goto oom;
  dec_pass(&d, r, STRINGS);
  /* strings: copied into one block, each NUL-terminated */
  p->nstrings = d.nstrings;
  size_t total = 0;
  for (size_t i = 0; i < p->nstrings; i++) total += d.strs[2 * i + 1] + 1;
  p->raw = malloc(total);
  p->raw_len = total;
  p->strings = dec_array(p->nstrings, sizeof *p->strings);
  if (p->raw == NULL || p->strings == NULL) goto oom;
  char *w = (char *)p->raw;
  for (size_t i = 0; i < p->nstrings; i++) {
    size_t n = d.strs[2 * i + 1];
    memcpy(w, data + d.strs[2 * i], n);
    w[n] = 0;
    for (size_t k = 0; k < n; k++)
      if (w[k] == 0) w[k] = '?'; /* embedded NULs would cut names short */
    p->strings[i] = w;
    w += n + 1;
  }
  if (dedupe_strings(p) != 0) goto oom;
  p->ntypes = d.ntypes;
  p->type_names = dec_array(p->ntypes, sizeof *p->type_names);
  p->type_units = dec_array(p->ntypes, sizeof *p->type_units);
  if (!p->type_names || !p->type_units) goto oom;
  for (size_t i = 0; i < p->ntypes; i++) {
    p->type_names[i] = STR(p, d.type_pairs[2 * i]);
    p->type_units[i] = STR(p, d.type_pairs[2 * i + 1]);
    if (d.default_type && d.type_pairs[2 * i] == d.default_type) p->default_type = (int)i;
  }
  p->comment = d.comment ? STR(p, d.comment) : NULL;
  free(d.type_pairs), free(d.strs);
  d.type_pairs = d.strs = NULL;

  p->functions = dec_array(d.nfunctions, sizeof *p->functions);
  p->locations = dec_array(d.nlocations, sizeof *p->locations);
  p->line_pool = dec_array(d.nlines, sizeof *p->line_pool);
  p->samples = dec_array(d.nsamples, sizeof *p->samples);
  p->loc_pool = dec_array(d.nlocs, sizeof *p->loc_pool);
  p->value_pool = dec_array(d.nvalues, sizeof *p->value_pool);
  p->mappings = dec_array(d.nmappings, sizeof *p->mappings);
  if (!p->mappings || !p->functions || !p->locations || !p->line_pool || !p->samples || !p->loc_pool || !p->value_pool) goto oom;
  dec_pass(&d, r, FILL);
  p->nfunctions = d.nfunctions, p->nlocations = d.nlocations, p->nsamples = d.nsamples, p->nmappings = d.nmappings;

  /* ids to indexes: a location's lines name functions, a sample's stack
   * locations; a frame whose location is missing is left out */
  fmap = (idmap){dec_array(2 * d.nfunctions, sizeof(uint64_t)), d.nfunctions};
  lmap = (idmap){dec_array(2 * d.nlocations, sizeof(uint64_t)), d.nlocations};
  if (!fmap.pairs || !lmap.pairs) goto oom;
  for (size_t i = 0; i < d.nfunctions; i++) fmap.pairs[2 * i] = p->functions[i].id, fmap.pairs[2 * i + 1] = i;
  qsort(fmap.pairs, fmap.n, 2 * sizeof(uint64_t), cmp_u64);
  for (size_t i = 0; i < d.nlines; i++) p->line_pool[i].function = idmap_get(&fmap, p->line_pool[i].function);
  for (size_t i = 0; i < d.nlocations; i++) lmap.pairs[2 * i] = p->locations[i].id, lmap.pairs[2 * i + 1] = i;
  qsort(lmap.pairs, lmap.n, 2 * sizeof(uint64_t), cmp_u64);
  mmap_ = (idmap){dec_array(2 * d.nmappings, sizeof(uint64_t)), d.nmappings};
  if (!mmap_.pairs) goto oom;
  for (size_t i = 0; i < d.nmappings; i++) mmap_.pairs[2 * i] = p->mappings[i].id, mmap_.pairs[2 * i + 1] = i;
  qsort(mmap_.pairs, mmap_.n, 2 * sizeof(uint64_t), cmp_u64);
  for (size_t i = 0; i < d.nlocations; i++) p->locations[i].mapping = idmap_get(&mmap_, p->locations[i].mapping);
  for (size_t i = 0; i < p->nsamples; i++) {
    mtt_sample *S = &p->samples[i];
    size_t n = 0;
    for (size_t k = 0; k < S->nlocs; k++) {
      uint64_t idx = idmap_get(&lmap, S->locs[k]);
      if (idx != UINT64_MAX) S->locs[n++] = idx;
    }
    S->nlocs = n;
  }
  free(fmap.pairs), free(lmap.pairs), free(mmap_.pairs);
  return 0;
oom:
  d.why = "out of memory";
fail:
  free(fmap.pairs), free(lmap.pairs), free(mmap_.pairs), free(d.type_pairs), free(d.strs);
  mtt_profile_free(p);
  snprintf(err, errlen, "%s", d.why);
  return -1;
}
#undef STR

struct mtt_owned {
  struct mtt_owned *next;
  max_align_t data[];
};

void *mtt_profile_alloc(mtt_profile *p, size_t size) {
  if (size > SIZE_MAX - sizeof(struct mtt_owned)) return NULL;
  struct mtt_owned *o = calloc(1, sizeof *o + size);
  if (o == NULL) return NULL;
  o->next = p->owned;
  p->owned = o;
  return o->data;
}

const char *mtt_profile_strdup(mtt_profile *p, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = mtt_profile_alloc(p, n);
  if (d) memcpy(d, s, n);
  return d;
}

void mtt_profile_free(mtt_profile *p) {
  for (struct mtt_owned *o = p->owned, *next; o != NULL; o = next) next = o->next, free(o);
  free(p->mappings);
  free(p->locations), free(p->line_pool), free(p->samples), free(p->loc_pool), free(p->value_pool);
  free(p->functions), free(p->strings), free(p->raw), free(p->type_names), free(p->type_units);
  memset(p, 0, sizeof *p);
}

void mtt_address_name(const mtt_profile *p, const mtt_location *l, char *buf, size_t cap) {
  const mtt_mapping *m = l->mapping < p->nmappings ? &p->mappings[l->mapping] : NULL;
  if (m == NULL || m->file[0] == 0 || l->address < m->start || l->address >= m->limit) {
    snprintf(buf, cap, "0x%llx", (unsigned long long)l->address);
    return;
  }
  const char *base = strrchr(m->file, '/');
  snprintf(buf, cap, "%.200s+0x%llx", base ? base + 1 : m->file,
           (unsigned long long)(l->address - m->start + m->offset));
}

int mtt_profile_type(const mtt_profile *p, const char *name) {
  for (size_t i = 0; i < p->ntypes; i++)
    if (strcmp(p->type_names[i], name) == 0) return (int)i;
  return -1;
}

/* Whole file into memory, gunzipped when it starts with the gzip magic. */
int mtt_profile_read(const char *path, mtt_profile *p, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, errlen, "cannot open: %s", strerror(errno));
    return -1;
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 65536;
      uint8_t *b = cap / 2 < mtt_limit.max_bytes ? realloc(buf, cap) : NULL;
      if (b == NULL) {
        free(buf);
        fclose(f);
        if (cap / 2 >= mtt_limit.max_bytes)
          snprintf(err, errlen, "larger than the limit of %zu bytes (--max-size)", mtt_limit.max_bytes);
        else
          snprintf(err, errlen, "out of memory");
        return -1;
      }
      buf = b;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  int rerr = ferror(f);
  fclose(f);
  if (rerr) {
    free(buf);
    snprintf(err, errlen, "read error");
    return -1;
  }
  if (len == 0) {
    free(buf);
    snprintf(err, errlen, "empty file");
    return -1;
  }
  uint8_t *data = buf;
  size_t dlen = len;
  if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
      free(buf);
      snprintf(err, errlen, "cannot start gzip decoder");
      return -1;
    }
    size_t ocap = len * 4 + 65536, olen = 0;
    uint8_t *out = malloc(ocap);
    int rc = Z_OK;
    zs.next_in = buf;
    zs.avail_in = (uInt)(len > 0xffffffffu ? 0xffffffffu : len);
    while (out != NULL) {
      zs.next_out = out + olen;
      zs.avail_out = (uInt)((ocap - olen) > 0xffffffffu ? 0xffffffffu : (ocap - olen));
      rc = inflate(&zs, Z_NO_FLUSH);
      olen = (size_t)(zs.next_out - out);
      if (rc == Z_STREAM_END) break;
      if (rc != Z_OK && rc != Z_BUF_ERROR) break;
      if (zs.avail_out == 0) {
        if (ocap >= mtt_limit.max_bytes) {
          rc = Z_MEM_ERROR; /* reported as over the limit below */
          break;
        }
        uint8_t *o = realloc(out, ocap * 2);
        if (o == NULL) break;
        out = o;
        ocap *= 2;
      } else if (zs.avail_in == 0) {
        break; /* input ended before the stream did */
      }
    }
    inflateEnd(&zs);
    free(buf);
    if (out == NULL || rc != Z_STREAM_END) {
      free(out);
      if (rc == Z_MEM_ERROR)
        snprintf(err, errlen, "inflates past the limit of %zu bytes (--max-size)", mtt_limit.max_bytes);
      else
        snprintf(err, errlen, rc == Z_STREAM_END ? "out of memory" : "corrupt or truncated gzip data");
      return -1;
    }
    data = out;
    dlen = olen;
  }
  int rc = mtt_profile_decode(data, dlen, p, err, errlen);
  free(data);
  return rc;
}
