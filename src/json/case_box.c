/* case_box.c - compute ops `iou`, `encode` and `decode` (compute-cases.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"
#include "json/names.h"

detloss_status dl_case_iou(const cJSON *c, const dlj_path *at, dlj_buf *out, const dl_case_ctx *ctx,
                           detloss_error *err) {
  const char *path = at->buf;
  const char *kind_name = detloss_names_get(DETLOSS_NAMES_IOU_KIND, DETLOSS_IOU)->name;
  DL_FORWARD_IF_ERROR(dlj_string(c, "kind", path, 0, &kind_name, err));
  int kind = dlj_name_index(DETLOSS_NAMES_IOU_KIND, kind_name);
  if (kind < 0) {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "kind");
    return dlj_unknown_name(err, where, DETLOSS_NAMES_IOU_KIND, kind_name, 0);
  }
  detloss_iou_options opt = detloss_iou_options_default();
  opt.num_threads = ctx->num_threads;
  DL_FORWARD_IF_ERROR(dlj_float(c, "eps", path, 0, &opt.eps, err));
  if (!(opt.eps > 0.0f)) {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "eps");
    return dl_fail(err, DETLOSS_ERR_RANGE, where, "must be > 0, got %g", (double)opt.eps);
  }
  float *b1 = NULL, *b2 = NULL, *m = NULL;
  size_t n = 0, k = 0;
  detloss_status st = dlj_boxes(c, "boxes1", path, 1, &b1, &n, err);
  if (st == DETLOSS_OK) st = dlj_boxes(c, "boxes2", path, 1, &b2, &k, err);
  if (st == DETLOSS_OK) {
    /* N x M from two short lists: checked before the matrix is allocated. */
    char where[DETLOSS_WHERE_MAX], what[96];
    dlj_join(where, sizeof where, path, "boxes2");
    snprintf(what, sizeof what, "a %zu x %zu matrix", n, k);
    st = dl_check_output(&ctx->limits, (double)n * (double)k, where, what, err);
  }
  if (st == DETLOSS_OK && n > 0 && k > 0) {
    m = malloc(n * k * sizeof(float));
    if (!m) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "cannot allocate a %zu x %zu matrix", n, k);
  }
  if (st == DETLOSS_OK) {
    st = detloss_iou_matrix((detloss_iou_kind)kind, b1, n, b2, k, m, &opt, err);
    if (st != DETLOSS_OK) dlj_locate(err, at, NULL, 0);
  }
  if (st == DETLOSS_OK) {
    size_t shape[2] = {n, k};
    dlj_key(out, "matrix");
    dlj_float_tensor(out, m, shape, 2);
  }
  free(b1);
  free(b2);
  free(m);
  return st;
}

/* Reads the optional `weights` [4] into opt. */
static detloss_status read_weights(const cJSON *c, const char *path, detloss_coder_options *opt,
                                   detloss_error *err) {
  dlj_tensor w;
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "weights");
  DL_FORWARD_IF_ERROR(dlj_tensor_get(c, "weights", path, 0, &w, err));
  if (w.ndim < 0) return DETLOSS_OK; /* absent: (1,1,1,1) */
  if (w.ndim != 1 || w.shape[0] != 4) {
    dlj_tensor_free(&w);
    return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected 4 numbers (wx, wy, ww, wh)");
  }
  for (int k = 0; k < 4; k++) {
    if (!(w.data[k] > 0.0f)) {
      char sub[DETLOSS_WHERE_MAX];
      dlj_index(sub, sizeof sub, where, (size_t)k);
      float bad = w.data[k];
      dlj_tensor_free(&w);
      return dl_fail(err, DETLOSS_ERR_RANGE, sub, "must be > 0, got %g", (double)bad);
    }
    opt->weights[k] = w.data[k];
  }
  dlj_tensor_free(&w);
  return DETLOSS_OK;
}

/* Shared by encode and decode: anchors [A][4], `second` [A][4] -> result [A][4]. */
static detloss_status code_case(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                const dl_case_ctx *ctx, int decode, detloss_error *err) {
  const char *path = at->buf;
  const char *second = decode ? "deltas" : "boxes";
  const char *result = decode ? "boxes" : "deltas";
  detloss_coder_options opt = detloss_coder_options_default();
  opt.num_threads = ctx->num_threads;
  DL_FORWARD_IF_ERROR(read_weights(c, path, &opt, err));
  if (decode) {
    DL_FORWARD_IF_ERROR(dlj_float(c, "clip", path, 0, &opt.clip, err));
    if (!(opt.clip > 0.0f)) {
      char where[DETLOSS_WHERE_MAX];
      dlj_join(where, sizeof where, path, "clip");
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "must be > 0, got %g", (double)opt.clip);
    }
  }
  float *a = NULL, *b = NULL, *r = NULL;
  size_t na = 0, nb = 0;
  /* each read once: the tree's copies are freed as they are taken */
  detloss_status st = dlj_boxes_take(c, "anchors", path, 1, &a, &na, err);
  if (st == DETLOSS_OK) st = dlj_boxes_take(c, second, path, 1, &b, &nb, err);
  if (st == DETLOSS_OK && na != nb) {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, second);
    st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected %zu rows (one per anchor), got %zu", na,
                 nb);
  }
  if (st == DETLOSS_OK && na > 0) {
    r = malloc(na * 4 * sizeof(float));
    if (!r) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "cannot allocate %zu boxes", na);
  }
  if (st == DETLOSS_OK) {
    st = decode ? detloss_box_decode(a, b, na, r, &opt, err)
                : detloss_box_encode(a, b, na, r, &opt, err);
    if (st != DETLOSS_OK) dlj_locate(err, at, NULL, 0);
  }
  free(a); /* before the result's text is written: not needed any more */
  free(b);
  if (st == DETLOSS_OK) dlj_kv_rows(out, result, r, na, 4);
  free(r);
  return st;
}

detloss_status dl_case_encode(const cJSON *c, const dlj_path *at, dlj_buf *out,
                              const dl_case_ctx *ctx, detloss_error *err) {
  return code_case(c, at, out, ctx, 0, err);
}

detloss_status dl_case_decode(const cJSON *c, const dlj_path *at, dlj_buf *out,
                              const dl_case_ctx *ctx, detloss_error *err) {
  return code_case(c, at, out, ctx, 1, err);
}
