/* test_reuse.c -- freed blocks gather into fewer pages: memory held stays near bytes in use
 *
 * usage: test_reuse MAX_KIB   (run with MEMTALLY_PROF=0 MEMTALLY_PURGE_DELAY=-1:
 *                              nothing sampled, nothing purged, the same run each time)
 * Runs espresso's workload (bench/espresso_work.h: long-lived blocks among
 * short-lived ones of many small sizes, one thread) and checks the most the
 * heap committed at once. A page that has room again after being full goes
 * to the back of its class's queue; taken from the front, pages with one
 * block back were filled again at once and the long-lived blocks spread
 * over more pages: 5.8 MiB committed at most for 3.0 MiB in use, against
 * 4.6 MiB since. */
#include "check.h"
#include "espresso_work.h"
#include "memtally.h"

int main(int argc, char **argv) {
  long max_kib = argc > 1 ? atol(argv[1]) : 0;
  uint64_t sum = espresso_work(4000000);
  mt_stats st = {.size = sizeof st};
  CHECK(mt_stats_get(&st) == 0);
  fprintf(stderr, "checksum %llu, in use at most %.2f MiB, committed at most %.2f MiB\n", (unsigned long long)sum,
          (double)st.bytes_in_use_peak / (1 << 20), (double)st.bytes_committed_peak / (1 << 20));
  CHECKF(max_kib <= 0 || st.bytes_committed_peak <= (uint64_t)max_kib << 10,
         "committed at most %.2f MiB (bound %ld KiB)", (double)st.bytes_committed_peak / (1 << 20), max_kib);
  return check_summary("test_reuse");
}
