/* init.c -- process start, fork and exit: the one file that knows every layer
 *
 * The layers below set themselves up lazily on the first allocation
 * (mt__init in alloc/heap.c: os, options, the recorder), which may come
 * before this library's constructor. Here the constructor connects the
 * layers that must not know each other (the allocator's bookkeeping hook
 * goes to the profile layer), starts the profiler, and registers the fork
 * handler; the destructor writes the exit profile and statistics. Fork:
 * nothing in the parent, every layer repairs itself in the child
 * (docs/fork.md). */
#include "alloc/alloc.h"
#include "init.h"
#include "os/os.h"
#include "profile/profile.h"
#include "region/region.h"
#include "serve/serve.h"
#include "write/stats_text.h"

/* Referenced from override.c, so a program linked with the static library
 * gets this file (and its constructor) whenever it gets malloc. */
void mt__init_linked(void) {}

/* The process the library last set itself up for: a child made by vfork
 * (or a raw clone) runs no fork handler and shares its parent's memory, so
 * its _exit must not write. */
static _Atomic int mt_setup_pid;
static _Atomic int mt_ended; /* the exit files are written once */

static void mt_fork_child(void) {
  mt_store(&mt_setup_pid, mt__os_getpid());
  mt_store(&mt_ended, 0);
  mt__alloc_after_fork_child();
  mt__region_after_fork();
  mt__profile_after_fork_child(); /* the child's profile starts empty */
  mt__serve_after_fork_child();   /* and it does not answer on its parent's socket */
}

__attribute__((constructor(101))) static void mt_process_start(void) {
  mt__init();
  (void)mt__os_program(); /* name and command line now, before the program can rewrite its argv */
  mt_store(&mt_setup_pid, mt__os_getpid());
  mt__os_at_fork_child(mt_fork_child);
  mt__alloc_set_tick(mt__profile_tick);
  mt__profile_start();
  mt__serve_start();
  /* a heap made before sampling started: its countdown now counts to the next sample too */
  if (mt__tls_heap != &mt__heap_empty) mt__countdown_reset(mt__tls_heap);
}

static void mt_write_exit_files(bool quick) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&mt_ended, &expected, 1)) return;
  mt__profile_at_exit(quick);
  mt__stats_dump_at_exit();
  mt__stats_at_exit();
}

__attribute__((destructor(101))) static void mt_process_end(void) { mt_write_exit_files(false); }

void mt__process_exit_now(void) {
  if (mt_load(&mt_setup_pid) != mt__os_getpid()) return; /* a vfork child: its parent's memory */
  mt_write_exit_files(true);
}
