/*
 * box_kernels.h - the box micro-kernels shared by the IoU family, the matcher,
 * anchor generation, anchor evaluation and the losses: one definition each, so
 * that the copies cannot drift apart in the last bit.
 *
 * All are static inline (they sit in the innermost loops, several of which the
 * compiler vectorizes) and evaluate float32 operations in a fixed order; the
 * build uses -ffp-contract=off, so no a*b+c is fused and every caller gets the
 * same bits as torchvision.
 */
#ifndef DETLOSS_BOX_KERNELS_H
#define DETLOSS_BOX_KERNELS_H

#include <float.h>
#include <stddef.h>

/* min / max of two floats without a libm call (fminf/fmaxf are not inlined
 * without -ffinite-math-only). The inputs are finite; only the sign of a zero
 * result can differ from fminf/fmaxf, and no intersection or IoU below
 * depends on it. */
static inline float dl_minf(float a, float b) { return a < b ? a : b; }
static inline float dl_maxf(float a, float b) { return a > b ? a : b; }

/*
 * dl_pair_iou_union() - IoU of one pair of (x1, y1, x2, y2) boxes, and their union.
 *   I = max(min(ax2, bx2) - max(ax1, bx1), 0) * max(min(ay2, by2) - max(ay1, by1), 0)
 *   U = (area_a + area_b) - I,   area = (x2 - x1)(y2 - y1), not clamped
 *   IoU = I / U, and 0 when I = 0
 * Matches torchvision.ops.box_iou (_box_inter_union) with a as the row box:
 * box_iou(gt, anchors) makes the gt box a. I = 0 gives IoU 0 (detectron2's
 * rule: pairwise_iou), so U = 0 never divides; when I > 0 both boxes are proper
 * and U >= max(area) > 0, so the division is torchvision's exactly and the
 * IoU lies in (0, 1], never -0 or NaN. Evaluated as iw = min - max, ih likewise,
 * I = iw * ih kept only when iw > 0 and I > 0 (which implies ih > 0; an I that
 * underflows to 0 counts as no intersection): the same bits as the clamped
 * formula above, with a select instead of a branch, so loops over it vectorize
 * (the division runs in every lane; lanes without intersection are discarded).
 * *uni_out gets U (GIoU, DIoU). dl_pair_inter() is the shared first step: the
 * raw product iw * ih and whether it counts.
 */
static inline float dl_pair_inter(float ax1, float ay1, float ax2, float ay2, float bx1, float by1,
                                  float bx2, float by2, int *hit) {
  float iw = dl_minf(ax2, bx2) - dl_maxf(ax1, bx1);
  float ih = dl_minf(ay2, by2) - dl_maxf(ay1, by1);
  float inter = iw * ih;
  *hit = iw > 0.0f && inter > 0.0f;
  return inter;
}

/* dl_pair_iou() - the IoU of dl_pair_iou_union() alone. */
static inline float dl_pair_iou(float ax1, float ay1, float ax2, float ay2, float aarea, float bx1,
                                float by1, float bx2, float by2, float barea) {
  int hit;
  float inter = dl_pair_inter(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, &hit);
  float iou = inter / ((aarea + barea) - inter);
  return hit ? iou : 0.0f;
}

static inline float dl_pair_iou_union(float ax1, float ay1, float ax2, float ay2, float aarea,
                                      float bx1, float by1, float bx2, float by2, float barea,
                                      float *uni_out) {
  int hit;
  float inter = dl_pair_inter(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, &hit);
  *uni_out = (aarea + barea) - (hit ? inter : 0.0f);
  float iou = inter / ((aarea + barea) - inter);
  return hit ? iou : 0.0f;
}

/*
 * dl_cell_shift() - the shift of grid cell i along one axis.
 *   shift(i) = fl32(offset * stride + stride * i),  evaluated in double, rounded once
 * detectron2's float32 arange(offset * stride, ..., stride), whose CPU kernel
 * computes start + step * i in double; with offset 0 and an integer stride it
 * is torchvision AnchorGenerator's int64 shift cast to float32.
 * dl_cell_shift_unrounded() is the same value before the rounding (the extent
 * checks of anchors.c bound it).
 */
static inline double dl_cell_shift_unrounded(float offset, float stride, size_t i) {
  return (double)offset * (double)stride + (double)stride * (double)i;
}
static inline float dl_cell_shift(float offset, float stride, size_t i) {
  return (float)dl_cell_shift_unrounded(offset, stride, i);
}

/*
 * dl_sat_float() - x rounded to float, saturating at +-FLT_MAX instead of
 * overflowing to +-Inf (the convention of detloss_loss_boxes: finite input
 * never gives a non-finite result). x is never NaN at the callers. Two selects
 * (minpd / maxpd when vectorized).
 * dl_sat_f32() - the same clamp of a float that may already be +-Inf.
 */
static inline float dl_sat_float(double x) {
  x = x < (double)FLT_MAX ? x : (double)FLT_MAX;
  x = x > -(double)FLT_MAX ? x : -(double)FLT_MAX;
  return (float)x;
}
static inline float dl_sat_f32(float v) {
  v = v < FLT_MAX ? v : FLT_MAX;
  return v > -FLT_MAX ? v : -FLT_MAX;
}

#endif /* DETLOSS_BOX_KERNELS_H */
