/*
 * loss_vmath.h - exp and log in float32, written so that gcc vectorizes the
 * loops that call them (branch-free, integer bit tricks, no libm calls).
 *
 * Why not libm: glibc declares its vector variants (libmvec) only under
 * -ffast-math, and a loop that calls scalar expf/log1pf does not vectorize.
 * Why not libmvec declared by hand: the vector body would use libmvec and the
 * loop's scalar remainder libm, two implementations that differ in the last
 * bit, so an element's value would depend on its position in the buffer.
 * These functions evaluate the same operations whether inlined in a vector
 * body or a scalar remainder (no FMA: the build sets -ffp-contract=off), so
 * every element gets the same bits on every x86-64 (SSE2, AVX2 or AVX-512
 * code; checked by building with and without the clones and at -O0).
 *
 * Coefficients: Cephes single-precision expf and logf (S. L. Moshier,
 * Cephes Math Library, cephes/single/expf.c and logf.c), with the two-part
 * ln 2 of those files; dl_log1pf_01_atanh is the atanh series. Measured accuracy
 * (tests/test_loss_cls.c, against double libm over the ranges used):
 * dl_expf_neg, dl_log1pf_01 and dl_logf <= 2 ulp, dl_log1pf_01_atanh <= 3 ulp.
 */
#ifndef DETLOSS_LOSS_VMATH_H
#define DETLOSS_LOSS_VMATH_H

#include <stdint.h>
#include <string.h>

#include "vec.h"

DL_VEC_FN static inline float dl_bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}
DL_VEC_FN static inline uint32_t dl_float_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* e^x for x <= 0 (x may be -Inf): exact 1 at x = 0; results below
 * e^-87 (~1.6e-38, the smallest normal float) are flushed to 0. A NaN x
 * gives e^-87, a finite garbage value: the clamp is written so that NaN
 * takes the -87 branch and never reaches the float-to-int conversion
 * (undefined behaviour); callers that may see NaN carry it through their
 * other terms (loss_kernels.h). */
DL_VEC_FN static inline float dl_expf_neg(float x) {
  float xc = x >= -87.0f ? x : -87.0f;
  /* n = round(x / ln 2) by the 1.5 * 2^23 shifter (round-to-nearest mode). */
  float k = xc * 1.44269504088896341f + 12582912.0f;
  k = k - 12582912.0f;
  /* r = x - n ln 2 with ln 2 split as 0.693359375 - 2.12194440e-4 (Cephes). */
  float r = xc - k * 0.693359375f;
  r = r + k * 2.12194440e-4f;
  float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  int32_t n = (int32_t)k; /* in [-126, 0] */
  float scale = dl_bits_to_float((uint32_t)(n + 127) << 23);
  float y = p * scale;
  return x < -87.0f ? 0.0f : y;
}

/* ln(m) - core for m in [sqrt(1/2), sqrt(2)), plus e ln 2 (Cephes logf). */
DL_VEC_FN static inline float dl_log_core(float f, float e) {
  /* f = m - 1 in [-0.293, 0.415) */
  float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  float y = f * z * p;
  y = y - e * 2.12194440e-4f;
  y = y - 0.5f * z;
  float r = f + y;
  return r + e * 0.693359375f;
}

/* ln(1 + t) for t in [0, 1], to full relative accuracy for small t; inv is
 * 1 / (1 + t) as the caller computed it (the kernels need it anyway). */
DL_VEC_FN static inline float dl_log1pf_01(float t, float inv) {
  float u = 1.0f + t;               /* in [1, 2]: u - 1 is exact (Sterbenz) */
  float c = (t - (u - 1.0f)) * inv; /* first-order correction for the rounding of 1 + t */
  int big = u > 1.41421356f;
  float m = big ? u * 0.5f : u;
  float e = big ? 1.0f : 0.0f;
  return dl_log_core(m - 1.0f, e) + c;
}

/* ln(1 + t) for t in [0, 1], to full relative accuracy for small t, as
 * 2 atanh(s) = 2 (s + s^3/3 + ... + s^13/13), s = t / (2 + t) in [0, 1/3]
 * (truncation error below (1/9)^7 / 15 = 1.4e-8 relative). inv2 is
 * 1 / (2 + t) as the caller computed it. No range reduction, no bit tricks:
 * about half the operations of dl_log1pf_01 (measured: the sigmoid focal
 * kernel takes 30% less time with it). */
DL_VEC_FN static inline float dl_log1pf_01_atanh(float t, float inv2) {
  float s = t * inv2;
  float z = s * s;
  float p = 7.69230769e-2f;   /* 1/13 */
  p = p * z + 9.09090909e-2f; /* 1/11 */
  p = p * z + 1.11111111e-1f; /* 1/9 */
  p = p * z + 1.42857143e-1f; /* 1/7 */
  p = p * z + 2.00000000e-1f; /* 1/5 */
  p = p * z + 3.33333333e-1f; /* 1/3 */
  p = p * z;
  float s2 = s + s;
  return s2 + s2 * p;
}

/* ln x for finite x > 0 (subnormal x included). x = 0 gives a large negative
 * garbage value: callers select it away. */
DL_VEC_FN static inline float dl_logf(float x) {
  int sub = x < 1.17549435e-38f;
  float xs = sub ? x * 8388608.0f : x; /* 2^23 */
  uint32_t ix = dl_float_to_bits(xs);
  int32_t ex = (int32_t)(ix >> 23) - 127;
  float m = dl_bits_to_float((ix & 0x007fffffu) | 0x3f800000u); /* in [1, 2) */
  int big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  float e = (float)ex + (big ? 1.0f : 0.0f) - (sub ? 23.0f : 0.0f);
  return dl_log_core(m - 1.0f, e);
}

#endif /* DETLOSS_LOSS_VMATH_H */
