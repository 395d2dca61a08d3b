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
#include "write/stats_text.h"

/* Referenced from override.c, so a program linked with the static library
 * gets this file (and its constructor) whenever it gets malloc. */
void mt__init_linked(void) {}

static void mt_fork_child(void) {
  mt__alloc_after_fork_child();
  mt__region_after_fork();
  mt__profile_after_fork_child(); /* the child's profile starts empty */
}

__attribute__((constructor(101))) static void mt_process_start(void) {
  mt__init();
  mt__os_at_fork_child(mt_fork_child);
  mt__alloc_set_tick(mt__profile_tick);
  mt__profile_start();
  /* a heap made before sampling started: its countdown now counts to the next sample too */
  if (mt__tls_heap != &mt__heap_empty) mt__countdown_reset(mt__tls_heap);
}

__attribute__((destructor(101))) static void mt_process_end(void) {
  mt__profile_at_exit();
  mt__stats_dump_at_exit();
  mt__stats_at_exit();
}
