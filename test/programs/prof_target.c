/* prof_target.c -- a program with known allocation sites, for the profiler tests
 * usage: prof_target MODE [scale]
 *   accuracy  sites with known counts and bytes (some kept, some freed)
 *   lib       allocations made inside a shared library (built without frame pointers)
 *   fork      allocates, forks; the child allocates at its own site and exits
 *   signal    allocates, raises SIGUSR2, waits for the profile to appear
 *   window    allocates at window_one_site, sleeps past the interval, then at window_two_site
 *   peak      builds 96 MiB at peak_site, frees it, allocates 8 MiB at after_peak_site
 *   dump      allocates and calls mt_prof_dump(argv[2])
 *   callers   one allocating helper called in turn by two functions at the same stack depth
 *   entries   sites that allocate through calloc, posix_memalign, aligned_alloc and a growing
 *             realloc, called in turn from one loop (the same stack depth for all)
 *   handoff   a thread allocates blocks of 8-100 KiB (samples kept in place on their pages)
 *             and 100 B; main frees a third while it lives, it frees a third, a third stays */
#define _GNU_SOURCE
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memtally.h"

void lib_alloc_chain(int n, void **out); /* in libproflib.so */

static volatile uintptr_t sink;
#define KEEP(p) (sink += (uintptr_t)(p))

/* Each site is its own non-inlined function: the profile names it. */
__attribute__((noinline)) void site_big_freed(long n) { /* n x 64 KiB, freed at once */
  for (long i = 0; i < n; i++) {
    char *p = malloc(65536);
    p[0] = 1;
    KEEP(p);
    free(p);
  }
}
__attribute__((noinline)) void site_small_freed(long n) { /* n x 128 B, freed at once */
  for (long i = 0; i < n; i++) {
    char *p = malloc(128);
    p[0] = 1;
    KEEP(p);
    free(p);
  }
}
__attribute__((noinline)) void **site_keep(long n) { /* n x 32 KiB, kept */
  void **v = malloc(sizeof(void *) * (size_t)n);
  for (long i = 0; i < n; i++) v[i] = malloc(32768);
  return v;
}
__attribute__((noinline)) void **site_keep_small(long n) { /* n x 256 B, kept */
  void **v = malloc(sizeof(void *) * (size_t)n);
  for (long i = 0; i < n; i++) v[i] = malloc(256);
  return v;
}
/* handoff: one thread allocates, two free, a third is kept (see usage) */
#define HANDOFF_N 3000
static const size_t handoff_sizes[] = {8192, 12000, 16384, 40000, 65536, 100000, 100};
#define HANDOFF_KINDS (sizeof handoff_sizes / sizeof handoff_sizes[0])
static void *handoff_blocks[HANDOFF_N];
static pthread_barrier_t handoff_bar;
__attribute__((noinline)) void site_handoff(void) {
  for (int i = 0; i < HANDOFF_N; i++) {
    handoff_blocks[i] = malloc(handoff_sizes[i % HANDOFF_KINDS]);
    memset(handoff_blocks[i], 1, 64);
  }
}
static void *handoff_worker(void *arg) {
  (void)arg;
  site_handoff();
  pthread_barrier_wait(&handoff_bar); /* main frees i % 3 == 0 while this thread owns the pages */
  pthread_barrier_wait(&handoff_bar);
  for (int i = 1; i < HANDOFF_N; i += 3) free(handoff_blocks[i]); /* the owner frees its own */
  return NULL;
}

/* 2^depth distinct stacks: at each level one of two functions, chosen by a
 * bit of path (the asm after each call keeps it from being a tail call). */
__attribute__((noinline)) void path_a(int depth, unsigned path);
__attribute__((noinline)) void path_b(int depth, unsigned path);
static void path_step(int depth, unsigned path) {
  if (depth == 0) {
    void *p = malloc(64 + (path & 7) * 16);
    KEEP(p);
    free(p);
    return;
  }
  if (path & 1) path_a(depth - 1, path >> 1);
  else path_b(depth - 1, path >> 1);
}
__attribute__((noinline)) void path_a(int depth, unsigned path) {
  path_step(depth, path);
  __asm__ volatile("");
}
__attribute__((noinline)) void path_b(int depth, unsigned path) {
  path_step(depth, path);
  __asm__ volatile("");
}

__attribute__((noinline)) void *child_site(void) {
  void *p = malloc(1 << 20); /* not a tail call: the frame stays */
  KEEP(p);
  return p;
}
__attribute__((noinline)) void *window_one_site(void) {
  void *p = malloc(1 << 20); /* not a tail call: the frame stays */
  KEEP(p);
  return p;
}
__attribute__((noinline)) void *window_two_site(void) {
  void *p = malloc(1 << 20); /* not a tail call: the frame stays */
  KEEP(p);
  return p;
}
__attribute__((noinline)) void *peak_site(void) {
  void *p = malloc(1 << 20); /* not a tail call: the frame stays */
  KEEP(p);
  return p;
}
__attribute__((noinline)) void *peak_small_site(void) {
  void *p = malloc(4096); /* not a tail call: the frame stays */
  KEEP(p);
  return p;
}
__attribute__((noinline)) void *serve_kept_site(void) {
  void *p = malloc(256 << 10); /* not a tail call: the frame stays */
  KEEP(p);
  return p;
}
__attribute__((noinline)) void *serve_churn_site(void) {
  void *p = malloc(64 << 10); /* not a tail call: the frame stays */
  KEEP(p);
  return p;
}
__attribute__((noinline)) void *limit_site(void) {
  void *p = malloc(1 << 20); /* not a tail call: the frame stays */
  memset(p, 1, 1 << 20);     /* resident: counted by the cgroup */
  KEEP(p);
  return p;
}
__attribute__((noinline)) void *after_peak_site(void) {
  void *p = malloc(1 << 20); /* not a tail call: the frame stays */
  KEEP(p);
  return p;
}

/* Entry points that reach the sampler through calls inside memtally, not tail calls. */
__attribute__((noinline)) void site_calloc(void) { /* 4 KiB */
  char *p = calloc(1, 4096);
  KEEP(p);
  free(p);
}
__attribute__((noinline)) void site_memalign(void) { /* 8 KiB, 64-byte aligned */
  void *p = NULL;
  if (posix_memalign(&p, 64, 8192) == 0) KEEP(p);
  free(p);
}
__attribute__((noinline)) void site_aligned(void) { /* 2 KiB, 256-byte aligned */
  void *p = aligned_alloc(256, 2048);
  KEEP(p);
  free(p);
}
__attribute__((noinline)) void site_realloc(void) { /* 16 B, then moved to 16 KiB */
  char *p = malloc(16);
  p = realloc(p, 16384);
  KEEP(p);
  free(p);
}

/* Two callers of one helper at the same depth: the helper's return address
 * and stack pointer are the same for both, only the frames above differ. */
__attribute__((noinline)) void *make_block(size_t n) {
  void *p = malloc(n);
  KEEP(p);
  return p;
}
__attribute__((noinline)) void caller_a(void) { free(make_block(4000)); }
__attribute__((noinline)) void caller_b(void) { free(make_block(12000)); }

static int wait_for_file(const char *path, int ms) {
  for (int i = 0; i < ms / 10; i++) {
    if (access(path, F_OK) == 0) return 0;
    usleep(10000);
  }
  return -1;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "accuracy";
  double scale = argc > 2 ? atof(argv[2]) : 1.0;
  if (strcmp(mode, "accuracy") == 0) {
    site_big_freed((long)(32768 * scale));       /* 2 GiB */
    site_small_freed((long)(8388608 * scale));    /* 1 GiB */
    void **k = site_keep((long)(32768 * scale));  /* 1 GiB kept (untouched: little RSS) */
    void **s = site_keep_small((long)(524288 * scale)); /* 128 MiB kept */
    KEEP(k);
    KEEP(s);
    printf("accuracy done\n");
    return 0; /* kept blocks stay live in the exit profile */
  }
  if (strcmp(mode, "rss") == 0) { /* 400 live blocks of 16 B - 1 KiB replaced at random: every small class sampled */
    static void *slot[400];
    uint64_t x = 88172645463325252ULL;
    for (long i = 0; i < (long)(2000000 * scale); i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      int k = (int)(x % 400);
      free(slot[k]);
      size_t n = 16 + (x >> 20) % 1009;
      slot[k] = malloc(n);
      memset(slot[k], 1, n);
    }
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
      if (strncmp(line, "VmRSS:", 6) == 0) printf("rss %ld\n", atol(line + 6));
    if (f != NULL) fclose(f);
    return 0;
  }
  if (strcmp(mode, "handoff") == 0) {
    pthread_t t;
    pthread_barrier_init(&handoff_bar, NULL, 2);
    pthread_create(&t, NULL, handoff_worker, NULL);
    pthread_barrier_wait(&handoff_bar);
    for (int i = 0; i < HANDOFF_N; i += 3) free(handoff_blocks[i]);
    pthread_barrier_wait(&handoff_bar);
    pthread_join(t, NULL);
    size_t kept = 0, kept_n = 0;
    if (argc > 2 && strcmp(argv[2], "all") == 0) /* the last third too: nothing stays */
      for (int i = 2; i < HANDOFF_N; i += 3) free(handoff_blocks[i]);
    else
      for (int i = 2; i < HANDOFF_N; i += 3) kept += handoff_sizes[i % HANDOFF_KINDS], kept_n++;
    printf("handoff kept %zu %zu\n", kept_n, kept);
    return 0; /* the last third stays live in the exit profile */
  }
  if (strcmp(mode, "callers") == 0) {
    long n = (long)(100000 * scale);
    for (long i = 0; i < n; i++) {
      caller_a();
      caller_b();
    }
    printf("callers done\n");
    return 0;
  }
  if (strcmp(mode, "entries") == 0) {
    long n = (long)(200000 * scale);
    for (long i = 0; i < n; i++) {
      site_calloc();
      site_memalign();
      site_aligned();
      site_realloc();
    }
    printf("entries done\n");
    return 0;
  }
  if (strcmp(mode, "lib") == 0) {
    void *out[1000];
    for (int r = 0; r < 200; r++) {
      lib_alloc_chain(1000, out);
      for (int i = 0; i < 1000; i++) free(out[i]);
    }
    printf("lib done\n");
    return 0;
  }
  if (strcmp(mode, "fork") == 0) {
    /* nothing in use at exit, not even stdout's buffer (a 4 KiB block a sample may catch):
     * cli_run checks that report falls back to alloc_space then */
    setvbuf(stdout, NULL, _IONBF, 0);
    site_big_freed(2000);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      for (int i = 0; i < 200; i++) free(child_site());
      exit(0); /* exit, not _exit: the exit profile is written by a destructor */
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child %d\n", (int)pid);
    return 0;
  }
  if (strcmp(mode, "serve") == 0) { /* a service: keeps 32 MiB, churns 64 KiB blocks until stdin closes */
    for (int i = 0; i < 128; i++) KEEP(serve_kept_site());
    printf("serving\n");
    fflush(stdout);
    fcntl(0, F_SETFL, O_NONBLOCK);
    char b[64];
    for (;;) {
      for (int i = 0; i < 16; i++) free(serve_churn_site());
      usleep(10000);
      ssize_t r = read(0, b, sizeof b);
      if (r == 0 || (r < 0 && errno != EAGAIN)) break;
    }
    printf("served\n");
    return 0;
  }
  if (strcmp(mode, "serve_fork") == 0) { /* the parent serves, forks, and exits; the child lives on 3 s */
    KEEP(serve_kept_site());
    pid_t pid = fork();
    if (pid == 0) {
      sleep(3);
      _exit(0);
    }
    printf("child %d\n", (int)pid);
    return 0;
  }
  if (strcmp(mode, "limit") == 0) { /* keeps argv[2] MiB, a MiB at a time, then waits for the helper */
    long n = (long)scale;
    for (long i = 0; i < n; i++) {
      KEEP(limit_site());
      usleep(2000);
    }
    usleep(300000);
    printf("limit done\n");
    return 0;
  }
  if (strcmp(mode, "large") == 0) { /* 2,000 blocks of 256 KiB - 4 MiB, 8 live: nearly all sampled */
    void *slot[8] = {0};
    unsigned long long rng = 5;
    for (int k = 0; k < 2000; k++) {
      int i = k % 8;
      free(slot[i]);
      rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
      size_t n = (256u << 10) + (size_t)((rng >> 33) % (15u << 18));
      slot[i] = malloc(n);
      ((volatile char *)slot[i])[0] = 1;
    }
    for (int i = 0; i < 8; i++) free(slot[i]);
    printf("large done\n");
    return 0;
  }
  if (strcmp(mode, "stacks") == 0) { /* 1,024 distinct stacks, each allocating a few times */
    for (int r = 0; r < 3; r++)
      for (unsigned path = 0; path < 1024; path++) path_a(10, path);
    printf("stacks done\n");
    return 0;
  }
  if (strcmp(mode, "signal") == 0) {
    site_big_freed(4000);
    char path[4096];
    snprintf(path, sizeof path, "%s.prof_target.%d.signal.0.pb.gz", getenv("MEMTALLY_PROF_OUT"), (int)getpid());
    raise(argc > 2 ? atoi(argv[2]) : SIGUSR2); /* the signal MEMTALLY_PROF_SIGNAL names */
    int ok = wait_for_file(path, 5000) == 0;
    printf("signal %s\n", ok ? "written" : "missing");
    return ok ? 0 : 1;
  }
  if (strcmp(mode, "window") == 0) {
    for (int i = 0; i < 300; i++) free(window_one_site());
    usleep(1300 * 1000); /* MEMTALLY_PROF_INTERVAL=1: window 0 ends */
    for (int i = 0; i < 300; i++) free(window_two_site());
    usleep(1300 * 1000); /* window 1 ends */
    printf("window done\n");
    return 0;
  }
  if (strcmp(mode, "peak") == 0) {
    void *v[96];
    for (int i = 0; i < 96; i++) v[i] = peak_site();
    for (int i = 0; i < 96; i++) free(v[i]);
    void *w[8];
    for (int i = 0; i < 8; i++) w[i] = after_peak_site();
    for (int i = 0; i < 8; i++) KEEP(w[i]);
    printf("peak done\n");
    return 0;
  }
  if (strcmp(mode, "peak_small") == 0) { /* a 96 MiB peak of 4 KiB blocks, then 8 MiB */
    enum { N = 96 * 256 };
    static void *v[N];
    for (int i = 0; i < N; i++) v[i] = peak_small_site();
    for (int i = 0; i < N; i++) free(v[i]);
    for (int i = 0; i < 8; i++) KEEP(after_peak_site());
    printf("peak done\n");
    return 0;
  }
  if (strcmp(mode, "region") == 0) { /* chunks of a region are labelled with its name */
    mt_region *parser = mt_region_new(NULL, "parser");
    for (int round = 0; round < 50; round++) {
      for (int i = 0; i < 20000; i++) KEEP(mt_region_alloc(parser, 200));
      mt_region_reset(parser);
    }
    site_big_freed(500);
    mt_region_delete(parser);
    printf("region done\n");
    return 0;
  }
  if (strcmp(mode, "dump") == 0 && argc > 2) {
    void **k = site_keep(2000);
    KEEP(k);
    int rc = mt_prof_dump(argv[2]);
    printf("dump %d\n", rc);
    return rc == 0 ? 0 : 1;
  }
  fprintf(stderr, "unknown mode\n");
  return 2;
}
