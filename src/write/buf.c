/* buf.c -- byte buffers, protobuf wire encoding and a gzip container for profiles
 *
 * Buffers grow by mapping a larger region (never the public heap), so
 * writing a profile neither recurses into malloc nor shows up in it. The
 * gzip writer uses deflate's stored blocks: valid gzip that every reader
 * takes, with no compression library behind it. */
#define _GNU_SOURCE
#include "buf.h"
#include "pprof_fields.h"

#include <zlib.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "../os/os.h"

void mt__buf_free(mt_buf *b) {
  if (b->data) mt__os_unreserve(b->data, b->cap);
  memset(b, 0, sizeof *b);
}

void mt__buf_reset(mt_buf *b) { b->len = 0; }

void *mt__buf_reserve(mt_buf *b, size_t n) {
  if (b->failed) return NULL;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = mt__os_reserve(cap);
    if (p == NULL) {
      b->failed = 1;
      return NULL;
    }
    if (b->len) memcpy(p, b->data, b->len);
    if (b->data) mt__os_unreserve(b->data, b->cap);
    b->data = p;
    b->cap = cap;
  }
  return b->data + b->len;
}

void mt__buf_put(mt_buf *b, const void *p, size_t n) {
  uint8_t *d = mt__buf_reserve(b, n);
  if (d == NULL) return;
  if (n) memcpy(d, p, n);
  b->len += n;
}

void mt__pb_varint(mt_buf *b, uint64_t v) {
  uint8_t *d = b->len + 10 <= b->cap && !b->failed ? b->data + b->len : mt__buf_reserve(b, 10);
  if (d == NULL) return;
  size_t n = 0;
  for (; v > 0x7f; v >>= 7) d[n++] = (uint8_t)(v | 0x80);
  d[n++] = (uint8_t)v;
  b->len += n;
}

void mt__pb_key(mt_buf *b, unsigned field, unsigned wire) { mt__pb_varint(b, ((uint64_t)field << 3) | wire); }

void mt__pb_uint(mt_buf *b, unsigned field, uint64_t v) {
  if (v == 0) return;
  mt__pb_key(b, field, PB_WIRE_VARINT);
  mt__pb_varint(b, v);
}

void mt__pb_int(mt_buf *b, unsigned field, int64_t v) {
  if (v == 0) return;
  mt__pb_key(b, field, PB_WIRE_VARINT);
  mt__pb_varint(b, (uint64_t)v);
}

void mt__pb_bytes(mt_buf *b, unsigned field, const void *p, size_t n) {
  mt__pb_key(b, field, PB_WIRE_BYTES);
  mt__pb_varint(b, n);
  mt__buf_put(b, p, n);
}

void mt__pb_packed(mt_buf *b, unsigned field, const uint64_t *v, size_t n) {
  if (n == 0) return;
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t x = v[i];
    do {
      bytes++;
      x >>= 7;
    } while (x);
  }
  mt__pb_key(b, field, PB_WIRE_BYTES);
  mt__pb_varint(b, bytes);
  for (size_t i = 0; i < n; i++) mt__pb_varint(b, v[i]);
}

static uint32_t mt_crc_table[256];

static void mt_crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    mt_crc_table[i] = c;
  }
}

void mt__gzip_stored(mt_buf *out, const uint8_t *data, size_t len) {
  if (mt_crc_table[1] == 0) mt_crc_init();
  static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  mt__buf_put(out, header, sizeof header);
  uint32_t crc = 0xffffffffu;
  size_t off = 0;
  do {
    size_t n = len - off > 65535 ? 65535 : len - off;
    uint8_t h[5] = {(uint8_t)(off + n == len), (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)~n, (uint8_t)(~n >> 8)};
    mt__buf_put(out, h, sizeof h);
    mt__buf_put(out, data + off, n);
    for (size_t i = 0; i < n; i++) crc = mt_crc_table[(crc ^ data[off + i]) & 0xff] ^ (crc >> 8);
    off += n;
  } while (off < len);
  crc ^= 0xffffffffu;
  uint8_t t[8] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24),
                  (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
  mt__buf_put(out, t, sizeof t);
}

/* ---- zlib, its memory from mappings of our own (never the public heap) ---- */

static voidpf mt_z_alloc(voidpf opaque, uInt items, uInt size) {
  (void)opaque;
  size_t n = (size_t)items * size + 16;
  uint8_t *p = mt__os_reserve(n); /* zero-filled; a stream makes a handful of these */
  if (p == NULL) return Z_NULL;
  memcpy(p, &n, sizeof n);
  return p + 16;
}

static void mt_z_free(voidpf opaque, voidpf address) {
  (void)opaque;
  if (address == Z_NULL) return;
  uint8_t *p = (uint8_t *)address - 16;
  size_t n;
  memcpy(&n, p, sizeof n);
  mt__os_unreserve(p, n);
}

/* zlib is not linked but loaded the first time a profile is to be written
 * (mt__gzip_load): a process that never writes one does not map it (84 KiB
 * of resident memory for every program under LD_PRELOAD otherwise). */
typedef int mt_z_init_fn(z_streamp, int, int, int, int, int, const char *, int);
typedef uLong mt_z_bound_fn(z_streamp, uLong);
typedef int mt_z_deflate_fn(z_streamp, int);
typedef int mt_z_end_fn(z_streamp);
static struct {
  mt_z_init_fn *init;
  mt_z_bound_fn *bound;
  mt_z_deflate_fn *deflate;
  mt_z_end_fn *end;
} mt_z;
static _Atomic int mt_z_state; /* 0: not tried, 1: loading, 2: loaded, 3: not there */

/* A program that links zlib itself provides these; otherwise they are NULL
 * and zlib is loaded. The static archive links them (MT_NO_LOADER). */
#ifndef MT_NO_LOADER
#pragma weak deflateInit2_
#pragma weak deflateBound
#pragma weak deflate
#pragma weak deflateEnd
#endif

void mt__gzip_load(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&mt_z_state, &expected, 1)) return;
#ifdef MT_NO_LOADER
  bool linked = true;
#else
  bool linked = deflateInit2_ != NULL && deflateBound != NULL && deflate != NULL && deflateEnd != NULL;
#endif
  if (linked) {
    mt_z.init = deflateInit2_, mt_z.bound = deflateBound, mt_z.deflate = deflate, mt_z.end = deflateEnd;
  } else {
    void *lib = mt__os_library("libz.so.1");
    mt_z.init = (mt_z_init_fn *)(uintptr_t)mt__os_library_symbol(lib, "deflateInit2_");
    mt_z.bound = (mt_z_bound_fn *)(uintptr_t)mt__os_library_symbol(lib, "deflateBound");
    mt_z.deflate = (mt_z_deflate_fn *)(uintptr_t)mt__os_library_symbol(lib, "deflate");
    mt_z.end = (mt_z_end_fn *)(uintptr_t)mt__os_library_symbol(lib, "deflateEnd");
  }
  bool all = mt_z.init && mt_z.bound && mt_z.deflate && mt_z.end;
  atomic_store_explicit(&mt_z_state, all ? 2 : 3, memory_order_release);
}

int mt__gzip_deflate(mt_buf *out, const uint8_t *data, size_t len, int level) {
  if (atomic_load_explicit(&mt_z_state, memory_order_acquire) != 2) return -1;
  z_stream z;
  memset(&z, 0, sizeof z);
  z.zalloc = mt_z_alloc;
  z.zfree = mt_z_free;
  if (mt_z.init(&z, level, Z_DEFLATED, 15 + 16 /* a gzip wrapper */, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                (int)sizeof(z_stream)) != Z_OK)
    return -1;
  size_t start = out->len;
  size_t bound = mt_z.bound(&z, (uLong)len);
  uint8_t *dst = mt__buf_reserve(out, bound);
  int rc = -1;
  if (dst != NULL && len <= UINT32_MAX && bound <= UINT32_MAX) {
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    z.next_out = dst;
    z.avail_out = (uInt)bound;
    if (mt_z.deflate(&z, Z_FINISH) == Z_STREAM_END) {
      out->len = start + (size_t)z.total_out;
      rc = 0;
    }
  }
  mt_z.end(&z);
  return rc;
}

