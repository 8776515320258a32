/*
 * case_eval.c - compute op `anchor_eval` (compute-cases.md): how well an
 * anchor set covers a data set, and the JSON form of an evaluation report
 * (shared with `detloss eval --json`).
 *
 * Input: dataset {images: [{width, height, boxes [G][4], iscrowd?}]},
 * optional resize_long_side, one anchor source (anchor_config {strides,
 * sizes, aspect_ratios, convention?, offset?}, anchors [A][4], or
 * anchor_shapes [[w, h], ...]), metric (iou | wh_ratio), iou_thresh (0.5),
 * ratio_thresh (4.0). Extras: resize_min_size (with resize_long_side:
 * torchvision's min/max resize), matcher {high, low, allow_low_quality,
 * low_quality_min_iou, semantics} for the positives (default 0.7 / 0.3),
 * worst (number of worst-covered gts listed, default 20).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"
#include "json/names.h"

static void stats_json(dlj_buf *b, const detloss_eval_stats *s) {
  dlj_kv_int(b, "num_gt", (long long)s->num_gt);
  dlj_kv_num(b, "recall", s->recall);
  dlj_kv_num(b, "mean_best", s->mean_best);
  dlj_kv_num(b, "anchors_per_gt", s->anchors_per_gt);
  dlj_kv_num(b, "positives_per_gt", s->positives_per_gt);
  dlj_kv_int(b, "num_recalled", (long long)s->num_recalled);
  dlj_key(b, "positives_hist");
  dlj_obj_begin(b);
  dlj_kv_int(b, "0", (long long)s->pos_hist[0]);
  dlj_kv_int(b, "1", (long long)s->pos_hist[1]);
  dlj_kv_int(b, "2-4", (long long)s->pos_hist[2]);
  dlj_kv_int(b, "5+", (long long)s->pos_hist[3]);
  dlj_obj_end(b);
}

void dl_eval_report_json(dlj_buf *b, const detloss_eval_report *r, const detloss_eval_options *o,
                         const detloss_anchor_config *grid, const detloss_eval_assigner *as,
                         const int64_t *image_id) {
  const int fcos = as && as->method == DETLOSS_EVAL_METHOD_FCOS;
  /* FCOS has no anchors to measure: best is a positive's centerness, fit a positive */
  dlj_kv_str(b, "metric",
             fcos ? "fcos_positives"
                  : detloss_names_get(DETLOSS_NAMES_EVAL_METRIC, o->metric)->name);
  if (!fcos && o->metric == DETLOSS_EVAL_IOU)
    dlj_kv_num(b, "iou_thresh", (double)o->iou_thresh);
  else if (!fcos)
    dlj_kv_num(b, "ratio_thresh", (double)o->ratio_thresh);
  stats_json(b, &r->all);
  dlj_key(b, "by_size");
  dlj_obj_begin(b);
  for (int s = 0; s < 3; s++) {
    dlj_key(b, detloss_eval_size_name((detloss_eval_size)s));
    dlj_obj_begin(b);
    stats_json(b, &r->by_size[s]);
    dlj_obj_end(b);
  }
  dlj_obj_end(b);
  dlj_kv_int(b, "num_images", (long long)r->num_images);
  dlj_kv_int(b, "num_images_empty", (long long)r->num_images_empty);
  dlj_kv_int(b, "num_boxes", (long long)r->num_boxes);
  dlj_kv_int(b, "num_crowd", (long long)r->num_crowd);
  dlj_kv_int(b, "num_clipped", (long long)r->num_clipped);
  dlj_kv_int(b, "num_degenerate", (long long)r->num_degenerate);
  dlj_kv_int(b, fcos ? "num_points" : "num_anchors", (long long)r->num_anchors);
  if (fcos) dlj_kv_int(b, "num_out_of_range", (long long)r->num_out_of_range);
  dlj_key(b, "levels");
  dlj_arr_begin(b);
  size_t tot_pos = 0;
  for (size_t l = 0; l < r->num_levels; l++) tot_pos += r->level_pos[l];
  for (size_t l = 0; l < r->num_levels; l++) {
    dlj_obj_begin(b);
    dlj_kv_int(b, "level", (long long)l);
    if (fcos && l < as->num_point_levels)
      dlj_kv_num(b, "stride", (double)as->point_strides[l]);
    else if (!fcos && grid && l < grid->num_levels)
      dlj_kv_num(b, "stride", (double)grid->levels[l].stride_w);
    dlj_kv_int(b, "num_best", (long long)r->level_best[l]);
    dlj_kv_num(b, "best_share",
               r->all.num_gt ? (double)r->level_best[l] / (double)r->all.num_gt : 0.0);
    dlj_kv_int(b, "num_pos", (long long)r->level_pos[l]);
    dlj_kv_num(b, "pos_share", tot_pos ? (double)r->level_pos[l] / (double)tot_pos : 0.0);
    dlj_obj_end(b);
  }
  dlj_arr_end(b);
  dlj_key(b, "worst");
  dlj_arr_begin(b);
  for (size_t i = 0; i < r->num_worst; i++) {
    const detloss_eval_worst *w = &r->worst[i];
    dlj_obj_begin(b);
    dlj_kv_int(b, "image", (long long)w->image);
    if (image_id) dlj_kv_int(b, "image_id", (long long)image_id[w->image]);
    dlj_kv_int(b, "box", (long long)w->box);
    dlj_kv_num(b, "w", (double)w->w);
    dlj_kv_num(b, "h", (double)w->h);
    dlj_kv_num(b, "aspect", w->w > 0.0f ? (double)w->h / (double)w->w : 0.0);
    dlj_kv_num(b, "best", (double)w->best);
    dlj_obj_end(b);
  }
  dlj_arr_end(b);
}

static detloss_status read_matcher(const cJSON *c, const char *path, detloss_match_options *m,
                                   detloss_error *err) {
  const cJSON *mo = dlj_field(c, "matcher");
  if (!mo) return DETLOSS_OK;
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "matcher");
  DL_RETURN_ERROR_IF(!cJSON_IsObject(mo), err, DETLOSS_ERR_TYPE, where, "expected an object");
  static const char *const keys[] = {"high",      "low", "allow_low_quality", "low_quality_min_iou",
                                     "semantics", NULL};
  DL_FORWARD_IF_ERROR(dlj_check_keys(mo, where, keys, err));
  static const dlj_match_keys mkeys =
      {"high", "low", "allow_low_quality", "low_quality_min_iou", "semantics", NULL, NULL, NULL};
  return dlj_match_options(mo, where, &mkeys, m, err);
}

/* Library errors name their own argument: the case's fields they came from. */
static const dlj_arg LIB_ARGS[] = {
    {"high", "matcher.high", NULL, 0, 1},
    {"low", "matcher.low", NULL, 0, 1},
    {"low_quality_min_iou", "matcher.low_quality_min_iou", NULL, 0, 1},
    {"resize_max_size", "resize_long_side", NULL, 0, 1},
    {"resize_min_size", "resize_min_size", NULL, 0, 1},
    {"num_worst", "worst", NULL, 0, 1},
    {"data.num_images", "dataset.images", NULL, 0, 1},
    {"data.boxes", "dataset.images", NULL, 0, 1},
    {"src.shapes", "anchor_shapes", NULL, 0, 1},
    {"src", "anchor_config", NULL, 0, 1},
    {"grid.levels", "anchor_config.strides", NULL, 0, 1},
    {"data.image_hw", "dataset.images", NULL, 0, 0},
    {"levels", "anchor_config.levels", NULL, 0, 0},
};

detloss_status dl_case_anchor_eval(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                   const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  detloss_eval_options o = detloss_eval_options_default();
  o.num_threads = ctx->num_threads;
  char where[DETLOSS_WHERE_MAX];
  const char *metric = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(c, "metric", path, 0, &metric, err));
  if (metric) {
    int k = dlj_name_index(DETLOSS_NAMES_EVAL_METRIC, metric);
    if (k < 0) {
      dlj_join(where, sizeof where, path, "metric");
      return dlj_unknown_name(err, where, DETLOSS_NAMES_EVAL_METRIC, metric, 0);
    }
    o.metric = (detloss_eval_metric)k;
  }
  DL_FORWARD_IF_ERROR(dlj_float(c, "iou_thresh", path, 0, &o.iou_thresh, err));
  DL_FORWARD_IF_ERROR(dlj_float(c, "ratio_thresh", path, 0, &o.ratio_thresh, err));
  DL_FORWARD_IF_ERROR(dlj_float(c, "resize_long_side", path, 0, &o.resize_max_size, err));
  DL_FORWARD_IF_ERROR(dlj_float(c, "resize_min_size", path, 0, &o.resize_min_size, err));
  long long worst = (long long)o.num_worst;
  DL_FORWARD_IF_ERROR(dlj_int(c, "worst", path, 0, 0, DETLOSS_EVAL_MAX_WORST, &worst, err));
  o.num_worst = (size_t)worst;
  DL_FORWARD_IF_ERROR(read_matcher(c, path, &o.match, err));

  const cJSON *dsj = dlj_field(c, "dataset");
  dlj_join(where, sizeof where, path, "dataset");
  DL_RETURN_ERROR_IF(!dsj, err, DETLOSS_ERR_MISSING, where,
                     "missing (expected {\"images\": [{\"width\", \"height\", \"boxes\"}]})");
  detloss_dataset ds;
  DL_FORWARD_IF_ERROR(dl_dataset_read(dsj, where, &ds, err));

  dl_anchor_set set;
  memset(&set, 0, sizeof set);
  detloss_eval_anchors src;
  memset(&src, 0, sizeof src);
  detloss_status st = DETLOSS_OK;
  const cJSON *ac = dlj_field(c, "anchor_config"), *aa = dlj_field(c, "anchors"),
              *as = dlj_field(c, "anchor_shapes");
  int n = (ac != NULL) + (aa != NULL) + (as != NULL);
  if (n != 1) {
    dlj_join(where, sizeof where, path, n ? "anchors" : "anchor_config");
    st = dl_fail(err, n ? DETLOSS_ERR_SHAPE : DETLOSS_ERR_MISSING, where,
                 n ? "give only one of anchor_config, anchors, anchor_shapes"
                   : "missing (expected one of anchor_config, anchors, anchor_shapes)");
  } else if (ac) {
    dlj_join(where, sizeof where, path, "anchor_config");
    if (!cJSON_IsObject(ac)) {
      st = dl_fail(err, DETLOSS_ERR_TYPE, where,
                   "expected {\"strides\", \"sizes\", \"aspect_ratios\"}");
    } else {
      st = dl_anchor_set_read(ac, where, &set, err);
      if (st == DETLOSS_OK && set.grid.num_levels == 0)
        st = dl_fail(err, DETLOSS_ERR_MISSING, where,
                     "expected strides, sizes and aspect_ratios (or levels)");
      src.grid = &set.grid;
    }
  } else if (aa) {
    st = dlj_boxes(c, "anchors", path, 1, &set.boxes, &set.num_boxes, err);
    if (st == DETLOSS_OK) set.mem[set.nmem++] = set.boxes;
    if (st == DETLOSS_OK && set.num_boxes == 0) {
      dlj_join(where, sizeof where, path, "anchors");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected at least one anchor");
    }
    src.anchors = set.boxes;
    src.num_anchors = set.num_boxes;
  } else {
    st = dlj_rows(c, "anchor_shapes", path, 1, 2, &set.shapes, &set.num_shapes, err);
    if (st == DETLOSS_OK) set.mem[set.nmem++] = set.shapes;
    if (st == DETLOSS_OK && set.num_shapes == 0) {
      dlj_join(where, sizeof where, path, "anchor_shapes");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected at least one [w, h]");
    }
    src.shapes = set.shapes;
    src.num_shapes = set.num_shapes;
  }
  if (st == DETLOSS_OK && src.shapes && o.metric != DETLOSS_EVAL_WH_RATIO) {
    dlj_join(where, sizeof where, path, "metric");
    st = dl_fail(err, DETLOSS_ERR_RANGE, where,
                 "anchor_shapes have no positions: they need \"metric\": \"wh_ratio\"");
  }
  detloss_eval_report *rep = NULL;
  if (st == DETLOSS_OK) {
    rep = malloc(sizeof *rep);
    if (!rep) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  if (st == DETLOSS_OK) {
    detloss_eval_dataset view = detloss_dataset_view(&ds);
    st = detloss_eval_check_limits(&view, &src, &o, &ctx->limits, err);
    if (st == DETLOSS_OK) st = detloss_anchor_eval(&view, &src, NULL, rep, &o, err);
    if (st != DETLOSS_OK) {
      if (strncmp(err ? err->where : "", "data.boxes[", 11) == 0) {
        /* "data.boxes[r]" -> "dataset.images[i].boxes[j]" */
        size_t r = (size_t)strtoull(err->where + 11, NULL, 10), i = 0;
        while (i + 1 < ds.num_images && ds.box_start[i + 1] <= r) i++;
        dlj_path p = *at;
        dlj_path_key(&p, "dataset.images");
        dlj_path_index(&p, i);
        dlj_path_key(&p, "boxes");
        dlj_path_index(&p, r - ds.box_start[i]);
        memcpy(err->where, p.buf, sizeof p.buf);
      } else {
        dlj_locate(err, at, LIB_ARGS, sizeof LIB_ARGS / sizeof LIB_ARGS[0]);
      }
    }
  }
  if (st == DETLOSS_OK) dl_eval_report_json(out, rep, &o, src.grid, NULL, NULL);
  free(rep);
  dl_anchor_set_free(&set);
  dl_dataset_clear(&ds);
  return st;
}
