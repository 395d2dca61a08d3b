/* test_api.c -- every allocation entry point of the mt_ API: sizes, alignment, errors, stats */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "memtally.h"

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}
static int verify(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 7)) return 0;
  return 1;
}

static const size_t sizes[] = {0, 1, 7, 8, 15, 16, 17, 24, 31, 32, 48, 63, 64, 100, 127, 128, 129, 200, 255,
                               256, 257, 500, 1000, 1023, 1024, 1025, 2000, 4095, 4096, 4097, 8191, 8192, 10000,
                               16384, 40000, 65535, 65536, 65537, 100000, 131071, 131072, 131073, 200000, 262144,
                               500000, 1048575, 1048576, 1048577, 2000000, 4194304, 4194305, 9000000, 40000000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void test_malloc_sizes(void) {
  void *ps[NSIZES];
  for (size_t i = 0; i < NSIZES; i++) {
    ps[i] = mt_malloc(sizes[i]);
    CHECKF(ps[i] != NULL, "malloc(%zu)", sizes[i]);
    if (!ps[i]) continue;
    CHECKF(((uintptr_t)ps[i] & 15) == 0, "malloc(%zu) alignment %p", sizes[i], ps[i]);
    CHECKF(mt_usable_size(ps[i]) >= sizes[i], "usable %zu < %zu", mt_usable_size(ps[i]), sizes[i]);
    CHECK(mt_owns(ps[i]));
    fill(ps[i], sizes[i], (unsigned)i);
  }
  for (size_t i = 0; i < NSIZES; i++) {
    if (!ps[i]) continue;
    CHECKF(verify(ps[i], sizes[i], (unsigned)i), "contents of malloc(%zu)", sizes[i]);
    for (size_t j = i + 1; j < NSIZES; j++) CHECK(ps[i] != ps[j]);
  }
  for (size_t i = 0; i < NSIZES; i++) mt_free(ps[i]);
  /* every size up to 140000 in steps that hit each class boundary */
  for (size_t n = 0; n < 140000; n += (n < 2048 ? 1 : 97)) {
    unsigned char *p = mt_malloc(n);
    CHECKF(p != NULL && mt_usable_size(p) >= n, "malloc(%zu)", n);
    if (p && n) p[0] = 1, p[n - 1] = 2;
    mt_free(p);
  }
  mt_free(NULL);
  CHECK(mt_usable_size(NULL) == 0);
}

static void test_calloc(void) {
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = sizes[i];
    unsigned char *p = mt_malloc(n);
    if (p) memset(p, 0xab, n);
    mt_free(p);
    unsigned char *q = mt_calloc(1, n); /* likely the block just freed */
    CHECKF(q != NULL, "calloc(1, %zu)", n);
    size_t bad = 0;
    for (size_t k = 0; q && k < n; k++) bad += q[k] != 0;
    CHECKF(bad == 0, "calloc(1, %zu) has %zu nonzero bytes", n, bad);
    mt_free(q);
  }
  int *v = mt_calloc(1000, sizeof(int));
  CHECK(v != NULL);
  size_t bad = 0;
  for (int i = 0; i < 1000; i++) bad += v[i] != 0;
  CHECK(bad == 0);
  mt_free(v);
  void *z = mt_calloc(0, 0);
  CHECK(z != NULL);
  mt_free(z);
}

static void test_realloc(void) {
  /* grow from 1 byte to 48 MiB, then shrink back, checking the prefix */
  size_t n = 1;
  unsigned char *p = mt_malloc(n);
  fill(p, n, 3);
  while (n < 48u << 20) {
    size_t m = n * 3 / 2 + 1;
    unsigned char *q = mt_realloc(p, m);
    CHECKF(q != NULL, "realloc to %zu", m);
    if (!q) break;
    CHECKF(verify(q, n, 3), "realloc %zu -> %zu lost contents", n, m);
    fill(q, m, 3);
    p = q;
    n = m;
  }
  while (n > 3) {
    size_t m = n / 3;
    unsigned char *q = mt_realloc(p, m);
    CHECK(q != NULL);
    if (!q) break;
    CHECKF(verify(q, m, 3), "shrink %zu -> %zu lost contents", n, m);
    p = q;
    n = m;
  }
  mt_free(p);
  void *a = mt_realloc(NULL, 100);
  CHECK(a != NULL && mt_usable_size(a) >= 100);
  errno = 0;
  void *b = mt_realloc(a, 0); /* frees, as glibc does */
  CHECK(b == NULL);
  /* in-place when the block still fits */
  char *c = mt_malloc(100);
  CHECK(mt_realloc(c, 110) == c);
  mt_free(c);
}

static void test_aligned(void) {
  for (size_t align = 1; align <= (1u << 20); align <<= 1) {
    static const size_t asz[] = {0, 1, 8, 100, 1000, 5000, 70000, 300000, 2000000};
    for (size_t k = 0; k < sizeof asz / sizeof asz[0]; k++) {
      size_t n = asz[k];
      void *p = NULL;
      if (align >= sizeof(void *)) {
        int rc = mt_posix_memalign(&p, align, n);
        CHECKF(rc == 0 && p && ((uintptr_t)p % align) == 0, "posix_memalign(%zu, %zu) = %d %p", align, n, rc, p);
        if (p) {
          CHECK(mt_usable_size(p) >= n);
          memset(p, 0x5a, n);
        }
        mt_free(p);
      }
      p = mt_aligned_alloc(align, n);
      CHECKF(p && ((uintptr_t)p % align) == 0, "aligned_alloc(%zu, %zu) = %p", align, n, p);
      if (p) memset(p, 1, n);
      mt_free(p);
      p = mt_memalign(align, n);
      CHECKF(p && ((uintptr_t)p % align) == 0, "memalign(%zu, %zu)", align, n);
      if (p) CHECK(mt_usable_size(p) >= n);
      mt_free(p);
    }
  }
  /* every small size at every alignment a size class can give (at rate 1,
   * test_api_sampled, each block is a sample and moves to its bin's page) */
  for (size_t align = 32; align <= 8192; align <<= 1)
    for (size_t n = 1; n <= 8192; n += 13) {
      void *held[12]; /* several live at once: blocks past a page's first */
      for (int k = 0; k < 12; k++) {
        held[k] = mt_aligned_alloc(align, n);
        CHECKF(held[k] && ((uintptr_t)held[k] % align) == 0, "aligned_alloc(%zu, %zu) = %p", align, n, held[k]);
      }
      for (int k = 0; k < 12; k++) mt_free(held[k]);
    }
  /* alignments beyond a segment */
  for (size_t align = 2u << 20; align <= (16u << 20); align <<= 1) {
    void *p = mt_aligned_alloc(align, 1000);
    CHECKF(p && ((uintptr_t)p % align) == 0, "aligned_alloc(%zu)", align);
    CHECK(mt_owns(p));
    if (p) CHECK(mt_usable_size(p) >= 1000);
    mt_free(p);
  }
  size_t ps = (size_t)sysconf(_SC_PAGESIZE);
  void *v = mt_valloc(10);
  CHECK(v && ((uintptr_t)v % ps) == 0);
  mt_free(v);
  v = mt_pvalloc(10);
  CHECK(v && ((uintptr_t)v % ps) == 0 && mt_usable_size(v) >= ps);
  mt_free(v);
}

static void test_bad_input(void) {
  void *p = (void *)1;
  CHECK(mt_posix_memalign(&p, 3, 10) == EINVAL);
  CHECK(mt_posix_memalign(&p, 4, 10) == EINVAL); /* not a multiple of sizeof(void*) */
  CHECK(mt_posix_memalign(&p, 0, 10) == EINVAL);
  CHECK(p == (void *)1);                          /* untouched on error */
  errno = 0;
  CHECK(mt_aligned_alloc(3, 10) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(mt_aligned_alloc(0, 10) == NULL && errno == EINVAL);
  void *m = mt_memalign(24, 10); /* glibc rounds up to a power of two */
  CHECK(m != NULL && ((uintptr_t)m % 32) == 0);
  mt_free(m);
  errno = 0;
  CHECK(mt_malloc(SIZE_MAX) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mt_malloc((size_t)PTRDIFF_MAX + 1) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mt_malloc(SIZE_MAX - 4096) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mt_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  errno = 0;
  errno = 0;
  CHECK(mt_calloc((size_t)1 << 40, (size_t)1 << 40) == NULL && errno == ENOMEM);
  char *a = mt_malloc(64);
  strcpy(a, "kept");
  errno = 0;
  CHECK(mt_reallocarray(a, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  CHECK(strcmp(a, "kept") == 0);
  errno = 0;
  CHECK(mt_realloc(a, SIZE_MAX) == NULL && errno == ENOMEM);
  CHECK(strcmp(a, "kept") == 0);
  char *b = mt_reallocarray(a, 10, 100);
  CHECK(b != NULL && strcmp(b, "kept") == 0 && mt_usable_size(b) >= 1000);
  mt_free(b);
  p = NULL;
  CHECK(mt_posix_memalign(&p, 64, SIZE_MAX - 10) == ENOMEM && p == NULL);
  errno = 0;
  CHECK(mt_pvalloc(SIZE_MAX) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mt_aligned_alloc((size_t)1 << 62, 10) == NULL && errno == ENOMEM);
  /* free keeps errno, including when it returns memory to the OS */
  void *big = mt_malloc(200u << 20);
  void *small = mt_malloc(10);
  errno = 12345;
  mt_free(big);
  mt_free(small);
  mt_free(NULL);
  CHECK(errno == 12345);
  CHECK(!mt_owns(&p));
  CHECK(!mt_owns(NULL));
}

static void test_stats(void) {
  mt_stats a, b;
  a.size = sizeof a;
  b.size = sizeof b;
  uint64_t ta, tb, ta2, tb2;
  void *ps[1000];
  CHECK(mt_stats_get(&a) == 0);
  mt_thread_counters(&ta, &tb);
  for (int i = 0; i < 1000; i++) ps[i] = mt_malloc(100); /* class of 112 bytes */
  mt_thread_counters(&ta2, &tb2);
  CHECK(mt_stats_get(&b) == 0);
  CHECK(a.version == MT_STATS_VERSION && a.size == sizeof a);
  CHECKF(ta2 - ta == 1000, "thread allocs %llu", (unsigned long long)(ta2 - ta));
  CHECKF(tb2 - tb == 112000, "thread bytes %llu", (unsigned long long)(tb2 - tb));
  /* in use counts blocks as held: a profiler sample may sit in a larger block */
  uint64_t held = 0;
  for (int i = 0; i < 1000; i++) held += mt_usable_size(ps[i]);
  CHECKF(b.bytes_in_use - a.bytes_in_use == held && held >= 112000 && held <= 128000, "in use delta %lld, held %llu",
         (long long)(b.bytes_in_use - a.bytes_in_use), (unsigned long long)held);
  CHECK(b.allocs - a.allocs == 1000);
  CHECK(b.bytes_in_use_peak >= b.bytes_in_use);
  CHECK(b.bytes_committed >= b.bytes_in_use);
  CHECK(b.mmap_calls >= 1 && b.segments >= 1 && b.rss > 0);
  for (int i = 0; i < 1000; i++) mt_free(ps[i]);
  mt_stats c;
  c.size = sizeof c;
  mt_stats_get(&c);
  CHECK(c.frees - b.frees == 1000);
  CHECK(c.bytes_in_use == a.bytes_in_use);
  CHECK(mt_stats_get(NULL) == -1 && errno == EINVAL);
  /* an older, smaller struct gets only its part */
  struct { uint32_t size, version; uint64_t allocs; } old = {sizeof old, 0, 0};
  CHECK(mt_stats_get((mt_stats *)&old) == 0 && old.size == sizeof old && old.allocs > 0);
}

static void test_purge(void) {
  /* 64 MiB of small blocks, freed: committed memory must go back to the OS,
   * by the purge delay on later activity and at once with mt_collect. */
  enum { N = 64 * 1024 };
  static void *ps[N];
  mt_stats s0, s1, s2, s3;
  s0.size = s1.size = s2.size = s3.size = sizeof s0;
  mt_collect(); /* start from nothing cached */
  mt_stats_get(&s0);
  for (int i = 0; i < N; i++) ps[i] = mt_malloc(1000);
  mt_stats_get(&s1);
  CHECK(s1.bytes_committed >= s0.bytes_committed + (size_t)N * 1000);
  for (int i = 0; i < N; i++) mt_free(ps[i]);
  long long delay = mt_option_value("PURGE_DELAY");
  usleep((useconds_t)(delay * 2 + 20) * 1000); /* past the purge delay */
  for (int i = 0; i < 12000; i++) mt_free(mt_malloc(1000)); /* 12 MB of activity runs the purge */
  mt_stats_get(&s2);
  CHECKF(s2.bytes_committed < s1.bytes_committed - (size_t)N * 1000 / 2, "committed %llu after free, %llu before",
         (unsigned long long)s2.bytes_committed, (unsigned long long)s1.bytes_committed);
  CHECK(s2.madvise_calls > s1.madvise_calls || s2.munmap_calls > s1.munmap_calls);
  mt_collect();
  mt_stats_get(&s3);
  CHECK(s3.bytes_committed <= s2.bytes_committed);
}

static void test_options(void) {
  CHECK(mt_option_count() >= 5);
  mt_option_info info;
  CHECK(mt_option_get_info(0, &info) == 0 && strncmp(info.name, "MEMTALLY_", 9) == 0);
  CHECK(mt_option_get_info(1000, &info) == -1);
  CHECK(mt_option_value("MEMTALLY_ABORT") == 1 || getenv("MEMTALLY_ABORT") != NULL);
  CHECK(mt_option_value("PURGE_DELAY") == mt_option_value("MEMTALLY_PURGE_DELAY"));
  CHECK(mt_option_value("NO_SUCH_OPTION") == -1);
}

/* A page filled, given a block back by its owner (it leaves the full queue
 * lazily, keeping its full bit), freed into by another thread, filled again
 * and freed into again: every block freed comes back to malloc. */
enum { FP_N = 8192 };
static void *fp_blocks[FP_N];
static void *fp_free_range(void *arg) {
  const int *r = arg;
  for (int i = r[0]; i < r[1]; i++) mt_free(fp_blocks[i]), fp_blocks[i] = NULL;
  return NULL;
}
static void fp_remote_free(int from, int to) {
  int r[2] = {from, to};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fp_free_range, r) == 0);
  pthread_join(t, NULL);
}
/* malloc(64) until every address of want[] came back (at most limit calls); the blocks taken meanwhile go to keep */
static int fp_taken_back(void **want, int nwant, void **keep, int limit) {
  int seen = 0, n = 0;
  while (seen < nwant && n < limit) {
    void *p = mt_malloc(64);
    if (p == NULL) break;
    keep[n++] = p;
    for (int k = 0; k < nwant; k++)
      if (want[k] == p) want[k] = NULL, seen++;
  }
  return seen == nwant ? n : -1;
}

static void test_full_pages(void) {
  static void *keep[4 * FP_N];
  for (int i = 0; i < FP_N; i++) fp_blocks[i] = mt_malloc(64); /* 8 pages of 1,024 blocks, all full but the last */
  void *want[16];
  int nw = 0;
  want[nw++] = fp_blocks[100], mt_free(fp_blocks[100]), fp_blocks[100] = NULL; /* the owner's free */
  for (int i = 200; i < 210; i++) want[nw++] = fp_blocks[i];
  fp_remote_free(200, 210); /* another thread's, into the same page */
  int n1 = fp_taken_back(want, nw, keep, 2 * FP_N);
  CHECKF(n1 > 0, "the blocks freed into a page that was full came back (%d)", n1);
  /* that page is full again: another thread frees into it once more */
  nw = 0;
  for (int i = 300; i < 305; i++) want[nw++] = fp_blocks[i];
  fp_remote_free(300, 305);
  int n2 = fp_taken_back(want, nw, keep + (n1 > 0 ? n1 : 0), 2 * FP_N);
  CHECKF(n2 > 0, "blocks freed into a page full for the second time came back (%d)", n2);
  /* the owner gives one back and takes it again (the page goes full with its
   * bit kept), then another thread frees into it: the owner must hear of it */
  int used = (n1 > 0 ? n1 : 0) + (n2 > 0 ? n2 : 0);
  want[0] = fp_blocks[400], mt_free(fp_blocks[400]), fp_blocks[400] = NULL;
  int n3 = fp_taken_back(want, 1, keep + used, 2 * FP_N);
  CHECKF(n3 > 0, "the owner's block came back (%d)", n3);
  used += n3 > 0 ? n3 : 0;
  for (int k = 0; k < 64; k++) keep[used++] = mt_malloc(64); /* past the page: it is on the full queue now */
  nw = 0;
  for (int i = 500; i < 506; i++) want[nw++] = fp_blocks[i];
  fp_remote_free(500, 506);
  int n4 = fp_taken_back(want, nw, keep + used, 2 * FP_N);
  CHECKF(n4 > 0, "blocks freed by another thread into a page that went full with its bit kept came back (%d)", n4);
  used += n4 > 0 ? n4 : 0;
  for (int i = 0; i < used; i++) mt_free(keep[i]);
  for (int i = 0; i < FP_N; i++) mt_free(fp_blocks[i]);
}

int main(void) {
  RUN(test_malloc_sizes);
  RUN(test_calloc);
  RUN(test_realloc);
  RUN(test_aligned);
  RUN(test_bad_input);
  RUN(test_stats);
  RUN(test_purge);
  RUN(test_options);
  RUN(test_full_pages);
  return check_summary("test_api");
}
