/* b_rptest.c -- a realistic size distribution with cross-thread frees (rptest-like)
 * Sizes: 16-128 B most of the time, up to 2 KiB often, up to 64 KiB now and
 * then, up to 512 KiB rarely. Threads keep a working set and pass a share of
 * their blocks to a neighbour through lock-free slots. usage: b_rptest [scale] [threads] */
#include <stdatomic.h>

#include "bench.h"

#define SET 4096
#define SHARE 1024
static int nthreads = 2;
static long ops;
static _Atomic(void *) share[64][SHARE];

static void *run(void *arg) {
  long id = (long)arg;
  uint64_t rng = 1000 + (uint64_t)id, sum = 0;
  unsigned char *set[SET] = {0};
  for (long k = 0; k < ops; k++) {
    int i = (int)(bench_rand(&rng) % SET);
    if (set[i]) {
      if ((k & 7) == 0) { /* pass it on; free what the neighbour left */
        void *old = atomic_exchange(&share[(id + 1) % nthreads][k % SHARE], set[i]);
        if (old) free(old);
      } else {
        sum += set[i][0];
        free(set[i]);
      }
    }
    size_t n = bench_pick_size(&rng, 512 * 1024);
    set[i] = malloc(n);
    set[i][0] = (unsigned char)k;
    set[i][n - 1] = 2;
  }
  for (int i = 0; i < SET; i++) free(set[i]);
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  double scale = bench_scale(argc, argv);
  if (argc > 2) nthreads = atoi(argv[2]);
  if (nthreads < 1 || nthreads > 64) nthreads = 2;
  ops = (long)(3000000 * scale);
  double t0 = bench_now();
  uint64_t sum = bench_threads(nthreads, run);
  for (int t = 0; t < nthreads; t++)
    for (int i = 0; i < SHARE; i++) free(atomic_exchange(&share[t][i], NULL));
  bench_report("rptest", sum, bench_now() - t0);
  return 0;
}
