/* b_mixed.c -- a working set of 400 live slots, random sizes 16..1024 B, one thread
 * usage: b_mixed [scale] */
#include "bench.h"

#define LIVE 400

int main(int argc, char **argv) {
  long ops = (long)(20000000 * bench_scale(argc, argv));
  unsigned char *slot[LIVE] = {0};
  size_t size[LIVE] = {0};
  uint64_t rng = 7, sum = 0;
  double t0 = bench_now();
  for (long k = 0; k < ops; k++) {
    int i = (int)(bench_rand(&rng) % LIVE);
    if (slot[i]) {
      sum += slot[i][size[i] - 1];
      free(slot[i]);
    }
    size_t n = 16 + bench_rand(&rng) % 1009;
    slot[i] = malloc(n);
    slot[i][0] = (unsigned char)k;
    slot[i][n - 1] = (unsigned char)(k >> 3);
    size[i] = n;
  }
  for (int i = 0; i < LIVE; i++) free(slot[i]);
  bench_report("mixed", sum, bench_now() - t0);
  return 0;
}
