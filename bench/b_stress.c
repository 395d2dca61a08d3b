/* b_stress.c -- test-stress as a benchmark: generations of threads that hand
 * blocks to each other and leave some behind (the workload: stress_work.h,
 * shared with test/test_rounds.c). The checksum counts the blocks allocated;
 * each block found damaged adds 2^40.
 * usage: b_stress [scale] [threads] [load] (load: hundreds of blocks per thread, 25) */
#include "stress_work.h"

static int nthreads = 2;
static size_t load = 25;
static _Atomic uint64_t damaged;

static void stress_damaged(const uint64_t *p, size_t at, size_t words) {
  (void)p, (void)at, (void)words;
  atomic_fetch_add(&damaged, 1);
}

static void *run(void *arg) { return (void *)(uintptr_t)stress_worker((long)arg, load); }

int main(int argc, char **argv) {
  double scale = bench_scale(argc, argv);
  if (argc > 2) nthreads = atoi(argv[2]);
  if (nthreads < 1 || nthreads > 64) nthreads = 2;
  if (argc > 3) load = (size_t)atol(argv[3]);
  if (load < 1 || load > 10000) load = 25;
  long iterations = (long)(200 * scale);
  if (iterations < 1) iterations = 1;
  uint64_t rng = 0x7feb352d, made = 0;
  double t0 = bench_now();
  for (long it = 0; it < iterations; it++) {
    made += bench_threads(nthreads, run);
    stress_round_end(&rng, it + 1 == iterations);
  }
  double t = bench_now() - t0;
  bench_report("stress", made + (atomic_load(&damaged) << 40), t);
  return 0;
}
