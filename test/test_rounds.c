/* test_rounds.c -- rounds of threads that hand blocks to each other through shared slots
 *
 * usage: test_rounds [THREADS] [SCALE] [ROUNDS] [PEAK_MIB]   (defaults 32 50 20, no bound)
 * Our equivalent of mimalloc's test-stress: each round starts THREADS
 * threads and joins them; a thread allocates (calloc, then fills) blocks of
 * 2^k words with a rare large, huge or giant one, keeps some to the end of
 * its life, frees others at random, and swaps blocks with a table of shared
 * slots, so blocks are freed by threads other than their owner, often after
 * the owner has exited. Half the slots survive into the next round. Every
 * block is checked word by word when freed; a bad word aborts at once. The
 * run is bounded: work per round is fixed by SCALE. The workload is
 * bench/stress_work.h, which the benchmark b_stress runs too. With
 * PEAK_MIB, the peak of committed memory must stay within it: the segments
 * a generation leaves are taken up by the next one's threads, each adopting
 * what it can use, rather than hoarded by one while the other maps new ones. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "check.h"
#include "memtally.h"
#include "mt_api.h"

static int scale = 50;

/* a bad word aborts at once, naming the block */
static void stress_damaged(const uint64_t *p, size_t at, size_t words) {
  fprintf(stderr, "test_rounds: block %p changed at word %zu of %zu\n", (const void *)p, at, words);
  abort();
}

#include "stress_work.h" /* after mt_api.h: its calloc, realloc and free are memtally's where mapped */

static void *worker(void *arg) {
  stress_worker((long)(intptr_t)arg, (size_t)scale);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 32;
  scale = argc > 2 ? atoi(argv[2]) : 50;
  int rounds = argc > 3 ? atoi(argv[3]) : 20;
  long peak_mib = argc > 4 ? atol(argv[4]) : 0;
  uint64_t r = 0x7feb352d;
  pthread_t *t = calloc((size_t)threads, sizeof *t);
  for (int round = 0; round < rounds; round++) {
    for (int i = 0; i < threads; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    stress_round_end(&r, round + 1 == rounds);
  }
  free(t);
  mt_stats st = {.size = sizeof st};
  CHECK(mt_stats_get(&st) == 0);
  fprintf(stderr, "%d threads x scale %d x %d rounds, committed peak %.1f MiB\n", threads, scale, rounds,
          (double)st.bytes_committed_peak / (1 << 20));
  if (peak_mib > 0) CHECKF(st.bytes_committed_peak <= (uint64_t)peak_mib << 20, "committed peak over %ld MiB", peak_mib);
  return check_summary("test_rounds");
}
