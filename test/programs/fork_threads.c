/* fork_threads.c -- fork while other threads allocate; the child allocates at once
 * A child that deadlocks is killed by its alarm and the run fails. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;

static void *churn(void *arg) {
  unsigned long s = (unsigned long)arg * 2654435761u + 1;
  void *slots[256] = {0};
  while (!atomic_load(&stop)) {
    s = s * 6364136223846793005UL + 1442695040888963407UL;
    int i = (int)((s >> 33) % 256);
    free(slots[i]);
    size_t n = (s >> 40) % 5 == 0 ? 200000 + (s >> 20) % 2000000 : 16 + (s >> 20) % 2000;
    slots[i] = malloc(n);
    memset(slots[i], 1, n < 64 ? n : 64);
  }
  for (int i = 0; i < 256; i++) free(slots[i]);
  return NULL;
}

int main(void) {
  pthread_t t[4];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, (void *)i);
  int bad = 0;
  for (int k = 0; k < 200; k++) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(10);
      char *s = NULL;
      for (int i = 0; i < 2000; i++) {
        free(s);
        s = malloc((size_t)(i % 700) + 1);
        s[0] = 'x';
      }
      free(s);
      char *big = malloc(5u << 20);
      memset(big, 2, 5u << 20);
      free(big);
      char *d = strdup("child");
      int ok = strcmp(d, "child") == 0;
      free(d);
      _exit(ok ? 0 : 3);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  printf("forks 200 failed %d\n", bad);
  return bad != 0;
}
