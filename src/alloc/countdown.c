/* countdown.c -- the countdown hook: bookkeeping every 4 MiB and the recorder's samples
 *
 * heap->countdown is the only thing the allocation fast path checks. It is
 * set to the nearer of two distances: bytes until the next bookkeeping
 * (peak of bytes in use, purging, profile timers) and bytes until the next
 * profiler sample, drawn from an exponential distribution. A sampled small
 * block is handed back to its page and replaced by a block of its class's
 * bin (mt__sample_bin) from a page that holds only samples, so free()
 * recognises samples by their page's tag and unsampled frees never look
 * anything up. */
#include "../options/options.h"
#include "../os/os.h"
#include "../sample/sample.h"
#include "../base/track.h"
#include "alloc.h"

static void mt_countdown_arm(mt_heap *heap) {
  int64_t next = heap->keep_left;
  if (mt_load(&mt__prof_on) && heap->sample.left < next) next = heap->sample.left;
  if (next < 0) next = 0;
  heap->countdown = heap->countdown_set = next;
}

void mt__countdown_reset(mt_heap *heap) {
  if (heap->sample.rng == 0) heap->sample.rng = 0x9e3779b97f4a7c15ULL ^ ((uintptr_t)heap * 0xff51afd7ed558ccdULL);
  heap->keep_left = mt__countdown_bytes();
  heap->sample.left = mt__prof_next_interval(&heap->sample.rng);
  heap->sample.busy = 0;
  mt_countdown_arm(heap);
}

int64_t mt__countdown_bytes(void) {
  return (mt__opt[MT_OPT_PROF_PEAK] || mt__opt[MT_OPT_PROF_LIMIT]) && mt__opt_str[MT_OPT_PROF_OUT] != NULL
             ? MT_COUNTDOWN_BYTES_PEAK
             : MT_COUNTDOWN_BYTES;
}

static mt_tick_fn *_Atomic mt_tick;

void mt__alloc_set_tick(mt_tick_fn *fn) { atomic_store_explicit(&mt_tick, fn, memory_order_release); }

static void mt_bookkeeping(mt_heap *heap) {
  uint64_t in_use = mt__stats_note_peak();
  uint64_t now = mt__os_now_ms();
  long long delay = mt__opt[MT_OPT_PURGE_DELAY];
  uint64_t every = delay > 2 ? (uint64_t)delay / 2 : 1;
  if (mt_load(&mt__os_over_limit)) mt__heap_maintain(heap, true); /* over the soft limit: purge all */
  else if (now - heap->last_maintenance_ms >= every) mt__heap_maintain(heap, false);
  mt_tick_fn *tick = atomic_load_explicit(&mt_tick, memory_order_acquire);
  if (tick != NULL) {
    heap->sample.busy = 1; /* nothing the hook allocates is sampled */
    tick(in_use);
    heap->sample.busy = 0;
  }
}

/* A block of cls from a page of sampled blocks, or NULL. */
static void *mt_sampled_block(mt_heap *heap, unsigned cls, size_t size) {
  mt_page *page = heap->scurrent[cls];
  if (page->free == NULL) page = mt__page_alloc_slow(heap, cls, 1);
  if (page == NULL) return NULL;
  mt_block *b = page->free;
  if (mt_page_take_head(page, b) != 0) return NULL;
  (void)size;
  mt_track_malloc(b, size, page->block_size);
  return b;
}

/* Reached from malloc by tail calls only, this function's return address is
 * malloc's caller and its CFA that caller's stack pointer: the profiler's
 * stack cache is keyed by the two. (Otherwise the return address lies in
 * memtally and the profiler unwinds in full.) */
void *mt__countdown_hit(mt_heap *heap, mt_page *page, void *block, size_t size) {
  uintptr_t ip0 = (uintptr_t)__builtin_return_address(0);
  uintptr_t sp0 = (uintptr_t)__builtin_dwarf_cfa();
  if (heap == &mt__heap_empty) return block;
  int64_t used = heap->countdown_set - heap->countdown;
  heap->keep_left -= used;
  heap->sample.left -= used;
  if (heap->sample.left <= 0 && mt_load(&mt__prof_on) && !heap->sample.busy) {
    heap->sample.left = mt__prof_next_interval(&heap->sample.rng);
    heap->sample.busy = 1;
    size_t counted = page != NULL ? page->block_size : 0;
    if (page != NULL && page->cls < MT_NCLASSES && !page->sampled && page->block_size >= MT_SAMPLE_IN_PLACE) {
      /* stays in place: marked on its page (this heap's), whose frees now take the slow path */
      uint64_t i = mt_page_block_index(page, (uintptr_t)block - (uintptr_t)page->start);
      mt_assert(i < 32);
      atomic_fetch_or_explicit(&page->sample_bits, 1u << i, memory_order_relaxed);
      uintptr_t tag = mt_load(&page->owner_tag);
      if (!(tag & MT_TAG_SAMPLED)) mt_store(&page->owner_tag, tag | MT_TAG_SAMPLED);
    } else if (page != NULL && page->cls < MT_NCLASSES && !page->sampled) {
      /* Give the block back (its link is intact) and take one from a page
       * of samples of its bin; the allocation is counted in the bin's
       * class, which its free will count. */
      mt_block *b = block;
      mt_track_free(b, page->block_size);
      b->freed = mt__free_key;
      page->free = b;
      page->used--;
      unsigned bin = mt__sample_bin[page->cls];
      void *s = mt_sampled_block(heap, bin, size);
      if (s != NULL) {
        block = s;
        if (bin != page->cls) {
          mt_counter_add(&heap->nalloc[page->cls], (uint64_t)-1);
          mt_counter_add(&heap->nalloc[bin], 1);
          mt_counter_add(&heap->sample_bin_bytes, mt__class_size[bin] - mt__class_size[page->cls]);
        }
      } else {
        (void)mt_page_take_head(page, b); /* marked just above */
        mt_track_malloc(b, size, page->block_size);
      }
      page = s != NULL ? NULL : page;
    } else if (page == NULL) {
      /* large or huge: mark where free() will look */
      mt_segment *seg = mt_segment_of(block);
      if (mt_segmap_get(block) == MT_MAP_START && !seg->is_huge) {
        mt_page *lp = &seg->pages[((uintptr_t)block - (uintptr_t)seg) >> MT_SLOT_SHIFT];
        if (mt_load(&lp->owner_tag) == MT_TAG_INTERIOR) lp = &seg->pages[lp->first_slot];
        lp->sampled = 1;
        counted = lp->block_size;
        mt_store(&lp->owner_tag, mt_load(&lp->owner_tag) | MT_TAG_SAMPLED);
      } else {
        mt_segment *hs = mt__huge_segment_of(block);
        if (hs != NULL) hs->pages[0].sampled = 1, counted = hs->huge_size;
      }
    }
    mt__prof_record(block, size, counted, heap->tid, heap->sample.label, ip0, sp0, mt__heap_sample_cache(heap));
    heap->sample.busy = 0;
  }
  /* After the sample: a peak profile taken here includes this allocation. */
  if (heap->keep_left <= 0) {
    heap->keep_left = mt__countdown_bytes();
    if (!heap->sample.busy) mt_bookkeeping(heap);
  }
  mt_countdown_arm(heap);
  return block;
}
