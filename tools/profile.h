/* profile.h -- a pprof profile in memory, as the memtally command reads it */
#ifndef MTT_PROFILE_H
#define MTT_PROFILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mtt_line {
  uint64_t function; /* index into functions, or UINT64_MAX */
  int64_t line;
} mtt_line;

typedef struct mtt_mapping {
  uint64_t id, start, limit, offset;
  const char *file, *build_id; /* "" when absent */
} mtt_mapping;

typedef struct mtt_location {
  uint64_t id;
  uint64_t address;
  uint64_t mapping; /* index into mappings, or UINT64_MAX */
  mtt_line *lines; /* innermost first, as in profile.proto */
  size_t nlines;
} mtt_location;

typedef struct mtt_function {
  uint64_t id;
  const char *name, *file;
} mtt_function;

typedef struct mtt_sample {
  uint64_t *locs;  /* indexes into locations, leaf first */
  size_t nlocs;
  int64_t *values; /* as many as the sample has: a missing one is 0 */
  size_t nvalues;
  const char *region; /* "region" string label, or NULL */
  int64_t thread;     /* "thread" numeric label, or 0 */
  /* lifetimes profiles: the "lifetime" label (ns, the floor of its bucket; -1
   * absent), "freed_by" (the freeing stack's names, "f < g", or "(in use)")
   * and whether "free_thread" is "other" */
  int64_t lifetime;
  const char *freed_by;
  int free_other;
} mtt_sample;

typedef struct mtt_profile {
  const char **strings; /* equal strings are one pointer */
  size_t nstrings;
  const char **type_names, **type_units; /* sample types */
  size_t ntypes;
  mtt_sample *samples;
  size_t nsamples;
  mtt_location *locations;
  size_t nlocations;
  mtt_function *functions;
  size_t nfunctions;
  mtt_mapping *mappings;
  size_t nmappings;
  int64_t period, time_nanos, duration_nanos;
  const char *comment;
  int default_type; /* index into types, or -1 */
  uint8_t *raw; /* the string table, NUL-terminated (strings point into it) */
  size_t raw_len;
  /* pools the records above point into */
  mtt_line *line_pool;
  uint64_t *loc_pool;
  int64_t *value_pool;
  struct mtt_owned *owned; /* what was added after decoding (symbols.c), freed with the profile */
} mtt_profile;

/* size bytes that live as long as p (zeroed), or NULL. */
void *mtt_profile_alloc(mtt_profile *p, size_t size);
/* A copy of s that lives as long as p, or NULL. */
const char *mtt_profile_strdup(mtt_profile *p, const char *s);

/* Value k of sample s (0 when the sample has fewer values than types). */
static inline int64_t mtt_value(const mtt_sample *s, int k) {
  return k >= 0 && (size_t)k < s->nvalues ? s->values[k] : 0;
}

/* What a profile may ask of the reader; past either limit, reading stops
 * with one line naming it. max_bytes bounds the file and its inflated form
 * (memory is then a small multiple of it); max_frames bounds one sample's
 * stack. The command's --max-size and --max-frames raise them. */
typedef struct mtt_limits {
  size_t max_bytes;
  size_t max_frames;
} mtt_limits;
#define MTT_DEFAULT_MAX_BYTES ((size_t)1 << 30)
#define MTT_DEFAULT_MAX_FRAMES ((size_t)1 << 16)
extern mtt_limits mtt_limit;

/* Read a pprof profile (gzipped or not). 0 on success; on failure -1 and a
 * one-line reason in err. */
int mtt_profile_read(const char *path, mtt_profile *p, char *err, size_t errlen);
/* Decode a profile from memory (the fuzz target's entry point). */
int mtt_profile_decode(const uint8_t *data, size_t len, mtt_profile *p, char *err, size_t errlen);
void mtt_profile_free(mtt_profile *p);
/* "object+0xOFFSET" for an address no name was found for (the offset in
 * the object's file, as its mapping says), or "0xADDRESS" without one. */
void mtt_address_name(const mtt_profile *p, const mtt_location *l, char *buf, size_t cap);
/* Index of the sample type called name, or -1. */
int mtt_profile_type(const mtt_profile *p, const char *name);

#endif
