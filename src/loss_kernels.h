/*
 * loss_kernels.h - the per-element loss kernels (value and derivative of one
 * element) that more than one source file evaluates: loss_cls.c runs them
 * over the chunks of detloss_loss_elementwise, head_rpn.c (objectness) and
 * head_retina.c (classification) over their anchors. One definition, so the
 * heads give the loss module's bits (tests/test_head_rpn.c and
 * tests/test_head_retina.c check that bit for bit).
 *
 * The kernels are static inline and always inlined: each vectorized caller
 * (a DL_VEC_FN DL_VEC_CLONES loop, vec.h) gets them compiled for its
 * own ISA clone. They evaluate the same IEEE operations in the same order
 * wherever they are inlined (no FMA: the build sets -ffp-contract=off), so
 * an element's bits do not depend on the caller, the clone or its position.
 *
 * Non-finite inputs (the heads do not reject NaN/Inf logits; the loss module
 * does): dl_expf_neg is safe for NaN (it returns a finite value), and a NaN
 * logit reaches the value through a = |x| (and, for BCE, the gradient
 * through t), so NaN or Inf logits give NaN or Inf values, which the heads
 * report in their nonfinite flag.
 */
#ifndef DETLOSS_LOSS_KERNELS_H
#define DETLOSS_LOSS_KERNELS_H

#include <math.h>

#include "loss_vmath.h"
#include "vec.h"

/* Inlined into every target clone of the caller (a plain inline function
 * may be compiled once for the baseline ISA and called). */
#if defined(__GNUC__)
#  define DL_KERNEL DL_VEC_FN static inline __attribute__((always_inline))
#else
#  define DL_KERNEL static inline
#endif

/*
 * dl_bce_logits_elem() - BCE with logits of one element, pos_weight pw
 * (torch binary_cross_entropy_with_logits; docs/math/losses.md eq. (1)-(2)):
 *   l = (1-y) x + (1 + (pw-1) y) softplus(-x)
 *     = (1-y) a + c L          (x >= 0)      a = |x|, t = e^-a, L = ln(1+t),
 *     = pw y a + c L           (x <  0)      c = 1 + (pw-1) y
 *   dl/dx = ((1-y) - pw y t) / (1+t)   (x >= 0)
 *         = ((1-y) t - pw y) / (1+t)   (x <  0)
 * No subtraction of nearly equal terms for y in {0,1}, no log of sigmoid:
 * finite for every finite x. With pw = 1 (the RPN objectness) c = 1 and
 * pw y = y exactly: l = softplus(x) - x y, dl/dx = sigmoid(x) - y.
 */
DL_KERNEL void dl_bce_logits_elem(float x, float y, float pw, float *l, float *g) {
  float a = fabsf(x);
  float t = dl_expf_neg(-a);
  t = a == a ? t : a; /* a NaN logit: NaN value and NaN gradient, as with libm */
  float inv = 1.0f / (1.0f + t);
  float L = dl_log1pf_01_atanh(t, 1.0f / (2.0f + t));
  float c = 1.0f + (pw - 1.0f) * y;
  int pos = x >= 0.0f;
  float lin = pos ? (1.0f - y) * a : pw * y * a;
  float num = pos ? (1.0f - y) - pw * y * t : (1.0f - y) * t - pw * y;
  *l = lin + c * L;
  *g = num * inv;
}

/*
 * dl_sigmoid_focal_elem() - sigmoid focal loss of one element
 * (torchvision sigmoid_focal_loss; Lin et al., Focal Loss for Dense Object
 * Detection, arXiv:1708.02002, eq. (5); docs/math/losses.md eq. (3)-(8)).
 * With a = |x|, t = e^-a, L = ln(1+t), u = y if x >= 0 else 1-y, s = sign(x):
 *   CE        = (1-y) a + L (x >= 0),  y a + L (x < 0)   (BCE with logits)
 *   q = 1-p_t = w / (1+t),  w = (1-u) + u t,  ln q = ln w - L   (ln w = -a when u = 1)
 *   q^gamma   = q q when square (gamma = 2, the default), else exp(gamma ln q)
 *   a_t       = alpha y + (1-alpha)(1-y), or 1 when use_alpha is 0 (alpha < 0)
 *   l         = (CE q^gamma) a_t
 *   dl/dx     = s a_t q^gamma [ gamma r (1-2u) CE + ((1-u) - u t)/(1+t) ],
 *               r = p(1-p)/q = t / ((1+t) w)  (= 1/(1+t) when u = 1)
 * The (1-p_t)^(gamma-1) of the textbook derivative is folded into r (bounded
 * by 1), so the value and derivative are finite for every gamma >= 0 and
 * every finite x, also where 1-p_t underflows. For y in {0,1} it is the
 * Detectron kernel's formula.
 * The value is rounded as torchvision orders it (loss = ce * (1-p_t)^gamma,
 * then alpha_t * loss), with CE evaluated by exactly the operations of
 * dl_bce_logits_elem at pw = 1 (same bits: c = 1 + 0 y = 1, 1 y = y). As
 * q^gamma <= 1 (q = w/(1+t) with w <= 1; dl_expf_neg of an argument <= 0 is
 * <= 1) and a_t <= 1 for alpha in [0, 1], each rounded product is at most
 * its left factor: focal <= BCE element by element (bitwise, against
 * detloss's BCE with logits), and gamma = 0 (q^0 = e^0 = 1 exactly),
 * alpha < 0 gives BCE's bits. Writing CE as a (1-u) + L instead rounds
 * 1 - (1 - y) for soft targets at x < 0 and broke both properties.
 * soft = 0 requires y in {0, 1} and skips ln w and t / w: then w = 1 or t,
 * ln 1 = 0 and t / 1 = t exactly, and the remaining terms are the soft
 * path's operations with u in {0, 1} spelt out where that is exact
 * (d: (0 - t) inv = -(t inv); br: gamma r (+-1) CE + d = d -+ gamma r CE),
 * so both paths give the same bits for y in {0,1}, except the sign of a
 * zero gradient where t = e^-|x| is 0 (|x| > 87, u = 1: -(0 inv) = -0 against
 * (0 - 0) inv = +0). soft and square are compile-time constants at every
 * call (the branches fold away).
 */
DL_KERNEL void dl_sigmoid_focal_elem(float x, float y, float alpha, float gamma, int use_alpha,
                                     const int soft, const int square, float *l, float *g) {
  float a = fabsf(x);
  float t = dl_expf_neg(-a);
  float inv = 1.0f / (1.0f + t);
  float L = dl_log1pf_01_atanh(t, 1.0f / (2.0f + t));
  int pos = x >= 0.0f;
  float u = pos ? y : 1.0f - y;
  int one = u == 1.0f;
  float ce = (pos ? 1.0f - y : y) * a + L; /* dl_bce_logits_elem's lin + c L, pw = 1 */
  float w = soft ? (1.0f - u) + u * t : (one ? t : 1.0f); /* > 0 unless u = 1 */
  float q_g;
  if (square) {
    float q = w * inv;
    q_g = q * q;
  } else {
    float lnw = one ? -a : (soft ? dl_logf(w) : 0.0f);
    q_g = dl_expf_neg(gamma * (lnw - L));
  }
  float r = (one ? 1.0f : (soft ? t / w : t)) * inv;
  float d = soft ? ((1.0f - u) - u * t) * inv : (one ? -(t * inv) : inv);
  float at_ = soft ? alpha * y + (1.0f - alpha) * (1.0f - y) : (y == 1.0f ? alpha : 1.0f - alpha);
  float at = use_alpha ? at_ : 1.0f;
  float atq = at * q_g;
  float grc = gamma * r * ce;
  float br = soft ? gamma * r * (1.0f - 2.0f * u) * ce + d : (one ? d - grc : d + grc);
  *l = (ce * q_g) * at; /* torchvision's order: (ce * modulating factor) * alpha_t */
  *g = pos ? atq * br : -(atq * br);
}

/*
 * dl_log1p_01() - ln(1 + t) for t in [0, 1], by Kahan's formula
 *   u = 1 + t;  ln(1 + t) = t  if u = 1,  else ln(u) t / (u - 1)
 * (Goldberg, What Every Computer Scientist Should Know About Floating-Point
 * Arithmetic, 1991, Theorem 4: relative error below 5 eps for 0 <= t < 3/4
 * with a correctly rounded ln; u - 1 is exact and t / (u - 1) corrects the
 * rounding of 1 + t). glibc's log costs about 30 % less than its log1p,
 * which took a third of the benchmark's samples (bench/quality_losses.md); the
 * result differs from log1p's by a few ulps of a double, far below the one
 * rounding to float. The same operations on every call: deterministic.
 */
DL_KERNEL double dl_log1p_01(double t) {
  double u = 1.0 + t;
  return u == 1.0 ? t : log(u) * (t / (u - 1.0));
}

/*
 * The quality losses (Generalized Focal Loss, VarifocalNet) evaluate in
 * double: an element's value and derivative are rounded once to float by the
 * caller. Shared parts of a logit x, with t = e^-|x|:
 *   s = sigmoid(x) = 1/(1+t) (x >= 0), t/(1+t) (x < 0);  s1 = 1 - s likewise,
 *   BCEL(x, y) = x (1-y) + ln(1+t) (x >= 0),  -x y + ln(1+t) (x < 0)
 * (torch binary_cross_entropy_with_logits without cancellation: the products
 * of two floats are exact in double). docs/math/quality_losses.md eq. (1).
 * dl_logit_parts_ln also stores ln(1+t) (log1p_t, NULL = not wanted), which
 * softplus(+-x) share.
 */
DL_KERNEL void dl_logit_parts_ln(double x, double y, double *s, double *s1, double *bce,
                                 double *log1p_t) {
  double t = exp(-fabs(x));
  double inv = 1.0 / (1.0 + t);
  double L = dl_log1p_01(t);
  *s = x >= 0.0 ? inv : t * inv;
  *s1 = x >= 0.0 ? t * inv : inv;
  *bce = (x >= 0.0 ? x * (1.0 - y) : -x * y) + L;
  if (log1p_t) *log1p_t = L;
}

DL_KERNEL void dl_logit_parts(double x, double y, double *s, double *s1, double *bce) {
  dl_logit_parts_ln(x, y, s, s1, bce, NULL);
}

/*
 * dl_quality_focal_elem() - one element of Quality Focal Loss (Li et al.,
 * Generalized Focal Loss, arXiv:2006.04388, eq. (5); mmdetection
 * quality_focal_loss_tensor_target; docs/math/quality_losses.md eq. (2)-(4)):
 *   l = BCEL(x, y) |y - s|^beta,  s = sigmoid(x)
 *   dl/dx = BCEL beta |y-s|^(beta-1) sgn(s-y) s(1-s) + |y-s|^beta (s - y)
 * Nothing detached (mmdetection differentiates the modulating factor). The
 * first term is 0 where y = s (the kink of |y - s|; autograd gives NaN there
 * for beta < 1) and for beta = 0, where 0^0 = 1 as torch.pow. y - s is
 * formed from s1 = 1 - s when s > 1/2, so it keeps its digits at saturation.
 * activated: x is a probability p in [0, 1]; BCE with its logs clamped at
 * -100 replaces BCEL, p replaces s, and the BCE derivative is torch's
 * (p - y) / max(p (1-p), 1e-12) (its binary_cross_entropy backward):
 *   dl/dp = BCE' |y-p|^beta + BCE beta |y-p|^(beta-1) sgn(p-y)
 */
DL_KERNEL void dl_quality_focal_elem(float xf, float yf, double beta, int activated, double *l,
                                     double *g) {
  double x = xf, y = yf, s, s1, bce, dbce, ds;
  if (activated) {
    s = x;
    s1 = 1.0 - x;
    double lp = fmax(log(x), -100.0), l1p = fmax(log1p(-x), -100.0);
    bce = (y - 1.0) * l1p - y * lp;
    dbce = (x - y) / fmax(x * (1.0 - x), 1e-12);
    ds = 1.0; /* ds/dx */
  } else {
    dl_logit_parts(x, y, &s, &s1, &bce);
    dbce = s > 0.5 ? (1.0 - y) - s1 : s - y;
    ds = s * s1;
  }
  double d = s > 0.5 ? (y - 1.0) + s1 : y - s; /* y - s */
  double ad = fabs(d);
  /* |y-s|^beta and beta |y-s|^(beta-1). beta = 2 (GFL's and mmdetection's
   * default) by multiplication: ad * ad is the correctly rounded square (pow
   * is within 0.52 ulp, so the two may differ in the last bit of the double,
   * never beyond) and pow(ad, 1) is ad exactly; the same operations in every
   * call, so still bitwise identical for any thread count. pow is most of an
   * element's time otherwise (bench/quality_losses.md). */
  double m, pm1;
  if (beta == 2.0) {
    m = ad * ad;
    pm1 = ad;
  } else {
    m = pow(ad, beta); /* pow(0, 0) = 1 */
    pm1 = ad > 0.0 && beta > 0.0 ? pow(ad, beta - 1.0) : 0.0;
  }
  double dm = ad > 0.0 && beta > 0.0 ? beta * pm1 * (d < 0.0 ? ds : -ds) : 0.0;
  *l = bce * m;
  *g = bce * dm + dbce * m;
}

/*
 * dl_varifocal_elem() - one element of Varifocal Loss (Zhang et al.,
 * VarifocalNet, arXiv:2008.13367, eq. (2); mmdetection varifocal_loss;
 * docs/math/quality_losses.md eq. (7)-(9)), q in [0, 1]:
 *   l = BCEL(x, q) f,  f = q (iou_weighted) or 1  where q > 0,
 *                      f = alpha s^gamma          where q = 0
 *   q > 0:  dl/dx = f (s - q)
 *   q = 0:  dl/dx = alpha s^gamma [gamma (1-s) softplus(x) + s]   (mmdetection, full)
 *           dl/dx = alpha s^gamma s                               (detach: RT-DETR)
 * s^gamma = exp(-gamma softplus(-x)): 1 for gamma = 0 (0^0 = 1), no underflow
 * to 0^gamma at x = -100 before the product; s s (double) for gamma = 2.
 */
DL_KERNEL void dl_varifocal_elem(float xf, float qf, double alpha, double gamma, int iou_weighted,
                                 int detach, double *l, double *g) {
  double x = xf, q = qf, s, s1, bce, L;
  dl_logit_parts_ln(x, q, &s, &s1, &bce, &L);
  if (q > 0.0) {
    double f = iou_weighted ? q : 1.0;
    *l = f * bce;
    *g = f * (s > 0.5 ? (1.0 - q) - s1 : s - q);
    return;
  }
  /* s^gamma: s * s for gamma = 2 (mmdetection's and RT-DETR's default; the
   * correctly rounded square of s, where the exp form also carries the
   * rounding of softplus(-x) times gamma), else exp(-gamma softplus(-x)) */
  double sp_neg = (x < 0.0 ? -x : 0.0) + L; /* softplus(-x) = -ln s */
  double f = alpha * (gamma == 2.0 ? s * s : exp(-gamma * sp_neg));
  *l = f * bce; /* bce = softplus(x) at q = 0 */
  *g = detach ? f * s : f * (gamma * s1 * bce + s);
}

/*
 * dl_distribution_focal_row() - Distribution Focal Loss of one row (Li et
 * al., arXiv:2006.04388, eq. (6); mmdetection distribution_focal_loss;
 * docs/math/quality_losses.md eq. (5)-(6)), logits z [c], y in [0, c-1]:
 *   k = floor(y), wl = k+1 - y, wr = y - k;  CE(z, j) = lse(z) - z_j
 *   l = wl CE(z, k) + wr CE(z, k+1)   (y = c-1: l = CE(z, c-1))
 *   dl/dz = softmax(z) - wl e_k - wr e_(k+1)
 * Returns l; g (NULL = skip) gets scale * dl/dz. lse in double from the max.
 */
#define DL_DFL_MAX_CACHED 64
DL_KERNEL double dl_distribution_focal_row(const float *z, size_t c, float yf, double scale,
                                           float *g) {
  double y = yf, m = z[0];
  for (size_t j = 1; j < c; j++) m = (double)z[j] > m ? (double)z[j] : m;
  /* e[j] = exp(z_j - m), kept for the gradient when the row fits (every
   * published bin count does): the same values as recomputing them, half the
   * exp calls */
  double e[DL_DFL_MAX_CACHED];
  const int cached = c <= DL_DFL_MAX_CACHED;
  double S = 0.0;
  for (size_t j = 0; j < c; j++) {
    double ej = exp((double)z[j] - m);
    if (cached) e[j] = ej;
    S += ej;
  }
  double lse = m + log(S);
  size_t k = (size_t)floor(y);
  double wl = (double)k + 1.0 - y, wr = y - (double)k;
  if (k + 1 >= c) {
    k = c - 1;
    wl = 1.0;
    wr = 0.0;
  }
  double l = wl * (lse - (double)z[k]) + (wr != 0.0 ? wr * (lse - (double)z[k + 1]) : 0.0);
  if (g) {
    for (size_t j = 0; j < c; j++)
      g[j] = (float)(scale * ((cached ? e[j] : exp((double)z[j] - m)) / S));
    g[k] = (float)(scale * ((cached ? e[k] : exp((double)z[k] - m)) / S - wl));
    if (wr != 0.0)
      g[k + 1] = (float)(scale * ((cached ? e[k + 1] : exp((double)z[k + 1] - m)) / S - wr));
  }
  return l;
}

#endif /* DETLOSS_LOSS_KERNELS_H */
