/* test_asan_catches.c -- ASan sees misuse of memtally's own blocks (sanitizer build only)
 *
 * Run with the path of this program: it re-runs itself in child processes
 * that make one mistake each and checks that AddressSanitizer stopped them. */
#define _GNU_SOURCE
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "memtally.h"

static volatile char sink;

static int child(const char *mode) {
  char *p = mt_malloc(100);
  memset(p, 1, 100);
  if (strcmp(mode, "uaf") == 0) {
    mt_free(p);
    sink = p[50]; /* read after free */
  } else if (strcmp(mode, "overflow") == 0) {
    sink = p[104]; /* past the requested size, inside the 112-byte block */
  } else if (strcmp(mode, "ok") == 0) {
    sink = p[99];
    mt_free(p);
  }
  return 0;
}

static void expect(const char *self, const char *mode, int should_fail, const char *needle) {
  int fds[2];
  if (pipe(fds) != 0) return;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    execl(self, self, mode, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  char buf[65536];
  size_t n = 0;
  ssize_t r;
  while ((r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
  buf[n] = 0;
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  int failed = !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECKF(failed == should_fail, "mode %s: status %d", mode, st);
  if (needle) CHECKF(strstr(buf, needle) != NULL, "mode %s: no '%s' in: %.300s", mode, needle, buf);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "uaf") != 0 && strcmp(argv[1], "overflow") != 0 && strcmp(argv[1], "ok") != 0) {
    const char *self = argv[1];
    expect(self, "ok", 0, NULL);
    expect(self, "uaf", 1, "use-after-poison");
    expect(self, "overflow", 1, "use-after-poison");
    return check_summary("test_asan_catches");
  }
  if (argc > 1) return child(argv[1]);
  fprintf(stderr, "usage: test_asan_catches PATH-TO-SELF\n");
  return 2;
}
