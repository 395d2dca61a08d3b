/* symbols.h -- naming a profile's addresses again, from the binaries and debug files at hand */
#ifndef MTT_SYMBOLS_H
#define MTT_SYMBOLS_H

#include <stddef.h>

#include "profile.h"

typedef struct mtt_sym_options {
  int use_files;          /* 0: only demangle (the profile's own names) */
  const char *debug_dirs; /* colon-separated roots searched like /usr/lib/debug (by build id, by debuglink) */
} mtt_sym_options;

typedef struct mtt_sym_stats {
  size_t objects, objects_missing, objects_changed; /* mapped files: read, absent, of another build id */
  size_t locations, named, inlined;                 /* locations renamed; with a name; extra inline frames */
  size_t demangled;
} mtt_sym_stats;

/* Where the file a mapping names is still there with the same build id,
 * replaces each of its locations' frames by what its symbol table and
 * DWARF (also in a separate debug file found by build id or .gnu_debuglink,
 * also compressed) say: inlined calls as frames of their own, innermost
 * first, with file and line; keeps the profile's names elsewhere. Then
 * demangles C++ names. 0, or -1 when out of memory. */
int mtt_symbolize(mtt_profile *p, const mtt_sym_options *o, mtt_sym_stats *st);

#endif
