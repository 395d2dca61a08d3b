/* common.h -- compiler attributes, atomics and basic helpers shared by every module */
#ifndef MT_COMMON_H
#define MT_COMMON_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define mt_likely(x) __builtin_expect(!!(x), 1)
#define mt_unlikely(x) __builtin_expect(!!(x), 0)
#define MT_INLINE static inline __attribute__((always_inline))
#define MT_NOINLINE __attribute__((noinline))
#define MT_HIDDEN __attribute__((visibility("hidden")))
#define MT_COLD __attribute__((cold))
#define MT_UNUSED __attribute__((unused))

#define MT_KiB ((size_t)1024)
#define MT_MiB (1024 * MT_KiB)
#define MT_GiB (1024 * MT_MiB)

/* Free-list link encoding and the fast paths' misuse checks. On in every
 * build; MT_HARDEN=0 (cmake -DMEMTALLY_HARDEN=OFF) exists only to measure
 * their cost. */
#ifndef MT_HARDEN
#define MT_HARDEN 1
#endif

#include "debug.h"

MT_INLINE uintptr_t mt_align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }
MT_INLINE uintptr_t mt_align_down(uintptr_t x, uintptr_t a) { return x & ~(a - 1); }
MT_INLINE int mt_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MT_TSAN_BUILD 1
#endif
#endif
#ifndef MT_TSAN_BUILD
#define MT_TSAN_BUILD 0
#endif

/* Relaxed atomics: plain loads and stores on x86-64, but race-free for
 * counters that one thread writes and others read. */
#define mt_load(p) atomic_load_explicit((p), memory_order_relaxed)
#define mt_store(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
/* A counter only its own thread writes, others read (relaxed). On x86-64
 * one add to memory: an aligned 8-byte store is atomic there, and no other
 * thread writes the counter, so the read-modify-write need not be locked
 * (the portable form is a relaxed load and store: three instructions and a
 * register). ThreadSanitizer builds keep the portable form, so that it sees
 * the writes. */
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && !MT_TSAN_BUILD
#define mt_counter_add(p, v) __asm__ volatile("addq %1, %0" : "+m"(*(uint64_t *)(p)) : "er"((uint64_t)(v)))
#else
#define mt_counter_add(p, v) mt_store((p), mt_load(p) + (v))
#endif

#endif
