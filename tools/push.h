/* push.h -- memtally push: uploading profiles to Pyroscope or Parca over HTTP */
#ifndef MTT_PUSH_H
#define MTT_PUSH_H

#include <stddef.h>

enum { MTT_PUSH_PYROSCOPE, MTT_PUSH_PARCA };

enum { MTT_PUSH_MAX_LABELS = 32 };

typedef struct mtt_push_options {
  const char *to;     /* http://HOST[:PORT][/BASE] */
  int format;         /* MTT_PUSH_PYROSCOPE or MTT_PUSH_PARCA */
  const char *app;    /* the application name; NULL: the program's name from the file name */
  const char *tenant; /* X-Scope-OrgID (Pyroscope) or the tenant field (Parca); NULL: none */
  const char *label_keys[MTT_PUSH_MAX_LABELS], *label_values[MTT_PUSH_MAX_LABELS];
  int nlabels;
  int retries;       /* further attempts after a failed one, with doubling backoff */
  int timeout_s;     /* per attempt: connect, send, answer */
  double backoff_s;  /* the first wait between attempts */
  const char *watch; /* a directory to watch instead of files; NULL: files */
  int once;          /* with watch: one pass, then exit */
} mtt_push_options;

/* Pushes each file (or, with o->watch, each profile that appears in the
 * directory, once); one line per file on stdout. 0 when every file was
 * accepted, 1 when the server refused or could not be reached after the
 * retries (the files are never touched), 2 for a bad file or URL. */
int mtt_push(const mtt_push_options *o, const char *const *files, size_t nfiles);

#endif
