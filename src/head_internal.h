/*
 * head_internal.h - the detector heads' one driver (head_driver.c) and what it
 * shares with the heads (head_common.c: checks and the box loss).
 *
 * A head is a configuration of the driver (dl_head_spec: which assigner, sampler,
 * classification pass, box loss and normalizer) plus its public entry point
 * (head_rpn.c, head_retina.c). The driver runs in three phases so that outputs
 * stay untouched on error:
 *   1. validate the batch (pointers, counts, the head's own checks, workspace,
 *      aliasing);
 *   2. per image: assign (the spec's assigner), (sample), and evaluate the box
 *      loss of the positives into scratch (dl_head_box_eval); every error that
 *      can happen, happens here;
 *   3. the normalizer, then per image the classification pass (value and gradient
 *      in one pass over fixed anchor blocks) and the scattered box gradients; the
 *      batch reduction.
 */
#ifndef DETLOSS_HEAD_INTERNAL_H
#define DETLOSS_HEAD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "assign.h"
#include "internal.h"
#include "parallel.h"

/* "images[i]" + suffix into buf. */
void dl_head_where(char *buf, size_t cap, size_t image, const char *suffix);

/* Prefixes err->where with "images[i]." (errors of library calls on one image). */
void dl_head_prefix(detloss_error *err, size_t image);

/* Phase 1 checks of one image shared by every head: images[i] non-NULL
 * pointers where counts are > 0, num_predictions == num_anchors, deltas
 * present, image size when needs_image_size (border filtering is on). Box
 * coordinates are checked by the assigner in phase 2 (named
 * "images[i].anchors[a]"). */
detloss_status dl_head_check_image(const detloss_head_image *im, size_t i, int needs_image_size,
                                   detloss_error *err);

/* Aliasing of a batch: no output (every image's grad_objectness,
 * grad_cls_logits, grad_deltas; result; per_image [num_images]; the
 * workspace; ema_state) may overlap another output or any input (images,
 * each image's anchors, gt, labels, gt_is_crowd, objectness, cls_logits,
 * deltas and anchor_config): DETLOSS_ERR_SHAPE naming the output. Inputs may
 * be shared between images. num_classes = 0 for the RPN (objectness), > 0
 * for RetinaNet (cls_logits [A][C]). Call after dl_head_check_image. */
detloss_status dl_head_check_overlaps(const detloss_head_image *images, size_t num_images,
                                      size_t num_classes, const detloss_head_result *result,
                                      const detloss_head_image_stats *per_image,
                                      const void *workspace, size_t workspace_size,
                                      const float *ema_state, detloss_error *err);

/* Every class label of image i is in [0, C): else DETLOSS_ERR_RANGE naming
 * "images[i].labels[g]" (the RetinaNet, FCOS and YOLOv8 heads). */
detloss_status dl_head_check_labels(const int64_t *labels, size_t num_gt, size_t num_classes,
                                    size_t i, detloss_error *err);

/* Checks the box-loss options: kind, beta (finite >= 0), weights (finite > 0). */
detloss_status dl_head_check_box_options(detloss_head_box_loss kind, float beta,
                                         const float weights[4], detloss_error *err);

/* The box loss of one image over its selected positives. */
typedef struct dl_head_box {
  size_t n;    /* selected positives */
  size_t *idx; /* [n] anchor indices, ascending */
  float *grad; /* [n][4] d(sum of their losses) / d deltas, unscaled */
  double sum;  /* sum of their losses (NaN when a selected delta is not finite) */
} dl_head_box;

typedef struct dl_head_box_params {
  detloss_head_box_loss kind;
  float beta;
  detloss_coder_options coder;
  int num_threads;
} dl_head_box_params;

/* Evaluates the box loss of image i over anchors a with matches[a] >= 0 and,
 * when select != NULL, select[a] == 1 (RPN: sampled positives); n is their
 * number (known to the caller: the positive or sampled-positive count). Errors:
 * _RANGE naming "images[i].anchors[a]" / "images[i].gt[g]" when an
 * element-wise kind would encode a degenerate box; _NOMEM. */
detloss_status dl_head_box_eval(const dl_head_box_params *p, const detloss_head_image *im, size_t i,
                                const int64_t *matches, const int8_t *select, size_t n,
                                dl_head_box *b, detloss_error *err);
void dl_head_box_free(dl_head_box *b);

/* grad [A][4] = 0 except the rows of b, which get scale * b->grad. */
void dl_head_box_scatter(const dl_head_box *b, double scale, float *grad, size_t num_anchors);

/* The scratch of one image (phase 2 fills it, phase 3 reads it). */
typedef struct dl_head_work {
  int borrowed;        /* scratch in the caller's workspace: not freed here */
  int64_t *matches;    /* [A] the assigner's gt_index */
  int8_t *sampled;     /* [A] the sampler's flags (1 pos, 0 neg, -1 not sampled), or NULL */
  double *partials;    /* [blocks + 1] the classification pass's block sums */
  size_t counts[3];    /* assigned positives, negatives (background), ignored */
  size_t s_pos, s_neg; /* sampled positives and negatives (no sampler: counts[0], [1]) */
  dl_head_box box;
  double scale;   /* d loss / d (this image's sums) */
  double cls_sum; /* the classification pass's sum */
  detloss_status st;
  detloss_error err;
} dl_head_work;

/* How the batch is normalized. Scales are per image (d loss / d sums). */
typedef enum dl_head_norm {
  DL_HEAD_NORM_SAMPLED,      /* 1 / sampled anchors of the batch (torchvision RPN) */
  DL_HEAD_NORM_FIXED,        /* 1 / spec.normalizer (detectron2 RPN: B x num_images) */
  DL_HEAD_NORM_PER_IMAGE_FG, /* 1 / (num_images x max(1, positives of the image)),
                                torchvision RetinaNet */
  DL_HEAD_NORM_EMA,          /* 1 / n, n = m n + (1 - m) max(P, 1) (detectron2) */
  DL_HEAD_NORM_CALLER        /* 1 / spec.normalizer (the caller's, distributed training) */
} dl_head_norm;

/* A head: the driver's configuration. */
typedef struct dl_head_spec {
  /* phase 1 */
  size_t num_classes;   /* 0: one objectness logit per anchor; else cls_logits [A][C] */
  int needs_image_size; /* the assigner reads image_h, image_w */
  detloss_status (*check_image)(const struct dl_head_spec *s, const detloss_head_image *im,
                                size_t i, detloss_error *err); /* the head's own checks */
  void *workspace;                                             /* the caller's scratch, or NULL */
  size_t workspace_size;
  const char *workspace_fn; /* the public _workspace_size() named in its error */
  /* phase 2 */
  const dl_assigner *assigner;
  const void *assign_options;           /* e.g. detloss_match_options for "max_iou" */
  const char *assign_options_at;        /* "match": where errors naming an option are */
  const detloss_sample_options *sample; /* NULL: no sampling */
  dl_head_box_params box;
  /* phase 3 */
  size_t per_block; /* anchors per block of the classification pass (fixed) */
  /* Runs the classification pass of image i over blocks of per_block anchors into
   * w->partials, writing im's gradient scaled by scale; returns the sum. */
  double (*cls_pass)(const struct dl_head_spec *s, const detloss_head_image *im,
                     const dl_head_work *w, float scale, int num_threads);
  const void *cls; /* the classification loss's parameters */
  dl_head_norm norm;
  double normalizer;  /* DL_HEAD_NORM_FIXED, _CALLER */
  float *ema_state;   /* DL_HEAD_NORM_EMA: read, and written on success */
  float ema_momentum; /* DL_HEAD_NORM_EMA */
  int sum_then_scale; /* batch loss = (sum of sums) x scale (one scale for all images),
                         else the sum of the scaled image losses */
  int num_threads;
} dl_head_spec;

/* Workspace bytes of a batch: per image matches int64 [A], partials double
 * [blocks of per_block + 1] and, with a sampler, flags int8 [A] (8-aligned). */
detloss_status dl_head_workspace_size(const detloss_head_image *images, size_t num_images,
                                      size_t per_block, int sampled, size_t *bytes,
                                      detloss_error *err);

/* The driver: phases 1-3 over the batch for the head s. The entry point has
 * checked result, images (non-NULL, num_images > 0) and the head's options. */
detloss_status dl_head_run(const dl_head_spec *s, const detloss_head_image *images,
                           size_t num_images, detloss_head_result *result,
                           detloss_head_image_stats *per_image, detloss_error *err);

#endif /* DETLOSS_HEAD_INTERNAL_H */
