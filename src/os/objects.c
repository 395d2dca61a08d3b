/* objects.c -- the process's loaded ELF objects, its file mappings, and read-only file maps (Linux)
 *
 * Everything the profiler needs to know about code in memory comes through
 * here: the objects the loader has (with their load bias, executable range
 * and GNU build ID, read from their PT_NOTE segments in memory), the
 * executable file mappings of /proc/self/maps, and a whole file mapped
 * read-only for its symbol and line tables. No allocation from the heap. */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os.h"

struct mt_objects_walk {
  int (*fn)(const mt_os_object *o, void *arg);
  void *arg;
  int seen;
};

static void mt_read_build_id(const struct dl_phdr_info *info, const ElfW(Phdr) *ph, mt_os_object *o) {
  const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
  while (p + sizeof(ElfW(Nhdr)) <= end) {
    const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
    const uint8_t *nm = p + sizeof *nh, *desc = nm + ((nh->n_namesz + 3) & ~3u);
    if (desc + nh->n_descsz > end) break;
    if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(nm, "GNU", 4) == 0 &&
        nh->n_descsz <= sizeof o->build_id) {
      memcpy(o->build_id, desc, nh->n_descsz);
      o->build_id_len = nh->n_descsz;
      return;
    }
    p = desc + ((nh->n_descsz + 3) & ~3u);
  }
}

static int mt_object_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  struct mt_objects_walk *w = arg;
  mt_os_object o;
  memset(&o, 0, sizeof o);
  const char *name = info->dlpi_name;
  int first = w->seen++ == 0;
  if (name == NULL || name[0] == 0) {
    if (!first) return 0; /* vdso and other nameless objects */
    o.is_main = 1;
    ssize_t k = readlink("/proc/self/exe", o.path, sizeof o.path - 1);
    if (k > 0) o.path[k] = 0;
  } else {
    if (strchr(name, '/') == NULL) return 0; /* linux-vdso.so.1 and the like */
    if (name[0] == '/') {
      strncpy(o.path, name, sizeof o.path - 1);
    } else { /* loaded by a relative path (LD_PRELOAD=build/libmemtally.so): from the working directory */
      size_t n = getcwd(o.path, sizeof o.path - 1) ? strlen(o.path) : 0;
      if (n > 0 && n + 1 + strlen(name) < sizeof o.path) {
        o.path[n] = '/';
        strcpy(o.path + n + 1, name);
      } else {
        strncpy(o.path, name, sizeof o.path - 1);
      }
    }
  }
  o.bias = info->dlpi_addr;
  o.lo = UINTPTR_MAX;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
      uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
      if (lo < o.lo) o.lo = lo;
      if (hi > o.hi) o.hi = hi;
    } else if (ph->p_type == PT_NOTE && o.build_id_len == 0) {
      mt_read_build_id(info, ph, &o);
    }
  }
  if (o.hi == 0) return 0;
  return w->fn(&o, w->arg);
}

static char mt_program[65], mt_cmdline[1025];
static _Atomic int mt_program_read;

static void mt_set_program(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *base = slash != NULL ? slash + 1 : path;
  size_t n = 0;
  for (const char *p = base; *p && n < sizeof mt_program - 1; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
             c == '-' || c == '+';
    mt_program[n++] = ok ? c : '_';
  }
  mt_program[n] = 0;
}

/* The name is argv[0]'s (what the user ran: redis-server, not the
 * redis-check-rdb it links to), else the executable's. */
static void mt_read_program(void) {
  if (atomic_load_explicit(&mt_program_read, memory_order_acquire)) return;
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t got = read(fd, mt_cmdline, sizeof mt_cmdline - 1);
    close(fd);
    if (got > 0) {
      mt_cmdline[got] = 0;
      mt_set_program(mt_cmdline); /* argv[0], up to its NUL */
      while (got > 0 && mt_cmdline[got - 1] == 0) got--;
      for (ssize_t i = 0; i < got; i++)
        if (mt_cmdline[i] == 0) mt_cmdline[i] = ' ';
      mt_cmdline[got] = 0;
    }
  }
  if (mt_program[0] == 0) {
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) exe[k] = 0;
    mt_set_program(k > 0 ? exe : "program");
  }
  atomic_store_explicit(&mt_program_read, 1, memory_order_release);
}

const char *mt__os_program(void) {
  mt_read_program();
  return mt_program;
}

const char *mt__os_command_line(void) {
  mt_read_program();
  return mt_cmdline;
}

void mt__os_objects(int (*fn)(const mt_os_object *o, void *arg), void *arg) {
  struct mt_objects_walk w = {fn, arg, 0};
  dl_iterate_phdr(mt_object_cb, &w);
}

struct mt_find_code {
  uintptr_t addr;
  mt_os_object *out;
  int found;
};

static int mt_find_code_cb(const mt_os_object *o, void *arg) {
  struct mt_find_code *f = arg;
  if (f->addr < o->lo || f->addr >= o->hi) return 0;
  *f->out = *o;
  f->found = 1;
  return 1;
}

int mt__os_object_of(const void *code, mt_os_object *out) {
  struct mt_find_code f = {(uintptr_t)code, out, 0};
  mt__os_objects(mt_find_code_cb, &f);
  return f.found ? 0 : -1;
}

size_t mt__os_code_mappings(mt_os_mapping *out, size_t max) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  static char buf[1 << 16];
  char line[1024];
  size_t n = 0, ll = 0;
  ssize_t got;
  while ((got = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < got; i++) {
      if (buf[i] != '\n') {
        if (ll < sizeof line - 1) line[ll++] = buf[i];
        continue;
      }
      line[ll] = 0;
      ll = 0;
      unsigned long lo, hi, off;
      char perms[8];
      int pos = 0;
      if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", &lo, &hi, perms, &off, &pos) < 4 || pos == 0) continue;
      const char *path = line + pos;
      if (perms[2] != 'x' || path[0] != '/' || n >= max) continue;
      out[n].start = lo;
      out[n].limit = hi;
      out[n].offset = off;
      strncpy(out[n].path, path, sizeof out[n].path - 1);
      out[n].path[sizeof out[n].path - 1] = 0;
      n++;
    }
  }
  close(fd);
  return n;
}

const void *mt__os_map_file(const char *path, size_t min_size, size_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < (off_t)min_size || !S_ISREG(st.st_mode)) {
    close(fd);
    return NULL;
  }
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return NULL;
  *size = (size_t)st.st_size;
  return map;
}

void mt__os_unmap_file(const void *p, size_t size) {
  if (p != NULL) munmap((void *)p, size);
}

#ifdef MT_NO_LOADER /* the static archive: see CMakeLists.txt */
void *mt__os_library(const char *name) {
  (void)name;
  return NULL;
}

void *mt__os_library_symbol(void *lib, const char *name) {
  (void)lib, (void)name;
  return NULL;
}
#else
void *mt__os_library(const char *name) { return dlopen(name, RTLD_NOW | RTLD_LOCAL); }

void *mt__os_library_symbol(void *lib, const char *name) { return lib != NULL ? dlsym(lib, name) : NULL; }
#endif
