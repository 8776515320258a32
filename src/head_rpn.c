/*
 * head_rpn.c - Faster R-CNN region proposal network loss over a batch.
 *
 * torchvision RegionProposalNetwork (models/detection/rpn.py):
 *   assign_targets_to_anchors: matched_idxs = Matcher(0.7, 0.3, True)(box_iou(gt, anchors));
 *     labels = 1 (>= 0), 0 (-1), -1 (-2); G = 0: all 0;
 *     regression targets = encode(gt[clamp(matched_idxs, 0)], anchors) (only the
 *     sampled positives' targets are ever read, so only those are encoded here);
 *   compute_loss: BalancedPositiveNegativeSampler(256, 0.5) per image,
 *     loss_objectness = BCE-with-logits mean over the sampled anchors of the batch,
 *     loss_rpn_box_reg = smooth_l1(beta 1/9, sum) over the sampled positives
 *                        / number of sampled anchors of the batch.
 * detectron2 (modeling/proposal_generator/rpn.py RPN.losses) divides both sums by
 * batch_size_per_image x num_images instead; py-faster-rcnn (anchor_target_layer,
 * SmoothL1Loss sigma 3) divides by the sampled anchors, as torchvision.
 * Ref: Ren et al., Faster R-CNN, arXiv:1506.01497, eq. (1).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head_internal.h"
#include "loss_kernels.h"

/* Anchors per block of the objectness pass (fixed: results do not depend on
 * the thread count). */
#define RPN_BLOCK 8192

detloss_rpn_options detloss_rpn_options_default(void) {
  detloss_rpn_options o = DETLOSS_RPN_OPTIONS_INIT;
  return o;
}

detloss_rpn_options detloss_rpn_options_preset(detloss_rpn_convention convention) {
  detloss_rpn_options o = DETLOSS_RPN_OPTIONS_INIT;
  o.convention = convention;
  if (convention == DETLOSS_RPN_DETECTRON2) {
    /* detectron2 configs/defaults.py: MODEL.RPN.SMOOTH_L1_BETA = 0.0 (L1),
     * BBOX_REG_LOSS_TYPE "smooth_l1" */
    o.box_loss = DETLOSS_HEAD_BOX_SMOOTH_L1;
    o.smooth_l1_beta = 0.0f;
  } else if (convention == DETLOSS_RPN_PY_FASTER_RCNN) {
    /* lib/fast_rcnn/config.py: RPN allowed_border 0 (anchor_target_layer);
     * SmoothL1Loss sigma 3 -> beta 1/9 */
    o.match.allowed_border = 0.0f;
  }
  return o;
}

typedef struct obj_ctx {
  const float *x;
  const int8_t *sampled;
  float *grad; /* or NULL */
  float scale; /* d loss / d (sum of BCE) */
  double *partials;
} obj_ctx;

/* Block [a0, a1): the BCE sum of the sampled anchors (in anchor order),
 * gradient scale * dl/dx for them and exactly 0 for the others. */
/* The next a in [a, a1) with sampled[a] >= 0 (a1 if none): eight flags at a
 * time while they are all -1 (not sampled), as for all but ~256 anchors. */
static size_t next_sampled(const int8_t *sampled, size_t a, size_t a1) {
  while (a < a1 && (a & 7) != 0 && sampled[a] < 0) a++;
  while (a + 8 <= a1) {
    uint64_t w;
    memcpy(&w, sampled + a, 8);
    if (w != UINT64_MAX) break;
    a += 8;
  }
  while (a < a1 && sampled[a] < 0) a++;
  return a;
}

static void obj_block(void *vc, size_t a0, size_t a1, size_t blk) {
  const obj_ctx *c = (const obj_ctx *)vc;
  double s = 0.0;
  if (c->grad) memset(c->grad + a0, 0, (a1 - a0) * sizeof(float));
  for (size_t a = next_sampled(c->sampled, a0, a1); a < a1;
       a = next_sampled(c->sampled, a + 1, a1)) {
    float l, g;
    /* BCE with logits, pos_weight 1: the loss module's kernel (loss_kernels.h) */
    dl_bce_logits_elem(c->x[a], c->sampled[a] == 1 ? 1.0f : 0.0f, 1.0f, &l, &g);
    s += (double)l;
    if (c->grad) c->grad[a] = g * c->scale;
  }
  c->partials[blk] = s;
}

static detloss_status check_options(const detloss_rpn_options *o, detloss_error *err) {
  DL_RETURN_ERROR_IF(o->convention < DETLOSS_RPN_TORCHVISION ||
                         o->convention > DETLOSS_RPN_PY_FASTER_RCNN,
                     err, DETLOSS_ERR_RANGE, "convention",
                     "is %d, expected 0 (torchvision), 1 (detectron2) or 2 (py-faster-rcnn)",
                     (int)o->convention);
  DL_FORWARD_IF_ERROR(
      dl_head_check_box_options(o->box_loss, o->smooth_l1_beta, o->box_weights, err));
  DL_RETURN_ERROR_IF(o->sample.batch_size_per_image < 0, err, DETLOSS_ERR_RANGE,
                     "sample.batch_size_per_image", "must be >= 0, got %lld",
                     (long long)o->sample.batch_size_per_image);
  DL_RETURN_ERROR_IF(!(o->sample.positive_fraction >= 0.0 && o->sample.positive_fraction <= 1.0),
                     err, DETLOSS_ERR_RANGE, "sample.positive_fraction",
                     "must be in [0, 1], got %g", o->sample.positive_fraction);
  return DETLOSS_OK;
}

/* The driver's classification pass (head_internal.h): BCE over the sampled anchors. */
static double objectness_pass(const dl_head_spec *s, const detloss_head_image *im,
                              const dl_head_work *w, float scale, int num_threads) {
  (void)s;
  obj_ctx c;
  c.x = im->objectness;
  c.sampled = w->sampled;
  c.grad = im->grad_objectness;
  c.scale = scale;
  c.partials = w->partials;
  dl_parallel_blocks(im->num_anchors, RPN_BLOCK, num_threads, obj_block, &c);
  return dl_sum_blocks(w->partials, dl_num_blocks(im->num_anchors, RPN_BLOCK));
}

/* The RPN's own phase 1 check of image i: objectness present. */
static detloss_status check_image(const dl_head_spec *s, const detloss_head_image *im, size_t i,
                                  detloss_error *err) {
  (void)s;
  if (im->num_anchors > 0 && im->objectness == NULL) {
    char where[DETLOSS_WHERE_MAX];
    dl_head_where(where, sizeof where, i, ".objectness");
    return dl_fail(err, DETLOSS_ERR_NULL, where, "is NULL but there are %zu predictions",
                   im->num_anchors);
  }
  return DETLOSS_OK;
}

detloss_status detloss_rpn_workspace_size(const detloss_head_image *images, size_t num_images,
                                          size_t *bytes, detloss_error *err) {
  DL_RETURN_ERROR_IF(bytes == NULL, err, DETLOSS_ERR_NULL, "bytes", "is NULL");
  DL_RETURN_ERROR_IF(images == NULL && num_images > 0, err, DETLOSS_ERR_NULL, "images", "is NULL");
  /* matches int64 [A], partials double [blocks + 1], sampled int8 [A] (8-aligned) */
  return dl_head_workspace_size(images, num_images, RPN_BLOCK, 1, bytes, err);
}

detloss_status detloss_rpn_loss(const detloss_head_image *images, size_t num_images,
                                detloss_head_result *result, detloss_head_image_stats *per_image,
                                const detloss_rpn_options *opt, detloss_error *err) {
  detloss_rpn_options o = opt ? *opt : detloss_rpn_options_default();
  DL_RETURN_ERROR_IF(result == NULL, err, DETLOSS_ERR_NULL, "result", "is NULL");
  DL_RETURN_ERROR_IF(num_images == 0, err, DETLOSS_ERR_SHAPE, "num_images",
                     "is 0: an empty batch has no loss");
  DL_RETURN_ERROR_IF(images == NULL, err, DETLOSS_ERR_NULL, "images", "is NULL");
  DL_FORWARD_IF_ERROR(check_options(&o, err));
  dl_head_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.num_classes = 0;
  spec.needs_image_size = o.match.allowed_border >= 0.0f;
  spec.check_image = check_image;
  spec.workspace = o.workspace;
  spec.workspace_size = o.workspace_size;
  spec.workspace_fn = "detloss_rpn_workspace_size";
  spec.assigner = dl_assigner_find("max_iou");
  spec.assign_options = &o.match;
  spec.assign_options_at = "match";
  spec.sample = &o.sample;
  spec.box.kind = o.box_loss;
  spec.box.beta = o.smooth_l1_beta;
  spec.box.coder = detloss_coder_options_default();
  memcpy(spec.box.coder.weights, o.box_weights, sizeof spec.box.coder.weights);
  spec.per_block = RPN_BLOCK;
  spec.cls_pass = objectness_pass;
  /* The divisor. torchvision: sampled_inds.numel() of the whole batch;
   * detectron2: batch_size_per_image * num_images (fixed). Both sums are
   * divided once, after the batch sum. */
  spec.norm = o.convention == DETLOSS_RPN_DETECTRON2 ? DL_HEAD_NORM_FIXED : DL_HEAD_NORM_SAMPLED;
  spec.normalizer = (double)o.sample.batch_size_per_image * (double)num_images;
  spec.sum_then_scale = 1;
  spec.num_threads = o.num_threads;
  return dl_head_run(&spec, images, num_images, result, per_image, err);
}
