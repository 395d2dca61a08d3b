/* gperf_target.c -- allocations profiled by gperftools, whose profile memtally must read */
#include <stdlib.h>
#include <stdio.h>
__attribute__((noinline)) void *gperf_site(int n) { void *p = malloc((size_t)n); return p; }
int main(void){ void *keep[4000]; for (int i=0;i<4000;i++) keep[i]=gperf_site(8192); printf("%p\n", keep[7]); return 0; }
