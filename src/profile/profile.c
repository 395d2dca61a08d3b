/* profile.c -- profiles to files: symbolize a snapshot, encode, write; and when to write
 *
 * A profile is written from a snapshot of the recorder's stack table,
 * outside every allocator lock: objects and build IDs are read, program
 * counters symbolized, the profile encoded (write/pprof.c), gzipped and
 * written to a temporary file renamed into place. Files:
 * PREFIX.PROGRAM.PID.exit.pb.gz at exit, PREFIX.PROGRAM.PID.window.N.pb.gz every
 * MEMTALLY_PROF_INTERVAL seconds (alloc figures of the window, in-use at its
 * end), PREFIX.PROGRAM.PID.peak.pb.gz at the high-water mark, PREFIX.PROGRAM.PID.signal.N.pb.gz
 * on MEMTALLY_PROF_SIGNAL (SIGUSR2). Only the helper thread writes while the program runs: the
 * signal handler sets a flag, and the allocator's bookkeeping hook (inside
 * malloc) only takes the peak's snapshot, a copy of the table; symbolizing,
 * encoding and writing it happen on the helper thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../alloc/alloc.h"
#include "../options/options.h"
#include "../os/os.h"
#include "../sample/sample.h"
#include "../write/buf.h"
#include "../write/pprof.h"
#include "memtally.h"
#include "profile.h"
#include "symbolize.h"

/* ---- one profile: snapshot -> symbols -> pprof -> gzip -> file ---- */

static const char *mt_sym_name(void *ctx, uintptr_t pc) { return mt__symbolize(ctx, pc); }
static int mt_sym_line(void *ctx, uintptr_t pc, const char **file, uint32_t *line) {
  return mt__symbolize_line(ctx, pc, file, line);
}

#define MT_MAX_MAPPINGS 1024
static mt_os_mapping mt_maps_raw[MT_MAX_MAPPINGS]; /* one profile at a time (mt_writing) */
static mt_pprof_mapping mt_maps[MT_MAX_MAPPINGS];

/* The executable mappings with their objects' build IDs; an object's symbol
 * and line tables are read on the way (so the mapping can say whether
 * lines are known). */
static size_t mt_mappings(mt_objects *objs) {
  size_t n = mt__os_code_mappings(mt_maps_raw, MT_MAX_MAPPINGS);
  for (size_t i = 0; i < n; i++) {
    mt_pprof_mapping *m = &mt_maps[i];
    memset(m, 0, sizeof *m);
    m->start = mt_maps_raw[i].start;
    m->limit = mt_maps_raw[i].limit;
    m->offset = mt_maps_raw[i].offset;
    m->path = mt_maps_raw[i].path;
    for (size_t k = 0; k < objs->n; k++) {
      mt_object *o = &objs->v[k];
      /* by address: the loader's path and the kernel's may differ (/lib vs /usr/lib) */
      if (m->start >= o->hi || m->limit <= o->lo) continue;
      for (size_t b = 0; b < o->build_id_len; b++) snprintf(m->build_id + 2 * b, 3, "%02x", o->build_id[b]);
      /* reads the file's symbols and lines for the wanted addresses; an object
       * no sample passes through is not read at all */
      if (!o->loaded && o->nwant > 0) mt__symbolize(objs, o->lo);
      m->has_lines = o->has_lines;
      break;
    }
  }
  return n;
}

/* snap as a gzipped profile in gz (empty on entry). 0, or -1 (errno ENOMEM). */
static int mt_encode_gz(const mt_prof_snapshot *snap, bool window, const char *kind, mt_buf *gz) {
  mt_objects objs = {0};
  mt__objects_load(&objs);
  mt__objects_want(&objs, snap->pcs, snap->npcs); /* only the profile's addresses are named */
  size_t nmaps = mt_mappings(&objs);
  mt_pprof_symbols sym = {mt_sym_name, mt_sym_line, &objs};
  mt_buf raw = {0};
  int rc = -1;
  if (mt__pprof_encode(snap, mt_maps, nmaps, &sym, window, kind, mt__os_command_line(), &raw) == 0) {
    if (mt__gzip_deflate(gz, raw.data, raw.len, 1) != 0) {
      gz->len = 0;
      gz->failed = 0;
      mt__gzip_stored(gz, raw.data, raw.len); /* no zlib, or no memory for its state: uncompressed */
    }
    rc = gz->failed ? -1 : 0;
  }
  if (rc != 0) errno = ENOMEM;
  mt__buf_free(&raw);
  mt__objects_free(&objs);
  return rc;
}

static int mt_write_snapshot(const char *path, const mt_prof_snapshot *snap, bool window, const char *kind) {
  mt_buf gz = {0};
  int rc = mt_encode_gz(snap, window, kind, &gz);
  if (rc == 0) rc = mt__os_write_file_atomic(path, gz.data, gz.len, (unsigned)mt__opt[MT_OPT_FILE_MODE]);
  mt__buf_free(&gz);
  return rc;
}

static _Atomic int mt_writing;       /* one profile written at a time */
static _Atomic int mt_warned;        /* one warning for an unwritable path */

static void mt_warn_unwritable(const char *path, int rc) {
  if (rc != 0) {
    int e = errno;
    int expected = 0;
    if (atomic_compare_exchange_strong(&mt_warned, &expected, 1)) {
      char msg[768];
      int n = snprintf(msg, sizeof msg, "memtally: warning: cannot write profile %.500s: %s\n", path, strerror(e));
      if (n > 0) mt__os_write_err(msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1));
    }
  }
}

/* Snapshot now and write. The calling thread's allocations meanwhile are
 * not sampled. snap: a snapshot taken earlier (the peak's), or NULL. */
static int mt_write_profile(const char *path, bool window, const char *kind, mt_prof_snapshot *taken) {
  mt_heap *heap = mt__tls_heap;
  int saved_in_prof = heap->sample.busy;
  heap->sample.busy = 1; /* nothing this thread allocates now is sampled */
  mt_prof_snapshot snap;
  int rc = -1;
  if (taken != NULL) {
    rc = mt_write_snapshot(path, taken, window, kind);
  } else if (mt__prof_snapshot(&snap, window) == 0) {
    /* the lifetimes profile: the same stacks, the lifetime table as its samples */
    if (strcmp(kind, "lifetimes") != 0 || mt__prof_snapshot_lifetimes(&snap) == 0)
      rc = mt_write_snapshot(path, &snap, window, kind);
    mt__prof_snapshot_free(&snap);
  }
  mt_warn_unwritable(path, rc);
  heap->sample.busy = saved_in_prof;
  return rc;
}

/* One profile encoded at a time (the mapping tables above are shared):
 * wait for another writer, which finishes on its own, at most 10 s. */
static bool mt_writing_take(void) {
  for (int waited_ms = 0;; waited_ms++) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&mt_writing, &expected, 1)) return true;
    if (waited_ms >= 10000) return false;
    mt__os_sleep_ms(1);
  }
}

int mt__profile_encode(mt_buf *gz, const mt_prof_snapshot *base, const char *kind) {
  if (!mt_load(&mt__prof_on)) {
    errno = ENOTSUP;
    return -1;
  }
  mt_heap *heap = mt__heap_for_thread();
  if (heap == NULL) return -1;
  int busy = heap->sample.busy;
  heap->sample.busy = 1; /* nothing this thread allocates now is sampled */
  int rc = -1;
  mt_prof_snapshot snap;
  if (mt_writing_take()) {
    if (mt__prof_snapshot(&snap, false) == 0) {
      bool life = strcmp(kind, "lifetimes") == 0;
      if (life && mt__prof_snapshot_lifetimes(&snap) != 0) {
        mt__prof_snapshot_free(&snap);
        atomic_store(&mt_writing, 0);
        heap->sample.busy = busy;
        errno = ENOMEM;
        return -1;
      }
      if (base != NULL && !life) /* a delta: the allocations since base, in use now */
        for (size_t i = 0; i < snap.nstacks && i < base->nstacks; i++) {
          snap.stacks[i].window.alloc_objects = base->stacks[i].now.alloc_objects;
          snap.stacks[i].window.alloc_bytes = base->stacks[i].now.alloc_bytes;
          snap.stacks[i].window.alloc_held = base->stacks[i].now.alloc_held;
        }
      if (base != NULL && !life) snap.duration_ns = snap.time_ns > base->time_ns ? snap.time_ns - base->time_ns : 0;
      rc = mt_encode_gz(&snap, base != NULL && !life, kind, gz);
      mt__prof_snapshot_free(&snap);
    }
    atomic_store(&mt_writing, 0);
  }
  heap->sample.busy = busy;
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
  const char *prog = mt__os_program();
  int n = seq >= 0 ? snprintf(buf, cap, "%s.%s.%d.%s.%d.pb.gz", prefix, prog, mt__os_getpid(), what, seq)
                   : snprintf(buf, cap, "%s.%s.%d.%s.pb.gz", prefix, prog, mt__os_getpid(), what);
  return n > 0 && (size_t)n < cap ? 0 : -1;
}

static void mt_write_kind(const char *what, int seq, bool window, mt_prof_snapshot *taken) {
  char path[4096];
  if (mt_out_path(path, sizeof path, what, seq) != 0) {
    int expected = 0;
    if (mt__opt_str[MT_OPT_PROF_OUT] != NULL && atomic_compare_exchange_strong(&mt_warned, &expected, 1)) {
      static const char msg[] = "memtally: warning: cannot write profiles: MEMTALLY_PROF_OUT is too long\n";
      mt__os_write_err(msg, sizeof msg - 1);
    }
    return;
  }
  /* One profile at a time. Another writer is the helper thread (or a
   * thread in mt_prof_dump, or the HTTP endpoint), which finishes on its
   * own: wait for it, so an exit or peak profile is never skipped for a
   * window profile being written (10 s at most, then give up, not hang). */
  if (!mt_writing_take()) return;
  mt_write_profile(path, window, what, taken);
  atomic_store(&mt_writing, 0);
}

static void mt_on_signal(int sig) {
  (void)sig;
  atomic_store(&mt_sig_requested, 1); /* the helper thread writes */
}

/* The peak's snapshot, taken inside malloc, waits here for the helper. */
static mt_prof_snapshot mt_peak_snap;
static _Atomic int mt_peak_lock;  /* guards mt_peak_snap (never held long: a swap) */
static _Atomic int mt_peak_ready; /* mt_peak_snap holds a snapshot not yet written */

static bool mt_peak_try_lock(void) {
  int expected = 0;
  return atomic_compare_exchange_strong_explicit(&mt_peak_lock, &expected, 1, memory_order_acquire,
                                                 memory_order_relaxed);
}
static void mt_peak_unlock(void) { atomic_store_explicit(&mt_peak_lock, 0, memory_order_release); }

/* Before the OOM killer (MEMTALLY_PROF_LIMIT): the limit in bytes, the next
 * step (threshold = limit x (share + 5 x step) / 100), and the snapshot of
 * the last step crossed, waiting for the helper like the peak's. */
static uint64_t mt_limit_bytes;
static _Atomic int mt_limit_step;
static mt_prof_snapshot mt_limit_snap;
static _Atomic int mt_limit_ready;
static int mt_limit_ready_step;
static uint64_t mt_limit_usage;

static void mt_limit_flush(void) {
  if (!atomic_load(&mt_limit_ready) || !mt_peak_try_lock()) return;
  mt_prof_snapshot snap = mt_limit_snap;
  int step = mt_limit_ready_step;
  uint64_t usage = mt_limit_usage;
  memset(&mt_limit_snap, 0, sizeof mt_limit_snap);
  atomic_store(&mt_limit_ready, 0);
  mt_peak_unlock();
  mt_write_kind("limit", step, false, &snap);
  mt__prof_snapshot_free(&snap);
  char msg[200];
  int n = snprintf(msg, sizeof msg,
                   "memtally: %llu MiB in use or committed: over %lld%% of the %llu MiB limit; profile limit.%d written\n",
                   (unsigned long long)(usage >> 20), mt__opt[MT_OPT_PROF_LIMIT] + 5LL * step,
                   (unsigned long long)(mt_limit_bytes >> 20), step);
  if (n > 0) mt__os_write_err(msg, (size_t)n);
}

/* Write the waiting peak snapshot, if any (the helper, and at exit). */
static void mt_peak_flush(void) {
  if (!atomic_load(&mt_peak_ready) || !mt_peak_try_lock()) return;
  mt_prof_snapshot snap = mt_peak_snap;
  memset(&mt_peak_snap, 0, sizeof mt_peak_snap);
  atomic_store(&mt_peak_ready, 0);
  mt_peak_unlock();
  mt_write_kind("peak", -1, false, &snap);
  mt__prof_snapshot_free(&snap);
}

static void mt_poll(void) {
  mt_limit_flush();
  mt_peak_flush();
  if (atomic_exchange(&mt_sig_requested, 0)) mt_write_kind("signal", (int)mt_signal_seq++, false, NULL);
  long long every = mt__opt[MT_OPT_PROF_INTERVAL];
  if (every > 0) {
    uint64_t now = mt__os_now_ms();
    if (mt_window_due_ms == 0) mt_window_due_ms = now + (uint64_t)every * 1000;
    if (now >= mt_window_due_ms) {
      mt_window_due_ms = now + (uint64_t)every * 1000;
      mt_write_kind("window", (int)mt_window_seq++, true, NULL);
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

/* zlib for compressing profiles. What the loader allocates for it is
 * memtally's, not the program's: not sampled. */
void mt__profile_load_zlib(void) {
  mt_heap *heap = mt__heap_for_thread();
  int busy = heap != NULL ? heap->sample.busy : 0;
  if (heap != NULL) heap->sample.busy = 1;
  mt__gzip_load();
  if (heap != NULL) heap->sample.busy = busy;
}

void mt__profile_start(void) {
  mt__prof_enable();
  if (mt__opt_str[MT_OPT_PROF_OUT] == NULL || !mt_load(&mt__prof_on)) return;
  mt__profile_load_zlib(); /* profiles will be written */
  if (mt__opt[MT_OPT_PROF_SIGNAL] > 0) mt__os_on_signal((int)mt__opt[MT_OPT_PROF_SIGNAL], mt_on_signal);
  if (mt__opt[MT_OPT_PROF_LIMIT] > 0) { /* the cgroup's memory limit, else MEMTALLY_MEMLIMIT */
    mt_limit_bytes = mt__os_cgroup_memory_limit();
    if (mt_limit_bytes == 0 && mt__opt[MT_OPT_MEMLIMIT] > 0) mt_limit_bytes = (uint64_t)mt__opt[MT_OPT_MEMLIMIT];
    if (mt_limit_bytes == 0) {
      static const char msg[] = "memtally: warning: MEMTALLY_PROF_LIMIT: no cgroup memory limit and no "
                                "MEMTALLY_MEMLIMIT to take a share of; off\n";
      mt__os_write_err(msg, sizeof msg - 1);
    }
  }
  /* the helper's own start (its thread's TLS, allocated by the loader) is memtally's, not the program's */
  mt_heap *heap = mt__heap_for_thread();
  int busy = heap != NULL ? heap->sample.busy : 0;
  if (heap != NULL) heap->sample.busy = 1;
  mt_helper_ensure();
  if (heap != NULL) heap->sample.busy = busy;
}

/* A step of MEMTALLY_PROF_LIMIT crossed: its snapshot now, the helper writes. */
static void mt_limit_check(uint64_t in_use) {
  uint64_t usage = in_use, committed = mt_load(&mt__os.committed);
  if (committed > usage) usage = committed;
  int step = mt_load(&mt_limit_step);
  long long share = mt__opt[MT_OPT_PROF_LIMIT] + 5LL * step;
  if (share > 100 || usage < mt_limit_bytes / 100 * (uint64_t)share || !mt_peak_try_lock()) return;
  int next = step;
  while (mt__opt[MT_OPT_PROF_LIMIT] + 5LL * (next + 1) <= 100 &&
         usage >= mt_limit_bytes / 100 * (uint64_t)(mt__opt[MT_OPT_PROF_LIMIT] + 5LL * (next + 1)))
    next++; /* several steps at once: one profile, of the highest */
  if (atomic_compare_exchange_strong(&mt_limit_step, &step, next + 1)) {
    mt_prof_snapshot snap;
    if (mt__prof_snapshot(&snap, false) == 0) {
      if (atomic_load(&mt_limit_ready)) mt__prof_snapshot_free(&mt_limit_snap);
      mt_limit_snap = snap;
      mt_limit_ready_step = next;
      mt_limit_usage = usage;
      atomic_store(&mt_limit_ready, 1);
    }
  }
  mt_peak_unlock();
}

void mt__profile_tick(uint64_t in_use) {
  if (!mt_load(&mt__prof_on) || mt__opt_str[MT_OPT_PROF_OUT] == NULL) return;
  mt_helper_ensure(); /* after fork the child starts its own */
  if (mt_limit_bytes != 0) mt_limit_check(in_use);
  if (!mt__opt[MT_OPT_PROF_PEAK] || in_use < (1u << 20)) return;
  uint64_t last = mt_load(&mt_peak_written);
  /* A new peak 2 % above the last one (a profile at most 2 % below the
   * true peak, plus the bookkeeping interval of 1 MiB a thread). Threads
   * reach here at once: the one that moves the mark takes the
   * snapshot; the helper symbolizes, encodes and writes it */
  if (in_use <= last + last / 50 || !mt_peak_try_lock()) return;
  if (atomic_compare_exchange_strong(&mt_peak_written, &last, in_use)) {
    mt_prof_snapshot snap;
    if (mt__prof_snapshot(&snap, false) == 0) {
      if (atomic_load(&mt_peak_ready)) mt__prof_snapshot_free(&mt_peak_snap); /* a newer peak replaces it */
      mt_peak_snap = snap;
      atomic_store(&mt_peak_ready, 1);
    }
  }
  mt_peak_unlock();
}

void mt__profile_at_exit(bool quick) {
  if (!mt_load(&mt__prof_on)) return;
  if (quick) mt__prof_snapshot_nowait();
  mt_limit_flush();
  mt_peak_flush();
  mt_write_kind("exit", -1, false, NULL);
  /* through _exit too: the tables' locks are then only tried (a signal
   * handler may have interrupted their holder), never waited for */
  if (mt__opt[MT_OPT_PROF_LIFETIMES]) mt_write_kind("lifetimes", -1, false, NULL);
}

void mt__profile_after_fork_child(void) {
  mt__prof_reset();
  /* The parent's waiting snapshots (their mappings are the child's copies).
   * With the lock held a thread was replacing one, maybe between unmapping
   * the old one and storing the new: freeing what the fields say could
   * unmap what another thread had mapped there since. They leak instead. */
  bool held = atomic_load(&mt_peak_lock) != 0;
  if (!held && atomic_load(&mt_limit_ready)) mt__prof_snapshot_free(&mt_limit_snap);
  memset(&mt_limit_snap, 0, sizeof mt_limit_snap);
  atomic_store(&mt_limit_ready, 0);
  if (!held && atomic_load(&mt_peak_ready)) mt__prof_snapshot_free(&mt_peak_snap);
  memset(&mt_peak_snap, 0, sizeof mt_peak_snap);
  atomic_store(&mt_peak_ready, 0);
  atomic_store(&mt_peak_lock, 0);
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
  mt__profile_load_zlib();
  return mt_write_profile(path, false, "dump", NULL);
}

int mt_prof_enabled(void) { return mt_load(&mt__prof_on); }
