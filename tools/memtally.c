/* memtally.c -- the memtally command: run, report, diff, flame
 *
 * Uses only the public header and its own files; profiles are read with
 * the tool's own pprof reader (profile.c). Every failure is one line on
 * stderr and exit status 2; `run` passes the program's exit status on. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "merge.h"
#include "profile.h"
#include "push.h"
#include "report.h"
#include "stats.h"
#include "symbols.h"

static const char *usage_main =
    "usage: memtally COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  run     run a program with memtally preloaded and its profiler writing profiles\n"
    "  report  the worst-offender table of a pprof heap profile, with recommendations\n"
    "  diff    the per-site change between two profiles\n"
    "  flame   a self-contained interactive flame graph (HTML)\n"
    "  merge   several profiles into one (pprof's merge: same stacks summed)\n"
    "  stats   print a statistics dump the library wrote (PREFIX.PROGRAM.PID.stats.json)\n"
    "  push    upload profiles to a Pyroscope or Parca server (files, or a directory watched)\n"
    "  symbolize  write a profile again with its addresses named from the binaries at hand\n"
    "\n"
    "memtally COMMAND --help describes each; memtally --version prints the version.\n"
    "MEMTALLY_LIB=PATH names the library run preloads (default: found beside the command\n"
    "or in the lib directory of its install prefix).\n";

static const char *usage_run =
    "usage: memtally run [--rate BYTES] [--interval SECONDS] [--peak] [--out DIR] -- PROGRAM ARGS...\n"
    "  Runs PROGRAM with libmemtally.so preloaded (children too: each process\n"
    "  writes its own files, its pid in their names) and the profiler writing to\n"
    "  DIR (default memtally-profiles). At the end prints where the profiles went\n"
    "  and the top 10 of the program's exit profile. Exits with the program's status.\n"
    "  --rate BYTES       mean bytes between samples (MEMTALLY_PROF_RATE; 1: every allocation)\n"
    "  --interval SECONDS write a window profile every SECONDS (MEMTALLY_PROF_INTERVAL)\n"
    "  --peak             write the in-use profile at the high-water mark (MEMTALLY_PROF_PEAK)\n"
    "  --out DIR          where the profiles go\n";

static const char *usage_report =
    "usage: memtally report FILE [--sample TYPE] [--by KEY] [--top N] [--json] [view options]\n"
    "  A sorted worst-offender table: rank, site, value, % of total, cumulative %,\n"
    "  objects, average size; under each of the top 5 a recommendation, naming the\n"
    "  rule that fired and the numbers behind it. Reads any pprof heap profile.\n"
    "  A site is the innermost frame that is neither the allocator nor a wrapper\n"
    "  (xmalloc, g_malloc, zmalloc, sqlite3Malloc, PyMem_Malloc, operator new,\n"
    "  std::allocator, ...): a wrapper is charged to its caller, and the report says how much.\n"
    "  --sample TYPE  alloc_space, alloc_objects, inuse_space or inuse_objects (default:\n"
    "                 the profile's default type, else inuse_space); memtally's profiles also\n"
    "                 have alloc_held_space and inuse_held_space: the bytes of the blocks\n"
    "                 handed out, size-class rounding included (space counts bytes requested)\n"
    "  --by KEY       function (default), line, stack (the site and its callers), caller\n"
    "                 (the frame that called the site), region, thread, or size (average\n"
    "                 block size of each stack, in powers of two)\n"
    "  --top N        rows to print (default 20)\n"
    "  --json         machine-readable output (--by stack adds each stack as an array of frames)\n"
    "  --lifetimes    how long each site's blocks live, from the lifetimes profile (given, or the\n"
    "                 PREFIX.PROGRAM.PID.lifetimes.pb.gz beside an exit profile): objects, median\n"
    "                 and p90 lifetime, shares freed within 1 ms and 100 ms, in use at the end,\n"
    "                 freed by another thread, the sites that free them; rules die-young,\n"
    "                 die-together (a region would free them in one call), long-lived\n"
    "view options (report, diff and flame; REGEX is a POSIX extended expression, each repeatable):\n"
    "  --skip REGEX   functions matching are wrappers too, charged to their callers\n"
    "  --no-fold      keep wrappers as sites\n"
    "  --focus REGEX  only stacks with a frame matching\n"
    "  --ignore REGEX leave out stacks with a frame matching\n"
    "  --hide REGEX   leave frames matching out of every stack\n"
    "  --no-symbolize keep the names in the profile; by default addresses in objects still on\n"
    "                 this machine with the same build id are named again from their symbols and\n"
    "                 DWARF (inlined calls as frames of their own, file and line), also from a\n"
    "                 separate debug file found by build id or .gnu_debuglink; C++ names demangled\n"
    "  --debug-dir DIR  search DIR like /usr/lib/debug for debug files (colon-separated list)\n"
    "  --max-size N   refuse a profile over N bytes, in the file or inflated (default 1G; K/M/G)\n"
    "  --max-frames N refuse a sample of more than N frames (default 65536)\n"
    "  An address no name is found for is shown as OBJECT+0xOFFSET (for addr2line -e OBJECT).\n";

static const char *usage_diff =
    "usage: memtally diff BASE NEW [--sample TYPE] [--by KEY] [--top N] [--json] [view options]\n"
    "  The per-site change from BASE to NEW, sorted by absolute change: for two\n"
    "  windows of one run or for two builds. Growing in-use sites are flagged.\n";

static const char *usage_flame =
    "usage: memtally flame FILE [--sample TYPE] [view options] -o OUT.html\n"
    "  Writes a self-contained flame graph: click a frame to zoom, type to search,\n"
    "  hover for bytes, objects and percent. Everything is inline (no network).\n";

static const char *usage_merge =
    "usage: memtally merge FILE FILE... -o OUT.pb.gz\n"
    "  Merges profiles of one kind (the same sample types) into one, as pprof does:\n"
    "  samples with the same stack (the same functions and lines, or addresses when\n"
    "  unsymbolized) and labels are summed. For the processes of one run\n"
    "  (memtally merge prof/prof.cc1.*.exit.pb.gz -o cc1.pb.gz) or for runs of one program.\n"
    "  --max-size N, --max-frames N as for report.\n";

static const char *usage_symbolize =
    "usage: memtally symbolize IN -o OUT.pb.gz [--debug-dir DIR]\n"
    "  Names IN's addresses again from the objects it mapped, where they are still on this\n"
    "  machine with the same build id (symbol tables, DWARF, separate debug files by build id\n"
    "  or .gnu_debuglink, compressed sections; inlined calls as frames of their own; C++\n"
    "  names demangled), and writes the result for any pprof tool. Mappings and\n"
    "  addresses are kept. Says how many locations were named.\n"
    "  --debug-dir DIR  also search DIR like /usr/lib/debug (colon-separated list)\n";

static const char *usage_stats =
    "usage: memtally stats FILE\n"
    "  Prints the allocator statistics the library wrote at exit beside its profiles\n"
    "  (PREFIX.PROGRAM.PID.stats.json, whenever MEMTALLY_PROF_OUT is set, as memtally run does).\n";

static const char *usage_push =
    "usage: memtally push --to URL [--format pyroscope|parca] [--app NAME] [--label K=V]...\n"
    "                     [--tenant ID] [--retries N] [--timeout SECONDS] FILE...|--watch DIR [--once]\n"
    "  Uploads profiles to a continuous-profiling server over plain HTTP:\n"
    "  pyroscope: POST URL/ingest?name=APP.heap{K=V,...}&from=&until=&format=pprof,\n"
    "             multipart field 'profile' (+ 'sample_type_config'); --tenant sends X-Scope-OrgID\n"
    "  parca:     POST URL/profiles/writeraw, JSON with the profile base64 in rawProfile\n"
    "  A refused connection, a timeout or a 5xx answer is retried with backoff\n"
    "  (0.5 s doubling to 30 s); files are only read, never moved or deleted.\n"
    "  --to URL          http://HOST[:PORT][/BASE]\n"
    "  --format F        pyroscope (default) or parca\n"
    "  --app NAME        the application name (default: the program's name in the file name)\n"
    "  --label K=V       a label on every upload (repeatable; K: letters, digits, _ and .)\n"
    "  --tenant ID       the tenant (Pyroscope's X-Scope-OrgID header, Parca's tenant field)\n"
    "  --retries N       further attempts after a failure (default 5)\n"
    "  --timeout SECONDS for each attempt to connect, send and be answered (default 10)\n"
    "  --watch DIR       push each *.pb.gz that appears in DIR once (oldest first; pushed names\n"
    "                    kept in DIR/.memtally-pushed) until SIGINT or SIGTERM\n"
    "  --once            with --watch: one pass over DIR, then exit\n"
    "  Exit status: 0 all pushed, 1 some not accepted after the retries, 2 bad input.\n";

static int fail(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "memtally: ");
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  return 2;
}

/* --max-size or --max-frames with its value (K/M/G suffixes): 0, or 2 after one line. */
static int parse_limit(const char *opt, const char *value) {
  char *end;
  unsigned long long n = strtoull(value, &end, 10);
  unsigned long long unit = *end == 'K' ? 1ULL << 10 : *end == 'M' ? 1ULL << 20 : *end == 'G' ? 1ULL << 30 : 1;
  if (unit > 1) end++;
  if (*end || n == 0 || n > (1ULL << 40) / unit) return fail("%s wants a positive number, not '%s'", opt, value);
  if (opt[6] == 's') mtt_limit.max_bytes = (size_t)(n * unit);
  else mtt_limit.max_frames = (size_t)(n * unit);
  return 0;
}

static int want_help(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) return 0;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
  }
  return 0;
}

/* How load() names addresses again (--no-symbolize, --debug-dir). */
static mtt_sym_options sym_opts = {1, NULL};

/* Common options of report, diff and flame. Positional arguments go to files. */
static int parse_opts(int argc, char **argv, mtt_options *o, const char **files, int nfiles, const char **outpath,
                      const char *usage) {
  int got = 0;
  memset(o, 0, sizeof *o);
  o->top = 20;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--sample") == 0 && i + 1 < argc) {
      o->sample = argv[++i];
      static const char *known[] = {"alloc_space",      "alloc_objects",   "inuse_space",
                                    "inuse_objects",    "alloc_held_space", "inuse_held_space"};
      int ok = 0;
      for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) ok |= strcmp(o->sample, known[k]) == 0;
      if (!ok)
        return fail("unknown sample type '%s' (alloc_space, alloc_objects, inuse_space, inuse_objects, "
                    "alloc_held_space, inuse_held_space)%s", o->sample, "");
    } else if (strcmp(a, "--by") == 0 && i + 1 < argc) {
      const char *b = argv[++i];
      if (strcmp(b, "function") == 0) o->by = MTT_BY_FUNCTION;
      else if (strcmp(b, "line") == 0) o->by = MTT_BY_LINE;
      else if (strcmp(b, "stack") == 0) o->by = MTT_BY_STACK;
      else if (strcmp(b, "region") == 0) o->by = MTT_BY_REGION;
      else if (strcmp(b, "caller") == 0) o->by = MTT_BY_CALLER;
      else if (strcmp(b, "thread") == 0) o->by = MTT_BY_THREAD;
      else if (strcmp(b, "size") == 0) o->by = MTT_BY_SIZE;
      else return fail("unknown grouping '%s' (function, line, stack, caller, region, thread, size)%s", b, "");
    } else if ((strcmp(a, "--skip") == 0 || strcmp(a, "--focus") == 0 || strcmp(a, "--ignore") == 0 ||
                strcmp(a, "--hide") == 0) && i + 1 < argc) {
      mtt_pattern_list *l = a[2] == 's' ? &o->skip : a[2] == 'f' ? &o->focus : a[2] == 'i' ? &o->ignore : &o->hide;
      const char *re = argv[++i];
      if (l->n == MTT_MAX_PATTERNS) return fail("at most 16 patterns for %s%s", a, "");
      char why[128];
      int e = regcomp(&l->re[l->n], re, REG_EXTENDED | REG_NOSUB);
      if (e != 0) {
        regerror(e, &l->re[l->n], why, sizeof why);
        return fail("%s: not a regular expression: %s", a, why);
      }
      l->n++;
    } else if (strcmp(a, "--lifetimes") == 0) {
      o->lifetimes = 1;
    } else if (strcmp(a, "--no-fold") == 0) {
      o->no_fold = 1;
    } else if (strcmp(a, "--no-symbolize") == 0) {
      sym_opts.use_files = 0;
    } else if (strcmp(a, "--debug-dir") == 0 && i + 1 < argc) {
      sym_opts.debug_dirs = argv[++i];
    } else if (strcmp(a, "--top") == 0 && i + 1 < argc) {
      char *end;
      long n = strtol(argv[++i], &end, 10);
      if (*end || n < 1 || n > 1000000) return fail("--top wants a number from 1, not '%s'%s", argv[i], "");
      o->top = (int)n;
    } else if (strcmp(a, "--json") == 0) {
      o->json = 1;
    } else if ((strcmp(a, "--max-size") == 0 || strcmp(a, "--max-frames") == 0) && i + 1 < argc) {
      if (parse_limit(a, argv[++i]) != 0) return 2;
    } else if (strcmp(a, "-o") == 0 && outpath != NULL && i + 1 < argc) {
      *outpath = argv[++i];
    } else if (a[0] == '-' && a[1] != 0) {
      fprintf(stderr, "memtally: unknown option '%s'\n%s", a, usage);
      return 2;
    } else if (got < nfiles) {
      files[got++] = a;
    } else {
      return fail("unexpected argument '%s'%s", a, "");
    }
  }
  if (got < nfiles) {
    fprintf(stderr, "memtally: missing profile file\n%s", usage);
    return 2;
  }
  return 0;
}

static int load(const char *path, mtt_profile *p) {
  char err[256];
  struct stat st;
  int big = stat(path, &st) == 0 && st.st_size > (16 << 20) && isatty(2);
  if (big) fprintf(stderr, "reading %s (%lld MiB)...", path, (long long)(st.st_size >> 20));
  int rc = mtt_profile_read(path, p, err, sizeof err);
  if (big) fprintf(stderr, rc == 0 ? " %zu samples\n" : "\n", p->nsamples);
  if (rc != 0) return fail("%s: %s", path, err);
  mtt_sym_stats ss;
  if (mtt_symbolize(p, &sym_opts, &ss) != 0) {
    mtt_profile_free(p);
    return fail("%s: out of memory naming its addresses%s", path, "");
  }
  return 0;
}

static int cmd_report(int argc, char **argv) {
  mtt_options o;
  const char *file;
  int rc = parse_opts(argc, argv, &o, &file, 1, NULL, usage_report);
  if (rc) return rc;
  /* --lifetimes on an exit profile reads the lifetimes profile beside it */
  char sibling[4096];
  const char *x = o.lifetimes ? strstr(file, ".exit.pb.gz") : NULL;
  if (x != NULL && (size_t)(x - file) + 20 < sizeof sibling) {
    snprintf(sibling, sizeof sibling, "%.*s.lifetimes.pb.gz", (int)(x - file), file);
    if (access(sibling, R_OK) == 0) file = sibling;
  }
  mtt_profile p;
  if (load(file, &p)) return 2;
  char err[256];
  if (o.lifetimes || mtt_is_lifetimes(&p)) rc = mtt_report_lifetimes(&p, &o, stdout, err, sizeof err);
  else rc = mtt_report(&p, &o, stdout, err, sizeof err);
  mtt_profile_free(&p);
  if (rc) return fail("%s: %s", file, err);
  return 0;
}

static int cmd_diff(int argc, char **argv) {
  mtt_options o;
  const char *files[2];
  int rc = parse_opts(argc, argv, &o, files, 2, NULL, usage_diff);
  if (rc) return rc;
  mtt_profile a, b;
  if (load(files[0], &a)) return 2;
  if (load(files[1], &b)) {
    mtt_profile_free(&a);
    return 2;
  }
  char err[256];
  rc = mtt_diff(&a, &b, &o, stdout, err, sizeof err);
  mtt_profile_free(&a);
  mtt_profile_free(&b);
  if (rc) return fail("%s%s", err, "");
  return 0;
}

static int cmd_flame(int argc, char **argv) {
  mtt_options o;
  const char *file, *outpath = NULL;
  int rc = parse_opts(argc, argv, &o, &file, 1, &outpath, usage_flame);
  if (rc) return rc;
  if (outpath == NULL) return fail("flame needs -o OUT.html%s%s", "", "");
  /* Only a regular file (or nothing) is replaced: never a device node, a
   * directory or a link (rename would replace the link itself). */
  struct stat st;
  if (lstat(outpath, &st) == 0 && !S_ISREG(st.st_mode))
    return fail("refusing to replace %s: %s", outpath, "not a regular file");
  mtt_profile p;
  if (load(file, &p)) return 2;
  char tmp[PATH_MAX];
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
    unsigned long long r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) r = (unsigned long long)time(NULL) * 2654435761u + (unsigned)attempt;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%d.%016llx", outpath, (int)getpid(), r);
    if (n <= 0 || n >= (int)sizeof tmp) {
      mtt_profile_free(&p);
      return fail("cannot write %s: %s", outpath, "path too long");
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (out == NULL) {
    int e = errno;
    if (fd >= 0) close(fd), unlink(tmp);
    mtt_profile_free(&p);
    return fail("cannot write %s: %s", outpath, strerror(e));
  }
  char err[256];
  rc = mtt_flame(&p, &o, out, err, sizeof err);
  mtt_profile_free(&p);
  if (fclose(out) != 0 || rc != 0 || rename(tmp, outpath) != 0) {
    unlink(tmp);
    return fail("cannot write %s: %s", outpath, rc ? err : strerror(errno));
  }
  printf("flame graph: %s\n", outpath);
  return 0;
}

#ifndef MT_INSTALL_LIBDIR
#define MT_INSTALL_LIBDIR "lib"
#endif
#ifndef MT_SONAME
#define MT_SONAME "libmemtally.so.0"
#endif
#ifndef MT_VERSION_STRING
#define MT_VERSION_STRING "0.1.0"
#endif

/* The library to preload: MEMTALLY_LIB if set; else beside this program (a
 * build tree: build/memtally, build/libmemtally.so); else where an install
 * put it (P/bin/memtally, P/LIBDIR/libmemtally.so.0). */
static int find_library(char *out, size_t cap) {
  const char *env = getenv("MEMTALLY_LIB");
  if (env != NULL && env[0] != 0) {
    snprintf(out, cap, "%s", env);
    return access(out, R_OK);
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return -1;
  self[n] = 0;
  const char *dir = dirname(self);
  const char *tries[] = {"%s/" MT_SONAME, "%s/libmemtally.so", "%s/../" MT_INSTALL_LIBDIR "/" MT_SONAME,
                         "%s/../lib/" MT_SONAME};
  for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, tries[i], dir);
    if (access(path, R_OK) == 0) {
      char full[PATH_MAX];
      const char *use = realpath(path, full) != NULL ? full : path; /* absolute: children may chdir */
      if (strlen(use) >= cap) return -1;
      memcpy(out, use, strlen(use) + 1);
      return 0;
    }
  }
  snprintf(out, cap, "%s/../%s/%s", dir, MT_INSTALL_LIBDIR, MT_SONAME);
  return -1;
}

/* A file the library wrote: prof.PROGRAM.PID.KIND[.N].pb.gz or
 * prof.PROGRAM.PID.stats.json (PROGRAM may hold dots: read from the right). */
typedef struct run_file {
  char name[256];
  char program[80];
  int pid;
  char kind[16]; /* exit, window, peak, signal, dump, stats */
  long long size;
} run_file;

static int parse_run_file(const char *name, run_file *f) {
  size_t n = strlen(name);
  if (strncmp(name, "prof.", 5) != 0 || n >= sizeof f->name) return -1;
  char tmp[256];
  memcpy(tmp, name + 5, n - 4);
  char *tok[16];
  int nt = 0;
  for (char *p = strtok(tmp, "."); p && nt < 16; p = strtok(NULL, ".")) tok[nt++] = p;
  int k; /* index of the kind */
  if (nt >= 4 && strcmp(tok[nt - 1], "json") == 0 && strcmp(tok[nt - 2], "stats") == 0) k = nt - 2;
  else if (nt >= 5 && strcmp(tok[nt - 1], "gz") == 0 && strcmp(tok[nt - 2], "pb") == 0)
    k = isdigit((unsigned char)tok[nt - 3][0]) ? nt - 4 : nt - 3;
  else return -1;
  if (k < 2 || !isdigit((unsigned char)tok[k - 1][0])) return -1;
  memset(f, 0, sizeof *f);
  memcpy(f->name, name, n + 1);
  snprintf(f->kind, sizeof f->kind, "%s", tok[k]);
  f->pid = atoi(tok[k - 1]);
  size_t at = 0;
  for (int i = 0; i < k - 1; i++) at += (size_t)snprintf(f->program + at, sizeof f->program - at, "%s%s", i ? "." : "", tok[i]);
  return 0;
}

static int run_file_cmp(const void *a, const void *b) {
  const run_file *x = a, *y = b;
  int c = strcmp(x->program, y->program);
  if (c) return c;
  if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
  return strcmp(x->name, y->name);
}


/* After a run: every file sorted with its size; the process that allocated
 * most (by its exit profile), summarized; the others counted; processes with
 * statistics but no exit profile named. */
static void summarize_run(const char *dir, int child, int status) {
  static run_file files[4096];
  size_t nf = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL && nf < sizeof files / sizeof files[0]) {
    if (parse_run_file(e->d_name, &files[nf]) != 0) continue;
    char path[PATH_MAX + 300];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    files[nf].size = stat(path, &st) == 0 ? (long long)st.st_size : -1;
    nf++;
  }
  if (d) closedir(d);
  qsort(files, nf, sizeof files[0], run_file_cmp);
  printf("\nmemtally: %zu files in %s:\n", nf, dir);
  const size_t shown = nf > 40 ? 36 : nf; /* a build of many processes: the first ones, then a count */
  long long rest = 0;
  for (size_t i = 0; i < nf; i++) {
    char sz[32];
    if (i >= shown) {
      rest += files[i].size > 0 ? files[i].size : 0;
      continue;
    }
    mtt_human_size(sz, sizeof sz, (double)files[i].size);
    printf("  %-60s %10s\n", files[i].name, sz);
  }
  if (shown < nf) {
    char sz[32];
    mtt_human_size(sz, sizeof sz, (double)rest);
    printf("  ... and %zu more files (%s; ls %s)\n", nf - shown, sz, dir);
  }
  /* the processes: the one whose exit profile allocated most is summarized
   * (by the profile: a forked child's statistics include its parent's
   * counters from before the fork, its profile starts empty) */
  int best = -1, nproc = 0;
  double best_bytes = -1;
  for (size_t i = 0; i < nf; i++) {
    if (strcmp(files[i].kind, "exit") != 0) continue;
    nproc++;
    char path[PATH_MAX + 300], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
    mtt_profile p;
    if (mtt_profile_read(path, &p, err, sizeof err) != 0) continue;
    int t = mtt_profile_type(&p, "alloc_space");
    double b = t >= 0 ? mtt_type_total(&p, t) : 0;
    mtt_profile_free(&p);
    if (b > best_bytes || (b == best_bytes && files[i].pid == child)) best = (int)i, best_bytes = b;
  }
  for (size_t i = 0; i < nf; i++) { /* statistics without an exit profile: say so */
    if (strcmp(files[i].kind, "stats") != 0) continue;
    int has_exit = 0;
    for (size_t j = 0; j < nf; j++)
      has_exit |= files[j].pid == files[i].pid && strcmp(files[j].kind, "exit") == 0;
    if (!has_exit) printf("  (process %s %d wrote statistics but no exit profile)\n", files[i].program, files[i].pid);
  }
  if (best < 0) {
    if (WIFSIGNALED(status))
      printf("(no profile from process %d: it was killed by signal %d)\n", child, WTERMSIG(status));
    else
      printf("(no profile from process %d: it did not reach the library's exit handler, or it was not "
             "dynamically linked)\n", child);
    return;
  }
  char exitprof[PATH_MAX + 300], statsfile[PATH_MAX + 300], amount[32];
  snprintf(exitprof, sizeof exitprof, "%s/%s", dir, files[best].name);
  snprintf(statsfile, sizeof statsfile, "%s/prof.%s.%d.stats.json", dir, files[best].program, files[best].pid);
  mtt_human_size(amount, sizeof amount, best_bytes);
  printf("\nmemtally: the process that allocated most: %s %d (%s sampled allocations)", files[best].program,
         files[best].pid, amount);
  if (nproc > 1) printf("; %d other process%s wrote profiles too", nproc - 1, nproc - 1 == 1 ? "" : "es");
  printf("\n");
  if (access(exitprof, R_OK) == 0) {
    mtt_profile p;
    char err[256];
    mtt_sym_stats ss;
    int ok = mtt_profile_read(exitprof, &p, err, sizeof err) == 0;
    if (ok && mtt_symbolize(&p, &sym_opts, &ss) != 0) { /* names as the profile has them are better than none */
      mtt_profile_free(&p);
      ok = mtt_profile_read(exitprof, &p, err, sizeof err) == 0;
    }
    if (ok) {
      mtt_options o = {0};
      o.top = 10;
      const char *kinds[2] = {"alloc_space", "inuse_space"};
      for (int k = 0; k < 2; k++) {
        o.sample = kinds[k];
        printf("\n");
        int t = mtt_profile_type(&p, kinds[k]);
        if (k == 0 && t >= 0 && mtt_type_total(&p, t) == 0) {
          printf("alloc_space: no allocation was sampled (--rate 1 records every one)\n");
          break;
        }
        if (k == 1 && t >= 0 && mtt_type_total(&p, t) == 0) {
          printf("inuse_space: nothing sampled was in use at exit (the allocations are above)\n");
          break;
        }
        if (mtt_report(&p, &o, stdout, err, sizeof err) != 0) break;
      }
      mtt_profile_free(&p);
      char life[PATH_MAX + 300];
      snprintf(life, sizeof life, "%s/prof.%s.%d.lifetimes.pb.gz", dir, files[best].program, files[best].pid);
      if (access(life, R_OK) == 0) printf("\n(how long these blocks live, and who frees them: memtally report %s --lifetimes)\n", exitprof);
    } else {
      fprintf(stderr, "memtally: %s: %s\n", exitprof, err);
    }
  }
  char err[256];
  if (access(statsfile, R_OK) != 0) return;
  printf("\n");
  if (mtt_stats_print(statsfile, stdout, err, sizeof err) != 0) fprintf(stderr, "memtally: %s: %s\n", statsfile, err);
}

static int cmd_run(int argc, char **argv) {
  const char *rate = NULL, *interval = NULL, *outdir = "memtally-profiles";
  int peak = 0, i = 0;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "--rate") == 0 && i + 1 < argc) rate = argv[++i];
    else if (strcmp(a, "--interval") == 0 && i + 1 < argc) interval = argv[++i];
    else if (strcmp(a, "--out") == 0 && i + 1 < argc) outdir = argv[++i];
    else if (strcmp(a, "--peak") == 0) peak = 1;
    else if (a[0] == '-') {
      fprintf(stderr, "memtally: unknown option '%s'\n%s", a, usage_run);
      return 2;
    } else break; /* the program, without "--" */
  }
  if (i >= argc) {
    fprintf(stderr, "memtally: run needs a program\n%s", usage_run);
    return 2;
  }
  char *end;
  if (rate && (strtoll(rate, &end, 10) < 1 || *end)) return fail("--rate wants a number of bytes, not '%s'%s", rate, "");
  if (interval && (strtoll(interval, &end, 10) < 1 || *end))
    return fail("--interval wants a number of seconds, not '%s'%s", interval, "");
  char lib[PATH_MAX];
  if (find_library(lib, sizeof lib) != 0) return fail("cannot find %s%s", lib, "");
  if (mkdir(outdir, 0755) != 0 && errno != EEXIST) return fail("cannot create %s: %s", outdir, strerror(errno));
  char dir[PATH_MAX], prefix[PATH_MAX + 8];
  if (realpath(outdir, dir) == NULL) return fail("cannot use %s: %s", outdir, strerror(errno));
  snprintf(prefix, sizeof prefix, "%s/prof", dir);
  const char *old = getenv("LD_PRELOAD");
  char preload[2 * PATH_MAX];
  snprintf(preload, sizeof preload, "%s%s%s", lib, old && *old ? ":" : "", old ? old : "");
  setenv("LD_PRELOAD", preload, 1);
  setenv("MEMTALLY_PROF_OUT", prefix, 1);
  setenv("MEMTALLY_PROF", "1", 1);
  if (rate) setenv("MEMTALLY_PROF_RATE", rate, 1);
  if (interval) setenv("MEMTALLY_PROF_INTERVAL", interval, 1);
  if (peak) setenv("MEMTALLY_PROF_PEAK", "1", 1);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return fail("cannot fork: %s%s", strerror(errno), "");
  if (pid == 0) {
    execvp(argv[i], argv + i);
    fprintf(stderr, "memtally: cannot run %s: %s\n", argv[i], strerror(errno));
    _exit(127);
  }
  signal(SIGINT, SIG_IGN); /* the program gets the terminal's signals */
  signal(SIGQUIT, SIG_IGN);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  unsetenv("LD_PRELOAD");
  summarize_run(dir, (int)pid, status);
  return code;
}

static int cmd_merge(int argc, char **argv) {
  const char *outpath = NULL;
  const char *files[1024];
  size_t n = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-o") == 0 && i + 1 < argc) outpath = argv[++i];
    else if ((strcmp(a, "--max-size") == 0 || strcmp(a, "--max-frames") == 0) && i + 1 < argc) {
      if (parse_limit(a, argv[++i]) != 0) return 2;
    } else if (a[0] == '-' && a[1] != 0) {
      fprintf(stderr, "memtally: unknown option '%s'\n%s", a, usage_merge);
      return 2;
    } else if (n < sizeof files / sizeof files[0]) {
      files[n++] = a;
    } else {
      return fail("merge takes at most 1024 files%s%s", "", "");
    }
  }
  if (outpath == NULL || n == 0) {
    fprintf(stderr, "memtally: merge needs profiles and -o OUT\n%s", usage_merge);
    return 2;
  }
  mtt_profile *in = calloc(n, sizeof *in);
  if (in == NULL) return fail("out of memory%s%s", "", "");
  char err[512];
  int rc = 0;
  size_t got = 0;
  for (; got < n; got++) {
    if (mtt_profile_read(files[got], &in[got], err, sizeof err) != 0) {
      rc = fail("%s: %s", files[got], err);
      break;
    }
  }
  if (rc == 0) {
    if (mtt_merge(in, n, outpath, err, sizeof err) != 0) rc = fail("merge: %s%s", err, "");
    else printf("merged %zu profiles: %s\n", n, outpath);
  }
  for (size_t i = 0; i < got; i++) mtt_profile_free(&in[i]);
  free(in);
  return rc;
}

static int cmd_symbolize(int argc, char **argv) {
  const char *in = NULL, *outpath = NULL;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-o") == 0 && i + 1 < argc) outpath = argv[++i];
    else if (strcmp(a, "--debug-dir") == 0 && i + 1 < argc) sym_opts.debug_dirs = argv[++i];
    else if ((strcmp(a, "--max-size") == 0 || strcmp(a, "--max-frames") == 0) && i + 1 < argc) {
      if (parse_limit(a, argv[++i]) != 0) return 2;
    } else if (a[0] == '-' && a[1] != 0) {
      fprintf(stderr, "memtally: unknown option '%s'\n%s", a, usage_symbolize);
      return 2;
    } else if (in == NULL) {
      in = a;
    } else {
      return fail("symbolize takes one profile%s%s", "", "");
    }
  }
  if (in == NULL || outpath == NULL) {
    fprintf(stderr, "memtally: symbolize needs a profile and -o OUT\n%s", usage_symbolize);
    return 2;
  }
  mtt_profile p;
  char err[512];
  if (mtt_profile_read(in, &p, err, sizeof err) != 0) return fail("%s: %s", in, err);
  mtt_sym_stats st;
  if (mtt_symbolize(&p, &sym_opts, &st) != 0) {
    mtt_profile_free(&p);
    return fail("%s: out of memory naming its addresses%s", in, "");
  }
  int rc = mtt_write_profiles(&p, 1, outpath, p.comment, err, sizeof err);
  if (rc == 0)
    printf("%s: %zu of %zu locations named (%zu from %zu objects read again, %zu inlined frames added, %zu names "
           "demangled; %zu objects not on this machine, %zu changed since)\n",
           outpath, st.named, p.nlocations, st.locations, st.objects, st.inlined, st.demangled, st.objects_missing,
           st.objects_changed);
  mtt_profile_free(&p);
  if (rc != 0) return fail("%s: %s", outpath, err);
  return 0;
}

static int cmd_stats(int argc, char **argv) {
  if (argc != 1 || argv[0][0] == '-') {
    fprintf(stderr, "memtally: stats takes one file\n%s", usage_stats);
    return 2;
  }
  char err[256];
  if (mtt_stats_print(argv[0], stdout, err, sizeof err) != 0) return fail("%s: %s", argv[0], err);
  return 0;
}

static int parse_count(const char *opt, const char *v, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != 0 || n < lo || n > hi) {
    fprintf(stderr, "memtally: %s wants a whole number from %d to %d, not '%s'\n", opt, lo, hi, v);
    return -1;
  }
  *out = (int)n;
  return 0;
}

static int label_ok(const char *k, size_t klen, const char *v) {
  if (klen == 0 || !(isalpha((unsigned char)k[0]) || k[0] == '_')) return 0;
  for (size_t i = 0; i < klen; i++)
    if (!(isalnum((unsigned char)k[i]) || k[i] == '_' || k[i] == '.')) return 0;
  if (*v == 0) return 0;
  for (; *v; v++)
    if (strchr(",{}=\"", *v) || (unsigned char)*v < 0x20) return 0; /* would break Pyroscope's name{k=v} */
  return 1;
}

static int cmd_push(int argc, char **argv) {
  mtt_push_options o;
  memset(&o, 0, sizeof o);
  o.retries = 5;
  o.timeout_s = 10;
  const char *files[1024];
  size_t n = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--once") == 0) {
      o.once = 1;
      continue;
    }
    if (a[0] == '-' && a[1] == '-' && v == NULL) {
      fprintf(stderr, "memtally: %s needs a value\n%s", a, usage_push);
      return 2;
    }
    if (strcmp(a, "--to") == 0) o.to = v, i++;
    else if (strcmp(a, "--app") == 0) o.app = v, i++;
    else if (strcmp(a, "--tenant") == 0) {
      o.tenant = v, i++;
      for (const char *c = v; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) return fail("--tenant: no control characters%s%s", "", "");
      if (*v == 0) return fail("--tenant: an empty tenant%s%s", "", "");
    }
    else if (strcmp(a, "--watch") == 0) o.watch = v, i++;
    else if (strcmp(a, "--format") == 0) {
      i++;
      if (strcmp(v, "pyroscope") == 0) o.format = MTT_PUSH_PYROSCOPE;
      else if (strcmp(v, "parca") == 0) o.format = MTT_PUSH_PARCA;
      else return fail("--format wants pyroscope or parca, not '%s'%s", v, "");
    } else if (strcmp(a, "--retries") == 0) {
      if (parse_count(a, argv[++i], 0, 100, &o.retries) != 0) return 2;
    } else if (strcmp(a, "--timeout") == 0) {
      if (parse_count(a, argv[++i], 1, 3600, &o.timeout_s) != 0) return 2;
    } else if (strcmp(a, "--label") == 0) {
      i++;
      const char *eq = strchr(v, '=');
      if (eq == NULL || !label_ok(v, (size_t)(eq - v), eq + 1))
        return fail("--label wants K=V (K: letters, digits, _ and .; V without , { } = or quotes), not '%s'%s", v, "");
      if (o.nlabels == MTT_PUSH_MAX_LABELS) return fail("at most 32 labels%s%s", "", "");
      char *k = strndup(v, (size_t)(eq - v));
      if (k == NULL) return fail("out of memory%s%s", "", "");
      o.label_keys[o.nlabels] = k;
      o.label_values[o.nlabels++] = eq + 1;
    } else if (a[0] == '-' && a[1] != 0) {
      fprintf(stderr, "memtally: unknown option '%s'\n%s", a, usage_push);
      return 2;
    } else if (n < sizeof files / sizeof files[0]) {
      files[n++] = a;
    } else {
      return fail("push takes at most 1024 files at once%s%s", "", "");
    }
  }
  if (o.to == NULL || (n == 0) == (o.watch == NULL)) {
    fprintf(stderr, "memtally: push needs --to URL and either files or --watch DIR\n%s", usage_push);
    return 2;
  }
  if (o.once && o.watch == NULL) return fail("--once goes with --watch%s%s", "", "");
  int rc = mtt_push(&o, files, n);
  for (int i = 0; i < o.nlabels; i++) free((char *)o.label_keys[i]);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage_main, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("memtally " MT_VERSION_STRING "\n");
    return 0;
  }
  struct {
    const char *name, *usage;
    int (*fn)(int, char **);
  } cmds[] = {{"run", usage_run, cmd_run},
              {"report", usage_report, cmd_report},
              {"diff", usage_diff, cmd_diff},
              {"flame", usage_flame, cmd_flame},
              {"merge", usage_merge, cmd_merge},
              {"stats", usage_stats, cmd_stats},
              {"push", usage_push, cmd_push},
              {"symbolize", usage_symbolize, cmd_symbolize}};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    if (strcmp(cmd, cmds[i].name) != 0) continue;
    if (want_help(argc - 2, argv + 2)) {
      fputs(cmds[i].usage, stdout);
      return 0;
    }
    return cmds[i].fn(argc - 2, argv + 2);
  }
  fprintf(stderr, "memtally: unknown command '%s'\n%s", cmd, usage_main);
  return 2;
}
