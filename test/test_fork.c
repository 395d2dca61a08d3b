/* test_fork.c -- fork never deadlocks: against stdio's locks, from a signal handler, and in the child
 *
 * usage: test_fork deadlock SECONDS   threads fork while others sit in getline (which reallocs
 *                                     holding a FILE lock) and fflush(NULL) (which holds the list
 *                                     of FILEs and waits for each FILE's lock): glibc's fork takes
 *                                     that list lock after the atfork prepare handlers, so an
 *                                     allocator lock held from prepare on closes a cycle
 *        test_fork signal ITERATIONS  single-threaded: five processes send SIGUSR1 while the
 *                                     program mallocs, frees and forks; the handler forks too
 *        test_fork child SECONDS      the child goes on allocating (every size, a region) after
 *                                     fork while threads in the parent were allocating
 *        test_fork lifetimes 1        (fault_shim.so preloaded, MEMTALLY_PROF_RATE=1) fork once
 *                                     while a thread is caught growing the profiler's lifetimes
 *                                     table, between unmapping a table and its next step
 *        test_fork live 1             the same while a thread grows a shard of the live-sample
 *                                     table; the child samples thousands of blocks
 * Each child must exit with the expected status; the parent must finish within its alarm. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fault_shim.h"
#include "memtally.h"

static atomic_int stop;
static atomic_long forks, bad_children;
static char line_file[] = "/tmp/memtally-fork-XXXXXX";

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "test_fork: deadlock (alarm fired)\n";
  if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
  _exit(3);
}

static int wait_child(pid_t pid, int want) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return 0;
  if (WIFEXITED(st) && WEXITSTATUS(st) == want) return 1;
  /* say how it went wrong: the exit status (4: malloc NULL, 5: region, 6: strdup, 3: alarm) or the signal */
  if (WIFEXITED(st)) fprintf(stderr, "test_fork: child %d exited with %d, not %d\n", (int)pid, WEXITSTATUS(st), want);
  else if (WIFSIGNALED(st)) fprintf(stderr, "test_fork: child %d killed by signal %d\n", (int)pid, WTERMSIG(st));
  return 0;
}

/* ---- deadlock: fork against getline and fflush(NULL) ---- */

static void *forker(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) _exit(17);
    if (!wait_child(pid, 17)) atomic_fetch_add(&bad_children, 1);
    atomic_fetch_add(&forks, 1);
  }
  return NULL;
}

static void *reader(void *arg) {
  (void)arg;
  FILE *f = fopen(line_file, "r");
  if (f == NULL) abort();
  while (!atomic_load(&stop)) {
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, f) < 0) abort();
    free(line);
  }
  fclose(f);
  return NULL;
}

static void *flusher(void *arg) {
  (void)arg;
  while (!atomic_load(&stop))
    if (fflush(NULL) != 0) abort();
  return NULL;
}

static int run_deadlock(int seconds) {
  int fd = mkstemp(line_file);
  if (fd < 0) return 2;
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < 50000; i++) fputc('x', f); /* getline grows its buffer through realloc */
  fputc('\n', f);
  fclose(f);
  pthread_t t[13];
  int n = 0;
  for (int i = 0; i < 4; i++) pthread_create(&t[n++], NULL, forker, NULL);
  for (int i = 0; i < 8; i++) pthread_create(&t[n++], NULL, reader, NULL);
  pthread_create(&t[n++], NULL, flusher, NULL);
  sleep((unsigned)seconds);
  atomic_store(&stop, 1);
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
  unlink(line_file);
  printf("deadlock: %ld forks, %ld bad children\n", (long)forks, (long)bad_children);
  return bad_children == 0 && forks > 0 ? 0 : 1;
}

/* ---- signal: fork in a handler that interrupted malloc, free or fork ---- */

static pthread_barrier_t *barrier; /* shared with the signal senders */
static volatile sig_atomic_t handler_error;

static void on_usr1(int sig) {
  (void)sig;
  int saved = errno;
  pid_t pid = fork();
  if (pid < 0) handler_error = 1;
  else if (pid == 0) _exit(0);
  else if (!wait_child(pid, 0)) handler_error = 1;
  errno = saved;
}

static void sender(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a parent that failed */
  pid_t parent = getppid();
  for (;;) {
    pthread_barrier_wait(barrier);
    if (kill(parent, SIGUSR1) != 0) _exit(0);
    pthread_barrier_wait(barrier);
  }
}

static int run_signal(int iterations) {
  enum { SENDERS = 5, SLOTS = 1009 };
  barrier = mmap(NULL, sizeof *barrier, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pthread_barrierattr_t attr;
  pthread_barrierattr_init(&attr);
  pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_barrier_init(barrier, &attr, SENDERS + 1);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  pid_t senders[SENDERS];
  for (int i = 0; i < SENDERS; i++) {
    senders[i] = fork();
    if (senders[i] == 0) sender();
  }
  void *slots[SLOTS] = {0};
  unsigned seed = 1;
  int failed = 0;
  for (int i = 0; i < iterations && !failed; i++) {
    int slot = rand_r(&seed) % SLOTS;
    size_t size = (size_t)(rand_r(&seed) % 70000);
    int do_fork = rand_r(&seed) % 7 == 0;
    pthread_barrier_wait(barrier);
    if (do_fork) {
      pid_t pid = fork();
      if (pid == 0) _exit(0);
      if (pid < 0 || !wait_child(pid, 0)) failed = 1;
    }
    free(slots[slot]);
    slots[slot] = malloc(size);
    pthread_barrier_wait(barrier);
    if (slots[slot] == NULL || handler_error) failed = 1;
  }
  for (int i = 0; i < SENDERS; i++) kill(senders[i], SIGKILL);
  for (int i = 0; i < SENDERS; i++) waitpid(senders[i], NULL, 0);
  for (int i = 0; i < SLOTS; i++) free(slots[i]);
  printf("signal: %d iterations, %s\n", iterations, failed ? "FAILED" : "ok");
  return failed;
}

/* ---- child: the child keeps allocating ---- */

static void *churn(void *arg) {
  unsigned long s = (unsigned long)arg * 2654435761u + 1;
  void *slots[128] = {0};
  mt_region *r = mt_region_new(NULL, "parent");
  while (!atomic_load(&stop)) {
    s = s * 6364136223846793005UL + 1442695040888963407UL;
    int i = (int)((s >> 33) % 128);
    free(slots[i]);
    unsigned pick = (unsigned)(s >> 58);
    size_t n = pick < 40 ? 16 + (s >> 20) % 1000 : pick < 56 ? 2000 + (s >> 20) % 200000
                                                              : 1000000 + (s >> 20) % 4000000;
    slots[i] = (s >> 30) % 5 == 0 ? aligned_alloc((size_t)4096 << ((s >> 40) % 12), n) : malloc(n);
    if (slots[i]) memset(slots[i], 1, n < 64 ? n : 64);
    if ((s >> 24) % 64 == 0) {
      mt_region_delete(r);
      r = mt_region_new(NULL, "parent");
    }
    if (r) mt_region_alloc(r, 100);
    if ((s >> 26) % 512 == 0) mt_collect();
  }
  for (int i = 0; i < 128; i++) free(slots[i]);
  mt_region_delete(r);
  return NULL;
}

static int child_work(void) {
  void *keep[64];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 64; i++) {
      size_t n = (size_t)16 << (i % 19); /* 16 B .. 4 MiB */
      keep[i] = i % 3 ? malloc(n) : aligned_alloc(4096, n);
      if (keep[i] == NULL) return 4;
      memset(keep[i], i, n < 4096 ? n : 4096);
    }
    for (int i = 0; i < 64; i++) free(keep[i]);
  }
  mt_region *r = mt_region_new(NULL, "child");
  if (r == NULL || mt_region_alloc(r, 1000) == NULL) return 5;
  mt_region_delete(r);
  char *d = strdup("child");
  int ok = d != NULL && strcmp(d, "child") == 0;
  free(d);
  mt_collect();
  return ok ? 0 : 6;
}

static int run_child(int seconds) {
  pthread_t t[3];
  for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, churn, (void *)i);
  time_t end = time(NULL) + seconds;
  while (time(NULL) < end) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(20);
      _exit(child_work());
    }
    if (!wait_child(pid, 0)) atomic_fetch_add(&bad_children, 1);
    atomic_fetch_add(&forks, 1);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  printf("child: %ld forks, %ld bad children\n", (long)forks, (long)bad_children);
  return bad_children == 0 && forks > 0 ? 0 : 1;
}

/* ---- lifetimes: fork while a thread grows the lifetimes table ---- */

/* Blocks allocated at 40 stack depths and freed at 10: 400 pairs of stacks,
 * each an entry of the lifetimes table, all within the 64 frames kept. */
enum { ADEPTHS = 40, FDEPTHS = 10 };
static void *blocks[ADEPTHS][FDEPTHS];

static __attribute__((noinline)) void *alloc_at(int depth) {
  void *p = depth > 0 ? alloc_at(depth - 1) : malloc(48);
  __asm__ volatile("" : : "r"(p) : "memory"); /* no tail call: the frames stay */
  return p;
}

static __attribute__((noinline)) void free_at(int depth, void *p) {
  if (depth > 0) free_at(depth - 1, p);
  else free(p);
  __asm__ volatile("" : : : "memory");
}

/* Frees every block, so the lifetimes table grows, first unmapping its first table. */
static void *life_grower(void *arg) {
  (void)arg;
  fault_stall_next_munmap();
  for (int a = 0; a < ADEPTHS; a++)
    for (int f = 0; f < FDEPTHS; f++) free_at(f, blocks[a][f]);
  return NULL;
}

/* Starts grower, which stops inside a munmap (fault_shim.so), forks, and has
 * the child run in_child and then child_work; 1 if the child exited 0. */
static int fork_while_stalled(const char *what, void *(*grower)(void *), void (*in_child)(void)) {
  if (!fault_stall_next_munmap) {
    fprintf(stderr, "test_fork %s: fault_shim.so is not preloaded\n", what);
    return 0;
  }
  pthread_t t;
  pthread_create(&t, NULL, grower, NULL);
  for (int ms = 0; !fault_stalled() && ms < 10000; ms++) usleep(1000);
  if (!fault_stalled()) {
    fprintf(stderr, "test_fork %s: the table never grew (no munmap in the growing thread)\n", what);
    fault_release();
    pthread_join(t, NULL);
    return 0;
  }
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    in_child();
    _exit(child_work());
  }
  int ok = wait_child(pid, 0);
  fault_release();
  pthread_join(t, NULL);
  printf("%s: %s\n", what, ok ? "ok" : "FAILED");
  return ok;
}

static void lifetimes_child(void) {
  for (int i = 0; i < 2000; i++) free(alloc_at(i % 50)); /* sampled frees: the child's own table */
}

static int run_lifetimes(void) {
  for (int a = 0; a < ADEPTHS; a++)
    for (int f = 0; f < FDEPTHS; f++) blocks[a][f] = alloc_at(a);
  return fork_while_stalled("lifetimes", life_grower, lifetimes_child) ? 0 : 1;
}

/* ---- live: fork while a thread grows a shard of the live-sample table ---- */

enum { LIVE_PARENT = 20000, LIVE_CHILD = 5000 };
static void *live_blocks[LIVE_PARENT];

/* Samples blocks until a shard outgrows its second table, unmapping it
 * under the shard's lock: the stall catches the thread there. */
static void *live_grower(void *arg) {
  (void)arg;
  fault_stall_next_munmap();
  for (int i = 0; i < LIVE_PARENT; i++) live_blocks[i] = malloc(64);
  return NULL;
}

static void live_child(void) {
  static void *mine[LIVE_CHILD];
  for (int i = 0; i < LIVE_CHILD; i++) mine[i] = malloc(48); /* every shard gets dozens of entries */
  for (int i = 0; i < LIVE_CHILD; i++) free(mine[i]);
}

static int run_live(void) {
  int ok = fork_while_stalled("live", live_grower, live_child);
  for (int i = 0; i < LIVE_PARENT; i++) free(live_blocks[i]);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: test_fork deadlock|signal|child|lifetimes|live N\n");
    return 2;
  }
  int n = atoi(argv[2]);
  signal(SIGALRM, on_alarm);
  if (strcmp(argv[1], "deadlock") == 0) {
    alarm((unsigned)n + 60);
    return run_deadlock(n);
  }
  if (strcmp(argv[1], "live") == 0) {
    alarm(120);
    return run_live();
  }
  if (strcmp(argv[1], "lifetimes") == 0) {
    alarm(120);
    return run_lifetimes();
  }
  if (strcmp(argv[1], "signal") == 0) {
    alarm(240);
    return run_signal(n);
  }
  alarm((unsigned)n + 60);
  return run_child(n);
}
