/* b_region.c -- allocs/op benchmarks: malloc vs a region vs talloc vs obstack
 *
 * Two workloads, each as a function the harness (mt_bench) runs N times:
 * build 100 000 small structs reachable from a vector and drop them all; and
 * parse a request (a method, a path, 24 headers split into name/value
 * strings, a header table) and drop it. Prints ns/op, B/op and allocs/op;
 * B/op and allocs/op are the allocator's exact counts for this thread. */
#define _GNU_SOURCE
#include <obstack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memtally.h"
#ifdef MT_HAVE_TALLOC
#include <talloc.h>
#endif

#define NSTRUCTS 100000
typedef struct item {
  long id;
  double score;
  struct item *next;
} item;

static volatile long sink;

/* ---- 100 000 structs ---- */
static void structs_malloc(void *arg) {
  (void)arg;
  item **v = malloc(sizeof(item *) * NSTRUCTS);
  for (long i = 0; i < NSTRUCTS; i++) {
    v[i] = malloc(sizeof(item));
    v[i]->id = i;
  }
  sink += v[NSTRUCTS / 2]->id;
  for (long i = 0; i < NSTRUCTS; i++) free(v[i]);
  free(v);
}

static void structs_region(void *arg) {
  mt_region *r = arg;
  item **v = MT_REGION_NEW_ARRAY(r, item *, NSTRUCTS);
  for (long i = 0; i < NSTRUCTS; i++) {
    v[i] = MT_REGION_NEW_ARRAY(r, item, 1);
    v[i]->id = i;
  }
  sink += v[NSTRUCTS / 2]->id;
  mt_region_reset(r);
}

#define obstack_chunk_alloc malloc
#define obstack_chunk_free free
static void structs_obstack(void *arg) {
  (void)arg;
  struct obstack ob;
  obstack_init(&ob);
  item **v = obstack_alloc(&ob, sizeof(item *) * NSTRUCTS);
  for (long i = 0; i < NSTRUCTS; i++) {
    v[i] = obstack_alloc(&ob, sizeof(item));
    v[i]->id = i;
  }
  sink += v[NSTRUCTS / 2]->id;
  obstack_free(&ob, NULL);
}

#ifdef MT_HAVE_TALLOC
static void structs_talloc(void *arg) {
  (void)arg;
  void *ctx = talloc_new(NULL);
  item **v = talloc_array(ctx, item *, NSTRUCTS);
  for (long i = 0; i < NSTRUCTS; i++) {
    v[i] = talloc(ctx, item);
    v[i]->id = i;
  }
  sink += v[NSTRUCTS / 2]->id;
  talloc_free(ctx);
}
#endif

/* ---- parse a request, then drop it ---- */
static char request[4096];

typedef struct header {
  char *name, *value;
} header;
typedef struct req {
  char *method, *path;
  header *headers;
  int nheaders;
} req;

typedef void *(*alloc_fn)(void *ctx, size_t n);
static char *dup_n(alloc_fn a, void *ctx, const char *s, size_t n) {
  char *p = a(ctx, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

static req *parse(alloc_fn a, void *ctx) {
  req *q = a(ctx, sizeof *q);
  const char *p = request, *sp = strchr(p, ' ');
  q->method = dup_n(a, ctx, p, (size_t)(sp - p));
  p = sp + 1;
  sp = strchr(p, ' ');
  q->path = dup_n(a, ctx, p, (size_t)(sp - p));
  p = strchr(p, '\n') + 1;
  q->headers = a(ctx, sizeof(header) * 32);
  q->nheaders = 0;
  while (*p && *p != '\n') {
    const char *colon = strchr(p, ':'), *nl = strchr(p, '\n');
    header *h = &q->headers[q->nheaders++];
    h->name = dup_n(a, ctx, p, (size_t)(colon - p));
    h->value = dup_n(a, ctx, colon + 2, (size_t)(nl - colon - 2));
    p = nl + 1;
  }
  return q;
}

static void *a_malloc(void *ctx, size_t n) {
  (void)ctx;
  return malloc(n);
}
static void *a_region(void *ctx, size_t n) { return mt_region_alloc(ctx, n); }
static void *a_obstack(void *ctx, size_t n) { return obstack_alloc((struct obstack *)ctx, n); }

static void request_malloc(void *arg) {
  (void)arg;
  req *q = parse(a_malloc, NULL);
  sink += q->nheaders;
  for (int i = 0; i < q->nheaders; i++) free(q->headers[i].name), free(q->headers[i].value);
  free(q->headers), free(q->method), free(q->path), free(q);
}

static void request_region(void *arg) {
  mt_region *r = arg;
  req *q = parse(a_region, r);
  sink += q->nheaders;
  mt_region_reset(r);
}

static void request_obstack(void *arg) {
  (void)arg;
  struct obstack ob;
  obstack_init(&ob);
  req *q = parse(a_obstack, &ob);
  sink += q->nheaders;
  obstack_free(&ob, NULL);
}

#ifdef MT_HAVE_TALLOC
static void *a_talloc(void *ctx, size_t n) { return talloc_size(ctx, n); }
static void request_talloc(void *arg) {
  (void)arg;
  void *ctx = talloc_new(NULL);
  req *q = parse(a_talloc, ctx);
  sink += q->nheaders;
  talloc_free(ctx);
}
#endif

int main(int argc, char **argv) {
  unsigned budget = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
  size_t n = (size_t)snprintf(request, sizeof request, "GET /api/v2/items/12345?expand=owner HTTP/1.1\n");
  for (int i = 0; i < 24; i++)
    n += (size_t)snprintf(request + n, sizeof request - n, "X-Header-%02d: value-%d-some-text\n", i, i * 7919);
  snprintf(request + n, sizeof request - n, "\n");
  mt_region *r = mt_region_new(NULL, "bench");
  printf("%-40s %10s %17s %17s %20s\n", "benchmark", "N", "time", "bytes", "allocations");
  mt_bench("structs-100k/malloc", structs_malloc, NULL, budget, stdout);
  mt_bench("structs-100k/region", structs_region, r, budget, stdout);
  mt_bench("structs-100k/obstack", structs_obstack, NULL, budget, stdout);
#ifdef MT_HAVE_TALLOC
  mt_bench("structs-100k/talloc", structs_talloc, NULL, budget, stdout);
#endif
  mt_bench("request/malloc", request_malloc, NULL, budget, stdout);
  mt_bench("request/region", request_region, r, budget, stdout);
  mt_bench("request/obstack", request_obstack, NULL, budget, stdout);
#ifdef MT_HAVE_TALLOC
  mt_bench("request/talloc", request_talloc, NULL, budget, stdout);
#endif
  mt_region_delete(r);
  return 0;
}
