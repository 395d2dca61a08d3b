/* b_stress.c -- threads that come and go, hand blocks to each other, and
 * leave some behind for the next generation (test-stress-like)
 *
 * Every iteration starts a fresh set of threads. Each thread allocates with
 * calloc (sizes are powers of two times 8 bytes, now and then 100, 1,000 or
 * 10,000 times larger), fills every word, and keeps its blocks in a growing
 * array (grown by realloc) and a retained set; about two thirds of the time
 * it frees one of its blocks at random, and a quarter of the time it swaps
 * one with a slot shared by all threads. Every block is checked word by word
 * when freed. When the threads have exited, half of the shared slots are
 * emptied and the rest survive into the next iteration, to be freed by
 * threads that did not allocate them, into pages whose owner has exited.
 * The checksum counts the blocks allocated (damage adds 2^40 per block).
 * usage: b_stress [scale] [threads] [load] (load: hundreds of blocks per thread, 25) */
#include <stdatomic.h>

#include "bench.h"

#define SLOTS 1000
#define MARK 0x9e3779b97f4a7c15ULL

static int nthreads = 2;
static long load = 25;  /* blocks each thread allocates, in hundreds, times (thread % 8 + 1) */
static _Atomic(uint64_t *) slots[SLOTS];
static _Atomic uint64_t damaged, made;

static int percent(uint64_t *rng, unsigned p) { return bench_rand(rng) % 100 <= p; }

static uint64_t *stress_make(size_t words, uint64_t *rng) {
  if (percent(rng, 1)) {
    if (percent(rng, 1)) words *= 10000;
    else if (percent(rng, 10)) words *= 1000;
    else words *= 100;
  }
  uint64_t *p = calloc(words, sizeof *p);
  for (size_t i = 0; i < words; i++) {
    if (p[i] != 0) atomic_fetch_add(&damaged, 1);
    p[i] = (words - i) ^ MARK;
  }
  atomic_fetch_add_explicit(&made, 1, memory_order_relaxed);
  return p;
}

static void stress_drop(uint64_t *p) {
  if (p != NULL) {
    size_t words = (size_t)(p[0] ^ MARK);
    for (size_t i = 0; i < words; i++)
      if ((p[i] ^ MARK) != words - i) {
        atomic_fetch_add(&damaged, 1);
        break;
      }
  }
  free(p);
}

static void *worker(void *arg) {
  long id = (long)arg;
  uint64_t rng = (uint64_t)(id + 1) * 43;
  size_t todo = (size_t)(100 * load * (id % 8 + 1)), keep_left = todo / 2;
  uint64_t **kept = calloc(keep_left, sizeof *kept), **live = NULL;
  size_t nkept = 0, nlive = 0, cap = 0;
  while (todo > 0 || keep_left > 0) {
    if (keep_left == 0 || (todo > 0 && percent(&rng, 50))) {
      todo--;
      if (nlive == cap) {
        cap += 100000;
        live = realloc(live, cap * sizeof *live);
      }
      live[nlive++] = stress_make((size_t)1 << (bench_rand(&rng) % 5), &rng);
    } else {
      kept[nkept++] = stress_make((size_t)1 << (bench_rand(&rng) % 7), &rng);
      keep_left--;
    }
    if (nlive > 0 && percent(&rng, 66)) {
      size_t i = bench_rand(&rng) % nlive;
      stress_drop(live[i]);
      live[i] = NULL;
    }
    if (nlive > 0 && percent(&rng, 25)) {
      size_t i = bench_rand(&rng) % nlive;
      live[i] = atomic_exchange(&slots[bench_rand(&rng) % SLOTS], live[i]);
    }
  }
  for (size_t i = 0; i < nkept; i++) stress_drop(kept[i]);
  for (size_t i = 0; i < nlive; i++) stress_drop(live[i]);
  free(kept);
  free(live);
  return NULL;
}

int main(int argc, char **argv) {
  double scale = bench_scale(argc, argv);
  if (argc > 2) nthreads = atoi(argv[2]);
  if (nthreads < 1 || nthreads > 64) nthreads = 2;
  if (argc > 3) load = atol(argv[3]);
  if (load < 1 || load > 10000) load = 25;
  long iterations = (long)(200 * scale);
  if (iterations < 1) iterations = 1;
  uint64_t rng = 0x7feb352d;
  double t0 = bench_now();
  for (long it = 0; it < iterations; it++) {
    bench_threads(nthreads, worker);
    for (int i = 0; i < SLOTS; i++) /* half survive into the next generation of threads */
      if (percent(&rng, 50) || it + 1 == iterations) stress_drop(atomic_exchange(&slots[i], NULL));
  }
  double t = bench_now() - t0;
  bench_report("stress", atomic_load(&made) + (atomic_load(&damaged) << 40), t);
  return 0;
}
