/* segment.c -- 4 MiB segments: the segment map, spans of slots, purging, caching, abandonment
 *
 * A segment belongs to one heap. Spans are found first-fit in the 64-bit
 * free mask, preferring slots still committed (dirty) so that reuse does not
 * fault memory in again. Freed slots stay committed for the purge delay and
 * are then returned with madvise. An empty segment goes to a small global
 * cache, and is unmapped when it stays unused past the delay. A heap whose
 * thread exits leaves its non-empty segments on the abandoned list, where
 * the next thread that needs a segment adopts them. */
#include <pthread.h>
#include <string.h>

#include "../options/options.h"
#include "../os/os.h"
#include "alloc.h"

_Atomic uint8_t mt__segmap[MT_SEGMAP_ENTRIES];

static pthread_mutex_t mt_seg_lock = PTHREAD_MUTEX_INITIALIZER;
static mt_segment *mt_seg_cache;     /* empty segments, newest first */
/* One empty segment held back for a heap that has no room and cannot map a
 * segment (large blocks of other threads took the address space, under
 * RLIMIT_AS): its small requests still succeed. Made when a heap is set up,
 * refilled from a released segment or after a huge block is unmapped.
 * Costs 4 MiB of address space and the header's few resident pages. */
static mt_segment *_Atomic mt_seg_reserve; /* written under mt_seg_lock, looked at without */
static size_t mt_seg_cache_count;
static mt_segment *mt_seg_abandoned; /* segments whose thread exited */
static mt_segment *mt_seg_none;      /* stays NULL: the end of a bounded look */
static _Atomic uint64_t mt_seg_count;

#define MT_HEADER_BYTES (mt_align_up(sizeof(mt_segment), 4096))

void mt__segmap_set(mt_segment *seg, int on) {
  uintptr_t s = (uintptr_t)seg >> MT_SEG_SHIFT;
  mt_assert(s < MT_SEGMAP_ENTRIES);
  atomic_store_explicit(&mt__segmap[s], on ? MT_MAP_START : MT_MAP_NONE, memory_order_release);
}

uint64_t mt__segment_count(void) { return mt_load(&mt_seg_count); }

/* The child after fork. The lock guards the cache and the abandoned list;
 * if a thread held it at fork, either may be half linked: the child forgets
 * both (their segments leak, their blocks stay valid). */
void mt__segment_after_fork(void) {
  if (mt__os_mutex_reclaim(&mt_seg_lock)) {
    mt_seg_cache = NULL;
    mt_seg_cache_count = 0;
    mt_seg_abandoned = NULL;
    mt_store(&mt_seg_reserve, NULL);
  }
}

static uint64_t mt_span_bits(unsigned first, unsigned slots) {
  mt_assert(first + slots <= MT_SLOTS);
  uint64_t bits = slots >= 64 ? ~0ULL : ((1ULL << slots) - 1);
  return bits << first;
}

static mt_segment *mt_segment_new(void) {
  mt_segment *seg = mt__os_map_aligned(MT_SEG_SIZE, MT_SEG_SIZE);
  if (seg == NULL) return NULL;
  mt_assert(((uintptr_t)seg & MT_SEG_MASK) == 0);
  mt__os_commit_add((int64_t)MT_HEADER_BYTES);
  seg->map_size = MT_SEG_SIZE;
  seg->free_mask = MT_SLOTS_ALL;
  for (unsigned i = 0; i < MT_SLOTS; i++) seg->pages[i].first_slot = (uint8_t)i;
  mt__segmap_set(seg, 1);
  atomic_fetch_add_explicit(&mt_seg_count, 1, memory_order_relaxed);
  return seg;
}

static void mt_segment_unmap(mt_segment *seg) {
  mt_assert(seg->used_slots == 0 && seg->free_mask == MT_SLOTS_ALL);
  int64_t committed = (int64_t)MT_HEADER_BYTES + (int64_t)__builtin_popcountll(seg->commit_mask) * (int64_t)MT_SLOT_SIZE;
  mt__os_commit_add(-committed);
  mt__segmap_set(seg, 0);
  atomic_fetch_sub_explicit(&mt_seg_count, 1, memory_order_relaxed);
  mt__os_unmap(seg, MT_SEG_SIZE);
}

static void mt_heap_link_segment(mt_heap *heap, mt_segment *seg) {
  mt_assert(heap->segments != seg);
  seg->heap = heap;
  seg->prev = NULL;
  seg->next = heap->segments;
  if (heap->segments) heap->segments->prev = seg;
  heap->segments = seg;
  heap->segment_count++;
}

static void mt_heap_unlink_segment(mt_heap *heap, mt_segment *seg) {
  mt_assert(seg->heap == heap && heap->segment_count > 0);
  mt_assert(seg->prev != NULL || heap->segments == seg);
  if (seg->prev) seg->prev->next = seg->next;
  else heap->segments = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  seg->next = seg->prev = NULL;
  seg->heap = NULL;
  heap->segment_count--;
}

static void mt_span_release_slots(mt_segment *seg, mt_page *page, uint32_t now) {
  unsigned first = page->first_slot, n = page->slot_count;
  mt_assert(n >= 1 && first >= 1 && first + n <= MT_SLOTS);
  mt_assert((seg->free_mask & mt_span_bits(first, n)) == 0); /* not freed twice */
  mt_assert(seg->used_slots >= n);
  for (unsigned i = first; i < first + n; i++) {
    mt_store(&seg->pages[i].owner_tag, MT_TAG_NONE);
    seg->pages[i].first_slot = (uint8_t)i;
    seg->freed_at[i] = now;
  }
  uint64_t bits = mt_span_bits(first, n);
  seg->free_mask |= bits;
  seg->dirty_mask |= bits & seg->commit_mask;
  seg->used_slots -= n;
}

/* Walk the spans of a segment that this thread holds exclusively: take
 * back remote frees, return spans that became empty, hand the rest to
 * live (may be NULL). */
typedef void mt_live_page_fn(mt_page *page, void *arg);
static void mt_segment_reclaim(mt_segment *seg, uint32_t now, mt_live_page_fn *live, void *arg) {
  for (unsigned i = 1; i < MT_SLOTS;) {
    mt_page *page = &seg->pages[i];
    if (seg->free_mask & (1ULL << i)) {
      i++;
      continue;
    }
    unsigned n = page->slot_count ? page->slot_count : 1;
    mt__page_collect(NULL, page);
    if (page->used == 0) mt_span_release_slots(seg, page, now);
    else if (live != NULL) live(page, arg);
    i += n;
  }
}

static void mt_page_adopt(mt_page *page, void *arg) {
  mt_heap *heap = arg;
  unsigned cls = page->cls;
  mt_store(&page->heap, heap);
  page->next = page->prev = NULL;
  page->in_full = 0;
  if ((cls == MT_CLASS_LARGE || (page->free == NULL && page->capacity >= page->reserved)) &&
      mt__page_mark_full(page)) {
    mt__page_queue_push(&heap->full[mt_page_kind(page)][cls], page);
  } else {
    mt__page_collect(heap, page);
    mt__page_queue_push(&heap->avail[mt_page_kind(page)][cls], page);
  }
  atomic_store_explicit(&page->owner_tag,
                        (uintptr_t)heap | (page->aligned ? MT_TAG_ALIGNED : 0) | (page->in_full ? MT_TAG_FULL : 0) |
                            (page->sampled || mt_load(&page->sample_bits) ? MT_TAG_SAMPLED : 0),
                        memory_order_release);
}

/* Adopt an abandoned segment: its live pages join this heap's queues. */
static void mt_segment_adopt(mt_heap *heap, mt_segment *seg) {
  mt_heap_link_segment(heap, seg);
  mt_segment_reclaim(seg, (uint32_t)mt__os_now_ms(), mt_page_adopt, heap);
  /* blocks that arrived on full pages while we looked */
  atomic_fetch_or_explicit(&heap->remote_pending[0], ~0ULL, memory_order_relaxed);
  atomic_fetch_or_explicit(&heap->remote_pending[1], ~0ULL, memory_order_relaxed);
}

/* Does seg hold a page of class cls (of the sampled kind or not) that has
 * blocks to give? Called under mt_seg_lock while seg is on the abandoned
 * list: no thread changes its pages then but through that lock, except
 * that remote frees push onto xfree, which is only looked at. */
static bool mt_segment_offers(const mt_segment *seg, unsigned cls, int sampled) {
  for (unsigned i = 1; i < MT_SLOTS;) {
    const mt_page *page = &seg->pages[i];
    if (seg->free_mask & (1ULL << i)) {
      i++;
      continue;
    }
    if (page->cls == cls && page->sampled == sampled &&
        (page->free != NULL || page->capacity < page->reserved ||
         mt_xfree_head(atomic_load_explicit(&page->xfree, memory_order_relaxed)) != NULL))
      return true;
    i += page->slot_count ? page->slot_count : 1;
  }
  return false;
}

/* Abandoned segments looked at per call for one with a page of the class
 * wanted. The rest stay abandoned for threads that want what they hold. */
#define MT_ADOPT_LOOK 8

/* Take an abandoned segment into heap: its live pages join the heap's
 * queues. With cls < MT_NCLASSES, only one that holds a page of that class
 * with blocks to give (see mt__page_alloc_slow); with MT_NCLASSES, the
 * first. Returns it, or NULL when none is waiting or none fits. */
mt_segment *mt__segment_adopt(mt_heap *heap, unsigned cls, int sampled) {
  for (;;) {
    pthread_mutex_lock(&mt_seg_lock);
    mt_segment **at = &mt_seg_abandoned;
    if (cls < MT_NCLASSES) {
      int looked = 0;
      while (*at != NULL && !mt_segment_offers(*at, cls, sampled))
        at = ++looked < MT_ADOPT_LOOK ? &(*at)->next : &mt_seg_none;
    }
    mt_segment *seg = *at;
    if (seg != NULL) *at = seg->next;
    pthread_mutex_unlock(&mt_seg_lock);
    if (seg == NULL) return NULL;
    seg->next = NULL;
    mt_segment_adopt(heap, seg);
    if (seg->used_slots != 0 || heap->segment_count == 1) return seg;
    /* Nothing was left alive in it: to the cache, where it expires unless a
     * thread needs it, rather than held dirty by a heap that may never
     * allocate again (a main thread that only frees what workers left). */
    mt_heap_unlink_segment(heap, seg);
    mt__segment_release(seg);
  }
}

/* An empty segment: from the cache, else freshly mapped, else the reserve. */
static mt_segment *mt_segment_get(void) {
  pthread_mutex_lock(&mt_seg_lock);
  mt_segment *seg = mt_seg_cache;
  if (seg != NULL) {
    mt_seg_cache = seg->next;
    mt_seg_cache_count--;
  }
  pthread_mutex_unlock(&mt_seg_lock);
  if (seg == NULL) seg = mt_segment_new();
  if (seg == NULL) { /* no address space: the reserve, if it is there */
    pthread_mutex_lock(&mt_seg_lock);
    seg = mt_load(&mt_seg_reserve);
    mt_store(&mt_seg_reserve, NULL);
    pthread_mutex_unlock(&mt_seg_lock);
  }
  return seg;
}

/* An empty segment for heap. A heap with none at all is a thread that has
 * never had room for a small block: under an address-space limit that other
 * threads keep filling with large blocks (and emptying), it waits a little
 * for space to come back rather than fail at once, so its first small
 * requests are not refused for as long as the others keep the space busy.
 * The waits are budgeted per heap, so a process whose memory is refused
 * for good sees its requests fail at once after the first 50 ms. A heap
 * that has a segment already never waits. */
#define MT_FIRST_SEGMENT_WAIT_MS 50
static mt_segment *mt_segment_fresh(mt_heap *heap) {
  mt_segment *seg = mt_segment_get();
  while (seg == NULL && heap->segment_count == 0 && heap->segment_waits < MT_FIRST_SEGMENT_WAIT_MS) {
    heap->segment_waits++;
    mt__os_sleep_ms(1);
    seg = mt_segment_get();
  }
  if (seg == NULL) return NULL;
  mt_heap_link_segment(heap, seg);
  return seg;
}

void mt__segment_reserve_fill(void) {
  if (mt_load(&mt_seg_reserve) != NULL) return; /* checked again under the lock */
  mt_segment *seg = mt_segment_new();
  if (seg == NULL) return;
  pthread_mutex_lock(&mt_seg_lock);
  if (mt_load(&mt_seg_reserve) == NULL) {
    mt_store(&mt_seg_reserve, seg);
    seg = NULL;
  }
  pthread_mutex_unlock(&mt_seg_lock);
  if (seg != NULL) mt__segment_release(seg); /* another thread filled it meanwhile */
}

bool mt__segment_reserve_missing(void) { return mt_load(&mt_seg_reserve) == NULL; }

/* First slot of a run of `slots` free slots in mask, or -1. */
static int mt_find_run(uint64_t mask, unsigned slots) {
  uint64_t x = mask;
  for (unsigned k = 1; k < slots && x; k++) x &= x >> 1;
  return x ? __builtin_ctzll(x) : -1;
}

static mt_page *mt_segment_take(mt_segment *seg, unsigned first, unsigned slots) {
  uint64_t bits = mt_span_bits(first, slots);
  mt_assert(first >= 1 && (seg->free_mask & bits) == bits);
  seg->free_mask &= ~bits;
  seg->dirty_mask &= ~bits;
  uint64_t fresh = bits & ~seg->commit_mask;
  if (fresh) mt__os_commit_add((int64_t)__builtin_popcountll(fresh) * (int64_t)MT_SLOT_SIZE);
  seg->commit_mask |= bits;
  seg->used_slots += slots;
  mt_assert(seg->used_slots + (unsigned)__builtin_popcountll(seg->free_mask) == MT_SLOTS - 1);
  mt_page *page = &seg->pages[first];
  page->slot_count = (uint8_t)slots;
  page->first_slot = (uint8_t)first;
  for (unsigned i = first + 1; i < first + slots; i++) {
    seg->pages[i].first_slot = (uint8_t)first;
    mt_store(&seg->pages[i].owner_tag, MT_TAG_INTERIOR);
  }
  return page;
}

/* A run of free slots: dirty ones (their memory is resident: no page
 * faults), or with clean set, slots whose memory is not (never touched, or
 * purged), for a page that will touch little of its span. With any set,
 * any run will do when the preferred kind has none (purging a dirty run
 * first would cost a madvise and a TLB shootdown per page of samples: under
 * thread churn, 1,220 of them in one run of b_stress). */
static mt_page *mt_segment_try(mt_segment *seg, unsigned slots, bool clean, bool any) {
  if (MT_SLOTS - 1 - seg->used_slots < slots) return NULL; /* the free slots, without a popcount call */
  uint64_t dirty = seg->dirty_mask & seg->free_mask;
  int first = mt_find_run(clean ? seg->free_mask & ~dirty : dirty, slots);
  if (first < 0 && any) first = mt_find_run(seg->free_mask, slots);
  if (first < 0) return NULL;
  return mt_segment_take(seg, (unsigned)first, slots);
}

/* Extend a span over the free slots right after it. */
int mt__segment_span_extend(mt_segment *seg, mt_page *page, unsigned slots) {
  unsigned first = page->first_slot, have = page->slot_count;
  if (first + slots > MT_SLOTS) return -1;
  uint64_t more = mt_span_bits(first + have, slots - have);
  if ((seg->free_mask & more) != more) return -1;
  seg->free_mask &= ~more;
  seg->dirty_mask &= ~more;
  uint64_t fresh = more & ~seg->commit_mask;
  if (fresh) mt__os_commit_add((int64_t)__builtin_popcountll(fresh) * (int64_t)MT_SLOT_SIZE);
  seg->commit_mask |= more;
  seg->used_slots += slots - have;
  for (unsigned i = first + have; i < first + slots; i++) {
    seg->pages[i].first_slot = (uint8_t)first;
    mt_store(&seg->pages[i].owner_tag, MT_TAG_INTERIOR);
  }
  page->slot_count = (uint8_t)slots;
  return 0;
}

/* A span of `slots` slots: from the heap's own segments (the preferred kind
 * of slots in any of them first: a dirty run in the second segment before a
 * clean one in the first, which would commit more while the dirty slots
 * wait for their purge), then from one adopted segment, then from an empty
 * one. Adoption is bounded: segments
 * whose slots are all in use would otherwise be adopted one after another
 * without yielding a span (that once ended in a NULL after 64 of them,
 * under thread churn). An empty segment always has room for any span. */
#define MT_ADOPT_FOR_SPAN 1
mt_page *mt__segment_span_alloc(mt_heap *heap, unsigned slots, bool clean) {
  for (int any = 0; any < 2; any++)
    for (mt_segment *seg = heap->segments; seg != NULL; seg = seg->next) {
      mt_page *page = mt_segment_try(seg, slots, clean, any);
      if (page != NULL) return page;
    }
  for (int i = 0; i < MT_ADOPT_FOR_SPAN; i++) {
    mt_segment *seg = mt__segment_adopt(heap, MT_NCLASSES, 0);
    if (seg == NULL) break;
    mt_page *page = mt_segment_try(seg, slots, clean, true);
    if (page != NULL) return page;
  }
  mt_segment *seg = mt_segment_fresh(heap);
  if (seg == NULL) return NULL;
  mt_page *page = mt_segment_try(seg, slots, clean, true);
  mt_assert(page != NULL);
  return page;
}

void mt__segment_purge(mt_segment *seg, uint64_t now, uint64_t delay, bool force) {
  mt_assert((seg->dirty_mask & ~seg->commit_mask) == 0);
  uint64_t due = 0;
  uint64_t dirty = seg->dirty_mask & seg->free_mask;
  while (dirty) {
    unsigned i = (unsigned)__builtin_ctzll(dirty);
    dirty &= dirty - 1;
    if (force || (uint32_t)((uint32_t)now - seg->freed_at[i]) >= delay) due |= 1ULL << i;
  }
  if (!due) return;
  seg->dirty_mask &= ~due;
  seg->commit_mask &= ~due;
  mt__os_commit_add(-(int64_t)__builtin_popcountll(due) * (int64_t)MT_SLOT_SIZE);
  while (due) { /* one madvise per run of slots */
    unsigned first = (unsigned)__builtin_ctzll(due);
    unsigned n = (unsigned)__builtin_ctzll(~(due >> first));
    if (first + n > 64) n = 64 - first;
    mt__os_purge((uint8_t *)seg + ((size_t)first << MT_SLOT_SHIFT), (size_t)n << MT_SLOT_SHIFT);
    due &= ~mt_span_bits(first, n);
  }
}

void mt__segment_release(mt_segment *seg) {
  mt_assert(seg->used_slots == 0 && seg->free_mask == MT_SLOTS_ALL);
  seg->heap = NULL;
  seg->cached_at = mt__os_now_ms();
  pthread_mutex_lock(&mt_seg_lock);
  if (mt_load(&mt_seg_reserve) == NULL) {
    /* address space for a starved moment, not memory: none of it resident */
    mt__segment_purge(seg, 0, 0, true);
    seg->next = NULL;
    mt_store(&mt_seg_reserve, seg);
    pthread_mutex_unlock(&mt_seg_lock);
    return;
  }
  if (mt_seg_cache_count < (size_t)mt__opt[MT_OPT_SEGMENT_CACHE] && mt__opt[MT_OPT_PURGE_DELAY] != 0 &&
      !mt_load(&mt__os_over_limit)) {
    seg->next = mt_seg_cache;
    mt_seg_cache = seg;
    mt_seg_cache_count++;
    pthread_mutex_unlock(&mt_seg_lock);
    return;
  }
  pthread_mutex_unlock(&mt_seg_lock);
  mt_segment_unmap(seg);
}

void mt__segment_span_free(mt_heap *heap, mt_segment *seg, mt_page *page) {
  mt_assert(seg->heap == heap && mt_segment_of(page) == seg);
  uint64_t now = mt__os_now_ms();
  mt_span_release_slots(seg, page, (uint32_t)now);
  long long delay = mt__opt[MT_OPT_PURGE_DELAY];
  if (seg->used_slots == 0 && heap->segment_count > 1) {
    mt_heap_unlink_segment(heap, seg);
    mt__segment_release(seg);
    return;
  }
  if (delay == 0 || mt_load(&mt__os_over_limit)) {
    mt__segment_purge(seg, now, 0, true);
  } else if (delay > 0 && now - heap->last_maintenance_ms >= (uint64_t)delay) {
    /* a phase that only frees still gives memory back */
    mt__heap_maintain(heap, false);
  }
}

void mt__segment_cache_maintain(uint64_t now, bool force) {
  long long delay = mt__opt[MT_OPT_PURGE_DELAY];
  if (delay < 0 && !force) return;
  mt_segment *expired = NULL;
  pthread_mutex_lock(&mt_seg_lock);
  mt_segment **link = &mt_seg_cache;
  while (*link != NULL) {
    mt_segment *seg = *link;
    if (force || now - seg->cached_at >= (uint64_t)delay) {
      *link = seg->next;
      mt_seg_cache_count--;
      seg->next = expired;
      expired = seg;
    } else {
      link = &seg->next;
    }
  }
  pthread_mutex_unlock(&mt_seg_lock);
  while (expired != NULL) {
    mt_segment *next = expired->next;
    mt_segment_unmap(expired);
    expired = next;
  }
}

static void mt_page_abandon(mt_page *page, void *arg) {
  (void)arg;
  mt_store(&page->owner_tag, MT_TAG_ABANDONED);
  mt_store(&page->heap, NULL);
  mt__page_unmark_full(page);
  page->next = page->prev = NULL;
}

/* The heap's thread is exiting: give back what is empty, leave the rest for
 * adoption. Remote frees into these pages keep landing on page->xfree. */
void mt__segment_abandon_heap(mt_heap *heap) {
  uint32_t now = (uint32_t)mt__os_now_ms();
  mt_segment *seg = heap->segments;
  while (seg != NULL) {
    mt_segment *next = seg->next;
    mt_segment_reclaim(seg, now, mt_page_abandon, NULL);
    mt_heap_unlink_segment(heap, seg);
    if (seg->used_slots == 0) {
      mt__segment_release(seg);
    } else {
      /* Slots freed long enough ago go back now; the rest stay committed
       * for the thread that adopts the segment next (threads that come and
       * go would otherwise fault the same pages in again each time), and
       * are purged by its maintenance or by the sweep of abandoned ones. */
      long long delay = mt__opt[MT_OPT_PURGE_DELAY];
      if (delay >= 0) mt__segment_purge(seg, now, (uint64_t)delay, false);
      pthread_mutex_lock(&mt_seg_lock);
      seg->next = mt_seg_abandoned;
      mt_seg_abandoned = seg;
      pthread_mutex_unlock(&mt_seg_lock);
    }
    seg = next;
  }
}

/* Abandoned segments only get their remote frees back when a thread adopts
 * them. A thread doing maintenance sweeps them: takes back what other
 * threads freed, returns empty spans, and releases segments that became
 * empty, so memory of exited threads is not stranded when no new thread
 * comes to adopt it. */
void mt__segment_sweep_abandoned(bool force) {
  pthread_mutex_lock(&mt_seg_lock);
  mt_segment *list = mt_seg_abandoned;
  mt_seg_abandoned = NULL;
  pthread_mutex_unlock(&mt_seg_lock);
  if (list == NULL) return;
  uint64_t now = mt__os_now_ms();
  long long delay = mt__opt[MT_OPT_PURGE_DELAY];
  mt_segment *keep = NULL, *keep_tail = NULL;
  while (list != NULL) {
    mt_segment *seg = list;
    list = seg->next;
    mt_segment_reclaim(seg, (uint32_t)now, NULL, NULL);
    if (seg->used_slots == 0) {
      mt__segment_release(seg);
      continue;
    }
    if (force || delay >= 0) mt__segment_purge(seg, now, delay < 0 ? 0 : (uint64_t)delay, force);
    seg->next = keep;
    keep = seg;
    if (keep_tail == NULL) keep_tail = seg;
  }
  if (keep != NULL) {
    pthread_mutex_lock(&mt_seg_lock);
    keep_tail->next = mt_seg_abandoned;
    mt_seg_abandoned = keep;
    pthread_mutex_unlock(&mt_seg_lock);
  }
}
