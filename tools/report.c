/* report.c -- aggregate samples by site, rank them, explain the top ones; diffs between profiles
 *
 * A site is the innermost frame that is not part of an allocator (memtally
 * already drops its own frames; C library wrappers like strdup and Go's
 * runtime allocation frames are skipped here). Each of the top five rows
 * gets one recommendation from the first rule that fires, with the numbers
 * that made it fire. */
#include "report.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A row is one site. Its key (the text of the site) is not stored: it is
 * rendered again from a sample of the site when needed, so a profile of
 * many distinct sites whose names are long costs a fixed amount per site
 * (a hostile profile can name 200 000 stacks through a 4 KB name in 8 MB).
 * The hash and the key's first bytes are kept for lookups and sorting. */
#define KEY_MAX 4096
#define KEY_HEAD 40
typedef struct row {
  const mtt_profile *kp; /* the key is site_key(kp, ks, by) */
  const mtt_sample *ks;
  uint64_t hash;
  char head[KEY_HEAD]; /* the key's first bytes, NUL-terminated */
  int by;
  double value, objects;       /* of the chosen sample type */
  double alloc_space, inuse_space, alloc_objects;
  double base_value, base_objects; /* diff: the base profile */
  int realloc_seen;
} row;

typedef struct table {
  row *rows;
  size_t n, cap;
  size_t *slots; /* open addressing over key hashes: row index + 1 */
  size_t nslots;
} table;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
  return h;
}

static size_t site_key(const mtt_profile *p, const mtt_sample *S, int by, char *key, size_t cap, int *realloc_seen);

/* The first cap - 1 bytes of s into dst, NUL-terminated. */
static void copy_head(char *dst, size_t cap, const char *s) {
  size_t n = strnlen(s, cap - 1);
  memcpy(dst, s, n);
  dst[n] = 0;
}

static const char *row_key(const row *r, char *buf) {
  if (strlen(r->head) < KEY_HEAD - 1) return r->head; /* the whole key */
  site_key(r->kp, r->ks, r->by, buf, KEY_MAX, NULL);
  return buf;
}

/* The row of key (rendered from sample S of p), added if new. */
static row *table_get(table *t, const char *key, const mtt_profile *p, const mtt_sample *S, int by) {
  if ((t->n + 1) * 2 > t->nslots) {
    size_t ns = t->nslots ? t->nslots * 2 : 1024;
    size_t *s = calloc(ns, sizeof *s);
    if (!s) return NULL;
    for (size_t i = 0; i < t->n; i++)
      for (size_t j = t->rows[i].hash & (ns - 1);; j = (j + 1) & (ns - 1))
        if (!s[j]) {
          s[j] = i + 1;
          break;
        }
    free(t->slots);
    t->slots = s;
    t->nslots = ns;
  }
  uint64_t h = hash_str(key);
  size_t j = h & (t->nslots - 1);
  char buf[KEY_MAX];
  for (; t->slots[j]; j = (j + 1) & (t->nslots - 1)) {
    row *r = &t->rows[t->slots[j] - 1];
    if (r->hash == h && strcmp(row_key(r, buf), key) == 0) return r;
  }
  if (t->n == t->cap) {
    size_t c = t->cap ? t->cap * 2 : 256;
    row *r = realloc(t->rows, c * sizeof *r);
    if (!r) return NULL;
    t->rows = r;
    t->cap = c;
  }
  row *r = &t->rows[t->n];
  memset(r, 0, sizeof *r);
  r->kp = p, r->ks = S, r->hash = h, r->by = by;
  copy_head(r->head, sizeof r->head, key);
  t->slots[j] = ++t->n;
  return r;
}

static void table_free(table *t) {
  free(t->rows);
  free(t->slots);
  memset(t, 0, sizeof *t);
}

/* Order of two rows' keys: by their first bytes, in full only when those tie. */
static int key_cmp(const row *x, const row *y) {
  int c = strcmp(x->head, y->head);
  if (c != 0 || strlen(x->head) < KEY_HEAD - 1) return c;
  static char bx[KEY_MAX], by[KEY_MAX];
  return strcmp(row_key(x, bx), row_key(y, by));
}

/* Frames that only pass an allocation on. */
static int allocator_frame(const char *name) {
  static const char *const exact[] = {"malloc", "calloc", "realloc", "free", "strdup", "strndup", "__strdup",
                                      "__strndup", "xmalloc", "xcalloc", "xrealloc", "g_malloc", "g_malloc0",
                                      "g_realloc", "operator new", "operator new[]", "_Znwm", "_Znam", NULL};
  for (int i = 0; exact[i]; i++)
    if (strcmp(name, exact[i]) == 0) return 1;
  if (strncmp(name, "runtime.", 8) == 0) return 1; /* Go's allocator */
  if (strncmp(name, "operator new(", 13) == 0) return 1;
  return 0;
}

static const char *frame_name(const mtt_profile *p, const mtt_location *l, char *buf, size_t cap, int64_t *line,
                               const char **file) {
  *line = 0;
  *file = "";
  if (l->nlines && l->lines[0].function < p->nfunctions) {
    const mtt_function *f = &p->functions[l->lines[0].function];
    *line = l->lines[0].line;
    *file = f->file;
    if (f->name[0]) return f->name;
  }
  snprintf(buf, cap, "0x%llx", (unsigned long long)l->address);
  return buf;
}

double mtt_type_total(const mtt_profile *p, int type) {
  double t = 0;
  for (size_t s = 0; s < p->nsamples; s++) t += (double)mtt_value(&p->samples[s], type);
  return t;
}

int mtt_pick_type(const mtt_profile *p, const mtt_options *o, int *value, int *objects, char *err, size_t errlen) {
  const char *want = o->sample;
  int v = -1;
  if (want) {
    v = mtt_profile_type(p, want);
    if (v < 0) {
      snprintf(err, errlen, "the profile has no sample type '%s'", want);
      return -1;
    }
  } else {
    v = p->default_type >= 0 ? p->default_type : mtt_profile_type(p, "inuse_space");
    if (v < 0) v = (int)p->ntypes - 1;
    /* A program that holds nothing at its end (python, sqlite at exit): an
     * empty in-use view says nothing; show what was allocated, and say so. */
    int alloc = mtt_profile_type(p, "alloc_space");
    if (strncmp(p->type_names[v], "inuse", 5) == 0 && alloc >= 0 && mtt_type_total(p, v) == 0 &&
        mtt_type_total(p, alloc) > 0) {
      fprintf(stderr, "memtally: nothing sampled was in use when this profile was written; showing alloc_space "
                      "(--sample %s to insist)\n", p->type_names[v]);
      v = alloc;
    }
  }
  const char *name = p->type_names[v];
  int obj = -1;
  if (strcmp(name, "alloc_space") == 0) obj = mtt_profile_type(p, "alloc_objects");
  else if (strcmp(name, "inuse_space") == 0) obj = mtt_profile_type(p, "inuse_objects");
  else if (strcmp(name, "space") == 0) obj = mtt_profile_type(p, "objects"); /* gperftools, converted */
  else if (strstr(name, "objects") || strcmp(p->type_units[v], "count") == 0) obj = v;
  *value = v;
  *objects = obj;
  return 0;
}

/* The key of sample S's site when grouping by `by`; its length. */
static size_t site_key(const mtt_profile *p, const mtt_sample *S, int by, char *key, size_t cap, int *realloc_seen) {
  char buf[64];
  size_t first = 0;
  for (; first < S->nlocs; first++) {
    int64_t ln;
    const char *fl;
    const char *n = frame_name(p, &p->locations[S->locs[first]], buf, sizeof buf, &ln, &fl);
    if (realloc_seen && (strstr(n, "realloc") || strstr(n, "growslice"))) *realloc_seen = 1;
    if (!allocator_frame(n)) break;
  }
  if (first == S->nlocs) first = 0;
  key[0] = 0;
  if (by == MTT_BY_REGION) return (size_t)snprintf(key, cap, "%s", S->region ? S->region : "(no region)");
  if (S->nlocs == 0) return (size_t)snprintf(key, cap, "(no stack)");
  if (by == MTT_BY_STACK) {
    size_t len = 0;
    for (size_t k = first; k < S->nlocs && k < first + 8 && len < cap - 200; k++) {
      int64_t ln;
      const char *fl;
      const char *n = frame_name(p, &p->locations[S->locs[k]], buf, sizeof buf, &ln, &fl);
      int w = snprintf(key + len, cap - len, "%s%s", k == first ? "" : " < ", n);
      len = w < 0 ? len : len + (size_t)w >= cap ? cap - 1 : len + (size_t)w;
    }
    return len;
  }
  int64_t ln;
  const char *fl;
  const char *n = frame_name(p, &p->locations[S->locs[first]], buf, sizeof buf, &ln, &fl);
  if (by == MTT_BY_LINE && ln > 0) {
    const char *base_name = strrchr(fl, '/');
    return (size_t)snprintf(key, cap, "%s %s:%lld", n, base_name ? base_name + 1 : fl, (long long)ln);
  }
  return (size_t)snprintf(key, cap, "%s", n);
}

/* Sum p's samples into t by the site key of o->by. */
static int aggregate(const mtt_profile *p, const mtt_options *o, int vi, int oi, table *t, int base) {
  int as = mtt_profile_type(p, "alloc_space"), is = mtt_profile_type(p, "inuse_space"),
      ao = mtt_profile_type(p, "alloc_objects");
  char key[KEY_MAX];
  for (size_t s = 0; s < p->nsamples; s++) {
    const mtt_sample *S = &p->samples[s];
    int realloc_seen = 0;
    site_key(p, S, o->by, key, sizeof key, &realloc_seen);
    row *r = table_get(t, key, p, S, o->by);
    if (r == NULL) return -1;
    double v = (double)mtt_value(S, vi), ob = oi >= 0 ? (double)mtt_value(S, oi) : 0;
    if (base) {
      r->base_value += v;
      r->base_objects += ob;
    } else {
      r->value += v;
      r->objects += ob;
      if (as >= 0) r->alloc_space += (double)mtt_value(S, as);
      if (is >= 0) r->inuse_space += (double)mtt_value(S, is);
      if (ao >= 0) r->alloc_objects += (double)mtt_value(S, ao);
      r->realloc_seen |= realloc_seen;
    }
  }
  return 0;
}

static void fmt_value(char *buf, size_t cap, double v, const char *unit) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (strcmp(unit, "bytes") == 0) {
    int i = 0;
    double a = v < 0 ? -v : v;
    while (a >= 1024 && i < 4) a /= 1024, v /= 1024, i++;
    if (i == 0) snprintf(buf, cap, "%.0f B", v);
    else snprintf(buf, cap, "%.1f %s", v, u[i]);
  } else {
    double a = v < 0 ? -v : v;
    if (a >= 1e9) snprintf(buf, cap, "%.1f G", v / 1e9);
    else if (a >= 1e6) snprintf(buf, cap, "%.1f M", v / 1e6);
    else if (a >= 1e4) snprintf(buf, cap, "%.1f k", v / 1e3);
    else snprintf(buf, cap, "%.0f", v);
  }
}

static int by_value_desc(const void *a, const void *b) {
  const row *x = a, *y = b;
  if (x->value != y->value) return x->value < y->value ? 1 : -1;
  return key_cmp(x, y);
}

static int by_change_desc(const void *a, const void *b) {
  const row *x = a, *y = b;
  int zx = x->value == 0 && x->base_value == 0, zy = y->value == 0 && y->base_value == 0;
  if (zx != zy) return zx - zy; /* sites absent from both last */
  double cx = x->value - x->base_value, cy = y->value - y->base_value;
  double ax = cx < 0 ? -cx : cx, ay = cy < 0 ? -cy : cy;
  if (ax != ay) return ax < ay ? 1 : -1;
  return key_cmp(x, y);
}

static void json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c < 0x20) fprintf(out, "\\u%04x", c);
    else fputc(c, out);
  }
  fputc('"', out);
}

/* The first rule that fires for a top row, as "name" and an advice line. */
static int recommend(const row *r, double total, int inuse_view, char *name, size_t ncap, char *advice, size_t acap) {
  char a[32], b[32];
  double share = total > 0 ? r->value / total : 0;
  double avg = r->alloc_objects > 0 ? r->alloc_space / r->alloc_objects : (r->objects > 0 ? r->value / r->objects : 0);
  double objs = r->alloc_objects > 0 ? r->alloc_objects : r->objects;
  if (inuse_view && r->inuse_space >= (1 << 20) && r->alloc_space > 0 && r->inuse_space >= 0.9 * r->alloc_space)
    goto held; /* looking at what is held: say so first */
  if (r->realloc_seen) {
    snprintf(name, ncap, "growing-realloc");
    fmt_value(a, sizeof a, r->alloc_space > 0 ? r->alloc_space : r->value, "bytes");
    snprintf(advice, acap, "%s reallocated through a growing block: reserve the final capacity up front", a);
    return 1;
  }
  if (objs >= 1000 && avg > 0 && avg <= 256 && share >= 0.05) {
    snprintf(name, ncap, "many-small-objects");
    fmt_value(a, sizeof a, objs, "count");
    snprintf(advice, acap,
             "%s objects of %.0f B on average from one site (%.0f%% of the total): allocate them from an arena "
             "(a region freed in one call) or keep them in one inline array",
             a, avg, share * 100);
    return 1;
  }
  if (r->alloc_space >= (1 << 20) && r->inuse_space < 0.1 * r->alloc_space) {
    snprintf(name, ncap, "allocated-not-held");
    fmt_value(a, sizeof a, r->alloc_space, "bytes");
    snprintf(advice, acap,
             "%s allocated, %.1f%% still in use: temporary allocations; avoid them, reuse one buffer, or defer "
             "the work that needs them",
             a, r->alloc_space > 0 ? 100 * r->inuse_space / r->alloc_space : 0);
    return 1;
  }
  if (r->inuse_space >= (1 << 20) && r->alloc_space > 0 && r->inuse_space >= 0.9 * r->alloc_space) {
  held:
    snprintf(name, ncap, "held-to-the-end");
    fmt_value(a, sizeof a, r->inuse_space, "bytes");
    fmt_value(b, sizeof b, r->alloc_space, "bytes");
    snprintf(advice, acap,
             "%s of the %s it allocated is still in use: a leak suspect if it grows from window to window "
             "(compare two windows with memtally diff)",
             a, b);
    return 1;
  }
  return 0;
}

int mtt_report(const mtt_profile *p, const mtt_options *o, FILE *out, char *err, size_t errlen) {
  int vi, oi;
  if (mtt_pick_type(p, o, &vi, &oi, err, errlen) != 0) return 2;
  table t = {0};
  if (aggregate(p, o, vi, oi, &t, 0) != 0) {
    table_free(&t);
    snprintf(err, errlen, "out of memory");
    return 2;
  }
  if (t.n > 1) qsort(t.rows, t.n, sizeof *t.rows, by_value_desc);
  double total = 0;
  size_t nonzero = 0;
  for (size_t i = 0; i < t.n; i++) total += t.rows[i].value, nonzero += t.rows[i].value != 0;
  const char *unit = p->type_units[vi];
  size_t top = o->top > 0 && (size_t)o->top < nonzero ? (size_t)o->top : nonzero; /* sorted: zero rows last */
  int inuse_view = strncmp(p->type_names[vi], "inuse", 5) == 0;
  char v[32], ob[32], avg[32], name[64], advice[512];
  static char keybuf[KEY_MAX];
  if (o->json) {
    fprintf(out, "{\"sample\":");
    json_str(out, p->type_names[vi]);
    fprintf(out, ",\"unit\":");
    json_str(out, unit);
    fprintf(out, ",\"total\":%.0f,\"rows\":[", total);
  } else {
    fmt_value(v, sizeof v, total, unit);
    fprintf(out, "%s by %s, total %s, %zu sites%s%s\n", p->type_names[vi],
            o->by == MTT_BY_LINE ? "line" : o->by == MTT_BY_STACK ? "stack" : o->by == MTT_BY_REGION ? "region" : "function",
            v, nonzero, p->comment ? ", profile: " : "", p->comment ? p->comment : "");
    fprintf(out, "%4s  %-40s %12s %7s %7s %10s %10s\n", "rank", "site", "value", "%", "cum%", "objects", "avg size");
  }
  double cum = 0;
  for (size_t i = 0; i < top; i++) {
    row *r = &t.rows[i];
    const char *key = row_key(r, keybuf);
    cum += r->value;
    double pct = total > 0 ? 100 * r->value / total : 0, cpct = total > 0 ? 100 * cum / total : 0;
    double a = r->objects > 0 && strcmp(unit, "bytes") == 0 ? r->value / r->objects : 0;
    int fired = i < 5 && recommend(r, total, inuse_view, name, sizeof name, advice, sizeof advice);
    if (o->json) {
      fprintf(out, "%s{\"rank\":%zu,\"site\":", i ? "," : "", i + 1);
      json_str(out, key);
      fprintf(out, ",\"value\":%.0f,\"percent\":%.2f,\"cum_percent\":%.2f,\"objects\":%.0f,\"avg_size\":%.1f", r->value,
              pct, cpct, r->objects, a);
      if (fired) {
        fprintf(out, ",\"rule\":");
        json_str(out, name);
        fprintf(out, ",\"advice\":");
        json_str(out, advice);
      }
      fputc('}', out);
      continue;
    }
    fmt_value(v, sizeof v, r->value, unit);
    fmt_value(ob, sizeof ob, r->objects, "count");
    if (a > 0) fmt_value(avg, sizeof avg, a, "bytes");
    else snprintf(avg, sizeof avg, "-");
    char site[41];
    copy_head(site, sizeof site, key);
    if (strlen(key) > 40) memcpy(site + 37, "...", 4);
    fprintf(out, "%4zu  %-40s %12s %6.1f%% %6.1f%% %10s %10s\n", i + 1, site, v, pct, cpct, oi >= 0 ? ob : "-", avg);
    if (strlen(key) > 40) fprintf(out, "      %s\n", key);
    if (fired) fprintf(out, "      -> %s: %s\n", name, advice);
  }
  if (o->json) fprintf(out, "]}\n");
  table_free(&t);
  /* bytes requested against the bytes of the blocks held (memtally's profiles have both) */
  const char *held_name = strcmp(p->type_names[vi], "alloc_space") == 0   ? "alloc_held_space"
                          : strcmp(p->type_names[vi], "inuse_space") == 0 ? "inuse_held_space"
                                                                            : NULL;
  int hv = held_name ? mtt_profile_type(p, held_name) : -1;
  if (!o->json && hv >= 0 && total > 0) {
    double held = mtt_type_total(p, hv);
    fmt_value(v, sizeof v, held, unit);
    fprintf(out, "(bytes as requested; the blocks held for them: %s, %+.1f%% for size-class rounding: --sample %s)\n",
            v, 100.0 * (held - total) / total, held_name);
  }
  return 0;
}

int mtt_diff(const mtt_profile *base, const mtt_profile *cur, const mtt_options *o, FILE *out, char *err,
             size_t errlen) {
  int bv, bo, cv, co;
  if (mtt_pick_type(base, o, &bv, &bo, err, errlen) != 0 || mtt_pick_type(cur, o, &cv, &co, err, errlen) != 0)
    return 2;
  if (strcmp(base->type_names[bv], cur->type_names[cv]) != 0) {
    snprintf(err, errlen, "the profiles' sample types differ (%s, %s): choose one with --sample", base->type_names[bv],
             cur->type_names[cv]);
    return 2;
  }
  table t = {0};
  if (aggregate(cur, o, cv, co, &t, 0) != 0 || aggregate(base, o, bv, bo, &t, 1) != 0) {
    table_free(&t);
    snprintf(err, errlen, "out of memory");
    return 2;
  }
  if (t.n > 1) qsort(t.rows, t.n, sizeof *t.rows, by_change_desc);
  const char *unit = cur->type_units[cv];
  double tb = 0, tn = 0;
  for (size_t i = 0; i < t.n; i++) tb += t.rows[i].base_value, tn += t.rows[i].value;
  size_t shown = 0; /* sites with a value in either profile (sorted first) */
  for (size_t i = 0; i < t.n; i++) shown += t.rows[i].value != 0 || t.rows[i].base_value != 0;
  size_t top = o->top > 0 && (size_t)o->top < shown ? (size_t)o->top : shown;
  char a[32], b[32], c[32];
  static char keybuf[KEY_MAX];
  int inuse = strncmp(cur->type_names[cv], "inuse", 5) == 0;
  if (o->json) {
    fprintf(out, "{\"sample\":");
    json_str(out, cur->type_names[cv]);
    fprintf(out, ",\"base_total\":%.0f,\"new_total\":%.0f,\"rows\":[", tb, tn);
  } else {
    fmt_value(a, sizeof a, tb, unit);
    fmt_value(b, sizeof b, tn, unit);
    fmt_value(c, sizeof c, tn - tb, unit);
    fprintf(out, "%s: base %s, new %s, change %s%s\n", cur->type_names[cv], a, b, tn >= tb ? "+" : "", c);
    fprintf(out, "%4s  %-40s %12s %12s %13s %8s\n", "rank", "site", "base", "new", "change", "change%");
  }
  for (size_t i = 0; i < top; i++) {
    row *r = &t.rows[i];
    const char *key = row_key(r, keybuf);
    double d = r->value - r->base_value;
    double pct = r->base_value != 0 ? 100 * d / r->base_value : 0;
    int growing = inuse && d > 0 && r->value >= (1 << 20) && (r->base_value == 0 || d >= 0.2 * r->base_value);
    if (o->json) {
      fprintf(out, "%s{\"rank\":%zu,\"site\":", i ? "," : "", i + 1);
      json_str(out, key);
      fprintf(out, ",\"base\":%.0f,\"new\":%.0f,\"change\":%.0f", r->base_value, r->value, d);
      if (growing) fprintf(out, ",\"rule\":\"growing-in-use\"");
      fputc('}', out);
      continue;
    }
    fmt_value(a, sizeof a, r->base_value, unit);
    fmt_value(b, sizeof b, r->value, unit);
    fmt_value(c, sizeof c, d, unit);
    char site[41], pcts[16];
    copy_head(site, sizeof site, key);
    if (strlen(key) > 40) memcpy(site + 37, "...", 4);
    if (r->base_value != 0) snprintf(pcts, sizeof pcts, "%+.1f%%", pct);
    else snprintf(pcts, sizeof pcts, "new");
    char cs[40];
    snprintf(cs, sizeof cs, "%s%s", d >= 0 ? "+" : "", c);
    fprintf(out, "%4zu  %-40s %12s %12s %13s %8s\n", i + 1, site, a, b, cs, pcts);
    if (growing && i < 5)
      fprintf(out, "      -> growing-in-use: in use grew by %s (%s) between the two profiles: a leak suspect\n", c,
              pcts);
  }
  if (o->json) fprintf(out, "]}\n");
  table_free(&t);
  return 0;
}
