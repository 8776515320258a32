/*
 * assign_fcos.c - FCOS positives, regression and centerness targets
 * (docs/math/fcos_targets.md).
 *
 * Semantics (Tian et al., ICCV 2019; mmdetection FCOSHead._get_targets_single and
 * tianzhi0549/FCOS compute_targets_for_locations, loss.py:148-206, get_sample_region
 * 55-100), for point (x, y) of level l (stride s, range [lo, hi]) and gt g:
 *   l = x - x1, t = y - y1, r = x2 - x, b = y2 - y
 *   inside: min(l, t, r, b) > 0; with centre sampling radius rho: x and y strictly inside
 *     [max(cx - rho s, x1), max(cy - rho s, y1), min(cx + rho s, x2), min(cy + rho s, y2)],
 *     (cx, cy) = g's centre (both references build this box with where/max/min)
 *   in range: lo <= max(l, t, r, b) <= hi (both ends inclusive in both references)
 *   among the gts inside and in range the smallest area wins, lowest index on equal areas
 *   (torch.min): mmdet (x2-x1)(y2-y1), original (x2-x1+1)(y2-y1+1) (BoxList.area)
 *   bbox target (l, t, r, b) of the winner, / s with norm_on_bbox (mmdet norm_on_bbox, FCOS
 *   NORM_REG_TARGETS); centerness sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)).
 * Original's shortcut kept (loss.py:68): with centre sampling, when gt 0's centre x is
 * exactly 0 the sample region is empty for every gt, so no point is positive.
 * torchvision (0.14, models/detection/fcos.py FCOS.compute_loss): the same inside and centre
 * tests (|x - cx| < rho s and |y - cy| < rho s, and min(l, t, r, b) > 0, which is the clipped
 * sampling box above), but the range test is strict at both ends, lo < max(l, t, r, b) < hi,
 * and the smallest area is found as the largest key fl32(1e8 - fl32((x2-x1)(y2-y1))) (float32,
 * so areas closer than the float32 spacing at 1e8 tie and go to the lowest index), a point
 * staying background when that key is < 1e-5 (areas >= 1e8).
 * All geometry in float64 (the references' float32 tensors; our fixtures use float64).
 *
 * Algorithm: one bucket grid per level over the points; each gt visits only the cells its
 * (sampling) box covers on each level whose range it can meet, and keeps per point the best
 * (area, index). The order (area, index) is total, so the result does not depend on the
 * visiting order; levels are disjoint point ranges and run in parallel. Memory O(A + G).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "parallel.h"
#include "point_grid.h"

/* FCOS's default ranges (FCOS loss.py:103-109; mmdet FCOSHead, INF = 1e8). */
static const float DEFAULT_RANGES[5][2] = {{-1.0f, 64.0f},
                                           {64.0f, 128.0f},
                                           {128.0f, 256.0f},
                                           {256.0f, 512.0f},
                                           {512.0f, 1e8f}};

detloss_fcos_options detloss_fcos_options_default(void) {
  detloss_fcos_options o = DETLOSS_FCOS_OPTIONS_INIT;
  return o;
}

typedef struct fcos_set {
  size_t A, L;
  const float *points;
  const float *strides;
  const float *ranges; /* [L][2] */
  size_t *off;         /* [L + 1] */
  dl_point_grid *grids;
} fcos_set;

static void set_free(fcos_set *s) {
  if (s->grids)
    for (size_t l = 0; l < s->L; l++) dl_point_grid_free(&s->grids[l]);
  free(s->grids);
  free(s->off);
  memset(s, 0, sizeof *s);
}

static detloss_status set_build(const float *points, size_t A, const size_t *lc, size_t L,
                                const float *strides, const float *ranges, fcos_set *s,
                                detloss_error *err) {
  memset(s, 0, sizeof *s);
  s->A = A;
  s->L = L;
  s->points = points;
  s->strides = strides;
  s->ranges = ranges;
  s->off = calloc(L + 1, sizeof *s->off);
  s->grids = calloc(L ? L : 1, sizeof *s->grids);
  double *xy = malloc((A ? 2 * A : 1) * sizeof *xy);
  if (!s->off || !s->grids || !xy) {
    free(xy);
    set_free(s);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "points", "out of memory");
  }
  for (size_t i = 0; i < 2 * A; i++) xy[i] = points[i];
  for (size_t l = 0; l < L; l++) {
    s->off[l + 1] = s->off[l] + lc[l];
    if (dl_point_grid_build(xy + 2 * s->off[l], lc[l], &s->grids[l]) != 0) {
      free(xy);
      set_free(s);
      return dl_fail(err, DETLOSS_ERR_NOMEM, "points", "out of memory");
    }
  }
  free(xy);
  return DETLOSS_OK;
}

typedef struct fcos_image {
  const fcos_set *s;
  const detloss_fcos_options *o;
  const float *gt;
  size_t G;
  int64_t *win; /* [A]: best gt, -1 */
  double *area; /* [A]: its area */
  int shortcut; /* original's empty-region case */
} fcos_image;

/* torchvision's matching key of gt b: 1e8 - area in float32 (areas float32 too); larger wins. */
static float tv_key(const float *b) {
  float area = (b[2] - b[0]) * (b[3] - b[1]);
  return 1e8f - area;
}

static double gt_area(const float *b, int legacy) {
  double one = legacy ? 1.0 : 0.0;
  double x1 = b[0], y1 = b[1], x2 = b[2], y2 = b[3];
  return (x2 - x1 + one) * (y2 - y1 + one);
}

/* The sample region of gt b on a level of stride st: the gt box, or the centre box
 * clipped to it. */
static void region(const float *b, double st, const detloss_fcos_options *o, double *q) {
  q[0] = b[0];
  q[1] = b[1];
  q[2] = b[2];
  q[3] = b[3];
  if (!o->center_sampling) return;
  double cx = ((double)b[0] + (double)b[2]) / 2.0, cy = ((double)b[1] + (double)b[3]) / 2.0;
  double rs = (double)o->center_sample_radius * st;
  q[0] = fmax(cx - rs, (double)b[0]);
  q[1] = fmax(cy - rs, (double)b[1]);
  q[2] = fmin(cx + rs, (double)b[2]);
  q[3] = fmin(cy + rs, (double)b[3]);
}

static void level_block(void *ctx, size_t l0, size_t l1, size_t block) {
  (void)block;
  fcos_image *im = ctx;
  const fcos_set *s = im->s;
  const int legacy = im->o->semantics == DETLOSS_FCOS_ORIGINAL;
  const int tv = im->o->semantics == DETLOSS_FCOS_TORCHVISION;
  for (size_t l = l0; l < l1; l++) {
    const dl_point_grid *grid = &s->grids[l];
    size_t off = s->off[l];
    double st = s->strides[l], lo = s->ranges[2 * l], hi = s->ranges[2 * l + 1];
    if (s->off[l + 1] == off) continue;
    for (size_t g = 0; g < im->G; g++) {
      const float *bf = im->gt + 4 * g;
      const double b[4] = {bf[0], bf[1], bf[2], bf[3]};
      /* inside points have max(l,t,r,b) in [max(w,h)/2, max(w,h)]: skip levels out of reach
       * (with a margin for rounding) */
      double w = b[2] - b[0], h = b[3] - b[1], m = fmax(w, h);
      if (!(m > 0) || hi < 0.5 * m * (1 - 1e-9) - 1e-9 || lo > m * (1 + 1e-9) + 1e-9) continue;
      double q[4];
      region(bf, st, im->o, q);
      if (!(q[2] > q[0]) || !(q[3] > q[1])) continue;
      /* torchvision: the area order is that of its float32 key (see the top) */
      double area = tv ? -(double)tv_key(bf) : gt_area(bf, legacy);
      if (tv && !(tv_key(bf) >= 1e-5f)) continue;
      size_t c0 = dl_point_grid_col(grid, q[0]), c1 = dl_point_grid_col(grid, q[2]);
      size_t r0 = dl_point_grid_row(grid, q[1]), r1 = dl_point_grid_row(grid, q[3]);
      for (size_t rr = r0; rr <= r1; rr++)
        for (size_t cc = c0; cc <= c1; cc++) {
          size_t c = rr * grid->gx + cc;
          for (size_t p = grid->start[c]; p < grid->start[c + 1]; p++) {
            size_t a = off + grid->items[p];
            double x = s->points[2 * a], y = s->points[2 * a + 1];
            if (!(x - q[0] > 0 && y - q[1] > 0 && q[2] - x > 0 && q[3] - y > 0)) continue;
            double dl = x - b[0], dt = y - b[1], dr = b[2] - x, db = b[3] - y;
            double mx = fmax(fmax(dl, dt), fmax(dr, db));
            if (tv ? !(mx > lo && mx < hi) : !(mx >= lo && mx <= hi)) continue;
            if (im->win[a] < 0 || area < im->area[a] ||
                (area == im->area[a] && (int64_t)g < im->win[a])) {
              im->win[a] = (int64_t)g;
              im->area[a] = area;
            }
          }
        }
    }
  }
}

/* One image; inputs validated; outputs written only on success. */
static detloss_status fcos_run(const fcos_set *s, const float *gt, size_t G,
                               const detloss_fcos_options *o, int nthreads, int64_t *assigned_gt,
                               float *bbox_targets, float *centerness, detloss_error *err) {
  size_t A = s->A;
  fcos_image im;
  memset(&im, 0, sizeof im);
  im.s = s;
  im.o = o;
  im.gt = gt;
  im.G = G;
  im.win = malloc((A ? A : 1) * sizeof *im.win);
  im.area = malloc((A ? A : 1) * sizeof *im.area);
  if (!im.win || !im.area) {
    free(im.win);
    free(im.area);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "points", "out of memory");
  }
  for (size_t a = 0; a < A; a++) im.win[a] = DL_ASSIGN_BACKGROUND;
  /* FCOS loss.py:68: `center_x[..., 0].sum() == 0` returns an empty region */
  int shortcut = o->semantics == DETLOSS_FCOS_ORIGINAL && o->center_sampling && G > 0 &&
                 ((double)gt[0] + (double)gt[2]) / 2.0 == 0.0;
  /* levels in parallel only when there is enough work to pay for the region */
  if (G > 0 && !shortcut) dl_parallel_blocks(s->L, 1, G < 64 ? 1 : nthreads, level_block, &im);
  for (size_t l = 0; l < s->L; l++)
    for (size_t a = s->off[l]; a < s->off[l + 1]; a++) {
      int64_t g = im.win[a];
      assigned_gt[a] = g;
      double v[4] = {0, 0, 0, 0}, ctr = 0;
      if (g >= 0) {
        const float *bf = gt + 4 * g;
        const double b[4] = {bf[0], bf[1], bf[2], bf[3]};
        double x = s->points[2 * a], y = s->points[2 * a + 1];
        v[0] = x - b[0];
        v[1] = y - b[1];
        v[2] = b[2] - x;
        v[3] = b[3] - y;
        /* mmdet centerness_target: (min/max of l,r) * (min/max of t,b), then sqrt */
        ctr = sqrt((fmin(v[0], v[2]) / fmax(v[0], v[2])) * (fmin(v[1], v[3]) / fmax(v[1], v[3])));
        if (o->norm_on_bbox)
          for (int k = 0; k < 4; k++) v[k] /= (double)s->strides[l];
      }
      if (bbox_targets)
        for (int k = 0; k < 4; k++) bbox_targets[4 * a + k] = (float)v[k];
      if (centerness) centerness[a] = (float)ctr;
    }
  free(im.win);
  free(im.area);
  return DETLOSS_OK;
}

/* The options check of the registry row: faults named under at. */
detloss_status dl_fcos_check_options(const void *options, const char *at, detloss_error *err) {
  if (options == NULL) return DETLOSS_OK;
  const detloss_fcos_options *o = (const detloss_fcos_options *)options;
  char w[DETLOSS_WHERE_MAX];
  DL_RETURN_ERROR_IF(o->semantics != DETLOSS_FCOS_MMDET && o->semantics != DETLOSS_FCOS_ORIGINAL &&
                         o->semantics != DETLOSS_FCOS_TORCHVISION,
                     err, DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "semantics"),
                     "is %d (expected MMDET, ORIGINAL or TORCHVISION)", (int)o->semantics);
  DL_RETURN_ERROR_IF(!isfinite(o->center_sample_radius), err, DETLOSS_ERR_NONFINITE,
                     dl_assign_option_where(w, at, "center_sample_radius"), "is not finite");
  DL_RETURN_ERROR_IF(o->center_sample_radius < 0, err, DETLOSS_ERR_RANGE,
                     dl_assign_option_where(w, at, "center_sample_radius"), "is %g (expected >= 0)",
                     (double)o->center_sample_radius);
  return DETLOSS_OK;
}

static detloss_status check_inputs(const float *points, size_t A, const size_t *lc,
                                   const float *strides, size_t L, const detloss_fcos_options *o,
                                   const float **ranges, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_fcos_check_options(o, "", err));
  DL_RETURN_ERROR_IF(A > DL_MAX_ELEMS / 4, err, DETLOSS_ERR_SHAPE, "points", "too many points");
  DL_FORWARD_IF_ERROR(dl_check_ptr(points, A, "points", err));
  DL_FORWARD_IF_ERROR(dl_check_finite(points, 2 * A, "points", err));
  for (size_t i = 0; i < 2 * A; i++) {
    if (fabsf(points[i]) <= DL_COORD_MAX) continue;
    char where[40];
    snprintf(where, sizeof where, "points[%zu]", i); /* flat index, as dl_check_finite */
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "coordinate %g is larger in magnitude than %g",
                   (double)points[i], (double)DL_COORD_MAX);
  }
  DL_FORWARD_IF_ERROR(dl_check_ptr(lc, L, "level_counts", err));
  size_t sum = 0;
  for (size_t l = 0; l < L; l++)
    DL_RETURN_ERROR_IF(dl_add_overflow(sum, lc[l], &sum), err, DETLOSS_ERR_SHAPE, "level_counts",
                       "sum overflows");
  DL_RETURN_ERROR_IF(sum != A, err, DETLOSS_ERR_SHAPE, "level_counts",
                     "sums to %zu but there are %zu points", sum, A);
  DL_FORWARD_IF_ERROR(dl_check_ptr(strides, L, "strides", err));
  DL_FORWARD_IF_ERROR(dl_check_finite(strides, L, "strides", err));
  for (size_t l = 0; l < L; l++) {
    if (strides[l] > 0) continue;
    char where[32];
    snprintf(where, sizeof where, "strides[%zu]", l);
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %g (expected > 0)", (double)strides[l]);
  }
  *ranges = o->regress_ranges;
  if (*ranges == NULL) {
    DL_RETURN_ERROR_IF(L != 5 && L != 0, err, DETLOSS_ERR_SHAPE, "regress_ranges",
                       "is needed with %zu levels (the default has 5)", L);
    *ranges = &DEFAULT_RANGES[0][0];
  }
  DL_FORWARD_IF_ERROR(dl_check_finite(*ranges, 2 * L, "regress_ranges", err));
  for (size_t l = 0; l < L; l++) {
    if ((*ranges)[2 * l] <= (*ranges)[2 * l + 1]) continue;
    char where[40];
    snprintf(where, sizeof where, "regress_ranges[%zu]", l);
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "lo %g > hi %g", (double)(*ranges)[2 * l],
                   (double)(*ranges)[2 * l + 1]);
  }
  return DETLOSS_OK;
}

typedef struct fcos_batch {
  const fcos_set *s;
  const detloss_fcos_options *o;
  const float *gt;
  const size_t *gt_off;
  int64_t *assigned_gt;
  float *bbox_targets, *centerness;
  detloss_status *st;
  detloss_error *errs;
} fcos_batch;

static void image_block(void *ctx, size_t b0, size_t b1, size_t block) {
  (void)block;
  fcos_batch *bt = ctx;
  size_t A = bt->s->A;
  for (size_t b = b0; b < b1; b++)
    bt->st[b] =
        fcos_run(bt->s, bt->gt + 4 * bt->gt_off[b], bt->gt_off[b + 1] - bt->gt_off[b], bt->o, 1,
                 bt->assigned_gt + b * A, bt->bbox_targets ? bt->bbox_targets + 4 * b * A : NULL,
                 bt->centerness ? bt->centerness + b * A : NULL, &bt->errs[b]);
}

detloss_status detloss_fcos_targets_batch(size_t num_images, const float *points, size_t num_points,
                                          const size_t *level_counts, const float *strides,
                                          size_t num_levels, const float *gt,
                                          const size_t *gt_counts, int64_t *assigned_gt,
                                          float *bbox_targets, float *centerness,
                                          const detloss_fcos_options *opt, detloss_error *err) {
  detloss_fcos_options o = opt ? *opt : detloss_fcos_options_default();
  size_t B = num_images, A = num_points, L = num_levels, out_n;
  const float *ranges = NULL;
  DL_FORWARD_IF_ERROR(check_inputs(points, A, level_counts, strides, L, &o, &ranges, err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(gt_counts, B, "gt_counts", err));
  DL_RETURN_ERROR_IF(dl_mul_overflow(B, A, &out_n) || out_n > DL_MAX_ELEMS / 4, err,
                     DETLOSS_ERR_SHAPE, "assigned_gt", "%zu images x %zu points is too large", B,
                     A);
  size_t *gt_off = malloc((B + 1) * sizeof *gt_off);
  detloss_status *sts = calloc(B ? B : 1, sizeof *sts);
  detloss_error *errs = calloc(B ? B : 1, sizeof *errs);
  fcos_set s;
  memset(&s, 0, sizeof s);
  detloss_status st = DETLOSS_OK;
  if (!gt_off || !sts || !errs) {
    st = dl_fail(err, DETLOSS_ERR_NOMEM, "points", "out of memory");
    goto done;
  }
  gt_off[0] = 0;
  for (size_t b = 0; b < B; b++)
    if (dl_add_overflow(gt_off[b], gt_counts[b], &gt_off[b + 1])) {
      st = dl_fail(err, DETLOSS_ERR_SHAPE, "gt_counts", "sum overflows");
      goto done;
    }
  size_t G = gt_off[B];
  if ((st = dl_check_coords(gt, G, "gt", err)) != DETLOSS_OK) goto done;
  if ((st = dl_check_ptr(assigned_gt, out_n, "assigned_gt", err)) != DETLOSS_OK) goto done;
  {
    dl_span sp[7] = {
        dl_span_of(points, A * 2, sizeof(float), "points", 0),
        dl_span_of(strides, L, sizeof(float), "strides", 0),
        dl_span_of(ranges, 2 * L, sizeof(float), "regress_ranges", 0),
        dl_span_of(gt, G * 4, sizeof(float), "gt", 0),
        dl_span_of(assigned_gt, out_n, sizeof(int64_t), "assigned_gt", 1),
        dl_span_of(bbox_targets, bbox_targets ? 4 * out_n : 0, sizeof(float), "bbox_targets", 1),
        dl_span_of(centerness, centerness ? out_n : 0, sizeof(float), "centerness", 1),
    };
    if ((st = dl_check_overlaps(sp, 7, err)) != DETLOSS_OK) goto done;
  }
  if ((st = set_build(points, A, level_counts, L, strides, ranges, &s, err)) != DETLOSS_OK)
    goto done;
  if (B == 1) {
    st = fcos_run(&s, gt, G, &o, o.num_threads, assigned_gt, bbox_targets, centerness, err);
  } else {
    /* The images write staged copies, published only when every image succeeded: one
     * image out of memory must not leave the others' outputs written (test_nomem). */
    int64_t *tg = malloc(out_n * sizeof *tg);
    float *tb = bbox_targets ? malloc(4 * out_n * sizeof *tb) : NULL;
    float *tc = centerness ? malloc(out_n * sizeof *tc) : NULL;
    if (!tg || (bbox_targets && !tb) || (centerness && !tc)) {
      free(tg);
      free(tb);
      free(tc);
      st = dl_fail(err, DETLOSS_ERR_NOMEM, "assigned_gt", "out of memory");
      goto done;
    }
    fcos_batch bt = {&s, &o, gt, gt_off, tg, tb, tc, sts, errs};
    dl_parallel_blocks(B, 1, o.num_threads, image_block, &bt);
    for (size_t b = 0; b < B; b++)
      if (sts[b] != DETLOSS_OK) {
        st = sts[b];
        if (err) *err = errs[b];
        break;
      }
    if (st == DETLOSS_OK) {
      memcpy(assigned_gt, tg, out_n * sizeof *tg);
      if (bbox_targets) memcpy(bbox_targets, tb, 4 * out_n * sizeof *tb);
      if (centerness) memcpy(centerness, tc, out_n * sizeof *tc);
    }
    free(tg);
    free(tb);
    free(tc);
  }
done:
  set_free(&s);
  free(gt_off);
  free(sts);
  free(errs);
  return st;
}

detloss_status detloss_fcos_targets(const float *points, size_t num_points,
                                    const size_t *level_counts, const float *strides,
                                    size_t num_levels, const float *gt, size_t num_gt,
                                    int64_t *assigned_gt, float *bbox_targets, float *centerness,
                                    const detloss_fcos_options *opt, detloss_error *err) {
  return detloss_fcos_targets_batch(1, points, num_points, level_counts, strides, num_levels, gt,
                                    &num_gt, assigned_gt, bbox_targets, centerness, opt, err);
}

int dl_fcos_out_of_range(const float *b, const float *ranges, size_t L) {
  double m = fmax((double)b[2] - (double)b[0], (double)b[3] - (double)b[1]);
  if (!(m > 0.0)) return 0; /* no point is inside it: not a question of range */
  for (size_t l = 0; l < L; l++)
    if ((double)ranges[2 * l + 1] >= 0.5 * m && (double)ranges[2 * l] < m) return 0;
  return 1;
}

detloss_status detloss_fcos_out_of_range(const float *gt, size_t num_gt,
                                         const float *regress_ranges, size_t num_levels,
                                         uint8_t *out_of_range, size_t *num_out_of_range,
                                         detloss_error *err) {
  size_t L = num_levels;
  DL_FORWARD_IF_ERROR(dl_check_coords(gt, num_gt, "gt", err));
  const float *ranges = regress_ranges;
  if (ranges == NULL) {
    DL_RETURN_ERROR_IF(L != 5, err, DETLOSS_ERR_SHAPE, "regress_ranges",
                       "is needed with %zu levels (the default has 5)", L);
    ranges = &DEFAULT_RANGES[0][0];
  }
  DL_FORWARD_IF_ERROR(dl_check_finite(ranges, 2 * L, "regress_ranges", err));
  for (size_t l = 0; l < L; l++) {
    if (ranges[2 * l] <= ranges[2 * l + 1]) continue;
    char where[40];
    snprintf(where, sizeof where, "regress_ranges[%zu]", l);
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "lo %g > hi %g", (double)ranges[2 * l],
                   (double)ranges[2 * l + 1]);
  }
  if (out_of_range) {
    dl_span sp[3] = {
        dl_span_of(gt, 4 * num_gt, sizeof(float), "gt", 0),
        dl_span_of(ranges, 2 * L, sizeof(float), "regress_ranges", 0),
        dl_span_of(out_of_range, num_gt, 1, "out_of_range", 1),
    };
    DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 3, err));
  }
  size_t n = 0;
  for (size_t g = 0; g < num_gt; g++) {
    int o = dl_fcos_out_of_range(gt + 4 * g, ranges, L);
    n += (size_t)o;
    if (out_of_range) out_of_range[g] = (uint8_t)o;
  }
  if (num_out_of_range) *num_out_of_range = n;
  return DETLOSS_OK;
}

/* The assigner of the registry: points = anchor centres, levels from anchor_level. */
detloss_status dl_assign_fcos(const dl_assign_input *in, const void *options, dl_assign_result *out,
                              detloss_error *err) {
  detloss_fcos_options o =
      options ? *(const detloss_fcos_options *)options : detloss_fcos_options_default();
  o.num_threads = in->num_threads;
  size_t A = in->num_anchors, G = in->num_gt, L = in->num_levels;
  DL_RETURN_ERROR_IF(in->anchor_config != NULL, err, DETLOSS_ERR_UNSUPPORTED, "anchor_config",
                     "the FCOS assigner takes points (as boxes), not a grid config");
  DL_RETURN_ERROR_IF(in->gt_is_crowd != NULL, err, DETLOSS_ERR_UNSUPPORTED, "gt_is_crowd",
                     "FCOS has no crowd regions");
  DL_FORWARD_IF_ERROR(dl_check_boxes(in->anchors, A, "anchors", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(in->anchor_level, A, "anchor_level", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(out->gt_index, A, "gt_index", err));
  DL_RETURN_ERROR_IF(out->labels != NULL && G > 0 && in->gt_labels == NULL, err, DETLOSS_ERR_NULL,
                     "gt_labels", "is NULL but per-anchor labels are asked for");
  for (size_t a = 0; a < A; a++)
    DL_RETURN_ERROR_IF(in->anchor_level[a] < 0 || (size_t)in->anchor_level[a] >= L ||
                           (a > 0 && in->anchor_level[a] < in->anchor_level[a - 1]),
                       err, DETLOSS_ERR_RANGE, "anchor_level",
                       "must be in [0, num_levels) and non-decreasing (level-major points)");
  size_t *lc = calloc(L ? L : 1, sizeof *lc);
  float *pts = malloc((A ? 2 * A : 1) * sizeof *pts);
  if (!lc || !pts) {
    free(lc);
    free(pts);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "anchors", "out of memory");
  }
  for (size_t a = 0; a < A; a++) {
    lc[in->anchor_level[a]]++;
    double x1 = in->anchors[4 * a], y1 = in->anchors[4 * a + 1];
    double x2 = in->anchors[4 * a + 2], y2 = in->anchors[4 * a + 3];
    pts[2 * a] = (float)((x1 + x2) / 2.0);
    pts[2 * a + 1] = (float)((y1 + y2) / 2.0);
  }
  detloss_status st = detloss_fcos_targets(pts, A, lc, in->level_stride, L, in->gt, G,
                                           out->gt_index, out->bbox_targets, out->quality, &o, err);
  if (st == DETLOSS_OK && out->labels)
    for (size_t a = 0; a < A; a++)
      out->labels[a] = out->gt_index[a] >= 0 ? in->gt_labels[out->gt_index[a]] : -1;
  free(lc);
  free(pts);
  return st;
}
