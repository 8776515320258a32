/*
 * case_heads.c - compute ops `rpn_loss` and `retina_loss` (compute-cases.md).
 *
 * rpn_loss: config {fg_iou_thresh 0.7, bg_iou_thresh 0.3, allow_low_quality true,
 *   batch_size_per_image 256, positive_fraction 0.5, smooth_l1_beta 1/9,
 *   box_weights [1,1,1,1], seed 0}, images [{anchors [A][4], gt [G][4],
 *   objectness [A], deltas [A][4]}], grad -> loss_objectness, loss_box_reg,
 *   num_pos, num_neg (sampled, whole batch), grad_objectness [images][A],
 *   grad_deltas [images][A][4].
 *   Extra config keys: convention ("torchvision" | "detectron2" |
 *   "py_faster_rcnn": its preset, then the keys given override it), box_loss
 *   ("l1" | "smooth_l1" | "giou" | "diou" | "ciou"), allowed_border (-1).
 *   Extra image keys: image_size [H, W] (needed with allowed_border >= 0),
 *   is_crowd [G] (0/1).
 * retina_loss: config {fg_iou_thresh 0.5, bg_iou_thresh 0.4, allow_low_quality
 *   true, alpha 0.25, gamma 2, box_loss "l1", smooth_l1_beta 1.0, box_weights},
 *   images [{anchors, gt, labels [G], cls_logits [A][C], deltas [A][4]}], grad ->
 *   loss_cls, loss_box_reg, num_pos, grad_cls_logits [images][A][C],
 *   grad_deltas [images][A][4].
 *   Extra config keys: normalizer ("torchvision" | "detectron2_ema" | "caller"),
 *   ema_state (100), ema_momentum (0.9), caller_normalizer, allowed_border,
 *   num_classes (needed only when no image has an anchor).
 * Both add: num_ignored, normalizer, nonfinite, and per_image [{num_pos, num_neg,
 * num_ignored, num_sampled_pos, num_sampled_neg, loss_cls, loss_box_reg}]
 * (per image num_pos/num_neg are the matched counts); retina adds num_neg and,
 * with detectron2_ema, ema_state (the updated state).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head_internal.h"
#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"
#include "json/names.h"
#include "json/jtree.h"

typedef struct head_inputs {
  size_t n;
  detloss_head_image *im;
  /* owned arrays, per image */
  float **anchors, **gt, **pred, **deltas, **gpred, **gdeltas;
  int64_t **labels;
  uint8_t **crowd;
  size_t C; /* retina: classes */
} head_inputs;

static void inputs_free(head_inputs *h) {
  for (size_t i = 0; i < h->n; i++) {
    if (h->anchors) free(h->anchors[i]);
    if (h->gt) free(h->gt[i]);
    if (h->pred) free(h->pred[i]);
    if (h->deltas) free(h->deltas[i]);
    if (h->gpred) free(h->gpred[i]);
    if (h->gdeltas) free(h->gdeltas[i]);
    if (h->labels) free(h->labels[i]);
    if (h->crowd) free(h->crowd[i]);
  }
  free(h->im);
  free(h->anchors);
  free(h->gt);
  free(h->pred);
  free(h->deltas);
  free(h->gpred);
  free(h->gdeltas);
  free(h->labels);
  free(h->crowd);
  memset(h, 0, sizeof *h);
}

/* Reads images[] of a case. retina = 1: labels and cls_logits [A][C] (C from
 * the first image with anchors, or *C if given), else objectness [A]. */
static detloss_status read_images(const cJSON *c, const char *path, int retina, int grad,
                                  const detloss_json_limits *lim, head_inputs *h,
                                  detloss_error *err) {
  (void)grad;
  char where[DETLOSS_WHERE_MAX], ipath[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "images");
  const cJSON *arr = dlj_plain(c, "images");
  DL_RETURN_ERROR_IF(arr == NULL, err, DETLOSS_ERR_MISSING, where, "is missing");
  DL_RETURN_ERROR_IF(!cJSON_IsArray(arr), err, DETLOSS_ERR_TYPE, where,
                     "expected an array of image objects");
  size_t n = (size_t)cJSON_GetArraySize(arr);
  DL_RETURN_ERROR_IF(n == 0, err, DETLOSS_ERR_SHAPE, where, "is empty: an empty batch has no loss");
  h->n = n;
  h->im = calloc(n, sizeof *h->im);
  h->anchors = calloc(n, sizeof(float *));
  h->gt = calloc(n, sizeof(float *));
  h->pred = calloc(n, sizeof(float *));
  h->deltas = calloc(n, sizeof(float *));
  h->gpred = calloc(n, sizeof(float *));
  h->gdeltas = calloc(n, sizeof(float *));
  h->labels = calloc(n, sizeof(int64_t *));
  h->crowd = calloc(n, sizeof(uint8_t *));
  DL_RETURN_ERROR_IF(!h->im || !h->anchors || !h->gt || !h->pred || !h->deltas || !h->gpred ||
                         !h->gdeltas || !h->labels || !h->crowd,
                     err, DETLOSS_ERR_NOMEM, where, "out of memory");
  size_t i = 0;
  for (const cJSON *e = arr->child; e; e = e->next, i++) {
    dlj_index(ipath, sizeof ipath, where, i);
    DL_RETURN_ERROR_IF(!cJSON_IsObject(e), err, DETLOSS_ERR_TYPE, ipath, "expected an object");
    static const char *const rpn_image_keys[] = {"anchors",  "gt",         "deltas", "objectness",
                                                 "is_crowd", "image_size", NULL};
    static const char *const retina_image_keys[] = {"anchors",    "gt",         "deltas",
                                                    "labels",     "cls_logits", "is_crowd",
                                                    "image_size", NULL};
    DL_FORWARD_IF_ERROR(dlj_check_keys(e, ipath, retina ? retina_image_keys : rpn_image_keys, err));
    detloss_head_image *im = &h->im[i];
    size_t A = 0, G = 0, nd = 0;
    DL_FORWARD_IF_ERROR(dlj_boxes(e, "anchors", ipath, 1, &h->anchors[i], &A, err));
    DL_FORWARD_IF_ERROR(dlj_boxes(e, "gt", ipath, 1, &h->gt[i], &G, err));
    DL_FORWARD_IF_ERROR(dlj_rows(e, "deltas", ipath, 1, 4, &h->deltas[i], &nd, err));
    if (nd != A)
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "deltas",
                         "has %zu rows but anchors has %zu", nd, A);
    dlj_tensor t;
    if (retina) {
      size_t nl = 0;
      DL_FORWARD_IF_ERROR(
          dlj_int_array(e, "labels", ipath, G > 0, 0, INT64_MAX, &h->labels[i], &nl, err));
      if (h->labels[i] != NULL && nl != G)
        return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "labels",
                           "has %zu labels but gt has %zu boxes", nl, G);
      DL_FORWARD_IF_ERROR(dlj_tensor_get(e, "cls_logits", ipath, 1, &t, err));
      h->pred[i] = t.data;
      size_t rows = t.ndim == 2 ? t.shape[0] : 0, cols = t.ndim == 2 ? t.shape[1] : 0;
      if (t.count == 0 && A == 0) {
        /* [] for an image without anchors */
      } else if (t.ndim != 2) {
        dlj_join(where, sizeof where, ipath, "cls_logits");
        return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected [A][C] logits");
      } else if (rows != A) {
        return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "cls_logits",
                           "has %zu rows but anchors has %zu", rows, A);
      } else if (h->C == 0) {
        h->C = cols;
      } else if (cols != h->C) {
        return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "cls_logits",
                           "has %zu classes but an earlier image has %zu", cols, h->C);
      }
    } else {
      DL_FORWARD_IF_ERROR(dlj_tensor_get(e, "objectness", ipath, 1, &t, err));
      h->pred[i] = t.data;
      int flat = t.ndim == 1 || (t.ndim == 2 && t.shape[1] == 1);
      if (!(flat || (t.count == 0 && A == 0))) {
        dlj_join(where, sizeof where, ipath, "objectness");
        return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected [A] logits");
      }
      if (t.count != A)
        return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "objectness",
                           "has %zu logits but anchors has %zu", t.count, A);
    }
    int64_t *crowd64 = NULL;
    size_t nc = 0;
    DL_FORWARD_IF_ERROR(dlj_int_array(e, "is_crowd", ipath, 0, 0, 1, &crowd64, &nc, err));
    if (crowd64) {
      h->crowd[i] = malloc(nc ? nc : 1);
      for (size_t k = 0; h->crowd[i] && k < nc; k++) h->crowd[i][k] = (uint8_t)crowd64[k];
      free(crowd64);
      DL_RETURN_ERROR_IF(h->crowd[i] == NULL, err, DETLOSS_ERR_NOMEM, ipath, "out of memory");
      if (nc != G)
        return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "is_crowd",
                           "has %zu flags for %zu gt boxes", nc, G);
    }
    const cJSON *sz = dlj_plain(e, "image_size");
    if (sz != NULL) {
      float *hw = NULL;
      size_t nhw = 0;
      dlj_tensor st;
      DL_FORWARD_IF_ERROR(dlj_tensor_get(e, "image_size", ipath, 1, &st, err));
      hw = st.data;
      nhw = st.count;
      if (nhw != 2 || st.ndim != 1) {
        free(hw);
        dlj_join(where, sizeof where, ipath, "image_size");
        return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected [H, W]");
      }
      im->image_h = hw[0];
      im->image_w = hw[1];
      free(hw);
      dlj_join(where, sizeof where, ipath, "image_size");
      DL_FORWARD_IF_ERROR(
          dl_check_side(lim, fmax((double)im->image_h, (double)im->image_w), where, err));
    }
    im->anchors = h->anchors[i];
    im->num_anchors = A;
    im->num_predictions = A;
    im->gt = h->gt[i];
    im->num_gt = G;
    im->labels = h->labels[i];
    im->gt_is_crowd = h->crowd[i];
    im->deltas = h->deltas[i];
    if (retina)
      im->cls_logits = h->pred[i];
    else
      im->objectness = h->pred[i];
  }
  return DETLOSS_OK;
}

static detloss_status alloc_grads(head_inputs *h, int retina, detloss_error *err) {
  for (size_t i = 0; i < h->n; i++) {
    size_t A = h->im[i].num_anchors, np = retina ? A * h->C : A;
    h->gpred[i] = malloc((np ? np : 1) * sizeof(float));
    h->gdeltas[i] = malloc((A ? 4 * A : 1) * sizeof(float));
    DL_RETURN_ERROR_IF(!h->gpred[i] || !h->gdeltas[i], err, DETLOSS_ERR_NOMEM, "images",
                       "out of memory");
    if (retina)
      h->im[i].grad_cls_logits = h->gpred[i];
    else
      h->im[i].grad_objectness = h->gpred[i];
    h->im[i].grad_deltas = h->gdeltas[i];
  }
  return DETLOSS_OK;
}

/* The matching keys shared by both ops, checked here so that errors name the
 * JSON key. */
static detloss_status read_match(const cJSON *cfg, const char *cpath, detloss_match_options *m,
                                 detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  static const dlj_match_keys keys =
      {"fg_iou_thresh", "bg_iou_thresh", "allow_low_quality", NULL, NULL, NULL, NULL,
       "allowed_border"};
  DL_FORWARD_IF_ERROR(dlj_match_options(cfg, cpath, &keys, m, err));
  if (!(m->high >= 0.0f && m->high <= 1.0f)) {
    dlj_join(where, sizeof where, cpath, "fg_iou_thresh");
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "must be in [0, 1], got %g", (double)m->high);
  }
  if (!(m->low >= 0.0f && m->low <= m->high)) {
    dlj_join(where, sizeof where, cpath, "bg_iou_thresh");
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "must be in [0, fg_iou_thresh], got %g",
                   (double)m->low);
  }
  return DETLOSS_OK;
}

static detloss_status read_weights(const cJSON *cfg, const char *cpath, float *w,
                                   detloss_error *err) {
  float *v = NULL;
  size_t n = 0;
  dlj_tensor t;
  if (dlj_plain(cfg, "box_weights") == NULL) return DETLOSS_OK;
  DL_FORWARD_IF_ERROR(dlj_tensor_get(cfg, "box_weights", cpath, 1, &t, err));
  v = t.data;
  n = t.count;
  if (n != 4 || t.ndim != 1) {
    free(v);
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, cpath, "box_weights");
    return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected 4 numbers, got %zu", n);
  }
  memcpy(w, v, 4 * sizeof(float));
  free(v);
  return DETLOSS_OK;
}

static void write_common(dlj_buf *out, const detloss_head_result *r,
                         const detloss_head_image_stats *ps, size_t n) {
  dlj_kv_int(out, "num_ignored", (long long)r->num_ignored);
  dlj_kv_num(out, "normalizer", r->normalizer);
  dlj_key(out, "nonfinite");
  dlj_boolval(out, r->nonfinite);
  dlj_key(out, "per_image");
  dlj_arr_begin(out);
  for (size_t i = 0; i < n; i++) {
    dlj_obj_begin(out);
    dlj_kv_int(out, "num_pos", (long long)ps[i].num_pos);
    dlj_kv_int(out, "num_neg", (long long)ps[i].num_neg);
    dlj_kv_int(out, "num_ignored", (long long)ps[i].num_ignored);
    dlj_kv_int(out, "num_sampled_pos", (long long)ps[i].num_sampled_pos);
    dlj_kv_int(out, "num_sampled_neg", (long long)ps[i].num_sampled_neg);
    dlj_kv_num(out, "loss_cls", (double)ps[i].loss_cls);
    dlj_kv_num(out, "loss_box_reg", (double)ps[i].loss_box_reg);
    dlj_obj_end(out);
  }
  dlj_arr_end(out);
}

static void write_grads(dlj_buf *out, const head_inputs *h, int retina) {
  dlj_key(out, retina ? "grad_cls_logits" : "grad_objectness");
  dlj_arr_begin(out);
  for (size_t i = 0; i < h->n; i++) {
    size_t shape[2] = {h->im[i].num_anchors, h->C};
    dlj_float_tensor(out, h->gpred[i], shape, retina ? 2 : 1);
  }
  dlj_arr_end(out);
  dlj_key(out, "grad_deltas");
  dlj_arr_begin(out);
  for (size_t i = 0; i < h->n; i++) {
    size_t shape[2] = {h->im[i].num_anchors, 4};
    dlj_float_tensor(out, h->gdeltas[i], shape, 2);
  }
  dlj_arr_end(out);
}

static const char *const rpn_keys[] = {"fg_iou_thresh",     "bg_iou_thresh",
                                       "allow_low_quality", "batch_size_per_image",
                                       "positive_fraction", "smooth_l1_beta",
                                       "box_weights",       "seed",
                                       "convention",        "box_loss",
                                       "allowed_border",    NULL};

detloss_status dl_case_rpn_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  char cpath[DETLOSS_WHERE_MAX], where[DETLOSS_WHERE_MAX];
  dlj_join(cpath, sizeof cpath, path, "config");
  const cJSON *cfg = dlj_plain(c, "config");
  detloss_rpn_options o = detloss_rpn_options_default();
  if (cfg != NULL) {
    DL_RETURN_ERROR_IF(!cJSON_IsObject(cfg), err, DETLOSS_ERR_TYPE, cpath, "expected an object");
    DL_FORWARD_IF_ERROR(dlj_check_keys(cfg, cpath, rpn_keys, err));
    /* A convention selects its preset; the other keys then override it. */
    DL_FORWARD_IF_ERROR(
        dlj_option(cfg, cpath, "convention", DETLOSS_OPTIONS_RPN, "convention", 0, 0, &o, err));
    if (dlj_plain(cfg, "convention")) o = detloss_rpn_options_preset(o.convention);
    DL_FORWARD_IF_ERROR(read_match(cfg, cpath, &o.match, err));
    long long b = o.sample.batch_size_per_image, seed = 0;
    DL_FORWARD_IF_ERROR(dlj_int(cfg, "batch_size_per_image", cpath, 0, 0, INT32_MAX, &b, err));
    DL_FORWARD_IF_ERROR(dlj_option(cfg, cpath, "positive_fraction", DETLOSS_OPTIONS_SAMPLE,
                                   "positive_fraction", 0, 0, &o.sample, err));
    DL_FORWARD_IF_ERROR(dlj_int(cfg, "seed", cpath, 0, 0, INT64_MAX, &seed, err));
    const double f = o.sample.positive_fraction;
    if (!(f >= 0.0 && f <= 1.0)) {
      dlj_join(where, sizeof where, cpath, "positive_fraction");
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "must be in [0, 1], got %g", f);
    }
    o.sample.batch_size_per_image = b;
    o.sample.seed = (uint64_t)seed;
    DL_FORWARD_IF_ERROR(dlj_option(cfg, cpath, "smooth_l1_beta", DETLOSS_OPTIONS_RPN,
                                   "smooth_l1_beta", 0, 0, &o, err));
    DL_FORWARD_IF_ERROR(read_weights(cfg, cpath, o.box_weights, err));
    DL_FORWARD_IF_ERROR(
        dlj_option(cfg, cpath, "box_loss", DETLOSS_OPTIONS_RPN, "box_loss", 0, 1, &o, err));
    detloss_error e2;
    if (dl_head_check_box_options(o.box_loss, o.smooth_l1_beta, o.box_weights, &e2) != DETLOSS_OK) {
      dlj_join(where, sizeof where, cpath, e2.where);
      return dl_fail(err, e2.status, where, "%s", e2.msg);
    }
  }
  o.num_threads = ctx->num_threads;
  int grad = 0;
  DL_FORWARD_IF_ERROR(dlj_bool(c, "grad", path, 0, &grad, err));
  head_inputs h;
  memset(&h, 0, sizeof h);
  detloss_status st = read_images(c, path, 0, grad, &ctx->limits, &h, err);
  if (st == DETLOSS_OK && grad) st = alloc_grads(&h, 0, err);
  detloss_head_image_stats *ps = NULL;
  detloss_head_result r;
  if (st == DETLOSS_OK) {
    ps = calloc(h.n, sizeof *ps);
    if (!ps) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  if (st == DETLOSS_OK) {
    st = detloss_rpn_loss(h.im, h.n, &r, ps, &o, err);
    if (st != DETLOSS_OK) dlj_locate(err, at, NULL, 0);
  }
  if (st == DETLOSS_OK) {
    dlj_kv_num(out, "loss_objectness", (double)r.loss_cls);
    dlj_kv_num(out, "loss_box_reg", (double)r.loss_box_reg);
    dlj_kv_int(out, "num_pos", (long long)r.num_sampled_pos);
    dlj_kv_int(out, "num_neg", (long long)r.num_sampled_neg);
    write_common(out, &r, ps, h.n);
    if (grad) write_grads(out, &h, 0);
  }
  free(ps);
  inputs_free(&h);
  return st;
}

static const char *const retina_keys[] = {"fg_iou_thresh",  "bg_iou_thresh", "allow_low_quality",
                                          "alpha",          "gamma",         "box_loss",
                                          "smooth_l1_beta", "box_weights",   "normalizer",
                                          "ema_state",      "ema_momentum",  "caller_normalizer",
                                          "allowed_border", "num_classes",   NULL};

detloss_status dl_case_retina_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                   const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  char cpath[DETLOSS_WHERE_MAX], where[DETLOSS_WHERE_MAX];
  dlj_join(cpath, sizeof cpath, path, "config");
  const cJSON *cfg = dlj_plain(c, "config");
  detloss_retina_options o = detloss_retina_options_default();
  float ema = DETLOSS_RETINA_EMA_INIT;
  long long ncls = 0;
  if (cfg != NULL) {
    DL_RETURN_ERROR_IF(!cJSON_IsObject(cfg), err, DETLOSS_ERR_TYPE, cpath, "expected an object");
    DL_FORWARD_IF_ERROR(dlj_check_keys(cfg, cpath, retina_keys, err));
    DL_FORWARD_IF_ERROR(read_match(cfg, cpath, &o.match, err));
    DL_FORWARD_IF_ERROR(
        dlj_option(cfg, cpath, "alpha", DETLOSS_OPTIONS_RETINA, "alpha", 0, 0, &o, err));
    DL_FORWARD_IF_ERROR(
        dlj_option(cfg, cpath, "gamma", DETLOSS_OPTIONS_RETINA, "gamma", 0, 0, &o, err));
    if (!(o.gamma >= 0.0f)) {
      dlj_join(where, sizeof where, cpath, "gamma");
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "must be >= 0, got %g", (double)o.gamma);
    }
    DL_FORWARD_IF_ERROR(
        dlj_option(cfg, cpath, "box_loss", DETLOSS_OPTIONS_RETINA, "box_loss", 0, 1, &o, err));
    DL_FORWARD_IF_ERROR(dlj_option(cfg, cpath, "smooth_l1_beta", DETLOSS_OPTIONS_RETINA,
                                   "smooth_l1_beta", 0, 0, &o, err));
    DL_FORWARD_IF_ERROR(read_weights(cfg, cpath, o.box_weights, err));
    detloss_error e2;
    if (dl_head_check_box_options(o.box_loss, o.smooth_l1_beta, o.box_weights, &e2) != DETLOSS_OK) {
      dlj_join(where, sizeof where, cpath, e2.where);
      return dl_fail(err, e2.status, where, "%s", e2.msg);
    }
    DL_FORWARD_IF_ERROR(
        dlj_option(cfg, cpath, "normalizer", DETLOSS_OPTIONS_RETINA, "normalizer", 0, 0, &o, err));
    DL_FORWARD_IF_ERROR(dlj_float(cfg, "ema_state", cpath, 0, &ema, err));
    DL_FORWARD_IF_ERROR(dlj_option(cfg, cpath, "ema_momentum", DETLOSS_OPTIONS_RETINA,
                                   "ema_momentum", 0, 0, &o, err));
    DL_FORWARD_IF_ERROR(dlj_option(cfg, cpath, "caller_normalizer", DETLOSS_OPTIONS_RETINA,
                                   "caller_normalizer", o.normalizer == DETLOSS_RETINA_NORM_CALLER,
                                   0, &o, err));
    DL_FORWARD_IF_ERROR(dlj_int(cfg, "num_classes", cpath, 0, 1, INT32_MAX, &ncls, err));
    const char *bad = NULL;
    if (!(ema >= 0.0f))
      bad = "ema_state";
    else if (!(o.ema_momentum >= 0.0f && o.ema_momentum <= 1.0f))
      bad = "ema_momentum";
    else if (o.normalizer == DETLOSS_RETINA_NORM_CALLER && !(o.caller_normalizer > 0.0))
      bad = "caller_normalizer";
    if (bad) {
      dlj_join(where, sizeof where, cpath, bad);
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "out of range");
    }
  }
  o.ema_state = &ema;
  o.num_threads = ctx->num_threads;
  int grad = 0;
  DL_FORWARD_IF_ERROR(dlj_bool(c, "grad", path, 0, &grad, err));
  head_inputs h;
  memset(&h, 0, sizeof h);
  detloss_status st = read_images(c, path, 1, grad, &ctx->limits, &h, err);
  if (st == DETLOSS_OK && ncls > 0) {
    if (h.C != 0 && h.C != (size_t)ncls) {
      dlj_join(where, sizeof where, cpath, "num_classes");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "is %lld but cls_logits have %zu columns", ncls,
                   h.C);
    }
    h.C = (size_t)ncls;
  }
  if (st == DETLOSS_OK && h.C == 0) {
    dlj_join(where, sizeof where, cpath, "num_classes");
    st = dl_fail(err, DETLOSS_ERR_MISSING, where,
                 "is needed when no image has an anchor (cls_logits give no class count)");
  }
  if (st == DETLOSS_OK && grad) st = alloc_grads(&h, 1, err);
  detloss_head_image_stats *ps = NULL;
  detloss_head_result r;
  if (st == DETLOSS_OK) {
    ps = calloc(h.n, sizeof *ps);
    if (!ps) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  if (st == DETLOSS_OK) {
    st = detloss_retina_loss(h.im, h.n, h.C, &r, ps, &o, err);
    if (st != DETLOSS_OK) dlj_locate(err, at, NULL, 0);
  }
  if (st == DETLOSS_OK) {
    dlj_kv_num(out, "loss_cls", (double)r.loss_cls);
    dlj_kv_num(out, "loss_box_reg", (double)r.loss_box_reg);
    dlj_kv_int(out, "num_pos", (long long)r.num_pos);
    dlj_kv_int(out, "num_neg", (long long)r.num_neg);
    write_common(out, &r, ps, h.n);
    if (o.normalizer == DETLOSS_RETINA_NORM_DETECTRON2_EMA)
      dlj_kv_num(out, "ema_state", (double)ema);
    if (grad) write_grads(out, &h, 1);
  }
  free(ps);
  inputs_free(&h);
  return st;
}
