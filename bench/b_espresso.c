/* b_espresso.c -- mixed sizes and lifetimes: most blocks die young, some live long
 * (espresso-like; the workload: espresso_work.h, shared with test/test_reuse.c).
 * usage: b_espresso [scale] */
#include "espresso_work.h"

int main(int argc, char **argv) {
  long ops = (long)(8000000 * bench_scale(argc, argv));
  double t0 = bench_now();
  uint64_t sum = espresso_work(ops);
  bench_report("espresso", sum, bench_now() - t0);
  return 0;
}
