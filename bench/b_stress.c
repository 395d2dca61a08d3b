/* b_stress.c -- threads hand blocks to each other through shared slots (test-stress-like)
 * Every thread keeps a working set of blocks and, step by step, allocates
 * into it, frees from it, or swaps one of its blocks with a slot shared by
 * all threads, so that most blocks end up freed by a thread that did not
 * allocate them. Sizes are mostly small (8-256 B), some up to 40 KiB, a few
 * up to 1 MiB. Rounds start over with an empty working set (the live set
 * rises and falls). Each block carries its size and a tag, checked when the
 * block is freed: the checksum counts allocations, plus any block found
 * damaged times 2^40. usage: b_stress [scale] [threads] */
#include <stdatomic.h>

#include "bench.h"

#define SET 2000        /* working set per thread */
#define SLOTS 1000      /* shared transfer slots */
#define STEPS 60000     /* steps per round */
#define TAG 0x5a17c0deULL

static int nthreads = 2;
static long rounds;
static _Atomic(uint64_t *) slots[SLOTS];
static _Atomic uint64_t damaged;

static size_t stress_size(uint64_t *rng) {
  uint64_t x = bench_rand(rng), p = x % 1000;
  if (p < 900) return 8 + (x >> 16) % 249;        /* small */
  if (p < 998) return 256 + (x >> 16) % 40705;    /* up to 40 KiB */
  return 40960 + (x >> 16) % (1024 * 1024 - 40959); /* up to 1 MiB */
}

static uint64_t *stress_alloc(uint64_t *rng) {
  size_t n = stress_size(rng);
  if (n < 24) n = 24; /* room for the size, the tag and the last byte */
  uint64_t *p = malloc(n);
  p[0] = n;
  p[1] = TAG ^ n;
  ((unsigned char *)p)[n - 1] = (unsigned char)n;
  return p;
}

static void stress_free(uint64_t *p) {
  if (p == NULL) return;
  size_t n = p[0];
  if (p[1] != (TAG ^ n) || ((unsigned char *)p)[n - 1] != (unsigned char)n) atomic_fetch_add(&damaged, 1);
  free(p);
}

static void *run(void *arg) {
  uint64_t rng = 4242 + (uint64_t)(long)arg * 7919, count = 0;
  uint64_t **set = calloc(SET, sizeof *set);
  for (long r = 0; r < rounds; r++) {
    for (long s = 0; s < STEPS; s++) {
      uint64_t x = bench_rand(&rng);
      unsigned i = (unsigned)((x >> 8) % SET), op = (unsigned)(x & 7);
      if (op < 4) { /* allocate (replacing what is there) */
        stress_free(set[i]);
        set[i] = stress_alloc(&rng);
        count++;
      } else if (op < 6) { /* free */
        stress_free(set[i]);
        set[i] = NULL;
      } else { /* swap with a shared slot: the block may be freed by anyone */
        set[i] = atomic_exchange(&slots[(x >> 24) % SLOTS], set[i]);
      }
    }
    for (unsigned i = 0; i < SET; i++) {
      stress_free(set[i]);
      set[i] = NULL;
    }
  }
  free(set);
  return (void *)(uintptr_t)count;
}

int main(int argc, char **argv) {
  double scale = bench_scale(argc, argv);
  if (argc > 2) nthreads = atoi(argv[2]);
  if (nthreads < 1 || nthreads > 64) nthreads = 2;
  rounds = (long)(200 * scale);
  if (rounds < 1) rounds = 1;
  double t0 = bench_now();
  uint64_t sum = bench_threads(nthreads, run);
  for (unsigned i = 0; i < SLOTS; i++) stress_free(atomic_exchange(&slots[i], NULL));
  bench_report("stress", sum + (atomic_load(&damaged) << 40), bench_now() - t0);
  return 0;
}
