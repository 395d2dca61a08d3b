/* symbolize.h -- program counters to function names, at profile-writing time only */
#ifndef MT_SYMBOLIZE_H
#define MT_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

#include "../base/common.h"
#include "dwarf.h"

typedef struct mt_sym {
  uintptr_t addr;   /* link-time address */
  uint64_t size;
  const char *name; /* inside the mapped file */
} mt_sym;

typedef struct mt_object {
  char path[512];
  uintptr_t bias;             /* load bias: runtime address - link-time address */
  uintptr_t lo, hi;           /* executable range at run time */
  uint8_t build_id[64];
  size_t build_id_len;
  int loaded;                 /* symbols read (or tried) */
  const void *file;           /* the file, mapped read-only */
  size_t file_size;
  const uintptr_t *want;      /* the link-time addresses to name, sorted (mt__objects_want) */
  size_t nwant;
  mt_sym *names;              /* per wanted address: its function (name NULL: none) */
  size_t names_bytes;
  mt_line_table lines;        /* from .debug_line, rows for the wanted addresses only */
  int has_lines;
} mt_object;

typedef struct mt_objects {
  mt_object *v;
  size_t n, bytes;
  uintptr_t *want;            /* every wanted address, sorted, link-time per object */
  size_t want_bytes;
} mt_objects;

MT_HIDDEN int mt__objects_load(mt_objects *objs);
/* The addresses that will be symbolized (a profile's program counters):
 * only these are resolved, with one pass over each object's symbol table
 * and line programs, nothing sorted but them. Call once, before the first
 * mt__symbolize. 0, or -1 without memory (then nothing is named). */
MT_HIDDEN int mt__objects_want(mt_objects *objs, const uintptr_t *pcs, size_t n);
MT_HIDDEN void mt__objects_free(mt_objects *objs);
MT_HIDDEN mt_object *mt__objects_find(mt_objects *objs, uintptr_t pc);
/* Name of the function holding pc, or NULL. */
MT_HIDDEN const char *mt__symbolize(mt_objects *objs, uintptr_t pc);
/* Source file and line of pc; 0 when the object has line information for it. */
MT_HIDDEN int mt__symbolize_line(mt_objects *objs, uintptr_t pc, const char **file, uint32_t *line);

#endif
