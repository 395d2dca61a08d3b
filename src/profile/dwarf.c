/* dwarf.c -- a reader for DWARF line programs (.debug_line, versions 2 to 5)
 *
 * Runs each compilation unit's line-number state machine and keeps one row
 * per emitted address (address, file, line), sorted for lookup. Only what
 * a profile needs: no columns, no discriminators, no views. Every read is
 * bounds-checked against the section, so a damaged file yields fewer rows,
 * never a crash. */
#define _GNU_SOURCE
#include "dwarf.h"

#include <elf.h>
#include <link.h>
#include <string.h>

#include "../base/diag.h"

typedef struct mt_rd {
  const uint8_t *p, *end;
  int bad;
} mt_rd;

static uint64_t mt_u(mt_rd *r, int n) {
  if (r->end - r->p < n) {
    r->bad = 1;
    r->p = r->end;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i);
  r->p += n;
  return v;
}

static uint64_t mt_uleb(mt_rd *r) {
  uint64_t v = 0;
  for (int shift = 0; r->p < r->end; shift += 7) {
    uint8_t b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = 1;
  return v;
}

static int64_t mt_sleb(mt_rd *r) {
  int64_t v = 0;
  int shift = 0;
  uint8_t b = 0;
  while (r->p < r->end) {
    b = *r->p++;
    if (shift < 64) v |= (int64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) break;
  }
  if (shift < 64 && (b & 0x40)) v |= -((int64_t)1 << shift);
  return v;
}

static const char *mt_cstr(mt_rd *r) {
  const char *s = (const char *)r->p;
  while (r->p < r->end && *r->p) r->p++;
  if (r->p >= r->end) {
    r->bad = 1;
    return "";
  }
  r->p++;
  return s;
}

typedef struct mt_sections {
  const uint8_t *line, *line_str, *str;
  size_t line_len, line_str_len, str_len;
} mt_sections;

static const char *mt_str_at(const uint8_t *sec, size_t len, uint64_t off) {
  if (sec == NULL || off >= len) return "";
  if (memchr(sec + off, 0, len - off) == NULL) return "";
  return (const char *)sec + off;
}

/* Read one attribute of an entry of the v5 directory/file tables. */
static void mt_read_form(mt_rd *r, unsigned form, int offset_size, const mt_sections *s, const char **str, uint64_t *num) {
  *str = NULL;
  *num = 0;
  switch (form) {
    case 0x08: *str = mt_cstr(r); break;                                                          /* string */
    case 0x1f: *str = mt_str_at(s->line_str, s->line_str_len, mt_u(r, offset_size)); break;       /* line_strp */
    case 0x0e: *str = mt_str_at(s->str, s->str_len, mt_u(r, offset_size)); break;                 /* strp */
    case 0x0f: *num = mt_uleb(r); break;                                                          /* udata */
    case 0x0b: *num = mt_u(r, 1); break;
    case 0x05: *num = mt_u(r, 2); break;
    case 0x06: *num = mt_u(r, 4); break;
    case 0x07: *num = mt_u(r, 8); break;
    case 0x1e: mt_u(r, 8), mt_u(r, 8); break;                                                     /* data16 (MD5) */
    case 0x09: { uint64_t n = mt_uleb(r); if ((uint64_t)(r->end - r->p) < n) r->bad = 1; else r->p += n; break; }
    default: r->bad = 1; break;
  }
}

#define MT_MAX_FILES 4096

static void mt_keep(mt_line_table *t, mt_line_row row) {
  mt__buf_put(&t->rows, &row, sizeof row);
  t->nrows++;
}

/* A row of the state machine (line 0: the end of a sequence). The row
 * before it covers [its address, this one's): kept, with an end marker
 * here, when a wanted address lies in that range. */
static void mt_emit(mt_line_table *t, uintptr_t addr, uint32_t line, uint32_t file) {
  mt_line_row row = {addr, line, file};
  if (t->has_pending) {
    mt_line_row p = t->pending;
    if (addr == p.addr && line != 0) { /* two rows at one address: the larger line, as a sort would give */
      t->pending = line > p.line ? row : p;
      return;
    }
    if (addr > p.addr) {
      size_t lo = 0, hi = t->nwant; /* the first wanted address >= p.addr */
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->want[mid] < p.addr) lo = mid + 1;
        else hi = mid;
      }
      if (lo < t->nwant && t->want[lo] < addr) {
        mt_keep(t, p);
        mt_keep(t, (mt_line_row){addr, 0, 0});
      }
    }
  }
  t->pending = row;
  t->has_pending = line != 0;
}

static uint32_t mt_add_name(mt_line_table *t, const char *dir, const char *name) {
  uint32_t off = (uint32_t)t->text.len;
  if (name[0] != '/' && dir != NULL && dir[0]) {
    mt__buf_put(&t->text, dir, strlen(dir));
    mt__buf_put(&t->text, "/", 1);
  }
  mt__buf_put(&t->text, name, strlen(name) + 1);
  return off;
}

static void mt_unit(mt_line_table *t, mt_rd *r, const mt_sections *s) {
  uint64_t unit_len = mt_u(r, 4);
  int offset_size = 4;
  if (unit_len == 0xffffffffu) unit_len = mt_u(r, 8), offset_size = 8;
  if (r->bad || unit_len > (uint64_t)(r->end - r->p)) {
    r->bad = 1;
    return;
  }
  mt_rd u = {r->p, r->p + unit_len, 0};
  r->p += unit_len;
  unsigned version = (unsigned)mt_u(&u, 2);
  if (version < 2 || version > 5) return;
  if (version >= 5) mt_u(&u, 1), mt_u(&u, 1); /* address and segment selector sizes */
  uint64_t header_len = mt_u(&u, offset_size);
  if (header_len > (uint64_t)(u.end - u.p)) return;
  const uint8_t *program = u.p + header_len;
  unsigned min_inst = (unsigned)mt_u(&u, 1);
  if (version >= 4) mt_u(&u, 1); /* maximum operations per instruction */
  mt_u(&u, 1);                   /* default_is_stmt */
  int line_base = (int8_t)mt_u(&u, 1);
  unsigned line_range = (unsigned)mt_u(&u, 1), opcode_base = (unsigned)mt_u(&u, 1);
  if (line_range == 0 || opcode_base == 0 || u.bad) return;
  uint8_t std_len[256] = {0};
  for (unsigned i = 1; i < opcode_base; i++) std_len[i] = (uint8_t)mt_u(&u, 1);

  static const char *dirs[MT_MAX_FILES];
  static uint32_t files[MT_MAX_FILES];
  size_t ndirs = 0, nfiles = 0;
  unsigned file_base = version >= 5 ? 0 : 1; /* v5 numbers files from 0 */
  if (version >= 5) {
    for (int table = 0; table < 2; table++) {
      unsigned nfmt = (unsigned)mt_u(&u, 1);
      uint64_t fmt[16][2];
      if (nfmt > 16) return;
      for (unsigned i = 0; i < nfmt; i++) fmt[i][0] = mt_uleb(&u), fmt[i][1] = mt_uleb(&u);
      uint64_t count = mt_uleb(&u);
      for (uint64_t e = 0; e < count && !u.bad; e++) {
        const char *path = "";
        uint64_t dir_index = 0;
        for (unsigned i = 0; i < nfmt; i++) {
          const char *str;
          uint64_t num;
          mt_read_form(&u, (unsigned)fmt[i][1], offset_size, s, &str, &num);
          if (fmt[i][0] == 1 && str) path = str;      /* DW_LNCT_path */
          if (fmt[i][0] == 2) dir_index = num;        /* DW_LNCT_directory_index */
        }
        if (table == 0 && ndirs < MT_MAX_FILES) dirs[ndirs++] = path;
        if (table == 1 && nfiles < MT_MAX_FILES)
          files[nfiles++] = mt_add_name(t, dir_index < ndirs ? dirs[dir_index] : NULL, path);
      }
    }
  } else {
    dirs[ndirs++] = NULL; /* directory 0: the compilation directory, unknown here */
    for (;;) {
      const char *d = mt_cstr(&u);
      if (u.bad || d[0] == 0) break;
      if (ndirs < MT_MAX_FILES) dirs[ndirs++] = d;
    }
    for (;;) {
      const char *name = mt_cstr(&u);
      if (u.bad || name[0] == 0) break;
      uint64_t dir_index = mt_uleb(&u);
      mt_uleb(&u), mt_uleb(&u);
      if (nfiles < MT_MAX_FILES) files[nfiles++] = mt_add_name(t, dir_index < ndirs ? dirs[dir_index] : NULL, name);
    }
  }
  if (u.bad) return;

  /* the line-number program */
  mt_rd pr = {program, u.end, 0};
  uintptr_t addr = 0;
  int64_t line = 1;
  uint64_t file = 1;
#define MT_FILE_OFF() (file - file_base < nfiles ? files[file - file_base] : 0)
  while (pr.p < pr.end && !pr.bad) {
    unsigned op = (unsigned)mt_u(&pr, 1);
    if (op >= opcode_base) { /* special opcode */
      unsigned adj = op - opcode_base;
      addr += (adj / line_range) * min_inst;
      line += line_base + (int)(adj % line_range);
      mt_emit(t, addr, (uint32_t)line, MT_FILE_OFF());
      continue;
    }
    switch (op) {
      case 0: { /* extended */
        uint64_t len = mt_uleb(&pr);
        if (len == 0 || len > (uint64_t)(pr.end - pr.p)) {
          pr.bad = 1;
          break;
        }
        const uint8_t *next = pr.p + len;
        unsigned sub = (unsigned)mt_u(&pr, 1);
        if (sub == 1) { /* end_sequence */
          mt_emit(t, addr, 0, 0);
          addr = 0, line = 1, file = 1;
        } else if (sub == 2 && len == 9) {
          addr = (uintptr_t)mt_u(&pr, 8);
        }
        pr.p = next;
        break;
      }
      case 1: mt_emit(t, addr, (uint32_t)line, MT_FILE_OFF()); break;
      case 2: addr += mt_uleb(&pr) * min_inst; break;
      case 3: line += mt_sleb(&pr); break;
      case 4: file = mt_uleb(&pr); break;
      case 8: addr += ((255 - opcode_base) / line_range) * min_inst; break;
      case 9: addr += mt_u(&pr, 2); break;
      default:
        for (unsigned i = 0; i < std_len[op]; i++) mt_uleb(&pr);
        break;
    }
  }
#undef MT_FILE_OFF
}

/* by address; at one address an end-of-sequence row (line 0) first */
static int mt_row_cmp(const void *a, const void *b) {
  const mt_line_row *x = a, *y = b;
  if (x->addr != y->addr) return x->addr < y->addr ? -1 : 1;
  return x->line < y->line ? -1 : x->line > y->line;
}

int mt__dwarf_load(mt_line_table *t, const uint8_t *base, size_t size, const uintptr_t *want, size_t nwant) {
  memset(t, 0, sizeof *t);
  t->want = want;
  t->nwant = nwant;
  const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
  if (size < sizeof *eh || eh->e_shoff == 0 || eh->e_shstrndx >= eh->e_shnum ||
      eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(ElfW(Shdr)) > size)
    return -1;
  const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(base + eh->e_shoff);
  const ElfW(Shdr) *names = &sh[eh->e_shstrndx];
  mt_sections s = {0};
  for (unsigned i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type == SHT_NOBITS || sh[i].sh_offset + sh[i].sh_size > size || sh[i].sh_name >= names->sh_size) continue;
    if (sh[i].sh_flags & SHF_COMPRESSED) continue; /* compressed debug sections are not read */
    const char *n = (const char *)base + names->sh_offset + sh[i].sh_name;
    if (strcmp(n, ".debug_line") == 0) s.line = base + sh[i].sh_offset, s.line_len = sh[i].sh_size;
    else if (strcmp(n, ".debug_line_str") == 0) s.line_str = base + sh[i].sh_offset, s.line_str_len = sh[i].sh_size;
    else if (strcmp(n, ".debug_str") == 0) s.str = base + sh[i].sh_offset, s.str_len = sh[i].sh_size;
  }
  if (s.line == NULL) return -1;
  mt__buf_put(&t->text, "", 1); /* offset 0: no file */
  mt_rd r = {s.line, s.line + s.line_len, 0};
  while (r.p < r.end && !r.bad) {
    t->has_pending = 0; /* a unit's rows end with it */
    mt_unit(t, &r, &s);
  }
  t->want = NULL;
  if (t->rows.failed || t->text.failed) {
    mt__dwarf_free(t);
    return -1;
  }
  if (t->nrows > 1) mt__sort(t->rows.data, t->nrows, sizeof(mt_line_row), mt_row_cmp);
  return 0;
}

void mt__dwarf_free(mt_line_table *t) {
  mt__buf_free(&t->rows);
  mt__buf_free(&t->text);
  t->nrows = 0;
}

int mt__dwarf_find(const mt_line_table *t, uintptr_t addr, const char **file, uint32_t *line) {
  if (t->nrows == 0) return -1;
  const mt_line_row *a = (const mt_line_row *)t->rows.data;
  size_t lo = 0, hi = t->nrows;
  if (a[0].addr > addr) return -1;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (a[mid].addr <= addr) lo = mid;
    else hi = mid;
  }
  /* among rows at this address prefer one that is not an end marker */
  while (lo > 0 && a[lo].line == 0 && a[lo - 1].addr == a[lo].addr) lo--;
  if (a[lo].line == 0) return -1;
  *file = (const char *)t->text.data + a[lo].file;
  *line = a[lo].line;
  return 0;
}
