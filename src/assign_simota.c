/*
 * assign_simota.c - SimOTA (YOLOX) label assignment: detloss_assign_simota(),
 * its batched form, and the "simota" row of the assigner registry (assign.h).
 *
 * Semantics (docs/math/simota.md; sources: mmdetection 3.x SimOTAAssigner,
 * YOLOX 0.3.0 and YOLOX after PR #1589 yolo_head.py get_assignments, read for
 * the behaviour only; no code carried over):
 *   candidates  mmdet / yolox_0.3: priors in-box or in-centre for some gt;
 *               yolox: priors in-centre for some gt.
 *   good pair   mmdet / yolox_0.3: in-box AND in-centre; yolox: in-centre.
 *   cost(a, g)  = cls_weight * sum_c BCE(p_ac, onehot(y_g)_c)
 *               + iou_weight * (-ln(IoU(pred_a, gt_g) + eps)) + P * [not good]
 *   dynamic k   = max(1, trunc(sum of the min(topk, M) largest IoUs of g over
 *               the M candidates)); g takes its k lowest-cost candidates;
 *   conflict    a prior taken by several gts goes to argmin_g cost(a, g) over
 *               ALL gts.
 *
 * The class cost without the G x A x C tensor of the references: with a one-hot
 * target, BCE(p, onehot(y))_c is L0(c) = -max(ln(1 - p_c), -100) for c != y and
 * L1(y) = -max(ln p_y, -100) for c = y, so
 *   sum_c BCE = S_a - L0(a, y) + L1(a, y),   S_a = sum_c L0(a, c),
 * S_a computed once per candidate (O(M*C)) and the correction per pair (O(1)).
 * Each -100 clamp stays per term, so the identity is exact up to summation
 * order.
 *
 * Memory: per image the candidate list and S_a (O(A)), and per gt its k best
 * candidates (O(G * min(topk, M))): no pair matrix. Per gt two passes over the
 * candidates: IoUs for dynamic k (a topk-sized buffer), then costs for the k
 * lowest (a k-sized buffer). Conflicts recompute the costs of the prior against
 * every gt with the same function, so they see bitwise the same values.
 * Everything is double.
 *
 * Ties: the k-th place goes to the lowest prior index (candidates are scanned in
 * index order and a later equal cost never displaces an earlier one); conflicts
 * to the lowest gt index (strict < in index order).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "internal.h"
#include "parallel.h"

/* The per-semantics constants of a call. */
typedef struct sim_par {
  int centre_only;     /* yolox: candidates and good pairs from the centre region only */
  int union_clamp;     /* mmdet: union >= 1e-6 (BboxOverlaps2D eps) */
  double eps;          /* in -ln(IoU + eps): 1e-7 (mmdet EPS), 1e-8 (YOLOX) */
  double penalty;      /* 1e5 (mmdet INF, YOLOX 0.3.0), 1e6 (YOLOX after #1589) */
  double radius;       /* centre region half-side, in strides */
  double iou_w, cls_w; /* weights */
  size_t topk;         /* candidate_topk */
} sim_par;

/* One validated image. */
typedef struct sim_img {
  const float *points;
  size_t A;
  const size_t *lc;
  const float *strides;
  size_t L;
  const float *scores;
  size_t C;
  const float *pred;
  const float *gt;
  const int64_t *labels;
  size_t G;
  int64_t *ag;
  int64_t *al;
  float *aiou;
} sim_img;

/* Scratch of one image, allocated before any output is written. */
typedef struct sim_ws {
  size_t *cand;   /* [A] candidate prior indices, ascending (first M used) */
  double *stride; /* [A] stride of each prior (then of each candidate) */
  double *S;      /* [A] S_a per candidate */
  size_t *count;  /* [A] how many gts took each candidate */
  size_t *first;  /* [A] the first gt that took it */
  size_t *sel;    /* [G * kmax] each gt's chosen candidates (positions in cand) */
  double *selv;   /* [G * kmax] their costs (first: the top IoUs) */
  size_t *k;      /* [G] dynamic k */
  size_t kmax;    /* min(topk, A) */
} sim_ws;

detloss_simota_options detloss_simota_options_default(void) {
  detloss_simota_options o = DETLOSS_SIMOTA_OPTIONS_INIT;
  return o;
}

detloss_simota_options detloss_simota_options_for(detloss_simota_semantics semantics) {
  detloss_simota_options o = DETLOSS_SIMOTA_OPTIONS_INIT;
  if (semantics == DETLOSS_SIMOTA_YOLOX_030) o.semantics = semantics;
  if (semantics == DETLOSS_SIMOTA_YOLOX) {
    /* YOLOX after PR #1589: center_radius 1.5 (yolo_head.py get_geometry_constraint) */
    o.semantics = semantics;
    o.center_radius = 1.5f;
  }
  return o;
}

static detloss_status check_options(const detloss_simota_options *o, const char *at,
                                    detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
#define SIM_AT(name) (snprintf(where, sizeof where, "%s%s%s", at, *at ? "." : "", name), where)
  DL_RETURN_ERROR_IF((unsigned)o->semantics > 2u, err, DETLOSS_ERR_RANGE, SIM_AT("semantics"),
                     "is %d, expected 0 (mmdet), 1 (yolox_0.3) or 2 (yolox)", (int)o->semantics);
  DL_RETURN_ERROR_IF(!(isfinite(o->center_radius) && o->center_radius >= 0), err, DETLOSS_ERR_RANGE,
                     SIM_AT("center_radius"), "is %g, expected a finite number >= 0",
                     (double)o->center_radius);
  DL_RETURN_ERROR_IF(o->candidate_topk < 1, err, DETLOSS_ERR_RANGE, SIM_AT("candidate_topk"),
                     "is %lld, expected >= 1", (long long)o->candidate_topk);
  DL_RETURN_ERROR_IF(!(isfinite(o->iou_weight) && o->iou_weight >= 0), err, DETLOSS_ERR_RANGE,
                     SIM_AT("iou_weight"), "is %g, expected a finite number >= 0",
                     (double)o->iou_weight);
  DL_RETURN_ERROR_IF(!(isfinite(o->cls_weight) && o->cls_weight >= 0), err, DETLOSS_ERR_RANGE,
                     SIM_AT("cls_weight"), "is %g, expected a finite number >= 0",
                     (double)o->cls_weight);
#undef SIM_AT
  return DETLOSS_OK;
}

static sim_par make_par(const detloss_simota_options *o) {
  sim_par p;
  int mm = o->semantics == DETLOSS_SIMOTA_MMDET;
  p.centre_only = o->semantics == DETLOSS_SIMOTA_YOLOX;
  p.union_clamp = mm;
  p.eps = mm ? 1e-7 : 1e-8;
  p.penalty = p.centre_only ? 1e6 : 1e5;
  p.radius = (double)o->center_radius;
  p.iou_w = (double)o->iou_weight;
  p.cls_w = (double)o->cls_weight;
  p.topk = o->candidate_topk > (int64_t)(SIZE_MAX / 64) ? SIZE_MAX / 64 : (size_t)o->candidate_topk;
  return p;
}

/* ---- validation ---------------------------------------------------------- */

/* "images[i].name" or "name" into buf. */
static const char *nm(char *buf, size_t cap, const char *prefix, const char *name) {
  snprintf(buf, cap, "%s%s", prefix, name);
  return buf;
}

static detloss_status check_image(const sim_img *im, const char *prefix, size_t image,
                                  detloss_error *err) {
  char n[DETLOSS_WHERE_MAX];
  char where[DETLOSS_WHERE_MAX];
  size_t A = im->A, G = im->G, C = im->C, L = im->L;
  DL_RETURN_ERROR_IF(A > DL_MAX_ELEMS / 4, err, DETLOSS_ERR_SHAPE,
                     nm(n, sizeof n, prefix, "points"), "%zu points is more than can be addressed",
                     A);
  DL_FORWARD_IF_ERROR(dl_check_finite(im->points, 2 * A, nm(n, sizeof n, prefix, "points"), err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(im->lc, L, nm(n, sizeof n, prefix, "level_counts"), err));
  size_t sum = 0;
  for (size_t l = 0; l < L; l++)
    DL_RETURN_ERROR_IF(dl_add_overflow(sum, im->lc[l], &sum), err, DETLOSS_ERR_SHAPE,
                       nm(n, sizeof n, prefix, "level_counts"), "sum overflows");
  DL_RETURN_ERROR_IF(sum != A, err, DETLOSS_ERR_SHAPE, nm(n, sizeof n, prefix, "level_counts"),
                     "sums to %zu, expected the number of points %zu", sum, A);
  size_t AC = 0;
  DL_RETURN_ERROR_IF(dl_mul_overflow(A, C, &AC) || AC > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE,
                     nm(n, sizeof n, prefix, "scores"), "%zu x %zu is more than can be addressed",
                     A, C);
  DL_RETURN_ERROR_IF(C == 0 && A > 0 && G > 0, err, DETLOSS_ERR_SHAPE, "num_classes",
                     "is 0 with %zu points and %zu gts", A, G);
  DL_FORWARD_IF_ERROR(dl_check_ptr(im->scores, AC, nm(n, sizeof n, prefix, "scores"), err));
  for (size_t i = 0; i < AC; i++) {
    float p = im->scores[i];
    if (!(p >= 0.0f && p <= 1.0f)) {
      snprintf(where, sizeof where, "%sscores[%zu][%zu]", prefix, i / C, i % C);
      return dl_fail(err, isnan(p) || isinf(p) ? DETLOSS_ERR_NONFINITE : DETLOSS_ERR_RANGE, where,
                     "is %g, expected a probability in [0, 1]", (double)p);
    }
  }
  DL_FORWARD_IF_ERROR(dl_check_coords(im->pred, A, nm(n, sizeof n, prefix, "pred_boxes"), err));
  DL_FORWARD_IF_ERROR(dl_check_coords(im->gt, G, nm(n, sizeof n, prefix, "gt"), err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(im->labels, G, nm(n, sizeof n, prefix, "gt_labels"), err));
  for (size_t g = 0; g < G; g++) {
    /* with A = 0 the scores give no class count (C = 0): labels need only be >= 0 */
    if (im->labels[g] < 0 || (C > 0 && (uint64_t)im->labels[g] >= C)) {
      snprintf(where, sizeof where, "%sgt_labels[%zu]", prefix, g);
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %lld, expected a class in [0, %zu)",
                     (long long)im->labels[g], C);
    }
  }
  DL_FORWARD_IF_ERROR(dl_check_ptr(im->ag, A, nm(n, sizeof n, prefix, "assigned_gt"), err));
  dl_span s[10] = {
      dl_span_of(im->points, A, 2 * sizeof(float), "points", 0),
      dl_span_of(im->lc, L, sizeof(size_t), "level_counts", 0),
      dl_span_of(im->strides, L, sizeof(float), "strides", 0),
      dl_span_of(im->scores, AC, sizeof(float), "scores", 0),
      dl_span_of(im->pred, A, 4 * sizeof(float), "pred_boxes", 0),
      dl_span_of(im->gt, G, 4 * sizeof(float), "gt", 0),
      dl_span_of(im->labels, G, sizeof(int64_t), "gt_labels", 0),
      dl_span_of(im->ag, A, sizeof(int64_t), "assigned_gt", 1),
      dl_span_of(im->al, A, sizeof(int64_t), "assigned_labels", 1),
      dl_span_of(im->aiou, A, sizeof(float), "assigned_iou", 1),
  };
  for (size_t k = 0; k < 10; k++) s[k].image = image;
  return dl_check_overlaps(s, 10, err);
}

static detloss_status check_strides(const float *strides, size_t L, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_finite(strides, L, "strides", err));
  for (size_t l = 0; l < L; l++) {
    if (!(strides[l] > 0.0f)) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "strides[%zu]", l);
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %g, expected > 0", (double)strides[l]);
    }
  }
  return DETLOSS_OK;
}

/* ---- workspace ----------------------------------------------------------- */

static void ws_free(sim_ws *w) {
  free(w->cand);
  free(w->stride);
  free(w->S);
  free(w->count);
  free(w->first);
  free(w->sel);
  free(w->selv);
  free(w->k);
  memset(w, 0, sizeof *w);
}

static int ws_alloc(sim_ws *w, size_t A, size_t G, size_t topk) {
  memset(w, 0, sizeof *w);
  if (A == 0 || G == 0) return 1;
  w->kmax = topk < A ? topk : A;
  size_t GK = 0;
  if (dl_mul_overflow(G, w->kmax, &GK) || GK > DL_MAX_ELEMS) return 0;
  w->cand = malloc(A * sizeof *w->cand);
  w->stride = malloc(A * sizeof *w->stride);
  w->S = malloc(A * sizeof *w->S);
  w->count = malloc(A * sizeof *w->count);
  w->first = malloc(A * sizeof *w->first);
  w->sel = malloc(GK * sizeof *w->sel);
  w->selv = malloc(GK * sizeof *w->selv);
  w->k = malloc(G * sizeof *w->k);
  if (!w->cand || !w->stride || !w->S || !w->count || !w->first || !w->sel || !w->selv || !w->k) {
    ws_free(w);
    return 0;
  }
  return 1;
}

/* ---- kernels ------------------------------------------------------------- */

/* -max(ln q, -100), the clamped log term of torch binary_cross_entropy. */
static inline double neg_clamped_log(double q) {
  double l = log(q);
  return l > -100.0 ? -l : 100.0;
}

/* in-box: min(x - x1, y - y1, x2 - x, y2 - y) > 0; in-centre: the same against
 * the centre region [cx -+ r*s, cy -+ r*s], c = ((x1 + x2) / 2, (y1 + y2) / 2).
 * (YOLOX's gt in cxcywh gives the same numbers: its corners cx -+ w/2 equal
 * x1, x2 exactly for float inputs in double.) */
static inline int in_box(double x, double y, const float *g) {
  double x1 = g[0], y1 = g[1], x2 = g[2], y2 = g[3];
  return x - x1 > 0 && y - y1 > 0 && x2 - x > 0 && y2 - y > 0;
}
static inline int in_centre(double x, double y, double rs, const float *g) {
  double x1 = g[0], y1 = g[1], x2 = g[2], y2 = g[3];
  double cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
  return x - (cx - rs) > 0 && y - (cy - rs) > 0 && (cx + rs) - x > 0 && (cy + rs) - y > 0;
}

/* IoU of predicted box b with gt g: mmdet BboxOverlaps2D (union clamped >= 1e-6)
 * or YOLOX bboxes_iou (no eps; a zero union gives 0 here instead of NaN). */
static inline double pair_iou(const sim_par *p, const float *b, const float *g) {
  double bx1 = b[0], by1 = b[1], bx2 = b[2], by2 = b[3];
  double gx1 = g[0], gy1 = g[1], gx2 = g[2], gy2 = g[3];
  double w = (bx2 < gx2 ? bx2 : gx2) - (bx1 > gx1 ? bx1 : gx1);
  double h = (by2 < gy2 ? by2 : gy2) - (by1 > gy1 ? by1 : gy1);
  double inter = (w > 0 && h > 0) ? w * h : 0.0;
  double ab = (bx2 - bx1) * (by2 - by1);
  double ag = (gx2 - gx1) * (gy2 - gy1);
  double uni = ab + ag - inter;
  if (p->union_clamp) {
    if (!(uni > 1e-6)) uni = 1e-6;
  } else if (uni == 0) {
    return 0.0;
  }
  return inter / uni;
}

/* cost(candidate j = prior a, gt g); iou_out gets the pair's IoU. */
static inline double pair_cost(const sim_img *im, const sim_par *p, const sim_ws *w, size_t j,
                               size_t g, double *iou_out) {
  size_t a = w->cand[j];
  const float *gb = im->gt + 4 * g;
  double x = im->points[2 * a], y = im->points[2 * a + 1];
  double rs = p->radius * w->stride[j];
  int good =
      p->centre_only ? in_centre(x, y, rs, gb) : (in_box(x, y, gb) && in_centre(x, y, rs, gb));
  double iou = pair_iou(p, im->pred + 4 * a, gb);
  double q = im->scores[a * im->C + (size_t)im->labels[g]];
  double cls = w->S[j] - neg_clamped_log(1.0 - q) + neg_clamped_log(q);
  if (iou_out) *iou_out = iou;
  return cls * p->cls_w + (-log(iou + p->eps)) * p->iou_w + (good ? 0.0 : p->penalty);
}

typedef struct sim_ctx {
  const sim_img *im;
  const sim_par *p;
  sim_ws *w;
  size_t M;
} sim_ctx;

/* S_a of candidates [j0, j1). */
static void class_sums(void *vctx, size_t j0, size_t j1, size_t block) {
  (void)block;
  sim_ctx *c = vctx;
  size_t C = c->im->C;
  for (size_t j = j0; j < j1; j++) {
    const float *row = c->im->scores + c->w->cand[j] * C;
    double s = 0;
    for (size_t k = 0; k < C; k++) s += neg_clamped_log(1.0 - (double)row[k]);
    c->w->S[j] = s;
  }
}

/* Dynamic k and the k lowest-cost candidates of gts [g0, g1). */
static void gt_select(void *vctx, size_t g0, size_t g1, size_t block) {
  (void)block;
  sim_ctx *c = vctx;
  const sim_img *im = c->im;
  const sim_par *p = c->p;
  sim_ws *w = c->w;
  size_t M = c->M;
  size_t kc = p->topk < M ? p->topk : M;
  for (size_t g = g0; g < g1; g++) {
    double *buf = w->selv + g * w->kmax;
    size_t *idx = w->sel + g * w->kmax;
    /* pass 1: the kc largest IoUs, descending (which of equal IoUs is kept does
     * not change the sum) */
    size_t n = 0;
    for (size_t j = 0; j < M; j++) {
      double v = pair_iou(p, im->pred + 4 * w->cand[j], im->gt + 4 * g);
      if (n == kc && !(v > buf[n - 1])) continue;
      size_t i = n < kc ? n++ : kc - 1;
      while (i > 0 && buf[i - 1] < v) {
        buf[i] = buf[i - 1];
        i--;
      }
      buf[i] = v;
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += buf[i];
    /* torch .int(): truncation toward zero; clamp(min=1) */
    size_t k = sum >= 2.0 ? (size_t)sum : 1;
    if (k > kc) k = kc; /* sum <= kc already; guards rounding */
    w->k[g] = k;
    /* pass 2: the k lowest costs; a later equal cost never displaces an earlier
     * (lower prior index) one, and is placed after it */
    n = 0;
    for (size_t j = 0; j < M; j++) {
      double v = pair_cost(im, p, w, j, g, NULL);
      if (n == k && !(v < buf[n - 1])) continue;
      size_t i = n < k ? n++ : k - 1;
      while (i > 0 && buf[i - 1] > v) {
        buf[i] = buf[i - 1];
        idx[i] = idx[i - 1];
        i--;
      }
      buf[i] = v;
      idx[i] = j;
    }
  }
}

/* Candidate flags of priors [a0, a1): cand[a] = 1 if candidate (then compacted). */
static void find_candidates(void *vctx, size_t a0, size_t a1, size_t block) {
  (void)block;
  sim_ctx *c = vctx;
  const sim_img *im = c->im;
  const sim_par *p = c->p;
  for (size_t a = a0; a < a1; a++) {
    double x = im->points[2 * a], y = im->points[2 * a + 1];
    double rs = p->radius * c->w->stride[a];
    size_t hit = 0;
    for (size_t g = 0; g < im->G && !hit; g++) {
      const float *gb = im->gt + 4 * g;
      hit = in_centre(x, y, rs, gb) || (!p->centre_only && in_box(x, y, gb));
    }
    c->w->cand[a] = hit;
  }
}

/* One validated image with its workspace; threads within the image. */
static void simota_image(const sim_img *im, const sim_par *p, sim_ws *w, int num_threads) {
  size_t A = im->A, G = im->G;
  for (size_t a = 0; a < A; a++) im->ag[a] = DL_ASSIGN_BACKGROUND;
  if (im->al)
    for (size_t a = 0; a < A; a++) im->al[a] = -1;
  if (im->aiou)
    for (size_t a = 0; a < A; a++) im->aiou[a] = 0.0f;
  if (A == 0 || G == 0) return;
  size_t a = 0;
  for (size_t l = 0; l < im->L; l++)
    for (size_t i = 0; i < im->lc[l]; i++) w->stride[a++] = (double)im->strides[l];
  sim_ctx c = {im, p, w, 0};
  dl_parallel_blocks(A, 2048, num_threads, find_candidates, &c);
  size_t M = 0;
  for (a = 0; a < A; a++)
    if (w->cand[a]) {
      w->cand[M] = a;
      w->stride[M] = w->stride[a]; /* M <= a: in place, in order */
      M++;
    }
  if (M == 0) return;
  c.M = M;
  dl_parallel_blocks(M, 256, num_threads, class_sums, &c);
  dl_parallel_blocks(G, 4, num_threads, gt_select, &c);
  /* merge in gt order: how many gts took each candidate, and the first */
  memset(w->count, 0, M * sizeof *w->count);
  for (size_t g = 0; g < G; g++)
    for (size_t i = 0; i < w->k[g]; i++) {
      size_t j = w->sel[g * w->kmax + i];
      if (w->count[j]++ == 0) w->first[j] = g;
    }
  for (size_t j = 0; j < M; j++) {
    size_t pa = w->cand[j];
    int64_t g = DL_ASSIGN_BACKGROUND;
    if (w->count[j] == 1) {
      g = (int64_t)w->first[j];
    } else if (w->count[j] > 1) {
      /* torch.min over ALL gts (the references' quirk): first minimum */
      double best = pair_cost(im, p, w, j, 0, NULL);
      g = 0;
      for (size_t h = 1; h < G; h++) {
        double v = pair_cost(im, p, w, j, h, NULL);
        if (v < best) {
          best = v;
          g = (int64_t)h;
        }
      }
    }
    im->ag[pa] = g;
    if (g >= 0) {
      if (im->al) im->al[pa] = im->labels[g];
      if (im->aiou) im->aiou[pa] = (float)pair_iou(p, im->pred + 4 * pa, im->gt + 4 * (size_t)g);
    }
  }
}

/* ---- public calls ------------------------------------------------------- */

detloss_status detloss_assign_simota(const float *points, size_t num_points,
                                     const size_t *level_counts, const float *strides,
                                     size_t num_levels, const float *scores, size_t num_classes,
                                     const float *pred_boxes, const float *gt,
                                     const int64_t *gt_labels, size_t num_gt, int64_t *assigned_gt,
                                     int64_t *assigned_labels, float *assigned_iou,
                                     const detloss_simota_options *opt, detloss_error *err) {
  detloss_simota_options o = opt ? *opt : detloss_simota_options_default();
  DL_FORWARD_IF_ERROR(check_options(&o, "", err));
  DL_FORWARD_IF_ERROR(check_strides(strides, num_levels, err));
  sim_img im = {points, num_points,  level_counts,    strides,     num_levels,
                scores, num_classes, pred_boxes,      gt,          gt_labels,
                num_gt, assigned_gt, assigned_labels, assigned_iou};
  DL_FORWARD_IF_ERROR(check_image(&im, "", DL_NO_IMAGE, err));
  sim_par p = make_par(&o);
  sim_ws w;
  DL_RETURN_ERROR_IF(!ws_alloc(&w, num_points, num_gt, p.topk), err, DETLOSS_ERR_NOMEM,
                     "assigned_gt", "out of memory for the SimOTA workspace");
  simota_image(&im, &p, &w, o.num_threads);
  ws_free(&w);
  return DETLOSS_OK;
}

typedef struct batch_ctx {
  const sim_img *ims;
  const sim_par *p;
  sim_ws *ws;
} batch_ctx;

static void batch_image(void *vctx, size_t i0, size_t i1, size_t block) {
  (void)block;
  batch_ctx *c = vctx;
  for (size_t i = i0; i < i1; i++) simota_image(&c->ims[i], c->p, &c->ws[i], 1);
}

detloss_status detloss_assign_simota_batch(const detloss_simota_image *images, size_t num_images,
                                           const float *strides, size_t num_levels,
                                           size_t num_classes, const detloss_simota_options *opt,
                                           detloss_error *err) {
  detloss_simota_options o = opt ? *opt : detloss_simota_options_default();
  DL_FORWARD_IF_ERROR(check_options(&o, "", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(images, num_images, "images", err));
  DL_FORWARD_IF_ERROR(check_strides(strides, num_levels, err));
  if (num_images == 0) return DETLOSS_OK;
  DL_RETURN_ERROR_IF(num_images > DL_MAX_ELEMS / sizeof(sim_ws), err, DETLOSS_ERR_SHAPE, "images",
                     "%zu images is more than can be addressed", num_images);
  sim_img *ims = malloc(num_images * sizeof *ims);
  sim_ws *ws = calloc(num_images, sizeof *ws);
  if (!ims || !ws) {
    free(ims);
    free(ws);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "images", "out of memory");
  }
  detloss_status st = DETLOSS_OK;
  for (size_t i = 0; i < num_images && st == DETLOSS_OK; i++) {
    const detloss_simota_image *x = &images[i];
    sim_img im = {x->points, x->num_points,  x->level_counts,    strides,        num_levels,
                  x->scores, num_classes,    x->pred_boxes,      x->gt,          x->gt_labels,
                  x->num_gt, x->assigned_gt, x->assigned_labels, x->assigned_iou};
    ims[i] = im;
    char prefix[48];
    snprintf(prefix, sizeof prefix, "images[%zu].", i);
    st = check_image(&ims[i], prefix, i, err);
  }
  /* outputs of different images may not overlap each other */
  for (size_t i = 0; i < num_images && st == DETLOSS_OK; i++)
    for (size_t j = 0; j < i && st == DETLOSS_OK; j++) {
      const sim_img *a = &ims[i], *b = &ims[j];
      dl_span s[6] = {
          dl_span_of(a->ag, a->A, sizeof(int64_t), "assigned_gt", 1),
          dl_span_of(a->al, a->A, sizeof(int64_t), "assigned_labels", 1),
          dl_span_of(a->aiou, a->A, sizeof(float), "assigned_iou", 1),
          dl_span_of(b->ag, b->A, sizeof(int64_t), "assigned_gt", 0),
          dl_span_of(b->al, b->A, sizeof(int64_t), "assigned_labels", 0),
          dl_span_of(b->aiou, b->A, sizeof(float), "assigned_iou", 0),
      };
      for (size_t k = 0; k < 6; k++) s[k].image = k < 3 ? i : j;
      st = dl_check_overlaps(s, 6, err);
    }
  sim_par p = make_par(&o);
  for (size_t i = 0; i < num_images && st == DETLOSS_OK; i++)
    if (!ws_alloc(&ws[i], ims[i].A, ims[i].G, p.topk))
      st = dl_fail(err, DETLOSS_ERR_NOMEM, "images", "out of memory for the SimOTA workspace");
  if (st == DETLOSS_OK) {
    batch_ctx c = {ims, &p, ws};
    if (num_images == 1)
      simota_image(&ims[0], &p, &ws[0], o.num_threads);
    else
      dl_parallel_blocks(num_images, 1, o.num_threads, batch_image, &c);
  }
  for (size_t i = 0; i < num_images; i++) ws_free(&ws[i]);
  free(ws);
  free(ims);
  return st;
}

/* ---- registry row ------------------------------------------------------- */

void dl_simota_options_default(void *options) {
  *(detloss_simota_options *)options = detloss_simota_options_default();
}

detloss_status dl_simota_check_options(const void *options, const char *at, detloss_error *err) {
  if (options == NULL) return DETLOSS_OK;
  return check_options(options, at, err);
}

detloss_status dl_assign_simota(const dl_assign_input *in, const void *options,
                                dl_assign_result *out, detloss_error *err) {
  DL_RETURN_ERROR_IF(in == NULL || out == NULL, err, DETLOSS_ERR_NULL, in ? "out" : "in",
                     "is NULL");
  DL_RETURN_ERROR_IF(in->points == NULL && in->num_anchors > 0, err, DETLOSS_ERR_UNSUPPORTED,
                     "points",
                     "SimOTA needs prior points (anchor boxes or a grid config are not "
                     "read)");
  DL_RETURN_ERROR_IF(in->level_counts == NULL || in->level_stride == NULL, err, DETLOSS_ERR_NULL,
                     in->level_counts ? "level_stride" : "level_counts",
                     "is NULL: SimOTA needs the points per level and their strides");
  DL_RETURN_ERROR_IF(in->gt_labels == NULL && in->num_gt > 0, err, DETLOSS_ERR_NULL, "gt_labels",
                     "is NULL");
  return detloss_assign_simota(in->points, in->num_anchors, in->level_counts, in->level_stride,
                               in->num_levels, in->pred_scores, in->num_classes, in->pred_boxes,
                               in->gt, in->gt_labels, in->num_gt, out->gt_index, out->labels,
                               out->quality, options, err);
}
