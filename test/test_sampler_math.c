/* test_sampler_math.c -- the sampler's logarithm and 1 - exp(-x) against libm
 *
 * Sampling intervals come from -ln(u) and every sample's weight from
 * 1 / (1 - exp(-size/rate)); both are computed without libm. A wrong term
 * would bias every estimate the profiler reports. */
#include <math.h>
#include <stdio.h>

#include "../src/sample/sample.h"
#include "check.h"

static double rel(double got, double want) { return fabs(got - want) / (fabs(want) > 0 ? fabs(want) : 1); }

int main(void) {
  double worst_ln = 0, worst_exp = 0;
  /* ln over (0, 1]: uniform draws hit every binade down to 2^-53 */
  for (int e = 0; e <= 53; e++)
    for (int i = 0; i < 2000; i++) {
      double x = ldexp(1.0 + i / 2000.0, -e - 1); /* [2^-(e+1), 2^-e) */
      double r = rel(mt__prof_ln(x), log(x));
      if (r > worst_ln) worst_ln = r;
    }
  CHECK(fabs(mt__prof_ln(1.0)) < 1e-15);
  /* 1 - exp(-x) from tiny blocks to blocks of 40 intervals and beyond */
  for (int i = 0; i < 200000; i++) {
    double x = pow(10, -9 + 11.0 * i / 200000); /* 1e-9 .. 1e2 */
    double r = rel(mt__prof_one_minus_exp_neg(x), -expm1(-x));
    if (r > worst_exp) worst_exp = r;
  }
  CHECK(mt__prof_one_minus_exp_neg(0) == 0);
  CHECK(mt__prof_one_minus_exp_neg(1000) == 1);
  printf("worst relative error: ln %.2g, 1-exp(-x) %.2g\n", worst_ln, worst_exp);
  CHECK(worst_ln < 1e-13);
  CHECK(worst_exp < 1e-13);
  return check_summary("test_sampler_math");
}
