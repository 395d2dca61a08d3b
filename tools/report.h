/* report.h -- worst-offender tables, diffs and flame graphs from pprof profiles */
#ifndef MTT_REPORT_H
#define MTT_REPORT_H

#include <stdio.h>

#include "profile.h"

#include <regex.h>

typedef enum {
  MTT_BY_FUNCTION, /* the site: the innermost frame that is neither the allocator nor a wrapper */
  MTT_BY_LINE,     /* the site with its file and line */
  MTT_BY_STACK,    /* the site and its callers */
  MTT_BY_REGION,   /* the "region" label */
  MTT_BY_CALLER,   /* the frame that called the site */
  MTT_BY_THREAD,   /* the "thread" label */
  MTT_BY_SIZE      /* the average block size of each stack, in powers of two */
} mtt_by;

#define MTT_MAX_PATTERNS 16
typedef struct mtt_pattern_list {
  regex_t re[MTT_MAX_PATTERNS];
  int n;
} mtt_pattern_list;

typedef struct mtt_options {
  const char *sample; /* sample type name, NULL: the profile's default or inuse_space */
  mtt_by by;
  int top;
  int json;
  int no_fold;              /* keep wrapper frames as sites */
  int lifetimes;            /* report --lifetimes */
  mtt_pattern_list skip;    /* more wrappers (--skip) */
  mtt_pattern_list focus;   /* only samples with a frame matching one (--focus) */
  mtt_pattern_list ignore;  /* not samples with a frame matching one (--ignore) */
  mtt_pattern_list hide;    /* frames matching one are left out of stacks (--hide) */
} mtt_options;

/* Whether name is an allocation wrapper memtally folds into its caller
 * (xmalloc, g_malloc, zmalloc, sqlite3Malloc, PyMem_Malloc, operator new, ...). */
int mtt_is_wrapper(const char *name);

/* Print the report of p to out; 0, or 2 with a message on err for bad options. */
int mtt_report(const mtt_profile *p, const mtt_options *o, FILE *out, char *err, size_t errlen);
/* Whether p is a lifetimes profile (sample type "lifetime"). */
int mtt_is_lifetimes(const mtt_profile *p);
/* The lifetimes table of a lifetimes profile: per site, objects, median and
 * p90 lifetime, shares freed within 1 ms and 100 ms, in use, freed by
 * another thread, the top freeing sites; rules die-young, die-together,
 * long-lived under the top five. 0, or 2 with a message in err. */
int mtt_report_lifetimes(const mtt_profile *p, const mtt_options *o, FILE *out, char *err, size_t errlen);
int mtt_diff(const mtt_profile *base, const mtt_profile *cur, const mtt_options *o, FILE *out, char *err,
             size_t errlen);
int mtt_flame(const mtt_profile *p, const mtt_options *o, FILE *out, char *err, size_t errlen);
/* Resolve o->sample to a type index of p (and its object-count companion). */
int mtt_pick_type(const mtt_profile *p, const mtt_options *o, int *value, int *objects, char *err, size_t errlen);
/* The sum of one sample type over the profile. */
double mtt_type_total(const mtt_profile *p, int type);

#endif
