/* huge.c -- blocks over 1 MiB: one mapping each, a pool of resident pages, mremap growth
 *
 * A huge segment is aligned to 4 MiB like any segment, with its header at
 * the start and the block after it, so free() finds it by masking. Blocks
 * aligned to 4 MiB or more start beyond the first 4 MiB; those segments are
 * kept on a short list that free() consults only for addresses the segment
 * map does not know.
 *
 * Freed huge segments stay mapped, resident, in a cache of up to
 * MEMTALLY_HUGE_CACHE bytes, unmapped after the purge delay. The cache is a pool of
 * pages rather than of blocks: a request no cached segment fits closely is
 * assembled in a fresh range from the tails of cached segments, whose pages
 * the kernel moves (mremap) without copying them or faulting them in again.
 * A freed 4 MiB block thus serves a 1.5 MiB request and keeps 2.5 MiB for
 * the next one, instead of holding 4 MiB resident for 1.5 or leaving the
 * request to fault in fresh pages. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "../options/options.h"
#include "../sample/sample.h"
#include "../os/os.h"
#include "../base/track.h"
#include "alloc.h"
#include "memtally.h"

static pthread_mutex_t mt_huge_lock = PTHREAD_MUTEX_INITIALIZER;
static mt_segment *mt_huge_cache;
static size_t mt_huge_cache_bytes;
static mt_segment *mt_huge_tails; /* huge segments whose block starts past 4 MiB (see mt_tails_store) */

/* Every change to the tails list is one release store of a link, made
 * after the node it publishes is complete: a child forked at any moment
 * finds the list whole (docs/fork.md). */
static void mt_tails_store(mt_segment **link, mt_segment *to) { __atomic_store_n(link, to, __ATOMIC_RELEASE); }


#define MT_HUGE_HEADER (mt_align_up(sizeof(mt_segment), 4096))

/* The child after fork. If a thread held the lock at fork the cache may be
 * half linked, and the child forgets it (cached mappings leak). The list of
 * far-aligned blocks is kept: free() needs it to find them, and each of its
 * updates is one pointer store that publishes a fully linked state. */
void mt__huge_after_fork(void) {
  if (mt__os_mutex_reclaim(&mt_huge_lock)) {
    mt_huge_cache = NULL;
    mt_huge_cache_bytes = 0;
  }
}

static size_t mt_huge_offset(size_t align) { return mt_align_up(MT_HUGE_HEADER, align < 64 ? 64 : align); }

mt_segment *mt__huge_segment_of(const void *p) {
  if (mt_segmap_get(p) == MT_MAP_START) {
    mt_segment *seg = mt_segment_of(p);
    if (seg->is_huge && (const uint8_t *)p < (uint8_t *)seg + seg->map_size) return seg;
    return NULL;
  }
  mt_segment *found = NULL;
  pthread_mutex_lock(&mt_huge_lock);
  for (mt_segment *s = mt_huge_tails; s != NULL; s = s->next) {
    if ((const uint8_t *)p >= (uint8_t *)s && (const uint8_t *)p < (uint8_t *)s + s->map_size) {
      found = s;
      break;
    }
  }
  pthread_mutex_unlock(&mt_huge_lock);
  return found;
}

static void mt_huge_unmap(mt_segment *seg) {
  mt_assert(seg->is_huge && mt_load(&seg->pages[0].owner_tag) == MT_TAG_NONE);
  if (seg->huge_offset >= MT_SEG_SIZE) {
    pthread_mutex_lock(&mt_huge_lock);
    mt_segment **link = &mt_huge_tails;
    while (*link != NULL && *link != seg) link = &(*link)->next;
    if (*link == seg) mt_tails_store(link, seg->next);
    pthread_mutex_unlock(&mt_huge_lock);
  }
  mt__segmap_set(seg, 0);
  mt__os_commit_add(-(int64_t)seg->map_size);
  mt__os_unmap(seg, seg->map_size);
}

static void *mt_huge_account(mt_heap *heap, mt_segment *seg, void *p, size_t size) {
  mt_counter_add(&heap->nalloc[MT_CLASS_HUGE], 1);
  mt_counter_add(&heap->huge_bytes_alloc, seg->huge_size);
  heap->countdown -= (int64_t)seg->huge_size;
  if (heap->countdown < 0) return mt__countdown_hit(heap, NULL, p, size);
  return p;
}

/* The smallest cached segment of at least need bytes and at most max.
 * Cached memory is resident already: a larger block is still better than
 * faulting in a fresh one, within reason. */
static mt_segment *mt_huge_cache_take(size_t need, size_t max) {
  pthread_mutex_lock(&mt_huge_lock);
  mt_segment **best = NULL;
  for (mt_segment **link = &mt_huge_cache; *link != NULL; link = &(*link)->next) {
    size_t have = (*link)->map_size;
    if (have >= need && have <= max && (best == NULL || have < (*best)->map_size)) best = link;
  }
  mt_segment *seg = NULL;
  if (best != NULL) {
    seg = *best;
    *best = seg->next;
    mt_assert(mt_huge_cache_bytes >= seg->map_size && seg->is_huge);
    mt_huge_cache_bytes -= seg->map_size;
  }
  pthread_mutex_unlock(&mt_huge_lock);
  return seg;
}

/* Each piece moved is a mapping of its own until the kernel merges it, and
 * a range made of many mappings moves slowly: an assembly takes at most a
 * few pieces, and a leftover under a MiB is unmapped rather than kept. */
#define MT_HUGE_PIECES_MAX 4
#define MT_HUGE_PIECE_MIN MT_MiB

/* A huge segment of need bytes whose pages come, as far as the cache has
 * them, from cached segments: NULL when the cache cannot give a quarter of
 * it. Its header is fresh; *moved: bytes from the start that hold old data. */
static mt_segment *mt_huge_assemble(size_t need, size_t *moved) {
  pthread_mutex_lock(&mt_huge_lock);
  if (mt_huge_cache_bytes < need / 4) {
    pthread_mutex_unlock(&mt_huge_lock);
    return NULL;
  }
  /* The largest segment's tail when it has enough (one move); else the
   * newest first: the oldest keep expiring, so the cache shrinks to what
   * the program reuses within the purge delay. */
  mt_segment **largest = &mt_huge_cache;
  for (mt_segment **link = &mt_huge_cache; *link != NULL; link = &(*link)->next)
    if ((*link)->map_size > (*largest)->map_size) largest = link;
  mt_segment *pieces = NULL, **tail = &pieces;
  size_t got = 0;
  bool one = (*largest)->map_size >= need;
  for (int n = 0; got < need && mt_huge_cache != NULL && n < MT_HUGE_PIECES_MAX; n++) {
    mt_segment **from = one ? largest : &mt_huge_cache; /* one: a single pass */
    mt_segment *seg = *from;
    *from = seg->next;
    mt_huge_cache_bytes -= seg->map_size;
    got += seg->map_size;
    seg->next = NULL;
    *tail = seg;
    tail = &seg->next;
  }
  pthread_mutex_unlock(&mt_huge_lock);
  mt_segment *dest = mt__os_map_aligned(need, MT_SEG_SIZE);
  size_t pos = 0;
  if (dest != NULL) {
    mt__os_commit_add((int64_t)need);
    /* Whole pieces to the front; the last one gives its tail. */
    while (pieces != NULL && pos < need) {
      mt_segment *seg = pieces;
      size_t have = seg->map_size, left = need - pos;
      if (have <= left || have - left < MT_HUGE_HEADER + MT_HUGE_PIECE_MIN) {
        size_t take = have <= left ? have : left;
        if (take < have) { /* the rest is too small to keep: drop it first */
          mt__os_unmap((uint8_t *)seg + take, have - take);
          mt__os_commit_add(-(int64_t)(have - take));
          seg->map_size = take;
        }
        mt__segmap_set(seg, 0);
        pieces = seg->next;
        if (mt__os_move_pages(seg, take, (uint8_t *)dest + pos) != 0) {
          mt__segmap_set(seg, 1);
          seg->next = pieces, pieces = seg;
          break;
        }
        mt__os_commit_add(-(int64_t)take);
        pos += take;
      } else {
        mt_assert(left % mt__os_page_size() == 0);
        if (mt__os_move_pages((uint8_t *)seg + have - left, left, (uint8_t *)dest + pos) != 0) break;
        seg->map_size = have - left;
        mt__os_commit_add(-(int64_t)left);
        pos += left;
      }
    }
  }
  /* What was not used goes back, to expire in its time. */
  if (pieces != NULL) {
    pthread_mutex_lock(&mt_huge_lock);
    while (pieces != NULL) {
      mt_segment *seg = pieces;
      pieces = seg->next;
      seg->next = mt_huge_cache;
      mt_huge_cache = seg;
      mt_huge_cache_bytes += seg->map_size;
    }
    pthread_mutex_unlock(&mt_huge_lock);
  }
  if (dest == NULL) return NULL;
  if (pos > 0) memset(dest, 0, pos < MT_HUGE_HEADER ? pos : MT_HUGE_HEADER);
  dest->map_size = need;
  dest->is_huge = 1;
  dest->pages[0].cls = MT_CLASS_HUGE;
  mt__segmap_set(dest, 1);
  *moved = pos;
  return dest;
}

void *mt__huge_alloc(mt_heap *heap, size_t size, size_t align, bool zero) {
  size_t offset = mt_huge_offset(align);
  size_t ps = mt__os_page_size();
  if (size > ((size_t)1 << 46)) {
    errno = ENOMEM;
    return NULL;
  }
  if (size == 0) size = 1; /* the block must lie inside its mapping */
  size_t need = mt_align_up(offset + size, ps);
  /* A cached segment up to twice the size (or 4 MiB over) is taken whole:
   * its spare pages stay resident, but taking it costs nothing. Anything
   * larger gives its tail instead (one move), so a single large block
   * cannot pin its pages under a run of small ones. */
  size_t slack = need > 4 * MT_MiB ? need : 4 * MT_MiB;
  mt_segment *seg = offset < MT_SEG_SIZE ? mt_huge_cache_take(need, need + slack) : NULL;
  size_t moved = 0;
  if (seg != NULL) {
    if (zero) memset((uint8_t *)seg + offset, 0, size);
  } else if (offset < MT_SEG_SIZE && (seg = mt_huge_assemble(need, &moved)) != NULL) {
    if (zero && moved > offset) memset((uint8_t *)seg + offset, 0, (moved < offset + size ? moved : offset + size) - offset);
  } else {
    seg = mt__os_map_aligned(need, align > MT_SEG_SIZE ? align : MT_SEG_SIZE);
    if (seg == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    mt__os_commit_add((int64_t)need);
    seg->map_size = need;
    seg->is_huge = 1;
    seg->pages[0].cls = MT_CLASS_HUGE;
    mt__segmap_set(seg, 1);
  }
  mt_store(&seg->pages[0].owner_tag, MT_TAG_HUGE); /* live; MT_TAG_NONE once freed */
  seg->huge_offset = offset;
  seg->huge_size = seg->map_size - offset;
  seg->next = NULL;
  seg->pages[0].sampled = 0;
  if (offset >= MT_SEG_SIZE) {
    pthread_mutex_lock(&mt_huge_lock);
    seg->next = mt_huge_tails;
    mt_tails_store(&mt_huge_tails, seg);
    pthread_mutex_unlock(&mt_huge_lock);
  }
  uint8_t *p = (uint8_t *)seg + offset;
  mt_assert(((uintptr_t)seg & MT_SEG_MASK) == 0 && seg->huge_size >= size);
  mt_assert(align <= 1 || ((uintptr_t)p & (align - 1)) == 0);
  mt_track_unpoison(p, seg->huge_size);
  return mt_huge_account(heap, seg, p, size);
}

int mt__huge_claim(mt_segment *seg) {
  uintptr_t live = MT_TAG_HUGE;
  return atomic_compare_exchange_strong_explicit(&seg->pages[0].owner_tag, &live, MT_TAG_NONE, memory_order_acq_rel,
                                                 memory_order_relaxed)
             ? 0
             : -1;
}

void mt__huge_free(mt_heap *heap, mt_segment *seg) {
  mt_assert(seg->is_huge && seg->pages[0].cls == MT_CLASS_HUGE);
  mt_store(&seg->pages[0].owner_tag, MT_TAG_NONE); /* claimed already when free() calls */
  if (heap == &mt__heap_empty) heap = mt__heap_for_thread();
  if (heap != NULL) {
    mt_counter_add(&heap->nfree[MT_CLASS_HUGE], 1);
    mt_counter_add(&heap->huge_bytes_free, seg->huge_size);
  }
  size_t limit = (size_t)mt__opt[MT_OPT_HUGE_CACHE];
  if (seg->huge_offset < MT_SEG_SIZE && mt__opt[MT_OPT_PURGE_DELAY] != 0 && seg->map_size <= limit &&
      !mt_load(&mt__os_over_limit)) {
    pthread_mutex_lock(&mt_huge_lock);
    if (mt_huge_cache_bytes + seg->map_size <= limit) {
      seg->cached_at = mt__os_now_ms();
      seg->next = mt_huge_cache;
      mt_huge_cache = seg;
      mt_huge_cache_bytes += seg->map_size;
      pthread_mutex_unlock(&mt_huge_lock);
      return;
    }
    pthread_mutex_unlock(&mt_huge_lock);
  }
  mt_huge_unmap(seg);
  if (mt_unlikely(mt__segment_reserve_missing())) mt__segment_reserve_fill(); /* address space came back */
}

void *mt__huge_realloc(mt_heap *heap, mt_segment *seg, size_t size) {
  if (heap == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  uint8_t *old = (uint8_t *)seg + seg->huge_offset;
  size_t ps = mt__os_page_size();
  if (seg->pages[0].sampled) { /* the sample ends here; the grown block is not one */
    mt__prof_on_free(old, mt__heap_sample_cache(heap), heap->tid);
    seg->pages[0].sampled = 0;
  }
  if (size > ((size_t)1 << 46)) {
    errno = ENOMEM;
    return NULL;
  }
  size_t need = mt_align_up(seg->huge_offset + size, ps);
  /* Fits: stay, unless it shrank so far that most of a large mapping idles. */
  if (need <= seg->map_size && (size >= seg->huge_size / 8 || seg->map_size - need < 8 * MT_MiB)) return old;
  if (need > seg->map_size && seg->huge_offset < MT_SEG_SIZE) {
    /* Grow with room for further growth (address space only until touched). */
    size_t want = mt_align_up(need + need / 4, ps);
    size_t old_size = seg->huge_size;
    mt_segment *cached = mt_huge_cache_take(want, 16 * want);
    if (cached != NULL) { /* resident memory: one copy beats faulting in the growth */
      mt_store(&cached->pages[0].owner_tag, MT_TAG_HUGE);
      cached->huge_offset = seg->huge_offset;
      cached->huge_size = cached->map_size - cached->huge_offset;
      uint8_t *p = (uint8_t *)cached + cached->huge_offset;
      mt_track_unpoison(p, cached->huge_size);
      memcpy(p, old, old_size);
      mt_counter_add(&heap->huge_bytes_alloc, cached->huge_size);
      mt_counter_add(&heap->nalloc[MT_CLASS_HUGE], 1);
      mt__huge_free(heap, seg);
      return p;
    }
    if (mt__os_grow_in_place(seg, seg->map_size, want) == 0) {
      mt__os_commit_add((int64_t)(want - seg->map_size));
      seg->map_size = want;
    } else {
      /* Move the pages, not the bytes: reserve an aligned range and let the
       * kernel remap the old mapping onto it. */
      void *dest = mt__os_map_aligned(want, MT_SEG_SIZE);
      if (dest == NULL) return NULL;
      atomic_fetch_add_explicit(&mt__os.mremap_calls, 1, memory_order_relaxed);
      size_t old_map = seg->map_size;
      void *moved = mremap(seg, old_map, want, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
      if (moved == MAP_FAILED) {
        mt__os_unmap(dest, want);
        goto copy;
      }
      atomic_fetch_sub_explicit(&mt__os.mapped, old_map, memory_order_relaxed);
      mt__segmap_set(seg, 0);
      mt__os_commit_add((int64_t)(want - old_map));
      seg = moved;
      seg->map_size = want;
      mt__segmap_set(seg, 1);
    }
    seg->huge_size = seg->map_size - seg->huge_offset;
    mt_counter_add(&heap->huge_bytes_alloc, seg->huge_size - old_size);
    mt_counter_add(&heap->nalloc[MT_CLASS_HUGE], 0);
    uint8_t *p = (uint8_t *)seg + seg->huge_offset;
    mt_track_unpoison(p, seg->huge_size);
    return p;
  }
copy:;
  void *q = mt_malloc(size);
  if (q == NULL) return NULL;
  memcpy(q, old, seg->huge_size < size ? seg->huge_size : size);
  mt__huge_free(heap, seg);
  return q;
}

void mt__huge_cache_maintain(uint64_t now, bool force) {
  long long delay = mt__opt[MT_OPT_PURGE_DELAY];
  if (delay < 0 && !force) return;
  mt_segment *expired = NULL;
  pthread_mutex_lock(&mt_huge_lock);
  mt_segment **link = &mt_huge_cache;
  while (*link != NULL) {
    mt_segment *seg = *link;
    if (force || now - seg->cached_at >= (uint64_t)delay) {
      *link = seg->next;
      mt_huge_cache_bytes -= seg->map_size;
      seg->next = expired;
      expired = seg;
    } else {
      link = &seg->next;
    }
  }
  pthread_mutex_unlock(&mt_huge_lock);
  while (expired != NULL) {
    mt_segment *next = expired->next;
    mt_huge_unmap(expired);
    expired = next;
  }
}
