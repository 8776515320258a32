/*
 * config.c - run configs: one JSON schema for anchors, matcher, sampler, box
 * coder, loss and evaluation settings (detloss_json.h documents it). This
 * file reads the top level and owns the detloss_config; anchor sets are read
 * in config_anchors.c, files resolved in config_resolve.c, and the option
 * sections read through the descriptor tables of config_schema.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/config_internal.h"
#include "json/evalcfg.h"
#include "json/jread.h"
#include "json/jtree.h"

typedef struct cfg_storage {
  dl_anchor_set set;
  int err_has_file; /* the error came from a referenced file and already names it */
  detloss_anchor_level levels[DETLOSS_EVAL_MAX_LEVELS];
} cfg_storage;

void detloss_config_free(detloss_config *c) {
  if (!c) return;
  free(c->path);
  free(c->name);
  free(c->source);
  free(c->notes);
  free(c->anchors_path);
  free(c->anchors_name);
  free(c->anchors_source);
  free(c->dataset_path);
  if (c->storage) {
    cfg_storage *s = c->storage;
    dl_anchor_set_free(&s->set);
    free(s);
  }
  free(c);
}

static const char *const CONFIG_KEYS[] = {"name",    "source",   "notes",  "head",    "anchors",
                                          "dataset", "resize",   "eval",   "matcher", "box_coder",
                                          "loss",    "assigner", "points", "sampler", NULL};

/* "assigner" methods, indexed by detloss_eval_method. */
static const char *const METHODS[] = {"max_iou", "atss",         "fcos",
                                      "simota",  "task_aligned", "hungarian"};
#define NUM_METHODS (sizeof METHODS / sizeof METHODS[0])

/* FCOS "regress_ranges": [[lo, hi], ...], lo <= hi, finite. */
static detloss_status parse_ranges(const cJSON *rr, detloss_eval_assigner *as, detloss_error *err) {
  const char *P = "assigner.regress_ranges";
  DL_RETURN_ERROR_IF(!cJSON_IsArray(rr), err, DETLOSS_ERR_TYPE, P,
                     "expected [[lo, hi], ...], one pair per point level");
  int n = cJSON_GetArraySize(rr);
  DL_RETURN_ERROR_IF(n < 1 || n > DETLOSS_EVAL_MAX_LEVELS, err, DETLOSS_ERR_SHAPE, P,
                     "expected 1 to %d pairs, got %d", DETLOSS_EVAL_MAX_LEVELS, n);
  size_t l = 0;
  for (const cJSON *e = rr->child; e; e = e->next, l++) {
    char where[DETLOSS_WHERE_MAX];
    dlj_index(where, sizeof where, P, l);
    DL_RETURN_ERROR_IF(!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2, err,
                       cJSON_IsArray(e) ? DETLOSS_ERR_SHAPE : DETLOSS_ERR_TYPE, where,
                       "expected a pair [lo, hi]");
    for (int k = 0; k < 2; k++) {
      const cJSON *v = cJSON_GetArrayItem(e, k);
      DL_RETURN_ERROR_IF(!cJSON_IsNumber(v), err, DETLOSS_ERR_TYPE, where, "expected numbers");
      DL_RETURN_ERROR_IF(!(fabs(v->valuedouble) <= 1e30), err, DETLOSS_ERR_RANGE, where,
                         "expected finite numbers within 1e30");
      as->regress_ranges[2 * l + (size_t)k] = (float)v->valuedouble;
    }
    DL_RETURN_ERROR_IF(!(as->regress_ranges[2 * l] <= as->regress_ranges[2 * l + 1]), err,
                       DETLOSS_ERR_RANGE, where, "lo %g is above hi %g",
                       (double)as->regress_ranges[2 * l], (double)as->regress_ranges[2 * l + 1]);
  }
  as->num_ranges = l;
  return DETLOSS_OK;
}

/* "assigner": {"method": NAME, ...the method's options}. max_iou takes no
 * options (the "matcher" section holds them); atss reads its options through
 * the ATSS descriptor table; the others take none here. */
static detloss_status parse_assigner(const cJSON *obj, detloss_eval_assigner *as,
                                     detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsObject(obj), err, DETLOSS_ERR_TYPE, "assigner",
                     "expected an object {\"method\": ...}");
  const char *m = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(obj, "method", "assigner", 1, &m, err));
  int found = -1;
  for (size_t i = 0; i < NUM_METHODS; i++)
    if (strcmp(m, METHODS[i]) == 0) found = (int)i;
  if (found < 0) {
    const char *hint = dl_suggest(m, METHODS, NUM_METHODS);
    if (hint)
      return dl_fail(err, DETLOSS_ERR_UNKNOWN, "assigner.method",
                     "unknown method '%s' (did you mean '%s'?)", m, hint);
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, "assigner.method",
                   "unknown method '%s' (expected max_iou, atss, fcos, simota, task_aligned or "
                   "hungarian)",
                   m);
  }
  as->method = (detloss_eval_method)found;
  if (as->method == DETLOSS_EVAL_METHOD_ATSS || as->method == DETLOSS_EVAL_METHOD_FCOS) {
    int fcos = as->method == DETLOSS_EVAL_METHOD_FCOS;
    const cJSON *rr = fcos ? dlj_plain(obj, "regress_ranges") : NULL;
    if (rr) DL_FORWARD_IF_ERROR(parse_ranges(rr, as, err));
    /* The table's keys plus "method" (and regress_ranges): read from a copy without them. */
    cJSON *rest = cJSON_Duplicate(obj, 1);
    if (!rest) return dl_fail(err, DETLOSS_ERR_NOMEM, "assigner", "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(rest, "method");
    if (rr) cJSON_DeleteItemFromObjectCaseSensitive(rest, "regress_ranges");
    detloss_status st = fcos ? dlj_read_table(rest, "assigner", &dlj_fcos_table, &as->fcos, err)
                             : dlj_read_table(rest, "assigner", &dlj_atss_table, &as->atss, err);
    cJSON_Delete(rest);
    return st;
  }
  static const char *const ONLY_METHOD[] = {"method", NULL};
  return dlj_check_keys(obj, "assigner", ONLY_METHOD, err);
}

/* "points": {"strides": [s_0, ...], "offset": 0.5}. */
static detloss_status parse_points(const cJSON *obj, detloss_config *c, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsObject(obj), err, DETLOSS_ERR_TYPE, "points",
                     "expected an object {\"strides\": [...], \"offset\": 0.5}");
  static const char *const KEYS[] = {"strides", "offset", NULL};
  DL_FORWARD_IF_ERROR(dlj_check_keys(obj, "points", KEYS, err));
  const cJSON *st = dlj_plain(obj, "strides");
  DL_RETURN_ERROR_IF(!st, err, DETLOSS_ERR_MISSING, "points.strides", "missing");
  DL_RETURN_ERROR_IF(!cJSON_IsArray(st), err, DETLOSS_ERR_TYPE, "points.strides",
                     "expected an array of strides (px)");
  int n = cJSON_GetArraySize(st);
  DL_RETURN_ERROR_IF(n < 1 || n > DETLOSS_EVAL_MAX_LEVELS, err, DETLOSS_ERR_SHAPE, "points.strides",
                     "expected 1 to %d strides, got %d", DETLOSS_EVAL_MAX_LEVELS, n);
  size_t l = 0;
  for (const cJSON *e = st->child; e; e = e->next, l++) {
    char where[DETLOSS_WHERE_MAX];
    dlj_index(where, sizeof where, "points.strides", l);
    DL_RETURN_ERROR_IF(!cJSON_IsNumber(e), err, DETLOSS_ERR_TYPE, where, "expected a number");
    DL_RETURN_ERROR_IF(!(e->valuedouble > 0.0 && e->valuedouble <= 1e6), err, DETLOSS_ERR_RANGE,
                       where, "expected a stride in (0, 1e6] px, got %g", e->valuedouble);
    c->point_strides[l] = (float)e->valuedouble;
  }
  c->num_point_levels = l;
  c->point_offset = 0.5f;
  DL_FORWARD_IF_ERROR(dlj_float(obj, "offset", "points", 0, &c->point_offset, err));
  DL_RETURN_ERROR_IF(!(c->point_offset >= 0.0f && c->point_offset < 1.0f), err, DETLOSS_ERR_RANGE,
                     "points.offset", "expected a number in [0, 1), got %g",
                     (double)c->point_offset);
  return DETLOSS_OK;
}

static detloss_status parse_config(const cJSON *root, const char *file, const char *const *search,
                                   const detloss_json_limits *lim, detloss_config *c,
                                   cfg_storage *s, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsObject(root), err, DETLOSS_ERR_TYPE, "(root)",
                     "expected a config object");
  DL_FORWARD_IF_ERROR(dlj_check_keys(root, "", CONFIG_KEYS, err));
  const char *str = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(root, "name", "", 0, &str, err));
  c->name = dlj_dupstr(str);
  str = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(root, "source", "", 0, &str, err));
  c->source = dlj_dupstr(str);
  str = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(root, "notes", "", 0, &str, err));
  c->notes = dlj_dupstr(str);

  /* head */
  c->head = DETLOSS_CONFIG_HEAD_RPN;
  str = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(root, "head", "", 0, &str, err));
  if (str) {
    static const char *const HEADS[] = {"none", "rpn", "retinanet"};
    int found = -1;
    for (int i = 0; i < 3; i++)
      if (strcmp(str, HEADS[i]) == 0) found = i;
    if (found < 0) {
      const char *hint = dl_suggest(str, HEADS, 3);
      return dl_fail(err, DETLOSS_ERR_UNKNOWN, "head", "unknown head '%s' (%s%s%s)", str,
                     hint ? "did you mean '" : "expected rpn, retinanet or none", hint ? hint : "",
                     hint ? "'?" : "");
    }
    c->head = (detloss_config_head)found;
  }

  /* assigner and points, before the anchors: a point-based or dynamic
   * assigner needs no anchor set. */
  c->assigner = detloss_eval_assigner_default();
  const cJSON *asg = dlj_plain(root, "assigner");
  if (asg) DL_FORWARD_IF_ERROR(parse_assigner(asg, &c->assigner, err));
  const cJSON *pts = dlj_plain(root, "points");
  if (pts) DL_FORWARD_IF_ERROR(parse_points(pts, c, err));
  int anchor_based = c->assigner.method == DETLOSS_EVAL_METHOD_MAX_IOU ||
                     c->assigner.method == DETLOSS_EVAL_METHOD_ATSS;
  if (pts && anchor_based)
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, "points",
                   "an anchor-based assigner (%s) uses \"anchors\", not points",
                   METHODS[c->assigner.method]);
  if (!pts && c->assigner.method == DETLOSS_EVAL_METHOD_FCOS)
    return dl_fail(err, DETLOSS_ERR_MISSING, "points",
                   "missing: FCOS assigns points (\"points\": {\"strides\": [8, 16, ...]})");
  /* the assigner carries its point levels (detloss_anchor_eval_ex reads them for FCOS) */
  memcpy(c->assigner.point_strides, c->point_strides, sizeof c->point_strides);
  c->assigner.num_point_levels = c->num_point_levels;
  c->assigner.point_offset = pts ? c->point_offset : 0.5f;
  if (c->assigner.method == DETLOSS_EVAL_METHOD_FCOS) {
    size_t want = c->assigner.num_ranges ? c->assigner.num_ranges : 5;
    if (want != c->num_point_levels)
      return dl_fail(err, DETLOSS_ERR_SHAPE, "assigner.regress_ranges",
                     "%zu ranges%s for %zu point levels (points.strides)", want,
                     c->assigner.num_ranges ? "" : " (FCOS's default)", c->num_point_levels);
  }

  /* anchors: a file name or an inline set */
  const cJSON *an = dlj_plain(root, "anchors");
  DL_RETURN_ERROR_IF(!an && anchor_based, err, DETLOSS_ERR_MISSING, "anchors",
                     "missing (expected a file name from anchors/ or an anchor set object)");
  if (!an) {
    /* no anchors: a point-based or dynamic assigner */
  } else if (cJSON_IsString(an)) {
    char tried[4096];
    c->anchors_path = dlj_resolve(an->valuestring, file, search, 1, tried, sizeof tried);
    DL_RETURN_ERROR_IF(!c->anchors_path, err, DETLOSS_ERR_NOT_FOUND, "anchors",
                       "anchor file '%s' not found (looked for %s, ../anchors/ and the source "
                       "tree's anchors/)",
                       an->valuestring, tried);
    char *text;
    size_t len;
    s->err_has_file = 1;
    DL_FORWARD_IF_ERROR(dl_read_file(c->anchors_path, lim->max_input_bytes, &text, &len, err));
    cJSON *ar = NULL;
    detloss_status st = dlj_parse(text, len, c->anchors_path, &ar, err);
    free(text);
    if (st != DETLOSS_OK) return st;
    st = dl_anchor_set_read(ar, "", &s->set, err);
    if (st == DETLOSS_OK) st = dlj_check_set_limits(&s->set, "", lim, err);
    if (st != DETLOSS_OK) {
      dl_where_file(err, c->anchors_path);
      cJSON_Delete(ar);
      return st;
    }
    s->err_has_file = 0;
    c->anchors_name = dlj_dupstr(s->set.name);
    c->anchors_source = dlj_dupstr(s->set.source);
    s->set.name = s->set.source = NULL;
    cJSON_Delete(ar);
  } else if (cJSON_IsObject(an)) {
    DL_FORWARD_IF_ERROR(dl_anchor_set_read(an, "anchors", &s->set, err));
    DL_FORWARD_IF_ERROR(dlj_check_set_limits(&s->set, "anchors.", lim, err));
    c->anchors_name = dlj_dupstr(s->set.name);
    c->anchors_source = dlj_dupstr(s->set.source);
    s->set.name = s->set.source = NULL;
  } else {
    return dl_fail(err, DETLOSS_ERR_TYPE, "anchors",
                   "expected a file name from anchors/ or an anchor set object");
  }
  c->grid = s->set.grid;
  c->image_size[0] = s->set.image_size[0];
  c->image_size[1] = s->set.image_size[1];
  if (c->grid.num_levels > 0) {
    for (size_t l = 0; l < c->grid.num_levels; l++) s->levels[l] = c->grid.levels[l];
    c->grid.levels = s->levels;
  }
  c->anchors = s->set.boxes;
  c->num_anchors = s->set.num_boxes;
  c->shapes = s->set.shapes;
  c->num_shapes = s->set.num_shapes;

  /* dataset */
  const cJSON *ds = dlj_plain(root, "dataset");
  if (ds) {
    DL_RETURN_ERROR_IF(!cJSON_IsString(ds), err, DETLOSS_ERR_TYPE, "dataset",
                       "expected a file name");
    char tried[4096];
    c->dataset_path = dlj_resolve(ds->valuestring, file, search, 0, tried, sizeof tried);
    DL_RETURN_ERROR_IF(!c->dataset_path, err, DETLOSS_ERR_NOT_FOUND, "dataset",
                       "data set '%s' not found (looked for %s and the search directories)",
                       ds->valuestring, tried);
  }

  /* Defaults of the head, then the head's loss convention preset. */
  c->rpn = detloss_rpn_options_default();
  c->retina = detloss_retina_options_default();
  c->coder = detloss_coder_options_default();
  c->eval = detloss_eval_options_default();
  const cJSON *loss = dlj_plain(root, "loss");
  if (loss) {
    DL_RETURN_ERROR_IF(c->head == DETLOSS_CONFIG_HEAD_NONE, err, DETLOSS_ERR_UNKNOWN, "loss",
                       "a config with head \"none\" has no loss settings");
    if (c->head == DETLOSS_CONFIG_HEAD_RPN) {
      /* A "convention" selects that library's defaults (detloss_rpn_options_preset);
       * the other keys then override them. */
      detloss_rpn_options tmp = c->rpn;
      DL_FORWARD_IF_ERROR(dlj_read_table(loss, "loss", &dlj_rpn_table, &tmp, err));
      if (dlj_plain(loss, "convention")) c->rpn = detloss_rpn_options_preset(tmp.convention);
      DL_FORWARD_IF_ERROR(dlj_read_table(loss, "loss", &dlj_rpn_table, &c->rpn, err));
    } else {
      DL_FORWARD_IF_ERROR(dlj_read_table(loss, "loss", &dlj_retina_table, &c->retina, err));
    }
  }
  detloss_match_options *m = c->head == DETLOSS_CONFIG_HEAD_RPN         ? &c->rpn.match
                             : c->head == DETLOSS_CONFIG_HEAD_RETINANET ? &c->retina.match
                                                                        : &c->eval.match;
  const cJSON *v;
  if ((v = dlj_plain(root, "matcher")))
    DL_FORWARD_IF_ERROR(dlj_read_table(v, "matcher", &dlj_match_table, m, err));
  if (!(m->low <= m->high))
    return dl_fail(err, DETLOSS_ERR_RANGE, "matcher.low", "is %g, above matcher.high (%g)",
                   (double)m->low, (double)m->high);
  if ((v = dlj_plain(root, "sampler"))) {
    DL_RETURN_ERROR_IF(c->head != DETLOSS_CONFIG_HEAD_RPN, err, DETLOSS_ERR_UNKNOWN, "sampler",
                       "only a config with head \"rpn\" samples anchors");
    DL_FORWARD_IF_ERROR(dlj_read_table(v, "sampler", &dlj_sample_table, &c->rpn.sample, err));
  }
  if ((v = dlj_plain(root, "box_coder"))) {
    if (c->head == DETLOSS_CONFIG_HEAD_RPN)
      memcpy(c->coder.weights, c->rpn.box_weights, sizeof c->coder.weights);
    if (c->head == DETLOSS_CONFIG_HEAD_RETINANET)
      memcpy(c->coder.weights, c->retina.box_weights, sizeof c->coder.weights);
    DL_FORWARD_IF_ERROR(dlj_read_table(v, "box_coder", &dlj_coder_table, &c->coder, err));
    memcpy(c->rpn.box_weights, c->coder.weights, sizeof c->coder.weights);
    memcpy(c->retina.box_weights, c->coder.weights, sizeof c->coder.weights);
  }
  c->eval.match = *m;
  if ((v = dlj_plain(root, "eval")))
    DL_FORWARD_IF_ERROR(dlj_read_table(v, "eval", &dlj_eval_table, &c->eval, err));
  if ((v = dlj_plain(root, "resize"))) {
    DL_FORWARD_IF_ERROR(dlj_read_table(v, "resize", &dlj_resize_table, &c->eval, err));
    /* The resize target is a side of every resized image: bounded like one. */
    DL_FORWARD_IF_ERROR(
        dl_check_side(lim, (double)c->eval.resize_min_size, "resize.min_size", err));
    DL_FORWARD_IF_ERROR(
        dl_check_side(lim, (double)c->eval.resize_max_size, "resize.max_size", err));
  }
  if (c->num_shapes > 0 && c->eval.metric != DETLOSS_EVAL_WH_RATIO)
    return dl_fail(err, DETLOSS_ERR_RANGE, "eval.metric",
                   "anchor shapes without positions need \"metric\": \"wh_ratio\"");
  return DETLOSS_OK;
}

detloss_status detloss_config_parse(const char *text, size_t len, const char *path,
                                    const char *const *search_dirs, detloss_config **out,
                                    detloss_error *err) {
  return detloss_config_parse_ex(text, len, path, search_dirs, NULL, out, err);
}

detloss_status detloss_config_parse_ex(const char *text, size_t len, const char *path,
                                       const char *const *search_dirs,
                                       const detloss_json_limits *limits, detloss_config **out,
                                       detloss_error *err) {
  DL_RETURN_ERROR_IF(!text || !out, err, DETLOSS_ERR_NULL, !text ? "text" : "out", "is NULL");
  const char *file = path ? path : "(text)";
  detloss_json_limits lim = dl_json_limits(limits);
  DL_RETURN_ERROR_IF(len > lim.max_input_bytes, err, DETLOSS_ERR_RANGE, file,
                     "the input is larger than the limit max_input_bytes = %zu",
                     lim.max_input_bytes);
  cJSON *root = NULL;
  DL_FORWARD_IF_ERROR(dlj_parse(text, len, file, &root, err));
  detloss_config *c = calloc(1, sizeof *c);
  cfg_storage *s = calloc(1, sizeof *s);
  if (!c || !s) {
    free(c);
    free(s);
    cJSON_Delete(root);
    return dl_fail(err, DETLOSS_ERR_NOMEM, file, "out of memory");
  }
  c->storage = s;
  c->path = dlj_dupstr(file);
  detloss_status st = parse_config(root, file, search_dirs, &lim, c, s, err);
  cJSON_Delete(root);
  if (st != DETLOSS_OK) {
    /* Errors from a referenced file already name that file. */
    if (!s->err_has_file) dl_where_file(err, file);
    detloss_config_free(c);
    return st;
  }
  *out = c;
  return DETLOSS_OK;
}

detloss_status detloss_config_load(const char *path, const char *const *search_dirs,
                                   detloss_config **out, detloss_error *err) {
  return detloss_config_load_ex(path, search_dirs, NULL, out, err);
}

detloss_status detloss_config_load_ex(const char *path, const char *const *search_dirs,
                                      const detloss_json_limits *limits, detloss_config **out,
                                      detloss_error *err) {
  DL_RETURN_ERROR_IF(!path || !out, err, DETLOSS_ERR_NULL, !path ? "path" : "out", "is NULL");
  detloss_json_limits lim = dl_json_limits(limits);
  char *text;
  size_t len;
  DL_FORWARD_IF_ERROR(dl_read_file(path, lim.max_input_bytes, &text, &len, err));
  detloss_status st = detloss_config_parse_ex(text, len, path, search_dirs, &lim, out, err);
  free(text);
  return st;
}

detloss_eval_anchors detloss_config_eval_anchors(const detloss_config *c) {
  detloss_eval_anchors a;
  memset(&a, 0, sizeof a);
  if (!c) return a;
  if (c->grid.num_levels > 0)
    a.grid = &c->grid;
  else if (c->num_anchors > 0) {
    a.anchors = c->anchors;
    a.num_anchors = c->num_anchors;
  } else {
    a.shapes = c->shapes;
    a.num_shapes = c->num_shapes;
  }
  return a;
}
