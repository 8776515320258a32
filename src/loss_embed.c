/*
 * loss_embed.c - verification (Re-ID) losses on embeddings with gradients for
 * every input: contrastive (pairs), cosine embedding (pairs), triplet margin.
 *
 * Semantics: torch.nn.functional pairwise_distance, cosine_embedding_loss and
 * triplet_margin_loss (torch 1.13, aten Loss.cpp / Distance.cpp); contrastive
 * per Hadsell, Chopra, LeCun, "Dimensionality Reduction by Learning an
 * Invariant Mapping", CVPR 2006, eq. 4, on torch's pairwise distance.
 * Gradients: docs/math/embedding_losses.md, equations (E1)-(E12), cited as [Ek].
 *
 * Per pair everything is evaluated in double from the float inputs and
 * rounded once to float.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "box_kernels.h"
#include "loss_internal.h"

/* torch pairwise_distance's eps for the contrastive loss (its default). */
#define CONTRASTIVE_EPS 1e-6
/* torch cosine_embedding_loss's EPSILON, a float constant 1e-12 in aten
 * Loss.cpp: in double it is 9.99999996e-13 (the float64 results show it). */
#define COSINE_EPS ((double)1e-12f)
/* Floats per parallel block (pairs per block = this / d, at least 1): depends
 * on d only, never on the thread count. */
#define EMBED_BLOCK_FLOATS 16384

typedef struct embed_ctx {
  detloss_loss_kind kind;
  const float *x1, *x2, *x3, *target, *weight;
  size_t d;
  float *loss; /* NONE: per pair; else NULL */
  float *g1, *g2, *g3;
  double margin, eps, p, gscale;
  int swap;
} embed_ctx;

/* ||a - b + eps||_p [E1]. p = 2 and p = 1 directly; other p scaled by the
 * largest |v_k| so that |v_k|^p cannot overflow. Capped at 1e300 so that
 * later sums stay finite. */
static double pdist(const float *a, const float *b, size_t d, double eps, double p) {
  double r = 0.0;
  if (p == 2.0) {
    /* Four fixed partial sums (k mod 4), added in a fixed order: the same
       bits every time, and no serial dependency on one accumulator. */
    double r4[4] = {0.0, 0.0, 0.0, 0.0};
    size_t k = 0;
    for (; k + 4 <= d; k += 4)
      for (size_t j = 0; j < 4; j++) {
        const double v = (double)a[k + j] - (double)b[k + j] + eps;
        r4[j] += v * v;
      }
    for (; k < d; k++) {
      const double v = (double)a[k] - (double)b[k] + eps;
      r4[0] += v * v;
    }
    return sqrt((r4[0] + r4[1]) + (r4[2] + r4[3]));
  }
  if (p == 1.0) {
    for (size_t k = 0; k < d; k++) r += fabs((double)a[k] - (double)b[k] + eps);
    return r;
  }
  double vmax = 0.0;
  for (size_t k = 0; k < d; k++) {
    const double v = fabs((double)a[k] - (double)b[k] + eps);
    if (v > vmax) vmax = v;
  }
  if (vmax == 0.0) return 0.0;
  for (size_t k = 0; k < d; k++) r += pow(fabs((double)a[k] - (double)b[k] + eps) / vmax, p);
  const double nrm = vmax * pow(r, 1.0 / p);
  return isfinite(nrm) && nrm < 1e300 ? nrm : 1e300;
}

/* d||v||_p / dv_k = sign(v_k) (|v_k| / ||v||_p)^(p-1)   [E2]
 * 0 where ||v|| = 0, and 0 for a component v_k = 0 (also for p < 1, where the
 * derivative is infinite: torch's norm backward masks it the same way). */
static double pnorm_grad(double v, double nrm, double p) {
  if (nrm == 0.0 || v == 0.0) return 0.0;
  if (p == 2.0) return v / nrm;
  if (p == 1.0) return v > 0.0 ? 1.0 : -1.0;
  return (v > 0.0 ? 1.0 : -1.0) * pow(fabs(v) / nrm, p - 1.0);
}

/* contrastive [E3]-[E5]: l = 1/2 (y D^2 + (1-y) max(0, m - D)^2), D = ||x1 - x2 + 1e-6||_2.
 *   y = 1: dl/dx1 = v (no division: D dD/dv = v);  y = 0: dl/dx1 = -max(0, m-D) v / D,
 *   0 at D = 0. dl/dx2 = -dl/dx1. */
static double contrastive_pair(const embed_ctx *c, size_t i, double s) {
  const size_t d = c->d;
  const float *a = c->x1 + i * d, *b = c->x2 + i * d;
  const double dist = pdist(a, b, d, CONTRASTIVE_EPS, 2.0);
  double coef; /* dl/dv = coef * v */
  double l;
  if (c->target[i] == 1.0f) {
    l = 0.5 * dist * dist;
    coef = 1.0;
  } else {
    const double hinge = c->margin - dist > 0.0 ? c->margin - dist : 0.0;
    l = 0.5 * hinge * hinge;
    coef = dist > 0.0 ? -hinge / dist : 0.0;
  }
  float *ga = c->g1 ? c->g1 + i * d : NULL, *gb = c->g2 ? c->g2 + i * d : NULL;
  coef *= s;
  if (ga)
    for (size_t k = 0; k < d; k++)
      ga[k] = dl_sat_float(coef * ((double)a[k] - (double)b[k] + CONTRASTIVE_EPS));
  if (gb)
    for (size_t k = 0; k < d; k++)
      gb[k] = dl_sat_float(-(coef * ((double)a[k] - (double)b[k] + CONTRASTIVE_EPS)));
  return l;
}

/* cosine_embedding [E6]-[E8]: cos = x1.x2 / sqrt(m1 m2), m = |x|^2 + 1e-12f;
 *   y = 1: l = 1 - cos; y = -1: l = max(0, cos - margin) (gradient passes at
 *   cos = margin, torch clamp_min's self >= min rule).
 *   dcos/dx1 = x2 / sqrt(m1 m2) - cos x1 / m1, dcos/dx2 symmetric. */
static double cosine_pair(const embed_ctx *c, size_t i, double s) {
  const size_t d = c->d;
  const float *a = c->x1 + i * d, *b = c->x2 + i * d;
  /* Four fixed partial sums per quantity (k mod 4), as in pdist. */
  double dot4[4] = {0.0, 0.0, 0.0, 0.0}, m14[4] = {0.0, 0.0, 0.0, 0.0};
  double m24[4] = {0.0, 0.0, 0.0, 0.0};
  size_t k0 = 0;
  for (; k0 + 4 <= d; k0 += 4)
    for (size_t j = 0; j < 4; j++) {
      const double va = (double)a[k0 + j], vb = (double)b[k0 + j];
      dot4[j] += va * vb;
      m14[j] += va * va;
      m24[j] += vb * vb;
    }
  for (; k0 < d; k0++) {
    const double va = (double)a[k0], vb = (double)b[k0];
    dot4[0] += va * vb;
    m14[0] += va * va;
    m24[0] += vb * vb;
  }
  const double dot = (dot4[0] + dot4[1]) + (dot4[2] + dot4[3]);
  const double m1 = (m14[0] + m14[1]) + (m14[2] + m14[3]) + COSINE_EPS;
  const double m2 = (m24[0] + m24[1]) + (m24[2] + m24[3]) + COSINE_EPS;
  const double den = sqrt(m1 * m2);
  const double cs = dot / den;
  double l, gcos;
  if (c->target[i] == 1.0f) {
    l = 1.0 - cs;
    gcos = -1.0;
  } else {
    const double z = cs - c->margin;
    l = z > 0.0 ? z : 0.0;
    gcos = z >= 0.0 ? 1.0 : 0.0;
  }
  float *ga = c->g1 ? c->g1 + i * d : NULL, *gb = c->g2 ? c->g2 + i * d : NULL;
  const double gs = gcos * s;
  if (ga)
    for (size_t k = 0; k < d; k++)
      ga[k] = dl_sat_float(gs * ((double)b[k] / den - cs * (double)a[k] / m1));
  if (gb)
    for (size_t k = 0; k < d; k++)
      gb[k] = dl_sat_float(gs * ((double)a[k] / den - cs * (double)b[k] / m2));
  return l;
}

/* triplet_margin [E9]-[E12]: l = max(0, margin + dp - dn'), dp = ||x1-x2+eps||_p,
 * dn' = dn = ||x1-x3+eps||_p, or with swap min(dn, ds), ds = ||x2-x3+eps||_p.
 * Gradient passes at l = 0 exactly (torch clamp_min); a swap tie splits the
 * gradient in halves between dn and ds (torch.minimum). With
 * gp = d dp/dv(x1-x2), gn = d dn/dv(x1-x3), gs = d ds/dv(x2-x3):
 *   dl/dx1 = gp - wn gn,  dl/dx2 = -gp - ws gs,  dl/dx3 = wn gn + ws gs. */
static double triplet_pair(const embed_ctx *c, size_t i, double s) {
  const size_t d = c->d;
  const float *a = c->x1 + i * d, *b = c->x2 + i * d, *n = c->x3 + i * d;
  const double eps = c->eps, p = c->p;
  const double dp = pdist(a, b, d, eps, p);
  const double dn = pdist(a, n, d, eps, p);
  double dneg = dn, wn = 1.0, ws = 0.0, ds = 0.0;
  if (c->swap) {
    ds = pdist(b, n, d, eps, p);
    if (ds < dn) {
      dneg = ds;
      wn = 0.0;
      ws = 1.0;
    } else if (ds == dn) {
      wn = 0.5;
      ws = 0.5;
    }
  }
  const double z = c->margin + dp - dneg;
  const double l = z > 0.0 ? z : 0.0;
  float *ga = c->g1 ? c->g1 + i * d : NULL, *gb = c->g2 ? c->g2 + i * d : NULL;
  float *gc = c->g3 ? c->g3 + i * d : NULL;
  if ((ga || gb || gc) && p == 2.0) {
    /* p = 2: d||v||/dv = v / ||v|| (0 at ||v|| = 0) [E2], scaled once. */
    const double on = z >= 0.0 ? s : 0.0;
    const double sp = dp > 0.0 ? on / dp : 0.0;
    const double sn = dn > 0.0 ? on * wn / dn : 0.0;
    const double ss = ds > 0.0 ? on * ws / ds : 0.0;
    /* One loop per output (the rows are in L1), so each vectorizes. Each
       |v_k| / ||v|| <= 1, so |g| <= 2 |s| (1 + 1e-15): when that fits in a
       float the saturation is not needed and the loops are branch-free. */
    if (fabs(on) < 0.25 * (double)FLT_MAX) {
      if (ga)
        for (size_t k = 0; k < d; k++) {
          const double va = (double)a[k];
          ga[k] = (float)((va - (double)b[k] + eps) * sp - (va - (double)n[k] + eps) * sn);
        }
      if (gb)
        for (size_t k = 0; k < d; k++) {
          const double vb = (double)b[k];
          gb[k] = (float)(-((double)a[k] - vb + eps) * sp - (vb - (double)n[k] + eps) * ss);
        }
      if (gc)
        for (size_t k = 0; k < d; k++) {
          const double vn = (double)n[k];
          gc[k] = (float)(((double)a[k] - vn + eps) * sn + ((double)b[k] - vn + eps) * ss);
        }
      return l;
    }
    if (ga)
      for (size_t k = 0; k < d; k++) {
        const double va = (double)a[k];
        ga[k] = dl_sat_float((va - (double)b[k] + eps) * sp - (va - (double)n[k] + eps) * sn);
      }
    if (gb)
      for (size_t k = 0; k < d; k++) {
        const double vb = (double)b[k];
        gb[k] = dl_sat_float(-((double)a[k] - vb + eps) * sp - (vb - (double)n[k] + eps) * ss);
      }
    if (gc)
      for (size_t k = 0; k < d; k++) {
        const double vn = (double)n[k];
        gc[k] = dl_sat_float(((double)a[k] - vn + eps) * sn + ((double)b[k] - vn + eps) * ss);
      }
  } else if (ga || gb || gc) {
    const double on = z >= 0.0 ? s : 0.0;
    for (size_t k = 0; k < d; k++) {
      const double va = (double)a[k], vb = (double)b[k], vn = (double)n[k];
      double gp = 0.0, gn = 0.0, gs = 0.0;
      if (on != 0.0) {
        gp = pnorm_grad(va - vb + eps, dp, p);
        if (wn != 0.0) gn = wn * pnorm_grad(va - vn + eps, dn, p);
        if (ws != 0.0) gs = ws * pnorm_grad(vb - vn + eps, ds, p);
      }
      if (ga) ga[k] = dl_sat_float(on * (gp - gn));
      if (gb) gb[k] = dl_sat_float(on * (-gp - gs));
      if (gc) gc[k] = dl_sat_float(on * (gn + gs));
    }
  }
  return l;
}

static double embed_block(void *vctx, size_t i0, size_t i1) {
  const embed_ctx *c = (const embed_ctx *)vctx;
  double sum = 0.0;
  for (size_t i = i0; i < i1; i++) {
    const double wi = c->weight ? (double)c->weight[i] : 1.0;
    const double s = wi * c->gscale;
    double l;
    if (c->kind == DETLOSS_LOSS_CONTRASTIVE)
      l = contrastive_pair(c, i, s);
    else if (c->kind == DETLOSS_LOSS_COSINE_EMBEDDING)
      l = cosine_pair(c, i, s);
    else
      l = triplet_pair(c, i, s);
    /* A zero weight gives exactly 0 (never 0 * huge). */
    const double wl = wi == 0.0 ? 0.0 : wi * l;
    if (c->loss)
      c->loss[i] = dl_sat_float(wl);
    else
      sum += wl;
  }
  return sum;
}

/* Checks an [n][d] embedding array: finite, naming "name[i][k]". */
static detloss_status check_rows(const float *x, size_t n, size_t d, const char *name,
                                 detloss_error *err) {
  const size_t count = n * d; /* overflow checked by the caller */
  DL_FORWARD_IF_ERROR(dl_check_ptr(x, count, name, err));
  for (size_t j = 0; j < count; j++) {
    if (!isfinite(x[j])) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "%s[%zu][%zu]", name, j / d, j % d);
      return dl_fail(err, DETLOSS_ERR_NONFINITE, where, "is %s, expected a finite number",
                     isnan(x[j]) ? "NaN" : "infinite");
    }
  }
  return DETLOSS_OK;
}

detloss_status detloss_loss_embedding(detloss_loss_kind kind, const float *x1, const float *x2,
                                      const float *x3, const float *target, const float *weight,
                                      size_t n, size_t d, float *loss, float *grad_x1,
                                      float *grad_x2, float *grad_x3,
                                      const detloss_loss_options *opt, detloss_error *err) {
  DL_RETURN_ERROR_IF(kind != DETLOSS_LOSS_CONTRASTIVE && kind != DETLOSS_LOSS_COSINE_EMBEDDING &&
                         kind != DETLOSS_LOSS_TRIPLET_MARGIN,
                     err, DETLOSS_ERR_RANGE, "kind",
                     "%d is not an embedding loss (contrastive, cosine_embedding, "
                     "triplet_margin)",
                     (int)kind);
  const detloss_loss_options o = dl_loss_resolve(kind, opt);
  const int triplet = kind == DETLOSS_LOSS_TRIPLET_MARGIN;
  DL_FORWARD_IF_ERROR(dl_check_reduction(o.reduction, err));
  if (kind == DETLOSS_LOSS_COSINE_EMBEDDING) {
    /* torch documents margins from -1 to 1 (cos is in [-1, 1]). */
    DL_RETURN_ERROR_IF(!(o.margin >= -1.0f && o.margin <= 1.0f), err, DETLOSS_ERR_RANGE, "margin",
                       "is %g, expected a number in [-1, 1]", (double)o.margin);
  } else {
    DL_RETURN_ERROR_IF(!(isfinite(o.margin) && o.margin >= 0.0f), err, DETLOSS_ERR_RANGE, "margin",
                       "is %g, expected a finite number >= 0", (double)o.margin);
  }
  if (triplet) {
    DL_RETURN_ERROR_IF(!(isfinite(o.p) && o.p > 0.0f), err, DETLOSS_ERR_RANGE, "p",
                       "is %g, expected a finite norm degree > 0", (double)o.p);
    DL_RETURN_ERROR_IF(!(isfinite(o.eps) && o.eps >= 0.0f), err, DETLOSS_ERR_RANGE, "eps",
                       "is %g, expected a finite number >= 0", (double)o.eps);
  }
  size_t count;
  DL_RETURN_ERROR_IF(dl_mul_overflow(n, d, &count) || count > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE,
                     "n",
                     "%zu pairs of dimension %zu is more than can be "
                     "addressed",
                     n, d);
  const size_t nloss = o.reduction == DETLOSS_REDUCTION_NONE ? n : 1;
  DL_FORWARD_IF_ERROR(dl_check_ptr(loss, nloss, "loss", err));
  DL_FORWARD_IF_ERROR(check_rows(x1, n, d, "x1", err));
  DL_FORWARD_IF_ERROR(check_rows(x2, n, d, "x2", err));
  if (triplet) {
    DL_FORWARD_IF_ERROR(check_rows(x3, n, d, "x3", err));
  } else {
    DL_FORWARD_IF_ERROR(dl_check_ptr(target, n, "target", err));
    for (size_t i = 0; i < n; i++) {
      const float y = target[i];
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "target[%zu]", i);
      if (kind == DETLOSS_LOSS_CONTRASTIVE) {
        DL_RETURN_ERROR_IF(!(y == 0.0f || y == 1.0f), err, DETLOSS_ERR_RANGE, where,
                           "is %g, expected 1 (same identity) or 0 (different)", (double)y);
      } else {
        DL_RETURN_ERROR_IF(!(y == 1.0f || y == -1.0f), err, DETLOSS_ERR_RANGE, where,
                           "is %g, expected 1 or -1", (double)y);
      }
    }
  }
  if (weight) DL_FORWARD_IF_ERROR(dl_check_finite(weight, n, "weight", err));
  dl_span sp[9] = {dl_span_of(x1, count, sizeof(float), "x1", 0),
                   dl_span_of(x2, count, sizeof(float), "x2", 0),
                   dl_span_of(triplet ? x3 : NULL, count, sizeof(float), "x3", 0),
                   dl_span_of(triplet ? NULL : target, n, sizeof(float), "target", 0),
                   dl_span_of(weight, n, sizeof(float), "weight", 0),
                   dl_span_of(loss, nloss, sizeof(float), "loss", 1),
                   dl_span_of(grad_x1, count, sizeof(float), "grad_x1", 1),
                   dl_span_of(grad_x2, count, sizeof(float), "grad_x2", 1),
                   dl_span_of(triplet ? grad_x3 : NULL, count, sizeof(float), "grad_x3", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 9, err));

  const size_t per = d > 0 && d < EMBED_BLOCK_FLOATS ? EMBED_BLOCK_FLOATS / d : 1;
  embed_ctx c;
  c.kind = kind;
  c.x1 = x1;
  c.x2 = x2;
  c.x3 = triplet ? x3 : NULL;
  c.target = target;
  c.weight = weight;
  c.d = d;
  c.loss = o.reduction == DETLOSS_REDUCTION_NONE ? loss : NULL;
  c.g1 = grad_x1;
  c.g2 = grad_x2;
  c.g3 = triplet ? grad_x3 : NULL;
  c.margin = (double)o.margin;
  c.eps = (double)o.eps;
  c.p = (double)o.p;
  c.swap = o.swap;
  c.gscale = dl_loss_grad_scale(o.reduction, n);
  double total = 0.0;
  /* The only failure is the allocation of the block sums, before any output
     is written. */
  DL_FORWARD_IF_ERROR(dl_parallel_sum(n, per, o.num_threads, embed_block, &c, &total, err));
  if (o.reduction != DETLOSS_REDUCTION_NONE)
    loss[0] = dl_sat_float(o.reduction == DETLOSS_REDUCTION_MEAN ? (n > 0 ? total / (double)n : 0.0)
                                                                 : total);
  return DETLOSS_OK;
}
