/*
 * evalcfg.h - internals shared by the config, data-set and anchor_eval code
 * of the JSON layer (config*.c, dataset.c, case_eval.c) and the CLI commands
 * that print their results (cmd_anchors.c, cmd_eval.c). Not installed.
 */
#ifndef DETLOSS_EVALCFG_H
#define DETLOSS_EVALCFG_H

#include <cjson/cJSON.h>

#include "detloss/detloss_json.h"
#include "json/jwrite.h"

/* Reads a whole file (malloc'ed, NUL-terminated). DETLOSS_ERR_IO naming the file;
 * DETLOSS_ERR_RANGE when it is larger than max_bytes (limit max_input_bytes). */
detloss_status dl_read_file(const char *path, size_t max_bytes, char **text, size_t *len,
                            detloss_error *err);

/* The effective limits: lim with every 0 field replaced by its default (NULL = defaults). */
detloss_json_limits dl_json_limits(const detloss_json_limits *lim);
/* Anchors the grid g generates for one h x w image: the sum over levels of
 * ceil(h / stride_h) * ceil(w / stride_w) * (anchors per cell), in double (no
 * overflow, no undefined cast). *big (may be NULL) gets the level with the most. */
double dl_grid_anchor_count(const detloss_anchor_config *g, double h, double w, size_t *big);
/* DETLOSS_ERR_RANGE at where when `numbers` output numbers exceed
 * lim->max_output_numbers; what says what would be returned ("a 5 x 7 matrix"). */
detloss_status dl_check_output(const detloss_json_limits *lim, double numbers, const char *where,
                               const char *what, detloss_error *err);
/* DETLOSS_ERR_RANGE at where when an image side exceeds lim->max_image_side. */
detloss_status dl_check_side(const detloss_json_limits *lim, double side, const char *where,
                             detloss_error *err);

/* detloss_eval_check_limits for the points of an FCOS assigner (no-op for other
 * methods): every image's points after resizing are at most lim->max_anchors
 * (DETLOSS_ERR_RANGE at "data.image_hw[i]"). lim: effective limits. */
detloss_status dl_eval_check_point_limits(const detloss_eval_dataset *data,
                                          const detloss_eval_assigner *as,
                                          const detloss_eval_options *o,
                                          const detloss_json_limits *lim, detloss_error *err);

/* Prefixes err->where with "<file>: " (no-op for a NULL or empty file). */
void dl_where_file(detloss_error *err, const char *file);

/* An anchor set read from JSON (see detloss_json.h for the format); owns its memory. */
typedef struct dl_anchor_set {
  detloss_anchor_config grid; /* num_levels > 0 for a grid set */
  float image_size[2];
  float *boxes;
  size_t num_boxes;
  float *shapes;
  size_t num_shapes;
  int from_strides;          /* the grid came from "strides" (else "levels") */
  const char *name, *source; /* into the cJSON tree: copy before deleting it */
  void *mem[64];             /* allocations */
  size_t nmem;
} dl_anchor_set;

/* Reads an anchor set object at JSON path `path`. Unknown keys, in the set
 * and in each level, are errors, and so are keys that the set's form does not
 * use (sizes with base, ...). */
detloss_status dl_anchor_set_read(const cJSON *obj, const char *path, dl_anchor_set *set,
                                  detloss_error *err);
void dl_anchor_set_free(dl_anchor_set *set);

/* Reads a data set (common format or COCO) from a parsed JSON root. Unknown
 * keys are errors in every object (COCO: beyond the documented skipped keys,
 * detloss_json.h). ds is zeroed first; on error everything allocated is freed. */
detloss_status dl_dataset_read(const cJSON *root, const char *path, detloss_dataset *ds,
                               detloss_error *err);
void dl_dataset_clear(detloss_dataset *ds);

/* Writes the fields of an evaluation report into an open JSON object:
 * num_gt, recall, mean_best, anchors_per_gt, positives_per_gt, positives_hist,
 * by_size, counts, levels (with strides when grid != NULL, or the point strides
 * of an FCOS assigner as), worst (with the data set's image ids when image_id
 * != NULL). With an FCOS assigner (as may be NULL) num_anchors is named
 * num_points and num_out_of_range is added. */
void dl_eval_report_json(dlj_buf *b, const detloss_eval_report *r, const detloss_eval_options *o,
                         const detloss_anchor_config *grid, const detloss_eval_assigner *as,
                         const int64_t *image_id);

#endif /* DETLOSS_EVALCFG_H */
