/* memtally.h -- public API: allocation, statistics and options of memtally */
#ifndef MEMTALLY_H
#define MEMTALLY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MT_VERSION_MAJOR 0
#define MT_VERSION_MINOR 1

#if defined(__GNUC__)
#define MT_API __attribute__((visibility("default")))
#define MT_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define MT_API
#define MT_MALLOC_ATTR
#endif

/* ---- allocation ---------------------------------------------------------
 * The mt_ functions behave like their C/POSIX namesakes. When memtally is
 * preloaded or linked with its override layer, malloc & co. are the same
 * functions. Failures return NULL with errno = ENOMEM (sizes that overflow,
 * out of memory) or EINVAL (invalid alignment, for mt_aligned_alloc and
 * mt_memalign; mt_posix_memalign returns the code instead). */
MT_API MT_MALLOC_ATTR void *mt_malloc(size_t size);
MT_API MT_MALLOC_ATTR void *mt_calloc(size_t count, size_t size);
MT_API void *mt_realloc(void *p, size_t size);
MT_API void *mt_reallocarray(void *p, size_t count, size_t size);
MT_API void mt_free(void *p);              /* NULL is a no-op; errno is preserved */
MT_API void mt_free_sized(void *p, size_t size); /* size as given to malloc; a hint */
MT_API MT_MALLOC_ATTR void *mt_memalign(size_t alignment, size_t size);
MT_API MT_MALLOC_ATTR void *mt_aligned_alloc(size_t alignment, size_t size);
MT_API int mt_posix_memalign(void **out, size_t alignment, size_t size);
MT_API MT_MALLOC_ATTR void *mt_valloc(size_t size);
MT_API MT_MALLOC_ATTR void *mt_pvalloc(size_t size);
MT_API size_t mt_usable_size(const void *p); /* >= requested size; 0 for NULL */

/* Nonzero when p lies in memory memtally manages (any address inside a
 * memtally segment). Cheap: one table lookup. */
MT_API int mt_owns(const void *p);

/* ---- statistics ---------------------------------------------------------
 * Counters are kept per thread in flat arrays and summed when read. */
#define MT_STATS_VERSION 1
#define MT_STATS_CLASSES 64

typedef struct mt_class_stats {
  uint64_t block_size;  /* bytes per block of this class (0: unused slot) */
  uint64_t allocs;      /* allocations served, cumulative */
  uint64_t frees;       /* blocks freed, cumulative */
} mt_class_stats;

typedef struct mt_stats {
  uint32_t size;             /* sizeof(mt_stats), filled by mt_stats_get */
  uint32_t version;          /* MT_STATS_VERSION */
  uint64_t allocs;           /* allocations, all classes, cumulative */
  uint64_t frees;            /* frees, cumulative */
  uint64_t bytes_allocated;  /* bytes of blocks handed out, cumulative (block sizes) */
  uint64_t bytes_in_use;     /* bytes of blocks currently allocated */
  uint64_t bytes_in_use_peak;/* high-water mark of bytes_in_use (sampled, see README) */
  uint64_t bytes_committed;  /* bytes the OS may back with memory: mapped and not purged */
  uint64_t bytes_committed_peak;
  uint64_t bytes_mapped;     /* address space mapped */
  uint64_t huge_allocs;      /* blocks too large for a size class (own mapping) */
  uint64_t huge_frees;
  uint64_t mmap_calls;       /* mmap syscalls */
  uint64_t munmap_calls;     /* munmap syscalls */
  uint64_t madvise_calls;    /* madvise (purge) syscalls */
  uint64_t mremap_calls;     /* mremap syscalls */
  uint64_t segments;         /* segments currently mapped */
  uint64_t threads;          /* thread heaps ever created (reused ones counted once) */
  uint64_t rss;              /* resident set of the process, from the OS */
  uint32_t nclasses;         /* valid entries in classes[] */
  mt_class_stats classes[MT_STATS_CLASSES];
} mt_stats;

/* Fill *st (st->size must be at least the part the caller knows; set it to
 * sizeof(mt_stats)). Returns 0, or -1 with errno = EINVAL for NULL. */
MT_API int mt_stats_get(mt_stats *st);
/* Counters of the calling thread only: allocations and bytes allocated,
 * cumulative. Exact; used by benchmark harnesses for allocs/op and B/op. */
MT_API void mt_thread_counters(uint64_t *allocs, uint64_t *bytes);
/* Print a readable table; never allocates from the heap. */
MT_API void mt_stats_print(FILE *out);
/* Write the statistics as one JSON object (the fields of mt_stats, and
 * "classes": [[block_size, allocs, frees], ...]) into buf. Returns the length
 * it needs (excluding the NUL), like snprintf. */
MT_API size_t mt_stats_json(char *buf, size_t cap);

/* Give cached free memory back to the OS now (all purge delays expire). */
MT_API void mt_collect(void);

/* ---- options ------------------------------------------------------------
 * Options are read once from MEMTALLY_<NAME> environment variables. */
typedef struct mt_option_info {
  const char *name;        /* e.g. "MEMTALLY_STATS" */
  const char *default_text;/* the default as written in the README */
  const char *description; /* one line */
} mt_option_info;

MT_API size_t mt_option_count(void);
/* 0 on success, -1 when index is out of range. */
MT_API int mt_option_get_info(size_t index, mt_option_info *out);
/* Current value of an option as an integer (booleans 0/1, sizes in bytes);
 * -1 if name is unknown. name with or without the MEMTALLY_ prefix. */
MT_API long long mt_option_value(const char *name);

/* ---- heap profiler -------------------------------------------------------
 * Sampling is on by default (MEMTALLY_PROF, MEMTALLY_PROF_RATE). */
/* Write the current heap profile (pprof, gzipped: cumulative allocations and
 * in-use figures) to path, through a temporary file renamed into place.
 * 0 on success; -1 with errno (EINVAL for a NULL or empty path, ENOTSUP
 * when the profiler is off, or the error from writing the file). */
MT_API int mt_prof_dump(const char *path);
/* 1 when allocations are being sampled. */
MT_API int mt_prof_enabled(void);

MT_API const char *mt_version(void);

#ifdef __cplusplus
}
#endif
#endif
