/* b_entries.c -- allocation through one entry point in a loop, for counting what a sample costs
 * usage: b_entries [scale] [malloc|calloc|memalign|aligned|realloc]
 * Run with MEMTALLY_PROF_RATE small (4096) so most calls are sampled, under
 * bench/instructions.sh: the entry points other than malloc reach the sampler
 * through memtally's own calls, not a tail call. */
#include <string.h>

#include "bench.h"

int main(int argc, char **argv) {
  long n = (long)(20000 * bench_scale(argc, argv));
  const char *entry = argc > 2 ? argv[2] : "malloc";
  uint64_t sum = 0;
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    void *p = NULL;
    if (strcmp(entry, "calloc") == 0) p = calloc(1, 1000);
    else if (strcmp(entry, "memalign") == 0) {
      if (posix_memalign(&p, 64, 1000) != 0) p = NULL;
    } else if (strcmp(entry, "aligned") == 0) p = aligned_alloc(64, 1024);
    else if (strcmp(entry, "realloc") == 0) p = realloc(malloc(100), 1000);
    else p = malloc(1000);
    sum += (uintptr_t)p & 1;
    free(p);
  }
  bench_report(entry, sum + (uint64_t)n, bench_now() - t0);
  return 0;
}
