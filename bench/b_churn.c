/* b_churn.c -- waves of short-lived threads whose blocks outlive them (thread churn)
 * usage: b_churn [scale]   (1,000 waves of 4 threads at scale 1)
 * Each thread allocates 500 blocks of 16-215 B that main frees only at the
 * end, and 50 temporary 300 B blocks, then exits: the program of the
 * thread-churn report, timed, with a checksum of the bytes written. */
#include <pthread.h>
#include <string.h>

#include "bench.h"

#define PER 500
static void **keep;
static long nkeep;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
  long t = (long)arg;
  void *mine[PER];
  for (int i = 0; i < PER; i++) {
    size_t n = 16 + (size_t)(i * 7 + t) % 200;
    mine[i] = malloc(n);
    if (mine[i] == NULL) exit(3);
    memset(mine[i], (int)(n & 0xff), n);
  }
  void *tmp[50];
  for (int i = 0; i < 50; i++) tmp[i] = malloc(300);
  for (int i = 0; i < 50; i++) free(tmp[i]);
  pthread_mutex_lock(&mu);
  for (int i = 0; i < PER; i++) keep[nkeep++] = mine[i];
  pthread_mutex_unlock(&mu);
  return NULL;
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  long waves = (long)(1000 * scale);
  if (waves < 1) waves = 1;
  keep = calloc((size_t)waves * 4 * PER, sizeof *keep);
  double t0 = bench_now();
  for (long w = 0; w < waves; w++) {
    pthread_t th[4];
    for (long j = 0; j < 4; j++) pthread_create(&th[j], NULL, worker, (void *)(w * 4 + j));
    for (int j = 0; j < 4; j++) pthread_join(th[j], NULL);
  }
  uint64_t sum = 0;
  for (long i = 0; i < nkeep; i++) {
    sum += ((unsigned char *)keep[i])[0];
    free(keep[i]);
  }
  free(keep);
  bench_report("thread-churn", sum, bench_now() - t0);
  return 0;
}
