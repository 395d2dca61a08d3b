/* stats_text.h -- the statistics written at exit (text to stderr, JSON beside the profiles) */
#ifndef MT_WRITE_STATS_TEXT_H
#define MT_WRITE_STATS_TEXT_H

#include "../base/common.h"

/* MEMTALLY_STATS=1: the table to stderr. */
MT_HIDDEN void mt__stats_at_exit(void);
/* MEMTALLY_PROF_OUT set: PREFIX.PROGRAM.PID.stats.json. */
MT_HIDDEN void mt__stats_dump_at_exit(void);

#endif
