/*
 * head_common.c - shared parts of the detector heads (head_internal.h):
 * per-image checks and the box regression loss over positives.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head_internal.h"

void dl_head_where(char *buf, size_t cap, size_t image, const char *suffix) {
  snprintf(buf, cap, "images[%zu]%s", image, suffix);
}

void dl_head_prefix(detloss_error *err, size_t image) {
  if (err == NULL) return;
  char tmp[DETLOSS_WHERE_MAX];
  snprintf(tmp, sizeof tmp, "images[%zu].%s", image, err->where);
  memcpy(err->where, tmp, sizeof tmp);
}

detloss_status dl_head_check_labels(const int64_t *labels, size_t num_gt, size_t num_classes,
                                    size_t i, detloss_error *err) {
  for (size_t g = 0; g < num_gt; g++) {
    int64_t lab = labels[g];
    if (lab < 0 || (uint64_t)lab >= (uint64_t)num_classes) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "images[%zu].labels[%zu]", i, g);
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %lld, expected a class index in [0, %zu)",
                     (long long)lab, num_classes);
    }
  }
  return DETLOSS_OK;
}

detloss_status dl_head_check_image(const detloss_head_image *im, size_t i, int needs_image_size,
                                   detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  size_t A = im->num_anchors;
  if (im->num_predictions != A) {
    dl_head_where(where, sizeof where, i, ".num_predictions");
    return dl_fail(err, DETLOSS_ERR_SHAPE, where,
                   "is %zu but the image has %zu anchors: predictions and anchors disagree",
                   im->num_predictions, A);
  }
  if (A > DL_MAX_ELEMS / 4) {
    dl_head_where(where, sizeof where, i, ".num_anchors");
    return dl_fail(err, DETLOSS_ERR_SHAPE, where, "%zu anchors is more than can be addressed", A);
  }
  if (A > 0 && im->anchors == NULL) {
    dl_head_where(where, sizeof where, i, ".anchors");
    return dl_fail(err, DETLOSS_ERR_NULL, where, "is NULL but num_anchors is %zu", A);
  }
  if (im->num_gt > 0 && im->gt == NULL) {
    dl_head_where(where, sizeof where, i, ".gt");
    return dl_fail(err, DETLOSS_ERR_NULL, where, "is NULL but num_gt is %zu", im->num_gt);
  }
  if (A > 0 && im->deltas == NULL) {
    dl_head_where(where, sizeof where, i, ".deltas");
    return dl_fail(err, DETLOSS_ERR_NULL, where, "is NULL but there are %zu predictions", A);
  }
  if (needs_image_size) {
    if (!(im->image_h > 0.0f) || !isfinite(im->image_h)) {
      dl_head_where(where, sizeof where, i, ".image_h");
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "must be a finite number > 0 when border filtering is on, got %g",
                     (double)im->image_h);
    }
    if (!(im->image_w > 0.0f) || !isfinite(im->image_w)) {
      dl_head_where(where, sizeof where, i, ".image_w");
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "must be a finite number > 0 when border filtering is on, got %g",
                     (double)im->image_w);
    }
  }
  return DETLOSS_OK;
}

/* Spans of a batch, enumerated: 5 global ones, then 10 per image. */
typedef struct head_spans {
  const detloss_head_image *images;
  size_t num_images, num_classes;
  const detloss_head_result *result;
  const detloss_head_image_stats *per_image;
  const void *workspace;
  size_t workspace_size;
  const float *ema_state;
} head_spans;

#define HEAD_GLOBAL_SPANS 5
#define HEAD_IMAGE_SPANS 10

static void head_span(const void *vctx, size_t k, dl_span *s) {
  const head_spans *h = vctx;
  if (k < HEAD_GLOBAL_SPANS) {
    switch (k) {
      case 0: *s = dl_span_of(h->images, h->num_images, sizeof *h->images, "images", 0); break;
      case 1: *s = dl_span_of(h->result, 1, sizeof *h->result, "result", 1); break;
      case 2:
        *s = dl_span_of(h->per_image, h->num_images, sizeof *h->per_image, "per_image", 1);
        break;
      case 3: *s = dl_span_of(h->workspace, h->workspace_size, 1, "workspace", 1); break;
      default: *s = dl_span_of(h->ema_state, 1, sizeof(float), "ema_state", 1); break;
    }
    return;
  }
  k -= HEAD_GLOBAL_SPANS;
  size_t i = k / HEAD_IMAGE_SPANS;
  const detloss_head_image *im = &h->images[i];
  size_t A = im->num_anchors, G = im->num_gt, C = h->num_classes;
  int rpn = C == 0;
  switch (k % HEAD_IMAGE_SPANS) {
    case 0: *s = dl_span_of(im->anchors, A, 4 * sizeof(float), "anchors", 0); break;
    case 1: *s = dl_span_of(im->gt, G, 4 * sizeof(float), "gt", 0); break;
    case 2: *s = dl_span_of(rpn ? NULL : im->labels, G, sizeof(int64_t), "labels", 0); break;
    case 3: *s = dl_span_of(im->gt_is_crowd, G, sizeof(uint8_t), "gt_is_crowd", 0); break;
    case 4: *s = dl_span_of(rpn ? im->objectness : NULL, A, sizeof(float), "objectness", 0); break;
    case 5:
      *s = dl_span_of(rpn ? NULL : im->cls_logits, A, C * sizeof(float), "cls_logits", 0);
      break;
    case 6: *s = dl_span_of(im->deltas, A, 4 * sizeof(float), "deltas", 0); break;
    case 7:
      *s = dl_span_of(rpn ? im->grad_objectness : NULL, A, sizeof(float), "grad_objectness", 1);
      break;
    case 8:
      *s = dl_span_of(rpn ? NULL : im->grad_cls_logits, A, C * sizeof(float), "grad_cls_logits", 1);
      break;
    default: *s = dl_span_of(im->grad_deltas, A, 4 * sizeof(float), "grad_deltas", 1); break;
  }
  s->image = i;
}

detloss_status dl_head_check_overlaps(const detloss_head_image *images, size_t num_images,
                                      size_t num_classes, const detloss_head_result *result,
                                      const detloss_head_image_stats *per_image,
                                      const void *workspace, size_t workspace_size,
                                      const float *ema_state, detloss_error *err) {
  head_spans h = {images,    num_images, num_classes,    result,
                  per_image, workspace,  workspace_size, ema_state};
  size_t n = HEAD_GLOBAL_SPANS + HEAD_IMAGE_SPANS * num_images;
  DL_FORWARD_IF_ERROR(dl_check_overlaps_fn(n, head_span, &h, err));
  for (size_t i = 0; i < num_images; i++) {
    if (images[i].anchor_config == NULL) continue;
    for (size_t k = 0; k < n; k++) {
      dl_span s;
      head_span(&h, k, &s);
      if (!s.out) continue;
      DL_FORWARD_IF_ERROR(
          dl_check_grid_overlaps(images[i].anchor_config, "anchor_config.", &s, 1, i, err));
    }
  }
  return DETLOSS_OK;
}

detloss_status dl_head_check_box_options(detloss_head_box_loss kind, float beta,
                                         const float weights[4], detloss_error *err) {
  DL_RETURN_ERROR_IF(kind < DETLOSS_HEAD_BOX_L1 || kind > DETLOSS_HEAD_BOX_CIOU, err,
                     DETLOSS_ERR_RANGE, "box_loss", "is %d, expected 0 (l1) .. 4 (ciou)",
                     (int)kind);
  DL_RETURN_ERROR_IF(!(beta >= 0.0f) || !isfinite(beta), err, DETLOSS_ERR_RANGE, "smooth_l1_beta",
                     "must be a finite number >= 0, got %g", (double)beta);
  static const char *const names[4] = {"box_weights[0]", "box_weights[1]", "box_weights[2]",
                                       "box_weights[3]"};
  for (int k = 0; k < 4; k++)
    DL_RETURN_ERROR_IF(!(weights[k] > 0.0f) || !isfinite(weights[k]), err, DETLOSS_ERR_RANGE,
                       names[k], "must be a finite number > 0, got %g", (double)weights[k]);
  return DETLOSS_OK;
}

void dl_head_box_free(dl_head_box *b) {
  free(b->idx);
  free(b->grad);
  memset(b, 0, sizeof *b);
}

/*
 * Element-wise box losses on d = delta - target (torch l1_loss and
 * smooth_l1_loss, aten's float expression order):
 *   l1:        l = |d|,                                   dl/dd = sign(d) (0 at 0)
 *   smooth_l1: l = 0.5 d^2 / beta  if |d| < beta,         dl/dd = d / beta
 *              l = |d| - 0.5 beta  otherwise;             dl/dd = sign(d)
 *   beta = 0 is L1 (torch, and detectron2's smooth_l1_loss with beta < 1e-5).
 * NaN or Inf deltas give a NaN/Inf loss and gradient (propagated, not checked).
 */
static double elementwise_box(const dl_head_box_params *p, const float *d, const float *t, size_t n,
                              float *grad) {
  double sum = 0.0;
  const int l1 = p->kind == DETLOSS_HEAD_BOX_L1 || p->beta == 0.0f;
  const float beta = p->beta;
  for (size_t j = 0; j < 4 * n; j++) {
    float diff = d[j] - t[j];
    float z = fabsf(diff);
    float sgn = diff > 0.0f ? 1.0f : (diff < 0.0f ? -1.0f : (diff == 0.0f ? 0.0f : diff));
    float l, g;
    if (l1) {
      l = z;
      g = sgn;
    } else if (z < beta) {
      l = 0.5f * z * z / beta;
      g = diff / beta;
    } else {
      l = z - 0.5f * beta;
      g = sgn;
    }
    sum += (double)l;
    grad[j] = g;
  }
  return sum;
}

/*
 * Gradient through detloss_box_decode (torchvision decode_single), for one
 * row with anchor width wa, height ha and weights w:
 *   x1 = cx - w'/2, x2 = cx + w'/2, cx = dx/wx wa + xa, w' = exp(min(dw/ww, clip)) wa
 *   dL/ddx = (g_x1 + g_x2) wa / wx
 *   dL/ddw = (g_x2 - g_x1) w' / (2 ww)   if dw/ww <= clip, else 0
 * (torch clamp's backward passes the gradient at equality); y, h alike.
 */
static void decode_chain(const float *anchor, const float *delta, const float *gbox,
                         const detloss_coder_options *c, float *gd) {
  double wa = (double)(anchor[2] - anchor[0]), ha = (double)(anchor[3] - anchor[1]);
  float dw = delta[2] / c->weights[2], dh = delta[3] / c->weights[3];
  float dwc = dw < c->clip ? dw : c->clip, dhc = dh < c->clip ? dh : c->clip;
  double pw = exp((double)dwc) * wa, ph = exp((double)dhc) * ha;
  double g0 = (double)gbox[0], g1 = (double)gbox[1], g2 = (double)gbox[2], g3 = (double)gbox[3];
  gd[0] = (float)((g0 + g2) * wa / (double)c->weights[0]);
  gd[1] = (float)((g1 + g3) * ha / (double)c->weights[1]);
  gd[2] = dw <= c->clip ? (float)((g2 - g0) * 0.5 * pw / (double)c->weights[2]) : 0.0f;
  gd[3] = dh <= c->clip ? (float)((g3 - g1) * 0.5 * ph / (double)c->weights[3]) : 0.0f;
}

static int row_finite(const float *r) {
  return isfinite(r[0]) && isfinite(r[1]) && isfinite(r[2]) && isfinite(r[3]);
}

/* IoU-family losses on decoded boxes. Rows whose deltas (or decoded box) are
 * not finite get a NaN loss and NaN gradient (the others are unaffected: the
 * loss is a sum); the finite rows go through detloss_box_decode and
 * detloss_loss_boxes. pa, pg, pd: gathered anchors, gt, deltas [n][4]. */
static detloss_status iou_box(const dl_head_box_params *p, const float *pa, const float *pg,
                              const float *pd, size_t n, float *grad, double *sum,
                              detloss_error *err) {
  float *boxes = malloc(n * 4 * sizeof(float));
  float *gb = malloc(n * 4 * sizeof(float));
  float *lv = malloc(n * sizeof(float));
  size_t *rows = malloc(n * sizeof(size_t));
  float *ca = malloc(n * 4 * sizeof(float));
  float *cg = malloc(n * 4 * sizeof(float));
  float *cd = malloc(n * 4 * sizeof(float));
  detloss_status st = DETLOSS_OK;
  if (!boxes || !gb || !lv || !rows || !ca || !cg || !cd) {
    st = dl_fail(err, DETLOSS_ERR_NOMEM, "workspace", "out of memory");
    goto done;
  }
  const float qnan = nanf("");
  size_t nf = 0;
  for (size_t j = 0; j < n; j++) {
    float b[4];
    int ok = row_finite(pd + 4 * j);
    if (ok && detloss_box_decode(pa + 4 * j, pd + 4 * j, 1, b, &p->coder, NULL) != DETLOSS_OK)
      ok = 0;
    if (!ok) {
      for (int k = 0; k < 4; k++) grad[4 * j + k] = qnan;
      continue;
    }
    memcpy(ca + 4 * nf, pa + 4 * j, 4 * sizeof(float));
    memcpy(cg + 4 * nf, pg + 4 * j, 4 * sizeof(float));
    memcpy(cd + 4 * nf, pd + 4 * j, 4 * sizeof(float));
    rows[nf++] = j;
  }
  int any_bad = nf < n;
  if (nf > 0) {
    st = detloss_box_decode(ca, cd, nf, boxes, &p->coder, err);
    if (st != DETLOSS_OK) goto done;
    detloss_loss_kind kind = p->kind == DETLOSS_HEAD_BOX_GIOU   ? DETLOSS_LOSS_GIOU
                             : p->kind == DETLOSS_HEAD_BOX_DIOU ? DETLOSS_LOSS_DIOU
                                                                : DETLOSS_LOSS_CIOU;
    detloss_loss_options lo = detloss_loss_options_default(kind);
    lo.reduction = DETLOSS_REDUCTION_NONE;
    lo.eps = 1e-7f; /* torchvision _box_loss */
    lo.num_threads = p->num_threads;
    st = detloss_loss_boxes(kind, boxes, cg, NULL, nf, lv, gb, NULL, &lo, err);
    if (st != DETLOSS_OK) goto done;
  }
  double s = 0.0;
  for (size_t q = 0; q < nf; q++) {
    size_t j = rows[q];
    s += (double)lv[q];
    decode_chain(ca + 4 * q, cd + 4 * q, gb + 4 * q, &p->coder, grad + 4 * j);
  }
  *sum = any_bad ? (double)qnan : s;
done:
  free(boxes);
  free(gb);
  free(lv);
  free(rows);
  free(ca);
  free(cg);
  free(cd);
  return st;
}

detloss_status dl_head_box_eval(const dl_head_box_params *p, const detloss_head_image *im, size_t i,
                                const int64_t *matches, const int8_t *select, size_t n,
                                dl_head_box *b, detloss_error *err) {
  memset(b, 0, sizeof *b);
  size_t A = im->num_anchors;
  if (n == 0) return DETLOSS_OK;
  const int elementwise = p->kind == DETLOSS_HEAD_BOX_L1 || p->kind == DETLOSS_HEAD_BOX_SMOOTH_L1;
  char where[DETLOSS_WHERE_MAX];
  b->idx = malloc(n * sizeof(size_t));
  b->grad = malloc(n * 4 * sizeof(float));
  float *pa = malloc(n * 4 * sizeof(float));
  float *pg = malloc(n * 4 * sizeof(float));
  float *pd = malloc(n * 4 * sizeof(float));
  float *t = malloc(n * 4 * sizeof(float));
  detloss_status st = DETLOSS_OK;
  if (!b->idx || !b->grad || !pa || !pg || !pd || !t) {
    st = dl_fail(err, DETLOSS_ERR_NOMEM, "workspace", "out of memory");
    goto done;
  }
  size_t j = 0;
  for (size_t a = 0; a < A && j < n; a++) {
    if (select != NULL) {
      /* select[a] == 1 implies matches[a] >= 0 (a sampled positive); skip
       * eight flags at a time while none of them is 1 (RPN: nearly all) */
      if ((a & 7) == 0 && a + 8 <= A) {
        uint64_t w;
        memcpy(&w, select + a, 8);
        /* bytes equal to 1: (w ^ 0x01..01) has a zero byte */
        uint64_t x = w ^ 0x0101010101010101ull;
        if (((x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull) == 0) {
          a += 7;
          continue;
        }
      }
      if (select[a] != 1) continue;
    }
    int64_t m = matches[a];
    if (m < 0) continue;
    const float *an = im->anchors + 4 * a, *g = im->gt + 4 * (size_t)m;
    if (elementwise) {
      /* encoding divides by the anchor size and takes log(gt size / anchor size) */
      if (!(an[2] - an[0] > 0.0f && an[3] - an[1] > 0.0f)) {
        snprintf(where, sizeof where, "images[%zu].anchors[%zu]", i, a);
        st = dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "is a positive with zero or negative width/height: its regression "
                     "target cannot be encoded");
        goto done;
      }
      if (!(g[2] - g[0] > 0.0f && g[3] - g[1] > 0.0f)) {
        snprintf(where, sizeof where, "images[%zu].gt[%lld]", i, (long long)m);
        st = dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "is matched (anchor %zu) but has zero or negative width/height: its "
                     "regression target would be log(0)",
                     a);
        goto done;
      }
    }
    b->idx[j] = a;
    memcpy(pa + 4 * j, an, 4 * sizeof(float));
    memcpy(pg + 4 * j, g, 4 * sizeof(float));
    memcpy(pd + 4 * j, im->deltas + 4 * a, 4 * sizeof(float));
    j++;
  }
  DL_ASSERT(j == n);
  b->n = n = j;
  if (elementwise) {
    st = detloss_box_encode(pa, pg, n, t, &p->coder, err);
    if (st != DETLOSS_OK) {
      dl_head_prefix(err, i);
      goto done;
    }
    b->sum = elementwise_box(p, pd, t, n, b->grad);
  } else {
    st = iou_box(p, pa, pg, pd, n, b->grad, &b->sum, err);
    if (st != DETLOSS_OK) dl_head_prefix(err, i);
  }
done:
  free(pa);
  free(pg);
  free(pd);
  free(t);
  if (st != DETLOSS_OK) dl_head_box_free(b);
  return st;
}

void dl_head_box_scatter(const dl_head_box *b, double scale, float *grad, size_t num_anchors) {
  if (grad == NULL) return;
  memset(grad, 0, num_anchors * 4 * sizeof(float));
  for (size_t j = 0; j < b->n; j++)
    for (int k = 0; k < 4; k++)
      grad[4 * b->idx[j] + (size_t)k] = (float)((double)b->grad[4 * j + (size_t)k] * scale);
}
