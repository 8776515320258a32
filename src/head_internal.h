/*
 * head_internal.h - what the two detector heads (head_rpn.c, head_retina.c)
 * share; implemented in head_common.c.
 *
 * Both heads run in three phases so that outputs stay untouched on error:
 *   1. validate the batch (pointers, counts, labels, options);
 *   2. per image: match (detloss_match), (RPN) sample, and evaluate the box
 *      loss of the positives into scratch (dl_head_box_eval); every error
 *      that can happen, happens here;
 *   3. write: the classification pass (value and gradient in one pass over
 *      fixed anchor blocks) and the scattered box gradients.
 */
#ifndef DETLOSS_HEAD_INTERNAL_H
#define DETLOSS_HEAD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "parallel.h"

/* "images[i]" + suffix into buf. */
void dl_head_where(char *buf, size_t cap, size_t image, const char *suffix);

/* Prefixes err->where with "images[i]." (errors of library calls on one image). */
void dl_head_prefix(detloss_error *err, size_t image);

/* Phase 1 checks of one image shared by both heads: images[i] non-NULL
 * pointers where counts are > 0, num_predictions == num_anchors, deltas
 * present, image size when border filtering is on. Box coordinates are
 * checked by detloss_match in phase 2 (named "images[i].anchors[a]"). */
detloss_status dl_head_check_image(const detloss_head_image *im, size_t i,
                                   const detloss_match_options *mo, detloss_error *err);

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

/* Checks the box-loss options: kind, beta (finite >= 0), weights (finite > 0). */
detloss_status dl_head_check_box_options(detloss_head_box_loss kind, float beta,
                                         const float weights[4], detloss_error *err);

/* Matches one image: detloss_match with mo, the image's size and num_threads;
 * errors are prefixed "images[i].". counts[0..2] = positives, negatives, ignored. */
detloss_status dl_head_match(const detloss_head_image *im, size_t i,
                             const detloss_match_options *mo, int num_threads, int64_t *matches,
                             size_t counts[3], detloss_error *err);

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

#endif /* DETLOSS_HEAD_INTERNAL_H */
