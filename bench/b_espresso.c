/* b_espresso.c -- mixed sizes and lifetimes: most blocks die young, some live long
 * (espresso-like). usage: b_espresso [scale] */
#include "bench.h"

#define LIVE 8192

int main(int argc, char **argv) {
  long ops = (long)(8000000 * bench_scale(argc, argv));
  unsigned char *blk[LIVE] = {0};
  uint32_t size[LIVE] = {0};
  long death[LIVE] = {0};
  uint64_t rng = 11, sum = 0;
  double t0 = bench_now();
  for (long k = 0; k < ops; k++) {
    int i = (int)(bench_rand(&rng) % LIVE);
    if (blk[i] && death[i] > k) continue; /* still alive: skip this op */
    if (blk[i]) {
      sum += blk[i][size[i] - 1];
      free(blk[i]);
    }
    uint64_t r = bench_rand(&rng);
    size_t n = (r & 3) ? 8 + (r >> 8) % 120 : 128 + (r >> 8) % 2000; /* mostly small */
    long life = (r >> 40) % 8 == 0 ? 20000 + (long)((r >> 20) % 200000) : (long)((r >> 20) % 64);
    blk[i] = malloc(n);
    blk[i][0] = (unsigned char)k;
    blk[i][n - 1] = (unsigned char)(k >> 4);
    size[i] = (uint32_t)n;
    death[i] = k + life;
  }
  for (int i = 0; i < LIVE; i++) free(blk[i]);
  bench_report("espresso", sum, bench_now() - t0);
  return 0;
}
