/* buf.h -- growable byte buffers in memory memtally maps itself, and protobuf/gzip encoding */
#ifndef MT_BUF_H
#define MT_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "../base/common.h"

typedef struct mt_buf {
  uint8_t *data;
  size_t len, cap;
  int failed; /* an allocation failed: the content is incomplete */
} mt_buf;

MT_HIDDEN void mt__buf_free(mt_buf *b);
MT_HIDDEN void *mt__buf_reserve(mt_buf *b, size_t n); /* room for n more bytes, or NULL */
MT_HIDDEN void mt__buf_put(mt_buf *b, const void *p, size_t n);
MT_HIDDEN void mt__buf_reset(mt_buf *b);

/* protobuf wire format */
MT_HIDDEN void mt__pb_varint(mt_buf *b, uint64_t v);
MT_HIDDEN void mt__pb_key(mt_buf *b, unsigned field, unsigned wire);
MT_HIDDEN void mt__pb_uint(mt_buf *b, unsigned field, uint64_t v);  /* skipped when 0 */
MT_HIDDEN void mt__pb_int(mt_buf *b, unsigned field, int64_t v);    /* skipped when 0 */
MT_HIDDEN void mt__pb_bytes(mt_buf *b, unsigned field, const void *p, size_t n);
MT_HIDDEN void mt__pb_packed(mt_buf *b, unsigned field, const uint64_t *v, size_t n);

/* Wrap data in a gzip container (deflate stored blocks) appended to out. */
MT_HIDDEN void mt__gzip_stored(mt_buf *out, const uint8_t *data, size_t len);
/* Load zlib for mt__gzip_deflate, once. It calls the loader: only where the
 * program could call dlopen itself (the constructor, the helper thread, a
 * public entry point), never inside the allocator or under a lock of ours. */
MT_HIDDEN void mt__gzip_load(void);
/* Compress data with zlib at level (1: fast, as Go's runtime/pprof writes
 * its profiles) into a gzip member appended to out; zlib's memory is mapped
 * for the purpose. 0, or -1 (zlib not loaded, or no memory; out unchanged
 * in length: fall back to stored). */
MT_HIDDEN int mt__gzip_deflate(mt_buf *out, const uint8_t *data, size_t len, int level);

#endif
