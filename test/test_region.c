/* test_region.c -- regions: every call, nesting, reset and delete, stats, debug mode, accounting
 * usage: test_region [PATH-TO-SELF]   (with the path, the debug-mode death tests run too) */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "memtally.h"

static void test_basics(void) {
  mt_region *r = mt_region_new(NULL, "basics");
  CHECK(r != NULL && strcmp(mt_region_name(r), "basics") == 0 && mt_region_parent(r) == NULL);
  char *a = mt_region_alloc(r, 10);
  char *b = mt_region_alloc(r, 100);
  CHECK(a && b && a != b && ((uintptr_t)a % 16) == 0 && ((uintptr_t)b % 16) == 0);
  memset(a, 1, 10);
  memset(b, 2, 100);
  CHECK(a[9] == 1 && b[99] == 2);
  for (size_t align = 1; align <= 4096; align <<= 1) {
    void *p = mt_region_alloc_aligned(r, 3, align);
    CHECKF(p && ((uintptr_t)p % align) == 0, "align %zu", align);
  }
  errno = 0;
  CHECK(mt_region_alloc_aligned(r, 8, 3) == NULL && errno == EINVAL);
  int *z = mt_region_calloc(r, 100, sizeof(int));
  int bad = 0;
  for (int i = 0; i < 100; i++) bad += z[i] != 0;
  CHECK(z && bad == 0);
  errno = 0;
  CHECK(mt_region_calloc(r, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mt_region_alloc(r, SIZE_MAX) == NULL && errno == ENOMEM);
  char *s = mt_region_strdup(r, "region string");
  CHECK(s && strcmp(s, "region string") == 0);
  typedef struct { double x; long y; } pair;
  pair *arr = MT_REGION_NEW_ARRAY(r, pair, 1000);
  CHECK(arr && ((uintptr_t)arr % _Alignof(pair)) == 0);
  arr[999].y = 7;
  errno = 0;
  CHECK(MT_REGION_NEW_ARRAY(r, pair, SIZE_MAX / 8) == NULL && errno == ENOMEM);
  /* a large request gets a chunk of its own and leaves the current one */
  char *big = mt_region_alloc(r, 3 << 20);
  CHECK(big != NULL);
  memset(big, 3, 3 << 20);
  char *after = mt_region_alloc(r, 16);
  CHECK(after != NULL);
  mt_region_delete(r);
}

static void test_realloc(void) {
  mt_region *r = mt_region_new(NULL, "realloc");
  char *p = mt_region_alloc(r, 16);
  memcpy(p, "0123456789abcdef", 16);
  char *q = mt_region_realloc(r, p, 16, 200); /* the last block: grows in place */
  CHECK(q == p && memcmp(q, "0123456789abcdef", 16) == 0);
  char *other = mt_region_alloc(r, 8);
  (void)other;
  char *w = mt_region_realloc(r, q, 200, 400); /* no longer last: moves, contents kept */
  CHECK(w != q && memcmp(w, "0123456789abcdef", 16) == 0);
  CHECK(mt_region_realloc(r, w, 400, 10) == w); /* shrinking never moves */
  char *n = mt_region_realloc(r, NULL, 0, 32);
  CHECK(n != NULL);
  mt_region_delete(r);
}

static char order[16];
static int norder;
static void note(void *arg) { order[norder++] = (char)(uintptr_t)arg; }

static void test_defer_and_tree(void) {
  mt_region *root = mt_region_new(NULL, "root");
  mt_region *a = mt_region_new(root, "a");
  mt_region *b = mt_region_new(root, "b");
  mt_region *a1 = mt_region_new(a, "a1");
  CHECK(mt_region_parent(a1) == a && mt_region_parent(a) == root);
  norder = 0;
  CHECK(mt_region_defer(root, note, (void *)'1') == 0);
  CHECK(mt_region_defer(root, note, (void *)'2') == 0);
  CHECK(mt_region_defer(a1, note, (void *)'x') == 0);
  CHECK(mt_region_defer(b, note, (void *)'y') == 0);
  mt_region_reset(root); /* children first, then root's own, newest first */
  order[norder] = 0;
  CHECKF(strchr(order, 'x') && strchr(order, 'y') && strcmp(order + norder - 2, "21") == 0, "order %s", order);
  /* reset keeps the regions and one chunk each: allocation works again */
  CHECK(mt_region_alloc(a1, 10) != NULL && mt_region_alloc(root, 10) != NULL);
  mt_region_stats s;
  mt_region_stats_get(root, &s, NULL);
  CHECK(s.chunks == 1);
  norder = 0;
  mt_region_defer(a1, note, (void *)'k');
  mt_region_delete(a); /* deletes a1 too */
  CHECK(norder == 1 && order[0] == 'k');
  mt_region_stats t;
  mt_region_stats_get(root, NULL, &t);
  CHECK(t.regions == 2); /* root and b */
  mt_region_delete(root);
}

static void test_stats(void) {
  mt_region *r = mt_region_new(NULL, "stats");
  mt_region *c = mt_region_new(r, "child");
  for (int i = 0; i < 1000; i++) mt_region_alloc(r, 48);
  for (int i = 0; i < 10; i++) mt_region_alloc(c, 1000);
  mt_region_stats s, t, cs;
  mt_region_stats_get(r, &s, &t);
  mt_region_stats_get(c, &cs, NULL);
  CHECK(s.bytes_requested == 48000 && cs.bytes_requested == 10000);
  CHECK(s.bytes_held >= s.bytes_requested && s.waste == s.bytes_held - s.bytes_requested);
  CHECK(t.bytes_requested == 58000 && t.bytes_held == s.bytes_held + cs.bytes_held && t.regions == 2);
  CHECK(t.chunks == s.chunks + cs.chunks && s.high_water >= s.bytes_held);
  uint64_t high = s.high_water;
  mt_region_reset(r);
  mt_region_stats_get(r, &s, NULL);
  CHECK(s.bytes_requested == 0 && s.chunks == 1 && s.high_water == high);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  mt_region_stats_print(r, f);
  fclose(f);
  CHECK(buf && strstr(buf, "stats") && strstr(buf, "\n  child") && strstr(buf, "subtree: 2 regions"));
  free(buf);
  CHECK(mt_region_stats_get(NULL, &s, NULL) == -1 && errno == EINVAL);
  mt_region_delete(r);
}

/* A backing allocator that fails after a budget: the out-of-memory paths. */
typedef struct { int left; size_t out; } budget;
static void *b_alloc(size_t n, void *ctx) {
  budget *b = ctx;
  if (b->left-- <= 0) return NULL;
  b->out += n;
  return malloc(n);
}
static void b_free(void *p, size_t n, void *ctx) {
  ((budget *)ctx)->out -= n;
  free(p);
}

static void test_backing(void) {
  budget bud = {2, 0};
  mt_region_backing bk = {b_alloc, b_free, &bud};
  mt_region *r = mt_region_new_with(NULL, "backed", &bk);
  CHECK(r != NULL);
  int got = 0;
  errno = 0;
  for (int i = 0; i < 10000; i++) {
    if (mt_region_alloc(r, 100) == NULL) break;
    got++;
  }
  CHECK(got > 10 && got < 10000 && errno == ENOMEM);
  CHECK(mt_region_defer(r, note, NULL) == 0 || errno == ENOMEM);
  mt_region_delete(r);
  CHECK(bud.out == 0); /* every chunk went back */
  mt_region_backing broken = {NULL, b_free, NULL};
  errno = 0;
  CHECK(mt_region_new_with(NULL, "x", &broken) == NULL && errno == EINVAL);
}

/* The figures add up: region chunks plus the other blocks are exactly the
 * allocator's bytes in use, and committed memory explains RSS. */
static void test_accounting(void) {
  mt_stats a, b;
  a.size = b.size = sizeof a;
  mt_stats_get(&a);
  mt_region *r1 = mt_region_new(NULL, "acc1"), *r2 = mt_region_new(r1, "acc2");
  for (int i = 0; i < 20000; i++) mt_region_alloc(i % 2 ? r1 : r2, (size_t)(16 + i % 300));
  mt_region_alloc(r2, 5 << 20);
  void *other[100];
  uint64_t other_bytes = 0;
  for (int i = 0; i < 100; i++) other[i] = malloc((size_t)(100 + i * 37)), other_bytes += malloc_usable_size(other[i]);
  mt_stats_get(&b);
  mt_region_stats t;
  mt_region_stats_get(r1, NULL, &t);
  CHECKF(b.bytes_in_use - a.bytes_in_use == t.bytes_held + other_bytes,
         "in use grew %llu; regions hold %llu, other blocks %llu", (unsigned long long)(b.bytes_in_use - a.bytes_in_use),
         (unsigned long long)t.bytes_held, (unsigned long long)other_bytes);
  /* RSS is committed memory plus the program's own pages (text, data,
   * stacks, libraries): allow 32 MiB of those. */
  CHECKF(b.rss <= b.bytes_committed + (32u << 20), "rss %llu, committed %llu", (unsigned long long)b.rss,
         (unsigned long long)b.bytes_committed);
  fprintf(stderr, "accounting: in use +%llu = regions %llu + other %llu; rss %llu, committed %llu, gap %lld\n",
          (unsigned long long)(b.bytes_in_use - a.bytes_in_use), (unsigned long long)t.bytes_held,
          (unsigned long long)other_bytes, (unsigned long long)b.rss, (unsigned long long)b.bytes_committed,
          (long long)b.rss - (long long)b.bytes_committed);
  for (int i = 0; i < 100; i++) free(other[i]);
  mt_region_delete(r1);
}

static void test_prometheus(void) {
  mt_region *r = mt_region_new(NULL, "web \"requests\"");
  mt_region_alloc(r, 1000);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  mt_stats_prometheus(f);
  fclose(f);
  /* parse it back: every sample line is NAME[{labels}] VALUE, every name has HELP and TYPE */
  int samples = 0, bad = 0, region_line = 0;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#') {
      bad += strncmp(line, "# HELP memtally_", 16) != 0 && strncmp(line, "# TYPE memtally_", 16) != 0;
      continue;
    }
    char *sp = strrchr(line, ' ');
    char *end = NULL;
    if (sp) strtoull(sp + 1, &end, 10);
    bad += sp == NULL || end == NULL || *end != 0 || strncmp(line, "memtally_", 9) != 0;
    if (strstr(line, "memtally_region_bytes_held{region=\"web \\\"requests\\\"\"}")) region_line = 1;
    samples++;
  }
  CHECK(samples >= 12 && bad == 0 && region_line);
  free(buf);
  mt_region_delete(r);
}

static void test_bench_harness(void) {
  mt_region *r = mt_region_new(NULL, "bench");
  mt_bench_result m = mt_bench("noop", (void (*)(void *))mt_region_reset, r, 20, NULL);
  CHECK(m.n > 0 && m.allocs_per_op == 0);
  mt_region_delete(r);
}

static void alloc_three(void *arg) {
  (void)arg;
  void *a = malloc(10), *b = malloc(100), *c = malloc(1000);
  free(a), free(b), free(c);
}

static void test_bench_counts(void) {
  mt_bench_result m = mt_bench("three", alloc_three, NULL, 20, NULL);
  CHECKF(m.allocs_per_op == 3.0 && m.bytes_per_op == 16 + 112 + 1024, "allocs/op %.2f B/op %.1f", m.allocs_per_op,
         m.bytes_per_op);
}

/* ---- debug mode, in child processes ---- */

static int run_child(const char *self, const char *mode, char *out, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    setenv("MEMTALLY_REGION_DEBUG", "1", 1);
    execl(self, self, mode, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while ((r = read(fds[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
  out[n] = 0;
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  return st;
}

static int child(const char *mode) {
  mt_region *r = mt_region_new(NULL, "requests");
  char *p = mt_region_alloc(r, 64);
  memset(p, 1, 64);
  if (strcmp(mode, "use-after-reset") == 0) {
    mt_region_reset(r);
    volatile char c = p[10]; /* the chunk is protected now */
    (void)c;
  } else if (strcmp(mode, "use-after-delete") == 0) {
    mt_region_delete(r);
    p[0] = 2;
  } else if (strcmp(mode, "overflow") == 0) {
    p[64 + 3] = 9; /* past the end, into the redzone */
    mt_region_reset(r);
  } else if (strcmp(mode, "clean") == 0) {
    mt_region_reset(r);
    char *q = mt_region_alloc(r, 64);
    q[63] = 1;
    mt_region_delete(r);
  }
  fprintf(stderr, "child carried on\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && argv[1][0] != '/') return child(argv[1]);
  RUN(test_basics);
  RUN(test_realloc);
  RUN(test_defer_and_tree);
  RUN(test_stats);
  RUN(test_backing);
  if (getenv("MT_TEST_NO_OVERRIDE") == NULL) RUN(test_accounting); /* needs malloc to be memtally's */
  RUN(test_prometheus);
  RUN(test_bench_harness);
  if (getenv("MT_TEST_NO_OVERRIDE") == NULL) RUN(test_bench_counts);
  if (argc == 2) {
    char out[4096];
    int st = run_child(argv[1], "use-after-reset", out, sizeof out);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "use after reset: status %d", st);
    CHECKF(strstr(out, "memtally: use of released memory of region 'requests' at 0x") != NULL, "%s", out);
    st = run_child(argv[1], "use-after-delete", out, sizeof out);
    CHECKF(WIFSIGNALED(st) && strstr(out, "region 'requests'") != NULL, "use after delete: %d %s", st, out);
    st = run_child(argv[1], "overflow", out, sizeof out);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "overflow: status %d", st);
    CHECKF(strstr(out, "memtally: region 'requests': block at 0x") && strstr(out, "was written past its end (64 bytes)"),
           "%s", out);
    st = run_child(argv[1], "clean", out, sizeof out);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "carried on"), "clean debug run: %d %s", st, out);
  }
  return check_summary("test_region");
}
