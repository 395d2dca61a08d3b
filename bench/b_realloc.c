/* b_realloc.c -- buffers grown by realloc in small steps, as string builders do
 * usage: b_realloc [scale] */
#include "bench.h"

int main(int argc, char **argv) {
  long reps = (long)(4000 * bench_scale(argc, argv));
  uint64_t sum = 0;
  double t0 = bench_now();
  char *keep[8] = {0};
  for (long r = 0; r < reps; r++) {
    size_t cap = 0, len = 0;
    size_t limit = (r % 100 == 0) ? (8u << 20) : (64u << 10); /* now and then a big one */
    char *buf = NULL;
    while (len < limit) {
      size_t add = 40 + (size_t)(r + len) % 200;
      if (len + add > cap) {
        cap = len + add + (len >> 4); /* modest growth: many reallocs */
        buf = realloc(buf, cap);
      }
      memset(buf + len, (int)(len & 0x7f), add);
      len += add;
    }
    sum += (unsigned char)buf[len / 2] + len;
    free(keep[r % 8]);
    keep[r % 8] = buf; /* a few stay alive, as in a real program */
  }
  for (int i = 0; i < 8; i++) free(keep[i]);
  bench_report("realloc", sum, bench_now() - t0);
  return 0;
}
