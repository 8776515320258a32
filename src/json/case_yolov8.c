/*
 * case_yolov8.c - compute op `yolov8_loss` (ultralytics v8DetectionLoss;
 * docs/compute-cases.md, docs/math/yolov8_loss.md).
 *
 * config {strides [8, 16, 32], reg_max 16, topk 10, alpha 0.5, beta 6.0, box 7.5,
 *   cls 0.5, dfl 1.5}, image_size [H, W], images [{gt [G][4] (pixels), labels [G],
 *   pred_distri [A][4 reg_max], pred_scores [A][C]}], grad -> loss, loss_box, loss_cls,
 *   loss_dfl, num_fg, assigned_gt [images][A], with grad: grad_pred_distri
 *   [images][A][4 reg_max], grad_pred_scores [images][A][C].
 * Extra config key: target_score_sum (the caller's normaliser, e.g. all-reduced over
 * ranks; S = max(it, 1)). Extra outputs: target_score_sum (this batch's sum),
 * normalizer (S).
 * A = sum over levels of (H/s)(W/s); every image has A rows and the same C.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"

static const char *const yolo_keys[] = {"strides", "reg_max", "topk",
                                        "alpha",   "beta",    "box",
                                        "cls",     "dfl",     "target_score_sum",
                                        NULL};
static const char *const image_keys[] = {"gt", "labels", "pred_distri", "pred_scores", NULL};

typedef struct y8_inputs {
  size_t n, C;
  detloss_yolov8_image *im;
  float **gt, **pd, **ps, **gd, **gs;
  int64_t **labels, **assigned;
} y8_inputs;

static void inputs_free(y8_inputs *h) {
  for (size_t i = 0; i < h->n; i++) {
    if (h->gt) free(h->gt[i]);
    if (h->pd) free(h->pd[i]);
    if (h->ps) free(h->ps[i]);
    if (h->gd) free(h->gd[i]);
    if (h->gs) free(h->gs[i]);
    if (h->labels) free(h->labels[i]);
    if (h->assigned) free(h->assigned[i]);
  }
  free(h->im);
  free(h->gt);
  free(h->pd);
  free(h->ps);
  free(h->gd);
  free(h->gs);
  free(h->labels);
  free(h->assigned);
  memset(h, 0, sizeof *h);
}

static detloss_status read_config(const cJSON *c, const char *path, detloss_yolov8_options *o,
                                  detloss_error *err) {
  char cpath[DETLOSS_WHERE_MAX], where[DETLOSS_WHERE_MAX];
  dlj_join(cpath, sizeof cpath, path, "config");
  const cJSON *cfg = dlj_field(c, "config");
  if (cfg == NULL) return DETLOSS_OK;
  DL_RETURN_ERROR_IF(!cJSON_IsObject(cfg), err, DETLOSS_ERR_TYPE, cpath, "expected an object");
  DL_FORWARD_IF_ERROR(dlj_check_keys(cfg, cpath, yolo_keys, err));
  if (dlj_field(cfg, "strides") != NULL) {
    dlj_tensor t;
    DL_FORWARD_IF_ERROR(dlj_tensor_get(cfg, "strides", cpath, 1, &t, err));
    dlj_join(where, sizeof where, cpath, "strides");
    if (t.ndim != 1 || t.count < 1 || t.count > DETLOSS_YOLOV8_MAX_LEVELS) {
      dlj_tensor_free(&t);
      return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected 1 to %d strides",
                     DETLOSS_YOLOV8_MAX_LEVELS);
    }
    for (size_t l = 0; l < t.count; l++) {
      if (t.data[l] > 0.0f && t.data[l] == floorf(t.data[l])) continue;
      char w2[DETLOSS_WHERE_MAX];
      dlj_index(w2, sizeof w2, where, l);
      float v = t.data[l];
      dlj_tensor_free(&t);
      return dl_fail(err, DETLOSS_ERR_RANGE, w2, "is %g, expected a positive integer", (double)v);
    }
    memcpy(o->strides, t.data, t.count * sizeof(float));
    o->num_levels = t.count;
    dlj_tensor_free(&t);
  }
  long long reg = (long long)o->reg_max, topk = o->topk;
  DL_FORWARD_IF_ERROR(dlj_int(cfg, "reg_max", cpath, 0, 2, 1024, &reg, err));
  DL_FORWARD_IF_ERROR(dlj_int(cfg, "topk", cpath, 0, 1, INT32_MAX, &topk, err));
  o->reg_max = (size_t)reg;
  o->topk = topk;
  struct {
    const char *key;
    float *v;
    int positive;
  } fl[] = {{"alpha", &o->alpha, 0},
            {"beta", &o->beta, 1},
            {"box", &o->gain_box, 0},
            {"cls", &o->gain_cls, 0},
            {"dfl", &o->gain_dfl, 0}};
  for (size_t k = 0; k < sizeof fl / sizeof fl[0]; k++) {
    DL_FORWARD_IF_ERROR(dlj_float(cfg, fl[k].key, cpath, 0, fl[k].v, err));
    float v = *fl[k].v;
    if (fl[k].positive ? v > 0.0f : v >= 0.0f) continue;
    dlj_join(where, sizeof where, cpath, fl[k].key);
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %g, expected a number %s 0", (double)v,
                   fl[k].positive ? ">" : ">=");
  }
  const cJSON *tss = dlj_field(cfg, "target_score_sum");
  if (tss != NULL && !cJSON_IsNull(tss)) {
    double v = 0.0;
    DL_FORWARD_IF_ERROR(dlj_number(cfg, "target_score_sum", cpath, 1, &v, err));
    if (!(v > 0.0)) {
      return dlj_fail_at(err, DETLOSS_ERR_RANGE, cpath, "target_score_sum",
                         "is %g, expected a number > 0 (or null)", v);
    }
    o->target_score_sum = v;
  }
  return DETLOSS_OK;
}

/* A [rows][cols] tensor (or [] with rows = 0) into *out; cols = 0 on entry takes the
 * tensor's (the class count), else it must match. */
static detloss_status read_matrix(const cJSON *e, const char *ipath, const char *key, size_t rows,
                                  size_t *cols, const char *what, float **out, detloss_error *err) {
  dlj_tensor t;
  DL_FORWARD_IF_ERROR(dlj_tensor_get(e, key, ipath, 1, &t, err));
  *out = t.data;
  if (t.count == 0 && rows == 0) return DETLOSS_OK;
  if (t.ndim != 2) return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, key, "expected [A][%s]", what);
  if (t.shape[0] != rows)
    return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, key,
                       "has %zu rows but the layout has %zu anchor points", t.shape[0], rows);
  if (*cols == 0) *cols = t.shape[1];
  if (t.shape[1] != *cols)
    return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, key, "has rows of %zu numbers, expected %zu",
                       t.shape[1], *cols);
  return DETLOSS_OK;
}

detloss_status dl_case_yolov8_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                   const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  char where[DETLOSS_WHERE_MAX], ipath[DETLOSS_WHERE_MAX];
  detloss_yolov8_options o = detloss_yolov8_options_default();
  DL_FORWARD_IF_ERROR(read_config(c, path, &o, err));
  o.num_threads = ctx->num_threads;
  /* image_size [H, W], each a multiple of every stride */
  dlj_tensor sz;
  DL_FORWARD_IF_ERROR(dlj_tensor_get(c, "image_size", path, 1, &sz, err));
  dlj_join(where, sizeof where, path, "image_size");
  float hw[2] = {0.0f, 0.0f};
  int ok = sz.ndim == 1 && sz.count == 2;
  if (ok) memcpy(hw, sz.data, sizeof hw);
  dlj_tensor_free(&sz);
  DL_RETURN_ERROR_IF(!ok, err, DETLOSS_ERR_SHAPE, where, "expected [H, W]");
  DL_RETURN_ERROR_IF(!(hw[0] >= 1.0f && hw[1] >= 1.0f && hw[0] == floorf(hw[0]) &&
                       hw[1] == floorf(hw[1])),
                     err, DETLOSS_ERR_RANGE, where, "expected two positive integers");
  DL_FORWARD_IF_ERROR(dl_check_side(&ctx->limits, fmax((double)hw[0], (double)hw[1]), where, err));
  const size_t H = (size_t)hw[0], W = (size_t)hw[1];
  size_t A = 0;
  for (size_t l = 0; l < o.num_levels; l++) {
    size_t s = (size_t)o.strides[l];
    if (H % s != 0 || W % s != 0) {
      char w2[DETLOSS_WHERE_MAX];
      dlj_index(w2, sizeof w2, where, H % s != 0 ? 0 : 1);
      return dl_fail(err, DETLOSS_ERR_SHAPE, w2, "is %zu, not a multiple of stride %zu",
                     H % s != 0 ? H : W, s);
    }
    A += (H / s) * (W / s);
  }
  if ((uint64_t)o.topk > (uint64_t)A) {
    char cp[DETLOSS_WHERE_MAX];
    dlj_join(cp, sizeof cp, path, "config");
    return dlj_fail_at(err, DETLOSS_ERR_SHAPE, cp, "topk",
                       "is %lld but the layout has only %zu anchors", (long long)o.topk, A);
  }
  int grad = 0;
  DL_FORWARD_IF_ERROR(dlj_bool(c, "grad", path, 0, &grad, err));
  dlj_join(where, sizeof where, path, "images");
  const cJSON *arr = dlj_field(c, "images");
  DL_RETURN_ERROR_IF(arr == NULL, err, DETLOSS_ERR_MISSING, where, "is missing");
  DL_RETURN_ERROR_IF(!cJSON_IsArray(arr), err, DETLOSS_ERR_TYPE, where,
                     "expected an array of image objects");
  size_t n = (size_t)cJSON_GetArraySize(arr);
  DL_RETURN_ERROR_IF(n == 0, err, DETLOSS_ERR_SHAPE, where, "is empty: an empty batch has no loss");
  y8_inputs h;
  memset(&h, 0, sizeof h);
  h.n = n;
  h.im = calloc(n, sizeof *h.im);
  h.gt = calloc(n, sizeof(float *));
  h.pd = calloc(n, sizeof(float *));
  h.ps = calloc(n, sizeof(float *));
  h.gd = calloc(n, sizeof(float *));
  h.gs = calloc(n, sizeof(float *));
  h.labels = calloc(n, sizeof(int64_t *));
  h.assigned = calloc(n, sizeof(int64_t *));
  detloss_status st = DETLOSS_OK;
  if (!h.im || !h.gt || !h.pd || !h.ps || !h.gd || !h.gs || !h.labels || !h.assigned)
    st = dl_fail(err, DETLOSS_ERR_NOMEM, where, "out of memory");
  const size_t R4 = 4 * o.reg_max;
  size_t i = 0;
  for (const cJSON *e = arr->child; st == DETLOSS_OK && e; e = e->next, i++) {
    dlj_index(ipath, sizeof ipath, where, i);
    if (!cJSON_IsObject(e)) {
      st = dl_fail(err, DETLOSS_ERR_TYPE, ipath, "expected an object");
      break;
    }
    size_t G = 0, nl = 0, r4 = R4;
    st = dlj_check_keys(e, ipath, image_keys, err);
    if (st == DETLOSS_OK) st = dlj_boxes(e, "gt", ipath, 1, &h.gt[i], &G, err);
    if (st == DETLOSS_OK)
      st = dlj_int_array(e, "labels", ipath, 1, 0, INT64_MAX, &h.labels[i], &nl, err);
    if (st == DETLOSS_OK && nl != G)
      st = dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "labels",
                       "has %zu labels but gt has %zu boxes", nl, G);
    if (st == DETLOSS_OK)
      st = read_matrix(e, ipath, "pred_distri", A, &r4, "4 reg_max", &h.pd[i], err);
    if (st == DETLOSS_OK) st = read_matrix(e, ipath, "pred_scores", A, &h.C, "C", &h.ps[i], err);
    if (st != DETLOSS_OK) break;
    for (size_t g = 0; g < G; g++) {
      if ((size_t)h.labels[i][g] < h.C || h.C == 0) continue;
      char w2[DETLOSS_WHERE_MAX], w3[DETLOSS_WHERE_MAX];
      dlj_join(w2, sizeof w2, ipath, "labels");
      dlj_index(w3, sizeof w3, w2, g);
      st = dl_fail(err, DETLOSS_ERR_RANGE, w3, "is %lld, expected a class in [0, %zu)",
                   (long long)h.labels[i][g], h.C);
      break;
    }
    detloss_yolov8_image *im = &h.im[i];
    im->gt = h.gt[i];
    im->num_gt = G;
    im->labels = h.labels[i];
    im->pred_distri = h.pd[i];
    im->pred_scores = h.ps[i];
  }
  if (st == DETLOSS_OK && h.C == 0) {
    /* A = 0 cannot happen (H, W >= 1 and a multiple of every stride) */
    st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "pred_scores have no class column");
  }
  for (i = 0; st == DETLOSS_OK && i < n; i++) {
    h.assigned[i] = malloc(A * sizeof(int64_t));
    h.im[i].assigned_gt = h.assigned[i];
    if (grad) {
      h.gd[i] = malloc(A * R4 * sizeof(float));
      h.gs[i] = malloc(A * h.C * sizeof(float));
      h.im[i].grad_pred_distri = h.gd[i];
      h.im[i].grad_pred_scores = h.gs[i];
    }
    if (!h.assigned[i] || (grad && (!h.gd[i] || !h.gs[i])))
      st = dl_fail(err, DETLOSS_ERR_NOMEM, where, "out of memory");
  }
  detloss_yolov8_result r;
  if (st == DETLOSS_OK) {
    st = detloss_yolov8_loss(H, W, h.C, h.im, n, &r, &o, err);
    if (st != DETLOSS_OK) {
      const dlj_arg args[] =
          {{"strides", "config.strides", NULL, -1, 0}, {"reg_max", "config.reg_max", NULL, -1, 1},
           {"topk", "config.topk", NULL, -1, 1},       {"alpha", "config.alpha", NULL, -1, 1},
           {"beta", "config.beta", NULL, -1, 1},       {"gain_box", "config.box", NULL, -1, 1},
           {"gain_cls", "config.cls", NULL, -1, 1},    {"gain_dfl", "config.dfl", NULL, -1, 1},
           {"image_h", "image_size", NULL, -1, 1},     {"image_w", "image_size", NULL, -1, 1}};
      dlj_locate(err, at, args, sizeof args / sizeof args[0]);
    }
  }
  if (st == DETLOSS_OK) {
    dlj_kv_num(out, "loss", (double)r.loss);
    dlj_kv_num(out, "loss_box", (double)r.loss_box);
    dlj_kv_num(out, "loss_cls", (double)r.loss_cls);
    dlj_kv_num(out, "loss_dfl", (double)r.loss_dfl);
    dlj_kv_int(out, "num_fg", (long long)r.num_fg);
    dlj_kv_num(out, "target_score_sum", r.target_score_sum);
    dlj_kv_num(out, "normalizer", r.normalizer);
    dlj_key(out, "assigned_gt");
    dlj_arr_begin(out);
    for (i = 0; i < n; i++) {
      size_t shape[1] = {A};
      dlj_int64_tensor(out, h.assigned[i], shape, 1);
    }
    dlj_arr_end(out);
    if (grad) {
      dlj_key(out, "grad_pred_distri");
      dlj_arr_begin(out);
      for (i = 0; i < n; i++) {
        size_t shape[2] = {A, R4};
        dlj_float_tensor(out, h.gd[i], shape, 2);
      }
      dlj_arr_end(out);
      dlj_key(out, "grad_pred_scores");
      dlj_arr_begin(out);
      for (i = 0; i < n; i++) {
        size_t shape[2] = {A, h.C};
        dlj_float_tensor(out, h.gs[i], shape, 2);
      }
      dlj_arr_end(out);
    }
  }
  inputs_free(&h);
  return st;
}
