/* test_libc.c -- the malloc family as glibc's own malloc tests expect it of a replacement
 *
 * usage: test_libc [group]   (no group: all)
 * Our equivalents of the glibc malloc tests that apply to a replacement
 * allocator (their names in brackets):
 *   too_large    sizes no machine can back fail with ENOMEM, for every entry point, and an
 *                existing block survives a failed realloc [tst-malloc-too-large]
 *   semantics    realloc, reallocarray, memalign, posix_memalign, aligned_alloc, valloc,
 *                pvalloc, malloc_usable_size [tst-realloc, tst-reallocarray, tst-memalign,
 *                tst-posix_memalign, tst-aligned-alloc, tst-valloc, tst-pvalloc]
 *   free_errno   free keeps errno, also when it unmaps [tst-free-errno]
 *   thread_fail  threads whose requests fail under an address-space limit see ENOMEM and
 *                go on [tst-malloc-thread-fail]
 *   thread_exit  threads that exit while their blocks live on, handed between threads, for
 *                several seconds: memory stays bounded [tst-malloc-thread-exit] */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "memtally.h"

/* Failed reallocs leave their block as it was; gcc cannot know they failed. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

static size_t page_size;

/* ---- too large ---- */

static void too_large(void) {
  const size_t sizes[] = {SIZE_MAX,           SIZE_MAX - 1,         SIZE_MAX - 4096,   (size_t)PTRDIFF_MAX + 1,
                          (size_t)PTRDIFF_MAX, (size_t)1 << 62,      (size_t)1 << 50,  (size_t)1 << 46,
                          (size_t)1 << 45};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    errno = 0;
    CHECKF(malloc(n) == NULL && errno == ENOMEM, "malloc(%zu)", n);
    errno = 0;
    CHECKF(calloc(n, 1) == NULL && errno == ENOMEM, "calloc(%zu, 1)", n);
    errno = 0;
    CHECKF(calloc(1, n) == NULL && errno == ENOMEM, "calloc(1, %zu)", n);
    errno = 0;
    CHECKF(memalign(64, n) == NULL && errno == ENOMEM, "memalign(64, %zu)", n);
    errno = 0;
    CHECKF(aligned_alloc(4096, n) == NULL && errno == ENOMEM, "aligned_alloc(4096, %zu)", n);
    errno = 0;
    CHECKF(valloc(n) == NULL && errno == ENOMEM, "valloc(%zu)", n);
    errno = 0;
    CHECKF(pvalloc(n) == NULL && errno == ENOMEM, "pvalloc(%zu)", n);
    void *p = (void *)1;
    errno = 0;
    int rc = posix_memalign(&p, 64, n);
    CHECKF(rc == ENOMEM && errno == ENOMEM && p == (void *)1, "posix_memalign(64, %zu) = %d", n, rc);
    /* a failed realloc leaves the block as it was */
    const size_t olds[] = {40, 5000, 300000, 3u << 20};
    for (size_t k = 0; k < 4; k++) {
      unsigned char *b = malloc(olds[k]);
      memset(b, 0x6b, olds[k]);
      errno = 0;
      CHECKF(realloc(b, n) == NULL && errno == ENOMEM, "realloc(%zu B, %zu)", olds[k], n);
      CHECK(b[0] == 0x6b && b[olds[k] - 1] == 0x6b);
      errno = 0;
      CHECKF(reallocarray(b, n, 1) == NULL && errno == ENOMEM, "reallocarray(%zu B, %zu, 1)", olds[k], n);
      free(b);
    }
  }
  /* products that overflow */
  const size_t halves[][2] = {{SIZE_MAX / 2 + 1, 2}, {(size_t)1 << 32, (size_t)1 << 32}, {SIZE_MAX, SIZE_MAX},
                              {3, SIZE_MAX / 3 + 1}};
  for (size_t i = 0; i < 4; i++) {
    errno = 0;
    CHECK(calloc(halves[i][0], halves[i][1]) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(reallocarray(NULL, halves[i][0], halves[i][1]) == NULL && errno == ENOMEM);
  }
  /* regions too (the region API's own entry points) */
  mt_region *r = mt_region_new(NULL, "too-large");
  errno = 0;
  CHECK(mt_region_calloc(r, SIZE_MAX / 2 + 1, 2) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mt_region_alloc_array(r, (size_t)1 << 33, 8, (size_t)1 << 33) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mt_region_alloc_aligned(r, SIZE_MAX - 64, 64) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mt_region_alloc_aligned(r, 64, (size_t)1 << 62) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mt_region_alloc(r, (size_t)1 << 45) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mt_region_alloc_aligned(r, 64, 48) == NULL && errno == EINVAL);
  CHECK(mt_region_alloc(r, 100) != NULL); /* and it still works */
  mt_region_delete(r);
  void *ok = malloc(100); /* the heap still works */
  CHECK(ok != NULL);
  free(ok);
}

/* ---- semantics ---- */

static void semantics(void) {
  /* realloc */
  char *p = realloc(NULL, 100);
  CHECK(p != NULL && malloc_usable_size(p) >= 100);
  memset(p, 'a', 100);
  for (size_t n = 1; n < (8u << 20); n = n * 3 + 7) { /* through every size range, keeping the prefix */
    size_t keep = n < 100 ? n : 100;
    p = realloc(p, n);
    CHECK(p != NULL && malloc_usable_size(p) >= n);
    CHECK(p[0] == 'a' && p[keep - 1] == 'a');
    if (n < 100) memset(p, 'a', n);
    else memset(p + 99, 'a', 1);
    p = realloc(p, 100);
    CHECK(p != NULL);
    memset(p, 'a', 100);
  }
  errno = 0;
  CHECK(realloc(p, 0) == NULL); /* glibc frees and returns NULL */
  /* reallocarray */
  int *a = reallocarray(NULL, 10, sizeof(int));
  CHECK(a != NULL);
  for (int i = 0; i < 10; i++) a[i] = i;
  a = reallocarray(a, 100000, sizeof(int));
  CHECK(a != NULL && a[9] == 9);
  free(a);
  /* aligned entry points, alignment 1 .. 64 MiB, sizes 0 .. a few MiB */
  for (size_t align = 1; align <= ((size_t)64 << 20); align <<= 1) {
    const size_t sizes[] = {0, 1, align - 1, align, align + 1, 3 * align, 5000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      size_t n = sizes[k];
      if (n > (32u << 20)) continue;
      void *m = memalign(align, n);
      CHECKF(m != NULL && (uintptr_t)m % align == 0, "memalign(%zu, %zu)", align, n);
      CHECK(malloc_usable_size(m) >= n);
      if (n) memset(m, 1, n);
      free(m);
      void *q = NULL;
      int rc = posix_memalign(&q, align < sizeof(void *) ? sizeof(void *) : align, n);
      CHECKF(rc == 0 && q != NULL && (uintptr_t)q % align == 0, "posix_memalign(%zu, %zu) = %d", align, n, rc);
      CHECK(malloc_usable_size(q) >= n);
      free(q);
      void *al = aligned_alloc(align, n);
      CHECKF(al != NULL && (uintptr_t)al % align == 0, "aligned_alloc(%zu, %zu)", align, n);
      void *grown = realloc(al, n + 100); /* an aligned block reallocs like any other */
      CHECK(grown != NULL);
      free(grown);
    }
  }
  /* invalid alignments */
  void *q = (void *)1;
  CHECK(posix_memalign(&q, 0, 10) == EINVAL && q == (void *)1);
  CHECK(posix_memalign(&q, 4, 10) == EINVAL);             /* not a multiple of sizeof(void *) */
  CHECK(posix_memalign(&q, 24, 10) == EINVAL);            /* not a power of two */
  CHECK(posix_memalign(&q, (size_t)1 << 63, 10) == ENOMEM || q == (void *)1);
  errno = 0;
  void *m = memalign(24, 10); /* glibc rounds a non-power of two up */
  CHECK(m != NULL && (uintptr_t)m % 32 == 0);
  free(m);
  /* valloc, pvalloc */
  void *v = valloc(1);
  CHECK(v != NULL && (uintptr_t)v % page_size == 0);
  free(v);
  void *pv = pvalloc(0);
  CHECK(pv != NULL && (uintptr_t)pv % page_size == 0 && malloc_usable_size(pv) >= page_size);
  free(pv);
  pv = pvalloc(page_size + 1);
  CHECK(pv != NULL && malloc_usable_size(pv) >= 2 * page_size);
  free(pv);
  /* malloc(0) is a real, distinct block */
  void *z1 = malloc(0), *z2 = malloc(0);
  CHECK(z1 != NULL && z2 != NULL && z1 != z2);
  free(z1);
  free(z2);
  CHECK(malloc_usable_size(NULL) == 0);
  free(NULL);
  /* calloc clears reused memory */
  for (size_t n = 16; n < (4u << 20); n *= 4) {
    unsigned char *d = malloc(n);
    memset(d, 0xff, n);
    free(d);
    unsigned char *c = calloc(n, 1);
    CHECK(c != NULL && c[0] == 0 && c[n - 1] == 0 && c[n / 2] == 0);
    free(c);
  }
}

/* ---- free keeps errno ---- */

static void *free_in_thread(void *p) {
  errno = 1789;
  free(p);
  return errno == 1789 ? p : NULL;
}

static void free_errno(void) {
  const size_t sizes[] = {16, 5000, 200000, 2u << 20, 64u << 20};
  for (int rep = 0; rep < 3; rep++) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      void *p = malloc(sizes[i]);
      CHECK(p != NULL);
      memset(p, 1, sizes[i]);
      errno = 1789;
      free(p);
      CHECKF(errno == 1789, "free of %zu bytes changed errno to %d", sizes[i], errno);
    }
    errno = 1789;
    mt_collect(); /* unmaps cached memory */
    free(NULL);
    CHECK(errno == 1789);
  }
  /* blocks freed by a thread that does not own them */
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = malloc(sizes[i]);
    pthread_t t;
    void *res = NULL;
    pthread_create(&t, NULL, free_in_thread, p);
    pthread_join(t, &res);
    CHECKF(res == p, "free of %zu bytes by another thread changed its errno", sizes[i]);
  }
}

/* ---- threads whose requests fail ---- */

static _Atomic long tf_refused, tf_wrong, tf_small;

static void *thread_fail_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < 200; i++) {
    size_t n = (size_t)(64 + i % 64) << 20; /* 64..127 MiB: a few fit, most are refused */
    void *blocks[8] = {0};
    for (int k = 0; k < 8; k++) {
      errno = 0;
      switch ((i + k) % 5) {
      case 0: blocks[k] = malloc(n); break;
      case 1: blocks[k] = calloc(n / 8, 8); break;
      case 2: blocks[k] = realloc(NULL, n); break;
      case 3: blocks[k] = aligned_alloc(1u << 21, n); break;
      default:
        if (posix_memalign(&blocks[k], 4096, n) != 0) blocks[k] = NULL;
      }
      if (blocks[k] == NULL) {
        tf_refused++;
        if (errno != ENOMEM) tf_wrong++;
      } else {
        memset(blocks[k], 1, 4096);
      }
      void *small = malloc(64); /* small requests keep working */
      if (small == NULL) tf_small++;
      free(small);
    }
    for (int k = 0; k < 8; k++) free(blocks[k]);
  }
  return NULL;
}

static void thread_fail(void) {
  struct rlimit old, lim;
  getrlimit(RLIMIT_AS, &old);
  lim = old;
  lim.rlim_cur = (rlim_t)768 << 20;
  CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, thread_fail_worker, NULL);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  setrlimit(RLIMIT_AS, &old);
  CHECKF(tf_refused > 0, "no request was refused under the limit");
  CHECKF(tf_wrong == 0, "%ld failures without ENOMEM", (long)tf_wrong);
  CHECKF(tf_small == 0, "%ld small requests refused while large ones held the address space", (long)tf_small);
  void *p = malloc(256u << 20); /* the limit lifted: it all works again */
  CHECK(p != NULL);
  free(p);
}

/* ---- threads that exit while their blocks live on ---- */

#define TE_SLOTS 64
static void *_Atomic te_slots[TE_SLOTS];
static _Atomic int te_stop;
static _Atomic long te_nulls;

static void *te_inner(void *arg) {
  unsigned long long s = (unsigned long long)(uintptr_t)arg | 1;
  for (int i = 0; i < 50; i++) {
    void *p = malloc(16 + check_rand(&s) % 3000);
    if (p == NULL) te_nulls++;
    void *old = atomic_exchange(&te_slots[check_rand(&s) % TE_SLOTS], p); /* outlives this thread */
    free(old);
  }
  return NULL;
}

static void *te_outer(void *arg) {
  long k = (long)(uintptr_t)arg;
  while (!te_stop) {
    pthread_t t;
    if (pthread_create(&t, NULL, te_inner, (void *)(uintptr_t)(k++ * 7919)) == 0) pthread_join(t, NULL);
  }
  return NULL;
}

static void thread_exit(void) {
  mt_stats s0, s1;
  s0.size = s1.size = sizeof s0;
  mt_stats_get(&s0);
  pthread_t t[4];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, te_outer, (void *)(uintptr_t)(i * 1000003));
  sleep(3);
  te_stop = 1;
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  mt_stats_get(&s1);
  CHECKF(te_nulls == 0, "%ld NULLs", (long)te_nulls);
  /* 64 live blocks of at most 3 KiB: what is committed must not grow with the threads made */
  CHECKF(s1.bytes_committed < s0.bytes_committed + (64u << 20), "committed %llu MiB after, %llu MiB before",
         (unsigned long long)s1.bytes_committed >> 20, (unsigned long long)s0.bytes_committed >> 20);
  for (int i = 0; i < TE_SLOTS; i++) free(atomic_exchange(&te_slots[i], NULL));
}

int main(int argc, char **argv) {
  page_size = (size_t)sysconf(_SC_PAGESIZE);
  const char *only = argc > 1 ? argv[1] : NULL;
#define GROUP(fn)                                  \
  if (only == NULL || strcmp(only, #fn) == 0) RUN(fn)
  GROUP(too_large);
  GROUP(semantics);
  GROUP(free_errno);
  GROUP(thread_fail);
  GROUP(thread_exit);
  return check_summary("test_libc");
}
