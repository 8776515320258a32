/*
 * case_loss.c - compute op `loss` (compute-cases.md): the element-wise and
 * class-indexed losses here, the box losses handed to dl_case_box_loss; which
 * is which, and each loss's params, come from the registry
 * (detloss_loss_info_get, src/loss_registry.c).
 *
 * Input: loss (name), input, target, optional weight (shape of the
 * per-element loss), reduction (mean), params (the registry row's), grad (false).
 *   element-wise form: input of any shape (up to 4-D), target of the same
 *   shape, weight of the same shape.
 *   class-indexed form: input [N][C] logits, target [N] class indices, weight [N].
 *   soft-rows form (quality_focal): input [N][C], target [N][C] soft scores,
 *   weight [N]; distribution form (distribution_focal): input [N][n+1],
 *   target [N] bin positions in [0, n], weight [N]; loss per row.
 * Output: loss (number, or for none an array shaped like the per-element
 * loss), grad (shaped like input) when grad is true.
 * Unknown params keys are errors with a did-you-mean (a typo such as "gama"
 * would otherwise silently run with the default).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"

detloss_status dl_case_reduction(const cJSON *c, const char *path, detloss_reduction *r,
                                 detloss_error *err) {
  const char *s = "mean";
  DL_FORWARD_IF_ERROR(dlj_string(c, "reduction", path, 0, &s, err));
  if (strcmp(s, "none") == 0)
    *r = DETLOSS_REDUCTION_NONE;
  else if (strcmp(s, "sum") == 0)
    *r = DETLOSS_REDUCTION_SUM;
  else if (strcmp(s, "mean") == 0)
    *r = DETLOSS_REDUCTION_MEAN;
  else {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "reduction");
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown reduction '%s' (expected none, sum or mean)", s);
  }
  return DETLOSS_OK;
}

detloss_status dl_case_loss_params(const cJSON *c, const char *path, const detloss_loss_info *info,
                                   detloss_loss_options *o, dlj_tensor *pw, detloss_error *err) {
  char ppath[DETLOSS_WHERE_MAX];
  dlj_join(ppath, sizeof ppath, path, "params");
  const cJSON *params = dlj_field(c, "params");
  DL_RETURN_ERROR_IF(params && !cJSON_IsObject(params), err, DETLOSS_ERR_TYPE, ppath,
                     "expected an object");
  if (!params) return DETLOSS_OK;
  const char *keys[DL_LOSS_MAX_PARAMS + 1];
  size_t np = info->num_params < DL_LOSS_MAX_PARAMS ? info->num_params : DL_LOSS_MAX_PARAMS;
  for (size_t i = 0; i < np; i++) keys[i] = info->params[i].key;
  keys[np] = NULL;
  DL_FORWARD_IF_ERROR(dlj_check_keys(params, ppath, keys, err));
  for (size_t i = 0; i < np; i++) {
    const detloss_loss_param *p = &info->params[i];
    char *field = (char *)o + p->offset;
    switch (p->type) {
      case DETLOSS_PARAM_FLOAT: {
        float v;
        memcpy(&v, field, sizeof v);
        DL_FORWARD_IF_ERROR(dlj_float(params, p->key, ppath, 0, &v, err));
        memcpy(field, &v, sizeof v);
        break;
      }
      case DETLOSS_PARAM_INT: {
        int64_t v;
        memcpy(&v, field, sizeof v);
        long long ll = v;
        DL_FORWARD_IF_ERROR(dlj_int(params, p->key, ppath, 0, INT64_MIN, INT64_MAX, &ll, err));
        v = (int64_t)ll;
        memcpy(field, &v, sizeof v);
        break;
      }
      case DETLOSS_PARAM_BOOL: {
        int v;
        memcpy(&v, field, sizeof v);
        DL_FORWARD_IF_ERROR(dlj_bool(params, p->key, ppath, 0, &v, err));
        memcpy(field, &v, sizeof v);
        break;
      }
      case DETLOSS_PARAM_FLOATS:
        /* the caller checks its shape against the input and points the
           options at it */
        if (pw) DL_FORWARD_IF_ERROR(dlj_tensor_get(params, p->key, ppath, 0, pw, err));
        break;
    }
  }
  return DETLOSS_OK;
}

size_t dl_case_loss_param_args(const detloss_loss_info *info, dlj_arg *args,
                               char (*keys)[DL_PARAM_KEY_MAX]) {
  size_t n = info->num_params < DL_LOSS_MAX_PARAMS ? info->num_params : DL_LOSS_MAX_PARAMS;
  for (size_t i = 0; i < n; i++) {
    snprintf(keys[i], DL_PARAM_KEY_MAX, "params.%s", info->params[i].key);
    args[i].name = info->params[i].key;
    args[i].key = keys[i];
    args[i].shape = NULL;
    args[i].ndim = 0;
    args[i].exact = 0;
  }
  return n;
}

/* Library errors name the argument ("input[7]", "gamma", "pos_weight[1]"):
 * locate them in the case ("[2].input[1][3]", "[2].params.gamma"). */
static void locate(detloss_error *err, const dlj_path *at, const detloss_loss_info *info,
                   const size_t *xshape, int xndim, const size_t *lshape, int lndim,
                   const size_t *yshape, int yndim) {
  dlj_arg args[4 + DL_LOSS_MAX_PARAMS] = {{"input", "input", xshape, xndim, 0},
                                          {"logits", "input", xshape, xndim, 0},
                                          {"target", "target", yshape, yndim, 0},
                                          {"weight", "weight", lshape, lndim, 0}};
  char keys[DL_LOSS_MAX_PARAMS][DL_PARAM_KEY_MAX];
  size_t n = 4 + dl_case_loss_param_args(info, args + 4, keys);
  dlj_locate(err, at, args, n);
}

static int same_shape(const dlj_tensor *a, const dlj_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return 0;
  return 1;
}

static void shape_str(char *buf, size_t cap, const size_t *shape, int ndim) {
  size_t len = (size_t)snprintf(buf, cap, "[");
  for (int d = 0; d < ndim && len < cap; d++)
    len += (size_t)snprintf(buf + len, cap - len, d ? ", %zu" : "%zu", shape[d]);
  if (len < cap) snprintf(buf + len, cap - len, "]");
}

static detloss_status shape_error(const char *path, const char *key, const size_t *want, int wnd,
                                  const dlj_tensor *got, const char *what, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX], ws[96], gs[96];
  dlj_join(where, sizeof where, path, key);
  shape_str(ws, sizeof ws, want, wnd);
  shape_str(gs, sizeof gs, got->shape, got->ndim);
  return dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected shape %s (%s), got %s", ws, what, gs);
}

detloss_status dl_case_loss(const cJSON *c, const dlj_path *at, dlj_buf *out,
                            const dl_case_ctx *ctx, detloss_error *err) {
  const char *path = at->buf;
  const char *name;
  DL_FORWARD_IF_ERROR(dlj_string(c, "loss", path, 1, &name, err));
  detloss_loss_kind kind;
  if (detloss_loss_from_name(name, &kind, err) != DETLOSS_OK) {
    if (err) {
      char where[DETLOSS_WHERE_MAX];
      dlj_join(where, sizeof where, path, "loss");
      memcpy(err->where, where, sizeof where);
    }
    return DETLOSS_ERR_UNKNOWN;
  }
  const detloss_loss_info *info = detloss_loss_info_get(kind);
  if (info->form == DETLOSS_LOSS_FORM_BOXES) return dl_case_box_loss(c, at, kind, out, ctx, err);
  if (info->form == DETLOSS_LOSS_FORM_EMBEDDING) {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "loss");
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "'%s' is an embedding loss: use op 'embedding_loss'", name);
  }
  const int classes = info->form == DETLOSS_LOSS_FORM_CLASSES;
  const int soft_rows = info->form == DETLOSS_LOSS_FORM_SOFT_ROWS;
  const int distribution = info->form == DETLOSS_LOSS_FORM_DISTRIBUTION;
  const int rows = classes || soft_rows || distribution;

  detloss_loss_options o = detloss_loss_options_default(kind);
  o.num_threads = ctx->num_threads;
  DL_FORWARD_IF_ERROR(dl_case_reduction(c, path, &o.reduction, err));
  int want_grad = 0;
  DL_FORWARD_IF_ERROR(dlj_bool(c, "grad", path, 0, &want_grad, err));

  char ppath[DETLOSS_WHERE_MAX];
  dlj_join(ppath, sizeof ppath, path, "params");
  dlj_tensor pw = {NULL, 0, -1, {0}};
  DL_FORWARD_IF_ERROR(dl_case_loss_params(c, path, info, &o, &pw, err));

  dlj_tensor x = {NULL, 0, -1, {0}}, y = {NULL, 0, -1, {0}}, w = {NULL, 0, -1, {0}};
  int64_t *cls = NULL;
  float *loss = NULL, *grad = NULL;
  size_t nrows = 0, ncls = 0, nloss = 0;
  size_t lshape[DLJ_MAX_DIMS] = {0};
  int lndim = 0;
  detloss_status st = dlj_tensor_get(c, "input", path, 1, &x, err);

  if (st == DETLOSS_OK && pw.ndim >= 0) {
    /* torch broadcasts pos_weight over the last dimension: a number, or
     * one value per column of the input. */
    size_t last = x.ndim > 0 ? x.shape[x.ndim - 1] : 1;
    if (pw.ndim > 1 || (pw.ndim == 1 && pw.count != last && pw.count != 1)) {
      char where[DETLOSS_WHERE_MAX];
      dlj_join(where, sizeof where, ppath, "pos_weight");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where,
                   "expected a number or %zu numbers (the input's last dimension), got %zu", last,
                   pw.count);
    } else {
      o.pos_weight = pw.data;
      o.pos_weight_len = pw.count;
    }
  }

  if (st == DETLOSS_OK && rows) {
    /* logits [N][C]; an empty input [] is N = 0 */
    if (x.ndim == 1 && x.count == 0) {
      nrows = 0;
      ncls = 0;
    } else if (x.ndim != 2) {
      char where[DETLOSS_WHERE_MAX];
      dlj_join(where, sizeof where, path, "input");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected logits [N][C] (2-D), got %d-D", x.ndim);
    } else {
      nrows = x.shape[0];
      ncls = x.shape[1];
    }
    size_t nt = 0;
    if (st == DETLOSS_OK && classes)
      st = dlj_int_array(c, "target", path, 1, INT64_MIN, INT64_MAX, &cls, &nt, err);
    if (st == DETLOSS_OK && classes && nt != nrows) {
      char where[DETLOSS_WHERE_MAX];
      dlj_join(where, sizeof where, path, "target");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where,
                   "expected %zu class indices (one per row of input), got %zu", nrows, nt);
    }
    if (st == DETLOSS_OK && !classes) st = dlj_tensor_get(c, "target", path, 1, &y, err);
    if (st == DETLOSS_OK && soft_rows && !same_shape(&x, &y))
      st = shape_error(path, "target", x.shape, x.ndim, &y, "the shape of input", err);
    if (st == DETLOSS_OK && distribution && !(y.ndim == 1 && y.count == nrows)) {
      size_t want[1] = {nrows};
      st = shape_error(path, "target", want, 1, &y, "one bin position per row of input", err);
    }
    lshape[0] = nrows;
    lndim = 1;
    nloss = nrows;
  } else if (st == DETLOSS_OK) {
    st = dlj_tensor_get(c, "target", path, 1, &y, err);
    if (st == DETLOSS_OK && !same_shape(&x, &y))
      st = shape_error(path, "target", x.shape, x.ndim, &y, "the shape of input", err);
    memcpy(lshape, x.shape, sizeof lshape);
    lndim = x.ndim;
    nloss = x.count;
  }
  if (st == DETLOSS_OK) {
    st = dlj_tensor_get(c, "weight", path, 0, &w, err);
    if (st == DETLOSS_OK && w.ndim >= 0) {
      int ok = w.count == nloss && (w.ndim == lndim || (nloss == 0 && w.ndim <= 1));
      for (int d = 0; ok && d < lndim && nloss > 0; d++) ok = w.shape[d] == lshape[d];
      if (!ok) st = shape_error(path, "weight", lshape, lndim, &w, "one per loss element", err);
    }
  }
  if (st == DETLOSS_OK) {
    size_t nl = o.reduction == DETLOSS_REDUCTION_NONE ? nloss : 1;
    loss = malloc((nl ? nl : 1) * sizeof(float));
    if (want_grad) grad = malloc((x.count ? x.count : 1) * sizeof(float));
    if (!loss || (want_grad && !grad))
      st = dl_fail(err, DETLOSS_ERR_NOMEM, path[0] ? path : "input", "cannot allocate outputs");
  }
  if (st == DETLOSS_OK) {
    const float *wp = w.ndim >= 0 ? w.data : NULL;
    if (classes)
      st = detloss_loss_classes(kind, x.data, cls, wp, nrows, ncls, loss, grad, &o, err);
    else if (rows)
      st = detloss_loss_rows(kind, x.data, y.data, wp, nrows, ncls, loss, grad, &o, err);
    else
      st = detloss_loss_elementwise(kind, x.data, y.data, wp, x.count, loss, grad, &o, err);
    if (st != DETLOSS_OK) {
      if (soft_rows || !rows)
        locate(err, at, info, x.shape, x.ndim, lshape, lndim, x.shape, x.ndim);
      else
        locate(err, at, info, x.shape, x.ndim, lshape, lndim, lshape, lndim);
    }
  }
  if (st == DETLOSS_OK) {
    dlj_key(out, "loss");
    if (o.reduction == DETLOSS_REDUCTION_NONE)
      dlj_float_tensor(out, loss, lshape, lndim);
    else
      dlj_num(out, (double)loss[0]);
    if (want_grad) {
      dlj_key(out, "grad");
      dlj_float_tensor(out, grad, x.shape, x.ndim);
    }
  }
  dlj_tensor_free(&pw);
  dlj_tensor_free(&x);
  dlj_tensor_free(&y);
  dlj_tensor_free(&w);
  free(cls);
  free(loss);
  free(grad);
  return st;
}
