/* bench.h -- shared helpers of the allocator benchmarks: PRNG, timing, checksums */
#ifndef MT_BENCH_H
#define MT_BENCH_H

#include <pthread.h>
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

/* Run fn(thread number) on n threads (at most 64) and return the sum of
 * what they return (their checksums). */
static inline uint64_t bench_threads(int n, void *(*fn)(void *)) {
  pthread_t th[64];
  uint64_t sum = 0;
  if (n < 1) n = 1;
  if (n > 64) n = 64;
  for (long t = 0; t < n; t++) pthread_create(&th[t], NULL, fn, (void *)t);
  for (int t = 0; t < n; t++) {
    void *r;
    pthread_join(th[t], &r);
    sum += (uint64_t)(uintptr_t)r;
  }
  return sum;
}

/* A realistic size distribution: 70% 16-128 B, 25% up to 2 KiB, 4.8% up to
 * 64 KiB, 0.2% from 64 KiB up to largest. */
static inline size_t bench_pick_size(uint64_t *rng, size_t largest) {
  uint64_t x = bench_rand(rng), p = x % 1000;
  if (p < 700) return 16 + (x >> 12) % 113;
  if (p < 950) return 128 + (x >> 12) % 1921;
  if (p < 998) return 2048 + (x >> 12) % 63489;
  return 65536 + (x >> 12) % (largest - 65536 + 1);
}

#endif
