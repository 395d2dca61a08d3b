/* test_errors.c -- heap misuse and bad options get one clear line on stderr
 *
 * The program re-runs itself (path in argv[1]) with a mode and an
 * environment, captures stderr and checks the status and the message. It is
 * linked with libmemtally.so, so malloc and free are memtally's. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "memtally.h"

static void *volatile keep;

static void *free_in_thread(void *p) {
  free(p);
  return NULL;
}

static void *alloc_two(void *arg) {
  void **pair = arg;
  pair[0] = malloc(48);
  pair[1] = malloc(48);
  return NULL;
}

static void *still_out[4]; /* blocks kept out in the unmarked-remote case */

/* double-free-race: two threads free the same block at the same moment */
static pthread_barrier_t race_start;
static void *_Atomic race_block;
static void *race_free(void *arg) {
  (void)arg;
  pthread_barrier_wait(&race_start);
  free(atomic_load(&race_block));
  return NULL;
}
static int ptr_cmp(const void *x, const void *y) {
  uintptr_t a = *(const uintptr_t *)x, b = *(const uintptr_t *)y;
  return a < b ? -1 : a > b;
}

static int child(const char *mode) {
  alarm(20); /* a hang is a failure too (SIGALRM) */
  if (strcmp(mode, "double-free") == 0) {
    char *p = malloc(40);
    free(p);
    free(p);
  } else if (strcmp(mode, "double-free-large") == 0) {
    char *p = malloc(300000);
    free(p);
    free(p);
  } else if (strcmp(mode, "double-free-remote") == 0) {
    char *p = malloc(40);
    pthread_t t;
    pthread_create(&t, NULL, free_in_thread, p);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, free_in_thread, p);
    pthread_join(t, NULL);
  } else if (strcmp(mode, "double-free-huge") == 0) { /* once hung: the segment cached twice */
    char *p = malloc(8 << 20);
    free(p);
    free(p);
    for (int i = 0; i < 4; i++) free(keep = malloc(8 << 20));
  } else if (strcmp(mode, "realloc-freed-huge") == 0) {
    char *p = malloc(8 << 20);
    free(p);
    keep = realloc(p, 9 << 20);
  } else if (strcmp(mode, "double-free-remote-aba") == 0) { /* once a cycle the owner walked forever */
    char *a = malloc(48), *b = malloc(48);
    pthread_t t;
    char *order[3] = {a, b, a};
    for (int i = 0; i < 3; i++) {
      pthread_create(&t, NULL, free_in_thread, order[i]);
      pthread_join(t, NULL);
    }
    for (int i = 0; i < 20000; i++) keep = malloc(48); /* the owner collects its remote frees */
  } else if (strncmp(mode, "poison-", 7) == 0) { /* a write into a freed block's link */
    static long target[8];
    char *a = malloc(48), *b = malloc(48);
    if (strcmp(mode, "poison-remote") == 0) {
      pthread_t t;
      pthread_create(&t, NULL, free_in_thread, a);
      pthread_join(t, NULL);
    } else if (strcmp(mode, "poison-overflow") == 0) {
      free(b); /* then an 8-byte overflow off the end of the block before it */
      a = b - 48;
    } else {
      free(a);
    }
    uintptr_t bad = strcmp(mode, "poison-wild") == 0 ? (uintptr_t)0x4141414141414141ULL : (uintptr_t)target;
    memcpy(strcmp(mode, "poison-overflow") == 0 ? b : a, &bad, sizeof bad);
    for (int i = 0; i < 5000; i++) {
      char *q = malloc(48);
      if (q == (char *)target || !mt_owns(q)) {
        puts("FOREIGN ADDRESS HANDED OUT");
        return 1;
      }
    }
  } else if (strcmp(mode, "double-free-race") == 0) {
    /* Both frees may pass the free-mark test before either sets it, and push
     * the block twice onto the owner's remote list: it must still never be
     * handed out twice. */
    pthread_barrier_init(&race_start, NULL, 2);
    for (int i = 0; i < 4; i++) still_out[i] = malloc(48);
    for (int round = 0; round < 400; round++) {
      atomic_store(&race_block, malloc(48));
      pthread_t t[2];
      for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, race_free, NULL);
      for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
      void *got[200];
      for (int i = 0; i < 200; i++) got[i] = malloc(48);
      qsort(got, 200, sizeof got[0], ptr_cmp);
      for (int i = 1; i < 200; i++)
        if (got[i] == got[i - 1]) {
          puts("DUPLICATE BLOCK");
          return 1;
        }
      for (int i = 0; i < 200; i++) free(got[i]);
    }
  } else if (strncmp(mode, "unmarked-", 9) == 0) { /* a write after free over a freed block's second word */
    char *a = malloc(48);
    if (strcmp(mode, "unmarked-remote") == 0) { /* on the list of blocks other threads freed */
      for (int i = 0; i < 4; i++) still_out[i] = malloc(48); /* the page stays in use, not retired under a */
      pthread_t t;
      pthread_create(&t, NULL, free_in_thread, a);
      pthread_join(t, NULL);
    } else {
      free(a);
    }
    memset(a + 8, 0, 8); /* the link stays sound: only the free mark is gone */
    for (int i = 0; i < 20000; i++) {
      char *q = malloc(48);
      if (q == a) {
        puts("DUPLICATE BLOCK"); /* a block not marked free was handed out */
        return 1;
      }
    }
  } else if (strcmp(mode, "double-free-aba") == 0 || strcmp(mode, "double-free-aba-medium") == 0 ||
             strcmp(mode, "double-free-aba-big") == 0) {
    size_t n = strcmp(mode, "double-free-aba-big") == 0 ? 20000 : mode[15] ? 5000 : 48;
    char *a = malloc(n), *b = malloc(n);
    free(a);
    free(b);
    free(a);
    char *x = malloc(n), *y = malloc(n), *z = malloc(n);
    if (x == y || y == z || x == z) puts("DUPLICATE BLOCK");
  } else if (strcmp(mode, "double-free-interior-slot") == 0) { /* blocks past a span's first slot */
    char *a = malloc(100000), *b = malloc(100000), *c = malloc(100000);
    free(b);
    free(c);
    free(b);
    char *x = malloc(100000), *y = malloc(100000), *z = malloc(100000);
    if (x == y || y == z || x == z) puts("DUPLICATE BLOCK");
    free(a);
  } else if (strcmp(mode, "double-free-exited") == 0) { /* blocks of an exited thread's page */
    pthread_t t;
    void *pair[2];
    pthread_create(&t, NULL, alloc_two, pair);
    pthread_join(t, NULL);
    free(pair[0]);
    free(pair[1]);
    free(pair[0]);
  } else if (strcmp(mode, "double-free-remote-then-owner") == 0) {
    char *a = malloc(48);
    pthread_t t;
    pthread_create(&t, NULL, free_in_thread, a);
    pthread_join(t, NULL);
    free(a);
  } else if (strcmp(mode, "realloc-freed") == 0) {
    char *a = malloc(100), *b = malloc(100);
    free(a);
    free(b);
    keep = realloc(a, 200);
  } else if (strcmp(mode, "interior-small") == 0) {
    char *p = malloc(100);
    free(p + 16);
  } else if (strcmp(mode, "interior-memalign") == 0) {
    void *p = NULL;
    if (posix_memalign(&p, 64, 100) == 0) free((char *)p + 64);
  } else if (strcmp(mode, "interior-large-4096") == 0) {
    char *p = malloc(300000);
    free(p + 4096);
  } else if (strcmp(mode, "interior-aligned-large") == 0) { /* once freed the block it lies in */
    void *p = NULL;
    if (posix_memalign(&p, 1 << 20, 100000) != 0) return 1;
    free((char *)p + 4096);
    void *q = NULL; /* the block is still in use: never handed out again */
    if (posix_memalign(&q, 1 << 20, 100000) != 0 || q == p) puts("DUPLICATE");
    free(q);
    free(p);
  } else if (strcmp(mode, "realloc-interior-aligned") == 0) {
    void *p = NULL;
    if (posix_memalign(&p, 1 << 20, 100000) == 0) keep = realloc((char *)p + 64, 50);
  } else if (strcmp(mode, "realloc-interior-huge") == 0) { /* once returned the interior pointer */
    char *p = malloc(3 << 20);
    keep = realloc(p + 4096, 100);
  } else if (strcmp(mode, "realloc-interior") == 0) {
    char *p = malloc(100);
    keep = realloc(p + 32, 50);
  } else if (strcmp(mode, "region-double-delete") == 0) {
    mt_region *r = mt_region_new(NULL, "twice");
    mt_region_alloc(r, 100);
    mt_region_delete(r);
    mt_region_delete(r);
  } else if (strcmp(mode, "region-child-of-deleted") == 0) {
    mt_region *parent = mt_region_new(NULL, "parent");
    mt_region *child = mt_region_new(parent, "child");
    mt_region_alloc(child, 100);
    mt_region_delete(parent); /* deletes the child too */
    if (mt_region_alloc(child, 100) != NULL) puts("ALLOCATED FROM A DELETED REGION");
  } else if (strcmp(mode, "free-region-memory") == 0) {
    mt_region *r = mt_region_new(NULL, "owned");
    char *p = mt_region_alloc(r, 100);
    free(p);
    mt_region_delete(r);
  } else if (strcmp(mode, "foreign") == 0) {
    int local = 0;
    free(&local);
  } else if (strcmp(mode, "interior") == 0) {
    char *p = malloc(300000);
    free(p + 100000);
  } else if (strcmp(mode, "ok") == 0) {
    keep = malloc(10);
    free(keep);
  }
  puts("carried on");
  fflush(stdout);
  return 0;
}

typedef struct { int status; char out[8192]; } result_t;

static result_t run(const char *self, const char *mode, const char *env1, const char *env2) {
  result_t r;
  memset(&r, 0, sizeof r);
  int fds[2];
  if (pipe(fds) != 0) return r;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    char *envp[4] = {NULL, NULL, NULL, NULL};
    int k = 0;
    if (env1) envp[k++] = (char *)env1;
    if (env2) envp[k++] = (char *)env2;
    execle(self, self, mode, (char *)NULL, envp);
    _exit(127);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t got;
  for (;;) { /* read it all (a child that outgrows the buffer must not die of SIGPIPE); keep the end */
    if (n == sizeof r.out - 1) {
      memmove(r.out, r.out + n / 2, n - n / 2);
      n -= n / 2;
    }
    if ((got = read(fds[0], r.out + n, sizeof r.out - 1 - n)) <= 0) break;
    n += (size_t)got;
  }
  r.out[n] = '\0';
  close(fds[0]);
  waitpid(pid, &r.status, 0);
  return r;
}

static int count_lines_with(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

static void expect_abort_env(const char *self, const char *mode, const char *needle, const char *env) {
  result_t r = run(self, mode, env, NULL);
  CHECKF(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "%s: status %d", mode, r.status);
  CHECKF(strstr(r.out, needle) != NULL, "%s: no '%s' in: %s", mode, needle, r.out);
  CHECKF(strstr(r.out, "memtally: error: ") != NULL && strstr(r.out, " at 0x") != NULL, "%s: %s", mode, r.out);
  CHECKF(count_lines_with(r.out, "memtally: error") == 1, "%s: one line: %s", mode, r.out);
  CHECK(strstr(r.out, "carried on") == NULL);
}

static void expect_abort(const char *self, const char *mode, const char *needle) {
  expect_abort_env(self, mode, needle, NULL);
}

/* MEMTALLY_ABORT=0: one report, then the program goes on (no hang) */
static void expect_carry_on(const char *self, const char *mode, const char *needle) {
  result_t r = run(self, mode, "MEMTALLY_ABORT=0", NULL);
  CHECKF(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s, abort=0: status %d", mode, r.status);
  CHECKF(strstr(r.out, needle) && strstr(r.out, "carried on"), "%s, abort=0: %s", mode, r.out);
}

int main(int argc, char **argv) {
  if (argc > 2) return 2;
  if (argc == 2 && argv[1][0] != '/') return child(argv[1]);
  if (argc != 2) {
    fprintf(stderr, "usage: test_errors /path/to/test_errors\n");
    return 2;
  }
  const char *self = argv[1];
  expect_abort(self, "double-free", "double free at 0x");
  expect_abort(self, "double-free", "(size class 2, 48-byte blocks)");
  expect_abort(self, "double-free-remote", "double free");
  expect_abort(self, "foreign", "free of a pointer memtally does not own");
  expect_abort(self, "interior", "free of a pointer inside a block");
  expect_abort(self, "double-free-huge", "double free at 0x");
  expect_abort(self, "double-free-huge", "(huge block)");
  expect_abort_env(self, "double-free-huge", "double free at 0x", "MEMTALLY_MODE=lean");
  expect_abort_env(self, "double-free-huge", "double free at 0x", "MEMTALLY_MODE=speed");
  expect_abort(self, "realloc-freed-huge", "realloc of a freed block");
  expect_abort(self, "double-free-remote-aba", "double free");
  expect_abort(self, "double-free-remote-aba", "(size class 2, 48-byte blocks)");
  /* hardening: poisoned links, double frees not in a row, interior pointers */
  expect_abort(self, "poison-local", "corrupted free list");
  expect_abort(self, "poison-wild", "corrupted free list");
  expect_abort(self, "poison-remote", "corrupted free list");
  expect_abort(self, "poison-overflow", "corrupted free list");
  expect_abort(self, "poison-local", "(size class 2, 48-byte blocks)");
  expect_abort(self, "unmarked-local", "corrupted free list: a block on it is not marked free");
  expect_abort(self, "unmarked-remote", "corrupted free list: a block on it is not marked free");
  expect_abort_env(self, "unmarked-local", "corrupted free list: a block on it is not marked free",
                   "MEMTALLY_PROF_RATE=1"); /* on a page of samples */
  expect_abort(self, "double-free-aba", "double free at 0x");
  expect_abort(self, "double-free-aba-medium", "double free at 0x");
  expect_abort_env(self, "double-free-aba", "double free at 0x", "MEMTALLY_PROF_RATE=1"); /* sampled blocks */
  expect_abort(self, "double-free-aba-big", "double free at 0x");
  expect_abort(self, "double-free-interior-slot", "double free at 0x");
  expect_abort_env(self, "double-free-interior-slot", "double free at 0x", "MEMTALLY_PROF_RATE=1");
  expect_abort_env(self, "double-free-aba-big", "double free at 0x", "MEMTALLY_PROF_RATE=1"); /* kept in place */
  expect_abort(self, "double-free-exited", "double free at 0x");
  expect_abort(self, "double-free-remote-then-owner", "double free at 0x");
  expect_abort(self, "realloc-freed", "realloc of a freed block");
  expect_abort(self, "interior-small", "free of a pointer inside a block");
  expect_abort(self, "interior-memalign", "free of a pointer inside a block");
  expect_abort(self, "interior-large-4096", "free of a pointer inside a block");
  expect_abort(self, "interior-aligned-large", "free of a pointer inside a block");
  expect_abort(self, "realloc-interior-aligned", "realloc of a pointer inside a block");
  expect_abort(self, "realloc-interior", "realloc of a pointer inside a block");
  expect_abort(self, "realloc-interior-huge", "realloc of a pointer inside a block");
  expect_abort(self, "double-free-large", "double free");
  expect_abort(self, "region-double-delete", "region deleted twice");
  expect_abort(self, "region-child-of-deleted", "allocation from a deleted region");
  expect_abort(self, "free-region-memory", "free of a pointer inside a block");
  result_t rf = run(self, "foreign", NULL, NULL);
  CHECKF(strstr(rf.out, "(huge block)") == NULL, "a stack address is no huge block: %s", rf.out);
  static const char *const carry[] = {"poison-local", "poison-wild", "poison-remote", "poison-overflow", "unmarked-local", "unmarked-remote",
                                      "double-free-race",
                                      "double-free-aba", "double-free-exited", "double-free-remote-then-owner",
                                      "double-free-interior-slot",
                                      "interior-small", "interior-large-4096", "interior-aligned-large", "realloc-freed",
                                      "region-double-delete", "region-child-of-deleted", "free-region-memory"};
  for (size_t i = 0; i < sizeof carry / sizeof carry[0]; i++) {
    result_t rr = run(self, carry[i], "MEMTALLY_ABORT=0", NULL);
    CHECKF(WIFEXITED(rr.status) && WEXITSTATUS(rr.status) == 0 && strstr(rr.out, "carried on") &&
               !strstr(rr.out, "FOREIGN") && !strstr(rr.out, "DUPLICATE"),
           "%s, abort=0: status %d: %s", carry[i], rr.status, rr.out);
  }
  expect_carry_on(self, "double-free-huge", "double free at 0x");
  expect_carry_on(self, "double-free-remote-aba", "double free");

  /* MEMTALLY_ABORT=0: report and carry on */
  result_t r = run(self, "double-free", "MEMTALLY_ABORT=0", NULL);
  CHECKF(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "abort=0 status %d", r.status);
  CHECK(strstr(r.out, "double free at 0x") && strstr(r.out, "carried on"));
  r = run(self, "foreign", "MEMTALLY_ABORT=off", NULL);
  CHECK(WIFEXITED(r.status) && strstr(r.out, "does not own") && strstr(r.out, "carried on"));

  /* invalid option values: one warning naming the variable, default kept */
  r = run(self, "ok", "MEMTALLY_PURGE_DELAY=soon", "MEMTALLY_STATS=maybe");
  CHECKF(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "bad options status %d", r.status);
  CHECKF(strstr(r.out, "memtally: warning: invalid value 'soon' for MEMTALLY_PURGE_DELAY; using the default 100"),
         "%s", r.out);
  CHECK(strstr(r.out, "invalid value 'maybe' for MEMTALLY_STATS; using the default 0"));
  CHECK(count_lines_with(r.out, "memtally: warning") == 2);
  CHECK(strstr(r.out, "memtally statistics") == NULL); /* the default (off) held */
  r = run(self, "double-free", "MEMTALLY_ABORT=2", NULL); /* out of range: default (abort) */
  CHECK(WIFSIGNALED(r.status) && strstr(r.out, "MEMTALLY_ABORT"));
  r = run(self, "ok", "MEMTALLY_HUGE_CACHE=12Q", "MEMTALLY_SEGMENT_CACHE=-5");
  CHECK(strstr(r.out, "MEMTALLY_HUGE_CACHE") && strstr(r.out, "MEMTALLY_SEGMENT_CACHE"));
  /* valid ones are taken, with suffixes and words */
  r = run(self, "ok", "MEMTALLY_STATS=yes", "MEMTALLY_HUGE_CACHE=16MiB");
  CHECKF(strstr(r.out, "memtally statistics") != NULL && strstr(r.out, "warning") == NULL, "%s", r.out);
  return check_summary("test_errors");
}
