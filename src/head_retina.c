/*
 * head_retina.c - RetinaNet loss over a batch: sigmoid focal classification
 * over the anchors not ignored, box regression over the positives.
 *
 * torchvision RetinaNet.compute_loss + RetinaNetHead.compute_loss
 * (models/detection/retinanet.py):
 *   matched_idxs = Matcher(0.5, 0.4, True)(box_iou(gt, anchors)); G = 0: all -1;
 *   classification, per image: target one-hot at labels[matched] for matched >= 0,
 *     sigmoid_focal_loss(alpha 0.25, gamma 2, sum) over anchors with matched != -2,
 *     / max(1, #foreground); then sum over images / num_images;
 *   regression, per image: _box_loss("l1") over foreground anchors / max(1, #fg),
 *     then sum / max(1, num_images).
 * detectron2 RetinaNet.losses (meta_arch/retinanet.py, dense_detector.py
 * _ema_update): the same sums over the whole batch divided by an EMA of the
 * batch's positive count, n <- 0.9 n + 0.1 max(P, 1), n0 = 100.
 * Ref: Lin et al., Focal Loss for Dense Object Detection, arXiv:1708.02002.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head_internal.h"
#include "loss_kernels.h"
#include "vec.h"

detloss_retina_options detloss_retina_options_default(void) {
  detloss_retina_options o = DETLOSS_RETINA_OPTIONS_INIT;
  return o;
}

/* The row kernels must be inlined into each target clone below, or they are
 * compiled once for the baseline ISA. */
#if defined(__GNUC__)
#  define INLINE_ALWAYS __attribute__((always_inline)) inline
#else
#  define INLINE_ALWAYS inline
#endif

/* Rows ahead for the software prefetch of the classification pass. */
#define PREFETCH_ROWS 8

/* Columns per chunk of the row kernel (stack buffers). */
#define FOCAL_CHUNK 64
/* Logits per block of the classification pass: a block holds
 * max(1, CLS_BLOCK_ELEMS / C) anchors, fixed by C alone. */
#define CLS_BLOCK_ELEMS 16384

typedef struct focal_params {
  float alpha, gamma;
  int use_alpha;
} focal_params;

/*
 * The sigmoid focal loss of one chunk of a row of logits with the implicit
 * one-hot target y_k = [k == tc] (tc outside [0, m) for an all-zero target):
 * l[k] = loss, g[k] = scale * dl/dx, by the loss module's kernel
 * (dl_sigmoid_focal_elem in loss_kernels.h, binary targets), so the head
 * gives detloss_sigmoid_focal_loss's bits. Finite for every finite x and
 * gamma >= 0; NaN/Inf logits give NaN/Inf values.
 */
DL_VEC_FN static INLINE_ALWAYS void focal_chunk(const focal_params *p, const float *x, int m,
                                                int tc, float scale, float *l, float *g,
                                                const int square) {
  const float gamma = p->gamma, alpha = p->alpha;
  const int use_alpha = p->use_alpha;
  for (int k = 0; k < m; k++) {
    float gk;
    dl_sigmoid_focal_elem(x[k], k == tc ? 1.0f : 0.0f, alpha, gamma, use_alpha, 0, square, &l[k],
                          &gk);
    g[k] = gk * scale;
  }
}

typedef struct cls_ctx {
  const float *logits;    /* [A][C] */
  float *grad;            /* [A][C] or NULL */
  const int64_t *matches; /* [A] */
  const int64_t *labels;  /* [G] */
  size_t C, per_block;
  focal_params fp;
  float scale;
  double *partials;
} cls_ctx;

/* Rows [a0, a1): lane sums acc[8] of the losses (lane = column mod 8, a fixed
 * assignment, so the sum does not depend on the vector width). */
DL_VEC_FN static INLINE_ALWAYS void cls_rows(const cls_ctx *c, size_t a0, size_t a1, double *acc,
                                             const int square) {
  const size_t C = c->C;
  float lb[FOCAL_CHUNK], gb[FOCAL_CHUNK];
  for (size_t a = a0; a < a1; a++) {
    int64_t m = c->matches[a];
    float *grow = c->grad ? c->grad + a * C : NULL;
    if (m == -2) { /* ignored: not in the loss */
      if (grow) memset(grow, 0, C * sizeof(float));
      continue;
    }
    int64_t target = m >= 0 ? c->labels[m] : -1;
    const float *xrow = c->logits + a * C;
#if defined(__GNUC__)
    /* The pass streams the logits once: prefetch the row PREFETCH_ROWS ahead
     * (and its gradient row for writing) so memory overlaps the math. */
    if (a + PREFETCH_ROWS < a1) {
      const char *px = (const char *)(xrow + PREFETCH_ROWS * C);
      for (size_t o = 0; o < C * sizeof(float); o += 64) __builtin_prefetch(px + o, 0, 0);
      if (grow) {
        char *pg = (char *)(grow + PREFETCH_ROWS * C);
        for (size_t o = 0; o < C * sizeof(float); o += 64) __builtin_prefetch(pg + o, 1, 0);
      }
    }
#endif
    for (size_t c0 = 0; c0 < C; c0 += FOCAL_CHUNK) {
      int mm = (int)(C - c0 < FOCAL_CHUNK ? C - c0 : FOCAL_CHUNK);
      int tc =
          (target >= (int64_t)c0 && target < (int64_t)c0 + mm) ? (int)(target - (int64_t)c0) : -1;
      float *gout = grow ? grow + c0 : gb;
      focal_chunk(&c->fp, xrow + c0, mm, tc, c->scale, lb, gout, square);
      int full = mm & ~7;
      for (int k = 0; k < full; k += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)lb[k + j];
      for (int k = full; k < mm; k++) acc[k - full] += (double)lb[k];
    }
  }
}

DL_VEC_FN DL_VEC_CLONES static void cls_rows_sq(const cls_ctx *c, size_t a0, size_t a1,
                                                double *acc) {
  cls_rows(c, a0, a1, acc, 1);
}
DL_VEC_FN DL_VEC_CLONES static void cls_rows_exp(const cls_ctx *c, size_t a0, size_t a1,
                                                 double *acc) {
  cls_rows(c, a0, a1, acc, 0);
}

/* The classification pass over anchor blocks [a0, a1) of per_block anchors. */
static void cls_anchor_block(void *vc, size_t a0, size_t a1, size_t blk) {
  const cls_ctx *c = (const cls_ctx *)vc;
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (c->fp.gamma == 2.0f)
    cls_rows_sq(c, a0, a1, acc);
  else
    cls_rows_exp(c, a0, a1, acc);
  double s = 0.0;
  for (int j = 0; j < 8; j++) s += acc[j];
  c->partials[blk] = s;
}

static detloss_status check_options(const detloss_retina_options *o, detloss_error *err) {
  DL_RETURN_ERROR_IF(!isfinite(o->alpha), err, DETLOSS_ERR_RANGE, "alpha",
                     "must be finite (< 0 disables the weighting), got %g", (double)o->alpha);
  DL_RETURN_ERROR_IF(!(o->gamma >= 0.0f) || !isfinite(o->gamma), err, DETLOSS_ERR_RANGE, "gamma",
                     "must be a finite number >= 0, got %g", (double)o->gamma);
  DL_FORWARD_IF_ERROR(
      dl_head_check_box_options(o->box_loss, o->smooth_l1_beta, o->box_weights, err));
  switch (o->normalizer) {
    case DETLOSS_RETINA_NORM_TORCHVISION: break;
    case DETLOSS_RETINA_NORM_DETECTRON2_EMA:
      DL_RETURN_ERROR_IF(o->ema_state == NULL, err, DETLOSS_ERR_NULL, "ema_state",
                         "is NULL: the EMA normalizer needs the caller's state (start at 100)");
      DL_RETURN_ERROR_IF(!(*o->ema_state >= 0.0f) || !isfinite(*o->ema_state), err,
                         DETLOSS_ERR_RANGE, "ema_state", "must be a finite number >= 0, got %g",
                         (double)*o->ema_state);
      DL_RETURN_ERROR_IF(!(o->ema_momentum >= 0.0f && o->ema_momentum <= 1.0f), err,
                         DETLOSS_ERR_RANGE, "ema_momentum", "must be in [0, 1], got %g",
                         (double)o->ema_momentum);
      break;
    case DETLOSS_RETINA_NORM_CALLER:
      DL_RETURN_ERROR_IF(!(o->caller_normalizer > 0.0) || !isfinite(o->caller_normalizer), err,
                         DETLOSS_ERR_RANGE, "caller_normalizer",
                         "must be a finite number > 0, got %g", o->caller_normalizer);
      break;
    default:
      return dl_fail(err, DETLOSS_ERR_RANGE, "normalizer",
                     "is %d, expected 0 (torchvision), 1 (detectron2_ema) or 2 (caller)",
                     (int)o->normalizer);
  }
  return DETLOSS_OK;
}

/* The driver's classification pass (head_internal.h): sigmoid focal loss over
 * the anchors not ignored; s->cls is the focal_params. */
static double focal_pass(const dl_head_spec *s, const detloss_head_image *im, const dl_head_work *w,
                         float scale, int num_threads) {
  cls_ctx c;
  c.logits = im->cls_logits;
  c.grad = im->grad_cls_logits;
  c.matches = w->matches;
  c.labels = im->labels;
  c.C = s->num_classes;
  c.per_block = s->per_block;
  c.fp = *(const focal_params *)s->cls;
  c.scale = scale;
  c.partials = w->partials;
  dl_parallel_blocks(im->num_anchors, s->per_block, num_threads, cls_anchor_block, &c);
  return dl_sum_blocks(w->partials, dl_num_blocks(im->num_anchors, s->per_block));
}

/* RetinaNet's own phase 1 checks of image i: logits addressable and present,
 * labels present and in [0, C). */
static detloss_status check_image(const dl_head_spec *s, const detloss_head_image *im, size_t i,
                                  detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  size_t num_classes = s->num_classes, n_logits;
  if (dl_mul_overflow(im->num_anchors, num_classes, &n_logits) || n_logits > DL_MAX_ELEMS) {
    dl_head_where(where, sizeof where, i, ".num_anchors");
    return dl_fail(err, DETLOSS_ERR_SHAPE, where,
                   "%zu anchors x %zu classes is more than can be addressed", im->num_anchors,
                   num_classes);
  }
  if (im->num_anchors > 0 && im->cls_logits == NULL) {
    dl_head_where(where, sizeof where, i, ".cls_logits");
    return dl_fail(err, DETLOSS_ERR_NULL, where, "is NULL but there are %zu predictions",
                   im->num_anchors);
  }
  if (im->num_gt > 0 && im->labels == NULL) {
    dl_head_where(where, sizeof where, i, ".labels");
    return dl_fail(err, DETLOSS_ERR_NULL, where, "is NULL but num_gt is %zu", im->num_gt);
  }
  return dl_head_check_labels(im->labels, im->num_gt, num_classes, i, err);
}

detloss_status detloss_retina_workspace_size(const detloss_head_image *images, size_t num_images,
                                             size_t num_classes, size_t *bytes,
                                             detloss_error *err) {
  DL_RETURN_ERROR_IF(bytes == NULL, err, DETLOSS_ERR_NULL, "bytes", "is NULL");
  DL_RETURN_ERROR_IF(images == NULL && num_images > 0, err, DETLOSS_ERR_NULL, "images", "is NULL");
  DL_RETURN_ERROR_IF(num_classes == 0, err, DETLOSS_ERR_SHAPE, "num_classes",
                     "is 0, expected at least one class");
  size_t per_block = CLS_BLOCK_ELEMS / num_classes;
  if (per_block == 0) per_block = 1;
  /* matches int64 [A], partials double [blocks + 1] */
  return dl_head_workspace_size(images, num_images, per_block, 0, bytes, err);
}

detloss_status detloss_retina_loss(const detloss_head_image *images, size_t num_images,
                                   size_t num_classes, detloss_head_result *result,
                                   detloss_head_image_stats *per_image,
                                   const detloss_retina_options *opt, detloss_error *err) {
  detloss_retina_options o = opt ? *opt : detloss_retina_options_default();
  DL_RETURN_ERROR_IF(result == NULL, err, DETLOSS_ERR_NULL, "result", "is NULL");
  DL_RETURN_ERROR_IF(num_images == 0, err, DETLOSS_ERR_SHAPE, "num_images",
                     "is 0: an empty batch has no loss");
  DL_RETURN_ERROR_IF(images == NULL, err, DETLOSS_ERR_NULL, "images", "is NULL");
  DL_RETURN_ERROR_IF(num_classes == 0, err, DETLOSS_ERR_SHAPE, "num_classes",
                     "is 0, expected at least one class");
  DL_FORWARD_IF_ERROR(check_options(&o, err));
  size_t per_block = CLS_BLOCK_ELEMS / num_classes;
  if (per_block == 0) per_block = 1;
  focal_params fp;
  fp.alpha = o.alpha;
  fp.gamma = o.gamma;
  fp.use_alpha = o.alpha >= 0.0f;
  dl_head_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.num_classes = num_classes;
  spec.needs_image_size = o.match.allowed_border >= 0.0f;
  spec.check_image = check_image;
  spec.workspace = o.workspace;
  spec.workspace_size = o.workspace_size;
  spec.workspace_fn = "detloss_retina_workspace_size";
  spec.assigner = dl_assigner_find("max_iou");
  spec.assign_options = &o.match;
  spec.assign_options_at = "match";
  spec.sample = NULL;
  spec.box.kind = o.box_loss;
  spec.box.beta = o.smooth_l1_beta;
  spec.box.coder = detloss_coder_options_default();
  memcpy(spec.box.coder.weights, o.box_weights, sizeof spec.box.coder.weights);
  spec.per_block = per_block;
  spec.cls_pass = focal_pass;
  spec.cls = &fp;
  spec.norm = o.normalizer == DETLOSS_RETINA_NORM_DETECTRON2_EMA ? DL_HEAD_NORM_EMA
              : o.normalizer == DETLOSS_RETINA_NORM_CALLER       ? DL_HEAD_NORM_CALLER
                                                                 : DL_HEAD_NORM_PER_IMAGE_FG;
  spec.normalizer = o.caller_normalizer;
  spec.ema_state = o.ema_state;
  spec.ema_momentum = o.ema_momentum;
  spec.sum_then_scale = 0;
  spec.num_threads = o.num_threads;
  return dl_head_run(&spec, images, num_images, result, per_image, err);
}
