/* profile.h -- profiles to files: when to write them, and the helper thread that does */
#ifndef MT_PROFILE_H
#define MT_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/common.h"
#include "../sample/sample.h"
#include "../write/buf.h"

/* From the library constructor: sampling starts; the MEMTALLY_PROF_SIGNAL handler and
 * the helper thread, when MEMTALLY_PROF_OUT is set. */
MT_HIDDEN void mt__profile_start(void);
/* Load zlib for the profiles (unsampled): where a program could call dlopen itself. */
MT_HIDDEN void mt__profile_load_zlib(void);
/* The allocator's bookkeeping hook (mt__alloc_set_tick): starts the helper
 * after fork, and at a new high-water mark of bytes in use takes the peak's
 * snapshot for the helper to write. Never writes a file itself. */
MT_HIDDEN void mt__profile_tick(uint64_t in_use);
/* At exit: the waiting peak profile, then the exit profile. quick (from
 * _exit, perhaps in a signal handler): a lock held elsewhere means no
 * profile rather than a wait. */
MT_HIDDEN void mt__profile_at_exit(bool quick);
/* The profile now, gzipped, into gz (an empty mt_buf); with base (a
 * snapshot taken earlier), the allocations since then: a delta profile, as
 * Go's /debug/pprof/allocs?seconds=N. For the HTTP endpoint. 0, or -1. */
MT_HIDDEN int mt__profile_encode(mt_buf *gz, const mt_prof_snapshot *base, const char *kind);
/* The child after fork: its profile starts empty, its helper on the next tick. */
MT_HIDDEN void mt__profile_after_fork_child(void);

#endif
