/* lifetimes.c -- how long sampled blocks lived: by allocation stack, freeing stack and lifetime
 *
 * A sampled block carries its allocation time (live table, stacks.c); when
 * it is freed, its lifetime falls in a bucket of a log scale (four buckets
 * per power of two above 1 us: a bucket spans at most 19 % of its floor)
 * and its weights, and weight x lifetime, are added to the entry of
 * (allocation stack, freeing stack, bucket, freed by another thread). The
 * table lives in memory mapped for the profiler and takes its own lock:
 * only sampled frees reach it. When it is full, further frees keep their
 * bucket but lose their freeing stack (MT_LIFE_ANY_FREE). */
#define _GNU_SOURCE
#include <string.h>

#include "../os/os.h"
#include "sample.h"
#include "spin.h"

#define MT_LIFE_SLOTS_MIN (1u << 7)  /* slots at first: the table grows with the entries */
#define MT_LIFE_SLOTS_MAX (1u << 17) /* entries kept at most (power of two) */

typedef struct mt_life_rec {
  uint32_t alloc_stack, free_stack; /* free_stack + 1; 0: empty slot */
  uint16_t bucket;
  uint8_t other_thread;
  double objects, bytes, total_ns;
} mt_life_rec;

static _Atomic int mt_life_lock; /* spin.h */
static mt_life_rec *mt_life; /* [mt_life_slots], mapped at the first free */
static size_t mt_life_used, mt_life_slots;

static uint64_t mt_life_hash(uint32_t a, uint32_t f, unsigned b, bool other) {
  return ((uint64_t)a * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)f * 0xc2b2ae3d27d4eb4fULL) ^
         ((uint64_t)b << 1 | (other ? 1u : 0u)) * 0x165667b19e3779f9ULL;
}

/* Twice the slots (at first: the minimum), entries moved; -1: no memory or at the maximum. */
static int mt_life_grow(void) {
  size_t slots = mt_life_slots ? mt_life_slots * 2 : MT_LIFE_SLOTS_MIN;
  if (slots > MT_LIFE_SLOTS_MAX) return -1;
  mt_life_rec *t = mt__os_reserve(sizeof(mt_life_rec) * slots);
  if (t == NULL) return -1;
  for (size_t i = 0; i < mt_life_slots; i++) {
    const mt_life_rec *r = &mt_life[i];
    if (r->free_stack == 0) continue;
    size_t j = (size_t)(mt_life_hash(r->alloc_stack, r->free_stack - 1, r->bucket, r->other_thread) >> 40) & (slots - 1);
    while (t[j].free_stack != 0) j = (j + 1) & (slots - 1);
    t[j] = *r;
  }
  mt_life_rec *old = mt_life;
  size_t old_slots = mt_life_slots;
  mt_life = t, mt_life_slots = slots;
  if (old) mt__os_unreserve(old, sizeof(mt_life_rec) * old_slots);
  return 0;
}

unsigned mt__life_bucket(uint64_t ns) {
  if (ns < 1024) return 0;
  unsigned o = 63u - (unsigned)__builtin_clzll(ns); /* 10 .. 63 */
  unsigned sub = (unsigned)(ns >> (o - 4)) & 15u;
  unsigned b = 1 + (o - 10) * 16 + sub;
  return b < MT_LIFE_BUCKETS ? b : MT_LIFE_BUCKETS - 1;
}

uint64_t mt__life_bucket_floor(unsigned b) {
  if (b == 0) return 0;
  unsigned o = 10 + (b - 1) / 16, sub = (b - 1) % 16;
  return (uint64_t)(16 + sub) << (o - 4);
}

void mt__life_add(uint32_t alloc_stack, uint32_t free_stack, uint64_t lifetime_ns, bool other_thread,
                  double objects, double bytes) {
  unsigned b = mt__life_bucket(lifetime_ns);
  mt_spin_lock(&mt_life_lock);
  if ((mt_life_used + 1) * 4 > mt_life_slots * 3) mt_life_grow(); /* at the maximum: kept at 3/4 full */
  if (mt_life == NULL) {
    mt_spin_unlock(&mt_life_lock);
    return;
  }
  size_t mask = mt_life_slots - 1;
  for (int attempt = 0; attempt < 2; attempt++) {
    uint64_t h = mt_life_hash(alloc_stack, free_stack, b, other_thread);
    for (size_t j = (size_t)(h >> 40) & mask;; j = (j + 1) & mask) {
      mt_life_rec *r = &mt_life[j];
      if (r->free_stack == 0) {
        if ((mt_life_used + 1) * 4 > mt_life_slots * 3) break; /* full: keep the bucket only */
        *r = (mt_life_rec){alloc_stack, free_stack + 1, (uint16_t)b, other_thread, 0, 0, 0};
        mt_life_used++;
      }
      if (r->alloc_stack == alloc_stack && r->free_stack == free_stack + 1 && r->bucket == b &&
          r->other_thread == other_thread) {
        r->objects += objects;
        r->bytes += bytes;
        r->total_ns += objects * (double)lifetime_ns;
        mt_spin_unlock(&mt_life_lock);
        return;
      }
    }
    free_stack = MT_LIFE_ANY_FREE;
  }
  mt_spin_unlock(&mt_life_lock);
}

int mt__life_copy(mt_prof_life *out, size_t cap, size_t *n, bool nowait) {
  *n = 0;
  if (nowait) {
    if (!mt_spin_trylock(&mt_life_lock)) return -1;
  } else {
    mt_spin_lock(&mt_life_lock);
  }
  for (size_t j = 0; mt_life != NULL && j < mt_life_slots && *n < cap; j++) {
    const mt_life_rec *r = &mt_life[j];
    if (r->free_stack == 0) continue;
    out[(*n)++] = (mt_prof_life){r->alloc_stack, r->free_stack - 1, r->bucket, r->other_thread,
                                 r->objects, r->bytes, r->total_ns};
  }
  mt_spin_unlock(&mt_life_lock);
  return 0;
}

size_t mt__life_count(void) {
  mt_spin_lock(&mt_life_lock);
  size_t n = mt_life_used;
  mt_spin_unlock(&mt_life_lock);
  return n;
}

/* The fork child (the only thread left). A lock held at fork means a
 * thread may have been growing the table: the old one may already be
 * unmapped with the pointer not yet moved, or pointer and size may
 * disagree. The child then starts with no table (the new one leaks). */
void mt__life_reset(void) {
  if (atomic_load_explicit(&mt_life_lock, memory_order_relaxed)) {
    mt_life = NULL;
    mt_life_slots = 0;
  } else if (mt_life != NULL) {
    memset(mt_life, 0, sizeof(mt_life_rec) * mt_life_slots);
  }
  mt_life_used = 0;
  atomic_store_explicit(&mt_life_lock, 0, memory_order_relaxed); /* the child's own */
}
