/*
 * head_detr.c - DETR's set-prediction loss over a batch (detloss_detr_loss):
 * per image the Hungarian matching of the "hungarian" assigner (hungarian.c,
 * the scipy-compatible solver of lsa.c), then the class loss over every query
 * and L1 + GIoU over the matched pairs, with the gradients of the weighted sum.
 *
 * A head module of its own, not a configuration of the head driver
 * (head_driver.c): the driver is built around anchors and encoded deltas
 * (detloss_head_image, dl_head_box_eval) with one classification and one box
 * term divided by positive or sampled counts, whereas DETR has no anchors,
 * regresses the normalised (cx, cy, w, h) boxes themselves with two box terms,
 * and divides its cross-entropy by the batch's sum of class weights. It keeps
 * the driver's three phases, so the outputs stay untouched on every error:
 *   1. validate the whole batch (options, pointers, shapes, finite predictions,
 *      box sizes, labels, aliasing): after this only memory can fail;
 *   2. per image (images in parallel): the assigner's matches into scratch;
 *   3. the divisors (nb from the caller or the gt count, sum_q w_q from the
 *      match counts), then per image the class pass over fixed query blocks
 *      and the box terms of the pairs, writing the gradients; the batch sums
 *      serially in image order.
 * Every sum runs over fixed blocks in a fixed order, so results are bitwise
 * identical for any thread count. The kernels are the loss modules': the
 * cross-entropy row of detloss_loss_classes (dl_loss_class_row), the sigmoid
 * focal element of loss_kernels.h, and the GIoU pair of detloss_loss_boxes
 * (dl_box_pair_torchvision, GIOU with eps 0). Formulas and sources: docs/math/detr_loss.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "box_kernels.h"
#include "head_internal.h"
#include "internal.h"
#include "loss_internal.h"
#include "loss_kernels.h"
#include "parallel.h"
#include "vec.h"

/* Logits per block of the class pass: max(1, CLS_BLOCK_ELEMS / K) queries,
 * fixed by K alone (never by the thread count). */
#define CLS_BLOCK_ELEMS 16384
/* Columns per chunk of the focal row kernel (stack buffers). */
#define FOCAL_CHUNK 64

#if defined(__GNUC__)
#  define INLINE_ALWAYS __attribute__((always_inline)) inline
#else
#  define INLINE_ALWAYS inline
#endif

detloss_detr_options detloss_detr_options_default(void) {
  detloss_detr_options o = DETLOSS_DETR_OPTIONS_INIT;
  return o;
}

detloss_detr_options detloss_detr_options_focal(void) {
  detloss_detr_options o = DETLOSS_DETR_OPTIONS_INIT;
  o.cls_loss = DETLOSS_DETR_FOCAL;
  o.cost_class = 2.0f; /* Deformable-DETR main.py set_cost_class 2 */
  o.weight_ce = 2.0f;  /* Deformable-DETR main.py cls_loss_coef 2 */
  return o;
}

static detloss_status check_options(const detloss_detr_options *o, detloss_error *err) {
  DL_RETURN_ERROR_IF(o->cls_loss != DETLOSS_DETR_SOFTMAX && o->cls_loss != DETLOSS_DETR_FOCAL, err,
                     DETLOSS_ERR_RANGE, "cls_loss", "is %d, expected 0 (softmax) or 1 (focal)",
                     (int)o->cls_loss);
  const float w[7] = {o->eos_coef,  o->cost_class,  o->cost_bbox,  o->cost_giou,
                      o->weight_ce, o->weight_bbox, o->weight_giou};
  static const char *const names[7] = {"eos_coef",  "cost_class",  "cost_bbox",  "cost_giou",
                                       "weight_ce", "weight_bbox", "weight_giou"};
  for (int k = 0; k < 7; k++)
    DL_RETURN_ERROR_IF(!(w[k] >= 0.0f) || !isfinite(w[k]), err, DETLOSS_ERR_RANGE, names[k],
                       "must be a finite number >= 0, got %g", (double)w[k]);
  DL_RETURN_ERROR_IF(!(o->focal_alpha >= 0.0f && o->focal_alpha <= 1.0f), err, DETLOSS_ERR_RANGE,
                     "focal_alpha", "must be in [0, 1], got %g", (double)o->focal_alpha);
  DL_RETURN_ERROR_IF(!(o->focal_gamma >= 0.0f) || !isfinite(o->focal_gamma), err, DETLOSS_ERR_RANGE,
                     "focal_gamma", "must be a finite number >= 0, got %g", (double)o->focal_gamma);
  DL_RETURN_ERROR_IF(isnan(o->num_boxes) || !isfinite(o->num_boxes), err, DETLOSS_ERR_RANGE,
                     "num_boxes", "must be finite (< 0: the batch's gt count), got %g",
                     o->num_boxes);
  return DETLOSS_OK;
}

/* Boxes (cx, cy, w, h): finite, w > 0 and h > 0 (DETR's generalized_box_iou
 * asserts x2 >= x1 on the corners; w = h = 0 on both boxes is 0/0). */
static detloss_status check_cxcywh(const float *b, size_t n, size_t i, const char *name,
                                   detloss_error *err) {
  for (size_t j = 0; j < n; j++) {
    const float *x = b + 4 * j;
    int finite = isfinite(x[0]) && isfinite(x[1]) && isfinite(x[2]) && isfinite(x[3]);
    if (finite && x[2] > 0.0f && x[3] > 0.0f) continue;
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "images[%zu].%s[%zu]", i, name, j);
    if (!finite)
      return dl_fail(err, DETLOSS_ERR_NONFINITE, where, "has a coordinate that is not finite");
    return dl_fail(err, DETLOSS_ERR_RANGE, where,
                   "(cx, cy, w, h) needs w > 0 and h > 0, got w = %g, h = %g", (double)x[2],
                   (double)x[3]);
  }
  return DETLOSS_OK;
}

static detloss_status null_field(detloss_error *err, size_t i, const char *name, const char *why,
                                 size_t n) {
  char where[DETLOSS_WHERE_MAX];
  snprintf(where, sizeof where, "images[%zu].%s", i, name);
  return dl_fail(err, DETLOSS_ERR_NULL, where, "is NULL but %s is %zu", why, n);
}

/* Phase 1 checks of image i (Q x K predictions, labels in [0, C)). */
static detloss_status check_image(const detloss_detr_image *im, size_t i, size_t Q, size_t K,
                                  size_t C, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  size_t G = im->num_gt;
  if (im->pred_logits == NULL) return null_field(err, i, "pred_logits", "num_queries", Q);
  if (im->pred_boxes == NULL) return null_field(err, i, "pred_boxes", "num_queries", Q);
  if (G > DL_MAX_ELEMS / 4) {
    snprintf(where, sizeof where, "images[%zu].num_gt", i);
    return dl_fail(err, DETLOSS_ERR_SHAPE, where, "%zu gt boxes is more than can be addressed", G);
  }
  if (G > 0 && im->boxes == NULL) return null_field(err, i, "boxes", "num_gt", G);
  if (G > 0 && im->labels == NULL) return null_field(err, i, "labels", "num_gt", G);
  const float *x = im->pred_logits;
  for (size_t e = 0; e < Q * K; e++)
    if (!isfinite(x[e])) {
      snprintf(where, sizeof where, "images[%zu].pred_logits[%zu][%zu]", i, e / K, e % K);
      return dl_fail(err, DETLOSS_ERR_NONFINITE, where,
                     "is not finite (DETR's matcher: \"matrix contains invalid numeric entries\")");
    }
  DL_FORWARD_IF_ERROR(check_cxcywh(im->pred_boxes, Q, i, "pred_boxes", err));
  DL_FORWARD_IF_ERROR(check_cxcywh(im->boxes, G, i, "boxes", err));
  for (size_t g = 0; g < G; g++)
    if (im->labels[g] < 0 || (uint64_t)im->labels[g] >= (uint64_t)C) {
      snprintf(where, sizeof where, "images[%zu].labels[%zu]", i, g);
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %lld, expected a class in [0, %zu)",
                     (long long)im->labels[g], C);
    }
  return DETLOSS_OK;
}

/* Spans of a batch: 2 global, then 8 per image. */
typedef struct detr_spans {
  const detloss_detr_image *images;
  size_t n, Q, K;
  const detloss_detr_result *result;
} detr_spans;

#define DETR_IMAGE_SPANS 8

static void detr_span(const void *vctx, size_t k, dl_span *s) {
  const detr_spans *h = vctx;
  if (k < 2) {
    *s = k == 0 ? dl_span_of(h->images, h->n, sizeof *h->images, "images", 0)
                : dl_span_of(h->result, 1, sizeof *h->result, "result", 1);
    return;
  }
  k -= 2;
  size_t i = k / DETR_IMAGE_SPANS, Q = h->Q, K = h->K;
  const detloss_detr_image *im = &h->images[i];
  size_t G = im->num_gt;
  switch (k % DETR_IMAGE_SPANS) {
    case 0: *s = dl_span_of(im->pred_logits, Q, K * sizeof(float), "pred_logits", 0); break;
    case 1: *s = dl_span_of(im->pred_boxes, Q, 4 * sizeof(float), "pred_boxes", 0); break;
    case 2: *s = dl_span_of(im->boxes, G, 4 * sizeof(float), "boxes", 0); break;
    case 3: *s = dl_span_of(im->labels, G, sizeof(int64_t), "labels", 0); break;
    case 4: *s = dl_span_of(im->matches, Q, sizeof(int64_t), "matches", 1); break;
    case 5:
      *s = dl_span_of(im->grad_pred_logits, Q, K * sizeof(float), "grad_pred_logits", 1);
      break;
    case 6: *s = dl_span_of(im->grad_pred_boxes, Q, 4 * sizeof(float), "grad_pred_boxes", 1); break;
    default: *s = dl_span_of(im->argmax, Q, sizeof(int64_t), "argmax", 1); break;
  }
  s->image = i;
}

/* The scratch and sums of one image. */
typedef struct detr_work {
  int64_t *matches; /* [Q] the assigner's gt_index */
  double *partials; /* [class blocks] */
  size_t num_matched;
  double cls_sum;  /* SOFTMAX: sum_q w_q CE_q; FOCAL: sum of the focal terms */
  double l1_sum;   /* sum over pairs of |b_q - b_g|_1 */
  double giou_sum; /* sum over pairs of 1 - GIoU */
  detloss_status st;
  detloss_error err;
} detr_work;

typedef struct detr_run {
  const detloss_detr_image *images;
  detr_work *w;
  size_t Q, K, C, per_block;
  const detloss_detr_options *o;
  detloss_hungarian_options match;
  const dl_assigner *assigner;
  int inner_threads;
  /* phase 3 scales, d loss / d (each sum) */
  double s_cls, s_l1, s_giou;
} detr_run;

/* Phase 2 of images [i0, i1): the matches into scratch. */
static void phase2(void *vr, size_t i0, size_t i1, size_t blk) {
  const detr_run *r = (const detr_run *)vr;
  (void)blk;
  for (size_t i = i0; i < i1; i++) {
    const detloss_detr_image *im = &r->images[i];
    detr_work *w = &r->w[i];
    dl_assign_input in;
    memset(&in, 0, sizeof in);
    in.num_anchors = r->Q;
    in.num_gt = im->num_gt;
    in.gt = im->boxes;
    in.gt_labels = im->labels;
    in.num_classes = r->K;
    in.pred_scores = im->pred_logits;
    in.pred_boxes = im->pred_boxes;
    in.num_threads = 1;
    dl_assign_result out = {.gt_index = w->matches};
    w->st = r->assigner->fn(&in, &r->match, &out, &w->err);
    if (w->st != DETLOSS_OK) {
      dl_head_prefix(&w->err, i);
      continue;
    }
    size_t m = 0;
    for (size_t q = 0; q < r->Q; q++) m += w->matches[q] >= 0;
    w->num_matched = m;
  }
}

/*
 * Sigmoid focal loss of one chunk of a row with the implicit one-hot target
 * y_k = [k == tc] (tc outside [0, m): all zeros), by the loss module's kernel
 * (dl_sigmoid_focal_elem, torchvision sigmoid_focal_loss): l[k] the loss,
 * g[k] = scale dl/dx.
 */
DL_VEC_FN static INLINE_ALWAYS void focal_chunk(const float *x, int m, int tc, float alpha,
                                                float gamma, float scale, float *l, float *g,
                                                const int square) {
  for (int k = 0; k < m; k++) {
    float gk;
    dl_sigmoid_focal_elem(x[k], k == tc ? 1.0f : 0.0f, alpha, gamma, 1, 0, square, &l[k], &gk);
    g[k] = gk * scale;
  }
}

/* Focal rows [q0, q1) of image im: returns the double sum of the losses (in
 * column order per row, rows in order); grad rows (NULL = skip) get scale dl/dx. */
DL_VEC_FN static INLINE_ALWAYS double focal_rows(const detr_run *r, const detloss_detr_image *im,
                                                 const int64_t *matches, size_t q0, size_t q1,
                                                 float scale, const int square) {
  const size_t K = r->K;
  const float alpha = r->o->focal_alpha, gamma = r->o->focal_gamma;
  float lb[FOCAL_CHUNK], gb[FOCAL_CHUNK];
  double sum = 0.0;
  for (size_t q = q0; q < q1; q++) {
    int64_t t = matches[q] >= 0 ? im->labels[matches[q]] : -1;
    const float *xrow = im->pred_logits + q * K;
    float *grow = im->grad_pred_logits ? im->grad_pred_logits + q * K : NULL;
    for (size_t c0 = 0; c0 < K; c0 += FOCAL_CHUNK) {
      int mm = (int)(K - c0 < FOCAL_CHUNK ? K - c0 : FOCAL_CHUNK);
      int tc = (t >= (int64_t)c0 && t < (int64_t)c0 + mm) ? (int)(t - (int64_t)c0) : -1;
      focal_chunk(xrow + c0, mm, tc, alpha, gamma, scale, lb, grow ? grow + c0 : gb, square);
      for (int k = 0; k < mm; k++) sum += (double)lb[k];
    }
  }
  return sum;
}

DL_VEC_FN DL_VEC_CLONES static double focal_rows_sq(const detr_run *r, const detloss_detr_image *im,
                                                    const int64_t *matches, size_t q0, size_t q1,
                                                    float scale) {
  return focal_rows(r, im, matches, q0, q1, scale, 1);
}
DL_VEC_FN DL_VEC_CLONES static double focal_rows_exp(const detr_run *r,
                                                     const detloss_detr_image *im,
                                                     const int64_t *matches, size_t q0, size_t q1,
                                                     float scale) {
  return focal_rows(r, im, matches, q0, q1, scale, 0);
}

typedef struct cls_ctx {
  const detr_run *r;
  size_t i; /* the image */
} cls_ctx;

/* The class pass over query block [q0, q1) of one image into its partials[blk]:
 *   SOFTMAX: w_q CE(x_q, t_q), gradient s_cls w_q (softmax(x_q) - e_t)
 *   FOCAL:   sum_k focal(x_qk, [k = t_q]), gradient s_cls dfocal/dx. */
static void cls_block(void *vc, size_t q0, size_t q1, size_t blk) {
  const cls_ctx *c = (const cls_ctx *)vc;
  const detr_run *r = c->r;
  const detloss_detr_image *im = &r->images[c->i];
  detr_work *w = &r->w[c->i];
  const size_t K = r->K;
  double s = 0.0;
  if (r->o->cls_loss == DETLOSS_DETR_SOFTMAX) {
    const float eos = r->o->eos_coef;
    for (size_t q = q0; q < q1; q++) {
      int64_t m = w->matches[q];
      int64_t t = m >= 0 ? im->labels[m] : (int64_t)r->C;
      float wq = m >= 0 ? 1.0f : eos;
      float *g = im->grad_pred_logits ? im->grad_pred_logits + q * K : NULL;
      s += dl_loss_class_row(DETLOSS_LOSS_CROSS_ENTROPY, im->pred_logits + q * K, K, t, wq, 0.0,
                             0.0, 0.0, r->s_cls, g);
    }
  } else if (r->o->focal_gamma == 2.0f) {
    s = focal_rows_sq(r, im, w->matches, q0, q1, (float)r->s_cls);
  } else {
    s = focal_rows_exp(r, im, w->matches, q0, q1, (float)r->s_cls);
  }
  w->partials[blk] = s;
  if (im->argmax) /* torch.argmax: the first largest logit */
    for (size_t q = q0; q < q1; q++) {
      const float *x = im->pred_logits + q * K;
      size_t a = 0;
      for (size_t k = 1; k < K; k++) a = x[k] > x[a] ? k : a;
      im->argmax[q] = (int64_t)a;
    }
}

/*
 * The box terms of image i's pairs, in query order (DETR models/detr.py
 * loss_boxes): l1 = |b_q - b_g|_1, gradient sign(b_q - b_g) (0 at 0);
 * giou = 1 - GIoU(corners(b_q), corners(b_g)), no eps, gradient through the
 * corners x1 = cx - w/2, x2 = cx + w/2: d/dcx = d/dx1 + d/dx2,
 * d/dw = (d/dx2 - d/dx1)/2 (y, h alike). grad_pred_boxes rows of unmatched
 * queries are 0.
 */
static void box_terms(const detr_run *r, size_t i) {
  const detloss_detr_image *im = &r->images[i];
  detr_work *w = &r->w[i];
  float *gb = im->grad_pred_boxes;
  if (gb) memset(gb, 0, r->Q * 4 * sizeof(float));
  double l1s = 0.0, gs = 0.0;
  for (size_t q = 0; q < r->Q; q++) {
    int64_t m = w->matches[q];
    if (m < 0) continue;
    const float *p = im->pred_boxes + 4 * q, *t = im->boxes + 4 * (size_t)m;
    double dl1[4], l1 = 0.0;
    for (int k = 0; k < 4; k++) {
      double d = (double)p[k] - (double)t[k]; /* exact: the difference of two floats */
      l1 += fabs(d);
      dl1[k] = d > 0.0 ? 1.0 : (d < 0.0 ? -1.0 : 0.0);
    }
    const float pc[4] = {p[0] - 0.5f * p[2], p[1] - 0.5f * p[3], p[0] + 0.5f * p[2],
                         p[1] + 0.5f * p[3]};
    const float tc[4] = {t[0] - 0.5f * t[2], t[1] - 0.5f * t[3], t[0] + 0.5f * t[2],
                         t[1] + 0.5f * t[3]};
    float gc[4];
    double gl = dl_box_pair_torchvision(DETLOSS_LOSS_GIOU, pc, tc, 0.0, 1.0, gb ? gc : NULL);
    l1s += l1;
    gs += gl;
    if (gb) {
      double dg[4] = {(double)gc[0] + (double)gc[2], (double)gc[1] + (double)gc[3],
                      0.5 * ((double)gc[2] - (double)gc[0]), 0.5 * ((double)gc[3] - (double)gc[1])};
      for (int k = 0; k < 4; k++)
        gb[4 * q + (size_t)k] = dl_sat_float(r->s_l1 * dl1[k] + r->s_giou * dg[k]);
    }
  }
  w->l1_sum = l1s;
  w->giou_sum = gs;
}

/* Phase 3 of images [i0, i1): class pass, box terms, matches out. */
static void phase3(void *vr, size_t i0, size_t i1, size_t blk) {
  const detr_run *r = (const detr_run *)vr;
  (void)blk;
  for (size_t i = i0; i < i1; i++) {
    detr_work *w = &r->w[i];
    cls_ctx c = {r, i};
    size_t nb = dl_num_blocks(r->Q, r->per_block);
    dl_parallel_blocks(r->Q, r->per_block, r->inner_threads, cls_block, &c);
    w->cls_sum = dl_sum_blocks(w->partials, nb);
    box_terms(r, i);
    if (r->images[i].matches) memcpy(r->images[i].matches, w->matches, r->Q * sizeof(int64_t));
  }
}

static void free_work(detr_work *w, size_t n) {
  if (w == NULL) return;
  for (size_t i = 0; i < n; i++) {
    free(w[i].matches);
    free(w[i].partials);
  }
  free(w);
}

detloss_status detloss_detr_loss(const detloss_detr_image *images, size_t num_images,
                                 size_t num_queries, size_t num_logits, detloss_detr_result *result,
                                 const detloss_detr_options *opt, detloss_error *err) {
  detloss_detr_options o = opt ? *opt : detloss_detr_options_default();
  const size_t B = num_images, Q = num_queries, K = num_logits;
  /* Phase 1: the batch. */
  DL_RETURN_ERROR_IF(result == NULL, err, DETLOSS_ERR_NULL, "result", "is NULL");
  DL_RETURN_ERROR_IF(B == 0, err, DETLOSS_ERR_SHAPE, "num_images",
                     "is 0: an empty batch has no loss");
  DL_RETURN_ERROR_IF(images == NULL, err, DETLOSS_ERR_NULL, "images", "is NULL");
  DL_FORWARD_IF_ERROR(check_options(&o, err));
  const int softmax = o.cls_loss == DETLOSS_DETR_SOFTMAX;
  DL_RETURN_ERROR_IF(Q == 0, err, DETLOSS_ERR_SHAPE, "num_queries",
                     "is 0: DETR's loss needs at least one query");
  DL_RETURN_ERROR_IF(K < (softmax ? 2u : 1u), err, DETLOSS_ERR_SHAPE, "num_logits",
                     "%zu logits per query; %s", K,
                     softmax ? "softmax needs at least 2 (K classes + the no-object column)"
                             : "focal needs at least 1 class");
  size_t QK = 0;
  DL_RETURN_ERROR_IF(dl_mul_overflow(Q, K, &QK) || QK > DL_MAX_ELEMS || Q > DL_MAX_ELEMS / 4, err,
                     DETLOSS_ERR_SHAPE, "num_queries", "%zu queries x %zu logits is too large", Q,
                     K);
  const size_t C = softmax ? K - 1 : K;
  size_t total_gt = 0, matched = 0;
  for (size_t i = 0; i < B; i++) {
    DL_FORWARD_IF_ERROR(check_image(&images[i], i, Q, K, C, err));
    total_gt += images[i].num_gt; /* each <= DL_MAX_ELEMS / 4: no overflow for sane B */
    matched += images[i].num_gt < Q ? images[i].num_gt : Q;
  }
  detr_spans sp = {images, B, Q, K, result};
  DL_FORWARD_IF_ERROR(dl_check_overlaps_fn(2 + DETR_IMAGE_SPANS * B, detr_span, &sp, err));

  detr_run r;
  memset(&r, 0, sizeof r);
  r.images = images;
  r.Q = Q;
  r.K = K;
  r.C = C;
  r.per_block = CLS_BLOCK_ELEMS / K > 0 ? CLS_BLOCK_ELEMS / K : 1;
  r.o = &o;
  r.match = detloss_hungarian_options_default();
  r.match.semantics = softmax ? DETLOSS_HUNGARIAN_DETR : DETLOSS_HUNGARIAN_FOCAL;
  r.match.cost_class = o.cost_class;
  r.match.cost_bbox = o.cost_bbox;
  r.match.cost_giou = o.cost_giou;
  r.match.focal_alpha = o.focal_alpha;
  r.match.focal_gamma = o.focal_gamma;
  r.assigner = dl_assigner_find("hungarian");
  DL_ASSERT(r.assigner != NULL);
  detr_work *w = calloc(B, sizeof *w);
  DL_RETURN_ERROR_IF(w == NULL, err, DETLOSS_ERR_NOMEM, "images", "out of memory");
  r.w = w;
  size_t nblk = dl_num_blocks(Q, r.per_block);
  for (size_t i = 0; i < B; i++) {
    w[i].matches = malloc(Q * sizeof(int64_t));
    w[i].partials = malloc(nblk * sizeof(double));
    if (!w[i].matches || !w[i].partials) {
      free_work(w, B);
      return dl_fail(err, DETLOSS_ERR_NOMEM, "images", "out of memory");
    }
  }
  int nt = dl_thread_count(o.num_threads);
  int outer = nt > 1 && B >= (size_t)nt;

  /* Phase 2: the matches (scratch only). Images are independent: one per block. */
  dl_parallel_blocks(B, 1, o.num_threads, phase2, &r);
  for (size_t i = 0; i < B; i++)
    if (w[i].st != DETLOSS_OK) {
      detloss_status st = w[i].st;
      if (err) *err = w[i].err;
      free_work(w, B);
      return st;
    }
  size_t m_check = 0;
  for (size_t i = 0; i < B; i++) m_check += w[i].num_matched;
  DL_ASSERT(m_check == matched); /* finite costs: every image matches min(Q, G_i) pairs */
  (void)m_check;

  /* Phase 3: the divisors, then the class pass and the gradients. */
  const double nb_raw = o.num_boxes >= 0.0 ? o.num_boxes : (double)total_gt;
  const double nb = nb_raw > 1.0 ? nb_raw : 1.0; /* torch.clamp(num_boxes, min=1) */
  /* sum_q w_q over the B Q queries: matched ones weigh 1, the rest eos_coef */
  const double wsum =
      softmax ? (double)matched + (double)o.eos_coef * (double)(B * Q - matched) : nb;
  /* wsum = 0 (eos_coef 0, nothing matched): torch gives 0/0; here 0 and zero gradient */
  const double inv_cls = wsum > 0.0 ? 1.0 / wsum : 0.0;
  r.s_cls = (double)o.weight_ce * inv_cls;
  r.s_l1 = (double)o.weight_bbox / nb;
  r.s_giou = (double)o.weight_giou / nb;
  r.inner_threads = outer ? 1 : o.num_threads;
  dl_parallel_blocks(B, 1, outer ? o.num_threads : 1, phase3, &r);
  double cls = 0.0, l1 = 0.0, gi = 0.0;
  for (size_t i = 0; i < B; i++) {
    cls += w[i].cls_sum;
    l1 += w[i].l1_sum;
    gi += w[i].giou_sum;
  }
  const double loss_ce = cls * inv_cls, loss_bbox = l1 / nb, loss_giou = gi / nb;
  detloss_detr_result res;
  memset(&res, 0, sizeof res);
  res.loss_ce = (float)loss_ce;
  res.loss_bbox = (float)loss_bbox;
  res.loss_giou = (float)loss_giou;
  res.loss = (float)((double)o.weight_ce * loss_ce + (double)o.weight_bbox * loss_bbox +
                     (double)o.weight_giou * loss_giou);
  res.num_boxes = nb;
  res.ce_weight_sum = wsum;
  res.num_matched = matched;
  res.nonfinite = !isfinite(res.loss_ce) || !isfinite(res.loss_bbox) || !isfinite(res.loss_giou) ||
                  !isfinite(res.loss);
  *result = res;
  free_work(w, B);
  return DETLOSS_OK;
}
