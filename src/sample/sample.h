/* sample.h -- the recorder: sampling intervals, stack capture, stack table, live samples
 *
 * The allocation path pays one per-thread byte countdown (heap->countdown,
 * alloc/countdown.c). When it crosses zero the allocation is sampled: its
 * raw program counters go into a stack table kept outside the public heap
 * (this layer), the block is served from a page reserved for sampled blocks
 * (so free() finds sampled blocks by the page tag alone and unsampled frees
 * never look anything up), and the next countdown is drawn from an
 * exponential distribution. The recorder knows no heap: it sits below the
 * allocator. Symbolizing, encoding and writing are the profile layer's
 * (profile/profile.h), which reads the table through snapshots. */
#ifndef MT_SAMPLE_H
#define MT_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/common.h"

#define MT_PROF_MAX_FRAMES 64

/* Per-stack figures. Sample weights make the estimates unbiased: a sample
 * of size s taken at mean interval R stands for 1/p allocations of s bytes,
 * p = 1 - exp(-s/R). Kept in doubles (sums of weights), exported rounded. */
typedef struct mt_prof_counts {
  double alloc_objects, alloc_bytes;  /* cumulative (bytes as requested) */
  double live_objects, live_bytes;    /* in use now */
  double alloc_held, live_held;       /* bytes of the blocks handed out: with size-class rounding */
} mt_prof_counts;

typedef struct mt_prof_stack {
  uint32_t npcs;
  uint32_t pcs_at;          /* index of the first pc in the pc pool */
  uint64_t tid;             /* thread that allocated (label) */
  char region[48];          /* region whose chunk this was (label), or empty */
  mt_prof_counts now;
  mt_prof_counts window;    /* alloc figures at the start of the current window */
} mt_prof_stack;

/* How long sampled blocks lived (lifetimes.c): per allocation stack,
 * freeing stack and lifetime bucket (a log scale, sixteen per power of
 * two from 1 us; bucket 0: under 1 us), the weights of the blocks and the sum
 * of weight x lifetime. A block still in use when the copy is taken has
 * free_stack MT_LIFE_IN_USE and its age so far as lifetime. */
#define MT_LIFE_BUCKETS 865 /* 1 + 54 powers of two x 16 */
#define MT_LIFE_IN_USE 0xfffffffeu  /* not freed yet */
#define MT_LIFE_ANY_FREE 0xfffffffdu /* freed; the table had no room for its freeing stack */
typedef struct mt_prof_life {
  uint32_t alloc_stack, free_stack;
  uint16_t bucket;
  uint8_t other_thread;             /* freed by a thread other than the allocating one */
  double objects, bytes, total_ns;
} mt_prof_life;

/* A consistent copy of the table for writing a profile. */
typedef struct mt_prof_snapshot {
  mt_prof_stack *stacks;
  size_t nstacks;
  uintptr_t *pcs;           /* pool, indexed by pcs_at */
  size_t npcs;
  uint64_t time_ns, duration_ns;
  double rate;              /* mean sampling interval in bytes */
  size_t map_bytes;         /* size of the mapping holding the copy */
  mt_prof_life *lives;      /* with mt__prof_snapshot_lifetimes: the lifetime table and the blocks in use */
  size_t nlives, lives_bytes;
} mt_prof_snapshot;

/* The recorder's per-thread state; each thread heap holds one (alloc.h). */
typedef struct mt_sample_thread {
  int64_t left;                       /* bytes until the next sample */
  uint64_t rng;                       /* sampling interval generator state */
  int busy;                           /* 1 while the recorder (or a profile writer) runs on this thread */
  struct mt_stack_cache *cache;       /* recently unwound stacks (recorder memory) */
  const char *label;                  /* region whose chunk is being allocated, or NULL */
} mt_sample_thread;

MT_HIDDEN extern _Atomic int mt__prof_on;     /* sampling enabled */
MT_HIDDEN extern double mt__prof_rate;         /* MEMTALLY_PROF_RATE as a double */

/* Map the tables. Sampling stays off until mt__prof_enable: allocations
 * made before the library's constructor (a static program's start-up code
 * allocates before the unwinder can run) are never sampled. */
MT_HIDDEN void mt__prof_init(void);
MT_HIDDEN void mt__prof_enable(void);
/* Bytes until the next sample, drawn from an exponential distribution. */
MT_HIDDEN int64_t mt__prof_next_interval(uint64_t *rng);
/* The sampler's arithmetic, without libm: ln(x) for x in (0, 1], and
 * 1 - exp(-x) for x >= 0 (the probability that a block of x mean intervals
 * is sampled). */
MT_HIDDEN double mt__prof_ln(double x);
MT_HIDDEN double mt__prof_one_minus_exp_neg(double x);
/* Recently unwound stacks of one thread. An entry is reused when malloc is
 * called again from the same return address with the same stack pointer
 * and every return address it recorded is still in its stack slot. */
#define MT_STACK_CACHE_BITS 5
#define MT_STACK_CACHE (1u << MT_STACK_CACHE_BITS)
#define MT_STACK_WAYS_BITS 2 /* a key may sit in any of 4 entries: callers that share */
#define MT_STACK_WAYS (1u << MT_STACK_WAYS_BITS) /* a call site and stack depth coexist */
/* Frames an entry holds: deeper stacks are unwound in full each time. At
 * 64 the 32 entries took 34 KiB a thread, all of it resident once a
 * program sampled from a few dozen places. */
#define MT_STACK_CACHE_FRAMES 32
typedef struct mt_stack_cache_entry {
  uintptr_t ip0, sp0;                 /* return address into the program, its stack pointer */
  uint32_t n;
  uint32_t stack;                     /* its number in the stack table, valid while */
  uint64_t stack_gen, stack_tid;      /* the table's generation and the thread are these */
  uintptr_t pcs[MT_STACK_CACHE_FRAMES]; /* as recorded (return address - 1) */
  uintptr_t cfa[MT_STACK_CACHE_FRAMES]; /* stack pointer of frame k: pcs[k] + 1 sits just below it */
} mt_stack_cache_entry;
/* Entry points that reach the hook through calls rather than tail calls
 * (calloc, posix_memalign, a growing realloc, ...) give a return address
 * inside memtally. Its frames between the hook and the program have fixed
 * sizes, so once unwound they are remembered by that return address: the
 * return address of each of them (checked in its slot, relative to the
 * hook's CFA) and where the program's return address sits. The program's
 * return address and stack pointer then key the cache as for malloc. */
#define MT_SELF_PATHS_BITS 3
#define MT_SELF_PATHS (1u << MT_SELF_PATHS_BITS)
#define MT_SELF_FRAMES 6
typedef struct mt_self_path {
  uintptr_t ip0;                      /* return address into memtally of the hook's caller; 0 unused */
  uint32_t n;                         /* memtally frames checked */
  uint32_t app_off;                   /* program's return address at sp0 + app_off - 8 */
  uint32_t off[MT_SELF_FRAMES];       /* memtally frame j's return address ra[j] at sp0 + off[j] - 8 */
  uintptr_t ra[MT_SELF_FRAMES];
} mt_self_path;
typedef struct mt_stack_cache {
  mt_stack_cache_entry e[MT_STACK_CACHE];
  uint32_t victim;                    /* which way of a full set is replaced next */
  mt_self_path self[MT_SELF_PATHS];
} mt_stack_cache;

/* Record a sampled allocation of size bytes at block (taken from a sampled
 * page, a large page or a huge segment). ip0/sp0: return address and stack
 * pointer of malloc's caller when the allocation entry points reached the
 * hook only through tail calls (0 otherwise); cache: the thread's stack
 * cache (may be NULL). counted: the bytes the countdown charged for this
 * allocation (its block size), which sets the sampling probability. */
MT_HIDDEN void mt__prof_record(void *block, size_t size, size_t counted, uint64_t tid, const char *region,
                               uintptr_t ip0, uintptr_t sp0, mt_stack_cache *cache);
/* The stack of the allocation being sampled, into pcs (MT_PROF_MAX_FRAMES),
 * without memtally's own frames: the number of frames, or -1 when the
 * thread's cache already knows the stack's number in the table (*stack),
 * which it does only for the table generation gen, the thread tid and
 * unlabelled samples. *remember: the cache entry that holds this stack, to
 * be given its number with mt__prof_remember, or NULL. ip0/sp0/cache as for
 * mt__prof_record. */
MT_HIDDEN int mt__prof_capture(uintptr_t *pcs, uintptr_t ip0, uintptr_t sp0, mt_stack_cache *cache, uint64_t tid,
                               bool labelled, uint64_t gen, uint32_t *stack, mt_stack_cache_entry **remember);
MT_HIDDEN void mt__prof_remember(mt_stack_cache_entry *e, uint32_t stack, uint64_t tid, uint64_t gen);
/* A zeroed cache for a thread, or NULL. */
MT_HIDDEN mt_stack_cache *mt__prof_cache_new(void);
/* The functions that call main and each thread's start routine (the entry
 * layer's roots.c, shared library only): a stack ends at a frame of either,
 * which is not recorded. Set once at start-up, before any thread is made. */
MT_HIDDEN void mt__prof_set_roots(const void *main_root, const void *thread_root);
/* Forget every stack the cache holds (it passes to another thread): only the
 * keys are cleared, not the 18 KiB of recorded frames. */
MT_HIDDEN void mt__prof_cache_clear(mt_stack_cache *cache);
/* A block that may be a sample is being freed: if it is one, its lifetime
 * and the stack that frees it are recorded and 1 returned, else 0 (cache:
 * the freeing thread's stack cache, or NULL; tid: its kernel thread id from
 * its heap, 0 if it has none: a system call per sampled free cost
 * alloc-test-1t 5 % of its time). */
MT_HIDDEN int mt__prof_on_free(void *block, mt_stack_cache *cache, uint64_t tid);
/* Add the lifetime table and the sampled blocks still in use to snap
 * (taken by mt__prof_snapshot). -1: no memory. */
MT_HIDDEN int mt__prof_snapshot_lifetimes(mt_prof_snapshot *snap);
/* lifetimes.c: the bucket of a lifetime and the floor of a bucket, in ns */
MT_HIDDEN unsigned mt__life_bucket(uint64_t ns);
MT_HIDDEN uint64_t mt__life_bucket_floor(unsigned bucket);
MT_HIDDEN void mt__life_add(uint32_t alloc_stack, uint32_t free_stack, uint64_t lifetime_ns, bool other_thread,
                            double objects, double bytes);
/* Copy the table into out; nowait: -1 rather than wait for its lock. */
MT_HIDDEN int mt__life_copy(mt_prof_life *out, size_t cap, size_t *n, bool nowait);
MT_HIDDEN size_t mt__life_count(void);
MT_HIDDEN void mt__life_reset(void);
/* From now on a snapshot that would wait for the table's lock fails
 * instead (the process is ending in _exit, perhaps from a signal handler). */
MT_HIDDEN void mt__prof_snapshot_nowait(void);
/* Copy the table; with window, also start a new window. -1: no memory (or
 * the lock was held, after mt__prof_snapshot_nowait). */
MT_HIDDEN int mt__prof_snapshot(mt_prof_snapshot *snap, bool window);
MT_HIDDEN void mt__prof_snapshot_free(mt_prof_snapshot *snap);
/* Forget everything (the child after fork). */
MT_HIDDEN void mt__prof_reset(void);

#endif
