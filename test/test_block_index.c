/* test_block_index.c -- the one-compare block check against division
 *
 * free() and every free-list pop decide "is this the start of one of the
 * page's blocks?" with a multiplication and a rotation instead of a
 * division. A wrong answer either lets an interior or foreign pointer onto
 * a free list or reports a good free as misuse, so the test compares it
 * with off % size and off / size for every size class and large-block
 * size, at every offset near each block boundary, before the page and far
 * outside it. */
#include <stdint.h>
#include <stdio.h>

#include "../src/alloc/alloc.h"
#include "check.h"

static int truth(uint64_t off, uint32_t size, uint32_t reserved) { return off % size == 0 && off / size < reserved; }

static void one(uint32_t size, uint32_t reserved, unsigned *bad) {
  mt_page page = {0};
  mt_page_set_block_size(&page, size);
  page.reserved = reserved;
  uint64_t span = (uint64_t)size * reserved;
  for (uint64_t k = 0; k <= reserved + 1; k++)
    for (int64_t d = -17; d <= 17; d++) {
      uint64_t off = k * size + (uint64_t)d; /* wraps below 0: a pointer before the page */
      int got = mt_page_is_block(&page, off);
      if (got != truth(off, size, reserved) && (*bad)++ < 5)
        printf("size %u: offset %lld: %d\n", size, (long long)(int64_t)off, got);
      if (got && mt_page_block_index(&page, off) != off / size && (*bad)++ < 5)
        printf("size %u: index of %llu\n", size, (unsigned long long)off);
    }
  uint64_t far[] = {span, span + size, UINT64_MAX, UINT64_MAX - size + 1, (uint64_t)1 << 32, ((uint64_t)1 << 32) * size,
                    0x4141414141414141ULL, (uint64_t)-(int64_t)span};
  for (size_t i = 0; i < sizeof far / sizeof far[0]; i++)
    if (mt_page_is_block(&page, far[i]) != truth(far[i], size, reserved) && (*bad)++ < 5)
      printf("size %u: far offset %llx\n", size, (unsigned long long)far[i]);
}

int main(void) {
  unsigned bad = 0, sizes = 0;
  for (unsigned c = 0; c < MT_NCLASSES; c++, sizes++) {
    uint32_t size = mt__class_size[c];
    one(size, (uint32_t)((64u << 10) / size ? (64u << 10) / size : 1), &bad);
  }
  for (uint32_t slots = 1; slots <= 63; slots++, sizes++) one(slots << MT_SLOT_SHIFT, 1, &bad); /* large blocks */
  for (uint32_t size = 16; size <= 4096; size += 16, sizes++) one(size, 37, &bad); /* every multiple of 16 */
  CHECKF(bad == 0, "%u block sizes: %u disagreements with division", sizes, bad);
  fprintf(stderr, "%u block sizes: the index test agrees with division everywhere checked\n", sizes);
  /* the size classes: table, mt_class_of for every size up to 128 KiB, direct table, page policy */
  const char *why = NULL;
  int at = mt__classes_check(&why);
  CHECKF(at < 0, "size classes: %s (at %d)", why ? why : "?", at);
  return check_summary("test_block_index");
}
