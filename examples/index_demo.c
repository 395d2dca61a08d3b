/* index_demo.c -- an in-memory index of parsed records: the example workload
 *
 * Generates log-like records, parses each into a record with separately
 * allocated fields and tags (the hot spot: many tiny allocations of one
 * size from one place), indexes them by key in a chained hash table, runs
 * queries, and keeps a "recent queries" cache that is never freed (the
 * leak). Prints a checksum of what it computed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tag {
  char *text;
  struct tag *next;
} tag;

typedef struct record {
  char *key;
  char *host;
  char *path;
  long status, bytes;
  tag *tags;
  struct record *next; /* hash chain */
} record;

#define BUCKETS 65536
static record *table[BUCKETS];

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
  return h;
}

__attribute__((noinline)) static char *copy(const char *s, size_t n) {
  char *p = malloc(n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

/* "key host path status bytes tag,tag,tag" */
__attribute__((noinline)) static record *parse(const char *line) {
  record *r = calloc(1, sizeof *r);
  const char *f[6];
  size_t len[6];
  const char *p = line;
  for (int i = 0; i < 6; i++) {
    f[i] = p;
    while (*p && *p != ' ') p++;
    len[i] = (size_t)(p - f[i]);
    if (*p) p++;
  }
  r->key = copy(f[0], len[0]);
  r->host = copy(f[1], len[1]);
  r->path = copy(f[2], len[2]);
  r->status = atol(f[3]);
  r->bytes = atol(f[4]);
  const char *t = f[5], *end = f[5] + len[5];
  while (t < end) { /* one small allocation per tag: the hot spot */
    const char *c = t;
    while (c < end && *c != ',') c++;
    tag *g = malloc(sizeof *g);
    g->text = copy(t, (size_t)(c - t));
    g->next = r->tags;
    r->tags = g;
    t = c + 1;
  }
  return r;
}

static void free_record(record *r) {
  while (r->tags) {
    tag *g = r->tags;
    r->tags = g->next;
    free(g->text);
    free(g);
  }
  free(r->key);
  free(r->host);
  free(r->path);
  free(r);
}

typedef struct cached {
  char *query;
  long hits;
  struct cached *next;
} cached;
static cached *recent; /* grows forever: never trimmed, never freed */

__attribute__((noinline)) static long query(const char *key) {
  record *r = table[hash(key) % BUCKETS];
  long n = 0;
  for (; r; r = r->next)
    if (strcmp(r->key, key) == 0) n += r->bytes;
  cached *c = malloc(sizeof *c);
  c->query = copy(key, strlen(key));
  c->hits = n;
  c->next = recent;
  recent = c;
  return n;
}

int main(int argc, char **argv) {
  long nrec = argc > 1 ? atol(argv[1]) : 200000;
  char line[256];
  uint64_t sum = 0;
  for (long i = 0; i < nrec; i++) {
    snprintf(line, sizeof line, "k%ld host%ld.example /api/v%ld/items/%ld %d %ld t%ld,t%ld,env,prod,zone%ld,tier%ld",
             i % 50000, i % 97, i % 3, i, (int)(200 + (i % 7 == 0) * 300), (i * 37) % 9000, i % 11, i % 13, i % 5,
             i % 4);
    record *r = parse(line);
    uint64_t h = hash(r->key) % BUCKETS;
    r->next = table[h];
    table[h] = r;
  }
  for (long q = 0; q < nrec / 2; q++) {
    char key[32];
    snprintf(key, sizeof key, "k%ld", (q * 7919) % 50000);
    sum += (uint64_t)query(key);
  }
  for (int b = 0; b < BUCKETS; b++) {
    while (table[b]) {
      record *r = table[b];
      table[b] = r->next;
      free_record(r);
    }
  }
  printf("index_demo: %ld records, checksum %llu\n", nrec, (unsigned long long)sum);
  return 0;
}
