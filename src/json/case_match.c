/*
 * case_match.c - compute ops `anchors` and `match` (compute-cases.md).
 *
 * `anchors`: image_size [H, W], feature_maps [[h, w], ...], sizes [[s...] per level],
 *   aspect_ratios [[r...] per level] -> anchors [A][4], torchvision AnchorGenerator order,
 *   stride = image size // feature size. Extra (optional): "convention"
 *   ("torchvision" | "detectron2"), "offset" (0).
 * `match`: anchors [A][4], gt [G][4], high (0.7), low (0.3), allow_low_quality (true),
 *   semantics ("torchvision" | "detectron2" | "mmdet"), low_quality_min_iou (0) ->
 *   matches [A], max_iou [A]. Extra (optional): gt_max_assign_all (true), is_crowd [G]
 *   (0/1), crowd_ioa_thresh (0.7), allowed_border (-1), image_size [H, W] (needed when
 *   allowed_border >= 0).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/names.h"
#include "json/evalcfg.h"
#include "json/jtree.h"

/* Reads a per-level list of positive numbers: key [[...], ...] with nlev rows of any
 * length. vals/lens/starts are malloc'ed by the caller's free of *flat and *len. */
static detloss_status read_ragged(const cJSON *c, const char *key, const char *path, size_t nlev,
                                  float **flat, size_t **len, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, key);
  const cJSON *v = dlj_plain(c, key);
  DL_RETURN_ERROR_IF(v == NULL, err, DETLOSS_ERR_MISSING, where, "is missing");
  DL_RETURN_ERROR_IF(!cJSON_IsArray(v), err, DETLOSS_ERR_TYPE, where,
                     "expected an array of arrays of numbers, one per level");
  size_t n = (size_t)cJSON_GetArraySize(v);
  DL_RETURN_ERROR_IF(n != nlev, err, DETLOSS_ERR_SHAPE, where,
                     "has %zu levels but feature_maps has %zu", n, nlev);
  size_t total = 0;
  for (const cJSON *e = v->child; e; e = e->next)
    total += cJSON_IsArray(e) ? (size_t)cJSON_GetArraySize(e) : 1;
  *flat = malloc((total ? total : 1) * sizeof(float));
  *len = malloc((nlev ? nlev : 1) * sizeof(size_t));
  DL_RETURN_ERROR_IF(!*flat || !*len, err, DETLOSS_ERR_NOMEM, where, "out of memory");
  size_t i = 0, off = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    char sub[DETLOSS_WHERE_MAX];
    dlj_index(sub, sizeof sub, where, i);
    dlj_tensor t;
    DL_FORWARD_IF_ERROR(dlj_tensor_from(e, sub, &t, err));
    if (t.ndim != 1 || t.count == 0) {
      dlj_tensor_free(&t);
      return dl_fail(err, DETLOSS_ERR_SHAPE, sub, "expected a non-empty array of numbers");
    }
    for (size_t k = 0; k < t.count; k++) {
      if (!(t.data[k] > 0.0f)) {
        char sub2[DETLOSS_WHERE_MAX];
        dlj_index(sub2, sizeof sub2, sub, k);
        float bad = t.data[k];
        dlj_tensor_free(&t);
        return dl_fail(err, DETLOSS_ERR_RANGE, sub2, "must be > 0, got %g", (double)bad);
      }
    }
    memcpy(*flat + off, t.data, t.count * sizeof(float));
    (*len)[i] = t.count;
    off += t.count;
    dlj_tensor_free(&t);
  }
  return DETLOSS_OK;
}

/* image_size [H, W] as two positive integers of at most max_image_side. */
static detloss_status read_image_size(const cJSON *c, const char *path, int required,
                                      const detloss_json_limits *lim, long long *hw, int *present,
                                      detloss_error *err) {
  int64_t *v = NULL;
  size_t n = 0;
  DL_FORWARD_IF_ERROR(dlj_int_array(c, "image_size", path, required, 1, 1LL << 40, &v, &n, err));
  *present = v != NULL;
  if (v == NULL) return DETLOSS_OK;
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "image_size");
  if (n != 2) {
    free(v);
    return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected [H, W], got %zu numbers", n);
  }
  hw[0] = (long long)v[0];
  hw[1] = (long long)v[1];
  free(v);
  for (int k = 0; k < 2; k++) {
    char sub[DETLOSS_WHERE_MAX];
    dlj_index(sub, sizeof sub, where, (size_t)k);
    DL_FORWARD_IF_ERROR(dl_check_side(lim, (double)hw[k], sub, err));
  }
  return DETLOSS_OK;
}

detloss_status dl_case_anchors(const cJSON *c, const dlj_path *at, dlj_buf *out,
                               const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  long long hw[2];
  int present = 0;
  DL_FORWARD_IF_ERROR(read_image_size(c, path, 1, &ctx->limits, hw, &present, err));
  float *fm = NULL, *sizes = NULL, *ratios = NULL, *anchors = NULL;
  size_t *nsz = NULL, *nrt = NULL, nlev = 0, count = 0;
  detloss_anchor_level *lv = NULL;
  detloss_anchor_config cfg = {NULL, 0, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  char where[DETLOSS_WHERE_MAX];
  const char *conv = NULL;
  detloss_status st = dlj_string(c, "convention", path, 0, &conv, err);
  if (st == DETLOSS_OK && conv) {
    int k = dlj_name_index(DETLOSS_NAMES_ANCHOR_CONVENTION, conv);
    if (k < 0) {
      dlj_join(where, sizeof where, path, "convention");
      st = dlj_unknown_name(err, where, DETLOSS_NAMES_ANCHOR_CONVENTION, conv, 0);
    } else {
      cfg.convention = (detloss_anchor_convention)k;
    }
  }
  if (st == DETLOSS_OK) st = dlj_float(c, "offset", path, 0, &cfg.offset, err);
  if (st == DETLOSS_OK) st = dlj_rows(c, "feature_maps", path, 1, 2, &fm, &nlev, err);
  if (st == DETLOSS_OK) st = read_ragged(c, "sizes", path, nlev, &sizes, &nsz, err);
  if (st == DETLOSS_OK) st = read_ragged(c, "aspect_ratios", path, nlev, &ratios, &nrt, err);
  if (st == DETLOSS_OK) {
    lv = calloc(nlev ? nlev : 1, sizeof *lv);
    if (!lv) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  size_t so = 0, ro = 0;
  for (size_t l = 0; st == DETLOSS_OK && l < nlev; l++) {
    float h = fm[2 * l], w = fm[2 * l + 1];
    char fw[DETLOSS_WHERE_MAX];
    dlj_join(fw, sizeof fw, path, "feature_maps");
    dlj_index(where, sizeof where, fw, l);
    /* Bounds first, in float: only then are the integer casts defined (a
     * fuzzer found the cast of 1e38 to long long). */
    if (!(h >= 1.0f && w >= 1.0f && h <= (float)hw[0] && w <= (float)hw[1]) || h != floorf(h) ||
        w != floorf(w)) {
      st = dl_fail(err, DETLOSS_ERR_RANGE, where,
                   "expected [h, w] integers in [1, image size], got [%g, %g]", (double)h,
                   (double)w);
      break;
    }
    lv[l].feat_h = (size_t)h;
    lv[l].feat_w = (size_t)w;
    /* torchvision: image_size // feature size */
    lv[l].stride_h = (float)(hw[0] / (long long)h);
    lv[l].stride_w = (float)(hw[1] / (long long)w);
    lv[l].sizes = sizes + so;
    lv[l].num_sizes = nsz[l];
    lv[l].ratios = ratios + ro;
    lv[l].num_ratios = nrt[l];
    so += nsz[l];
    ro += nrt[l];
  }
  if (st == DETLOSS_OK) {
    cfg.levels = lv;
    cfg.num_levels = nlev;
    /* The count in double first (sum of h * w * sizes * ratios, no overflow),
     * checked against max_anchors and the output bound before anything is
     * generated. */
    double n = 0.0;
    for (size_t l = 0; l < nlev; l++)
      n += (double)lv[l].feat_h * (double)lv[l].feat_w * (double)nsz[l] * (double)nrt[l];
    snprintf(where, sizeof where, "feature_maps"); /* the case path is prefixed below */
    if (!(n <= (double)ctx->limits.max_anchors))
      st = dl_fail(err, DETLOSS_ERR_RANGE, where,
                   "would generate %.15g anchors, more than the limit max_anchors = %zu", n,
                   ctx->limits.max_anchors);
    if (st == DETLOSS_OK) {
      char what[64];
      snprintf(what, sizeof what, "%.15g anchors", n);
      st = dl_check_output(&ctx->limits, 4.0 * n, where, what, err);
    }
    if (st == DETLOSS_OK) st = detloss_anchors_count(&cfg, &count, err);
    if (st == DETLOSS_OK && count > 0) {
      anchors = malloc(count * 4 * sizeof(float));
      if (!anchors) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
    }
    if (st == DETLOSS_OK) st = detloss_anchors_generate(&cfg, anchors, count, err);
    if (st != DETLOSS_OK) dlj_locate(err, at, NULL, 0);
  }
  if (st == DETLOSS_OK) dlj_kv_rows(out, "anchors", anchors, count, 4);
  free(fm);
  free(sizes);
  free(ratios);
  free(nsz);
  free(nrt);
  free(lv);
  free(anchors);
  return st;
}

detloss_status dl_case_match(const cJSON *c, const dlj_path *at, dlj_buf *out,
                             const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  detloss_match_options o = detloss_match_options_default();
  o.num_threads = ctx->num_threads;
  char where[DETLOSS_WHERE_MAX];
  static const dlj_match_keys keys = {"high",
                                      "low",
                                      "allow_low_quality",
                                      "low_quality_min_iou",
                                      "semantics",
                                      "gt_max_assign_all",
                                      "crowd_ioa_thresh",
                                      "allowed_border"};
  DL_FORWARD_IF_ERROR(dlj_match_options(c, path, &keys, &o, err));
  long long hw[2] = {0, 0};
  int has_size = 0;
  DL_FORWARD_IF_ERROR(read_image_size(c, path, 0, &ctx->limits, hw, &has_size, err));
  if (has_size) {
    o.image_h = (float)hw[0];
    o.image_w = (float)hw[1];
  } else if (o.allowed_border >= 0.0f) {
    dlj_join(where, sizeof where, path, "image_size");
    return dl_fail(err, DETLOSS_ERR_MISSING, where, "is required when allowed_border >= 0");
  }
  float *anchors = NULL, *gt = NULL, *mi = NULL;
  int64_t *crowd64 = NULL, *m = NULL;
  uint8_t *crowd = NULL;
  size_t A = 0, G = 0, nc = 0;
  detloss_status st = dlj_boxes(c, "anchors", path, 1, &anchors, &A, err);
  if (st == DETLOSS_OK) st = dlj_boxes(c, "gt", path, 1, &gt, &G, err);
  if (st == DETLOSS_OK) st = dlj_int_array(c, "is_crowd", path, 0, 0, 1, &crowd64, &nc, err);
  if (st == DETLOSS_OK && crowd64) {
    if (nc != G) {
      dlj_join(where, sizeof where, path, "is_crowd");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "has %zu flags for %zu gt boxes", nc, G);
    } else {
      crowd = malloc(nc ? nc : 1);
      if (!crowd) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
      for (size_t i = 0; crowd && i < nc; i++) crowd[i] = (uint8_t)crowd64[i];
    }
  }
  if (st == DETLOSS_OK && A > 0) {
    m = malloc(A * sizeof *m);
    mi = malloc(A * sizeof *mi);
    if (!m || !mi) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  if (st == DETLOSS_OK) {
    st = detloss_match(anchors, A, gt, G, crowd, m, mi, &o, err);
    if (st != DETLOSS_OK) dlj_locate(err, at, NULL, 0);
  }
  if (st == DETLOSS_OK) {
    dlj_key(out, "matches");
    dlj_int64_tensor(out, m, &A, 1);
    dlj_key(out, "max_iou");
    dlj_float_tensor(out, mi, &A, 1);
  }
  free(anchors);
  free(gt);
  free(mi);
  free(m);
  free(crowd64);
  free(crowd);
  return st;
}
