/* bench.h -- shared helpers of the allocator benchmarks: PRNG, timing, checksums */
#ifndef MT_BENCH_H
#define MT_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t bench_rand(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Scale from argv[1] (default 1.0): lets the runner shorten or lengthen runs. */
static inline double bench_scale(int argc, char **argv) {
  double s = argc > 1 ? atof(argv[1]) : 1.0;
  return s > 0 ? s : 1.0;
}

/* Every benchmark prints "checksum N": a value that depends on the data the
 * program wrote and read back, so an allocator that loses data cannot pass. */
static inline void bench_report(const char *name, uint64_t checksum, double seconds) {
  printf("%s checksum %llu time %.3f\n", name, (unsigned long long)checksum, seconds);
}

#endif
