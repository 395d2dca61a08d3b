/* check.h -- the CHECK helper shared by memtally's test programs */
#ifndef MT_TEST_CHECK_H
#define MT_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                   \
  do {                                                                                \
    check_count++;                                                                    \
    if (!(cond)) {                                                                    \
      check_failures++;                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);        \
    }                                                                                 \
  } while (0)

#define CHECKF(cond, ...)                                                             \
  do {                                                                                \
    check_count++;                                                                    \
    if (!(cond)) {                                                                    \
      check_failures++;                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);        \
      fprintf(stderr, __VA_ARGS__);                                                   \
      fputc('\n', stderr);                                                            \
    }                                                                                 \
  } while (0)

/* Run a named group of checks. */
#define RUN(fn)                                                                       \
  do {                                                                                \
    int before_ = check_failures;                                                     \
    fn();                                                                             \
    fprintf(stderr, "%-32s %s\n", #fn, check_failures == before_ ? "ok" : "FAILED");  \
  } while (0)

static inline int check_summary(const char *name) {
  fprintf(stderr, "%s: %d checks, %d failed\n", name, check_count, check_failures);
  return check_failures == 0 ? 0 : 1;
}

/* xorshift64*: a fixed-seed PRNG so runs repeat. */
static inline unsigned long long check_rand(unsigned long long *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

#endif
