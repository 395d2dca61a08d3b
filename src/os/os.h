/* os.h -- the contract between memtally and the platform: mappings, purging,
 * time, threads, signals, files, loaded objects (linux.c, objects.c)
 *
 * Every system call memtally makes goes through this header, so a port to
 * another system replaces these two files. */
#ifndef MT_OS_H
#define MT_OS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "../base/common.h"

/* Counters kept by the OS layer (shared atomics: only touched on slow paths). */
typedef struct mt_os_counters {
  _Atomic uint64_t committed;      /* bytes mapped read-write and not purged */
  _Atomic uint64_t committed_peak;
  _Atomic uint64_t mapped;         /* bytes of address space mapped */
  _Atomic uint64_t mmap_calls, munmap_calls, madvise_calls, mremap_calls;
} mt_os_counters;

MT_HIDDEN extern mt_os_counters mt__os;
/* 1 while committed bytes exceed MEMTALLY_MEMLIMIT: purge eagerly. */
MT_HIDDEN extern _Atomic int mt__os_over_limit;

MT_HIDDEN void mt__os_init(void);
MT_HIDDEN size_t mt__os_page_size(void);
/* Map size bytes aligned to align (a power of two >= page size), read-write,
 * counted as mapped but not committed. NULL on failure (errno set). */
MT_HIDDEN void *mt__os_map_aligned(size_t size, size_t align);
/* Reserve address space that is committed lazily by the kernel and never
 * counted (for sparse internal tables). */
MT_HIDDEN void *mt__os_reserve(size_t size);
MT_HIDDEN void mt__os_unmap(void *p, size_t size);
MT_HIDDEN void mt__os_unreserve(void *p, size_t size); /* undo mt__os_reserve */
/* Drop the pages' contents and their memory; they read back as zero. */
MT_HIDDEN void mt__os_purge(void *p, size_t size);
/* Try to grow a mapping in place; 0 on success. */
MT_HIDDEN int mt__os_grow_in_place(void *p, size_t old_size, size_t new_size);
/* Move the pages of [from, from + len) to [to, to + len), which must be
 * mapped already (it is replaced): resident pages move without a copy or a
 * fault, and the source range is unmapped. 0, or -1 (both ranges as they
 * were; an older kernel may refuse a source made of several mappings). */
MT_HIDDEN int mt__os_move_pages(void *from, size_t len, void *to);
MT_HIDDEN void mt__os_commit_add(int64_t delta);
/* Milliseconds from an arbitrary start, monotonic. */
MT_HIDDEN uint64_t mt__os_now_ms(void);
MT_HIDDEN uint64_t mt__os_now_ns(void);  /* monotonic */
MT_HIDDEN uint64_t mt__os_wall_ns(void); /* since the epoch */
MT_HIDDEN int mt__os_getpid(void);
/* Write len bytes to path through a temporary file in the same directory,
 * renamed into place, so readers never see a torn file. The temporary's
 * name is unpredictable and it is created with O_EXCL|O_NOFOLLOW, mode
 * 0600, then given mode (its read and write bits). 0 or -1 (errno;
 * ENAMETOOLONG for a path too long). */
MT_HIDDEN int mt__os_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* Call fn on signal sig (fn must only set a flag); 0 or -1. */
MT_HIDDEN int mt__os_on_signal(int sig, void (*fn)(int));
/* Start a detached helper thread; 0 or -1. */
MT_HIDDEN int mt__os_thread_start(void *(*fn)(void *), void *arg);
MT_HIDDEN void mt__os_sleep_ms(unsigned ms);
/* Resident set size of the process in bytes, 0 if unknown. */
MT_HIDDEN uint64_t mt__os_rss(void);
MT_HIDDEN uint64_t mt__os_thread_id(void);
/* Write to stderr with no allocation and no stdio. */
MT_HIDDEN void mt__os_write_err(const char *s, size_t n);
/* 1 in a setuid or setgid program (or one with file capabilities): the
 * environment is its caller's and must not steer it (AT_SECURE). */
MT_HIDDEN int mt__os_secure(void);
/* 64 random bits from the kernel (the clock and addresses without it). */
MT_HIDDEN uint64_t mt__os_random(void);
/* getenv that works before libc is fully set up (reads environ). */
MT_HIDDEN const char *mt__os_getenv(const char *name);
MT_HIDDEN void mt__os_abort(void) __attribute__((noreturn));
/* In the child after fork (one thread): make *m usable again. Returns 1 if
 * it was held at the moment of fork (by a thread the child does not have,
 * or by this one in a signal handler), so what it guards may be half
 * updated; 0 if it was free. */
MT_HIDDEN int mt__os_mutex_reclaim(pthread_mutex_t *m);
/* The program's name (the basename of argv[0], else of /proc/self/exe; only
 * [A-Za-z0-9._+-], others become _; at most 64 bytes) and its command line (/proc/self/cmdline, arguments
 * joined by spaces, cut at 1 KiB), as they were at the first call: call it
 * at start, before a program rewrites its argv (setproctitle). Never NULL. */
MT_HIDDEN const char *mt__os_program(void);
MT_HIDDEN const char *mt__os_command_line(void);
/* Register a handler run in the child after fork (no prepare, no parent). */
MT_HIDDEN void mt__os_at_fork_child(void (*fn)(void));
/* MEMTALLY_MEMLIMIT in bytes (0: none): past it mt__os_over_limit is set. */
MT_HIDDEN void mt__os_set_commit_limit(uint64_t bytes);

/* ---- faults and protection (regions' debug mode) ---- */
/* Call fn with the faulting address on the next SIGSEGV, then restore the
 * handler that was there before (the fault then happens again under it).
 * fn must be async-signal-safe. 0 or -1. */
MT_HIDDEN int mt__os_on_fault(void (*fn)(uintptr_t addr));
/* Map size bytes (a multiple of the page size) read-write, uncounted. */
MT_HIDDEN void *mt__os_map_plain(size_t size);
/* Make the pages inaccessible: any access faults. */
MT_HIDDEN void mt__os_protect_none(void *p, size_t size);

/* The memory limit of the process's cgroup (v2 memory.max, v1
 * memory.limit_in_bytes; the tightest along its path), 0 when none. */
MT_HIDDEN uint64_t mt__os_cgroup_memory_limit(void);

/* ---- sockets (the HTTP endpoint: serve/) ---- */
struct pollfd;
/* A listening TCP socket on a numeric IPv4 address (or "localhost"), port
 * (0: the kernel picks; *bound tells which), non-blocking, close-on-exec.
 * The descriptor, or -1 (errno). */
MT_HIDDEN int mt__os_listen(const char *host, int port, int *bound);
/* A connection waiting on fd, non-blocking and close-on-exec, or -1. */
MT_HIDDEN int mt__os_accept(int fd);
/* Non-blocking I/O: bytes moved, 0 (recv: closed), -1 (would block), -2 (error). */
MT_HIDDEN long mt__os_recv(int fd, void *buf, size_t n);
MT_HIDDEN long mt__os_send(int fd, const void *buf, size_t n);
MT_HIDDEN void mt__os_close(int fd);
MT_HIDDEN void mt__os_shutdown_write(int fd); /* the peer reads the end of the response */
MT_HIDDEN int mt__os_poll(struct pollfd *fds, unsigned n, int timeout_ms);

/* ---- code in memory (objects.c) ---- */
typedef struct mt_os_object {
  char path[512];                /* absolute; the program's own from /proc/self/exe */
  uintptr_t bias;                /* run-time address - link-time address */
  uintptr_t lo, hi;              /* executable range at run time */
  uint8_t build_id[64];          /* GNU build ID from the PT_NOTE segment */
  size_t build_id_len;
  int is_main;                   /* the program itself */
} mt_os_object;
/* Call fn for each loaded object with executable code, in the loader's
 * order (the program first); fn returns non-zero to stop. */
MT_HIDDEN void mt__os_objects(int (*fn)(const mt_os_object *o, void *arg), void *arg);
/* The object whose executable range holds code: 0, or -1 when none does. */
MT_HIDDEN int mt__os_object_of(const void *code, mt_os_object *out);
typedef struct mt_os_mapping {
  uintptr_t start, limit, offset;
  char path[512];
} mt_os_mapping;
/* The executable file mappings of the process (/proc/self/maps), at most max. */
MT_HIDDEN size_t mt__os_code_mappings(mt_os_mapping *out, size_t max);
/* A regular file of at least min_size bytes mapped read-only, its size in
 * *size; NULL when it cannot be opened or is too small. */
MT_HIDDEN const void *mt__os_map_file(const char *path, size_t min_size, size_t *size);
MT_HIDDEN void mt__os_unmap_file(const void *p, size_t size);
/* A shared library loaded into the process (RTLD_NOW | RTLD_LOCAL) and a
 * symbol of it; NULL when it or the symbol is not there. Calls the loader,
 * which takes its lock and may call malloc: never from inside the allocator
 * or with a lock of ours held. */
MT_HIDDEN void *mt__os_library(const char *name);
MT_HIDDEN void *mt__os_library_symbol(void *lib, const char *name);

#endif
