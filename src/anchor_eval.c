/*
 * anchor_eval.c - how well an anchor set covers the gt boxes of a data set
 * (docs/math/anchor_eval.md).
 *
 * Per image (resized as configured; boxes clipped to the image, crowd and
 * zero-area boxes left out), per gt box g:
 *   best_g  = max_a IoU(g, a)                   (IoU: torchvision box_iou, float32,
 *                                                the matcher's operation order)
 *   fit_g   = #{a : IoU(g, a) >= iou_thresh}
 *   pos_g   = #{a : matches[a] == g}            (detloss_match semantics)
 *   level_g = level of the first a (anchor order) with IoU(g, a) == best_g
 * WH_RATIO (YOLOv5 utils/autoanchor.py metric()): r = min(q, 1/q) over
 * q = w/aw, h/ah, in float32; best_g = max over shapes; fit when r > 1/thr.
 *
 * Grid sources are never materialized. For a gt g, level l and base anchor k,
 * only the cells whose anchor can reach the IoU that matters (cell_range: the
 * intersection width an IoU >= t needs bounds the anchor's position) are
 * visited, and every visited pair's IoU is computed exactly, so the ranges
 * never change a result, only the work. A base anchor whose area bound
 * min(area_a, area_g) / max(area_a, area_g) (an upper bound of the IoU, padded
 * by 1e-3 for float rounding) is below both iou_thresh and the best IoU found
 * so far is skipped: its anchors can neither fit nor tie the best.
 *
 * Positives, sparsely (torchvision and detectron2 Matcher semantics,
 * docs/math/match.md s2; docs/math/anchor_eval.md s3): an anchor a is positive iff
 * max_g IoU(g, a) >= high, or IoU(g, a) == h_g for a promoted gt g (low-quality
 * rule, h_g = best_g); it is then matched to its own argmax gt (lowest index on
 * ties). Either way some pair has IoU(g, a) >= t_g = min(high, h_g) (high when
 * g is not promoted), so scanning each gt's footprint at t_g finds every
 * positive; its argmax is then computed over all gts of the image. When a
 * promoted gt has h_g = 0 (torchvision's quirk: every anchor becomes positive),
 * and for the settings this argument does not cover (mmdet semantics,
 * allowed_border, high = 0), the image runs detloss_match_grid /
 * detloss_match on all of its anchors instead. tests/test_anchor_eval.c checks
 * that both paths agree with detloss_match on random images.
 *
 * FCOS (no anchors): per image the points of the assigner's point levels
 * (mmdet MlvlPointGenerator: (x + offset) * stride, ceil(H / stride) columns)
 * go through detloss_fcos_targets against the image's gts; each gt counts its
 * positives and keeps the best centerness among them. Points inside a gt are
 * counted per axis (a point level is a product of two 1-D grids), never
 * enumerated against the gts. Memory O(points of one image) per thread.
 *
 * Parallel over blocks of EVAL_BLOCK images; each block writes only its own
 * images' per-gt records and its own counters; the aggregation runs serially
 * in data-set order (double sums): bitwise identical for any thread count.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "box_kernels.h"
#include "internal.h"
#include "parallel.h"

#define EVAL_BLOCK 8    /* images per parallel block (fixed, never from the thread count) */
#define EVAL_CHUNK 4096 /* images per progress step (a multiple of EVAL_BLOCK) */
#define UB_PAD 1.001f   /* slack on the area bound of the IoU (float rounding of anchors) */

enum { SRC_GRID = 0, SRC_ANCHORS = 1, SRC_SHAPES = 2, SRC_POINTS = 3 };

detloss_eval_options detloss_eval_options_default(void) {
  detloss_eval_options o = DETLOSS_EVAL_OPTIONS_INIT;
  return o;
}

const char *detloss_eval_size_name(detloss_eval_size size) {
  switch (size) {
    case DETLOSS_EVAL_SMALL: return "small";
    case DETLOSS_EVAL_MEDIUM: return "medium";
    case DETLOSS_EVAL_LARGE: return "large";
  }
  return NULL;
}

/* One level of a grid source: its base anchors (from detloss_anchors_level_base). */
typedef struct elevel {
  float stride_h, stride_w;
  size_t k;
  float *base; /* [k][4] */
  float *area; /* [k]: base anchor area, for the IoU bound */
} elevel;

typedef struct ectx {
  const detloss_eval_dataset *d;
  detloss_eval_options o;
  int src;
  const detloss_anchor_config *grid;
  size_t nl;
  elevel lv[DETLOSS_EVAL_MAX_LEVELS];
  float max_base; /* largest |coordinate| of a grid base anchor */
  const float *anchors;
  size_t na;
  float *shapes;        /* WH_RATIO: [ns][2] */
  int16_t *shape_level; /* [ns] */
  size_t ns;
  int sparse;  /* positives may be counted sparsely (matcher settings allow it) */
  int lq_zero; /* a promoted gt with h_g = 0 forces the dense path */
  detloss_eval_gt *per_gt;
  size_t *blk_level_pos; /* [nblocks][MAX_LEVELS] */
  size_t *blk_anchors;   /* [nblocks] */
  detloss_status *blk_st;
  detloss_error *blk_err;
  size_t first_block;       /* first block of the chunk being run */
  detloss_eval_assigner as; /* who counts the positives */
} ectx;

/* Per-block scratch, grown on demand. */
typedef struct scratch {
  float *gt; /* [G][4] evaluated gts of the image, resized */
  size_t gcap;
  size_t *row; /* [G] their rows in the data set */
  size_t rcap;
  size_t *cand; /* candidate positive anchors */
  size_t ncand, ccap;
  int64_t *matches; /* dense path: [A] */
  size_t acap;
  float *boxes; /* ATSS: the image's anchors [A][4]; FCOS: its points [A][2] (bcap in 4 floats) */
  size_t bcap;
  float *ctr; /* FCOS: centerness targets [A] */
  size_t ctrcap;
} scratch;

/* Per image: the grid geometry after resizing. */
typedef struct egrid {
  size_t fh[DETLOSS_EVAL_MAX_LEVELS], fw[DETLOSS_EVAL_MAX_LEVELS], off[DETLOSS_EVAL_MAX_LEVELS];
  size_t count;
  float img_h, img_w;
} egrid;

/* Pair IoU (dl_pair_iou, box_kernels.h): the matcher's kernel and operation order,
 * torchvision box_iou(gt, anchors). g: gt box, ga its area; a*: anchor. */
static inline float pair_iou(const float *g, float ga, float ax1, float ay1, float ax2, float ay2) {
  float aa = (ax2 - ax1) * (ay2 - ay1);
  return dl_pair_iou(g[0], g[1], g[2], g[3], ga, ax1, ay1, ax2, ay2, aa);
}

/* Cells [*lo, *hi] of one axis whose anchor can reach IoU >= t with the gt.
 * IoU >= t needs I >= t max(area_g, area_a) (U >= either area) and I <= iw
 * min(gh, ah), so iw >= iw_min = t max(area_g, area_a) / min(gh, ah); with
 * iw <= a_hi - g_lo and iw <= g_hi - a_lo the anchor's low edge a_lo = s + b_lo
 * lies in [g_lo + iw_min - aw, g_hi - iw_min]. t = 0 gives the cells that can
 * intersect at all. t is lowered by 0.1% and the range widened by 0.01 cell
 * so that float rounding of the anchors never drops a cell; a cell too many
 * only costs one exact IoU evaluation. Returns 0 if no cell qualifies. */
static int cell_range(double g_lo, double g_hi, double b_lo, double aw, double iw_min,
                      double stride, double offset, size_t n, size_t *lo, size_t *hi) {
  if (n == 0) return 0;
  double a = floor((g_lo + iw_min - aw - b_lo) / stride - offset - 0.01);
  double b = ceil((g_hi - iw_min - b_lo) / stride - offset + 0.01);
  if (b < 0.0 || a > (double)(n - 1) || b < a) return 0;
  *lo = a < 0.0 ? 0 : (size_t)a;
  *hi = b > (double)(n - 1) ? n - 1 : (size_t)b;
  return 1;
}

/* The x and y cell ranges of base anchor b for threshold t (see cell_range). */
static int cell_box(const float *g, const float *b, float t, float stride_h, float stride_w,
                    float offset, size_t fh, size_t fw, size_t *x0, size_t *x1, size_t *y0,
                    size_t *y1) {
  double gw = (double)g[2] - (double)g[0], gh = (double)g[3] - (double)g[1];
  double aw = (double)b[2] - (double)b[0], ah = (double)b[3] - (double)b[1];
  double tt = t > 0.0f ? (double)t * 0.999 : 0.0;
  double mx = fmax(gw * gh, aw * ah);
  double iw_min = tt > 0.0 ? tt * mx / fmin(gh, ah) : 0.0;
  double ih_min = tt > 0.0 ? tt * mx / fmin(gw, aw) : 0.0;
  return cell_range(g[0], g[2], b[0], aw, iw_min, stride_w, offset, fw, x0, x1) &&
         cell_range(g[1], g[3], b[1], ah, ih_min, stride_h, offset, fh, y0, y1);
}

/* Upper bound of the IoU of two boxes with these areas (padded for rounding). */
static inline float iou_bound(float aa, float ga) {
  float lo = dl_minf(aa, ga), hi = dl_maxf(aa, ga);
  return hi > 0.0f ? lo / hi * UB_PAD + 1e-6f : 0.0f;
}

typedef struct lk {
  float ub;
  size_t l, k;
} lk;

/* Nearest cell index to coordinate v on an axis, clamped to [0, n-1]. */
static size_t nearest_cell(double v, double stride, double offset, size_t n) {
  double x = floor(v / stride - offset + 0.5);
  if (x < 0.0) return 0;
  if (x > (double)(n - 1)) return n - 1;
  return (size_t)x;
}

/* Grid, IOU: best, fit count and level of one gt. Bases are visited in
 * decreasing bound order; each is first probed at the cell nearest the gt
 * centre, so that best is a good lower bound before its cells are scanned
 * at t = min(iou_thresh, best): anchors below t can neither fit nor reach the
 * final best. Ties are resolved by anchor index, so the order of visits never
 * changes the result. */
static void grid_scan_gt(const ectx *c, const egrid *eg, const float *g, float ga, lk *order,
                         float *best_out, uint32_t *fit_out, int16_t *level_out) {
  size_t n = 0;
  for (size_t l = 0; l < c->nl; l++) {
    if (eg->fh[l] == 0 || eg->fw[l] == 0) continue;
    for (size_t k = 0; k < c->lv[l].k; k++) {
      lk e = {iou_bound(c->lv[l].area[k], ga), l, k};
      size_t j = n++;
      while (j > 0 && order[j - 1].ub < e.ub) {
        order[j] = order[j - 1];
        j--;
      }
      order[j] = e;
    }
  }
  const float thr = c->o.iou_thresh, off = c->grid->offset;
  const double gcx = 0.5 * ((double)g[0] + (double)g[2]), gcy = 0.5 * ((double)g[1] + (double)g[3]);
  float best = 0.0f;
  size_t best_idx = SIZE_MAX, best_l = 0;
  uint32_t fit = 0;
  for (size_t j = 0; j < n; j++) {
    float ub = order[j].ub;
    if (ub < thr && ub < best) break; /* sorted: no later base can fit or reach best */
    size_t l = order[j].l, k = order[j].k;
    const elevel *lv = &c->lv[l];
    const float *b = lv->base + 4 * k;
    size_t K = lv->k, fw = eg->fw[l];
    {
      size_t px = nearest_cell(gcx - 0.5 * ((double)b[0] + (double)b[2]), lv->stride_w, off, fw);
      size_t py =
          nearest_cell(gcy - 0.5 * ((double)b[1] + (double)b[3]), lv->stride_h, off, eg->fh[l]);
      float sx = dl_cell_shift(off, lv->stride_w, px), sy = dl_cell_shift(off, lv->stride_h, py);
      float v = pair_iou(g, ga, sx + b[0], sy + b[1], sx + b[2], sy + b[3]);
      size_t idx = eg->off[l] + (py * fw + px) * K + k;
      if (v > 0.0f && (v > best || (v == best && idx < best_idx))) {
        best = v;
        best_idx = idx;
        best_l = l;
      }
    }
    size_t x0, x1, y0, y1;
    if (!cell_box(g, b, dl_minf(thr, best), lv->stride_h, lv->stride_w, off, eg->fh[l], fw, &x0,
                  &x1, &y0, &y1))
      continue;
    for (size_t y = y0; y <= y1; y++) {
      float sy = dl_cell_shift(off, lv->stride_h, y);
      float ay1 = sy + b[1], ay2 = sy + b[3];
      size_t rowbase = eg->off[l] + y * fw * K + k;
      for (size_t x = x0; x <= x1; x++) {
        float sx = dl_cell_shift(off, lv->stride_w, x);
        float v = pair_iou(g, ga, sx + b[0], ay1, sx + b[2], ay2);
        if (v >= thr) fit++;
        if (v > 0.0f && v >= best) {
          size_t idx = rowbase + x * K;
          if (v > best || idx < best_idx) {
            best = v;
            best_idx = idx;
            best_l = l;
          }
        }
      }
    }
  }
  *best_out = best;
  *fit_out = fit;
  *level_out = best_idx == SIZE_MAX ? (int16_t)-1 : (int16_t)best_l;
}

static int push_cand(scratch *s, size_t idx) {
  if (s->ncand == s->ccap) {
    size_t cap = s->ccap ? 2 * s->ccap : 1024;
    size_t *p = realloc(s->cand, cap * sizeof *p);
    if (!p) return 1;
    s->cand = p;
    s->ccap = cap;
  }
  s->cand[s->ncand++] = idx;
  return 0;
}

/* Grid, sparse positives: candidates of gt g (see the file comment). */
static int grid_candidates(const ectx *c, const egrid *eg, const float *g, float ga, float hg,
                           scratch *s) {
  const detloss_match_options *m = &c->o.match;
  int promoted = m->allow_low_quality && hg >= m->low_quality_min_iou && hg > 0.0f;
  float t = promoted ? fminf(m->high, hg) : m->high;
  const float off = c->grid->offset;
  for (size_t l = 0; l < c->nl; l++) {
    const elevel *lv = &c->lv[l];
    for (size_t k = 0; k < lv->k; k++) {
      if (iou_bound(lv->area[k], ga) < t) continue;
      const float *b = lv->base + 4 * k;
      size_t x0, x1, y0, y1;
      if (!cell_box(g, b, t, lv->stride_h, lv->stride_w, off, eg->fh[l], eg->fw[l], &x0, &x1, &y0,
                    &y1))
        continue;
      for (size_t y = y0; y <= y1; y++) {
        float sy = dl_cell_shift(off, lv->stride_h, y);
        float ay1 = sy + b[1], ay2 = sy + b[3];
        for (size_t x = x0; x <= x1; x++) {
          float sx = dl_cell_shift(off, lv->stride_w, x);
          float v = pair_iou(g, ga, sx + b[0], ay1, sx + b[2], ay2);
          if (v >= m->high || (promoted && v == hg))
            if (push_cand(s, eg->off[l] + (y * eg->fw[l] + x) * lv->k + k)) return 1;
        }
      }
    }
  }
  return 0;
}

static int cmp_size(const void *pa, const void *pb) {
  size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
  return (a > b) - (a < b);
}

/* Level and coordinates of grid anchor idx. */
static size_t grid_anchor(const ectx *c, const egrid *eg, size_t idx, float *a) {
  size_t l = 0;
  while (l + 1 < c->nl && idx >= eg->off[l + 1]) l++;
  const elevel *lv = &c->lv[l];
  size_t r = idx - eg->off[l], k = r % lv->k, cell = r / lv->k;
  size_t y = cell / eg->fw[l], x = cell % eg->fw[l];
  const float *b = lv->base + 4 * k;
  float sx = dl_cell_shift(c->grid->offset, lv->stride_w, x);
  float sy = dl_cell_shift(c->grid->offset, lv->stride_h, y);
  a[0] = sx + b[0];
  a[1] = sy + b[1];
  a[2] = sx + b[2];
  a[3] = sy + b[3];
  return l;
}

/* Level of grid anchor idx. */
static size_t grid_level_of(const ectx *c, const egrid *eg, size_t idx) {
  size_t l = 0;
  while (l + 1 < c->nl && idx >= eg->off[l + 1]) l++;
  return l;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t cap2 = *cap ? *cap : 64;
  while (cap2 < need) cap2 *= 2;
  void *q = realloc(*p, cap2 * elem);
  if (!q) return 1;
  *p = q;
  *cap = cap2;
  return 0;
}

/* Resize parameters of one image: box scale per axis and the resized size. */
static void resize_params(const detloss_eval_options *o, float H, float W, float *ry, float *rx,
                          float *nh, float *nw) {
  float mn = o->resize_min_size, mx = o->resize_max_size;
  if (mn > 0.0f && mx > 0.0f) {
    /* torchvision transform.py _resize_image_and_masks + resize_boxes. Its
     * `self_min_size / min_size` is a Python float over a float32 tensor,
     * which torch evaluates as min_size.reciprocal() * self_min_size in float32
     * (Tensor.__rdiv__): the same rounding here, so that floor(H * scale)
     * gives torchvision's image size (800, not 799, for a 480 px side). */
    float sc = fminf((1.0f / fminf(H, W)) * mn, (1.0f / fmaxf(H, W)) * mx);
    double h2 = floor((double)H * (double)sc), w2 = floor((double)W * (double)sc);
    *nh = (float)h2;
    *nw = (float)w2;
    *ry = (float)h2 / H;
    *rx = (float)w2 / W;
  } else if (mx > 0.0f || mn > 0.0f) {
    float side = mx > 0.0f ? fmaxf(H, W) : fminf(H, W);
    float s = (float)((double)(mx > 0.0f ? mx : mn) / (double)side);
    *ry = *rx = s;
    *nh = H * s;
    *nw = W * s;
  } else {
    *ry = *rx = 1.0f;
    *nh = H;
    *nw = W;
  }
}

/* Most anchors one image of a grid source may have (and most cells of one
 * feature-map side): bounded work per image, and every count fits size_t
 * and the (i * 4 + k) indexing of DL_MAX_ELEMS. */
#define EVAL_MAX_ANCHORS 1e15

/* Feature maps of image i after resizing to nh x nw: ceil(nh / stride_h) x
 * ceil(nw / stride_w) per level, their anchor offsets and total. Checks, in
 * double and before any conversion to size_t (a stride of 1e-30 would make
 * a cell count of 1e32, out of size_t's range), that each side and each
 * level's count stay <= EVAL_MAX_ANCHORS, that the total does, and that the
 * farthest anchor stays within DL_COORD_MAX (err may be NULL: the check was
 * already made). */
static detloss_status image_grid(const detloss_anchor_config *grid, const size_t *k, float max_base,
                                 float nh, float nw, size_t i, egrid *eg, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  eg->count = 0;
  eg->img_h = nh;
  eg->img_w = nw;
  double total = 0.0;
  for (size_t l = 0; l < grid->num_levels; l++) {
    const detloss_anchor_level *lv = &grid->levels[l];
    double fh = ceil((double)nh / (double)lv->stride_h);
    double fw = ceil((double)nw / (double)lv->stride_w);
    double n = fh * fw * (double)k[l];
    total += n;
    if (!(fh <= EVAL_MAX_ANCHORS && fw <= EVAL_MAX_ANCHORS && n <= EVAL_MAX_ANCHORS)) {
      snprintf(where, sizeof where, "grid.levels[%zu].stride", l);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "(%g, %g) gives image %zu (%g x %g after resizing) a %g x %g feature map "
                     "of %g anchors, more than 1e15",
                     (double)lv->stride_h, (double)lv->stride_w, i, (double)nh, (double)nw, fh, fw,
                     n);
    }
    if (!(total <= EVAL_MAX_ANCHORS)) {
      snprintf(where, sizeof where, "data.image_hw[%zu]", i);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "the image (%g x %g after resizing) needs more than 1e15 anchors", (double)nh,
                     (double)nw);
    }
    double reach = fmax(((double)grid->offset + fw - 1.0) * (double)lv->stride_w,
                        ((double)grid->offset + fh - 1.0) * (double)lv->stride_h) +
                   (double)max_base;
    if (n > 0.0 && !(reach <= (double)DL_COORD_MAX)) {
      snprintf(where, sizeof where, "grid.levels[%zu].stride", l);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "(%g, %g) puts anchors of image %zu at %g, beyond the coordinate bound "
                     "1e18",
                     (double)lv->stride_h, (double)lv->stride_w, i, reach);
    }
    eg->fh[l] = (size_t)fh;
    eg->fw[l] = (size_t)fw;
    eg->off[l] = eg->count;
    eg->count += eg->fh[l] * eg->fw[l] * k[l];
  }
  return DETLOSS_OK;
}

/* Whether gt record g counts as recalled: its best anchor fits, or (FCOS, no
 * anchors) it has a positive point. */
static inline int fits(const ectx *c, const detloss_eval_gt *g) {
  if (c->src == SRC_POINTS) return g->num_pos > 0;
  return c->o.metric == DETLOSS_EVAL_IOU ? g->best >= c->o.iou_thresh
                                         : g->best > 1.0f / c->o.ratio_thresh;
}

/* Coordinate of point i on an axis of a point level: (i + offset) * stride in
 * float32, as mmdet's MlvlPointGenerator computes it (arange + offset, times
 * the stride). */
static inline float point_coord(size_t i, float offset, float stride) {
  return ((float)i + offset) * stride;
}

/* Point maps of image i (resized to nh x nw): ceil(nh / s) x ceil(nw / s)
 * points per level, checked as image_grid checks anchors (side and count
 * <= EVAL_MAX_ANCHORS, farthest point within DL_COORD_MAX), in double. err
 * may be NULL (already checked). */
static detloss_status image_points(const detloss_eval_assigner *as, float nh, float nw, size_t i,
                                   egrid *eg, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  eg->count = 0;
  eg->img_h = nh;
  eg->img_w = nw;
  double total = 0.0;
  for (size_t l = 0; l < as->num_point_levels; l++) {
    double st = (double)as->point_strides[l];
    double fh = ceil((double)nh / st), fw = ceil((double)nw / st), n = fh * fw;
    total += n;
    double reach = ((double)as->point_offset + fmax(fh, fw)) * st;
    if (!(fh <= EVAL_MAX_ANCHORS && fw <= EVAL_MAX_ANCHORS && n <= EVAL_MAX_ANCHORS) ||
        !(reach <= (double)DL_COORD_MAX)) {
      snprintf(where, sizeof where, "assigner.point_strides[%zu]", l);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "%g gives image %zu (%g x %g after resizing) a %g x %g point map, more than "
                     "1e15 points or beyond the coordinate bound 1e18",
                     st, i, (double)nh, (double)nw, fh, fw);
    }
    if (!(total <= EVAL_MAX_ANCHORS)) {
      snprintf(where, sizeof where, "data.image_hw[%zu]", i);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "the image (%g x %g after resizing) needs more than 1e15 points", (double)nh,
                     (double)nw);
    }
    eg->fh[l] = (size_t)fh;
    eg->fw[l] = (size_t)fw;
    eg->off[l] = eg->count;
    eg->count += eg->fh[l] * eg->fw[l];
  }
  return DETLOSS_OK;
}

/* Points i in [0, n) of one axis with lo < (i + offset) * stride < hi (strictly:
 * FCOS's inside test min(l, t, r, b) > 0). */
static size_t points_between(double lo, double hi, float offset, float stride, size_t n) {
  if (n == 0 || !(hi > lo)) return 0;
  double a = floor(lo / (double)stride - (double)offset) - 1.0;
  double b = ceil(hi / (double)stride - (double)offset) + 1.0;
  if (b < 0.0 || a > (double)(n - 1)) return 0;
  size_t i0 = a < 0.0 ? 0 : (size_t)a, i1 = b > (double)(n - 1) ? n - 1 : (size_t)b, k = 0;
  for (size_t i = i0; i <= i1; i++) {
    double v = (double)point_coord(i, offset, stride);
    if (v > lo && v < hi) k++;
  }
  return k;
}

/* FCOS positives of one image: the points of every level (level-major, x
 * fastest), detloss_fcos_targets against the image's evaluated gts; per gt its
 * positives, best centerness and its level, points inside it, out of range. */
static detloss_status fcos_image(ectx *c, scratch *s, const egrid *eg, size_t G, size_t *level_pos,
                                 detloss_error *err) {
  const detloss_eval_assigner *as = &c->as;
  const size_t L = as->num_point_levels, A = eg->count;
  const float *ranges = as->num_ranges ? as->regress_ranges : NULL;
  static const float FCOS_RANGES[10] = {-1.0f,  64.0f,  64.0f,  128.0f, 128.0f,
                                        256.0f, 256.0f, 512.0f, 512.0f, 1e8f};
  const float *rg = ranges ? ranges : FCOS_RANGES;
  for (size_t j = 0; j < G; j++) {
    detloss_eval_gt *rec = &c->per_gt[s->row[j]];
    const float *g = s->gt + 4 * j;
    uint32_t inside = 0;

    for (size_t l = 0; l < L; l++) {
      float st = as->point_strides[l];
      size_t nx = points_between(g[0], g[2], as->point_offset, st, eg->fw[l]);
      size_t ny = points_between(g[1], g[3], as->point_offset, st, eg->fh[l]);
      double n = (double)inside + (double)nx * (double)ny;
      inside = n > (double)UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
    rec->num_fit = inside;
    rec->out_of_range = (uint8_t)dl_fcos_out_of_range(g, rg, L);
  }
  if (!c->o.count_positives || G == 0 || A == 0) return DETLOSS_OK;
  if (grow((void **)&s->boxes, &s->bcap, (A + 1) / 2, 4 * sizeof(float)) ||
      grow((void **)&s->matches, &s->acap, A, sizeof(int64_t)) ||
      grow((void **)&s->ctr, &s->ctrcap, A, sizeof(float)))
    return dl_fail(err, DETLOSS_ERR_NOMEM, "matches", "out of memory");
  size_t counts[DETLOSS_EVAL_MAX_LEVELS];
  float *p = s->boxes;
  for (size_t l = 0; l < L; l++) {
    float st = as->point_strides[l];
    counts[l] = eg->fh[l] * eg->fw[l];
    for (size_t y = 0; y < eg->fh[l]; y++) {
      float py = point_coord(y, as->point_offset, st);
      for (size_t x = 0; x < eg->fw[l]; x++) {
        *p++ = point_coord(x, as->point_offset, st);
        *p++ = py;
      }
    }
  }
  detloss_fcos_options fo = as->fcos;
  fo.regress_ranges = ranges;
  fo.num_threads = 1; /* we are inside a parallel block */
  DL_FORWARD_IF_ERROR(detloss_fcos_targets(s->boxes, A, counts, as->point_strides, L, s->gt, G,
                                           s->matches, NULL, s->ctr, &fo, err));
  size_t a = 0;
  for (size_t l = 0; l < L; l++)
    for (size_t e = a + counts[l]; a < e; a++) {
      if (s->matches[a] < 0) continue;
      detloss_eval_gt *rec = &c->per_gt[s->row[s->matches[a]]];
      rec->num_pos++;
      level_pos[l]++;
      /* strictly greater: the first point in order keeps a tie */
      if (rec->level < 0 || s->ctr[a] > rec->best) {
        rec->best = s->ctr[a];
        rec->level = (int16_t)l;
      }
    }
  return DETLOSS_OK;
}

/* ATSS positives of one image: detloss_atss_assign on its anchors (level-major,
 * level_counts [nl]) against the image's evaluated gts; counts per gt and level. */
static detloss_status atss_positives(ectx *c, scratch *s, const float *anchors, size_t A,
                                     const size_t *level_counts, size_t nl, size_t G,
                                     size_t *level_pos, detloss_error *err) {
  if (grow((void **)&s->matches, &s->acap, A, sizeof(int64_t)))
    return dl_fail(err, DETLOSS_ERR_NOMEM, "matches", "out of memory");
  detloss_atss_options ao = c->as.atss;
  ao.num_threads = 1; /* we are inside a parallel block */
  DL_FORWARD_IF_ERROR(detloss_atss_assign(anchors, A, level_counts, nl, s->gt, G, NULL, 0,
                                          s->matches, NULL, &ao, err));
  size_t a = 0;
  for (size_t l = 0; l < nl; l++)
    for (size_t e = a + level_counts[l]; a < e; a++)
      if (s->matches[a] >= 0) {
        c->per_gt[s->row[s->matches[a]]].num_pos++;
        level_pos[l]++;
      }
  return DETLOSS_OK;
}

/* One image. Returns a status; on NOMEM fills err. */
static detloss_status eval_image(ectx *c, size_t i, scratch *s, size_t *level_pos,
                                 size_t *anchors_out, lk *order, detloss_error *err) {
  const detloss_eval_dataset *d = c->d;
  float H = d->image_hw[2 * i], W = d->image_hw[2 * i + 1];
  float ry, rx, nh, nw;
  resize_params(&c->o, H, W, &ry, &rx, &nh, &nw);
  size_t r0 = d->box_start[i], r1 = d->box_start[i + 1];
  if (grow((void **)&s->gt, &s->gcap, r1 - r0, 4 * sizeof(float)) ||
      grow((void **)&s->row, &s->rcap, r1 - r0, sizeof(size_t)))
    return dl_fail(err, DETLOSS_ERR_NOMEM, "per_gt", "out of memory");
  size_t G = 0;
  for (size_t r = r0; r < r1; r++) {
    detloss_eval_gt *rec = &c->per_gt[r];
    const float *b = d->boxes + 4 * r;
    memset(rec, 0, sizeof *rec);
    rec->level = -1;
    float x1 = fminf(fmaxf(b[0], 0.0f), W), y1 = fminf(fmaxf(b[1], 0.0f), H);
    float x2 = fminf(fmaxf(b[2], 0.0f), W), y2 = fminf(fmaxf(b[3], 0.0f), H);
    float *g = s->gt + 4 * G;
    g[0] = x1 * rx;
    g[1] = y1 * ry;
    g[2] = x2 * rx;
    g[3] = y2 * ry;
    rec->w = g[2] - g[0];
    rec->h = g[3] - g[1];
    if (d->is_crowd && d->is_crowd[r]) {
      rec->status = DETLOSS_EVAL_GT_CROWD;
      continue;
    }
    rec->clipped = (x1 != b[0] || y1 != b[1] || x2 != b[2] || y2 != b[3]) ? 1 : 0;
    if (!(rec->w > 0.0f) || !(rec->h > 0.0f)) {
      rec->status = DETLOSS_EVAL_GT_DEGENERATE;
      continue;
    }
    float area = rec->w * rec->h;
    rec->size = area < 1024.0f    ? DETLOSS_EVAL_SMALL
                : area >= 9216.0f ? DETLOSS_EVAL_LARGE
                                  : DETLOSS_EVAL_MEDIUM;
    s->row[G++] = r;
  }

  if (c->src == SRC_POINTS) {
    egrid eg;
    image_points(&c->as, nh, nw, i, &eg, NULL); /* checked by check_images */
    *anchors_out = eg.count;
    return fcos_image(c, s, &eg, G, level_pos, err);
  }

  /* WH_RATIO: shapes only. */
  if (c->o.metric == DETLOSS_EVAL_WH_RATIO) {
    float inv = 1.0f / c->o.ratio_thresh;
    for (size_t j = 0; j < G; j++) {
      detloss_eval_gt *rec = &c->per_gt[s->row[j]];
      float best = 0.0f;
      size_t bi = SIZE_MAX;
      uint32_t fit = 0;
      for (size_t q = 0; q < c->ns; q++) {
        float qw = rec->w / c->shapes[2 * q], qh = rec->h / c->shapes[2 * q + 1];
        float v = fminf(fminf(qw, 1.0f / qw), fminf(qh, 1.0f / qh));
        if (v > inv) {
          fit++;
          level_pos[c->shape_level[q]]++;
        }
        if (v > best) {
          best = v;
          bi = q;
        }
      }
      rec->best = best;
      rec->num_fit = fit;
      rec->num_pos = fit;
      rec->level = bi == SIZE_MAX ? (int16_t)-1 : c->shape_level[bi];
    }
    *anchors_out = c->ns;
    return DETLOSS_OK;
  }

  detloss_match_options mo = c->o.match;
  mo.num_threads = 1; /* we are inside a parallel block */
  mo.image_h = nh;
  mo.image_w = nw;

  if (c->src == SRC_ANCHORS) {
    for (size_t j = 0; j < G; j++) {
      detloss_eval_gt *rec = &c->per_gt[s->row[j]];
      const float *g = s->gt + 4 * j;
      float ga = (g[2] - g[0]) * (g[3] - g[1]);
      float best = 0.0f;
      uint32_t fit = 0;
      for (size_t a = 0; a < c->na; a++) {
        const float *an = c->anchors + 4 * a;
        float v = pair_iou(g, ga, an[0], an[1], an[2], an[3]);
        if (v >= c->o.iou_thresh) fit++;
        if (v > best) best = v;
      }
      rec->best = best;
      rec->num_fit = fit;
      rec->level = best > 0.0f ? 0 : -1;
    }
    *anchors_out = c->na;
    if (c->as.method == DETLOSS_EVAL_METHOD_ATSS) {
      if (!c->o.count_positives || G == 0 || c->na == 0) return DETLOSS_OK;
      return atss_positives(c, s, c->anchors, c->na, &c->na, 1, G, level_pos, err);
    }
    if (c->o.count_positives && G > 0 && c->na > 0) {
      if (grow((void **)&s->matches, &s->acap, c->na, sizeof(int64_t)))
        return dl_fail(err, DETLOSS_ERR_NOMEM, "matches", "out of memory");
      DL_FORWARD_IF_ERROR(
          detloss_match(c->anchors, c->na, s->gt, G, NULL, s->matches, NULL, &mo, err));
      for (size_t a = 0; a < c->na; a++)
        if (s->matches[a] >= 0) {
          c->per_gt[s->row[s->matches[a]]].num_pos++;
          level_pos[0]++;
        }
    }
    return DETLOSS_OK;
  }

  /* Grid source (its geometry was checked for every image by check_inputs). */
  egrid eg;
  size_t kk[DETLOSS_EVAL_MAX_LEVELS];
  for (size_t l = 0; l < c->nl; l++) kk[l] = c->lv[l].k;
  image_grid(c->grid, kk, c->max_base, nh, nw, i, &eg, NULL);
  *anchors_out = eg.count;
  int zero_h = 0;
  for (size_t j = 0; j < G; j++) {
    detloss_eval_gt *rec = &c->per_gt[s->row[j]];
    const float *g = s->gt + 4 * j;
    float ga = (g[2] - g[0]) * (g[3] - g[1]);
    grid_scan_gt(c, &eg, g, ga, order, &rec->best, &rec->num_fit, &rec->level);
    if (rec->best == 0.0f) zero_h = 1;
  }
  if (!c->o.count_positives || G == 0 || eg.count == 0) return DETLOSS_OK;
  if (c->as.method == DETLOSS_EVAL_METHOD_ATSS) {
    if (grow((void **)&s->boxes, &s->bcap, eg.count, 4 * sizeof(float)))
      return dl_fail(err, DETLOSS_ERR_NOMEM, "matches", "out of memory");
    size_t counts[DETLOSS_EVAL_MAX_LEVELS];
    for (size_t l = 0; l < c->nl; l++) counts[l] = eg.fh[l] * eg.fw[l] * kk[l];
    for (size_t a = 0; a < eg.count; a++) grid_anchor(c, &eg, a, s->boxes + 4 * a);
    return atss_positives(c, s, s->boxes, eg.count, counts, c->nl, G, level_pos, err);
  }
  const detloss_match_options *m = &c->o.match;
  int dense = !c->sparse || (zero_h && m->allow_low_quality && 0.0f >= m->low_quality_min_iou);
  if (!dense) {
    s->ncand = 0;
    for (size_t j = 0; j < G; j++) {
      const float *g = s->gt + 4 * j;
      float ga = (g[2] - g[0]) * (g[3] - g[1]);
      if (grid_candidates(c, &eg, g, ga, c->per_gt[s->row[j]].best, s))
        return dl_fail(err, DETLOSS_ERR_NOMEM, "matches", "out of memory");
    }
    if (s->ncand > 1) qsort(s->cand, s->ncand, sizeof *s->cand, cmp_size);
    size_t prev = SIZE_MAX;
    for (size_t q = 0; q < s->ncand; q++) {
      size_t idx = s->cand[q];
      if (idx == prev) continue;
      prev = idx;
      float a[4];
      size_t l = grid_anchor(c, &eg, idx, a);
      float best = 0.0f;
      size_t arg = 0;
      for (size_t j = 0; j < G; j++) {
        const float *g = s->gt + 4 * j;
        /* no overlap: IoU 0, cannot beat best (>= 0) */
        if (!(g[0] < a[2] && a[0] < g[2] && g[1] < a[3] && a[1] < g[3])) continue;
        float v = pair_iou(g, (g[2] - g[0]) * (g[3] - g[1]), a[0], a[1], a[2], a[3]);
        if (v > best) {
          best = v;
          arg = j;
        }
      }
      c->per_gt[s->row[arg]].num_pos++;
      level_pos[l]++;
    }
    return DETLOSS_OK;
  }
  /* Dense path: the matcher on all anchors of the image. */
  detloss_anchor_level lvls[DETLOSS_EVAL_MAX_LEVELS];
  detloss_anchor_config cfg = *c->grid;
  for (size_t l = 0; l < c->nl; l++) {
    lvls[l] = c->grid->levels[l];
    lvls[l].feat_h = eg.fh[l];
    lvls[l].feat_w = eg.fw[l];
  }
  cfg.levels = lvls;
  if (grow((void **)&s->matches, &s->acap, eg.count, sizeof(int64_t)))
    return dl_fail(err, DETLOSS_ERR_NOMEM, "matches", "out of memory");
  DL_FORWARD_IF_ERROR(
      detloss_match_grid(&cfg, s->gt, G, NULL, s->matches, NULL, eg.count, &mo, err));
  for (size_t a = 0; a < eg.count; a++)
    if (s->matches[a] >= 0) {
      c->per_gt[s->row[s->matches[a]]].num_pos++;
      level_pos[grid_level_of(c, &eg, a)]++;
    }
  return DETLOSS_OK;
}

static void eval_block(void *ctx, size_t i0, size_t i1, size_t block) {
  ectx *c = ctx;
  scratch s;
  memset(&s, 0, sizeof s);
  size_t nbase = 0;
  for (size_t l = 0; l < c->nl; l++) nbase += c->lv[l].k;
  lk *order = malloc((nbase ? nbase : 1) * sizeof *order);
  size_t *lp = c->blk_level_pos + block * DETLOSS_EVAL_MAX_LEVELS;
  detloss_status st = DETLOSS_OK;
  if (!order) st = dl_fail(&c->blk_err[block], DETLOSS_ERR_NOMEM, "per_gt", "out of memory");
  for (size_t i = i0; i < i1 && st == DETLOSS_OK; i++) {
    size_t na = 0;
    st = eval_image(c, i, &s, lp, &na, order, &c->blk_err[block]);
    c->blk_anchors[block] += na;
  }
  c->blk_st[block] = st;
  free(order);
  free(s.gt);
  free(s.row);
  free(s.cand);
  free(s.matches);
  free(s.boxes);
  free(s.ctr);
}

/* Block b of the current chunk: images of global block first_block + b. */
static void eval_chunk_block(void *ctx, size_t b, size_t b1, size_t unused) {
  ectx *c = ctx;
  (void)b1;
  (void)unused;
  size_t block = c->first_block + b, i0 = block * EVAL_BLOCK;
  size_t i1 = c->d->num_images - i0 < EVAL_BLOCK ? c->d->num_images : i0 + EVAL_BLOCK;
  eval_block(ctx, i0, i1, block);
}

static void stats_add(detloss_eval_stats *st, const detloss_eval_gt *g, int fit, double *sb,
                      double *sf, double *sp) {
  st->num_gt++;
  st->num_recalled += fit ? 1 : 0;
  *sb += (double)g->best;
  *sf += (double)g->num_fit;
  *sp += (double)g->num_pos;
  int h = g->num_pos == 0 ? 0 : g->num_pos == 1 ? 1 : g->num_pos <= 4 ? 2 : 3;
  st->pos_hist[h]++;
}

static void stats_finish(detloss_eval_stats *st, double sb, double sf, double sp) {
  if (st->num_gt == 0) return;
  double n = (double)st->num_gt;
  st->recall = (double)st->num_recalled / n;
  st->mean_best = sb / n;
  st->anchors_per_gt = sf / n;
  st->positives_per_gt = sp / n;
}

static detloss_status check_inputs(const detloss_eval_dataset *d, const detloss_eval_anchors *src,
                                   const detloss_eval_options *o, int points, detloss_error *err) {
  DL_RETURN_ERROR_IF(!d, err, DETLOSS_ERR_NULL, "data", "is NULL");
  DL_RETURN_ERROR_IF(!src, err, DETLOSS_ERR_NULL, "src", "is NULL");
  DL_RETURN_ERROR_IF(d->num_images == 0, err, DETLOSS_ERR_SHAPE, "data.num_images",
                     "the data set has no images");
  DL_RETURN_ERROR_IF(!d->image_hw || !d->box_start, err, DETLOSS_ERR_NULL,
                     !d->image_hw ? "data.image_hw" : "data.box_start", "is NULL");
  DL_RETURN_ERROR_IF(d->num_images > DL_MAX_ELEMS / 4, err, DETLOSS_ERR_SHAPE, "data.num_images",
                     "too many images");
  DL_RETURN_ERROR_IF(d->box_start[0] != 0, err, DETLOSS_ERR_SHAPE, "data.box_start[0]",
                     "must be 0");
  for (size_t i = 0; i < d->num_images; i++) {
    char where[DETLOSS_WHERE_MAX];
    float h = d->image_hw[2 * i], w = d->image_hw[2 * i + 1];
    if (!(h > 0.0f) || !(w > 0.0f) || !isfinite(h) || !isfinite(w)) {
      snprintf(where, sizeof where, "data.image_hw[%zu]", i);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "image size must be finite and > 0, got %g x %g", (double)h, (double)w);
    }
    if (d->box_start[i + 1] < d->box_start[i]) {
      snprintf(where, sizeof where, "data.box_start[%zu]", i + 1);
      return dl_fail(err, DETLOSS_ERR_SHAPE, where, "must not decrease");
    }
  }
  size_t total = d->box_start[d->num_images];
  DL_RETURN_ERROR_IF(total == 0, err, DETLOSS_ERR_SHAPE, "data.boxes", "the data set has no boxes");
  DL_FORWARD_IF_ERROR(dl_check_ptr(d->boxes, total, "data.boxes", err));
  DL_FORWARD_IF_ERROR(dl_check_boxes(d->boxes, total, "data.boxes", err));

  DL_RETURN_ERROR_IF(o->metric != DETLOSS_EVAL_IOU && o->metric != DETLOSS_EVAL_WH_RATIO, err,
                     DETLOSS_ERR_RANGE, "metric", "unknown metric %d", (int)o->metric);
  DL_RETURN_ERROR_IF(!(o->iou_thresh > 0.0f && o->iou_thresh <= 1.0f), err, DETLOSS_ERR_RANGE,
                     "iou_thresh", "must be in (0, 1], got %g", (double)o->iou_thresh);
  DL_RETURN_ERROR_IF(!(o->ratio_thresh >= 1.0f) || !isfinite(o->ratio_thresh), err,
                     DETLOSS_ERR_RANGE, "ratio_thresh", "must be finite and >= 1, got %g",
                     (double)o->ratio_thresh);
  DL_RETURN_ERROR_IF(!(o->resize_min_size >= 0.0f) || !isfinite(o->resize_min_size), err,
                     DETLOSS_ERR_RANGE, "resize_min_size", "must be finite and >= 0, got %g",
                     (double)o->resize_min_size);
  DL_RETURN_ERROR_IF(!(o->resize_max_size >= 0.0f) || !isfinite(o->resize_max_size), err,
                     DETLOSS_ERR_RANGE, "resize_max_size", "must be finite and >= 0, got %g",
                     (double)o->resize_max_size);
  DL_RETURN_ERROR_IF(o->num_worst > DETLOSS_EVAL_MAX_WORST, err, DETLOSS_ERR_RANGE, "num_worst",
                     "must be at most %d, got %zu", DETLOSS_EVAL_MAX_WORST, o->num_worst);
  if (o->metric == DETLOSS_EVAL_IOU && o->count_positives) {
    /* The image size of allowed_border is set per image (after resizing). */
    detloss_match_options m = o->match;
    m.image_h = m.image_w = 1.0f;
    DL_FORWARD_IF_ERROR(detloss_match(NULL, 0, NULL, 0, NULL, NULL, NULL, &m, err));
  }

  if (points) return DETLOSS_OK; /* FCOS: the assigner's points; src is not read */
  int nsrc = (src->grid != NULL) + (src->anchors != NULL || src->num_anchors > 0) +
             (src->shapes != NULL || src->num_shapes > 0);
  DL_RETURN_ERROR_IF(nsrc != 1, err, DETLOSS_ERR_SHAPE, "src",
                     nsrc ? "give exactly one of grid, anchors, shapes"
                          : "no anchors: give a grid, anchors or shapes");
  if (src->grid) {
    const detloss_anchor_config *g = src->grid;
    DL_RETURN_ERROR_IF(g->num_levels == 0, err, DETLOSS_ERR_SHAPE, "grid.levels",
                       "the grid has no levels");
    DL_RETURN_ERROR_IF(g->num_levels > DETLOSS_EVAL_MAX_LEVELS, err, DETLOSS_ERR_SHAPE,
                       "grid.levels", "%zu levels, at most %d", g->num_levels,
                       DETLOSS_EVAL_MAX_LEVELS);
    for (size_t l = 0; l < g->num_levels; l++) {
      size_t k;
      DL_FORWARD_IF_ERROR(detloss_anchors_level_base(g, l, NULL, 0, &k, err));
    }
  } else if (src->anchors || src->num_anchors) {
    DL_FORWARD_IF_ERROR(dl_check_ptr(src->anchors, src->num_anchors, "anchors", err));
    DL_FORWARD_IF_ERROR(dl_check_coords(src->anchors, src->num_anchors, "anchors", err));
  } else {
    DL_RETURN_ERROR_IF(o->metric != DETLOSS_EVAL_WH_RATIO, err, DETLOSS_ERR_RANGE, "src.shapes",
                       "anchor shapes need the wh_ratio metric (they have no position)");
    DL_FORWARD_IF_ERROR(dl_check_ptr(src->shapes, src->num_shapes, "shapes", err));
    for (size_t q = 0; q < 2 * src->num_shapes; q++)
      if (!(src->shapes[q] > 0.0f) || !isfinite(src->shapes[q])) {
        char where[DETLOSS_WHERE_MAX];
        snprintf(where, sizeof where, "shapes[%zu]", q / 2);
        return dl_fail(err, DETLOSS_ERR_RANGE, where, "width and height must be finite and > 0");
      }
  }
  return DETLOSS_OK;
}

/* The shapes (w, h) and their levels for WH_RATIO. */
static detloss_status build_shapes(ectx *c, const detloss_eval_anchors *src, detloss_error *err) {
  size_t n = 0;
  if (c->src == SRC_GRID)
    for (size_t l = 0; l < c->nl; l++) n += c->lv[l].k;
  else if (c->src == SRC_ANCHORS)
    n = c->na;
  else
    n = src->num_shapes;
  c->shapes = malloc((n ? n : 1) * 2 * sizeof(float));
  c->shape_level = malloc((n ? n : 1) * sizeof(int16_t));
  DL_RETURN_ERROR_IF(!c->shapes || !c->shape_level, err, DETLOSS_ERR_NOMEM, "shapes",
                     "out of memory");
  size_t q = 0;
  if (c->src == SRC_GRID) {
    for (size_t l = 0; l < c->nl; l++)
      for (size_t k = 0; k < c->lv[l].k; k++, q++) {
        const float *b = c->lv[l].base + 4 * k;
        c->shapes[2 * q] = b[2] - b[0];
        c->shapes[2 * q + 1] = b[3] - b[1];
        c->shape_level[q] = (int16_t)l;
      }
  } else if (c->src == SRC_ANCHORS) {
    for (; q < n; q++) {
      c->shapes[2 * q] = c->anchors[4 * q + 2] - c->anchors[4 * q];
      c->shapes[2 * q + 1] = c->anchors[4 * q + 3] - c->anchors[4 * q + 1];
      c->shape_level[q] = 0;
    }
  } else {
    for (; q < n; q++) {
      c->shapes[2 * q] = src->shapes[2 * q];
      c->shapes[2 * q + 1] = src->shapes[2 * q + 1];
      c->shape_level[q] = 0;
    }
  }
  for (q = 0; q < n; q++)
    if (!(c->shapes[2 * q] > 0.0f) || !(c->shapes[2 * q + 1] > 0.0f)) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "%s[%zu]", c->src == SRC_ANCHORS ? "anchors" : "grid.base", q);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "the wh_ratio metric needs anchors of positive width and height");
    }
  c->ns = n;
  return DETLOSS_OK;
}

/* Per image, before any work: the resized size is finite and within
 * DL_COORD_MAX (so are the clipped, resized gts), a grid source's feature
 * maps and anchors are bounded (image_grid), and the anchors summed over the
 * images (report.num_anchors) fit size_t. */
static detloss_status check_images(const ectx *c, detloss_error *err) {
  const detloss_eval_dataset *d = c->d;
  char where[DETLOSS_WHERE_MAX];
  size_t total = 0, kk[DETLOSS_EVAL_MAX_LEVELS];
  for (size_t l = 0; l < c->nl; l++) kk[l] = c->lv[l].k;
  for (size_t i = 0; i < d->num_images; i++) {
    float H = d->image_hw[2 * i], W = d->image_hw[2 * i + 1];
    float ry, rx, nh, nw;
    resize_params(&c->o, H, W, &ry, &rx, &nh, &nw);
    if (!(nh <= DL_COORD_MAX && nw <= DL_COORD_MAX) || !isfinite(ry) || !isfinite(rx)) {
      snprintf(where, sizeof where, "data.image_hw[%zu]", i);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "the image (%g x %g) is %g x %g after resizing, beyond the coordinate "
                     "bound 1e18",
                     (double)H, (double)W, (double)nh, (double)nw);
    }
    size_t n = 0;
    if (c->src == SRC_POINTS) {
      egrid eg;
      DL_FORWARD_IF_ERROR(image_points(&c->as, nh, nw, i, &eg, err));
      n = eg.count;
    } else if (c->o.metric == DETLOSS_EVAL_WH_RATIO) {
      n = 0; /* shapes: counted once */
    } else if (c->src == SRC_GRID) {
      egrid eg;
      DL_FORWARD_IF_ERROR(image_grid(c->grid, kk, c->max_base, nh, nw, i, &eg, err));
      n = eg.count;
    } else {
      n = c->na;
    }
    if (dl_add_overflow(total, n, &total)) {
      snprintf(where, sizeof where, "data.image_hw[%zu]", i);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "the anchors summed over images 0..%zu overflow report.num_anchors", i);
    }
  }
  return DETLOSS_OK;
}

static void free_ctx(ectx *c) {
  for (size_t l = 0; l < c->nl; l++) {
    free(c->lv[l].base);
    free(c->lv[l].area);
  }
  free(c->shapes);
  free(c->shape_level);
  free(c->blk_level_pos);
  free(c->blk_anchors);
  free(c->blk_st);
  free(c->blk_err);
}

detloss_eval_assigner detloss_eval_assigner_default(void) {
  detloss_eval_assigner a = DETLOSS_EVAL_ASSIGNER_INIT;
  return a;
}

detloss_status detloss_anchor_eval(const detloss_eval_dataset *data,
                                   const detloss_eval_anchors *src, detloss_eval_gt *per_gt,
                                   detloss_eval_report *report, const detloss_eval_options *opt,
                                   detloss_error *err) {
  return detloss_anchor_eval_ex(data, src, NULL, per_gt, report, opt, err);
}

/* FCOS: its options, point levels and ranges. */
static detloss_status check_fcos(const detloss_eval_assigner *as, const detloss_eval_options *o,
                                 detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  DL_RETURN_ERROR_IF(o->metric != DETLOSS_EVAL_IOU, err, DETLOSS_ERR_RANGE, "assigner.method",
                     "FCOS assigns points: it takes the iou metric, not shapes (wh_ratio)");
  DL_FORWARD_IF_ERROR(dl_fcos_check_options(&as->fcos, "assigner", err));
  size_t L = as->num_point_levels;
  DL_RETURN_ERROR_IF(L < 1 || L > DETLOSS_EVAL_MAX_LEVELS, err, DETLOSS_ERR_SHAPE,
                     "assigner.num_point_levels", "is %zu (expected 1 to %d point levels)", L,
                     DETLOSS_EVAL_MAX_LEVELS);
  for (size_t l = 0; l < L; l++) {
    float st = as->point_strides[l];
    if (st > 0.0f && isfinite(st)) continue;
    snprintf(where, sizeof where, "assigner.point_strides[%zu]", l);
    return dl_fail(err, isfinite(st) ? DETLOSS_ERR_RANGE : DETLOSS_ERR_NONFINITE, where,
                   "is %g (expected a finite stride > 0)", (double)st);
  }
  DL_RETURN_ERROR_IF(!(as->point_offset >= 0.0f && as->point_offset < 1.0f), err, DETLOSS_ERR_RANGE,
                     "assigner.point_offset", "is %g (expected [0, 1))", (double)as->point_offset);
  size_t want = as->num_ranges ? as->num_ranges : 5;
  DL_RETURN_ERROR_IF(want != L, err, DETLOSS_ERR_SHAPE, "assigner.regress_ranges",
                     "%zu ranges%s for %zu point levels", want,
                     as->num_ranges ? "" : " (FCOS's default)", L);
  for (size_t l = 0; l < as->num_ranges; l++) {
    float lo = as->regress_ranges[2 * l], hi = as->regress_ranges[2 * l + 1];
    if (isfinite(lo) && isfinite(hi) && lo <= hi) continue;
    snprintf(where, sizeof where, "assigner.regress_ranges[%zu]", l);
    return dl_fail(err, isfinite(lo) && isfinite(hi) ? DETLOSS_ERR_RANGE : DETLOSS_ERR_NONFINITE,
                   where, "is [%g, %g] (expected finite lo <= hi)", (double)lo, (double)hi);
  }
  return DETLOSS_OK;
}

/* The assigner's own checks: its method and options, on an empty image. */
static detloss_status check_assigner(const detloss_eval_assigner *as, const detloss_eval_options *o,
                                     detloss_error *err) {
  if (as->method == DETLOSS_EVAL_METHOD_MAX_IOU) return DETLOSS_OK;
  if (as->method == DETLOSS_EVAL_METHOD_FCOS) return check_fcos(as, o, err);
  DL_RETURN_ERROR_IF(as->method >= DETLOSS_EVAL_METHOD_SIMOTA &&
                         as->method <= DETLOSS_EVAL_METHOD_HUNGARIAN,
                     err, DETLOSS_ERR_UNSUPPORTED, "assigner.method",
                     "%s is a dynamic assigner: it assigns from predicted scores and boxes, which "
                     "a data set of gt boxes does not have",
                     as->method == DETLOSS_EVAL_METHOD_SIMOTA         ? "simota"
                     : as->method == DETLOSS_EVAL_METHOD_TASK_ALIGNED ? "task_aligned"
                                                                      : "hungarian");
  DL_RETURN_ERROR_IF(as->method != DETLOSS_EVAL_METHOD_ATSS, err, DETLOSS_ERR_RANGE,
                     "assigner.method", "unknown method %d", (int)as->method);
  DL_RETURN_ERROR_IF(o->metric != DETLOSS_EVAL_IOU, err, DETLOSS_ERR_RANGE, "assigner.method",
                     "ATSS needs anchor boxes and the iou metric, not shapes (wh_ratio)");
  return dl_atss_check_options(&as->atss, "assigner", err);
}

detloss_status detloss_anchor_eval_ex(const detloss_eval_dataset *data,
                                      const detloss_eval_anchors *src,
                                      const detloss_eval_assigner *assigner,
                                      detloss_eval_gt *per_gt, detloss_eval_report *report,
                                      const detloss_eval_options *opt, detloss_error *err) {
  detloss_eval_options o = opt ? *opt : detloss_eval_options_default();
  detloss_eval_assigner as = assigner ? *assigner : detloss_eval_assigner_default();
  DL_RETURN_ERROR_IF(!report, err, DETLOSS_ERR_NULL, "report", "is NULL");
  /* The assigner first: a refused method is the fault, whatever the anchors. */
  DL_FORWARD_IF_ERROR(check_assigner(&as, &o, err));
  const int points = as.method == DETLOSS_EVAL_METHOD_FCOS;
  DL_FORWARD_IF_ERROR(check_inputs(data, src, &o, points, err));
  {
    /* The outputs are written only at the end, but a per_gt overlapping the
     * report, or either overlapping an input, would still be clobbered or
     * clobber: rejected, as everywhere in the library. */
    size_t nb = data->box_start[data->num_images];
    dl_span sp[10] = {
        dl_span_of(data, 1, sizeof *data, "data", 0),
        dl_span_of(data->image_hw, data->num_images, 2 * sizeof(float), "data.image_hw", 0),
        dl_span_of(data->box_start, data->num_images + 1, sizeof(size_t), "data.box_start", 0),
        dl_span_of(data->boxes, nb, 4 * sizeof(float), "data.boxes", 0),
        dl_span_of(data->is_crowd, nb, sizeof(uint8_t), "data.is_crowd", 0),
        dl_span_of(src, 1, sizeof *src, "src", 0),
        dl_span_of(src->anchors, src->num_anchors, 4 * sizeof(float), "src.anchors", 0),
        dl_span_of(src->shapes, src->num_shapes, 2 * sizeof(float), "src.shapes", 0),
        dl_span_of(per_gt, nb, sizeof *per_gt, "per_gt", 1),
        dl_span_of(report, 1, sizeof *report, "report", 1),
    };
    DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 10, err));
    DL_FORWARD_IF_ERROR(dl_check_grid_overlaps(src->grid, "grid.", sp + 8, 2, DL_NO_IMAGE, err));
  }

  ectx c;
  memset(&c, 0, sizeof c);
  c.d = data;
  c.o = o;
  c.as = as;
  detloss_status st = DETLOSS_OK;
  if (points) {
    c.src = SRC_POINTS;
    c.nl = as.num_point_levels;
  } else if (src->grid) {
    c.src = SRC_GRID;
    c.grid = src->grid;
    c.nl = src->grid->num_levels;
    for (size_t l = 0; l < c.nl && st == DETLOSS_OK; l++) {
      size_t k = 0;
      detloss_anchors_level_base(src->grid, l, NULL, 0, &k, NULL);
      c.lv[l].k = k;
      c.lv[l].stride_h = src->grid->levels[l].stride_h;
      c.lv[l].stride_w = src->grid->levels[l].stride_w;
      c.lv[l].base = malloc((k ? k : 1) * 4 * sizeof(float));
      c.lv[l].area = malloc((k ? k : 1) * sizeof(float));
      if (!c.lv[l].base || !c.lv[l].area) {
        st = dl_fail(err, DETLOSS_ERR_NOMEM, "grid", "out of memory");
        break;
      }
      st = detloss_anchors_level_base(src->grid, l, c.lv[l].base, k, &k, err);
      for (size_t q = 0; q < k; q++) {
        const float *b = c.lv[l].base + 4 * q;
        c.lv[l].area[q] = (b[2] - b[0]) * (b[3] - b[1]);
        for (int e = 0; e < 4; e++) c.max_base = fmaxf(c.max_base, fabsf(b[e]));
      }
    }
  } else if (src->anchors || src->num_anchors) {
    c.src = SRC_ANCHORS;
    c.anchors = src->anchors;
    c.na = src->num_anchors;
    c.nl = 1;
  } else {
    c.src = SRC_SHAPES;
    c.nl = 1;
  }
  if (st == DETLOSS_OK && o.metric == DETLOSS_EVAL_WH_RATIO) st = build_shapes(&c, src, err);
  if (st == DETLOSS_OK) st = check_images(&c, err);
  c.sparse = o.match.semantics != DETLOSS_MATCH_MMDET && o.match.allowed_border < 0.0f &&
             o.match.high > 0.0f;

  size_t total = data->box_start[data->num_images];
  size_t nblocks = dl_num_blocks(data->num_images, EVAL_BLOCK);
  detloss_eval_gt *own = NULL;
  if (st == DETLOSS_OK) {
    /* The records are built in scratch and copied to per_gt only on success:
     * a later failure (out of memory in a block) must leave it untouched
     * (test_nomem found the direct write). */
    c.per_gt = own = malloc((total ? total : 1) * sizeof *own);
    c.blk_level_pos = calloc(nblocks * DETLOSS_EVAL_MAX_LEVELS, sizeof(size_t));
    c.blk_anchors = calloc(nblocks, sizeof(size_t));
    c.blk_st = calloc(nblocks, sizeof(detloss_status));
    c.blk_err = calloc(nblocks, sizeof(detloss_error));
    if (!c.per_gt || !c.blk_level_pos || !c.blk_anchors || !c.blk_st || !c.blk_err)
      st = dl_fail(err, DETLOSS_ERR_NOMEM, "per_gt", "out of memory");
  }
  if (st == DETLOSS_OK) {
    /* Chunks of whole blocks, one after the other, so that progress can be
     * reported from this thread; the blocks (and so the results) are the same. */
    size_t chunk_blocks = EVAL_CHUNK / EVAL_BLOCK;
    for (size_t b0 = 0; b0 < nblocks; b0 += chunk_blocks) {
      size_t nb = nblocks - b0 < chunk_blocks ? nblocks - b0 : chunk_blocks;
      c.first_block = b0;
      dl_parallel_blocks(nb, 1, o.num_threads, eval_chunk_block, &c);
      if (o.progress) {
        size_t done = (b0 + nb) * EVAL_BLOCK;
        o.progress(o.progress_user, done < data->num_images ? done : data->num_images,
                   data->num_images);
      }
    }
    for (size_t b = 0; b < nblocks; b++)
      if (c.blk_st[b] != DETLOSS_OK) {
        st = c.blk_st[b];
        if (err) *err = c.blk_err[b];
        break;
      }
  }
  if (st != DETLOSS_OK) {
    free(own);
    free_ctx(&c);
    return st;
  }

  /* Aggregate serially in data-set order. */
  detloss_eval_report r;
  memset(&r, 0, sizeof r);
  r.num_images = data->num_images;
  r.num_boxes = total;
  r.num_levels = c.nl;
  double sb[4] = {0, 0, 0, 0}, sf[4] = {0, 0, 0, 0}, sp[4] = {0, 0, 0, 0};
  size_t K = o.num_worst;
  for (size_t b = 0; b < nblocks; b++) {
    r.num_anchors += c.blk_anchors[b];
    for (size_t l = 0; l < DETLOSS_EVAL_MAX_LEVELS; l++)
      r.level_pos[l] += c.blk_level_pos[b * DETLOSS_EVAL_MAX_LEVELS + l];
  }
  if (o.metric == DETLOSS_EVAL_WH_RATIO) r.num_anchors = c.ns;
  for (size_t i = 0; i < data->num_images; i++) {
    size_t ok = 0;
    for (size_t row = data->box_start[i]; row < data->box_start[i + 1]; row++) {
      const detloss_eval_gt *g = &c.per_gt[row];
      if (g->status == DETLOSS_EVAL_GT_CROWD) {
        r.num_crowd++;
        continue;
      }
      r.num_clipped += g->clipped;
      if (g->status == DETLOSS_EVAL_GT_DEGENERATE) {
        r.num_degenerate++;
        continue;
      }
      ok++;
      r.num_out_of_range += g->out_of_range;
      int f = fits(&c, g);
      stats_add(&r.all, g, f, &sb[3], &sf[3], &sp[3]);
      stats_add(&r.by_size[g->size], g, f, &sb[g->size], &sf[g->size], &sp[g->size]);
      if (g->level >= 0) r.level_best[g->level]++;
      /* Worst list: sorted by best ascending, ties keep data-set order. */
      if (K > 0 && (r.num_worst < K || g->best < r.worst[r.num_worst - 1].best)) {
        size_t j = r.num_worst < K ? r.num_worst++ : K - 1;
        while (j > 0 && r.worst[j - 1].best > g->best) {
          r.worst[j] = r.worst[j - 1];
          j--;
        }
        /* Members written one by one into the zeroed report: a brace-initialised
         * local would leave its padding undefined, and callers compare
         * reports bytewise (valgrind found it). */
        r.worst[j].image = i;
        r.worst[j].box = row - data->box_start[i];
        r.worst[j].w = g->w;
        r.worst[j].h = g->h;
        r.worst[j].best = g->best;
      }
    }
    if (ok == 0) r.num_images_empty++;
  }
  stats_finish(&r.all, sb[3], sf[3], sp[3]);
  for (int s = 0; s < 3; s++) stats_finish(&r.by_size[s], sb[s], sf[s], sp[s]);
  *report = r;
  if (per_gt && total) memcpy(per_gt, own, total * sizeof *own);
  free(own);
  free_ctx(&c);
  return DETLOSS_OK;
}
