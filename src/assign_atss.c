/*
 * assign_atss.c - ATSS, Adaptive Training Sample Selection (docs/math/atss.md).
 *
 * Semantics (Zhang et al., CVPR 2020; mmdetection 3.x ATSSAssigner.assign and
 * sfzhang15/ATSS ATSSLossComputation.prepare_targets, loss.py:131-189):
 *   centre(box) = ((x1 + x2) / 2, (y1 + y2) / 2);  d(a, g) = |centre(a) - centre(g)|
 *   C_g = union over levels l of the k_l anchors of level l nearest g by d,
 *         k_l = min(topk, n_l) (mmdet) or min(topk * anchors_per_location, n_l) (original)
 *   t_g = mean(IoU(C_g, g)) + std(IoU(C_g, g)), std unbiased (torch's .std(); NaN, so no
 *         positive, when |C_g| = 1)
 *   a in C_g is positive for g when IoU(a, g) >= t_g and min(cx - x1, cy - y1, x2 - cx,
 *   y2 - cy) > 0.01 (an absolute 0.01 px margin, in both references)
 *   an anchor positive for several gts goes to the one of highest IoU, lowest index on ties
 *   (torch.max over the gt axis of a -INF-filled matrix).
 * IoU: mmdet BboxOverlaps2D (no +1; union clamped to >= 1e-6); original boxlist_iou (areas
 * (w+1)(h+1), intersection (rb - lt + 1).clamp(0), no eps).
 * Ignore (mmdet only, when ignore_iof_thr > 0 and there are ignore boxes): anchors whose max
 * IoF (intersection / max(anchor area, 1e-6)) with an ignore box is > thr get -2 and the
 * distance INF = 1e8 to every gt; their IoUs still enter the statistics and they still become
 * positive if selected (mmdet's behaviour, kept).
 *
 * Tie rule: torch.topk's order among equal distances is undefined; here the k nearest are
 * the first k in the order (distance, anchor index), i.e. a tie at the k-th place goes to the
 * lowest anchor index, and the candidates enter the mean in that order, level by level.
 *
 * Algorithm: one bucket grid per level over the anchor centres (point_grid.h), shared by all
 * gts and all images of a batch. For each gt and level, rings of cells around the gt centre's
 * cell are visited until k candidates are held and the next ring's distance lower bound
 * exceeds the k-th distance (so ties are seen too); near borders the rings simply go on.
 * Only the candidates' IoUs are computed, in float64. Per gt the positives (at most
 * sum_l k_l) are kept; a serial pass in gt order resolves conflicts, so the result does not
 * depend on the thread count. Memory O(A + G * sum_l k_l).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "parallel.h"
#include "point_grid.h"

#define ATSS_INF 100000000.0 /* mmdet's INF for the distances of ignored anchors */
#define ATSS_EPS 1e-6        /* mmdet bbox_overlaps eps (union and IoF denominator) */
#define GT_BLOCK 8           /* gts per parallel block */
#define GT_PARALLEL 256      /* fewer gts run on one thread: a parallel region costs more */

detloss_atss_options detloss_atss_options_default(void) {
  detloss_atss_options o = DETLOSS_ATSS_OPTIONS_INIT;
  return o;
}

/* The anchor set: level offsets, centres and one grid per level (shared, read-only). */
typedef struct atss_set {
  size_t A, L;
  const float *anchors;
  size_t *off;          /* [L + 1] */
  double *ctr;          /* [A][2] */
  dl_point_grid *grids; /* [L] */
  size_t *k;            /* [L]: k_l */
  size_t K;             /* sum k_l */
} atss_set;

static void set_free(atss_set *s) {
  if (s->grids)
    for (size_t l = 0; l < s->L; l++) dl_point_grid_free(&s->grids[l]);
  free(s->grids);
  free(s->ctr);
  free(s->off);
  free(s->k);
  memset(s, 0, sizeof *s);
}

static detloss_status set_build(const float *anchors, size_t A, const size_t *lc, size_t L,
                                size_t kper, atss_set *s, detloss_error *err) {
  memset(s, 0, sizeof *s);
  s->A = A;
  s->L = L;
  s->anchors = anchors;
  s->off = calloc(L + 1, sizeof *s->off);
  s->k = calloc(L ? L : 1, sizeof *s->k);
  s->ctr = malloc((A ? 2 * A : 1) * sizeof *s->ctr);
  s->grids = calloc(L ? L : 1, sizeof *s->grids);
  if (!s->off || !s->k || !s->ctr || !s->grids) {
    set_free(s);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
  }
  for (size_t a = 0; a < A; a++) {
    const float *b = anchors + 4 * a;
    s->ctr[2 * a] = ((double)b[0] + (double)b[2]) / 2.0;
    s->ctr[2 * a + 1] = ((double)b[1] + (double)b[3]) / 2.0;
  }
  for (size_t l = 0; l < L; l++) {
    s->off[l + 1] = s->off[l] + lc[l];
    s->k[l] = lc[l] < kper ? lc[l] : kper;
    s->K += s->k[l];
    if (dl_point_grid_build(s->ctr + 2 * s->off[l], lc[l], &s->grids[l]) != 0) {
      set_free(s);
      return dl_fail(err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
    }
  }
  return DETLOSS_OK;
}

/* Inserts (d, i) into the sorted buffer bd/bi of n <= k entries (order: d, then i). */
static size_t keep_best(double *bd, size_t *bi, size_t n, size_t k, double d, size_t i) {
  if (n == k && !(d < bd[k - 1] || (d == bd[k - 1] && i < bi[k - 1]))) return n;
  size_t p = n < k ? n : k - 1;
  while (p > 0 && (d < bd[p - 1] || (d == bd[p - 1] && i < bi[p - 1]))) {
    bd[p] = bd[p - 1];
    bi[p] = bi[p - 1];
    p--;
  }
  bd[p] = d;
  bi[p] = i;
  return n < k ? n + 1 : k;
}

/* Visits one cell: every point not skipped enters the k-buffer. */
static size_t visit(const dl_point_grid *g, size_t col, size_t row, const double *ctr,
                    const uint8_t *skip, double cx, double cy, size_t k, double *bd, size_t *bi,
                    size_t n) {
  size_t c = row * g->gx + col;
  for (size_t p = g->start[c]; p < g->start[c + 1]; p++) {
    size_t i = g->items[p];
    if (skip && skip[i]) continue;
    double dx = ctr[2 * i] - cx, dy = ctr[2 * i + 1] - cy;
    n = keep_best(bd, bi, n, k, sqrt(dx * dx + dy * dy), i);
  }
  return n;
}

/* The k points (not skipped) nearest (cx, cy), in the order (distance, index), into
 * bd/bi; returns how many were found (< k only when fewer exist). Rings of cells around
 * the centre's cell; ring r is visited unless k are held and every point outside the
 * rings < r is provably farther than the k-th (a lower bound minus a rounding slack). */
static size_t knn(const dl_point_grid *g, const double *ctr, const uint8_t *skip, double cx,
                  double cy, size_t k, double *bd, size_t *bi) {
  size_t ci = dl_point_grid_col(g, cx), cj = dl_point_grid_row(g, cy);
  size_t maxr = ci;
  if (g->gx - 1 - ci > maxr) maxr = g->gx - 1 - ci;
  if (cj > maxr) maxr = cj;
  if (g->gy - 1 - cj > maxr) maxr = g->gy - 1 - cj;
  const double slack =
      1e-12 * (fabs(cx) + fabs(cy) + fabs(g->x0) + fabs(g->y0) + (double)(g->gx + g->gy) * g->h) +
      1e-300;
  size_t n = visit(g, ci, cj, ctr, skip, cx, cy, k, bd, bi, 0);
  for (size_t r = 1; r <= maxr; r++) {
    if (n == k) {
      /* distance from the centre to the outside of the cells [ci-r+1, ci+r-1] x [cj-r+1,
       * cj+r-1]; a side at the grid's border has nothing beyond it */
      double lb = HUGE_VAL;
      if (ci >= r) lb = fmin(lb, cx - (g->x0 + (double)(ci - r + 1) * g->h));
      if (ci + r < g->gx) lb = fmin(lb, (g->x0 + (double)(ci + r) * g->h) - cx);
      if (cj >= r) lb = fmin(lb, cy - (g->y0 + (double)(cj - r + 1) * g->h));
      if (cj + r < g->gy) lb = fmin(lb, (g->y0 + (double)(cj + r) * g->h) - cy);
      if (lb - slack > bd[k - 1]) break;
    }
    size_t i0 = ci >= r ? ci - r : 0, i1 = ci + r < g->gx ? ci + r : g->gx - 1;
    size_t j0 = cj >= r ? cj - r : 0, j1 = cj + r < g->gy ? cj + r : g->gy - 1;
    if (cj >= r)
      for (size_t i = i0; i <= i1; i++) n = visit(g, i, cj - r, ctr, skip, cx, cy, k, bd, bi, n);
    if (cj + r < g->gy)
      for (size_t i = i0; i <= i1; i++) n = visit(g, i, cj + r, ctr, skip, cx, cy, k, bd, bi, n);
    size_t jj0 = cj >= r ? cj - r + 1 : j0, jj1 = cj + r < g->gy ? cj + r - 1 : j1;
    if (jj0 <= jj1) {
      if (ci >= r)
        for (size_t j = jj0; j <= jj1; j++)
          n = visit(g, ci - r, j, ctr, skip, cx, cy, k, bd, bi, n);
      if (ci + r < g->gx)
        for (size_t j = jj0; j <= jj1; j++)
          n = visit(g, ci + r, j, ctr, skip, cx, cy, k, bd, bi, n);
    }
  }
  return n;
}

/* IoU of anchor a and gt b in float64: mmdet (legacy = 0) or the +1 convention. */
static double pair_iou(const float *a, const float *b, int legacy) {
  double ax1 = a[0], ay1 = a[1], ax2 = a[2], ay2 = a[3];
  double bx1 = b[0], by1 = b[1], bx2 = b[2], by2 = b[3];
  double one = legacy ? 1.0 : 0.0;
  double area_a = (ax2 - ax1 + one) * (ay2 - ay1 + one);
  double area_b = (bx2 - bx1 + one) * (by2 - by1 + one);
  double w = fmin(ax2, bx2) - fmax(ax1, bx1) + one;
  double h = fmin(ay2, by2) - fmax(ay1, by1) + one;
  w = w > 0 ? w : 0;
  h = h > 0 ? h : 0;
  double inter = w * h;
  double uni = area_a + area_b - inter;
  if (!legacy) uni = uni > ATSS_EPS ? uni : ATSS_EPS;
  return inter / uni;
}

/* IoF of anchor a with an ignore box b (mmdet bbox_overlaps mode 'iof'). */
static double pair_iof(const float *a, const float *b) {
  double ax1 = a[0], ay1 = a[1], ax2 = a[2], ay2 = a[3];
  double area_a = (ax2 - ax1) * (ay2 - ay1);
  double w = fmin(ax2, (double)b[2]) - fmax(ax1, (double)b[0]);
  double h = fmin(ay2, (double)b[3]) - fmax(ay1, (double)b[1]);
  w = w > 0 ? w : 0;
  h = h > 0 ? h : 0;
  return (w * h) / (area_a > ATSS_EPS ? area_a : ATSS_EPS);
}

/* One image's work shared by its gt blocks. */
typedef struct atss_image {
  const atss_set *s;
  const float *gt;
  size_t G;
  int legacy;
  const uint8_t *ignored;  /* [A] or NULL */
  const size_t *ign_first; /* [L][kmax]: the first ignored anchors of each level (global idx) */
  const size_t *ign_count; /* [L] */
  size_t kmax;
  size_t *pos_idx;     /* [G][K] */
  double *pos_iou;     /* [G][K] */
  size_t *pos_n;       /* [G] */
  uint8_t *block_fail; /* [blocks]: 1 when a block ran out of memory */
} atss_image;

static void gt_block(void *ctx, size_t g0, size_t g1, size_t block) {
  atss_image *im = ctx;
  const atss_set *s = im->s;
  size_t kmax = im->kmax, K = s->K;
  double *bd = malloc((2 * kmax + K + 1) * sizeof *bd);
  size_t *bi = malloc((2 * kmax + K + 1) * sizeof *bi);
  if (!bd || !bi) {
    free(bd);
    free(bi);
    im->block_fail[block] = 1;
    return;
  }
  size_t *cand = bi + 2 * kmax; /* [K] global anchor indices */
  double *ciou = bd + 2 * kmax; /* [K] */
  for (size_t g = g0; g < g1; g++) {
    const float *b = im->gt + 4 * g;
    double gcx = ((double)b[0] + (double)b[2]) / 2.0, gcy = ((double)b[1] + (double)b[3]) / 2.0;
    size_t nc = 0;
    for (size_t l = 0; l < s->L; l++) {
      size_t kl = s->k[l], off = s->off[l];
      if (kl == 0) continue;
      const uint8_t *skip = im->ignored ? im->ignored + off : NULL;
      size_t n = knn(&s->grids[l], s->ctr + 2 * off, skip, gcx, gcy, kl, bd, bi);
      if (n < kl || (im->ignored && im->ign_count[l] > 0 && bd[n - 1] >= ATSS_INF)) {
        /* merge with the ignored anchors of the level, all at distance INF */
        double *md = bd + kmax;
        size_t *mi = bi + kmax;
        size_t p = 0, q = 0, m = 0;
        const size_t *ig = im->ign_first + l * kmax;
        size_t ni = im->ign_count[l];
        while (m < kl && (p < n || q < ni)) {
          int take_real =
              q >= ni ||
              (p < n && (bd[p] < ATSS_INF || (bd[p] == ATSS_INF && bi[p] + off < ig[q])));
          if (take_real) {
            md[m] = bd[p];
            mi[m++] = bi[p++];
          } else {
            md[m] = ATSS_INF;
            mi[m++] = ig[q++] - off;
          }
        }
        memcpy(bd, md, m * sizeof *bd);
        memcpy(bi, mi, m * sizeof *bi);
        n = m;
      }
      for (size_t j = 0; j < n; j++) cand[nc++] = bi[j] + off;
    }
    double sum = 0;
    for (size_t j = 0; j < nc; j++) {
      ciou[j] = pair_iou(s->anchors + 4 * cand[j], b, im->legacy);
      sum += ciou[j];
    }
    size_t np = 0;
    if (nc > 1) {
      double mean = sum / (double)nc, ss = 0;
      for (size_t j = 0; j < nc; j++) ss += (ciou[j] - mean) * (ciou[j] - mean);
      double thr = mean + sqrt(ss / (double)(nc - 1));
      for (size_t j = 0; j < nc; j++) {
        if (!(ciou[j] >= thr)) continue;
        double cx = s->ctr[2 * cand[j]], cy = s->ctr[2 * cand[j] + 1];
        double m = fmin(fmin(cx - (double)b[0], cy - (double)b[1]),
                        fmin((double)b[2] - cx, (double)b[3] - cy));
        if (!(m > 0.01)) continue;
        im->pos_idx[g * K + np] = cand[j];
        im->pos_iou[g * K + np] = ciou[j];
        np++;
      }
    }
    im->pos_n[g] = np;
  }
  free(bd);
  free(bi);
}

/* One image on a built set; inputs validated. Outputs written only on success. */
static detloss_status atss_run(const atss_set *s, const float *gt, size_t G, const float *ign,
                               size_t K, const detloss_atss_options *o, int nthreads,
                               int64_t *assigned_gt, float *assigned_iou, detloss_error *err) {
  size_t A = s->A;
  if (G == 0 || A == 0) {
    for (size_t a = 0; a < A; a++) assigned_gt[a] = DL_ASSIGN_BACKGROUND;
    if (assigned_iou) memset(assigned_iou, 0, A * sizeof *assigned_iou);
    return DETLOSS_OK;
  }
  const int use_ignore = o->semantics == DETLOSS_ATSS_MMDET && o->ignore_iof_thr > 0 && K > 0;
  size_t kmax = 0;
  for (size_t l = 0; l < s->L; l++) kmax = s->k[l] > kmax ? s->k[l] : kmax;
  size_t nb = dl_num_blocks(G, GT_BLOCK), gk;
  atss_image im;
  memset(&im, 0, sizeof im);
  im.s = s;
  im.gt = gt;
  im.G = G;
  im.legacy = o->semantics == DETLOSS_ATSS_ORIGINAL;
  im.kmax = kmax;
  detloss_status st = DETLOSS_OK;
  uint8_t *ignored = NULL;
  size_t *ign_first = NULL, *ign_count = NULL;
  double *best = NULL;
  if (dl_mul_overflow(G, s->K, &gk) || gk > DL_MAX_ELEMS)
    return dl_fail(err, DETLOSS_ERR_SHAPE, "gt", "%zu gts x %zu candidates is too large", G, s->K);
  im.pos_idx = malloc((gk ? gk : 1) * sizeof *im.pos_idx);
  im.pos_iou = malloc((gk ? gk : 1) * sizeof *im.pos_iou);
  im.pos_n = calloc(G, sizeof *im.pos_n);
  im.block_fail = calloc(nb ? nb : 1, 1);
  best = malloc(A * sizeof *best);
  if (use_ignore) {
    ignored = calloc(A, 1);
    ign_first = malloc((s->L * kmax + 1) * sizeof *ign_first);
    ign_count = calloc(s->L ? s->L : 1, sizeof *ign_count);
  }
  if (!im.pos_idx || !im.pos_iou || !im.pos_n || !im.block_fail || !best ||
      (use_ignore && (!ignored || !ign_first || !ign_count))) {
    st = dl_fail(err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
    goto done;
  }
  if (use_ignore) {
    for (size_t l = 0; l < s->L; l++)
      for (size_t a = s->off[l]; a < s->off[l + 1]; a++) {
        double mx = 0;
        for (size_t q = 0; q < K; q++) {
          double v = pair_iof(s->anchors + 4 * a, ign + 4 * q);
          mx = v > mx ? v : mx;
        }
        if (mx > (double)o->ignore_iof_thr) {
          ignored[a] = 1;
          if (ign_count[l] < kmax) ign_first[l * kmax + ign_count[l]++] = a;
        }
      }
    im.ignored = ignored;
    im.ign_first = ign_first;
    im.ign_count = ign_count;
  }
  dl_parallel_blocks(G, GT_BLOCK, G < GT_PARALLEL ? 1 : nthreads, gt_block, &im);
  for (size_t b = 0; b < nb; b++)
    if (im.block_fail[b]) {
      st = dl_fail(err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
      goto done;
    }
  /* conflicts, in gt order: strictly higher IoU wins, so ties keep the lowest gt */
  for (size_t a = 0; a < A; a++) {
    best[a] = -HUGE_VAL;
    assigned_gt[a] = ignored && ignored[a] ? DL_ASSIGN_IGNORE : DL_ASSIGN_BACKGROUND;
  }
  for (size_t g = 0; g < G; g++)
    for (size_t j = 0; j < im.pos_n[g]; j++) {
      size_t a = im.pos_idx[g * s->K + j];
      double v = im.pos_iou[g * s->K + j];
      if (v > best[a]) {
        best[a] = v;
        assigned_gt[a] = (int64_t)g;
      }
    }
  if (assigned_iou)
    for (size_t a = 0; a < A; a++) assigned_iou[a] = assigned_gt[a] >= 0 ? (float)best[a] : 0.0f;
done:
  free(im.pos_idx);
  free(im.pos_iou);
  free(im.pos_n);
  free(im.block_fail);
  free(best);
  free(ignored);
  free(ign_first);
  free(ign_count);
  return st;
}

/* The options check of the registry row: faults named under at. */
detloss_status dl_atss_check_options(const void *options, const char *at, detloss_error *err) {
  if (options == NULL) return DETLOSS_OK;
  const detloss_atss_options *o = (const detloss_atss_options *)options;
  char w[DETLOSS_WHERE_MAX];
  DL_RETURN_ERROR_IF(o->semantics != DETLOSS_ATSS_MMDET && o->semantics != DETLOSS_ATSS_ORIGINAL,
                     err, DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "semantics"),
                     "is %d (expected MMDET or ORIGINAL)", (int)o->semantics);
  DL_RETURN_ERROR_IF(o->topk < 1, err, DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "topk"),
                     "is %lld (expected >= 1)", (long long)o->topk);
  DL_RETURN_ERROR_IF(o->anchors_per_location < 1, err, DETLOSS_ERR_RANGE,
                     dl_assign_option_where(w, at, "anchors_per_location"),
                     "is %lld (expected >= 1)", (long long)o->anchors_per_location);
  DL_RETURN_ERROR_IF(!isfinite(o->ignore_iof_thr), err, DETLOSS_ERR_NONFINITE,
                     dl_assign_option_where(w, at, "ignore_iof_thr"), "is not finite");
  DL_RETURN_ERROR_IF(o->semantics == DETLOSS_ATSS_ORIGINAL && o->ignore_iof_thr >= 0, err,
                     DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "ignore_iof_thr"),
                     "is %g but the original ATSS has no ignore regions (use -1)",
                     (double)o->ignore_iof_thr);
  return DETLOSS_OK;
}

static detloss_status check_options(const detloss_atss_options *o, detloss_error *err) {
  return dl_atss_check_options(o, "", err);
}

/* k per level before the min with n_l. */
static size_t k_per_level(const detloss_atss_options *o) {
  if (o->semantics == DETLOSS_ATSS_MMDET) return (size_t)o->topk;
  uint64_t t = (uint64_t)o->topk, m = (uint64_t)o->anchors_per_location;
  return (t > SIZE_MAX / m) ? SIZE_MAX : (size_t)(t * m);
}

static detloss_status check_levels(const size_t *lc, size_t L, size_t A, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_ptr(lc, L, "level_counts", err));
  size_t sum = 0;
  for (size_t l = 0; l < L; l++)
    DL_RETURN_ERROR_IF(dl_add_overflow(sum, lc[l], &sum), err, DETLOSS_ERR_SHAPE, "level_counts",
                       "sum overflows");
  DL_RETURN_ERROR_IF(sum != A, err, DETLOSS_ERR_SHAPE, "level_counts",
                     "sums to %zu but there are %zu anchors", sum, A);
  return DETLOSS_OK;
}

static detloss_status check_common(const float *anchors, size_t A, const size_t *lc, size_t L,
                                   const detloss_atss_options *o, detloss_error *err) {
  DL_FORWARD_IF_ERROR(check_options(o, err));
  DL_FORWARD_IF_ERROR(dl_check_coords(anchors, A, "anchors", err));
  DL_FORWARD_IF_ERROR(check_levels(lc, L, A, err));
  return DETLOSS_OK;
}

/* The batch: images in parallel (one block per image), or one image with its gts in
 * parallel. */
typedef struct atss_batch {
  const atss_set *s;
  const detloss_atss_options *o;
  const float *gt, *ign;
  const size_t *gt_off, *ign_off; /* [B + 1] */
  int64_t *assigned_gt;
  float *assigned_iou;
  detloss_status *st;  /* [B] */
  detloss_error *errs; /* [B] */
} atss_batch;

static void image_block(void *ctx, size_t b0, size_t b1, size_t block) {
  (void)block;
  atss_batch *bt = ctx;
  size_t A = bt->s->A;
  for (size_t b = b0; b < b1; b++)
    bt->st[b] = atss_run(bt->s, bt->gt + 4 * bt->gt_off[b], bt->gt_off[b + 1] - bt->gt_off[b],
                         bt->ign + 4 * bt->ign_off[b], bt->ign_off[b + 1] - bt->ign_off[b], bt->o,
                         1, bt->assigned_gt + b * A,
                         bt->assigned_iou ? bt->assigned_iou + b * A : NULL, &bt->errs[b]);
}

/* Prefix sums of counts [B] (NULL: all 0) into off [B + 1]; 0 or 1 on overflow. */
static int prefix(const size_t *counts, size_t B, size_t *off) {
  off[0] = 0;
  for (size_t b = 0; b < B; b++)
    if (dl_add_overflow(off[b], counts ? counts[b] : 0, &off[b + 1])) return 1;
  return 0;
}

detloss_status detloss_atss_assign_batch(size_t num_images, const float *anchors,
                                         size_t num_anchors, const size_t *level_counts,
                                         size_t num_levels, const float *gt,
                                         const size_t *gt_counts, const float *ignore,
                                         const size_t *ignore_counts, int64_t *assigned_gt,
                                         float *assigned_iou, const detloss_atss_options *opt,
                                         detloss_error *err) {
  detloss_atss_options o = opt ? *opt : detloss_atss_options_default();
  size_t B = num_images, A = num_anchors, out_n;
  DL_FORWARD_IF_ERROR(check_common(anchors, A, level_counts, num_levels, &o, err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(gt_counts, B, "gt_counts", err));
  DL_RETURN_ERROR_IF(dl_mul_overflow(B, A, &out_n) || out_n > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE,
                     "assigned_gt", "%zu images x %zu anchors is too large", B, A);
  size_t *gt_off = malloc((B + 1) * sizeof *gt_off);
  size_t *ign_off = malloc((B + 1) * sizeof *ign_off);
  detloss_status *sts = calloc(B ? B : 1, sizeof *sts);
  detloss_error *errs = calloc(B ? B : 1, sizeof *errs);
  atss_set s;
  memset(&s, 0, sizeof s);
  detloss_status st = DETLOSS_OK;
  if (!gt_off || !ign_off || !sts || !errs) {
    st = dl_fail(err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
    goto done;
  }
  if (prefix(gt_counts, B, gt_off)) {
    st = dl_fail(err, DETLOSS_ERR_SHAPE, "gt_counts", "sum overflows");
    goto done;
  }
  if (prefix(ignore_counts, B, ign_off)) {
    st = dl_fail(err, DETLOSS_ERR_SHAPE, "ignore_counts", "sum overflows");
    goto done;
  }
  size_t G = gt_off[B], K = ign_off[B];
  if ((st = dl_check_coords(gt, G, "gt", err)) != DETLOSS_OK) goto done;
  if ((st = dl_check_coords(ignore, K, "ignore", err)) != DETLOSS_OK) goto done;
  if (o.semantics == DETLOSS_ATSS_ORIGINAL && K > 0) {
    st = dl_fail(err, DETLOSS_ERR_RANGE, "ignore",
                 "has %zu boxes but the original ATSS has no ignore regions", K);
    goto done;
  }
  if ((st = dl_check_ptr(assigned_gt, out_n, "assigned_gt", err)) != DETLOSS_OK) goto done;
  {
    dl_span sp[5] = {
        dl_span_of(anchors, A * 4, sizeof(float), "anchors", 0),
        dl_span_of(gt, G * 4, sizeof(float), "gt", 0),
        dl_span_of(ignore, K * 4, sizeof(float), "ignore", 0),
        dl_span_of(assigned_gt, out_n, sizeof(int64_t), "assigned_gt", 1),
        dl_span_of(assigned_iou, assigned_iou ? out_n : 0, sizeof(float), "assigned_iou", 1),
    };
    if ((st = dl_check_overlaps(sp, 5, err)) != DETLOSS_OK) goto done;
  }
  if ((st = set_build(anchors, A, level_counts, num_levels, k_per_level(&o), &s, err)) !=
      DETLOSS_OK)
    goto done;
  if (B == 1) {
    st = atss_run(&s, gt, G, ignore, K, &o, o.num_threads, assigned_gt, assigned_iou, err);
  } else {
    /* The images write staged copies, published only when every image succeeded: one
     * image out of memory must not leave the others' outputs written (test_nomem). */
    int64_t *tg = malloc(out_n * sizeof *tg);
    float *ti = assigned_iou ? malloc(out_n * sizeof *ti) : NULL;
    if (!tg || (assigned_iou && !ti)) {
      free(tg);
      free(ti);
      st = dl_fail(err, DETLOSS_ERR_NOMEM, "assigned_gt", "out of memory");
      goto done;
    }
    atss_batch bt = {&s, &o, gt, ignore, gt_off, ign_off, tg, ti, sts, errs};
    dl_parallel_blocks(B, 1, o.num_threads, image_block, &bt);
    for (size_t b = 0; b < B; b++)
      if (sts[b] != DETLOSS_OK) {
        st = sts[b];
        if (err) *err = errs[b];
        break;
      }
    if (st == DETLOSS_OK) {
      memcpy(assigned_gt, tg, out_n * sizeof *tg);
      if (assigned_iou) memcpy(assigned_iou, ti, out_n * sizeof *ti);
    }
    free(tg);
    free(ti);
  }
done:
  set_free(&s);
  free(gt_off);
  free(ign_off);
  free(sts);
  free(errs);
  return st;
}

detloss_status detloss_atss_assign(const float *anchors, size_t num_anchors,
                                   const size_t *level_counts, size_t num_levels, const float *gt,
                                   size_t num_gt, const float *ignore, size_t num_ignore,
                                   int64_t *assigned_gt, float *assigned_iou,
                                   const detloss_atss_options *opt, detloss_error *err) {
  return detloss_atss_assign_batch(1, anchors, num_anchors, level_counts, num_levels, gt, &num_gt,
                                   ignore, &num_ignore, assigned_gt, assigned_iou, opt, err);
}

/* The assigner of the registry: levels from anchor_level, ignore regions from gt_is_crowd. */
detloss_status dl_assign_atss(const dl_assign_input *in, const void *options, dl_assign_result *out,
                              detloss_error *err) {
  detloss_atss_options o =
      options ? *(const detloss_atss_options *)options : detloss_atss_options_default();
  o.num_threads = in->num_threads;
  size_t A = in->num_anchors, G = in->num_gt;
  DL_RETURN_ERROR_IF(in->anchor_config != NULL, err, DETLOSS_ERR_UNSUPPORTED, "anchor_config",
                     "the ATSS assigner takes anchor boxes, not a grid config");
  DL_FORWARD_IF_ERROR(dl_check_ptr(out->gt_index, A, "gt_index", err));
  DL_RETURN_ERROR_IF(out->labels != NULL && G > 0 && in->gt_labels == NULL, err, DETLOSS_ERR_NULL,
                     "gt_labels", "is NULL but per-anchor labels are asked for");
  /* level counts from the (non-decreasing) levels */
  size_t L = 1;
  if (in->anchor_level != NULL && A > 0) {
    for (size_t a = 0; a < A; a++) {
      DL_RETURN_ERROR_IF(in->anchor_level[a] < 0 ||
                             (a > 0 && in->anchor_level[a] < in->anchor_level[a - 1]),
                         err, DETLOSS_ERR_RANGE, "anchor_level",
                         "must be >= 0 and non-decreasing (level-major anchors)");
    }
    L = (size_t)in->anchor_level[A - 1] + 1;
  }
  size_t *lc = calloc(L, sizeof *lc);
  float *gtb = NULL, *ign = NULL;
  DL_RETURN_ERROR_IF(!lc, err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
  for (size_t a = 0; a < A; a++) lc[in->anchor_level ? (size_t)in->anchor_level[a] : 0]++;
  /* split gt into the gts and the crowd (ignore) boxes, keeping the gt indices */
  size_t *map = NULL, ng = G, nk = 0;
  detloss_status st = DETLOSS_OK;
  if (in->gt_is_crowd != NULL && G > 0) {
    gtb = malloc(4 * G * sizeof *gtb);
    ign = malloc(4 * G * sizeof *ign);
    map = malloc(G * sizeof *map);
    if (!gtb || !ign || !map) {
      st = dl_fail(err, DETLOSS_ERR_NOMEM, "gt", "out of memory");
      goto done;
    }
    ng = 0;
    for (size_t g = 0; g < G; g++) {
      if (in->gt_is_crowd[g]) {
        memcpy(ign + 4 * nk++, in->gt + 4 * g, 4 * sizeof(float));
      } else {
        memcpy(gtb + 4 * ng, in->gt + 4 * g, 4 * sizeof(float));
        map[ng++] = g;
      }
    }
  }
  int64_t *ag = malloc((A ? A : 1) * sizeof *ag);
  float *iou = malloc((A ? A : 1) * sizeof *iou);
  if (!ag || !iou) {
    free(ag);
    free(iou);
    st = dl_fail(err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
    goto done;
  }
  st =
      detloss_atss_assign(in->anchors, A, lc, L, map ? gtb : in->gt, ng, ign, nk, ag, iou, &o, err);
  if (st == DETLOSS_OK) {
    for (size_t a = 0; a < A; a++) {
      int64_t g = ag[a] >= 0 && map ? (int64_t)map[ag[a]] : ag[a];
      out->gt_index[a] = g;
      if (out->labels) out->labels[a] = g >= 0 ? in->gt_labels[g] : -1;
      if (out->quality) out->quality[a] = iou[a];
      if (out->bbox_targets) memset(out->bbox_targets + 4 * a, 0, 4 * sizeof(float));
    }
  }
  free(ag);
  free(iou);
done:
  free(lc);
  free(gtb);
  free(ign);
  free(map);
  return st;
}
