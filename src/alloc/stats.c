/* stats.c -- counters summed on read, the periodic bookkeeping hook, the stats table
 *
 * Each heap counts allocations and frees per size class in flat arrays that
 * only its thread writes. Reading sums every heap in the registry. The peak
 * of bytes in use is taken at bookkeeping events (every MT_COUNTDOWN_BYTES,
 * 4 MiB, allocated by a thread) and whenever the statistics are read, so it
 * can miss a short spike of less than that interval per thread. */
#include <errno.h>
#include <string.h>

#include "../options.h"
#include "../os/os.h"
#include "alloc.h"
#include "memtally.h"

static _Atomic uint64_t mt_peak_in_use;

typedef struct mt_sums {
  uint64_t nalloc[MT_CLASS_COUNT], nfree[MT_CLASS_COUNT];
  uint64_t huge_alloc, huge_free, large_alloc, large_free;
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
  }
  if (allocs) *allocs = a;
  if (bytes) *bytes = b;
}

/* ---- printing: a stack buffer and an output callback, never the heap ---- */

typedef void mt_out_fn(const char *s, size_t n, void *arg);

static void mt_out_stderr(const char *s, size_t n, void *arg) {
  (void)arg;
  mt__os_write_err(s, n);
}

static void mt_out_file(const char *s, size_t n, void *arg) { fwrite(s, 1, n, (FILE *)arg); }

static void mt_fmt_size(char *buf, size_t cap, uint64_t v) {
  const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double d = (double)v;
  while (d >= 1024 && u < 4) d /= 1024, u++;
  if (u == 0) snprintf(buf, cap, "%llu B", (unsigned long long)v);
  else snprintf(buf, cap, "%.1f %s", d, unit[u]);
}

static void mt_stats_emit(mt_out_fn *out, void *arg) {
  mt_stats st;
  st.size = sizeof st;
  mt_stats_get(&st);
  char line[256], a[32], b[32], c[32];
  int n;
#define MT_EMIT(...) (n = snprintf(line, sizeof line, __VA_ARGS__), out(line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1), arg))
  MT_EMIT("memtally statistics\n");
  MT_EMIT("%-10s %10s %14s %14s %14s\n", "class", "block", "allocs", "frees", "in use");
  for (unsigned i = 0; i < st.nclasses; i++) {
    mt_class_stats *cs = &st.classes[i];
    if (cs->allocs == 0 && cs->frees == 0) continue;
    const char *name = i == MT_CLASS_LARGE ? "large" : i == MT_CLASS_HUGE ? "huge" : NULL;
    char cname[16];
    if (name == NULL) snprintf(cname, sizeof cname, "%u", i);
    if (cs->block_size) mt_fmt_size(a, sizeof a, cs->block_size);
    else snprintf(a, sizeof a, "varies");
    if (cs->block_size) mt_fmt_size(b, sizeof b, (cs->allocs - cs->frees) * cs->block_size);
    else snprintf(b, sizeof b, "%lld blocks", (long long)(cs->allocs - cs->frees));
    MT_EMIT("%-10s %10s %14llu %14llu %14s\n", name ? name : cname, a, (unsigned long long)cs->allocs,
            (unsigned long long)cs->frees, b);
  }
  mt_fmt_size(a, sizeof a, st.bytes_in_use);
  mt_fmt_size(b, sizeof b, st.bytes_in_use_peak);
  MT_EMIT("in use       %s (peak %s)\n", a, b);
  mt_fmt_size(a, sizeof a, st.bytes_allocated);
  MT_EMIT("allocated    %s in %llu blocks, %llu freed\n", a, (unsigned long long)st.allocs,
          (unsigned long long)st.frees);
  mt_fmt_size(a, sizeof a, st.bytes_committed);
  mt_fmt_size(b, sizeof b, st.bytes_committed_peak);
  mt_fmt_size(c, sizeof c, st.bytes_mapped);
  MT_EMIT("committed    %s (peak %s), mapped %s, %llu segments\n", a, b, c, (unsigned long long)st.segments);
  mt_fmt_size(a, sizeof a, st.rss);
  MT_EMIT("rss          %s\n", a);
  MT_EMIT("syscalls     mmap %llu, munmap %llu, madvise %llu, mremap %llu\n", (unsigned long long)st.mmap_calls,
          (unsigned long long)st.munmap_calls, (unsigned long long)st.madvise_calls,
          (unsigned long long)st.mremap_calls);
  MT_EMIT("threads      %llu heaps\n", (unsigned long long)st.threads);
#undef MT_EMIT
}

void mt_stats_print(FILE *out) {
  if (out == NULL) out = stderr;
  mt_stats_emit(mt_out_file, out);
  fflush(out);
}

void mt__stats_at_exit(void) {
  if (mt__opt[MT_OPT_STATS]) mt_stats_emit(mt_out_stderr, NULL);
}

size_t mt_stats_json(char *buf, size_t cap) {
  mt_stats st;
  st.size = sizeof st;
  mt_stats_get(&st);
  size_t n = 0;
  char none[1]; /* where a measuring call (buf NULL) points snprintf; it writes nothing there */
  if (buf == NULL) cap = 0;
#define MT_JS(...)                                                                     \
  do {                                                                                 \
    int k_ = snprintf(n < cap ? buf + n : none, n < cap ? cap - n : 0, __VA_ARGS__);     \
    if (k_ > 0) n += (size_t)k_;                                                       \
  } while (0)
  MT_JS("{\"version\":%u,\"allocs\":%llu,\"frees\":%llu,\"bytes_allocated\":%llu,\"bytes_in_use\":%llu,"
        "\"bytes_in_use_peak\":%llu,\"bytes_committed\":%llu,\"bytes_committed_peak\":%llu,\"bytes_mapped\":%llu,"
        "\"huge_allocs\":%llu,\"huge_frees\":%llu,\"mmap_calls\":%llu,\"munmap_calls\":%llu,"
        "\"madvise_calls\":%llu,\"mremap_calls\":%llu,\"segments\":%llu,\"threads\":%llu,\"rss\":%llu,"
        "\"classes\":[",
        st.version, (unsigned long long)st.allocs, (unsigned long long)st.frees,
        (unsigned long long)st.bytes_allocated, (unsigned long long)st.bytes_in_use,
        (unsigned long long)st.bytes_in_use_peak, (unsigned long long)st.bytes_committed,
        (unsigned long long)st.bytes_committed_peak, (unsigned long long)st.bytes_mapped,
        (unsigned long long)st.huge_allocs, (unsigned long long)st.huge_frees, (unsigned long long)st.mmap_calls,
        (unsigned long long)st.munmap_calls, (unsigned long long)st.madvise_calls,
        (unsigned long long)st.mremap_calls, (unsigned long long)st.segments, (unsigned long long)st.threads,
        (unsigned long long)st.rss);
  for (unsigned i = 0; i < st.nclasses; i++)
    MT_JS("%s[%llu,%llu,%llu]", i ? "," : "", (unsigned long long)st.classes[i].block_size,
          (unsigned long long)st.classes[i].allocs, (unsigned long long)st.classes[i].frees);
  MT_JS("]}\n");
#undef MT_JS
  return n;
}

/* With MEMTALLY_PROF_OUT set, the statistics go beside the profiles at exit:
 * PREFIX.PID.stats.json (memtally stats reads it). */
void mt__stats_dump_at_exit(void) {
  const char *prefix = mt__opt_str[MT_OPT_PROF_OUT];
  if (prefix == NULL) return;
  char json[8192], path[4096];
  size_t n = mt_stats_json(json, sizeof json);
  int k = snprintf(path, sizeof path, "%s.%d.stats.json", prefix, mt__os_getpid());
  if (n < sizeof json && k > 0 && (size_t)k < sizeof path) mt__os_write_file_atomic(path, json, n, (unsigned)mt__opt[MT_OPT_FILE_MODE]);
}
