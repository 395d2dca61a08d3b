/* serve.h -- the live HTTP endpoints (MEMTALLY_HTTP) */
#ifndef MT_SERVE_H
#define MT_SERVE_H

#include "../base/common.h"

/* From the constructor: with MEMTALLY_HTTP=HOST:PORT, listen and start the
 * serving thread; one line on stderr says where. */
MT_HIDDEN void mt__serve_start(void);
/* The child after fork: close the inherited socket (it would answer for the parent). */
MT_HIDDEN void mt__serve_after_fork_child(void);

#endif
