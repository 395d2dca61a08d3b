/* alloc.h -- the allocator's internal types: size classes, pages, segments, heaps
 *
 * Memory comes from the OS in 4 MiB segments aligned to 4 MiB, so the segment
 * of any block is found by masking its address. A segment is cut into 64
 * slots of 64 KiB; slot 0 holds the segment header. A page is a run of slots
 * (a span) owned by one thread heap and holding blocks of one size class.
 * Blocks too large for a size class (over MT_LARGE_MAX) get a segment of
 * their own (a huge segment), whose header sits at its start as well.
 *
 * Invariants:
 * - a page's free list and used count are touched only by its owner thread;
 *   other threads push freed blocks onto page->xfree (lock-free) and the
 *   owner takes them back in one exchange;
 * - page->owner_tag equals the owning heap's address only for pages of
 *   ordinary blocks not on a full queue; anything else (interior slot of a
 *   span, huge block, page with aligned interior pointers or samples, page
 *   on a full queue, abandoned page) sends free() off its fast path;
 * - per-thread counters are only written by their thread and summed on read;
 * - every free-list link is stored xor-ed with its page's key and checked,
 *   once decoded, to be a block of that page before it is followed; a free
 *   block's second word holds mt__free_key (mt_block);
 * - a page on a full queue is never a class's current page. */
#ifndef MT_ALLOC_H
#define MT_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/common.h"
#include "../sample/sample.h"

#define MT_SEG_SHIFT 22
#define MT_SEG_SIZE ((size_t)1 << MT_SEG_SHIFT) /* 4 MiB */
#define MT_SEG_MASK (MT_SEG_SIZE - 1)
#define MT_SLOT_SHIFT 16
#define MT_SLOT_SIZE ((size_t)1 << MT_SLOT_SHIFT) /* 64 KiB */
#define MT_SLOTS 64                               /* slots per segment, slot 0 = header */
#define MT_SLOTS_ALL ((uint64_t)0xfffffffffffffffeULL) /* every usable slot */

#define MT_SMALL_MAX 1024                         /* sizes served by the direct table */
#define MT_MEDIUM_MAX (128 * 1024)                /* largest size class */
#define MT_LARGE_MAX (1024 * 1024)                /* largest block carved from a segment */
#define MT_NCLASSES 48                            /* size classes 16 B .. 128 KiB */
#define MT_CLASS_LARGE 48                         /* one block per page, span-sized */
#define MT_CLASS_HUGE 49                          /* own segment (counters only) */
#define MT_CLASS_COUNT 50
#define MT_DIRECT_COUNT (MT_SMALL_MAX / 16 + 1)   /* direct[(n + 15) >> 4] */

/* owner_tag values that can never be a heap address */
#define MT_TAG_NONE ((uintptr_t)0)     /* free slot, or abandoned page */
#define MT_TAG_INTERIOR ((uintptr_t)1) /* a non-first slot of a span */
#define MT_TAG_HUGE ((uintptr_t)3)     /* the page of a huge segment */
#define MT_TAG_ALIGNED ((uintptr_t)2)  /* or-ed into a heap tag: page has interior pointers */
#define MT_TAG_ABANDONED ((uintptr_t)5) /* its thread exited; waiting to be adopted */
#define MT_TAG_SAMPLED ((uintptr_t)4)  /* or-ed into a heap tag: a page of samples, or with samples in place */
#define MT_TAG_FULL ((uintptr_t)8)     /* or-ed into a heap tag: the page is on its heap's full queue */
#define MT_TAG_FLAGS (MT_TAG_ALIGNED | MT_TAG_SAMPLED | MT_TAG_FULL)

/* A sampled block of a class at least this large stays where it is: its
 * page holds at most 32 blocks (checked by mt__classes_check), and a page of
 * samples for it would hold a span of up to 16 slots for a handful of samples
 * a thread (rptest-2t committed 60 MiB of spans at its peak against 44
 * without the profiler). Its page marks the block in sample_bits and carries
 * MT_TAG_SAMPLED while any is marked, so frees from it take the slow path,
 * where only a marked block is looked up. Smaller samples move to pages of
 * samples, of the few classes mt__sample_bin names. (Binned, the classes
 * from 2 KiB saved alloc-test 0.7 % of its instructions profiled, but their
 * pages of samples, of 9-32 blocks, emptied and were replaced often, each
 * time from fresh slots: its committed peak went 9.4 -> 12.1 MiB.) */
#define MT_SAMPLE_IN_PLACE ((uint32_t)2048)
/* The classes below MT_SAMPLE_IN_PLACE, by index; mt__sample_bin[c] is the
 * class of the page of samples a sample of class c moves to: the smallest
 * power of two from 32 B that holds it, or the largest class below
 * MT_SAMPLE_IN_PLACE, unless that breaks the alignment aligned_alloc counts
 * on (every block of a class is aligned to the largest power of two that
 * divides its size; 1536 B, 512-aligned, stays its own bin). A thread so
 * keeps 8 pages of samples, not 23, each sample taking at most twice its
 * class's size (larson-2t, blocks of 16 B to 1 KiB: 8.5 MiB committed at its
 * peak with one page per class, 6.4 MiB with the bins). */
#define MT_SAMPLE_BINNED 23
MT_HIDDEN extern const uint8_t mt__sample_bin[MT_SAMPLE_BINNED];

/* Bit 0 of page->xfree: the page is on its heap's full queue. Keeping it in
 * the same word as the list lets one CAS push a remote free and learn
 * whether the owner must be told, without touching the page afterwards
 * (once the block is published the owner may retire the page). */
#define MT_XFREE_FULL ((uintptr_t)1)
/* Bits 48-63 of page->xfree count the blocks on the list (a page holds at
 * most 4096 blocks; every block lies below 2^48, see MT_SEGMAP_BITS), so
 * the owner learns how many it takes back without walking the list. */
#define MT_XFREE_COUNT_SHIFT 48
#define MT_XFREE_ONE ((uintptr_t)1 << MT_XFREE_COUNT_SHIFT)
#define MT_XFREE_MAX_BLOCKS 4096
/* the most blocks a page holds: 16-byte blocks in one 64 KiB slot (every
 * larger class gets at most eight blocks more than fit one slot) */
_Static_assert(MT_SLOT_SIZE / 16 <= MT_XFREE_MAX_BLOCKS, "a remote list's count fits its 16 bits");

/* A free block. Its link is stored encoded (mt_link_*): a write into a freed
 * block cannot make malloc return a chosen address, and every decoded link
 * is checked to be a block of the same page before use. While free, its
 * second word holds mt__free_key, so free() finds most double frees with
 * one compare (then a walk of the page's lists confirms). */
typedef struct mt_block {
  uintptr_t link;                /* next free block ^ page->key */
  uintptr_t freed;               /* mt__free_key while free, 0 once handed out */
} mt_block;

MT_INLINE mt_block *mt_xfree_head(uintptr_t w) { return (mt_block *)(w & (MT_XFREE_ONE - 1) & ~MT_XFREE_FULL); }
MT_INLINE uint32_t mt_xfree_count(uintptr_t w) { return (uint32_t)(w >> MT_XFREE_COUNT_SHIFT); }

struct mt_heap;
struct mt_segment;

/* The fields malloc and free touch come first: with the descriptor aligned
 * to a cache line, a fast path reads one line of it (and adjacent pages'
 * cross-thread lists do not share a line). */
typedef struct mt_page {
  mt_block *free;                /* blocks ready to hand out (owner only) */
  _Atomic uintptr_t owner_tag;   /* owning heap, see MT_TAG_* */
  uintptr_t key;                 /* xor-ed into every free-list link of this page (random) */
  uint64_t inv;                  /* inverse of block_size's odd part mod 2^64: see mt_page_is_block */
  uint8_t *start;                /* first block */
  uint32_t used;                 /* blocks out: handed out minus taken back */
  uint32_t block_size;           /* bytes per block */
  uint64_t reserved;             /* blocks that fit in the span (64 bits: compared with one instruction) */
  uint8_t inv_shift;             /* trailing zero bits of block_size */
  uint8_t cls;                   /* size class, MT_CLASS_LARGE or MT_CLASS_HUGE */
  uint8_t in_full;               /* 1 while on the heap's full queue (owner only; MT_TAG_FULL mirrors it) */
  uint8_t sampled;               /* 1: blocks of this page are profiler samples */
  uint8_t slot_count;            /* slots in this span */
  uint8_t first_slot;            /* index of the span's first slot (interior slots too) */
  uint8_t aligned;               /* 1 once an aligned interior pointer was handed out */
  /* ---- the fields above share the first cache line: the fast paths use only them ---- */
  uint32_t span;                 /* bytes of blocks from start: reserved * block_size */
  uint32_t aligned_off;          /* aligned large block: where the pointer handed out is, from start */
  uint32_t capacity;             /* blocks linked into lists so far (lazy) */
  _Atomic uint32_t sample_bits;  /* bit i: block i is a live sample kept in place (MT_SAMPLE_IN_PLACE) */
  _Atomic uintptr_t xfree;       /* blocks freed by other threads, | MT_XFREE_FULL */
  struct mt_heap *_Atomic heap;  /* owner, for remote frees to flag full pages */
  struct mt_page *next, *prev;   /* queue links within the heap */
} __attribute__((aligned(64))) mt_page;
_Static_assert(offsetof(mt_page, aligned) < 64, "the fast paths' page fields share one cache line");

typedef struct mt_segment {
  uint32_t is_huge;              /* its descriptors past pages[0] stay zero: free() of a
                                    pointer in it resolves to a page no heap owns */
  size_t map_size;               /* bytes mapped from the OS */
  struct mt_heap *heap;          /* owning heap; NULL while abandoned or cached */
  uint64_t free_mask;            /* slots not in any span */
  uint64_t dirty_mask;           /* free slots whose memory is still committed */
  uint64_t commit_mask;          /* slots counted as committed */
  uint32_t used_slots;           /* slots in spans */
  uint32_t freed_at[MT_SLOTS];   /* ms (mt__os_now_ms, low 32 bits) when a slot was freed */
  uint64_t cached_at;            /* ms when put in a cache */
  size_t huge_offset;            /* huge: block start from the segment start */
  size_t huge_size;              /* huge: usable bytes */
  struct mt_segment *next, *prev;/* the heap's list, the abandoned list or a cache */
  mt_page pages[MT_SLOTS];       /* one descriptor per slot */
} mt_segment;

typedef struct mt_page_queue {
  mt_page *first, *last;
} mt_page_queue;

typedef struct mt_heap {
  mt_page *direct[MT_DIRECT_COUNT];   /* current page for sizes <= 1 KiB, by (n + 15) >> 4 */
  mt_page *current[MT_NCLASSES];      /* current page per class */
  int64_t countdown;                  /* bytes until the next sample / bookkeeping event */
  int64_t countdown_set;              /* what countdown was set to */
  int64_t keep_left;                  /* bytes until the next bookkeeping */
  mt_sample_thread sample;            /* the recorder's state for this thread (sample.h) */
  uint64_t key_rng;                   /* source of its pages' link keys (seeded from mt__free_key) */
  mt_page *scurrent[MT_NCLASSES];     /* current page of sampled blocks per class */
  _Atomic uint64_t nalloc[MT_CLASS_COUNT]; /* allocations by class (this thread) */
  _Atomic uint64_t nfree[MT_CLASS_COUNT];  /* frees by class, done by this thread */
  _Atomic uint64_t huge_bytes_alloc;  /* bytes of huge blocks allocated */
  _Atomic uint64_t huge_bytes_free;   /* bytes of huge blocks freed by this thread */
  _Atomic uint64_t large_bytes_alloc; /* bytes of large blocks allocated */
  _Atomic uint64_t large_bytes_free;
  _Atomic uint64_t sample_bin_bytes;  /* bytes samples' bins added to their classes' sizes (nalloc counts them in the bin) */
  _Atomic uint64_t remote_pending[2]; /* [sampled] bit per class: a full page got a remote free */
  mt_page_queue avail[2][MT_CLASS_COUNT]; /* [sampled][class] pages that may have free blocks */
  mt_page_queue full[2][MT_CLASS_COUNT];  /* [sampled][class] pages with no free block at last look */
  mt_segment *segments;               /* segments owned by this heap */
  size_t segment_count;
  uint32_t segment_waits;             /* ms waited for a first segment (mt_segment_fresh) */
  uint64_t last_maintenance_ms;
  uint64_t tid;                       /* kernel thread id of the owner */
  int alive;                          /* 1 while a thread owns it */
  struct mt_heap *next_all;           /* registry of every heap ever made */
  struct mt_heap *next_free;          /* free list of heaps to reuse */
} mt_heap;

/* Which of a heap's two queue sets a page lives in: pages of sampled blocks
 * have their own, except large pages (one block each, marked when sampled). */
MT_INLINE unsigned mt_page_kind(const mt_page *page) {
  return page->cls == MT_CLASS_LARGE ? 0u : page->sampled;
}

/* ---- free-list links and block checks ---- */
MT_HIDDEN extern uintptr_t mt__free_key; /* random, never 0 once the process is set up */

/* The index of the block that starts off bytes from page->start, or a
 * number >= page->reserved when no block starts there. With block_size =
 * 2^t * o (o odd) and inv = o^-1 mod 2^64, rotating off * inv right by t
 * gives off / block_size when block_size divides off, and a number above
 * (2^64 - 1) / block_size when it does not (Granlund and Montgomery's
 * divisibility test); an off before start wraps to a huge multiple. So one
 * compare checks both the bound and the block boundary: a multiplication,
 * a rotation, a compare, no division. */
MT_INLINE uint64_t mt_page_block_index(const mt_page *page, uintptr_t off) {
  uint64_t x = (uint64_t)off * page->inv;
  unsigned t = page->inv_shift;
  return (x >> t) | (x << ((64 - t) & 63));
}
MT_INLINE int mt_page_is_block(const mt_page *page, uintptr_t off) {
  return mt_page_block_index(page, off) < page->reserved;
}
/* Set the block size and the divisibility constants above. */
MT_INLINE void mt_page_set_block_size(mt_page *page, uint32_t block_size) {
  unsigned t = (unsigned)__builtin_ctz(block_size);
  uint64_t o = block_size >> t, x = o; /* o * o == 1 mod 8: 3 bits right, doubled per step */
  for (int i = 0; i < 5; i++) x *= 2 - o * x;
  page->block_size = block_size;
  page->inv = x;
  page->inv_shift = (uint8_t)t;
}
MT_INLINE void mt_link_set(const mt_page *page, mt_block *b, const mt_block *next) {
  b->link = (uintptr_t)next ^ page->key;
}
/* A link that decodes to no block of the page: NULL when it was the end of
 * the list, else reported (one line naming the block), and NULL: the rest
 * of the list is dropped, never followed. */
MT_HIDDEN mt_block *mt__link_bad(const mt_page *page, const mt_block *b, uintptr_t next) MT_COLD;
MT_INLINE mt_block *mt_link_next(const mt_page *page, const mt_block *b) {
  uintptr_t next = b->link ^ page->key;
  if (mt_unlikely(!mt_page_is_block(page, next - (uintptr_t)page->start))) return mt__link_bad(page, b, next);
  return (mt_block *)next;
}

/* Take b, the head of page's list, outside malloc's own pop (which leaves
 * by tail calls): its successor becomes the head, its free mark is cleared.
 * A head without the free mark (see mt_pop_odd_link) is reported and the
 * list dropped: -1, nothing taken. */
MT_HIDDEN void mt__unmarked_head(mt_page *page, const mt_block *b) MT_COLD;
MT_INLINE int mt_page_take_head(mt_page *page, mt_block *b) {
  if (MT_HARDEN && mt_unlikely(b->freed != mt__free_key)) {
    mt__unmarked_head(page, b);
    return -1;
  }
  page->free = mt_link_next(page, b);
  b->freed = 0;
  page->used++;
  return 0;
}

/* ---- size classes (sizeclass in alloc.c) ---- */
MT_HIDDEN extern const uint32_t mt__class_size[MT_NCLASSES];

/* -1 when the class table, mt_class_of, the direct table and the page
 * policy agree; else what disagrees (*why) and where (class or size). */
MT_HIDDEN int mt__classes_check(const char **why);
MT_HIDDEN unsigned mt__class_slots(unsigned cls); /* slots of a page of cls */
MT_INLINE unsigned mt_class_of(size_t n) {
  if (n <= 128) return (unsigned)((n - 1 + (n == 0)) >> 4);
  size_t m = n - 1;
  unsigned b = 63u - (unsigned)__builtin_clzll(m);
  return 8u + (b - 7u) * 4u + (unsigned)((m >> (b - 2u)) & 3u);
}

/* ---- shared state ---- */
MT_HIDDEN extern mt_heap mt__heap_empty;

/* The thread's stack cache for sampled stacks, allocating and freeing ones
 * alike: made at its first use (NULL for the empty heap, or without memory). */
static inline mt_stack_cache *mt__heap_sample_cache(mt_heap *heap) {
  if (heap->sample.cache == NULL && heap != &mt__heap_empty) heap->sample.cache = mt__prof_cache_new();
  return heap->sample.cache;
}
MT_HIDDEN extern mt_page mt__page_empty;
MT_HIDDEN extern __thread mt_heap *mt__tls_heap __attribute__((tls_model("initial-exec")));
/* One byte per 4 MiB of the 48-bit address space: MT_MAP_START where a
 * memtally segment starts (64 MiB of zero-filled .bss: address space only;
 * one 4 KiB page of it covers 16 GiB, and only pages where segments live
 * are touched). A byte, not a bit, so free() tests it with one load and
 * one compare. Huge blocks aligned to 4 MiB or more start past their
 * segment's first 4 MiB; they are found through a short list
 * (mt__huge_segment_of). */
#define MT_SEGMAP_BITS 48
#define MT_SEGMAP_ENTRIES ((size_t)1 << (MT_SEGMAP_BITS - MT_SEG_SHIFT))
MT_HIDDEN extern _Atomic uint8_t mt__segmap[MT_SEGMAP_ENTRIES];
#define MT_MAP_NONE 0
#define MT_MAP_START 1

MT_INLINE mt_segment *mt_segment_of(const void *p) {
  return (mt_segment *)((uintptr_t)p & ~(uintptr_t)MT_SEG_MASK);
}
MT_INLINE uint8_t mt_segmap_get(const void *p) {
  uintptr_t s = (uintptr_t)p >> MT_SEG_SHIFT; /* the 4 MiB unit's number */
  if (mt_unlikely(s >= MT_SEGMAP_ENTRIES)) return MT_MAP_NONE; /* at or above 2^48 */
  return mt_load(&mt__segmap[s]);
}
/* The descriptor of p's slot in its segment: with descriptors of a power of
 * two bytes, one shift, one mask and one add from p and the segment. */
_Static_assert((sizeof(mt_page) & (sizeof(mt_page) - 1)) == 0, "a page descriptor is a power of two bytes");
MT_INLINE mt_page *mt_slot_page(mt_segment *seg, const void *p) {
  unsigned sh = (unsigned)__builtin_ctzll(sizeof(mt_page));
  return (mt_page *)((uint8_t *)seg->pages + (((uintptr_t)p >> (MT_SLOT_SHIFT - sh)) & ((uintptr_t)(MT_SLOTS - 1) << sh)));
}

/* ---- process and heap life (heap.c) ---- */
MT_HIDDEN void mt__init(void);
MT_HIDDEN mt_heap *mt__heap_for_thread(void);   /* creates on first use */
MT_HIDDEN mt_heap *mt__heaps_first(void);
MT_HIDDEN void mt__heap_maintain(mt_heap *heap, bool force);
MT_HIDDEN void mt__heap_collect_remote(mt_heap *heap, unsigned cls);

/* ---- pages (page.c) ---- */
/* A page of cls with a free block (of sampled blocks if sampled), or NULL. */
MT_HIDDEN mt_page *mt__page_alloc_slow(mt_heap *heap, unsigned cls, int sampled);
MT_HIDDEN void *mt__large_alloc(mt_heap *heap, size_t size, size_t align);
/* Grow a large block of this heap in place over free slots that follow it;
 * 0 on success. */
MT_HIDDEN int mt__large_grow_in_place(mt_heap *heap, mt_page *page, size_t size);
MT_HIDDEN void mt__page_empty_local(mt_heap *heap, mt_page *page);
MT_HIDDEN void mt__page_collect(mt_heap *heap, mt_page *page);
/* heap's page kept samples in place (MT_SAMPLE_IN_PLACE) and has no mark
 * left (the last may have gone in another thread): drop its sampled tag, so
 * its frees go fast again. Owner only: only the owner marks blocks and
 * writes the tag, so no mark can appear meanwhile. */
MT_HIDDEN void mt__page_untag_samples(mt_heap *heap, mt_page *page);
MT_HIDDEN int mt__page_mark_full(mt_page *page); /* 1 if marked, 0 if remote frees wait */
MT_HIDDEN void mt__page_unmark_full(mt_page *page);
MT_HIDDEN void mt__page_queue_remove(mt_page_queue *q, mt_page *page);
MT_HIDDEN void mt__page_queue_push(mt_page_queue *q, mt_page *page);
MT_HIDDEN void mt__page_set_current(mt_heap *heap, unsigned cls, mt_page *page);
MT_HIDDEN void mt__page_retire(mt_heap *heap, mt_page *page); /* give span back */
#if MT_DEBUG >= 2
MT_HIDDEN void mt__heap_validate(mt_heap *heap); /* every queue and page of heap sound, or abort */
#endif

/* ---- segments (segment.c) ---- */
/* A span of slots (NULL: no memory); clean: one whose memory is not resident
 * (a page of samples touches little of its span). */
MT_HIDDEN mt_page *mt__segment_span_alloc(mt_heap *heap, unsigned slots, bool clean);
MT_HIDDEN mt_segment *mt__segment_adopt(mt_heap *heap, unsigned cls, int sampled); /* an abandoned segment (holding a page of cls with free blocks, unless cls is MT_NCLASSES), adopted; or NULL */
MT_HIDDEN int mt__segment_span_extend(mt_segment *seg, mt_page *page, unsigned slots);
MT_HIDDEN void mt__segment_span_free(mt_heap *heap, mt_segment *seg, mt_page *page);
MT_HIDDEN void mt__segment_purge(mt_segment *seg, uint64_t now, uint64_t delay, bool force);
MT_HIDDEN void mt__segment_release(mt_segment *seg); /* empty segment: reserve, cache or unmap */
/* The reserve segment (segment.c): made if missing (a heap is being set up,
 * or address space came back); whether it is missing (a relaxed look). */
MT_HIDDEN void mt__segment_reserve_fill(void);
MT_HIDDEN bool mt__segment_reserve_missing(void);
MT_HIDDEN void mt__segment_abandon_heap(mt_heap *heap);
MT_HIDDEN void mt__segment_sweep_abandoned(bool force);
MT_HIDDEN void mt__segment_cache_maintain(uint64_t now, bool force);
MT_HIDDEN void mt__segment_after_fork(void); /* the child: lock usable, lists sound (docs/fork.md) */
MT_HIDDEN uint64_t mt__segment_count(void);

/* ---- huge blocks (huge.c) ---- */
MT_HIDDEN void *mt__huge_alloc(mt_heap *heap, size_t size, size_t align, bool zero);
/* Mark a live huge block freed: 0, or -1 when it was not live (freed
 * already, by this thread or another): free() then reports a double free
 * instead of caching the segment twice. */
MT_HIDDEN int mt__huge_claim(mt_segment *seg);
MT_HIDDEN void mt__huge_free(mt_heap *heap, mt_segment *seg);
MT_HIDDEN void *mt__huge_realloc(mt_heap *heap, mt_segment *seg, size_t size);
MT_HIDDEN mt_segment *mt__huge_segment_of(const void *p); /* NULL if not in one */
MT_HIDDEN void mt__segmap_set(mt_segment *seg, int on);
MT_HIDDEN void mt__huge_cache_maintain(uint64_t now, bool force);
MT_HIDDEN void mt__huge_after_fork(void); /* the child: lock usable, lists sound (docs/fork.md) */

/* ---- misuse reports (alloc.c) ---- */
MT_HIDDEN void mt__report(const char *what, const void *p, int cls) MT_COLD;
/* The class a report names for a block of page: its size class, or large. */
MT_INLINE int mt_page_report_cls(const mt_page *page) { return page->cls < MT_NCLASSES ? page->cls : MT_CLASS_LARGE; }

/* ---- the countdown hook (countdown.c) ---- */
/* The countdown crossed zero after block was popped from page (NULL page for
 * large and huge blocks, already accounted). Returns the block to hand out:
 * a sampled allocation is moved to a page of sampled blocks. */
MT_HIDDEN void *mt__countdown_hit(mt_heap *heap, mt_page *page, void *block, size_t size);
MT_HIDDEN void mt__countdown_reset(mt_heap *heap);
/* Called from the bookkeeping every MT_COUNTDOWN_BYTES a thread allocates,
 * with the bytes in use (set by a layer above: the profile layer's timers
 * and peak profile). NULL: none. It must not write files itself. */
typedef void mt_tick_fn(uint64_t in_use);
MT_HIDDEN void mt__alloc_set_tick(mt_tick_fn *fn);
/* malloc whose sample, if it is one, carries label (a region's name). */
MT_HIDDEN void *mt__malloc_labelled(size_t size, const char *label);

/* ---- stats (stats.c) ---- */
MT_HIDDEN uint64_t mt__stats_in_use(void);
MT_HIDDEN uint64_t mt__stats_note_peak(void); /* returns bytes in use */

/* ---- process start and fork (heap.c), called from init.c ---- */
MT_HIDDEN void mt__alloc_after_fork_child(void);

#define MT_COUNTDOWN_BYTES ((int64_t)4 << 20) /* bytes a thread allocates between bookkeeping */
#define MT_COUNTDOWN_BYTES_PEAK ((int64_t)1 << 20) /* the same while peak profiles are written */
/* The bookkeeping interval in use: MT_COUNTDOWN_BYTES, or _PEAK with
 * MEMTALLY_PROF_PEAK (the peak of bytes in use is seen 4 times closer). */
MT_HIDDEN int64_t mt__countdown_bytes(void);

#endif
