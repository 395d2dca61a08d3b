/* prometheus.h -- the Prometheus text of the allocator's and regions' figures */
#ifndef MT_PROMETHEUS_H
#define MT_PROMETHEUS_H

#include <stddef.h>

#include "../base/common.h"

typedef void mt_put_fn(const char *text, size_t n, void *arg);
/* Emit the exposition text through put, in pieces, without allocating. */
MT_HIDDEN void mt__prometheus_emit(mt_put_fn *put, void *arg);

#endif
