/* symbolize.c -- loaded objects, their GNU build IDs and ELF symbol tables
 *
 * Objects come from the os layer (mt__os_objects: with their load bias, so
 * one rule maps run-time addresses to link-time ones for PIE programs and
 * shared libraries alike, and their build IDs). Symbols are read from the files themselves: .symtab when the file
 * has one, else .dynsym (stripped libraries keep their exported functions).
 * All memory here is mapped for the purpose, none comes from the heap. */
#define _GNU_SOURCE
#include "symbolize.h"

#include <elf.h>
#include <link.h> /* ElfW */
#include <string.h>

#include "../base/diag.h"
#include "../os/os.h"

static int mt_collect_object(const mt_os_object *src, void *arg) {
  mt_objects *objs = arg;
  if ((objs->n + 1) * sizeof(mt_object) > objs->bytes) return 1; /* table full: stop */
  mt_object *o = &objs->v[objs->n];
  memset(o, 0, sizeof *o);
  if (src->path[0] == 0) return 0;
  memcpy(o->path, src->path, sizeof o->path);
  o->bias = src->bias;
  o->lo = src->lo;
  o->hi = src->hi;
  memcpy(o->build_id, src->build_id, sizeof o->build_id);
  o->build_id_len = src->build_id_len;
  objs->n++;
  return 0;
}

int mt__objects_load(mt_objects *objs) {
  objs->bytes = 1024 * sizeof(mt_object);
  objs->v = mt__os_reserve(objs->bytes);
  objs->n = 0;
  if (objs->v == NULL) return -1;
  mt__os_objects(mt_collect_object, objs);
  return 0;
}

void mt__objects_free(mt_objects *objs) {
  for (size_t i = 0; i < objs->n; i++) {
    mt_object *o = &objs->v[i];
    if (o->file) mt__os_unmap_file(o->file, o->file_size);
    if (o->syms) mt__os_unreserve(o->syms, o->syms_bytes);
    if (o->has_lines) mt__dwarf_free(&o->lines);
  }
  if (objs->v) mt__os_unreserve(objs->v, objs->bytes);
  memset(objs, 0, sizeof *objs);
}

mt_object *mt__objects_find(mt_objects *objs, uintptr_t pc) {
  for (size_t i = 0; i < objs->n; i++)
    if (pc >= objs->v[i].lo && pc < objs->v[i].hi) return &objs->v[i];
  return NULL;
}

static int mt_sym_cmp(const void *a, const void *b) {
  uintptr_t x = ((const mt_sym *)a)->addr, y = ((const mt_sym *)b)->addr;
  return x < y ? -1 : x > y;
}

static void mt_load_symbols(mt_object *o) {
  o->loaded = 1;
  size_t size = 0;
  const void *map = mt__os_map_file(o->path, sizeof(ElfW(Ehdr)), &size);
  if (map == NULL) return;
  o->file = map;
  o->file_size = size;
  const uint8_t *base = map;
  o->has_lines = mt__dwarf_load(&o->lines, base, o->file_size) == 0;
  const ElfW(Ehdr) *eh = map;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_shoff == 0 || eh->e_shentsize != sizeof(ElfW(Shdr)) ||
      eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(ElfW(Shdr)) > o->file_size)
    return;
  const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(base + eh->e_shoff);
  const ElfW(Shdr) *symtab = NULL;
  for (int want = SHT_SYMTAB; want >= 0 && symtab == NULL; want = want == SHT_SYMTAB ? SHT_DYNSYM : -1)
    for (unsigned i = 0; i < eh->e_shnum; i++)
      if (sh[i].sh_type == (unsigned)want && sh[i].sh_size > 0) {
        symtab = &sh[i];
        break;
      }
  if (symtab == NULL || symtab->sh_link >= eh->e_shnum || symtab->sh_entsize != sizeof(ElfW(Sym))) return;
  const ElfW(Shdr) *strs = &sh[symtab->sh_link];
  if (symtab->sh_offset + symtab->sh_size > o->file_size || strs->sh_offset + strs->sh_size > o->file_size) return;
  const ElfW(Sym) *syms = (const ElfW(Sym) *)(base + symtab->sh_offset);
  size_t n = symtab->sh_size / sizeof(ElfW(Sym));
  const char *strtab = (const char *)(base + strs->sh_offset);
  o->syms_bytes = (n ? n : 1) * sizeof(mt_sym);
  o->syms = mt__os_reserve(o->syms_bytes);
  if (o->syms == NULL) return;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned type = ELF64_ST_TYPE(syms[i].st_info);
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || syms[i].st_shndx == SHN_UNDEF || syms[i].st_value == 0) continue;
    if (syms[i].st_name >= strs->sh_size) continue;
    o->syms[k++] = (mt_sym){syms[i].st_value, syms[i].st_size, strtab + syms[i].st_name};
  }
  o->nsyms = k;
  mt__sort(o->syms, k, sizeof *o->syms, mt_sym_cmp);
}

const char *mt__symbolize(mt_objects *objs, uintptr_t pc) {
  mt_object *o = mt__objects_find(objs, pc);
  if (o == NULL) return NULL;
  if (!o->loaded) mt_load_symbols(o);
  if (o->nsyms == 0) return NULL;
  uintptr_t a = pc - o->bias;
  size_t lo = 0, hi = o->nsyms; /* last symbol with addr <= a */
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (o->syms[mid].addr <= a) lo = mid;
    else hi = mid;
  }
  const mt_sym *s = &o->syms[lo];
  if (s->addr > a) return NULL;
  if (s->size != 0 && a >= s->addr + s->size) return NULL;
  return s->name;
}

int mt__symbolize_line(mt_objects *objs, uintptr_t pc, const char **file, uint32_t *line) {
  mt_object *o = mt__objects_find(objs, pc);
  if (o == NULL) return -1;
  if (!o->loaded) mt_load_symbols(o);
  if (!o->has_lines) return -1;
  return mt__dwarf_find(&o->lines, pc - o->bias, file, line);
}
