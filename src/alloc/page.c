/* page.c -- pages of one size class: refill, lazy free-list extension, queues, retirement
 *
 * A heap keeps, per class, a current page (where malloc pops), a queue of
 * pages that may have free blocks (avail) and a queue of pages that had none
 * at the last look (full). A remote free into a full page sets the class bit
 * in heap->remote_pending, and the owner moves such pages back (to the end
 * of avail) when it next runs out of blocks in that class. */
#include "alloc.h"

#include <errno.h>

#include "../os/os.h"
#include "../base/track.h"

mt_page mt__page_empty; /* free == NULL: every pop from it takes the slow path */

#define MT_EXTEND_BYTES 4096 /* memory a free-list extension touches for small blocks */
#define MT_EXTEND_MIN 4      /* blocks an extension links at least */


/* Link page into q at its front, or at its back: a page that has room again
 * after being full goes behind the pages that were waiting there. Those are
 * used up first, and this one keeps collecting frees meanwhile, so live
 * blocks gather in fewer pages and more pages empty out (mimalloc does the
 * same). Taken from the front, pages that had one block back were filled
 * again at once: espresso's peak 7.8 -> 6.4 MiB (paired runs), 3.8 % fewer
 * instructions. */
static void mt_page_queue_link(mt_page_queue *q, mt_page *page, bool back) {
  mt_assert(page->next == NULL && page->prev == NULL && q->first != page && q->last != page);
  mt_assert((q->first == NULL) == (q->last == NULL));
  if (q->first == NULL) {
    q->first = q->last = page;
  } else if (back) {
    page->prev = q->last;
    q->last->next = page;
    q->last = page;
  } else {
    page->next = q->first;
    q->first->prev = page;
    q->first = page;
  }
}

void mt__page_queue_push(mt_page_queue *q, mt_page *page) { mt_page_queue_link(q, page, false); }

void mt__page_queue_remove(mt_page_queue *q, mt_page *page) {
  mt_assert(page->prev != NULL || q->first == page); /* it is on this queue */
  mt_assert(page->next != NULL || q->last == page);
  mt_assert(page->prev == NULL || page->prev->next == page);
  mt_assert(page->next == NULL || page->next->prev == page);
  if (page->prev) page->prev->next = page->next;
  else q->first = page->next;
  if (page->next) page->next->prev = page->prev;
  else q->last = page->prev;
  page->next = page->prev = NULL;
}

/* Pages of sampled blocks have their own current page and queues; only
 * ordinary pages appear in the direct table. */
#define MT_AVAIL(heap, page) (&(heap)->avail[mt_page_kind(page)][(page)->cls])
#define MT_FULL(heap, page) (&(heap)->full[mt_page_kind(page)][(page)->cls])

static void mt_page_set_current_kind(mt_heap *heap, unsigned cls, int sampled, mt_page *page) {
  if (sampled) heap->scurrent[cls] = page;
  else mt__page_set_current(heap, cls, page);
}

void mt__page_set_current(mt_heap *heap, unsigned cls, mt_page *page) {
  mt_assert(cls < MT_NCLASSES);
  mt_assert(page == &mt__page_empty || (page->cls == cls && !page->sampled && !page->in_full));
  heap->current[cls] = page;
  if (mt__class_size[cls] <= MT_SMALL_MAX) {
    unsigned lo = cls == 0 ? 0 : mt__class_size[cls - 1] / 16 + 1;
    unsigned hi = mt__class_size[cls] / 16;
    for (unsigned i = lo; i <= hi; i++) heap->direct[i] = page;
  }
}

/* Take the blocks other threads freed into this page (the full flag stays).
 * The list's length comes with it (MT_XFREE_COUNT_SHIFT). When the page has
 * no free block left, the list becomes its free list as it is: each link is
 * checked as malloc follows it, and the list's head here. Otherwise it is
 * walked to its tail to be joined, each link checked. A count larger than
 * the blocks out means one block was freed twice by other threads at the
 * same moment (each saw no free mark): reported, and the list is left alone
 * (its blocks leak) rather than handed out twice. */
void mt__page_untag_samples(mt_heap *heap, mt_page *page) {
  uintptr_t tag = mt_load(&page->owner_tag);
  if ((tag & MT_TAG_SAMPLED) && (tag & ~MT_TAG_FLAGS) == (uintptr_t)heap && !page->sampled &&
      atomic_load_explicit(&page->sample_bits, memory_order_relaxed) == 0)
    mt_store(&page->owner_tag, tag & ~MT_TAG_SAMPLED);
}

void mt__page_collect(mt_heap *heap, mt_page *page) {
  (void)heap;
  mt_assert(page != &mt__page_empty);
  mt_assert(heap == NULL || (mt_load(&page->owner_tag) & ~MT_TAG_FLAGS) == (uintptr_t)heap ||
            mt_load(&page->owner_tag) == MT_TAG_ABANDONED); /* or being adopted by heap */
  uintptr_t w = atomic_load_explicit(&page->xfree, memory_order_relaxed);
  if (mt_xfree_head(w) == NULL) return;
  /* the full bit stays while the page is on its owner's full queue (or
   * nobody's: adoption decides); a bit left from mt_page_unfull_local goes */
  uintptr_t keep = heap != NULL && !page->in_full ? 0 : MT_XFREE_FULL;
  while (!atomic_compare_exchange_weak_explicit(&page->xfree, &w, w & keep, memory_order_acquire,
                                                memory_order_relaxed)) {
  }
  mt_block *list = mt_xfree_head(w), *tail = list;
  uint32_t count = mt_xfree_count(w), n = 1;
  if (heap != NULL) mt__page_untag_samples(heap, page); /* its samples kept in place may have gone elsewhere */
  if (mt_unlikely(count > page->used || !mt_page_is_block(page, (uintptr_t)list - (uintptr_t)page->start)))
    goto corrupt;
  if (page->free == NULL) {
    page->free = list;
    page->used -= count;
    mt_assert(page->used <= page->capacity);
    return;
  }
  for (;;) {
    mt_block *next = mt_link_next(page, tail); /* NULL at the end, or reported and NULL */
    if (next == NULL) {
      if ((tail->link ^ page->key) != 0) return; /* a bad link: the list is dropped */
      break;
    }
    tail = next;
    if (mt_unlikely(++n > count)) goto corrupt;
  }
  if (mt_unlikely(n != count)) goto corrupt;
  mt_link_set(page, tail, page->free);
  page->free = list;
  page->used -= count;
  mt_assert(page->used <= page->capacity);
  return;
corrupt:
  mt__report(count > page->used || n > count ? "double free (a block freed twice by other threads)"
                                              : "corrupted free list",
             tail, mt_page_report_cls(page));
}

/* MT_TAG_FULL follows in_full on a page a heap owns, so the owner's free
 * fast path needs no look at in_full. An abandoned page (being adopted) has
 * its tag written whole once adopted. */
static void mt_page_tag_full(mt_page *page, int full) {
  uintptr_t tag = mt_load(&page->owner_tag);
  if (tag <= MT_TAG_ABANDONED) return;
  mt_store(&page->owner_tag, full ? tag | MT_TAG_FULL : tag & ~MT_TAG_FULL);
}

int mt__page_mark_full(mt_page *page) {
  mt_assert(!page->in_full && page->free == NULL);
  uintptr_t w = atomic_load_explicit(&page->xfree, memory_order_relaxed);
  if (w == MT_XFREE_FULL) { /* still set from its last time on the full queue (mt_page_unfull_local): */
    page->in_full = 1;      /* a remote free pushed after this load sees it and tells the owner */
    mt_page_tag_full(page, 1);
    return 1;
  }
  for (;;) {
    if (mt_xfree_head(w) != NULL) return 0;
    if (atomic_compare_exchange_weak_explicit(&page->xfree, &w, MT_XFREE_FULL, memory_order_acq_rel,
                                              memory_order_relaxed)) {
      page->in_full = 1;
      mt_page_tag_full(page, 1);
      return 1;
    }
  }
}

void mt__page_unmark_full(mt_page *page) {
  atomic_fetch_and_explicit(&page->xfree, ~MT_XFREE_FULL, memory_order_relaxed);
  page->in_full = 0;
  mt_page_tag_full(page, 0);
}

/* A full page that its owner freed a block into leaves the full queue but
 * keeps MT_XFREE_FULL: a page filled and emptied block by block (a ring of
 * blocks replaced oldest first) goes back and forth, and the bit's two
 * atomic operations were 11 % of alloc-test's time. Kept, the bit at worst
 * makes the first remote free into the page flag its class for a needless
 * look at the full queue; the next collection of the page clears it, and
 * the page's next mark_full finds it set and needs no atomic operation. */
static void mt_page_unfull_local(mt_page *page) {
  page->in_full = 0;
  mt_page_tag_full(page, 0);
}

static void mt_page_extend(mt_page *page) {
  uint32_t bsize = page->block_size;
  /* about one OS page of small blocks, and at least a few large ones */
  uint32_t count = MT_EXTEND_BYTES / bsize;
  if (count < MT_EXTEND_MIN) count = page->sampled ? 1 : MT_EXTEND_MIN; /* samples come one at a time */
  mt_assert(page->capacity < page->reserved && page->free == NULL);
  uint32_t left = (uint32_t)(page->reserved - page->capacity);
  if (count > left) count = left;
  uint8_t *first = page->start + (size_t)page->capacity * bsize;
  uint8_t *p = first;
  uintptr_t key = page->key, mark = mt__free_key;
  for (uint32_t i = 1; i < count; i++, p += bsize) {
    ((mt_block *)p)->link = (uintptr_t)(p + bsize) ^ key;
    ((mt_block *)p)->freed = mark;
  }
  mt_link_set(page, (mt_block *)p, page->free);
  ((mt_block *)p)->freed = mark;
  page->free = (mt_block *)first;
  page->capacity += count;
  mt_assert((uint64_t)page->capacity * page->block_size <= page->span);
}

/* A page's link key: splitmix64 over the heap's state, which starts from
 * the process's secret and a counter, so keys differ per page and cannot be
 * derived without the secret. Never 0. */
static uintptr_t mt_page_new_key(mt_heap *heap) {
  if (!MT_HARDEN) return 0; /* links stored plain: only to measure what the checks cost */
  static _Atomic uint64_t seeds;
  if (heap->key_rng == 0) heap->key_rng = mt__free_key ^ (atomic_fetch_add(&seeds, 1) * 0x9e3779b97f4a7c15ULL);
  uint64_t z = (heap->key_rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return (uintptr_t)(z ^ (z >> 31)) | 1;
}

static void mt_page_init(mt_heap *heap, mt_page *page, unsigned cls, uint32_t bsize, uint32_t reserved, int sampled) {
  mt_segment *seg = mt_segment_of(page);
  mt_assert(cls < MT_NCLASSES || cls == MT_CLASS_LARGE);
  mt_assert(reserved >= 1 && (size_t)reserved * bsize <= (size_t)page->slot_count << MT_SLOT_SHIFT);
  mt_assert(page->first_slot >= 1 && page->first_slot + page->slot_count <= MT_SLOTS);
  page->start = (uint8_t *)seg + ((size_t)page->first_slot << MT_SLOT_SHIFT);
  mt_page_set_block_size(page, bsize);
  page->span = (uint32_t)((size_t)reserved * bsize);
  page->key = mt_page_new_key(heap);
  page->cls = (uint8_t)cls;
  page->reserved = reserved;
  mt_assert(reserved <= MT_XFREE_MAX_BLOCKS); /* the remote list's count fits its 16 bits */
  page->capacity = 0;
  page->used = 0;
  page->free = NULL;
  page->aligned = 0;
  page->aligned_off = 0;
  page->sampled = (uint8_t)sampled;
  atomic_store_explicit(&page->sample_bits, 0, memory_order_relaxed);
  atomic_store_explicit(&page->xfree, 0, memory_order_relaxed);
  page->in_full = 0;
  mt_store(&page->heap, heap);
  page->next = page->prev = NULL;
  mt_track_unpoison(page->start, (size_t)page->slot_count << MT_SLOT_SHIFT);
  mt_store(&page->owner_tag, (uintptr_t)heap | (sampled ? MT_TAG_SAMPLED : 0));
}

unsigned mt__class_slots(unsigned cls) {
  size_t want = (size_t)mt__class_size[cls] * 8; /* at least 8 blocks a page */
  size_t slots = (want + MT_SLOT_SIZE - 1) >> MT_SLOT_SHIFT;
  return slots == 0 ? 1 : (unsigned)slots;
}

/* Move a page whose lists are empty from avail to the full queue. Returns 1
 * if it was moved, 0 if blocks arrived meanwhile (collected, page stays
 * available). A page on the full queue is never a class's current page:
 * whoever moves the current page here also clears it, so a failed
 * allocation that follows cannot move it a second time (which would unlink
 * it from a queue it is not on and cross-link the two). */
static int mt_page_to_full(mt_heap *heap, mt_page *page) {
  mt_assert(!page->in_full);
  if (!mt__page_mark_full(page)) {
    mt__page_collect(heap, page);
    return 0;
  }
  mt__page_queue_remove(MT_AVAIL(heap, page), page);
  mt__page_queue_push(MT_FULL(heap, page), page);
  return 1;
}

/* The first page on the avail queue of cls with a free block, made current;
 * pages found to have none move to the full queue on the way. NULL if none. */
static mt_page *mt_page_find_avail(mt_heap *heap, unsigned cls, int sampled) {
  mt_page *page = heap->avail[sampled][cls].first;
  while (page != NULL) {
    mt_page *next = page->next;
    /* Other threads' frees are taken once the page's own list is empty:
     * then they need no walk (mt__page_collect). */
    if (page->free == NULL) mt__page_collect(heap, page);
    if (page->free == NULL && page->capacity < page->reserved) mt_page_extend(page);
    if (page->free == NULL) mt_page_to_full(heap, page);
    if (page->free != NULL) {
      mt_assert(page->cls == cls && page->sampled == sampled && !page->in_full);
      mt_page_set_current_kind(heap, cls, sampled, page);
      return page;
    }
    page = next;
  }
  return NULL;
}

/* Full pages of cls that got remote frees go back to avail (or are retired
 * when every block came back). */
void mt__heap_collect_remote(mt_heap *heap, unsigned cls) {
  uint64_t bit = 1ULL << cls;
  for (int kind = 0; kind < 2; kind++) {
    if (!(atomic_load_explicit(&heap->remote_pending[kind], memory_order_relaxed) & bit)) continue;
    atomic_fetch_and_explicit(&heap->remote_pending[kind], ~bit, memory_order_acq_rel);
    mt_page *page = heap->full[kind][cls].first;
    while (page != NULL) {
      mt_page *next = page->next;
      if (mt_xfree_head(atomic_load_explicit(&page->xfree, memory_order_relaxed)) != NULL) {
        mt__page_collect(heap, page);
        if (page->used == 0) {
          mt__page_retire(heap, page);
        } else if (cls != MT_CLASS_LARGE) {
          mt_assert(page->in_full && page->cls == cls);
          mt__page_queue_remove(MT_FULL(heap, page), page);
          mt__page_unmark_full(page);
          mt_page_queue_link(MT_AVAIL(heap, page), page, true);
        }
      }
      page = next;
    }
  }
}

/* Abandoned segments adopted at most per slow call before a fresh span is
 * taken: they bring pages with free blocks (usually of the classes the
 * exited thread used, which a new thread is likely to use too). One: each
 * brings all the slots its last thread left committed, and a thread that
 * adopted four at a time spread its pages over them (b_stress's workers
 * exited holding 4-7 segments for 65-100 slots in use; peak RSS 38 MiB
 * against 30.5 with one, at the same speed in paired runs). */
#define MT_ADOPT_PER_CALL 1

mt_page *mt__page_alloc_slow(mt_heap *heap, unsigned cls, int sampled) {
  mt_assert(cls < MT_NCLASSES && (sampled == 0 || sampled == 1));
#if MT_DEBUG >= 3
  mt__heap_validate(heap); /* every queue and free list, at each page change */
#endif
  mt_page *page = sampled ? heap->scurrent[cls] : heap->current[cls];
  if (page != &mt__page_empty) {
    mt__page_collect(heap, page);
    if (page->free != NULL) return page;
    if (page->capacity < page->reserved) {
      mt_page_extend(page);
      return page;
    }
    if (!mt_page_to_full(heap, page)) return page;
    mt_page_set_current_kind(heap, cls, sampled, &mt__page_empty);
  }
  mt__heap_collect_remote(heap, cls);
  page = mt_page_find_avail(heap, cls, sampled);
  if (page != NULL) return page;
  for (int i = 0; i < MT_ADOPT_PER_CALL && mt__segment_adopt(heap, cls, sampled) != NULL; i++) {
    page = mt_page_find_avail(heap, cls, sampled);
    if (page != NULL) return page;
  }
  uint32_t bsize = mt__class_size[cls];
  unsigned slots = mt__class_slots(cls);
  if (mt_load(&mt__os_over_limit)) mt__heap_maintain(heap, true);
  page = mt__segment_span_alloc(heap, slots, sampled != 0);
  if (page == NULL) return NULL;
  uint32_t reserved = (uint32_t)(((size_t)slots << MT_SLOT_SHIFT) / bsize);
  mt_page_init(heap, page, cls, bsize, reserved, sampled);
  mt_page_extend(page);
  mt__page_queue_push(MT_AVAIL(heap, page), page);
  mt_page_set_current_kind(heap, cls, sampled, page);
  return page;
}

void *mt__large_alloc(mt_heap *heap, size_t size, size_t align) {
  mt__heap_collect_remote(heap, MT_CLASS_LARGE);
  size_t total = size + (align > MT_SLOT_SIZE ? align : 0);
  unsigned slots = (unsigned)((total + MT_SLOT_SIZE - 1) >> MT_SLOT_SHIFT);
  mt_page *page = mt__segment_span_alloc(heap, slots, false);
  if (page == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  uint32_t bsize = (uint32_t)((size_t)slots << MT_SLOT_SHIFT);
  mt_page_init(heap, page, MT_CLASS_LARGE, bsize, 1, 0);
  page->capacity = 1;
  page->used = 1;
  mt__page_mark_full(page);
  mt__page_queue_push(MT_FULL(heap, page), page);
  uint8_t *p = page->start;
  if (align > MT_SLOT_SIZE) {
    p = (uint8_t *)mt_align_up((uintptr_t)p, align);
    if (p != page->start) {
      page->aligned = 1;
      page->aligned_off = (uint32_t)(p - page->start);
      mt_store(&page->owner_tag, mt_load(&page->owner_tag) | MT_TAG_ALIGNED);
    }
  }
  ((mt_block *)p)->freed = 0; /* the memory may carry an old block's free mark */
  mt_counter_add(&heap->nalloc[MT_CLASS_LARGE], 1);
  mt_counter_add(&heap->large_bytes_alloc, bsize);
  mt_track_malloc(p, size, bsize - (size_t)(p - page->start));
  heap->countdown -= (int64_t)bsize;
  if (mt_unlikely(heap->countdown < 0)) return mt__countdown_hit(heap, NULL, p, size);
  return p;
}

int mt__large_grow_in_place(mt_heap *heap, mt_page *page, size_t size) {
  if ((mt_load(&page->owner_tag) & ~MT_TAG_FULL) != (uintptr_t)heap || page->cls != MT_CLASS_LARGE) return -1;
  unsigned slots = (unsigned)((size + MT_SLOT_SIZE - 1) >> MT_SLOT_SHIFT);
  if (mt__segment_span_extend(mt_segment_of(page), page, slots) != 0) return -1;
  uint32_t bsize = (uint32_t)((size_t)slots << MT_SLOT_SHIFT);
  mt_counter_add(&heap->large_bytes_alloc, bsize - page->block_size);
  mt_page_set_block_size(page, bsize);
  page->span = bsize;
  page->reserved = 1;
  mt_track_unpoison(page->start, bsize);
  return 0;
}

void mt__page_retire(mt_heap *heap, mt_page *page) {
  unsigned cls = page->cls;
  mt_assert(page->used == 0 && page != &mt__page_empty);
  mt_assert(mt_xfree_head(atomic_load_explicit(&page->xfree, memory_order_relaxed)) == NULL);
  if (cls < MT_NCLASSES && heap->current[cls] == page) mt__page_set_current(heap, cls, &mt__page_empty);
  if (cls < MT_NCLASSES && heap->scurrent[cls] == page) heap->scurrent[cls] = &mt__page_empty;
  if (page->in_full) {
    mt__page_queue_remove(MT_FULL(heap, page), page);
    mt__page_unmark_full(page);
  } else {
    mt__page_queue_remove(MT_AVAIL(heap, page), page);
  }
  mt__segment_span_free(heap, mt_segment_of(page), page);
}

/* Called after a local free left the page empty or freed into a full page.
 * A page with room goes back to avail. An empty page: keep the current page
 * of a class (the next malloc would only fetch a new one); give any other
 * span back to its segment. */
void mt__page_empty_local(mt_heap *heap, mt_page *page) {
  mt_assert(page->used == 0 || page->in_full);
  if (page->used != 0) { /* a local free into a full page: it has room again */
    mt__page_queue_remove(MT_FULL(heap, page), page);
    mt_page_unfull_local(page);
    mt_page_queue_link(MT_AVAIL(heap, page), page, true);
    return;
  }
  if (page->cls == MT_CLASS_LARGE) {
    mt_counter_add(&heap->large_bytes_free, page->block_size);
    mt__page_retire(heap, page);
    return;
  }
  if (heap->current[page->cls] == page || heap->scurrent[page->cls] == page) return;
  mt__page_retire(heap, page);
}

#if MT_DEBUG >= 2
/* Walk every queue of heap and check what the allocator relies on: links
 * agree both ways, a page is on the queue its in_full flag names and is
 * owned by heap, its counts fit, its free list stays inside it and is no
 * longer than its free blocks, and no current page is on a full queue.
 * Aborts with the broken invariant (mt_assert). Owner thread only. */
static void mt_page_validate(mt_heap *heap, mt_page *page, unsigned kind, unsigned cls, int full) {
  mt_assert((mt_load(&page->owner_tag) & ~MT_TAG_FLAGS) == (uintptr_t)heap);
  mt_assert(page->cls == cls && mt_page_kind(page) == kind);
  mt_assert(page->in_full == (uint8_t)full);
  mt_assert(!(mt_load(&page->owner_tag) & MT_TAG_FULL) == !full);
  mt_assert(page->used <= page->capacity && page->capacity <= page->reserved);
  mt_assert(page->span == page->reserved * page->block_size);
  uint32_t n = 0;
  for (mt_block *b = page->free; b != NULL; b = mt_link_next(page, b)) { /* each link checked as it is followed */
    mt_assert(mt_page_is_block(page, (uintptr_t)b - (uintptr_t)page->start));
    mt_assert(++n <= page->capacity - page->used);
  }
}

void mt__heap_validate(mt_heap *heap) {
  for (unsigned kind = 0; kind < 2; kind++) {
    for (unsigned cls = 0; cls < MT_CLASS_COUNT; cls++) {
      for (int full = 0; full < 2; full++) {
        mt_page_queue *q = full ? &heap->full[kind][cls] : &heap->avail[kind][cls];
        mt_page *prev = NULL;
        uint64_t n = 0;
        for (mt_page *p = q->first; p != NULL; prev = p, p = p->next) {
          mt_assert(p->prev == prev);
          mt_assert(++n <= (uint64_t)heap->segment_count * MT_SLOTS);
          mt_page_validate(heap, p, kind, cls, full);
        }
        mt_assert(q->last == prev);
      }
    }
  }
  for (unsigned cls = 0; cls < MT_NCLASSES; cls++) {
    mt_assert(heap->current[cls] == &mt__page_empty || !heap->current[cls]->in_full);
    mt_assert(heap->scurrent[cls] == &mt__page_empty || !heap->scurrent[cls]->in_full);
  }
}
#endif
