/* soak.c -- a long mixed multithreaded workload on memtally: throughput and RSS over time
 *
 * Threads keep fixed-size working sets (so the live size is stationary),
 * replace random blocks with sizes from a realistic distribution and pass
 * one block in eight to a neighbour. Every second the main thread records
 * operations done and the RSS from /proc. At the end it prints the RSS drift
 * (mean of the last tenth against the first stable tenth, the tenth after a
 * tenth of warm-up), the RSS trend over the stable part, the coefficient of
 * variation of throughput and the syscalls per million operations, and
 * writes a CSV and an SVG plot.
 * usage: soak [--seconds N] [--threads T] [--csv FILE] [--svg FILE] */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "bench.h"
#include "memtally.h"

#define SET 16384
#define SHARE 4096
static int nthreads = 2;
static _Atomic int stop;
static _Atomic uint64_t ops_done[64];
static _Atomic(void *) share[64][SHARE];

static void *worker(void *arg) {
  long id = (long)arg;
  uint64_t rng = 4242 + (uint64_t)id;
  unsigned char **set = calloc(SET, sizeof *set);
  uint64_t k = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int batch = 0; batch < 1024; batch++, k++) {
      int i = (int)(bench_rand(&rng) % SET);
      if (set[i]) {
        if ((k & 7) == 0) {
          void *old = atomic_exchange(&share[(id + 1) % nthreads][k % SHARE], set[i]);
          free(old);
        } else {
          free(set[i]);
        }
      }
      size_t n = bench_pick_size(&rng, 65536 + 1999999);
      set[i] = malloc(n);
      set[i][0] = (unsigned char)k;
      set[i][n - 1] = 1;
    }
    atomic_store_explicit(&ops_done[id], k, memory_order_relaxed);
  }
  for (int i = 0; i < SET; i++) free(set[i]);
  free(set);
  return NULL;
}

static double mean(const double *x, int a, int b) {
  double s = 0;
  for (int i = a; i < b; i++) s += x[i];
  return b > a ? s / (b - a) : 0;
}

static void write_svg(const char *path, const double *rss, const double *tput, int n) {
  FILE *f = fopen(path, "w");
  if (!f) return;
  const double W = 800, H = 360, L = 60, R = 60, T = 30, B = 40;
  double rmax = 1, tmax = 1;
  for (int i = 0; i < n; i++) {
    if (rss[i] > rmax) rmax = rss[i];
    if (tput[i] > tmax) tmax = tput[i];
  }
  rmax *= 1.15;
  tmax *= 1.15;
  fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' font-family='sans-serif' font-size='12'>\n", W, H);
  fprintf(f, "<rect width='100%%' height='100%%' fill='white'/>\n");
  fprintf(f, "<text x='%.0f' y='18' text-anchor='middle' font-size='14'>memtally soak: RSS and throughput per second</text>\n", W / 2);
  fprintf(f, "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n", L, H - B, W - R, H - B);
  fprintf(f, "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n", L, T, L, H - B);
  fprintf(f, "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n", W - R, T, W - R, H - B);
  for (int g = 0; g <= 4; g++) {
    double y = H - B - (H - B - T) * g / 4.0;
    fprintf(f, "<text x='%.0f' y='%.0f' text-anchor='end' fill='#c0392b'>%.0f MiB</text>\n", L - 4, y + 4, rmax * g / 4);
    fprintf(f, "<text x='%.0f' y='%.0f' fill='#2471a3'>%.1f M/s</text>\n", W - R + 4, y + 4, tmax * g / 4);
  }
  fprintf(f, "<text x='%.0f' y='%.0f' text-anchor='middle'>seconds (0 to %d)</text>\n", W / 2, H - 8, n);
  const double *series[2] = {rss, tput};
  const double top[2] = {rmax, tmax};
  const char *color[2] = {"#c0392b", "#2471a3"};
  for (int s = 0; s < 2; s++) {
    fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", color[s]);
    for (int i = 0; i < n; i++)
      fprintf(f, "%.1f,%.1f ", L + (W - L - R) * (n > 1 ? (double)i / (n - 1) : 0), H - B - (H - B - T) * series[s][i] / top[s]);
    fprintf(f, "'/>\n");
  }
  fprintf(f, "<text x='%.0f' y='%.0f' fill='#c0392b'>RSS</text><text x='%.0f' y='%.0f' fill='#2471a3'>throughput</text>\n",
          L + 10, T + 14, L + 60, T + 14);
  fprintf(f, "</svg>\n");
  fclose(f);
}

int main(int argc, char **argv) {
  int seconds = 60;
  const char *csv = NULL, *svg = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atoi(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) nthreads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) csv = argv[++i];
    else if (strcmp(argv[i], "--svg") == 0 && i + 1 < argc) svg = argv[++i];
    else {
      fprintf(stderr, "usage: soak [--seconds N] [--threads T] [--csv FILE] [--svg FILE]\n");
      return 2;
    }
  }
  if (seconds < 10 || nthreads < 1 || nthreads > 64) {
    fprintf(stderr, "soak: needs at least 10 seconds and 1-64 threads\n");
    return 2;
  }
  double *rss = calloc((size_t)seconds, sizeof *rss), *tput = calloc((size_t)seconds, sizeof *tput);
  mt_stats s0, s1;
  s0.size = s1.size = sizeof s0;
  mt_stats_get(&s0);
  pthread_t th[64];
  for (long t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, worker, (void *)t);
  FILE *out = csv ? fopen(csv, "w") : NULL;
  if (out) fprintf(out, "second,ops_per_second,rss_mib\n");
  uint64_t last = 0;
  double tlast = bench_now();
  for (int e = 0; e < seconds; e++) {
    sleep(1);
    uint64_t total = 0;
    for (int t = 0; t < nthreads; t++) total += atomic_load_explicit(&ops_done[t], memory_order_relaxed);
    double now = bench_now();
    mt_stats st;
    st.size = sizeof st;
    mt_stats_get(&st);
    rss[e] = st.rss / 1048576.0;
    tput[e] = (double)(total - last) / (now - tlast) / 1e6;
    last = total;
    tlast = now;
    if (out) fprintf(out, "%d,%.0f,%.2f\n", e + 1, tput[e] * 1e6, rss[e]);
    if (e % 10 == 9) printf("t=%4ds  %.2f Mops/s  rss %.1f MiB\n", e + 1, tput[e], rss[e]);
    fflush(stdout);
  }
  atomic_store(&stop, 1);
  for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
  mt_stats_get(&s1);
  if (out) fclose(out);
  int tenth = seconds / 10;
  double first = mean(rss, tenth, 2 * tenth), lastt = mean(rss, seconds - tenth, seconds);
  double drift = (lastt - first) / first * 100.0;
  /* trend: least-squares slope of RSS over the stable part, % of its mean per minute */
  int a = tenth, n = seconds - tenth;
  double mx = 0, my = 0, sxy = 0, sxx = 0;
  for (int i = a; i < seconds; i++) mx += i, my += rss[i];
  mx /= n, my /= n;
  for (int i = a; i < seconds; i++) sxy += (i - mx) * (rss[i] - my), sxx += (i - mx) * (i - mx);
  double slope = sxx > 0 ? sxy / sxx * 60.0 / my * 100.0 : 0;
  double tm = mean(tput, a, seconds), var = 0;
  for (int i = a; i < seconds; i++) var += (tput[i] - tm) * (tput[i] - tm);
  double cv = sqrt(var / n) / tm * 100.0;
  double ops = 0;
  for (int e = 0; e < seconds; e++) ops += tput[e] * 1e6;
  uint64_t sys = (s1.mmap_calls - s0.mmap_calls) + (s1.munmap_calls - s0.munmap_calls) +
                 (s1.madvise_calls - s0.madvise_calls) + (s1.mremap_calls - s0.mremap_calls);
  printf("soak: %d s, %d threads, %.2f Mops/s mean\n", seconds, nthreads, tm);
  printf("rss drift: %+.2f %% (first stable tenth %.1f MiB, last tenth %.1f MiB); trend %+.3f %%/min\n", drift, first,
         lastt, slope);
  printf("throughput cv: %.2f %%\n", cv);
  printf("syscalls per million ops: %.2f (mmap %llu, munmap %llu, madvise %llu, mremap %llu)\n", (double)sys / ops * 1e6,
         (unsigned long long)(s1.mmap_calls - s0.mmap_calls), (unsigned long long)(s1.munmap_calls - s0.munmap_calls),
         (unsigned long long)(s1.madvise_calls - s0.madvise_calls), (unsigned long long)(s1.mremap_calls - s0.mremap_calls));
  if (svg) write_svg(svg, rss, tput, seconds);
  return 0;
}
