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
  const uint8_t *gt_valid;    /* optional [G], task_aligned: 0 marks a padding row (ultralytics
                                 mask_gt): it has no candidates and no part in conflicts */
  int scores_are_logits;      /* task_aligned: pred_scores are logits (finite); the assigner
                                 takes their sigmoid where it reads them, in double */
} dl_assign_input;

/* One image's outputs, caller-owned, [A] each; only gt_index is required. */
typedef struct dl_assign_result {
  int64_t *gt_index;    /* assigned gt in [0, G), DL_ASSIGN_BACKGROUND or DL_ASSIGN_IGNORE */
  int64_t *labels;      /* optional: gt_labels[gt_index] for assigned anchors, else -1 */
  float *quality;       /* optional: the assigner's per-anchor quality (max_iou: the best IoU
                           over the gts, -1 where a crowd or border rule removed the anchor;
                           task_aligned: the overlap u with the assigned gt, 0 at background;
                           hungarian: the matched pair's cost, 0 for unmatched queries; atss:
                           the IoU with the assigned gt; fcos: the centerness target; simota: the IoU
                           of the predicted box with the assigned gt; 0 at anchors that are not
                           positive) */
  float *target_scores; /* optional, task_aligned: the normalised alignment score (0 at
                           background) */
  float *align_metrics; /* optional, task_aligned: the alignment metric t with the
                           assigned gt (0 at background) */
  float *bbox_targets;  /* optional [A][4]: the assigner's box regression targets (fcos: l, t,
                           r, b; 0 at anchors that are not positive) */
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

/* at + "." + name into buf (DETLOSS_WHERE_MAX bytes), or name alone when at is "":
 * where an options check names a faulty option under the caller's path. */
const char *dl_assign_option_where(char *buf, const char *at, const char *name);

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

/* The task-aligned assigner (assign_task_aligned.c), options
 * detloss_task_aligned_options: detloss_assign_task_aligned() on in->points (or
 * the centres of in->anchors; a grid config is DETLOSS_ERR_UNSUPPORTED),
 * in->level_counts, in->pred_scores [A][num_classes], in->pred_boxes, in->gt and
 * in->gt_labels; fills gt_index, labels, quality (overlap), target_scores and
 * align_metrics. Errors name the arguments as detloss_assign_task_aligned does
 * ("anchors" for anchor boxes). */
detloss_status dl_assign_task_aligned(const dl_assign_input *in, const void *options,
                                      dl_assign_result *out, detloss_error *err);
void dl_task_aligned_options_default(void *options);
/* Its options check (the check_options of its registry row). */
detloss_status dl_task_aligned_check_options(const void *options, const char *at,
                                             detloss_error *err);

/* DETR's Hungarian matcher (hungarian.c), options detloss_hungarian_options:
 * the anchors are the queries. pred_scores [A][num_classes] are the logits
 * (num_classes = K + 1 for DETR, K for the focal variant), pred_boxes [A][4]
 * and gt [G][4] are (cx, cy, w, h), gt_labels is required; anchors, levels and
 * the image size are not used (anchor_config is DETLOSS_ERR_UNSUPPORTED).
 * gt_index[q]: the gt matched to query q or DL_ASSIGN_BACKGROUND; labels[q]:
 * its label or -1; quality[q]: the pair's cost (0 for unmatched queries).
 * Errors name "logits", "pred_boxes", "gt", "gt_labels", "gt_index". */
detloss_status dl_assign_hungarian(const dl_assign_input *in, const void *options,
                                   dl_assign_result *out, detloss_error *err);
/* Its options check (the check_options of its registry row). */
detloss_status dl_hungarian_check_options(const void *options, const char *at, detloss_error *err);

/* ATSS (assign_atss.c), options detloss_atss_options: anchors [A][4] are
 * required (anchor_config is DETLOSS_ERR_UNSUPPORTED); anchor_level [A] must be
 * non-decreasing (level-major; NULL = one level); gt_is_crowd boxes are the
 * ignore regions (mmdet semantics). quality: IoU with the assigned gt. */
detloss_status dl_assign_atss(const dl_assign_input *in, const void *options, dl_assign_result *out,
                              detloss_error *err);

/* FCOS targets (assign_fcos.c), options detloss_fcos_options: the points are
 * the centres of anchors [A][4] (pass (x, y, x, y)); anchor_level [A]
 * non-decreasing and level_stride [num_levels] are required. quality: the
 * centerness target; bbox_targets: (l, t, r, b). gt_is_crowd must be NULL. */
detloss_status dl_assign_fcos(const dl_assign_input *in, const void *options, dl_assign_result *out,
                              detloss_error *err);

/* 1 when FCOS can never take gt box b [4] for its size: with m = max(w, h) > 0,
 * [m/2, m) meets no level's [lo, hi] of ranges [L][2] (detloss_fcos_out_of_range). */
int dl_fcos_out_of_range(const float *b, const float *ranges, size_t L);

/* The options checks of the ATSS and FCOS rows (assign_atss.c, assign_fcos.c). */
detloss_status dl_atss_check_options(const void *options, const char *at, detloss_error *err);
detloss_status dl_fcos_check_options(const void *options, const char *at, detloss_error *err);

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
