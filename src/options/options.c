/* options.c -- MEMTALLY_* environment options: one table, parsed once
 *
 * Booleans accept 1/0/on/off/yes/no/true/false; sizes accept K, M, G
 * suffixes (powers of 1024). An invalid value prints one warning naming the
 * variable and keeps the default. Nothing here allocates. */
#include "options.h"

#include <stdio.h>
#include <string.h>

#include "memtally.h"
#include "../os/os.h"

typedef enum { MT_KIND_BOOL, MT_KIND_INT, MT_KIND_SIZE, MT_KIND_MODE, MT_KIND_TEXT, MT_KIND_PERM, MT_KIND_SIGNAL, MT_KIND_PERCENT } mt_option_kind;

typedef struct mt_option_desc {
  const char *name;
  mt_option_kind kind;
  long long def;
  long long min, max;
  const char *default_text;
  const char *description;
} mt_option_desc;

/* Defaults of the options that MEMTALLY_MODE chooses, by mode. */
static const long long mt_mode_defaults[3][3] = {
    /* purge delay ms, segment cache, huge cache bytes */
    [MT_MODE_SPEED] = {1000, 32, 256LL << 20},
    [MT_MODE_BALANCED] = {100, 8, 64LL << 20},
    [MT_MODE_LEAN] = {10, 0, 16LL << 20},
};
static const char *const mt_mode_names[3] = {"speed", "balanced", "lean"};

static const mt_option_desc mt_options[MT_OPT_COUNT] = {
    [MT_OPT_MODE] = {"MEMTALLY_MODE", MT_KIND_MODE, MT_MODE_BALANCED, 0, 2, "balanced",
                     "speed, balanced or lean: how long free memory stays committed and how much is cached (see Modes)."},
    [MT_OPT_STATS] = {"MEMTALLY_STATS", MT_KIND_BOOL, 0, 0, 1, "0",
                      "Print the statistics table to stderr at exit."},
    [MT_OPT_ABORT] = {"MEMTALLY_ABORT", MT_KIND_BOOL, 1, 0, 1, "1",
                      "Abort after reporting heap misuse (double free, foreign pointer); 0 reports and carries on."},
    [MT_OPT_PURGE_DELAY] = {"MEMTALLY_PURGE_DELAY", MT_KIND_INT, 100, -1, 3600000, "1000 / 100 / 10",
                            "Milliseconds a free page stays committed before it is returned to the OS (0: at once, -1: never)."},
    [MT_OPT_SEGMENT_CACHE] = {"MEMTALLY_SEGMENT_CACHE", MT_KIND_INT, 8, 0, 1024, "32 / 8 / 0",
                              "Empty 4 MiB segments kept mapped process-wide for reuse."},
    [MT_OPT_HUGE_CACHE] = {"MEMTALLY_HUGE_CACHE", MT_KIND_SIZE, 64LL << 20, 0, 1LL << 40, "256M / 64M / 16M",
                           "Bytes of freed huge blocks (over 1 MiB) kept mapped for reuse."},
    [MT_OPT_MEMLIMIT] = {"MEMTALLY_MEMLIMIT", MT_KIND_SIZE, 0, 0, 1LL << 50, "0",
                         "Soft limit on committed bytes (0: none); above it free and cached memory is purged at once, and eagerly until back under. Live data is never refused."},
    [MT_OPT_PROF] = {"MEMTALLY_PROF", MT_KIND_BOOL, 1, 0, 1, "1", "Sample allocations for the heap profiler (0: off)."},
    [MT_OPT_PROF_RATE] = {"MEMTALLY_PROF_RATE", MT_KIND_SIZE, 512 * 1024, 1, 1LL << 40, "512K",
                          "Mean bytes allocated between two samples; 1 records every allocation exactly."},
    [MT_OPT_PROF_OUT] = {"MEMTALLY_PROF_OUT", MT_KIND_TEXT, 0, 0, 0, "(unset)",
                         "Path prefix for profiles: PREFIX.PROGRAM.PID.exit.pb.gz at exit, and the interval, peak and signal profiles; also installs the MEMTALLY_PROF_SIGNAL handler."},
    [MT_OPT_PROF_INTERVAL] = {"MEMTALLY_PROF_INTERVAL", MT_KIND_INT, 0, 0, 86400 * 365, "0",
                              "Seconds between window profiles PREFIX.PROGRAM.PID.window.N.pb.gz (allocations of that window, in-use at its end); 0: none."},
    [MT_OPT_PROF_PEAK] = {"MEMTALLY_PROF_PEAK", MT_KIND_BOOL, 0, 0, 1, "0",
                          "Write PREFIX.PROGRAM.PID.peak.pb.gz with the in-use profile at the high-water mark (rewritten when a new peak is 2% higher)."},
    [MT_OPT_FILE_MODE] = {"MEMTALLY_FILE_MODE", MT_KIND_PERM, 0600, 0, 0666, "0600",
                          "Permissions, in octal, of the files memtally writes (profiles, statistics dumps): read and write bits only, applied as given (the umask is not)."},
    [MT_OPT_REGION_DEBUG] = {"MEMTALLY_REGION_DEBUG", MT_KIND_BOOL, 0, 0, 1, "0",
                             "Regions: poison and protect released chunks (a use after reset faults, naming the region) and check a redzone after every block."},
    [MT_OPT_PROF_SIGNAL] = {"MEMTALLY_PROF_SIGNAL", MT_KIND_SIGNAL, 12, 0, 64, "SIGUSR2",
                            "Signal that writes a profile when MEMTALLY_PROF_OUT is set: a name (USR1, SIGUSR2, RTMIN+3) or number; 0: none. Without MEMTALLY_PROF_OUT no handler is installed."},
    [MT_OPT_PROF_LIMIT] = {"MEMTALLY_PROF_LIMIT", MT_KIND_PERCENT, 0, 0, 100, "0",
                           "Before the OOM killer: when bytes in use or committed cross this share (90%) of the cgroup's memory limit (or MEMTALLY_MEMLIMIT), write PREFIX.PROGRAM.PID.limit.N.pb.gz, and again at each further 5%; 0: off."},
    [MT_OPT_PROF_LIFETIMES] = {"MEMTALLY_PROF_LIFETIMES", MT_KIND_BOOL, 1, 0, 1, "1",
                               "Record how long sampled blocks live and which stacks free them; written at exit as PREFIX.PROGRAM.PID.lifetimes.pb.gz (memtally report --lifetimes)."},
    [MT_OPT_HTTP] = {"MEMTALLY_HTTP", MT_KIND_TEXT, 0, 0, 0, "(unset)",
                     "HOST:PORT to serve /debug/pprof/heap, /debug/pprof/allocs?seconds=N, /debug/pprof/lifetimes and /metrics on (127.0.0.1:0 picks a port, printed on stderr)."},
};

long long mt__opt[MT_OPT_COUNT];
const char *mt__opt_str[MT_OPT_COUNT];
static char mt_opt_text[MT_OPT_COUNT][MT_OPT_TEXT_MAX]; /* the copies (.bss: only used ones are touched) */
static _Atomic int mt_options_defaulted;

static _Atomic int mt_options_done;
static void mt_option_read(mt_option_id i);

static int mt_streq_nocase(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char x = (*a >= 'A' && *a <= 'Z') ? (char)(*a + 32) : *a;
    if (x != *b) return 0;
  }
  return *a == 0 && *b == 0;
}

int mt__option_parse(mt_option_id id, const char *text, long long *out) {
  const mt_option_desc *d = &mt_options[id];
  if (text == NULL) return -1;
  while (*text == ' ') text++;
  if (d->kind == MT_KIND_TEXT) return *text ? (*out = 1, 0) : -1;
  if (d->kind == MT_KIND_SIGNAL) {
    static const struct {
      const char *name;
      int sig;
    } names[] = {{"hup", 1}, {"int", 2}, {"quit", 3}, {"usr1", 10}, {"usr2", 12}, {"alrm", 14}, {"term", 15},
                 {"urg", 23}, {"prof", 27}, {"winch", 28}, {"pwr", 30}};
    const char *n = text;
    if ((n[0] == 'S' || n[0] == 's') && (n[1] == 'I' || n[1] == 'i') && (n[2] == 'G' || n[2] == 'g')) n += 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (mt_streq_nocase(n, names[i].name)) return *out = names[i].sig, 0;
    char low[8] = {0};
    for (int i = 0; i < 6 && n[i]; i++) low[i] = (n[i] >= 'A' && n[i] <= 'Z') ? (char)(n[i] + 32) : n[i];
    if (memcmp(low, "rtmin+", 6) == 0) { /* SIGRTMIN+N, N counted from the kernel's 34 */
      long long k = 0;
      const char *s = n + 6;
      if (*s < '0' || *s > '9') return -1;
      while (*s >= '0' && *s <= '9' && k < 100) k = k * 10 + (*s++ - '0');
      if (*s != 0 || 34 + k > 64) return -1;
      return *out = 34 + k, 0;
    }
    /* else a number, below */
  }
  if (d->kind == MT_KIND_MODE) {
    for (int i = 0; i < 3; i++)
      if (mt_streq_nocase(text, mt_mode_names[i])) return *out = i, 0;
    return -1;
  }
  if (d->kind == MT_KIND_PERM) { /* octal, read and write bits only: 0600, 640, 0644 */
    unsigned long v = 0;
    const char *s = text;
    if (*s == 0) return -1;
    for (; *s >= '0' && *s <= '7' && v <= 07777; s++) v = v * 8 + (unsigned)(*s - '0');
    if (*s != 0 || (v & ~0666UL) != 0) return -1;
    *out = (long long)v;
    return 0;
  }
  if (d->kind == MT_KIND_BOOL) {
    static const char *yes[] = {"1", "on", "yes", "true"};
    static const char *no[] = {"0", "off", "no", "false"};
    for (int i = 0; i < 4; i++) {
      if (mt_streq_nocase(text, yes[i])) return *out = 1, 0;
      if (mt_streq_nocase(text, no[i])) return *out = 0, 0;
    }
    return -1;
  }
  int neg = 0;
  const char *s = text;
  if (d->kind == MT_KIND_PERCENT) { /* 90% or 90 */
    unsigned long v = 0;
    if (*s < '0' || *s > '9') return -1;
    while (*s >= '0' && *s <= '9' && v <= 1000) v = v * 10 + (unsigned)(*s++ - '0');
    if (*s == '%') s++;
    if (*s != 0 || v > 100) return -1;
    *out = (long long)v;
    return 0;
  }
  if (*s == '-') neg = 1, s++;
  if (*s < '0' || *s > '9') return -1;
  unsigned long long v = 0;
  while (*s >= '0' && *s <= '9') {
    if (v > (1ULL << 50)) return -1; /* far beyond any option's range */
    v = v * 10 + (unsigned)(*s++ - '0');
  }
  if (d->kind == MT_KIND_SIZE) {
    int shift = 0;
    switch (*s) {
      case 'k': case 'K': shift = 10; s++; break;
      case 'm': case 'M': shift = 20; s++; break;
      case 'g': case 'G': shift = 30; s++; break;
      default: break;
    }
    if (shift && (*s == 'i' || *s == 'I')) s++;
    if (shift && (*s == 'b' || *s == 'B')) s++;
    if (v > (1ULL << 50) >> shift) return -1;
    v <<= shift;
  }
  if (*s != 0) return -1;
  long long r = neg ? -(long long)v : (long long)v;
  if (r < d->min || r > d->max) return -1;
  *out = r;
  return 0;
}

/* The value an option falls back to, as text: the mode's name, or the
 * number (sizes with a K/M/G suffix when exact). */
static void mt_option_value_text(int id, char *buf, size_t cap) {
  long long v = mt__opt[id];
  if (mt_options[id].kind == MT_KIND_MODE) {
    snprintf(buf, cap, "%s", mt_mode_names[v]);
    return;
  }
  if (mt_options[id].kind == MT_KIND_TEXT) {
    snprintf(buf, cap, "(unset)");
    return;
  }
  if (mt_options[id].kind == MT_KIND_PERM) {
    snprintf(buf, cap, "0%llo", (unsigned long long)v);
    return;
  }
  if (mt_options[id].kind == MT_KIND_SIGNAL) {
    snprintf(buf, cap, "%s", v == 12 ? "SIGUSR2" : v == 0 ? "0 (none)" : "");
    if (buf[0] == 0) snprintf(buf, cap, "%lld", v);
    return;
  }
  const char *suffix = "";
  if (mt_options[id].kind == MT_KIND_SIZE && v != 0) {
    if ((v & ((1LL << 30) - 1)) == 0) v >>= 30, suffix = "G";
    else if ((v & ((1LL << 20) - 1)) == 0) v >>= 20, suffix = "M";
    else if ((v & ((1LL << 10) - 1)) == 0) v >>= 10, suffix = "K";
  }
  snprintf(buf, cap, "%lld%s", v, suffix);
}

static void mt_option_warn(int id, const char *text) {
  char buf[512], def[32];
  mt_option_value_text(id, def, sizeof def);
  int n = snprintf(buf, sizeof buf, "memtally: warning: invalid value '%.200s' for %s; using the default %s\n", text,
                   mt_options[id].name, def);
  if (n > (int)sizeof buf - 1) n = (int)sizeof buf - 1;
  mt__os_write_err(buf, (size_t)n);
}

void mt__options_init(void) {
  if (mt_load(&mt_options_done)) return;
  if (!mt_load(&mt_options_defaulted)) {
    for (int i = 0; i < MT_OPT_COUNT; i++) mt__opt[i] = mt_options[i].def;
    mt_store(&mt_options_defaulted, 1);
  }
  extern char **environ;
  if (environ == NULL) return; /* too early: try again later */
  int expected = 0;
  if (!atomic_compare_exchange_strong(&mt_options_done, &expected, 1)) return;
  if (mt__os_secure()) return; /* setuid/setgid: MEMTALLY_* is the caller's, not the program's; defaults */
  mt_option_read(MT_OPT_MODE); /* first: the mode chooses the next defaults */
  const long long *md = mt_mode_defaults[mt__opt[MT_OPT_MODE]];
  mt__opt[MT_OPT_PURGE_DELAY] = md[0];
  mt__opt[MT_OPT_SEGMENT_CACHE] = md[1];
  mt__opt[MT_OPT_HUGE_CACHE] = md[2];
  for (int i = 0; i < MT_OPT_COUNT; i++)
    if (i != MT_OPT_MODE) mt_option_read((mt_option_id)i);
}

/* Read one option from the environment; a bad value warns and keeps the default. */
static void mt_option_read(mt_option_id i) {
  const char *text = mt__os_getenv(mt_options[i].name);
  if (text == NULL) return;
  long long v;
  if (mt__option_parse(i, text, &v) == 0) {
    mt__opt[i] = v;
    if (mt_options[i].kind == MT_KIND_TEXT) { /* a copy: the program may rewrite its environment */
      size_t n = strlen(text);
      if (n < MT_OPT_TEXT_MAX) memcpy(mt_opt_text[i], text, n + 1), text = mt_opt_text[i];
      mt__opt_str[i] = text; /* longer than any path: its user warns that it is too long */
    }
  } else {
    mt_option_warn(i, text);
  }
}

/* ---- public API ---- */

size_t mt_option_count(void) { return MT_OPT_COUNT; }

int mt_option_get_info(size_t index, mt_option_info *out) {
  if (index >= MT_OPT_COUNT || out == NULL) return -1;
  out->name = mt_options[index].name;
  out->default_text = mt_options[index].default_text;
  out->description = mt_options[index].description;
  return 0;
}

long long mt_option_value(const char *name) {
  if (name == NULL) return -1;
  mt__options_init();
  for (int i = 0; i < MT_OPT_COUNT; i++) {
    const char *full = mt_options[i].name;
    if (strcmp(name, full) == 0 || strcmp(name, full + 9) == 0) return mt__opt[i];
  }
  return -1;
}
