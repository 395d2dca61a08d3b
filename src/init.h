/* init.h -- process start, fork and exit (init.c) */
#ifndef MT_INIT_H
#define MT_INIT_H

#include "base/common.h"

/* Does nothing: override.c refers to it so that the static library's
 * init.o, which holds the constructor, is linked whenever malloc is. */
MT_HIDDEN void mt__init_linked(void);
/* _exit and _Exit (override.c): the exit profile and statistics, as at a
 * normal exit, unless this is a vfork child or they were written already. */
MT_HIDDEN void mt__process_exit_now(void);

#endif
