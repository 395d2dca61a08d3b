/* pprof.h -- encoding a snapshot of the stack table as a pprof profile */
#ifndef MT_PPROF_H
#define MT_PPROF_H

#include <stdbool.h>
#include <stdint.h>

#include "../sample/sample.h"
#include "buf.h"

/* An executable file mapping of the process, as the profile lists it. */
typedef struct mt_pprof_mapping {
  uintptr_t start, limit, offset;
  const char *path;
  char build_id[129];            /* hex, or empty */
  int has_lines;                 /* its file and line numbers are known */
} mt_pprof_mapping;

/* How program counters get names: name returns NULL when it knows none;
 * line returns 0 and sets *file and *line, or -1. */
typedef struct mt_pprof_symbols {
  const char *(*name)(void *ctx, uintptr_t pc);
  int (*line)(void *ctx, uintptr_t pc, const char **file, uint32_t *line);
  void *ctx;
} mt_pprof_symbols;

/* Append snap as an uncompressed profile.proto message to out. window: the
 * alloc figures are those since the window began. kind: the first comment
 * ("exit", "peak", ...); command: the second ("cmd: " and the command line),
 * or NULL. 0, or -1 when memory ran out. */
MT_HIDDEN int mt__pprof_encode(const mt_prof_snapshot *snap, const mt_pprof_mapping *maps, size_t nmaps,
                               const mt_pprof_symbols *sym, bool window, const char *kind, const char *command,
                               mt_buf *out);

#endif
