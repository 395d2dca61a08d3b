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
/* A profile as one report views it: per function, what kind of frame it is. */
enum { F_ALLOC = 1, F_WRAP = 2, F_HIDE = 4, F_FOCUS = 8, F_IGNORE = 16 };
typedef struct view {
  const mtt_profile *p;
  const mtt_options *o;
  unsigned char *flags; /* per function */
  double folded_value;  /* of the chosen type, in samples whose site was behind a wrapper */
  int as, ao, is, io;   /* alloc_space, alloc_objects, inuse_space, inuse_objects: -1 absent */
} view;

typedef struct row {
  const view *kv; /* the key is site_key(kv, ks, by) */
  const mtt_sample *ks;
  uint64_t hash;
  char head[KEY_HEAD]; /* the key's first bytes, NUL-terminated */
  int by;
  double value, objects;       /* of the chosen sample type */
  double alloc_space, inuse_space, alloc_objects, inuse_objects;
  int wrapper; /* the site itself is a wrapper (--no-fold) */
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

typedef struct site_info {
  int realloc_seen, folded, wrapper;
} site_info;
static size_t site_key(const view *v, const mtt_sample *S, int by, char *key, size_t cap, site_info *si);

/* The first cap - 1 bytes of s into dst, NUL-terminated. */
static void copy_head(char *dst, size_t cap, const char *s) {
  size_t n = strnlen(s, cap - 1);
  memcpy(dst, s, n);
  dst[n] = 0;
}

static const char *row_key(const row *r, char *buf) {
  if (strlen(r->head) < KEY_HEAD - 1) return r->head; /* the whole key */
  site_key(r->kv, r->ks, r->by, buf, KEY_MAX, NULL);
  return buf;
}

/* The row of key (rendered from sample S of p), added if new. */
static row *table_get(table *t, const char *key, const view *p, const mtt_sample *S, int by) {
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
  r->kv = p, r->ks = S, r->hash = h, r->by = by;
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

/* The allocator's entry points: never a site. */
static int allocator_entry(const char *name) {
  static const char *const exact[] = {"malloc",         "calloc",   "realloc",   "free",     "reallocarray",
                                      "memalign",       "aligned_alloc", "posix_memalign", "valloc", "pvalloc",
                                      "strdup",         "strndup",  "__strdup",  "__strndup", "wcsdup",
                                      "_Znwm",          "_Znam",    "operator new", "operator new[]", NULL};
  for (int i = 0; exact[i]; i++)
    if (strcmp(name, exact[i]) == 0) return 1;
  if (strncmp(name, "operator new(", 13) == 0 || strncmp(name, "operator new[](", 15) == 0) return 1;
  if (strncmp(name, "_ZnwmSt", 7) == 0 || strncmp(name, "_ZnamSt", 7) == 0) return 1;
  if (strncmp(name, "runtime.", 8) == 0) return 1; /* Go's allocator */
  if (strncmp(name, "mt_", 3) == 0 || strncmp(name, "mt__", 4) == 0) return 1; /* memtally's own */
  return 0;
}

/* Functions that only pass an allocation on, in libraries and programs
 * users profile: charged to their caller unless --no-fold. */
static const char *const wrapper_patterns[] = {
    "^(__libc_(malloc|calloc|realloc|memalign)|__GI___libc_\\w+)$",
    "^x(malloc|calloc|realloc|mallocz|mallocz_gently|strdup|strndup|memdup|memdupz|zalloc|alloc|new\\w*)$",
    "^do_xmalloc$",
    "^g_(malloc|malloc0|realloc|try_malloc|try_malloc0|try_realloc)(_n)?$",
    "^g_(slice_alloc0?|strdup|strndup|memdup2?|new\\w*)$",
    "^z(try)?(malloc|calloc|realloc)\\w*$",
    "^(zstrdup|extend_to_usable|malloc_default_oom)$",
    "^(__alloc_dir|opendir_tail|__opendir|opendir|__fdopendir|fdopendir)$",
    "^sqlite3(Malloc|MallocZero|DbMalloc\\w*|DbRealloc\\w*|Realloc|MemMalloc|MemRealloc|DbStrN?Dup|_malloc64|"
    "_malloc|_realloc64|_realloc|MallocSize)$",
    "^(mallocWithAlarm|dbMallocRawFinish|dbReallocFinish|sqlite3MallocAlarm)$",
    "^_?Py(Mem|Object)_\\w*(Malloc|Calloc|Realloc|Alloc|New|NewVar)$",
    "^_PyObject_GC_(New|NewVar|Malloc|Calloc|Resize|Link)$",
    "^(PyType_GenericAlloc|_PyType_AllocNoTrack|gc_alloc|pymalloc_\\w+|allocate_from_new_pool|arena_map_\\w+|"
    "new_arena|_PyMem_\\w+|_PyObject_(Malloc|Calloc|Realloc)\\w*|_PyMem_Raw\\w+)$",
    "^(ggc_internal_(cleared_)?alloc\\w*|ggc_alloc\\w*|xcalloc_\\w+|_obstack_newchunk|_obstack_begin\\w*)$",
    "^(std::|__gnu_cxx::)\\S*(allocator|_Vector_base|_Rb_tree|_Hashtable_alloc)\\S*::"
    "(allocate|_M_allocate\\w*|_M_get_node|_M_create_node)\\b",
    "^([^ (]+[&*]* )?(std|__gnu_cxx)::", /* the standard library's containers and strings: their user is the site */
    "^(operator new|__libc_|__GI_)",
    "^(apr_palloc|apr_pcalloc|ngx_palloc|ngx_pnalloc|ngx_pcalloc|ngx_alloc|ngx_calloc|emalloc|ecalloc|erealloc|"
    "_emalloc\\w*|_ecalloc|_erealloc|pemalloc|av_malloc|av_mallocz|av_realloc|je_\\w*alloc|tc_\\w*alloc|"
    "mi_\\w*alloc\\w*|OPENSSL_\\w*alloc|CRYPTO_\\w*alloc|CRYPTO_(malloc|zalloc|realloc|strdup)|PORT_Alloc|"
    "PORT_ZAlloc|xmlMalloc\\w*|xmlRealloc|xmlStrndup|xmlStrdup|Perl_safesys\\w*alloc|Perl_safesysrealloc)$",
    NULL};

int mtt_is_wrapper(const char *name) {
  static regex_t re[32];
  static int n = -1;
  if (n < 0) {
    n = 0;
    for (int i = 0; wrapper_patterns[i] && n < 32; i++)
      if (regcomp(&re[n], wrapper_patterns[i], REG_EXTENDED | REG_NOSUB) == 0) n++;
  }
  for (int i = 0; i < n; i++)
    if (regexec(&re[i], name, 0, NULL, 0) == 0) return 1;
  return 0;
}

static int matches(const mtt_pattern_list *l, const char *name) {
  for (int i = 0; i < l->n; i++)
    if (regexec(&l->re[i], name, 0, NULL, 0) == 0) return 1;
  return 0;
}

static unsigned name_flags(const mtt_options *o, const char *name) {
  unsigned f = 0;
  if (allocator_entry(name)) f |= F_ALLOC;
  else if (!o->no_fold && (mtt_is_wrapper(name) || matches(&o->skip, name))) f |= F_WRAP;
  if (matches(&o->hide, name)) f |= F_HIDE;
  if (matches(&o->focus, name)) f |= F_FOCUS;
  if (matches(&o->ignore, name)) f |= F_IGNORE;
  return f;
}

static int view_init(view *v, const mtt_profile *p, const mtt_options *o) {
  memset(v, 0, sizeof *v);
  v->p = p, v->o = o;
  v->as = mtt_profile_type(p, "alloc_space"), v->ao = mtt_profile_type(p, "alloc_objects");
  v->is = mtt_profile_type(p, "inuse_space"), v->io = mtt_profile_type(p, "inuse_objects");
  v->flags = calloc(p->nfunctions ? p->nfunctions : 1, 1);
  if (v->flags == NULL) return -1;
  for (size_t i = 0; i < p->nfunctions; i++) {
    /* equal names are one pointer: flags computed once per distinct name */
    if (i > 0 && p->functions[i].name == p->functions[i - 1].name) v->flags[i] = v->flags[i - 1];
    else v->flags[i] = (unsigned char)name_flags(o, p->functions[i].name);
  }
  return 0;
}

static void view_free(view *v) { free(v->flags); }

/* One frame of a stack: a function of a location's lines (inlined calls are
 * frames of their own), or a location no name was found for. */
typedef struct frm {
  const char *name; /* NULL: an address, named by loc */
  const char *file;
  int64_t line;
  const mtt_location *loc;
  unsigned flags;
} frm;

static const char *frm_name(const view *v, const frm *f, char *buf, size_t cap) {
  if (f->name) return f->name;
  mtt_address_name(v->p, f->loc, buf, cap);
  return buf;
}

/* Up to cap frames of S, leaf first, those --hide names left out; the count. */
static size_t collect(const view *v, const mtt_sample *S, frm *out, size_t cap) {
  const mtt_profile *p = v->p;
  size_t n = 0;
  char buf[256];
  for (size_t k = 0; k < S->nlocs && n < cap; k++) {
    const mtt_location *L = &p->locations[S->locs[k]];
    size_t lines = 0;
    for (size_t j = 0; j < L->nlines && n < cap; j++) {
      uint64_t fi = L->lines[j].function;
      if (fi >= p->nfunctions || p->functions[fi].name[0] == 0) continue;
      lines++;
      if (v->flags[fi] & F_HIDE) continue;
      out[n++] = (frm){p->functions[fi].name, p->functions[fi].file, L->lines[j].line, L, v->flags[fi]};
    }
    if (lines == 0) {
      frm f = {NULL, "", 0, L, 0};
      unsigned fl = v->o->hide.n || v->o->focus.n || v->o->ignore.n ? name_flags(v->o, frm_name(v, &f, buf, sizeof buf)) : 0;
      f.flags = fl & (F_HIDE | F_FOCUS | F_IGNORE);
      if (!(f.flags & F_HIDE)) out[n++] = f;
    }
  }
  return n;
}

static const char *frm_object(const view *v, const frm *f) {
  uint64_t m = f->loc->mapping;
  return m < v->p->nmappings ? v->p->mappings[m].file : NULL;
}

/* The site among n frames, leaf first: past the allocator's entry points,
 * past every wrapper and what a wrapper calls (its own plumbing, named or
 * not); an address in a stripped object is charged to the nearest named
 * caller in the same object (its static functions have no names to give).
 * *folded says whether anything was charged onwards. */
static size_t find_site(const view *v, const frm *fr, size_t n, int *folded) {
  size_t entry = 0;
  while (entry < n && (fr[entry].flags & F_ALLOC)) entry++;
  if (entry == n) entry = 0;
  *folded = 0;
  if (v->o->no_fold) return entry;
  size_t k = entry, lastw = SIZE_MAX;
  for (; k < n && ((fr[k].flags & F_WRAP) || fr[k].name == NULL); k++)
    if (fr[k].flags & F_WRAP) lastw = k;
  size_t site = lastw == SIZE_MAX ? entry : lastw + 1 < n ? lastw + 1 : lastw;
  if (fr[site].name == NULL) {
    const char *obj = frm_object(v, &fr[site]);
    size_t j = site;
    while (j < n && fr[j].name == NULL && obj && frm_object(v, &fr[j]) && strcmp(frm_object(v, &fr[j]), obj) == 0) j++;
    if (j < n && fr[j].name != NULL && !(fr[j].flags & F_WRAP) && obj && frm_object(v, &fr[j]) &&
        strcmp(frm_object(v, &fr[j]), obj) == 0)
      site = j;
  }
  *folded = site > entry;
  return site;
}

/* Whether S passes --focus and --ignore (over all its frames). */
static int wanted(const view *v, const mtt_sample *S) {
  const mtt_options *o = v->o;
  if (o->focus.n == 0 && o->ignore.n == 0) return 1;
  int focus = o->focus.n == 0, ignore = 0;
  static frm fr[4096];
  size_t n = collect(v, S, fr, sizeof fr / sizeof fr[0]);
  for (size_t i = 0; i < n; i++) {
    focus |= (fr[i].flags & F_FOCUS) != 0;
    ignore |= (fr[i].flags & F_IGNORE) != 0;
  }
  return focus && !ignore;
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

static void fmt_value(char *buf, size_t cap, double v, const char *unit);

/* The key of sample S's site when grouping by `by`; its length. */
static size_t site_key(const view *v, const mtt_sample *S, int by, char *key, size_t cap, site_info *si) {
  static frm fr[512];
  char buf[256];
  key[0] = 0;
  if (by == MTT_BY_REGION) return (size_t)snprintf(key, cap, "%s", S->region ? S->region : "(no region)");
  if (by == MTT_BY_THREAD) {
    if (S->thread == 0) return (size_t)snprintf(key, cap, "(no thread label)");
    return (size_t)snprintf(key, cap, "thread %lld", (long long)S->thread);
  }
  if (by == MTT_BY_SIZE) {
    int as = v->as, ao = v->ao, is = v->is, io = v->io; /* looked up once per view: a profile may have 1,000 types */
    double b = 0, o = 0;
    if (as >= 0 && ao >= 0 && mtt_value(S, ao) > 0) b = (double)mtt_value(S, as), o = (double)mtt_value(S, ao);
    else if (is >= 0 && io >= 0 && mtt_value(S, io) > 0) b = (double)mtt_value(S, is), o = (double)mtt_value(S, io);
    if (o <= 0) return (size_t)snprintf(key, cap, "(no size)");
    double avg = b / o;
    unsigned long long lo = 1;
    while (lo * 2 <= (unsigned long long)avg && lo < (1ULL << 62)) lo *= 2;
    char l[32], h[32];
    fmt_value(l, sizeof l, (double)lo, "bytes");
    fmt_value(h, sizeof h, (double)(lo * 2), "bytes");
    return (size_t)snprintf(key, cap, "%s - %s", l, h);
  }
  size_t n = collect(v, S, fr, sizeof fr / sizeof fr[0]);
  if (n == 0) return (size_t)snprintf(key, cap, "(no stack)");
  int folded;
  size_t site = find_site(v, fr, n, &folded);
  if (si) {
    for (size_t k = 0; k <= site && k < n; k++) {
      const char *nm = frm_name(v, &fr[k], buf, sizeof buf);
      if (strstr(nm, "realloc") || strstr(nm, "growslice")) si->realloc_seen = 1;
    }
    si->folded = folded;
    si->wrapper = v->o->no_fold && (mtt_is_wrapper(frm_name(v, &fr[site], buf, sizeof buf)) || matches(&v->o->skip, buf));
  }
  if (by == MTT_BY_CALLER) {
    if (site + 1 >= n) return (size_t)snprintf(key, cap, "(no caller)");
    site++;
    while (site + 1 < n && (fr[site].flags & F_WRAP)) site++;
  }
  if (by == MTT_BY_STACK) {
    size_t len = 0;
    for (size_t k = site; k < n && k < site + 8 && len < cap - 200; k++) {
      int w = snprintf(key + len, cap - len, "%s%s", k == site ? "" : " < ", frm_name(v, &fr[k], buf, sizeof buf));
      len = w < 0 ? len : len + (size_t)w >= cap ? cap - 1 : len + (size_t)w;
    }
    return len;
  }
  const char *nm = frm_name(v, &fr[site], buf, sizeof buf);
  if (by == MTT_BY_LINE && fr[site].line > 0) {
    const char *fl = fr[site].file ? fr[site].file : "";
    const char *base_name = strrchr(fl, '/');
    return (size_t)snprintf(key, cap, "%s %s:%lld", nm, base_name ? base_name + 1 : fl, (long long)fr[site].line);
  }
  return (size_t)snprintf(key, cap, "%s", nm);
}


/* Sum p's samples into t by the site key of o->by. */
static int aggregate(view *vw, const mtt_options *o, int vi, int oi, table *t, int base) {
  const mtt_profile *p = vw->p;
  int as = mtt_profile_type(p, "alloc_space"), is = mtt_profile_type(p, "inuse_space"),
      ao = mtt_profile_type(p, "alloc_objects"), io = mtt_profile_type(p, "inuse_objects");
  char key[KEY_MAX];
  for (size_t s = 0; s < p->nsamples; s++) {
    const mtt_sample *S = &p->samples[s];
    if (!wanted(vw, S)) continue;
    site_info si = {0, 0, 0};
    site_key(vw, S, o->by, key, sizeof key, &si);
    row *r = table_get(t, key, vw, S, o->by);
    if (r == NULL) return -1;
    double v = (double)mtt_value(S, vi), ob = oi >= 0 ? (double)mtt_value(S, oi) : 0;
    if (si.folded) vw->folded_value += v;
    if (base) {
      r->base_value += v;
      r->base_objects += ob;
    } else {
      r->value += v;
      r->objects += ob;
      if (as >= 0) r->alloc_space += (double)mtt_value(S, as);
      if (is >= 0) r->inuse_space += (double)mtt_value(S, is);
      if (ao >= 0) r->alloc_objects += (double)mtt_value(S, ao);
      if (io >= 0) r->inuse_objects += (double)mtt_value(S, io);
      r->realloc_seen |= si.realloc_seen;
      r->wrapper |= si.wrapper;
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

/* The end of a JSON row: the rule that fired and its advice, if one did. */
static void json_rule_end(FILE *out, int fired, const char *name, const char *advice) {
  if (fired) {
    fprintf(out, ",\"rule\":");
    json_str(out, name);
    fprintf(out, ",\"advice\":");
    json_str(out, advice);
  }
  fputc('}', out);
}

/* The stack of S from its site outwards (wrappers folded), as a JSON array
 * of {"function", "file", "line"}; at most 512 frames. */
static void json_stack(const view *v, const mtt_sample *S, FILE *out) {
  static frm fr[512];
  char buf[256];
  size_t n = collect(v, S, fr, sizeof fr / sizeof fr[0]);
  int folded;
  size_t site = n ? find_site(v, fr, n, &folded) : 0;
  fputc('[', out);
  for (size_t k = site; k < n; k++) {
    fprintf(out, "%s{\"function\":", k == site ? "" : ",");
    json_str(out, frm_name(v, &fr[k], buf, sizeof buf));
    if (fr[k].file && fr[k].file[0]) {
      fprintf(out, ",\"file\":");
      json_str(out, fr[k].file);
    }
    if (fr[k].line > 0) fprintf(out, ",\"line\":%lld", (long long)fr[k].line);
    fputc('}', out);
  }
  fputc(']', out);
}

/* The first rule that fires for a top row, as "name" and an advice line. */
static int recommend(const row *r, double total, int inuse_view, char *name, size_t ncap, char *advice, size_t acap) {
  char a[32], b[32];
  if (r->by == MTT_BY_REGION || r->by == MTT_BY_THREAD || r->by == MTT_BY_SIZE) return 0; /* not about one site */
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
  if (objs >= 1000 && avg > 0 && avg <= 256 && share >= 0.05 && !r->wrapper) { /* never an arena for a wrapper */
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
  view vw;
  if (view_init(&vw, p, o) != 0 || aggregate(&vw, o, vi, oi, &t, 0) != 0) {
    table_free(&t);
    view_free(&vw);
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
    static const char *const by_names[] = {"function", "line", "stack", "region", "caller", "thread", "size"};
    fprintf(out, "%s by %s, total %s, %zu %s%s%s\n", p->type_names[vi], by_names[o->by], v, nonzero,
            o->by == MTT_BY_REGION ? "regions" : o->by == MTT_BY_THREAD ? "threads" : o->by == MTT_BY_SIZE ? "sizes" : "sites",
            p->comment ? ", profile: " : "", p->comment ? p->comment : "");
    fprintf(out, "%4s  %-40s %12s %7s %7s %10s %10s\n", "rank", "site", "value", "%", "cum%", "objects", "avg size");
  }
  double cum = 0;
  for (size_t i = 0; i < top; i++) {
    row *r = &t.rows[i];
    const char *key = row_key(r, keybuf);
    cum += r->value;
    double pct = total > 0 ? 100 * r->value / total : 0, cpct = total > 0 ? 100 * cum / total : 0;
    /* the average block: from the view's own figures when they are bytes, else from the
     * space and objects of the same kind (alloc_objects: alloc_space / alloc_objects) */
    double a = r->objects > 0 && strcmp(unit, "bytes") == 0 ? r->value / r->objects
               : inuse_view                                 ? (r->inuse_objects > 0 ? r->inuse_space / r->inuse_objects : 0)
                                                            : (r->alloc_objects > 0 ? r->alloc_space / r->alloc_objects : 0);
    int fired = i < 5 && recommend(r, total, inuse_view, name, sizeof name, advice, sizeof advice);
    if (o->json) {
      fprintf(out, "%s{\"rank\":%zu,\"site\":", i ? "," : "", i + 1);
      json_str(out, key);
      fprintf(out, ",\"value\":%.0f,\"percent\":%.2f,\"cum_percent\":%.2f,\"objects\":%.0f,\"avg_size\":%.1f", r->value,
              pct, cpct, r->objects, a);
      if (o->by == MTT_BY_STACK) {
        fprintf(out, ",\"stack\":");
        json_stack(&vw, r->ks, out);
      }
      json_rule_end(out, fired, name, advice);
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
  if (!o->json && vw.folded_value > 0 && total > 0) {
    fmt_value(v, sizeof v, vw.folded_value, unit);
    fprintf(out, "(%s, %.1f%%, was allocated through wrappers (xmalloc, zmalloc, PyMem_Malloc, operator new, ...) or "
                 "unnamed functions of stripped objects: charged to their callers; --no-fold shows them)\n",
            v, 100 * vw.folded_value / total);
  }
  view_free(&vw);
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
  view vb, vc;
  int ok = view_init(&vb, base, o) == 0;
  ok = (view_init(&vc, cur, o) == 0) & ok;
  if (!ok || aggregate(&vc, o, cv, co, &t, 0) != 0 || aggregate(&vb, o, bv, bo, &t, 1) != 0) {
    table_free(&t);
    view_free(&vb), view_free(&vc);
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
  view_free(&vb), view_free(&vc);
  return 0;
}

/* ---- lifetimes ---- */

int mtt_is_lifetimes(const mtt_profile *p) { return mtt_profile_type(p, "lifetime") >= 0; }

/* Frames that only free (or reallocate) a block: the freeing site is past them. */
static int free_frame(const char *name) {
  static regex_t re;
  static int ready = -1;
  if (ready < 0)
    ready = regcomp(&re,
                    "^(free|cfree|__libc_free|__GI___libc_free|realloc|__libc_realloc|reallocarray|operator delete.*|"
                    "_Zd[la]\\w*|z?free\\w*|zfree_usable|xfree|g_free\\w*|g_slice_free\\w*|sqlite3(_free|DbFree\\w*|Free|"
                    "Realloc|_realloc64?)|PyMem_(Raw)?Free|_?PyObject_(GC_)?(Free|Del)|_PyMem_\\w+|pymalloc_free|"
                    "mt_\\w+)$",
                    REG_EXTENDED | REG_NOSUB) == 0;
  return (ready && regexec(&re, name, 0, NULL, 0) == 0) || mtt_is_wrapper(name);
}

/* The freeing site named by a "freed_by" label into buf: its first frame
 * that neither frees nor wraps. */
static const char *free_site(const char *freed_by, char *buf, size_t cap) {
  if (freed_by == NULL) return "(not recorded)";
  if (freed_by[0] == '(') return freed_by;
  const char *p = freed_by, *first = NULL;
  size_t first_len = 0;
  while (*p) {
    const char *e = strstr(p, " < ");
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (first == NULL) first = p, first_len = len;
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    if (!free_frame(buf) && strncmp(buf, "0x", 2) != 0) return buf;
    if (!e) break;
    p = e + 3;
  }
  size_t n = first_len < cap - 1 ? first_len : cap - 1; /* nothing better: the innermost */
  memcpy(buf, first ? first : "", n);
  buf[n] = 0;
  return buf;
}

typedef struct life_pt { /* one sample's share of a row */
  size_t row;
  int64_t lifetime; /* bucket floor; -1: in use */
  double objects;
  double mean_ns;   /* the sample's own mean lifetime (its lifetime value / objects) */
} life_pt;

typedef struct free_pt {
  size_t row;
  const char *site; /* the folded freeing site, interned by name_of_freed */
  double objects;
} free_pt;

/* Freeing sites by their "freed_by" string: the profile's equal strings are
 * one pointer, so each distinct string is folded once and its site kept
 * once: memory stays within the profile's own strings, whatever the
 * number of samples that share them. */
typedef struct freed_names {
  const char **key, **val;
  size_t cap, n;
} freed_names;

static const char *name_of_freed(freed_names *m, const char *freed_by) {
  static const char none[] = "(not recorded)";
  if (freed_by == NULL) return none;
  if ((m->n + 1) * 2 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    const char **k = calloc(cap, sizeof *k), **v = calloc(cap, sizeof *v);
    if (k == NULL || v == NULL) {
      free(k), free(v);
      return NULL;
    }
    for (size_t i = 0; i < m->cap; i++)
      if (m->key[i]) {
        size_t j = ((uintptr_t)m->key[i] >> 3) * 0x9e3779b97f4a7c15ULL >> 20 & (cap - 1);
        while (k[j]) j = (j + 1) & (cap - 1);
        k[j] = m->key[i], v[j] = m->val[i];
      }
    free(m->key), free(m->val);
    m->key = k, m->val = v, m->cap = cap;
  }
  size_t j = ((uintptr_t)freed_by >> 3) * 0x9e3779b97f4a7c15ULL >> 20 & (m->cap - 1);
  for (; m->key[j]; j = (j + 1) & (m->cap - 1))
    if (m->key[j] == freed_by) return m->val[j];
  char buf[512];
  const char *name = strdup(free_site(freed_by, buf, sizeof buf));
  if (name == NULL) return NULL;
  m->key[j] = freed_by, m->val[j] = name, m->n++;
  return name;
}

static void freed_names_free(freed_names *m) {
  for (size_t i = 0; i < m->cap; i++)
    if (m->key[i]) free((char *)m->val[i]);
  free(m->key), free(m->val);
}

static int by_row_lifetime(const void *a, const void *b) {
  const life_pt *x = a, *y = b;
  if (x->row != y->row) return x->row < y->row ? -1 : 1;
  return x->lifetime < y->lifetime ? -1 : x->lifetime > y->lifetime;
}
static int by_row_site(const void *a, const void *b) {
  const free_pt *x = a, *y = b;
  if (x->row != y->row) return x->row < y->row ? -1 : 1;
  return strcmp(x->site, y->site);
}

/* The ceiling of the bucket whose floor is f (sixteen per power of two above 1 us). */
static double bucket_ceil(int64_t f) {
  if (f < 1024) return 1024;
  int hb = 63 - __builtin_clzll((unsigned long long)f);
  return (double)f + (double)(1LL << (hb - 4));
}

static const row *life_rows; /* the rows by_objects_desc orders (the command is one thread) */
static int by_objects_desc(const void *a, const void *b) {
  const row *x = &life_rows[*(const size_t *)a], *y = &life_rows[*(const size_t *)b];
  if (x->objects != y->objects) return x->objects < y->objects ? 1 : -1;
  return key_cmp(x, y);
}

typedef struct life_row {
  double objects, freed, in_use, young_1ms, young_100ms, other;
  double p10, p50, p90; /* ns over the freed objects */
  const char *free1, *free2;
  double free1_share, free2_share;
} life_row;

static void fmt_ns(char *buf, size_t cap, double ns) {
  if (ns < 1e3) snprintf(buf, cap, "%.0f ns", ns);
  else if (ns < 1e6) snprintf(buf, cap, "%.1f us", ns / 1e3);
  else if (ns < 1e9) snprintf(buf, cap, "%.1f ms", ns / 1e6);
  else snprintf(buf, cap, "%.1f s", ns / 1e9);
}

/* The value at share q of the freed objects of one row's points (sorted by lifetime). */
static double life_quantile(const life_pt *pts, size_t n, double freed, double q) {
  double want = q * freed, cum = 0;
  for (size_t i = 0; i < n; i++) {
    if (pts[i].lifetime < 0) continue; /* in use: sorted first, not freed */
    if (cum + pts[i].objects >= want && pts[i].objects > 0) {
      /* the blocks of one sample share a bucket (6 % wide) and a freeing
       * stack: their mean, exact to the clock at rate 1, is kept within it */
      double f = (double)pts[i].lifetime, c = bucket_ceil(pts[i].lifetime), m = pts[i].mean_ns;
      return m >= f && m <= c ? m : f + (c - f) * ((want - cum) / pts[i].objects);
    }
    cum += pts[i].objects;
  }
  return 0;
}

static int life_rule(const char *site, const life_row *L, char *name, size_t ncap, char *advice, size_t acap) {
  char a[32], b[32], c[32], n[32];
  fmt_value(n, sizeof n, L->objects, "count");
  if (L->objects >= 50 && L->in_use >= 0.9 * L->objects) {
    snprintf(name, ncap, "long-lived");
    snprintf(advice, acap,
             "%s objects, %.0f%% still in use at the end: they live as long as the program (a cache, or a leak if "
             "this grows from run to run); a region for them would never be freed",
             n, 100 * L->in_use / L->objects);
    return 1;
  }
  if (L->objects < 1000 || L->freed < 0.9 * L->objects) return 0;
  fmt_ns(a, sizeof a, L->p90);
  if (L->p90 < 50e3) {
    snprintf(name, ncap, "die-young");
    snprintf(advice, acap,
             "90%% of these %s objects are freed within %s of their allocation, mostly by %.200s: reuse one buffer "
             "across iterations, or keep them on the stack",
             n, a, L->free1 ? L->free1 : site);
    return 1;
  }
  double spread = L->p90 - L->p10;
  /* blocks handed to another thread to free do not belong to one request's region */
  if (L->p90 <= 1e9 && spread <= (L->p50 > 2e6 ? L->p50 : 2e6) && L->other < 0.5 * L->freed) {
    fmt_ns(b, sizeof b, L->p10);
    fmt_ns(c, sizeof c, spread);
    snprintf(name, ncap, "die-together");
    snprintf(advice, acap,
             "80%% of these %s objects die between %s and %s after allocation (within %s of each other), freed by "
             "%.200s: a per-request region (mt_region_create ... mt_region_destroy) would free them in one call",
             n, b, a, c, L->free1 ? L->free1 : "one site");
    return 1;
  }
  return 0;
}

int mtt_report_lifetimes(const mtt_profile *p, const mtt_options *o, FILE *out, char *err, size_t errlen) {
  int oi = mtt_profile_type(p, "objects"), li = mtt_profile_type(p, "lifetime");
  if (oi < 0 || li < 0) {
    snprintf(err, errlen, "not a lifetimes profile (memtally writes PREFIX.PROGRAM.PID.lifetimes.pb.gz at exit)");
    return 2;
  }
  mtt_options so = *o;
  if (so.by != MTT_BY_FUNCTION && so.by != MTT_BY_LINE && so.by != MTT_BY_STACK && so.by != MTT_BY_CALLER)
    so.by = MTT_BY_FUNCTION;
  view vw;
  table t = {0};
  life_pt *pts = calloc(p->nsamples ? p->nsamples : 1, sizeof *pts);
  free_pt *fps = calloc(p->nsamples ? p->nsamples : 1, sizeof *fps);
  size_t npts = 0, nfps = 0;
  int rc = 0;
  if (view_init(&vw, p, &so) != 0 || pts == NULL || fps == NULL) rc = -1;
  char key[KEY_MAX];
  freed_names names = {NULL, NULL, 0, 0};
  for (size_t s = 0; s < p->nsamples && rc == 0; s++) {
    const mtt_sample *S = &p->samples[s];
    if (!wanted(&vw, S)) continue;
    site_key(&vw, S, so.by, key, sizeof key, NULL);
    row *r = table_get(&t, key, &vw, S, so.by);
    if (r == NULL) {
      rc = -1;
      break;
    }
    double ob = (double)mtt_value(S, oi);
    int live = S->freed_by && strcmp(S->freed_by, "(in use)") == 0;
    r->value += ob;
    r->objects += ob;
    r->alloc_space += (double)mtt_value(S, mtt_profile_type(p, "space"));
    if (live) r->inuse_objects += ob;
    else r->base_value += ob; /* freed objects */
    if (!live && S->free_other) r->base_objects += ob; /* freed by another thread */
    double tot = (double)mtt_value(S, li);
    pts[npts++] = (life_pt){(size_t)(r - t.rows), live ? -1 : S->lifetime, ob, ob > 0 ? tot / ob : 0};
    if (!live) {
      const char *fs = name_of_freed(&names, S->freed_by);
      if (fs == NULL) rc = -1;
      else fps[nfps++] = (free_pt){(size_t)(r - t.rows), fs, ob};
    }
  }
  if (rc != 0) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  /* rows are addressed by index in pts and fps: sort an order, not the rows */
  qsort(pts, npts, sizeof *pts, by_row_lifetime);
  qsort(fps, nfps, sizeof *fps, by_row_site);
  life_row *L = calloc(t.n ? t.n : 1, sizeof *L);
  size_t *order = calloc(t.n ? t.n : 1, sizeof *order);
  if (L == NULL || order == NULL) {
    free(L), free(order);
    snprintf(err, errlen, "out of memory");
    rc = -1;
    goto done;
  }
  for (size_t i = 0, j = 0; i < t.n; i++) {
    size_t k = j;
    while (k < npts && pts[k].row == i) k++;
    L[i].objects = t.rows[i].objects, L[i].freed = t.rows[i].base_value, L[i].in_use = t.rows[i].inuse_objects;
    L[i].other = t.rows[i].base_objects;
    for (size_t m = j; m < k; m++) {
      if (pts[m].lifetime < 0) continue;
      if (bucket_ceil(pts[m].lifetime) <= 1e6) L[i].young_1ms += pts[m].objects;
      if (bucket_ceil(pts[m].lifetime) <= 1e8) L[i].young_100ms += pts[m].objects;
    }
    L[i].p10 = life_quantile(pts + j, k - j, L[i].freed, 0.1);
    L[i].p50 = life_quantile(pts + j, k - j, L[i].freed, 0.5);
    L[i].p90 = life_quantile(pts + j, k - j, L[i].freed, 0.9);
    j = k;
    order[i] = i;
  }
  for (size_t i = 0; i < nfps;) { /* the two freeing sites with most objects, per row */
    size_t j = i;
    while (j < nfps && fps[j].row == fps[i].row) {
      size_t k = j;
      double sum = 0;
      while (k < nfps && fps[k].row == fps[j].row && strcmp(fps[k].site, fps[j].site) == 0) sum += fps[k++].objects;
      life_row *R = &L[fps[j].row];
      double share = R->freed > 0 ? sum / R->freed : 0;
      if (share > R->free1_share) {
        R->free2 = R->free1, R->free2_share = R->free1_share;
        R->free1 = fps[j].site, R->free1_share = share;
      } else if (share > R->free2_share) {
        R->free2 = fps[j].site, R->free2_share = share;
      }
      j = k;
    }
    i = j;
  }
  /* rows by objects, descending */
  life_rows = t.rows;
  qsort(order, t.n, sizeof *order, by_objects_desc);
  double total = 0, tfreed = 0, tlive = 0;
  for (size_t i = 0; i < t.n; i++) total += L[i].objects, tfreed += L[i].freed, tlive += L[i].in_use;
  size_t top = o->top > 0 && (size_t)o->top < t.n ? (size_t)o->top : t.n;
  static char keybuf[KEY_MAX];
  char a[32], b[32], c[32], name[64], advice[600];
  if (o->json) {
    fprintf(out, "{\"objects\":%.0f,\"freed\":%.0f,\"in_use\":%.0f,\"rows\":[", total, tfreed, tlive);
  } else {
    fmt_value(a, sizeof a, total, "count");
    fmt_value(b, sizeof b, tfreed, "count");
    fmt_value(c, sizeof c, tlive, "count");
    fprintf(out, "lifetimes by %s, %s objects (estimated from samples): %s freed, %s in use at the end\n",
            so.by == MTT_BY_LINE ? "line" : so.by == MTT_BY_STACK ? "stack" : so.by == MTT_BY_CALLER ? "caller" : "function",
            a, b, c);
    fprintf(out, "%4s  %-32s %9s %9s %9s %6s %6s %6s %6s  %s\n", "rank", "site", "objects", "median", "p90", "<1ms",
            "<100ms", "in use", "other", "freed mostly by");
  }
  for (size_t i = 0; i < top; i++) {
    const row *r = &t.rows[order[i]];
    const life_row *R = &L[order[i]];
    const char *k = row_key(r, keybuf);
    int fired = i < 10 && life_rule(k, R, name, sizeof name, advice, sizeof advice);
    double fr = R->freed > 0 ? R->freed : 1, ob = R->objects > 0 ? R->objects : 1;
    if (o->json) {
      fprintf(out, "%s{\"rank\":%zu,\"site\":", i ? "," : "", i + 1);
      json_str(out, k);
      fprintf(out, ",\"objects\":%.0f,\"freed\":%.0f,\"in_use\":%.0f,\"p10_ns\":%.0f,\"median_ns\":%.0f,\"p90_ns\":%.0f,"
                   "\"freed_within_1ms\":%.4f,\"freed_within_100ms\":%.4f,\"other_thread\":%.4f",
              R->objects, R->freed, R->in_use, R->p10, R->p50, R->p90, R->young_1ms / fr, R->young_100ms / fr,
              R->other / fr);
      fprintf(out, ",\"freed_by\":[");
      if (R->free1) {
        fprintf(out, "{\"site\":");
        json_str(out, R->free1);
        fprintf(out, ",\"share\":%.4f}", R->free1_share);
      }
      if (R->free2) {
        fprintf(out, ",{\"site\":");
        json_str(out, R->free2);
        fprintf(out, ",\"share\":%.4f}", R->free2_share);
      }
      fputc(']', out);
      json_rule_end(out, fired, name, advice);
      continue;
    }
    char site[33], med[16], p90[16], by[200];
    copy_head(site, sizeof site, k);
    if (strlen(k) > 32) memcpy(site + 29, "...", 4);
    fmt_value(a, sizeof a, R->objects, "count");
    if (R->freed < 0.5 * R->objects) snprintf(med, sizeof med, "in use");
    else fmt_ns(med, sizeof med, R->p50);
    if (R->freed < 0.1 * R->objects) snprintf(p90, sizeof p90, "in use");
    else fmt_ns(p90, sizeof p90, R->p90);
    if (R->free1) snprintf(by, sizeof by, "%.60s (%.0f%%)%s%.60s%s", R->free1, 100 * R->free1_share, R->free2 ? ", " : "",
                           R->free2 ? R->free2 : "", R->free2 ? "" : "");
    else snprintf(by, sizeof by, "-");
    fprintf(out, "%4zu  %-32s %9s %9s %9s %5.0f%% %5.0f%% %5.0f%% %5.0f%%  %s\n", i + 1, site, a, med, p90,
            100 * R->young_1ms / fr, 100 * R->young_100ms / fr, 100 * R->in_use / ob, 100 * R->other / fr, by);
    if (strlen(k) > 32) fprintf(out, "      %s\n", k);
    if (fired) fprintf(out, "      -> %s: %s\n", name, advice);
  }
  if (o->json) fprintf(out, "]}\n");
  free(L), free(order);
done:
  freed_names_free(&names);
  free(pts), free(fps);
  table_free(&t);
  view_free(&vw);
  return rc == 0 ? 0 : 2;
}
