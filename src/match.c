/*
 * match.c - anchor <-> ground-truth matching, fused: O(A + G) memory.
 *
 * Semantics (docs/math/match.md s2; detloss.h documents them side by side):
 *   torchvision Matcher (models/detection/_utils.py), detectron2 Matcher
 *   (modeling/matcher.py), mmdetection MaxIoUAssigner (max_iou_assigner.py),
 *   plus py-faster-rcnn's allowed_border and Detectron/mmdet crowd (ignore) boxes.
 *
 * IoU of one pair, float32, the operation order of torchvision box_iou(gt, anchors)
 * (dl_pair_iou, box_kernels.h, with the gt box first):
 *   iw = max(min(x2g, x2a) - max(x1g, x1a), 0),  ih likewise,  inter = iw * ih,
 *   iou = inter / ((area_g + area_a) - inter),  area = (x2 - x1) * (y2 - y1).
 * With inter = 0 the IoU is 0 (torchvision: 0 / union, NaN when union = 0 too).
 * inter > 0 implies both boxes proper, so the IoU is in (0, 1] and never -0 or NaN:
 * max and "lowest index among the maxima" are then exact and order-free, which is
 * why every result below is bitwise identical for any thread count.
 *
 * Algorithm. Pass 1, parallel over fixed anchor blocks: each anchor's best IoU and
 * argmax (lowest gt index on ties, as torch.max), written to max_iou / matches, and
 * per block and gt the best IoU and its lowest anchor index (G floats per block),
 * merged in block order into h_g. Pass 2, parallel over the same blocks: the
 * thresholds and the low-quality rule. An anchor can satisfy IoU(g, a) == h_g only
 * if max_iou[a] >= h_g, so pass 2 recomputes IoUs only for the few anchors whose
 * own best reaches some h_g. If a promoted gt has h_g == 0, every kept anchor has
 * IoU 0 with it and takes part (torchvision's quirk) without any IoU evaluation.
 * Grid path: anchors are generated on the fly from the config, and for each gt,
 * level and base anchor only the rectangle of cells whose anchor intersects the gt
 * is visited (found exactly with the same float32 sums that make the anchors);
 * every other anchor has IoU 0 with that gt, which pass 1 already assumes by
 * starting each anchor at (0, first non-crowd gt). So both paths give the same bits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anchors_internal.h"
#include "assign.h"
#include "box_kernels.h"
#include "parallel.h"

#define MATCH_BLOCK 4096 /* anchors per block (fixed, never from the thread count) */

detloss_match_options detloss_match_options_default(void) {
  detloss_match_options o = DETLOSS_MATCH_OPTIONS_INIT;
  return o;
}

/* Pair IoU (dl_pair_iou, box_kernels.h; see the file comment). g: gt box, ga its area;
 * a*: anchor, aa its area. */
static inline float pair_iou(const float *g, float ga, float ax1, float ay1, float ax2, float ay2,
                             float aa) {
  return dl_pair_iou(g[0], g[1], g[2], g[3], ga, ax1, ay1, ax2, ay2, aa);
}

/* Intersection over the anchor's area (mmdet bbox_overlaps mode 'iof' with the prior
 * first; Detectron's crowd IoA). 0 where there is no intersection or no area. */
static inline float pair_ioa(const float *g, float ax1, float ay1, float ax2, float ay2, float aa) {
  float iw = dl_minf(g[2], ax2) - dl_maxf(g[0], ax1);
  float ih = dl_minf(g[3], ay2) - dl_maxf(g[1], ay1);
  if (!(iw > 0.0f) || !(ih > 0.0f) || !(aa > 0.0f)) return 0.0f;
  return (iw * ih) / aa;
}

typedef struct promo {
  float h;
  size_t g;
} promo;

typedef struct gridblk {
  size_t level, y0, y1;
} gridblk;

/* The state of one call, grouped by the step of run_match() that fills it. Every
 * pointer marked "owned" is allocated before pass 1 writes anything and freed by
 * free_scratch(). */
typedef struct mctx {
  /* the caller's inputs and outputs (detloss_match, detloss_match_grid) */
  size_t G, A;
  const float *gt;
  const uint8_t *crowd; /* NULL: no crowd gts */
  const float *anchors; /* plain path */
  const dl_grid *grid;  /* grid path */
  int64_t *matches;
  float *mi; /* max_iou, or mi_own when the caller passes NULL */
  /* set_rule(): the options as the passes read them */
  float high, low, lq_min;
  int lq, sem, assign_all;
  float crowd_thr;
  int border_on, border_exclude;
  float bx1, by1, bx2, by2; /* inside: x1 >= bx1, y1 >= by1, x2 < bx2, y2 < by2 */
  /* sort_gts(): the gts by role */
  float *garea; /* owned, [G] */
  size_t *act;  /* owned: non-crowd proper gts, ascending */
  size_t nact;
  float *cx1, *cy1, *cx2, *cy2, *carea; /* owned (one block at cx1): act's boxes as columns */
  size_t *crw;                          /* owned: crowd proper gts (only when crowd_thr >= 0) */
  size_t ncrw;
  int64_t g0;    /* first non-crowd gt (initial argmax), -1 if none */
  size_t nnc;    /* number of non-crowd gts (proper or not) */
  float *mi_own; /* owned */
  /* plan_blocks(): the parallel blocks of both passes */
  size_t nblocks;
  gridblk *blks;    /* owned, grid: a level's rows [y0, y1) */
  long long *rects; /* owned, grid: [G][ktot][4] x0, x1, y0, y1 (x0 > x1: empty) */
  size_t *kbase;    /* owned, grid: first global base-anchor index of each level */
  size_t ktot;
  /* pass 1 (per_anchor_best) per block, then per_gt_best() */
  float *bmax;  /* owned, [nblocks][G]: per block and act position, best IoU */
  size_t *barg; /* owned, [nblocks][G]: its lowest anchor index */
  float *h;     /* owned, [G]: each gt's best IoU */
  size_t *fa;   /* owned, [G]: its first argmax anchor */
  /* promote_gts(): the low-quality rule */
  promo *pro; /* owned: promotable gts with h > 0: by h ascending (torchvision) or by
                 index descending (mmdet) */
  size_t npro;
  float hmin;        /* min h over pro */
  int zero_promoted; /* torchvision: a promoted gt has h == 0 */
  int64_t zmax;      /* mmdet: largest promoted gt with h == 0, or -1 */
} mctx;

static inline int outside(const mctx *c, float x1, float y1, float x2, float y2) {
  return !(x1 >= c->bx1 && y1 >= c->by1 && x2 < c->bx2 && y2 < c->by2);
}

#define GT_CHUNK 256

/* IoU of one anchor with n gts given as columns (x1, y1, x2, y2, area): the same
 * kernel as pair_iou(), which is branch-free, so the compiler vectorizes this loop
 * (the division is IEEE in every lane; lanes without overlap divide by 1). */
static void iou_row(const float *gx1, const float *gy1, const float *gx2, const float *gy2,
                    const float *ga, size_t n, float ax1, float ay1, float ax2, float ay2, float aa,
                    float *out) {
  for (size_t j = 0; j < n; j++)
    out[j] = dl_pair_iou(gx1[j], gy1[j], gx2[j], gy2[j], ga[j], ax1, ay1, ax2, ay2, aa);
}

static void pass1_plain(void *vc, size_t i0, size_t i1, size_t b) {
  mctx *c = vc;
  float *bm = c->bmax + b * c->G; /* indexed by position in act */
  size_t *ba = c->barg + b * c->G;
  for (size_t j = 0; j < c->nact; j++) {
    bm[j] = 0.0f;
    ba[j] = SIZE_MAX;
  }
  float v[GT_CHUNK];
  for (size_t a = i0; a < i1; a++) {
    const float *p = c->anchors + 4 * a;
    float ax1 = p[0], ay1 = p[1], ax2 = p[2], ay2 = p[3];
    float aa = (ax2 - ax1) * (ay2 - ay1);
    int excl = c->border_exclude && outside(c, ax1, ay1, ax2, ay2);
    for (size_t j = 0; j < c->ncrw && !excl; j++)
      excl = pair_ioa(c->gt + 4 * c->crw[j], ax1, ay1, ax2, ay2, aa) > c->crowd_thr;
    if (excl) {
      c->mi[a] = -1.0f;
      c->matches[a] = c->g0;
      continue;
    }
    float best = 0.0f;
    int64_t arg = c->g0;
    for (size_t j0 = 0; j0 < c->nact; j0 += GT_CHUNK) {
      size_t n = c->nact - j0 < GT_CHUNK ? c->nact - j0 : GT_CHUNK;
      iou_row(c->cx1 + j0, c->cy1 + j0, c->cx2 + j0, c->cy2 + j0, c->carea + j0, n, ax1, ay1, ax2,
              ay2, aa, v);
      for (size_t j = 0; j < n; j++) {
        if (v[j] > best) { /* act ascends: ties keep the lowest gt index */
          best = v[j];
          arg = (int64_t)c->act[j0 + j];
        }
        if (v[j] > bm[j0 + j]) { /* anchors ascend: the first maximum is kept */
          bm[j0 + j] = v[j];
          ba[j0 + j] = a;
        }
      }
    }
    c->mi[a] = best;
    c->matches[a] = arg;
  }
}

static void pass1_grid(void *vc, size_t i0, size_t i1, size_t b) {
  mctx *c = vc;
  (void)i1;
  const gridblk *blk = &c->blks[i0];
  const dl_grid_level *lv = &c->grid->lv[blk->level];
  float *bm = c->bmax + b * c->G;
  size_t *ba = c->barg + b * c->G;
  for (size_t j = 0; j < c->nact; j++) {
    bm[j] = 0.0f;
    ba[j] = SIZE_MAX;
  }
  size_t K = lv->k, W = lv->w;
  size_t a0 = lv->off + blk->y0 * W * K, a1 = lv->off + blk->y1 * W * K;
  for (size_t a = a0; a < a1; a++) c->matches[a] = c->g0;
  if (c->border_exclude) {
    size_t a = a0;
    for (size_t y = blk->y0; y < blk->y1; y++)
      for (size_t x = 0; x < W; x++)
        for (size_t k = 0; k < K; k++, a++) {
          const float *bs = lv->base + 4 * k;
          c->mi[a] =
              outside(c, lv->sx[x] + bs[0], lv->sy[y] + bs[1], lv->sx[x] + bs[2], lv->sy[y] + bs[3])
                  ? -1.0f
                  : 0.0f;
        }
  } else {
    for (size_t a = a0; a < a1; a++) c->mi[a] = 0.0f;
  }
  long long ylo = (long long)blk->y0, yhi = (long long)blk->y1 - 1;
  size_t kb = c->kbase[blk->level];
  /* crowd regions first: they remove anchors before any IoU is taken */
  for (size_t j = 0; j < c->ncrw; j++) {
    size_t g = c->crw[j];
    const float *gb = c->gt + 4 * g;
    for (size_t k = 0; k < K; k++) {
      const long long *r = c->rects + 4 * (g * c->ktot + kb + k);
      long long y0 = r[2] > ylo ? r[2] : ylo, y1 = r[3] < yhi ? r[3] : yhi;
      const float *bs = lv->base + 4 * k;
      for (long long y = y0; y <= y1; y++) {
        float sy = lv->sy[y];
        for (long long x = r[0]; x <= r[1]; x++) {
          size_t a = lv->off + ((size_t)y * W + (size_t)x) * K + k;
          if (c->mi[a] < 0.0f) continue;
          float ax1 = lv->sx[x] + bs[0], ay1 = sy + bs[1], ax2 = lv->sx[x] + bs[2],
                ay2 = sy + bs[3];
          float aa = (ax2 - ax1) * (ay2 - ay1);
          if (pair_ioa(gb, ax1, ay1, ax2, ay2, aa) > c->crowd_thr) c->mi[a] = -1.0f;
        }
      }
    }
  }
  for (size_t j = 0; j < c->nact; j++) {
    size_t g = c->act[j];
    const float *gb = c->gt + 4 * g;
    float ga = c->garea[g];
    float bmg = bm[j];
    size_t bag = ba[j];
    for (size_t k = 0; k < K; k++) {
      const long long *r = c->rects + 4 * (g * c->ktot + kb + k);
      long long y0 = r[2] > ylo ? r[2] : ylo, y1 = r[3] < yhi ? r[3] : yhi;
      const float *bs = lv->base + 4 * k;
      for (long long y = y0; y <= y1; y++) {
        float ay1 = lv->sy[y] + bs[1], ay2 = lv->sy[y] + bs[3];
        size_t arow = lv->off + (size_t)y * W * K + k;
        for (long long x = r[0]; x <= r[1]; x++) {
          size_t a = arow + (size_t)x * K;
          float cur = c->mi[a];
          if (cur < 0.0f) continue;
          float ax1 = lv->sx[x] + bs[0], ax2 = lv->sx[x] + bs[2];
          float aa = (ax2 - ax1) * (ay2 - ay1);
          float v = pair_iou(gb, ga, ax1, ay1, ax2, ay2, aa);
          if (v > cur) { /* gts ascend: ties keep the lowest gt index */
            c->mi[a] = v;
            c->matches[a] = (int64_t)g;
          }
          if (v > 0.0f && (v > bmg || (v == bmg && a < bag))) {
            bmg = v;
            bag = a;
          }
        }
      }
    }
    bm[j] = bmg;
    ba[j] = bag;
  }
}

/* Pass 2: thresholds and the low-quality rule. */

static inline int64_t final_label(const mctx *c, float v, int64_t arg, float ax1, float ay1,
                                  float ax2, float ay2) {
  if (v < 0.0f) return -2; /* removed by the crowd or border rule */
  if (c->nnc == 0) return -1;
  int64_t lab = v >= c->high ? arg : (v < c->low ? -1 : -2);
  if (!c->lq) return lab;
  float aa = (ax2 - ax1) * (ay2 - ay1);
  if (c->sem != DETLOSS_MATCH_MMDET) {
    if (lab == arg) return lab;
    if (c->zero_promoted) return arg;
    if (!(v >= c->hmin)) return lab;
    for (size_t j = 0; j < c->npro; j++) { /* h ascending */
      float h = c->pro[j].h;
      if (h > v) break;
      size_t g = c->pro[j].g;
      if (pair_iou(c->gt + 4 * g, c->garea[g], ax1, ay1, ax2, ay2, aa) == h) return arg;
    }
    return lab;
  }
  if (!c->assign_all) return lab; /* first-argmax assignment is applied afterwards */
  if (v >= c->hmin) {
    for (size_t j = 0; j < c->npro; j++) { /* index descending, all > zmax */
      float h = c->pro[j].h;
      if (h > v) continue;
      size_t g = c->pro[j].g;
      if (pair_iou(c->gt + 4 * g, c->garea[g], ax1, ay1, ax2, ay2, aa) == h) return (int64_t)g;
    }
  }
  return c->zmax >= 0 ? c->zmax : lab;
}

/* Whether final_label() can read the anchor's coordinates (else they may be garbage). */
static inline int needs_coords(const mctx *c, float v) {
  if (c->border_on && !c->border_exclude) return 1;
  if (!c->lq || v < 0.0f || !(v >= c->hmin)) return 0;
  return c->sem == DETLOSS_MATCH_MMDET || v < c->high;
}

static void pass2_plain(void *vc, size_t i0, size_t i1, size_t b) {
  mctx *c = vc;
  (void)b;
  for (size_t a = i0; a < i1; a++) {
    const float *p = c->anchors + 4 * a;
    int64_t lab = final_label(c, c->mi[a], c->matches[a], p[0], p[1], p[2], p[3]);
    if (c->border_on && !c->border_exclude && outside(c, p[0], p[1], p[2], p[3])) lab = -2;
    c->matches[a] = lab;
  }
}

static void pass2_grid(void *vc, size_t i0, size_t i1, size_t b) {
  mctx *c = vc;
  (void)i1;
  (void)b;
  const gridblk *blk = &c->blks[i0];
  const dl_grid_level *lv = &c->grid->lv[blk->level];
  size_t a = lv->off + blk->y0 * lv->w * lv->k;
  for (size_t y = blk->y0; y < blk->y1; y++)
    for (size_t x = 0; x < lv->w; x++)
      for (size_t k = 0; k < lv->k; k++, a++) {
        float v = c->mi[a];
        if (!needs_coords(c, v)) {
          c->matches[a] = final_label(c, v, c->matches[a], 0.0f, 0.0f, 0.0f, 0.0f);
          continue;
        }
        const float *bs = lv->base + 4 * k;
        float ax1 = lv->sx[x] + bs[0], ay1 = lv->sy[y] + bs[1];
        float ax2 = lv->sx[x] + bs[2], ay2 = lv->sy[y] + bs[3];
        int64_t lab = final_label(c, v, c->matches[a], ax1, ay1, ax2, ay2);
        if (c->border_on && !c->border_exclude && outside(c, ax1, ay1, ax2, ay2)) lab = -2;
        c->matches[a] = lab;
      }
}

detloss_status dl_match_check_options(const void *options, const char *at, detloss_error *err) {
  if (options == NULL) return DETLOSS_OK;
  const detloss_match_options *o = (const detloss_match_options *)options;
  char w[DETLOSS_WHERE_MAX];
  DL_RETURN_ERROR_IF(!(o->high >= 0.0f && o->high <= 1.0f), err, DETLOSS_ERR_RANGE,
                     dl_assign_option_where(w, at, "high"), "must be in [0, 1], got %g",
                     (double)o->high);
  DL_RETURN_ERROR_IF(!(o->low >= 0.0f && o->low <= 1.0f), err, DETLOSS_ERR_RANGE,
                     dl_assign_option_where(w, at, "low"), "must be in [0, 1], got %g",
                     (double)o->low);
  DL_RETURN_ERROR_IF(o->low > o->high, err, DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "low"),
                     "is %g, above high (%g)", (double)o->low, (double)o->high);
  DL_RETURN_ERROR_IF(!(o->low_quality_min_iou >= 0.0f && o->low_quality_min_iou <= 1.0f), err,
                     DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "low_quality_min_iou"),
                     "must be in [0, 1], got %g", (double)o->low_quality_min_iou);
  DL_RETURN_ERROR_IF(o->semantics != DETLOSS_MATCH_TORCHVISION &&
                         o->semantics != DETLOSS_MATCH_DETECTRON2 &&
                         o->semantics != DETLOSS_MATCH_MMDET,
                     err, DETLOSS_ERR_RANGE, dl_assign_option_where(w, at, "semantics"),
                     "unknown semantics %d", (int)o->semantics);
  DL_RETURN_ERROR_IF(!(o->crowd_ioa_thresh <= 1.0f), err, DETLOSS_ERR_RANGE,
                     dl_assign_option_where(w, at, "crowd_ioa_thresh"),
                     "must be <= 1 (< 0 disables), got %g", (double)o->crowd_ioa_thresh);
  DL_RETURN_ERROR_IF(isnan(o->allowed_border) || isinf(o->allowed_border), err, DETLOSS_ERR_RANGE,
                     dl_assign_option_where(w, at, "allowed_border"),
                     "must be finite (< 0 disables)");
  return DETLOSS_OK;
}

static detloss_status check_options(const detloss_match_options *o, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_match_check_options(o, "", err));
  if (o->allowed_border >= 0.0f) {
    DL_RETURN_ERROR_IF(!(o->image_h > 0.0f) || !isfinite(o->image_h), err, DETLOSS_ERR_RANGE,
                       "image_h", "must be finite and > 0 when allowed_border >= 0, got %g",
                       (double)o->image_h);
    DL_RETURN_ERROR_IF(!(o->image_w > 0.0f) || !isfinite(o->image_w), err, DETLOSS_ERR_RANGE,
                       "image_w", "must be finite and > 0 when allowed_border >= 0, got %g",
                       (double)o->image_w);
  }
  return DETLOSS_OK;
}

static int cmp_h_asc(const void *pa, const void *pb) {
  const promo *a = pa, *b = pb;
  if (a->h != b->h) return a->h < b->h ? -1 : 1;
  return a->g < b->g ? -1 : (a->g > b->g);
}
static int cmp_g_desc(const void *pa, const void *pb) {
  const promo *a = pa, *b = pb;
  return a->g > b->g ? -1 : (a->g < b->g);
}

/* Exact cell range of one axis: the x in [0, n) with fl(s[x] + b_hi) > g_lo and
 * fl(s[x] + b_lo) < g_hi. s is non-decreasing, so each predicate holds on an interval;
 * a double estimate is corrected by stepping. */
static void axis_range(const float *s, size_t n, float stride, float offset, float b_lo, float b_hi,
                       float g_lo, float g_hi, long long *lo, long long *hi) {
  long long N = (long long)n;
  *lo = 0;
  *hi = -1;
  if (n == 0 || !(b_hi > b_lo)) return;
  double st = (double)stride, o = (double)offset * st;
  double elo = floor(((double)g_lo - (double)b_hi - o) / st);
  double ehi = ceil(((double)g_hi - (double)b_lo - o) / st);
  long long l = elo < 0.0 ? 0 : (elo > (double)(N - 1) ? N - 1 : (long long)elo);
  long long h = ehi < 0.0 ? 0 : (ehi > (double)(N - 1) ? N - 1 : (long long)ehi);
  while (l < N && !(s[l] + b_hi > g_lo)) l++;
  while (l > 0 && s[l - 1] + b_hi > g_lo) l--;
  if (h > N - 1) h = N - 1;
  while (h >= 0 && !(s[h] + b_lo < g_hi)) h--;
  while (h + 1 < N && s[h + 1] + b_lo < g_hi) h++;
  *lo = l;
  *hi = h;
}

/* The options as the passes read them. */
static void set_rule(mctx *c, const detloss_match_options *o) {
  c->high = o->high;
  c->low = o->low;
  c->lq = o->allow_low_quality != 0;
  c->lq_min = o->low_quality_min_iou;
  c->sem = (int)o->semantics;
  c->assign_all = o->gt_max_assign_all != 0;
  c->crowd_thr = o->crowd_ioa_thresh;
  c->border_on = o->allowed_border >= 0.0f;
  c->border_exclude = c->border_on && o->semantics != DETLOSS_MATCH_DETECTRON2;
  if (c->border_on) {
    double bd = (double)o->allowed_border;
    c->bx1 = (float)-bd;
    c->by1 = (float)-bd;
    c->bx2 = (float)((double)o->image_w + bd);
    c->by2 = (float)((double)o->image_h + bd);
  }
}

static inline int is_crowd(const mctx *c, size_t g) { return c->crowd != NULL && c->crowd[g] != 0; }

/* Sorts the gts by role: non-crowd proper gts (act, also as columns for the plain
 * path), crowd regions (crw), the first non-crowd gt g0 (every anchor's initial
 * argmax) and the number of non-crowd gts. Returns 0 when out of memory. */
static int sort_gts(mctx *c) {
  size_t G = c->G;
  c->garea = malloc((G ? G : 1) * sizeof(float));
  c->cx1 = malloc((G ? G : 1) * 5 * sizeof(float));
  c->act = malloc((G ? G : 1) * sizeof(size_t));
  c->crw = malloc((G ? G : 1) * sizeof(size_t));
  if (!c->garea || !c->cx1 || !c->act || !c->crw) return 0;
  c->nact = c->ncrw = c->nnc = 0;
  c->g0 = -1;
  for (size_t g = 0; g < G; g++) {
    const float *b = c->gt + 4 * g;
    int crowd = is_crowd(c, g);
    int proper = b[2] > b[0] && b[3] > b[1];
    c->garea[g] = (b[2] - b[0]) * (b[3] - b[1]);
    if (!crowd && c->g0 < 0) c->g0 = (int64_t)g;
    if (!crowd) c->nnc++;
    if (!proper) continue;
    if (crowd) {
      if (c->crowd_thr >= 0.0f) c->crw[c->ncrw++] = g;
    } else {
      c->act[c->nact++] = g;
    }
  }
  if (c->g0 < 0) c->g0 = 0;
  c->cy1 = c->cx1 + c->nact;
  c->cx2 = c->cy1 + c->nact;
  c->cy2 = c->cx2 + c->nact;
  c->carea = c->cy2 + c->nact;
  for (size_t j = 0; j < c->nact; j++) {
    const float *b = c->gt + 4 * c->act[j];
    c->cx1[j] = b[0];
    c->cy1[j] = b[1];
    c->cx2[j] = b[2];
    c->cy2[j] = b[3];
    c->carea[j] = c->garea[c->act[j]];
  }
  return 1;
}

/* The parallel blocks of both passes: MATCH_BLOCK anchors (plain path), or whole rows
 * of one level holding about MATCH_BLOCK anchors (grid path; also allocates the cell
 * rectangles). Returns 0 when out of memory. */
static int plan_blocks(mctx *c) {
  if (!c->grid) {
    c->nblocks = dl_num_blocks(c->A, MATCH_BLOCK);
    return 1;
  }
  const dl_grid *gr = c->grid;
  c->kbase = malloc((gr->num_levels ? gr->num_levels : 1) * sizeof(size_t));
  if (!c->kbase) return 0;
  c->ktot = 0;
  c->nblocks = 0;
  for (size_t l = 0; l < gr->num_levels; l++) {
    c->kbase[l] = c->ktot;
    c->ktot += gr->lv[l].k;
    size_t row = gr->lv[l].w * gr->lv[l].k;
    if (row == 0) continue;
    size_t rpb = MATCH_BLOCK / row ? MATCH_BLOCK / row : 1;
    c->nblocks += dl_num_blocks(gr->lv[l].h, rpb);
  }
  c->blks = malloc((c->nblocks ? c->nblocks : 1) * sizeof *c->blks);
  size_t nr = c->G * c->ktot * 4;
  c->rects = malloc((nr ? nr : 1) * sizeof(long long));
  if (!c->blks || !c->rects) return 0;
  size_t nb = 0;
  for (size_t l = 0; l < gr->num_levels; l++) {
    size_t row = gr->lv[l].w * gr->lv[l].k;
    if (row == 0) continue;
    size_t rpb = MATCH_BLOCK / row ? MATCH_BLOCK / row : 1;
    for (size_t y = 0; y < gr->lv[l].h; y += rpb) {
      c->blks[nb].level = l;
      c->blks[nb].y0 = y;
      c->blks[nb].y1 = y + rpb < gr->lv[l].h ? y + rpb : gr->lv[l].h;
      nb++;
    }
  }
  return 1;
}

/* Grid path: for every gt, level and base anchor, the rectangle of cells whose anchor
 * intersects the gt (axis_range); pass 1 visits only these. */
static void find_cell_rects(mctx *c) {
  const dl_grid *gr = c->grid;
  for (size_t g = 0; g < c->G; g++) {
    const float *b = c->gt + 4 * g;
    for (size_t l = 0; l < gr->num_levels; l++) {
      const dl_grid_level *lv = &gr->lv[l];
      for (size_t k = 0; k < lv->k; k++) {
        long long *r = c->rects + 4 * (g * c->ktot + c->kbase[l] + k);
        const float *bs = lv->base + 4 * k;
        axis_range(lv->sx, lv->w, lv->stride_w, lv->offset, bs[0], bs[2], b[0], b[2], &r[0], &r[1]);
        axis_range(lv->sy, lv->h, lv->stride_h, lv->offset, bs[1], bs[3], b[1], b[3], &r[2], &r[3]);
      }
    }
  }
}

/* The per-block partials of pass 1 and the per-gt results. Returns 0 when out of
 * memory (or when nblocks x G overflows). */
static int alloc_best(mctx *c) {
  size_t G = c->G, nbg;
  if (dl_mul_overflow(c->nblocks, G, &nbg)) return 0;
  c->bmax = malloc((nbg ? nbg : 1) * sizeof(float));
  c->barg = malloc((nbg ? nbg : 1) * sizeof(size_t));
  c->h = malloc((G ? G : 1) * sizeof(float));
  c->fa = malloc((G ? G : 1) * sizeof(size_t));
  c->pro = malloc((G ? G : 1) * sizeof(promo));
  return c->bmax && c->barg && c->h && c->fa && c->pro;
}

static void free_scratch(mctx *c) {
  free(c->mi_own);
  free(c->blks);
  free(c->garea);
  free(c->cx1);
  free(c->act);
  free(c->crw);
  free(c->bmax);
  free(c->barg);
  free(c->rects);
  free(c->kbase);
  free(c->h);
  free(c->fa);
  free(c->pro);
}

/* Pass 1, parallel: every anchor's best IoU and argmax gt (max_iou, matches), and per
 * block and gt the block's best IoU and its lowest anchor index (bmax, barg). */
static void per_anchor_best(mctx *c, int num_threads) {
  if (c->grid)
    dl_parallel_blocks(c->nblocks, 1, num_threads, pass1_grid, c);
  else
    dl_parallel_blocks(c->A, MATCH_BLOCK, num_threads, pass1_plain, c);
}

/* Serial: each gt's best IoU h_g and first argmax anchor fa_g, from the block partials
 * merged in block order (ties keep the lowest anchor index). A gt whose best is 0 takes
 * the first anchor not removed by the crowd or border rule (torch.max over a row of
 * zeros); so does every gt that is not in act. */
static void per_gt_best(mctx *c) {
  size_t G = c->G;
  size_t first_kept = SIZE_MAX;
  for (size_t a = 0; a < c->A; a++)
    if (c->mi[a] >= 0.0f) {
      first_kept = a;
      break;
    }
  for (size_t g = 0; g < G; g++) {
    c->h[g] = 0.0f;
    c->fa[g] = first_kept;
  }
  for (size_t j = 0; j < c->nact; j++) {
    float hg = 0.0f;
    size_t ag = SIZE_MAX;
    for (size_t b = 0; b < c->nblocks; b++) {
      float v = c->bmax[b * G + j];
      size_t ia = c->barg[b * G + j];
      if (v > hg || (v == hg && v > 0.0f && ia < ag)) {
        hg = v;
        ag = ia;
      }
    }
    size_t g = c->act[j];
    c->h[g] = hg;
    c->fa[g] = hg > 0.0f ? ag : first_kept;
  }
}

/* The low-quality rule's gts: those with h_g >= low_quality_min_iou. Promoted gts with
 * h_g > 0 go to pro, in the order final_label() scans them; one with h_g == 0 sets
 * zero_promoted (torchvision, detectron2) or zmax (mmdet). */
static void promote_gts(mctx *c) {
  c->npro = 0;
  c->zero_promoted = 0;
  c->zmax = -1;
  c->hmin = INFINITY;
  if (!c->lq) return;
  for (size_t j = 0; j < c->nact; j++) {
    size_t g = c->act[j];
    if (!(c->h[g] >= c->lq_min)) continue;
    if (c->h[g] == 0.0f) {
      c->zero_promoted = 1;
      c->zmax = (int64_t)g;
      continue;
    }
    c->pro[c->npro].h = c->h[g];
    c->pro[c->npro].g = g;
    c->npro++;
  }
  /* Degenerate or non-crowd gts that overlap nothing are not in act but still have
   * h = 0 with every anchor: they take part exactly like an overlapping-nothing gt. */
  for (size_t g = 0; g < c->G; g++) {
    const float *b = c->gt + 4 * g;
    if (is_crowd(c, g) || (b[2] > b[0] && b[3] > b[1])) continue;
    if (0.0f >= c->lq_min) {
      c->zero_promoted = 1;
      if ((int64_t)g > c->zmax) c->zmax = (int64_t)g;
    }
  }
  if (c->sem == DETLOSS_MATCH_MMDET) {
    size_t n = 0;
    for (size_t j = 0; j < c->npro; j++)
      if ((int64_t)c->pro[j].g > c->zmax) c->pro[n++] = c->pro[j];
    c->npro = n;
    qsort(c->pro, c->npro, sizeof *c->pro, cmp_g_desc);
  } else {
    qsort(c->pro, c->npro, sizeof *c->pro, cmp_h_asc);
  }
  for (size_t j = 0; j < c->npro; j++)
    if (c->pro[j].h < c->hmin) c->hmin = c->pro[j].h;
}

/* Pass 2, parallel over the same blocks: each anchor's label (final_label). */
static void label_anchors(mctx *c, int num_threads) {
  if (c->grid)
    dl_parallel_blocks(c->nblocks, 1, num_threads, pass2_grid, c);
  else
    dl_parallel_blocks(c->A, MATCH_BLOCK, num_threads, pass2_plain, c);
}

/* mmdet with gt_max_assign_all = 0: each promoted gt, in index order, takes its first
 * argmax anchor (later gts overwrite). */
static void assign_first_argmax(mctx *c) {
  if (!(c->lq && c->sem == DETLOSS_MATCH_MMDET && !c->assign_all && c->nnc > 0)) return;
  for (size_t g = 0; g < c->G; g++) {
    if (is_crowd(c, g) || !(c->h[g] >= c->lq_min) || c->fa[g] == SIZE_MAX) continue;
    c->matches[c->fa[g]] = (int64_t)g;
  }
}

/* The whole matcher on c's inputs. All scratch is allocated before pass 1 writes the
 * first output, so an error (NOMEM) leaves matches and max_iou untouched. */
static detloss_status run_match(mctx *c, const detloss_match_options *o, int num_threads,
                                detloss_error *err) {
  set_rule(c, o);
  if (c->A == 0) return DETLOSS_OK;
  if (c->mi == NULL) c->mi = c->mi_own = malloc(c->A * sizeof(float));
  if (!c->mi || !sort_gts(c) || !plan_blocks(c) || !alloc_best(c)) {
    free_scratch(c);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "matches", "out of memory");
  }
  if (c->grid) find_cell_rects(c);
  per_anchor_best(c, num_threads);
  per_gt_best(c);
  promote_gts(c);
  label_anchors(c, num_threads);
  assign_first_argmax(c);
  free_scratch(c);
  return DETLOSS_OK;
}

/* The outputs (matches = gt_index [A], max_iou = quality [A], labels [A]) may not
 * overlap each other or any input (the anchors, gt, gt labels, crowd flags, or the
 * grid config). */
static detloss_status check_match_overlaps(const dl_assign_input *in, const dl_assign_result *out,
                                           detloss_error *err) {
  size_t A = in->num_anchors, G = in->num_gt;
  dl_span s[7] = {
      dl_span_of(in->anchors, A, 4 * sizeof(float), "anchors", 0),
      dl_span_of(in->gt, G, 4 * sizeof(float), "gt", 0),
      dl_span_of(in->gt_is_crowd, G, sizeof(uint8_t), "gt_is_crowd", 0),
      dl_span_of(out->gt_index, A, sizeof(int64_t), "matches", 1),
      dl_span_of(out->quality, A, sizeof(float), "max_iou", 1),
      dl_span_of(out->labels, A, sizeof(int64_t), "labels", 1),
      dl_span_of(in->gt_labels, G, sizeof(int64_t), "gt_labels", 0),
  };
  DL_FORWARD_IF_ERROR(dl_check_overlaps(s, 7, err));
  return dl_check_grid_overlaps(in->anchor_config, "", s + 3, 3, DL_NO_IMAGE, err);
}

/* The per-anchor labels of the assign result: gt_labels[m] where m >= 0, else -1. */
static void write_labels(const dl_assign_input *in, const dl_assign_result *out) {
  for (size_t a = 0; a < in->num_anchors; a++) {
    int64_t m = out->gt_index[a];
    out->labels[a] = m >= 0 ? in->gt_labels[m] : -1;
  }
}

detloss_status dl_assign_max_iou(const dl_assign_input *in, const void *options,
                                 dl_assign_result *out, detloss_error *err) {
  detloss_match_options o =
      options ? *(const detloss_match_options *)options : detloss_match_options_default();
  o.image_h = in->image_h;
  o.image_w = in->image_w;
  o.num_threads = in->num_threads;
  DL_FORWARD_IF_ERROR(check_options(&o, err));
  size_t A = in->num_anchors, G = in->num_gt;
  if (in->anchor_config != NULL) {
    size_t count;
    DL_FORWARD_IF_ERROR(detloss_anchors_count(in->anchor_config, &count, err));
    DL_RETURN_ERROR_IF(count != A, err, DETLOSS_ERR_SHAPE, "num_anchors",
                       "is %zu but the config generates %zu anchors", A, count);
  } else {
    DL_FORWARD_IF_ERROR(dl_check_coords(in->anchors, A, "anchors", err));
  }
  DL_FORWARD_IF_ERROR(dl_check_coords(in->gt, G, "gt", err));
  DL_RETURN_ERROR_IF(G > (size_t)INT32_MAX, err, DETLOSS_ERR_SHAPE, "gt",
                     "%zu boxes is more than 2^31 - 1", G);
  DL_FORWARD_IF_ERROR(dl_check_ptr(out->gt_index, A, "matches", err));
  DL_RETURN_ERROR_IF(out->labels != NULL && G > 0 && in->gt_labels == NULL, err, DETLOSS_ERR_NULL,
                     "gt_labels", "is NULL but per-anchor labels are asked for");
  DL_FORWARD_IF_ERROR(check_match_overlaps(in, out, err));
  mctx c;
  memset(&c, 0, sizeof c);
  c.G = G;
  c.gt = in->gt;
  c.A = A;
  c.matches = out->gt_index;
  c.mi = out->quality;
  c.crowd = in->gt_is_crowd;
  /* run_match allocates all its scratch before the first write, so even NOMEM leaves
   * the outputs untouched. */
  detloss_status st;
  if (in->anchor_config != NULL) {
    /* detloss_anchors_count has checked that every generated anchor is finite
     * and within DL_COORD_MAX, as the plain path requires of its anchors. */
    dl_grid g;
    DL_FORWARD_IF_ERROR(dl_grid_build(in->anchor_config, &g, err));
    c.grid = &g;
    st = run_match(&c, &o, o.num_threads, err);
    dl_grid_free(&g);
  } else {
    c.anchors = in->anchors;
    st = run_match(&c, &o, o.num_threads, err);
  }
  if (st == DETLOSS_OK && out->labels != NULL) write_labels(in, out);
  return st;
}

/* The public matchers: the Max-IoU assigner with the image size and thread count
 * taken from the options. */
static detloss_status match_public(dl_assign_input *in, const uint8_t *gt_is_crowd,
                                   int64_t *matches, float *max_iou,
                                   const detloss_match_options *opt, detloss_error *err) {
  detloss_match_options o = opt ? *opt : detloss_match_options_default();
  in->gt_is_crowd = gt_is_crowd;
  in->image_h = o.image_h;
  in->image_w = o.image_w;
  in->num_threads = o.num_threads;
  dl_assign_result out = {.gt_index = matches, .quality = max_iou};
  return dl_assign_max_iou(in, &o, &out, err);
}

detloss_status detloss_match(const float *anchors, size_t num_anchors, const float *gt,
                             size_t num_gt, const uint8_t *gt_is_crowd, int64_t *matches,
                             float *max_iou, const detloss_match_options *opt, detloss_error *err) {
  dl_assign_input in;
  memset(&in, 0, sizeof in);
  in.anchors = anchors;
  in.num_anchors = num_anchors;
  in.gt = gt;
  in.num_gt = num_gt;
  return match_public(&in, gt_is_crowd, matches, max_iou, opt, err);
}

detloss_status detloss_match_grid(const detloss_anchor_config *cfg, const float *gt, size_t num_gt,
                                  const uint8_t *gt_is_crowd, int64_t *matches, float *max_iou,
                                  size_t num_anchors, const detloss_match_options *opt,
                                  detloss_error *err) {
  dl_assign_input in;
  memset(&in, 0, sizeof in);
  in.anchor_config = cfg;
  in.num_anchors = num_anchors;
  in.gt = gt;
  in.num_gt = num_gt;
  return match_public(&in, gt_is_crowd, matches, max_iou, opt, err);
}
