/* stats_text.c -- the statistics as text (MEMTALLY_STATS, mt_stats_print) and JSON (mt_stats_json)
 *
 * Both read mt_stats_get; neither allocates from the heap: a stack buffer
 * and an output callback. At exit with MEMTALLY_PROF_OUT set, the JSON goes
 * beside the profiles as PREFIX.PROGRAM.PID.stats.json (memtally stats reads it). */
#include <stdio.h>
#include <string.h>

#include "../alloc/alloc.h"
#include "../options/options.h"
#include "../os/os.h"
#include "memtally.h"
#include "stats_text.h"

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

void mt__stats_dump_at_exit(void) {
  const char *prefix = mt__opt_str[MT_OPT_PROF_OUT];
  if (prefix == NULL) return;
  char json[8192], path[4096];
  size_t n = mt_stats_json(json, sizeof json);
  int k = snprintf(path, sizeof path, "%s.%s.%d.stats.json", prefix, mt__os_program(), mt__os_getpid());
  if (n < sizeof json && k > 0 && (size_t)k < sizeof path) mt__os_write_file_atomic(path, json, n, (unsigned)mt__opt[MT_OPT_FILE_MODE]);
}
