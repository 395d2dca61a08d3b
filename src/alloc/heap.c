/* heap.c -- set-up of the layers below, thread heaps, thread exit, the allocator after fork
 *
 * Heaps live in memory memtally maps for itself, never in the public heap.
 * They are never unmapped: a heap whose thread exited goes on a free list
 * and serves the next new thread, keeping its cumulative counters, so sums
 * over the registry stay exact. The registry is append-only; readers walk it
 * without a lock. */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "../options/options.h"
#include "../os/os.h"
#include "../sample/sample.h"
#include "alloc.h"
#include "memtally.h"

mt_heap mt__heap_empty = {
    .direct = {[0 ... MT_DIRECT_COUNT - 1] = &mt__page_empty},
    .current = {[0 ... MT_NCLASSES - 1] = &mt__page_empty},
    .countdown = INT64_MAX,
};

__thread mt_heap *mt__tls_heap __attribute__((tls_model("initial-exec"))) = &mt__heap_empty;

static pthread_mutex_t mt_heaps_mutex = PTHREAD_MUTEX_INITIALIZER;
static mt_heap *_Atomic mt_heaps_all;
static mt_heap *mt_heaps_free;
static uint8_t *mt_meta_next, *mt_meta_end;
static pthread_key_t mt_heap_key;
static _Atomic int mt_init_state; /* 0 not started, 1 running, 2 done */

mt_heap *mt__heaps_first(void) { return atomic_load_explicit(&mt_heaps_all, memory_order_acquire); }

static void mt_heap_done(void *arg);

void mt__init(void) {
  if (mt_likely(atomic_load_explicit(&mt_init_state, memory_order_acquire) == 2)) return;
  int expected = 0;
  if (atomic_compare_exchange_strong(&mt_init_state, &expected, 1)) {
    mt__os_init();
    uintptr_t key = 0;
    while (key == 0) key = (uintptr_t)mt__os_random();
    mt__free_key = key;
    mt__options_init();
    mt__os_set_commit_limit(mt__opt[MT_OPT_MEMLIMIT] > 0 ? (uint64_t)mt__opt[MT_OPT_MEMLIMIT] : 0);
    mt__prof_init();
#if MT_DEBUG >= 2
    const char *why;
    if (mt__classes_check(&why) >= 0) mt__assert_fail(why, __FILE__, __LINE__);
#endif
    pthread_key_create(&mt_heap_key, mt_heap_done);
    atomic_store_explicit(&mt_init_state, 2, memory_order_release);
  } else {
    while (atomic_load_explicit(&mt_init_state, memory_order_acquire) != 2) {
    }
  }
  mt__options_init(); /* in case the environment was not there yet */
  mt__os_set_commit_limit(mt__opt[MT_OPT_MEMLIMIT] > 0 ? (uint64_t)mt__opt[MT_OPT_MEMLIMIT] : 0);
}

/* Internal memory for heap structs, taken from the OS in 64 KiB chunks. */
static void *mt_meta_alloc(size_t size) {
  mt_assert(mt_meta_next <= mt_meta_end);
  size = mt_align_up(size, 64);
  if (mt_meta_next == NULL || (size_t)(mt_meta_end - mt_meta_next) < size) {
    size_t chunk = size > 64 * MT_KiB ? mt_align_up(size, 4096) : 64 * MT_KiB;
    uint8_t *p = mt__os_map_aligned(chunk, 4096);
    if (p == NULL) return NULL;
    mt__os_commit_add((int64_t)chunk);
    mt_meta_next = p;
    mt_meta_end = p + chunk;
  }
  void *r = mt_meta_next;
  mt_meta_next += size;
  return r;
}

static void mt_heap_reset(mt_heap *heap) {
  for (unsigned i = 0; i < MT_DIRECT_COUNT; i++) heap->direct[i] = &mt__page_empty;
  for (unsigned i = 0; i < MT_NCLASSES; i++) heap->current[i] = heap->scurrent[i] = &mt__page_empty;
  memset(heap->avail, 0, sizeof heap->avail);
  memset(heap->full, 0, sizeof heap->full);
  heap->segments = NULL;
  heap->segment_count = 0;
  heap->segment_waits = 0;
  atomic_store_explicit(&heap->remote_pending[0], 0, memory_order_relaxed);
  atomic_store_explicit(&heap->remote_pending[1], 0, memory_order_relaxed);
  mt__countdown_reset(heap);
}

mt_heap *mt__heap_for_thread(void) {
  mt_heap *heap = mt__tls_heap;
  if (heap != &mt__heap_empty) return heap;
  mt__init();
  pthread_mutex_lock(&mt_heaps_mutex);
  heap = mt_heaps_free;
  if (heap != NULL) {
    mt_heaps_free = heap->next_free;
  } else {
    heap = mt_meta_alloc(sizeof(mt_heap));
    if (heap != NULL) {
      memset(heap, 0, sizeof *heap);
      heap->next_all = atomic_load_explicit(&mt_heaps_all, memory_order_relaxed);
      atomic_store_explicit(&mt_heaps_all, heap, memory_order_release);
    }
  }
  pthread_mutex_unlock(&mt_heaps_mutex);
  if (heap == NULL) return NULL;
  mt_heap_reset(heap);
  mt__segment_reserve_fill(); /* while there is address space: see mt_seg_reserve */
  if (heap->sample.cache != NULL) mt__prof_cache_clear(heap->sample.cache); /* another thread's stacks */
  mt_assert(!heap->alive && heap->segments == NULL);
  heap->tid = mt__os_thread_id();
  heap->alive = 1;
  heap->last_maintenance_ms = mt__os_now_ms();
  mt__tls_heap = heap;
  /* May allocate (keys past the first 32); the heap is in place already. */
  pthread_setspecific(mt_heap_key, heap);
  return heap;
}

static void mt_heap_done(void *arg) {
  mt_heap *heap = arg;
  if (heap == NULL || heap == &mt__heap_empty) return;
  mt_assert(heap->alive);
  mt__tls_heap = &mt__heap_empty;
  mt__segment_abandon_heap(heap);
  mt_heap_reset(heap);
  pthread_mutex_lock(&mt_heaps_mutex);
  heap->alive = 0;
  heap->next_free = mt_heaps_free;
  mt_heaps_free = heap;
  pthread_mutex_unlock(&mt_heaps_mutex);
}

void mt__heap_maintain(mt_heap *heap, bool force) {
  uint64_t now = mt__os_now_ms();
  long long delay = mt__opt[MT_OPT_PURGE_DELAY];
  heap->last_maintenance_ms = now;
  for (unsigned c = 0; c < MT_CLASS_COUNT - 1; c++) mt__heap_collect_remote(heap, c);
  if (delay >= 0 || force) {
    for (mt_segment *seg = heap->segments; seg != NULL; seg = seg->next)
      mt__segment_purge(seg, now, delay < 0 ? 0 : (uint64_t)delay, force);
  }
  mt__segment_sweep_abandoned(force);
  mt__segment_cache_maintain(now, force);
  mt__huge_cache_maintain(now, force);
}

void mt_collect(void) {
  mt_heap *heap = mt__heap_for_thread();
  if (heap == NULL) return;
#if MT_DEBUG >= 2
  mt__heap_validate(heap);
#endif
  /* Empty pages kept as a class's current page go back as well. */
  for (unsigned c = 0; c < MT_NCLASSES; c++) {
    mt_page *pages[2] = {heap->current[c], heap->scurrent[c]};
    for (int k = 0; k < 2; k++) {
      if (pages[k] == &mt__page_empty) continue;
      mt__page_collect(heap, pages[k]);
      if (pages[k]->used == 0) mt__page_retire(heap, pages[k]);
    }
  }
  mt__heap_maintain(heap, true);
}

/* ---- fork: no lock is held across it (docs/fork.md) ----
 *
 * Taking memtally's locks before fork deadlocks: glibc's fork runs the
 * prepare handlers first and only then takes the stdio list lock, while a
 * thread in fflush(NULL) holds that lock and waits for a FILE lock whose
 * holder (in getline) waits in realloc for a lock the forking thread took.
 * So the parent does nothing; the child, alone, makes every lock usable
 * again and forgets any list whose lock was held at the moment of fork. */

/* The heap registry is append-only and published with one store; the free
 * list of heaps and the chunk of heap memory may be half updated if the
 * lock was held, so the child forgets them (a few heap structs leak). */
static void mt_heaps_after_fork(void) {
  if (mt__os_mutex_reclaim(&mt_heaps_mutex)) {
    mt_heaps_free = NULL;
    mt_meta_next = mt_meta_end = NULL;
  }
}

/* In the child only the forking thread lives on. Other threads' heaps may
 * have been mid-update, so they are left untouched (their blocks stay
 * valid; frees into them go to the pages' remote lists). Nothing here
 * allocates from the public heap. Called from init.c's fork handler. */
void mt__alloc_after_fork_child(void) {
  mt__huge_after_fork();
  mt__segment_after_fork();
  mt_heaps_after_fork();
  mt_heap *self = mt__tls_heap;
  if (self != &mt__heap_empty) self->tid = mt__os_thread_id();
}

void *mt__malloc_labelled(size_t size, const char *label) {
  mt_heap *heap = mt__tls_heap;
  if (heap == &mt__heap_empty) heap = mt__heap_for_thread();
  if (heap != NULL) heap->sample.label = label;
  void *p = mt_malloc(size);
  if (heap != NULL) heap->sample.label = NULL;
  return p;
}
