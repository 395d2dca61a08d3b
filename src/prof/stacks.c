/* stacks.c -- sampling: stack capture, the stack table and the table of live sampled blocks
 *
 * Both tables live in memory mapped for the profiler alone. Stacks are keyed
 * by their program counters and the allocating thread; a sampled block maps
 * its address to its stack and weights until it is freed. One mutex guards
 * both; it is taken once per sample and once per free of a sampled block,
 * never on the paths of unsampled blocks. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unwind.h>

#include "../options.h"
#include "../os/os.h"
#include "prof.h"

_Atomic int mt__prof_on;
double mt__prof_rate = 512 * 1024;

#define MT_STACKS_MAX (1u << 17)   /* distinct stacks kept; later ones are merged into one */
#define MT_STACK_SLOTS (1u << 18)  /* most slots of the open-addressing index (power of two) */
#define MT_POOL_MAX (1u << 23)     /* program counters kept */

static pthread_mutex_t mt_prof_mutex = PTHREAD_MUTEX_INITIALIZER;
static mt_prof_stack *mt_stacks;   /* [MT_STACKS_MAX], committed as used */
static uint32_t *mt_stack_index;   /* [mt_stack_slots]: stack number + 1, 0 empty */
static uint32_t mt_stack_slots;    /* grows with the table, so RSS follows the stacks seen */
static uintptr_t *mt_pool;         /* [MT_POOL_MAX] */
static size_t mt_nstacks, mt_pool_used;
static uint64_t mt_prof_start_ns, mt_window_start_ns;

/* live sampled blocks: open addressing, address -> stack and weights */
typedef struct mt_live {
  uintptr_t addr;                  /* 0 empty, 1 deleted */
  uint32_t stack;
  float pad;
  double objects, bytes;           /* the weights it added to its stack's live figures */
} mt_live;
static mt_live *mt_live_tab;
static size_t mt_live_cap, mt_live_used, mt_live_dead;

/* frames of memtally itself at the top of every stack are dropped */
static uintptr_t mt_self_lo, mt_self_hi;

static int mt_find_self(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  uintptr_t me = (uintptr_t)arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (me >= lo && me < hi) {
      /* linked into the program itself: no range to skip, keep every frame */
      if (info->dlpi_name == NULL || info->dlpi_name[0] == 0) return 1;
      mt_self_lo = lo;
      mt_self_hi = hi;
      return 1;
    }
  }
  return 0;
}

void mt__prof_init(void) {
  mt_stacks = mt__os_reserve(sizeof(mt_prof_stack) * MT_STACKS_MAX);
  mt_stack_slots = 1024;
  mt_stack_index = mt__os_reserve(sizeof(uint32_t) * mt_stack_slots);
  mt_pool = mt__os_reserve(sizeof(uintptr_t) * MT_POOL_MAX);
  if (mt_stacks == NULL || mt_stack_index == NULL || mt_pool == NULL) return;
  long long rate = mt__opt[MT_OPT_PROF_RATE];
  mt__prof_rate = rate < 1 ? 1 : (double)rate;
  mt_prof_start_ns = mt_window_start_ns = mt__os_now_ns();
  atomic_store(&mt__prof_on, mt__opt[MT_OPT_PROF] ? 1 : 0);
}

/* Natural logarithm without libm (linking libm costs every process half a
 * MiB of RSS): split off the exponent, then atanh series on the mantissa.
 * Relative error below 1e-12 on (0, 1]; plenty for sampling intervals. */
static double mt_ln(double x) {
  union { double d; uint64_t u; } v = {x};
  int e = (int)((v.u >> 52) & 0x7ff) - 1023;
  v.u = (v.u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL; /* mantissa in [1, 2) */
  double m = v.d;
  if (m > 1.4142135623730951) m *= 0.5, e++;
  /* |t| <= 0.172, t^2 <= 0.0295: nine terms of atanh reach 1e-14 */
  static const double inv_odd[9] = {1.0, 1.0 / 3, 1.0 / 5, 1.0 / 7, 1.0 / 9, 1.0 / 11, 1.0 / 13, 1.0 / 15, 1.0 / 17};
  double t = (m - 1) / (m + 1), t2 = t * t, term = t, sum = 0;
  for (int k = 0; k < 9; k++) {
    sum += term * inv_odd[k];
    term *= t2;
  }
  return 2 * sum + e * 0.6931471805599453;
}

/* 1 - exp(-x) for x >= 0, accurate for small x too. */
static double mt_one_minus_exp_neg(double x) {
  if (x > 40) return 1;
  if (x < 1e-3) return x - x * x / 2 + x * x * x / 6 - x * x * x * x / 24;
  double n = x / 0.6931471805599453;
  int k = (int)n; /* exp(-x) = 2^-k * exp(-(x - k ln2)) */
  /* 0 <= r < ln 2: eighteen Taylor terms reach 1e-16 */
  static const double inv[18] = {1.0,        1.0 / 2,  1.0 / 3,  1.0 / 4,  1.0 / 5,  1.0 / 6,
                                 1.0 / 7,    1.0 / 8,  1.0 / 9,  1.0 / 10, 1.0 / 11, 1.0 / 12,
                                 1.0 / 13,   1.0 / 14, 1.0 / 15, 1.0 / 16, 1.0 / 17, 1.0 / 18};
  double r = x - k * 0.6931471805599453, term = 1, e = 1;
  for (int i = 0; i < 18; i++) {
    term *= -r * inv[i];
    e += term;
  }
  for (int i = 0; i < k; i++) e *= 0.5;
  return 1 - e;
}

int64_t mt__prof_next_interval(uint64_t *rng) {
  if (mt__prof_rate <= 1) return 0; /* every allocation */
  uint64_t x = *rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *rng = x;
  double u = ((double)((x * 2685821657736338717ULL) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
  double d = -mt_ln(u) * mt__prof_rate;
  return d > 4e18 ? (int64_t)4e18 : (int64_t)d;
}

struct mt_unwind {
  uintptr_t *pcs;
  uintptr_t *cfa; /* stack pointer of each recorded frame (the callee's CFA), or NULL */
  int n, max;
  int in_self; /* still in memtally's frames */
};

static _Unwind_Reason_Code mt_unwind_step(struct _Unwind_Context *ctx, void *arg) {
  struct mt_unwind *u = arg;
  uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
  if (ip == 0) return _URC_END_OF_STACK;
  if (u->in_self) {
    if (ip >= mt_self_lo && ip < mt_self_hi) return _URC_NO_REASON;
    u->in_self = 0;
  }
  if (u->cfa) u->cfa[u->n] = (uintptr_t)_Unwind_GetCFA(ctx);
  u->pcs[u->n++] = ip - 1; /* a return address: point into the call */
  return u->n >= u->max ? _URC_END_OF_STACK : _URC_NO_REASON;
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

/* Double the index when half full (caller holds the mutex). */
static void mt_stack_index_grow(void) {
  uint32_t slots = mt_stack_slots * 2;
  if (slots > MT_STACK_SLOTS) return;
  uint32_t *index = mt__os_reserve(sizeof(uint32_t) * slots);
  if (index == NULL) return;
  for (uint32_t k = 0; k < mt_nstacks; k++)
    for (uint32_t i = (uint32_t)mt_stacks[k].hash & (slots - 1);; i = (i + 1) & (slots - 1))
      if (index[i] == 0) {
        index[i] = k + 1;
        break;
      }
  mt__os_unreserve(mt_stack_index, sizeof(uint32_t) * mt_stack_slots);
  mt_stack_index = index;
  mt_stack_slots = slots;
}

/* Caller holds the mutex. Returns the stack's number. */
static uint32_t mt_stack_intern(const uintptr_t *pcs, int n, uint64_t tid, const char *region, uint64_t h) {
  if ((mt_nstacks + 1) * 2 > mt_stack_slots) mt_stack_index_grow();
  uint32_t mask = mt_stack_slots - 1;
  for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
    uint32_t s = mt_stack_index[i];
    if (s == 0) break;
    mt_prof_stack *st = &mt_stacks[s - 1];
    if (st->hash == h && st->npcs == (uint32_t)n && st->tid == tid && strcmp(st->region, region) == 0 &&
        memcmp(&mt_pool[st->pcs_at], pcs, sizeof(uintptr_t) * (size_t)n) == 0)
      return s - 1;
  }
  if (mt_nstacks >= MT_STACKS_MAX - 1 || mt_nstacks * 2 + 2 > mt_stack_slots || mt_pool_used + (size_t)n > MT_POOL_MAX) {
    /* table full: charge to a catch-all stack with no frames */
    n = 0;
    h = 1;
    tid = 0;
    for (uint32_t k = 0; k < mt_nstacks; k++)
      if (mt_stacks[k].npcs == 0 && mt_stacks[k].tid == 0) return k;
  }
  uint32_t idx = (uint32_t)mt_nstacks++;
  mt_prof_stack *st = &mt_stacks[idx];
  memset(st, 0, sizeof *st);
  st->hash = h;
  st->npcs = (uint32_t)n;
  st->tid = tid;
  snprintf(st->region, sizeof st->region, "%s", region);
  st->pcs_at = (uint32_t)mt_pool_used;
  memcpy(&mt_pool[mt_pool_used], pcs, sizeof(uintptr_t) * (size_t)n);
  mt_pool_used += (size_t)n;
  for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
    if (mt_stack_index[i] == 0) {
      mt_stack_index[i] = idx + 1;
      break;
    }
  }
  return idx;
}

/* ---- live sampled blocks ---- */

static size_t mt_live_hash(uintptr_t a) { return (size_t)((a >> 4) * 0x9e3779b97f4a7c15ULL >> 20); }

static int mt_live_grow(void) {
  size_t cap = mt_live_cap ? mt_live_cap * 2 : 256;
  if (mt_live_cap && mt_live_dead > mt_live_used / 2) cap = mt_live_cap; /* just clean */
  mt_live *tab = mt__os_reserve(sizeof(mt_live) * cap);
  if (tab == NULL) return -1;
  for (size_t i = 0; i < mt_live_cap; i++) {
    if (mt_live_tab[i].addr <= 1) continue;
    for (size_t j = mt_live_hash(mt_live_tab[i].addr) & (cap - 1);; j = (j + 1) & (cap - 1)) {
      if (tab[j].addr == 0) {
        tab[j] = mt_live_tab[i];
        break;
      }
    }
  }
  if (mt_live_tab) mt__os_unreserve(mt_live_tab, sizeof(mt_live) * mt_live_cap);
  mt_live_tab = tab;
  mt_live_cap = cap;
  mt_live_used -= mt_live_dead;
  mt_live_dead = 0;
  return 0;
}

static void mt_live_put(uintptr_t addr, uint32_t stack, double objects, double bytes) {
  if ((mt_live_used + 1) * 4 >= mt_live_cap * 3 && mt_live_grow() != 0) return;
  size_t mask = mt_live_cap - 1;
  for (size_t j = mt_live_hash(addr) & mask;; j = (j + 1) & mask) {
    if (mt_live_tab[j].addr <= 1) {
      if (mt_live_tab[j].addr == 1) mt_live_dead--;
      else mt_live_used++;
      mt_live_tab[j] = (mt_live){addr, stack, 0, objects, bytes};
      return;
    }
  }
}

static mt_live *mt_live_find(uintptr_t addr) {
  if (mt_live_cap == 0) return NULL;
  size_t mask = mt_live_cap - 1;
  for (size_t j = mt_live_hash(addr) & mask;; j = (j + 1) & mask) {
    if (mt_live_tab[j].addr == addr) return &mt_live_tab[j];
    if (mt_live_tab[j].addr == 0) return NULL;
  }
}

static _Atomic int mt_self_known;

mt_stack_cache *mt__prof_cache_new(void) { return mt__os_reserve(sizeof(mt_stack_cache)); }

/* The cached stack still stands when each recorded return address is still
 * in the stack slot it was read from. Only slots between the caller's stack
 * pointer and a few MiB above it are read, all within the live stack. */
static int mt_cache_valid(const mt_stack_cache_entry *e) {
  for (uint32_t k = 1; k < e->n; k++) {
    uintptr_t slot = e->cfa[k] - sizeof(uintptr_t);
    if (slot < e->sp0 || slot - e->sp0 > ((uintptr_t)8 << 20)) return 0;
    if (*(const uintptr_t *)slot != e->pcs[k] + 1) return 0;
  }
  return 1;
}

void mt__prof_record(void *block, size_t size, size_t counted, uint64_t tid, const char *region, uintptr_t ip0,
                     uintptr_t sp0, mt_stack_cache *cache) {
  if (region == NULL) region = "";
  if (!atomic_load_explicit(&mt_self_known, memory_order_acquire)) {
    /* at the first sample, not at start-up: the loader may still be busy then */
    dl_iterate_phdr(mt_find_self, (void *)(uintptr_t)&mt__prof_init);
    atomic_store_explicit(&mt_self_known, 1, memory_order_release);
  }
  uintptr_t pcs[MT_PROF_MAX_FRAMES], cfa[MT_PROF_MAX_FRAMES];
  struct mt_unwind u = {pcs, NULL, 0, MT_PROF_MAX_FRAMES, mt_self_hi != 0};
  mt_stack_cache_entry *e = NULL;
  if (cache != NULL && ip0 != 0 && mt_self_hi != 0 && (ip0 < mt_self_lo || ip0 >= mt_self_hi)) {
    e = &cache->e[((ip0 ^ (sp0 >> 4)) * 0x9e3779b97f4a7c15ULL) >> 60];
    if (e->ip0 == ip0 && e->sp0 == sp0 && e->n > 0 && mt_cache_valid(e)) {
      memcpy(pcs, e->pcs, sizeof(uintptr_t) * e->n);
      u.n = (int)e->n;
      goto unwound;
    }
    u.cfa = cfa;
  }
  _Unwind_Backtrace(mt_unwind_step, &u);
  if (e != NULL && u.n > 0 && pcs[0] + 1 == ip0) { /* the unwinder agrees: remember it */
    e->ip0 = ip0;
    e->sp0 = sp0;
    e->n = (uint32_t)u.n;
    memcpy(e->pcs, pcs, sizeof(uintptr_t) * (size_t)u.n);
    memcpy(e->cfa, cfa, sizeof(uintptr_t) * (size_t)u.n);
  } else if (e != NULL) {
    e->n = 0;
  }
unwound:;
  double objects = 1, bytes = (double)size;
  if (mt__prof_rate > 1) {
    /* the countdown charged `counted` bytes: that sets the probability */
    double p = mt_one_minus_exp_neg((double)(counted ? counted : size) / mt__prof_rate); /* 1 - exp(-b/R) */
    if (p > 0) objects = 1 / p, bytes = (double)size / p;
  }
  uint64_t h = mt_hash_stack(pcs, u.n, tid);
  for (const char *c = region; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
  pthread_mutex_lock(&mt_prof_mutex);
  if (mt_stacks != NULL) {
    uint32_t s = mt_stack_intern(pcs, u.n, tid, region, h);
    mt_prof_counts *c = &mt_stacks[s].now;
    c->alloc_objects += objects;
    c->alloc_bytes += bytes;
    c->live_objects += objects;
    c->live_bytes += bytes;
    mt_live_put((uintptr_t)block, s, objects, bytes);
  }
  pthread_mutex_unlock(&mt_prof_mutex);
}

void mt__prof_on_free(void *block) {
  pthread_mutex_lock(&mt_prof_mutex);
  mt_live *l = mt_live_find((uintptr_t)block);
  if (l != NULL) {
    mt_prof_counts *c = &mt_stacks[l->stack].now;
    c->live_objects -= l->objects;
    c->live_bytes -= l->bytes;
    l->addr = 1;
    mt_live_dead++;
  }
  pthread_mutex_unlock(&mt_prof_mutex);
}

int mt__prof_snapshot(mt_prof_snapshot *snap, bool window) {
  memset(snap, 0, sizeof *snap);
  pthread_mutex_lock(&mt_prof_mutex);
  size_t ns = mt_nstacks, np = mt_pool_used;
  size_t bytes = sizeof(mt_prof_stack) * (ns ? ns : 1) + sizeof(uintptr_t) * (np ? np : 1);
  uint8_t *mem = mt__os_reserve(bytes);
  if (mem == NULL) {
    pthread_mutex_unlock(&mt_prof_mutex);
    return -1;
  }
  snap->stacks = (mt_prof_stack *)mem;
  snap->pcs = (uintptr_t *)(mem + sizeof(mt_prof_stack) * (ns ? ns : 1));
  memcpy(snap->stacks, mt_stacks, sizeof(mt_prof_stack) * ns);
  memcpy(snap->pcs, mt_pool, sizeof(uintptr_t) * np);
  snap->nstacks = ns;
  snap->npcs = np;
  snap->map_bytes = bytes;
  snap->rate = mt__prof_rate;
  uint64_t now = mt__os_now_ns();
  snap->time_ns = mt__os_wall_ns();
  snap->duration_ns = now - (window ? mt_window_start_ns : mt_prof_start_ns);
  if (window) {
    for (size_t i = 0; i < ns; i++) mt_stacks[i].window = mt_stacks[i].now;
    mt_window_start_ns = now;
  }
  pthread_mutex_unlock(&mt_prof_mutex);
  return 0;
}

void mt__prof_snapshot_free(mt_prof_snapshot *snap) {
  if (snap->stacks) mt__os_unreserve(snap->stacks, snap->map_bytes);
  memset(snap, 0, sizeof *snap);
}

void mt__prof_reset(void) {
  pthread_mutex_init(&mt_prof_mutex, NULL);
  if (mt_stacks == NULL) return;
  memset(mt_stack_index, 0, sizeof(uint32_t) * mt_stack_slots);
  mt_nstacks = mt_pool_used = 0;
  if (mt_live_tab) memset(mt_live_tab, 0, sizeof(mt_live) * mt_live_cap);
  mt_live_used = mt_live_dead = 0;
  mt_prof_start_ns = mt_window_start_ns = mt__os_now_ns();
}

void mt__prof_locks(int what) {
  if (what == 0) pthread_mutex_lock(&mt_prof_mutex);
  else if (what == 1) pthread_mutex_unlock(&mt_prof_mutex);
  else mt__prof_reset();
}
