/* fastpath.c -- the malloc+free fast path for a small block, for counting instructions
 * Run under callgrind (bench/fastpath.sh): the loop in churn() does N pairs of
 * malloc(32)/free after a warm-up, so the count per pair is the fast path. */
#include <stdio.h>
#include <stdlib.h>

#define N 1000000

__attribute__((noinline)) void churn(long n) {
  for (long i = 0; i < n; i++) {
    void *volatile p = malloc(32);
    free(p);
  }
}

int main(void) {
  churn(1000); /* warm-up: heap and page set up */
  churn(N);
  puts("fastpath done");
  return 0;
}
