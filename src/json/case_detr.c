/*
 * case_detr.c - compute op `detr_loss` (docs/compute-cases.md, DETR's
 * SetCriterion + HungarianMatcher; docs/math/detr_loss.md).
 *
 * config {cls_loss "softmax" | "focal", eos_coef 0.1, focal_alpha 0.25,
 *   focal_gamma 2, cost_class 1 (focal 2), cost_bbox 5, cost_giou 2,
 *   weight_ce 1 (focal 2), weight_bbox 5, weight_giou 2, num_boxes null},
 * images [{pred_logits [Q][K], pred_boxes [Q][4], labels [G], boxes [G][4]}]
 * (boxes normalised (cx, cy, w, h); the same Q and K in every image), grad ->
 * loss_ce, loss_bbox, loss_giou, loss, matches [images][Q] and, with grad,
 * grad_pred_logits [images][Q][K], grad_pred_boxes [images][Q][4]. Also:
 * num_boxes (the divisor used), num_matched, nonfinite.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"

typedef struct detr_inputs {
  size_t n, Q, K;
  detloss_detr_image *im;
  float **logits, **pboxes, **boxes, **glogits, **gboxes;
  int64_t **labels, **matches;
} detr_inputs;

static void inputs_free(detr_inputs *h) {
  for (size_t i = 0; i < h->n; i++) {
    if (h->logits) free(h->logits[i]);
    if (h->pboxes) free(h->pboxes[i]);
    if (h->boxes) free(h->boxes[i]);
    if (h->glogits) free(h->glogits[i]);
    if (h->gboxes) free(h->gboxes[i]);
    if (h->labels) free(h->labels[i]);
    if (h->matches) free(h->matches[i]);
  }
  free(h->im);
  free(h->logits);
  free(h->pboxes);
  free(h->boxes);
  free(h->glogits);
  free(h->gboxes);
  free(h->labels);
  free(h->matches);
  memset(h, 0, sizeof *h);
}

static const char *const config_keys[] = {"cls_loss",    "eos_coef",   "focal_alpha",
                                          "focal_gamma", "cost_class", "cost_bbox",
                                          "cost_giou",   "weight_ce",  "weight_bbox",
                                          "weight_giou", "num_boxes",  NULL};

static detloss_status read_config(const cJSON *c, const char *path, detloss_detr_options *o,
                                  detloss_error *err) {
  char cpath[DETLOSS_WHERE_MAX], where[DETLOSS_WHERE_MAX];
  dlj_join(cpath, sizeof cpath, path, "config");
  *o = detloss_detr_options_default();
  const cJSON *cfg = dlj_field(c, "config");
  if (cfg == NULL) return DETLOSS_OK;
  DL_RETURN_ERROR_IF(!cJSON_IsObject(cfg), err, DETLOSS_ERR_TYPE, cpath, "expected an object");
  DL_FORWARD_IF_ERROR(dlj_check_keys(cfg, cpath, config_keys, err));
  const char *cls = "softmax";
  DL_FORWARD_IF_ERROR(dlj_string(cfg, "cls_loss", cpath, 0, &cls, err));
  if (strcmp(cls, "focal") == 0) {
    *o = detloss_detr_options_focal();
  } else if (strcmp(cls, "softmax") != 0) {
    return dlj_fail_at(err, DETLOSS_ERR_UNKNOWN, cpath, "cls_loss",
                       "unknown class loss '%s' (expected softmax or focal)", cls);
  }
  struct {
    const char *key;
    float *v;
  } fields[] = {{"eos_coef", &o->eos_coef},       {"focal_alpha", &o->focal_alpha},
                {"focal_gamma", &o->focal_gamma}, {"cost_class", &o->cost_class},
                {"cost_bbox", &o->cost_bbox},     {"cost_giou", &o->cost_giou},
                {"weight_ce", &o->weight_ce},     {"weight_bbox", &o->weight_bbox},
                {"weight_giou", &o->weight_giou}};
  for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
    DL_FORWARD_IF_ERROR(dlj_float(cfg, fields[k].key, cpath, 0, fields[k].v, err));
  const cJSON *nb = dlj_field(cfg, "num_boxes");
  if (nb != NULL && !cJSON_IsNull(nb)) {
    double v = -1.0;
    DL_FORWARD_IF_ERROR(dlj_number(cfg, "num_boxes", cpath, 1, &v, err));
    dlj_join(where, sizeof where, cpath, "num_boxes");
    DL_RETURN_ERROR_IF(!(v >= 0.0) || !isfinite(v), err, DETLOSS_ERR_RANGE, where,
                       "must be a finite number >= 0 or null (the batch's gt count), got %g", v);
    o->num_boxes = v;
  }
  return DETLOSS_OK;
}

/* images[]: the same Q (rows of pred_logits) and K (its columns) in every image. */
static detloss_status read_images(const cJSON *c, const char *path, int grad, detr_inputs *h,
                                  detloss_error *err) {
  char where[DETLOSS_WHERE_MAX], ipath[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "images");
  const cJSON *arr = dlj_field(c, "images");
  DL_RETURN_ERROR_IF(arr == NULL, err, DETLOSS_ERR_MISSING, where, "is missing");
  DL_RETURN_ERROR_IF(!cJSON_IsArray(arr), err, DETLOSS_ERR_TYPE, where,
                     "expected an array of image objects");
  size_t n = (size_t)cJSON_GetArraySize(arr);
  DL_RETURN_ERROR_IF(n == 0, err, DETLOSS_ERR_SHAPE, where, "is empty: an empty batch has no loss");
  h->n = n;
  h->im = calloc(n, sizeof *h->im);
  h->logits = calloc(n, sizeof(float *));
  h->pboxes = calloc(n, sizeof(float *));
  h->boxes = calloc(n, sizeof(float *));
  h->glogits = calloc(n, sizeof(float *));
  h->gboxes = calloc(n, sizeof(float *));
  h->labels = calloc(n, sizeof(int64_t *));
  h->matches = calloc(n, sizeof(int64_t *));
  DL_RETURN_ERROR_IF(!h->im || !h->logits || !h->pboxes || !h->boxes || !h->glogits || !h->gboxes ||
                         !h->labels || !h->matches,
                     err, DETLOSS_ERR_NOMEM, where, "out of memory");
  static const char *const image_keys[] = {"pred_logits", "pred_boxes", "labels", "boxes", NULL};
  size_t i = 0;
  for (const cJSON *e = arr->child; e; e = e->next, i++) {
    dlj_index(ipath, sizeof ipath, where, i);
    DL_RETURN_ERROR_IF(!cJSON_IsObject(e), err, DETLOSS_ERR_TYPE, ipath, "expected an object");
    DL_FORWARD_IF_ERROR(dlj_check_keys(e, ipath, image_keys, err));
    detloss_detr_image *im = &h->im[i];
    dlj_tensor t;
    DL_FORWARD_IF_ERROR(dlj_tensor_get(e, "pred_logits", ipath, 1, &t, err));
    h->logits[i] = t.data;
    if (t.ndim != 2 || t.count == 0) {
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "pred_logits",
                         "expected [Q][K] logits with Q >= 1 (K = C + 1 for softmax, C for focal)");
    }
    if (i == 0) {
      h->Q = t.shape[0];
      h->K = t.shape[1];
    } else if (t.shape[0] != h->Q) {
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "pred_logits",
                         "has %zu queries but images[0] has %zu", t.shape[0], h->Q);
    } else if (t.shape[1] != h->K) {
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "pred_logits",
                         "has %zu columns but images[0] has %zu", t.shape[1], h->K);
    }
    size_t nq = 0, G = 0, nl = 0;
    DL_FORWARD_IF_ERROR(dlj_boxes(e, "pred_boxes", ipath, 1, &h->pboxes[i], &nq, err));
    if (nq != h->Q)
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "pred_boxes",
                         "has %zu boxes but pred_logits has %zu rows", nq, h->Q);
    DL_FORWARD_IF_ERROR(dlj_boxes(e, "boxes", ipath, 1, &h->boxes[i], &G, err));
    DL_FORWARD_IF_ERROR(
        dlj_int_array(e, "labels", ipath, 1, 0, INT64_MAX, &h->labels[i], &nl, err));
    if (nl != G)
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "labels",
                         "has %zu labels but boxes has %zu boxes", nl, G);
    h->matches[i] = malloc(h->Q * sizeof(int64_t));
    DL_RETURN_ERROR_IF(!h->matches[i], err, DETLOSS_ERR_NOMEM, ipath, "out of memory");
    if (grad) {
      h->glogits[i] = malloc(h->Q * h->K * sizeof(float));
      h->gboxes[i] = malloc(h->Q * 4 * sizeof(float));
      DL_RETURN_ERROR_IF(!h->glogits[i] || !h->gboxes[i], err, DETLOSS_ERR_NOMEM, ipath,
                         "out of memory");
    }
    im->pred_logits = h->logits[i];
    im->pred_boxes = h->pboxes[i];
    im->boxes = h->boxes[i];
    im->labels = h->labels[i];
    im->num_gt = G;
    im->matches = h->matches[i];
    im->grad_pred_logits = h->glogits[i];
    im->grad_pred_boxes = h->gboxes[i];
  }
  return DETLOSS_OK;
}

/* The library names options and the class count; these are their keys. */
static void locate(detloss_error *err, const dlj_path *at) {
  static const dlj_arg args[] = {
      {"num_logits", "images[0].pred_logits", NULL, 0, 1},
      {"eos_coef", "config.eos_coef", NULL, 0, 1},
      {"focal_alpha", "config.focal_alpha", NULL, 0, 1},
      {"focal_gamma", "config.focal_gamma", NULL, 0, 1},
      {"cost_class", "config.cost_class", NULL, 0, 1},
      {"cost_bbox", "config.cost_bbox", NULL, 0, 1},
      {"cost_giou", "config.cost_giou", NULL, 0, 1},
      {"weight_ce", "config.weight_ce", NULL, 0, 1},
      {"weight_bbox", "config.weight_bbox", NULL, 0, 1},
      {"weight_giou", "config.weight_giou", NULL, 0, 1},
      {"num_boxes", "config.num_boxes", NULL, 0, 1},
  };
  dlj_locate(err, at, args, sizeof args / sizeof args[0]);
}

detloss_status dl_case_detr_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                 const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  detloss_detr_options o;
  DL_FORWARD_IF_ERROR(read_config(c, path, &o, err));
  o.num_threads = ctx->num_threads;
  int grad = 0;
  DL_FORWARD_IF_ERROR(dlj_bool(c, "grad", path, 0, &grad, err));
  detr_inputs h;
  memset(&h, 0, sizeof h);
  detloss_status st = read_images(c, path, grad, &h, err);
  /* Each image's Q x G cost block bounds the matcher's memory and its solver's
   * O(min(Q, G)^2 max(Q, G)) work, as the cost matrix of `assign` hungarian. */
  for (size_t i = 0; st == DETLOSS_OK && i < h.n; i++) {
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "%s%simages[%zu].boxes", path, path[0] ? "." : "", i);
    st = dl_check_output(&ctx->limits, (double)h.Q * (double)h.im[i].num_gt, where,
                         "the matching cost block (queries x gt)", err);
  }
  detloss_detr_result r;
  if (st == DETLOSS_OK) {
    st = detloss_detr_loss(h.im, h.n, h.Q, h.K, &r, &o, err);
    if (st != DETLOSS_OK) locate(err, at);
  }
  if (st == DETLOSS_OK) {
    dlj_kv_num(out, "loss_ce", (double)r.loss_ce);
    dlj_kv_num(out, "loss_bbox", (double)r.loss_bbox);
    dlj_kv_num(out, "loss_giou", (double)r.loss_giou);
    dlj_kv_num(out, "loss", (double)r.loss);
    dlj_kv_num(out, "num_boxes", r.num_boxes);
    dlj_kv_int(out, "num_matched", (long long)r.num_matched);
    dlj_key(out, "nonfinite");
    dlj_boolval(out, r.nonfinite);
    dlj_key(out, "matches");
    dlj_arr_begin(out);
    for (size_t i = 0; i < h.n; i++) dlj_int64_tensor(out, h.matches[i], &h.Q, 1);
    dlj_arr_end(out);
    if (grad) {
      size_t shape[2] = {h.Q, h.K};
      dlj_key(out, "grad_pred_logits");
      dlj_arr_begin(out);
      for (size_t i = 0; i < h.n; i++) dlj_float_tensor(out, h.glogits[i], shape, 2);
      dlj_arr_end(out);
      shape[1] = 4;
      dlj_key(out, "grad_pred_boxes");
      dlj_arr_begin(out);
      for (size_t i = 0; i < h.n; i++) dlj_float_tensor(out, h.gboxes[i], shape, 2);
      dlj_arr_end(out);
    }
  }
  inputs_free(&h);
  return st;
}
