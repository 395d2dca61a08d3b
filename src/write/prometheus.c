/* prometheus.c -- statistics in the Prometheus text exposition format */
#include <stdio.h>
#include <string.h>

#include "../alloc/alloc.h"
#include "../region/region.h"
#include "memtally.h"

static void mt_metric(FILE *out, const char *name, const char *type, const char *help, unsigned long long v) {
  fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

static void mt_label_value(FILE *out, const char *s) { /* escapes \ " and newlines */
  for (; *s; s++) {
    if (*s == '\\' || *s == '"') fputc('\\', out), fputc(*s, out);
    else if (*s == '\n') fputs("\\n", out);
    else fputc(*s, out);
  }
}

typedef struct mt_prom_pass {
  FILE *out;
  int field; /* 0 held, 1 requested, 2 chunks */
} mt_prom_pass;

static void mt_prom_region(const char *name, uint64_t held, uint64_t requested, uint64_t chunks, void *arg) {
  mt_prom_pass *p = arg;
  static const char *names[] = {"memtally_region_bytes_held", "memtally_region_bytes_requested", "memtally_region_chunks"};
  uint64_t v = p->field == 0 ? held : p->field == 1 ? requested : chunks;
  fprintf(p->out, "%s{region=\"", names[p->field]);
  mt_label_value(p->out, name);
  fprintf(p->out, "\"} %llu\n", (unsigned long long)v);
}

void mt_stats_prometheus(FILE *out) {
  if (out == NULL) return;
  mt_stats st;
  st.size = sizeof st;
  mt_stats_get(&st);
  mt_metric(out, "memtally_bytes_in_use", "gauge", "Bytes of allocated blocks in use (block sizes).", st.bytes_in_use);
  mt_metric(out, "memtally_bytes_in_use_peak", "gauge", "High-water mark of bytes in use.", st.bytes_in_use_peak);
  mt_metric(out, "memtally_bytes_committed", "gauge", "Bytes mapped and not returned to the OS.", st.bytes_committed);
  mt_metric(out, "memtally_bytes_mapped", "gauge", "Bytes of address space mapped.", st.bytes_mapped);
  mt_metric(out, "memtally_rss_bytes", "gauge", "Resident set size of the process.", st.rss);
  mt_metric(out, "memtally_allocs_total", "counter", "Allocations served.", st.allocs);
  mt_metric(out, "memtally_frees_total", "counter", "Blocks freed.", st.frees);
  mt_metric(out, "memtally_bytes_allocated_total", "counter", "Bytes of blocks handed out.", st.bytes_allocated);
  mt_metric(out, "memtally_mmap_calls_total", "counter", "mmap system calls.", st.mmap_calls);
  mt_metric(out, "memtally_munmap_calls_total", "counter", "munmap system calls.", st.munmap_calls);
  mt_metric(out, "memtally_madvise_calls_total", "counter", "madvise system calls (purges).", st.madvise_calls);
  static const char *help[] = {"Bytes of chunks a region holds (its own, not its children's).",
                               "Bytes asked of a region since its last reset.", "Chunks a region holds."};
  static const char *names[] = {"memtally_region_bytes_held", "memtally_region_bytes_requested", "memtally_region_chunks"};
  for (int f = 0; f < 3; f++) {
    fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", names[f], help[f], names[f]);
    mt_prom_pass pass = {out, f};
    mt__regions_each(mt_prom_region, &pass);
  }
  fflush(out);
}
