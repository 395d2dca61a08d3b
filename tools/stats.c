/* stats.c -- memtally stats: print a statistics dump (PREFIX.PID.stats.json) the library wrote */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

static const char *const fields[] = {"allocs", "frees", "bytes_allocated", "bytes_in_use", "bytes_in_use_peak",
                                     "bytes_committed", "bytes_committed_peak", "bytes_mapped", "huge_allocs",
                                     "huge_frees", "mmap_calls", "munmap_calls", "madvise_calls", "mremap_calls",
                                     "segments", "threads", "rss"};
enum { NFIELDS = sizeof fields / sizeof fields[0] };

static int number_after(const char *text, const char *key, unsigned long long *out) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(text, pat);
  if (p == NULL) return -1;
  p += strlen(pat);
  if (!isdigit((unsigned char)*p)) return -1;
  char *end;
  errno = 0;
  *out = strtoull(p, &end, 10);
  return errno ? -1 : 0;
}

void mtt_human_size(char *buf, size_t cap, double v) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (v >= 1024 && i < 4) v /= 1024, i++;
  if (i == 0) snprintf(buf, cap, "%.0f B", v);
  else snprintf(buf, cap, "%.1f %s", v, u[i]);
}

int mtt_stats_field(const char *path, const char *name, unsigned long long *out) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  char text[65536];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = 0;
  if (strncmp(text, "{\"version\":", 11) != 0) return -1;
  return number_after(text, name, out);
}

int mtt_stats_print(const char *path, FILE *out, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "cannot open: %s", strerror(errno));
    return 2;
  }
  char text[65536];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = 0;
  unsigned long long v[NFIELDS];
  if (strncmp(text, "{\"version\":", 11) != 0) {
    snprintf(err, errlen, "not a memtally statistics dump");
    return 2;
  }
  for (int i = 0; i < NFIELDS; i++)
    if (number_after(text, fields[i], &v[i]) != 0) {
      snprintf(err, errlen, "not a memtally statistics dump (no %s)", fields[i]);
      return 2;
    }
  char a[32], b[32], c[32];
  fprintf(out, "memtally statistics (%s)\n", path);
  fprintf(out, "%-10s %10s %14s %14s %14s\n", "class", "block", "allocs", "frees", "in use");
  const char *cl = strstr(text, "\"classes\":[");
  if (cl) {
    cl += 11;
    for (int idx = 0; *cl == '['; idx++) {
      unsigned long long bs, al, fr;
      if (sscanf(cl, "[%llu,%llu,%llu]", &bs, &al, &fr) != 3) break;
      if (al || fr) {
        char name[16];
        snprintf(name, sizeof name, "%d", idx);
        if (bs) mtt_human_size(a, sizeof a, (double)bs), mtt_human_size(b, sizeof b, (double)(al - fr) * (double)bs);
        else snprintf(a, sizeof a, "varies"), snprintf(b, sizeof b, "%lld blocks", (long long)(al - fr));
        fprintf(out, "%-10s %10s %14llu %14llu %14s\n", bs ? name : (idx == 48 ? "large" : "huge"), a, al, fr, b);
      }
      cl = strchr(cl, ']');
      if (!cl) break;
      cl++;
      if (*cl == ',') cl++;
    }
  }
  mtt_human_size(a, sizeof a, (double)v[3]), mtt_human_size(b, sizeof b, (double)v[4]);
  fprintf(out, "in use       %s (peak %s)\n", a, b);
  mtt_human_size(a, sizeof a, (double)v[2]);
  fprintf(out, "allocated    %s in %llu blocks, %llu freed\n", a, v[0], v[1]);
  mtt_human_size(a, sizeof a, (double)v[5]), mtt_human_size(b, sizeof b, (double)v[6]), mtt_human_size(c, sizeof c, (double)v[7]);
  fprintf(out, "committed    %s (peak %s), mapped %s, %llu segments\n", a, b, c, v[14]);
  mtt_human_size(a, sizeof a, (double)v[16]);
  fprintf(out, "rss          %s\n", a);
  fprintf(out, "syscalls     mmap %llu, munmap %llu, madvise %llu, mremap %llu\n", v[10], v[11], v[12], v[13]);
  return 0;
}
