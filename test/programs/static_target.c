/* static_target.c -- a fully static program linked with libmemtally.a
 * glibc's start-up code allocates before memtally's constructor and before
 * the unwinder can run; sampling every allocation must still be safe, and
 * the program's own allocations are all in the profile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SITE_BLOCKS 1000

__attribute__((noinline)) static void *static_site(size_t n) { return malloc(n); }

int main(void) {
  static void *blocks[SITE_BLOCKS];
  for (int i = 0; i < SITE_BLOCKS; i++) {
    blocks[i] = static_site(100 + (size_t)i);
    if (blocks[i] == NULL) return 3;
    memset(blocks[i], 1, 100);
  }
  for (int i = 0; i < SITE_BLOCKS; i += 2) free(blocks[i]);
  char *s = strdup("static");
  printf("%s done\n", s);
  free(s);
  return 0;
}
