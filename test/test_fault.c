/* test_fault.c -- the OS refuses memory: every request fails cleanly, and all works once memory is back
 *
 * usage: test_fault shim     (with fault_shim.so preloaded: failing mmap/mremap/madvise)
 *        test_fault ulimit   (under ulimit -v: allocate until refused, free half, again)
 * Linked to the debug build of libmemtally, whose mt_collect walks every
 * queue of the heap and aborts on a broken invariant. Drives small, medium,
 * large, huge, aligned, calloc, realloc and region allocations (and, with
 * MEMTALLY_PROF_RATE=1, sampled ones) through failure and back. Checks:
 * every NULL comes with errno = ENOMEM; the heap's lists are sound after
 * each phase; each later request succeeds once memory is back; no block is
 * handed out twice (each block's bytes stay as written, and a sorted scan of
 * every live block finds no overlap). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>

#include "check.h"
#include "fault_shim.h"
#include "memtally.h"

enum { K_SMALL, K_MEDIUM, K_LARGE, K_HUGE, K_ALIGNED, K_ALIGNED_FAR, K_CALLOC, K_REALLOC, K_REGION, K_COUNT };
static const char *const kind_names[K_COUNT] = {"small",   "medium", "large",   "huge",  "aligned",
                                                "aligned_far", "calloc", "realloc", "region"};

typedef struct {
  unsigned char *p;
  size_t n;
  unsigned char fill;
  unsigned char region; /* block of the test region: not freed one by one */
} blk_t;

#define MAX_BLOCKS 1000000
static blk_t blocks[MAX_BLOCKS]; /* static: the bookkeeping needs no memory while faults are on */
static size_t nblocks;
static mt_region *region;
static unsigned long long rng = 0x9e3779b97f4a7c15ULL;
static long nulls, bad_errno;

static size_t fixed_size; /* when set, every request has this size */

static size_t kind_size(int kind) {
  if (fixed_size) return fixed_size;
  switch (kind) {
  case K_SMALL: return 1 + check_rand(&rng) % 1024;
  case K_MEDIUM: return 1025 + check_rand(&rng) % (127 * 1024);
  case K_LARGE: return 128 * 1024 + check_rand(&rng) % (896 * 1024);
  case K_HUGE: return (1u << 20) + check_rand(&rng) % (6u << 20);
  case K_ALIGNED: return check_rand(&rng) % 100000;
  case K_ALIGNED_FAR: return check_rand(&rng) % 3000000;
  case K_CALLOC: return 1 + check_rand(&rng) % 300000;
  case K_REALLOC: return 1 + check_rand(&rng) % 3000000;
  default: return 1 + check_rand(&rng) % 5000;
  }
}

static void note_null(const char *what) {
  nulls++;
  if (errno != ENOMEM) {
    bad_errno++;
    if (bad_errno < 5) fprintf(stderr, "%s returned NULL with errno %d, not ENOMEM\n", what, errno);
  }
}

/* Mark a block where block_intact looks (its ends and middle): enough to
 * see a block handed out twice, without touching every page of huge ones. */
static void fill_block(unsigned char *p, size_t n, unsigned char fill) {
  size_t edge = n < 64 ? n : 64;
  memset(p, fill, edge);
  memset(p + n - edge, fill, edge);
  p[n / 2] = fill;
}

/* One allocation of kind; 1 if it was made and recorded, 0 if refused. */
static int alloc_one(int kind) {
  if (nblocks >= MAX_BLOCKS) return 0;
  size_t n = kind_size(kind);
  unsigned char *p = NULL;
  errno = 0;
  switch (kind) {
  case K_ALIGNED: {
    size_t align = (size_t)16 << (check_rand(&rng) % 13); /* 16 B .. 64 KiB */
    int rc = posix_memalign((void **)&p, align, n);
    if (rc != 0) {
      p = NULL;
      CHECKF(rc == ENOMEM, "posix_memalign returned %d", rc);
    }
    if (p != NULL) CHECK(((uintptr_t)p & (align - 1)) == 0);
    break;
  }
  case K_ALIGNED_FAR: {
    size_t align = (size_t)128 << 10 << (check_rand(&rng) % 6); /* 128 KiB .. 4 MiB */
    p = aligned_alloc(align, n);
    if (p != NULL) CHECK(((uintptr_t)p & (align - 1)) == 0);
    break;
  }
  case K_CALLOC:
    p = calloc(n, 1);
    if (p != NULL) CHECK(p[0] == 0 && p[n - 1] == 0 && p[n / 2] == 0);
    break;
  case K_REALLOC: { /* grow a block in steps; keep the last one that worked */
    size_t have = 1 + n / 8;
    p = malloc(have);
    if (p == NULL) break;
    fill_block(p, have, 0x5a);
    while (have < n) {
      size_t next = have * 2 < n ? have * 2 : n;
      errno = 0;
      unsigned char *q = realloc(p, next);
      if (q == NULL) {
        note_null("realloc");
        CHECK(p[0] == 0x5a && p[have - 1] == 0x5a); /* the old block is intact */
        break;
      }
      CHECK(q[0] == 0x5a && q[have - 1] == 0x5a);
      fill_block(q, next, 0x5a);
      p = q;
      have = next;
    }
    n = have;
    break;
  }
  case K_REGION:
    p = mt_region_alloc(region, n);
    if (p == NULL) {
      note_null("mt_region_alloc");
      return 0;
    }
    break;
  default: p = malloc(n); break;
  }
  if (p == NULL) {
    note_null(kind_names[kind]);
    return 0;
  }
  unsigned char fill = (unsigned char)(1 + check_rand(&rng) % 250);
  fill_block(p, n, fill);
  blocks[nblocks++] = (blk_t){p, n, fill, kind == K_REGION};
  return 1;
}

static int block_intact(const blk_t *b) {
  if (b->n == 0) return 1; /* (fill_block marked these bytes) */
  return b->p[0] == b->fill && b->p[b->n - 1] == b->fill && b->p[b->n / 2] == b->fill;
}

static void free_at(size_t i) {
  CHECKF(block_intact(&blocks[i]), "block %p (%zu bytes) changed while live", (void *)blocks[i].p, blocks[i].n);
  if (!blocks[i].region) free(blocks[i].p);
  blocks[i] = blocks[--nblocks];
}

static int by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const blk_t *)a)->p, y = (uintptr_t)((const blk_t *)b)->p;
  return x < y ? -1 : x > y;
}

/* Every live block is as written and none overlaps another. */
static void check_blocks(const char *phase) {
  qsort(blocks, nblocks, sizeof blocks[0], by_address);
  long overlaps = 0, changed = 0;
  for (size_t i = 0; i < nblocks; i++) {
    if (!block_intact(&blocks[i])) changed++;
    if (i + 1 < nblocks && blocks[i].p + blocks[i].n > blocks[i + 1].p) overlaps++;
  }
  CHECKF(overlaps == 0, "%s: %ld blocks overlap the next one", phase, overlaps);
  CHECKF(changed == 0, "%s: %ld blocks changed while live", phase, changed);
  mt_collect(); /* debug build: aborts on a broken list */
}

static void free_some(unsigned every) {
  for (size_t i = nblocks; i-- > 0;)
    if (check_rand(&rng) % every == 0) free_at(i);
}

/* Memory back: every kind works again, at once. */
static void check_recovers(const char *phase) {
  fault_set(FAULT_OFF, 0);
  long before = nulls;
  for (int k = 0; k < K_COUNT; k++)
    for (int i = 0; i < 3; i++) alloc_one(k);
  CHECKF(nulls == before, "%s: %ld requests failed with memory back", phase, nulls - before);
  check_blocks(phase);
}

/* The OS refuses everything: each kind fails (or is served from memory
 * already mapped) until memory comes back. */
static void phase_always(void) {
  for (int k = 0; k < K_COUNT; k++) {
    fault_set(FAULT_ALWAYS, 0);
    long before = nulls;
    for (int i = 0; i < 200000 && nulls - before < 5; i++) alloc_one(k);
    fault_set(FAULT_OFF, 0);
    CHECKF(nulls - before >= 1 || k == K_REGION, "%s: never refused while the OS refused memory", kind_names[k]);
    free_some(2);
    check_recovers(kind_names[k]);
    free_some(1);
  }
}

static void phase_every(void) {
  static const long every[] = {2, 3, 7, 50};
  for (size_t e = 0; e < sizeof every / sizeof every[0]; e++) {
    fault_set(FAULT_EVERY, every[e]);
    for (int i = 0; i < 3000; i++) {
      alloc_one((int)(check_rand(&rng) % K_COUNT));
      if (nblocks > 0 && check_rand(&rng) % 3 == 0) free_at(check_rand(&rng) % nblocks);
    }
    check_recovers("every");
    free_some(2);
  }
  free_some(1);
}

static void phase_after(void) {
  for (long n = 0; n < 40; n++) {
    fault_set(FAULT_AFTER, n);
    for (int i = 0; i < 300; i++) alloc_one((int)(check_rand(&rng) % K_COUNT));
    check_recovers("after");
    free_some(2);
  }
  free_some(1);
}

static void run_shim(void) {
  if (fault_set == NULL) {
    fprintf(stderr, "test_fault: run with fault_shim.so in LD_PRELOAD\n");
    exit(2);
  }
  region = mt_region_new(NULL, "fault");
  CHECK(region != NULL);
  RUN(phase_always);
  RUN(phase_every);
  RUN(phase_after);
  /* a region made while the OS refuses memory fails cleanly or works */
  fault_set(FAULT_ALWAYS, 0);
  errno = 0;
  mt_region *r2 = mt_region_new(NULL, "refused");
  if (r2 == NULL) CHECK(errno == ENOMEM);
  fault_set(FAULT_OFF, 0);
  if (r2 != NULL) mt_region_delete(r2);
  CHECKF(bad_errno == 0, "%ld NULLs without ENOMEM", bad_errno);
  CHECKF(fault_failures() > 100, "the shim refused only %ld calls", fault_failures());
  fprintf(stderr, "shim: %ld mappings refused, %ld requests failed cleanly\n", fault_failures(), nulls);
  mt_region_delete(region);
}

/* Under ulimit -v: blocks of one size until refused five times, free every
 * other one, then as many again of the same size: each must succeed (the
 * reproduction of a hang: 2,000-byte and 100 KB blocks). */
static void run_ulimit(void) {
  region = mt_region_new(NULL, "ulimit");
  CHECK(region != NULL);
  static const struct { int kind; size_t size; } runs[] = {
      {K_SMALL, 2000}, {K_MEDIUM, 100000}, {K_LARGE, 300000}, {K_HUGE, 3u << 20}, {K_CALLOC, 50000}, {K_REGION, 5000},
  };
  for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
    int kind = runs[k].kind;
    fixed_size = runs[k].size;
    long before = nulls;
    size_t made = 0;
    for (long i = 0; i < MAX_BLOCKS && nulls - before < 5; i++) made += (size_t)alloc_one(kind);
    CHECKF(nulls - before == 5, "%s: %ld refusals (%zu blocks)", kind_names[kind], nulls - before, made);
    size_t freed = 0;
    for (size_t i = nblocks; i-- > 0;)
      if (!blocks[i].region && i % 2 == 0) free_at(i), freed++;
    check_blocks(kind_names[kind]);
    before = nulls;
    size_t got = 0;
    for (size_t i = 0; i < freed; i++) got += (size_t)alloc_one(kind);
    CHECKF(got == freed, "%s: %zu of %zu requests failed after freeing as many", kind_names[kind], freed - got, freed);
    check_blocks(kind_names[kind]);
    fprintf(stderr, "ulimit %-7s %7zu B: %zu blocks before the limit, %zu freed, %zu again\n", kind_names[kind],
            fixed_size, made, freed, got);
    free_some(1);
    mt_collect();
  }
  fixed_size = 0;
  CHECKF(bad_errno == 0, "%ld NULLs without ENOMEM", bad_errno);
  mt_region_delete(region);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "shim";
  if (strcmp(mode, "shim") == 0) run_shim();
  else run_ulimit();
  check_blocks("end");
  while (nblocks > 0) free_at(nblocks - 1);
  return check_summary("test_fault");
}
