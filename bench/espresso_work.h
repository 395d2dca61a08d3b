/* espresso_work.h -- espresso's workload, one copy for the benchmark b_espresso and the test test_reuse
 *
 * 8,192 slots; each step picks one, and a block whose time has come is
 * replaced: mostly small (8-127 B), a quarter 128-2,127 B, one in eight
 * living 20,000-220,000 steps and the rest under 64. The long-lived blocks
 * pin the pages they sit in, so the peak of memory held over bytes in use
 * shows how well freed blocks are gathered into fewer pages. Returns a
 * checksum of bytes written and read back. */
#ifndef MT_ESPRESSO_WORK_H
#define MT_ESPRESSO_WORK_H

#include "bench.h"

#define ESPRESSO_LIVE 8192

static uint64_t espresso_work(long ops) {
  static unsigned char *blk[ESPRESSO_LIVE];
  static uint32_t size[ESPRESSO_LIVE];
  static long death[ESPRESSO_LIVE];
  uint64_t rng = 11, sum = 0;
  for (long k = 0; k < ops; k++) {
    int i = (int)(bench_rand(&rng) % ESPRESSO_LIVE);
    if (blk[i] && death[i] > k) continue; /* still alive: skip this op */
    if (blk[i]) {
      sum += blk[i][size[i] - 1];
      free(blk[i]);
    }
    uint64_t r = bench_rand(&rng);
    size_t n = (r & 3) ? 8 + (r >> 8) % 120 : 128 + (r >> 8) % 2000; /* mostly small */
    long life = (r >> 40) % 8 == 0 ? 20000 + (long)((r >> 20) % 200000) : (long)((r >> 20) % 64);
    blk[i] = malloc(n);
    if (blk[i] == NULL) abort();
    blk[i][0] = (unsigned char)k;
    blk[i][n - 1] = (unsigned char)(k >> 4);
    size[i] = (uint32_t)n;
    death[i] = k + life;
  }
  for (int i = 0; i < ESPRESSO_LIVE; i++) {
    free(blk[i]);
    blk[i] = NULL;
  }
  return sum;
}

#endif
