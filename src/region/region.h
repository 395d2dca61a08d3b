/* region.h -- what the layers above need of regions: fork and the registry */
#ifndef MT_REGION_H
#define MT_REGION_H

#include <stdint.h>

#include "../base/common.h"

/* The child after fork: the region registry's lock usable, the registry sound. */
MT_HIDDEN void mt__region_after_fork(void);
/* Call fn for every live region (for Prometheus and stats). */
MT_HIDDEN void mt__regions_each(void (*fn)(const char *name, uint64_t held, uint64_t requested, uint64_t chunks,
                                           void *arg),
                                void *arg);

#endif
