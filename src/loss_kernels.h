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

#endif /* DETLOSS_LOSS_KERNELS_H */
