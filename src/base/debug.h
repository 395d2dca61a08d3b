/* debug.h -- invariant checks by level: MT_DEBUG=0 (release) .. 3
 *
 *   0  release: every check below compiles to nothing
 *   1  API use: arguments and states a caller controls (cheap, O(1))
 *   2  + internal invariants of pages, segments, heaps, size classes (O(1)
 *      or O(slots) on slow paths); the debug and ASan builds of the tests
 *   3  + full walks: every free list and queue of a heap at each page
 *      change (slow; for hunting a corruption)
 *
 * A failure prints one line naming the check, file and line, without
 * allocating, and aborts (mt__assert_fail in diag.c). The hardening checks
 * that stay on in release builds are not these: they report misuse by the
 * program (alloc.c, mt__misuse) rather than a bug in memtally. */
#ifndef MT_DEBUG_H
#define MT_DEBUG_H

#ifndef MT_DEBUG
#define MT_DEBUG 0
#endif

__attribute__((visibility("hidden"), noreturn, cold)) void mt__assert_fail(const char *what, const char *file,
                                                                           int line);

/* the text is taken where the check is written, before its macros expand */
#define mt__check(x, text) (__builtin_expect(!!(x), 1) ? (void)0 : mt__assert_fail(text, __FILE__, __LINE__))
#if MT_DEBUG >= 1
#define mt_assert_api(x) mt__check(x, #x)
#else
#define mt_assert_api(x) ((void)0)
#endif
#if MT_DEBUG >= 2
#define mt_assert(x) mt__check(x, #x)
#else
#define mt_assert(x) ((void)0)
#endif
#if MT_DEBUG >= 3
#define mt_assert_walk(x) mt__check(x, #x)
#else
#define mt_assert_walk(x) ((void)0)
#endif

#endif
