/* test_huge.c -- blocks over 1 MiB: the cache of freed huge blocks gives its pages to new sizes
 *
 * usage: test_huge   (run with MEMTALLY_PURGE_DELAY long enough that nothing
 *                     cached expires between two steps)
 * A freed huge block stays resident in the cache. A request that no cached
 * block fits closely takes the tail of a larger one, or is put together from
 * several smaller ones: the pages move, so touching the new block faults
 * almost nothing in. Checked: the faults, the contents (calloc zeroes what
 * moved, realloc keeps what was written), and that every byte mapped is
 * accounted for once everything is freed. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <sys/resource.h>

#include "check.h"
#include "memtally.h"

#define MiB ((size_t)1 << 20)

static long faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

/* Faults taken while writing every page of p. */
static long touch(unsigned char *p, size_t n, unsigned char v) {
  long f0 = faults();
  for (size_t o = 0; o < n; o += 4096) p[o] = v;
  p[n - 1] = v;
  return faults() - f0;
}

static int all_are(const unsigned char *p, size_t n, unsigned char v) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != v) return 0;
  return 1;
}

/* A 12 MiB block, freed, serves 2 MiB then 3 MiB from its tail. */
static void tail_of_a_larger_block(void) {
  mt_collect(); /* an empty cache */
  unsigned char *big = malloc(12 * MiB);
  CHECK(big != NULL);
  touch(big, 12 * MiB, 0xaa);
  free(big);
  unsigned char *a = malloc(2 * MiB);
  long fa = touch(a, 2 * MiB, 1);
  CHECKF(fa < 64, "2 MiB from a cached 12 MiB block: %ld faults (512 pages; fresh memory faults each)", fa);
  unsigned char *b = calloc(1, 3 * MiB);
  CHECK(b != NULL && all_are(b, 3 * MiB, 0));
  long fb = touch(b, 3 * MiB, 2);
  CHECKF(fb < 64, "3 MiB from what is left: %ld faults", fb);
  CHECK(malloc_usable_size(a) >= 2 * MiB && malloc_usable_size(b) >= 3 * MiB);
  CHECK(a[0] == 1 && a[2 * MiB - 1] == 1 && b[0] == 2 && b[3 * MiB - 1] == 2);
  free(a);
  free(b);
}

/* Three freed 1.5 MiB blocks make one 4 MiB block; calloc's is all zero. */
static void put_together_from_pieces(void) {
  mt_collect();
  unsigned char *p[3];
  for (int i = 0; i < 3; i++) {
    p[i] = malloc(3 * MiB / 2);
    touch(p[i], 3 * MiB / 2, 0x55);
  }
  for (int i = 0; i < 3; i++) free(p[i]);
  unsigned char *q = calloc(1, 4 * MiB);
  CHECK(q != NULL && all_are(q, 4 * MiB, 0));
  long fq = touch(q, 4 * MiB, 3);
  CHECKF(fq < 400, "4 MiB from three cached 1.5 MiB blocks: %ld faults (1024 pages)", fq);
  /* it behaves as any block: grows with its contents, shrinks, is freed */
  for (size_t o = 0; o < 4 * MiB; o += 4096) q[o] = (unsigned char)(o >> 12);
  unsigned char *r = realloc(q, 9 * MiB);
  CHECK(r != NULL);
  int same = 1;
  for (size_t o = 0; o < 4 * MiB; o += 4096) same &= r[o] == (unsigned char)(o >> 12);
  CHECK(same);
  touch(r + 4 * MiB, 5 * MiB, 4);
  r = realloc(r, 2 * MiB);
  CHECK(r != NULL && r[4096] == 1 && r[0] == 0);
  free(r);
}

/* Many sizes, every page written and read back. */
static void churn(void) {
  unsigned long long rng = 42;
  unsigned char *slot[8] = {0};
  size_t size[8] = {0};
  int bad = 0;
  for (int k = 0; k < 3000; k++) {
    int i = (int)(check_rand(&rng) % 8);
    if (slot[i] != NULL) {
      for (size_t o = 0; o < size[i]; o += 4096) bad += slot[i][o] != (unsigned char)(i + o / 4096);
      free(slot[i]);
    }
    size[i] = MiB + (size_t)(check_rand(&rng) % (15 * MiB));
    slot[i] = (k & 7) == 0 ? calloc(1, size[i]) : malloc(size[i]);
    if (slot[i] == NULL) {
      bad++;
      continue;
    }
    if ((k & 7) == 0) bad += !all_are(slot[i], size[i], 0);
    for (size_t o = 0; o < size[i]; o += 4096) slot[i][o] = (unsigned char)(i + o / 4096);
  }
  CHECKF(bad == 0, "%d pages lost what was written", bad);
  for (int i = 0; i < 8; i++) free(slot[i]);
}

int main(void) {
  mt_stats before = {.size = sizeof before}, after = {.size = sizeof after};
  mt_collect();
  mt_stats_get(&before);
  RUN(tail_of_a_larger_block);
  RUN(put_together_from_pieces);
  RUN(churn);
  mt_collect(); /* ends every delay: the cache is unmapped */
  mt_stats_get(&after);
  CHECKF(after.bytes_mapped <= before.bytes_mapped + 4 * MiB, "mapped %llu bytes before, %llu after",
         (unsigned long long)before.bytes_mapped, (unsigned long long)after.bytes_mapped);
  CHECKF(after.bytes_committed <= before.bytes_committed + 4 * MiB, "committed %llu bytes before, %llu after",
         (unsigned long long)before.bytes_committed, (unsigned long long)after.bytes_committed);
  CHECK(after.huge_allocs == after.huge_frees);
  return check_summary("test_huge");
}
