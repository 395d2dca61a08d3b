/* prometheus.c -- statistics in the Prometheus text exposition format
 *
 * Written through an output function, never the heap: mt_stats_prometheus
 * gives it a FILE, the HTTP endpoint (/metrics) a buffer of its own. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../alloc/alloc.h"
#include "../region/region.h"
#include "memtally.h"
#include "prometheus.h"

typedef struct mt_sink {
  mt_put_fn *put;
  void *arg;
} mt_sink;

static void mt_out(mt_sink *s, const char *fmt, ...) {
  char line[640];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0) s->put(line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1), s->arg);
}

static void mt_metric(mt_sink *s, const char *name, const char *type, const char *help, unsigned long long v) {
  mt_out(s, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

typedef struct mt_prom_pass {
  mt_sink *sink;
  int field; /* 0 held, 1 requested, 2 chunks */
} mt_prom_pass;

static void mt_prom_region(const char *name, uint64_t held, uint64_t requested, uint64_t chunks, void *arg) {
  mt_prom_pass *p = arg;
  static const char *names[] = {"memtally_region_bytes_held", "memtally_region_bytes_requested", "memtally_region_chunks"};
  uint64_t v = p->field == 0 ? held : p->field == 1 ? requested : chunks;
  char esc[2 * 48 + 1]; /* the name with \ " and newlines escaped */
  size_t k = 0;
  for (const char *c = name; *c && k + 2 < sizeof esc; c++) {
    if (*c == '\\' || *c == '"') esc[k++] = '\\', esc[k++] = *c;
    else if (*c == '\n') esc[k++] = '\\', esc[k++] = 'n';
    else esc[k++] = *c;
  }
  esc[k] = 0;
  mt_out(p->sink, "%s{region=\"%s\"} %llu\n", names[p->field], esc, (unsigned long long)v);
}

void mt__prometheus_emit(mt_put_fn *put, void *arg) {
  mt_sink sink = {put, arg}, *s = &sink;
  mt_stats st;
  st.size = sizeof st;
  mt_stats_get(&st);
  mt_metric(s, "memtally_bytes_in_use", "gauge", "Bytes of allocated blocks in use (block sizes).", st.bytes_in_use);
  mt_metric(s, "memtally_bytes_in_use_peak", "gauge", "High-water mark of bytes in use.", st.bytes_in_use_peak);
  mt_metric(s, "memtally_bytes_committed", "gauge", "Bytes mapped and not returned to the OS.", st.bytes_committed);
  mt_metric(s, "memtally_bytes_mapped", "gauge", "Bytes of address space mapped.", st.bytes_mapped);
  mt_metric(s, "memtally_rss_bytes", "gauge", "Resident set size of the process.", st.rss);
  mt_metric(s, "memtally_allocs_total", "counter", "Allocations served.", st.allocs);
  mt_metric(s, "memtally_frees_total", "counter", "Blocks freed.", st.frees);
  mt_metric(s, "memtally_bytes_allocated_total", "counter", "Bytes of blocks handed out.", st.bytes_allocated);
  mt_metric(s, "memtally_mmap_calls_total", "counter", "mmap system calls.", st.mmap_calls);
  mt_metric(s, "memtally_munmap_calls_total", "counter", "munmap system calls.", st.munmap_calls);
  mt_metric(s, "memtally_madvise_calls_total", "counter", "madvise system calls (purges).", st.madvise_calls);
  static const char *help[] = {"Bytes of chunks a region holds (its own, not its children's).",
                               "Bytes asked of a region since its last reset.", "Chunks a region holds."};
  static const char *names[] = {"memtally_region_bytes_held", "memtally_region_bytes_requested", "memtally_region_chunks"};
  for (int f = 0; f < 3; f++) {
    mt_out(s, "# HELP %s %s\n# TYPE %s gauge\n", names[f], help[f], names[f]);
    mt_prom_pass pass = {s, f};
    mt__regions_each(mt_prom_region, &pass);
  }
}

static void mt_put_file(const char *p, size_t n, void *arg) { fwrite(p, 1, n, (FILE *)arg); }

void mt_stats_prometheus(FILE *out) {
  if (out == NULL) return;
  mt__prometheus_emit(mt_put_file, out);
  fflush(out);
}
