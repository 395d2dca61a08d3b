/* diag.h -- building one-line messages without allocating (safe in signal handlers) */
#ifndef MT_DIAG_H
#define MT_DIAG_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Append s to buf[n..cap); returns the new length (stops at cap). */
MT_HIDDEN size_t mt__diag_cat(char *buf, size_t n, size_t cap, const char *s);
/* Append v as 0x... or as decimal; returns the new length (stops at cap). */
MT_HIDDEN size_t mt__diag_hex(char *buf, size_t n, size_t cap, uintptr_t v);
MT_HIDDEN size_t mt__diag_dec(char *buf, size_t n, size_t cap, uint64_t v);

/* Sort n elements of size bytes in place, without allocating (heapsort). */
MT_HIDDEN void mt__sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));

#endif
