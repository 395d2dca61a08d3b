/* push.c -- memtally push: profiles to a continuous-profiling backend over HTTP
 *
 * Pyroscope:  POST BASE/ingest?name=APP.heap{k=v,...}&from=S&until=S&format=pprof
 *             (APP.lifetimes for a lifetimes profile)
 *             multipart/form-data, the profile in the field "profile";
 *             X-Scope-OrgID: TENANT when --tenant is given.
 * Parca:      POST BASE/profiles/writeraw, JSON:
 *             {"series":[{"labels":{"labels":[{"name":"__name__","value":"memory"},
 *              {"name":K,"value":V},...]},"samples":[{"rawProfile":BASE64}]}],"normalized":false}
 * Plain http:// (a TLS-terminating proxy or agent for https). A failure
 * (refused, timeout, a status other than 2xx) is retried with backoff
 * (0.5 s doubling, --retries times); the file is never touched. With
 * --watch DIR, files that appear in DIR are pushed once each, oldest first
 * (their names kept in DIR/.memtally-pushed), until SIGINT or SIGTERM. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "profile.h"
#include "push.h"

typedef struct sbuf {
  char *p;
  size_t n, cap;
} sbuf;

static int sput(sbuf *b, const void *p, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->n + n + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (q == NULL) return -1;
    b->p = q, b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
  b->p[b->n] = 0;
  return 0;
}
static int sputs(sbuf *b, const char *s) { return sput(b, s, strlen(s)); }

static void url_escape(sbuf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      sput(b, s, 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      sput(b, e, 3);
    }
  }
}

static void json_escape(sbuf *b, const char *s) {
  sputs(b, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      sput(b, e, 2);
    } else if (c < 0x20) {
      char e[8];
      snprintf(e, sizeof e, "\\u%04x", c);
      sputs(b, e);
    } else {
      sput(b, s, 1);
    }
  }
  sputs(b, "\"");
}

static void base64(sbuf *b, const unsigned char *p, size_t n) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    char o[4] = {t[v >> 18 & 63], t[v >> 12 & 63], i + 1 < n ? t[v >> 6 & 63] : '=', i + 2 < n ? t[v & 63] : '='};
    sput(b, o, 4);
  }
}

/* ---- one HTTP/1.1 request over plain TCP, with a deadline ---- */

typedef struct url {
  char host[256], port[8], path[1024]; /* path: the base, without a trailing / */
} url;

static int parse_url(const char *s, url *u, char *err, size_t errlen) {
  if (strncmp(s, "http://", 7) != 0) {
    snprintf(err, errlen, "--to wants an http:// URL (for https, a TLS-terminating proxy or agent)");
    return -1;
  }
  for (const char *c = s; *c; c++)
    if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '?' || *c == '#') {
      snprintf(err, errlen, "--to: a URL without spaces, control characters, query or fragment");
      return -1;
    }
  s += 7;
  const char *slash = strchr(s, '/');
  size_t hl = slash ? (size_t)(slash - s) : strlen(s);
  const char *colon = memchr(s, ':', hl);
  size_t host_len = colon ? (size_t)(colon - s) : hl;
  size_t port_len = colon ? hl - host_len - 1 : 2;
  const char *port = colon ? colon + 1 : "80";
  size_t path_len = slash ? strlen(slash) : 0;
  if (host_len == 0 || host_len >= sizeof u->host || port_len == 0 || port_len >= sizeof u->port ||
      strspn(port, "0123456789") < port_len || path_len >= sizeof u->path) {
    snprintf(err, errlen, "--to: not a usable http://HOST[:PORT][/BASE] URL");
    return -1;
  }
  memcpy(u->host, s, host_len);
  u->host[host_len] = 0;
  memcpy(u->port, port, port_len);
  u->port[port_len] = 0;
  memcpy(u->path, slash ? slash : "", path_len);
  u->path[path_len] = 0;
  while (path_len > 0 && u->path[path_len - 1] == '/') u->path[--path_len] = 0;
  return 0;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline; 1 ready, 0 timed out. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, (int)left);
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return 0;
  }
}

/* Send head and body; the status code (2xx success), or -1 with why. */
static int http_post(const url *u, const sbuf *head, const void *body, size_t blen, int timeout_s, char *why,
                     size_t whylen) {
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_socktype = SOCK_STREAM;
  int g = getaddrinfo(u->host, u->port, &hints, &ai);
  if (g != 0) {
    snprintf(why, whylen, "cannot resolve %s: %s", u->host, gai_strerror(g));
    return -1;
  }
  long long deadline = now_ms() + (long long)timeout_s * 1000;
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = -1;
  if (fd < 0) {
    snprintf(why, whylen, "socket: %s", strerror(errno));
    goto out;
  }
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
    snprintf(why, whylen, "cannot connect to %s:%s: %s", u->host, u->port, strerror(errno));
    goto out;
  }
  if (!wait_fd(fd, POLLOUT, deadline)) {
    snprintf(why, whylen, "timed out connecting to %s:%s", u->host, u->port);
    goto out;
  }
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  if (soerr != 0) {
    snprintf(why, whylen, "cannot connect to %s:%s: %s", u->host, u->port, strerror(soerr));
    goto out;
  }
  const char *parts[2] = {head->p, body};
  size_t lens[2] = {head->n, blen};
  for (int k = 0; k < 2; k++) {
    size_t off = 0;
    while (off < lens[k]) {
      if (!wait_fd(fd, POLLOUT, deadline)) {
        snprintf(why, whylen, "timed out sending to %s:%s", u->host, u->port);
        goto out;
      }
      ssize_t w = send(fd, parts[k] + off, lens[k] - off, MSG_NOSIGNAL);
      if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (w <= 0) {
        snprintf(why, whylen, "sending: %s", strerror(errno));
        goto out;
      }
      off += (size_t)w;
    }
  }
  char resp[512];
  size_t got = 0;
  while (got < sizeof resp - 1 && memchr(resp, '\n', got) == NULL) {
    if (!wait_fd(fd, POLLIN, deadline)) {
      snprintf(why, whylen, "timed out waiting for %s:%s to answer", u->host, u->port);
      goto out;
    }
    ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  resp[got] = 0;
  int code = 0;
  if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) {
    snprintf(why, whylen, "no HTTP answer from %s:%s", u->host, u->port);
    goto out;
  }
  char *eol = strpbrk(resp, "\r\n");
  if (eol) *eol = 0;
  snprintf(why, whylen, "%s", resp);
  rc = code;
out:
  if (fd >= 0) close(fd);
  freeaddrinfo(ai);
  return rc;
}

/* ---- the requests ---- */

static int read_file(const char *path, sbuf *b) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return -1;
  char tmp[65536];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
    if (sput(b, tmp, n) != 0) break;
  int bad = ferror(f);
  fclose(f);
  return bad ? -1 : 0;
}

/* The program's name from a memtally file name, PREFIX.PROGRAM.PID.KIND[.N].pb.gz
 * (the PID is the first all-digit part after PROGRAM followed by a word), else "memtally". */
static void app_of(const char *path, char *app, size_t cap) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  snprintf(app, cap, "memtally");
  char tmp[256];
  if (snprintf(tmp, sizeof tmp, "%s", base) >= (int)sizeof tmp) return;
  char *tok[32];
  int n = 0;
  for (char *p = strtok(tmp, "."); p && n < 32; p = strtok(NULL, ".")) tok[n++] = p;
  int pid = -1;
  for (int i = 2; i + 1 < n; i++)
    if (strspn(tok[i], "0123456789") == strlen(tok[i]) && tok[i + 1][0] >= 'a' && tok[i + 1][0] <= 'z') {
      pid = i;
      break;
    }
  if (pid < 2) return;
  sbuf s = {0};
  for (int i = 1; i < pid; i++) {
    if (i > 1) sputs(&s, ".");
    sputs(&s, tok[i]);
  }
  if (s.n) snprintf(app, cap, "%s", s.p);
  free(s.p);
}

static int push_one(const mtt_push_options *o, const char *path, char *err, size_t errlen) {
  url u;
  if (parse_url(o->to, &u, err, errlen) != 0) return 2;
  sbuf file = {0}, head = {0}, body = {0};
  if (read_file(path, &file) != 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    free(file.p);
    return 2;
  }
  mtt_profile p;
  char perr[256];
  long long from = time(NULL), until = from;
  if (mtt_profile_read(path, &p, perr, sizeof perr) != 0) {
    snprintf(err, errlen, "%s: %s", path, perr);
    free(file.p);
    return 2;
  }
  /* memtally stamps a profile when it is taken; its duration reaches back to
   * the process's start (or the window's) */
  if (p.time_nanos > 0) {
    until = (p.time_nanos + 999999999LL) / 1000000000LL;
    from = (p.time_nanos - (p.duration_nanos > 0 ? p.duration_nanos : 0)) / 1000000000LL;
  }
  if (until <= from) until = from + 1;
  int lifetimes = mtt_profile_type(&p, "lifetime") >= 0; /* a lifetimes profile: its own name and types */
  mtt_profile_free(&p);
  char app[128], line[512];
  if (o->app) snprintf(app, sizeof app, "%s", o->app);
  else app_of(path, app, sizeof app);
  if (o->format == MTT_PUSH_PARCA) {
    sputs(&body, lifetimes ? "{\"series\":[{\"labels\":{\"labels\":[{\"name\":\"__name__\",\"value\":\"memory_lifetimes\"},"
                           : "{\"series\":[{\"labels\":{\"labels\":[{\"name\":\"__name__\",\"value\":\"memory\"},");
    sputs(&body, "{\"name\":\"service_name\",\"value\":");
    json_escape(&body, app);
    sputs(&body, "}");
    for (int i = 0; i < o->nlabels; i++) {
      sputs(&body, ",{\"name\":");
      json_escape(&body, o->label_keys[i]);
      sputs(&body, ",\"value\":");
      json_escape(&body, o->label_values[i]);
      sputs(&body, "}");
    }
    sputs(&body, "]},\"samples\":[{\"rawProfile\":\"");
    base64(&body, (const unsigned char *)file.p, file.n);
    sputs(&body, "\"}]}],\"normalized\":false");
    if (o->tenant) {
      sputs(&body, ",\"tenant\":");
      json_escape(&body, o->tenant);
    }
    sputs(&body, "}");
    sputs(&head, "POST ");
    sputs(&head, u.path);
    sputs(&head, "/profiles/writeraw HTTP/1.1\r\n");
    sputs(&head, "Content-Type: application/json\r\n");
  } else {
    sbuf q = {0}, name = {0};
    sputs(&name, app);
    sputs(&name, lifetimes ? ".lifetimes{" : ".heap{");
    for (int i = 0; i < o->nlabels; i++) {
      if (i) sputs(&name, ",");
      sputs(&name, o->label_keys[i]);
      sputs(&name, "=");
      sputs(&name, o->label_values[i]);
    }
    sputs(&name, "}");
    sputs(&q, "name=");
    url_escape(&q, name.p);
    snprintf(line, sizeof line, "&from=%lld&until=%lld&format=pprof", from, until);
    sputs(&q, line);
    sputs(&head, "POST ");
    sputs(&head, u.path);
    sputs(&head, "/ingest?");
    sputs(&head, q.p);
    sputs(&head, " HTTP/1.1\r\n");
    free(q.p), free(name.p);
    static const char boundary[] = "memtally-profile-boundary-7d1f";
    sputs(&body, "--");
    sputs(&body, boundary);
    sputs(&body, "\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pb.gz\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n");
    sput(&body, file.p, file.n);
    /* Units and how to merge each sample type memtally writes: Pyroscope
     * knows Go's four; the two held types need saying. Values are already
     * scaled to estimates, and each file stands alone (no prev_profile). */
    sputs(&body, "\r\n--");
    sputs(&body, boundary);
    sputs(&body, "\r\nContent-Disposition: form-data; name=\"sample_type_config\"; filename=\"config.json\"\r\n"
                 "Content-Type: application/json\r\n\r\n");
    static const char *const types[][3] = {{"alloc_objects", "objects", "sum"},    {"alloc_space", "bytes", "sum"},
                                           {"inuse_objects", "objects", "average"}, {"inuse_space", "bytes", "average"},
                                           {"alloc_held_space", "bytes", "sum"},   {"inuse_held_space", "bytes", "average"}};
    static const char *const life_types[][3] = {
        {"objects", "objects", "sum"}, {"space", "bytes", "sum"}, {"lifetime", "nanoseconds", "sum"}};
    const char *const(*t)[3] = lifetimes ? life_types : types;
    size_t nt = lifetimes ? 3 : sizeof types / sizeof types[0];
    sputs(&body, "{");
    for (size_t i = 0; i < nt; i++) {
      snprintf(line, sizeof line, "%s\"%s\":{\"units\":\"%s\",\"aggregation\":\"%s\",\"display-name\":\"%s_%s\"}",
               i ? "," : "", t[i][0], t[i][1], t[i][2], t[i][0], t[i][1]);
      sputs(&body, line);
    }
    sputs(&body, "}\r\n--");
    sputs(&body, boundary);
    sputs(&body, "--\r\n");
    snprintf(line, sizeof line, "Content-Type: multipart/form-data; boundary=%s\r\n", boundary);
    sputs(&head, line);
    if (o->tenant) {
      sputs(&head, "X-Scope-OrgID: ");
      sputs(&head, o->tenant); /* checked by the caller: no control characters */
      sputs(&head, "\r\n");
    }
  }
  sputs(&head, "Host: ");
  sputs(&head, u.host);
  snprintf(line, sizeof line, ":%s\r\nUser-Agent: memtally-push\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
           u.port, body.n);
  sputs(&head, line);
  int rc = 1;
  double backoff = o->backoff_s > 0 ? o->backoff_s : 0.5;
  char why[600] = "";
  for (int attempt = 0; attempt <= o->retries; attempt++) {
    if (attempt > 0) {
      struct timespec ts = {(time_t)backoff, (long)((backoff - (double)(time_t)backoff) * 1e9)};
      nanosleep(&ts, NULL);
      backoff = backoff * 2 > 30 ? 30 : backoff * 2;
    }
    int code = http_post(&u, &head, body.p, body.n, o->timeout_s, why, sizeof why);
    if (code >= 200 && code < 300) {
      rc = 0;
      break;
    }
    if (code >= 400 && code < 500 && code != 408 && code != 429) break; /* the request itself is wrong: no retry */
  }
  if (rc != 0) snprintf(err, errlen, "%s: not pushed to %s (%s); the file stays", path, o->to, why);
  free(file.p), free(head.p), free(body.p);
  return rc;
}

/* ---- files, or a directory watched ---- */

static volatile sig_atomic_t stop_watch;
static void on_stop(int sig) {
  (void)sig;
  stop_watch = 1;
}

typedef struct seen {
  char **names;
  size_t n, cap;
} seen;

static int seen_has(const seen *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->names[i], name) == 0) return 1;
  return 0;
}
static void seen_add(seen *s, const char *name) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 64;
    char **q = realloc(s->names, cap * sizeof *q);
    if (q == NULL) return;
    s->names = q, s->cap = cap;
  }
  char *d = strdup(name);
  if (d) s->names[s->n++] = d;
}

typedef struct pending {
  char name[256];
  long long mtime;
} pending;
static int by_mtime(const void *a, const void *b) {
  const pending *x = a, *y = b;
  if (x->mtime != y->mtime) return x->mtime < y->mtime ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int watch(const mtt_push_options *o) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  char state[4096];
  snprintf(state, sizeof state, "%s/.memtally-pushed", o->watch);
  seen done = {0};
  FILE *f = fopen(state, "r");
  char line[512];
  while (f && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (line[0]) seen_add(&done, line);
  }
  if (f) fclose(f);
  int failures = 0;
  while (!stop_watch) {
    DIR *d = opendir(o->watch);
    if (d == NULL) {
      fprintf(stderr, "memtally: cannot read %s: %s\n", o->watch, strerror(errno));
      return 2;
    }
    pending list[512];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < sizeof list / sizeof list[0]) {
      size_t l = strlen(e->d_name);
      if (l < 7 || strcmp(e->d_name + l - 6, ".pb.gz") != 0 || strstr(e->d_name, ".tmp.") || seen_has(&done, e->d_name))
        continue;
      char path[4400];
      struct stat st;
      if (snprintf(path, sizeof path, "%s/%s", o->watch, e->d_name) >= (int)sizeof path) continue;
      if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
      snprintf(list[n].name, sizeof list[n].name, "%s", e->d_name);
      list[n++].mtime = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    }
    closedir(d);
    qsort(list, n, sizeof list[0], by_mtime);
    for (size_t i = 0; i < n && !stop_watch; i++) {
      char path[4400], err[1024];
      if (snprintf(path, sizeof path, "%s/%s", o->watch, list[i].name) >= (int)sizeof path) continue;
      int r = push_one(o, path, err, sizeof err);
      if (r == 0) {
        seen_add(&done, list[i].name);
        FILE *s = fopen(state, "a");
        if (s) fprintf(s, "%s\n", list[i].name), fclose(s);
        printf("pushed %s\n", list[i].name);
        fflush(stdout);
      } else {
        fprintf(stderr, "memtally: %s\n", err);
        failures++;
        if (r == 2) seen_add(&done, list[i].name); /* unreadable: said once, not retried */
      }
    }
    if (o->once) break;
    for (int k = 0; k < 10 && !stop_watch; k++) usleep(100000);
  }
  for (size_t i = 0; i < done.n; i++) free(done.names[i]);
  free(done.names);
  return failures ? 1 : 0;
}

int mtt_push(const mtt_push_options *o, const char *const *files, size_t nfiles) {
  if (o->watch) return watch(o);
  int rc = 0;
  for (size_t i = 0; i < nfiles; i++) {
    char err[1024];
    int r = push_one(o, files[i], err, sizeof err);
    if (r != 0) {
      fprintf(stderr, "memtally: %s\n", err);
      if (r > rc) rc = r;
    } else {
      printf("pushed %s\n", files[i]);
    }
  }
  return rc;
}
