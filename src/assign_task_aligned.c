/*
 * assign_task_aligned.c - the task-aligned assigner (TOOD; YOLOv8), per image
 * and batched, and its row "task_aligned" of the assign interface (assign.h).
 *
 * Semantics, sources and the tie rule: docs/math/task_aligned.md. In short, for
 * every gt g and anchor point a:
 *   t(a, g) = s(a, label_g)^alpha * u(a, g)^beta                       (TOOD eq. 4)
 * ultralytics (tal.py, v8.1): u = max(CIoU(gt, pred), 0) if the point is inside g
 *   by more than 1e-9, else u = t = 0; top-k of t over all anchors; positives are
 *   the inside ones; a conflict goes to argmax_g u over ALL gts.
 * tood (mmdet 3.x TaskAlignedAssigner): u = IoU(pred, gt) for every pair; top-k of
 *   t; positive when t > 0 and the point is inside g by more than 0.01; a conflict
 *   goes to the highest u among the gts it is positive for.
 * The reference builds G x A tensors (B x M x A, padded to the densest image);
 * here each gt visits only the anchors that can matter to it:
 *   ultralytics: t = 0 outside g, so a gt's top-k is the top-k of its inside
 *     anchors, filled (when fewer than k have t > 0) with the lowest-indexed
 *     anchors of t = 0 (the tie rule), all of which have index < k; the inside
 *     anchors come from index ranges (grid levels) or an x-sorted index.
 *   tood: a point outside g can still rank in g's top-k (its predicted box may
 *     overlap g), so every gt scans all A predicted boxes with a 4-compare
 *     rejection; only the k best are kept.
 * Memory: O(A) per-anchor scratch and O(G * k) per-gt selections; no A x G array.
 * Arithmetic in double; outputs rounded to float once.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "internal.h"
#include "parallel.h"

/* ultralytics bbox_iou(eps=1e-7) and the inside margin (tal.py eps=1e-9);
 * TOOD: inside margin 0.01 px, IoU union clamp 1e-6 (mmdet bbox_overlaps), and
 * the TOODHead normalisation eps 10e-8. */
#define ULTRA_CIOU_EPS 1e-7
#define ULTRA_IN_EPS 1e-9
#define ULTRA_NORM_EPS 1e-9
#define TOOD_IN_EPS 0.01
#define TOOD_UNION_EPS 1e-6
#define TOOD_NORM_EPS 1e-7
#define PI_D 3.14159265358979323846

detloss_task_aligned_options detloss_task_aligned_options_default(void) {
  detloss_task_aligned_options o = DETLOSS_TASK_ALIGNED_OPTIONS_INIT;
  return o;
}

detloss_task_aligned_options detloss_task_aligned_options_tood(void) {
  detloss_task_aligned_options o = DETLOSS_TASK_ALIGNED_OPTIONS_INIT;
  o.semantics = DETLOSS_TASK_ALIGNED_TOOD;
  o.topk = 13;
  o.alpha = 1.0f;
  o.beta = 6.0f;
  return o;
}

/* One level of points and how to find the points inside a box. */
typedef struct tal_level {
  size_t start, n;
  int grid;    /* 1: row-major tensor-product grid of h rows x w columns */
  size_t w, h; /* grid shape */
  size_t *ord; /* not a grid: the level's point indices sorted by x (into ctx->ord) */
} tal_level;

/* One image: validated inputs, scratch, outputs. */
typedef struct tal_img {
  size_t A, G, C, L, k;
  const float *pts, *scores, *pred, *gt;
  const int64_t *labels;
  const uint8_t *gt_valid; /* [G] or NULL: 0 = padding row */
  int logits;              /* scores are logits: sigmoid at each lookup */
  int64_t *out_gt, *out_labels;
  float *out_scores, *out_metrics, *out_overlaps;
  int sem;
  double alpha, beta;
  tal_level *lv; /* [L'] (L' = max(L, 1)) */
  size_t *ord;   /* [A] or NULL: x-sorted indices of the non-grid levels */
  /* per gt selections: sel_n[g] entries at g*k */
  size_t *sel_idx;
  double *sel_t, *sel_u;
  size_t *sel_n;
  /* per anchor */
  uint32_t *cnt; /* selections of the anchor (saturating) */
  int32_t *ag;   /* assigned gt */
  double *at, *au;
  double *pa, *po; /* [G] */
} tal_img;

/* Kernels. */

/* min / max of finite doubles (inputs are validated finite; fmin / fmax are
 * library calls that handle NaN, which cannot occur here). */
static inline double dmin(double a, double b) { return a < b ? a : b; }
static inline double dmax(double a, double b) { return a > b ? a : b; }

/* ultralytics bbox_iou(box1 = gt, box2 = pred, xywh=False, CIoU=True, eps=1e-7)
 * clamped at 0 (tal.py iou_calculation(...).clamp_(0)); atan_g = atan(w1/h1) of
 * the gt, computed once per gt. */
static double ciou_clamped(const float *g, double atan_g, const float *p) {
  const double eps = ULTRA_CIOU_EPS;
  double gx1 = g[0], gy1 = g[1], gx2 = g[2], gy2 = g[3];
  double px1 = p[0], py1 = p[1], px2 = p[2], py2 = p[3];
  double w1 = gx2 - gx1, h1 = gy2 - gy1 + eps;
  double w2 = px2 - px1, h2 = py2 - py1 + eps;
  double iw = dmin(gx2, px2) - dmax(gx1, px1), ih = dmin(gy2, py2) - dmax(gy1, py1);
  double inter = (iw > 0 ? iw : 0) * (ih > 0 ? ih : 0);
  double uni = w1 * h1 + w2 * h2 - inter + eps;
  double iou = inter / uni;
  double cw = dmax(gx2, px2) - dmin(gx1, px1), ch = dmax(gy2, py2) - dmin(gy1, py1);
  double c2 = cw * cw + ch * ch + eps;
  double dx = px1 + px2 - gx1 - gx2, dy = py1 + py2 - gy1 - gy2;
  double rho2 = (dx * dx + dy * dy) / 4.0;
  double da = atan(w2 / h2) - atan_g;
  double v = (4.0 / (PI_D * PI_D)) * da * da;
  double a = v / (v - iou + (1.0 + eps));
  double r = iou - (rho2 / c2 + v * a);
  return r > 0 ? r : 0.0; /* clamp_(0); also maps -0 to 0 */
}

/* mmdet bbox_overlaps(pred, gt, mode='iou', eps=1e-6): union clamped >= eps. */
static double iou_tood(const float *p, const float *g) {
  double iw = dmin((double)p[2], g[2]) - dmax((double)p[0], g[0]);
  double ih = dmin((double)p[3], g[3]) - dmax((double)p[1], g[1]);
  double inter = (iw > 0 ? iw : 0) * (ih > 0 ? ih : 0);
  double ap = ((double)p[2] - (double)p[0]) * ((double)p[3] - (double)p[1]);
  double ag = ((double)g[2] - (double)g[0]) * ((double)g[3] - (double)g[1]);
  double uni = ap + ag - inter;
  if (uni < TOOD_UNION_EPS) uni = TOOD_UNION_EPS;
  return inter / uni;
}

/* min(x - x1, y - y1, x2 - x, y2 - y) > margin, in double. */
static int inside(const float *pt, const float *g, double margin) {
  double x = pt[0], y = pt[1];
  double l = x - (double)g[0], t = y - (double)g[1], r = (double)g[2] - x, b = (double)g[3] - y;
  double m = dmin(dmin(l, t), dmin(r, b));
  return m > margin;
}

static double powd(double x, double e) {
  if (e == 1.0) return x;
  if (e == 0.5) return sqrt(x);
  return pow(x, e);
}

static double metric(const tal_img *im, size_t a, size_t g, double u) {
  double s = im->scores[a * im->C + (size_t)im->labels[g]];
  if (im->logits) s = 1.0 / (1.0 + exp(-s)); /* ultralytics pd_scores = sigmoid(logits) */
  return powd(s, im->alpha) * powd(u, im->beta);
}

/* (t, a) ranks before (t2, a2): larger t first, then the lower index. */
static int ranks_before(double t, size_t a, double t2, size_t a2) {
  return t > t2 || (t == t2 && a < a2);
}

/* Inserts (a, t, u) into the sorted top-k buffer of n <= k entries. */
static void topk_push(size_t *idx, double *tv, double *uv, size_t *n, size_t k, size_t a, double t,
                      double u) {
  size_t m = *n;
  if (m == k) {
    if (!ranks_before(t, a, tv[k - 1], idx[k - 1])) return;
    m = k - 1;
  }
  size_t i = m;
  while (i > 0 && ranks_before(t, a, tv[i - 1], idx[i - 1])) {
    idx[i] = idx[i - 1];
    tv[i] = tv[i - 1];
    uv[i] = uv[i - 1];
    i--;
  }
  idx[i] = a;
  tv[i] = t;
  uv[i] = u;
  *n = m + 1;
}

/* Finding the points inside a gt. */

/* First j in [0, n) with v(j) > x (strict) for an increasing sequence. */
typedef double (*coord_fn)(const tal_img *im, const tal_level *l, size_t j);
static double grid_x(const tal_img *im, const tal_level *l, size_t j) {
  return im->pts[2 * (l->start + j)];
}
static double grid_y(const tal_img *im, const tal_level *l, size_t i) {
  return im->pts[2 * (l->start + i * l->w) + 1];
}
static double sorted_x(const tal_img *im, const tal_level *l, size_t j) {
  return im->pts[2 * l->ord[j]];
}
static size_t first_above(const tal_img *im, const tal_level *l, coord_fn f, size_t n, double x,
                          int strict) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    double v = f(im, l, mid);
    if (strict ? v > x : v >= x)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

/* Calls visit(im, ctx, a) for every point a with x1 < x < x2 and y1 < y < y2 (a
 * superset of the points inside g by any margin >= 0), each once. */
typedef void (*visit_fn)(tal_img *im, void *ctx, size_t a);
static void for_points_in(tal_img *im, const float *g, visit_fn visit, void *ctx) {
  double x1 = g[0], y1 = g[1], x2 = g[2], y2 = g[3];
  if (!(x1 < x2 && y1 < y2)) return;
  for (size_t li = 0; li < im->L; li++) {
    const tal_level *l = &im->lv[li];
    if (l->n == 0) continue;
    if (l->grid) {
      size_t j0 = first_above(im, l, grid_x, l->w, x1, 1),
             j1 = first_above(im, l, grid_x, l->w, x2, 0);
      if (j0 >= j1) continue;
      size_t i0 = first_above(im, l, grid_y, l->h, y1, 1),
             i1 = first_above(im, l, grid_y, l->h, y2, 0);
      for (size_t i = i0; i < i1; i++)
        for (size_t j = j0; j < j1; j++) visit(im, ctx, l->start + i * l->w + j);
    } else {
      size_t j0 = first_above(im, l, sorted_x, l->n, x1, 1),
             j1 = first_above(im, l, sorted_x, l->n, x2, 0);
      for (size_t j = j0; j < j1; j++) {
        size_t a = l->ord[j];
        double y = im->pts[2 * a + 1];
        if (y > y1 && y < y2) visit(im, ctx, a);
      }
    }
  }
}

/* Pass 1: each gt's top-k. */

typedef struct gt_scan {
  size_t g;
  double atan_g;
  size_t *idx;
  double *tv, *uv;
  size_t n;
  /* zero-metric inside anchors of index < k (ultralytics), ascending after sort */
  size_t zero[64];
  size_t nzero;
  size_t *zero_big; /* when k > 64 */
} gt_scan;

static void visit_ultra(tal_img *im, void *ctx, size_t a) {
  gt_scan *s = ctx;
  const float *g = im->gt + 4 * s->g;
  if (!inside(im->pts + 2 * a, g, ULTRA_IN_EPS)) return;
  double u = ciou_clamped(g, s->atan_g, im->pred + 4 * a);
  double t = metric(im, a, s->g, u);
  if (t > 0) {
    topk_push(s->idx, s->tv, s->uv, &s->n, im->k, a, t, u);
  } else if (a < im->k) {
    size_t *z = im->k > 64 ? s->zero_big : s->zero;
    z[s->nzero++] = a;
  }
}

static int cmp_size(const void *x, const void *y) {
  size_t a = *(const size_t *)x, b = *(const size_t *)y;
  return (a > b) - (a < b);
}

/* ultralytics: the top-k of t over all A anchors (t = 0 outside g), ties to the
 * lowest index. With p < k anchors of t > 0 (all inside g), the other k - p are
 * the lowest-indexed anchors of t = 0: a t = 0 anchor i is one of them iff
 * i - #{t > 0 anchors below i} < k - p, which needs i < k. Of those, only the
 * inside ones are positive, so only they are kept. */
static void scan_gt_ultra(tal_img *im, size_t g, size_t *zero_big) {
  gt_scan s;
  memset(&s, 0, sizeof s);
  s.g = g;
  const float *b = im->gt + 4 * g;
  s.atan_g = atan(((double)b[2] - (double)b[0]) / ((double)b[3] - (double)b[1] + ULTRA_CIOU_EPS));
  s.idx = im->sel_idx + g * im->k;
  s.tv = im->sel_t + g * im->k;
  s.uv = im->sel_u + g * im->k;
  s.zero_big = zero_big;
  for_points_in(im, b, visit_ultra, &s);
  size_t p = s.n;
  if (p < im->k && s.nzero > 0) {
    size_t *z = im->k > 64 ? s.zero_big : s.zero;
    qsort(z, s.nzero, sizeof *z, cmp_size);
    for (size_t q = 0; q < s.nzero; q++) {
      size_t i = z[q], below = 0;
      for (size_t j = 0; j < p; j++) below += s.idx[j] < i;
      if (i - below < im->k - p) {
        /* t = 0; u may be > 0 when s = 0 */
        double u = ciou_clamped(b, s.atan_g, im->pred + 4 * i);
        s.idx[s.n] = i;
        s.tv[s.n] = 0.0;
        s.uv[s.n] = u;
        s.n++;
      }
    }
  }
  im->sel_n[g] = s.n;
}

/* tood: the top-k of t over all A anchors among those with t > 0 (t = 0 never
 * becomes positive), then the inside test on those. */
static void scan_gt_tood(tal_img *im, size_t g) {
  const float *b = im->gt + 4 * g;
  size_t *idx = im->sel_idx + g * im->k;
  double *tv = im->sel_t + g * im->k, *uv = im->sel_u + g * im->k;
  size_t n = 0;
  float gx1 = b[0], gy1 = b[1], gx2 = b[2], gy2 = b[3];
  for (size_t a = 0; a < im->A; a++) {
    const float *p = im->pred + 4 * a;
    /* no intersection: u = 0, t = 0 (beta > 0) */
    if (!(p[0] < gx2 && p[2] > gx1 && p[1] < gy2 && p[3] > gy1)) continue;
    double u = iou_tood(p, b);
    double t = metric(im, a, g, u);
    if (t > 0) topk_push(idx, tv, uv, &n, im->k, a, t, u);
  }
  size_t m = 0;
  for (size_t q = 0; q < n; q++) {
    if (!inside(im->pts + 2 * idx[q], b, TOOD_IN_EPS)) continue;
    idx[m] = idx[q];
    tv[m] = tv[q];
    uv[m] = uv[q];
    m++;
  }
  im->sel_n[g] = m;
}

static void scan_block(void *ctx, size_t g0, size_t g1, size_t block) {
  (void)block;
  tal_img *im = ctx;
  size_t *zb = NULL;
  if (im->sem == DETLOSS_TASK_ALIGNED_ULTRALYTICS && im->k > 64) {
    zb = malloc(im->k * sizeof *zb); /* checked: see run_image */
  }
  for (size_t g = g0; g < g1; g++) {
    if (im->gt_valid != NULL && !im->gt_valid[g])
      im->sel_n[g] = 0; /* padding: mask_gt zeroes its candidates */
    else if (im->sem == DETLOSS_TASK_ALIGNED_TOOD)
      scan_gt_tood(im, g);
    else if (im->k <= 64 || zb != NULL)
      scan_gt_ultra(im, g, zb);
    else
      im->sel_n[g] = (size_t)-1; /* out of memory: reported by run_image */
  }
  free(zb);
}

/* Pass 3 (ultralytics): conflicts go to argmax_g u over all gts. */

typedef struct conflict_scan {
  size_t g;
  double atan_g;
} conflict_scan;

static void visit_conflict(tal_img *im, void *ctx, size_t a) {
  conflict_scan *s = ctx;
  if (im->cnt[a] < 2) return;
  const float *g = im->gt + 4 * s->g;
  if (!inside(im->pts + 2 * a, g, ULTRA_IN_EPS)) return;
  double u = ciou_clamped(g, s->atan_g, im->pred + 4 * a);
  if (u > im->au[a]) {
    im->au[a] = u;
    im->ag[a] = (int32_t)s->g;
    im->at[a] = metric(im, a, s->g, u);
  }
}

/* Runs the assigner on a validated, allocated image and writes its outputs.
 * Returns 0, or 1 when a scan ran out of memory (nothing written then). */
static int run_image(tal_img *im, int num_threads) {
  size_t A = im->A, G = im->G;
  if (G > 0 && A > 0) {
    dl_parallel_blocks(G, 8, num_threads, scan_block, im);
    for (size_t g = 0; g < G; g++)
      if (im->sel_n[g] == (size_t)-1) return 1;
    /* pass 2: mark the selections in gt order */
    memset(im->cnt, 0, A * sizeof *im->cnt);
    int ultra = im->sem == DETLOSS_TASK_ALIGNED_ULTRALYTICS;
    int conflicts = 0;
    for (size_t g = 0; g < G; g++) {
      size_t base = g * im->k;
      for (size_t q = 0; q < im->sel_n[g]; q++) {
        size_t a = im->sel_idx[base + q];
        double t = im->sel_t[base + q], u = im->sel_u[base + q];
        if (im->cnt[a] == 0 || (!ultra && u > im->au[a])) {
          /* first selection; tood: a strictly higher IoU among positive gts */
          im->ag[a] = (int32_t)g;
          im->at[a] = t;
          im->au[a] = u;
        }
        if (im->cnt[a] < UINT32_MAX) im->cnt[a]++;
        conflicts |= im->cnt[a] > 1;
      }
    }
    if (ultra && conflicts) {
      /* the argmax over all gts starts at gt 0 with u = 0 (torch argmax: first max);
       * t(a, 0) = 0 whenever u(a, 0) = 0 (beta > 0) */
      for (size_t a = 0; a < A; a++)
        if (im->cnt[a] > 1) {
          im->ag[a] = 0;
          im->au[a] = 0.0;
          im->at[a] = 0.0;
        }
      for (size_t g = 0; g < G; g++) {
        if (im->gt_valid != NULL && !im->gt_valid[g]) continue; /* overlap 0 for padding */
        conflict_scan s;
        const float *b = im->gt + 4 * g;
        s.g = g;
        s.atan_g =
            atan(((double)b[2] - (double)b[0]) / ((double)b[3] - (double)b[1] + ULTRA_CIOU_EPS));
        for_points_in(im, b, visit_conflict, &s);
      }
    }
    /* pass 4: per gt maxima of t and u over its final positives */
    for (size_t g = 0; g < G; g++) im->pa[g] = im->po[g] = 0.0;
    for (size_t a = 0; a < A; a++) {
      if (im->cnt[a] == 0) continue;
      size_t g = (size_t)im->ag[a];
      if (im->at[a] > im->pa[g]) im->pa[g] = im->at[a];
      if (im->au[a] > im->po[g]) im->po[g] = im->au[a];
    }
  } else if (A > 0) {
    memset(im->cnt, 0, A * sizeof *im->cnt);
  }
  /* outputs */
  for (size_t a = 0; a < A; a++) {
    if (im->cnt[a] == 0) {
      im->out_gt[a] = DL_ASSIGN_BACKGROUND;
      if (im->out_labels) im->out_labels[a] = -1;
      if (im->out_scores) im->out_scores[a] = 0.0f;
      if (im->out_metrics) im->out_metrics[a] = 0.0f;
      if (im->out_overlaps) im->out_overlaps[a] = 0.0f;
      continue;
    }
    size_t g = (size_t)im->ag[a];
    double t = im->at[a], sc;
    if (im->sem == DETLOSS_TASK_ALIGNED_ULTRALYTICS)
      sc = t * im->po[g] / (im->pa[g] + ULTRA_NORM_EPS); /* tal.py: align * po / (pa + eps) */
    else
      sc = t / (im->pa[g] + TOOD_NORM_EPS) * im->po[g]; /* tood_head.py */
    im->out_gt[a] = (int64_t)g;
    if (im->out_labels) im->out_labels[a] = im->labels[g];
    if (im->out_scores) im->out_scores[a] = (float)sc;
    if (im->out_metrics) im->out_metrics[a] = (float)t;
    if (im->out_overlaps) im->out_overlaps[a] = (float)im->au[a];
  }
  return 0;
}

/* Validation and set-up. */

typedef struct tal_args {
  const float *points;
  size_t A;
  const size_t *level_counts;
  size_t L;
  const float *scores;
  size_t C;
  const float *pred;
  const float *gt;
  const int64_t *labels;
  size_t G;
  int64_t *out_gt, *out_labels;
  float *out_scores, *out_metrics, *out_overlaps;
  const char *points_name; /* "points" or "anchors" */
  const uint8_t *gt_valid; /* [G] or NULL (dl_assign_input.gt_valid) */
  int logits;              /* dl_assign_input.scores_are_logits */
} tal_args;

/* The options check of the registry row: faults named under at (e.g. "assign.topk"). */
detloss_status dl_task_aligned_check_options(const void *options, const char *at,
                                             detloss_error *err) {
  if (options == NULL) return DETLOSS_OK;
  const detloss_task_aligned_options *o = (const detloss_task_aligned_options *)options;
  char w[DETLOSS_WHERE_MAX];
  DL_RETURN_ERROR_IF(o->semantics != DETLOSS_TASK_ALIGNED_ULTRALYTICS &&
                         o->semantics != DETLOSS_TASK_ALIGNED_TOOD,
                     err, DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "semantics"),
                     "unknown semantics %d", (int)o->semantics);
  DL_RETURN_ERROR_IF(o->topk < 1, err, DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "topk"),
                     "must be >= 1, got %lld", (long long)o->topk);
  DL_RETURN_ERROR_IF(!(isfinite(o->alpha) && o->alpha >= 0.0f), err, DETLOSS_ERR_RANGE,
                     dl_assign_option_where(w, at, "alpha"), "must be finite and >= 0, got %g",
                     (double)o->alpha);
  DL_RETURN_ERROR_IF(!(isfinite(o->beta) && o->beta > 0.0f), err, DETLOSS_ERR_RANGE,
                     dl_assign_option_where(w, at, "beta"), "must be finite and > 0, got %g",
                     (double)o->beta);
  return DETLOSS_OK;
}

/* Scores in [0, 1]: one vectorizable pass, then the first bad one named. */
static detloss_status check_scores(const float *s, size_t n, detloss_error *err) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad |= !(s[i] >= 0.0f && s[i] <= 1.0f);
  if (!bad) return DETLOSS_OK;
  for (size_t i = 0; i < n; i++) {
    if (s[i] >= 0.0f && s[i] <= 1.0f) continue;
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "scores[%zu]", i);
    if (!isfinite(s[i]))
      return dl_fail(err, DETLOSS_ERR_NONFINITE, where, "is %s, expected a probability",
                     isnan(s[i]) ? "NaN" : "infinite");
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %g, expected a probability in [0, 1]",
                   (double)s[i]);
  }
  return DETLOSS_OK;
}

/* Logits finite: one vectorizable pass, then the first bad one named. */
static detloss_status check_logits(const float *s, size_t n, detloss_error *err) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad |= !(s[i] >= -FLT_MAX && s[i] <= FLT_MAX);
  if (!bad) return DETLOSS_OK;
  return dl_check_finite(s, n, "scores", err);
}

static detloss_status check_args(const tal_args *x, detloss_error *err) {
  size_t A = x->A, G = x->G, C = x->C;
  const char *pn = x->points_name;
  DL_RETURN_ERROR_IF(A > DL_MAX_ELEMS / 4, err, DETLOSS_ERR_SHAPE, pn,
                     "%zu points is more than can be addressed", A);
  DL_RETURN_ERROR_IF(G > (size_t)INT32_MAX, err, DETLOSS_ERR_SHAPE, "gt",
                     "%zu boxes is more than 2^31 - 1", G);
  DL_FORWARD_IF_ERROR(dl_check_ptr(x->points, A, pn, err));
  for (size_t a = 0; a < A; a++) {
    const float *p = x->points + 2 * a;
    if (isfinite(p[0]) && isfinite(p[1]) && fabsf(p[0]) <= DL_COORD_MAX &&
        fabsf(p[1]) <= DL_COORD_MAX)
      continue;
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "%s[%zu]", pn, a);
    if (!(isfinite(p[0]) && isfinite(p[1])))
      return dl_fail(err, DETLOSS_ERR_NONFINITE, where, "has a non-finite coordinate");
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "coordinate larger in magnitude than 1e18");
  }
  if (x->L > 0 || x->level_counts != NULL) {
    DL_FORWARD_IF_ERROR(dl_check_ptr(x->level_counts, x->L, "level_counts", err));
    size_t sum = 0;
    for (size_t l = 0; l < x->L; l++)
      DL_RETURN_ERROR_IF(dl_add_overflow(sum, x->level_counts[l], &sum), err, DETLOSS_ERR_SHAPE,
                         "level_counts", "sum overflows");
    DL_RETURN_ERROR_IF(sum != A, err, DETLOSS_ERR_SHAPE, "level_counts",
                       "sums to %zu but there are %zu points", sum, A);
  }
  DL_RETURN_ERROR_IF(G > 0 && A > 0 && C == 0, err, DETLOSS_ERR_SHAPE, "num_classes",
                     "is 0 but there are gt labels to look up");
  size_t AC;
  DL_RETURN_ERROR_IF(dl_mul_overflow(A, C, &AC) || AC > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE,
                     "scores", "%zu x %zu is more than can be addressed", A, C);
  DL_FORWARD_IF_ERROR(dl_check_ptr(x->scores, AC, "scores", err));
  if (x->logits)
    DL_FORWARD_IF_ERROR(check_logits(x->scores, AC, err));
  else
    DL_FORWARD_IF_ERROR(check_scores(x->scores, AC, err));
  DL_FORWARD_IF_ERROR(dl_check_coords(x->pred, A, "pred_boxes", err));
  DL_FORWARD_IF_ERROR(dl_check_coords(x->gt, G, "gt", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(x->labels, G, "gt_labels", err));
  for (size_t g = 0; g < G; g++) {
    /* with A = 0 there are no scores to index: only the sign is checked */
    if (x->labels[g] >= 0 && (A == 0 || (uint64_t)x->labels[g] < (uint64_t)C)) continue;
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "gt_labels[%zu]", g);
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %lld, expected a class in [0, %zu)",
                   (long long)x->labels[g], C);
  }
  DL_FORWARD_IF_ERROR(dl_check_ptr(x->out_gt, A, "assigned_gt", err));
  dl_span s[10] = {
      dl_span_of(x->points, A, 2 * sizeof(float), pn, 0),
      dl_span_of(x->scores, AC, sizeof(float), "scores", 0),
      dl_span_of(x->pred, A, 4 * sizeof(float), "pred_boxes", 0),
      dl_span_of(x->gt, G, 4 * sizeof(float), "gt", 0),
      dl_span_of(x->labels, G, sizeof(int64_t), "gt_labels", 0),
      dl_span_of(x->level_counts, x->L, sizeof(size_t), "level_counts", 0),
      dl_span_of(x->out_gt, A, sizeof(int64_t), "assigned_gt", 1),
      dl_span_of(x->out_labels, A, sizeof(int64_t), "assigned_labels", 1),
      dl_span_of(x->out_scores, A, sizeof(float), "target_scores", 1),
      dl_span_of(x->out_metrics, A, sizeof(float), "align_metrics", 1),
  };
  DL_FORWARD_IF_ERROR(dl_check_overlaps(s, 10, err));
  if (x->out_overlaps != NULL) {
    dl_span s2[2] = {dl_span_of(x->out_overlaps, A, sizeof(float), "overlaps", 1),
                     dl_span_of(x->out_gt, A, sizeof(int64_t), "assigned_gt", 0)};
    DL_FORWARD_IF_ERROR(dl_check_overlaps(s2, 2, err));
  }
  return DETLOSS_OK;
}

/* Points sorted by x then index (qsort_r is not C11: a small merge sort). */
static void sort_by_x(const float *pts, size_t *v, size_t *tmp, size_t n) {
  for (size_t w = 1; w < n; w *= 2) {
    for (size_t i = 0; i < n; i += 2 * w) {
      size_t m = i + w < n ? i + w : n, e = i + 2 * w < n ? i + 2 * w : n;
      size_t p = i, q = m, o = i;
      while (p < m && q < e) {
        float xp = pts[2 * v[p]], xq = pts[2 * v[q]];
        if (xq < xp || (xq == xp && v[q] < v[p]))
          tmp[o++] = v[q++];
        else
          tmp[o++] = v[p++];
      }
      while (p < m) tmp[o++] = v[p++];
      while (q < e) tmp[o++] = v[q++];
    }
    memcpy(v, tmp, n * sizeof *v);
  }
}

/* Whether the level's points form a row-major grid: rows of w points sharing
 * their y, columns sharing their x, both strictly increasing. */
static int detect_grid(const float *pts, tal_level *l) {
  size_t n = l->n, s = l->start;
  if (n == 0) return 1;
  size_t w = 1;
  while (w < n && pts[2 * (s + w) + 1] == pts[2 * s + 1]) w++;
  if (n % w != 0) return 0;
  size_t h = n / w;
  for (size_t j = 1; j < w; j++)
    if (!(pts[2 * (s + j)] > pts[2 * (s + j - 1)])) return 0;
  for (size_t i = 1; i < h; i++)
    if (!(pts[2 * (s + i * w) + 1] > pts[2 * (s + (i - 1) * w) + 1])) return 0;
  for (size_t i = 0; i < h; i++)
    for (size_t j = 0; j < w; j++) {
      size_t a = s + i * w + j;
      if (pts[2 * a] != pts[2 * (s + j)] || pts[2 * a + 1] != pts[2 * (s + i * w) + 1]) return 0;
    }
  l->w = w;
  l->h = h;
  return 1;
}

static void free_image(tal_img *im) {
  free(im->lv);
  free(im->ord);
  free(im->sel_idx);
  free(im->sel_t);
  free(im->sel_u);
  free(im->sel_n);
  free(im->cnt);
  free(im->ag);
  free(im->at);
  free(im->au);
  free(im->pa);
  free(im->po);
  memset(im, 0, sizeof *im);
}

/* Fills im from validated args and allocates its scratch; 0 or 1 (NOMEM, all freed). */
static int setup_image(tal_img *im, const tal_args *x, const detloss_task_aligned_options *o) {
  memset(im, 0, sizeof *im);
  im->A = x->A;
  im->G = x->G;
  im->C = x->C;
  im->pts = x->points;
  im->scores = x->scores;
  im->pred = x->pred;
  im->gt = x->gt;
  im->labels = x->labels;
  im->gt_valid = x->gt_valid;
  im->logits = x->logits;
  im->out_gt = x->out_gt;
  im->out_labels = x->out_labels;
  im->out_scores = x->out_scores;
  im->out_metrics = x->out_metrics;
  im->out_overlaps = x->out_overlaps;
  im->sem = (int)o->semantics;
  im->alpha = o->alpha;
  im->beta = o->beta;
  size_t A = x->A, G = x->G;
  im->k = (uint64_t)o->topk < (uint64_t)A ? (size_t)o->topk : A;
  im->L = x->L > 0 ? x->L : 1;
  if (A == 0) return 0;
  im->cnt = malloc(A * sizeof *im->cnt);
  if (!im->cnt) goto nomem;
  if (G == 0) return 0;
  im->lv = calloc(im->L, sizeof *im->lv);
  size_t gk;
  if (dl_mul_overflow(G, im->k, &gk) || gk > DL_MAX_ELEMS) goto nomem;
  im->sel_idx = malloc(gk * sizeof *im->sel_idx);
  im->sel_t = malloc(gk * sizeof *im->sel_t);
  im->sel_u = malloc(gk * sizeof *im->sel_u);
  im->sel_n = malloc(G * sizeof *im->sel_n);
  im->ag = malloc(A * sizeof *im->ag);
  im->at = malloc(A * sizeof *im->at);
  im->au = malloc(A * sizeof *im->au);
  im->pa = malloc(G * sizeof *im->pa);
  im->po = malloc(G * sizeof *im->po);
  if (!im->lv || !im->sel_idx || !im->sel_t || !im->sel_u || !im->sel_n || !im->ag || !im->at ||
      !im->au || !im->pa || !im->po)
    goto nomem;
  size_t start = 0, nongrid = 0;
  for (size_t l = 0; l < im->L; l++) {
    tal_level *lv = &im->lv[l];
    lv->start = start;
    lv->n = x->L > 0 ? x->level_counts[l] : A;
    start += lv->n;
    /* tood scans every point; it needs the grid only in no pass */
    lv->grid = im->sem == DETLOSS_TASK_ALIGNED_TOOD ? 1 : detect_grid(x->points, lv);
    if (!lv->grid) nongrid += lv->n;
  }
  if (nongrid > 0) {
    im->ord = malloc(nongrid * sizeof *im->ord);
    size_t *tmp = malloc(nongrid * sizeof *tmp);
    if (!im->ord || !tmp) {
      free(tmp);
      goto nomem;
    }
    size_t off = 0;
    for (size_t l = 0; l < im->L; l++) {
      tal_level *lv = &im->lv[l];
      if (lv->grid) continue;
      lv->ord = im->ord + off;
      for (size_t j = 0; j < lv->n; j++) lv->ord[j] = lv->start + j;
      sort_by_x(x->points, lv->ord, tmp, lv->n);
      off += lv->n;
    }
    free(tmp);
  }
  return 0;
nomem:
  free_image(im);
  return 1;
}

static detloss_status assign_one(const tal_args *x, const detloss_task_aligned_options *opt,
                                 detloss_error *err) {
  detloss_task_aligned_options o = opt ? *opt : detloss_task_aligned_options_default();
  DL_FORWARD_IF_ERROR(dl_task_aligned_check_options(&o, "", err));
  DL_FORWARD_IF_ERROR(check_args(x, err));
  tal_img im;
  DL_RETURN_ERROR_IF(setup_image(&im, x, &o), err, DETLOSS_ERR_NOMEM, "assigned_gt",
                     "out of memory");
  int bad = run_image(&im, o.num_threads);
  free_image(&im);
  DL_RETURN_ERROR_IF(bad, err, DETLOSS_ERR_NOMEM, "assigned_gt", "out of memory");
  return DETLOSS_OK;
}

detloss_status detloss_assign_task_aligned(
    const float *points, size_t num_points, const size_t *level_counts, size_t num_levels,
    const float *scores, size_t num_classes, const float *pred_boxes, const float *gt,
    const int64_t *gt_labels, size_t num_gt, int64_t *assigned_gt, int64_t *assigned_labels,
    float *target_scores, float *align_metrics, const detloss_task_aligned_options *opt,
    detloss_error *err) {
  tal_args x = {points,        num_points,
                level_counts,  num_levels,
                scores,        num_classes,
                pred_boxes,    gt,
                gt_labels,     num_gt,
                assigned_gt,   assigned_labels,
                target_scores, align_metrics,
                NULL,          "points",
                NULL,          0};
  return assign_one(&x, opt, err);
}

/* Batch. */

typedef struct batch_ctx {
  tal_img *ims;
  int inner_threads;
  int *bad;
} batch_ctx;

static void batch_block(void *ctx, size_t i0, size_t i1, size_t block) {
  (void)block;
  batch_ctx *b = ctx;
  for (size_t i = i0; i < i1; i++) b->bad[i] = run_image(&b->ims[i], b->inner_threads);
}

/* err->where = "images[i]." + where. */
static void prefix_image(detloss_error *err, size_t i) {
  if (err == NULL) return;
  char tmp[DETLOSS_WHERE_MAX];
  snprintf(tmp, sizeof tmp, "images[%zu].%s", i, err->where);
  memcpy(err->where, tmp, sizeof tmp);
}

static void image_args(const detloss_task_aligned_image *im, size_t C, tal_args *x) {
  tal_args t = {im->points,
                im->num_points,
                im->level_counts,
                im->num_levels,
                im->scores,
                C,
                im->pred_boxes,
                im->gt,
                im->gt_labels,
                im->num_gt,
                im->assigned_gt,
                im->assigned_labels,
                im->target_scores,
                im->align_metrics,
                NULL,
                "points",
                NULL,
                0};
  *x = t;
}

detloss_status detloss_assign_task_aligned_batch(const detloss_task_aligned_image *images,
                                                 size_t num_images, size_t num_classes,
                                                 const detloss_task_aligned_options *opt,
                                                 detloss_error *err) {
  detloss_task_aligned_options o = opt ? *opt : detloss_task_aligned_options_default();
  DL_FORWARD_IF_ERROR(dl_task_aligned_check_options(&o, "", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(images, num_images, "images", err));
  for (size_t i = 0; i < num_images; i++) {
    tal_args x;
    image_args(&images[i], num_classes, &x);
    detloss_status st = check_args(&x, err);
    if (st != DETLOSS_OK) {
      prefix_image(err, i);
      return st;
    }
  }
  /* outputs of different images may not overlap each other */
  for (size_t i = 0; i < num_images; i++)
    for (size_t j = i + 1; j < num_images; j++) {
      dl_span s[2] = {dl_span_of(images[i].assigned_gt, images[i].num_points, sizeof(int64_t),
                                 "assigned_gt", 1),
                      dl_span_of(images[j].assigned_gt, images[j].num_points, sizeof(int64_t),
                                 "assigned_gt", 1)};
      if (dl_check_overlaps(s, 2, err) != DETLOSS_OK) {
        prefix_image(err, j);
        return DETLOSS_ERR_SHAPE;
      }
    }
  if (num_images == 0) return DETLOSS_OK;
  tal_img *ims = calloc(num_images, sizeof *ims);
  int *bad = calloc(num_images, sizeof *bad);
  int nomem = !ims || !bad;
  for (size_t i = 0; !nomem && i < num_images; i++) {
    tal_args x;
    image_args(&images[i], num_classes, &x);
    nomem = setup_image(&ims[i], &x, &o);
  }
  if (!nomem) {
    /* one image: its gts in parallel; several: the images in parallel */
    batch_ctx b = {ims, num_images == 1 ? o.num_threads : 1, bad};
    dl_parallel_blocks(num_images, 1, num_images == 1 ? 1 : o.num_threads, batch_block, &b);
    for (size_t i = 0; i < num_images; i++) nomem |= bad[i];
  }
  for (size_t i = 0; ims && i < num_images; i++) free_image(&ims[i]);
  free(ims);
  free(bad);
  DL_RETURN_ERROR_IF(nomem, err, DETLOSS_ERR_NOMEM, "images", "out of memory");
  return DETLOSS_OK;
}

/* The assign interface. */

void dl_task_aligned_options_default(void *o) {
  *(detloss_task_aligned_options *)o = detloss_task_aligned_options_default();
}

detloss_status dl_assign_task_aligned(const dl_assign_input *in, const void *options,
                                      dl_assign_result *out, detloss_error *err) {
  detloss_task_aligned_options o = options ? *(const detloss_task_aligned_options *)options
                                           : detloss_task_aligned_options_default();
  o.num_threads = in->num_threads;
  DL_RETURN_ERROR_IF(in->anchor_config != NULL && in->points == NULL, err, DETLOSS_ERR_UNSUPPORTED,
                     "anchor_config",
                     "task_aligned takes points or anchor boxes, not a grid config");
  float *centres = NULL;
  const float *pts = in->points;
  const char *pn = "points";
  if (pts == NULL) {
    size_t A = in->num_anchors;
    pn = "anchors";
    DL_FORWARD_IF_ERROR(dl_check_coords(in->anchors, A, "anchors", err));
    if (A > 0) {
      centres = malloc(A * 2 * sizeof *centres);
      DL_RETURN_ERROR_IF(!centres, err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
      /* mmdet anchor_center: (x1 + x2) / 2 in float */
      for (size_t a = 0; a < A; a++) {
        centres[2 * a] = (in->anchors[4 * a] + in->anchors[4 * a + 2]) / 2.0f;
        centres[2 * a + 1] = (in->anchors[4 * a + 1] + in->anchors[4 * a + 3]) / 2.0f;
      }
    }
    pts = centres;
  }
  tal_args x = {pts,
                in->num_anchors,
                in->level_counts,
                in->level_counts ? in->num_levels : 0,
                in->pred_scores,
                in->num_classes,
                in->pred_boxes,
                in->gt,
                in->gt_labels,
                in->num_gt,
                out->gt_index,
                out->labels,
                out->target_scores,
                out->align_metrics,
                out->quality,
                pn,
                in->gt_valid,
                in->scores_are_logits};
  detloss_status st = assign_one(&x, &o, err);
  free(centres);
  return st;
}
