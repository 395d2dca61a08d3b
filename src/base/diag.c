/* diag.c -- message formatting and sorting that never allocate */
#include "diag.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t mt__diag_cat(char *buf, size_t n, size_t cap, const char *s) {
  while (*s && n < cap) buf[n++] = *s++;
  return n;
}

static size_t mt_diag_digits(char *buf, size_t n, size_t cap, uint64_t v, unsigned base) {
  char t[24];
  size_t k = 0;
  do t[k++] = "0123456789abcdef"[v % base], v /= base;
  while (v);
  while (k > 0 && n < cap) buf[n++] = t[--k];
  return n;
}

size_t mt__diag_hex(char *buf, size_t n, size_t cap, uintptr_t v) {
  return mt_diag_digits(buf, mt__diag_cat(buf, n, cap, "0x"), cap, v, 16);
}

size_t mt__diag_dec(char *buf, size_t n, size_t cap, uint64_t v) { return mt_diag_digits(buf, n, cap, v, 10); }

static void mt_swap(unsigned char *a, unsigned char *b, size_t size) {
  while (size--) {
    unsigned char t = *a;
    *a++ = *b;
    *b++ = t;
  }
}

static void mt_sift(unsigned char *a, size_t i, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  for (;;) {
    size_t m = i, l = 2 * i + 1, r = l + 1;
    if (l < n && cmp(a + l * size, a + m * size) > 0) m = l;
    if (r < n && cmp(a + r * size, a + m * size) > 0) m = r;
    if (m == i) return;
    mt_swap(a + i * size, a + m * size, size);
    i = m;
  }
}

void mt__sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  unsigned char *a = base;
  for (size_t i = n / 2; i-- > 0;) mt_sift(a, i, n, size, cmp);
  for (size_t k = n; k-- > 1;) {
    mt_swap(a, a + k * size, size);
    mt_sift(a, 0, k, size, cmp);
  }
}

void mt__assert_fail(const char *what, const char *file, int line) {
  char buf[512];
  size_t n = mt__diag_cat(buf, 0, sizeof buf - 1, "memtally: assertion failed: ");
  n = mt__diag_cat(buf, n, sizeof buf - 1, what);
  n = mt__diag_cat(buf, n, sizeof buf - 1, " (");
  n = mt__diag_cat(buf, n, sizeof buf - 1, file);
  n = mt__diag_cat(buf, n, sizeof buf - 1, ":");
  n = mt__diag_dec(buf, n, sizeof buf - 1, (uint64_t)line);
  n = mt__diag_cat(buf, n, sizeof buf - 1, ")");
  buf[n++] = '\n';
  if (write(2, buf, n) < 0) { /* nothing more to do */
  }
  abort();
}
