/* b_larson.c -- server simulation: threads replace random blocks in their slot arrays,
 * and every round the arrays move on to the next thread, so most blocks are
 * freed by a thread other than the one that allocated them (larson-like).
 * usage: b_larson [scale] [threads] */
#include "bench.h"

#define SLOTS 2000
static int nthreads = 2;
static long rounds, ops_per_round;
static unsigned char **arrays[64];
static pthread_barrier_t barrier;

static void *run(void *arg) {
  int id = (int)(uintptr_t)arg;
  uint64_t rng = 0x12345 + (uint64_t)id * 7919;
  uint64_t sum = 0;
  for (long r = 0; r < rounds; r++) {
    unsigned char **a = arrays[(id + r) % nthreads];
    for (long k = 0; k < ops_per_round; k++) {
      int i = (int)(bench_rand(&rng) % SLOTS);
      if (a[i]) {
        sum += a[i][0];
        free(a[i]);
      }
      size_t n = 16 + bench_rand(&rng) % 1000;
      a[i] = malloc(n);
      a[i][0] = (unsigned char)k;
      a[i][n - 1] = 1;
    }
    pthread_barrier_wait(&barrier);
  }
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  double scale = bench_scale(argc, argv);
  if (argc > 2) nthreads = atoi(argv[2]);
  if (nthreads < 1 || nthreads > 64) nthreads = 2;
  rounds = 200;
  ops_per_round = (long)(20000 * scale);
  for (int t = 0; t < nthreads; t++) arrays[t] = calloc(SLOTS, sizeof(unsigned char *));
  pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
  double t0 = bench_now();
  uint64_t sum = bench_threads(nthreads, run);
  for (int t = 0; t < nthreads; t++) {
    for (int i = 0; i < SLOTS; i++) free(arrays[t][i]);
    free(arrays[t]);
  }
  bench_report("larson", sum, bench_now() - t0);
  return 0;
}
