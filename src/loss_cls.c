/*
 * loss_cls.c - classification losses with their gradients: BCE with logits,
 * BCE on probabilities, sigmoid focal, hinge (element-wise), and softmax
 * cross-entropy and softmax focal (class-indexed).
 *
 * Every gradient is a closed form, evaluated in one pass with the value
 * (derivations: docs/math/losses.md, equation numbers cited below).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss_elementwise.h"
#include "loss_internal.h"
#include "loss_kernels.h"
#include "loss_vmath.h"
#include "vec.h"

typedef struct cls_params {
  float alpha, gamma, margin;
  int use_alpha;
  const float *pos_weight;
  size_t pos_weight_len;
} cls_params;

/* BCE with logits over a chunk, pos_weight pwb[k] per element
 * (dl_bce_logits_elem, loss_kernels.h). */
DL_VEC_FN DL_VEC_CLONES static void bce_logits_loop(const float *x, const float *y,
                                                    const float *pwb, size_t m, float *l,
                                                    float *g) {
  for (size_t k = 0; k < m; k++) dl_bce_logits_elem(x[k], y[k], pwb[k], &l[k], &g[k]);
}

static void kern_bce_logits(const void *vp, const float *x, const float *y, size_t i0, size_t m,
                            float *l, float *g) {
  const cls_params *p = (const cls_params *)vp;
  float pwb[DL_LOSS_CHUNK];
  if (p->pos_weight) {
    size_t j = i0 % p->pos_weight_len;
    for (size_t k = 0; k < m; k++) {
      pwb[k] = p->pos_weight[j];
      if (++j == p->pos_weight_len) j = 0;
    }
  } else {
    for (size_t k = 0; k < m; k++) pwb[k] = 1.0f;
  }
  bce_logits_loop(x, y, pwb, m, l, g);
}

/*
 * BCE on probabilities (torch binary_cross_entropy, aten Loss.cpp):
 *   l = (y - 1) max(ln(1-x), -100) - y max(ln x, -100)
 *   dl/dx = (x - y) / max(x (1-x), 1e-12)      (torch's backward, EPSILON 1e-12)
 * The gradient is torch's, not the derivative of the clamped expression: it is
 * finite at x = 0 and x = 1 (+-1e12 there when the target disagrees).
 */
DL_VEC_FN static void kern_bce(const void *vp, const float *x, const float *y, size_t i0, size_t m,
                               float *l, float *g) {
  (void)vp;
  (void)i0;
  for (size_t k = 0; k < m; k++) {
    float xi = x[k], yi = y[k];
    float lx = fmaxf(logf(xi), -100.0f);
    float l1x = fmaxf(log1pf(-xi), -100.0f);
    l[k] = (yi - 1.0f) * l1x - yi * lx;
    g[k] = (xi - yi) / fmaxf((1.0f - xi) * xi, 1e-12f);
  }
}

/*
 * Sigmoid focal loss over a chunk (dl_sigmoid_focal_elem, loss_kernels.h).
 * Chunks whose targets are all 0 or 1 take the binary path (soft = 0), which
 * skips ln w and t / w; it gives the soft path's bits for y in {0,1} (up to
 * the sign of a zero gradient at |x| > 87), so an element's result does not
 * depend on its chunk.
 */
DL_VEC_FN static inline void focal_loop(const cls_params *p, const float *x, const float *y,
                                        size_t m, float *l, float *g, const int soft,
                                        const int square) {
  const float gamma = p->gamma, alpha = p->alpha;
  const int use_alpha = p->use_alpha;
  for (size_t k = 0; k < m; k++)
    dl_sigmoid_focal_elem(x[k], y[k], alpha, gamma, use_alpha, soft, square, &l[k], &g[k]);
}

DL_VEC_FN DL_VEC_CLONES static void focal_binary_sq(const cls_params *p, const float *x,
                                                    const float *y, size_t m, float *l, float *g) {
  focal_loop(p, x, y, m, l, g, 0, 1);
}
DL_VEC_FN DL_VEC_CLONES static void focal_binary_exp(const cls_params *p, const float *x,
                                                     const float *y, size_t m, float *l, float *g) {
  focal_loop(p, x, y, m, l, g, 0, 0);
}
DL_VEC_FN DL_VEC_CLONES static void focal_soft_sq(const cls_params *p, const float *x,
                                                  const float *y, size_t m, float *l, float *g) {
  focal_loop(p, x, y, m, l, g, 1, 1);
}
DL_VEC_FN DL_VEC_CLONES static void focal_soft_exp(const cls_params *p, const float *x,
                                                   const float *y, size_t m, float *l, float *g) {
  focal_loop(p, x, y, m, l, g, 1, 0);
}

DL_VEC_FN DL_VEC_CLONES static unsigned any_soft(const float *y, size_t m) {
  unsigned soft = 0;
  for (size_t k = 0; k < m; k++) soft |= (unsigned)(y[k] != 0.0f && y[k] != 1.0f);
  return soft;
}

static void kern_focal(const void *vp, const float *x, const float *y, size_t i0, size_t m,
                       float *l, float *g) {
  (void)i0;
  const cls_params *p = (const cls_params *)vp;
  unsigned soft = any_soft(y, m);
  const int square = p->gamma == 2.0f;
  if (soft)
    (square ? focal_soft_sq : focal_soft_exp)(p, x, y, m, l, g);
  else
    (square ? focal_binary_sq : focal_binary_exp)(p, x, y, m, l, g);
}

/*
 * Hinge: l = max(0, margin - y x), dl/dx = -y where margin - y x > 0, else 0
 * (0 at the kink, as torch's sign(0) = 0).
 */
DL_VEC_FN static void kern_hinge(const void *vp, const float *x, const float *y, size_t i0,
                                 size_t m, float *l, float *g) {
  (void)i0;
  const float margin = ((const cls_params *)vp)->margin;
  for (size_t k = 0; k < m; k++) {
    float v = margin - y[k] * x[k];
    l[k] = v > 0.0f ? v : 0.0f;
    g[k] = v > 0.0f ? -y[k] : 0.0f;
  }
}

typedef struct dom_ctx {
  const float *v;
  int hinge; /* 1: v must be -1 or +1; 0: v must be in [0, 1] */
} dom_ctx;

DL_VEC_FN DL_VEC_CLONES static size_t find_out_of_domain(void *vctx, size_t i0, size_t i1) {
  const dom_ctx *d = (const dom_ctx *)vctx;
  const float *v = d->v;
  unsigned bad = 0;
  if (d->hinge) {
    for (size_t i = i0; i < i1; i++) bad |= (unsigned)!(v[i] == 1.0f || v[i] == -1.0f);
  } else {
    for (size_t i = i0; i < i1; i++) bad |= (unsigned)!(v[i] >= 0.0f && v[i] <= 1.0f);
  }
  if (!bad) return i1;
  for (size_t i = i0; i < i1; i++) {
    int ok = d->hinge ? (v[i] == 1.0f || v[i] == -1.0f) : (v[i] >= 0.0f && v[i] <= 1.0f);
    if (!ok) return i;
  }
  return i1;
}

/* One pass over logits x and targets y: bad where x is not finite or y is
 * outside [0, 1] (or NaN). Reading both arrays once instead of twice matters
 * for the losses over millions of logits (the focal benchmark). */
typedef struct xy_ctx {
  const float *x, *y;
} xy_ctx;

DL_VEC_FN DL_VEC_CLONES static size_t find_bad_logit_target(void *vctx, size_t i0, size_t i1) {
  const xy_ctx *c = (const xy_ctx *)vctx;
  const float *x = c->x, *y = c->y;
  unsigned bad = 0;
  for (size_t i = i0; i < i1; i++) {
    uint32_t u = dl_float_to_bits(x[i]);
    bad |= (unsigned)((u & 0x7f800000u) == 0x7f800000u) | (unsigned)!(y[i] >= 0.0f && y[i] <= 1.0f);
  }
  return bad ? i0 : i1; /* the caller's detailed checks find the element */
}

/* v finite (NONFINITE) and in its domain (RANGE), naming "name[i]". */
static detloss_status check_domain(const float *v, size_t n, const char *name, int hinge,
                                   int nthreads, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_finite_par(v, n, name, nthreads, err));
  dom_ctx d = {v, hinge};
  size_t first = n;
  DL_FORWARD_IF_ERROR(
      dl_parallel_find(n, DL_LOSS_BLOCK, nthreads, find_out_of_domain, &d, &first, err));
  if (first < n) {
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "%s[%zu]", name, first);
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %g, expected %s", (double)v[first],
                   hinge ? "-1 or +1" : "a value in [0, 1]");
  }
  return DETLOSS_OK;
}

/* input finite and target in [0, 1]: one fused pass when all is well, the
 * detailed checks (input first, then target) to name the fault otherwise. */
static detloss_status check_logits_targets(const float *x, const float *y, size_t n, int nt,
                                           detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_ptr(x, n, "input", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(y, n, "target", err));
  xy_ctx c = {x, y};
  size_t first = n;
  DL_FORWARD_IF_ERROR(
      dl_parallel_find(n, DL_LOSS_BLOCK, nt, find_bad_logit_target, &c, &first, err));
  if (first == n) return DETLOSS_OK;
  DL_FORWARD_IF_ERROR(dl_check_finite_par(x, n, "input", nt, err));
  return check_domain(y, n, "target", 0, nt, err);
}

/* A parameter that must be finite and >= lo (or > lo when strict). */
static detloss_status check_param(float v, float lo, int strict, const char *name,
                                  detloss_error *err) {
  int ok = isfinite(v) && (strict ? v > lo : v >= lo);
  DL_RETURN_ERROR_IF(!ok, err, DETLOSS_ERR_RANGE, name, "is %g, expected a finite value %s %g",
                     (double)v, strict ? ">" : ">=", (double)lo);
  return DETLOSS_OK;
}

detloss_status dl_loss_cls_elementwise(detloss_loss_kind kind, const float *input,
                                       const float *target, const float *weight, size_t n,
                                       float *loss, float *grad, const detloss_loss_options *o,
                                       detloss_error *err) {
  const int nt = o->num_threads;
  cls_params p;
  memset(&p, 0, sizeof p);
  dl_elem_kernel kern = NULL;
  switch (kind) {
    case DETLOSS_LOSS_BCE_WITH_LOGITS:
      if (o->pos_weight || o->pos_weight_len) {
        DL_RETURN_ERROR_IF(o->pos_weight_len == 0, err, DETLOSS_ERR_SHAPE, "pos_weight",
                           "has length 0");
        DL_FORWARD_IF_ERROR(dl_check_ptr(o->pos_weight, o->pos_weight_len, "pos_weight", err));
        DL_RETURN_ERROR_IF(n % o->pos_weight_len != 0, err, DETLOSS_ERR_SHAPE, "pos_weight",
                           "has %zu values, which does not divide the %zu elements (it is "
                           "broadcast over the last dimension)",
                           o->pos_weight_len, n);
        DL_FORWARD_IF_ERROR(dl_check_finite(o->pos_weight, o->pos_weight_len, "pos_weight", err));
        for (size_t j = 0; j < o->pos_weight_len; j++) {
          if (o->pos_weight[j] < 0.0f) {
            char where[DETLOSS_WHERE_MAX];
            snprintf(where, sizeof where, "pos_weight[%zu]", j);
            return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %g, expected a value >= 0",
                           (double)o->pos_weight[j]);
          }
        }
        p.pos_weight = o->pos_weight;
        p.pos_weight_len = o->pos_weight_len;
      }
      DL_FORWARD_IF_ERROR(check_logits_targets(input, target, n, nt, err));
      kern = kern_bce_logits;
      break;
    case DETLOSS_LOSS_BCE:
      DL_FORWARD_IF_ERROR(check_domain(input, n, "input", 0, nt, err));
      DL_FORWARD_IF_ERROR(check_domain(target, n, "target", 0, nt, err));
      kern = kern_bce;
      break;
    case DETLOSS_LOSS_SIGMOID_FOCAL:
      DL_RETURN_ERROR_IF(!isfinite(o->alpha), err, DETLOSS_ERR_RANGE, "alpha",
                         "is %g, expected a finite value (< 0 disables the weighting)",
                         (double)o->alpha);
      DL_FORWARD_IF_ERROR(check_param(o->gamma, 0.0f, 0, "gamma", err));
      p.alpha = o->alpha;
      p.gamma = o->gamma;
      p.use_alpha = o->alpha >= 0.0f;
      DL_FORWARD_IF_ERROR(check_logits_targets(input, target, n, nt, err));
      kern = kern_focal;
      break;
    case DETLOSS_LOSS_HINGE:
      DL_FORWARD_IF_ERROR(check_param(o->margin, 0.0f, 0, "margin", err));
      p.margin = o->margin;
      DL_FORWARD_IF_ERROR(dl_check_finite_par(input, n, "input", nt, err));
      DL_FORWARD_IF_ERROR(check_domain(target, n, "target", 1, nt, err));
      kern = kern_hinge;
      break;
    default: return dl_fail(err, DETLOSS_ERR_RANGE, "kind", "is not a classification loss");
  }
  if (weight) DL_FORWARD_IF_ERROR(dl_check_finite_par(weight, n, "weight", nt, err));
  return dl_elementwise_run(kern, &p, input, target, weight, n, loss, grad, o->reduction, nt, err);
}

/* Class-indexed: softmax cross-entropy and softmax focal. */

typedef struct row_ctx {
  detloss_loss_kind kind;
  const float *z;
  const int64_t *t;
  const float *w;
  size_t c;
  float *loss, *grad;
  detloss_reduction r;
  int64_t ignore_index;
  double eps, alpha, gamma, gscale;
} row_ctx;

/*
 * One row, eq. (9)-(14). m = max logit (first argmax a), e_c = exp(z_c - m)
 * (e_a = 1 exactly), s = sum_{c != a} e_c, so ln sum_c e^{z_c} = m + ln(1+s):
 *   -ln p_t = ln(1+s) + (m - z_t)             (no cancellation: both >= 0)
 *   1 - p_t = s/(1+s) when t = a, else 1 - e_t/(1+s)
 * cross_entropy: l = (1-eps)(-ln p_t) + eps/C sum_c (-ln p_c),
 *   sum_c (-ln p_c) = sum_c (m - z_c) + C ln(1+s);  dl/dz = p - (1-eps) onehot(t) - eps/C.
 * softmax_focal: l = alpha q^gamma (-ln p_t), q = 1 - p_t,
 *   dl/dz_c = K (1[c=t] - p_c),  K = -alpha q^gamma (1 + gamma p_t h),  h = -ln p_t / q
 *   (h -> 1 as q -> 0, so K is finite for every gamma >= 0).
 * Returns the weighted row loss; writes the scaled gradient row.
 */
static double class_row(const row_ctx *rc, size_t i) {
  const size_t C = rc->c;
  const float *z = rc->z + i * C;
  float *g = rc->grad ? rc->grad + i * C : NULL;
  const int64_t t64 = rc->t[i];
  if (t64 == rc->ignore_index) {
    if (g) memset(g, 0, C * sizeof(float));
    if (rc->r == DETLOSS_REDUCTION_NONE) rc->loss[i] = 0.0f;
    return 0.0;
  }
  const size_t t = (size_t)t64;
  float m = z[0];
  for (size_t c = 1; c < C; c++) m = z[c] > m ? z[c] : m;
  size_t a = 0;
  while (z[a] != m) a++;
  /* S = sum_c e_c in 4 double lanes (fixed order), Z = sum_c (m - z_c).
   * Z's differences are formed in double: in float, logits 3e38 apart give
   * -Inf, and 0 * Inf = NaN with label_smoothing 0 (found by fuzz_numeric). */
  double S4[4] = {0, 0, 0, 0}, Z4[4] = {0, 0, 0, 0};
  size_t c = 0;
  if (g) {
    for (; c + 4 <= C; c += 4)
      for (size_t q = 0; q < 4; q++) {
        float d = z[c + q] - m;
        float e = dl_expf_neg(d);
        g[c + q] = e;
        S4[q] += (double)e;
        Z4[q] += (double)m - (double)z[c + q];
      }
    for (; c < C; c++) {
      float d = z[c] - m;
      float e = dl_expf_neg(d);
      g[c] = e;
      S4[0] += (double)e;
      Z4[0] += (double)m - (double)z[c];
    }
  } else {
    for (; c + 4 <= C; c += 4)
      for (size_t q = 0; q < 4; q++) {
        float d = z[c + q] - m;
        S4[q] += (double)dl_expf_neg(d);
        Z4[q] += (double)m - (double)z[c + q];
      }
    for (; c < C; c++) {
      float d = z[c] - m;
      S4[0] += (double)dl_expf_neg(d);
      Z4[0] += (double)m - (double)z[c];
    }
  }
  const double S = (S4[0] + S4[1]) + (S4[2] + S4[3]);
  const double s = S - 1.0; /* e_a = 1 exactly */
  const double ls = log1p(s);
  const double nll = ls + ((double)m - (double)z[t]);
  const double e_t = (double)dl_expf_neg(z[t] - m);
  const double p_t = e_t / S;
  const double q = t == a ? s / S : 1.0 - p_t; /* 1 - p_t without cancellation */
  const double wi = rc->w ? (double)rc->w[i] : 1.0;
  double li;
  if (rc->kind == DETLOSS_LOSS_CROSS_ENTROPY) {
    const double Zs = (Z4[0] + Z4[1]) + (Z4[2] + Z4[3]);
    const double smooth = Zs + (double)C * ls;
    li = (1.0 - rc->eps) * nll + rc->eps / (double)C * smooth;
    if (g) {
      const double sc = wi * rc->gscale;
      const float pscale = (float)(sc / S);
      const float off = (float)(sc * rc->eps / (double)C);
      for (size_t k = 0; k < C; k++) g[k] = g[k] * pscale - off;
      /* target column: (p_t - 1) + eps - eps/C, with p_t - 1 = -q */
      g[t] = (float)(sc * (-q + rc->eps - rc->eps / (double)C));
    }
  } else {
    const double qg = pow(q, rc->gamma);
    const double h = q > 0.0 ? nll / q : 1.0;
    li = rc->alpha * qg * nll;
    if (g) {
      const double K = -rc->alpha * qg * (1.0 + rc->gamma * p_t * h);
      const double sc = wi * rc->gscale;
      const float pscale = (float)(-K * sc / S);
      for (size_t k = 0; k < C; k++) g[k] = g[k] * pscale;
      g[t] = (float)(K * sc * q);
    }
  }
  li *= wi;
  if (rc->r == DETLOSS_REDUCTION_NONE) rc->loss[i] = (float)li;
  return li;
}

static double class_block(void *vctx, size_t i0, size_t i1) {
  const row_ctx *rc = (const row_ctx *)vctx;
  double sum = 0.0;
  for (size_t i = i0; i < i1; i++) sum += class_row(rc, i);
  return sum;
}

detloss_status detloss_loss_classes(detloss_loss_kind kind, const float *logits,
                                    const int64_t *target, const float *weight, size_t n, size_t c,
                                    float *loss, float *grad, const detloss_loss_options *opt,
                                    detloss_error *err) {
  detloss_loss_options o = dl_loss_resolve(kind, opt);
  DL_RETURN_ERROR_IF(kind != DETLOSS_LOSS_CROSS_ENTROPY && kind != DETLOSS_LOSS_SOFTMAX_FOCAL, err,
                     DETLOSS_ERR_RANGE, "kind",
                     "is %d, expected a class-indexed loss (cross_entropy, softmax_focal)",
                     (int)kind);
  DL_FORWARD_IF_ERROR(dl_check_reduction(o.reduction, err));
  size_t nc = 0;
  DL_RETURN_ERROR_IF(dl_mul_overflow(n, c, &nc) || nc > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE,
                     "logits", "%zu x %zu elements is more than can be addressed", n, c);
  DL_RETURN_ERROR_IF(n > 0 && c == 0, err, DETLOSS_ERR_SHAPE, "logits",
                     "has 0 classes for %zu rows", n);
  DL_FORWARD_IF_ERROR(dl_check_ptr(target, n, "target", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(loss, dl_loss_out_len(o.reduction, n), "loss", err));
  {
    dl_span sp[5] = {dl_span_of(logits, nc, sizeof(float), "logits", 0),
                     dl_span_of(target, n, sizeof(int64_t), "target", 0),
                     dl_span_of(weight, n, sizeof(float), "weight", 0),
                     dl_span_of(loss, dl_loss_out_len(o.reduction, n), sizeof(float), "loss", 1),
                     dl_span_of(grad, nc, sizeof(float), "grad", 1)};
    DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 5, err));
  }
  if (kind == DETLOSS_LOSS_CROSS_ENTROPY) {
    DL_RETURN_ERROR_IF(!(o.label_smoothing >= 0.0f && o.label_smoothing <= 1.0f), err,
                       DETLOSS_ERR_RANGE, "label_smoothing", "is %g, expected a value in [0, 1]",
                       (double)o.label_smoothing);
  } else {
    DL_RETURN_ERROR_IF(!isfinite(o.alpha), err, DETLOSS_ERR_RANGE, "alpha",
                       "is %g, expected a finite value", (double)o.alpha);
    DL_FORWARD_IF_ERROR(check_param(o.gamma, 0.0f, 0, "gamma", err));
  }
  DL_FORWARD_IF_ERROR(dl_check_finite_par(logits, nc, "logits", o.num_threads, err));
  size_t count = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t ti = target[i];
    if (ti == o.ignore_index) continue;
    if (ti < 0 || (uint64_t)ti >= (uint64_t)c) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "target[%zu]", i);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "is %lld, expected a class index in [0, %zu) or ignore_index %lld",
                     (long long)ti, c, (long long)o.ignore_index);
    }
    count++;
  }
  if (weight) DL_FORWARD_IF_ERROR(dl_check_finite_par(weight, n, "weight", o.num_threads, err));

  row_ctx rc;
  rc.kind = kind;
  rc.z = logits;
  rc.t = target;
  rc.w = weight;
  rc.c = c;
  rc.loss = loss;
  rc.grad = grad;
  rc.r = o.reduction;
  rc.ignore_index = o.ignore_index;
  rc.eps = (double)o.label_smoothing;
  rc.alpha = (double)o.alpha;
  rc.gamma = (double)o.gamma;
  rc.gscale = dl_loss_grad_scale(o.reduction, count);
  size_t rows_per_block = (c == 0 || c >= DL_LOSS_BLOCK) ? 1 : DL_LOSS_BLOCK / c;
  double total = 0.0;
  DL_FORWARD_IF_ERROR(
      dl_parallel_sum(n, rows_per_block, o.num_threads, class_block, &rc, &total, err));
  if (o.reduction != DETLOSS_REDUCTION_NONE) loss[0] = dl_loss_reduce(o.reduction, total, count);
  return DETLOSS_OK;
}

double dl_loss_class_row(detloss_loss_kind kind, const float *z, size_t c, int64_t t, float w,
                         double eps, double alpha, double gamma, double gscale, float *g) {
  row_ctx rc;
  rc.kind = kind;
  rc.z = z;
  rc.t = &t;
  rc.w = &w;
  rc.c = c;
  rc.loss = NULL;
  rc.grad = g;
  rc.r = DETLOSS_REDUCTION_SUM;
  rc.ignore_index = t - 1; /* never the target */
  rc.eps = eps;
  rc.alpha = alpha;
  rc.gamma = gamma;
  rc.gscale = gscale;
  return class_row(&rc, 0);
}
