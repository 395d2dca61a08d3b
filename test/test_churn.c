/* test_churn.c -- waves of short-lived threads whose blocks outlive them
 *
 * usage: test_churn WAVES [small|medium|large|mixed]
 * Each wave starts 4 threads; each allocates blocks, keeps some (every one
 * for small sizes, one in ten for larger ones) for main to free at the end,
 * frees the rest and 50 temporary ones, and exits. Every malloc must succeed
 * (memtally once returned NULL after ~3,000 such threads: a thread needing a
 * new span adopted abandoned segments with no free slot, 64 in a row, then
 * gave up), and the process's resident memory must stay proportional to the
 * live bytes. Runs linked to libmemtally; the same source on glibc is the
 * yardstick for the RSS bound (glibc: about 1.17 x the live bytes). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "memtally.h"
#include "mt_api.h"

#define PER_MAX 500
#define TEMPS 50

static void **keep;
static size_t nkeep;
static size_t live_bytes;
static pthread_mutex_t keep_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic long nulls;
/* the size mix: blocks of lo .. lo+span-1 bytes, per thread, one in keep_every kept */
static size_t lo = 16, span = 200, temp_size = 300;
static int per_thread = 500, keep_every = 1;

static void *worker(void *arg) {
  long t = (long)arg;
  void *mine[PER_MAX];
  size_t bytes = 0;
  for (int i = 0; i < per_thread; i++) {
    size_t n = lo + (size_t)(i * 7 + t) % span;
    mine[i] = malloc(n);
    if (mine[i] == NULL) {
      nulls++;
      continue;
    }
    memset(mine[i], 'q', n);
    if (i % keep_every == 0) bytes += n;
  }
  void *tmp[TEMPS];
  for (int i = 0; i < TEMPS; i++) tmp[i] = malloc(temp_size);
  for (int i = 0; i < TEMPS; i++) {
    if (tmp[i] == NULL) nulls++;
    free(tmp[i]);
  }
  pthread_mutex_lock(&keep_lock);
  for (int i = 0; i < per_thread; i++) {
    if (i % keep_every == 0 && mine[i] != NULL) keep[nkeep++] = mine[i];
    else free(mine[i]);
  }
  live_bytes += bytes;
  pthread_mutex_unlock(&keep_lock);
  return NULL;
}

static size_t rss_bytes(void) {
  char buf[128] = {0};
  int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  unsigned long size = 0, res = 0;
  if (sscanf(buf, "%lu %lu", &size, &res) != 2) return 0;
  return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

int main(int argc, char **argv) {
  long waves = argc > 1 ? atol(argv[1]) : 1000;
  const char *mix = argc > 2 ? argv[2] : "small";
  if (strcmp(mix, "medium") == 0) lo = 1000, span = 15000, temp_size = 20000, per_thread = 200, keep_every = 10;
  else if (strcmp(mix, "large") == 0) lo = 140000, span = 200000, temp_size = 600000, per_thread = 40, keep_every = 10;
  else if (strcmp(mix, "mixed") == 0) lo = 16, span = 40000, temp_size = 3000000, per_thread = 300, keep_every = 10;
  keep = calloc((size_t)waves * 4 * PER_MAX, sizeof(void *));
  CHECK(keep != NULL);
  size_t rss0 = rss_bytes();
  for (long w = 0; w < waves; w++) {
    pthread_t t[4];
    for (int j = 0; j < 4; j++) pthread_create(&t[j], NULL, worker, (void *)(w * 4 + j));
    for (int j = 0; j < 4; j++) pthread_join(t[j], NULL);
    if (nulls != 0) break;
  }
  CHECKF(nulls == 0, "%ld allocations returned NULL (%zu blocks live)", (long)nulls, nkeep);
  size_t rss = rss_bytes();
  /* Freed spans stay resident for the purge delay (100 ms by default), so
   * how much of them is still resident here depends on how fast the waves
   * ran: 168-380 MiB for 129 MiB live in the large mix, the more the more
   * loaded the machine (printed, not checked). After mt_collect what stays
   * is the free blocks inside pages that keep a live block: about 1.1 times
   * the live bytes when each wave's threads run one after another, up to
   * 2.9 times when a loaded machine interleaves them and they spread their
   * kept blocks over more pages (the medium mix, before and after this
   * bound was written: docs/benchmarks.md). Blocks of exited threads never
   * reused would be about ten times. The keep array is live too. */
  size_t live = live_bytes + (size_t)waves * 4 * PER_MAX * sizeof(void *);
  mt_collect();
  size_t rss_collected = rss_bytes();
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__) /* their shadow memory is in RSS too */
  CHECKF(rss_collected - rss0 < 3 * live + (16u << 20), "RSS grew %zu MiB for %zu MiB live after mt_collect",
         (rss_collected - rss0) >> 20, live >> 20);
#endif
  fprintf(stderr, "%ld waves (%s): %zu blocks, %zu MiB live, RSS +%zu MiB, +%zu MiB after mt_collect\n", waves, mix,
          nkeep, live >> 20, (rss - rss0) >> 20, (rss_collected - rss0) >> 20);
  for (size_t i = 0; i < nkeep; i++) free(keep[i]);
  free(keep);
  return check_summary("test_churn");
}
