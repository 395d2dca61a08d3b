/* b_tight.c -- tight malloc/free of small blocks, in 1 or more threads (glibc-simple-like)
 * usage: b_tight [scale] [threads] */
#include "bench.h"

static long iters;

static void *run(void *arg) {
  uint64_t sum = (uint64_t)(uintptr_t)arg;
  void *batch[16];
  for (long i = 0; i < iters; i++) {
    for (int j = 0; j < 16; j++) {
      size_t n = 16 + (size_t)((i + j) & 7) * 16;
      char *p = malloc(n);
      p[0] = (char)j;
      p[n - 1] = (char)i;
      batch[j] = p;
    }
    for (int j = 0; j < 16; j++) {
      sum += (unsigned char)((char *)batch[j])[0];
      free(batch[j]);
    }
  }
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  double scale = bench_scale(argc, argv);
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  if (threads < 1 || threads > 64) threads = 1;
  iters = (long)(10000000 * scale);
  double t0 = bench_now();
  uint64_t sum = bench_threads(threads, run);
  bench_report(threads == 1 ? "tight" : "tight-mt", sum, bench_now() - t0);
  return 0;
}
