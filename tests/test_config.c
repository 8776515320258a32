/*
 * test_config.c - configs (detloss_config_*) and data sets (detloss_dataset_*):
 * the presets under configs/, defaults from the descriptor tables, every error
 * class with file + JSON path + expectation, the anchor-set forms, and the two
 * data-set formats (common xyxy and COCO instances).
 */
#include "detloss/detloss.h"
#include "detloss/detloss_json.h"
#include "testutil.h"

#define SRC_DIR DETLOSS_FIXTURE_DIR "/../.."

static const char *const SEARCH[] = {SRC_DIR, NULL};

static detloss_config *load_preset(const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/configs/%s", SRC_DIR, name);
  detloss_config *c = NULL;
  detloss_error err;
  detloss_status st = detloss_config_load(path, SEARCH, &c, &err);
  if (st) print_error("%s: %s\n", err.where, err.msg);
  assert_int_equal(st, DETLOSS_OK);
  return c;
}

/* Parses text as a config named "t.json" in the fixture directory (so relative
 * names resolve against tests/fixtures/anchor_eval and the source tree). */
static detloss_status parse(const char *text, detloss_config **c, detloss_error *err) {
  return detloss_config_parse(text, strlen(text), DL_FIXTURE("anchor_eval/t.json"), SEARCH, c, err);
}

static void expect_config_error(const char *text, detloss_status want, const char *where_suffix,
                                const char *msg_part) {
  detloss_config *c = (detloss_config *)0x1;
  detloss_error err;
  memset(&err, 0, sizeof err);
  assert_int_equal(parse(text, &c, &err), want);
  assert_ptr_equal(c, (detloss_config *)0x1); /* untouched */
  /* where = "<file>: <json path>" */
  const char *w = strstr(err.where, "t.json: ");
  if (!w || strcmp(w + 8, where_suffix) != 0) {
    print_error("where '%s', expected '...t.json: %s'\n", err.where, where_suffix);
    fail();
  }
  if (!strstr(err.msg, msg_part)) {
    print_error("msg '%s' lacks '%s'\n", err.msg, msg_part);
    fail();
  }
}

static void torchvision_rpn_preset_has_the_published_settings(void **state) {
  (void)state;
  detloss_config *c = load_preset("torchvision_fasterrcnn_fpn_rpn.json");
  assert_int_equal(c->head, DETLOSS_CONFIG_HEAD_RPN);
  assert_non_null(c->source);
  assert_int_equal(c->grid.num_levels, 5);
  for (size_t l = 0; l < 5; l++) {
    dl_assert_close1(c->grid.levels[l].stride_h, 4 << l, 0, 0);
    dl_assert_close1(c->grid.levels[l].sizes[0], 32 << l, 0, 0);
    assert_int_equal(c->grid.levels[l].num_ratios, 3);
  }
  dl_assert_close1(c->eval.match.high, 0.7, 1e-7, 0);
  dl_assert_close1(c->eval.match.low, 0.3, 1e-7, 0);
  assert_int_equal(c->eval.match.allow_low_quality, 1);
  dl_assert_close1(c->eval.resize_min_size, 800, 0, 0);
  dl_assert_close1(c->eval.resize_max_size, 1333, 0, 0);
  assert_int_equal(c->rpn.sample.batch_size_per_image, 256);
  dl_assert_close1(c->rpn.sample.positive_fraction, 0.5, 0, 0);
  dl_assert_close1(c->rpn.smooth_l1_beta, 1.0 / 9.0, 1e-7, 0);
  assert_int_equal(c->rpn.convention, DETLOSS_RPN_TORCHVISION);
  assert_non_null(c->dataset_path);
  assert_non_null(strstr(c->dataset_path, "data/coco2017_subset.json"));
  detloss_config_free(c);
}

static void other_presets_load_with_their_heads_and_metrics(void **state) {
  (void)state;
  detloss_config *c = load_preset("torchvision_retinanet_r50_fpn.json");
  assert_int_equal(c->head, DETLOSS_CONFIG_HEAD_RETINANET);
  dl_assert_close1(c->eval.match.high, 0.5, 0, 0);
  dl_assert_close1(c->eval.match.low, 0.4, 1e-7, 0);
  dl_assert_close1(c->retina.alpha, 0.25, 0, 0);
  assert_int_equal(c->retina.box_loss, DETLOSS_HEAD_BOX_L1);
  assert_int_equal(c->grid.levels[0].num_sizes, 3);
  dl_assert_close1(c->grid.levels[0].sizes[2], 50, 0, 0); /* int(32 * 2^(2/3)) */
  detloss_config_free(c);

  c = load_preset("detectron2_rpn.json");
  assert_int_equal(c->grid.convention, DETLOSS_ANCHORS_DETECTRON2);
  assert_int_equal(c->rpn.convention, DETLOSS_RPN_DETECTRON2);
  dl_assert_close1(c->rpn.smooth_l1_beta, 0, 0, 0);
  assert_int_equal(c->eval.match.semantics, DETLOSS_MATCH_DETECTRON2);
  detloss_config_free(c);

  c = load_preset("detectron2_retinanet.json");
  assert_int_equal(c->retina.normalizer, DETLOSS_RETINA_NORM_DETECTRON2_EMA);
  dl_assert_close1(c->retina.smooth_l1_beta, 0.1, 1e-7, 0);
  dl_assert_close1(c->grid.levels[0].sizes[1], 32.0 * pow(2.0, 1.0 / 3.0), 1e-7, 0);
  detloss_config_free(c);

  c = load_preset("py_faster_rcnn_vgg16_rpn.json");
  assert_int_equal(c->grid.num_levels, 1);
  assert_int_equal(c->grid.levels[0].num_base, 9);
  dl_assert_close1(c->eval.match.allowed_border, 0, 0, 0);
  assert_int_equal(c->rpn.convention, DETLOSS_RPN_PY_FASTER_RCNN);
  dl_assert_close1(c->eval.resize_min_size, 600, 0, 0);
  detloss_config_free(c);

  c = load_preset("yolov5_autoanchor.json");
  assert_int_equal(c->head, DETLOSS_CONFIG_HEAD_NONE);
  assert_int_equal(c->eval.metric, DETLOSS_EVAL_WH_RATIO);
  dl_assert_close1(c->eval.ratio_thresh, 4.0, 0, 0);
  dl_assert_close1(c->eval.resize_max_size, 640, 0, 0);
  assert_int_equal(c->grid.num_levels, 3);
  assert_int_equal(c->grid.levels[2].num_shapes, 3);
  dl_assert_close1(c->grid.levels[2].shapes[4], 373, 0, 0);
  detloss_config_free(c);
}

/* A config with only "anchors" gets the defaults of the tables (the _default()
 * values of each options struct): head rpn, torchvision RPN matcher. */
static void minimal_config_gets_documented_defaults(void **state) {
  (void)state;
  detloss_config *c = NULL;
  assert_int_equal(parse("{\"anchors\": {\"boxes\": [[0, 0, 10, 10]]}}", &c, NULL), DETLOSS_OK);
  detloss_eval_options e = detloss_eval_options_default();
  detloss_rpn_options r = detloss_rpn_options_default();
  assert_int_equal(c->head, DETLOSS_CONFIG_HEAD_RPN);
  assert_memory_equal(&c->eval.match, &r.match, sizeof r.match);
  dl_assert_close1(c->eval.iou_thresh, e.iou_thresh, 0, 0);
  assert_int_equal(c->eval.num_worst, e.num_worst);
  assert_int_equal(c->eval.count_positives, 1);
  assert_null(c->dataset_path);
  assert_int_equal(c->num_anchors, 1);
  detloss_eval_anchors src = detloss_config_eval_anchors(c);
  assert_ptr_equal(src.anchors, c->anchors);
  assert_null(src.grid);
  detloss_config_free(c);
}

static void describe_lists_every_key_with_defaults(void **state) {
  (void)state;
  char *d = detloss_config_describe();
  assert_non_null(d);
  const char *must[] = {"matcher:",
                        "high",
                        "default 0.7 (rpn), 0.5 (retinanet)",
                        "sampler:",
                        "batch_size_per_image",
                        "box_coder:",
                        "weights",
                        "eval:",
                        "iou_thresh",
                        "ratio_thresh",
                        "resize:",
                        "min_size",
                        "loss (head retinanet):",
                        "gamma",
                        "semantics",
                        "torchvision|detectron2|mmdet"};
  for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
    if (!strstr(d, must[i])) {
      print_error("describe lacks '%s'\n", must[i]);
      fail();
    }
  }
  detloss_free(d);
}

/* One spelling per name (src/json/names.c): the RPN convention is
 * "py_faster_rcnn" as in compute cases and Python; "py-faster-rcnn", the
 * preset's spelling before, is still read. The retina normalizer takes
 * "caller" with caller_normalizer (> 0), as the head options do. */
static void config_names_are_those_of_the_compute_cases(void **state) {
  (void)state;
  const char *A = "\"anchors\": \"torchvision_fpn.json\"";
  const char *conv[] = {"py_faster_rcnn", "py-faster-rcnn"};
  char t[512];
  for (int k = 0; k < 2; k++) {
    detloss_config *c = NULL;
    snprintf(t, sizeof t, "{%s, \"loss\": {\"convention\": \"%s\"}}", A, conv[k]);
    assert_int_equal(parse(t, &c, NULL), DETLOSS_OK);
    assert_int_equal(c->rpn.convention, DETLOSS_RPN_PY_FASTER_RCNN);
    detloss_config_free(c);
  }
  detloss_config *c = NULL;
  snprintf(t, sizeof t,
           "{%s, \"head\": \"retinanet\", \"loss\": {\"normalizer\": \"caller\", "
           "\"caller_normalizer\": 64}}",
           A);
  assert_int_equal(parse(t, &c, NULL), DETLOSS_OK);
  assert_int_equal(c->retina.normalizer, DETLOSS_RETINA_NORM_CALLER);
  assert_true(c->retina.caller_normalizer == 64.0);
  detloss_config_free(c);
  snprintf(t, sizeof t, "{%s, \"head\": \"retinanet\", \"loss\": {\"caller_normalizer\": 0}}", A);
  expect_config_error(t, DETLOSS_ERR_RANGE, "loss.caller_normalizer", "got 0");
  char *d = detloss_config_describe();
  assert_non_null(strstr(d, "torchvision|detectron2_ema|caller"));
  assert_non_null(strstr(d, "torchvision|detectron2|py_faster_rcnn"));
  assert_non_null(strstr(d, "caller_normalizer"));
  detloss_free(d);
}

static void anchor_set_forms_are_read(void **state) {
  (void)state;
  detloss_config *c = NULL;
  /* compute-cases.md anchor_config form, one ratio list shared by all levels */
  assert_int_equal(parse("{\"anchors\": {\"strides\": [8, 16], \"sizes\": [[32, 40], [64]], "
                         "\"aspect_ratios\": [0.5, 1, 2]}}",
                         &c, NULL),
                   DETLOSS_OK);
  assert_int_equal(c->grid.num_levels, 2);
  assert_int_equal(c->grid.levels[0].num_sizes, 2);
  assert_int_equal(c->grid.levels[1].num_ratios, 3);
  dl_assert_close1(c->grid.levels[1].stride_w, 16, 0, 0);
  detloss_config_free(c);
  /* level with [stride_h, stride_w] and base anchors */
  assert_int_equal(parse("{\"anchors\": {\"offset\": 0.5, \"levels\": [{\"stride\": [8, 4], "
                         "\"base\": [[-4, -4, 4, 4]]}]}}",
                         &c, NULL),
                   DETLOSS_OK);
  dl_assert_close1(c->grid.levels[0].stride_h, 8, 0, 0);
  dl_assert_close1(c->grid.levels[0].stride_w, 4, 0, 0);
  dl_assert_close1(c->grid.offset, 0.5, 0, 0);
  assert_int_equal(c->grid.levels[0].num_base, 1);
  detloss_config_free(c);
  /* shapes need the wh_ratio metric */
  assert_int_equal(parse("{\"anchors\": {\"shapes\": [[10, 13], [16, 30]]}, \"head\": \"none\", "
                         "\"eval\": {\"metric\": \"wh_ratio\"}}",
                         &c, NULL),
                   DETLOSS_OK);
  assert_int_equal(c->num_shapes, 2);
  detloss_config_free(c);
  expect_config_error("{\"anchors\": {\"shapes\": [[10, 13]]}}", DETLOSS_ERR_RANGE, "eval.metric",
                      "wh_ratio");
  /* a file of anchors/ by name (found through the source tree) */
  assert_int_equal(parse("{\"anchors\": \"yolov3.json\", \"eval\": {\"metric\": \"wh_ratio\"}}", &c,
                         NULL),
                   DETLOSS_OK);
  assert_non_null(strstr(c->anchors_path, "anchors/yolov3.json"));
  assert_non_null(c->anchors_name);
  detloss_config_free(c);
}

/* Errors: file, JSON path, expectation. */

static void config_errors_name_file_path_and_expectation(void **state) {
  (void)state;
  const char *A = "\"anchors\": \"torchvision_fpn.json\"";
  char t[512];
  snprintf(t, sizeof t, "{%s, \"matcher\": {\"hihg\": 0.7}}", A);
  expect_config_error(t, DETLOSS_ERR_UNKNOWN, "matcher.hihg", "did you mean 'high'?");
  snprintf(t, sizeof t, "{%s, \"matcher\": {\"semantics\": \"torchvison\"}}", A);
  expect_config_error(t, DETLOSS_ERR_UNKNOWN, "matcher.semantics", "did you mean 'torchvision'?");
  snprintf(t, sizeof t, "{%s, \"eval\": {\"iou_thresh\": \"0.5\"}}", A);
  expect_config_error(t, DETLOSS_ERR_TYPE, "eval.iou_thresh", "expected a number in (0, 1]");
  snprintf(t, sizeof t, "{%s, \"eval\": {\"iou_thresh\": 1.5}}", A);
  expect_config_error(t, DETLOSS_ERR_RANGE, "eval.iou_thresh", "got 1.5");
  snprintf(t, sizeof t, "{%s, \"matcher\": {\"low\": 1e999}}", A);
  expect_config_error(t, DETLOSS_ERR_NONFINITE, "matcher.low", "finite");
  snprintf(t, sizeof t, "{%s, \"matcher\": {\"allow_low_quality\": 1}}", A);
  expect_config_error(t, DETLOSS_ERR_TYPE, "matcher.allow_low_quality", "true or false");
  snprintf(t, sizeof t, "{%s, \"box_coder\": {\"weights\": [1, 1, 1]}}", A);
  expect_config_error(t, DETLOSS_ERR_SHAPE, "box_coder.weights", "4 numbers");
  snprintf(t, sizeof t, "{%s, \"box_coder\": {\"weights\": [1, 1, 0, 1]}}", A);
  expect_config_error(t, DETLOSS_ERR_RANGE, "box_coder.weights[2]", "got 0");
  snprintf(t, sizeof t, "{%s, \"head\": \"none\", \"sampler\": {}}", A);
  expect_config_error(t, DETLOSS_ERR_UNKNOWN, "sampler", "head \"rpn\"");
  snprintf(t, sizeof t, "{%s, \"head\": \"retinanet\", \"loss\": {\"convention\": \"x\"}}", A);
  expect_config_error(t, DETLOSS_ERR_UNKNOWN, "loss.convention", "unknown key");
  snprintf(t, sizeof t, "{%s, \"dataset\": \"missing_data.json\"}", A);
  expect_config_error(t, DETLOSS_ERR_NOT_FOUND, "dataset", "not found");
  expect_config_error("{\"anchors\": \"missing_anchors.json\"}", DETLOSS_ERR_NOT_FOUND, "anchors",
                      "not found");
  expect_config_error("{}", DETLOSS_ERR_MISSING, "anchors", "missing");
  expect_config_error(
      "{\"anchors\": {\"levels\": [{\"stride\": 8, \"sizes\": [32], "
      "\"aspect_ratios\": [0]}]}}",
      DETLOSS_ERR_RANGE, "anchors.levels[0].aspect_ratios[0]", "> 0");
  expect_config_error(
      "{\"anchors\": {\"levels\": [{\"stride\": 8, \"sizes\": [32], "
      "\"aspect_ratio\": [1]}]}}",
      DETLOSS_ERR_UNKNOWN, "anchors.levels[0].aspect_ratio", "did you mean 'aspect_ratios'?");
  expect_config_error("{\"anchors\": {\"boxes\": [[0, 0, 1, 1]], \"shapes\": [[1, 1]]}}",
                      DETLOSS_ERR_SHAPE, "anchors", "exactly one");
}

static void syntax_errors_report_line_and_column(void **state) {
  (void)state;
  detloss_config *c = NULL;
  detloss_error err;
  /* line 2: `  "matcher": {"high": 0.7 "low": 0.3}` - the second key starts at column 27 */
  const char *t =
      "{\"anchors\": \"torchvision_fpn.json\",\n"
      "  \"matcher\": {\"high\": 0.7 \"low\": 0.3}}\n";
  assert_int_equal(parse(t, &c, &err), DETLOSS_ERR_PARSE);
  assert_non_null(strstr(err.where, "t.json: line 2, column 27"));
  assert_int_equal(parse("{\"anchors\": [", &c, &err), DETLOSS_ERR_PARSE);
  assert_non_null(strstr(err.msg, "end of input"));
  assert_int_equal(parse("{} x", &c, &err), DETLOSS_ERR_PARSE);
  assert_non_null(strstr(err.where, "line 1, column 4"));
}

/* An error inside a referenced anchors file names that file, not the config. */
static void errors_in_an_anchor_file_name_that_file(void **state) {
  (void)state;
  detloss_config *c = NULL;
  detloss_error err;
  assert_int_equal(parse("{\"anchors\": \"../anchor_eval/bad_level.json\"}", &c, &err),
                   DETLOSS_ERR_UNKNOWN);
  /* bad_level.json is a config, not an anchor set: its key "anchors" is unknown there */
  assert_non_null(strstr(err.where, "bad_level.json: anchors"));
}

static detloss_status parse_ds(const char *text, detloss_dataset **d, detloss_error *err) {
  return detloss_dataset_parse(text, strlen(text), "d.json", d, err);
}

static void common_format_is_read_with_crowd_flags(void **state) {
  (void)state;
  detloss_dataset *d = NULL;
  const char *t =
      "{\"name\": \"x\", \"format\": \"xyxy_pixels\", \"images\": ["
      "{\"id\": 5, \"width\": 640, \"height\": 480, \"boxes\": [[1, 2, 3, 4], [5, 6, "
      "7.5, 8.25]], \"iscrowd\": [0, 1]},"
      "{\"width\": 10, \"height\": 20, \"boxes\": []}]}";
  assert_int_equal(parse_ds(t, &d, NULL), DETLOSS_OK);
  assert_int_equal(d->num_images, 2);
  assert_int_equal(d->num_boxes, 2);
  dl_assert_close1(d->image_hw[0], 480, 0, 0);
  dl_assert_close1(d->image_hw[1], 640, 0, 0);
  dl_assert_close1(d->image_hw[2], 20, 0, 0);
  assert_int_equal(d->box_start[1], 2);
  assert_int_equal(d->box_start[2], 2);
  dl_assert_close1(d->boxes[7], 8.25, 0, 0);
  assert_int_equal(d->is_crowd[0], 0);
  assert_int_equal(d->is_crowd[1], 1);
  assert_int_equal(d->image_id[0], 5);
  assert_int_equal(d->image_id[1], 1); /* no id: the index */
  assert_string_equal(d->name, "x");
  detloss_dataset_free(d);
}

/* COCO: bbox [x, y, w, h] -> [x, y, x+w, y+h]; boxes grouped by image in the order of
 * "images", annotations in file order; iscrowd copied. */
static void coco_instances_are_converted(void **state) {
  (void)state;
  detloss_dataset *d = NULL;
  detloss_error err;
  assert_int_equal(detloss_dataset_load(DL_FIXTURE("anchor_eval/instances_tiny.json"), &d, &err),
                   DETLOSS_OK);
  assert_int_equal(d->is_coco, 1);
  assert_int_equal(d->num_images, 2);
  assert_int_equal(d->image_id[0], 7);
  assert_int_equal(d->image_id[1], 3);
  assert_int_equal(d->box_start[1], 3);
  assert_int_equal(d->box_start[2], 3);
  const double want[12] = {8, 8, 24, 24, 0, 0, 64, 64, 0, 0, 8, 8};
  dl_assert_close(d->boxes, want, 12, 0, 0);
  assert_int_equal(d->is_crowd[1], 1);
  assert_int_equal(d->is_crowd[0] + d->is_crowd[2], 0);
  detloss_dataset_free(d);
}

static void expect_ds_error(const char *text, detloss_status want, const char *where) {
  detloss_dataset *d = (detloss_dataset *)0x1;
  detloss_error err;
  memset(&err, 0, sizeof err);
  assert_int_equal(parse_ds(text, &d, &err), want);
  assert_ptr_equal(d, (detloss_dataset *)0x1);
  assert_string_equal(err.where, where);
}

static void data_set_errors_name_file_and_path(void **state) {
  (void)state;
  expect_ds_error("{\"images\": []}", DETLOSS_ERR_SHAPE, "d.json: images");
  expect_ds_error("{\"imgs\": []}", DETLOSS_ERR_MISSING, "d.json: images");
  expect_ds_error("{\"images\": [{\"width\": 10, \"height\": 10, \"boxes\": [[1, 2, 3]]}]}",
                  DETLOSS_ERR_SHAPE, "d.json: images[0].boxes[0]");
  expect_ds_error("{\"images\": [{\"width\": 10, \"height\": 10, \"boxes\": [[1, 2, 3, 1e999]]}]}",
                  DETLOSS_ERR_NONFINITE, "d.json: images[0].boxes[0][3]");
  expect_ds_error("{\"images\": [{\"width\": 10, \"boxes\": []}]}", DETLOSS_ERR_MISSING,
                  "d.json: images[0].height");
  expect_ds_error("{\"images\": [{\"width\": -1, \"height\": 10, \"boxes\": []}]}",
                  DETLOSS_ERR_RANGE, "d.json: images[0].width");
  expect_ds_error(
      "{\"images\": [{\"width\": 9, \"height\": 10, \"boxes\": [[1, 2, 3, 4]], "
      "\"iscrowd\": [0, 0]}]}",
      DETLOSS_ERR_SHAPE, "d.json: images[0].iscrowd");
  expect_ds_error(
      "{\"format\": \"xywh\", \"images\": [{\"width\": 9, \"height\": 10, "
      "\"boxes\": []}]}",
      DETLOSS_ERR_UNKNOWN, "d.json: format");
  expect_ds_error(
      "{\"images\": [{\"id\": 1, \"width\": 9, \"height\": 10}], \"annotations\": "
      "[{\"image_id\": 2, \"bbox\": [0, 0, 1, 1]}]}",
      DETLOSS_ERR_RANGE, "d.json: annotations[0].image_id");
  expect_ds_error(
      "{\"images\": [{\"id\": 1, \"width\": 9, \"height\": 10}], \"annotations\": "
      "[{\"image_id\": 1, \"bbox\": [0, 0, 1]}]}",
      DETLOSS_ERR_SHAPE, "d.json: annotations[0].bbox");
  expect_ds_error("{\"images\": [", DETLOSS_ERR_PARSE, "d.json: line 1, column 13");
  detloss_dataset *d;
  detloss_error err;
  assert_int_equal(detloss_dataset_load("/nonexistent/d.json", &d, &err), DETLOSS_ERR_NOT_FOUND);
  assert_string_equal(err.where, "/nonexistent/d.json");
}

/* Every object of a config rejects unknown keys, naming file and path, and keys that the
 * anchor set's form does not use are errors too (they would be silently ignored). */
static void unknown_keys_in_every_config_object_are_errors(void **state) {
  (void)state;
  const char *A = "\"anchors\": \"torchvision_fpn.json\"";
  const detloss_status U = DETLOSS_ERR_UNKNOWN;
  char t[512];
  snprintf(t, sizeof t, "{%s, \"nmae\": \"x\"}", A);
  expect_config_error(t, U, "nmae", "unknown key (did you mean 'name'?)");
  static const char *const objects[][3] = {
      /* object, bad key, suggestion */
      {"resize", "max_sise", "max_size"},  {"eval", "metrc", "metric"},
      {"matcher", "lowe", "low"},          {"sampler", "seeed", "seed"},
      {"box_coder", "weigths", "weights"}, {"loss", "smooth_l1_bta", "smooth_l1_beta"},
  };
  for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++) {
    char where[64], msg[96];
    snprintf(t, sizeof t, "{%s, \"%s\": {\"%s\": 1}}", A, objects[i][0], objects[i][1]);
    snprintf(where, sizeof where, "%s.%s", objects[i][0], objects[i][1]);
    snprintf(msg, sizeof msg, "unknown key (did you mean '%s'?)", objects[i][2]);
    expect_config_error(t, U, where, msg);
  }
  expect_config_error(
      "{\"anchors\": {\"strides\": [8], \"sizes\": [[32]], \"aspect_ratios\": [1],"
      " \"offest\": 0.5}}",
      U, "anchors.offest", "unknown key (did you mean 'offset'?)");
  expect_config_error(
      "{\"anchors\": {\"levels\": [{\"stride\": 8, \"base\": [[0, 0, 8, 8]], "
      "\"sizes\": [32]}]}}",
      U, "anchors.levels[0].sizes", "not used with base");
  expect_config_error(
      "{\"anchors\": {\"levels\": [{\"stride\": 8, \"shapes\": [[8, 8]], "
      "\"aspect_ratios\": [1]}]}}",
      U, "anchors.levels[0].aspect_ratios", "not used with shapes");
  expect_config_error("{\"anchors\": {\"boxes\": [[0, 0, 1, 1]], \"sizes\": [[32]]}}", U,
                      "anchors.sizes", "not used without strides");
  expect_config_error(
      "{\"anchors\": {\"levels\": [{\"stride\": 8, \"sizes\": [32], "
      "\"aspect_ratios\": [1]}], \"aspect_ratios\": [[1]]}}",
      U, "anchors.aspect_ratios", "not used without strides");
  /* mixed array: a shared aspect_ratios list that turns into lists */
  expect_config_error(
      "{\"anchors\": {\"strides\": [8, 16], \"sizes\": [[32], [64]], "
      "\"aspect_ratios\": [1, [2]]}}",
      DETLOSS_ERR_TYPE, "anchors.aspect_ratios[1]", "expected a number > 0");
  /* duplicate keys name file and path; bad text in a config is a syntax error */
  snprintf(t, sizeof t, "{%s, \"matcher\": {\"high\": 0.7, \"high\": 0.5}}", A);
  expect_config_error(t, DETLOSS_ERR_PARSE, "matcher.high", "duplicate key");
  detloss_config *c = NULL;
  detloss_error err;
  snprintf(t, sizeof t, "{%s, \"name\": \"\\udc00\"}", A);
  assert_int_equal(parse(t, &c, &err), DETLOSS_ERR_PARSE);
  /* `{"anchors": "torchvision_fpn.json", "name": "` is 45 characters: the escape is column 46 */
  assert_non_null(strstr(err.where, "t.json: line 1, column 46"));
  assert_string_equal(err.msg,
                      "JSON syntax error: unpaired UTF-16 surrogate (a low surrogate first)");
}

/* The common format is fully strict; COCO files may carry the standard COCO keys that
 * detloss skips (detloss_json.h lists them), and nothing else. */
static void data_set_keys_are_checked_with_a_coco_allow_list(void **state) {
  (void)state;
  const detloss_status U = DETLOSS_ERR_UNKNOWN;
  expect_ds_error("{\"images\": [{\"width\": 9, \"height\": 10, \"boxes\": []}], \"info\": {}}", U,
                  "d.json: info");
  expect_ds_error("{\"images\": [{\"width\": 9, \"height\": 10, \"boxes\": [], \"box\": []}]}", U,
                  "d.json: images[0].box");
  /* a COCO file with every skipped key loads */
  const char *coco =
      "{\"info\": {\"year\": 2017}, \"licenses\": [{\"id\": 1}], \"categories\": [{\"id\": 1, "
      "\"name\": \"a\", \"supercategory\": \"b\"}], \"images\": [{\"id\": 1, \"width\": 9, "
      "\"height\": 10, \"file_name\": \"a.jpg\", \"license\": 1, \"coco_url\": \"u\", "
      "\"flickr_url\": \"f\", \"date_captured\": \"d\"}], \"annotations\": [{\"id\": 5, "
      "\"image_id\": 1, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"area\": 12, "
      "\"iscrowd\": 0, \"segmentation\": [[1, 2, 3, 4, 5, 6]], \"keypoints\": [], "
      "\"num_keypoints\": 0}]}";
  detloss_dataset *d = NULL;
  detloss_error err;
  assert_int_equal(parse_ds(coco, &d, &err), DETLOSS_OK);
  const double want[4] = {1, 2, 4, 6}; /* [x, y, w, h] = [1, 2, 3, 4] -> [1, 2, 1+3, 2+4] */
  dl_assert_close(d->boxes, want, 4, 0, 0);
  detloss_dataset_free(d);
  /* anything else is an error, at every level */
  const char *img = "{\"id\": 1, \"width\": 9, \"height\": 10}";
  const char *ann = "{\"image_id\": 1, \"bbox\": [0, 0, 1, 1]}";
  char t[512];
  snprintf(t, sizeof t, "{\"images\": [%s], \"annotations\": [%s], \"name\": \"x\"}", img, ann);
  expect_ds_error(t, U, "d.json: name");
  snprintf(t, sizeof t,
           "{\"images\": [%s, {\"id\": 2, \"width\": 9, \"height\": 10, "
           "\"filename\": \"a\"}], \"annotations\": [%s]}",
           img, ann);
  expect_ds_error(t, U, "d.json: images[1].filename");
  snprintf(t, sizeof t,
           "{\"images\": [%s], \"annotations\": [%s, {\"image_id\": 1, "
           "\"bbox\": [0, 0, 1, 1], \"is_crowd\": 1}]}",
           img, ann);
  expect_ds_error(t, U, "d.json: annotations[1].is_crowd");
  detloss_dataset *d2 = (detloss_dataset *)0x1;
  assert_int_equal(parse_ds(t, &d2, &err), U);
  assert_string_equal(err.msg, "unknown key (did you mean 'iscrowd'?)");
}

/* The bundled data set loads with the counts of data/README.md. */
static void bundled_data_set_has_documented_counts(void **state) {
  (void)state;
  detloss_dataset *d = NULL;
  assert_int_equal(detloss_dataset_load(SRC_DIR "/data/coco2017_subset.json", &d, NULL),
                   DETLOSS_OK);
  assert_int_equal(d->num_images, 354);
  assert_int_equal(d->num_boxes, 3272);
  size_t crowd = 0;
  for (size_t i = 0; i < d->num_boxes; i++) crowd += d->is_crowd[i];
  assert_int_equal(crowd, 35);
  assert_non_null(d->license);
  detloss_dataset_free(d);
}

/* One level, stride 8, sizes [16], ratios [0.5, 1, 2], image_size 80 x 80:
 * ceil(80/8) x ceil(80/8) cells x 3 = 300 anchors. */
#define GRID300                                                                                    \
  "{\"head\":\"none\",\"anchors\":{\"image_size\":[80,80],\"levels\":[{\"stride\":8,"              \
  "\"sizes\":[16],\"aspect_ratios\":[0.5,1,2]}]}}"

static void config_limits_bound_anchors_sides_and_resize(void **state) {
  (void)state;
  detloss_config *c = NULL;
  detloss_error err;
  detloss_json_limits lim = {0, 0, 299, 0.0};
  const char *path = DL_FIXTURE("anchor_eval/t.json");
  assert_int_equal(detloss_config_parse_ex(GRID300, strlen(GRID300), path, SEARCH, &lim, &c, &err),
                   DETLOSS_ERR_RANGE);
  assert_null(c);
  assert_non_null(strstr(err.where, "t.json: anchors.levels[0].stride"));
  assert_string_equal(err.msg,
                      "8 gives 300 anchors for the 80 x 80 image_size, more than the "
                      "limit max_anchors = 299");
  lim.max_anchors = 300;
  assert_int_equal(detloss_config_parse_ex(GRID300, strlen(GRID300), path, SEARCH, &lim, &c, &err),
                   DETLOSS_OK);
  detloss_config_free(c);
  c = NULL;
  /* the "strides" form names strides[l] */
  const char *st =
      "{\"head\":\"none\",\"anchors\":{\"image_size\":[80,80],\"strides\":[8],"
      "\"sizes\":[[16]],\"aspect_ratios\":[0.5,1,2]}}";
  lim.max_anchors = 299;
  assert_int_equal(detloss_config_parse_ex(st, strlen(st), path, SEARCH, &lim, &c, &err),
                   DETLOSS_ERR_RANGE);
  assert_non_null(strstr(err.where, "t.json: anchors.strides[0]"));
  /* image_size and resize targets are image sides */
  lim.max_anchors = 0;
  lim.max_image_side = 79.0;
  assert_int_equal(detloss_config_parse_ex(GRID300, strlen(GRID300), path, SEARCH, &lim, &c, &err),
                   DETLOSS_ERR_RANGE);
  assert_non_null(strstr(err.where, "t.json: anchors.image_size"));
  assert_string_equal(err.msg, "80 px is above the limit max_image_side = 79");
  const char *rs = "{\"anchors\":{\"boxes\":[[0,0,1,1]]},\"resize\":{\"max_size\":1e6}}";
  assert_int_equal(detloss_config_parse(rs, strlen(rs), path, SEARCH, &c, &err),
                   DETLOSS_ERR_RANGE); /* the defaults: 100000 px */
  assert_non_null(strstr(err.where, "t.json: resize.max_size"));
  assert_string_equal(err.msg, "1e+06 px is above the limit max_image_side = 100000");
}

static void data_set_image_sides_past_the_limit_are_refused(void **state) {
  (void)state;
  const char *t =
      "{\"images\":[{\"width\":640,\"height\":480,\"boxes\":[]},"
      "{\"width\":640,\"height\":9.9e6,\"boxes\":[[0,0,1,1]]}]}";
  detloss_dataset *d = NULL;
  detloss_error err;
  assert_int_equal(detloss_dataset_parse(t, strlen(t), "d.json", &d, &err), DETLOSS_ERR_RANGE);
  assert_null(d);
  assert_string_equal(err.where, "d.json: images[1].height");
  detloss_json_limits lim = {0, 0, 0, 1e7};
  assert_int_equal(detloss_dataset_parse_ex(t, strlen(t), "d.json", &lim, &d, &err), DETLOSS_OK);
  detloss_dataset_free(d);
  lim.max_input_bytes = 10;
  assert_int_equal(detloss_dataset_parse_ex(t, strlen(t), "d.json", &lim, &d, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.msg, "the input is larger than the limit max_input_bytes = 10");
}

static void eval_limits_count_anchors_of_each_resized_image(void **state) {
  (void)state;
  /* Image 0 is 64 x 64, image 1 is 48 x 32 (H x W); one level, stride 8, one anchor
   * per cell: 8 x 8 = 64 and 6 x 4 = 24 anchors. */
  float hw[4] = {64, 64, 48, 32}, boxes[4] = {0, 0, 8, 8};
  size_t start[3] = {0, 1, 1};
  detloss_eval_dataset data;
  memset(&data, 0, sizeof data);
  data.num_images = 2;
  data.image_hw = hw;
  data.box_start = start;
  data.boxes = boxes;
  float size = 8.0f, ratio = 1.0f;
  detloss_anchor_level L;
  memset(&L, 0, sizeof L);
  L.stride_h = L.stride_w = 8.0f;
  L.sizes = &size;
  L.num_sizes = 1;
  L.ratios = &ratio;
  L.num_ratios = 1;
  detloss_anchor_config g = {&L, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  detloss_eval_anchors src;
  memset(&src, 0, sizeof src);
  src.grid = &g;
  detloss_eval_options o = detloss_eval_options_default();
  detloss_json_limits lim = {0, 0, 63, 0.0};
  detloss_error err;
  assert_int_equal(detloss_eval_check_limits(&data, &src, &o, &lim, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "data.image_hw[0]");
  assert_string_equal(err.msg,
                      "a 64 x 64 px image needs 64 anchors (level 0, stride 8: 8 x 8 "
                      "cells), more than the limit max_anchors = 63");
  lim.max_anchors = 64;
  assert_int_equal(detloss_eval_check_limits(&data, &src, &o, &lim, &err), DETLOSS_OK);
  /* resize_max_size 128: image 0 -> 128 x 128 (256 anchors), image 1 -> 128 x 85.33 */
  o.resize_max_size = 128.0f;
  assert_int_equal(detloss_eval_check_limits(&data, &src, &o, &lim, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "data.image_hw[0]");
  /* resize_min_size 100 with max_image_side 120: image 1's short side 32 -> 100,
   * its long side 48 -> 150 > 120 */
  o.resize_max_size = 0.0f;
  o.resize_min_size = 100.0f;
  lim.max_anchors = 0;
  lim.max_image_side = 120.0;
  assert_int_equal(detloss_eval_check_limits(&data, &src, &o, &lim, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "resize_min_size");
  assert_string_equal(err.msg,
                      "resizes image 1 (48 x 32 px) to 150 x 100 px, above the limit "
                      "max_image_side = 120");
}

/* The assigner presets (configs/atss_r50_fpn.json, fcos_r50_center.json, yolox_s.json,
 * yolov8.json, detr_r50.json) load with their published settings and sources. */
static void assigner_presets_load_with_their_published_settings(void **state) {
  (void)state;
  detloss_config *c = load_preset("atss_r50_fpn.json");
  assert_int_equal(c->assigner.method, DETLOSS_EVAL_METHOD_ATSS);
  assert_int_equal(c->assigner.atss.semantics, DETLOSS_ATSS_MMDET);
  assert_int_equal(c->assigner.atss.topk, 9);
  assert_int_equal(c->grid.num_levels, 5);
  for (size_t l = 0; l < 5; l++) { /* octave_base_scale 8 x stride, one ratio */
    dl_assert_close1(c->grid.levels[l].stride_w, 8 << l, 0, 0);
    dl_assert_close1(c->grid.levels[l].sizes[0], 64 << l, 0, 0);
    assert_int_equal(c->grid.levels[l].num_ratios, 1);
  }
  assert_int_equal(c->num_point_levels, 0);
  assert_non_null(strstr(c->source, "mmdetection"));
  detloss_config_free(c);

  c = load_preset("fcos_r50_center.json");
  assert_int_equal(c->assigner.method, DETLOSS_EVAL_METHOD_FCOS);
  assert_int_equal(c->assigner.fcos.center_sampling, 1);
  dl_assert_close1(c->assigner.fcos.center_sample_radius, 1.5, 0, 0);
  assert_null(c->assigner.fcos.regress_ranges);
  assert_int_equal(c->assigner.num_ranges, 5);
  const float want[5][2] = {{-1, 64}, {64, 128}, {128, 256}, {256, 512}, {512, 1e8f}};
  for (size_t l = 0; l < 5; l++) {
    dl_assert_close1(c->assigner.regress_ranges[2 * l], want[l][0], 0, 0);
    dl_assert_close1(c->assigner.regress_ranges[2 * l + 1], want[l][1], 0, 0);
    dl_assert_close1(c->point_strides[l], 8 << l, 0, 0);
  }
  assert_int_equal(c->num_point_levels, 5);
  dl_assert_close1(c->point_offset, 0.5, 0, 0);
  assert_int_equal(c->grid.num_levels + c->num_anchors + c->num_shapes, 0); /* no anchors */
  detloss_config_free(c);

  static const char *const dyn[3] = {"yolox_s.json", "yolov8.json", "detr_r50.json"};
  static const detloss_eval_method meth[3] = {DETLOSS_EVAL_METHOD_SIMOTA,
                                              DETLOSS_EVAL_METHOD_TASK_ALIGNED,
                                              DETLOSS_EVAL_METHOD_HUNGARIAN};
  static const size_t levels[3] = {3, 3, 0};
  for (int k = 0; k < 3; k++) {
    c = load_preset(dyn[k]);
    assert_int_equal(c->assigner.method, meth[k]);
    assert_int_equal(c->num_point_levels, levels[k]);
    assert_non_null(c->source);
    detloss_config_free(c);
  }
  /* a config without "assigner" keeps the matcher */
  c = load_preset("torchvision_retinanet_r50_fpn.json");
  assert_int_equal(c->assigner.method, DETLOSS_EVAL_METHOD_MAX_IOU);
  detloss_config_free(c);
}

/* Faults of "assigner" and "points" name the field. */
static void assigner_and_points_errors_name_the_field(void **state) {
  (void)state;
  const char *A = "\"anchors\": \"torchvision_fpn.json\"";
  const char *P = "\"points\": {\"strides\": [8, 16, 32, 64, 128]}";
  char t[512];
  snprintf(t, sizeof t, "{%s, \"assigner\": {\"method\": \"atts\"}}", A);
  expect_config_error(t, DETLOSS_ERR_UNKNOWN, "assigner.method", "did you mean 'atss'?");
  snprintf(t, sizeof t, "{%s, \"assigner\": {\"topk\": 9}}", A);
  expect_config_error(t, DETLOSS_ERR_MISSING, "assigner.method", "missing");
  snprintf(t, sizeof t, "{%s, \"assigner\": {\"method\": \"atss\", \"topk\": 0}}", A);
  expect_config_error(t, DETLOSS_ERR_RANGE, "assigner.topk", "got 0");
  snprintf(t, sizeof t, "{%s, \"assigner\": {\"method\": \"atss\", \"topk\": 2.5}}", A);
  expect_config_error(t, DETLOSS_ERR_TYPE, "assigner.topk", "expected an integer");
  snprintf(t, sizeof t, "{%s, \"assigner\": {\"method\": \"atss\", \"topl\": 9}}", A);
  expect_config_error(t, DETLOSS_ERR_UNKNOWN, "assigner.topl", "did you mean 'topk'?");
  snprintf(t, sizeof t, "{%s, \"assigner\": {\"method\": \"atss\", \"semantics\": \"mmdetx\"}}", A);
  expect_config_error(t, DETLOSS_ERR_UNKNOWN, "assigner.semantics", "did you mean 'mmdet'?");
  snprintf(t, sizeof t, "{%s, \"assigner\": {\"method\": \"max_iou\", \"topk\": 9}}", A);
  expect_config_error(t, DETLOSS_ERR_UNKNOWN, "assigner.topk", "unknown key");
  snprintf(t, sizeof t, "{%s, \"assigner\": \"atss\"}", A);
  expect_config_error(t, DETLOSS_ERR_TYPE, "assigner", "expected an object");
  /* anchors are required for the anchor-based assigners, points for fcos */
  expect_config_error("{\"assigner\": {\"method\": \"atss\"}}", DETLOSS_ERR_MISSING, "anchors",
                      "missing");
  expect_config_error("{\"assigner\": {\"method\": \"fcos\"}}", DETLOSS_ERR_MISSING, "points",
                      "FCOS assigns points");
  snprintf(t, sizeof t, "{%s, %s}", A, P);
  expect_config_error(t, DETLOSS_ERR_UNKNOWN, "points", "anchor-based assigner (max_iou)");
  snprintf(t, sizeof t,
           "{%s, \"assigner\": {\"method\": \"fcos\", \"regress_ranges\": [[-1, 64], [64, "
           "128]]}}",
           P);
  expect_config_error(t, DETLOSS_ERR_SHAPE, "assigner.regress_ranges",
                      "2 ranges for 5 point levels");
  snprintf(t, sizeof t,
           "{%s, \"assigner\": {\"method\": \"fcos\", \"regress_ranges\": [[-1, 64], [64, 1], "
           "[1, 2], [2, 3], [3, 4]]}}",
           P);
  expect_config_error(t, DETLOSS_ERR_RANGE, "assigner.regress_ranges[1]", "lo 64 is above hi 1");
  snprintf(t, sizeof t, "{%s, \"assigner\": {\"method\": \"fcos\", \"center_sampling\": 1}}", P);
  expect_config_error(t, DETLOSS_ERR_TYPE, "assigner.center_sampling", "expected true or false");
  snprintf(t, sizeof t, "{%s, \"assigner\": {\"method\": \"fcos\", \"center_sample_radius\": -1}}",
           P);
  expect_config_error(t, DETLOSS_ERR_RANGE, "assigner.center_sample_radius", "got -1");
  expect_config_error(
      "{\"points\": {\"strides\": [8, 0]}, \"assigner\": {\"method\": "
      "\"simota\"}}",
      DETLOSS_ERR_RANGE, "points.strides[1]", "expected a stride in (0, 1e6]");
  expect_config_error(
      "{\"points\": {\"strides\": [8], \"offset\": 1}, \"assigner\": "
      "{\"method\": \"simota\"}}",
      DETLOSS_ERR_RANGE, "points.offset", "[0, 1)");
  expect_config_error("{\"points\": {\"stride\": [8]}, \"assigner\": {\"method\": \"simota\"}}",
                      DETLOSS_ERR_UNKNOWN, "points.stride", "did you mean 'strides'?");
  expect_config_error("{\"assigner\": {\"method\": \"hungarian\", \"cost_class\": 1}}",
                      DETLOSS_ERR_UNKNOWN, "assigner.cost_class", "unknown key");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(torchvision_rpn_preset_has_the_published_settings),
      cmocka_unit_test(other_presets_load_with_their_heads_and_metrics),
      cmocka_unit_test(assigner_presets_load_with_their_published_settings),
      cmocka_unit_test(assigner_and_points_errors_name_the_field),
      cmocka_unit_test(minimal_config_gets_documented_defaults),
      cmocka_unit_test(describe_lists_every_key_with_defaults),
      cmocka_unit_test(config_names_are_those_of_the_compute_cases),
      cmocka_unit_test(anchor_set_forms_are_read),
      cmocka_unit_test(config_errors_name_file_path_and_expectation),
      cmocka_unit_test(syntax_errors_report_line_and_column),
      cmocka_unit_test(errors_in_an_anchor_file_name_that_file),
      cmocka_unit_test(common_format_is_read_with_crowd_flags),
      cmocka_unit_test(coco_instances_are_converted),
      cmocka_unit_test(data_set_errors_name_file_and_path),
      cmocka_unit_test(bundled_data_set_has_documented_counts),
      cmocka_unit_test(unknown_keys_in_every_config_object_are_errors),
      cmocka_unit_test(data_set_keys_are_checked_with_a_coco_allow_list),
      cmocka_unit_test(config_limits_bound_anchors_sides_and_resize),
      cmocka_unit_test(data_set_image_sides_past_the_limit_are_refused),
      cmocka_unit_test(eval_limits_count_anchors_of_each_resized_image),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
