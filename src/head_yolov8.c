/*
 * head_yolov8.c - the YOLOv8 detection loss (ultralytics v8DetectionLoss, 8.1:
 * utils/loss.py v8DetectionLoss, BboxLoss, DFLoss / _df_loss, bbox2dist; utils/tal.py
 * TaskAlignedAssigner, make_anchors, dist2bbox) over a batch, with gradients.
 *
 * Why a module of its own and not a configuration of the head driver
 * (head_driver.c): the driver is anchor + deltas shaped (detloss_head_image,
 * dl_head_box_eval encodes deltas against anchors, one hard label per anchor).
 * YOLOv8 predicts per-side distributions (4 x reg_max logits) decoded by an
 * integral, its class targets are soft scores, its box loss has two terms (CIoU
 * and DFL) sharing one weight, and its normalizer is a float sum of target
 * scores. It keeps the driver's three phases all the same:
 *   1. validate the whole batch (options, layout, every image's pointers, labels, gt,
 *      aliasing);
 *   2. per image, into scratch only: check the predictions (finite), decode the
 *      predicted boxes of the anchors that lie inside some gt, run the task-aligned
 *      assigner (assign_task_aligned.c,
 *      ultralytics semantics, on the logits and the padding mask: dl_assign_input
 *      .scores_are_logits, .gt_valid), and sum the target scores;
 *   3. the normalizer S, then per image the BCE pass over A x C (fixed anchor
 *      blocks, block sums in order), the CIoU + DFL terms of the foreground
 *      anchors and their gradients; the batch sums in image order.
 * Images run in parallel (one per block) when there are at least as many images
 * as threads, else one after the other with the threads inside the BCE pass and
 * the assigner: every piece is bitwise invariant to its thread count.
 * Memory: O(A) per image plus the layout, no A x G array (the assigner's
 * guarantee); nothing of size A x C besides the caller's arrays.
 * Formulas, sources, decisions: docs/math/yolov8_loss.md, cited as (Yk).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "head_internal.h"
#include "loss_internal.h"
#include "loss_kernels.h"
#include "loss_vmath.h"
#include "vec.h"

#if defined(__GNUC__)
#  define INLINE_ALWAYS __attribute__((always_inline)) inline
#else
#  define INLINE_ALWAYS inline
#endif

/* Logits per block of the BCE pass: a block holds max(1, CLS_BLOCK_ELEMS / C)
 * anchors, fixed by C alone (never by the thread count). */
#define CLS_BLOCK_ELEMS 16384
/* Columns per chunk of the BCE row kernel (stack buffers). */
#define BCE_CHUNK 64
/* Largest reg_max (stack buffers of one side's softmax). */
#define YOLOV8_MAX_REG 1024

detloss_yolov8_options detloss_yolov8_options_default(void) {
  detloss_yolov8_options o = DETLOSS_YOLOV8_OPTIONS_INIT;
  return o;
}

/* The anchor layout of the batch (ultralytics make_anchors, offset 0.5). */
typedef struct y8_layout {
  size_t A, L, R, C;
  size_t counts[DETLOSS_YOLOV8_MAX_LEVELS], w[DETLOSS_YOLOV8_MAX_LEVELS],
      h[DETLOSS_YOLOV8_MAX_LEVELS];
  float *points; /* [A][2] pixels: ((x + 0.5) s, (y + 0.5) s) */
  float *stride; /* [A] the anchor's level stride */
} y8_layout;

/* One image's scratch. */
typedef struct y8_work {
  int64_t *gt_index; /* [A] */
  float *tscore;     /* [A] the assigner's normalised score n(a) (0 at background) */
  double *partials;  /* [blocks] BCE block sums */
  size_t num_fg;
  double tsum; /* sum of the target scores */
  double cls_sum, box_sum, dfl_sum;
  detloss_status st;
  detloss_error err;
} y8_work;

typedef struct y8_run {
  const y8_layout *lay;
  const detloss_yolov8_options *o;
  const detloss_yolov8_image *images;
  y8_work *w;
  int inner_threads;
  size_t per_block;
  double scale_cls, scale_box, scale_dfl; /* d loss / d (image sums) */
} y8_run;

/* Decoding (Y1). */

/* The expectations sum_k k softmax(z_side)_k of the 4 sides of one anchor (4 rows of
 * R logits) into d[4], in float with the vectorizable exp of loss_vmath.h: the boxes the
 * assigner ranks by (the reference decodes in float32 too). The max and the two sums
 * run in 4 lanes (k mod 4) added in a fixed order: independent chains, fixed bits. */
DL_VEC_FN DL_VEC_CLONES static void decode_anchor_f(const float *z, size_t R, float *tmp,
                                                    float *d) {
  for (size_t side = 0; side < 4; side++) {
    const float *zs = z + side * R;
    float m4[4] = {zs[0], zs[0], zs[0], zs[0]};
    size_t k = 0;
    for (; k + 4 <= R; k += 4)
      for (size_t j = 0; j < 4; j++) m4[j] = zs[k + j] > m4[j] ? zs[k + j] : m4[j];
    for (; k < R; k++) m4[0] = zs[k] > m4[0] ? zs[k] : m4[0];
    float m01 = m4[0] > m4[1] ? m4[0] : m4[1], m23 = m4[2] > m4[3] ? m4[2] : m4[3];
    float m = m01 > m23 ? m01 : m23;
    for (k = 0; k < R; k++) tmp[k] = dl_expf_neg(zs[k] - m);
    float s4[4] = {0.0f, 0.0f, 0.0f, 0.0f}, e4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (k = 0; k + 4 <= R; k += 4)
      for (size_t j = 0; j < 4; j++) {
        s4[j] += tmp[k + j];
        e4[j] += (float)(k + j) * tmp[k + j];
      }
    for (; k < R; k++) {
      s4[0] += tmp[k];
      e4[0] += (float)k * tmp[k];
    }
    d[side] = ((e4[0] + e4[1]) + (e4[2] + e4[3])) / ((s4[0] + s4[1]) + (s4[2] + s4[3]));
  }
}

/* The same in double, with the probabilities p [R] kept for the gradient. */
static double side_expect_d(const float *z, size_t R, double *p) {
  double m = z[0];
  for (size_t k = 1; k < R; k++) m = (double)z[k] > m ? (double)z[k] : m;
  double s = 0.0;
  for (size_t k = 0; k < R; k++) {
    p[k] = exp((double)z[k] - m);
    s += p[k];
  }
  double e = 0.0;
  for (size_t k = 0; k < R; k++) {
    p[k] /= s;
    e += (double)k * p[k];
  }
  return e;
}

/* Marks in need[A] the anchors whose point lies strictly inside a valid gt (a
 * superset of the assigner's inside test, which adds a 1e-9 margin). */
static void mark_inside(const y8_layout *lay, const detloss_yolov8_image *im, const uint8_t *valid,
                        uint8_t *need) {
  memset(need, 0, lay->A);
  for (size_t g = 0; g < im->num_gt; g++) {
    if (!valid[g]) continue;
    const float *b = im->gt + 4 * g;
    size_t start = 0;
    for (size_t l = 0; l < lay->L; start += lay->counts[l], l++) {
      double s = lay->stride[start < lay->A ? start : 0];
      if (lay->counts[l] == 0) continue;
      /* x = (j + 0.5) s > x1  <=>  j > x1 / s - 0.5 */
      double jx0 = floor((double)b[0] / s - 0.5) + 1.0, jx1 = ceil((double)b[2] / s - 0.5) - 1.0;
      double iy0 = floor((double)b[1] / s - 0.5) + 1.0, iy1 = ceil((double)b[3] / s - 0.5) - 1.0;
      /* one cell of slack each side: the float points decide, below */
      jx0 = jx0 - 1.0 < 0.0 ? 0.0 : jx0 - 1.0;
      iy0 = iy0 - 1.0 < 0.0 ? 0.0 : iy0 - 1.0;
      jx1 = jx1 + 1.0 > (double)lay->w[l] - 1.0 ? (double)lay->w[l] - 1.0 : jx1 + 1.0;
      iy1 = iy1 + 1.0 > (double)lay->h[l] - 1.0 ? (double)lay->h[l] - 1.0 : iy1 + 1.0;
      if (!(jx0 <= jx1 && iy0 <= iy1)) continue;
      for (size_t i = (size_t)iy0; i <= (size_t)iy1; i++)
        for (size_t j = (size_t)jx0; j <= (size_t)jx1; j++) {
          size_t a = start + i * lay->w[l] + j;
          const float *pt = lay->points + 2 * a;
          if (pt[0] > b[0] && pt[0] < b[2] && pt[1] > b[1] && pt[1] < b[3]) need[a] = 1;
        }
    }
  }
}

/* Phase 2 of one image: decode, assign, sum the target scores. */
static void phase2_image(const y8_run *r, size_t i) {
  const y8_layout *lay = r->lay;
  const detloss_yolov8_image *im = &r->images[i];
  y8_work *w = &r->w[i];
  const size_t A = lay->A, R = lay->R, G = im->num_gt;
  float *boxes = calloc(4 * A, sizeof *boxes);
  uint8_t *need = malloc(A);
  uint8_t *valid = malloc(G ? G : 1);
  float *tmp = malloc(R * sizeof *tmp);
  w->gt_index = malloc(A * sizeof *w->gt_index);
  w->tscore = malloc(A * sizeof *w->tscore);
  w->partials = malloc((dl_num_blocks(A, r->per_block) + 1) * sizeof *w->partials);
  if (!boxes || !need || !valid || !tmp || !w->gt_index || !w->tscore || !w->partials) {
    w->st = dl_fail(&w->err, DETLOSS_ERR_NOMEM, "workspace", "out of memory");
    goto done;
  }
  w->st = dl_check_finite_par(im->pred_distri, A * 4 * R, "pred_distri", r->inner_threads, &w->err);
  if (w->st != DETLOSS_OK) {
    dl_head_prefix(&w->err, i);
    goto done;
  }
  /* ultralytics mask_gt = gt_bboxes.sum(-1) > 0 (float32 sum, left to right) */
  for (size_t g = 0; g < G; g++) {
    const float *b = im->gt + 4 * g;
    valid[g] = ((b[0] + b[1]) + b[2]) + b[3] > 0.0f;
  }
  mark_inside(lay, im, valid, need);
  for (size_t a = 0; a < A; a++) {
    if (!need[a]) continue;
    const float *z = im->pred_distri + a * 4 * R;
    float s = lay->stride[a];
    float ax = lay->points[2 * a] / s, ay = lay->points[2 * a + 1] / s;
    float d[4];
    decode_anchor_f(z, R, tmp, d);
    /* dist2bbox in grid units, then * stride (the assigner's pd_bboxes) */
    boxes[4 * a + 0] = (ax - d[0]) * s;
    boxes[4 * a + 1] = (ay - d[1]) * s;
    boxes[4 * a + 2] = (ax + d[2]) * s;
    boxes[4 * a + 3] = (ay + d[3]) * s;
  }
  detloss_task_aligned_options to = detloss_task_aligned_options_default();
  to.topk = r->o->topk;
  to.alpha = r->o->alpha;
  to.beta = r->o->beta;
  dl_assign_input in;
  memset(&in, 0, sizeof in);
  in.num_anchors = A;
  in.points = lay->points;
  in.level_counts = lay->counts;
  in.num_levels = lay->L;
  in.num_gt = G;
  in.gt = im->gt;
  in.gt_labels = im->labels;
  in.num_classes = lay->C;
  in.pred_scores = im->pred_scores;
  in.pred_boxes = boxes;
  in.num_threads = r->inner_threads;
  in.gt_valid = valid;
  in.scores_are_logits = 1;
  dl_assign_result out;
  memset(&out, 0, sizeof out);
  out.gt_index = w->gt_index;
  out.target_scores = w->tscore;
  w->st = dl_assign_task_aligned(&in, &to, &out, &w->err);
  if (w->st != DETLOSS_OK) {
    /* the assigner checks the logits (finite): its "scores[k]" is our "pred_scores[k]" */
    if (strncmp(w->err.where, "scores", 6) == 0) {
      char renamed[DETLOSS_WHERE_MAX];
      snprintf(renamed, sizeof renamed, "pred_%s", w->err.where);
      memcpy(w->err.where, renamed, sizeof renamed);
    }
    dl_head_prefix(&w->err, i);
    goto done;
  }
  size_t nfg = 0;
  double ts = 0.0;
  for (size_t a = 0; a < A; a++) {
    if (w->gt_index[a] < 0) continue;
    nfg++;
    ts += (double)w->tscore[a];
  }
  w->num_fg = nfg;
  w->tsum = ts;
done:
  free(boxes);
  free(need);
  free(valid);
  free(tmp);
}

static void phase2(void *vr, size_t i0, size_t i1, size_t blk) {
  (void)blk;
  for (size_t i = i0; i < i1; i++) phase2_image((const y8_run *)vr, i);
}

/* Phase 3: the BCE pass (Y2). */

typedef struct bce_ctx {
  const float *logits; /* [A][C] */
  float *grad;         /* [A][C] or NULL */
  const int64_t *gt_index;
  const int64_t *labels;
  const float *tscore;
  size_t C;
  float scale;
  double *partials;
} bce_ctx;

/* Rows [a0, a1): lane sums acc[8] of BCE-with-logits against the target
 * y = n(a) at (a, label), 0 elsewhere (loss_kernels.h dl_bce_logits_elem). */
DL_VEC_FN DL_VEC_CLONES static void bce_rows(const bce_ctx *c, size_t a0, size_t a1, double *acc) {
  const size_t C = c->C;
  float lb[BCE_CHUNK], gb[BCE_CHUNK];
  for (size_t a = a0; a < a1; a++) {
    int64_t m = c->gt_index[a];
    int64_t tc_all = m >= 0 ? c->labels[m] : -1;
    float ts = m >= 0 ? c->tscore[a] : 0.0f;
    const float *xrow = c->logits + a * C;
    float *grow = c->grad ? c->grad + a * C : NULL;
    for (size_t c0 = 0; c0 < C; c0 += BCE_CHUNK) {
      int mm = (int)(C - c0 < BCE_CHUNK ? C - c0 : BCE_CHUNK);
      int tc =
          (tc_all >= (int64_t)c0 && tc_all < (int64_t)c0 + mm) ? (int)(tc_all - (int64_t)c0) : -1;
      float *gout = grow ? grow + c0 : gb;
      const float *x = xrow + c0;
      const float scale = c->scale;
      for (int k = 0; k < mm; k++) {
        float gk;
        dl_bce_logits_elem(x[k], k == tc ? ts : 0.0f, 1.0f, &lb[k], &gk);
        gout[k] = gk * scale;
      }
      int full = mm & ~7;
      for (int k = 0; k < full; k += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)lb[k + j];
      for (int k = full; k < mm; k++) acc[k - full] += (double)lb[k];
    }
  }
}

static void bce_block(void *vc, size_t a0, size_t a1, size_t blk) {
  const bce_ctx *c = (const bce_ctx *)vc;
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  bce_rows(c, a0, a1, acc);
  double s = 0.0;
  for (int j = 0; j < 8; j++) s += acc[j];
  c->partials[blk] = s;
}

/* Phase 3: box and DFL terms of the foreground anchors (Y3)-(Y8). */
static void box_terms(const y8_run *r, size_t i, int write_grad) {
  const y8_layout *lay = r->lay;
  const detloss_yolov8_image *im = &r->images[i];
  y8_work *w = &r->w[i];
  const size_t A = lay->A, R = lay->R, R4 = 4 * R;
  float *gd = write_grad ? im->grad_pred_distri : NULL;
  double p[4][YOLOV8_MAX_REG];
  const float tmax = (float)((double)(R - 1) - 0.01); /* bbox2dist: reg_max - 1 - 0.01 */
  double box_sum = 0.0, dfl_sum = 0.0;
  for (size_t a = 0; a < A; a++) {
    float *grow = gd ? gd + a * R4 : NULL;
    if (w->gt_index[a] < 0) {
      if (grow) memset(grow, 0, R4 * sizeof *grow);
      continue;
    }
    const float *z = im->pred_distri + a * R4;
    const float *gb = im->gt + 4 * (size_t)w->gt_index[a];
    const double s = lay->stride[a];
    const double ax = (double)lay->points[2 * a] / s, ay = (double)lay->points[2 * a + 1] / s;
    const double wa = (double)w->tscore[a];
    double d[4];
    for (int k = 0; k < 4; k++) d[k] = side_expect_d(z + (size_t)k * R, R, p[k]);
    const double pb[4] = {ax - d[0], ay - d[1], ax + d[2], ay + d[3]};
    const double tb[4] = {(double)gb[0] / s, (double)gb[1] / s, (double)gb[2] / s,
                          (double)gb[3] / s}; /* target_bboxes / stride */
    double gc[4];
    double ciou = dl_ciou_ultralytics(pb, tb, NAN, grow ? gc : NULL);
    box_sum += wa * (1.0 - ciou);
    /* DFL targets (bbox2dist): ltrb distances clamped to [0, R - 1.01] (Y6) */
    const double t[4] = {ax - tb[0], ay - tb[1], tb[2] - ax, tb[3] - ay};
    double dfl = 0.0;
    for (int k = 0; k < 4; k++) {
      double tk = t[k] < 0.0 ? 0.0 : t[k];
      float tf = (float)tk > tmax ? tmax : (float)tk;
      dfl += dl_distribution_focal_row(z + (size_t)k * R, R, tf, wa * r->scale_dfl / 4.0,
                                       grow ? grow + (size_t)k * R : NULL);
    }
    dfl_sum += wa * (dfl / 4.0);
    if (grow) {
      /* d(1 - CIoU)/d box, box = (ax - d_l, ay - d_t, ax + d_r, ay + d_b),
       * d d_k / d z_j = p_j (j - d_k) (Y4) */
      const double sgn[4] = {-1.0, -1.0, 1.0, 1.0};
      for (int k = 0; k < 4; k++) {
        double gdk = -gc[k] * sgn[k] * wa * r->scale_box;
        float *gk = grow + (size_t)k * R;
        for (size_t j = 0; j < R; j++)
          gk[j] = (float)((double)gk[j] + gdk * p[k][j] * ((double)j - d[k]));
      }
    }
  }
  w->box_sum = box_sum;
  w->dfl_sum = dfl_sum;
}

static void phase3_image(const y8_run *r, size_t i) {
  const y8_layout *lay = r->lay;
  const detloss_yolov8_image *im = &r->images[i];
  y8_work *w = &r->w[i];
  bce_ctx c;
  c.logits = im->pred_scores;
  c.grad = im->grad_pred_scores;
  c.gt_index = w->gt_index;
  c.labels = im->labels;
  c.tscore = w->tscore;
  c.C = lay->C;
  c.scale = (float)r->scale_cls;
  c.partials = w->partials;
  dl_parallel_blocks(lay->A, r->per_block, r->inner_threads, bce_block, &c);
  w->cls_sum = dl_sum_blocks(w->partials, dl_num_blocks(lay->A, r->per_block));
  box_terms(r, i, 1);
  if (im->assigned_gt) memcpy(im->assigned_gt, w->gt_index, lay->A * sizeof *w->gt_index);
}

static void phase3(void *vr, size_t i0, size_t i1, size_t blk) {
  (void)blk;
  for (size_t i = i0; i < i1; i++) phase3_image((const y8_run *)vr, i);
}

/* Validation (phase 1). */

static detloss_status check_gain(float v, const char *name, detloss_error *err) {
  DL_RETURN_ERROR_IF(!(isfinite(v) && v >= 0.0f), err, DETLOSS_ERR_RANGE, name,
                     "must be a finite number >= 0, got %g", (double)v);
  return DETLOSS_OK;
}

static detloss_status check_options(const detloss_yolov8_options *o, detloss_error *err) {
  DL_RETURN_ERROR_IF(o->num_levels < 1 || o->num_levels > DETLOSS_YOLOV8_MAX_LEVELS, err,
                     DETLOSS_ERR_RANGE, "num_levels", "is %zu, expected 1 to %d", o->num_levels,
                     DETLOSS_YOLOV8_MAX_LEVELS);
  for (size_t l = 0; l < o->num_levels; l++) {
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "strides[%zu]", l);
    DL_RETURN_ERROR_IF(!(isfinite(o->strides[l]) && o->strides[l] > 0.0f), err, DETLOSS_ERR_RANGE,
                       where, "must be a finite number > 0, got %g", (double)o->strides[l]);
  }
  DL_RETURN_ERROR_IF(o->reg_max < 2 || o->reg_max > YOLOV8_MAX_REG, err, DETLOSS_ERR_RANGE,
                     "reg_max", "is %zu, expected 2 to %d bins", o->reg_max, YOLOV8_MAX_REG);
  DL_RETURN_ERROR_IF(o->topk < 1, err, DETLOSS_ERR_RANGE, "topk", "must be >= 1, got %lld",
                     (long long)o->topk);
  DL_RETURN_ERROR_IF(!(isfinite(o->alpha) && o->alpha >= 0.0f), err, DETLOSS_ERR_RANGE, "alpha",
                     "must be finite and >= 0, got %g", (double)o->alpha);
  DL_RETURN_ERROR_IF(!(isfinite(o->beta) && o->beta > 0.0f), err, DETLOSS_ERR_RANGE, "beta",
                     "must be finite and > 0, got %g", (double)o->beta);
  DL_FORWARD_IF_ERROR(check_gain(o->gain_box, "gain_box", err));
  DL_FORWARD_IF_ERROR(check_gain(o->gain_cls, "gain_cls", err));
  DL_FORWARD_IF_ERROR(check_gain(o->gain_dfl, "gain_dfl", err));
  DL_RETURN_ERROR_IF(!(isfinite(o->target_score_sum) && o->target_score_sum >= 0.0), err,
                     DETLOSS_ERR_RANGE, "target_score_sum",
                     "must be 0 (this batch's sum) or a finite number > 0, got %g",
                     o->target_score_sum);
  return DETLOSS_OK;
}

/* The layout from the options and the image size: counts, points, strides. */
static detloss_status make_layout(size_t H, size_t W, size_t C, const detloss_yolov8_options *o,
                                  y8_layout *lay, detloss_error *err) {
  memset(lay, 0, sizeof *lay);
  lay->L = o->num_levels;
  lay->R = o->reg_max;
  lay->C = C;
  size_t A = 0;
  for (size_t l = 0; l < lay->L; l++) {
    double s = o->strides[l];
    double hq = (double)H / s, wq = (double)W / s;
    if (hq != floor(hq) || wq != floor(wq) || hq > 1e9 || wq > 1e9) {
      const char *name = hq != floor(hq) || hq > 1e9 ? "image_h" : "image_w";
      return dl_fail(err, DETLOSS_ERR_SHAPE, name, "is %zu, not a multiple of strides[%zu] = %g",
                     hq != floor(hq) || hq > 1e9 ? H : W, l, s);
    }
    lay->h[l] = (size_t)hq;
    lay->w[l] = (size_t)wq;
    lay->counts[l] = lay->h[l] * lay->w[l];
    A += lay->counts[l];
  }
  DL_RETURN_ERROR_IF(A > DL_MAX_ELEMS / (4 * lay->R + C + 4), err, DETLOSS_ERR_SHAPE, "image_h",
                     "%zu anchors is more than can be addressed", A);
  DL_RETURN_ERROR_IF((uint64_t)o->topk > (uint64_t)A, err, DETLOSS_ERR_SHAPE, "topk",
                     "is %lld but the layout has only %zu anchor points", (long long)o->topk, A);
  lay->A = A;
  lay->points = malloc((A ? 2 * A : 1) * sizeof *lay->points);
  lay->stride = malloc((A ? A : 1) * sizeof *lay->stride);
  if (!lay->points || !lay->stride) {
    free(lay->points);
    free(lay->stride);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "workspace", "out of memory");
  }
  size_t a = 0;
  for (size_t l = 0; l < lay->L; l++) {
    float s = o->strides[l];
    for (size_t y = 0; y < lay->h[l]; y++)
      for (size_t x = 0; x < lay->w[l]; x++, a++) {
        /* make_anchors: (arange + 0.5) in float32, times the stride */
        lay->points[2 * a] = ((float)x + 0.5f) * s;
        lay->points[2 * a + 1] = ((float)y + 0.5f) * s;
        lay->stride[a] = s;
      }
  }
  return DETLOSS_OK;
}

static detloss_status check_image(const y8_layout *lay, const detloss_yolov8_image *im, size_t i,
                                  int nt, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const size_t A = lay->A, C = lay->C, G = im->num_gt;
#define Y8_NULL(ptr, cnt, name)                                                                    \
  if ((cnt) > 0 && (ptr) == NULL) {                                                                \
    dl_head_where(where, sizeof where, i, "." name);                                               \
    return dl_fail(err, DETLOSS_ERR_NULL, where, "is NULL");                                       \
  }
  Y8_NULL(im->pred_distri, A, "pred_distri");
  Y8_NULL(im->pred_scores, A, "pred_scores");
  Y8_NULL(im->gt, G, "gt");
  Y8_NULL(im->labels, G, "labels");
#undef Y8_NULL
  DL_RETURN_ERROR_IF(G > DL_MAX_ELEMS / 4, err, DETLOSS_ERR_SHAPE, "num_gt",
                     "%zu boxes is more than can be addressed", G);
  /* pred_distri and pred_scores are checked (finite) in phase 2, inside the images'
   * parallel region (the assigner checks the logits: one pass over A x C), before any
   * output is written */
  (void)nt;
  detloss_status st = dl_check_coords(im->gt, G, "gt", err);
  if (st != DETLOSS_OK) {
    dl_head_prefix(err, i);
    return st;
  }
  return dl_head_check_labels(im->labels, G, C, i, err);
}

/* Spans: result, then per image 5 inputs and 3 outputs. */
typedef struct y8_spans {
  const detloss_yolov8_image *images;
  size_t n;
  const y8_layout *lay;
  const detloss_yolov8_result *result;
} y8_spans;

#define Y8_IMAGE_SPANS 8

static void y8_span(const void *vctx, size_t k, dl_span *s) {
  const y8_spans *c = (const y8_spans *)vctx;
  if (k == 0) {
    *s = dl_span_of(c->result, 1, sizeof *c->result, "result", 1);
    return;
  }
  k -= 1;
  size_t i = k / Y8_IMAGE_SPANS;
  const detloss_yolov8_image *im = &c->images[i];
  const size_t A = c->lay->A, R4 = 4 * c->lay->R, C = c->lay->C, G = im->num_gt;
  switch (k % Y8_IMAGE_SPANS) {
    case 0: *s = dl_span_of(im->gt, G, 4 * sizeof(float), "gt", 0); break;
    case 1: *s = dl_span_of(im->labels, G, sizeof(int64_t), "labels", 0); break;
    case 2: *s = dl_span_of(im->pred_distri, A * R4, sizeof(float), "pred_distri", 0); break;
    case 3: *s = dl_span_of(im->pred_scores, A * C, sizeof(float), "pred_scores", 0); break;
    case 4: *s = dl_span_of(c->images, c->n, sizeof *c->images, "images", 0); break;
    case 5:
      *s = dl_span_of(im->grad_pred_distri, A * R4, sizeof(float), "grad_pred_distri", 1);
      break;
    case 6:
      *s = dl_span_of(im->grad_pred_scores, A * C, sizeof(float), "grad_pred_scores", 1);
      break;
    default: *s = dl_span_of(im->assigned_gt, A, sizeof(int64_t), "assigned_gt", 1); break;
  }
  if (k % Y8_IMAGE_SPANS != 4) s->image = i;
}

static void free_work(y8_work *w, size_t n) {
  if (w == NULL) return;
  for (size_t i = 0; i < n; i++) {
    free(w[i].gt_index);
    free(w[i].tscore);
    free(w[i].partials);
  }
  free(w);
}

detloss_status detloss_yolov8_loss(size_t image_h, size_t image_w, size_t num_classes,
                                   const detloss_yolov8_image *images, size_t num_images,
                                   detloss_yolov8_result *result, const detloss_yolov8_options *opt,
                                   detloss_error *err) {
  const detloss_yolov8_options o = opt ? *opt : detloss_yolov8_options_default();
  DL_RETURN_ERROR_IF(result == NULL, err, DETLOSS_ERR_NULL, "result", "is NULL");
  DL_RETURN_ERROR_IF(num_images == 0, err, DETLOSS_ERR_SHAPE, "num_images",
                     "is 0: an empty batch has no loss");
  DL_RETURN_ERROR_IF(images == NULL, err, DETLOSS_ERR_NULL, "images", "is NULL");
  DL_RETURN_ERROR_IF(num_classes == 0, err, DETLOSS_ERR_SHAPE, "num_classes",
                     "is 0, expected at least one class");
  DL_FORWARD_IF_ERROR(check_options(&o, err));
  y8_layout lay;
  DL_FORWARD_IF_ERROR(make_layout(image_h, image_w, num_classes, &o, &lay, err));
  detloss_status st = DETLOSS_OK;
  for (size_t i = 0; i < num_images && st == DETLOSS_OK; i++)
    st = check_image(&lay, &images[i], i, o.num_threads, err);
  if (st == DETLOSS_OK) {
    y8_spans sp = {images, num_images, &lay, result};
    st = dl_check_overlaps_fn(1 + Y8_IMAGE_SPANS * num_images, y8_span, &sp, err);
  }
  y8_work *w = NULL;
  if (st == DETLOSS_OK) {
    w = calloc(num_images, sizeof *w);
    if (w == NULL) st = dl_fail(err, DETLOSS_ERR_NOMEM, "workspace", "out of memory");
  }
  if (st != DETLOSS_OK) {
    free(lay.points);
    free(lay.stride);
    return st;
  }
  y8_run r;
  memset(&r, 0, sizeof r);
  r.lay = &lay;
  r.o = &o;
  r.images = images;
  r.w = w;
  r.per_block = CLS_BLOCK_ELEMS / num_classes > 0 ? CLS_BLOCK_ELEMS / num_classes : 1;
  int nt = dl_thread_count(o.num_threads);
  int outer = nt > 1 && num_images >= (size_t)nt;
  int outer_threads = outer ? o.num_threads : 1;
  r.inner_threads = outer ? 1 : o.num_threads;

  /* Phase 2: decode and assign (scratch only). */
  dl_parallel_blocks(num_images, 1, outer_threads, phase2, &r);
  for (size_t i = 0; i < num_images; i++) {
    if (w[i].st != DETLOSS_OK) {
      st = w[i].st;
      if (err) *err = w[i].err;
      break;
    }
  }
  if (st == DETLOSS_OK) {
    /* Phase 3: S = max(sum of target scores, 1) (Y2), then the passes. */
    double tsum = 0.0;
    size_t nfg = 0;
    for (size_t i = 0; i < num_images; i++) {
      tsum += w[i].tsum;
      nfg += w[i].num_fg;
    }
    double S = o.target_score_sum > 0.0 ? o.target_score_sum : tsum;
    if (S < 1.0) S = 1.0;
    const double B = (double)num_images;
    r.scale_cls = (double)o.gain_cls * B / S;
    r.scale_box = (double)o.gain_box * B / S;
    r.scale_dfl = (double)o.gain_dfl * B / S;
    dl_parallel_blocks(num_images, 1, outer_threads, phase3, &r);
    double cls = 0.0, box = 0.0, dfl = 0.0;
    for (size_t i = 0; i < num_images; i++) {
      cls += w[i].cls_sum;
      box += w[i].box_sum;
      dfl += w[i].dfl_sum;
    }
    detloss_yolov8_result res;
    memset(&res, 0, sizeof res);
    double lb = (double)o.gain_box * box / S, lc = (double)o.gain_cls * cls / S,
           ld = (double)o.gain_dfl * dfl / S;
    res.loss_box = (float)lb;
    res.loss_cls = (float)lc;
    res.loss_dfl = (float)ld;
    res.loss = (float)((lb + lc + ld) * B);
    res.target_score_sum = tsum;
    res.normalizer = S;
    res.num_fg = nfg;
    res.nonfinite = !isfinite(res.loss);
    *result = res;
  }
  free_work(w, num_images);
  free(lay.points);
  free(lay.stride);
  return st;
}
