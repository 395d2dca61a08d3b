/* stacks.c -- sampling: intervals and weights, the stack table and the table of live sampled blocks
 *
 * Both tables live in memory mapped for the profiler alone, and neither
 * takes a lock shared by all threads on the paths of a sample:
 * - Stacks are keyed by their program counters and the allocating thread.
 *   A stack, once published in the index, never changes, so threads look
 *   stacks up without a lock; only adding a new stack takes the mutex.
 *   Each stack's figures are atomic integers in fixed point (1/256 of an
 *   object or byte): adding and later removing a block's weights leaves
 *   no rounding residue in the live figures.
 * - A sampled block maps its address to its stack and weights until it is
 *   freed, in one of 64 tables chosen by the address, each with its own
 *   spin lock, so two threads meet on a lock only when their blocks hash
 *   to the same table. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "../options/options.h"
#include "../os/os.h"
#include "sample.h"
#include "spin.h"

_Atomic int mt__prof_on;
static int mt_prof_ready; /* tables mapped and MEMTALLY_PROF on: sampling may start */
double mt__prof_rate = 512 * 1024;

#define MT_STACKS_MAX (1u << 17)   /* distinct stacks kept; later ones are merged into one */
#define MT_STACK_SLOTS (1u << 18)  /* most slots of the open-addressing index (power of two) */
#define MT_POOL_MAX (1u << 23)     /* program counters kept */
#define MT_FIX 256.0               /* fixed point of the figures: units of 1/256 */

/* bytes: as requested; held: of the blocks handed out (size-class rounding included) */
enum { MT_ALLOC_OBJECTS, MT_ALLOC_BYTES, MT_LIVE_OBJECTS, MT_LIVE_BYTES, MT_ALLOC_HELD, MT_LIVE_HELD, MT_FIGS };

typedef struct mt_stack_rec {
  uint64_t hash;
  uint32_t npcs, pcs_at;           /* its program counters: mt_pool[pcs_at ..] */
  uint64_t tid;
  char region[48];
  _Atomic int64_t fig[MT_FIGS];    /* figures now, fixed point */
  int64_t window[MT_FIGS];         /* figures at the start of the window (under the mutex) */
} mt_stack_rec;

/* The index: stack number + 1 per slot, 0 empty. It is replaced by one
 * twice as large when half full; the old one stays mapped, since a thread
 * may still be reading it (at most as much memory as the newest). */
typedef struct mt_stack_index {
  uint32_t slots;
  _Atomic uint32_t slot[];
} mt_stack_index;

static pthread_mutex_t mt_prof_mutex = PTHREAD_MUTEX_INITIALIZER; /* adding stacks, snapshots */
static mt_stack_rec *mt_stacks;                 /* [MT_STACKS_MAX], committed as used */
static mt_stack_index *_Atomic mt_index;        /* grows with the table: RSS follows the stacks seen */
static uintptr_t *mt_pool;                      /* [MT_POOL_MAX] */
static size_t mt_nstacks, mt_pool_used;
static int64_t mt_catch_all = -1;               /* the stack charged once the table is full */
static _Atomic uint64_t mt_stacks_gen = 1;      /* bumped when the table is emptied (fork) */
static uint64_t mt_prof_start_ns, mt_window_start_ns;

/* live sampled blocks: open addressing, address -> stack and weights */
typedef struct mt_live {
  uintptr_t addr;                  /* 0: empty */
  uint32_t stack;
  uint32_t block;                  /* its block's size (held bytes: objects x block) */
  int64_t objects, bytes;          /* the weights it added to its stack's live figures */
  uint64_t born_ns;                /* when it was allocated (monotonic), for its lifetime */
} mt_live;

/* Samples are rare (one per 512 KiB allocated by default), so a few shards
 * keep their locks apart. Each starts in a small table of its own in .bss:
 * a program that holds few sampled blocks touches a few pages for them, not
 * a mapping per shard (64 shards of 128 entries cost small programs half a
 * MiB of resident memory). */
#define MT_LIVE_SHARD_BITS 4
#define MT_LIVE_SHARDS (1 << MT_LIVE_SHARD_BITS)
#define MT_LIVE_FIRST_CAP 32
typedef struct mt_live_shard {
  _Atomic int lock;
  size_t cap, used;
  mt_live *tab;
} __attribute__((aligned(64))) mt_live_shard;
static mt_live_shard mt_live_shards[MT_LIVE_SHARDS];
static mt_live mt_live_first_tabs[MT_LIVE_SHARDS][MT_LIVE_FIRST_CAP];


static mt_stack_index *mt_index_new(uint32_t slots) {
  mt_stack_index *ix = mt__os_reserve(sizeof(mt_stack_index) + sizeof(uint32_t) * slots);
  if (ix != NULL) ix->slots = slots;
  return ix;
}

void mt__prof_init(void) {
  mt_stacks = mt__os_reserve(sizeof(mt_stack_rec) * MT_STACKS_MAX);
  mt_pool = mt__os_reserve(sizeof(uintptr_t) * MT_POOL_MAX);
  mt_stack_index *ix = mt_index_new(1024);
  if (mt_stacks == NULL || ix == NULL || mt_pool == NULL) return;
  atomic_store_explicit(&mt_index, ix, memory_order_release);
  long long rate = mt__opt[MT_OPT_PROF_RATE];
  mt__prof_rate = rate < 1 ? 1 : (double)rate;
  mt_prof_start_ns = mt_window_start_ns = mt__os_now_ns();
  mt_prof_ready = mt__opt[MT_OPT_PROF] ? 1 : 0;
}

void mt__prof_enable(void) {
  if (mt_prof_ready) atomic_store(&mt__prof_on, 1);
}

/* Natural logarithm without libm (linking libm costs every process half a
 * MiB of RSS): split off the exponent, then the atanh series on the
 * mantissa, in Horner form. Relative error below 1e-13 on (0, 1]. */
double mt__prof_ln(double x) {
  union { double d; uint64_t u; } v = {x};
  int e = (int)((v.u >> 52) & 0x7ff) - 1023;
  v.u = (v.u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL; /* mantissa in [1, 2) */
  double m = v.d;
  if (m > 1.4142135623730951) m *= 0.5, e++;
  /* |t| <= 0.172, t^2 <= 0.0295: terms up to t^17 reach 1e-14 */
  double t = (m - 1) / (m + 1), t2 = t * t;
  double p = 1.0 / 17;
  p = p * t2 + 1.0 / 15;
  p = p * t2 + 1.0 / 13;
  p = p * t2 + 1.0 / 11;
  p = p * t2 + 1.0 / 9;
  p = p * t2 + 1.0 / 7;
  p = p * t2 + 1.0 / 5;
  p = p * t2 + 1.0 / 3;
  p = p * t2 + 1.0;
  return 2 * t * p + e * 0.6931471805599453;
}

/* 1 - exp(-x) for x >= 0, accurate for small x too. */
double mt__prof_one_minus_exp_neg(double x) {
  if (x > 40) return 1;
  if (x < 1e-3) return x * (1 - x * (1.0 / 2 - x * (1.0 / 6 - x * (1.0 / 24))));
  /* exp(-x) = 2^-k * exp(-r), 0 <= r < ln 2; Taylor terms up to r^14 reach 1e-15 */
  int k = (int)(x * 1.4426950408889634);
  double r = x - k * 0.6931471805599453;
  double p = 1.0 / 87178291200.0;          /* 1/14! */
  p = 1.0 / 6227020800.0 - r * p;           /* 1/13! */
  p = 1.0 / 479001600.0 - r * p;
  p = 1.0 / 39916800.0 - r * p;
  p = 1.0 / 3628800.0 - r * p;
  p = 1.0 / 362880.0 - r * p;
  p = 1.0 / 40320.0 - r * p;
  p = 1.0 / 5040.0 - r * p;
  p = 1.0 / 720.0 - r * p;
  p = 1.0 / 120.0 - r * p;
  p = 1.0 / 24.0 - r * p;
  p = 1.0 / 6.0 - r * p;
  p = 1.0 / 2.0 - r * p;
  p = 1.0 - r * p;
  double em = 1 - r * p; /* exp(-r) */
  union { double d; uint64_t u; } scale = {.u = (uint64_t)(1023 - k) << 52}; /* 2^-k, k <= 57 */
  return 1 - em * scale.d;
}

int64_t mt__prof_next_interval(uint64_t *rng) {
  if (mt__prof_rate <= 1) return 0; /* every allocation */
  uint64_t x = *rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *rng = x;
  double u = ((double)((x * 2685821657736338717ULL) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
  double d = -mt__prof_ln(u) * mt__prof_rate;
  return d > 4e18 ? (int64_t)4e18 : (int64_t)d;
}

static uint64_t mt_hash_stack(const uintptr_t *pcs, int n, uint64_t tid) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ tid;
  for (int i = 0; i < n; i++) {
    h ^= pcs[i];
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  return h ? h : 1;
}

static bool mt_stack_is(const mt_stack_rec *st, const uintptr_t *pcs, int n, uint64_t tid, const char *region,
                        uint64_t h) {
  return st->hash == h && st->npcs == (uint32_t)n && st->tid == tid && st->region[0] == region[0] &&
         (region[0] == 0 || strcmp(st->region, region) == 0) &&
         memcmp(&mt_pool[st->pcs_at], pcs, sizeof(uintptr_t) * (size_t)n) == 0;
}

/* The stack's number, or -1 when ix does not hold it. Needs no lock: a
 * slot is published only after its stack is complete. */
static int64_t mt_stack_find(const mt_stack_index *ix, const uintptr_t *pcs, int n, uint64_t tid, const char *region,
                             uint64_t h) {
  uint32_t mask = ix->slots - 1;
  for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
    uint32_t s = atomic_load_explicit(&ix->slot[i], memory_order_acquire);
    if (s == 0) return -1;
    if (mt_stack_is(&mt_stacks[s - 1], pcs, n, tid, region, h)) return s - 1;
  }
}

static void mt_index_put(mt_stack_index *ix, uint32_t k, uint64_t h) {
  uint32_t mask = ix->slots - 1;
  for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask)
    if (mt_load(&ix->slot[i]) == 0) {
      atomic_store_explicit(&ix->slot[i], k + 1, memory_order_release);
      return;
    }
}

/* Caller holds the mutex; the stack was not found. Returns its number. */
static uint32_t mt_stack_add(const uintptr_t *pcs, int n, uint64_t tid, const char *region, uint64_t h) {
  mt_stack_index *ix = atomic_load_explicit(&mt_index, memory_order_relaxed);
  int64_t found = mt_stack_find(ix, pcs, n, tid, region, h); /* another thread may have added it */
  if (found >= 0) return (uint32_t)found;
  if ((mt_nstacks + 1) * 2 > ix->slots && ix->slots < MT_STACK_SLOTS) {
    mt_stack_index *bigger = mt_index_new(ix->slots * 2);
    if (bigger != NULL) {
      for (uint32_t k = 0; k < mt_nstacks; k++) mt_index_put(bigger, k, mt_stacks[k].hash);
      atomic_store_explicit(&mt_index, bigger, memory_order_release);
      ix = bigger;
    }
  }
  bool full = mt_nstacks >= MT_STACKS_MAX - 1 || (mt_nstacks + 1) * 2 > ix->slots ||
              mt_pool_used + (size_t)n > MT_POOL_MAX;
  if (full) {
    /* charge to a catch-all stack with no frames and no thread, made once */
    if (mt_catch_all >= 0) return (uint32_t)mt_catch_all;
    n = 0;
    tid = 0;
    region = "";
    h = 1;
  }
  uint32_t idx = (uint32_t)mt_nstacks++;
  mt_stack_rec *st = &mt_stacks[idx];
  memset(st, 0, sizeof *st);
  st->hash = h;
  st->npcs = (uint32_t)n;
  st->tid = tid;
  /* (not snprintf: the printf machinery would fault in 64 KiB of libc's code) */
  size_t rl = strnlen(region, sizeof st->region - 1);
  memcpy(st->region, region, rl); /* st was zeroed: NUL-terminated */
  st->pcs_at = (uint32_t)mt_pool_used;
  memcpy(&mt_pool[mt_pool_used], pcs, sizeof(uintptr_t) * (size_t)n);
  mt_pool_used += (size_t)n;
  if (full) mt_catch_all = idx;
  mt_index_put(ix, idx, h);
  return idx;
}

/* ---- live sampled blocks ---- */

static uint64_t mt_live_hash(uintptr_t a) { return (uint64_t)(a >> 4) * 0x9e3779b97f4a7c15ULL; }
static mt_live_shard *mt_live_shard_of(uint64_t h) { return &mt_live_shards[h >> (64 - MT_LIVE_SHARD_BITS)]; }
static size_t mt_live_first(uint64_t h, size_t cap) { return (size_t)(h >> 20) & (cap - 1); }

/* Caller holds the shard's lock. */
static int mt_live_grow(mt_live_shard *sh) {
  if (sh->cap == 0) { /* the first table: static; cleared, since a fork child that took the
                        * shard over from a holder of its lock may find its parent's entries there */
    sh->tab = mt_live_first_tabs[sh - mt_live_shards];
    memset(sh->tab, 0, sizeof(mt_live) * MT_LIVE_FIRST_CAP);
    sh->cap = MT_LIVE_FIRST_CAP;
    return 0;
  }
  size_t cap = sh->cap * 2;
  mt_live *tab = mt__os_reserve(sizeof(mt_live) * cap);
  if (tab == NULL) return -1;
  for (size_t i = 0; i < sh->cap; i++) {
    if (sh->tab[i].addr == 0) continue;
    for (size_t j = mt_live_first(mt_live_hash(sh->tab[i].addr), cap);; j = (j + 1) & (cap - 1)) {
      if (tab[j].addr == 0) {
        tab[j] = sh->tab[i];
        break;
      }
    }
  }
  mt_live *old = sh->tab;
  size_t old_cap = sh->cap;
  sh->tab = tab;
  sh->cap = cap;
  if (old != mt_live_first_tabs[sh - mt_live_shards]) mt__os_unreserve(old, sizeof(mt_live) * old_cap);
  return 0;
}

/* Returns 0, or -1 when there was no memory to remember the block. */
static int mt_live_put(uintptr_t addr, uint32_t stack, uint32_t block, int64_t objects, int64_t bytes,
                       uint64_t born_ns) {
  uint64_t h = mt_live_hash(addr);
  mt_live_shard *sh = mt_live_shard_of(h);
  mt_spin_lock(&sh->lock);
  if ((sh->used + 1) * 4 >= sh->cap * 3 && mt_live_grow(sh) != 0) {
    mt_spin_unlock(&sh->lock);
    return -1;
  }
  size_t mask = sh->cap - 1;
  for (size_t j = mt_live_first(h, sh->cap);; j = (j + 1) & mask) {
    if (sh->tab[j].addr == 0) {
      sh->used++;
      sh->tab[j] = (mt_live){addr, stack, block, objects, bytes, born_ns};
      break;
    }
  }
  mt_spin_unlock(&sh->lock);
  return 0;
}

/* Empties slot i of a shard's table and moves later entries of its probe
 * run back into the gap, so the table never holds deletion marks. Marks
 * piled up where sampled blocks sit at ever new addresses, and each cleaning
 * copied the table into a fresh mapping: 900 page faults in one run of
 * rptest-2t. Caller holds the shard's lock. */
static void mt_live_remove_at(mt_live_shard *sh, size_t i) {
  size_t mask = sh->cap - 1;
  for (size_t k = i;;) {
    k = (k + 1) & mask;
    if (sh->tab[k].addr == 0) break;
    size_t home = mt_live_first(mt_live_hash(sh->tab[k].addr), sh->cap);
    /* the entry at k may fill the gap at i unless its home lies in (i, k] */
    bool stays = i <= k ? (home > i && home <= k) : (home > i || home <= k);
    if (stays) continue;
    sh->tab[i] = sh->tab[k];
    i = k;
  }
  sh->tab[i].addr = 0;
  sh->used--;
}

/* Removes addr's entry into *out; 0, or -1 when it has none. */
static int mt_live_take(uintptr_t addr, mt_live *out) {
  uint64_t h = mt_live_hash(addr);
  mt_live_shard *sh = mt_live_shard_of(h);
  int found = -1;
  mt_spin_lock(&sh->lock);
  if (sh->cap != 0) {
    size_t mask = sh->cap - 1;
    for (size_t j = mt_live_first(h, sh->cap);; j = (j + 1) & mask) {
      if (sh->tab[j].addr == addr) {
        *out = sh->tab[j];
        mt_live_remove_at(sh, j);
        found = 0;
        break;
      }
      if (sh->tab[j].addr == 0) break;
    }
  }
  mt_spin_unlock(&sh->lock);
  return found;
}

/* The number of the stack (pcs, tid, region), added when new; -1 before the tables exist. */
static int64_t mt_stack_intern(const uintptr_t *pcs, int n, uint64_t tid, const char *region) {
  uint64_t h = mt_hash_stack(pcs, n, tid);
  for (const char *c = region; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
  mt_stack_index *ix = atomic_load_explicit(&mt_index, memory_order_acquire);
  if (ix == NULL) return -1;
  int64_t s = mt_stack_find(ix, pcs, n, tid, region, h);
  if (s < 0) {
    pthread_mutex_lock(&mt_prof_mutex);
    s = mt_stack_add(pcs, n, tid, region, h);
    pthread_mutex_unlock(&mt_prof_mutex);
  }
  return s;
}

void mt__prof_record(void *block, size_t size, size_t counted, uint64_t tid, const char *region, uintptr_t ip0,
                     uintptr_t sp0, mt_stack_cache *cache) {
  if (region == NULL) region = "";
  uintptr_t pcs[MT_PROF_MAX_FRAMES];
  mt_stack_cache_entry *e;
  uint32_t known;
  uint64_t gen = mt_load(&mt_stacks_gen);
  int n = mt__prof_capture(pcs, ip0, sp0, cache, tid, region[0] != 0, gen, &known, &e);
  int64_t s = known;
  if (n < 0) goto found; /* the cache knew the stack's number */
  s = mt_stack_intern(pcs, n, tid, region);
  if (s < 0) return;
  if (e != NULL && region[0] == 0) mt__prof_remember(e, (uint32_t)s, tid, gen);
found:;
  /* the countdown charged `counted` bytes: that sets the probability */
  int64_t objects = (int64_t)MT_FIX, bytes = (int64_t)((double)size * MT_FIX);
  if (mt__prof_rate > 1) {
    double p = mt__prof_one_minus_exp_neg((double)(counted ? counted : size) / mt__prof_rate); /* 1 - exp(-b/R) */
    if (p > 0) {
      double w = MT_FIX / p;
      objects = (int64_t)(w + 0.5);
      bytes = (int64_t)((double)size * w + 0.5);
    }
  }
  size_t bsize = counted > size ? counted : size;
  uint32_t b32 = bsize > UINT32_MAX ? UINT32_MAX : (uint32_t)bsize;
  int64_t held = objects * (int64_t)b32;
  _Atomic int64_t *fig = mt_stacks[s].fig;
  atomic_fetch_add_explicit(&fig[MT_ALLOC_OBJECTS], objects, memory_order_relaxed);
  atomic_fetch_add_explicit(&fig[MT_ALLOC_BYTES], bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&fig[MT_ALLOC_HELD], held, memory_order_relaxed);
  uint64_t born = mt__opt[MT_OPT_PROF_LIFETIMES] ? mt__os_now_ns() : 0;
  if (mt_live_put((uintptr_t)block, (uint32_t)s, b32, objects, bytes, born) == 0) {
    atomic_fetch_add_explicit(&fig[MT_LIVE_OBJECTS], objects, memory_order_relaxed);
    atomic_fetch_add_explicit(&fig[MT_LIVE_BYTES], bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&fig[MT_LIVE_HELD], held, memory_order_relaxed);
  }
}

int mt__prof_on_free(void *block, mt_stack_cache *cache, uint64_t tid) {
  /* called from memtally's free: a return address inside memtally, followed
   * to the program's frame by the path the unwinder remembers for it, and
   * the program's stack looked up in the thread's cache like malloc's */
  uintptr_t ip0 = (uintptr_t)__builtin_return_address(0);
  uintptr_t sp0 = (uintptr_t)__builtin_dwarf_cfa();
  mt_live l;
  if (mt_live_take((uintptr_t)block, &l) != 0) return 0;
  _Atomic int64_t *fig = mt_stacks[l.stack].fig;
  atomic_fetch_sub_explicit(&fig[MT_LIVE_OBJECTS], l.objects, memory_order_relaxed);
  atomic_fetch_sub_explicit(&fig[MT_LIVE_BYTES], l.bytes, memory_order_relaxed);
  atomic_fetch_sub_explicit(&fig[MT_LIVE_HELD], l.objects * (int64_t)l.block, memory_order_relaxed);
  if (l.born_ns == 0) return 1; /* lifetimes off when it was born */
  uint64_t now = mt__os_now_ns();
  /* the stack that frees it (memtally's own frames left out), as a stack of the table */
  uintptr_t pcs[MT_PROF_MAX_FRAMES];
  uint32_t known;
  mt_stack_cache_entry *e;
  uint64_t gen = mt_load(&mt_stacks_gen);
  int n = mt__prof_capture(pcs, ip0, sp0, cache, 0, false, gen, &known, &e);
  int64_t fs = n < 0 ? (int64_t)known : n > 0 ? mt_stack_intern(pcs, n, 0, "") : -1;
  if (n > 0 && fs >= 0 && e != NULL) mt__prof_remember(e, (uint32_t)fs, 0, gen);
  if (tid == 0) tid = mt__os_thread_id(); /* a thread without a heap */
  bool other = mt_stacks[l.stack].tid != 0 && mt_stacks[l.stack].tid != tid;
  mt__life_add(l.stack, fs < 0 ? MT_LIFE_ANY_FREE : (uint32_t)fs, now > l.born_ns ? now - l.born_ns : 0, other,
               (double)l.objects / MT_FIX, (double)l.bytes / MT_FIX);
  return 1;
}

/* At _exit, which may run in a signal handler that interrupted a thread
 * holding the table's lock: never wait for it (see mt__prof_snapshot_nowait). */
static _Atomic int mt_snapshot_nowait;

/* Heapsort by (allocation stack, bucket), in place: no allocation while a profile is written. */
static bool mt_life_less(const mt_prof_life *a, const mt_prof_life *b) {
  return a->alloc_stack != b->alloc_stack ? a->alloc_stack < b->alloc_stack : a->bucket < b->bucket;
}
static void mt_life_sift(mt_prof_life *v, size_t root, size_t n) {
  for (size_t child; (child = 2 * root + 1) < n; root = child) {
    if (child + 1 < n && mt_life_less(&v[child], &v[child + 1])) child++;
    if (!mt_life_less(&v[root], &v[child])) return;
    mt_prof_life t = v[root];
    v[root] = v[child], v[child] = t;
  }
}
static void mt_life_sort(mt_prof_life *v, size_t n) {
  for (size_t i = n / 2; i-- > 0;) mt_life_sift(v, i, n);
  for (size_t end = n; end-- > 1;) {
    mt_prof_life t = v[0];
    v[0] = v[end], v[end] = t;
    mt_life_sift(v, 0, end);
  }
}

int mt__prof_snapshot_lifetimes(mt_prof_snapshot *snap) {
  size_t live = 0;
  for (int i = 0; i < MT_LIVE_SHARDS; i++) live += mt_live_shards[i].used; /* a bound: read unlocked */
  size_t cap = mt__life_count() + live + 1024;
  size_t bytes = sizeof(mt_prof_life) * cap;
  mt_prof_life *out = mt__os_reserve(bytes);
  if (out == NULL) return -1;
  size_t n = 0;
  bool nowait = mt_load(&mt_snapshot_nowait); /* in _exit, perhaps in a signal handler: never wait */
  if (mt__life_copy(out, cap, &n, nowait) != 0) {
    mt__os_unreserve(out, bytes);
    return -1;
  }
  /* blocks still in use: their age so far, one entry each, then sorted and
   * merged into one entry per stack and bucket */
  uint64_t now = mt__os_now_ns();
  size_t first_live = n;
  for (int i = 0; i < MT_LIVE_SHARDS && n < cap; i++) {
    mt_live_shard *sh = &mt_live_shards[i];
    if (nowait) {
      if (!mt_spin_trylock(&sh->lock)) continue; /* its blocks go unlisted */
    } else {
      mt_spin_lock(&sh->lock);
    }
    for (size_t j = 0; j < sh->cap && n < cap; j++) {
      const mt_live *l = &sh->tab[j];
      if (l->addr == 0 || l->born_ns == 0) continue;
      uint64_t age = now > l->born_ns ? now - l->born_ns : 0;
      double obj = (double)l->objects / MT_FIX;
      out[n++] = (mt_prof_life){l->stack, MT_LIFE_IN_USE, (uint16_t)mt__life_bucket(age), 0,
                                obj, (double)l->bytes / MT_FIX, obj * (double)age};
    }
    mt_spin_unlock(&sh->lock);
  }
  mt_life_sort(out + first_live, n - first_live);
  size_t w = first_live;
  for (size_t k = first_live; k < n; k++) {
    if (w > first_live && out[w - 1].alloc_stack == out[k].alloc_stack && out[w - 1].bucket == out[k].bucket) {
      out[w - 1].objects += out[k].objects, out[w - 1].bytes += out[k].bytes, out[w - 1].total_ns += out[k].total_ns;
    } else {
      out[w++] = out[k];
    }
  }
  snap->lives = out, snap->nlives = w, snap->lives_bytes = bytes;
  return 0;
}


void mt__prof_snapshot_nowait(void) { mt_store(&mt_snapshot_nowait, 1); }

int mt__prof_snapshot(mt_prof_snapshot *snap, bool window) {
  memset(snap, 0, sizeof *snap);
  if (mt_load(&mt_snapshot_nowait)) {
    if (pthread_mutex_trylock(&mt_prof_mutex) != 0) return -1;
  } else {
    pthread_mutex_lock(&mt_prof_mutex);
  }
  size_t ns = mt_nstacks, np = mt_pool_used;
  size_t bytes = sizeof(mt_prof_stack) * (ns ? ns : 1) + sizeof(uintptr_t) * (np ? np : 1);
  uint8_t *mem = mt__os_reserve(bytes);
  if (mem == NULL) {
    pthread_mutex_unlock(&mt_prof_mutex);
    return -1;
  }
  snap->stacks = (mt_prof_stack *)mem;
  snap->pcs = (uintptr_t *)(mem + sizeof(mt_prof_stack) * (ns ? ns : 1));
  for (size_t i = 0; i < ns; i++) {
    mt_stack_rec *r = &mt_stacks[i];
    mt_prof_stack *o = &snap->stacks[i];
    o->npcs = r->npcs;
    o->pcs_at = r->pcs_at;
    o->tid = r->tid;
    memcpy(o->region, r->region, sizeof o->region);
    int64_t f[MT_FIGS];
    for (int k = 0; k < MT_FIGS; k++) f[k] = atomic_load_explicit(&r->fig[k], memory_order_relaxed);
    o->now = (mt_prof_counts){f[0] / MT_FIX, f[1] / MT_FIX, f[2] / MT_FIX, f[3] / MT_FIX, f[4] / MT_FIX, f[5] / MT_FIX};
    o->window = (mt_prof_counts){r->window[0] / MT_FIX, r->window[1] / MT_FIX, 0, 0, r->window[4] / MT_FIX, 0};
    if (window) memcpy(r->window, f, sizeof f);
  }
  memcpy(snap->pcs, mt_pool, sizeof(uintptr_t) * np);
  snap->nstacks = ns;
  snap->npcs = np;
  snap->map_bytes = bytes;
  snap->rate = mt__prof_rate;
  uint64_t now = mt__os_now_ns();
  snap->time_ns = mt__os_wall_ns();
  snap->duration_ns = now - (window ? mt_window_start_ns : mt_prof_start_ns);
  if (window) mt_window_start_ns = now;
  pthread_mutex_unlock(&mt_prof_mutex);
  return 0;
}

void mt__prof_snapshot_free(mt_prof_snapshot *snap) {
  if (snap->stacks) mt__os_unreserve(snap->stacks, snap->map_bytes);
  if (snap->lives) mt__os_unreserve(snap->lives, snap->lives_bytes);
  memset(snap, 0, sizeof *snap);
}

/* The child after fork (the only thread left): forget every stack and
 * block. A shard whose lock was held at fork may be mid-growth (table and
 * capacity disagree): it starts with no table (the old one leaks). The
 * stack index is published whole, so clearing it is safe in any state. */
void mt__prof_reset(void) {
  mt__os_mutex_reclaim(&mt_prof_mutex);
  mt__life_reset();
  for (int i = 0; i < MT_LIVE_SHARDS; i++) {
    mt_live_shard *sh = &mt_live_shards[i];
    if (mt_load(&sh->lock)) {
      sh->tab = NULL;
      sh->cap = 0;
    } else if (sh->tab) {
      memset(sh->tab, 0, sizeof(mt_live) * sh->cap);
    }
    sh->used = 0;
    mt_store(&sh->lock, 0);
  }
  mt_stack_index *ix = atomic_load_explicit(&mt_index, memory_order_relaxed);
  if (mt_stacks == NULL || ix == NULL) return;
  for (uint32_t i = 0; i < ix->slots; i++) mt_store(&ix->slot[i], 0);
  mt_nstacks = mt_pool_used = 0;
  mt_catch_all = -1;
  mt_store(&mt_stacks_gen, mt_load(&mt_stacks_gen) + 1); /* stack numbers in stack caches are stale */
  mt_prof_start_ns = mt_window_start_ns = mt__os_now_ns();
}
