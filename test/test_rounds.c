/* test_rounds.c -- rounds of threads that hand blocks to each other through shared slots
 *
 * usage: test_rounds [THREADS] [SCALE] [ROUNDS]   (defaults 32 50 20)
 * Our equivalent of mimalloc's test-stress: each round starts THREADS
 * threads and joins them; a thread allocates (calloc, then fills) blocks of
 * 2^k words with a rare large, huge or giant one, keeps some to the end of
 * its life, frees others at random, and swaps blocks with a table of shared
 * slots, so blocks are freed by threads other than their owner, often after
 * the owner has exited. Half the slots survive into the next round. Every
 * block is checked word by word when freed; a bad word aborts at once. The
 * run is bounded: work per round is fixed by SCALE. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "check.h"
#include "mt_api.h"

#define SLOTS 1000
static void *_Atomic slots[SLOTS];
static int scale = 50;
static const uintptr_t cookie = 0x2545f4914f6cdd1dULL;

static int chance(unsigned percent, unsigned long long *r) { return check_rand(r) % 100 < percent; }

static uintptr_t *make_block(size_t words, unsigned long long *r) {
  if (chance(1, r)) words *= chance(1, r) ? 10000 : chance(10, r) ? 1000 : 100; /* large, huge, giant */
  if (words == 0) words = 1;
  uintptr_t *p = calloc(words, sizeof(uintptr_t));
  if (p == NULL) {
    fprintf(stderr, "test_rounds: calloc of %zu words failed\n", words);
    abort();
  }
  for (size_t i = 0; i < words; i++) p[i] = (words - i) ^ cookie;
  return p;
}

static void drop_block(uintptr_t *p) {
  if (p == NULL) return;
  size_t words = p[0] ^ cookie;
  for (size_t i = 0; i < words; i++) {
    if ((p[i] ^ cookie) != words - i) {
      fprintf(stderr, "test_rounds: block %p changed at word %zu of %zu\n", (void *)p, i, words);
      abort();
    }
  }
  free(p);
}

static void *worker(void *arg) {
  long id = (long)(intptr_t)arg;
  unsigned long long r = (unsigned long long)(id * 43 + 1);
  size_t left = 100 * (size_t)scale * (size_t)(id % 8 + 1); /* some threads do more */
  size_t keep_left = left / 2;
  uintptr_t **kept = calloc(keep_left + 1, sizeof *kept);
  size_t nkept = 0;
  uintptr_t **data = NULL;
  size_t cap = 0, n = 0;
  while (left > 0 || keep_left > 0) {
    if (keep_left == 0 || (left > 0 && chance(50, &r))) {
      left--;
      if (n == cap) {
        cap += 10000;
        data = realloc(data, cap * sizeof *data);
        if (data == NULL) abort();
      }
      data[n++] = make_block((size_t)1 << (check_rand(&r) % 5), &r);
    } else {
      kept[nkept++] = make_block((size_t)1 << (check_rand(&r) % 7), &r);
      keep_left--;
    }
    if (n > 0 && chance(66, &r)) {
      size_t i = check_rand(&r) % n;
      drop_block(data[i]);
      data[i] = NULL;
    }
    if (n > 0 && chance(25, &r)) { /* swap with a shared slot: another thread frees it */
      size_t i = check_rand(&r) % n;
      data[i] = atomic_exchange(&slots[check_rand(&r) % SLOTS], data[i]);
    }
  }
  for (size_t i = 0; i < nkept; i++) drop_block(kept[i]);
  for (size_t i = 0; i < n; i++) drop_block(data[i]);
  free(kept);
  free(data);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 32;
  scale = argc > 2 ? atoi(argv[2]) : 50;
  int rounds = argc > 3 ? atoi(argv[3]) : 20;
  unsigned long long r = 0x7feb352d;
  pthread_t *t = calloc((size_t)threads, sizeof *t);
  for (int round = 0; round < rounds; round++) {
    for (int i = 0; i < threads; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < SLOTS; i++) /* half survive to the next round; none after the last */
      if (round + 1 == rounds || chance(50, &r)) drop_block(atomic_exchange(&slots[i], NULL));
  }
  free(t);
  fprintf(stderr, "%d threads x scale %d x %d rounds\n", threads, scale, rounds);
  return check_summary("test_rounds");
}
