/* bench.c -- the benchmark harness: ns/op, B/op and allocs/op, like go test -benchmem */
#include <stdio.h>

#include "memtally.h"
#include "os/os.h"

static double mt_now(void) { return (double)mt__os_now_ns() * 1e-9; }

mt_bench_result mt_bench(const char *name, void (*fn)(void *), void *arg, unsigned budget_ms, FILE *out) {
  mt_bench_result r = {0, 0, 0, 0};
  if (fn == NULL) return r;
  double budget = (budget_ms ? budget_ms : 1000) / 1000.0;
  uint64_t n = 1;
  for (;;) {
    uint64_t a0, b0, a1, b1;
    mt_thread_counters(&a0, &b0);
    double t0 = mt_now();
    for (uint64_t i = 0; i < n; i++) fn(arg);
    double t = mt_now() - t0;
    mt_thread_counters(&a1, &b1);
    r.n = n;
    r.ns_per_op = t * 1e9 / (double)n;
    r.allocs_per_op = (double)(a1 - a0) / (double)n;
    r.bytes_per_op = (double)(b1 - b0) / (double)n;
    if (t >= budget || n >= (1ULL << 40)) break;
    /* aim past the budget with the rate seen so far, growing at most 100x */
    double next = t > 0 ? (double)n * budget * 1.2 / t : (double)n * 100;
    if (next > (double)n * 100) next = (double)n * 100;
    n = next > (double)n + 1 ? (uint64_t)next : n + 1;
  }
  if (out != NULL)
    fprintf(out, "%-40s %10llu %14.1f ns/op %12.0f B/op %10.1f allocs/op\n", name ? name : "", (unsigned long long)r.n,
            r.ns_per_op, r.bytes_per_op, r.allocs_per_op);
  return r;
}
