/* b_cache.c -- false sharing of small blocks between threads
 * thrash: each thread allocates small blocks and writes to them many times
 *   (an allocator that hands neighbouring blocks to different threads makes
 *   them fight over cache lines).
 * scratch: the main thread allocates one block per thread and hands it over;
 *   each thread frees it and then allocates and writes blocks of that size
 *   (an allocator that reuses the freed neighbour for the new owner shares
 *   lines with the other threads).
 * usage: b_cache thrash|scratch [scale] [threads] */
#include "bench.h"

static int mode_scratch, nthreads = 2;
static long iters, writes = 200;
static void *handed[64];

static void *run(void *arg) {
  long id = (long)arg;
  uint64_t sum = 0;
  if (mode_scratch) free(handed[id]);
  for (long k = 0; k < iters; k++) {
    volatile unsigned char *p = malloc(8);
    for (int b = 0; b < 8; b++) p[b] = 0;
    for (long w = 0; w < writes; w++) p[w & 7] = (unsigned char)(p[w & 7] + 1);
    sum += p[0];
    free((void *)p);
  }
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  mode_scratch = argc > 1 && strcmp(argv[1], "scratch") == 0;
  double scale = bench_scale(argc - 1, argv + 1);
  if (argc > 3) nthreads = atoi(argv[3]);
  if (nthreads < 1 || nthreads > 64) nthreads = 2;
  iters = (long)(2000000 * scale);
  for (int t = 0; t < nthreads; t++) handed[t] = malloc(8);
  double t0 = bench_now();
  uint64_t sum = bench_threads(nthreads, run);
  if (!mode_scratch)
    for (int t = 0; t < nthreads; t++) free(handed[t]);
  bench_report(mode_scratch ? "cache-scratch" : "cache-thrash", sum, bench_now() - t0);
  return 0;
}
