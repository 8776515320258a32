/*
 * head_fcos.c - the FCOS head loss over a batch (docs/math/fcos_loss.md):
 * sigmoid focal classification over every point, an IoU-family box loss and
 * BCE centerness over the positives.
 *
 * mmdetection 3.x FCOSHead.loss_by_feat (variant MMDET, the contract's
 * fcos_loss): targets of FCOSHead._get_targets_single, concatenated over the
 * batch; N = max(reduce_mean(npos), 1); D = max(reduce_mean(sum of centerness
 * targets), 1e-6); loss_cls = focal sum / (N + eps), loss_bbox = sum of
 * centerness-weighted GIoU (or log-IoU) losses / (D + eps), loss_centerness =
 * BCE sum / (N + eps), eps = FLT_EPSILON (weight_reduce_loss's avg_factor + eps).
 * torchvision 0.14 FCOSHead.compute_loss (variant TORCHVISION): the matcher of
 * FCOS.compute_loss (strict ranges 4 s / 8 s, float32 area key), boxes
 * decoded with BoxLinearCoder(normalize_by_size) against the anchor (size s),
 * generalized_box_iou_loss (eps 1e-7) unweighted, all three sums / max(1, npos).
 * Ref: Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection",
 * ICCV 2019.
 *
 * Why a module of its own and not a dl_head_spec of head_driver.c: the driver
 * is shaped by anchors and deltas (detloss_head_image, the coder-based box
 * loss of dl_head_box_eval, one normalizer for both losses). FCOS has points
 * instead of anchors, three prediction inputs, a box loss on (l, t, r, b)
 * distances weighted by a target and normalized by a second normalizer (D),
 * and a third loss. It keeps the driver's discipline: (1) validate
 * everything; (2) the targets into scratch (detloss_fcos_targets_batch, the
 * "fcos" assigner, one point grid for the batch); (3) the normalizers, then
 * per image the box and centerness pass and the classification pass over
 * fixed point blocks, with the batch reduction in a fixed order. Outputs are
 * untouched on any error; results are bitwise identical for any thread count.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head_internal.h"
#include "loss_internal.h"
#include "loss_kernels.h"
#include "vec.h"

/* Logits per block of the classification pass: max(1, CLS_BLOCK_ELEMS / C)
 * points per block, fixed by C alone. */
#define CLS_BLOCK_ELEMS 16384

/* mmdet weight_reduce_loss: avg_factor + torch.finfo(torch.float32).eps. */
#define MMDET_EPS ((double)FLT_EPSILON)

detloss_fcos_loss_options detloss_fcos_loss_options_default(void) {
  detloss_fcos_loss_options o = DETLOSS_FCOS_LOSS_OPTIONS_INIT;
  return o;
}

detloss_status detloss_grid_points(const size_t *feature_maps, const float *strides,
                                   size_t num_levels, float offset, float *points,
                                   detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_ptr(feature_maps, num_levels, "feature_maps", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(strides, num_levels, "strides", err));
  DL_RETURN_ERROR_IF(!isfinite(offset), err, DETLOSS_ERR_RANGE, "offset", "is not finite");
  size_t P = 0;
  for (size_t l = 0; l < num_levels; l++) {
    char where[32];
    snprintf(where, sizeof where, "strides[%zu]", l);
    DL_RETURN_ERROR_IF(!(strides[l] > 0.0f) || !isfinite(strides[l]), err, DETLOSS_ERR_RANGE, where,
                       "is %g (expected a finite number > 0)", (double)strides[l]);
    size_t n;
    DL_RETURN_ERROR_IF(dl_mul_overflow(feature_maps[2 * l], feature_maps[2 * l + 1], &n) ||
                           dl_add_overflow(P, n, &P) || P > DL_MAX_ELEMS / 4,
                       err, DETLOSS_ERR_SHAPE, "feature_maps", "too many points");
  }
  DL_FORWARD_IF_ERROR(dl_check_ptr(points, P, "points", err));
  size_t k = 0;
  for (size_t l = 0; l < num_levels; l++) {
    const double s = strides[l];
    for (size_t y = 0; y < feature_maps[2 * l]; y++)
      for (size_t x = 0; x < feature_maps[2 * l + 1]; x++, k++) {
        /* mmdet MlvlPointGenerator: (arange(w) + offset) * stride, in float32 */
        points[2 * k] = (float)(((double)x + (double)offset) * s);
        points[2 * k + 1] = (float)(((double)y + (double)offset) * s);
      }
  }
  return DETLOSS_OK;
}

/* ------------------------------------------------------------------------- */
/* Phase 1: checks */

static detloss_status check_options(const detloss_fcos_loss_options *o, detloss_error *err) {
  DL_RETURN_ERROR_IF(o->variant != DETLOSS_FCOS_LOSS_MMDET &&
                         o->variant != DETLOSS_FCOS_LOSS_TORCHVISION,
                     err, DETLOSS_ERR_RANGE, "variant",
                     "is %d, expected 0 (mmdet) or 1 (torchvision)", (int)o->variant);
  DL_RETURN_ERROR_IF(!isfinite(o->alpha), err, DETLOSS_ERR_RANGE, "alpha",
                     "must be finite (< 0 disables the weighting), got %g", (double)o->alpha);
  DL_RETURN_ERROR_IF(!(o->gamma >= 0.0f) || !isfinite(o->gamma), err, DETLOSS_ERR_RANGE, "gamma",
                     "must be a finite number >= 0, got %g", (double)o->gamma);
  DL_RETURN_ERROR_IF(o->box_loss != DETLOSS_FCOS_BOX_GIOU && o->box_loss != DETLOSS_FCOS_BOX_IOU,
                     err, DETLOSS_ERR_RANGE, "box_loss", "is %d, expected 0 (giou) or 1 (iou)",
                     (int)o->box_loss);
  DL_RETURN_ERROR_IF(!isfinite(o->avg_num_pos), err, DETLOSS_ERR_RANGE, "avg_num_pos",
                     "is not finite (< 0 means: this batch's count)");
  DL_RETURN_ERROR_IF(!isfinite(o->avg_centerness_sum), err, DETLOSS_ERR_RANGE, "avg_centerness_sum",
                     "is not finite (< 0 means: this batch's sum)");
  if (o->variant == DETLOSS_FCOS_LOSS_TORCHVISION) {
    DL_RETURN_ERROR_IF(o->box_loss != DETLOSS_FCOS_BOX_GIOU, err, DETLOSS_ERR_RANGE, "box_loss",
                       "torchvision's FCOS has the GIoU loss only");
    DL_RETURN_ERROR_IF(o->avg_centerness_sum >= 0.0, err, DETLOSS_ERR_RANGE, "avg_centerness_sum",
                       "torchvision's FCOS does not normalize by the centerness sum");
  }
  return DETLOSS_OK;
}

static detloss_status image_fail(detloss_error *err, detloss_status st, size_t i, const char *field,
                                 const char *msg, size_t n) {
  char where[DETLOSS_WHERE_MAX];
  dl_head_where(where, sizeof where, i, field);
  return dl_fail(err, st, where, msg, n);
}

static detloss_status check_image(const detloss_fcos_image *im, size_t i, size_t P, size_t C,
                                  detloss_error *err) {
  const char *need = "is NULL but there are %zu points";
  if (P > 0 && im->cls_logits == NULL)
    return image_fail(err, DETLOSS_ERR_NULL, i, ".cls_logits", need, P);
  if (P > 0 && im->bbox_pred == NULL)
    return image_fail(err, DETLOSS_ERR_NULL, i, ".bbox_pred", need, P);
  if (P > 0 && im->centerness == NULL)
    return image_fail(err, DETLOSS_ERR_NULL, i, ".centerness", need, P);
  if (im->num_gt > DL_MAX_ELEMS / 4)
    return image_fail(err, DETLOSS_ERR_SHAPE, i, ".num_gt", "%zu gt is too many", im->num_gt);
  if (im->num_gt > 0 && im->gt == NULL)
    return image_fail(err, DETLOSS_ERR_NULL, i, ".gt", "is NULL but num_gt is %zu", im->num_gt);
  if (im->num_gt > 0 && im->labels == NULL)
    return image_fail(err, DETLOSS_ERR_NULL, i, ".labels", "is NULL but num_gt is %zu", im->num_gt);
  detloss_status st = dl_check_coords(im->gt, im->num_gt, "gt", err);
  if (st != DETLOSS_OK) {
    dl_head_prefix(err, i);
    return st;
  }
  return dl_head_check_labels(im->labels, im->num_gt, C, i, err);
}

/* Spans of a call: 6 global, then 10 per image. */
typedef struct fcos_spans {
  const float *points, *strides, *ranges;
  const size_t *level_counts;
  size_t P, L, C, B;
  const detloss_fcos_image *images;
  const detloss_fcos_result *result;
} fcos_spans;

#define FCOS_GLOBAL_SPANS 6
#define FCOS_IMAGE_SPANS 10

static void fcos_span(const void *vctx, size_t k, dl_span *s) {
  const fcos_spans *h = vctx;
  size_t P = h->P, C = h->C;
  if (k < FCOS_GLOBAL_SPANS) {
    switch (k) {
      case 0: *s = dl_span_of(h->points, P, 2 * sizeof(float), "points", 0); break;
      case 1: *s = dl_span_of(h->strides, h->L, sizeof(float), "strides", 0); break;
      case 2: *s = dl_span_of(h->ranges, h->L, 2 * sizeof(float), "regress_ranges", 0); break;
      case 3: *s = dl_span_of(h->level_counts, h->L, sizeof(size_t), "level_counts", 0); break;
      case 4: *s = dl_span_of(h->images, h->B, sizeof *h->images, "images", 0); break;
      default: *s = dl_span_of(h->result, 1, sizeof *h->result, "result", 1); break;
    }
    return;
  }
  k -= FCOS_GLOBAL_SPANS;
  size_t i = k / FCOS_IMAGE_SPANS;
  const detloss_fcos_image *im = &h->images[i];
  size_t G = im->num_gt;
  switch (k % FCOS_IMAGE_SPANS) {
    case 0: *s = dl_span_of(im->gt, G, 4 * sizeof(float), "gt", 0); break;
    case 1: *s = dl_span_of(im->labels, G, sizeof(int64_t), "labels", 0); break;
    case 2: *s = dl_span_of(im->cls_logits, P, C * sizeof(float), "cls_logits", 0); break;
    case 3: *s = dl_span_of(im->bbox_pred, P, 4 * sizeof(float), "bbox_pred", 0); break;
    case 4: *s = dl_span_of(im->centerness, P, sizeof(float), "centerness", 0); break;
    case 5: *s = dl_span_of(im->grad_cls_logits, P, C * sizeof(float), "grad_cls_logits", 1); break;
    case 6: *s = dl_span_of(im->grad_bbox_pred, P, 4 * sizeof(float), "grad_bbox_pred", 1); break;
    case 7: *s = dl_span_of(im->grad_centerness, P, sizeof(float), "grad_centerness", 1); break;
    case 8: *s = dl_span_of(im->assigned_labels, P, sizeof(int64_t), "assigned_labels", 1); break;
    default: *s = dl_span_of(NULL, 0, 1, "", 0); break;
  }
  s->image = i;
}

/* ------------------------------------------------------------------------- */
/* Phase 3: the passes */

typedef struct fcos_run {
  const float *points, *strides;
  const size_t *off; /* [L + 1] level offsets */
  size_t P, L, C, per_block, nb;
  const detloss_fcos_image *images;
  const int64_t *assigned; /* [B][P] */
  const float *ctr;        /* [B][P] centerness targets */
  const detloss_fcos_loss_options *o;
  double box_scale, ctr_scale, cls_scale; /* d loss / d sums */
  double *box_sum, *ctr_sum;              /* [B] */
  double *partials;                       /* [B * nb] */
} fcos_run;

/* The box and centerness losses of image i's positives, in point order. */
static void positives_image(const fcos_run *r, size_t i) {
  const detloss_fcos_image *im = &r->images[i];
  const int64_t *as = r->assigned + i * r->P;
  const float *ct = r->ctr + i * r->P;
  const int tv = r->o->variant == DETLOSS_FCOS_LOSS_TORCHVISION;
  const int giou = r->o->box_loss == DETLOSS_FCOS_BOX_GIOU;
  if (im->grad_bbox_pred) memset(im->grad_bbox_pred, 0, r->P * 4 * sizeof(float));
  if (im->grad_centerness) memset(im->grad_centerness, 0, r->P * sizeof(float));
  double box = 0.0, cen = 0.0;
  for (size_t l = 0; l < r->L; l++) {
    const double s = r->strides[l];
    for (size_t p = r->off[l]; p < r->off[l + 1]; p++) {
      if (im->assigned_labels) im->assigned_labels[p] = as[p] >= 0 ? im->labels[as[p]] : -1;
      if (as[p] < 0) continue;
      const float *gb = im->gt + 4 * (size_t)as[p];
      const float *bp = im->bbox_pred + 4 * p;
      const double x = r->points[2 * p], y = r->points[2 * p + 1];
      const double w = ct[p];
      double gd[4];
      if (tv) {
        /* BoxLinearCoder.decode: ctr -+ code * anchor size; both boxes relative to the
         * point (the IoU does not see the common offset) */
        const float pr[4] = {(float)(-(double)bp[0] * s), (float)(-(double)bp[1] * s),
                             (float)((double)bp[2] * s), (float)((double)bp[3] * s)};
        const float tr[4] = {(float)((double)gb[0] - x), (float)((double)gb[1] - y),
                             (float)((double)gb[2] - x), (float)((double)gb[3] - y)};
        float gf[4];
        box += dl_box_pair_torchvision(DETLOSS_LOSS_GIOU, pr, tr, 1e-7, 1.0, gf);
        gd[0] = -(double)gf[0] * s;
        gd[1] = -(double)gf[1] * s;
        gd[2] = (double)gf[2] * s;
        gd[3] = (double)gf[3] * s;
      } else {
        /* mmdet: the targets (l, t, r, b), / s with norm_on_bbox; decoded against the point */
        const double u = r->o->norm_on_bbox ? s : 1.0;
        const double pr[4] = {-(double)bp[0], -(double)bp[1], (double)bp[2], (double)bp[3]};
        const double tr[4] = {-(x - (double)gb[0]) / u, -(y - (double)gb[1]) / u,
                              ((double)gb[2] - x) / u, ((double)gb[3] - y) / u};
        double g4[4];
        box += w * dl_box_pair_mmdet(giou, pr, tr, 1e-6, 1.0, g4);
        gd[0] = -w * g4[0];
        gd[1] = -w * g4[1];
        gd[2] = w * g4[2];
        gd[3] = w * g4[3];
      }
      if (im->grad_bbox_pred)
        for (int k = 0; k < 4; k++)
          im->grad_bbox_pred[4 * p + (size_t)k] = (float)(gd[k] * r->box_scale);
      float lc, gc;
      dl_bce_logits_elem(im->centerness[p], ct[p], 1.0f, &lc, &gc);
      cen += (double)lc;
      if (im->grad_centerness) im->grad_centerness[p] = (float)((double)gc * r->ctr_scale);
    }
  }
  r->box_sum[i] = box;
  r->ctr_sum[i] = cen;
}

static void positives_block(void *vr, size_t i0, size_t i1, size_t blk) {
  (void)blk;
  for (size_t i = i0; i < i1; i++) positives_image((const fcos_run *)vr, i);
}

/* Rows [a0, a1) of image i: lane sums acc[8] of the focal losses (lane =
 * column mod 8, fixed, so the sum does not depend on the vector width). */
DL_KERNEL void focal_rows(const fcos_run *r, size_t i, size_t a0, size_t a1, double *acc,
                          const int square) {
  const detloss_fcos_image *im = &r->images[i];
  const int64_t *as = r->assigned + i * r->P;
  const size_t C = r->C;
  const float alpha = r->o->alpha, gamma = r->o->gamma, scale = (float)r->cls_scale;
  const int use_alpha = alpha >= 0.0f;
  float lb[64];
  for (size_t a = a0; a < a1; a++) {
    const int64_t tc = as[a] >= 0 ? im->labels[as[a]] : -1;
    const float *xrow = im->cls_logits + a * C;
    float *grow = im->grad_cls_logits ? im->grad_cls_logits + a * C : NULL;
    for (size_t c0 = 0; c0 < C; c0 += 64) {
      const size_t m = C - c0 < 64 ? C - c0 : 64;
      for (size_t k = 0; k < m; k++) {
        float g;
        dl_sigmoid_focal_elem(xrow[c0 + k], (int64_t)(c0 + k) == tc ? 1.0f : 0.0f, alpha, gamma,
                              use_alpha, 0, square, &lb[k], &g);
        if (grow) grow[c0 + k] = g * scale;
      }
      const size_t full = m & ~(size_t)7;
      for (size_t k = 0; k < full; k += 8)
        for (size_t j = 0; j < 8; j++) acc[j] += (double)lb[k + j];
      for (size_t k = full; k < m; k++) acc[k - full] += (double)lb[k];
    }
  }
}

DL_VEC_FN DL_VEC_CLONES static void focal_rows_sq(const fcos_run *r, size_t i, size_t a0, size_t a1,
                                                  double *acc) {
  focal_rows(r, i, a0, a1, acc, 1);
}
DL_VEC_FN DL_VEC_CLONES static void focal_rows_exp(const fcos_run *r, size_t i, size_t a0,
                                                   size_t a1, double *acc) {
  focal_rows(r, i, a0, a1, acc, 0);
}

/* Block k of the classification pass: image k / nb, points of block k % nb. */
static void cls_block(void *vr, size_t k0, size_t k1, size_t blk) {
  (void)blk;
  const fcos_run *r = (const fcos_run *)vr;
  for (size_t k = k0; k < k1; k++) {
    size_t i = k / r->nb, b = k % r->nb;
    size_t a0 = b * r->per_block, a1 = a0 + r->per_block < r->P ? a0 + r->per_block : r->P;
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (r->o->gamma == 2.0f)
      focal_rows_sq(r, i, a0, a1, acc);
    else
      focal_rows_exp(r, i, a0, a1, acc);
    double s = 0.0;
    for (int j = 0; j < 8; j++) s += acc[j];
    r->partials[k] = s;
  }
}

/* ------------------------------------------------------------------------- */

detloss_status detloss_fcos_loss(const float *points, size_t num_points, const size_t *level_counts,
                                 const float *strides, size_t num_levels, size_t num_classes,
                                 const detloss_fcos_image *images, size_t num_images,
                                 detloss_fcos_result *result, const detloss_fcos_loss_options *opt,
                                 detloss_error *err) {
  const detloss_fcos_loss_options o = opt ? *opt : detloss_fcos_loss_options_default();
  const size_t P = num_points, L = num_levels, C = num_classes, B = num_images;
  const int tv = o.variant == DETLOSS_FCOS_LOSS_TORCHVISION;
  /* Phase 1: everything that can be wrong. */
  DL_RETURN_ERROR_IF(result == NULL, err, DETLOSS_ERR_NULL, "result", "is NULL");
  DL_RETURN_ERROR_IF(B == 0, err, DETLOSS_ERR_SHAPE, "num_images",
                     "is 0: an empty batch has no loss");
  DL_RETURN_ERROR_IF(images == NULL, err, DETLOSS_ERR_NULL, "images", "is NULL");
  DL_RETURN_ERROR_IF(C == 0, err, DETLOSS_ERR_SHAPE, "num_classes",
                     "is 0, expected at least one class");
  DL_FORWARD_IF_ERROR(check_options(&o, err));
  size_t PC, BP;
  DL_RETURN_ERROR_IF(P > DL_MAX_ELEMS / 4 || dl_mul_overflow(P, C, &PC) || PC > DL_MAX_ELEMS ||
                         dl_mul_overflow(B, P, &BP) || BP > DL_MAX_ELEMS / 4,
                     err, DETLOSS_ERR_SHAPE, "num_points",
                     "%zu images x %zu points x %zu classes is more than can be addressed", B, P,
                     C);
  DL_FORWARD_IF_ERROR(dl_check_ptr(points, P, "points", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(level_counts, L, "level_counts", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(strides, L, "strides", err));
  DL_FORWARD_IF_ERROR(dl_check_finite(strides, L, "strides", err));
  for (size_t l = 0; l < L; l++) {
    char where[32];
    snprintf(where, sizeof where, "strides[%zu]", l);
    DL_RETURN_ERROR_IF(!(strides[l] > 0.0f), err, DETLOSS_ERR_RANGE, where, "is %g (expected > 0)",
                       (double)strides[l]);
  }
  size_t sum = 0;
  for (size_t l = 0; l < L; l++)
    DL_RETURN_ERROR_IF(dl_add_overflow(sum, level_counts[l], &sum), err, DETLOSS_ERR_SHAPE,
                       "level_counts", "sum overflows");
  DL_RETURN_ERROR_IF(sum != P, err, DETLOSS_ERR_SHAPE, "level_counts",
                     "sums to %zu but there are %zu points", sum, P);
  for (size_t i = 0; i < B; i++) DL_FORWARD_IF_ERROR(check_image(&images[i], i, P, C, err));
  {
    fcos_spans h = {points, strides, o.regress_ranges, level_counts, P, L, C, B, images, result};
    DL_FORWARD_IF_ERROR(
        dl_check_overlaps_fn(FCOS_GLOBAL_SPANS + FCOS_IMAGE_SPANS * B, fcos_span, &h, err));
  }

  /* Phase 2: the targets, into scratch. */
  size_t G = 0;
  for (size_t i = 0; i < B; i++)
    DL_RETURN_ERROR_IF(dl_add_overflow(G, images[i].num_gt, &G) || G > DL_MAX_ELEMS / 4, err,
                       DETLOSS_ERR_SHAPE, "images", "too many gt boxes in the batch");
  const size_t per_block = CLS_BLOCK_ELEMS / C > 0 ? CLS_BLOCK_ELEMS / C : 1;
  const size_t nb = dl_num_blocks(P, per_block);
  float *gt = malloc((G ? 4 * G : 1) * sizeof *gt);
  size_t *gtc = malloc(B * sizeof *gtc);
  size_t *off = malloc((L + 1) * sizeof *off);
  int64_t *assigned = malloc((BP ? BP : 1) * sizeof *assigned);
  float *ctr = malloc((BP ? BP : 1) * sizeof *ctr);
  float *tv_ranges = malloc((L ? 2 * L : 1) * sizeof *tv_ranges);
  double *sums = malloc((2 * B + B * nb + 1) * sizeof *sums);
  detloss_status st = DETLOSS_OK;
  if (!gt || !gtc || !off || !assigned || !ctr || !tv_ranges || !sums) {
    st = dl_fail(err, DETLOSS_ERR_NOMEM, "workspace", "out of memory");
    goto done;
  }
  {
    size_t j = 0;
    for (size_t i = 0; i < B; i++) {
      gtc[i] = images[i].num_gt;
      if (gtc[i]) memcpy(gt + 4 * j, images[i].gt, 4 * gtc[i] * sizeof(float));
      j += gtc[i];
    }
    off[0] = 0;
    for (size_t l = 0; l < L; l++) off[l + 1] = off[l] + level_counts[l];
  }
  detloss_fcos_options fo = detloss_fcos_options_default();
  fo.semantics = tv ? DETLOSS_FCOS_TORCHVISION : DETLOSS_FCOS_MMDET;
  fo.regress_ranges = o.regress_ranges;
  if (tv && fo.regress_ranges == NULL) {
    /* torchvision: lower 4 x anchor size (0 on the first level), upper 8 x anchor size
     * (inf on the last level: FLT_MAX, which no distance of checked boxes reaches) */
    for (size_t l = 0; l < L; l++) {
      tv_ranges[2 * l] = l == 0 ? 0.0f : 4.0f * strides[l];
      tv_ranges[2 * l + 1] = l + 1 == L ? FLT_MAX : 8.0f * strides[l];
    }
    fo.regress_ranges = tv_ranges;
  }
  fo.center_sampling = o.center_sampling;
  fo.center_sample_radius = o.center_sample_radius;
  fo.norm_on_bbox = 0;
  fo.num_threads = o.num_threads;
  st = detloss_fcos_targets_batch(B, points, P, level_counts, strides, L, gt, gtc, assigned, NULL,
                                  ctr, &fo, err);
  if (st != DETLOSS_OK) goto done;

  /* Phase 3: the normalizers (serial, in image and point order), then the passes. */
  size_t npos = 0;
  double csum = 0.0;
  for (size_t k = 0; k < BP; k++)
    if (assigned[k] >= 0) {
      npos++;
      csum += (double)ctr[k];
    }
  double N = o.avg_num_pos >= 0.0 ? o.avg_num_pos : (double)npos;
  N = N > 1.0 ? N : 1.0;
  double D = o.avg_centerness_sum >= 0.0 ? o.avg_centerness_sum : csum;
  D = D > 1e-6 ? D : 1e-6;
  fcos_run r;
  memset(&r, 0, sizeof r);
  r.points = points;
  r.strides = strides;
  r.off = off;
  r.P = P;
  r.L = L;
  r.C = C;
  r.per_block = per_block;
  r.nb = nb;
  r.images = images;
  r.assigned = assigned;
  r.ctr = ctr;
  r.o = &o;
  if (tv) {
    r.cls_scale = r.box_scale = r.ctr_scale = 1.0 / N;
    D = N;
  } else {
    r.cls_scale = r.ctr_scale = 1.0 / (N + MMDET_EPS);
    r.box_scale = 1.0 / (D + MMDET_EPS);
  }
  r.box_sum = sums;
  r.ctr_sum = sums + B;
  r.partials = sums + 2 * B;
  dl_parallel_blocks(B, 1, o.num_threads, positives_block, &r);
  dl_parallel_blocks(B * nb, 1, o.num_threads, cls_block, &r);
  double cls = dl_sum_blocks(r.partials, B * nb), box = 0.0, cen = 0.0;
  for (size_t i = 0; i < B; i++) {
    box += r.box_sum[i];
    cen += r.ctr_sum[i];
  }
  detloss_fcos_result res;
  memset(&res, 0, sizeof res);
  res.loss_cls = (float)(cls * r.cls_scale);
  res.loss_bbox = (float)(box * r.box_scale);
  res.loss_centerness = (float)(cen * r.ctr_scale);
  res.num_pos = npos;
  res.num_pos_norm = N;
  res.centerness_norm = D;
  res.centerness_sum = csum;
  res.nonfinite =
      !isfinite(res.loss_cls) || !isfinite(res.loss_bbox) || !isfinite(res.loss_centerness);
  *result = res;
done:
  free(gt);
  free(gtc);
  free(off);
  free(assigned);
  free(ctr);
  free(tv_ranges);
  free(sums);
  return st;
}
