/*
 * case_fcos.c - compute op `fcos_loss` (docs/compute-cases.md, docs/math/fcos_loss.md).
 *
 * config {strides [8,16,32,64,128], regress_ranges (FCOS's five), center_sampling
 *   true, center_sample_radius 1.5, norm_on_bbox true, alpha 0.25, gamma 2, box_loss
 *   "giou" | "iou", avg_num_pos null, avg_centerness_sum null}; extra key: variant
 *   "mmdet" (default) | "torchvision" (torchvision 0.14 FCOSHead: points at x s,
 *   ranges from the strides, see detloss_fcos_loss_variant).
 * feature_maps [[h, w] per level]; images [{gt [G][4], labels [G], cls_logits [P][C],
 *   bbox_pred [P][4], centerness [P]}]; grad.
 * Output: loss_cls, loss_bbox, loss_centerness, num_pos, labels [images][P]; with
 *   grad: grad_cls_logits, grad_bbox_pred, grad_centerness; extras num_pos_norm,
 *   centerness_norm, nonfinite.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"

typedef struct fcos_inputs {
  size_t n, C;
  detloss_fcos_image *im;
  float **gt, **cls, **bbox, **ctr, **gcls, **gbbox, **gctr;
  int64_t **labels, **alab;
} fcos_inputs;

static void inputs_free(fcos_inputs *h) {
  float **fl[] = {h->gt, h->cls, h->bbox, h->ctr, h->gcls, h->gbbox, h->gctr};
  for (size_t k = 0; k < sizeof fl / sizeof fl[0]; k++) {
    for (size_t i = 0; fl[k] && i < h->n; i++) free(fl[k][i]);
    free(fl[k]);
  }
  for (size_t i = 0; i < h->n; i++) {
    if (h->labels) free(h->labels[i]);
    if (h->alab) free(h->alab[i]);
  }
  free(h->labels);
  free(h->alab);
  free(h->im);
  memset(h, 0, sizeof *h);
}

/* images[]: every per-point array must have P rows. */
static detloss_status read_images(const cJSON *c, const char *path, size_t P, int grad,
                                  fcos_inputs *h, detloss_error *err) {
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
  float ***fl[] = {&h->gt, &h->cls, &h->bbox, &h->ctr, &h->gcls, &h->gbbox, &h->gctr};
  for (size_t k = 0; k < sizeof fl / sizeof fl[0]; k++) *fl[k] = calloc(n, sizeof(float *));
  h->labels = calloc(n, sizeof(int64_t *));
  h->alab = calloc(n, sizeof(int64_t *));
  DL_RETURN_ERROR_IF(!h->im || !h->gt || !h->cls || !h->bbox || !h->ctr || !h->gcls || !h->gbbox ||
                         !h->gctr || !h->labels || !h->alab,
                     err, DETLOSS_ERR_NOMEM, where, "out of memory");
  static const char *const keys[] = {"gt", "labels", "cls_logits", "bbox_pred", "centerness", NULL};
  size_t i = 0;
  for (const cJSON *e = arr->child; e; e = e->next, i++) {
    dlj_index(ipath, sizeof ipath, where, i);
    DL_RETURN_ERROR_IF(!cJSON_IsObject(e), err, DETLOSS_ERR_TYPE, ipath, "expected an object");
    DL_FORWARD_IF_ERROR(dlj_check_keys(e, ipath, keys, err));
    size_t G = 0, nl = 0, nb = 0;
    DL_FORWARD_IF_ERROR(dlj_boxes(e, "gt", ipath, 1, &h->gt[i], &G, err));
    DL_FORWARD_IF_ERROR(
        dlj_int_array(e, "labels", ipath, 1, INT64_MIN, INT64_MAX, &h->labels[i], &nl, err));
    if (nl != G)
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "labels",
                         "has %zu labels but gt has %zu boxes", nl, G);
    dlj_tensor t;
    DL_FORWARD_IF_ERROR(dlj_tensor_get(e, "cls_logits", ipath, 1, &t, err));
    h->cls[i] = t.data;
    if (t.ndim != 2 || t.shape[1] == 0) {
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "cls_logits",
                         "expected [P][C] logits, C >= 1");
    }
    if (t.shape[0] != P)
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "cls_logits",
                         "has %zu rows but the feature maps have %zu points", t.shape[0], P);
    if (h->C == 0) h->C = t.shape[1];
    if (t.shape[1] != h->C)
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "cls_logits",
                         "has %zu classes but an earlier image has %zu", t.shape[1], h->C);
    DL_FORWARD_IF_ERROR(dlj_rows(e, "bbox_pred", ipath, 1, 4, &h->bbox[i], &nb, err));
    if (nb != P)
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "bbox_pred",
                         "has %zu rows but the feature maps have %zu points", nb, P);
    DL_FORWARD_IF_ERROR(dlj_tensor_get(e, "centerness", ipath, 1, &t, err));
    h->ctr[i] = t.data;
    int flat = t.ndim == 1 || (t.ndim == 2 && t.shape[1] == 1) || (t.ndim == 1 && P == 0);
    if (!flat || t.count != P)
      return dlj_fail_at(err, DETLOSS_ERR_SHAPE, ipath, "centerness",
                         "has %zu numbers but the feature maps have %zu points (expected [P])",
                         t.count, P);
    h->alab[i] = malloc((P ? P : 1) * sizeof(int64_t));
    if (grad) {
      h->gcls[i] = malloc((P ? P * h->C : 1) * sizeof(float));
      h->gbbox[i] = malloc((P ? 4 * P : 1) * sizeof(float));
      h->gctr[i] = malloc((P ? P : 1) * sizeof(float));
    }
    DL_RETURN_ERROR_IF(!h->alab[i] || (grad && (!h->gcls[i] || !h->gbbox[i] || !h->gctr[i])), err,
                       DETLOSS_ERR_NOMEM, ipath, "out of memory");
    detloss_fcos_image *im = &h->im[i];
    im->num_gt = G;
    im->gt = h->gt[i];
    im->labels = h->labels[i];
    im->cls_logits = h->cls[i];
    im->bbox_pred = h->bbox[i];
    im->centerness = h->ctr[i];
    im->grad_cls_logits = h->gcls[i];
    im->grad_bbox_pred = h->gbbox[i];
    im->grad_centerness = h->gctr[i];
    im->assigned_labels = h->alab[i];
  }
  return DETLOSS_OK;
}

/* A number or null (absent or null: -1, "not given"). */
static detloss_status read_optional(const cJSON *cfg, const char *cpath, const char *key,
                                    double *out, detloss_error *err) {
  const cJSON *v = dlj_field(cfg, key);
  *out = -1.0;
  if (v == NULL || cJSON_IsNull(v)) return DETLOSS_OK;
  DL_FORWARD_IF_ERROR(dlj_number(cfg, key, cpath, 1, out, err));
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, cpath, key);
  DL_RETURN_ERROR_IF(!(*out >= 0.0), err, DETLOSS_ERR_RANGE, where,
                     "is %g, expected a number >= 0 or null", *out);
  return DETLOSS_OK;
}

static const float DEFAULT_STRIDES[5] = {8, 16, 32, 64, 128};

detloss_status dl_case_fcos_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                 const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  char cpath[DETLOSS_WHERE_MAX], where[DETLOSS_WHERE_MAX];
  dlj_join(cpath, sizeof cpath, path, "config");
  detloss_fcos_loss_options o = detloss_fcos_loss_options_default();
  o.num_threads = ctx->num_threads;
  const cJSON *cfg = dlj_field(c, "config");
  dlj_tensor strides = {NULL, 0, -1, {0}};
  float *ranges = NULL, *points = NULL;
  size_t *fm = NULL, *lc = NULL;
  fcos_inputs h;
  memset(&h, 0, sizeof h);
  detloss_status st = DETLOSS_OK;
  size_t L = 5, nr = 0;
  if (cfg != NULL) {
    static const char *const keys[] = {"strides",         "regress_ranges",
                                       "center_sampling", "center_sample_radius",
                                       "norm_on_bbox",    "alpha",
                                       "gamma",           "box_loss",
                                       "avg_num_pos",     "avg_centerness_sum",
                                       "variant",         NULL};
    DL_RETURN_ERROR_IF(!cJSON_IsObject(cfg), err, DETLOSS_ERR_TYPE, cpath, "expected an object");
    DL_FORWARD_IF_ERROR(dlj_check_keys(cfg, cpath, keys, err));
    const char *s = "mmdet";
    DL_FORWARD_IF_ERROR(dlj_string(cfg, "variant", cpath, 0, &s, err));
    dlj_join(where, sizeof where, cpath, "variant");
    if (strcmp(s, "torchvision") == 0)
      o.variant = DETLOSS_FCOS_LOSS_TORCHVISION;
    else
      DL_RETURN_ERROR_IF(strcmp(s, "mmdet") != 0, err, DETLOSS_ERR_UNKNOWN, where,
                         "unknown variant '%s' (expected mmdet or torchvision)", s);
    s = "giou";
    DL_FORWARD_IF_ERROR(dlj_string(cfg, "box_loss", cpath, 0, &s, err));
    dlj_join(where, sizeof where, cpath, "box_loss");
    if (strcmp(s, "iou") == 0)
      o.box_loss = DETLOSS_FCOS_BOX_IOU;
    else
      DL_RETURN_ERROR_IF(strcmp(s, "giou") != 0, err, DETLOSS_ERR_UNKNOWN, where,
                         "unknown box_loss '%s' (expected giou or iou)", s);
    DL_FORWARD_IF_ERROR(dlj_bool(cfg, "center_sampling", cpath, 0, &o.center_sampling, err));
    DL_FORWARD_IF_ERROR(
        dlj_float(cfg, "center_sample_radius", cpath, 0, &o.center_sample_radius, err));
    DL_FORWARD_IF_ERROR(dlj_bool(cfg, "norm_on_bbox", cpath, 0, &o.norm_on_bbox, err));
    DL_FORWARD_IF_ERROR(dlj_float(cfg, "alpha", cpath, 0, &o.alpha, err));
    DL_FORWARD_IF_ERROR(dlj_float(cfg, "gamma", cpath, 0, &o.gamma, err));
    DL_FORWARD_IF_ERROR(read_optional(cfg, cpath, "avg_num_pos", &o.avg_num_pos, err));
    DL_FORWARD_IF_ERROR(
        read_optional(cfg, cpath, "avg_centerness_sum", &o.avg_centerness_sum, err));
    if (dlj_field(cfg, "strides") != NULL) {
      DL_FORWARD_IF_ERROR(dlj_tensor_get(cfg, "strides", cpath, 1, &strides, err));
      if (strides.ndim != 1) {
        dlj_tensor_free(&strides);
        return dlj_fail_at(err, DETLOSS_ERR_SHAPE, cpath, "strides", "expected [L] numbers");
      }
      L = strides.count;
    }
  }
  const float *sv = strides.data ? strides.data : DEFAULT_STRIDES;
  if (cfg != NULL && dlj_field(cfg, "regress_ranges") != NULL) {
    st = dlj_rows(cfg, "regress_ranges", cpath, 1, 2, &ranges, &nr, err);
    if (st == DETLOSS_OK && nr != L)
      st = dlj_fail_at(err, DETLOSS_ERR_SHAPE, cpath, "regress_ranges",
                       "has %zu rows for %zu levels (strides)", nr, L);
    o.regress_ranges = ranges;
  }
  if (st == DETLOSS_OK && ranges == NULL && L != 5 && o.variant == DETLOSS_FCOS_LOSS_MMDET) {
    dlj_join(where, sizeof where, cpath, "regress_ranges");
    st = dl_fail(err, DETLOSS_ERR_MISSING, where, "is required with %zu levels (the default has 5)",
                 L);
  }
  /* feature_maps [L][2] */
  size_t P = 0;
  if (st == DETLOSS_OK) {
    float *f = NULL;
    size_t nf = 0;
    st = dlj_rows(c, "feature_maps", path, 1, 2, &f, &nf, err);
    dlj_join(where, sizeof where, path, "feature_maps");
    if (st == DETLOSS_OK && nf != L)
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "has %zu levels but config.strides has %zu", nf,
                   L);
    if (st == DETLOSS_OK) {
      fm = malloc((L ? 2 * L : 1) * sizeof *fm);
      lc = malloc((L ? L : 1) * sizeof *lc);
      if (!fm || !lc) st = dl_fail(err, DETLOSS_ERR_NOMEM, where, "out of memory");
    }
    for (size_t l = 0; st == DETLOSS_OK && l < L; l++) {
      for (int k = 0; k < 2; k++) {
        double v = f[2 * l + (size_t)k];
        if (!(v >= 0 && v <= (double)ctx->limits.max_image_side && v == floor(v))) {
          char w2[DETLOSS_WHERE_MAX];
          snprintf(w2, sizeof w2, "%s[%zu][%d]", where, l, k);
          st = dl_fail(err, DETLOSS_ERR_RANGE, w2, "is %g, expected an integer in [0, %g]", v,
                       (double)ctx->limits.max_image_side);
          break;
        }
        fm[2 * l + (size_t)k] = (size_t)v;
      }
      if (st == DETLOSS_OK) {
        lc[l] = fm[2 * l] * fm[2 * l + 1];
        P += lc[l];
        if ((double)P > (double)ctx->limits.max_anchors)
          st = dl_fail(err, DETLOSS_ERR_RANGE, where, "has more than %g points (limit)",
                       (double)ctx->limits.max_anchors);
      }
    }
    free(f);
  }
  int grad = 0;
  if (st == DETLOSS_OK) st = dlj_bool(c, "grad", path, 0, &grad, err);
  if (st == DETLOSS_OK) st = read_images(c, path, P, grad, &h, err);
  if (st == DETLOSS_OK) {
    points = malloc((P ? 2 * P : 1) * sizeof *points);
    if (!points) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  if (st == DETLOSS_OK) {
    /* mmdet MlvlPointGenerator offset 0.5; torchvision's anchors are centred at x s */
    st = detloss_grid_points(fm, sv, L, o.variant == DETLOSS_FCOS_LOSS_TORCHVISION ? 0.0f : 0.5f,
                             points, err);
    if (st != DETLOSS_OK) {
      static const dlj_arg a[] = {{"strides", "config.strides", NULL, 0, 0}};
      dlj_locate(err, at, a, 1);
    }
  }
  detloss_fcos_result r;
  if (st == DETLOSS_OK) {
    st = detloss_fcos_loss(points, P, lc, sv, L, h.C, h.im, h.n, &r, &o, err);
    if (st != DETLOSS_OK) {
      static const dlj_arg a[] = {
          {"strides", "config.strides", NULL, 0, 0},
          {"regress_ranges", "config.regress_ranges", NULL, 0, 0},
          {"center_sample_radius", "config.center_sample_radius", NULL, 0, 1},
          {"alpha", "config.alpha", NULL, 0, 1},
          {"gamma", "config.gamma", NULL, 0, 1},
          {"box_loss", "config.box_loss", NULL, 0, 1},
          {"avg_centerness_sum", "config.avg_centerness_sum", NULL, 0, 1},
          {"avg_num_pos", "config.avg_num_pos", NULL, 0, 1},
      };
      dlj_locate(err, at, a, sizeof a / sizeof a[0]);
    }
  }
  if (st == DETLOSS_OK) {
    dlj_kv_num(out, "loss_cls", (double)r.loss_cls);
    dlj_kv_num(out, "loss_bbox", (double)r.loss_bbox);
    dlj_kv_num(out, "loss_centerness", (double)r.loss_centerness);
    dlj_kv_int(out, "num_pos", (long long)r.num_pos);
    dlj_kv_num(out, "num_pos_norm", r.num_pos_norm);
    dlj_kv_num(out, "centerness_norm", r.centerness_norm);
    dlj_key(out, "nonfinite");
    dlj_boolval(out, r.nonfinite);
    dlj_key(out, "labels");
    dlj_arr_begin(out);
    for (size_t i = 0; i < h.n; i++) dlj_int64_tensor(out, h.alab[i], &P, 1);
    dlj_arr_end(out);
    if (grad) {
      size_t s2[2] = {P, h.C}, s4[2] = {P, 4};
      dlj_key(out, "grad_cls_logits");
      dlj_arr_begin(out);
      for (size_t i = 0; i < h.n; i++) dlj_float_tensor(out, h.gcls[i], s2, 2);
      dlj_arr_end(out);
      dlj_key(out, "grad_bbox_pred");
      dlj_arr_begin(out);
      for (size_t i = 0; i < h.n; i++) dlj_float_tensor(out, h.gbbox[i], s4, 2);
      dlj_arr_end(out);
      dlj_key(out, "grad_centerness");
      dlj_arr_begin(out);
      for (size_t i = 0; i < h.n; i++) dlj_float_tensor(out, h.gctr[i], &P, 1);
      dlj_arr_end(out);
    }
  }
  inputs_free(&h);
  dlj_tensor_free(&strides);
  free(ranges);
  free(points);
  free(fm);
  free(lc);
  return st;
}
