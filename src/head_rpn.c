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

typedef struct rpn_image {
  int borrowed; /* scratch in options.workspace: not freed here */
  int64_t *matches;
  int8_t *sampled;
  double *partials;
  size_t counts[3];
  size_t s_pos, s_neg;
  dl_head_box box;
  double cls_sum; /* BCE sum over the sampled anchors */
  detloss_status st;
  detloss_error err;
} rpn_image;

typedef struct rpn_run {
  const detloss_head_image *images;
  rpn_image *w;
  const detloss_rpn_options *o;
  dl_head_box_params bp;
  detloss_sample_options so;
  int inner_threads; /* threads of the calls inside one image */
  double inv;        /* 1 / D */
} rpn_run;

static void free_work(rpn_image *w, size_t n) {
  if (w == NULL) return;
  for (size_t i = 0; i < n; i++) {
    if (!w[i].borrowed) {
      free(w[i].matches);
      free(w[i].sampled);
      free(w[i].partials);
    }
    dl_head_box_free(&w[i].box);
  }
  free(w);
}

/* Phase 2 of image i: match, sample, box loss of the sampled positives. */
static void phase2(void *vr, size_t i0, size_t i1, size_t blk) {
  const rpn_run *r = (const rpn_run *)vr;
  (void)blk;
  for (size_t i = i0; i < i1; i++) {
    const detloss_head_image *im = &r->images[i];
    rpn_image *w = &r->w[i];
    size_t A = im->num_anchors;
    detloss_error *err = &w->err;
    if (!w->borrowed) {
      w->matches = malloc((A ? A : 1) * sizeof(int64_t));
      w->sampled = malloc(A ? A : 1);
      w->partials = malloc((dl_num_blocks(A, RPN_BLOCK) + 1) * sizeof(double));
    }
    if (!w->matches || !w->sampled || !w->partials) {
      w->st = dl_fail(err, DETLOSS_ERR_NOMEM, "workspace", "out of memory");
      continue;
    }
    w->st = dl_head_match(im, i, &r->o->match, r->inner_threads, w->matches, w->counts, err);
    if (w->st != DETLOSS_OK) continue;
    detloss_sample_options so = r->so;
    so.num_threads = r->inner_threads;
    w->st = detloss_sample_balanced(w->matches, A, (uint64_t)i, w->sampled, &w->s_pos, &w->s_neg,
                                    &so, err);
    if (w->st != DETLOSS_OK) {
      if (strncmp(err->where, "batch_size", 10) == 0 || strncmp(err->where, "positive", 8) == 0) {
        char tmp[DETLOSS_WHERE_MAX];
        snprintf(tmp, sizeof tmp, "sample.%s", err->where);
        memcpy(err->where, tmp, sizeof tmp);
      } else {
        dl_head_prefix(err, i);
      }
      continue;
    }
    dl_head_box_params bp = r->bp;
    bp.num_threads = r->inner_threads;
    bp.coder.num_threads = r->inner_threads;
    w->st = dl_head_box_eval(&bp, im, i, w->matches, w->sampled, w->s_pos, &w->box, err);
  }
}

/* Phase 3 of image i: objectness pass and gradients. */
static void phase3(void *vr, size_t i0, size_t i1, size_t blk) {
  const rpn_run *r = (const rpn_run *)vr;
  (void)blk;
  for (size_t i = i0; i < i1; i++) {
    const detloss_head_image *im = &r->images[i];
    rpn_image *w = &r->w[i];
    obj_ctx c;
    c.x = im->objectness;
    c.sampled = w->sampled;
    c.grad = im->grad_objectness;
    c.scale = (float)r->inv;
    c.partials = w->partials;
    dl_parallel_blocks(im->num_anchors, RPN_BLOCK, r->inner_threads, obj_block, &c);
    w->cls_sum = dl_sum_blocks(w->partials, dl_num_blocks(im->num_anchors, RPN_BLOCK));
    dl_head_box_scatter(&w->box, r->inv, im->grad_deltas, im->num_anchors);
  }
}

detloss_status detloss_rpn_workspace_size(const detloss_head_image *images, size_t num_images,
                                          size_t *bytes, detloss_error *err) {
  DL_RETURN_ERROR_IF(bytes == NULL, err, DETLOSS_ERR_NULL, "bytes", "is NULL");
  DL_RETURN_ERROR_IF(images == NULL && num_images > 0, err, DETLOSS_ERR_NULL, "images", "is NULL");
  size_t total = 0;
  for (size_t i = 0; i < num_images; i++) {
    size_t A = images[i].num_anchors;
    if (A > DL_MAX_ELEMS / 4) {
      char where[DETLOSS_WHERE_MAX];
      dl_head_where(where, sizeof where, i, ".num_anchors");
      return dl_fail(err, DETLOSS_ERR_SHAPE, where, "%zu anchors is more than can be addressed", A);
    }
    /* matches int64 [A], partials double [blocks + 1], sampled int8 [A] (8-aligned) */
    size_t b = 8 * A + 8 * (dl_num_blocks(A, RPN_BLOCK) + 1) + ((A + 7) & ~(size_t)7);
    DL_RETURN_ERROR_IF(dl_add_overflow(total, b, &total), err, DETLOSS_ERR_SHAPE, "images",
                       "the batch is too large to address");
  }
  *bytes = total;
  return DETLOSS_OK;
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
  char where[DETLOSS_WHERE_MAX];

  /* Phase 1: the batch. */
  for (size_t i = 0; i < num_images; i++) {
    const detloss_head_image *im = &images[i];
    DL_FORWARD_IF_ERROR(dl_head_check_image(im, i, &o.match, err));
    if (im->num_anchors > 0 && im->objectness == NULL) {
      dl_head_where(where, sizeof where, i, ".objectness");
      return dl_fail(err, DETLOSS_ERR_NULL, where, "is NULL but there are %zu predictions",
                     im->num_anchors);
    }
  }

  size_t need = 0;
  DL_FORWARD_IF_ERROR(detloss_rpn_workspace_size(images, num_images, &need, err));
  if (o.workspace != NULL) {
    DL_RETURN_ERROR_IF(o.workspace_size < need, err, DETLOSS_ERR_SHAPE, "workspace_size",
                       "is %zu bytes, this batch needs %zu (detloss_rpn_workspace_size)",
                       o.workspace_size, need);
    DL_RETURN_ERROR_IF(((uintptr_t)o.workspace & 7u) != 0, err, DETLOSS_ERR_RANGE, "workspace",
                       "must be 8-byte aligned");
  }
  DL_FORWARD_IF_ERROR(dl_head_check_overlaps(images, num_images, 0, result, per_image, o.workspace,
                                             need, NULL, err));
  rpn_image *w = calloc(num_images, sizeof *w);
  DL_RETURN_ERROR_IF(w == NULL, err, DETLOSS_ERR_NOMEM, "workspace", "out of memory");
  if (o.workspace != NULL) {
    char *p = (char *)o.workspace;
    for (size_t i = 0; i < num_images; i++) {
      size_t A = images[i].num_anchors;
      w[i].borrowed = 1;
      w[i].matches = (int64_t *)(void *)p;
      p += 8 * A;
      w[i].partials = (double *)(void *)p;
      p += 8 * (dl_num_blocks(A, RPN_BLOCK) + 1);
      w[i].sampled = (int8_t *)p;
      p += (A + 7) & ~(size_t)7;
    }
  }
  rpn_run run;
  run.images = images;
  run.w = w;
  run.o = &o;
  run.bp.kind = o.box_loss;
  run.bp.beta = o.smooth_l1_beta;
  run.bp.coder = detloss_coder_options_default();
  memcpy(run.bp.coder.weights, o.box_weights, sizeof run.bp.coder.weights);
  run.so = o.sample;
  /* Images in parallel (one image per block, every call inside it serial)
   * when there are at least as many images as threads, else one image after
   * the other with the threads inside. Every call is bitwise invariant to its
   * thread count, so both schedules give the same bits. */
  int nt = dl_thread_count(o.num_threads);
  int outer = nt > 1 && num_images >= (size_t)nt;
  int outer_threads = outer ? o.num_threads : 1;
  run.inner_threads = outer ? 1 : o.num_threads;
  run.inv = 0.0;

  /* Phase 2: match, sample, box loss of the sampled positives (scratch only). */
  dl_parallel_blocks(num_images, 1, outer_threads, phase2, &run);
  for (size_t i = 0; i < num_images; i++) {
    if (w[i].st != DETLOSS_OK) {
      detloss_status st = w[i].st;
      if (err) *err = w[i].err;
      free_work(w, num_images);
      return st;
    }
  }

  /* The divisor. torchvision: sampled_inds.numel() of the whole batch;
   * detectron2: batch_size_per_image * num_images (fixed). */
  size_t sampled_total = 0;
  for (size_t i = 0; i < num_images; i++) sampled_total += w[i].s_pos + w[i].s_neg;
  double D = o.convention == DETLOSS_RPN_DETECTRON2
                 ? (double)o.sample.batch_size_per_image * (double)num_images
                 : (double)sampled_total;
  /* D = 0 (nothing sampled anywhere, or B = 0): losses 0, gradients 0
   * (torchvision would divide 0 by 0). */
  run.inv = D > 0.0 ? 1.0 / D : 0.0;

  /* Phase 3: objectness pass and gradients. */
  dl_parallel_blocks(num_images, 1, outer_threads, phase3, &run);
  detloss_head_result r;
  memset(&r, 0, sizeof r);
  double cls_total = 0.0, box_total = 0.0;
  for (size_t i = 0; i < num_images; i++) {
    cls_total += w[i].cls_sum;
    box_total += w[i].box.sum;
    r.num_pos += w[i].counts[0];
    r.num_neg += w[i].counts[1];
    r.num_ignored += w[i].counts[2];
    r.num_sampled_pos += w[i].s_pos;
    r.num_sampled_neg += w[i].s_neg;
    if (per_image) {
      detloss_head_image_stats *s = &per_image[i];
      s->num_pos = w[i].counts[0];
      s->num_neg = w[i].counts[1];
      s->num_ignored = w[i].counts[2];
      s->num_sampled_pos = w[i].s_pos;
      s->num_sampled_neg = w[i].s_neg;
      s->loss_cls = (float)(w[i].cls_sum * run.inv);
      s->loss_box_reg = (float)(w[i].box.sum * run.inv);
    }
  }
  r.loss_cls = (float)(cls_total * run.inv);
  r.loss_box_reg = (float)(box_total * run.inv);
  r.normalizer = D;
  r.nonfinite = !isfinite(r.loss_cls) || !isfinite(r.loss_box_reg);
  *result = r;
  free_work(w, num_images);
  return DETLOSS_OK;
}
