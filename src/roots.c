/* roots.c -- where a program's stacks begin: main and each thread's start routine
 *
 * Built into libmemtally.so only. Every stack a sample records ends in the
 * C library's start-up frames (_start, __libc_start_main and its helper for
 * the main thread, start_thread and clone3 for the others). They say
 * nothing about where memory goes, and unwinding through them makes libgcc
 * read libc's unwind tables: the kernel maps 64 KiB around each page read,
 * 128 KiB of libc's tables resident in every profiled process.
 *
 * So main and every thread's start routine are called through a function
 * of this file, and the unwinder (sample/unwind.c, told of both at start-up)
 * ends a stack at a frame of either: main or the start routine is the last
 * frame recorded. A program whose entry does not pass through these
 * (memtally linked statically, a thread made with clone) keeps the full
 * stack. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>

#include "base/common.h"
#include "memtally.h"
#include "os/os.h"
#include "sample/sample.h"

#define MT_EXPORT __attribute__((visibility("default")))
/* Never inlined, never a tail call: its frame is the marker. */
#define MT_ROOT __attribute__((noinline))

typedef int mt_main_fn(int, char **, char **);
typedef int mt_start_fn(mt_main_fn *, int, char **, void (*)(void), void (*)(void), void (*)(void), void *);
static mt_main_fn *mt_program_main;

/* The empty asm after each call keeps it from being a tail call: the frame
 * must stay on the stack while the program runs. */
MT_ROOT static int mt_main_root(int argc, char **argv, char **envp) {
  int r = mt_program_main(argc, argv, envp);
  __asm__ volatile("" ::: "memory");
  return r;
}

MT_EXPORT int __libc_start_main(mt_main_fn *main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                                void (*rtld_fini)(void), void *stack_end) {
  mt_start_fn *next = (mt_start_fn *)dlsym(RTLD_NEXT, "__libc_start_main");
  if (next == NULL) mt__os_abort(); /* no C library under us: nothing can run */
  mt_program_main = main;
  return next(mt_main_root, argc, argv, init, fini, rtld_fini, stack_end);
}

typedef int mt_create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef struct mt_thread_start {
  void *(*fn)(void *);
  void *arg;
} mt_thread_start;

MT_ROOT static void *mt_thread_root(void *w) {
  mt_thread_start s = *(mt_thread_start *)w;
  mt_free(w);
  void *r = s.fn(s.arg);
  __asm__ volatile("" ::: "memory");
  return r;
}

MT_EXPORT int pthread_create(pthread_t *restrict thread, const pthread_attr_t *restrict attr, void *(*fn)(void *),
                             void *restrict arg) {
  static mt_create_fn *_Atomic next_create;
  mt_create_fn *next = mt_load(&next_create);
  if (next == NULL) {
    next = (mt_create_fn *)dlsym(RTLD_NEXT, "pthread_create");
    if (next == NULL) return EAGAIN;
    mt_store(&next_create, next);
  }
  mt_thread_start *w = mt_malloc(sizeof *w);
  if (w == NULL) return next(thread, attr, fn, arg); /* no memory for the root: a full stack */
  w->fn = fn;
  w->arg = arg;
  int rc = next(thread, attr, mt_thread_root, w);
  if (rc != 0) mt_free(w);
  return rc;
}

/* Before main, and before any thread the program makes: the loader runs
 * the library's constructors first. */
__attribute__((constructor)) static void mt_roots_init(void) {
  mt__prof_set_roots((const void *)(uintptr_t)mt_main_root, (const void *)(uintptr_t)mt_thread_root);
}
