/* unwind.c -- stack capture for samples: libgcc's unwinder and the per-thread stack cache
 *
 * A full unwind (DWARF CFI through libgcc) costs about a microsecond, so a
 * thread keeps the stacks it unwound recently, keyed by the return address
 * into the program and the program's stack pointer at the call. A cached
 * stack is used again only while every return address it recorded is still
 * in the stack slot it was read from. Entry points that reach the sampler
 * through memtally's own calls (calloc, posix_memalign, a growing realloc)
 * first find the program's frame above a remembered layout of memtally's
 * frames. memtally's own frames never appear in a stack. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <string.h>
#include <unwind.h>

#include "../os/os.h"
#include "sample.h"

/* frames of memtally itself at the top of every stack are dropped */
static uintptr_t mt_self_lo, mt_self_hi;

/* The executable range of the object memtally is in, unless that is the
 * program itself (linked statically: no range to skip, keep every frame). */
static bool mt_find_self(void) {
  mt_os_object o;
  if (mt__os_object_of((const void *)(uintptr_t)&mt__prof_init, &o) != 0) return false; /* the loader is busy */
  if (o.is_main) return true;
  mt_self_lo = o.lo;
  mt_self_hi = o.hi;
  return true;
}

static bool mt_in_self(uintptr_t ip) { return ip >= mt_self_lo && ip < mt_self_hi; }

/* The functions that call main and each thread's start routine
 * (mt__prof_set_roots): a frame of either ends the stack, so the C
 * library's start-up frames are neither recorded nor unwound, and their
 * unwind tables stay out of memory. 1 where none were set. */
static uintptr_t mt_root_main = 1, mt_root_thread = 1;

void mt__prof_set_roots(const void *main_root, const void *thread_root) {
  mt_root_main = (uintptr_t)main_root;
  mt_root_thread = (uintptr_t)thread_root;
}

#define MT_SELF_SEEN 16
struct mt_unwind {
  uintptr_t *pcs;
  uintptr_t *cfa; /* stack pointer of each recorded frame (the callee's CFA), or NULL */
  int n, max;
  int in_self; /* still in memtally's frames */
  int nself;   /* memtally's frames passed, as return address and CFA (with cfa only) */
  uintptr_t self_ip[MT_SELF_SEEN], self_cfa[MT_SELF_SEEN];
};

static _Unwind_Reason_Code mt_unwind_step(struct _Unwind_Context *ctx, void *arg) {
  struct mt_unwind *u = arg;
  uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
  if (ip == 0) return _URC_END_OF_STACK;
  if (u->in_self) {
    if (mt_in_self(ip)) {
      if (u->cfa && u->nself < MT_SELF_SEEN) {
        u->self_ip[u->nself] = ip;
        u->self_cfa[u->nself++] = (uintptr_t)_Unwind_GetCFA(ctx);
      }
      return _URC_NO_REASON;
    }
    u->in_self = 0;
  }
  /* the function this frame is in, from the entry already looked up for it */
  uintptr_t fn = (uintptr_t)_Unwind_GetRegionStart(ctx);
  if (fn == mt_root_main || fn == mt_root_thread) return _URC_END_OF_STACK;
  if (u->cfa) u->cfa[u->n] = (uintptr_t)_Unwind_GetCFA(ctx);
  u->pcs[u->n++] = ip - 1; /* a return address: point into the call */
  return u->n >= u->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

static _Atomic int mt_self_known;

mt_stack_cache *mt__prof_cache_new(void) { return mt__os_reserve(sizeof(mt_stack_cache)); }

void mt__prof_cache_clear(mt_stack_cache *cache) {
  for (uint32_t i = 0; i < MT_STACK_CACHE; i++) cache->e[i].ip0 = 0, cache->e[i].n = 0;
  for (uint32_t i = 0; i < MT_SELF_PATHS; i++) cache->self[i].ip0 = 0;
  cache->victim = 0;
}

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

/* The ways a key may sit in. Two callers of one function at the same depth
 * give the same key with different stacks (add and mul both calling make,
 * say); with one entry per key they would evict each other on every call. */
static mt_stack_cache_entry *mt_cache_set(mt_stack_cache *cache, uintptr_t ip0, uintptr_t sp0) {
  uint64_t h = (ip0 ^ (sp0 >> 4)) * 0x9e3779b97f4a7c15ULL;
  return &cache->e[(h >> (64 - MT_STACK_CACHE_BITS + MT_STACK_WAYS_BITS)) * MT_STACK_WAYS];
}

/* The way of a set to fill: an empty one, else each in turn. */
static mt_stack_cache_entry *mt_cache_victim(mt_stack_cache *cache, mt_stack_cache_entry *set) {
  for (uint32_t w = 0; w < MT_STACK_WAYS; w++)
    if (set[w].n == 0) return &set[w];
  return &set[cache->victim++ % MT_STACK_WAYS];
}

#define MT_SELF_OFF_MAX 4096 /* memtally's own frames between the hook and the program stay below this */

/* The program's return address and stack pointer above a known memtally
 * path, or 0 when ip0/sp0 do not follow the path remembered for ip0. */
static uintptr_t mt_self_path_follow(const mt_self_path *p, uintptr_t ip0, uintptr_t sp0, uintptr_t *sp) {
  if (p->ip0 != ip0 || p->app_off == 0) return 0;
  for (uint32_t j = 0; j < p->n; j++)
    if (*(const uintptr_t *)(sp0 + p->off[j] - sizeof(uintptr_t)) != p->ra[j]) return 0;
  uintptr_t ra = *(const uintptr_t *)(sp0 + p->app_off - sizeof(uintptr_t));
  if (mt_in_self(ra)) return 0;
  *sp = sp0 + p->app_off;
  return ra;
}

/* After a full unwind from inside memtally: remember the frames from the
 * hook's caller (ip0, at sp0) up to the program, if they are few and near. */
static void mt_self_path_learn(mt_self_path *p, const struct mt_unwind *u, uintptr_t ip0, uintptr_t sp0) {
  p->ip0 = 0;
  int i = 0;
  while (i < u->nself && u->self_ip[i] != ip0) i++;
  /* frame i is the hook's caller itself: its return address is ip0, the key */
  if (i == u->nself || u->n == 0 || u->nself - i - 1 > MT_SELF_FRAMES) return;
  if (u->cfa[0] <= sp0 || u->cfa[0] - sp0 > MT_SELF_OFF_MAX) return;
  uint32_t n = 0;
  for (int j = i + 1; j < u->nself; j++) {
    uintptr_t c = u->self_cfa[j];
    if (c <= sp0 || c - sp0 > MT_SELF_OFF_MAX) return;
    p->off[n] = (uint32_t)(c - sp0);
    p->ra[n++] = u->self_ip[j];
  }
  p->n = n;
  p->app_off = (uint32_t)(u->cfa[0] - sp0);
  p->ip0 = ip0;
}

/* The remembered path for ip0: two slots may hold it, so the call sites of
 * one hook (free's, for each kind of block) do not evict each other when
 * their addresses share a slot (they did in one load layout: every other
 * sampled free unwound in full). Else the slot to learn it in. */
static mt_self_path *mt_self_path_slot(mt_stack_cache *cache, uintptr_t ip0) {
  unsigned h = (unsigned)((ip0 * 0x9e3779b97f4a7c15ULL) >> (64 - MT_SELF_PATHS_BITS));
  mt_self_path *a = &cache->self[h], *b = &cache->self[h ^ 1];
  if (a->ip0 == ip0) return a;
  if (b->ip0 == ip0) return b;
  return a->ip0 == 0 || b->ip0 != 0 ? a : b;
}

int mt__prof_capture(uintptr_t *pcs, uintptr_t ip0, uintptr_t sp0, mt_stack_cache *cache, uint64_t tid,
                     bool labelled, uint64_t gen, uint32_t *stack, mt_stack_cache_entry **remember) {
  *remember = NULL;
  if (!atomic_load_explicit(&mt_self_known, memory_order_acquire)) {
    /* at the first sample, not at start-up: the loader may still be busy
     * then (a sample inside the loader tries again at the next one) */
    if (mt_find_self()) atomic_store_explicit(&mt_self_known, 1, memory_order_release);
  }
  uintptr_t cfa[MT_PROF_MAX_FRAMES];
  struct mt_unwind u; /* field by field: the self arrays are written before they are read */
  u.pcs = pcs;
  u.cfa = NULL;
  u.n = u.nself = 0;
  u.max = MT_PROF_MAX_FRAMES;
  u.in_self = mt_self_hi != 0;
  mt_stack_cache_entry *e = NULL;
  mt_self_path *path = NULL; /* the hook was called from inside memtally at ip0 */
  uintptr_t self_ip0 = ip0, self_sp0 = sp0;
  if (cache != NULL && ip0 != 0 && mt_self_hi != 0 && mt_in_self(ip0)) {
    path = mt_self_path_slot(cache, ip0);
    ip0 = mt_self_path_follow(path, ip0, sp0, &sp0); /* 0: unwind in full, then learn */
    if (ip0 == 0) u.cfa = cfa;
  }
  if (cache != NULL && ip0 != 0 && mt_self_hi != 0 && !mt_in_self(ip0)) {
    mt_stack_cache_entry *set = mt_cache_set(cache, ip0, sp0);
    for (uint32_t w = 0; w < MT_STACK_WAYS; w++) {
      e = &set[w];
      if (e->ip0 != ip0 || e->sp0 != sp0 || e->n == 0 || !mt_cache_valid(e)) continue;
      /* the same stack as last time: its number too, unless the table was
       * reset since (fork) or the label differs */
      *remember = e;
      if (e->stack_gen == gen && e->stack_tid == tid && !labelled) {
        *stack = e->stack;
        return -1;
      }
      memcpy(pcs, e->pcs, sizeof(uintptr_t) * e->n);
      return (int)e->n;
    }
    e = mt_cache_victim(cache, set);
    u.cfa = cfa;
  }
  _Unwind_Backtrace(mt_unwind_step, &u);
  if (path != NULL && ip0 == 0 && u.n > 0) {
    mt_self_path_learn(path, &u, self_ip0, self_sp0);
    ip0 = pcs[0] + 1; /* and remember the program's part, keyed as for malloc */
    sp0 = cfa[0];
    e = mt_cache_victim(cache, mt_cache_set(cache, ip0, sp0));
  }
  if (e != NULL && u.n > 0 && u.n <= (int)MT_STACK_CACHE_FRAMES && pcs[0] + 1 == ip0) { /* the unwinder agrees: remember it */
    e->ip0 = ip0;
    e->sp0 = sp0;
    e->n = (uint32_t)u.n;
    e->stack_gen = 0; /* its number is not known yet */
    memcpy(e->pcs, pcs, sizeof(uintptr_t) * (size_t)u.n);
    memcpy(e->cfa, cfa, sizeof(uintptr_t) * (size_t)u.n);
  } else if (e != NULL) {
    e->n = 0;
  }
  *remember = e != NULL && e->n > 0 ? e : NULL;
  return u.n;
}

void mt__prof_remember(mt_stack_cache_entry *e, uint32_t stack, uint64_t tid, uint64_t gen) {
  e->stack = stack;
  e->stack_tid = tid;
  e->stack_gen = gen;
}
