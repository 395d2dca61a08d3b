/* proflib.c -- a shared library that allocates, built with -fomit-frame-pointer */
#include <stdlib.h>

static volatile unsigned long lib_sink;

__attribute__((noinline)) static void *lib_inner_alloc(int i) {
  void *p = malloc((size_t)(64 + i % 64)); /* not a tail call: the frame stays */
  lib_sink += (unsigned long)p;
  return p;
}

__attribute__((noinline)) void lib_alloc_chain(int n, void **out) {
  for (int i = 0; i < n; i++) out[i] = lib_inner_alloc(i);
}
