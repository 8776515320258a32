/*
 * case_loss_box.c - the box losses of compute op `loss` (iou_loss, giou_loss,
 * diou_loss, ciou_loss) and op `embedding_loss` (compute-cases.md).
 *
 * `loss` (boxes): input [N][4], target [N][4], optional weight [N],
 *   reduction (mean), params {eps (1e-7)}, grad (false)
 *   -> loss (number, or [N] for none), grad [N][4] w.r.t. input, and the
 *   extra field grad_target [N][4].
 * `embedding_loss`: loss (name), x1 [N][D], x2 [N][D], x3 [N][D] (triplet),
 *   target [N] (not for triplet), optional weight [N], reduction (mean),
 *   params {margin, p, eps, swap}, grad (false)
 *   -> loss, grad_x1, grad_x2, grad_x3 (triplet).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"

/* Optional 1-D array of n numbers (weight, target); *out NULL when absent and
 * not required. */
static detloss_status read_vector(const cJSON *c, const char *key, const char *path, int required,
                                  size_t n, const char *what, float **out, detloss_error *err) {
  dlj_tensor t;
  *out = NULL;
  DL_FORWARD_IF_ERROR(dlj_tensor_get(c, key, path, required, &t, err));
  if (t.ndim < 0) return DETLOSS_OK;
  if (t.ndim != 1 || t.shape[0] != n) {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, key);
    dlj_tensor_free(&t);
    return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected %zu numbers (%s)", n, what);
  }
  if (n == 0) { /* an empty vector: a non-NULL dummy so "present" stays visible */
    dlj_tensor_free(&t);
    *out = (float *)malloc(sizeof(float));
    DL_RETURN_ERROR_IF(!*out, err, DETLOSS_ERR_NOMEM, key, "cannot allocate");
    return DETLOSS_OK;
  }
  *out = t.data;
  return DETLOSS_OK;
}

/* Library errors name their argument ("pred[3]", "eps"): locate them in the
 * case ("[2].input[3]", "[2].params.eps"; the params from the registry row). */
static void locate(detloss_error *err, const dlj_path *at, const detloss_loss_info *info) {
  dlj_arg args[1 + DL_LOSS_MAX_PARAMS] = {{"pred", "input", NULL, 0, 0}};
  char keys[DL_LOSS_MAX_PARAMS][DL_PARAM_KEY_MAX];
  size_t n = 1 + dl_case_loss_param_args(info, args + 1, keys);
  dlj_locate(err, at, args, n);
}

detloss_status dl_case_box_loss(const cJSON *c, const dlj_path *at, detloss_loss_kind kind,
                                dlj_buf *out, const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  detloss_loss_options o = detloss_loss_options_default(kind);
  o.num_threads = ctx->num_threads;
  const detloss_loss_info *info = detloss_loss_info_get(kind);
  DL_FORWARD_IF_ERROR(dl_case_reduction(c, path, &o.reduction, err));
  DL_FORWARD_IF_ERROR(dl_case_loss_params(c, path, info, &o, NULL, err));
  int grad = 0;
  DL_FORWARD_IF_ERROR(dlj_bool(c, "grad", path, 0, &grad, err));

  float *pred = NULL, *tgt = NULL, *w = NULL, *loss = NULL, *gp = NULL, *gt = NULL;
  size_t n = 0, m = 0;
  detloss_status st = dlj_boxes(c, "input", path, 1, &pred, &n, err);
  if (st == DETLOSS_OK) st = dlj_boxes(c, "target", path, 1, &tgt, &m, err);
  if (st == DETLOSS_OK && m != n) {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "target");
    st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected %zu boxes (as input), got %zu", n, m);
  }
  if (st == DETLOSS_OK) st = read_vector(c, "weight", path, 0, n, "one per box", &w, err);
  if (st == DETLOSS_OK) {
    size_t nl = o.reduction == DETLOSS_REDUCTION_NONE ? n : 1;
    loss = malloc((nl ? nl : 1) * sizeof(float));
    if (grad) {
      gp = malloc((n ? 4 * n : 1) * sizeof(float));
      gt = malloc((n ? 4 * n : 1) * sizeof(float));
    }
    if (!loss || (grad && (!gp || !gt)))
      st = dl_fail(err, DETLOSS_ERR_NOMEM, path[0] ? path : "input", "cannot allocate outputs");
  }
  if (st == DETLOSS_OK) {
    st = detloss_loss_boxes(kind, pred, tgt, w, n, loss, gp, gt, &o, err);
    if (st != DETLOSS_OK) locate(err, at, info);
  }
  if (st == DETLOSS_OK) {
    if (o.reduction == DETLOSS_REDUCTION_NONE) {
      size_t shape[1] = {n};
      dlj_key(out, "loss");
      dlj_float_tensor(out, loss, shape, 1);
    } else {
      dlj_kv_num(out, "loss", (double)loss[0]);
    }
    if (grad) {
      size_t shape[2] = {n, 4};
      dlj_key(out, "grad");
      dlj_float_tensor(out, gp, shape, 2);
      dlj_key(out, "grad_target");
      dlj_float_tensor(out, gt, shape, 2);
    }
  }
  free(pred);
  free(tgt);
  free(w);
  free(loss);
  free(gp);
  free(gt);
  return st;
}

/* An [N][D] embedding array; an empty array [] is N = 0 (D = *d if known). */
static detloss_status read_embeddings(const cJSON *c, const char *key, const char *path,
                                      int have_shape, size_t *n, size_t *d, float **out,
                                      detloss_error *err) {
  dlj_tensor t;
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, key);
  DL_FORWARD_IF_ERROR(dlj_tensor_get(c, key, path, 1, &t, err));
  size_t tn, td;
  if (t.ndim == 2) {
    tn = t.shape[0];
    td = t.shape[1];
  } else if (t.ndim == 1 && t.shape[0] == 0) {
    tn = 0;
    td = have_shape ? *d : 0;
  } else {
    dlj_tensor_free(&t);
    return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected an array of embeddings [N][D]");
  }
  if (have_shape && (tn != *n || (tn > 0 && td != *d))) {
    dlj_tensor_free(&t);
    return dl_fail(err, DETLOSS_ERR_SHAPE, where,
                   "expected shape [%zu][%zu] (as x1), got [%zu][%zu]", *n, *d, tn, td);
  }
  *n = tn;
  *d = td;
  *out = t.data; /* NULL when empty */
  return DETLOSS_OK;
}

detloss_status dl_case_embedding_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                                      const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  const char *name;
  DL_FORWARD_IF_ERROR(dlj_string(c, "loss", path, 1, &name, err));
  const detloss_loss_info *info = detloss_loss_info_by_name(name);
  if (!info || info->form != DETLOSS_LOSS_FORM_EMBEDDING) {
    char lpath[DETLOSS_WHERE_MAX], list[DETLOSS_MSG_MAX / 2];
    dlj_join(lpath, sizeof lpath, path, "loss");
    dl_loss_list_names(list, sizeof list, DETLOSS_LOSS_FORM_EMBEDDING, " or ");
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, lpath, "unknown embedding loss '%s' (expected %s)",
                   name, list);
  }
  const detloss_loss_kind kind = info->kind;
  const int triplet = kind == DETLOSS_LOSS_TRIPLET_MARGIN;
  /* x3 belongs to triplet_margin only, target to the pair losses only: either
   * one given to the other kind would be silently ignored. */
  const char *unused = triplet ? "target" : "x3";
  if (dlj_field(c, unused)) {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, unused);
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown key for loss '%s' (%s)", name,
                   triplet ? "triplet_margin takes x3, not target"
                           : "only triplet_margin takes x3");
  }
  detloss_loss_options o = detloss_loss_options_default(kind);
  o.num_threads = ctx->num_threads;
  DL_FORWARD_IF_ERROR(dl_case_reduction(c, path, &o.reduction, err));
  DL_FORWARD_IF_ERROR(dl_case_loss_params(c, path, info, &o, NULL, err));
  int grad = 0;
  DL_FORWARD_IF_ERROR(dlj_bool(c, "grad", path, 0, &grad, err));

  float *x[3] = {NULL, NULL, NULL}, *g[3] = {NULL, NULL, NULL}, *y = NULL, *w = NULL;
  float *loss = NULL;
  size_t n = 0, d = 0;
  detloss_status st = read_embeddings(c, "x1", path, 0, &n, &d, &x[0], err);
  if (st == DETLOSS_OK) st = read_embeddings(c, "x2", path, 1, &n, &d, &x[1], err);
  if (st == DETLOSS_OK && triplet) st = read_embeddings(c, "x3", path, 1, &n, &d, &x[2], err);
  if (st == DETLOSS_OK && !triplet)
    st = read_vector(c, "target", path, 1, n, "one label per pair", &y, err);
  if (st == DETLOSS_OK) st = read_vector(c, "weight", path, 0, n, "one per pair", &w, err);
  if (st == DETLOSS_OK) {
    size_t nl = o.reduction == DETLOSS_REDUCTION_NONE ? n : 1;
    loss = malloc((nl ? nl : 1) * sizeof(float));
    int ok = loss != NULL;
    if (grad)
      for (int j = 0; j < (triplet ? 3 : 2); j++) {
        g[j] = malloc((n * d > 0 ? n * d : 1) * sizeof(float));
        ok = ok && g[j];
      }
    if (!ok) st = dl_fail(err, DETLOSS_ERR_NOMEM, path[0] ? path : "x1", "cannot allocate outputs");
  }
  if (st == DETLOSS_OK) {
    st =
        detloss_loss_embedding(kind, x[0], x[1], x[2], y, w, n, d, loss, g[0], g[1], g[2], &o, err);
    if (st != DETLOSS_OK) locate(err, at, info);
  }
  if (st == DETLOSS_OK) {
    if (o.reduction == DETLOSS_REDUCTION_NONE) {
      size_t shape[1] = {n};
      dlj_key(out, "loss");
      dlj_float_tensor(out, loss, shape, 1);
    } else {
      dlj_kv_num(out, "loss", (double)loss[0]);
    }
    if (grad) {
      static const char *const names[3] = {"grad_x1", "grad_x2", "grad_x3"};
      size_t shape[2] = {n, d};
      for (int j = 0; j < (triplet ? 3 : 2); j++) {
        dlj_key(out, names[j]);
        dlj_float_tensor(out, g[j], shape, 2);
      }
    }
  }
  for (int j = 0; j < 3; j++) {
    free(x[j]);
    free(g[j]);
  }
  free(y);
  free(w);
  free(loss);
  return st;
}
