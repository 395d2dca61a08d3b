/* b_alloctest.c -- per-thread rings of blocks whose sizes drift over time (alloc-test-like)
 * Each thread replaces the oldest block of a ring with a new one whose size
 * follows a slowly changing mean, so size classes come and go.
 * usage: b_alloctest [scale] [threads] */
#include "bench.h"

#define RING 2048
static int nthreads = 2;
static long ops;

static void *run(void *arg) {
  uint64_t rng = 31 + (uintptr_t)arg, sum = 0;
  unsigned char *ring[RING] = {0};
  for (long k = 0; k < ops; k++) {
    int i = (int)(k % RING);
    if (ring[i]) {
      sum += ring[i][0];
      free(ring[i]);
    }
    size_t mean = 64 + (size_t)((k >> 14) % 32) * 96; /* drifts 64 .. 3 KiB */
    size_t n = 1 + (size_t)(bench_rand(&rng) % (2 * mean));
    ring[i] = malloc(n);
    ring[i][0] = (unsigned char)k;
    ring[i][n - 1] = 3;
  }
  for (int i = 0; i < RING; i++) free(ring[i]);
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  double scale = bench_scale(argc, argv);
  if (argc > 2) nthreads = atoi(argv[2]);
  if (nthreads < 1 || nthreads > 64) nthreads = 2;
  ops = (long)(8000000 * scale);
  double t0 = bench_now();
  uint64_t sum = bench_threads(nthreads, run);
  bench_report("alloc-test", sum, bench_now() - t0);
  return 0;
}
