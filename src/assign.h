/*
 * assign.h - one interface for the per-image assigners (anchor or point -> gt),
 * and the registry of assigners by name (assign.c).
 *
 * An assigner reads one image (its anchors or points, their level and stride, the
 * gt boxes and labels, and, for the dynamic assigners that look at the network's
 * predictions, the predicted scores and boxes) and fills one dl_assign_result:
 * per anchor the assigned gt index or a background / ignore code, optionally the
 * assigned class label and a per-anchor quality value. Every assigner validates
 * its own inputs and options and leaves the outputs untouched on error.
 *
 * Adding an assigner: its kernel file (one dl_assign_<name> function of type
 * dl_assign_fn, its options struct and their check), one row in dl_assigners[]
 * (assign.c), its tests and its docs page.
 */
#ifndef DETLOSS_ASSIGN_H
#define DETLOSS_ASSIGN_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Codes of dl_assign_result.gt_index below 0 (those of detloss_match). */
#define DL_ASSIGN_BACKGROUND ((int64_t)-1)
#define DL_ASSIGN_IGNORE ((int64_t)-2)

/* One image's inputs. Anchors are given either as boxes (anchors [A][4]) or as
 * a grid config (anchor_config, generating exactly num_anchors anchors; then
 * anchors is NULL). Pointers marked optional may be NULL. */
typedef struct dl_assign_input {
  size_t num_anchors;                         /* A */
  const float *anchors;                       /* [A][4] (x1,y1,x2,y2), or NULL with the grid */
  const detloss_anchor_config *anchor_config; /* grid path, or NULL */
  const int32_t *anchor_level;                /* optional [A]: pyramid level of each anchor */
  const float *level_stride;                  /* optional [num_levels]: stride of each level */
  size_t num_levels;
  size_t num_gt;              /* G */
  const float *gt;            /* [G][4] */
  const int64_t *gt_labels;   /* optional [G]: class of each gt (needed for result labels) */
  const uint8_t *gt_is_crowd; /* optional [G]: crowd (ignore) regions */
  float image_h, image_w;     /* the image size (border rules) */
  size_t num_classes;         /* columns of pred_scores */
  const float *pred_scores;   /* optional [A][num_classes]: predicted scores (dynamic) */
  const float *pred_boxes;    /* optional [A][4]: predicted boxes, decoded (dynamic) */
  int num_threads;            /* 0 = OpenMP default; results never depend on it */
  const float *points;        /* optional [A][2]: anchor points (x, y) (point-based
                                 assigners; used instead of the anchors' centres) */
  const size_t *level_counts; /* optional [num_levels]: anchors per level, level-major
                                 (sum = A) */
} dl_assign_input;

/* One image's outputs, caller-owned, [A] each; only gt_index is required. */
typedef struct dl_assign_result {
  int64_t *gt_index; /* assigned gt in [0, G), DL_ASSIGN_BACKGROUND or DL_ASSIGN_IGNORE */
  int64_t *labels;   /* optional: gt_labels[gt_index] for assigned anchors, else -1 */
  float *quality;    /* optional: the assigner's per-anchor quality (max_iou: the best IoU
                        over the gts, -1 where a crowd or border rule removed the anchor;
                        simota: the IoU of the predicted box with the assigned gt, 0 at
                        background) */
} dl_assign_result;

/* An assigner: validates in, options (NULL = its defaults) and out, then fills
 * out. Errors name the faulty argument or option (as the public call that wraps
 * it does); outputs untouched on error. Thread-safe. */
typedef detloss_status (*dl_assign_fn)(const dl_assign_input *in, const void *options,
                                       dl_assign_result *out, detloss_error *err);

/* A registry row: the name configs use, the function, and its options type. */
typedef struct dl_assigner {
  const char *name;         /* e.g. "max_iou" */
  dl_assign_fn fn;          /* the assigner */
  const char *options_type; /* the options struct's name, e.g. "detloss_match_options" */
  size_t options_size;      /* sizeof that struct */
  void (*options_default)(void *options); /* writes its defaults */
  /* Checks the options that do not depend on the image (NULL = the defaults,
   * always valid); a fault is named where it is found: at + "." + the
   * option ("match.high"), or the option alone when at is "". */
  detloss_status (*check_options)(const void *options, const char *at, detloss_error *err);
} dl_assigner;

/* The registered assigners, by name; NULL when name is unknown. */
const dl_assigner *dl_assigner_find(const char *name);
/* Number of registered assigners and the i-th (NULL when i >= count). */
size_t dl_assigner_count(void);
const dl_assigner *dl_assigner_at(size_t i);

/* The Max-IoU assigner (match.c), options detloss_match_options: every anchor
 * takes its best-IoU gt above high, background below low, ignore in between, with
 * the semantics, crowd, border and low-quality rules of detloss_match. Errors name
 * the outputs "matches" and "max_iou" (gt_index, quality), as detloss_match does. */
detloss_status dl_assign_max_iou(const dl_assign_input *in, const void *options,
                                 dl_assign_result *out, detloss_error *err);
/* Its options check (the check_options of its registry row). */
detloss_status dl_match_check_options(const void *options, const char *at, detloss_error *err);

/* SimOTA (assign_simota.c), options detloss_simota_options:
 * detloss_assign_simota() on in->points, in->level_counts, in->level_stride
 * [num_levels], in->pred_scores [A][num_classes], in->pred_boxes, in->gt and
 * in->gt_labels (anchor boxes or a grid config: DETLOSS_ERR_UNSUPPORTED); fills
 * gt_index, labels and quality (IoU with the assigned gt). Errors name the
 * arguments as detloss_assign_simota does. */
detloss_status dl_assign_simota(const dl_assign_input *in, const void *options,
                                dl_assign_result *out, detloss_error *err);
void dl_simota_options_default(void *options);
detloss_status dl_simota_check_options(const void *options, const char *at, detloss_error *err);

#endif /* DETLOSS_ASSIGN_H */
