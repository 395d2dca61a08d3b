/* b_prodcons.c -- one thread allocates, another frees every block (xmalloc-like)
 * usage: b_prodcons [scale] */
#include <pthread.h>
#include <stdatomic.h>

#include "bench.h"

#define RING 4096
static void *ring[RING];
static _Atomic long head, tail; /* single producer, single consumer */
static long total;

static void *producer(void *arg) {
  (void)arg;
  uint64_t rng = 42;
  for (long i = 0; i < total; i++) {
    size_t n = 16 + bench_rand(&rng) % 240;
    unsigned char *p = malloc(n);
    p[0] = (unsigned char)i;
    p[n - 1] = (unsigned char)n;
    while (i - atomic_load_explicit(&tail, memory_order_acquire) >= RING) {
    }
    ring[i % RING] = p;
    atomic_store_explicit(&head, i + 1, memory_order_release);
  }
  return NULL;
}

int main(int argc, char **argv) {
  total = (long)(5000000 * bench_scale(argc, argv));
  double t0 = bench_now();
  pthread_t th;
  pthread_create(&th, NULL, producer, NULL);
  uint64_t sum = 0;
  for (long i = 0; i < total; i++) {
    while (atomic_load_explicit(&head, memory_order_acquire) <= i) {
    }
    unsigned char *p = ring[i % RING];
    sum += p[0];
    free(p);
    atomic_store_explicit(&tail, i + 1, memory_order_release);
  }
  pthread_join(th, NULL);
  bench_report("prodcons", sum, bench_now() - t0);
  return 0;
}
