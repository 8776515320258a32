/*
 * names.h - the JSON names of the core's enums, one table per enum (in enum
 * order, NULL-terminated), and the one reader of matcher options. The config
 * reader (config_schema.c: its descriptor tables and --help-config), the compute
 * ops (case_match.c, case_heads.c, case_eval.c) and their messages all take
 * the names from here.
 */
#ifndef DETLOSS_JSON_NAMES_H
#define DETLOSS_JSON_NAMES_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "detloss/detloss.h"

extern const char *const dlj_semantics_names[];      /* detloss_match_semantics */
extern const char *const dlj_rpn_convention_names[]; /* detloss_rpn_convention */
extern const char *const dlj_box_loss_names[];       /* detloss_head_box_loss */
extern const char *const dlj_normalizer_names[];     /* detloss_retina_normalizer */

/* The index of s in names, or -1. s may also be an accepted alias of a name:
 * "py-faster-rcnn" for "py_faster_rcnn" (the spelling of the published
 * configs/py_faster_rcnn_vgg16_rpn.json before the names were unified). */
int dlj_name_index(const char *const *names, const char *s);
/* The names as "a, b or c" into buf (truncated to cap). */
void dlj_name_list(char *buf, size_t cap, const char *const *names);
/* Number of names in a table. */
size_t dlj_name_count(const char *const *names);

/* The JSON keys of the matcher options a caller reads (NULL: not read). */
typedef struct dlj_match_keys {
  const char *high, *low, *allow_low_quality, *low_quality_min_iou, *semantics, *gt_max_assign_all,
      *crowd_ioa_thresh, *allowed_border;
} dlj_match_keys;

/* Reads the matcher options named by keys from obj (path = obj's JSON path)
 * into m, in the order of dlj_match_keys; absent keys keep m's values. A
 * semantics name not in dlj_semantics_names is DETLOSS_ERR_UNKNOWN at
 * path.<semantics key>, "unknown semantics 'x' (expected torchvision,
 * detectron2 or mmdet)", reported after the other keys were read. Range
 * checks are the caller's (or the library's). */
detloss_status dlj_match_options(const cJSON *obj, const char *path, const dlj_match_keys *keys,
                                 detloss_match_options *m, detloss_error *err);

#endif /* DETLOSS_JSON_NAMES_H */
