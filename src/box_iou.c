/*
 * box_iou.c - box area and the IoU family (IoU, GIoU, DIoU, CIoU), pairwise
 * matrices and matched pairs.
 *
 * Every value is computed in float32 with the operations of torchvision's
 * ops/boxes.py in the same order (the build sets -ffp-contract=off), so for
 * valid boxes the results equal torchvision's on CPU bit for bit, up to the
 * last-ulp differences of atan in CIoU. Where torchvision divides 0 by 0 we
 * return a defined value instead (see the public header); docs/math/box_iou.md
 * s3 lists those cases.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "box_kernels.h"
#include "internal.h"
#include "parallel.h"

/* Coordinates are bounded (DL_COORD_MAX = 1e18, internal.h) so that no
 * intermediate (w*h, w^2 + h^2, sums of areas) can overflow float. The
 * quotients can still leave the float range, but only for inverted boxes
 * (x2 < x1 or y2 < y1), whose enclosing box can be much smaller than their
 * centre distance or union: GIoU's (C - U) / C with a tiny C, DIoU's
 * rho^2 / (c^2 + eps) with c = 0 (the eps of 1e-7 is too small to bound it:
 * rho^2 / 1e-7 overflows from rho ~ 6e15, and any eps does for rho near 1e18).
 * Those results saturate at +-FLT_MAX (the convention of detloss_loss_boxes),
 * so finite input never gives Inf or NaN. For proper boxes rho <= c and
 * C >= U keep every value in [-2, 1], where the clamp (dl_sat_f32,
 * box_kernels.h) changes nothing. */

/* 4 / pi^2, rounded to float as torchvision's Python scalar is when it
 * multiplies a float32 tensor (complete_box_iou). */
#define CIOU_K 0.405284734569351086f

/* Checks finiteness and the magnitude bound DL_COORD_MAX. */
static detloss_status check_iou_boxes(const float *boxes, size_t n, const char *name,
                                      detloss_error *err) {
  return dl_check_coords(boxes, n, name, err);
}

static detloss_status check_iou_options(detloss_iou_kind kind, const detloss_iou_options *opt,
                                        detloss_error *err) {
  DL_RETURN_ERROR_IF(kind != DETLOSS_IOU && kind != DETLOSS_GIOU && kind != DETLOSS_DIOU &&
                         kind != DETLOSS_CIOU,
                     err, DETLOSS_ERR_RANGE, "kind", "unknown IoU kind %d", (int)kind);
  DL_RETURN_ERROR_IF(!(opt->eps > 0.0f) || !isfinite(opt->eps), err, DETLOSS_ERR_RANGE, "eps",
                     "must be a finite number > 0, got %g", (double)opt->eps);
  return DETLOSS_OK;
}

detloss_iou_options detloss_iou_options_default(void) {
  detloss_iou_options o = DETLOSS_IOU_OPTIONS_INIT;
  return o;
}

/* area = (x2 - x1)(y2 - y1), not clamped (torchvision box_area). */
detloss_status detloss_box_area(const float *boxes, size_t n, float *out, detloss_error *err) {
  DL_FORWARD_IF_ERROR(check_iou_boxes(boxes, n, "boxes", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(out, n, "out", err));
  dl_span sp[2] = {dl_span_of(boxes, n, 4 * sizeof(float), "boxes", 0),
                   dl_span_of(out, n, sizeof(float), "out", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 2, err));
  for (size_t i = 0; i < n; i++) {
    const float *b = boxes + 4 * i;
    out[i] = (b[2] - b[0]) * (b[3] - b[1]);
  }
  return DETLOSS_OK;
}

/* Per-box derived values, computed once per box as torchvision computes
 * them once per tensor: area, centre, and atan(w/h) for CIoU. */

/* atan(w/h) as torchvision's torch.atan(w / h), except that w = h = 0 (0/0,
 * NaN in torchvision) gives 0. h = 0 with w != 0 gives atan(+-Inf) = +-pi/2,
 * as in torchvision. */
static inline float aspect_atan(float w, float h) {
  if (w == 0.0f && h == 0.0f) return 0.0f;
  return atanf(w / h);
}

typedef struct derived {
  float *x1, *y1, *x2, *y2; /* SoA copy of the coordinates */
  float *area;              /* (x2 - x1)(y2 - y1) */
  float *cx, *cy;           /* (x1 + x2) / 2: torchvision's _box_diou_iou centres */
  float *at;                /* atan(w / h), CIoU only */
  float *mem;
} derived;

static int derived_init(derived *d, const float *boxes, size_t m, detloss_iou_kind kind) {
  size_t per = (kind == DETLOSS_CIOU) ? 8 : (kind == DETLOSS_DIOU ? 7 : 5);
  d->mem = malloc(per * (m ? m : 1) * sizeof(float));
  if (!d->mem) return 0;
  d->x1 = d->mem;
  d->y1 = d->x1 + m;
  d->x2 = d->y1 + m;
  d->y2 = d->x2 + m;
  d->area = d->y2 + m;
  d->cx = per >= 7 ? d->area + m : NULL;
  d->cy = per >= 7 ? d->cx + m : NULL;
  d->at = per >= 8 ? d->cy + m : NULL;
  for (size_t j = 0; j < m; j++) {
    const float *b = boxes + 4 * j;
    d->x1[j] = b[0];
    d->y1[j] = b[1];
    d->x2[j] = b[2];
    d->y2[j] = b[3];
    d->area[j] = (b[2] - b[0]) * (b[3] - b[1]);
    if (d->cx) {
      d->cx[j] = (b[0] + b[2]) / 2.0f;
      d->cy[j] = (b[1] + b[3]) / 2.0f;
    }
    if (d->at) d->at[j] = aspect_atan(b[2] - b[0], b[3] - b[1]);
  }
  return 1;
}

/* The pair kernels. a* are the row box's values, b* the column box's; the
 * IoU and union of a pair are dl_pair_iou_union() (box_kernels.h). */

/* Enclosing box sides, clamped at 0 (torchvision's whi). */
static inline void enclosing(float ax1, float ay1, float ax2, float ay2, float bx1, float by1,
                             float bx2, float by2, float *cw, float *ch) {
  float lx = ax1 < bx1 ? ax1 : bx1;
  float ly = ay1 < by1 ? ay1 : by1;
  float rx = ax2 > bx2 ? ax2 : bx2;
  float ry = ay2 > by2 ? ay2 : by2;
  float w = rx - lx, h = ry - ly;
  *cw = w > 0.0f ? w : 0.0f;
  *ch = h > 0.0f ? h : 0.0f;
}

/* GIoU = IoU - (C - U) / C (Rezatofighi et al. 2019, eq. 1; torchvision
 * generalized_box_iou). C = 0 (both boxes degenerate on a common line)
 * gives penalty 0 instead of 0/0. */
static inline float giou_penalty(float c, float uni) {
  float q = (c - uni) / (c > 0.0f ? c : 1.0f);
  return c > 0.0f ? q : 0.0f;
}

/* DIoU = IoU - rho^2 / (c^2 + eps) (Zheng et al. 2020, eq. 6; torchvision
 * _box_diou_iou): rho = centre distance, c = enclosing box diagonal. */
static inline float diou_penalty(float acx, float acy, float bcx, float bcy, float cw, float ch,
                                 float eps) {
  float diag = cw * cw + ch * ch + eps;
  float dx = acx - bcx, dy = acy - bcy;
  float rho2 = dx * dx + dy * dy;
  return rho2 / diag;
}

/* CIoU = DIoU - alpha v (Zheng et al. 2020, eqs. 9-11; torchvision
 * complete_box_iou):  v = 4/pi^2 (atan(w_a/h_a) - atan(w_b/h_b))^2,
 * alpha = v / (1 - IoU + v + eps). */
static inline float ciou_term(float aat, float bat, float iou, float eps) {
  float d = aat - bat;
  float v = CIOU_K * (d * d);
  float alpha = v / (1.0f - iou + v + eps);
  return alpha * v;
}

/* Matrix driver: parallel over blocks of rows. */

typedef struct matrix_ctx {
  detloss_iou_kind kind;
  const float *boxes1;
  const derived *cols;
  size_t m;
  float eps;
  float *out;
} matrix_ctx;

static void matrix_rows(void *vctx, size_t i0, size_t i1, size_t block) {
  const matrix_ctx *c = vctx;
  const derived *d = c->cols;
  const size_t m = c->m;
  const float eps = c->eps;
  (void)block;
  for (size_t i = i0; i < i1; i++) {
    const float *a = c->boxes1 + 4 * i;
    const float ax1 = a[0], ay1 = a[1], ax2 = a[2], ay2 = a[3];
    const float aarea = (ax2 - ax1) * (ay2 - ay1);
    const float acx = (ax1 + ax2) / 2.0f, acy = (ay1 + ay2) / 2.0f;
    float *row = c->out + i * m;
    switch (c->kind) {
      case DETLOSS_IOU:
        for (size_t j = 0; j < m; j++) {
          row[j] = dl_pair_iou(ax1, ay1, ax2, ay2, aarea, d->x1[j], d->y1[j], d->x2[j], d->y2[j],
                               d->area[j]);
        }
        break;
      case DETLOSS_GIOU:
        for (size_t j = 0; j < m; j++) {
          float uni, cw, ch;
          float iou = dl_pair_iou_union(ax1, ay1, ax2, ay2, aarea, d->x1[j], d->y1[j], d->x2[j],
                                        d->y2[j], d->area[j], &uni);
          enclosing(ax1, ay1, ax2, ay2, d->x1[j], d->y1[j], d->x2[j], d->y2[j], &cw, &ch);
          row[j] = dl_sat_f32(iou - giou_penalty(cw * ch, uni));
        }
        break;
      case DETLOSS_DIOU:
        for (size_t j = 0; j < m; j++) {
          float uni, cw, ch;
          float iou = dl_pair_iou_union(ax1, ay1, ax2, ay2, aarea, d->x1[j], d->y1[j], d->x2[j],
                                        d->y2[j], d->area[j], &uni);
          enclosing(ax1, ay1, ax2, ay2, d->x1[j], d->y1[j], d->x2[j], d->y2[j], &cw, &ch);
          row[j] = dl_sat_f32(iou - diou_penalty(acx, acy, d->cx[j], d->cy[j], cw, ch, eps));
        }
        break;
      case DETLOSS_CIOU: {
        const float aat = aspect_atan(ax2 - ax1, ay2 - ay1);
        for (size_t j = 0; j < m; j++) {
          float uni, cw, ch;
          float iou = dl_pair_iou_union(ax1, ay1, ax2, ay2, aarea, d->x1[j], d->y1[j], d->x2[j],
                                        d->y2[j], d->area[j], &uni);
          enclosing(ax1, ay1, ax2, ay2, d->x1[j], d->y1[j], d->x2[j], d->y2[j], &cw, &ch);
          float diou = iou - diou_penalty(acx, acy, d->cx[j], d->cy[j], cw, ch, eps);
          row[j] = dl_sat_f32(diou - ciou_term(aat, d->at[j], iou, eps));
        }
        break;
      }
    }
  }
}

detloss_status detloss_iou_matrix(detloss_iou_kind kind, const float *boxes1, size_t n,
                                  const float *boxes2, size_t m, float *out,
                                  const detloss_iou_options *opt, detloss_error *err) {
  detloss_iou_options o = opt ? *opt : detloss_iou_options_default();
  DL_FORWARD_IF_ERROR(check_iou_options(kind, &o, err));
  size_t nm;
  DL_RETURN_ERROR_IF(dl_mul_overflow(n, m, &nm) || nm > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE, "out",
                     "an %zu x %zu matrix is larger than can be addressed", n, m);
  DL_FORWARD_IF_ERROR(check_iou_boxes(boxes1, n, "boxes1", err));
  DL_FORWARD_IF_ERROR(check_iou_boxes(boxes2, m, "boxes2", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(out, nm, "out", err));
  dl_span sp[3] = {dl_span_of(boxes1, n, 4 * sizeof(float), "boxes1", 0),
                   dl_span_of(boxes2, m, 4 * sizeof(float), "boxes2", 0),
                   dl_span_of(out, nm, sizeof(float), "out", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 3, err));
  if (nm == 0) return DETLOSS_OK;

  derived cols;
  DL_RETURN_ERROR_IF(!derived_init(&cols, boxes2, m, kind), err, DETLOSS_ERR_NOMEM, "boxes2",
                     "cannot allocate %zu bytes of scratch", 8 * m * sizeof(float));
  matrix_ctx ctx = {kind, boxes1, &cols, m, o.eps, out};
  /* About 8k pairs per block: large enough to amortize scheduling, small
   * enough to balance 2-8 threads on typical matching sizes. */
  size_t rows_per_block = 8192 / m;
  if (rows_per_block == 0) rows_per_block = 1;
  dl_parallel_blocks(n, rows_per_block, o.num_threads, matrix_rows, &ctx);
  free(cols.mem);
  return DETLOSS_OK;
}

/* Matched pairs: out[i] = kind(boxes1[i], boxes2[i]). */

typedef struct pairs_ctx {
  detloss_iou_kind kind;
  const float *b1, *b2;
  float eps;
  float *out;
} pairs_ctx;

static void pairs_range(void *vctx, size_t i0, size_t i1, size_t block) {
  const pairs_ctx *c = vctx;
  (void)block;
  for (size_t i = i0; i < i1; i++) {
    const float *a = c->b1 + 4 * i, *b = c->b2 + 4 * i;
    float aarea = (a[2] - a[0]) * (a[3] - a[1]);
    float barea = (b[2] - b[0]) * (b[3] - b[1]);
    float uni, cw, ch;
    float iou =
        dl_pair_iou_union(a[0], a[1], a[2], a[3], aarea, b[0], b[1], b[2], b[3], barea, &uni);
    if (c->kind == DETLOSS_IOU) {
      c->out[i] = iou;
      continue;
    }
    enclosing(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], &cw, &ch);
    if (c->kind == DETLOSS_GIOU) {
      c->out[i] = dl_sat_f32(iou - giou_penalty(cw * ch, uni));
      continue;
    }
    float diou = iou - diou_penalty((a[0] + a[2]) / 2.0f, (a[1] + a[3]) / 2.0f,
                                    (b[0] + b[2]) / 2.0f, (b[1] + b[3]) / 2.0f, cw, ch, c->eps);
    if (c->kind == DETLOSS_DIOU) {
      c->out[i] = dl_sat_f32(diou);
      continue;
    }
    c->out[i] = dl_sat_f32(diou - ciou_term(aspect_atan(a[2] - a[0], a[3] - a[1]),
                                            aspect_atan(b[2] - b[0], b[3] - b[1]), iou, c->eps));
  }
}

detloss_status detloss_iou_pairs(detloss_iou_kind kind, const float *boxes1, const float *boxes2,
                                 size_t n, float *out, const detloss_iou_options *opt,
                                 detloss_error *err) {
  detloss_iou_options o = opt ? *opt : detloss_iou_options_default();
  DL_FORWARD_IF_ERROR(check_iou_options(kind, &o, err));
  DL_FORWARD_IF_ERROR(check_iou_boxes(boxes1, n, "boxes1", err));
  DL_FORWARD_IF_ERROR(check_iou_boxes(boxes2, n, "boxes2", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(out, n, "out", err));
  dl_span sp[3] = {dl_span_of(boxes1, n, 4 * sizeof(float), "boxes1", 0),
                   dl_span_of(boxes2, n, 4 * sizeof(float), "boxes2", 0),
                   dl_span_of(out, n, sizeof(float), "out", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 3, err));
  pairs_ctx ctx = {kind, boxes1, boxes2, o.eps, out};
  dl_parallel_blocks(n, 4096, o.num_threads, pairs_range, &ctx);
  return DETLOSS_OK;
}
