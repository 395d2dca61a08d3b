/* b_cfrac.c -- many tiny, short-lived blocks: small bignum arithmetic (cfrac-like)
 * Numbers are malloc'd arrays of 32-bit limbs; every operation allocates its
 * result and the operands die soon after. usage: b_cfrac [scale] */
#include "bench.h"

typedef struct { int n; uint32_t d[]; } num;

static num *make(int n) {
  num *x = malloc(sizeof(num) + (size_t)n * 4);
  x->n = n;
  return x;
}
static num *from(uint64_t v) {
  num *x = make(2);
  x->d[0] = (uint32_t)v;
  x->d[1] = (uint32_t)(v >> 32);
  return x;
}
static num *add(const num *a, const num *b) {
  int n = (a->n > b->n ? a->n : b->n) + 1;
  num *r = make(n);
  uint64_t c = 0;
  for (int i = 0; i < n; i++) {
    c += (uint64_t)(i < a->n ? a->d[i] : 0) + (i < b->n ? b->d[i] : 0);
    r->d[i] = (uint32_t)c;
    c >>= 32;
  }
  while (r->n > 1 && r->d[r->n - 1] == 0) r->n--;
  return r;
}
static num *mul(const num *a, const num *b) {
  int n = a->n + b->n;
  num *r = make(n);
  memset(r->d, 0, (size_t)n * 4);
  for (int i = 0; i < a->n; i++) {
    uint64_t c = 0;
    for (int j = 0; j < b->n; j++) {
      c += (uint64_t)a->d[i] * b->d[j] + r->d[i + j];
      r->d[i + j] = (uint32_t)c;
      c >>= 32;
    }
    r->d[i + b->n] = (uint32_t)c;
  }
  while (r->n > 1 && r->d[r->n - 1] == 0) r->n--;
  return r;
}

int main(int argc, char **argv) {
  long iters = (long)(400000 * bench_scale(argc, argv));
  uint64_t sum = 0, rng = 5;
  double t0 = bench_now();
  for (long k = 0; k < iters; k++) {
    num *a = from(bench_rand(&rng) >> 8), *b = from(bench_rand(&rng) >> 16);
    num *acc = from(1);
    for (int step = 0; step < 6; step++) { /* a short continued-fraction-like recurrence */
      num *p = mul(acc, a);
      num *q = add(p, b);
      free(p);
      free(acc);
      acc = q;
      num *t = a;
      a = add(a, b);
      free(t);
    }
    sum += acc->d[0] + (uint64_t)acc->n;
    free(acc);
    free(a);
    free(b);
  }
  bench_report("cfrac", sum, bench_now() - t0);
  return 0;
}
