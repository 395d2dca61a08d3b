/* region.c -- named, hierarchical regions (arenas): bump allocation in chunks, O(1) release
 *
 * A region bumps a pointer through its newest chunk; chunks come from the
 * memtally heap (or a backing allocator), growing geometrically from 8 KiB
 * to 1 MiB, and a request of over a quarter of that gets a chunk of its own.
 * Reset runs the deferred cleanups (newest first), frees every chunk but the
 * largest and resets the children; delete does the same for the whole subtree
 * and returns the headers. Headers live in memory the library maps itself.
 * Regions are single-threaded; their counters are relaxed atomics only so
 * that mt_stats_prometheus may read them from another thread.
 *
 * Debug mode (MEMTALLY_REGION_DEBUG=1): chunks are mapped directly, every
 * block has a header and a 16-byte redzone checked at reset and delete, and
 * released chunks are poisoned and made inaccessible (never reused), with a
 * SIGSEGV handler that names the region of a faulting address. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../alloc/alloc.h"
#include "../base/diag.h"
#include "../options/options.h"
#include "../os/os.h"
#include "region.h"
#include "memtally.h"

#define MT_CHUNK_MIN (8 * 1024)
#define MT_CHUNK_MAX (1024 * 1024)
#define MT_REDZONE 16
#define MT_RED_BYTE 0xfd
#define MT_POISON_BYTE 0xdd

typedef struct mt_chunk {
  struct mt_chunk *next;
  size_t size;  /* bytes asked of the backing allocator (header included) */
  size_t held;  /* bytes the allocator counts for it */
} mt_chunk;

typedef struct mt_defer {
  struct mt_defer *next;
  void (*fn)(void *);
  void *arg;
} mt_defer;

typedef struct mt_dblock { /* debug mode: before every block */
  struct mt_dblock *next;
  size_t size;
  uint64_t magic;
  uint64_t pad;
} mt_dblock;
#define MT_DBLOCK_MAGIC 0x6d74726567696f6eULL

#define MT_REGION_LIVE 0x6c6c61746d6c6976ULL /* mt_region.magic while the region lives */
#define MT_REGION_DEAD 0x646165646d6c6976ULL /* after mt_region_delete */

struct mt_region {
  uint8_t *cur, *end;          /* the bump range in the newest chunk */
  mt_chunk *chunks;            /* newest first */
  uint8_t *last;               /* the last block handed out (for realloc in place) */
  size_t next_chunk;           /* size of the next chunk */
  mt_defer *defers;
  mt_dblock *dblocks;          /* debug mode: every block, newest first */
  mt_region *parent, *child, *next, *prev; /* the tree */
  mt_region *all_next, *all_prev;          /* every live region */
  uint64_t all_gen;            /* registry generation it was linked in (see mt__region_after_fork) */
  mt_region_backing backing;
  int has_backing, debug;
  uint64_t requested_plain;    /* bytes asked for since the last reset (owner thread) */
  _Atomic uint64_t held, nchunks, high_water;
  uint64_t magic;              /* MT_REGION_LIVE, MT_REGION_DEAD once deleted */
  char name[48];
};

/* r is a live region, or misuse is reported (one line) and 0 returned. A
 * deleted region's bump range is empty, so every allocation from it comes
 * here: live regions pay nothing on the fast path. */
static int mt_region_live(const mt_region *r, const char *what) {
  if (r->magic == MT_REGION_LIVE) return 1;
  mt__report(r->magic == MT_REGION_DEAD ? what : "use of a pointer that is not a region", r, -1);
  return 0;
}

static pthread_mutex_t mt_regions_lock = PTHREAD_MUTEX_INITIALIZER;
static mt_region *mt_regions_all;
static mt_region *mt_region_pool; /* free headers, linked through parent */
static uint64_t mt_regions_gen;   /* bumped when a forked child drops a half-linked registry */

/* The child after fork. If a thread held the registry's lock at fork, the
 * list of regions and the pool of headers may be half linked: the child
 * starts both afresh. Regions linked before stay usable but are no longer
 * listed, and deleting one then leaves the new list alone (its generation
 * differs). */
void mt__region_after_fork(void) {
  if (mt__os_mutex_reclaim(&mt_regions_lock)) {
    mt_regions_all = NULL;
    mt_region_pool = NULL;
    mt_regions_gen++;
  }
}

/* ---- headers: library memory, never the public heap ---- */

static mt_region *mt_header_new(void) {
  pthread_mutex_lock(&mt_regions_lock);
  mt_region *r = mt_region_pool;
  if (r == NULL) {
    size_t n = 64 * 1024 / sizeof(mt_region);
    mt_region *block = mt__os_reserve(n * sizeof(mt_region));
    if (block != NULL) {
      for (size_t i = 1; i < n; i++) block[i].parent = i + 1 < n ? &block[i + 1] : NULL;
      mt_region_pool = n > 1 ? &block[1] : NULL;
      r = &block[0];
    }
  } else {
    mt_region_pool = r->parent;
  }
  pthread_mutex_unlock(&mt_regions_lock);
  if (r != NULL) memset(r, 0, sizeof *r);
  return r;
}

/* ---- debug mode: protected chunks and the fault handler ---- */

typedef struct mt_released {
  uintptr_t lo, hi;
  char name[48];
} mt_released;
#define MT_RELEASED_MAX 65536
static mt_released *mt_released_tab;
static _Atomic size_t mt_released_n;
static _Atomic int mt_handler_on;

static void mt_on_fault(uintptr_t a) {
  size_t n = atomic_load(&mt_released_n);
  for (size_t i = 0; i < n && mt_released_tab; i++) {
    if (a >= mt_released_tab[i].lo && a < mt_released_tab[i].hi) {
      char buf[256];
      const size_t cap = sizeof buf - 1;
      size_t k = mt__diag_cat(buf, 0, cap, "memtally: use of released memory of region '");
      k = mt__diag_cat(buf, k, cap, mt_released_tab[i].name);
      k = mt__diag_cat(buf, k, cap, "' at ");
      k = mt__diag_hex(buf, k, cap, a);
      buf[k++] = '\n';
      mt__os_write_err(buf, k);
      break;
    }
  }
}

static void mt_debug_install(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&mt_handler_on, &expected, 1)) return;
  mt_released_tab = mt__os_reserve(sizeof(mt_released) * MT_RELEASED_MAX);
  mt__os_on_fault(mt_on_fault);
}

static void mt_report_overflow(const mt_region *r, const mt_dblock *b) {
  char buf[256];
  const size_t cap = sizeof buf - 1;
  size_t k = mt__diag_cat(buf, 0, cap, "memtally: region '");
  k = mt__diag_cat(buf, k, cap, r->name);
  k = mt__diag_cat(buf, k, cap, "': block at ");
  k = mt__diag_hex(buf, k, cap, (uintptr_t)(b + 1));
  k = mt__diag_cat(buf, k, cap, " was written past its end (");
  k = mt__diag_dec(buf, k, cap, b->size);
  k = mt__diag_cat(buf, k, cap, " bytes); aborting");
  buf[k++] = '\n';
  mt__os_write_err(buf, k);
  mt__os_abort();
}

static void mt_check_redzones(mt_region *r) {
  for (mt_dblock *b = r->dblocks; b != NULL; b = b->next) {
    const uint8_t *z = (const uint8_t *)(b + 1) + b->size;
    for (int i = 0; i < MT_REDZONE; i++)
      if (b->magic != MT_DBLOCK_MAGIC || z[i] != MT_RED_BYTE) mt_report_overflow(r, b);
  }
  r->dblocks = NULL;
}

/* ---- chunks ---- */

static mt_chunk *mt_chunk_get(mt_region *r, size_t size) {
  mt_chunk *c;
  size_t held;
  if (r->debug) {
    size = mt_align_up(size, mt__os_page_size());
    c = mt__os_map_plain(size);
    if (c == NULL) return NULL;
    held = size;
  } else if (r->has_backing) {
    c = r->backing.alloc(size, r->backing.ctx);
    held = size;
  } else {
    c = mt__malloc_labelled(size, r->name); /* a sample taken here is labelled with the region */
    held = c ? mt_usable_size(c) : 0;
  }
  if (c == NULL) return NULL;
  c->size = size;
  c->held = held;
  c->next = r->chunks;
  r->chunks = c;
  r->cur = (uint8_t *)mt_align_up((uintptr_t)(c + 1), 16);
  r->end = (uint8_t *)c + (r->debug || r->has_backing ? size : held);
  uint64_t h = mt_load(&r->held) + held;
  mt_store(&r->held, h);
  mt_store(&r->nchunks, mt_load(&r->nchunks) + 1);
  if (h > mt_load(&r->high_water)) mt_store(&r->high_water, h);
  return c;
}

static void mt_chunk_put(mt_region *r, mt_chunk *c) {
  size_t size = c->size; /* the header is gone once the chunk is poisoned */
  mt_store(&r->held, mt_load(&r->held) - c->held);
  mt_store(&r->nchunks, mt_load(&r->nchunks) - 1);
  if (r->debug) {
    size_t i = atomic_load(&mt_released_n);
    if (mt_released_tab != NULL && i < MT_RELEASED_MAX) { /* recorded first: a fault may follow at once */
      mt_released_tab[i].lo = (uintptr_t)c;
      mt_released_tab[i].hi = (uintptr_t)c + size;
      memcpy(mt_released_tab[i].name, r->name, sizeof r->name);
      atomic_store(&mt_released_n, i + 1);
    }
    memset(c, MT_POISON_BYTE, size);
    mt__os_protect_none(c, size); /* never reused: a later access faults */
  } else if (r->has_backing) {
    r->backing.free(c, size, r->backing.ctx);
  } else {
    mt_free(c);
  }
}

static MT_NOINLINE void *mt_region_alloc_slow(mt_region *r, size_t size, size_t align) {
  size_t need = sizeof(mt_chunk) + 16 + size + align + (r->debug ? sizeof(mt_dblock) + MT_REDZONE : 0);
  size_t csize = r->next_chunk;
  if (need > MT_CHUNK_MAX / 4 || need > csize) {
    csize = need > csize ? need : csize; /* a large request: a chunk of its own */
  } else if (r->next_chunk < MT_CHUNK_MAX) {
    r->next_chunk *= 2;
  }
  if (mt_chunk_get(r, csize) == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  return mt_region_alloc_aligned(r, size, align);
}

/* ---- allocation ---- */

static void *mt_region_alloc_checked(mt_region *r, size_t size, size_t align);

/* The common case: a pointer bump and one bounds check, about ten
 * instructions; everything else (debug mode, a new chunk, bad arguments)
 * is in mt_region_alloc_checked. Entry: r valid, align a power of two. */
MT_INLINE void *mt_region_bump(mt_region *r, size_t size, size_t align) {
  uintptr_t p = mt_align_up((uintptr_t)r->cur, align);
  if (mt_likely(p + size <= (uintptr_t)r->end && size - 1 < ((size_t)1 << 40) && !r->debug)) {
    r->cur = (uint8_t *)(p + size);
    r->last = (uint8_t *)p;
    r->requested_plain += size;
    return (void *)p;
  }
  return mt_region_alloc_checked(r, size, align);
}

void *mt_region_alloc_aligned(mt_region *r, size_t size, size_t align) {
  if (mt_unlikely(r == NULL || !mt_is_pow2(align))) {
    errno = EINVAL;
    return NULL;
  }
  return mt_region_bump(r, size, align);
}

static MT_NOINLINE void *mt_region_alloc_checked(mt_region *r, size_t size, size_t align) {
  if (mt_unlikely(!mt_region_live(r, "allocation from a deleted region (or a child of one)"))) {
    errno = EINVAL;
    return NULL;
  }
  if (mt_unlikely(size > ((size_t)1 << 40))) {
    errno = ENOMEM;
    return NULL;
  }
  if (size == 0) size = 1;
  if (mt_unlikely(r->debug)) {
    uintptr_t hdr = mt_align_up((uintptr_t)r->cur + sizeof(mt_dblock), align) - sizeof(mt_dblock);
    if (hdr + sizeof(mt_dblock) + size + MT_REDZONE > (uintptr_t)r->end || r->cur == NULL)
      return mt_region_alloc_slow(r, size, align);
    mt_dblock *b = (mt_dblock *)hdr;
    b->size = size;
    b->magic = MT_DBLOCK_MAGIC;
    b->next = r->dblocks;
    r->dblocks = b;
    uint8_t *p = (uint8_t *)(b + 1);
    memset(p + size, MT_RED_BYTE, MT_REDZONE);
    r->cur = p + size + MT_REDZONE;
    r->last = NULL; /* no in-place growth over a redzone */
    r->requested_plain += size;
    return p;
  }
  uintptr_t p = mt_align_up((uintptr_t)r->cur, align);
  if (r->cur != NULL && p + size <= (uintptr_t)r->end) {
    r->cur = (uint8_t *)(p + size);
    r->last = (uint8_t *)p;
    r->requested_plain += size;
    return (void *)p;
  }
  return mt_region_alloc_slow(r, size, align);
}

void *mt_region_alloc(mt_region *r, size_t size) {
  if (mt_unlikely(r == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  return mt_region_bump(r, size, 16);
}

void *mt_region_alloc_array(mt_region *r, size_t elem, size_t align, size_t count) {
  size_t total;
  if (mt_unlikely(__builtin_mul_overflow(elem, count, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return mt_region_alloc_aligned(r, total, align); /* the type's own alignment */
}

void *mt_region_calloc(mt_region *r, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = mt_region_alloc(r, total);
  if (p != NULL) memset(p, 0, total);
  return p;
}

void *mt_region_realloc(mt_region *r, void *p, size_t old_size, size_t new_size) {
  if (p == NULL) return mt_region_alloc(r, new_size);
  if (r == NULL) {
    errno = EINVAL;
    return NULL;
  }
  if (new_size == 0) new_size = 1;
  /* old_size is the block's size: for the last block, it ends where the bump pointer is */
  mt_assert_api((uint8_t *)p != r->last || (uint8_t *)p + old_size <= r->cur);
  if ((uint8_t *)p == r->last && (uint8_t *)p + new_size <= r->end) { /* the last block: in place */
    r->cur = (uint8_t *)p + new_size;
    r->requested_plain += new_size - old_size;
    return p;
  }
  if (new_size <= old_size) return p;
  void *q = mt_region_alloc(r, new_size);
  if (q != NULL) memcpy(q, p, old_size);
  return q;
}

char *mt_region_strdup(mt_region *r, const char *s) {
  if (s == NULL) {
    errno = EINVAL;
    return NULL;
  }
  size_t n = strlen(s) + 1;
  char *p = mt_region_alloc_aligned(r, n, 1);
  if (p != NULL) memcpy(p, s, n);
  return p;
}

int mt_region_defer(mt_region *r, void (*fn)(void *), void *arg) {
  if (r == NULL || fn == NULL) {
    errno = EINVAL;
    return -1;
  }
  mt_defer *d = mt_region_alloc(r, sizeof *d);
  if (d == NULL) return -1;
  r->requested_plain -= sizeof *d; /* bookkeeping, not the user's */
  d->fn = fn;
  d->arg = arg;
  d->next = r->defers;
  r->defers = d;
  return 0;
}

/* ---- life ---- */

mt_region *mt_region_new_with(mt_region *parent, const char *name, const mt_region_backing *backing) {
  mt__init();
  if (backing != NULL && (backing->alloc == NULL || backing->free == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  mt_region *r = mt_header_new();
  if (r == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  snprintf(r->name, sizeof r->name, "%s", name ? name : "");
  r->magic = MT_REGION_LIVE;
  r->next_chunk = MT_CHUNK_MIN;
  r->debug = mt__opt[MT_OPT_REGION_DEBUG] != 0;
  if (r->debug) mt_debug_install();
  if (backing != NULL) r->backing = *backing, r->has_backing = 1;
  r->parent = parent;
  if (parent != NULL) {
    r->next = parent->child;
    if (parent->child) parent->child->prev = r;
    parent->child = r;
  }
  pthread_mutex_lock(&mt_regions_lock);
  r->all_gen = mt_regions_gen;
  r->all_next = mt_regions_all;
  if (mt_regions_all) mt_regions_all->all_prev = r;
  mt_regions_all = r;
  pthread_mutex_unlock(&mt_regions_lock);
  return r;
}

mt_region *mt_region_new(mt_region *parent, const char *name) { return mt_region_new_with(parent, name, NULL); }

static void mt_run_defers(mt_region *r) {
  while (r->defers != NULL) { /* newest first */
    mt_defer *d = r->defers;
    r->defers = d->next;
    d->fn(d->arg);
  }
}

/* Free r's memory; keep the first chunk when keep_one. */
static void mt_release(mt_region *r, int keep_one) {
  mt_run_defers(r);
  if (r->debug) mt_check_redzones(r);
  mt_chunk *keep = NULL;
  if (keep_one && !r->debug) /* keep the largest chunk: the next round needs the least */
    for (mt_chunk *c = r->chunks; c != NULL; c = c->next)
      if (keep == NULL || c->size > keep->size) keep = c;
  while (r->chunks != NULL) {
    mt_chunk *c = r->chunks;
    r->chunks = c->next;
    if (c != keep) mt_chunk_put(r, c);
  }
  r->chunks = keep;
  r->last = NULL;
  if (keep != NULL) {
    keep->next = NULL;
    r->cur = (uint8_t *)mt_align_up((uintptr_t)(keep + 1), 16);
    r->end = (uint8_t *)keep + (r->has_backing ? keep->size : keep->held);
  } else {
    r->cur = r->end = NULL;
  }
  /* growth goes on from the kept chunk: a region reused per request settles
   * on chunks of the size its requests need */
  r->next_chunk = keep != NULL && keep->size * 2 <= MT_CHUNK_MAX ? keep->size * 2 : keep ? MT_CHUNK_MAX : MT_CHUNK_MIN;
  r->requested_plain = 0;
}

void mt_region_reset(mt_region *r) {
  if (r == NULL || !mt_region_live(r, "reset of a deleted region")) return;
  for (mt_region *c = r->child; c != NULL; c = c->next) mt_region_reset(c);
  mt_release(r, 1);
}

void mt_region_delete(mt_region *r) {
  if (r == NULL || !mt_region_live(r, "region deleted twice")) return;
  while (r->child != NULL) mt_region_delete(r->child); /* children first */
  mt_release(r, 0);
  r->magic = MT_REGION_DEAD;
  if (r->parent != NULL) {
    if (r->prev) r->prev->next = r->next;
    else r->parent->child = r->next;
    if (r->next) r->next->prev = r->prev;
  }
  pthread_mutex_lock(&mt_regions_lock);
  if (r->all_gen == mt_regions_gen) { /* else it is on no list the child knows */
    if (r->all_prev) r->all_prev->all_next = r->all_next;
    else mt_regions_all = r->all_next;
    if (r->all_next) r->all_next->all_prev = r->all_prev;
    r->parent = mt_region_pool;
    mt_region_pool = r;
  }
  pthread_mutex_unlock(&mt_regions_lock);
}

const char *mt_region_name(const mt_region *r) { return r ? r->name : NULL; }
mt_region *mt_region_parent(const mt_region *r) { return r ? r->parent : NULL; }

/* ---- statistics ---- */

static void mt_stats_self(const mt_region *r, mt_region_stats *s) {
  memset(s, 0, sizeof *s);
  s->size = sizeof *s;
  s->version = MT_STATS_VERSION;
  s->bytes_requested = r->requested_plain;
  s->bytes_held = mt_load(&r->held);
  s->chunks = mt_load(&r->nchunks);
  s->waste = s->bytes_held > s->bytes_requested ? s->bytes_held - s->bytes_requested : 0;
  s->high_water = mt_load(&r->high_water);
  s->regions = 1;
}

static void mt_stats_tree(const mt_region *r, mt_region_stats *t) {
  mt_region_stats s;
  mt_stats_self(r, &s);
  t->bytes_requested += s.bytes_requested;
  t->bytes_held += s.bytes_held;
  t->chunks += s.chunks;
  t->waste += s.waste;
  t->high_water += s.high_water;
  t->regions += 1;
  for (const mt_region *c = r->child; c != NULL; c = c->next) mt_stats_tree(c, t);
}

int mt_region_stats_get(const mt_region *r, mt_region_stats *self, mt_region_stats *tree) {
  if (r == NULL) {
    errno = EINVAL;
    return -1;
  }
  if (self) mt_stats_self(r, self);
  if (tree) {
    memset(tree, 0, sizeof *tree);
    tree->size = sizeof *tree;
    tree->version = MT_STATS_VERSION;
    mt_stats_tree(r, tree);
  }
  return 0;
}

static void mt_print_tree(const mt_region *r, FILE *out, int depth) {
  mt_region_stats s, t;
  mt_region_stats_get(r, &s, &t);
  char line[512];
  int n = snprintf(line, sizeof line,
                   "%*s%-*s held %10llu  requested %10llu  chunks %4llu  waste %9llu  high %10llu | subtree: %d "
                   "regions, held %llu, requested %llu\n",
                   2 * depth, "", 28 - 2 * depth > 8 ? 28 - 2 * depth : 8, r->name, (unsigned long long)s.bytes_held,
                   (unsigned long long)s.bytes_requested, (unsigned long long)s.chunks, (unsigned long long)s.waste,
                   (unsigned long long)s.high_water, (int)t.regions, (unsigned long long)t.bytes_held,
                   (unsigned long long)t.bytes_requested);
  if (n > 0) fwrite(line, 1, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1), out);
  for (const mt_region *c = r->child; c != NULL; c = c->next) mt_print_tree(c, out, depth + 1);
}

void mt_region_stats_print(const mt_region *r, FILE *out) {
  if (r == NULL || out == NULL) return;
  mt_print_tree(r, out, 0);
  fflush(out);
}

/* Every live region's own figures, for the Prometheus writer (stats.c). */
void mt__regions_each(void (*fn)(const char *name, uint64_t held, uint64_t requested, uint64_t chunks, void *arg),
                      void *arg) {
  pthread_mutex_lock(&mt_regions_lock);
  for (mt_region *r = mt_regions_all; r != NULL; r = r->all_next)
    fn(r->name, mt_load(&r->held), r->requested_plain, mt_load(&r->nchunks), arg);
  pthread_mutex_unlock(&mt_regions_lock);
}
