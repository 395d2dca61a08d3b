/* stress_work.h -- test-stress's workload, one copy for the benchmark b_stress and the test test_rounds
 *
 * Each round starts a generation of threads; a thread (stress_worker)
 * allocates with calloc blocks of 2^k words (now and then 100, 1,000 or
 * 10,000 times larger), fills every word, keeps some to the end of its life
 * and others in an array grown by realloc, frees one of those at random two
 * times in three, and swaps one with a slot shared by all threads one time
 * in four, so blocks are freed by threads that did not allocate them, often
 * after their owner has exited. Between generations stress_round_end frees
 * half of the slots and leaves the rest to the next one. Every block is
 * checked word by word when freed.
 *
 * The includer defines stress_damaged(p, at, words), called for a block
 * whose word `at` changed, and includes this after any header that renames
 * calloc/realloc/free (test/mt_api.h). */
#ifndef MT_STRESS_WORK_H
#define MT_STRESS_WORK_H

#include <stdatomic.h>
#include <stdint.h>

#include "bench.h"

#define STRESS_SLOTS 1000
static void *_Atomic stress_slots[STRESS_SLOTS];
static const uint64_t stress_cookie = 0x2545f4914f6cdd1dULL;

static void stress_damaged(const uint64_t *p, size_t at, size_t words);

static int stress_chance(unsigned percent, uint64_t *r) { return bench_rand(r) % 100 < percent; }

static uint64_t *stress_make(size_t words, uint64_t *r) {
  if (stress_chance(1, r)) words *= stress_chance(1, r) ? 10000 : stress_chance(10, r) ? 1000 : 100;
  if (words == 0) words = 1;
  uint64_t *p = calloc(words, sizeof(uint64_t));
  if (p == NULL) {
    fprintf(stderr, "stress: calloc of %zu words failed\n", words);
    abort();
  }
  for (size_t i = 0; i < words; i++) p[i] = (words - i) ^ stress_cookie;
  return p;
}

static void stress_drop(uint64_t *p) {
  if (p == NULL) return;
  size_t words = (size_t)(p[0] ^ stress_cookie);
  for (size_t i = 0; i < words; i++)
    if ((p[i] ^ stress_cookie) != words - i) {
      stress_damaged(p, i, words);
      break;
    }
  free(p);
}

/* One thread's life: load hundreds of blocks, times (id % 8 + 1) (some
 * threads do more). Returns the number of blocks it allocated. */
static uint64_t stress_worker(long id, size_t load) {
  uint64_t r = (uint64_t)id * 43 + 1, made = 0;
  size_t left = 100 * load * (size_t)(id % 8 + 1), keep_left = left / 2;
  uint64_t **kept = calloc(keep_left + 1, sizeof *kept), **data = NULL;
  size_t nkept = 0, cap = 0, n = 0;
  if (kept == NULL) abort();
  while (left > 0 || keep_left > 0) {
    if (keep_left == 0 || (left > 0 && stress_chance(50, &r))) {
      left--;
      if (n == cap) {
        cap += 10000;
        data = realloc(data, cap * sizeof *data);
        if (data == NULL) abort();
      }
      data[n++] = stress_make((size_t)1 << (bench_rand(&r) % 5), &r);
    } else {
      kept[nkept++] = stress_make((size_t)1 << (bench_rand(&r) % 7), &r);
      keep_left--;
    }
    made++;
    if (n > 0 && stress_chance(66, &r)) {
      size_t i = bench_rand(&r) % n;
      stress_drop(data[i]);
      data[i] = NULL;
    }
    if (n > 0 && stress_chance(25, &r)) { /* swap with a shared slot: another thread frees it */
      size_t i = bench_rand(&r) % n;
      data[i] = atomic_exchange(&stress_slots[bench_rand(&r) % STRESS_SLOTS], data[i]);
    }
  }
  for (size_t i = 0; i < nkept; i++) stress_drop(kept[i]);
  for (size_t i = 0; i < n; i++) stress_drop(data[i]);
  free(kept);
  free(data);
  return made;
}

/* After a generation has exited: half the slots survive into the next one,
 * none after the last. */
static void stress_round_end(uint64_t *r, int last) {
  for (int i = 0; i < STRESS_SLOTS; i++)
    if (last || stress_chance(50, r)) stress_drop(atomic_exchange(&stress_slots[i], NULL));
}

#endif
