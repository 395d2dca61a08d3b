/* override.c -- the exported malloc family, glibc's __libc_* aliases and C++ new/delete
 *
 * Built into libmemtally.so and libmemtally.a (not into the sanitizer build,
 * which goes through the mt_ API). Each entry is a tail call into the mt_
 * function (in the shared library malloc and free are aliases instead). operator new follows the C++ rules without linking the C++
 * runtime: on failure it calls the installed new_handler and, when there is
 * none, throws std::bad_alloc through libstdc++'s own helper, both resolved
 * weakly (a program that calls operator new has libstdc++ loaded). */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/common.h"
#include "init.h"
#include "memtally.h"
#include "os/os.h"

#define MT_EXPORT __attribute__((visibility("default")))

/* init.o holds the constructor: linked wherever malloc is (see init.h). */
__attribute__((used)) static void (*const mt_keep_init)(void) = mt__init_linked;

/* In the shared library malloc and free are other names of mt_malloc and
 * mt_free (alloc.c): a tail call is one jump more on the two hottest
 * entries. The archive defines them here: a static program that calls
 * malloc then links this whole file and none of libc's malloc.o. */
#ifndef MT_MALLOC_ALIASES
MT_EXPORT void *malloc(size_t n) { return mt_malloc(n); }
MT_EXPORT void free(void *p) { mt_free(p); }
#endif
MT_EXPORT void *calloc(size_t c, size_t n) { return mt_calloc(c, n); }
MT_EXPORT void *realloc(void *p, size_t n) { return mt_realloc(p, n); }
MT_EXPORT void *reallocarray(void *p, size_t c, size_t n) { return mt_reallocarray(p, c, n); }
MT_EXPORT void *memalign(size_t a, size_t n) { return mt_memalign(a, n); }
MT_EXPORT int posix_memalign(void **out, size_t a, size_t n) { return mt_posix_memalign(out, a, n); }
MT_EXPORT void *aligned_alloc(size_t a, size_t n) { return mt_aligned_alloc(a, n); }
MT_EXPORT void *valloc(size_t n) { return mt_valloc(n); }
MT_EXPORT void *pvalloc(size_t n) { return mt_pvalloc(n); }
MT_EXPORT size_t malloc_usable_size(void *p) { return mt_usable_size(p); }
MT_EXPORT void cfree(void *p) { mt_free(p); }

/* _exit and _Exit skip atexit handlers and destructors, so a process ending
 * through them (a shell's forked child, dash's sh -c) would leave no exit
 * profile: write it here, then end the process as they do. */
__attribute__((noreturn)) static void mt_exit_group(int status) {
  for (;;) syscall(SYS_exit_group, status);
}
MT_EXPORT __attribute__((noreturn)) void _exit(int status) {
  mt__process_exit_now();
  mt_exit_group(status);
}
MT_EXPORT __attribute__((noreturn)) void _Exit(int status) {
  mt__process_exit_now();
  mt_exit_group(status);
}
MT_EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  mt_collect();
  return 1;
}

MT_EXPORT void *__libc_malloc(size_t n) { return mt_malloc(n); }
MT_EXPORT void __libc_free(void *p) { mt_free(p); }
MT_EXPORT void *__libc_calloc(size_t c, size_t n) { return mt_calloc(c, n); }
MT_EXPORT void *__libc_realloc(void *p, size_t n) { return mt_realloc(p, n); }
MT_EXPORT void *__libc_memalign(size_t a, size_t n) { return mt_memalign(a, n); }
MT_EXPORT void *__libc_valloc(size_t n) { return mt_valloc(n); }
MT_EXPORT void *__libc_pvalloc(size_t n) { return mt_pvalloc(n); }

/* ---- C++ operator new / delete (Itanium ABI names) ---- */

typedef void (*mt_new_handler)(void);
extern mt_new_handler _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

static MT_NOINLINE void *mt_new_fail(size_t n, size_t align, int nothrow) {
  for (;;) {
    mt_new_handler h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
    if (h == NULL) break;
    h(); /* may throw, free memory or abort */
    void *p = align ? mt_aligned_alloc(align, (n + align - 1) & ~(align - 1)) : mt_malloc(n);
    if (p != NULL) return p;
  }
  if (nothrow) return NULL;
  if (_ZSt17__throw_bad_allocv) _ZSt17__throw_bad_allocv();
  static const char msg[] = "memtally: error: operator new failed and no C++ runtime to throw bad_alloc\n";
  mt__os_write_err(msg, sizeof msg - 1);
  mt__os_abort();
}

MT_INLINE void *mt_new(size_t n) {
  void *p = mt_malloc(n);
  return mt_likely(p != NULL) ? p : mt_new_fail(n, 0, 0);
}
MT_INLINE void *mt_new_nothrow(size_t n) {
  void *p = mt_malloc(n);
  return mt_likely(p != NULL) ? p : mt_new_fail(n, 0, 1);
}
MT_INLINE void *mt_new_aligned(size_t n, size_t a, int nothrow) {
  void *p = mt_is_pow2(a) ? mt_memalign(a, n) : NULL;
  return mt_likely(p != NULL) ? p : mt_new_fail(n, a, nothrow);
}

MT_EXPORT void *_Znwm(size_t n) { return mt_new(n); }
MT_EXPORT void *_Znam(size_t n) { return mt_new(n); }
MT_EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const void *t) { (void)t; return mt_new_nothrow(n); }
MT_EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const void *t) { (void)t; return mt_new_nothrow(n); }
MT_EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t a) { return mt_new_aligned(n, a, 0); }
MT_EXPORT void *_ZnamSt11align_val_t(size_t n, size_t a) { return mt_new_aligned(n, a, 0); }
MT_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *t) { (void)t; return mt_new_aligned(n, a, 1); }
MT_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *t) { (void)t; return mt_new_aligned(n, a, 1); }

#ifndef MT_MALLOC_ALIASES /* else aliases of mt_free (alloc.c) */
MT_EXPORT void _ZdlPv(void *p) { mt_free(p); }
MT_EXPORT void _ZdaPv(void *p) { mt_free(p); }
#endif
#if !defined(MT_MALLOC_ALIASES) || MT_DEBUG
MT_EXPORT void _ZdlPvm(void *p, size_t n) { mt_free_sized(p, n); }
MT_EXPORT void _ZdaPvm(void *p, size_t n) { mt_free_sized(p, n); }
#endif
MT_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *t) { (void)t; mt_free(p); }
MT_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *t) { (void)t; mt_free(p); }
MT_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t a) { (void)a; mt_free(p); }
MT_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t a) { (void)a; mt_free(p); }
MT_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t a) { (void)a; mt_free_sized(p, n); }
MT_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t a) { (void)a; mt_free_sized(p, n); }
MT_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *t) { (void)a; (void)t; mt_free(p); }
MT_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *t) { (void)a; (void)t; mt_free(p); }
