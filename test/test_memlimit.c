/* test_memlimit.c -- MEMTALLY_MEMLIMIT and MEMTALLY_MODE change how memory goes back
 * usage: test_memlimit limit|lean|speed   (the ctest entries set the environment) */
#include <unistd.h>

#include "check.h"
#include "memtally.h"

#define N (256 * 1024) /* 1 KiB blocks: 256 MiB */
static void *blocks[N];

static mt_stats stats(void) {
  mt_stats s;
  s.size = sizeof s;
  mt_stats_get(&s);
  return s;
}

/* Allocate 256 MiB, free the first 90% (whole pages empty), touch the heap a
 * little so bookkeeping runs, and return the stats. */
static mt_stats allocate_then_free_most(mt_stats *at_peak) {
  for (int i = 0; i < N; i++) {
    blocks[i] = mt_malloc(1000);
    memset(blocks[i], 1, 1000);
  }
  *at_peak = stats();
  for (int i = 0; i < N * 9 / 10; i++) mt_free(blocks[i]);
  for (int i = 0; i < 10000; i++) mt_free(mt_malloc(1000)); /* crosses the 4 MiB bookkeeping interval */
  return stats();
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  mt_stats peak, s = allocate_then_free_most(&peak);
  long long limit = mt_option_value("MEMLIMIT");
  if (strcmp(mode, "limit") == 0) {
    CHECKF(limit == 64LL << 20, "MEMTALLY_MEMLIMIT not 64M: %lld", limit);
    /* live data above the limit was never refused */
    CHECK(peak.bytes_in_use >= (size_t)N * 1000 && peak.bytes_committed > (uint64_t)limit);
    CHECKF(s.bytes_committed <= (uint64_t)limit, "committed %llu over the limit %lld after freeing",
           (unsigned long long)s.bytes_committed, limit);
    CHECKF(s.rss <= (uint64_t)limit + (16u << 20), "rss %llu", (unsigned long long)s.rss);
    fprintf(stderr, "limit 64 MiB: committed %.1f MiB at peak, %.1f MiB after freeing 90%%, rss %.1f MiB\n",
            peak.bytes_committed / 1048576.0, s.bytes_committed / 1048576.0, s.rss / 1048576.0);
  } else if (strcmp(mode, "lean") == 0) {
    CHECK(mt_option_value("PURGE_DELAY") == 10 && mt_option_value("SEGMENT_CACHE") == 0);
    /* a 10 ms delay and no segment cache: memory goes back as pages empty */
    usleep(30 * 1000);
    for (int i = 0; i < 10000; i++) mt_free(mt_malloc(1000));
    s = stats();
    CHECKF(s.bytes_committed < peak.bytes_committed / 4, "lean: committed %llu of %llu",
           (unsigned long long)s.bytes_committed, (unsigned long long)peak.bytes_committed);
    CHECK(s.rss < peak.rss / 3);
  } else if (strcmp(mode, "speed") == 0) {
    CHECK(mt_option_value("PURGE_DELAY") == 1000 && mt_option_value("SEGMENT_CACHE") == 32);
    /* within the delay the memory stays committed for reuse */
    CHECKF(s.bytes_committed > peak.bytes_committed / 2, "speed: committed %llu of %llu",
           (unsigned long long)s.bytes_committed, (unsigned long long)peak.bytes_committed);
    /* and explicit collection still gives it back */
    mt_collect();
    mt_stats c = stats();
    CHECK(c.bytes_committed < peak.bytes_committed / 4);
  } else {
    fprintf(stderr, "usage: test_memlimit limit|lean|speed\n");
    return 2;
  }
  for (int i = N * 9 / 10; i < N; i++) mt_free(blocks[i]);
  return check_summary("test_memlimit");
}
