/* report.h -- worst-offender tables, diffs and flame graphs from pprof profiles */
#ifndef MTT_REPORT_H
#define MTT_REPORT_H

#include <stdio.h>

#include "profile.h"

typedef enum { MTT_BY_FUNCTION, MTT_BY_LINE, MTT_BY_STACK, MTT_BY_REGION } mtt_by;

typedef struct mtt_options {
  const char *sample; /* sample type name, NULL: the profile's default or inuse_space */
  mtt_by by;
  int top;
  int json;
} mtt_options;

/* Print the report of p to out; 0, or 2 with a message on err for bad options. */
int mtt_report(const mtt_profile *p, const mtt_options *o, FILE *out, char *err, size_t errlen);
int mtt_diff(const mtt_profile *base, const mtt_profile *cur, const mtt_options *o, FILE *out, char *err,
             size_t errlen);
int mtt_flame(const mtt_profile *p, const mtt_options *o, FILE *out, char *err, size_t errlen);
/* Resolve o->sample to a type index of p (and its object-count companion). */
int mtt_pick_type(const mtt_profile *p, const mtt_options *o, int *value, int *objects, char *err, size_t errlen);
/* The sum of one sample type over the profile. */
double mtt_type_total(const mtt_profile *p, int type);

#endif
