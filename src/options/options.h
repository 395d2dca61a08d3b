/* options.h -- the one table of MEMTALLY_* options, parsed once at start */
#ifndef MT_OPTIONS_H
#define MT_OPTIONS_H

#include "../base/common.h"

typedef enum mt_option_id {
  MT_OPT_MODE, /* first: it sets the defaults of the purge and cache options */
  MT_OPT_STATS,
  MT_OPT_ABORT,
  MT_OPT_PURGE_DELAY,
  MT_OPT_SEGMENT_CACHE,
  MT_OPT_HUGE_CACHE,
  MT_OPT_MEMLIMIT,
  MT_OPT_PROF,
  MT_OPT_PROF_RATE,
  MT_OPT_PROF_OUT,
  MT_OPT_PROF_INTERVAL,
  MT_OPT_PROF_PEAK,
  MT_OPT_FILE_MODE,
  MT_OPT_REGION_DEBUG,
  MT_OPT_PROF_SIGNAL,
  MT_OPT_HTTP,
  MT_OPT_PROF_LIMIT,
  MT_OPT_PROF_LIFETIMES,
  MT_OPT_COUNT
} mt_option_id;

typedef enum { MT_MODE_SPEED, MT_MODE_BALANCED, MT_MODE_LEAN } mt_mode;

/* Current values; valid after mt__options_init (defaults before). */
MT_HIDDEN extern long long mt__opt[MT_OPT_COUNT];
/* Text options (NULL: unset): copies made at start, so a program that
 * rewrites its environment strings (setproctitle: redis, nginx, postgres)
 * does not change them. */
MT_HIDDEN extern const char *mt__opt_str[MT_OPT_COUNT];
#define MT_OPT_TEXT_MAX 4096 /* longest text option kept (with its NUL) */
/* Parse the environment. Safe to call more than once; only the first call
 * that sees an environment does the work. Never allocates. */
MT_HIDDEN void mt__options_init(void);
/* Parse one value for option id (exposed for the fuzz and unit tests):
 * returns 0 and sets *out, or -1 when the text is not valid for the kind. */
MT_HIDDEN int mt__option_parse(mt_option_id id, const char *text, long long *out);

#endif
