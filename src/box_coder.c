/*
 * box_coder.c - (dx, dy, dw, dh) box deltas: encode and decode.
 *
 * torchvision BoxCoder semantics (models/detection/_utils.py), evaluated in
 * float32 in torchvision's operation order. Ref: Girshick et al., "Rich
 * feature hierarchies ...", CVPR 2014, appendix C; Ren et al., Faster R-CNN,
 * NeurIPS 2015, eq. 2.
 *
 * Both calls validate by computing: a first pass evaluates every output in
 * registers and checks that it is finite, so that a zero-width box (log 0),
 * or deltas that overflow float, is reported with the index of the culprit
 * and the output buffer stays untouched; the second pass writes.
 */
#include <math.h>
#include <stdio.h>

#include "internal.h"
#include "parallel.h"

detloss_coder_options detloss_coder_options_default(void) {
  detloss_coder_options o = DETLOSS_CODER_OPTIONS_INIT;
  return o;
}

static detloss_status check_coder_options(const detloss_coder_options *o, detloss_error *err) {
  static const char *const names[4] = {"weights[0]", "weights[1]", "weights[2]", "weights[3]"};
  for (int k = 0; k < 4; k++)
    DL_RETURN_ERROR_IF(!(o->weights[k] > 0.0f) || !isfinite(o->weights[k]), err, DETLOSS_ERR_RANGE,
                       names[k], "must be a finite number > 0, got %g", (double)o->weights[k]);
  DL_RETURN_ERROR_IF(!(o->clip > 0.0f), err, DETLOSS_ERR_RANGE, "clip",
                     "must be > 0 (it may be infinite), got %g", (double)o->clip);
  return DETLOSS_OK;
}

/* encode, one pair (torchvision encode_boxes):
 *   wa = xa2 - xa1, xa = xa1 + 0.5 wa  (same for y and for the gt box)
 *   dx = wx (xg - xa) / wa,  dy = wy (yg - ya) / ha,
 *   dw = ww log(wg / wa),    dh = wh log(hg / ha)                            */
static inline void encode_one(const float *a, const float *g, const float *w, float *d) {
  float aw = a[2] - a[0], ah = a[3] - a[1];
  float ax = a[0] + 0.5f * aw, ay = a[1] + 0.5f * ah;
  float gw = g[2] - g[0], gh = g[3] - g[1];
  float gx = g[0] + 0.5f * gw, gy = g[1] + 0.5f * gh;
  d[0] = w[0] * (gx - ax) / aw;
  d[1] = w[1] * (gy - ay) / ah;
  d[2] = w[2] * logf(gw / aw);
  d[3] = w[3] * logf(gh / ah);
}

/* decode, one pair (torchvision decode_single):
 *   dx' = dx / wx, ..., dw' = min(dw / ww, clip), dh' = min(dh / wh, clip)
 *   cx = dx' wa + xa,  w = exp(dw') wa,  x1 = cx - 0.5 w, x2 = cx + 0.5 w  */
static inline void decode_one(const float *a, const float *d, const float *w, float clip,
                              float *b) {
  float aw = a[2] - a[0], ah = a[3] - a[1];
  float ax = a[0] + 0.5f * aw, ay = a[1] + 0.5f * ah;
  float dx = d[0] / w[0], dy = d[1] / w[1];
  float dw = d[2] / w[2], dh = d[3] / w[3];
  dw = dw < clip ? dw : clip;
  dh = dh < clip ? dh : clip;
  float cx = dx * aw + ax, cy = dy * ah + ay;
  float pw = expf(dw) * aw, ph = expf(dh) * ah;
  float hw = 0.5f * pw, hh = 0.5f * ph;
  b[0] = cx - hw;
  b[1] = cy - hh;
  b[2] = cx + hw;
  b[3] = cy + hh;
}

static inline int all_finite4(const float *v) {
  return isfinite(v[0]) && isfinite(v[1]) && isfinite(v[2]) && isfinite(v[3]);
}

typedef struct coder_ctx {
  const float *anchors, *src;
  float *dst;
  const float *w;
  float clip;
} coder_ctx;

static void encode_range(void *vctx, size_t i0, size_t i1, size_t block) {
  const coder_ctx *c = vctx;
  (void)block;
  for (size_t i = i0; i < i1; i++)
    encode_one(c->anchors + 4 * i, c->src + 4 * i, c->w, c->dst + 4 * i);
}

static void decode_range(void *vctx, size_t i0, size_t i1, size_t block) {
  const coder_ctx *c = vctx;
  (void)block;
  for (size_t i = i0; i < i1; i++)
    decode_one(c->anchors + 4 * i, c->src + 4 * i, c->w, c->clip, c->dst + 4 * i);
}

static detloss_status fail_box(detloss_error *err, const char *name, size_t i, const char *why) {
  char where[DETLOSS_WHERE_MAX];
  snprintf(where, sizeof where, "%s[%zu]", name, i);
  return dl_fail(err, DETLOSS_ERR_RANGE, where, "%s", why);
}

/* The output [n][4] may equal either input exactly (each row is read into
 * registers before it is written, and rows are independent), but may not
 * overlap one partially. */
static detloss_status check_coder_overlaps(const float *a, const char *an, const float *b,
                                           const char *bn, float *out, const char *on, size_t n,
                                           detloss_error *err) {
  dl_span sp[3] = {dl_span_of(a, n, 4 * sizeof(float), an, 0),
                   dl_span_of(b, n, 4 * sizeof(float), bn, 0),
                   dl_span_of(out, n, 4 * sizeof(float), on, 1)};
  sp[0].inplace = sp[1].inplace = 1;
  return dl_check_overlaps(sp, 3, err);
}

detloss_status detloss_box_encode(const float *anchors, const float *boxes, size_t n, float *deltas,
                                  const detloss_coder_options *opt, detloss_error *err) {
  detloss_coder_options o = opt ? *opt : detloss_coder_options_default();
  DL_FORWARD_IF_ERROR(check_coder_options(&o, err));
  DL_FORWARD_IF_ERROR(dl_check_boxes(anchors, n, "anchors", err));
  DL_FORWARD_IF_ERROR(dl_check_boxes(boxes, n, "boxes", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(deltas, n, "deltas", err));
  DL_FORWARD_IF_ERROR(
      check_coder_overlaps(anchors, "anchors", boxes, "boxes", deltas, "deltas", n, err));
  for (size_t i = 0; i < n; i++) {
    const float *a = anchors + 4 * i, *g = boxes + 4 * i;
    if (!(a[2] - a[0] > 0.0f && a[3] - a[1] > 0.0f))
      return fail_box(err, "anchors", i, "must have positive width and height to encode against");
    if (!(g[2] - g[0] > 0.0f && g[3] - g[1] > 0.0f))
      return fail_box(err, "boxes", i, "must have positive width and height (log of 0)");
    float d[4];
    encode_one(a, g, o.weights, d);
    if (!all_finite4(d))
      return fail_box(err, "boxes", i, "encodes to a non-finite delta (sizes too far apart)");
  }
  coder_ctx ctx = {anchors, boxes, deltas, o.weights, o.clip};
  dl_parallel_blocks(n, 8192, o.num_threads, encode_range, &ctx);
  return DETLOSS_OK;
}

detloss_status detloss_box_decode(const float *anchors, const float *deltas, size_t n, float *boxes,
                                  const detloss_coder_options *opt, detloss_error *err) {
  detloss_coder_options o = opt ? *opt : detloss_coder_options_default();
  DL_FORWARD_IF_ERROR(check_coder_options(&o, err));
  DL_FORWARD_IF_ERROR(dl_check_boxes(anchors, n, "anchors", err));
  DL_FORWARD_IF_ERROR(dl_check_boxes(deltas, n, "deltas", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(boxes, n, "boxes", err));
  DL_FORWARD_IF_ERROR(
      check_coder_overlaps(anchors, "anchors", deltas, "deltas", boxes, "boxes", n, err));
  for (size_t i = 0; i < n; i++) {
    float b[4];
    decode_one(anchors + 4 * i, deltas + 4 * i, o.weights, o.clip, b);
    if (!all_finite4(b)) return fail_box(err, "deltas", i, "decodes to a box that overflows float");
  }
  coder_ctx ctx = {anchors, deltas, boxes, o.weights, o.clip};
  dl_parallel_blocks(n, 8192, o.num_threads, decode_range, &ctx);
  return DETLOSS_OK;
}
