/* profile.h -- profiles to files: when to write them, and the helper thread that does */
#ifndef MT_PROFILE_H
#define MT_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/common.h"

/* From the library constructor: sampling starts; the MEMTALLY_PROF_SIGNAL handler and
 * the helper thread, when MEMTALLY_PROF_OUT is set. */
MT_HIDDEN void mt__profile_start(void);
/* The allocator's bookkeeping hook (mt__alloc_set_tick): starts the helper
 * after fork, and at a new high-water mark of bytes in use takes the peak's
 * snapshot for the helper to write. Never writes a file itself. */
MT_HIDDEN void mt__profile_tick(uint64_t in_use);
/* At exit: the waiting peak profile, then the exit profile. quick (from
 * _exit, perhaps in a signal handler): a lock held elsewhere means no
 * profile rather than a wait. */
MT_HIDDEN void mt__profile_at_exit(bool quick);
/* The child after fork: its profile starts empty, its helper on the next tick. */
MT_HIDDEN void mt__profile_after_fork_child(void);

#endif
