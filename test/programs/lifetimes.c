/* lifetimes.c -- sites whose blocks live known times, for test_lifetimes.py
 *
 *   site_instant   20,000 x 64 B freed at once                 (~0)
 *   site_1ms       20 rounds of 200 x 4 KiB, freed after 1 ms  (~1 ms, die together)
 *   site_100ms     50 x 1 KiB freed after 100 ms               (~100 ms)
 *   site_forever   100 x 256 B never freed                     (until exit)
 *   site_handoff   2,000 x 128 B freed by another thread       (consumer frees)
 *   site_grow      1,000 x 32 B grown by realloc, then freed   (the first block dies in realloc)
 * argv[1] scales the counts (default 1); argv[2] "_exit" ends through _exit. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* each site touches its block after malloc: a frame of its own, not a tail call */
static void *touched(void *p) {
  if (p) memset(p, 1, 8);
  return p;
}
__attribute__((noinline)) void *site_instant(void) { return touched(malloc(64)); }
__attribute__((noinline)) void *site_1ms(void) { return touched(malloc(4096)); }
__attribute__((noinline)) void *site_100ms(void) { return touched(malloc(1024)); }
__attribute__((noinline)) void *site_forever(void) { return touched(malloc(256)); }
__attribute__((noinline)) void *site_handoff(void) { return touched(malloc(128)); }
__attribute__((noinline)) void *site_grow(void) { return touched(malloc(32)); }
__attribute__((noinline)) void *grow_it(void *p) { return touched(realloc(p, 64 * 1024)); }

#define SLOTS 256
static void *volatile slot[SLOTS];
static volatile int produced, consumed;

__attribute__((noinline)) void consumer_free(void *p) {
  free(p);
  __asm__ volatile("" ::: "memory"); /* not a tail call */
}

static void *consumer(void *arg) {
  int n = *(int *)arg;
  for (int got = 0; got < n;) {
    for (int i = 0; i < SLOTS && got < n; i++) {
      void *p = __atomic_exchange_n(&slot[i], NULL, __ATOMIC_ACQ_REL);
      if (p) consumer_free(p), got++;
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  int n_instant = (int)(20000 * scale), rounds = (int)(20 * scale), n_handoff = (int)(2000 * scale);
  for (int i = 0; i < n_instant; i++) {
    void *p = site_instant();
    KEEP(p);
    free(p);
  }
  static void *batch[200];
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < 200; i++) batch[i] = site_1ms();
    sleep_ms(1);
    for (int i = 0; i < 200; i++) free(batch[i]);
  }
  static void *mid[50];
  for (int i = 0; i < 50; i++) mid[i] = site_100ms();
  sleep_ms(100);
  for (int i = 0; i < 50; i++) free(mid[i]);
  for (int i = 0; i < 100; i++) KEEP(site_forever());
  pthread_t t;
  pthread_create(&t, NULL, consumer, &n_handoff);
  for (int i = 0; i < n_handoff;) {
    int s = i % SLOTS;
    if (slot[s] == NULL) {
      void *p = site_handoff();
      __atomic_store_n(&slot[s], p, __ATOMIC_RELEASE);
      i++;
    }
  }
  pthread_join(t, NULL);
  for (int i = 0; i < 1000; i++) {
    void *p = site_grow();
    p = grow_it(p);
    free(p);
  }
  printf("lifetimes done\n");
  if (argc > 2 && strcmp(argv[2], "_exit") == 0) { /* as dash ends: no destructors */
    fflush(stdout);
    _exit(0);
  }
  return 0;
}
