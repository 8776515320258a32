/*
 * loss_quality.c - the quality losses of the one-stage detectors after
 * RetinaNet, with closed-form gradients: Varifocal Loss (element-wise, behind
 * detloss_loss_elementwise), Quality Focal Loss and Distribution Focal Loss
 * (per row, detloss_loss_rows). The element kernels are in loss_kernels.h
 * (the head losses evaluate the same ones); derivations in
 * docs/math/quality_losses.md.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "loss_elementwise.h"
#include "loss_internal.h"
#include "loss_kernels.h"

/* A parameter that must be finite and >= 0. */
static detloss_status check_nonneg(float v, const char *name, detloss_error *err) {
  DL_RETURN_ERROR_IF(!(isfinite(v) && v >= 0.0f), err, DETLOSS_ERR_RANGE, name,
                     "is %g, expected a finite value >= 0", (double)v);
  return DETLOSS_OK;
}

typedef struct range_ctx {
  const float *v;
  float lo, hi;
} range_ctx;

static size_t find_out_of_range(void *vctx, size_t i0, size_t i1) {
  const range_ctx *r = (const range_ctx *)vctx;
  for (size_t i = i0; i < i1; i++)
    if (!(r->v[i] >= r->lo && r->v[i] <= r->hi)) return i;
  return i1;
}

/* v finite (NONFINITE) and in [lo, hi] (RANGE), naming "name[i]". */
static detloss_status check_range(const float *v, size_t n, float lo, float hi, const char *name,
                                  int nt, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_finite_par(v, n, name, nt, err));
  range_ctx r = {v, lo, hi};
  size_t first = n;
  DL_FORWARD_IF_ERROR(dl_parallel_find(n, DL_LOSS_BLOCK, nt, find_out_of_range, &r, &first, err));
  if (first < n) {
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "%s[%zu]", name, first);
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %g, expected a value in [%g, %g]",
                   (double)v[first], (double)lo, (double)hi);
  }
  return DETLOSS_OK;
}

typedef struct vfl_params {
  double alpha, gamma;
  int iou_weighted, detach;
} vfl_params;

static void kern_varifocal(const void *vp, const float *x, const float *y, size_t i0, size_t m,
                           float *l, float *g) {
  (void)i0;
  const vfl_params *p = (const vfl_params *)vp;
  for (size_t k = 0; k < m; k++) {
    double lv, gv;
    dl_varifocal_elem(x[k], y[k], p->alpha, p->gamma, p->iou_weighted, p->detach, &lv, &gv);
    l[k] = (float)lv;
    g[k] = (float)gv;
  }
}

detloss_status dl_loss_quality_elementwise(detloss_loss_kind kind, const float *input,
                                           const float *target, const float *weight, size_t n,
                                           float *loss, float *grad, const detloss_loss_options *o,
                                           detloss_error *err) {
  const int nt = o->num_threads;
  DL_RETURN_ERROR_IF(kind != DETLOSS_LOSS_VARIFOCAL, err, DETLOSS_ERR_RANGE, "kind",
                     "is not a quality loss");
  DL_FORWARD_IF_ERROR(check_nonneg(o->alpha, "alpha", err));
  DL_FORWARD_IF_ERROR(check_nonneg(o->gamma, "gamma", err));
  DL_FORWARD_IF_ERROR(dl_check_finite_par(input, n, "input", nt, err));
  DL_FORWARD_IF_ERROR(check_range(target, n, 0.0f, 1.0f, "target", nt, err));
  if (weight) DL_FORWARD_IF_ERROR(dl_check_finite_par(weight, n, "weight", nt, err));
  vfl_params p = {(double)o->alpha, (double)o->gamma, o->iou_weighted != 0, o->detach_weight != 0};
  return dl_elementwise_run(kern_varifocal, &p, input, target, weight, n, loss, grad, o->reduction,
                            nt, err);
}

typedef struct rows_ctx {
  detloss_loss_kind kind;
  const float *x, *y, *w;
  size_t c;
  float *loss, *grad;
  detloss_reduction r;
  double beta, gscale;
  int activated;
} rows_ctx;

/* One row: its weighted loss (stored for NONE) and its scaled gradient. */
static double one_row(const rows_ctx *rc, size_t i) {
  const size_t C = rc->c;
  const float *x = rc->x + i * C;
  float *g = rc->grad ? rc->grad + i * C : NULL;
  const double wi = rc->w ? (double)rc->w[i] : 1.0;
  const double sc = wi * rc->gscale;
  double li = 0.0;
  if (rc->kind == DETLOSS_LOSS_DISTRIBUTION_FOCAL) {
    li = dl_distribution_focal_row(x, C, rc->y[i], sc, g);
  } else {
    /* the row sum in 4 double lanes, added in a fixed order */
    const float *y = rc->y + i * C;
    double acc[4] = {0, 0, 0, 0};
    for (size_t c = 0; c < C; c++) {
      double lv, gv;
      dl_quality_focal_elem(x[c], y[c], rc->beta, rc->activated, &lv, &gv);
      acc[c & 3] += lv;
      if (g) g[c] = (float)(sc * gv);
    }
    li = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  }
  if (rc->w && wi == 0.0) li = 0.0;
  li *= wi;
  if (rc->r == DETLOSS_REDUCTION_NONE) rc->loss[i] = (float)li;
  return li;
}

static double rows_block(void *vctx, size_t i0, size_t i1) {
  const rows_ctx *rc = (const rows_ctx *)vctx;
  double sum = 0.0;
  for (size_t i = i0; i < i1; i++) sum += one_row(rc, i);
  return sum;
}

detloss_status detloss_loss_rows(detloss_loss_kind kind, const float *input, const float *target,
                                 const float *weight, size_t n, size_t c, float *loss, float *grad,
                                 const detloss_loss_options *opt, detloss_error *err) {
  detloss_loss_options o = dl_loss_resolve(kind, opt);
  const int dfl = kind == DETLOSS_LOSS_DISTRIBUTION_FOCAL;
  DL_RETURN_ERROR_IF(!dfl && kind != DETLOSS_LOSS_QUALITY_FOCAL, err, DETLOSS_ERR_RANGE, "kind",
                     "is %d, expected a row loss (quality_focal, distribution_focal)", (int)kind);
  DL_FORWARD_IF_ERROR(dl_check_reduction(o.reduction, err));
  size_t nc = 0;
  DL_RETURN_ERROR_IF(dl_mul_overflow(n, c, &nc) || nc > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE,
                     "input", "%zu x %zu elements is more than can be addressed", n, c);
  DL_RETURN_ERROR_IF(n > 0 && c == 0, err, DETLOSS_ERR_SHAPE, "input", "has 0 columns for %zu rows",
                     n);
  const size_t ny = dfl ? n : nc;
  const size_t nl = dl_loss_out_len(o.reduction, n);
  DL_FORWARD_IF_ERROR(dl_check_ptr(input, nc, "input", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(target, ny, "target", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(loss, nl, "loss", err));
  {
    dl_span sp[5] = {dl_span_of(input, nc, sizeof(float), "input", 0),
                     dl_span_of(target, ny, sizeof(float), "target", 0),
                     dl_span_of(weight, n, sizeof(float), "weight", 0),
                     dl_span_of(loss, nl, sizeof(float), "loss", 1),
                     dl_span_of(grad, nc, sizeof(float), "grad", 1)};
    DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 5, err));
  }
  const int nt = o.num_threads;
  if (dfl) {
    DL_FORWARD_IF_ERROR(dl_check_finite_par(input, nc, "input", nt, err));
    DL_FORWARD_IF_ERROR(check_range(target, n, 0.0f, c ? (float)(c - 1) : 0.0f, "target", nt, err));
  } else {
    DL_FORWARD_IF_ERROR(check_nonneg(o.beta, "beta", err));
    if (o.activated)
      DL_FORWARD_IF_ERROR(check_range(input, nc, 0.0f, 1.0f, "input", nt, err));
    else
      DL_FORWARD_IF_ERROR(dl_check_finite_par(input, nc, "input", nt, err));
    DL_FORWARD_IF_ERROR(check_range(target, nc, 0.0f, 1.0f, "target", nt, err));
  }
  if (weight) DL_FORWARD_IF_ERROR(dl_check_finite_par(weight, n, "weight", nt, err));

  rows_ctx rc = {kind,
                 input,
                 target,
                 weight,
                 c,
                 loss,
                 grad,
                 o.reduction,
                 (double)o.beta,
                 dl_loss_grad_scale(o.reduction, n),
                 o.activated != 0};
  size_t rows_per_block = (c == 0 || c >= DL_LOSS_BLOCK) ? 1 : DL_LOSS_BLOCK / c;
  double total = 0.0;
  DL_FORWARD_IF_ERROR(dl_parallel_sum(n, rows_per_block, nt, rows_block, &rc, &total, err));
  if (o.reduction != DETLOSS_REDUCTION_NONE) loss[0] = dl_loss_reduce(o.reduction, total, n);
  return DETLOSS_OK;
}
