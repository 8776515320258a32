/*
 * names.h - the JSON layer's view of the core's name registry (src/registry.c,
 * detloss_names_*): lookups with aliases, "a, b or c" lists and the "unknown
 * <what>" messages; and the one reader of matcher options, driven by the
 * core's descriptor table of detloss_match_options. The config reader
 * (config_schema.c), the compute ops (case_match.c, case_heads.c,
 * case_eval.c, case_box.c) and their messages all take the names from here.
 */
#ifndef DETLOSS_JSON_NAMES_H
#define DETLOSS_JSON_NAMES_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "detloss/detloss.h"

#define DLJ_NAMES_MAX 16 /* most names in one set (checked by the tests) */

/* The enum value of s in set, or -1. s may also be a row's alias:
 * "py-faster-rcnn" for "py_faster_rcnn" (the spelling of the published
 * configs/py_faster_rcnn_vgg16_rpn.json before the names were unified). */
int dlj_name_index(detloss_name_set set, const char *s);
/* The names of set in enum order into out[DLJ_NAMES_MAX]; returns how many. */
size_t dlj_names(detloss_name_set set, const char **out);
/* The names as "a, b or c" into buf (truncated to cap). */
void dlj_name_list(char *buf, size_t cap, detloss_name_set set);
/* DETLOSS_ERR_UNKNOWN at where: "unknown <label> 's' (did you mean 'x'?)" when
 * hint and a close name exists, else "unknown <label> 's' (expected a, b or c)";
 * label = detloss_names_label(set). */
detloss_status dlj_unknown_name(detloss_error *err, const char *where, detloss_name_set set,
                                const char *s, int hint);

/* Reads obj[key] (path = obj's JSON path) into the field named `field` (its
 * C name) of the options struct at dst, of kind `kind`, by the type the
 * core's descriptor row gives (dlj_float, dlj_number, dlj_bool; an ENUM by
 * name from the row's name set, hint as in dlj_unknown_name). Absent and not
 * required: dst untouched. Range checks are the caller's (or the library's). */
detloss_status dlj_option(const cJSON *obj, const char *path, const char *key,
                          detloss_options_kind kind, const char *field, int required, int hint,
                          void *dst, detloss_error *err);

/* The JSON keys of the matcher options a caller reads (NULL: not read), one
 * per row of detloss_options_info_get(DETLOSS_OPTIONS_MATCH), in its order. */
typedef struct dlj_match_keys {
  const char *high, *low, *allow_low_quality, *low_quality_min_iou, *semantics, *gt_max_assign_all,
      *crowd_ioa_thresh, *allowed_border;
} dlj_match_keys;

/* Reads the matcher options named by keys from obj (path = obj's JSON path)
 * into m, in the order of the table; absent keys keep m's values. A name not
 * in the field's name set (semantics) is DETLOSS_ERR_UNKNOWN at path.<key>,
 * "unknown semantics 'x' (expected torchvision, detectron2 or mmdet)",
 * reported after the other keys were read. Range checks are the caller's (or
 * the library's). */
detloss_status dlj_match_options(const cJSON *obj, const char *path, const dlj_match_keys *keys,
                                 detloss_match_options *m, detloss_error *err);

#endif /* DETLOSS_JSON_NAMES_H */
