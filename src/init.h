/* init.h -- process start, fork and exit (init.c) */
#ifndef MT_INIT_H
#define MT_INIT_H

#include "base/common.h"

/* Does nothing: override.c refers to it so that the static library's
 * init.o, which holds the constructor, is linked whenever malloc is. */
MT_HIDDEN void mt__init_linked(void);

#endif
