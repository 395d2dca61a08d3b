/* profile.c -- reading pprof profiles: gzip, then profile.proto, every read bounds-checked
 *
 * Reads any pprof profile (memtally's, Go's, gperftools' converted by go tool
 * pprof). Ids are mapped to array indexes after the whole message is read.
 * A truncated or corrupt file yields an error message, never a crash. */
#include "profile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

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
    case 0: varint(r); break;
    case 1: if (r->end - r->p < 8) r->bad = 1; else r->p += 8; break;
    case 2: sub(r); break;
    case 5: if (r->end - r->p < 4) r->bad = 1; else r->p += 4; break;
    default: r->bad = 1; break;
  }
}

/* Repeated integers, packed or not. */
typedef struct vec {
  uint64_t *v;
  size_t n, cap;
} vec;

static int vec_push(vec *a, uint64_t x) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 8;
    uint64_t *v = realloc(a->v, cap * sizeof *v);
    if (v == NULL) return -1;
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = x;
  return 0;
}

static void ints(rd *r, unsigned wire, vec *out) {
  if (wire == 2) {
    rd s = sub(r);
    while (s.p < s.end && !s.bad)
      if (vec_push(out, varint(&s)) != 0) r->bad = 1;
    if (s.bad) r->bad = 1;
  } else if (wire == 0) {
    if (vec_push(out, varint(r)) != 0) r->bad = 1;
  } else {
    r->bad = 1;
  }
}

#define GROW(arr, n, cap)                                                   \
  do {                                                                      \
    if ((n) == (cap)) {                                                     \
      size_t c_ = (cap) ? (cap) * 2 : 16;                                   \
      void *p_ = realloc((arr), c_ * sizeof *(arr));                        \
      if (p_ == NULL) goto oom;                                             \
      (arr) = p_;                                                           \
      (cap) = c_;                                                           \
    }                                                                       \
  } while (0)

typedef struct raw_sample {
  vec locs, values;
  uint64_t label_keys[8], label_strs[8], label_nums[8];
  size_t nlabels;
} raw_sample;

typedef struct raw_loc {
  uint64_t id, address;
  vec fn, line;
} raw_loc;

typedef struct raw_fn {
  uint64_t id, name, file;
} raw_fn;

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

int mtt_profile_decode(const uint8_t *data, size_t len, mtt_profile *p, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  p->default_type = -1;
  rd r = {data, data + len, 0};
  vec strs = {0}, type_pairs = {0};
  raw_sample *samples = NULL;
  size_t ns = 0, cs = 0;
  raw_loc *locs = NULL;
  size_t nl = 0, cl = 0;
  raw_fn *fns = NULL;
  size_t nf = 0, cf = 0;
  uint64_t comment = 0, default_type = 0;
  unsigned num, wire;
  const char *why = "not a pprof profile";
  char limit_msg[128];
  while (field(&r, &num, &wire)) {
    if (num == 1 && wire == 2) { /* sample_type */
      rd s = sub(&r);
      uint64_t t = 0, u = 0;
      while (field(&s, &num, &wire)) {
        if (num == 1 && wire == 0) t = varint(&s);
        else if (num == 2 && wire == 0) u = varint(&s);
        else skip(&s, wire);
      }
      if (s.bad || vec_push(&type_pairs, t) || vec_push(&type_pairs, u)) r.bad = 1;
    } else if (num == 2 && wire == 2) { /* sample */
      GROW(samples, ns, cs);
      raw_sample *x = &samples[ns++];
      memset(x, 0, sizeof *x);
      rd s = sub(&r);
      while (field(&s, &num, &wire)) {
        if (num == 1) ints(&s, wire, &x->locs);
        else if (num == 2) ints(&s, wire, &x->values);
        else if (num == 3 && wire == 2) {
          rd l = sub(&s);
          uint64_t key = 0, str = 0, n = 0;
          while (field(&l, &num, &wire)) {
            if (num == 1 && wire == 0) key = varint(&l);
            else if (num == 2 && wire == 0) str = varint(&l);
            else if (num == 3 && wire == 0) n = varint(&l);
            else skip(&l, wire);
          }
          if (l.bad) s.bad = 1;
          if (x->nlabels < 8) {
            x->label_keys[x->nlabels] = key;
            x->label_strs[x->nlabels] = str;
            x->label_nums[x->nlabels] = n;
            x->nlabels++;
          }
        } else skip(&s, wire);
      }
      if (s.bad) r.bad = 1;
      if (x->locs.n > mtt_limit.max_frames) {
        snprintf(limit_msg, sizeof limit_msg, "a sample of %zu frames is over the limit of %zu (--max-frames)",
                 x->locs.n, mtt_limit.max_frames);
        why = limit_msg;
        goto fail;
      }
      /* a sample with no nonzero value adds nothing to any report: not kept,
       * so millions of empty samples in a small file cost no memory */
      int any = 0;
      for (size_t k = 0; k < x->values.n && !any; k++) any = x->values.v[k] != 0;
      if (!any) {
        free(x->locs.v), free(x->values.v);
        ns--;
      }
    } else if (num == 4 && wire == 2) { /* location */
      GROW(locs, nl, cl);
      raw_loc *x = &locs[nl++];
      memset(x, 0, sizeof *x);
      rd s = sub(&r);
      while (field(&s, &num, &wire)) {
        if (num == 1 && wire == 0) x->id = varint(&s);
        else if (num == 3 && wire == 0) x->address = varint(&s);
        else if (num == 4 && wire == 2) {
          rd l = sub(&s);
          uint64_t fn = 0, line = 0;
          while (field(&l, &num, &wire)) {
            if (num == 1 && wire == 0) fn = varint(&l);
            else if (num == 2 && wire == 0) line = varint(&l);
            else skip(&l, wire);
          }
          if (l.bad || vec_push(&x->fn, fn) || vec_push(&x->line, line)) s.bad = 1;
        } else skip(&s, wire);
      }
      if (s.bad) r.bad = 1;
    } else if (num == 5 && wire == 2) { /* function */
      GROW(fns, nf, cf);
      raw_fn *x = &fns[nf++];
      memset(x, 0, sizeof *x);
      rd s = sub(&r);
      while (field(&s, &num, &wire)) {
        if (num == 1 && wire == 0) x->id = varint(&s);
        else if (num == 2 && wire == 0) x->name = varint(&s);
        else if (num == 4 && wire == 0) x->file = varint(&s);
        else skip(&s, wire);
      }
      if (s.bad) r.bad = 1;
    } else if (num == 6 && wire == 2) { /* string_table: offset and length packed in one entry */
      rd s = sub(&r);
      if (r.bad) break;
      if (vec_push(&strs, (uint64_t)(s.p - data)) || vec_push(&strs, (uint64_t)(s.end - s.p))) goto oom;
    } else if (num == 9 && wire == 0) p->time_nanos = (int64_t)varint(&r);
    else if (num == 10 && wire == 0) p->duration_nanos = (int64_t)varint(&r);
    else if (num == 12 && wire == 0) p->period = (int64_t)varint(&r);
    else if (num == 13) {
      vec c = {0};
      ints(&r, wire, &c);
      if (c.n) comment = c.v[0];
      free(c.v);
    } else if (num == 14 && wire == 0) default_type = varint(&r);
    else skip(&r, wire);
  }
  if (r.bad) {
    why = "corrupt or truncated profile data";
    goto fail;
  }
  if (type_pairs.n == 0 || strs.n == 0) goto fail;
  /* strings: copy into one NUL-terminated block */
  p->nstrings = strs.n / 2;
  size_t total = 0;
  for (size_t i = 0; i < p->nstrings; i++) total += strs.v[2 * i + 1] + 1;
  p->raw = malloc(total ? total : 1);
  p->strings = malloc(p->nstrings * sizeof *p->strings);
  if (p->raw == NULL || p->strings == NULL) goto oom;
  char *w = (char *)p->raw;
  for (size_t i = 0; i < p->nstrings; i++) {
    size_t n = strs.v[2 * i + 1];
    memcpy(w, data + strs.v[2 * i], n);
    w[n] = 0;
    for (size_t k = 0; k < n; k++)
      if (w[k] == 0) w[k] = '?'; /* embedded NULs would cut names short */
    p->strings[i] = w;
    w += n + 1;
  }
#define STR(i) ((i) < p->nstrings ? p->strings[(i)] : "")
  p->ntypes = type_pairs.n / 2;
  p->type_names = malloc(p->ntypes * sizeof *p->type_names);
  p->type_units = malloc(p->ntypes * sizeof *p->type_units);
  if (!p->type_names || !p->type_units) goto oom;
  for (size_t i = 0; i < p->ntypes; i++) {
    p->type_names[i] = STR(type_pairs.v[2 * i]);
    p->type_units[i] = STR(type_pairs.v[2 * i + 1]);
    if (default_type && type_pairs.v[2 * i] == default_type) p->default_type = (int)i;
  }
  p->comment = comment ? STR(comment) : NULL;
  /* functions */
  idmap fmap = {calloc(2 * (nf ? nf : 1), sizeof(uint64_t)), nf};
  p->functions = calloc(nf ? nf : 1, sizeof *p->functions);
  if (!fmap.pairs || !p->functions) goto oom;
  for (size_t i = 0; i < nf; i++) {
    p->functions[i] = (mtt_function){fns[i].id, STR(fns[i].name), STR(fns[i].file)};
    fmap.pairs[2 * i] = fns[i].id, fmap.pairs[2 * i + 1] = i;
  }
  qsort(fmap.pairs, nf, 2 * sizeof(uint64_t), cmp_u64);
  p->nfunctions = nf;
  /* locations */
  idmap lmap = {calloc(2 * (nl ? nl : 1), sizeof(uint64_t)), nl};
  p->locations = calloc(nl ? nl : 1, sizeof *p->locations);
  if (!lmap.pairs || !p->locations) goto oom;
  for (size_t i = 0; i < nl; i++) {
    mtt_location *L = &p->locations[i];
    L->id = locs[i].id;
    L->address = locs[i].address;
    L->nlines = locs[i].fn.n;
    L->lines = calloc(L->nlines ? L->nlines : 1, sizeof *L->lines);
    if (!L->lines) goto oom;
    for (size_t k = 0; k < L->nlines; k++)
      L->lines[k] = (mtt_line){idmap_get(&fmap, locs[i].fn.v[k]), (int64_t)locs[i].line.v[k]};
    lmap.pairs[2 * i] = locs[i].id, lmap.pairs[2 * i + 1] = i;
  }
  qsort(lmap.pairs, nl, 2 * sizeof(uint64_t), cmp_u64);
  p->nlocations = nl;
  /* samples */
  p->samples = calloc(ns ? ns : 1, sizeof *p->samples);
  if (!p->samples) goto oom;
  for (size_t i = 0; i < ns; i++) {
    mtt_sample *S = &p->samples[i];
    S->values = calloc(p->ntypes, sizeof *S->values);
    S->locs = calloc(samples[i].locs.n ? samples[i].locs.n : 1, sizeof *S->locs);
    if (!S->values || !S->locs) goto oom;
    for (size_t k = 0; k < p->ntypes && k < samples[i].values.n; k++) S->values[k] = (int64_t)samples[i].values.v[k];
    for (size_t k = 0; k < samples[i].locs.n; k++) {
      uint64_t idx = idmap_get(&lmap, samples[i].locs.v[k]);
      if (idx != UINT64_MAX) S->locs[S->nlocs++] = idx;
    }
    for (size_t k = 0; k < samples[i].nlabels; k++) {
      const char *key = STR(samples[i].label_keys[k]);
      if (strcmp(key, "region") == 0 && samples[i].label_strs[k]) S->region = STR(samples[i].label_strs[k]);
      if (strcmp(key, "thread") == 0) S->thread = (int64_t)samples[i].label_nums[k];
    }
  }
  p->nsamples = ns;
#undef STR
  free(fmap.pairs);
  free(lmap.pairs);
  for (size_t i = 0; i < ns; i++) free(samples[i].locs.v), free(samples[i].values.v);
  for (size_t i = 0; i < nl; i++) free(locs[i].fn.v), free(locs[i].line.v);
  free(samples), free(locs), free(fns), free(strs.v), free(type_pairs.v);
  return 0;
oom:
  why = "out of memory";
fail:
  for (size_t i = 0; i < ns; i++) free(samples[i].locs.v), free(samples[i].values.v);
  for (size_t i = 0; i < nl; i++) free(locs[i].fn.v), free(locs[i].line.v);
  free(samples), free(locs), free(fns), free(strs.v), free(type_pairs.v);
  mtt_profile_free(p);
  snprintf(err, errlen, "%s", why);
  return -1;
}

void mtt_profile_free(mtt_profile *p) {
  if (p->locations)
    for (size_t i = 0; i < p->nlocations; i++) free(p->locations[i].lines);
  if (p->samples)
    for (size_t i = 0; i < p->nsamples; i++) free(p->samples[i].values), free(p->samples[i].locs);
  free(p->locations), free(p->samples), free(p->functions), free(p->strings), free(p->raw);
  free(p->type_names), free(p->type_units);
  memset(p, 0, sizeof *p);
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
