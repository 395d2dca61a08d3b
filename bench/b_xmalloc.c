/* b_xmalloc.c -- allocating threads hand batches to freeing threads (xmalloc-test-like)
 * usage: b_xmalloc [scale] [pairs] */
#include <pthread.h>

#include "bench.h"

#define BATCH 512
typedef struct batch { struct batch *next; void *blocks[BATCH]; } batch;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static batch *full;
static int queued, producers;
static long batches_each;

static void *producer(void *arg) {
  uint64_t rng = (uintptr_t)arg + 3;
  for (long b = 0; b < batches_each; b++) {
    batch *x = malloc(sizeof *x);
    for (int i = 0; i < BATCH; i++) {
      size_t n = 8 + bench_rand(&rng) % 504;
      unsigned char *p = malloc(n);
      p[0] = (unsigned char)i;
      x->blocks[i] = p;
    }
    pthread_mutex_lock(&mu);
    while (queued > 4) pthread_cond_wait(&cv, &mu); /* a short queue: RSS shows the allocator, not the schedule */
    x->next = full;
    full = x;
    queued++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
  }
  pthread_mutex_lock(&mu);
  producers--;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  uint64_t sum = 0;
  for (;;) {
    pthread_mutex_lock(&mu);
    while (full == NULL && producers > 0) pthread_cond_wait(&cv, &mu);
    batch *x = full;
    if (x) {
      full = x->next;
      queued--;
      pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&mu);
    if (x == NULL) break;
    for (int i = 0; i < BATCH; i++) {
      sum += ((unsigned char *)x->blocks[i])[0];
      free(x->blocks[i]);
    }
    free(x);
  }
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  double scale = bench_scale(argc, argv);
  int pairs = argc > 2 ? atoi(argv[2]) : 1;
  if (pairs < 1 || pairs > 16) pairs = 1;
  batches_each = (long)(8000 * scale);
  producers = pairs;
  double t0 = bench_now();
  pthread_t th[32];
  for (long i = 0; i < pairs; i++) pthread_create(&th[i], NULL, producer, (void *)i);
  for (long i = 0; i < pairs; i++) pthread_create(&th[pairs + i], NULL, consumer, NULL);
  uint64_t sum = 0;
  for (int i = 0; i < 2 * pairs; i++) {
    void *r;
    pthread_join(th[i], &r);
    sum += (uint64_t)(uintptr_t)r;
  }
  bench_report("xmalloc", sum, bench_now() - t0);
  return 0;
}
