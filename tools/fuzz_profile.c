/* fuzz_profile.c -- libFuzzer target: decode any bytes as a profile, then report and flame it */
#include <stdint.h>
#include <stdio.h>
#include <zlib.h>

#include "profile.h"
#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mtt_profile p;
  char err[256];
  uint8_t buf[1 << 16];
  /* gzipped seeds are fuzzed through their decompressed form too */
  if (size > 2 && data[0] == 0x1f && data[1] == 0x8b) {
    uLongf n = sizeof buf;
    z_stream zs = {0};
    if (inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK) {
      zs.next_in = (Bytef *)data;
      zs.avail_in = (uInt)size;
      zs.next_out = buf;
      zs.avail_out = (uInt)n;
      inflate(&zs, Z_FINISH);
      n = sizeof buf - zs.avail_out;
      inflateEnd(&zs);
      data = buf;
      size = n;
    }
  }
  if (mtt_profile_decode(data, size, &p, err, sizeof err) != 0) return 0;
  FILE *out = fopen("/dev/null", "w");
  if (out) {
    mtt_options o = {0};
    o.top = 10;
    for (int by = 0; by < 4; by++) {
      o.by = (mtt_by)by;
      mtt_report(&p, &o, out, err, sizeof err);
    }
    mtt_flame(&p, &o, out, err, sizeof err);
    fclose(out);
  }
  mtt_profile_free(&p);
  return 0;
}
