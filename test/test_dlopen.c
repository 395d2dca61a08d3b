/* test_dlopen.c -- libmemtally.so loaded with dlopen into a running, threaded program
 *
 * The program starts on the C library's malloc, then loads memtally and
 * uses its API from several threads (initial-exec TLS must be available to
 * a late-loaded library). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>

#include "check.h"
#include "memtally.h"

static void *(*p_malloc)(size_t);
static void (*p_free)(void *);
static int (*p_owns)(const void *);
static void *(*p_realloc)(void *, size_t);
static void *shared[4096];

static pthread_barrier_t barrier;

/* Each round a thread takes every 4th slot, shifted by the round, so it
 * frees blocks another thread allocated in the round before. */
static void *work(void *arg) {
  long id = (long)arg;
  long bad = 0;
  for (int round = 0; round < 50; round++) {
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < 4096; i++) {
      if ((i + round) % 4 != id) continue;
      if (shared[i]) p_free(shared[i]);
      char *p = p_malloc((size_t)(16 + (i * 13) % 3000));
      if (p == NULL || !p_owns(p)) bad++;
      p = p_realloc(p, (size_t)(32 + (i * 7 + round) % 5000));
      if (p == NULL) bad++;
      shared[i] = p;
    }
  }
  return (void *)bad;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_dlopen path/to/libmemtally.so\n");
    return 2;
  }
  void *before = malloc(100); /* the C library's */
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  CHECKF(h != NULL, "dlopen: %s", dlerror());
  if (!h) return check_summary("test_dlopen");
  p_malloc = (void *(*)(size_t))dlsym(h, "mt_malloc");
  p_free = (void (*)(void *))dlsym(h, "mt_free");
  p_owns = (int (*)(const void *))dlsym(h, "mt_owns");
  p_realloc = (void *(*)(void *, size_t))dlsym(h, "mt_realloc");
  CHECK(p_malloc && p_free && p_owns && p_realloc);
  CHECK(!p_owns(before));
  pthread_t t[4];
  pthread_barrier_init(&barrier, NULL, 4);
  for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, (void *)i);
  long bad = 0;
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(t[i], &r);
    bad += (long)r;
  }
  CHECK(bad == 0);
  for (int i = 0; i < 4096; i++) p_free(shared[i]);
  free(before);
  return check_summary("test_dlopen");
}
