/* runone.c -- run a command and print its wall time and peak RSS
 * A small launcher, so the child's peak RSS does not start from the size of
 * the process that forked it (ru_maxrss is inherited across fork).
 * usage: runone PROGRAM ARGS...   prints "wall SECONDS maxrss BYTES" on the
 * file descriptor named by RUNONE_FD (stderr without it); exits with the
 * program's status. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: runone PROGRAM ARGS...\n");
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid == 0) {
    execvp(argv[1], argv + 1);
    perror(argv[1]);
    _exit(127);
  }
  int status = 0;
  struct rusage ru;
  wait4(pid, &status, 0, &ru);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  const char *fdname = getenv("RUNONE_FD");
  FILE *out = fdname ? fdopen(atoi(fdname), "w") : NULL;
  if (out == NULL) out = stderr;
  double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  fprintf(out, "wall %.6f maxrss %ld cpu %.6f\n", wall, ru.ru_maxrss * 1024L, cpu);
  fflush(out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
