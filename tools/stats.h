/* stats.h -- printing the statistics dump the library writes beside its profiles */
#ifndef MTT_STATS_H
#define MTT_STATS_H

#include <stddef.h>
#include <stdio.h>

/* 0, or 2 with a one-line reason in err. */
int mtt_stats_print(const char *path, FILE *out, char *err, size_t errlen);
/* One number of a statistics dump (bytes_allocated, ...): 0 and *out, or -1. */
int mtt_stats_field(const char *path, const char *name, unsigned long long *out);

/* v as B, KiB, MiB, GiB or TiB. */
void mtt_human_size(char *buf, size_t cap, double v);

#endif
