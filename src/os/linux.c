/* linux.c -- the Linux side of os.h: mmap, madvise, /proc, clocks, stderr
 *
 * Everything that talks to the kernel lives here. Mappings are counted in
 * mt__os so that statistics can reconcile committed bytes with RSS. */
#define _GNU_SOURCE
#include "os.h"


#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

mt_os_counters mt__os;
_Atomic int mt__os_over_limit;
static size_t mt_os_pagesize = 4096;
extern char **environ;

void mt__os_init(void) {
  long ps = sysconf(_SC_PAGESIZE);
  if (ps > 0) mt_os_pagesize = (size_t)ps;
}

size_t mt__os_page_size(void) { return mt_os_pagesize; }

/* Memory for blocks is mapped without MAP_NORESERVE: the kernel's
 * overcommit policy then refuses what the machine could never back (a
 * malloc of 32 TiB fails with ENOMEM, as with glibc) instead of handing out
 * address space that faults later. */
static void *mt_os_mmap(size_t size) {
  atomic_fetch_add_explicit(&mt__os.mmap_calls, 1, memory_order_relaxed);
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    errno = ENOMEM;
    return NULL;
  }
  return p;
}

static void mt_os_munmap_raw(void *p, size_t size) {
  if (size == 0) return;
  atomic_fetch_add_explicit(&mt__os.munmap_calls, 1, memory_order_relaxed);
  munmap(p, size);
}

void *mt__os_map_aligned(size_t size, size_t align) {
  if (size > (SIZE_MAX >> 2) || align > (SIZE_MAX >> 2)) {
    errno = ENOMEM;
    return NULL;
  }
  /* Over-map by the alignment and trim both ends: three syscalls, and the
   * trimmed ends never held memory. */
  if (align <= mt_os_pagesize) {
    uint8_t *q = mt_os_mmap(size);
    if (q == NULL) return NULL;
    atomic_fetch_add_explicit(&mt__os.mapped, size, memory_order_relaxed);
    return q;
  }
  uint8_t *p = mt_os_mmap(size + align);
  if (p == NULL) return NULL;
  uint8_t *aligned = (uint8_t *)mt_align_up((uintptr_t)p, align);
  mt_os_munmap_raw(p, (size_t)(aligned - p));
  mt_os_munmap_raw(aligned + size, (size_t)((p + size + align) - (aligned + size)));
  p = aligned;
  atomic_fetch_add_explicit(&mt__os.mapped, size, memory_order_relaxed);
  return p;
}

void *mt__os_reserve(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void mt__os_unmap(void *p, size_t size) {
  mt_os_munmap_raw(p, size);
  atomic_fetch_sub_explicit(&mt__os.mapped, size, memory_order_relaxed);
}

void mt__os_unreserve(void *p, size_t size) { munmap(p, size); }

void mt__os_purge(void *p, size_t size) {
  atomic_fetch_add_explicit(&mt__os.madvise_calls, 1, memory_order_relaxed);
  madvise(p, size, MADV_DONTNEED);
}

int mt__os_grow_in_place(void *p, size_t old_size, size_t new_size) {
  atomic_fetch_add_explicit(&mt__os.mremap_calls, 1, memory_order_relaxed);
  void *q = mremap(p, old_size, new_size, 0);
  if (q == MAP_FAILED) return -1;
  atomic_fetch_add_explicit(&mt__os.mapped, new_size - old_size, memory_order_relaxed);
  return 0;
}

int mt__os_move_pages(void *from, size_t len, void *to) {
  atomic_fetch_add_explicit(&mt__os.mremap_calls, 1, memory_order_relaxed);
  void *q = mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  if (q == MAP_FAILED) return -1;
  atomic_fetch_sub_explicit(&mt__os.mapped, len, memory_order_relaxed); /* the source is gone */
  return 0;
}

static _Atomic uint64_t mt_commit_limit;

void mt__os_set_commit_limit(uint64_t bytes) { mt_store(&mt_commit_limit, bytes); }

void mt__os_commit_add(int64_t delta) {
  uint64_t now = atomic_fetch_add_explicit(&mt__os.committed, (uint64_t)delta, memory_order_relaxed) + (uint64_t)delta;
  uint64_t limit = mt_load(&mt_commit_limit);
  if (limit > 0) {
    int over = now > limit;
    if (over != atomic_load_explicit(&mt__os_over_limit, memory_order_relaxed))
      atomic_store_explicit(&mt__os_over_limit, over, memory_order_relaxed);
  }
  if (delta > 0) {
    uint64_t peak = atomic_load_explicit(&mt__os.committed_peak, memory_order_relaxed);
    while (now > peak && !atomic_compare_exchange_weak_explicit(&mt__os.committed_peak, &peak, now,
                                                                memory_order_relaxed, memory_order_relaxed)) {
    }
  }
}

uint64_t mt__os_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t mt__os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t mt__os_wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int mt__os_getpid(void) { return (int)getpid(); }

/* 64 bits nobody can guess: the kernel's random source, or (without it)
 * the clock mixed with addresses that differ per process under ASLR. */
uint64_t mt__os_random(void) {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) return r;
  r = mt__os_now_ns() ^ ((uint64_t)(uintptr_t)&r << 16) ^ (uint64_t)(uintptr_t)mt__os_random;
  r ^= r >> 33;
  r *= 0xff51afd7ed558ccdULL;
  return r ^ (r >> 29);
}

/* The temporary file has a name that cannot be predicted and is created
 * exclusively, never through a link, readable by the owner only: a link or
 * file planted at any name memtally might use is never written through. The
 * rename replaces a link at path itself, not its target. mode (read and
 * write bits) is set on the open file before anything is written. */
int mt__os_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode) {
  char tmp[4096];
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%d.%016llx", path, (int)getpid(), (unsigned long long)mt__os_random());
    if (n <= 0 || n >= (int)sizeof tmp) {
      errno = ENAMETOOLONG;
      return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) return -1;
  }
  if (fd < 0) return -1;
  if (mode != 0600 && fchmod(fd, (mode_t)(mode & 0666)) != 0) { /* as asked, whatever the umask */
    int e = errno;
    close(fd);
    unlink(tmp);
    errno = e;
    return -1;
  }
  const uint8_t *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      close(fd);
      unlink(tmp);
      errno = e;
      return -1;
    }
    p += w;
    left -= (size_t)w;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return -1;
  }
  return 0;
}

int mt__os_on_signal(int sig, void (*fn)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL);
}

void mt__os_at_fork_child(void (*fn)(void)) { pthread_atfork(NULL, NULL, fn); }

static void (*mt_fault_fn)(uintptr_t);
static struct sigaction mt_prev_segv;

static void mt_on_segv(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  if (mt_fault_fn != NULL) mt_fault_fn((uintptr_t)si->si_addr);
  /* let the fault happen again with the handler that was there before */
  sigaction(SIGSEGV, &mt_prev_segv, NULL);
}

int mt__os_on_fault(void (*fn)(uintptr_t addr)) {
  mt_fault_fn = fn;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = mt_on_segv;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGSEGV, &sa, &mt_prev_segv);
}

void *mt__os_map_plain(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void mt__os_protect_none(void *p, size_t size) { mprotect(p, size, PROT_NONE); }

int mt__os_thread_start(void *(*fn)(void *), void *arg) {
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* the helper must not receive the program's signals */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&t, &attr, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return rc == 0 ? 0 : -1;
}

void mt__os_sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* A small /proc or /sys file into buf (NUL-terminated): its length, or -1. */
static ssize_t mt_read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  return n;
}

uint64_t mt__os_rss(void) {
  /* /proc/self/statm: size resident shared ... (in pages); read with a
   * stack buffer, no stdio. */
  char buf[128];
  if (mt_read_small("/proc/self/statm", buf, sizeof buf) < 0) return 0;
  const char *s = buf;
  while (*s && *s != ' ') s++;
  while (*s == ' ') s++;
  uint64_t pages = 0;
  while (*s >= '0' && *s <= '9') pages = pages * 10 + (uint64_t)(*s++ - '0');
  return pages * mt_os_pagesize;
}

uint64_t mt__os_thread_id(void) { return (uint64_t)syscall(SYS_gettid); }

void mt__os_write_err(const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    s += w;
    n -= (size_t)w;
  }
}

const char *mt__os_getenv(const char *name) {
  if (environ == NULL) return NULL;
  size_t len = strlen(name);
  for (char **e = environ; *e != NULL; e++) {
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
  }
  return NULL;
}

void mt__os_abort(void) { abort(); }

int mt__os_secure(void) { return getauxval(AT_SECURE) != 0; }

int mt__os_mutex_reclaim(pthread_mutex_t *m) {
  int held = pthread_mutex_trylock(m) != 0;
  if (!held) pthread_mutex_unlock(m);
  pthread_mutex_init(m, NULL);
  return held;
}

/* ---- sockets ---- */

int mt__os_listen(const char *host, int port, int *bound) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    errno = EINVAL;
    return -1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  if (bound) *bound = ntohs(a.sin_port);
  return fd;
}

int mt__os_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

long mt__os_recv(int fd, void *buf, size_t n) {
  ssize_t r = recv(fd, buf, n, 0);
  if (r >= 0) return (long)r;
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
}

long mt__os_send(int fd, const void *buf, size_t n) {
  ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);
  if (r >= 0) return (long)r;
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
}

void mt__os_shutdown_write(int fd) { shutdown(fd, SHUT_WR); }

void mt__os_close(int fd) {
  if (fd >= 0) close(fd);
}

int mt__os_poll(struct pollfd *fds, unsigned n, int timeout_ms) { return poll(fds, n, timeout_ms); }

/* ---- cgroup memory limit ---- */

static uint64_t mt_read_limit_file(const char *path) {
  char b[64];
  if (mt_read_small(path, b, sizeof b) < 0) return 0;
  if (b[0] < '0' || b[0] > '9') return 0; /* "max" */
  unsigned long long v = strtoull(b, NULL, 10);
  return v >= (1ULL << 60) ? 0 : (uint64_t)v; /* v1 writes "unlimited" as a huge number */
}

/* The tightest limit of file in dir and each of its parents up to root. */
static uint64_t mt_limit_along(const char *root, const char *path, const char *file) {
  char p[1024];
  uint64_t best = 0;
  int n = snprintf(p, sizeof p, "%s%s", root, path);
  if (n <= 0 || (size_t)n >= sizeof p - 64) return 0;
  for (;;) {
    size_t len = strlen(p);
    snprintf(p + len, sizeof p - len, "/%s", file);
    uint64_t v = mt_read_limit_file(p);
    if (v && (!best || v < best)) best = v;
    p[len] = 0;
    if (len <= strlen(root)) break;
    char *slash = strrchr(p, '/');
    if (slash == NULL || (size_t)(slash - p) < strlen(root)) break;
    *slash = 0;
  }
  return best;
}

uint64_t mt__os_cgroup_memory_limit(void) {
  char b[4096];
  if (mt_read_small("/proc/self/cgroup", b, sizeof b) < 0) return 0;
  uint64_t best = 0;
  for (char *line = b, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL) continue;
    *c2 = 0;
    const char *ctrl = c1 + 1, *path = c2 + 1;
    if (strcmp(path, "/") == 0) path = "";
    uint64_t v = 0;
    if (ctrl[0] == 0) { /* v2, or v2 mounted beside v1 */
      v = mt_limit_along("/sys/fs/cgroup", path, "memory.max");
      if (!v) v = mt_limit_along("/sys/fs/cgroup/unified", path, "memory.max");
    } else if (strstr(ctrl, "memory") != NULL) {
      v = mt_limit_along("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes");
    }
    if (v && (!best || v < best)) best = v;
  }
  return best;
}

