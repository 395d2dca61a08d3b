/* dwarf.h -- source file and line of an address, from an object's .debug_line */
#ifndef MT_DWARF_H
#define MT_DWARF_H

#include <stddef.h>
#include <stdint.h>

#include "../base/common.h"
#include "../write/buf.h"

typedef struct mt_line_row {
  uintptr_t addr;  /* link-time address */
  uint32_t line;   /* 0: end of a sequence (no information past it) */
  uint32_t file;   /* offset of the file name in the table's text */
} mt_line_row;

typedef struct mt_line_table {
  mt_buf rows;     /* mt_line_row, sorted by address */
  mt_buf text;     /* file names, NUL-terminated */
  size_t nrows;
  const uintptr_t *want; /* while loading: the addresses whose rows are kept */
  size_t nwant;
  mt_line_row pending;   /* while loading: the last row, kept once the next shows its range */
  int has_pending;
} mt_line_table;

/* Read every line program of an ELF file mapped at base (size bytes),
 * keeping the rows that cover one of the nwant sorted link-time addresses
 * in want (and an end marker after each): a profile's few thousand
 * addresses cost one pass over the programs and no sort of their rows.
 * Returns 0 when the file has line information. */
MT_HIDDEN int mt__dwarf_load(mt_line_table *t, const uint8_t *base, size_t size, const uintptr_t *want,
                             size_t nwant);
MT_HIDDEN void mt__dwarf_free(mt_line_table *t);
/* File and line for a link-time address; 0 when known. */
MT_HIDDEN int mt__dwarf_find(const mt_line_table *t, uintptr_t addr, const char **file, uint32_t *line);

#endif
