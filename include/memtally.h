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
  uint64_t bytes_allocated;  /* bytes handed out, cumulative, by size class (the class of the size asked for) */
  uint64_t bytes_in_use;     /* bytes of blocks currently allocated, as held: a small profiler
                                sample sits in a block of up to twice its class */
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
/* Counters of the calling thread only: allocations and bytes allocated by
 * size class, cumulative. Exact; used by benchmark harnesses for allocs/op
 * and B/op. */
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

/* ---- regions -------------------------------------------------------------
 * A region (arena) hands out memory by bumping a pointer through chunks it
 * takes from the allocator, and gives it all back at once: mt_region_reset
 * frees everything allocated in the region and its descendants (keeping the
 * regions and one chunk each), mt_region_delete frees the region and all
 * its descendants. Regions nest; each has a name, used in statistics and in
 * the profiler's "region" label. A region is used by one thread at a time
 * (no locking); different regions may be used by different threads.
 * Allocation failures return NULL with errno = ENOMEM (EINVAL for a bad
 * alignment). MEMTALLY_REGION_DEBUG=1 poisons and protects released chunks
 * (a use after reset faults at once, naming the region) and checks a
 * redzone after every block at reset and delete. */
typedef struct mt_region mt_region;

/* Where a region's chunks come from (default: the memtally heap). alloc
 * returns NULL on failure; free gets the size alloc was asked for. */
typedef struct mt_region_backing {
  void *(*alloc)(size_t size, void *ctx);
  void (*free)(void *p, size_t size, void *ctx);
  void *ctx;
} mt_region_backing;

/* parent may be NULL (a root region); name is copied (up to 47 bytes). */
MT_API mt_region *mt_region_new(mt_region *parent, const char *name);
MT_API mt_region *mt_region_new_with(mt_region *parent, const char *name, const mt_region_backing *backing);
MT_API void mt_region_reset(mt_region *r);
MT_API void mt_region_delete(mt_region *r);
MT_API void *mt_region_alloc(mt_region *r, size_t size); /* 16-byte aligned */
MT_API void *mt_region_alloc_aligned(mt_region *r, size_t size, size_t align);
MT_API void *mt_region_calloc(mt_region *r, size_t count, size_t size);
/* Grow or shrink p (old_size bytes, from r): the last block grows in place
 * when it fits; otherwise a new block is taken and the contents copied. */
MT_API void *mt_region_realloc(mt_region *r, void *p, size_t old_size, size_t new_size);
MT_API char *mt_region_strdup(mt_region *r, const char *s);
/* count * elem bytes aligned to align, NULL with ENOMEM on overflow. */
MT_API void *mt_region_alloc_array(mt_region *r, size_t elem, size_t align, size_t count);
#define MT_REGION_NEW_ARRAY(r, T, n) ((T *)mt_region_alloc_array((r), sizeof(T), _Alignof(T), (n)))
/* Run fn(arg) when the region is reset or deleted, in reverse order of
 * registration, before its memory goes. 0, or -1 with ENOMEM. */
MT_API int mt_region_defer(mt_region *r, void (*fn)(void *arg), void *arg);
MT_API const char *mt_region_name(const mt_region *r);
MT_API mt_region *mt_region_parent(const mt_region *r);

typedef struct mt_region_stats {
  uint32_t size, version;    /* sizeof, MT_STATS_VERSION */
  uint64_t bytes_requested;  /* bytes asked for since the last reset */
  uint64_t bytes_held;       /* bytes of the chunks held (as the allocator counts them) */
  uint64_t chunks;           /* chunks held */
  uint64_t waste;            /* held - requested: alignment, chunk tails, headers */
  uint64_t high_water;       /* most bytes held at once */
  uint64_t regions;          /* regions counted (1 for self, more for a subtree) */
} mt_region_stats;
/* The figures of r alone (self) and of r with all its descendants (tree);
 * either may be NULL. 0, or -1 with EINVAL. */
MT_API int mt_region_stats_get(const mt_region *r, mt_region_stats *self, mt_region_stats *tree);
/* One line a region, indented by depth: its own and its subtree's figures. */
MT_API void mt_region_stats_print(const mt_region *r, FILE *out);

/* Statistics in the Prometheus text exposition format (counters and gauges
 * with # HELP and # TYPE lines, a gauge per live region). */
MT_API void mt_stats_prometheus(FILE *out);

/* ---- benchmark harness ---------------------------------------------------
 * Runs fn(arg) N times, N doubled until the run takes budget_ms, and prints
 * "name  N  ns/op  B/op  allocs/op" like go test -benchmem. B/op and
 * allocs/op are counted exactly by the allocator for the calling thread. */
typedef struct mt_bench_result {
  uint64_t n;
  double ns_per_op, bytes_per_op, allocs_per_op;
} mt_bench_result;
MT_API mt_bench_result mt_bench(const char *name, void (*fn)(void *arg), void *arg, unsigned budget_ms, FILE *out);

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
