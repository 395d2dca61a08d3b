/* stats.c -- counters summed on read and the peak of bytes in use (text, JSON and
 * Prometheus forms are the write layer's: write/stats_text.c, write/prometheus.c)
 *
 * Each heap counts allocations and frees per size class in flat arrays that
 * only its thread writes. Reading sums every heap in the registry. The peak
 * of bytes in use is taken at bookkeeping events (every MT_COUNTDOWN_BYTES,
 * 4 MiB, allocated by a thread) and whenever the statistics are read, so it
 * can miss a short spike of less than that interval per thread. */
#include <errno.h>
#include <string.h>

#include "../options/options.h"
#include "../os/os.h"
#include "alloc.h"
#include "memtally.h"

static _Atomic uint64_t mt_peak_in_use;

typedef struct mt_sums {
  uint64_t nalloc[MT_CLASS_COUNT], nfree[MT_CLASS_COUNT];
  uint64_t huge_alloc, huge_free, large_alloc, large_free;
  uint64_t sample_bin_bytes;
  uint64_t heaps;
} mt_sums;

static void mt_sum_heaps(mt_sums *s) {
  memset(s, 0, sizeof *s);
  for (mt_heap *h = mt__heaps_first(); h != NULL; h = h->next_all) {
    for (unsigned c = 0; c < MT_CLASS_COUNT; c++) {
      s->nalloc[c] += mt_load(&h->nalloc[c]);
      s->nfree[c] += mt_load(&h->nfree[c]);
    }
    s->huge_alloc += mt_load(&h->huge_bytes_alloc);
    s->huge_free += mt_load(&h->huge_bytes_free);
    s->large_alloc += mt_load(&h->large_bytes_alloc);
    s->large_free += mt_load(&h->large_bytes_free);
    s->sample_bin_bytes += mt_load(&h->sample_bin_bytes);
    s->heaps++;
  }
}

static uint64_t mt_sums_in_use(const mt_sums *s) {
  uint64_t b = 0;
  for (unsigned c = 0; c < MT_NCLASSES; c++) b += (s->nalloc[c] - s->nfree[c]) * mt__class_size[c];
  b += s->large_alloc - s->large_free;
  b += s->huge_alloc - s->huge_free;
  return b;
}

uint64_t mt__stats_note_peak(void) {
  uint64_t now = mt__stats_in_use();
  uint64_t peak = mt_load(&mt_peak_in_use);
  while (now > peak && !atomic_compare_exchange_weak(&mt_peak_in_use, &peak, now)) {
  }
  return now;
}

uint64_t mt__stats_in_use(void) {
  mt_sums s;
  mt_sum_heaps(&s);
  return mt_sums_in_use(&s);
}

int mt_stats_get(mt_stats *st) {
  if (st == NULL) {
    errno = EINVAL;
    return -1;
  }
  mt__init();
  mt_stats out;
  memset(&out, 0, sizeof out);
  out.size = sizeof out;
  out.version = MT_STATS_VERSION;
  mt_sums s;
  mt_sum_heaps(&s);
  for (unsigned c = 0; c < MT_CLASS_COUNT; c++) {
    out.allocs += s.nalloc[c];
    out.frees += s.nfree[c];
    if (c < MT_NCLASSES) out.bytes_allocated += s.nalloc[c] * mt__class_size[c];
  }
  out.bytes_allocated += s.large_alloc + s.huge_alloc;
  out.bytes_allocated -= s.sample_bin_bytes; /* what was asked for by class, not the samples' bins */
  out.bytes_in_use = mt_sums_in_use(&s);
  uint64_t peak = mt_load(&mt_peak_in_use);
  while (out.bytes_in_use > peak && !atomic_compare_exchange_weak(&mt_peak_in_use, &peak, out.bytes_in_use)) {
  }
  out.bytes_in_use_peak = mt_load(&mt_peak_in_use);
  out.bytes_committed = mt_load(&mt__os.committed);
  out.bytes_committed_peak = mt_load(&mt__os.committed_peak);
  out.bytes_mapped = mt_load(&mt__os.mapped);
  out.huge_allocs = s.nalloc[MT_CLASS_HUGE];
  out.huge_frees = s.nfree[MT_CLASS_HUGE];
  out.mmap_calls = mt_load(&mt__os.mmap_calls);
  out.munmap_calls = mt_load(&mt__os.munmap_calls);
  out.madvise_calls = mt_load(&mt__os.madvise_calls);
  out.mremap_calls = mt_load(&mt__os.mremap_calls);
  out.segments = mt__segment_count();
  out.threads = s.heaps;
  out.rss = mt__os_rss();
  out.nclasses = MT_CLASS_COUNT;
  for (unsigned c = 0; c < MT_CLASS_COUNT; c++) {
    out.classes[c].block_size = c < MT_NCLASSES ? mt__class_size[c] : 0;
    out.classes[c].allocs = s.nalloc[c];
    out.classes[c].frees = s.nfree[c];
  }
  size_t n = st->size != 0 && st->size < sizeof out ? st->size : sizeof out;
  memcpy(st, &out, n);
  st->size = (uint32_t)n;
  return 0;
}

void mt_thread_counters(uint64_t *allocs, uint64_t *bytes) {
  mt_heap *h = mt__tls_heap;
  uint64_t a = 0, b = 0;
  if (h != &mt__heap_empty) {
    for (unsigned c = 0; c < MT_CLASS_COUNT; c++) {
      uint64_t n = mt_load(&h->nalloc[c]);
      a += n;
      if (c < MT_NCLASSES) b += n * mt__class_size[c];
    }
    b += mt_load(&h->large_bytes_alloc) + mt_load(&h->huge_bytes_alloc);
    b -= mt_load(&h->sample_bin_bytes);
  }
  if (allocs) *allocs = a;
  if (bytes) *bytes = b;
}
