/*
 * hungarian.c - DETR's Hungarian matcher: the per-image cost block and its
 * minimum-cost assignment (lsa.c), per image and batched, plus the public
 * solver detloss_linear_sum_assignment() and the "hungarian" assigner of the
 * assign interface (assign.h). Formulas and sources: docs/math/hungarian.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "internal.h"
#include "lsa.h"
#include "parallel.h"

detloss_hungarian_options detloss_hungarian_options_default(void) {
  detloss_hungarian_options o = DETLOSS_HUNGARIAN_OPTIONS_INIT;
  return o;
}

detloss_hungarian_options detloss_hungarian_options_focal(void) {
  detloss_hungarian_options o = DETLOSS_HUNGARIAN_OPTIONS_INIT;
  o.semantics = DETLOSS_HUNGARIAN_FOCAL;
  o.cost_class = 2.0f; /* Deformable-DETR main.py set_cost_class 2; DINO, RT-DETR the same */
  return o;
}

detloss_status detloss_linear_sum_assignment(const double *cost, size_t num_rows, size_t num_cols,
                                             int64_t *row_ind, int64_t *col_ind,
                                             detloss_error *err) {
  size_t nr = num_rows, nc = num_cols, n, k = nr < nc ? nr : nc;
  DL_RETURN_ERROR_IF(dl_mul_overflow(nr, nc, &n) || n > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE,
                     "cost", "%zu x %zu is too large", nr, nc);
  DL_FORWARD_IF_ERROR(dl_check_ptr(cost, n, "cost", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(row_ind, k, "row_ind", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(col_ind, k, "col_ind", err));
  dl_span sp[3] = {dl_span_of(cost, n, sizeof(double), "cost", 0),
                   dl_span_of(row_ind, k, sizeof(int64_t), "row_ind", 1),
                   dl_span_of(col_ind, k, sizeof(int64_t), "col_ind", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 3, err));
  /* scipy: NaN or -inf is "invalid numeric entries"; +inf forbids the pair. */
  for (size_t i = 0; i < n; i++)
    if (isnan(cost[i]) || cost[i] == -HUGE_VAL) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "cost[%zu][%zu]", i / nc, i % nc);
      return dl_fail(err, DETLOSS_ERR_NONFINITE, where, "is %s (only finite or +inf costs)",
                     isnan(cost[i]) ? "NaN" : "-inf");
    }
  if (k == 0) return DETLOSS_OK;
  size_t bytes = dl_lsa_workspace_bytes(nr, nc);
  DL_RETURN_ERROR_IF(bytes == SIZE_MAX, err, DETLOSS_ERR_SHAPE, "cost", "%zu x %zu is too large",
                     nr, nc);
  void *work = malloc(bytes);
  int64_t *pairs = malloc(2 * k * sizeof(int64_t));
  if (!work || !pairs) {
    free(work);
    free(pairs);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "cost", "out of memory (%zu bytes of scratch)", bytes);
  }
  /* Solved into scratch so that an infeasible matrix leaves the outputs untouched. */
  int rc = dl_lsa_solve(cost, nr, nc, pairs, pairs + k, work);
  if (rc == 0) {
    memcpy(row_ind, pairs, k * sizeof(int64_t));
    memcpy(col_ind, pairs + k, k * sizeof(int64_t));
  }
  free(work);
  free(pairs);
  DL_RETURN_ERROR_IF(rc != 0, err, DETLOSS_ERR_RANGE, "cost",
                     "is infeasible: no complete matching avoids the +inf entries");
  return DETLOSS_OK;
}

/* The options check of the registry row: faults named under at. */
detloss_status dl_hungarian_check_options(const void *options, const char *at, detloss_error *err) {
  if (options == NULL) return DETLOSS_OK;
  const detloss_hungarian_options *o = (const detloss_hungarian_options *)options;
  char w[DETLOSS_WHERE_MAX];
  DL_RETURN_ERROR_IF(o->semantics != DETLOSS_HUNGARIAN_DETR &&
                         o->semantics != DETLOSS_HUNGARIAN_FOCAL,
                     err, DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "semantics"),
                     "unknown value %d", (int)o->semantics);
  const float wt[3] = {o->cost_class, o->cost_bbox, o->cost_giou};
  static const char *const wn[3] = {"cost_class", "cost_bbox", "cost_giou"};
  for (int k = 0; k < 3; k++)
    DL_RETURN_ERROR_IF(!(wt[k] >= 0.0f && wt[k] <= 3.0e38f), err, DETLOSS_ERR_RANGE,
                       dl_assign_option_where(w, at, wn[k]), "must be finite and >= 0, got %g",
                       (double)wt[k]);
  if (o->semantics == DETLOSS_HUNGARIAN_FOCAL) {
    DL_RETURN_ERROR_IF(!(o->focal_alpha >= 0.0f && o->focal_alpha <= 1.0f), err, DETLOSS_ERR_RANGE,
                       dl_assign_option_where(w, at, "focal_alpha"), "must be in [0, 1], got %g",
                       (double)o->focal_alpha);
    DL_RETURN_ERROR_IF(!(o->focal_gamma >= 0.0f && o->focal_gamma <= 3.0e38f), err,
                       DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "focal_gamma"),
                       "must be finite and >= 0, got %g", (double)o->focal_gamma);
  }
  return DETLOSS_OK;
}

static detloss_status check_options(const detloss_hungarian_options *o, detloss_error *err) {
  return dl_hungarian_check_options(o, "", err);
}

/* Classes a gt label may take: K = num_logits - 1 with DETR's no-object column. */
static size_t num_classes_of(const detloss_hungarian_options *o, size_t num_logits) {
  return o->semantics == DETLOSS_HUNGARIAN_DETR ? num_logits - 1 : num_logits;
}

static detloss_status check_num_logits(const detloss_hungarian_options *o, size_t num_logits,
                                       detloss_error *err) {
  size_t lo = o->semantics == DETLOSS_HUNGARIAN_DETR ? 2 : 1;
  DL_RETURN_ERROR_IF(num_logits < lo, err, DETLOSS_ERR_RANGE, "num_logits",
                     "is %zu; %s needs at least %zu (%s)", num_logits, lo == 2 ? "detr" : "focal",
                     lo, lo == 2 ? "K classes + the no-object column" : "K classes");
  return DETLOSS_OK;
}

/* Index suffix of query q of image b: "[q]" (single image) or "[b][q]". */
static void query_where(char *buf, size_t cap, const char *name, size_t b, size_t q) {
  if (b == DL_NO_IMAGE)
    snprintf(buf, cap, "%s[%zu]", name, q);
  else
    snprintf(buf, cap, "%s[%zu][%zu]", name, b, q);
}

/* Boxes (cx, cy, w, h): finite, w > 0 and h > 0 (DETR asserts x2 >= x1 on the
 * corners; w = h = 0 on both boxes would make GIoU 0/0). */
static detloss_status check_cxcywh(const float *boxes, size_t n, const char *name, size_t b,
                                   size_t off, detloss_error *err) {
  for (size_t i = 0; i < n; i++) {
    const float *x = boxes + 4 * i;
    char where[DETLOSS_WHERE_MAX];
    if (b == DL_NO_IMAGE)
      snprintf(where, sizeof where, "%s[%zu]", name, off + i);
    else
      query_where(where, sizeof where, name, b, i);
    for (int k = 0; k < 4; k++)
      DL_RETURN_ERROR_IF(!isfinite(x[k]), err, DETLOSS_ERR_NONFINITE, where,
                         "coordinate %d is not finite", k);
    DL_RETURN_ERROR_IF(!(x[2] > 0.0f && x[3] > 0.0f), err, DETLOSS_ERR_RANGE, where,
                       "(cx, cy, w, h) needs w > 0 and h > 0, got w = %g, h = %g", (double)x[2],
                       (double)x[3]);
  }
  return DETLOSS_OK;
}

/* One image's inputs: logits finite, boxes valid, labels in [0, K). b is the
 * image (DL_NO_IMAGE for the single-image call), gt_off the first gt row. */
static detloss_status check_image(const float *logits, size_t Q, size_t nl, const float *boxes,
                                  const float *gt, const int64_t *labels, size_t G, size_t K,
                                  size_t b, size_t gt_off, detloss_error *err) {
  for (size_t q = 0; q < Q; q++)
    for (size_t k = 0; k < nl; k++)
      if (!isfinite(logits[q * nl + k])) {
        char where[DETLOSS_WHERE_MAX], w2[DETLOSS_WHERE_MAX];
        query_where(where, sizeof where, "logits", b, q);
        snprintf(w2, sizeof w2, "%s[%zu]", where, k);
        return dl_fail(err, DETLOSS_ERR_NONFINITE, w2, "is not finite");
      }
  DL_FORWARD_IF_ERROR(check_cxcywh(boxes, Q, "pred_boxes", b, 0, err));
  DL_FORWARD_IF_ERROR(check_cxcywh(gt, G, "gt", DL_NO_IMAGE, gt_off, err));
  for (size_t g = 0; g < G; g++)
    if (labels[g] < 0 || (uint64_t)labels[g] >= (uint64_t)K) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "gt_labels[%zu]", gt_off + g);
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %lld, expected a class in [0, %zu)",
                     (long long)labels[g], K);
    }
  return DETLOSS_OK;
}

/*
 * cost_block() - C[q][g] for one image, float64 (DETR models/matcher.py:58-77):
 *   cls  DETR:  -softmax(x_q)[l_g]  (max-shifted: exp(x - m) / sum exp(x - m))
 *        FOCAL: p = 1 / (1 + exp(-x_q[l_g])),
 *               a (1-p)^g (-ln(p + 1e-8)) - (1-a) p^g (-ln(1 - p + 1e-8))
 *               (Deformable-DETR matcher.py:73-81, eps 1e-8)
 *   l1   = |cx - cx'| + |cy - cy'| + |w - w'| + |h - h'|  (torch.cdist p = 1)
 *   giou = I/U - (E - U)/E on corners (cx -+ w/2, cy -+ h/2), no eps
 *          (util/box_ops.py generalized_box_iou; Rezatofighi et al. 2019)
 *   C    = w_bbox l1 + w_class cls + w_giou (-giou)   (the order of matcher.py:77)
 * rowbuf: 2 doubles per query (softmax max and sum).
 */
static void cost_block(const float *logits, size_t Q, size_t nl, const float *boxes,
                       const float *gt, const int64_t *labels, size_t G,
                       const detloss_hungarian_options *o, double *cost) {
  const double wc = o->cost_class, wb = o->cost_bbox, wg = o->cost_giou;
  const double alpha = o->focal_alpha, gamma = o->focal_gamma;
  const int focal = o->semantics == DETLOSS_HUNGARIAN_FOCAL;
  for (size_t q = 0; q < Q; q++) {
    const float *x = logits + q * nl;
    double m = 0.0, s = 0.0;
    if (!focal) {
      m = x[0];
      for (size_t k = 1; k < nl; k++)
        if ((double)x[k] > m) m = x[k];
      for (size_t k = 0; k < nl; k++) s += exp((double)x[k] - m);
    }
    const float *pb = boxes + 4 * q;
    const double pcx = pb[0], pcy = pb[1], pw = pb[2], ph = pb[3];
    const double px1 = pcx - 0.5 * pw, py1 = pcy - 0.5 * ph;
    const double px2 = pcx + 0.5 * pw, py2 = pcy + 0.5 * ph;
    const double parea = (px2 - px1) * (py2 - py1);
    double *row = cost + q * G;
    for (size_t g = 0; g < G; g++) {
      double xl = x[labels[g]], cls;
      if (focal) {
        double p = 1.0 / (1.0 + exp(-xl));
        double pos = alpha * pow(1.0 - p, gamma) * (-log(p + 1e-8));
        double neg = (1.0 - alpha) * pow(p, gamma) * (-log(1.0 - p + 1e-8));
        cls = pos - neg;
      } else {
        cls = -(exp(xl - m) / s);
      }
      const float *gb = gt + 4 * g;
      const double gcx = gb[0], gcy = gb[1], gw = gb[2], gh = gb[3];
      double l1 = fabs(pcx - gcx) + fabs(pcy - gcy) + fabs(pw - gw) + fabs(ph - gh);
      const double gx1 = gcx - 0.5 * gw, gy1 = gcy - 0.5 * gh;
      const double gx2 = gcx + 0.5 * gw, gy2 = gcy + 0.5 * gh;
      double iw = fmin(px2, gx2) - fmax(px1, gx1), ih = fmin(py2, gy2) - fmax(py1, gy1);
      double inter = (iw > 0.0 ? iw : 0.0) * (ih > 0.0 ? ih : 0.0);
      double uni = parea + (gx2 - gx1) * (gy2 - gy1) - inter;
      double ew = fmax(px2, gx2) - fmin(px1, gx1), eh = fmax(py2, gy2) - fmin(py1, gy1);
      double encl = (ew > 0.0 ? ew : 0.0) * (eh > 0.0 ? eh : 0.0);
      double giou = inter / uni - (encl - uni) / encl;
      row[g] = wb * l1 + wc * cls + wg * (-giou);
    }
  }
}

/* Solves one image's block (cost already filled) into the pair outputs;
 * work: dl_lsa_workspace_bytes(Q, G). Finite costs are always feasible. */
static void solve_block(const double *cost, size_t Q, size_t G, int64_t *pi, int64_t *gi,
                        double *total, void *work) {
  int rc = dl_lsa_solve(cost, Q, G, pi, gi, work);
  DL_ASSERT(rc == 0);
  (void)rc;
  if (total) {
    size_t k = Q < G ? Q : G;
    double t = 0.0;
    for (size_t i = 0; i < k; i++) t += cost[(size_t)pi[i] * G + (size_t)gi[i]];
    *total = t;
  }
}

static detloss_status check_single(const float *logits, size_t Q, size_t nl, const float *boxes,
                                   const float *gt, const int64_t *labels, size_t G,
                                   const detloss_hungarian_options *o, size_t *qg,
                                   detloss_error *err) {
  DL_FORWARD_IF_ERROR(check_options(o, err));
  DL_FORWARD_IF_ERROR(check_num_logits(o, nl, err));
  size_t ql;
  DL_RETURN_ERROR_IF(dl_mul_overflow(Q, nl, &ql) || ql > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE,
                     "logits", "%zu x %zu is too large", Q, nl);
  DL_RETURN_ERROR_IF(dl_mul_overflow(Q, G, qg) || *qg > DL_MAX_ELEMS || Q > DL_MAX_ELEMS / 4 ||
                         G > DL_MAX_ELEMS / 4,
                     err, DETLOSS_ERR_SHAPE, "cost", "%zu x %zu is too large", Q, G);
  DL_FORWARD_IF_ERROR(dl_check_ptr(logits, ql, "logits", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(boxes, Q, "pred_boxes", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(gt, G, "gt", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(labels, G, "gt_labels", err));
  return check_image(logits, Q, nl, boxes, gt, labels, G, num_classes_of(o, nl), DL_NO_IMAGE, 0,
                     err);
}

detloss_status detloss_hungarian_cost(const float *logits, size_t num_queries, size_t num_logits,
                                      const float *pred_boxes, const float *gt,
                                      const int64_t *gt_labels, size_t num_gt, double *cost,
                                      const detloss_hungarian_options *opt, detloss_error *err) {
  detloss_hungarian_options o = opt ? *opt : detloss_hungarian_options_default();
  size_t Q = num_queries, G = num_gt, nl = num_logits, qg = 0;
  DL_FORWARD_IF_ERROR(check_single(logits, Q, nl, pred_boxes, gt, gt_labels, G, &o, &qg, err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(cost, qg, "cost", err));
  dl_span sp[5] = {dl_span_of(logits, Q * nl, sizeof(float), "logits", 0),
                   dl_span_of(pred_boxes, Q, 4 * sizeof(float), "pred_boxes", 0),
                   dl_span_of(gt, G, 4 * sizeof(float), "gt", 0),
                   dl_span_of(gt_labels, G, sizeof(int64_t), "gt_labels", 0),
                   dl_span_of(cost, qg, sizeof(double), "cost", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 5, err));
  cost_block(logits, Q, nl, pred_boxes, gt, gt_labels, G, &o, cost);
  return DETLOSS_OK;
}

detloss_status detloss_hungarian_match(const float *logits, size_t num_queries, size_t num_logits,
                                       const float *pred_boxes, const float *gt,
                                       const int64_t *gt_labels, size_t num_gt, int64_t *pred_index,
                                       int64_t *gt_index, double *total_cost, double *cost_matrix,
                                       const detloss_hungarian_options *opt, detloss_error *err) {
  detloss_hungarian_options o = opt ? *opt : detloss_hungarian_options_default();
  size_t Q = num_queries, G = num_gt, nl = num_logits, qg = 0, k = Q < G ? Q : G;
  DL_FORWARD_IF_ERROR(check_single(logits, Q, nl, pred_boxes, gt, gt_labels, G, &o, &qg, err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(pred_index, k, "pred_index", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(gt_index, k, "gt_index", err));
  dl_span sp[8] = {dl_span_of(logits, Q * nl, sizeof(float), "logits", 0),
                   dl_span_of(pred_boxes, Q, 4 * sizeof(float), "pred_boxes", 0),
                   dl_span_of(gt, G, 4 * sizeof(float), "gt", 0),
                   dl_span_of(gt_labels, G, sizeof(int64_t), "gt_labels", 0),
                   dl_span_of(pred_index, k, sizeof(int64_t), "pred_index", 1),
                   dl_span_of(gt_index, k, sizeof(int64_t), "gt_index", 1),
                   dl_span_of(total_cost, 1, sizeof(double), "total_cost", 1),
                   dl_span_of(cost_matrix, qg, sizeof(double), "cost_matrix", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 8, err));
  size_t ws = dl_lsa_workspace_bytes(Q, G), cb;
  DL_RETURN_ERROR_IF(ws == SIZE_MAX || dl_mul_overflow(qg, sizeof(double), &cb) ||
                         dl_add_overflow(cb, ws, &cb),
                     err, DETLOSS_ERR_SHAPE, "cost", "%zu x %zu is too large", Q, G);
  double *work = malloc(cb ? cb : 1);
  DL_RETURN_ERROR_IF(!work, err, DETLOSS_ERR_NOMEM, "cost", "out of memory (%zu bytes)", cb);
  cost_block(logits, Q, nl, pred_boxes, gt, gt_labels, G, &o, work);
  solve_block(work, Q, G, pred_index, gt_index, total_cost, work + qg);
  if (total_cost && k == 0) *total_cost = 0.0;
  if (cost_matrix && qg > 0) memcpy(cost_matrix, work, qg * sizeof(double));
  free(work);
  return DETLOSS_OK;
}

typedef struct batch_ctx {
  size_t Q, nl;
  const float *logits, *boxes, *gt;
  const int64_t *labels;
  const size_t *counts;
  const size_t *gt_off, *pair_off, *ws_off; /* [B] each */
  unsigned char *work;
  int64_t *pi, *gi;
  const detloss_hungarian_options *o;
} batch_ctx;

/* Images [i0, i1): each its own block and solve, in its own scratch slice. */
static void batch_images(void *vctx, size_t i0, size_t i1, size_t block) {
  (void)block;
  const batch_ctx *c = vctx;
  for (size_t b = i0; b < i1; b++) {
    size_t G = c->counts[b];
    if (G == 0 || c->Q == 0) continue;
    double *cost = (double *)(void *)(c->work + c->ws_off[b]);
    cost_block(c->logits + b * c->Q * c->nl, c->Q, c->nl, c->boxes + b * c->Q * 4,
               c->gt + 4 * c->gt_off[b], c->labels + c->gt_off[b], G, c->o, cost);
    solve_block(cost, c->Q, G, c->pi + c->pair_off[b], c->gi + c->pair_off[b], NULL,
                cost + c->Q * G);
  }
}

static detloss_status batch_offsets(size_t B, size_t Q, const size_t *counts, size_t *gt_off,
                                    size_t *pair_off, size_t *ws_off, size_t *tot_gt,
                                    size_t *tot_pairs, size_t *tot_ws, detloss_error *err) {
  size_t g = 0, p = 0, w = 0;
  for (size_t b = 0; b < B; b++) {
    gt_off[b] = g;
    pair_off[b] = p;
    ws_off[b] = w;
    size_t G = counts[b], qg = 0, bytes = 0, lw = dl_lsa_workspace_bytes(Q, G);
    int bad = dl_add_overflow(g, G, &g) || g > DL_MAX_ELEMS / 4 || lw == SIZE_MAX ||
              dl_mul_overflow(Q, G, &qg) || dl_mul_overflow(qg, sizeof(double), &bytes) ||
              dl_add_overflow(bytes, lw, &bytes) || dl_add_overflow(w, bytes, &w);
    DL_RETURN_ERROR_IF(bad, err, DETLOSS_ERR_SHAPE, "gt_counts",
                       "the sizes overflow at image %zu (gt_counts[%zu] = %zu)", b, b, G);
    p += Q < G ? Q : G;
  }
  *tot_gt = g;
  *tot_pairs = p;
  *tot_ws = w;
  return DETLOSS_OK;
}

detloss_status detloss_hungarian_match_batch(size_t num_images, size_t num_queries,
                                             size_t num_logits, const float *logits,
                                             const float *pred_boxes, const float *gt,
                                             const int64_t *gt_labels, const size_t *gt_counts,
                                             int64_t *pred_index, int64_t *gt_index,
                                             const detloss_hungarian_options *opt,
                                             detloss_error *err) {
  detloss_hungarian_options o = opt ? *opt : detloss_hungarian_options_default();
  size_t B = num_images, Q = num_queries, nl = num_logits, bq, bql;
  DL_FORWARD_IF_ERROR(check_options(&o, err));
  DL_FORWARD_IF_ERROR(check_num_logits(&o, nl, err));
  DL_RETURN_ERROR_IF(dl_mul_overflow(B, Q, &bq) || bq > DL_MAX_ELEMS / 4 ||
                         dl_mul_overflow(bq, nl, &bql) || bql > DL_MAX_ELEMS,
                     err, DETLOSS_ERR_SHAPE, "logits", "%zu x %zu x %zu is too large", B, Q, nl);
  DL_FORWARD_IF_ERROR(dl_check_ptr(gt_counts, B, "gt_counts", err));
  size_t *offs = malloc(3 * (B ? B : 1) * sizeof(size_t));
  DL_RETURN_ERROR_IF(!offs, err, DETLOSS_ERR_NOMEM, "gt_counts", "out of memory");
  size_t tg = 0, tp = 0, tw = 0;
  detloss_status st =
      batch_offsets(B, Q, gt_counts, offs, offs + B, offs + 2 * B, &tg, &tp, &tw, err);
  if (st == DETLOSS_OK) st = dl_check_ptr(logits, bql, "logits", err);
  if (st == DETLOSS_OK) st = dl_check_ptr(pred_boxes, bq, "pred_boxes", err);
  if (st == DETLOSS_OK) st = dl_check_ptr(gt, tg, "gt", err);
  if (st == DETLOSS_OK) st = dl_check_ptr(gt_labels, tg, "gt_labels", err);
  if (st == DETLOSS_OK) st = dl_check_ptr(pred_index, tp, "pred_index", err);
  if (st == DETLOSS_OK) st = dl_check_ptr(gt_index, tp, "gt_index", err);
  if (st == DETLOSS_OK) {
    dl_span sp[7] = {dl_span_of(logits, bql, sizeof(float), "logits", 0),
                     dl_span_of(pred_boxes, bq, 4 * sizeof(float), "pred_boxes", 0),
                     dl_span_of(gt, tg, 4 * sizeof(float), "gt", 0),
                     dl_span_of(gt_labels, tg, sizeof(int64_t), "gt_labels", 0),
                     dl_span_of(gt_counts, B, sizeof(size_t), "gt_counts", 0),
                     dl_span_of(pred_index, tp, sizeof(int64_t), "pred_index", 1),
                     dl_span_of(gt_index, tp, sizeof(int64_t), "gt_index", 1)};
    st = dl_check_overlaps(sp, 7, err);
  }
  size_t K = num_classes_of(&o, nl);
  for (size_t b = 0; st == DETLOSS_OK && b < B; b++)
    st = check_image(logits + b * Q * nl, Q, nl, pred_boxes + b * Q * 4, gt + 4 * offs[b],
                     gt_labels + offs[b], gt_counts[b], K, b, offs[b], err);
  unsigned char *work = NULL;
  if (st == DETLOSS_OK && tw > 0) {
    /* Every image's scratch at once, before any output is written: NOMEM
     * leaves the outputs untouched. Memory sum_i Q G_i doubles (x2 when
     * Q > G_i), never (B Q) x (sum G). */
    work = malloc(tw);
    if (!work) st = dl_fail(err, DETLOSS_ERR_NOMEM, "gt_counts", "out of memory (%zu bytes)", tw);
  }
  if (st == DETLOSS_OK && tp > 0) {
    batch_ctx c = {Q,    nl,       logits,       pred_boxes, gt,         gt_labels, gt_counts,
                   offs, offs + B, offs + 2 * B, work,       pred_index, gt_index,  &o};
    /* one image per block: the images are independent, so any thread count
     * gives the same bits */
    dl_parallel_blocks(B, 1, o.num_threads, batch_images, &c);
  }
  free(work);
  free(offs);
  return st;
}

/* Queries are the anchors: pred_scores [A][num_classes] are the logits
 * (num_classes = num_logits), pred_boxes [A][4] and gt [G][4] are (cx, cy, w,
 * h); gt_labels required. gt_index[q] = the matched gt or -1; labels[q] =
 * its label or -1; quality[q] = the pair's cost (float), 0 for unmatched
 * queries. Options detloss_hungarian_options (NULL = DETR defaults). */
detloss_status dl_assign_hungarian(const dl_assign_input *in, const void *options,
                                   dl_assign_result *out, detloss_error *err) {
  detloss_hungarian_options o =
      options ? *(const detloss_hungarian_options *)options : detloss_hungarian_options_default();
  size_t Q = in->num_anchors, G = in->num_gt, qg = 0, k = Q < G ? Q : G;
  DL_RETURN_ERROR_IF(in->anchor_config != NULL, err, DETLOSS_ERR_UNSUPPORTED, "anchor_config",
                     "the hungarian assigner matches queries, not a grid of anchors");
  DL_FORWARD_IF_ERROR(check_single(in->pred_scores, Q, in->num_classes, in->pred_boxes, in->gt,
                                   in->gt_labels, G, &o, &qg, err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(out->gt_index, Q, "gt_index", err));
  dl_span sp[7] = {dl_span_of(in->pred_scores, Q * in->num_classes, sizeof(float), "logits", 0),
                   dl_span_of(in->pred_boxes, Q, 4 * sizeof(float), "pred_boxes", 0),
                   dl_span_of(in->gt, G, 4 * sizeof(float), "gt", 0),
                   dl_span_of(in->gt_labels, G, sizeof(int64_t), "gt_labels", 0),
                   dl_span_of(out->gt_index, Q, sizeof(int64_t), "gt_index", 1),
                   dl_span_of(out->labels, Q, sizeof(int64_t), "labels", 1),
                   dl_span_of(out->quality, Q, sizeof(float), "quality", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 7, err));
  size_t ws = dl_lsa_workspace_bytes(Q, G), bytes;
  DL_RETURN_ERROR_IF(ws == SIZE_MAX || dl_mul_overflow(qg + 2 * k, sizeof(double), &bytes) ||
                         dl_add_overflow(bytes, ws, &bytes),
                     err, DETLOSS_ERR_SHAPE, "cost", "%zu x %zu is too large", Q, G);
  double *work = malloc(bytes ? bytes : 1);
  DL_RETURN_ERROR_IF(!work, err, DETLOSS_ERR_NOMEM, "cost", "out of memory (%zu bytes)", bytes);
  int64_t *pi = (int64_t *)(void *)(work + qg), *gi = pi + k;
  cost_block(in->pred_scores, Q, in->num_classes, in->pred_boxes, in->gt, in->gt_labels, G, &o,
             work);
  solve_block(work, Q, G, pi, gi, NULL, work + qg + 2 * k);
  for (size_t q = 0; q < Q; q++) {
    out->gt_index[q] = DL_ASSIGN_BACKGROUND;
    if (out->labels) out->labels[q] = -1;
    if (out->quality) out->quality[q] = 0.0f;
  }
  for (size_t i = 0; i < k; i++) {
    size_t q = (size_t)pi[i], g = (size_t)gi[i];
    out->gt_index[q] = (int64_t)g;
    if (out->labels) out->labels[q] = in->gt_labels[g];
    if (out->quality) out->quality[q] = (float)work[q * G + g];
  }
  free(work);
  return DETLOSS_OK;
}
