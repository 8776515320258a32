/*
 * testutil.h - shared helpers for the cmocka tests.
 *
 * dl_assert_close(actual, expected, n, rtol, atol): fails unless
 *   |a - e| <= atol + rtol * |e| for every element (NaN never passes, equal
 *   infinities do), printing the first bad index and both values.
 * dl_read_file(path): whole file, NUL-terminated, malloc'ed (fails the test if missing).
 * DL_FIXTURE(rel): path of tests/fixtures/<rel> (DETLOSS_FIXTURE_DIR is set by CMake).
 * dl_rng: a tiny deterministic generator (splitmix64) for random test data.
 * (Finite-difference gradient checks live in each loss test, against an
 * independent double-precision reference of the loss written in the test.)
 */
#ifndef DETLOSS_TESTUTIL_H
#define DETLOSS_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifndef DETLOSS_FIXTURE_DIR
#  define DETLOSS_FIXTURE_DIR "tests/fixtures"
#endif
#define DL_FIXTURE(rel) DETLOSS_FIXTURE_DIR "/" rel

static inline int dl_close_one(double a, double e, double rtol, double atol) {
  if (isnan(a) || isnan(e)) return 0;
  if (isinf(a) || isinf(e)) return a == e;
  return fabs(a - e) <= atol + rtol * fabs(e);
}

#define dl_assert_close(actual, expected, n, rtol, atol)                                           \
  dl_assert_close_impl((actual), (expected), (n), (rtol), (atol), #actual, __FILE__, __LINE__)

static inline void dl_assert_close_impl(const float *actual, const double *expected, size_t n,
                                        double rtol, double atol, const char *what,
                                        const char *file, int line) {
  for (size_t i = 0; i < n; i++) {
    if (!dl_close_one((double)actual[i], expected[i], rtol, atol)) {
      print_error("%s[%zu] = %.9g, expected %.9g (rtol %g, atol %g)\n", what, i, (double)actual[i],
                  expected[i], rtol, atol);
      _fail(file, line);
    }
  }
}

/* Scalar version. */
#define dl_assert_close1(actual, expected, rtol, atol)                                             \
  do {                                                                                             \
    double dl_a_ = (double)(actual), dl_e_ = (double)(expected);                                   \
    if (!dl_close_one(dl_a_, dl_e_, (rtol), (atol))) {                                             \
      print_error("%s = %.9g, expected %.9g (rtol %g, atol %g)\n", #actual, dl_a_, dl_e_,          \
                  (double)(rtol), (double)(atol));                                                 \
      fail();                                                                                      \
    }                                                                                              \
  } while (0)

/* Bitwise equality of two float arrays. */
#define dl_assert_bitwise_equal(a, b, n)                                                           \
  do {                                                                                             \
    if (memcmp((a), (b), (n) * sizeof(float)) != 0) {                                              \
      for (size_t dl_i_ = 0; dl_i_ < (size_t)(n); dl_i_++)                                         \
        if (memcmp(&(a)[dl_i_], &(b)[dl_i_], sizeof(float)) != 0) {                                \
          print_error("%s[%zu] = %.9g differs bitwise from %s[%zu] = %.9g\n", #a, dl_i_,           \
                      (double)(a)[dl_i_], #b, dl_i_, (double)(b)[dl_i_]);                          \
          break;                                                                                   \
        }                                                                                          \
      fail();                                                                                      \
    }                                                                                              \
  } while (0)

static inline char *dl_read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    print_error("cannot open %s\n", path);
    fail();
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)len + 1);
  assert_non_null(buf);
  size_t got = fread(buf, 1, (size_t)len, f);
  fclose(f);
  buf[got] = '\0';
  return buf;
}

/* splitmix64: deterministic test data on every platform. */
typedef struct dl_rng {
  uint64_t s;
} dl_rng;
static inline uint64_t dl_rng_u64(dl_rng *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
/* uniform in [lo, hi) */
static inline double dl_rng_uniform(dl_rng *r, double lo, double hi) {
  return lo + (hi - lo) * ((double)(dl_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0));
}
static inline double dl_rng_normal(dl_rng *r) {
  double u1 = dl_rng_uniform(r, 1e-12, 1.0), u2 = dl_rng_uniform(r, 0.0, 1.0);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif /* DETLOSS_TESTUTIL_H */
