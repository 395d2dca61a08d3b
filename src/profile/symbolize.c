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
    if (o->names) mt__os_unreserve(o->names, o->names_bytes);
    if (o->has_lines) mt__dwarf_free(&o->lines);
  }
  if (objs->v) mt__os_unreserve(objs->v, objs->bytes);
  if (objs->want) mt__os_unreserve(objs->want, objs->want_bytes);
  memset(objs, 0, sizeof *objs);
}

mt_object *mt__objects_find(mt_objects *objs, uintptr_t pc) {
  for (size_t i = 0; i < objs->n; i++)
    if (pc >= objs->v[i].lo && pc < objs->v[i].hi) return &objs->v[i];
  return NULL;
}

/* Sort addresses: least significant byte first, 8 bits a pass, passes
 * whose byte is the same everywhere skipped. tmp: room for n. */
static void mt_sort_addrs(uintptr_t *a, uintptr_t *tmp, size_t n) {
  if (n < 2) return;
  for (unsigned shift = 0; shift < 64; shift += 8) {
    size_t count[257] = {0};
    for (size_t i = 0; i < n; i++) count[((a[i] >> shift) & 0xff) + 1]++;
    if (count[((a[0] >> shift) & 0xff) + 1] == n) continue; /* one value: nothing to do */
    for (int b = 0; b < 256; b++) count[b + 1] += count[b];
    for (size_t i = 0; i < n; i++) tmp[count[(a[i] >> shift) & 0xff]++] = a[i];
    memcpy(a, tmp, n * sizeof *a);
  }
}

/* First index i with a[i] >= x (n when none). */
static size_t mt_lower_bound(const uintptr_t *a, size_t n, uintptr_t x) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

int mt__objects_want(mt_objects *objs, const uintptr_t *pcs, size_t n) {
  if (n == 0) return 0;
  objs->want_bytes = 2 * n * sizeof(uintptr_t);
  objs->want = mt__os_reserve(objs->want_bytes);
  if (objs->want == NULL) return -1;
  /* distinct first (a profile's stacks share most frames), through a hash
   * set, then sorted */
  size_t slots = 1;
  while (slots < n) slots <<= 1;
  uintptr_t *set = mt__os_reserve(2 * slots * sizeof(uintptr_t));
  if (set == NULL) return -1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    uintptr_t pc = pcs[i];
    if (pc == 0) continue;
    for (size_t h = (size_t)((pc * 0x9e3779b97f4a7c15ULL) >> 17) & (2 * slots - 1);; h = (h + 1) & (2 * slots - 1)) {
      if (set[h] == pc) break;
      if (set[h] == 0) {
        set[h] = pc;
        objs->want[k++] = pc;
        break;
      }
    }
  }
  mt__os_unreserve(set, 2 * slots * sizeof(uintptr_t));
  mt_sort_addrs(objs->want, objs->want + n, k);
  for (size_t i = 0; i < objs->n; i++) { /* each object's slice, found while the addresses are run-time */
    mt_object *o = &objs->v[i];
    size_t first = mt_lower_bound(objs->want, k, o->lo), last = mt_lower_bound(objs->want, k, o->hi);
    o->want = objs->want + first;
    o->nwant = last - first;
  }
  for (size_t i = 0; i < objs->n; i++) { /* then made link-time (the order within a slice holds) */
    mt_object *o = &objs->v[i];
    uintptr_t *w = objs->want + (o->want - objs->want);
    for (size_t j = 0; j < o->nwant; j++) w[j] -= o->bias;
  }
  return 0;
}

/* Name every wanted address of o with one pass over its symbol table: a
 * symbol of value v is a candidate for the addresses from v on; for each
 * wanted address the candidate with the largest value not above it wins
 * (the last symbol at or below it, as a sorted table would give), and is
 * kept if the address lies inside it (or it has no size). */
static void mt_resolve_names(mt_object *o, const ElfW(Sym) *syms, size_t n, const char *strtab, size_t strsize) {
  size_t k = o->nwant;
  o->names_bytes = (k ? k : 1) * sizeof(mt_sym);
  o->names = mt__os_reserve(o->names_bytes); /* zeroed: no name */
  if (o->names == NULL) return;
  mt_sym *best = o->names; /* per bucket (want[j-1], want[j]]: its largest symbol */
  for (size_t i = 0; i < n; i++) {
    unsigned type = ELF64_ST_TYPE(syms[i].st_info);
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || syms[i].st_shndx == SHN_UNDEF || syms[i].st_value == 0) continue;
    if (syms[i].st_name >= strsize) continue;
    uintptr_t v = syms[i].st_value;
    size_t j = mt_lower_bound(o->want, k, v);
    if (j == k) continue; /* above every wanted address */
    if (best[j].name == NULL || v > best[j].addr || (v == best[j].addr && best[j].size == 0))
      best[j] = (mt_sym){v, syms[i].st_size, strtab + syms[i].st_name};
  }
  mt_sym cur = {0, 0, NULL};
  for (size_t j = 0; j < k; j++) { /* the latest bucket with a symbol holds the largest value */
    if (best[j].name != NULL) cur = best[j];
    int inside = cur.name != NULL && (cur.size == 0 || o->want[j] < cur.addr + cur.size);
    best[j] = inside ? cur : (mt_sym){0, 0, NULL};
  }
}

static void mt_load_symbols(mt_object *o) {
  o->loaded = 1;
  size_t size = 0;
  const void *map = mt__os_map_file(o->path, sizeof(ElfW(Ehdr)), &size);
  if (map == NULL) return;
  o->file = map;
  o->file_size = size;
  const uint8_t *base = map;
  o->has_lines = mt__dwarf_load(&o->lines, base, o->file_size, o->want, o->nwant) == 0;
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
  mt_resolve_names(o, (const ElfW(Sym) *)(base + symtab->sh_offset), symtab->sh_size / sizeof(ElfW(Sym)),
                   (const char *)(base + strs->sh_offset), strs->sh_size);
}

const char *mt__symbolize(mt_objects *objs, uintptr_t pc) {
  mt_object *o = mt__objects_find(objs, pc);
  if (o == NULL) return NULL;
  if (!o->loaded) mt_load_symbols(o);
  if (o->names == NULL || o->nwant == 0) return NULL;
  uintptr_t a = pc - o->bias;
  size_t j = mt_lower_bound(o->want, o->nwant, a);
  if (j == o->nwant || o->want[j] != a) return NULL; /* not an address given to mt__objects_want */
  return o->names[j].name;
}

int mt__symbolize_line(mt_objects *objs, uintptr_t pc, const char **file, uint32_t *line) {
  mt_object *o = mt__objects_find(objs, pc);
  if (o == NULL) return -1;
  if (!o->loaded) mt_load_symbols(o);
  if (!o->has_lines) return -1;
  return mt__dwarf_find(&o->lines, pc - o->bias, file, line);
}
