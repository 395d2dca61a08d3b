/* b_handoff.c -- one thread allocates blocks of one size, another frees every one; both
 * wait by yielding, so callgrind (which runs one thread at a time) counts the same work
 * each run. For counting what a cross-thread free costs, not for timing.
 * usage: b_handoff [scale] [size]   (400,000 blocks of 16 KiB at scale 1) */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "bench.h"

#define BOXES 64
static _Atomic(void *) box[BOXES];
static long total;

static void *consumer(void *arg) {
  uint64_t *sum = arg;
  for (long got = 0; got < total;) {
    int any = 0;
    for (int i = 0; i < BOXES; i++) {
      unsigned char *p = atomic_exchange(&box[i], NULL);
      if (p != NULL) {
        *sum += p[0];
        free(p);
        got++;
        any = 1;
      }
    }
    if (!any) sched_yield();
  }
  return NULL;
}

int main(int argc, char **argv) {
  total = (long)(400000 * bench_scale(argc, argv));
  size_t size = argc > 2 ? (size_t)atol(argv[2]) : 16384;
  if (size < 1) size = 16384;
  uint64_t sum = 0;
  double t0 = bench_now();
  pthread_t t;
  pthread_create(&t, NULL, consumer, &sum);
  for (long k = 0; k < total; k++) {
    unsigned char *p = malloc(size);
    p[0] = (unsigned char)k;
    int i = (int)(k % BOXES);
    while (atomic_load(&box[i]) != NULL) sched_yield();
    atomic_store(&box[i], p);
  }
  pthread_join(t, NULL);
  bench_report("handoff", sum, bench_now() - t0);
  return 0;
}
