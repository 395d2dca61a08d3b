/* track.h -- annotations that let AddressSanitizer see memtally's blocks
 *
 * In the sanitizer build (MT_TRACK_ASAN) a freed block is poisoned past its
 * free-list link and free mark (two words) and an allocated block is unpoisoned up to the requested
 * size, so ASan reports use after free and overflow inside memtally's own
 * heap. In other builds the macros cost nothing. */
#ifndef MT_TRACK_H
#define MT_TRACK_H

#if defined(MT_TRACK_ASAN)
#include <sanitizer/asan_interface.h>
#define mt_track_malloc(p, size, bsize)                                                 \
  do {                                                                                   \
    ASAN_UNPOISON_MEMORY_REGION((p), (size));                                            \
    if ((bsize) > (size)) ASAN_POISON_MEMORY_REGION((char *)(p) + (size), (bsize) - (size)); \
  } while (0)
#define mt_track_resize(p, size) ASAN_UNPOISON_MEMORY_REGION((p), (size))
#define mt_track_free(p, bsize)                                                          \
  do {                                                                                   \
    ASAN_UNPOISON_MEMORY_REGION((p), 2 * sizeof(void *));                                \
    if ((bsize) > 2 * sizeof(void *))                                                    \
      ASAN_POISON_MEMORY_REGION((char *)(p) + 2 * sizeof(void *), (bsize) - 2 * sizeof(void *)); \
  } while (0)
#define mt_track_unpoison(p, size) ASAN_UNPOISON_MEMORY_REGION((p), (size))
#define mt_track_readable(p, size) (__asan_region_is_poisoned((void *)(p), (size)) == NULL)
#else
#define mt_track_malloc(p, size, bsize) ((void)0)
#define mt_track_resize(p, size) ((void)0)
#define mt_track_free(p, bsize) ((void)0)
#define mt_track_unpoison(p, size) ((void)0)
#define mt_track_readable(p, size) 1
#endif

#endif
