/* b_mleak.c -- a growing live set: every round keeps a few blocks for good (mleak-like)
 * Each round allocates a batch of short-lived blocks of mixed small sizes,
 * frees them, and keeps LEAK of them alive until the end, as a program that
 * leaks (or caches without bound) does: the heap grows to a million kept
 * blocks while the short-lived ones churn through it. usage: b_mleak [scale] [leak per round] */
#include "bench.h"

#define BATCH 200

int main(int argc, char **argv) {
  double scale = bench_scale(argc, argv);
  long leak = argc > 2 ? atol(argv[2]) : 10;
  if (leak < 1 || leak > BATCH) leak = 10;
  long rounds = (long)(1000000 / leak * scale); /* a million blocks kept in all */
  void **kept = malloc(sizeof(void *) * (size_t)(rounds * leak + 1));
  long nkept = 0;
  uint64_t rng = 99, sum = 0;
  void *batch[BATCH];
  double t0 = bench_now();
  for (long r = 0; r < rounds; r++) {
    for (int i = 0; i < BATCH; i++) {
      size_t n = 16 + (bench_rand(&rng) >> 20) % 240;
      unsigned char *p = malloc(n);
      p[0] = (unsigned char)i;
      p[n - 1] = (unsigned char)r;
      batch[i] = p;
    }
    for (int i = 0; i < BATCH; i++) {
      sum += ((unsigned char *)batch[i])[0];
      if (i < leak) kept[nkept++] = batch[i]; /* kept for good */
      else free(batch[i]);
    }
  }
  for (long i = 0; i < nkept; i++) sum += ((unsigned char *)kept[i])[0];
  double t = bench_now() - t0;
  for (long i = 0; i < nkept; i++) free(kept[i]);
  free(kept);
  bench_report("mleak", sum, t);
  return 0;
}
