/* symbols.c -- naming a profile's addresses again, out of the profiled process
 *
 * The library names frames cheaply as it writes (symbol tables, DWARF line
 * rows); the command, an ordinary process free to allocate, can do better
 * when the objects are at hand: elfutils' libdwfl finds separate debug
 * files (by build id under /usr/lib/debug/.build-id or the given roots, by
 * .gnu_debuglink), reads compressed sections, and DWARF scopes give inlined
 * calls as frames of their own, as pprof shows them. C++ names are
 * demangled with the C++ runtime's __cxa_demangle, looked up at run time
 * so the command needs no C++ at build time. */
#define _GNU_SOURCE
#include "symbols.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef MTT_HAVE_LIBDW
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#endif

/* ---- demangling ---- */

typedef char *(*demangle_fn)(const char *, char *, size_t *, int *);

static demangle_fn demangler(void) {
  static int tried;
  static demangle_fn fn;
  if (!tried) {
    tried = 1;
    fn = (demangle_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "__cxa_demangle");
    if (fn == NULL) {
      void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
      if (h != NULL) fn = (demangle_fn)(uintptr_t)dlsym(h, "__cxa_demangle");
    }
  }
  return fn;
}

/* name demangled into a string owned by p, or name itself. */
static const char *demangled(mtt_profile *p, const char *name, mtt_sym_stats *st) {
  if (strncmp(name, "_Z", 2) != 0 || strlen(name) > 4096) return name;
  demangle_fn fn = demangler();
  if (fn == NULL) return name;
  int status = 0;
  char *d = fn(name, NULL, NULL, &status);
  if (status != 0 || d == NULL) {
    free(d);
    return name;
  }
  const char *kept = mtt_profile_strdup(p, d);
  free(d);
  if (kept == NULL) return name;
  st->demangled++;
  return kept;
}

#ifdef MTT_HAVE_LIBDW

/* ---- functions by (name, file), added to the profile ---- */

typedef struct fn_index {
  uint64_t *slot; /* function index + 1 */
  size_t cap;
  size_t cap_functions; /* p->functions' allocated length */
} fn_index;

static uint64_t hash2(const char *a, const char *b) {
  uint64_t h = 1469598103934665603ULL;
  for (; *a; a++) h = (h ^ (unsigned char)*a) * 1099511628211ULL;
  h = (h ^ 0xff) * 1099511628211ULL;
  for (; *b; b++) h = (h ^ (unsigned char)*b) * 1099511628211ULL;
  return h;
}

static int fn_index_grow(fn_index *x, const mtt_profile *p) {
  size_t cap = x->cap ? x->cap * 2 : 1024;
  while (cap < 2 * (p->nfunctions + 1)) cap *= 2;
  uint64_t *slot = calloc(cap, sizeof *slot);
  if (slot == NULL) return -1;
  for (size_t i = 0; i < p->nfunctions; i++) {
    size_t j = hash2(p->functions[i].name, p->functions[i].file) & (cap - 1);
    while (slot[j]) j = (j + 1) & (cap - 1);
    slot[j] = i + 1;
  }
  free(x->slot);
  x->slot = slot, x->cap = cap;
  return 0;
}

/* The index of function (name, file), added when new; UINT64_MAX when out of memory. */
static uint64_t function_of(mtt_profile *p, fn_index *x, const char *name, const char *file) {
  if ((p->nfunctions + 1) * 2 > x->cap && fn_index_grow(x, p) != 0) return UINT64_MAX;
  size_t j = hash2(name, file) & (x->cap - 1);
  for (; x->slot[j]; j = (j + 1) & (x->cap - 1)) {
    const mtt_function *f = &p->functions[x->slot[j] - 1];
    if (strcmp(f->name, name) == 0 && strcmp(f->file, file) == 0) return x->slot[j] - 1;
  }
  if (p->nfunctions == x->cap_functions) {
    size_t c = x->cap_functions ? x->cap_functions * 2 : 64;
    mtt_function *f = realloc(p->functions, c * sizeof *f);
    if (f == NULL) return UINT64_MAX;
    p->functions = f, x->cap_functions = c;
  }
  const char *n = mtt_profile_strdup(p, name), *fl = mtt_profile_strdup(p, file);
  if (n == NULL || fl == NULL) return UINT64_MAX;
  uint64_t id = 0;
  for (size_t i = 0; i < p->nfunctions; i++) id = p->functions[i].id > id ? p->functions[i].id : id;
  p->functions[p->nfunctions] = (mtt_function){id + 1, n, fl};
  x->slot[j] = ++p->nfunctions;
  return p->nfunctions - 1;
}


/* ---- one object file, through libdwfl ---- */

typedef struct object {
  Dwfl *dwfl;
  Dwfl_Module *mod;
  GElf_Addr shift; /* dwfl's address = the ELF's virtual address + shift */
  GElf_Phdr load[16];
  int nload;
} object;

static char *debug_path;
static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debug_path,
};

static void hex(const unsigned char *b, int n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < n; i++) out[2 * i] = digits[b[i] >> 4], out[2 * i + 1] = digits[b[i] & 15];
  out[2 * n] = 0;
}

/* 0 when path is there with build id want ("" to accept any); the object's
 * load segments and its module. */
static int object_open(object *ob, const char *path, const char *want, mtt_sym_stats *st) {
  memset(ob, 0, sizeof *ob);
  struct stat sb;
  if (path[0] != '/' || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    st->objects_missing++;
    return -1;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  elf_version(EV_CURRENT);
  Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  GElf_Addr first = UINT64_MAX;
  size_t nph = 0;
  if (elf != NULL && elf_getphdrnum(elf, &nph) == 0) {
    for (size_t i = 0; i < nph && ob->nload < 16; i++) {
      GElf_Phdr ph;
      if (gelf_getphdr(elf, (int)i, &ph) != NULL && ph.p_type == PT_LOAD) {
        ob->load[ob->nload++] = ph;
        if (ph.p_vaddr < first) first = ph.p_vaddr;
      }
    }
  }
  if (elf) elf_end(elf);
  close(fd);
  if (ob->nload == 0) return -1;
  ob->dwfl = dwfl_begin(&callbacks);
  if (ob->dwfl == NULL) return -1;
  dwfl_report_begin(ob->dwfl);
  ob->mod = dwfl_report_elf(ob->dwfl, path, path, -1, 0, false);
  dwfl_report_end(ob->dwfl, NULL, NULL);
  if (ob->mod == NULL) goto fail;
  const unsigned char *bits;
  GElf_Addr vaddr;
  int n = dwfl_module_build_id(ob->mod, &bits, &vaddr);
  if (want[0] && n > 0 && n <= 64) {
    char have[130];
    hex(bits, n, have);
    if (strcmp(have, want) != 0) {
      st->objects_changed++;
      goto fail;
    }
  }
  Dwarf_Addr low = 0;
  dwfl_module_info(ob->mod, NULL, &low, NULL, NULL, NULL, NULL, NULL);
  ob->shift = low - (first & ~(GElf_Addr)0xfff);
  st->objects++;
  return 0;
fail:
  dwfl_end(ob->dwfl);
  ob->dwfl = NULL;
  return -1;
}

/* The ELF virtual address of a process address inside mapping m. */
static int object_vaddr(const object *ob, const mtt_mapping *m, uint64_t addr, GElf_Addr *out) {
  uint64_t off = addr - m->start + m->offset;
  for (int i = 0; i < ob->nload; i++) {
    const GElf_Phdr *ph = &ob->load[i];
    if (off >= ph->p_offset && off < ph->p_offset + ph->p_filesz) {
      *out = off - ph->p_offset + ph->p_vaddr;
      return 0;
    }
  }
  return -1;
}

static const char *die_name(Dwarf_Die *die) {
  Dwarf_Attribute a;
  const char *n = NULL;
  if (dwarf_attr_integrate(die, DW_AT_linkage_name, &a) || dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a))
    n = dwarf_formstring(&a);
  if (n == NULL && dwarf_attr_integrate(die, DW_AT_name, &a)) n = dwarf_formstring(&a);
  return n;
}

/* The frames at one address, innermost first: functions (inlined calls as
 * their own frames) with file and line. */
typedef struct frame {
  const char *name, *file;
  int64_t line;
} frame;

static int frames_at(object *ob, GElf_Addr a, frame *fr, int cap, mtt_profile *p, mtt_sym_stats *st) {
  int n = 0;
  const char *src = "";
  int line = 0;
  Dwfl_Line *dl = dwfl_module_getsrc(ob->mod, a);
  if (dl != NULL) {
    const char *s = dwfl_lineinfo(dl, NULL, &line, NULL, NULL, NULL);
    if (s) src = s;
  }
  Dwarf_Addr bias = 0;
  Dwarf_Die *cu = dwfl_module_addrdie(ob->mod, a, &bias);
  Dwarf_Die *scopes = NULL;
  int ns = cu ? dwarf_getscopes(cu, a - bias, &scopes) : 0;
  Dwarf_Files *files = NULL;
  if (cu) dwarf_getsrcfiles(cu, &files, NULL);
  const char *file = src;
  int64_t ln = line;
  /* An inlined call's scopes continue with its abstract definition, not
   * with the function it was inlined into: for the caller, the scopes of
   * the inlined DIE itself are read again (its [0] is the DIE). */
  Dwarf_Die *sc = scopes;
  int nsc = ns, i = 0;
  while (i < nsc && n < cap) {
    int tag = dwarf_tag(&sc[i]);
    if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) {
      i++;
      continue;
    }
    const char *name = die_name(&sc[i]);
    fr[n++] = (frame){demangled(p, name ? name : "??", st), file, ln};
    if (tag == DW_TAG_subprogram) break;
    Dwarf_Attribute at;
    Dwarf_Word cf = 0, cl = 0;
    if (dwarf_formudata(dwarf_attr(&sc[i], DW_AT_call_file, &at), &cf) == 0 && files != NULL) {
      const char *f = dwarf_filesrc(files, cf, NULL, NULL);
      file = f ? f : "";
    }
    ln = dwarf_formudata(dwarf_attr(&sc[i], DW_AT_call_line, &at), &cl) == 0 ? (int64_t)cl : 0;
    st->inlined++;
    Dwarf_Die *outer = NULL;
    int no = dwarf_getscopes_die(&sc[i], &outer);
    free(sc);
    sc = outer, nsc = no > 0 ? no : 0, i = 1;
  }
  free(sc);
  if (n == 0) { /* no DWARF here: the symbol table (or .gnu_debugdata) */
    GElf_Off off;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(ob->mod, a, &off, &sym, NULL, NULL, NULL);
    if (name != NULL && name[0]) fr[n++] = (frame){demangled(p, name, st), src, line};
  }
  return n;
}

static int resolve_files(mtt_profile *p, const mtt_sym_options *o, mtt_sym_stats *st, fn_index *fx) {
  char *path = NULL;
  if (o->debug_dirs && o->debug_dirs[0]) {
    if (asprintf(&path, "+:.debug:%s:/usr/lib/debug", o->debug_dirs) < 0) return -1;
  }
  debug_path = path;
  int rc = 0;
  /* one object per file named by the mappings (a file maps several times) */
  for (size_t m = 0; m < p->nmappings && rc == 0; m++) {
    const mtt_mapping *M = &p->mappings[m];
    int first = 1;
    for (size_t k = 0; k < m; k++)
      if (strcmp(p->mappings[k].file, M->file) == 0) first = 0;
    if (!first || M->file[0] == 0) continue;
    object ob;
    if (object_open(&ob, M->file, M->build_id, st) != 0) continue;
    for (size_t i = 0; i < p->nlocations && rc == 0; i++) {
      mtt_location *L = &p->locations[i];
      if (L->mapping >= p->nmappings || strcmp(p->mappings[L->mapping].file, M->file) != 0) continue;
      GElf_Addr va;
      if (object_vaddr(&ob, &p->mappings[L->mapping], L->address, &va) != 0) continue;
      frame fr[64];
      int n = frames_at(&ob, va + ob.shift, fr, 64, p, st);
      if (n == 0) continue;
      mtt_line *lines = mtt_profile_alloc(p, (size_t)n * sizeof *lines);
      if (lines == NULL) {
        rc = -1;
        break;
      }
      for (int k = 0; k < n; k++) {
        uint64_t f = function_of(p, fx, fr[k].name, fr[k].file ? fr[k].file : "");
        if (f == UINT64_MAX) {
          rc = -1;
          break;
        }
        lines[k] = (mtt_line){f, fr[k].line};
      }
      L->lines = lines, L->nlines = (size_t)n;
      st->locations++;
    }
    dwfl_end(ob.dwfl);
  }
  debug_path = NULL;
  free(path);
  return rc;
}

#endif /* MTT_HAVE_LIBDW */

int mtt_symbolize(mtt_profile *p, const mtt_sym_options *o, mtt_sym_stats *st) {
  memset(st, 0, sizeof *st);
  int rc = 0;
#ifdef MTT_HAVE_LIBDW
  fn_index fx = {NULL, 0, p->nfunctions};
  if (o->use_files) rc = resolve_files(p, o, st, &fx);
  free(fx.slot);
#else
  (void)o;
#endif
  for (size_t i = 0; i < p->nfunctions && rc == 0; i++) p->functions[i].name = demangled(p, p->functions[i].name, st);
  for (size_t i = 0; i < p->nlocations; i++)
    if (p->locations[i].nlines && p->locations[i].lines[0].function < p->nfunctions &&
        p->functions[p->locations[i].lines[0].function].name[0])
      st->named++;
  return rc;
}
