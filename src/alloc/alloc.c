/* alloc.c -- malloc and free fast paths, and the entry points built on them
 *
 * The fast paths below are the hottest code in memtally. Entry assumptions:
 * - mt__tls_heap is never NULL: a thread starts on mt__heap_empty, whose
 *   pages have no free blocks, so its first malloc falls into the slow path,
 *   which creates the thread's heap (and the process state on the very first
 *   call);
 * - every page pointer in heap->direct / heap->current is valid (possibly
 *   mt__page_empty) and owned by the heap;
 * - a block's segment is its address masked to 4 MiB; mt__segmap says
 *   whether that segment is ours, so free() rejects foreign pointers before
 *   it reads any header. */
#define _GNU_SOURCE
#include "alloc.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "../base/diag.h"
#include "../options/options.h"
#include "../sample/sample.h"
#include "../os/os.h"
#include "../base/track.h"
#include "memtally.h"

/* 16..128 in steps of 16, then four classes per doubling up to 128 KiB. */
const uint32_t mt__class_size[MT_NCLASSES] = {
    16,    32,    48,    64,    80,    96,    112,   128,   160,   192,   224,    256,
    320,   384,   448,   512,   640,   768,   896,   1024,  1280,  1536,  1792,   2048,
    2560,  3072,  3584,  4096,  5120,  6144,  7168,  8192,  10240, 12288, 14336,  16384,
    20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536, 81920, 98304, 114688, 131072,
};
const uint8_t mt__sample_bin[MT_SAMPLE_BINNED] = {
    1, 1, 3, 3, 7, 7, 7, 7, 11, 11, 11, 11, 15, 15, 15, 15, 19, 19, 19, 19, 22, 21, 22,
};
/* What ties the table to the rest (checked whole by mt__classes_check). */
_Static_assert(MT_CLASS_LARGE == MT_NCLASSES && MT_CLASS_HUGE == MT_NCLASSES + 1 &&
                   MT_CLASS_COUNT == MT_NCLASSES + 2,
               "large and huge follow the size classes");
_Static_assert(MT_CLASS_COUNT <= MT_STATS_CLASSES, "mt_stats has a row for every class");
_Static_assert(MT_NCLASSES <= 64, "remote_pending has a bit per class");
_Static_assert((MT_DIRECT_COUNT - 1) * 16 == MT_SMALL_MAX, "the direct table covers every size up to MT_SMALL_MAX");
_Static_assert(MT_MEDIUM_MAX <= MT_LARGE_MAX && MT_LARGE_MAX < MT_SEG_SIZE, "size ranges nest");

int mt__classes_check(const char **why) {
  *why = NULL;
  for (unsigned c = 0; c < MT_NCLASSES; c++) {
    if (mt__class_size[c] % 16 != 0) *why = "a class size is not a multiple of 16";
    else if (c > 0 && mt__class_size[c] <= mt__class_size[c - 1]) *why = "class sizes do not increase";
    else if (mt__class_size[c] * 8 > (size_t)MT_SLOT_SIZE * MT_SLOTS / 2) *why = "eight blocks of a class do not fit half a segment";
    if (*why) return (int)c;
  }
  for (unsigned c = 0; c < MT_NCLASSES; c++) {
    unsigned b = c < MT_SAMPLE_BINNED ? mt__sample_bin[c] : c;
    uint64_t blocks = ((uint64_t)mt__class_slots(c) << MT_SLOT_SHIFT) / mt__class_size[c];
    if ((mt__class_size[c] < MT_SAMPLE_IN_PLACE) != (c < MT_SAMPLE_BINNED)) *why = "MT_SAMPLE_BINNED is not the count of classes below MT_SAMPLE_IN_PLACE";
    else if (b < c || (b >= MT_SAMPLE_BINNED && c < MT_SAMPLE_BINNED)) *why = "a sample bin is smaller than its class or kept in place";
    else if (mt__class_size[b] > 2 * mt__class_size[c]) *why = "a sample bin is over twice its class's size";
    /* aligned_alloc serves an alignment from a class whose size it divides */
    else if (mt__class_size[b] % (mt__class_size[c] & -mt__class_size[c]) != 0) *why = "a sample bin does not keep its class's alignment";
    else if (c < MT_SAMPLE_BINNED && mt__sample_bin[b] != b) *why = "a sample bin moves to another bin";
    else if (mt__class_size[c] >= MT_SAMPLE_IN_PLACE && blocks > 32) *why = "a page keeping samples in place holds over 32 blocks";
    if (*why) return (int)c;
  }
  if (mt__class_size[MT_NCLASSES - 1] != MT_MEDIUM_MAX) {
    *why = "the last class is not MT_MEDIUM_MAX";
    return MT_NCLASSES - 1;
  }
  for (size_t n = 1; n <= MT_MEDIUM_MAX; n++) {
    unsigned c = mt_class_of(n);
    if (c >= MT_NCLASSES) *why = "mt_class_of is past the table";
    else if (mt__class_size[c] < n) *why = "mt_class_of gives a class too small";
    else if (c > 0 && mt__class_size[c - 1] >= n) *why = "mt_class_of skips a smaller class that fits";
    /* one direct entry, one class: mt__page_set_current fills the entries of a class */
    else if (n <= MT_SMALL_MAX && mt_class_of(((n + 15) >> 4) << 4) != c) *why = "a direct entry spans two classes";
    if (*why) return (int)n;
  }
  return -1;
}

static void *mt_malloc_generic(mt_heap *heap, size_t size);

#define MT_REALLOC_SPAN_MIN (16 * 1024) /* growing reallocs from here on get a span */

#if MT_HARDEN
static MT_NOINLINE void *mt_pop_odd_link(mt_heap *heap, mt_page *page, mt_block *b, size_t size);
#endif

/* The rest of a pop, once page->free holds b's successor: the free mark
 * cleared, 1 add, 1 counter increment, 1 compare-and-branch on the countdown. */
MT_INLINE void *mt_page_pop_rest(mt_heap *heap, mt_page *page, mt_block *b, size_t size) {
#if MT_HARDEN
  b->freed = 0;
#endif
  page->used++;
  mt_counter_add(&heap->nalloc[page->cls], 1);
  mt_track_malloc(b, size, page->block_size);
  heap->countdown -= (int64_t)page->block_size;
  if (mt_unlikely(heap->countdown < 0)) return mt__countdown_hit(heap, page, b, size);
  return b;
}

/* Pop a block from a page that has one. b's link is decoded and checked to
 * be a block of the page (a load of the key, an xor, a subtraction, a
 * multiplication, two compares); the end of the list and a bad link leave
 * by a tail call, so this path saves no register. */
MT_INLINE void *mt_page_pop(mt_heap *heap, mt_page *page, mt_block *b, size_t size) {
#if MT_HARDEN
  uintptr_t next = b->link ^ page->key;
  if (mt_unlikely(!mt_page_is_block(page, next - (uintptr_t)page->start) || b->freed != mt__free_key))
    return mt_pop_odd_link(heap, page, b, size);
  page->free = (mt_block *)next;
  __builtin_prefetch((const void *)next, 1);
#else
  page->free = (mt_block *)b->link;
#endif
  return mt_page_pop_rest(heap, page, b, size);
}

#if MT_HARDEN
/* b is the last block of its list, or its link was overwritten (reported;
 * the rest of the list is dropped), or b lacks the free mark: every block on
 * a free list carries it, so b is on the list twice (two threads freed it at
 * the same moment) or was written after it was freed. Such a b is reported
 * and not handed out, nor is the rest of its list. b's place was checked
 * when it became the head. Reached by tail calls only (see mt__countdown_hit). */
static MT_NOINLINE void *mt_pop_odd_link(mt_heap *heap, mt_page *page, mt_block *b, size_t size) {
  if (b->freed != mt__free_key) {
    mt__unmarked_head(page, b);
    return mt_malloc_generic(heap, size);
  }
  page->free = mt__link_bad(page, b, b->link ^ page->key);
  return mt_page_pop_rest(heap, page, b, size);
}
#endif

/* malloc fast path: a TLS load, a table load (sizes <= 1 KiB) or a class
 * computed with one bit scan (up to 128 KiB), the page's free list head, its
 * link decoded and checked, its free mark compared, the next block
 * prefetched: 34 instructions to the return and 5 branches for sizes up to
 * 1 KiB (objdump; 21 and 3 with MT_HARDEN=0). */
void *mt_malloc(size_t size) {
  mt_heap *heap = mt__tls_heap;
  mt_page *page;
  if (mt_likely(size <= MT_SMALL_MAX)) page = heap->direct[(size + 15) >> 4];
  else if (size <= MT_MEDIUM_MAX) page = heap->current[mt_class_of(size)];
  else return mt_malloc_generic(heap, size);
  mt_block *b = page->free;
  if (mt_likely(b != NULL)) return mt_page_pop(heap, page, b, size);
  return mt_malloc_generic(heap, size);
}

static MT_NOINLINE void *mt_malloc_generic(mt_heap *heap, size_t size) {
  if (mt_unlikely(heap == &mt__heap_empty)) {
    heap = mt__heap_for_thread();
    if (heap == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  if (size <= MT_MEDIUM_MAX) {
    unsigned cls = mt_class_of(size);
    mt_page *page = heap->current[cls];
    mt_block *b = page->free;
    if (b == NULL) {
      page = mt__page_alloc_slow(heap, cls, 0);
      /* No memory for a new page: a free block on a page of samples will
       * do (free() finds no sample recorded for it and just frees it). */
      if (page == NULL) page = mt__page_alloc_slow(heap, cls, 1);
      if (page == NULL) {
        errno = ENOMEM;
        return NULL;
      }
      b = page->free;
    }
    return mt_page_pop(heap, page, b, size);
  }
  if (mt_unlikely(size > PTRDIFF_MAX)) {
    errno = ENOMEM;
    return NULL;
  }
  if (size <= MT_LARGE_MAX) return mt__large_alloc(heap, size, 0);
  return mt__huge_alloc(heap, size, 0, false);
}

/* ---- free ---- */

static MT_NOINLINE void mt_free_slow(void *p, mt_segment *seg, mt_page *page, uint8_t map);
static MT_NOINLINE void mt_free_other(void *p, mt_segment *seg, mt_page *page, uint8_t map);

/* The one local free, for the fast path and mt_free_slow: b onto its page's
 * own list with its free mark (mark: mt__free_key, loaded by the caller),
 * counted; the page changes queue when it empties or was full. may_be_full:
 * 0 when the caller saw the page's tag without MT_TAG_FULL (the fast path),
 * so only the count is tested. */
MT_INLINE void mt_push_local(mt_heap *heap, mt_page *page, mt_block *b, uintptr_t mark, int may_be_full) {
#if MT_HARDEN
  b->freed = mark;
  __asm__("" : "+m"(b->freed)); /* two plain stores: merged, they cost a vector shuffle */
  mt_link_set(page, b, page->free);
#else
  (void)mark;
  b->link = (uintptr_t)page->free;
#endif
  page->free = b;
  mt_counter_add(&heap->nfree[page->cls], 1);
  mt_assert(may_be_full || !page->in_full);
  if (mt_unlikely((--page->used == 0) | (may_be_full && page->in_full))) mt__page_empty_local(heap, page);
}

/* The free of p by the thread that owns page, the fast path's (tag: the
 * heap's address) and mt_free_other's (a page on the full queue, or the
 * span of an interior slot): the tag, the block check, the free mark, the
 * push. 1: done; 0: not a plain block of this thread's page; -1: p carries
 * the free mark (a double free, or a live block holding the key), for
 * mt_free_slow to check in full. */
MT_INLINE int mt_free_own(mt_heap *heap, mt_page *page, void *p, uintptr_t tag) {
  if (!(mt_likely(mt_load(&page->owner_tag) == tag) &&
        (!MT_HARDEN || mt_likely(mt_page_is_block(page, (uintptr_t)p - (uintptr_t)page->start)))))
    return 0;
  mt_block *b = (mt_block *)p;
  mt_track_free(b, page->block_size);
  uintptr_t mark = mt__free_key;
  if (MT_HARDEN && mt_unlikely(b->freed == mark)) return -1;
  mt_push_local(heap, page, b, mark, tag != (uintptr_t)heap);
  return 1;
}

/* free fast path: segment map bit (NULL has none: mt_free_slow returns),
 * page tag compare (the descriptor's address is p shifted and masked: no
 * segment header field is read, as the headers of all segments share one
 * cache set, 4 MiB apart), the block-start check (p is a block of the page:
 * no interior pointer), the free-mark compare (a double free), an encoded
 * push onto the page's own free list, the used count; 39 instructions
 * to the return (objdump; 27 with MT_HARDEN=0). A page on the full queue, another
 * thread's block or anything odd goes to mt_free_other, a free mark to
 * mt_free_slow, which checks in full. */
void mt_free(void *p) {
  mt_segment *seg = mt_segment_of(p);
  uint8_t map = mt_segmap_get(p);
  if (mt_likely(map == MT_MAP_START)) {
    mt_page *page = mt_slot_page(seg, p);
    __asm__("" : "+r"(page)); /* one address for every field below (else computed twice) */
    mt_heap *heap = mt__tls_heap;
    int own = mt_free_own(heap, page, p, (uintptr_t)heap);
    if (mt_likely(own > 0)) return;
    if (own < 0) mt_free_slow(p, seg, page, map);
    else mt_free_other(p, seg, page, map);
    return;
  }
  mt_free_slow(p, seg, NULL, map);
}

/* Push b onto another thread's page list: a compare-and-swap on the page's
 * own list (no lock), and, for the first block into a page on its owner's
 * full queue, one bit set in the owner's pending mask. Everything read from
 * the page is read before the push: once b is published the owner may
 * collect it and retire the page. */
MT_INLINE void mt_push_remote(mt_page *page, mt_block *b, unsigned cls, unsigned kind, mt_heap *owner) {
  uintptr_t key = page->key;
  b->freed = mt__free_key;
  uintptr_t w = atomic_load_explicit(&page->xfree, memory_order_relaxed);
  do {
    b->link = (uintptr_t)mt_xfree_head(w) ^ key;
  } while (!atomic_compare_exchange_weak_explicit(&page->xfree, &w,
                                                  (uintptr_t)b | (w & MT_XFREE_FULL) |
                                                      ((w & ~(MT_XFREE_ONE - 1)) + MT_XFREE_ONE),
                                                  memory_order_release, memory_order_relaxed));
  /* A stale owner only gets a needless look. */
  if (w == MT_XFREE_FULL && owner != NULL)
    atomic_fetch_or_explicit(&owner->remote_pending[kind], 1ULL << cls, memory_order_release);
}

/* free of a block of a page another live thread owns: the common case of
 * producer/consumer programs, kept off the full slow path (no errno save, no
 * page resolution). Only plain small and medium pages of a live heap, a
 * block start without the free mark, freed by a thread with a heap; 0 when
 * done, else -1 and mt_free_slow decides. tag: the page's, as read. */
static int mt_free_remote(mt_heap *heap, mt_page *page, mt_block *b, uintptr_t tag) {
  if (mt_unlikely(tag <= MT_TAG_ABANDONED || heap == &mt__heap_empty)) return -1;
  unsigned cls = page->cls;
  uint64_t i = mt_page_block_index(page, (uintptr_t)b - (uintptr_t)page->start);
  if (mt_unlikely(cls >= MT_NCLASSES || i >= page->reserved)) return -1;
  /* A page with samples kept in place carries the sampled tag for its
   * owner's sake; here only a block marked as one needs the slow path (the
   * tag stays until the owner sees no mark: every free of a consumer thread
   * went the slow way). */
  uintptr_t flags = tag & (MT_TAG_ALIGNED | MT_TAG_SAMPLED); /* MT_TAG_FULL is the owner's business */
  if (mt_unlikely(flags != 0) &&
      (flags != MT_TAG_SAMPLED || page->sampled || (tag & ~MT_TAG_FLAGS) == (uintptr_t)heap ||
       (atomic_load_explicit(&page->sample_bits, memory_order_relaxed) >> i) & 1))
    return -1;
  /* the free mark: a double free, or (rarely) a live block holding the key; checked in full */
  if (MT_HARDEN && mt_unlikely(!mt_track_readable(&b->freed, sizeof b->freed) || b->freed == mt__free_key)) return -1;
  mt_track_free(b, page->block_size);
  mt_counter_add(&heap->nfree[cls], 1);
  mt_push_remote(page, b, cls, 0, mt_load(&page->heap));
  return 0;
}

/* The owner's free into its page that keeps samples in place (tag: the
 * heap's, with MT_TAG_SAMPLED): only a block marked as one needs the slow
 * path. Out of line, so that other threads' frees through mt_free_other
 * carry none of it. */
static MT_NOINLINE void mt_free_own_marked(void *p, mt_segment *seg, mt_page *page, uint8_t map, uintptr_t tag) {
  mt_heap *heap = mt__tls_heap;
  uint32_t marks = atomic_load_explicit(&page->sample_bits, memory_order_relaxed);
  uint64_t i = mt_page_block_index(page, (uintptr_t)p - (uintptr_t)page->start);
  if (page->sampled || i >= page->reserved || i >= 32 || ((marks >> i) & 1)) {
    mt_free_slow(p, seg, page, map);
    return;
  }
  /* the last mark went (freed by another thread): frees go fast again */
  if (marks == 0) mt__page_untag_samples(heap, page), tag &= ~MT_TAG_SAMPLED;
  if (mt_free_own(heap, page, p, tag) <= 0) mt_free_slow(p, seg, page, map);
}

/* A block of a page this thread does not own, or anything odd: reached by a
 * tail call, so the fast path above saves no register. */
static MT_NOINLINE void mt_free_other(void *p, mt_segment *seg, mt_page *page, uint8_t map) {
  mt_heap *heap = mt__tls_heap;
  uintptr_t tag = mt_load(&page->owner_tag);
  /* A block past its span's first slot (classes of 10 KiB and up span
   * several): the span's first slot describes it. These all went the slow
   * way, 15 of every 16 blocks of the 128 KiB class. */
  if (tag == MT_TAG_INTERIOR) {
    page = &seg->pages[page->first_slot];
    tag = mt_load(&page->owner_tag);
  }
  /* this thread's page, maybe on its full queue, maybe keeping samples in place */
  if ((tag & ~(MT_TAG_FULL | MT_TAG_SAMPLED)) == (uintptr_t)heap) {
    if (tag & MT_TAG_SAMPLED) {
      mt_free_own_marked(p, seg, page, map, tag);
      return;
    }
    int own = mt_free_own(heap, page, p, tag);
    if (own > 0) return;
    if (own < 0) {
      mt_free_slow(p, seg, page, map);
      return;
    }
  }
  if (mt_free_remote(heap, page, (mt_block *)p, tag) == 0) return;
  mt_free_slow(p, seg, page, map);
}

/* Resolve p to its page, following an interior slot to its span's first
 * slot. Returns NULL for a pointer that is in no live block's page. */
static mt_page *mt_page_resolve(mt_segment *seg, mt_page *page) {
  uintptr_t tag = mt_load(&page->owner_tag);
  if (tag == MT_TAG_INTERIOR) page = &seg->pages[page->first_slot];
  return page;
}

static mt_block *mt_block_start(mt_page *page, const void *p) {
  uintptr_t off = (uintptr_t)p - (uintptr_t)page->start;
  return (mt_block *)(page->start + (off - off % page->block_size));
}

/* Is b on one of page's free lists? Called only when b carries the free
 * mark, so a double free costs a walk and a live block almost never does.
 * The owner walks its own list and the list of other threads' frees; any
 * other thread trusts the mark (the owner's list is not its to read), which
 * a live block carries only if the program wrote the process's random key
 * into it. Walks are bounded by the page's blocks. */
static int mt_block_is_free(const mt_page *page, const mt_block *b, int owner) {
  if (!owner) return 1;
  uint32_t n = 0;
  for (const mt_block *x = page->free; x != NULL && n++ <= page->capacity; x = mt_link_next(page, x))
    if (x == b) return 1;
  uintptr_t w = (uintptr_t)mt_xfree_head(atomic_load_explicit(&page->xfree, memory_order_acquire));
  n = 0;
  for (const mt_block *x = (const mt_block *)w; x != NULL && n++ <= page->capacity; x = mt_link_next(page, x))
    if (x == b) return 1;
  return 0;
}

/* Does b carry the free mark and sit on a free list (see mt_block_is_free)? */
static int mt_block_freed(const mt_page *page, const mt_block *b, int owner) {
  return MT_HARDEN && mt_track_readable(&b->freed, sizeof b->freed) && b->freed == mt__free_key &&
         mt_block_is_free(page, b, owner);
}

/* What p is on its page (interior slots resolved): the block it starts (or,
 * for an aligned large block, the block whose pointer it is); else why it
 * is none.
 * free and realloc share it, with their own words for the report. */
enum { MT_PTR_BLOCK, MT_PTR_FREED_SPAN, MT_PTR_NOT_BLOCK, MT_PTR_INTERIOR };
static const char *const mt_free_misuse[] = {NULL, "double free (the block's memory is free)",
                                             "free of a pointer that is not an allocated block",
                                             "free of a pointer inside a block"};
static const char *const mt_realloc_misuse_what[] = {NULL, "realloc of a freed block (its memory is free)",
                                                     "realloc of a pointer that is not an allocated block",
                                                     "realloc of a pointer inside a block"};
static int mt_ptr_block(const mt_page *page, const void *p, mt_block **out) {
  uintptr_t tag = mt_load(&page->owner_tag);
  if (tag == MT_TAG_NONE) return MT_PTR_FREED_SPAN; /* a span given back: freed already */
  if (tag == MT_TAG_INTERIOR || tag == MT_TAG_HUGE || (const uint8_t *)p < page->start ||
      (const uint8_t *)p >= page->start + page->span)
    return MT_PTR_NOT_BLOCK;
  *out = (mt_block *)p;
  if (mt_page_is_block(page, (uintptr_t)p - (uintptr_t)page->start)) return MT_PTR_BLOCK;
  /* a large block aligned past 64 KiB: only the pointer handed out is the
   * block; any other address in it is inside it */
  if (!page->aligned || (const uint8_t *)p != page->start + page->aligned_off) return MT_PTR_INTERIOR;
  *out = (mt_block *)page->start;
  return MT_PTR_BLOCK;
}

/* A free from a page that keeps samples in place (MT_SAMPLE_IN_PLACE): if b
 * is marked as one, the mark goes and the profiler hears of it. */
static void mt_free_sample_in_place(mt_page *page, mt_block *b, mt_heap *heap) {
  uint32_t bit = 1u << mt_page_block_index(page, (uintptr_t)b - (uintptr_t)page->start);
  if (!(atomic_load_explicit(&page->sample_bits, memory_order_relaxed) & bit)) return;
  atomic_fetch_and_explicit(&page->sample_bits, ~bit, memory_order_relaxed);
  /* not found when the live table had no memory to record it (the OS refused) */
  (void)mt__prof_on_free(b, mt__heap_sample_cache(heap), heap->tid);
}

static MT_NOINLINE void mt_free_slow(void *p, mt_segment *seg, mt_page *page, uint8_t map) {
  if (p == NULL) return;
  int saved_errno = errno;
  if (map == MT_MAP_NONE || seg->is_huge) {
    mt_segment *hs = mt__huge_segment_of(p);
    if (hs == NULL) {
      mt__report("free of a pointer memtally does not own", p, -1);
      goto done;
    }
    if ((uint8_t *)p != (uint8_t *)hs + hs->huge_offset) {
      mt__report("free of a pointer inside a block", p, MT_CLASS_HUGE);
      goto done;
    }
    if (mt__huge_claim(hs) != 0) {
      mt__report("double free", p, MT_CLASS_HUGE);
      goto done;
    }
    if (hs->pages[0].sampled) mt__prof_on_free(p, mt__heap_sample_cache(mt__tls_heap), mt__tls_heap->tid);
    mt__huge_free(mt__tls_heap, hs);
    goto done;
  }
  page = mt_page_resolve(seg, page);
  mt_block *b = NULL;
  int kind_of_p = mt_ptr_block(page, p, &b);
  if (kind_of_p != MT_PTR_BLOCK) {
    mt__report(mt_free_misuse[kind_of_p], p, kind_of_p == MT_PTR_INTERIOR ? mt_page_report_cls(page) : -1);
    goto done;
  }
  uintptr_t tag = mt_load(&page->owner_tag);
  if (tag != MT_TAG_ABANDONED) tag &= ~MT_TAG_FLAGS;
  mt_heap *heap = mt__tls_heap;
  unsigned cls = page->cls;
  uint32_t bsize = page->block_size;
  mt_track_free(b, bsize);
  if (mt_block_freed(page, b, tag == (uintptr_t)heap)) {
    mt__report("double free", p, mt_page_report_cls(page));
    goto done;
  }
  if (page->sampled) mt__prof_on_free(b, mt__heap_sample_cache(heap), heap->tid);
  else if (atomic_load_explicit(&page->sample_bits, memory_order_relaxed) != 0) mt_free_sample_in_place(page, b, heap);
  if (tag == (uintptr_t)heap) {
    mt__page_untag_samples(heap, page);
    mt_push_local(heap, page, b, mt__free_key, 1);
    goto done;
  }
  /* Another thread's page (or an abandoned one): push onto its atomic list.
   * The counters belong to the freeing thread; sums stay exact. */
  unsigned kind = mt_page_kind(page);
  mt_heap *owner = mt_load(&page->heap);
  if (heap == &mt__heap_empty) heap = mt__heap_for_thread();
  if (heap != NULL) {
    mt_counter_add(&heap->nfree[cls], 1);
    if (cls == MT_CLASS_LARGE) mt_counter_add(&heap->large_bytes_free, bsize);
  }
  mt_push_remote(page, b, cls, kind, owner);
done:
  errno = saved_errno;
}

void mt_free_sized(void *p, size_t size) {
  /* a sized delete must name the size the block was allocated with */
  mt_assert_api(p == NULL || size <= mt_usable_size(p));
  (void)size;
  mt_free(p);
}

/* ---- sizes and ownership ---- */

int mt_owns(const void *p) {
  return p != NULL && (mt_segmap_get(p) != MT_MAP_NONE || mt__huge_segment_of(p) != NULL);
}

size_t mt_usable_size(const void *p) {
  if (p == NULL) return 0;
  uint8_t map = mt_segmap_get(p);
  mt_segment *seg = mt_segment_of(p);
  if (map == MT_MAP_NONE || seg->is_huge) {
    mt_segment *hs = mt__huge_segment_of(p);
    if (hs == NULL) {
      mt__report("usable size of a pointer memtally does not own", p, -1);
      return 0;
    }
    uint8_t *start = (uint8_t *)hs + hs->huge_offset;
    if ((const uint8_t *)p < start || (const uint8_t *)p >= start + hs->huge_size) return 0;
    return hs->huge_size - (size_t)((const uint8_t *)p - start);
  }
  mt_page *page = mt_page_resolve(seg, &seg->pages[((uintptr_t)p - (uintptr_t)seg) >> MT_SLOT_SHIFT]);
  if (page->aligned) {
    mt_block *b = mt_block_start(page, p);
    return page->block_size - (size_t)((const uint8_t *)p - (uint8_t *)b);
  }
  return page->block_size;
}

/* ---- calloc, realloc ---- */

void *mt_calloc(size_t count, size_t size) {
  size_t total;
  if (mt_unlikely(__builtin_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  if (total > MT_LARGE_MAX) {
    mt_heap *heap = mt__tls_heap;
    if (heap == &mt__heap_empty) heap = mt__heap_for_thread();
    if (heap == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    if (total > PTRDIFF_MAX) {
      errno = ENOMEM;
      return NULL;
    }
    return mt__huge_alloc(heap, total, 0, true);
  }
  void *p = mt_malloc(total);
  if (p != NULL) memset(p, 0, total);
  return p;
}

/* realloc of something that is not a live block: reported (1), or 0. */
static MT_NOINLINE int mt_realloc_misuse(mt_page *page, const void *p) {
  mt_block *b = NULL;
  int kind_of_p = mt_ptr_block(page, p, &b);
  if (kind_of_p != MT_PTR_BLOCK) {
    mt__report(mt_realloc_misuse_what[kind_of_p], p, kind_of_p == MT_PTR_INTERIOR ? mt_page_report_cls(page) : -1);
    return 1;
  }
  if (mt_block_freed(page, b, (mt_load(&page->owner_tag) & ~MT_TAG_FLAGS) == (uintptr_t)mt__tls_heap)) {
    mt__report("realloc of a freed block", p, mt_page_report_cls(page));
    return 1;
  }
  return 0;
}

void *mt_realloc(void *p, size_t size) {
  if (p == NULL) return mt_malloc(size);
  if (size == 0) { /* as glibc: free and return NULL */
    mt_free(p);
    return NULL;
  }
  /* Find the block once: a huge segment, or the page of a segment. */
  uint8_t map = mt_segmap_get(p);
  mt_segment *seg = mt_segment_of(p);
  mt_segment *hs = map == MT_MAP_NONE || seg->is_huge ? mt__huge_segment_of(p) : NULL;
  if (map == MT_MAP_NONE && hs == NULL) {
    mt__report("realloc of a pointer memtally does not own", p, -1);
    errno = EINVAL;
    return NULL;
  }
  if (hs != NULL && (mt_load(&hs->pages[0].owner_tag) != MT_TAG_HUGE || (uint8_t *)p != (uint8_t *)hs + hs->huge_offset)) {
    mt__report(mt_load(&hs->pages[0].owner_tag) != MT_TAG_HUGE ? "realloc of a freed block" : "realloc of a pointer inside a block",
               p, MT_CLASS_HUGE);
    errno = EINVAL;
    return NULL;
  }
  mt_page *page = hs == NULL ? mt_page_resolve(seg, &seg->pages[((uintptr_t)p - (uintptr_t)seg) >> MT_SLOT_SHIFT]) : NULL;
  if (page != NULL && mt_realloc_misuse(page, p)) {
    errno = EINVAL;
    return NULL;
  }
  int own_span = page != NULL && page->cls == MT_CLASS_LARGE; /* a block with a span of its own */
  size_t usable = mt_usable_size(p);
  /* Stay when it fits and wastes at most half; a block with its own span
   * (grown by earlier reallocs) may idle up to 256 KiB of it, which costs
   * address space, not RSS, while untouched. */
  if (size <= usable && (size >= usable / 2 || (own_span && usable - size <= 256 * MT_KiB))) {
    mt_track_resize(p, size);
    return p;
  }
  mt_heap *heap = mt__tls_heap;
  if (hs != NULL && size > MT_LARGE_MAX && (uint8_t *)p == (uint8_t *)hs + hs->huge_offset) {
    if (heap == &mt__heap_empty) heap = mt__heap_for_thread();
    return mt__huge_realloc(heap, hs, size);
  }
  if (own_span && size > usable && size <= MT_LARGE_MAX && heap != &mt__heap_empty && (uint8_t *)p == page->start &&
      mt__large_grow_in_place(heap, page, size) == 0) {
    mt_track_resize(p, size);
    return p;
  }
  /* A block that outgrows its block is likely to grow again. Past 16 KiB it
   * moves to a span of its own, which later reallocs grow in place over the
   * free slots after it (untouched span memory costs no RSS); below that it
   * gets half as much again, so a run of small reallocs copies O(n) bytes in
   * all rather than once per size class. */
  size_t alloc_size = size;
  void *q = NULL;
  if (size > usable && size >= MT_REALLOC_SPAN_MIN && size + size / 4 <= MT_LARGE_MAX && heap != &mt__heap_empty) {
    q = mt__large_alloc(heap, size, 0);
  } else if (size > usable && size > 1024 && size < ((size_t)1 << 40)) {
    alloc_size = size + (size <= MT_MEDIUM_MAX ? size / 2 : size / 4);
  }
  if (q == NULL) q = mt_malloc(alloc_size);
  if (q == NULL && alloc_size != size) q = mt_malloc(size);
  if (q == NULL) return NULL;
  mt_track_unpoison(p, usable);
  memcpy(q, p, usable < size ? usable : size);
  mt_track_resize(q, size);
  mt_free(p);
  return q;
}

void *mt_reallocarray(void *p, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return mt_realloc(p, total);
}

/* ---- aligned allocation ---- */

static void *mt_malloc_aligned(size_t align, size_t size) {
  if (align <= 16) return mt_malloc(size);
  if (size == 0) size = 1; /* a real block, so that free and realloc know it */
  if (size > PTRDIFF_MAX || align > ((size_t)1 << 40)) {
    errno = ENOMEM;
    return NULL;
  }
  size_t n = size < align ? align : size;
  if (n <= MT_MEDIUM_MAX && align <= MT_SLOT_SIZE) {
    /* Pages start on 64 KiB boundaries, so blocks of a class whose size is a
     * multiple of align are all aligned. */
    if ((mt__class_size[mt_class_of(n)] & (align - 1)) == 0) return mt_malloc(n);
  }
  mt_heap *heap = mt__tls_heap;
  if (heap == &mt__heap_empty) heap = mt__heap_for_thread();
  if (heap == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  if (size <= MT_LARGE_MAX && align <= MT_SLOT_SIZE) return mt__large_alloc(heap, size, 0);
  if (size + align <= MT_LARGE_MAX) return mt__large_alloc(heap, size, align);
  return mt__huge_alloc(heap, size, align, false);
}

void *mt_memalign(size_t align, size_t size) {
  if (!mt_is_pow2(align)) { /* as glibc: round up to a power of two */
    if (align > ((size_t)1 << 40)) {
      errno = EINVAL;
      return NULL;
    }
    size_t a = 16;
    while (a < align) a <<= 1;
    align = a;
  }
  return mt_malloc_aligned(align, size);
}

void *mt_aligned_alloc(size_t align, size_t size) {
  if (!mt_is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return mt_malloc_aligned(align, size);
}

int mt_posix_memalign(void **out, size_t align, size_t size) {
  if (out == NULL) return EINVAL;
  if (!mt_is_pow2(align) || (align % sizeof(void *)) != 0) return EINVAL;
  void *p = mt_malloc_aligned(align, size);
  if (p == NULL) return errno = ENOMEM; /* returned, and in errno as glibc leaves it */
  *out = p;
  return 0;
}

void *mt_valloc(size_t size) { return mt_malloc_aligned(mt__os_page_size(), size); }

void *mt_pvalloc(size_t size) {
  size_t ps = mt__os_page_size();
  if (size > SIZE_MAX - ps) {
    errno = ENOMEM;
    return NULL;
  }
  size_t n = mt_align_up(size == 0 ? 1 : size, ps);
  return mt_malloc_aligned(ps, n);
}

/* ---- misuse reports ---- */

uintptr_t mt__free_key;

void mt__unmarked_head(mt_page *page, const mt_block *b) {
  page->free = NULL;
  mt__report("corrupted free list: a block on it is not marked free (freed twice at once, or written after free)", b,
             mt_page_report_cls(page));
}

mt_block *mt__link_bad(const mt_page *page, const mt_block *b, uintptr_t next) {
  if (next == 0) return NULL;
  mt__report("corrupted free list: a freed block was overwritten", b, mt_page_report_cls(page));
  return NULL;
}

void mt__report(const char *what, const void *p, int cls) {
  char buf[256];
  const size_t cap = sizeof buf - 1; /* room for the newline */
  size_t n = mt__diag_cat(buf, 0, cap, "memtally: error: ");
  n = mt__diag_cat(buf, n, cap, what);
  n = mt__diag_cat(buf, n, cap, " at ");
  n = mt__diag_hex(buf, n, cap, (uintptr_t)p);
  if (cls >= 0 && cls < MT_NCLASSES) {
    n = mt__diag_cat(buf, n, cap, " (size class ");
    n = mt__diag_dec(buf, n, cap, (uint64_t)cls);
    n = mt__diag_cat(buf, n, cap, ", ");
    n = mt__diag_dec(buf, n, cap, mt__class_size[cls]);
    n = mt__diag_cat(buf, n, cap, "-byte blocks)");
  } else if (cls == MT_CLASS_LARGE) {
    n = mt__diag_cat(buf, n, cap, " (large block)");
  } else if (cls == MT_CLASS_HUGE) {
    n = mt__diag_cat(buf, n, cap, " (huge block)");
  }
  if (mt__opt[MT_OPT_ABORT]) n = mt__diag_cat(buf, n, cap, "; aborting (MEMTALLY_ABORT=0 to continue)");
  buf[n++] = '\n';
  mt__os_write_err(buf, n);
  if (mt__opt[MT_OPT_ABORT]) mt__os_abort();
}

#ifndef MT_VERSION_STRING
#define MT_VERSION_STRING "0.1.0"
#endif
const char *mt_version(void) { return "memtally " MT_VERSION_STRING; }

#ifdef MT_MALLOC_ALIASES
/* The shared library's malloc, free and C++ delete are these functions
 * under other names (the rest of the family is in override.c): no jump on
 * the way in. A sized delete is free itself unless the build checks the
 * size (MT_DEBUG); its size argument is left unread. */
__attribute__((visibility("default"), alias("mt_malloc"), malloc)) void *malloc(size_t size);
__attribute__((visibility("default"), alias("mt_free"))) void free(void *p);
__attribute__((visibility("default"), alias("mt_free"))) void _ZdlPv(void *p);
__attribute__((visibility("default"), alias("mt_free"))) void _ZdaPv(void *p);
#if !MT_DEBUG
__attribute__((visibility("default"), alias("mt_free"))) void _ZdlPvm(void *p);
__attribute__((visibility("default"), alias("mt_free"))) void _ZdaPvm(void *p);
#endif
#endif
