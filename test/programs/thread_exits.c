/* thread_exits.c -- threads that leave without returning, run with memtally preloaded
 *
 * memtally calls main and every thread's start routine through frames of its
 * own (src/roots.c). A thread that calls pthread_exit, one cancelled at a
 * cancellation point and main itself calling pthread_exit all leave through
 * a forced unwind that passes those frames; their cleanup handlers must run
 * and the process must end normally. Every block is sampled (rate 1), so
 * each stack is unwound up to those frames. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cleaned;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void cleanup(void *p) {
  free(p);
  pthread_mutex_lock(&lock);
  cleaned++;
  pthread_mutex_unlock(&lock);
}

static void *exits(void *arg) {
  char *p = malloc(100);
  memset(p, 1, 100);
  pthread_cleanup_push(cleanup, p);
  pthread_exit(arg);
  pthread_cleanup_pop(1);
  return NULL;
}

static void *cancelled(void *arg) {
  (void)arg;
  char *p = malloc(200);
  memset(p, 2, 200);
  pthread_cleanup_push(cleanup, p);
  for (;;) pause(); /* a cancellation point */
  pthread_cleanup_pop(1);
  return NULL;
}

int main(void) {
  pthread_t t;
  void *r;
  int ok = 0;
  for (int i = 0; i < 20; i++) {
    pthread_create(&t, NULL, exits, (void *)(long)(i + 1));
    pthread_join(t, &r);
    ok += r == (void *)(long)(i + 1);
    pthread_create(&t, NULL, cancelled, NULL);
    usleep(1000);
    pthread_cancel(t);
    pthread_join(t, &r);
    ok += r == PTHREAD_CANCELED;
  }
  printf("joined %d cleaned %d\n", ok, cleaned);
  fflush(stdout);
  pthread_exit(NULL); /* main leaves through a forced unwind too; the process ends with exit status 0 */
}
