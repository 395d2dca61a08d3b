/* spin.h -- the profiler's short locks: a word, spun on, then yielded on
 *
 * The live-sample shards and the lifetimes table are held for a hash probe
 * (rarely a table's growth). A pthread mutex under contention costs two
 * system calls a wait (rptest-2t: 190 futex calls a run on the lifetimes
 * table); these spin, then yield. A fork child takes them over by storing
 * 0 (only the forking thread survives). */
#ifndef MT_SAMPLE_SPIN_H
#define MT_SAMPLE_SPIN_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

static inline void mt_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static inline void mt_spin_lock(_Atomic int *l) {
  for (int spins = 0; atomic_exchange_explicit(l, 1, memory_order_acquire);) {
    while (atomic_load_explicit(l, memory_order_relaxed)) {
      if (++spins < 64) mt_cpu_relax();
      else sched_yield();
    }
  }
}

static inline void mt_spin_unlock(_Atomic int *l) { atomic_store_explicit(l, 0, memory_order_release); }

/* The lock within about a millisecond of trying, or false (its holder may be
 * the thread a signal handler interrupted). */
static inline bool mt_spin_trylock(_Atomic int *l) {
  for (int spins = 0; spins < 1000; spins++) {
    if (!atomic_exchange_explicit(l, 1, memory_order_acquire)) return true;
    mt_cpu_relax();
  }
  return false;
}

#endif
