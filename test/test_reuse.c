/* test_reuse.c -- freed memory is used again before more is committed: memory held stays near bytes in use
 *
 * usage: test_reuse [drift] MAX_KIB   (run with MEMTALLY_PROF=0 MEMTALLY_PURGE_DELAY=-1:
 *                                      nothing sampled, nothing purged, the same run each time)
 * Checks the most the heap committed at once, after one of two workloads:
 * - espresso's (bench/espresso_work.h: long-lived blocks among short-lived
 *   ones of many small sizes, one thread). A page that has room again after
 *   being full goes to the back of its class's queue; taken from the front,
 *   pages with one block back were filled again at once and the long-lived
 *   blocks spread over more pages: 5.8 MiB committed at most for 3.0 MiB in
 *   use, against 4.6 MiB since.
 * - drift: a ring of 2,048 blocks whose mean size climbs from 64 B to 3 KiB
 *   and falls back (alloc-test's shape, one thread), so the pages of whole
 *   classes empty while others fill. A new page takes the slots that freed
 *   pages left committed in any of the heap's segments before fresh ones:
 *   taking fresh slots in the first segment with room, it committed 12.1 MiB
 *   at most for 6.7 MiB in use, against 8.9 MiB since. */
#include "check.h"
#include "espresso_work.h"
#include "memtally.h"

static uint64_t drift_work(long ops) {
  enum { RING = 2048 };
  static unsigned char *ring[RING];
  uint64_t rng = 32, sum = 0;
  for (long k = 0; k < ops; k++) {
    int i = (int)(k % RING);
    if (ring[i]) sum += ring[i][0], free(ring[i]);
    size_t mean = 64 + (size_t)((k >> 14) % 32) * 96; /* 64 B .. 3 KiB, then again */
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    size_t n = 1 + (size_t)((rng >> 33) % (2 * mean));
    ring[i] = malloc(n);
    if (ring[i] == NULL) {
      fprintf(stderr, "test_reuse: malloc(%zu) failed\n", n);
      exit(1);
    }
    ring[i][0] = (unsigned char)k, ring[i][n - 1] = 3;
  }
  for (int i = 0; i < RING; i++) free(ring[i]), ring[i] = NULL;
  return sum;
}

int main(int argc, char **argv) {
  int drift = argc > 1 && strcmp(argv[1], "drift") == 0;
  long max_kib = argc > 1 + drift ? atol(argv[1 + drift]) : 0;
  uint64_t sum = drift ? drift_work(800000) : espresso_work(4000000);
  mt_stats st = {.size = sizeof st};
  CHECK(mt_stats_get(&st) == 0);
  fprintf(stderr, "checksum %llu, in use at most %.2f MiB, committed at most %.2f MiB\n", (unsigned long long)sum,
          (double)st.bytes_in_use_peak / (1 << 20), (double)st.bytes_committed_peak / (1 << 20));
  CHECKF(max_kib <= 0 || st.bytes_committed_peak <= (uint64_t)max_kib << 10,
         "committed at most %.2f MiB (bound %ld KiB)", (double)st.bytes_committed_peak / (1 << 20), max_kib);
  return check_summary("test_reuse");
}
