/* test_stress.c -- threads allocate, hand blocks to each other and check every byte
 *
 * usage: test_stress [threads] [seconds] [live-per-thread]
 * Each block carries its size and a seed in its first 16 bytes and a
 * pattern after them; whoever frees it (often another thread) checks the
 * pattern first. Sizes: mostly small, some medium, a few large and huge. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "check.h"
#include "memtally.h"

#ifdef MT_TEST_LIBC /* the same test on the C library, for comparison */
#define T_MALLOC malloc
#define T_FREE free
#define T_REALLOC realloc
#else
#define T_MALLOC mt_malloc
#define T_FREE mt_free
#define T_REALLOC mt_realloc
#endif

#define EXCHANGE 256
static _Atomic(unsigned char *) exchange_slots[EXCHANGE];
static _Atomic int stop;
static _Atomic long corrupt, total_ops;
static int nthreads = 4, seconds = 2, live = 2000;

typedef struct { size_t size; unsigned seed; unsigned magic; } hdr_t;

static size_t pick_size(unsigned long long *rng) {
  unsigned r = (unsigned)(check_rand(rng) % 1000);
  if (r < 700) return 17 + check_rand(rng) % 240; /* the header is 16 bytes */
  if (r < 950) return 256 + check_rand(rng) % 4000;
  if (r < 995) return 4096 + check_rand(rng) % 200000;
  if (r < 999) return 300000 + check_rand(rng) % 900000;
  return 1100000 + check_rand(rng) % 3000000;
}

static unsigned char *make(size_t size, unsigned seed) {
  unsigned char *p = T_MALLOC(size);
  if (p == NULL) return NULL;
  hdr_t *h = (hdr_t *)p;
  h->size = size;
  h->seed = seed;
  h->magic = 0x5eed5eed;
  for (size_t i = sizeof(hdr_t); i < size; i += 61) p[i] = (unsigned char)(seed + i);
  p[size - 1] = (unsigned char)(seed ^ 0x5a);
  return p;
}

static void check_and_free(unsigned char *p) {
  hdr_t *h = (hdr_t *)p;
  int ok = h->magic == 0x5eed5eed;
  size_t size = h->size;
  for (size_t i = sizeof(hdr_t); ok && i < size - 1; i += 61) ok = p[i] == (unsigned char)(h->seed + i);
  if (ok) ok = p[size - 1] == (unsigned char)(h->seed ^ 0x5a);
  if (!ok) atomic_fetch_add(&corrupt, 1);
  T_FREE(p);
}

static void *worker(void *arg) {
  unsigned long long rng = 0x9e3779b97f4a7c15ULL * ((uintptr_t)arg + 1);
  unsigned char **mine = T_MALLOC(sizeof(unsigned char *) * (size_t)live);
  for (int i = 0; i < live; i++) mine[i] = NULL;
  long ops = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int k = 0; k < 256; k++) {
      int i = (int)(check_rand(&rng) % (unsigned)live);
      unsigned action = (unsigned)(check_rand(&rng) % 10);
      if (mine[i] != NULL && action < 3) {
        /* hand the block to whoever takes the exchange slot next */
        int e = (int)(check_rand(&rng) % EXCHANGE);
        unsigned char *old = atomic_exchange(&exchange_slots[e], mine[i]);
        mine[i] = old;
      } else if (mine[i] != NULL && action == 3) {
        hdr_t *h = (hdr_t *)mine[i];
        size_t ns = pick_size(&rng);
        unsigned seed = h->seed;
        size_t keep = h->size < ns ? h->size : ns;
        unsigned char *q = T_REALLOC(mine[i], ns);
        if (q == NULL) {
          atomic_fetch_add(&corrupt, 1);
          continue;
        }
        /* rewrite the pattern for the new size from the kept prefix's seed */
        hdr_t *qh = (hdr_t *)q;
        if (qh->magic != 0x5eed5eed || qh->seed != seed) atomic_fetch_add(&corrupt, 1);
        for (size_t j = sizeof(hdr_t); j < keep - 1; j += 61)
          if (q[j] != (unsigned char)(seed + j)) {
            atomic_fetch_add(&corrupt, 1);
            break;
          }
        qh->size = ns;
        for (size_t j = sizeof(hdr_t); j < ns; j += 61) q[j] = (unsigned char)(seed + j);
        q[ns - 1] = (unsigned char)(seed ^ 0x5a);
        mine[i] = q;
      } else {
        if (mine[i] != NULL) check_and_free(mine[i]);
        mine[i] = make(pick_size(&rng), (unsigned)check_rand(&rng));
      }
      ops++;
    }
  }
  for (int i = 0; i < live; i++)
    if (mine[i]) check_and_free(mine[i]);
  T_FREE(mine);
  atomic_fetch_add(&total_ops, ops);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1) nthreads = atoi(argv[1]);
  if (argc > 2) seconds = atoi(argv[2]);
  if (argc > 3) live = atoi(argv[3]);
  if (nthreads < 1 || nthreads > 64 || seconds < 1 || live < 1) {
    fprintf(stderr, "usage: test_stress [threads 1-64] [seconds] [live blocks per thread]\n");
    return 2;
  }
  /* Two rounds with fresh threads, so the second adopts abandoned segments. */
  for (int round = 0; round < 2; round++) {
    pthread_t th[64];
    atomic_store(&stop, 0);
    for (int t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)(t + round * 64));
    struct timespec ts = {seconds, 0};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
  }
  for (int e = 0; e < EXCHANGE; e++) {
    unsigned char *p = atomic_exchange(&exchange_slots[e], NULL);
    if (p) check_and_free(p);
  }
  CHECKF(atomic_load(&corrupt) == 0, "%ld corrupted blocks", atomic_load(&corrupt));
  CHECK(atomic_load(&total_ops) > 0);
#ifndef MT_TEST_LIBC
  mt_stats st;
  st.size = sizeof st;
  mt_stats_get(&st);
  /* every block was freed: only this program's stdio buffers may remain */
  CHECKF(st.bytes_in_use < 64 * 1024, "%llu bytes still in use", (unsigned long long)st.bytes_in_use);
  CHECK(st.allocs >= st.frees);
#endif
  fprintf(stderr, "%d threads, %ld operations\n", nthreads, atomic_load(&total_ops));
  return check_summary("test_stress");
}
