/* wrapped.c -- sites behind an xmalloc-style wrapper and an inlined helper,
 * built with -g -gz=zlib (compressed debug sections) by test_symbols.py */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

__attribute__((noinline)) static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL) abort();
  return p;
}

__attribute__((noinline)) static void *checked_alloc(size_t n) { /* a wrapper of this program's own (--skip) */
  char *p = xmalloc(n);
  p[0] = 0; /* not a tail call: a frame of its own */
  return p;
}

struct node {
  struct node *next;
  char name[40];
};

static inline __attribute__((always_inline)) struct node *make_node(struct node *next, int i) {
  struct node *n = xmalloc(sizeof *n); /* an inlined call: its own frame in the report */
  n->next = next;
  snprintf(n->name, sizeof n->name, "node %d", i);
  return n;
}

__attribute__((noinline)) struct node *build_list(int count) {
  struct node *head = NULL;
  for (int i = 0; i < count; i++) head = make_node(head, i);
  return head;
}

__attribute__((noinline)) void fill_table(int count) {
  for (int i = 0; i < count; i++) {
    char *p = checked_alloc(1000);
    memset(p, 1, 1000);
    free(p);
  }
}

__attribute__((noinline)) void load_buffers(int count) {
  for (int i = 0; i < count; i++) {
    char *p = xmalloc(4096);
    KEEP(p);
    free(p);
  }
}

int main(void) {
  struct node *l = build_list(20000); /* 20000 x 48 B */
  KEEP(l);
  fill_table(3000);                   /* 3 MB through two wrappers */
  load_buffers(2000);                 /* 8 MB */
  printf("done\n");
  return 0;
}
