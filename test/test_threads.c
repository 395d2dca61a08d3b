/* test_threads.c -- short-lived threads: their memory is handed on, not leaked
 *
 * 300 threads, one after another, each allocate blocks, pass half to the main
 * thread and exit. Their heaps must be reused, their segments adopted or
 * released, and everything must come back once main frees the blocks. Also
 * run with the static library and a constructor that allocates before any of
 * memtally's own start-up code has run. */
#include <pthread.h>

#include "check.h"
#include "memtally.h"

static void *early_block;
__attribute__((constructor(101))) static void allocate_early(void) { early_block = malloc(123); }

#define THREADS 300
#define PER 2000
static void *handed[THREADS][PER / 2];

static void *worker(void *arg) {
  long t = (long)arg;
  void *mine[PER];
  for (int i = 0; i < PER; i++) mine[i] = malloc((size_t)(16 + (i * 37 + t) % 2000));
  for (int i = 0; i < PER; i++) {
    if (i % 2) handed[t][i / 2] = mine[i];
    else free(mine[i]);
  }
  return NULL;
}

int main(void) {
  CHECK(early_block != NULL && mt_owns(early_block));
  free(early_block);
  mt_stats s0, s1, s2;
  s0.size = s1.size = s2.size = sizeof s0;
  mt_collect();
  mt_stats_get(&s0);
  for (long t = 0; t < THREADS; t++) {
    pthread_t th;
    pthread_create(&th, NULL, worker, (void *)t);
    pthread_join(th, NULL);
  }
  mt_stats_get(&s1);
  CHECKF(s1.threads <= s0.threads + 2, "heaps %llu -> %llu: not reused", (unsigned long long)s0.threads,
         (unsigned long long)s1.threads);
  /* 300 x 1000 live blocks of ~1 KiB: about 300 MB would be 75+ segments if
   * every dead thread kept its own; adoption packs them. */
  CHECKF(s1.bytes_committed < 2 * s1.bytes_in_use + (64u << 20), "committed %llu for %llu in use",
         (unsigned long long)s1.bytes_committed, (unsigned long long)s1.bytes_in_use);
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < PER / 2; i++) free(handed[t][i]);
  mt_collect();
  mt_stats_get(&s2);
  CHECKF(s2.bytes_in_use <= s0.bytes_in_use + 4096, "in use %llu after, %llu before",
         (unsigned long long)s2.bytes_in_use, (unsigned long long)s0.bytes_in_use);
  CHECKF(s2.bytes_committed < s1.bytes_committed / 4, "committed %llu after freeing, %llu before",
         (unsigned long long)s2.bytes_committed, (unsigned long long)s1.bytes_committed);
  return check_summary("test_threads");
}
