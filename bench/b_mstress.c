/* b_mstress.c -- many threads, bursts of large live sets, some blocks passed on
 * Each round a thread allocates a burst (random sizes, mostly small, some up to
 * 64 KiB), keeps it alive, frees it in random order; a tenth goes to the next
 * thread, which frees it in its own next round. usage: b_mstress [scale] [threads] */
#include <stdatomic.h>

#include "bench.h"

#define BURST 20000
static int nthreads = 4;
static long rounds;
static _Atomic(void *) mailbox[64][BURST / 10];

static void *run(void *arg) {
  long id = (long)arg;
  uint64_t rng = 77 + (uint64_t)id, sum = 0;
  unsigned char **live = malloc(sizeof(void *) * BURST);
  for (long r = 0; r < rounds; r++) {
    for (int i = 0; i < BURST; i++) {
      uint64_t x = bench_rand(&rng);
      size_t n = (x & 15) ? 16 + (x >> 8) % 500 : 512 + (x >> 8) % 65000;
      live[i] = malloc(n);
      live[i][0] = (unsigned char)i;
      live[i][n - 1] = 1;
    }
    for (int i = BURST - 1; i > 0; i--) { /* shuffle: free in random order */
      int j = (int)(bench_rand(&rng) % (uint64_t)(i + 1));
      unsigned char *t = live[i];
      live[i] = live[j];
      live[j] = t;
    }
    for (int i = 0; i < BURST; i++) {
      if (i < BURST / 10) {
        void *old = atomic_exchange(&mailbox[(id + 1) % nthreads][i], live[i]);
        if (old) free(old);
      } else {
        sum += live[i][0];
        free(live[i]);
      }
    }
  }
  free(live);
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  double scale = bench_scale(argc, argv);
  if (argc > 2) nthreads = atoi(argv[2]);
  if (nthreads < 1 || nthreads > 64) nthreads = 4;
  rounds = (long)(60 * scale);
  if (rounds < 1) rounds = 1;
  double t0 = bench_now();
  uint64_t sum = bench_threads(nthreads, run);
  for (int t = 0; t < nthreads; t++)
    for (int i = 0; i < BURST / 10; i++) free(atomic_exchange(&mailbox[t][i], NULL));
  bench_report("mstress", sum, bench_now() - t0);
  return 0;
}
