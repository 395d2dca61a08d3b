/* merge.h -- memtally merge, and writing a file through a temporary renamed into place */
#ifndef MTT_MERGE_H
#define MTT_MERGE_H

#include <stddef.h>

#include "profile.h"

/* Merge n profiles into outpath. 0, or 2 with a one-line reason in err. */
int mtt_merge(mtt_profile *in, size_t n, const char *outpath, char *err, size_t errlen);
/* The same, the comment given (NULL: "merged from N profiles"): one
 * profile written again after re-symbolizing (memtally symbolize). */
int mtt_write_profiles(mtt_profile *in, size_t n, const char *outpath, const char *comment, char *err,
                       size_t errlen);
/* Write data to outpath through a temporary created with O_EXCL|O_NOFOLLOW
 * beside it, then renamed; refuses to replace anything but a regular file.
 * 0, or 2 with a reason in err. */
int mtt_write_file(const char *outpath, const void *data, size_t len, char *err, size_t errlen);

#endif
