/* export.c -- writing profiles: pprof encoding of a snapshot, and when to write
 *
 * A profile is written from a snapshot of the stack table, outside every
 * allocator lock: objects and build IDs are read, program counters
 * symbolized, the profile encoded (profile.proto), gzipped and written to
 * a temporary file renamed into place. Files: PREFIX.PID.exit.pb.gz at exit,
 * PREFIX.PID.window.N.pb.gz every MEMTALLY_PROF_INTERVAL seconds (alloc
 * figures of the window, in-use at its end), PREFIX.PID.peak.pb.gz at the
 * high-water mark, PREFIX.PID.signal.N.pb.gz on SIGUSR2 (the handler only
 * sets a flag; a helper thread writes). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../alloc/alloc.h"
#include "../options.h"
#include "../os/os.h"
#include "../out/buf.h"
#include "memtally.h"
#include "prof.h"
#include "symbolize.h"

/* ---- string and id tables built per profile ---- */

typedef struct mt_strtab {
  mt_buf text;     /* the strings, NUL-terminated, back to back */
  mt_buf offs;     /* uint32 offset of each string */
  mt_buf index;    /* open addressing: uint32 string number + 1 */
  size_t slots, count;
} mt_strtab;

static uint64_t mt_hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
  return h;
}

static uint64_t mt_str(mt_strtab *t, const char *s) {
  size_t n = strlen(s);
  if (t->count * 2 >= t->slots) { /* grow and rehash */
    size_t slots = t->slots ? t->slots * 2 : 4096;
    mt_buf idx = {0};
    uint32_t *v = mt__buf_reserve(&idx, slots * 4);
    if (v == NULL) return 0;
    memset(v, 0, slots * 4);
    idx.len = slots * 4;
    const uint32_t *offs = (const uint32_t *)t->offs.data;
    for (size_t i = 0; i < t->count; i++) {
      const char *x = (const char *)t->text.data + offs[i];
      for (size_t j = mt_hash_bytes(x, strlen(x)) & (slots - 1);; j = (j + 1) & (slots - 1))
        if (v[j] == 0) {
          v[j] = (uint32_t)i + 1;
          break;
        }
    }
    mt__buf_free(&t->index);
    t->index = idx;
    t->slots = slots;
  }
  uint32_t *v = (uint32_t *)t->index.data;
  size_t j = mt_hash_bytes(s, n) & (t->slots - 1);
  for (;; j = (j + 1) & (t->slots - 1)) {
    if (v[j] == 0) break;
    const char *x = (const char *)t->text.data + ((const uint32_t *)t->offs.data)[v[j] - 1];
    if (strcmp(x, s) == 0) return v[j] - 1;
  }
  uint32_t off = (uint32_t)t->text.len;
  mt__buf_put(&t->text, s, n + 1);
  mt__buf_put(&t->offs, &off, sizeof off);
  v[j] = (uint32_t)++t->count;
  return t->count - 1;
}

/* pc -> location id (1-based), open addressing */
typedef struct mt_pcmap {
  mt_buf keys, vals;
  size_t slots;
} mt_pcmap;

static uint32_t *mt_pc_slot(mt_pcmap *m, uintptr_t pc) {
  uintptr_t *k = (uintptr_t *)m->keys.data;
  for (size_t j = (size_t)((pc * 0x9e3779b97f4a7c15ULL) >> 20) & (m->slots - 1);; j = (j + 1) & (m->slots - 1)) {
    if (k[j] == pc || k[j] == 0) {
      k[j] = pc;
      return &((uint32_t *)m->vals.data)[j];
    }
  }
}

/* ---- /proc/self/maps: executable file mappings ---- */

typedef struct mt_mapping {
  uintptr_t start, limit, offset;
  char path[512];
} mt_mapping;

static size_t mt_read_maps(mt_mapping *out, size_t max) {
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

static void mt_value_type(mt_buf *msg, mt_buf *tmp, unsigned field, uint64_t type, uint64_t unit) {
  mt__buf_reset(tmp);
  mt__pb_uint(tmp, 1, type);
  mt__pb_uint(tmp, 2, unit);
  mt__pb_bytes(msg, field, tmp->data, tmp->len);
}

static int64_t mt_round(double x) { return x <= 0 ? 0 : (int64_t)(x + 0.5); }

/* Encode a snapshot as an uncompressed profile.proto message into out. */
static int mt_encode(const mt_prof_snapshot *snap, bool window, const char *kind, mt_buf *out) {
  mt_strtab st = {0};
  mt_buf tmp = {0}, sub = {0}, locs = {0};
  mt_objects objs = {0};
  mt_pcmap pcs = {0};
  mt__objects_load(&objs);
  mt_str(&st, "");
  static const char *types[4][2] = {
      {"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
  for (int i = 0; i < 4; i++) mt_value_type(out, &tmp, 1, mt_str(&st, types[i][0]), mt_str(&st, types[i][1]));

  /* mappings: executable file mappings, with the build ID of their object */
  static mt_mapping maps[1024];
  size_t nmaps = mt_read_maps(maps, 1024);
  for (size_t i = 0; i < nmaps; i++) {
    char hex[129] = "";
    for (size_t k = 0; k < objs.n; k++) {
      mt_object *o = &objs.v[k];
      /* by address: the loader's path and the kernel's may differ (/lib vs /usr/lib) */
      if (maps[i].start >= o->hi || maps[i].limit <= o->lo) continue;
      for (size_t b = 0; b < o->build_id_len; b++) snprintf(hex + 2 * b, 3, "%02x", o->build_id[b]);
      break;
    }
    mt__buf_reset(&tmp);
    mt__pb_uint(&tmp, 1, i + 1);
    mt__pb_uint(&tmp, 2, maps[i].start);
    mt__pb_uint(&tmp, 3, maps[i].limit);
    mt__pb_uint(&tmp, 4, maps[i].offset);
    mt__pb_uint(&tmp, 5, mt_str(&st, maps[i].path));
    mt__pb_uint(&tmp, 6, mt_str(&st, hex));
    mt__pb_uint(&tmp, 7, 1); /* has_functions */
    for (size_t k = 0; k < objs.n; k++) {
      mt_object *o = &objs.v[k];
      if (maps[i].start >= o->hi || maps[i].limit <= o->lo) continue;
      if (!o->loaded) mt__symbolize(&objs, o->lo); /* reads the file's symbols and lines */
      if (o->has_lines) {
        mt__pb_uint(&tmp, 8, 1); /* has_filenames */
        mt__pb_uint(&tmp, 9, 1); /* has_line_numbers */
      }
      break;
    }
    mt__pb_bytes(out, 3, tmp.data, tmp.len);
  }

  /* locations and functions: one per distinct pc, functions by name */
  size_t npcs = snap->npcs ? snap->npcs : 1, slots = 64;
  while (slots < npcs * 2) slots *= 2;
  pcs.slots = slots;
  if (mt__buf_reserve(&pcs.keys, slots * sizeof(uintptr_t)) && mt__buf_reserve(&pcs.vals, slots * 4)) {
    memset(pcs.keys.data, 0, slots * sizeof(uintptr_t));
    memset(pcs.vals.data, 0, slots * 4);
  } else {
    return -1;
  }
  uint64_t next_loc = 1;
  mt_strtab fnames = {0}; /* function name -> function id */
  for (size_t i = 0; i < snap->npcs; i++) {
    uintptr_t pc = snap->pcs[i];
    uint32_t *id = mt_pc_slot(&pcs, pc);
    if (*id) continue;
    *id = (uint32_t)next_loc++;
    uint64_t mapping = 0;
    for (size_t k = 0; k < nmaps; k++)
      if (pc >= maps[k].start && pc < maps[k].limit) mapping = k + 1;
    const char *name = mt__symbolize(&objs, pc);
    const char *file = NULL;
    uint32_t line = 0;
    if (name != NULL && mt__symbolize_line(&objs, pc, &file, &line) != 0) file = NULL, line = 0;
    mt__buf_reset(&tmp);
    mt__pb_uint(&tmp, 1, *id);
    mt__pb_uint(&tmp, 2, mapping);
    mt__pb_uint(&tmp, 3, pc);
    if (name != NULL) {
      size_t before = fnames.count;
      uint64_t fid = mt_str(&fnames, name) + 1;
      if (fnames.count != before) { /* a new function */
        mt__buf_reset(&sub);
        mt__pb_uint(&sub, 1, fid);
        mt__pb_uint(&sub, 2, mt_str(&st, name));
        mt__pb_uint(&sub, 3, mt_str(&st, name));
        if (file != NULL) mt__pb_uint(&sub, 4, mt_str(&st, file));
        mt__pb_bytes(&locs, 5, sub.data, sub.len);
      }
      mt__buf_reset(&sub);
      mt__pb_uint(&sub, 1, fid);
      mt__pb_int(&sub, 2, (int64_t)line);
      mt__pb_bytes(&tmp, 4, sub.data, sub.len);
    }
    mt__pb_bytes(out, 4, tmp.data, tmp.len);
  }
  mt__buf_put(out, locs.data, locs.len); /* the functions */

  /* samples */
  uint64_t ids[MT_PROF_MAX_FRAMES];
  uint64_t thread_key = mt_str(&st, "thread"), region_key = mt_str(&st, "region");
  for (size_t i = 0; i < snap->nstacks; i++) {
    const mt_prof_stack *s = &snap->stacks[i];
    int64_t v[4] = {mt_round(s->now.alloc_objects - (window ? s->window.alloc_objects : 0)),
                    mt_round(s->now.alloc_bytes - (window ? s->window.alloc_bytes : 0)),
                    mt_round(s->now.live_objects), mt_round(s->now.live_bytes)};
    if (v[0] == 0 && v[1] == 0 && v[2] == 0 && v[3] == 0) continue;
    for (uint32_t k = 0; k < s->npcs; k++) ids[k] = *mt_pc_slot(&pcs, snap->pcs[s->pcs_at + k]);
    mt__buf_reset(&tmp);
    mt__pb_packed(&tmp, 1, ids, s->npcs);
    mt__pb_packed(&tmp, 2, (const uint64_t *)v, 4);
    if (s->tid) {
      mt__buf_reset(&sub);
      mt__pb_uint(&sub, 1, thread_key);
      mt__pb_int(&sub, 3, (int64_t)s->tid);
      mt__pb_bytes(&tmp, 3, sub.data, sub.len);
    }
    if (s->region[0]) {
      mt__buf_reset(&sub);
      mt__pb_uint(&sub, 1, region_key);
      mt__pb_uint(&sub, 2, mt_str(&st, s->region));
      mt__pb_bytes(&tmp, 3, sub.data, sub.len);
    }
    mt__pb_bytes(out, 2, tmp.data, tmp.len);
  }
  uint64_t comment = mt_str(&st, kind);
  uint64_t space = mt_str(&st, "space"), bytes = mt_str(&st, "bytes"), inuse = mt_str(&st, "inuse_space");
  /* the string table, then the scalar fields */
  const uint32_t *offs = (const uint32_t *)st.offs.data;
  for (size_t i = 0; i < st.count; i++) {
    const char *x = (const char *)st.text.data + offs[i];
    mt__pb_bytes(out, 6, x, strlen(x));
  }
  mt__pb_int(out, 9, (int64_t)snap->time_ns);
  mt__pb_int(out, 10, (int64_t)snap->duration_ns);
  mt_value_type(out, &tmp, 11, space, bytes);
  mt__pb_int(out, 12, (int64_t)snap->rate);
  mt__pb_key(out, 13, 0); /* comment: which kind of profile */
  mt__pb_varint(out, comment);
  mt__pb_int(out, 14, (int64_t)inuse); /* default sample type */
  int failed = out->failed || st.text.failed || tmp.failed || sub.failed || locs.failed;
  mt__buf_free(&st.text), mt__buf_free(&st.offs), mt__buf_free(&st.index);
  mt__buf_free(&fnames.text), mt__buf_free(&fnames.offs), mt__buf_free(&fnames.index);
  mt__buf_free(&tmp), mt__buf_free(&sub), mt__buf_free(&locs);
  mt__buf_free(&pcs.keys), mt__buf_free(&pcs.vals);
  mt__objects_free(&objs);
  return failed ? -1 : 0;
}

static _Atomic int mt_writing;       /* one profile written at a time */
static _Atomic int mt_warned;        /* one warning for an unwritable path */

int mt__prof_write(const char *path, bool window, const char *kind) {
  mt_heap *heap = mt__tls_heap;
  int saved_in_prof = heap->in_prof;
  heap->in_prof = 1; /* nothing this thread allocates now is sampled */
  mt_prof_snapshot snap;
  int rc = -1;
  if (mt__prof_snapshot(&snap, window) == 0) {
    mt_buf raw = {0}, gz = {0};
    if (mt_encode(&snap, window, kind, &raw) == 0) {
      mt__gzip_stored(&gz, raw.data, raw.len);
      if (!gz.failed) rc = mt__os_write_file_atomic(path, gz.data, gz.len, (unsigned)mt__opt[MT_OPT_FILE_MODE]);
    }
    mt__buf_free(&raw);
    mt__buf_free(&gz);
    mt__prof_snapshot_free(&snap);
  }
  if (rc != 0) {
    int e = errno;
    int expected = 0;
    if (atomic_compare_exchange_strong(&mt_warned, &expected, 1)) {
      char msg[768];
      int n = snprintf(msg, sizeof msg, "memtally: warning: cannot write profile %.500s: %s\n", path, strerror(e));
      if (n > 0) mt__os_write_err(msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1));
    }
  }
  heap->in_prof = saved_in_prof;
  return rc;
}

/* ---- when to write ---- */

static _Atomic int mt_sig_requested;
static _Atomic int mt_helper_running; /* cleared in a forked child, whose helper did not survive */
static _Atomic uint64_t mt_peak_written; /* in-use bytes of the last peak profile */
static unsigned mt_window_seq, mt_signal_seq;
static uint64_t mt_window_due_ms;

static int mt_out_path(char *buf, size_t cap, const char *what, int seq) {
  const char *prefix = mt__opt_str[MT_OPT_PROF_OUT];
  if (prefix == NULL) return -1;
  int n = seq >= 0 ? snprintf(buf, cap, "%s.%d.%s.%d.pb.gz", prefix, mt__os_getpid(), what, seq)
                   : snprintf(buf, cap, "%s.%d.%s.pb.gz", prefix, mt__os_getpid(), what);
  return n > 0 && (size_t)n < cap ? 0 : -1;
}

static void mt_write_kind(const char *what, int seq, bool window) {
  char path[4096];
  if (mt_out_path(path, sizeof path, what, seq) != 0) {
    int expected = 0;
    if (mt__opt_str[MT_OPT_PROF_OUT] != NULL && atomic_compare_exchange_strong(&mt_warned, &expected, 1)) {
      static const char msg[] = "memtally: warning: cannot write profiles: MEMTALLY_PROF_OUT is too long\n";
      mt__os_write_err(msg, sizeof msg - 1);
    }
    return;
  }
  int expected = 0;
  if (!atomic_compare_exchange_strong(&mt_writing, &expected, 1)) return;
  mt__prof_write(path, window, what);
  atomic_store(&mt_writing, 0);
}

static void mt_on_sigusr2(int sig) {
  (void)sig;
  atomic_store(&mt_sig_requested, 1); /* the helper thread writes */
}

static void mt_poll(void) {
  if (atomic_exchange(&mt_sig_requested, 0)) mt_write_kind("signal", (int)mt_signal_seq++, false);
  long long every = mt__opt[MT_OPT_PROF_INTERVAL];
  if (every > 0) {
    uint64_t now = mt__os_now_ms();
    if (mt_window_due_ms == 0) mt_window_due_ms = now + (uint64_t)every * 1000;
    if (now >= mt_window_due_ms) {
      mt_window_due_ms = now + (uint64_t)every * 1000;
      mt_write_kind("window", (int)mt_window_seq++, true);
    }
  }
}

static void *mt_helper(void *arg) { /* runs until the process ends */
  (void)arg;
  for (;;) {
    mt__os_sleep_ms(50);
    mt_poll();
  }
  return NULL;
}

static void mt_helper_ensure(void) {
  if (mt_load(&mt_helper_running) || mt__opt_str[MT_OPT_PROF_OUT] == NULL || !mt_load(&mt__prof_on)) return;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&mt_helper_running, &expected, 1)) return;
  mt_window_due_ms = 0;
  mt__os_thread_start(mt_helper, NULL);
}

void mt__prof_start(void) {
  mt__prof_enable();
  if (mt__opt_str[MT_OPT_PROF_OUT] == NULL || !mt_load(&mt__prof_on)) return;
  mt__os_on_sigusr2(mt_on_sigusr2);
  mt_helper_ensure();
}

void mt__prof_tick(uint64_t in_use) {
  mt_helper_ensure(); /* after fork the child starts its own */
  if (!mt__opt[MT_OPT_PROF_PEAK] || in_use < (1u << 20)) return;
  uint64_t last = mt_load(&mt_peak_written);
  /* threads reach here at once: the one that moves the mark writes */
  if (in_use > last + last / 20 && atomic_compare_exchange_strong(&mt_peak_written, &last, in_use))
    mt_write_kind("peak", -1, false);
}

void mt__prof_at_exit(void) {
  if (!mt_load(&mt__prof_on)) return;
  mt_write_kind("exit", -1, false);
}

void mt__prof_after_fork_child(void) {
  mt__prof_reset();
  mt_store(&mt_peak_written, 0);
  mt_window_seq = mt_signal_seq = 0;
  atomic_store(&mt_writing, 0);
  atomic_store(&mt_helper_running, 0); /* threads do not survive fork: the next tick starts one */
}

/* ---- public API ---- */

int mt_prof_dump(const char *path) {
  if (path == NULL || path[0] == 0) {
    errno = EINVAL;
    return -1;
  }
  mt__init();
  if (mt__tls_heap == &mt__heap_empty && mt__heap_for_thread() == NULL) return -1;
  if (!mt_load(&mt__prof_on)) {
    errno = ENOTSUP;
    return -1;
  }
  return mt__prof_write(path, false, "dump");
}

int mt_prof_enabled(void) { return mt_load(&mt__prof_on); }
