/* fuzz_profile.c -- libFuzzer target: decode any bytes as a profile, then report and flame it */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "profile.h"
#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Gzipped inputs are fuzzed through their decompressed form too, at full
 * size (up to 64 MiB): a few KB of gzip reach the hostile shapes (a million
 * frames in one sample, millions of samples) that a raw input under
 * libFuzzer's length cap cannot. */
#define FUZZ_MAX_INFLATED ((size_t)64 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mtt_profile p;
  char err[256];
  uint8_t *inflated = NULL;
  if (size > 2 && data[0] == 0x1f && data[1] == 0x8b) {
    z_stream zs = {0};
    size_t cap = 1 << 16, n = 0;
    inflated = malloc(cap);
    if (inflated != NULL && inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK) {
      zs.next_in = (Bytef *)data;
      zs.avail_in = (uInt)size;
      int rc = Z_OK;
      while (rc == Z_OK) {
        if (n == cap) {
          if (cap >= FUZZ_MAX_INFLATED) break;
          uint8_t *grown = realloc(inflated, cap * 2);
          if (grown == NULL) break;
          inflated = grown, cap *= 2;
        }
        zs.next_out = inflated + n;
        zs.avail_out = (uInt)(cap - n);
        rc = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
        if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;
        if (rc == Z_BUF_ERROR) rc = Z_OK; /* more room needed */
      }
      inflateEnd(&zs);
      data = inflated;
      size = n;
    }
  }
  if (mtt_profile_decode(data, size, &p, err, sizeof err) != 0) {
    free(inflated);
    return 0;
  }
  FILE *out = fopen("/dev/null", "w");
  if (out) {
    mtt_options o = {0};
    o.top = 10;
    for (int by = 0; by <= MTT_BY_SIZE; by++) {
      o.by = (mtt_by)by;
      mtt_report(&p, &o, out, err, sizeof err);
    }
    mtt_flame(&p, &o, out, err, sizeof err);
    o.by = MTT_BY_FUNCTION;
    mtt_report_lifetimes(&p, &o, out, err, sizeof err); /* also refuses a profile without lifetimes */
    fclose(out);
  }
  mtt_profile_free(&p);
  free(inflated);
  return 0;
}
