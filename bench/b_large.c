/* b_large.c -- blocks of 256 KiB to 4 MiB, a few live at a time, every page touched
 * usage: b_large [scale] [min_kib max_kib]   (another size range: 1024 16384 for 1-16 MiB) */
#include "bench.h"

#define LIVE 8

int main(int argc, char **argv) {
  long ops = (long)(30000 * bench_scale(argc, argv));
  size_t lo = 256u << 10, span = 15u << 18; /* 256 KiB .. 4 MiB */
  if (argc > 3 && atol(argv[2]) > 0 && atol(argv[3]) > atol(argv[2])) {
    lo = (size_t)atol(argv[2]) << 10;
    span = ((size_t)atol(argv[3]) << 10) - lo;
  }
  unsigned char *slot[LIVE] = {0};
  size_t size[LIVE] = {0};
  uint64_t rng = 99, sum = 0;
  double t0 = bench_now();
  for (long k = 0; k < ops; k++) {
    int i = (int)(bench_rand(&rng) % LIVE);
    if (slot[i]) {
      for (size_t o = 0; o < size[i]; o += 4096) sum += slot[i][o];
      free(slot[i]);
    }
    size_t n = lo + (size_t)(bench_rand(&rng) % span);
    slot[i] = malloc(n);
    for (size_t o = 0; o < n; o += 4096) slot[i][o] = (unsigned char)(k + o);
    size[i] = n;
  }
  for (int i = 0; i < LIVE; i++) free(slot[i]);
  bench_report("large", sum, bench_now() - t0);
  return 0;
}
