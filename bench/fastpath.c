/* fastpath.c -- the malloc+free paths for a small block, for counting instructions
 * Run under callgrind (bench/fastpath.sh). `fastpath` does N pairs of
 * malloc(32)/free in one thread after a warm-up (churn). `fastpath remote`
 * has one thread allocate batches of 32-byte blocks (produce) that another
 * thread frees (consume), in turns, so the count per block is the malloc of a
 * block that comes back from another thread plus its free by that thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 1000000
#define BATCH 1000

__attribute__((noinline)) void churn(long n) {
  for (long i = 0; i < n; i++) {
    void *volatile p = malloc(32);
    free(p);
  }
}

static void *batch[BATCH];

__attribute__((noinline)) void produce(void) {
  for (int i = 0; i < BATCH; i++) batch[i] = malloc(32);
}

__attribute__((noinline)) void consume(void) {
  for (int i = 0; i < BATCH; i++) free(batch[i]);
}

static void *consumer(void *arg) {
  (void)arg;
  consume();
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "remote") == 0) {
    for (int r = 0; r < N / BATCH + 1; r++) { /* the first round warms up, like churn(1000) */
      produce();
      pthread_t t; /* a fresh thread each round: each of its frees is of another thread's block */
      pthread_create(&t, NULL, consumer, NULL);
      pthread_join(t, NULL);
    }
  } else {
    churn(1000); /* warm-up: heap and page set up */
    churn(N);
  }
  puts("fastpath done");
  return 0;
}
