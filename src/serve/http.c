/* http.c -- MEMTALLY_HTTP: the live endpoints of a running process
 *
 * One thread of memtally's own serves, with poll, at most MT_HTTP_CONNS
 * connections at a time (more are answered 503 and closed):
 *   /debug/pprof/               an index
 *   /debug/pprof/heap           the heap profile: in use now, and cumulative
 *   /debug/pprof/allocs         the same, alloc_space first for pprof's default
 *   /debug/pprof/lifetimes      how long sampled blocks lived so far, and who freed them
 *   ...?seconds=N               a delta: what was allocated in the next N
 *                               seconds (1..300), like Go's delta profiles
 *   /metrics                    the Prometheus text of allocator and regions
 * Requests are GET with a request line and headers under 4 KiB, read within
 * 5 s; anything else gets 400, 404, 405, 408 or 431. Responses are built in
 * memory memtally maps itself (mt_buf): nothing on the request path comes
 * from the public heap. A forked child closes the inherited socket: it
 * never answers for its parent. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../alloc/alloc.h"
#include "../options/options.h"
#include "../os/os.h"
#include "../profile/profile.h"
#include "../sample/sample.h"
#include "../write/buf.h"
#include "../write/prometheus.h"
#include "serve.h"

#define MT_HTTP_CONNS 64          /* connections served at once */
#define MT_HTTP_REQ_MAX 4096      /* request line and headers */
#define MT_HTTP_READ_MS 5000      /* to send them */
#define MT_HTTP_WRITE_MS 30000    /* to take the response */
#define MT_HTTP_DELTAS 4          /* delta profiles waiting at once */
#define MT_HTTP_SECONDS_MAX 300

/* DRAINING: the response is sent and the write side shut; what the client
 * still sends is read and dropped for a second, so closing with unread
 * bytes does not reset the connection before it reads the response. */
typedef enum { MT_FREE, MT_READING, MT_WAITING, MT_WRITING, MT_DRAINING } mt_conn_state;

typedef struct mt_conn {
  int fd;
  mt_conn_state state;
  uint64_t deadline_ms;           /* reading or writing: give up then; waiting: answer then */
  char req[MT_HTTP_REQ_MAX];
  size_t len;
  mt_buf out;                     /* the response */
  size_t sent;
  mt_prof_snapshot base;          /* waiting: the delta's start */
  int allocs;                     /* waiting: /allocs (else /heap) */
} mt_conn;

static mt_conn mt_conns[MT_HTTP_CONNS];
static _Atomic int mt_listen_fd = -1;
static _Atomic int mt_serving;

static int mt_respond(mt_conn *c, int code, const char *reason, const char *type, const void *body, size_t n) {
  char head[256];
  int k = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
                   reason, type, n);
  mt__buf_reset(&c->out);
  mt__buf_put(&c->out, head, (size_t)k);
  mt__buf_put(&c->out, body, n);
  c->state = MT_WRITING;
  c->sent = 0;
  c->deadline_ms = mt__os_now_ms() + MT_HTTP_WRITE_MS;
  return 0;
}

static int mt_error(mt_conn *c, int code, const char *reason, const char *why) {
  char body[256];
  int n = snprintf(body, sizeof body, "%d %s: %s\n", code, reason, why);
  return mt_respond(c, code, reason, "text/plain; charset=utf-8", body, (size_t)n);
}

static void mt_put_buf(const char *p, size_t n, void *arg) { mt__buf_put(arg, p, n); }

static int mt_profile_response(mt_conn *c, const mt_prof_snapshot *base, const char *kind) {
  mt_buf gz = {0};
  if (mt__profile_encode(&gz, base, kind) != 0) {
    mt__buf_free(&gz);
    return mt_error(c, 503, "Service Unavailable", errno == ENOTSUP ? "the profiler is off (MEMTALLY_PROF=0)" : "no memory");
  }
  mt_respond(c, 200, "OK", "application/octet-stream", gz.data, gz.len);
  mt__buf_free(&gz);
  return 0;
}

static const char mt_index[] =
    "<html><head><title>memtally</title></head><body>\n"
    "<p>memtally heap profiles of this process (pprof format):</p>\n<ul>\n"
    "<li><a href=\"heap\">heap</a>: in use now and cumulative (go tool pprof http://HOST/debug/pprof/heap)</li>\n"
    "<li><a href=\"allocs\">allocs</a>: the same, allocations first; ?seconds=N for the next N seconds only</li>\n"
    "<li><a href=\"lifetimes\">lifetimes</a>: how long sampled blocks lived and who freed them (memtally report --lifetimes)</li>\n"
    "<li><a href=\"/metrics\">/metrics</a>: Prometheus text of the allocator's and regions' figures</li>\n"
    "</ul></body></html>\n";

/* A whole request is in c->req: answer it (or start waiting for a delta). */
static int mt_handle(mt_conn *c) {
  char *line_end = strstr(c->req, "\r\n");
  if (line_end == NULL) return mt_error(c, 400, "Bad Request", "no request line");
  *line_end = 0;
  char *sp1 = strchr(c->req, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (sp1 == NULL || sp2 == NULL || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
    return mt_error(c, 400, "Bad Request", "malformed request line");
  *sp1 = 0, *sp2 = 0;
  if (strcmp(c->req, "GET") != 0) return mt_error(c, 405, "Method Not Allowed", "only GET");
  char *path = sp1 + 1, *query = strchr(path, '?');
  if (query != NULL) *query++ = 0;
  long seconds = 0;
  for (char *q = query; q != NULL && *q;) { /* seconds=N; other parameters are ignored */
    char *amp = strchr(q, '&');
    if (amp) *amp = 0;
    if (strncmp(q, "seconds=", 8) == 0) {
      char *end;
      errno = 0;
      seconds = strtol(q + 8, &end, 10);
      if (errno || *end || end == q + 8 || seconds < 1 || seconds > MT_HTTP_SECONDS_MAX)
        return mt_error(c, 400, "Bad Request", "seconds wants a whole number from 1 to 300");
    }
    q = amp ? amp + 1 : NULL;
  }
  if (strcmp(path, "/metrics") == 0) {
    mt_buf body = {0};
    mt__prometheus_emit(mt_put_buf, &body);
    if (body.failed) mt_error(c, 503, "Service Unavailable", "no memory");
    else mt_respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body.data, body.len);
    mt__buf_free(&body);
    return 0;
  }
  if (strcmp(path, "/debug/pprof/") == 0 || strcmp(path, "/debug/pprof") == 0)
    return mt_respond(c, 200, "OK", "text/html; charset=utf-8", mt_index, sizeof mt_index - 1);
  int heap = strcmp(path, "/debug/pprof/heap") == 0, allocs = strcmp(path, "/debug/pprof/allocs") == 0;
  if (strcmp(path, "/debug/pprof/lifetimes") == 0) {
    if (seconds != 0) return mt_error(c, 400, "Bad Request", "seconds applies to heap and allocs");
    if (!mt__opt[MT_OPT_PROF_LIFETIMES]) return mt_error(c, 404, "Not Found", "lifetimes are off (MEMTALLY_PROF_LIFETIMES=0)");
    return mt_profile_response(c, NULL, "lifetimes");
  }
  if (!heap && !allocs) return mt_error(c, 404, "Not Found", "see /debug/pprof/ and /metrics");
  if (seconds == 0) return mt_profile_response(c, NULL, allocs ? "allocs" : "heap");
  int waiting = 0;
  for (int i = 0; i < MT_HTTP_CONNS; i++) waiting += mt_conns[i].state == MT_WAITING;
  if (waiting >= MT_HTTP_DELTAS) return mt_error(c, 503, "Service Unavailable", "too many delta profiles at once");
  if (mt__prof_snapshot(&c->base, false) != 0) return mt_error(c, 503, "Service Unavailable", "no memory");
  c->state = MT_WAITING;
  c->allocs = allocs;
  c->deadline_ms = mt__os_now_ms() + (uint64_t)seconds * 1000;
  return 0;
}

static int mt_conn_close(mt_conn *c) {
  mt__os_close(c->fd);
  if (c->state == MT_WAITING) mt__prof_snapshot_free(&c->base);
  mt__buf_free(&c->out);
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->state = MT_FREE;
  return 0;
}

static void mt_accept_all(int lfd) {
  for (;;) {
    int fd = mt__os_accept(lfd);
    if (fd < 0) return;
    mt_conn *c = NULL;
    for (int i = 0; i < MT_HTTP_CONNS && c == NULL; i++)
      if (mt_conns[i].state == MT_FREE) c = &mt_conns[i];
    if (c == NULL) { /* full: a short answer, best effort, and close */
      static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)mt__os_send(fd, busy, sizeof busy - 1);
      mt__os_close(fd);
      continue;
    }
    c->fd = fd;
    c->state = MT_READING;
    c->len = 0;
    c->deadline_ms = mt__os_now_ms() + MT_HTTP_READ_MS;
  }
}

static int mt_read_some(mt_conn *c) {
  long r = mt__os_recv(c->fd, c->req + c->len, sizeof c->req - 1 - c->len);
  if (r == -1) return 0;
  if (r <= 0) return mt_conn_close(c); /* closed or failed before a whole request */
  c->len += (size_t)r;
  c->req[c->len] = 0;
  if (strstr(c->req, "\r\n\r\n") != NULL) return mt_handle(c);
  if (c->len >= sizeof c->req - 1) return mt_error(c, 431, "Request Header Fields Too Large", "over 4 KiB");
  return 0;
}

static void mt_write_some(mt_conn *c) {
  while (c->sent < c->out.len) {
    long w = mt__os_send(c->fd, c->out.data + c->sent, c->out.len - c->sent);
    if (w == -1) return;
    if (w <= 0) {
      mt_conn_close(c);
      return;
    }
    c->sent += (size_t)w;
  }
  mt__os_shutdown_write(c->fd);
  c->state = MT_DRAINING;
  c->deadline_ms = mt__os_now_ms() + 1000;
}

static void mt_drain(mt_conn *c) {
  char sink[4096];
  long r;
  while ((r = mt__os_recv(c->fd, sink, sizeof sink)) > 0) {
  }
  if (r != -1) mt_conn_close(c); /* the client closed (or failed): done */
}

static void *mt_serve(void *arg) {
  int lfd = (int)(intptr_t)arg;
  struct pollfd pfd[MT_HTTP_CONNS + 1];
  int who[MT_HTTP_CONNS + 1];
  for (;;) {
    unsigned n = 0;
    pfd[n] = (struct pollfd){lfd, POLLIN, 0}, who[n++] = -1;
    uint64_t now = mt__os_now_ms(), next = now + 1000;
    for (int i = 0; i < MT_HTTP_CONNS; i++) {
      mt_conn *c = &mt_conns[i];
      if (c->state == MT_FREE) continue;
      if (c->deadline_ms < next) next = c->deadline_ms;
      if (c->state == MT_WAITING) continue;
      short ev = c->state == MT_WRITING ? POLLOUT : POLLIN;
      pfd[n] = (struct pollfd){c->fd, ev, 0}, who[n++] = i;
    }
    int timeout = next > now ? (int)(next - now) : 0;
    if (mt__os_poll(pfd, n, timeout) < 0 && errno != EINTR) mt__os_sleep_ms(10);
    if (!mt_load(&mt_serving)) return NULL; /* stopped */
    for (unsigned k = 1; k < n; k++) {
      if (pfd[k].revents == 0) continue;
      mt_conn *c = &mt_conns[who[k]];
      if (c->state == MT_READING) mt_read_some(c);
      else if (c->state == MT_WRITING) mt_write_some(c);
      else if (c->state == MT_DRAINING) mt_drain(c);
    }
    if (pfd[0].revents & POLLIN) mt_accept_all(lfd);
    now = mt__os_now_ms();
    for (int i = 0; i < MT_HTTP_CONNS; i++) { /* deadlines: deltas due, slow clients dropped */
      mt_conn *c = &mt_conns[i];
      if (c->state == MT_FREE || c->deadline_ms > now) continue;
      if (c->state == MT_WAITING) {
        mt_prof_snapshot base = c->base;
        c->state = MT_READING; /* so that the snapshot is not freed twice */
        mt_profile_response(c, &base, c->allocs ? "allocs" : "heap");
        mt__prof_snapshot_free(&base);
      } else if (c->state == MT_READING) {
        mt_error(c, 408, "Request Timeout", "the request took over 5 s");
        c->deadline_ms = now + 1000; /* and one second to take that answer */
      } else {
        mt_conn_close(c);
      }
    }
  }
}

void mt__serve_start(void) {
  const char *spec = mt__opt_str[MT_OPT_HTTP];
  if (spec == NULL || mt_load(&mt_serving)) return;
  char host[64];
  const char *colon = strrchr(spec, ':');
  size_t hl = colon ? (size_t)(colon - spec) : 0;
  char *end = NULL;
  long port = colon ? strtol(colon + 1, &end, 10) : -1;
  if (colon == NULL || hl == 0 || hl >= sizeof host || end == colon + 1 || *end || port < 0 || port > 65535) {
    static const char msg[] = "memtally: warning: MEMTALLY_HTTP wants HOST:PORT (127.0.0.1:0 picks a port); not serving\n";
    mt__os_write_err(msg, sizeof msg - 1);
    return;
  }
  memcpy(host, spec, hl);
  host[hl] = 0;
  mt__profile_load_zlib(); /* the profiles it serves are compressed */
  int bound = 0;
  int fd = mt__os_listen(host, (int)port, &bound);
  char msg[256];
  if (fd < 0) {
    int n = snprintf(msg, sizeof msg, "memtally: warning: cannot serve on %s: %s\n", spec, strerror(errno));
    mt__os_write_err(msg, (size_t)n);
    return;
  }
  for (int i = 0; i < MT_HTTP_CONNS; i++) mt_conns[i].fd = -1, mt_conns[i].state = MT_FREE;
  mt_store(&mt_listen_fd, fd);
  mt_store(&mt_serving, 1);
  if (mt__os_thread_start(mt_serve, (void *)(intptr_t)fd) != 0) {
    mt_store(&mt_serving, 0);
    mt__os_close(fd);
    return;
  }
  int n = snprintf(msg, sizeof msg, "memtally: serving http://%s:%d/debug/pprof/ and /metrics (pid %d)\n", host, bound,
                   mt__os_getpid());
  mt__os_write_err(msg, (size_t)n);
  if (mt__opt_str[MT_OPT_PROF_OUT] != NULL) { /* where a script finds the port: PREFIX.PROGRAM.PID.http */
    char path[4096], url[96];
    int u = snprintf(url, sizeof url, "http://%s:%d/\n", host, bound);
    int k = snprintf(path, sizeof path, "%s.%s.%d.http", mt__opt_str[MT_OPT_PROF_OUT], mt__os_program(), mt__os_getpid());
    if (k > 0 && (size_t)k < sizeof path)
      mt__os_write_file_atomic(path, url, (size_t)u, (unsigned)mt__opt[MT_OPT_FILE_MODE]);
  }
}

void mt__serve_after_fork_child(void) {
  /* the serving thread did not survive; its socket would answer for the parent */
  if (!mt_load(&mt_serving)) return;
  mt_store(&mt_serving, 0);
  mt__os_close(mt_load(&mt_listen_fd));
  mt_store(&mt_listen_fd, -1);
  for (int i = 0; i < MT_HTTP_CONNS; i++)
    if (mt_conns[i].state != MT_FREE) mt__os_close(mt_conns[i].fd), mt_conns[i].state = MT_FREE;
}
