/*
 * case_assign_hungarian.c - op `assign`, method "hungarian" (DETR bipartite
 * matching; docs/compute-cases.md and docs/math/hungarian.md).
 *
 * semantics "detr" (default; weights 1/5/2, logits [Q][K+1] with the
 * no-object column last) | "focal" (weights 2/5/2, focal_alpha 0.25,
 * focal_gamma 2, logits [Q][K]); pred_boxes [Q][4] and gt [G][4] as
 * normalised (cx, cy, w, h). Or `cost` [Q][G] (float64, solved as given)
 * instead of logits, pred_boxes and the weights; gt is then optional.
 * Output: pred_index, gt_index [min(Q, G)], cost, cost_matrix [Q][G]; the
 * dispatcher adds assigned_gt, assigned_labels, num_pos (num_pos = min(Q, G)).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"
#include "json/jtree.h"

/* `cost` [Q][G] read in float64 (a float32 tensor would round the costs the
 * caller gave). G is taken from the rows, or from gt_labels when Q = 0. */
static detloss_status read_cost(const cJSON *c, const char *path, size_t G, double **cost,
                                size_t *Q, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "cost");
  const cJSON *v = dlj_plain(c, "cost");
  DL_RETURN_ERROR_IF(!cJSON_IsArray(v), err, DETLOSS_ERR_TYPE, where,
                     "expected an array of rows of numbers [Q][G]");
  size_t n = (size_t)cJSON_GetArraySize(v), total;
  DL_RETURN_ERROR_IF(dl_mul_overflow(n, G, &total) || total > DL_MAX_ELEMS, err, DETLOSS_ERR_RANGE,
                     where, "%zu x %zu is too large", n, G);
  *cost = malloc((total ? total : 1) * sizeof(double));
  DL_RETURN_ERROR_IF(!*cost, err, DETLOSS_ERR_NOMEM, where, "out of memory");
  *Q = n;
  size_t i = 0;
  for (const cJSON *row = v->child; row; row = row->next, i++) {
    char rw[DETLOSS_WHERE_MAX];
    dlj_index(rw, sizeof rw, where, i);
    DL_RETURN_ERROR_IF(!cJSON_IsArray(row), err, DETLOSS_ERR_TYPE, rw,
                       "expected a row of %zu numbers (one per gt)", G);
    size_t m = (size_t)cJSON_GetArraySize(row);
    DL_RETURN_ERROR_IF(m != G, err, DETLOSS_ERR_SHAPE, rw,
                       "has %zu numbers but gt_labels has %zu gts", m, G);
    size_t j = 0;
    for (const cJSON *x = row->child; x; x = x->next, j++) {
      char xw[DETLOSS_WHERE_MAX];
      dlj_index(xw, sizeof xw, rw, j);
      DL_RETURN_ERROR_IF(!cJSON_IsNumber(x), err, DETLOSS_ERR_TYPE, xw, "expected a number");
      DL_RETURN_ERROR_IF(!isfinite(x->valuedouble), err, DETLOSS_ERR_NONFINITE, xw,
                         "is not a finite number");
      (*cost)[i * G + j] = x->valuedouble;
    }
  }
  return DETLOSS_OK;
}

/* A key that the cost form (or the detr semantics) does not read is an error,
 * not silently ignored. */
static detloss_status reject(const cJSON *c, const char *path, const char *key, const char *why,
                             detloss_error *err) {
  if (dlj_plain(c, key) == NULL) return DETLOSS_OK;
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, key);
  return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "is not used %s", why);
}

static detloss_status read_options(const cJSON *c, const char *path, detloss_hungarian_options *o,
                                   detloss_error *err) {
  const char *sem = "detr";
  DL_FORWARD_IF_ERROR(dlj_string(c, "semantics", path, 0, &sem, err));
  if (strcmp(sem, "focal") == 0) {
    *o = detloss_hungarian_options_focal();
  } else if (strcmp(sem, "detr") == 0) {
    *o = detloss_hungarian_options_default();
    DL_FORWARD_IF_ERROR(reject(c, path, "focal_alpha", "with semantics detr", err));
    DL_FORWARD_IF_ERROR(reject(c, path, "focal_gamma", "with semantics detr", err));
  } else {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "semantics");
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown semantics '%s' for method hungarian (expected detr or focal)", sem);
  }
  DL_FORWARD_IF_ERROR(dlj_float(c, "cost_class", path, 0, &o->cost_class, err));
  DL_FORWARD_IF_ERROR(dlj_float(c, "cost_bbox", path, 0, &o->cost_bbox, err));
  DL_FORWARD_IF_ERROR(dlj_float(c, "cost_giou", path, 0, &o->cost_giou, err));
  DL_FORWARD_IF_ERROR(dlj_float(c, "focal_alpha", path, 0, &o->focal_alpha, err));
  DL_FORWARD_IF_ERROR(dlj_float(c, "focal_gamma", path, 0, &o->focal_gamma, err));
  return DETLOSS_OK;
}

/* The library names its arguments; these are their keys in the case. */
static void locate(detloss_error *err, const char *path) {
  static const dlj_arg args[] = {
      {"logits", "logits", NULL, 0, 0},
      {"pred_boxes", "pred_boxes", NULL, 0, 0},
      {"gt_labels", "gt_labels", NULL, 0, 0},
      {"gt", "gt", NULL, 0, 0},
      {"cost_class", "cost_class", NULL, 0, 0},
      {"cost_bbox", "cost_bbox", NULL, 0, 0},
      {"cost_giou", "cost_giou", NULL, 0, 0},
      {"focal_alpha", "focal_alpha", NULL, 0, 0},
      {"focal_gamma", "focal_gamma", NULL, 0, 0},
      {"num_logits", "logits", NULL, 0, 0},
      {"cost", "cost", NULL, 0, 0},
  };
  dlj_path at;
  dlj_path_init(&at, path);
  dlj_locate(err, &at, args, sizeof args / sizeof args[0]);
}

/* logits [Q][nl] and pred_boxes [Q][4] from the case. */
static detloss_status read_predictions(const cJSON *c, const char *path, const dl_assign_case *in,
                                       dlj_tensor *logits, float **boxes, size_t *Q, size_t *nl,
                                       detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  DL_FORWARD_IF_ERROR(dlj_tensor_get(c, "logits", path, 1, logits, err));
  dlj_join(where, sizeof where, path, "logits");
  if (logits->ndim == 1 && logits->count == 0) {
    /* [] : no queries; any class count admits the labels */
    *Q = 0;
    *nl = 2;
    for (size_t g = 0; g < in->num_gt; g++)
      if ((size_t)in->gt_labels[g] + 2 > *nl) *nl = (size_t)in->gt_labels[g] + 2;
  } else {
    DL_RETURN_ERROR_IF(logits->ndim != 2, err, DETLOSS_ERR_SHAPE, where,
                       "expected [Q][K+1] (detr) or [Q][K] (focal) numbers");
    *Q = logits->shape[0];
    *nl = logits->shape[1];
  }
  size_t nb = 0;
  DL_FORWARD_IF_ERROR(dlj_boxes(c, "pred_boxes", path, 1, boxes, &nb, err));
  dlj_join(where, sizeof where, path, "pred_boxes");
  DL_RETURN_ERROR_IF(nb != *Q, err, DETLOSS_ERR_SHAPE, where,
                     "has %zu boxes but logits has %zu rows", nb, *Q);
  dlj_join(where, sizeof where, path, "gt");
  DL_RETURN_ERROR_IF(!in->has_gt, err, DETLOSS_ERR_MISSING, where,
                     "is missing (needed with logits and pred_boxes)");
  return DETLOSS_OK;
}

detloss_status dl_case_assign_hungarian(const cJSON *c, const char *path, const dl_assign_case *in,
                                        dlj_buf *out, dl_assign_case_result *res,
                                        const dl_case_ctx *ctx, detloss_error *err) {
  detloss_hungarian_options o;
  DL_FORWARD_IF_ERROR(read_options(c, path, &o, err));
  o.num_threads = ctx->num_threads;
  const int cost_form = dlj_plain(c, "cost") != NULL;
  size_t G = in->num_gt, Q = 0, nl = 0;
  dlj_tensor logits = {NULL, 0, -1, {0}};
  float *boxes = NULL;
  double *cost = NULL;
  int64_t *pi = NULL, *gi = NULL;
  detloss_status st = DETLOSS_OK;
  if (cost_form) {
    static const char *const unused[] = {"logits",    "pred_boxes",  "cost_class", "cost_bbox",
                                         "cost_giou", "focal_alpha", "focal_gamma"};
    for (size_t k = 0; st == DETLOSS_OK && k < sizeof unused / sizeof unused[0]; k++)
      st = reject(c, path, unused[k], "with cost (the matrix is solved as given)", err);
    if (st == DETLOSS_OK) st = read_cost(c, path, G, &cost, &Q, err);
  } else {
    st = read_predictions(c, path, in, &logits, &boxes, &Q, &nl, err);
  }
  size_t k = Q < G ? Q : G, qg = Q * G;
  if (st == DETLOSS_OK) {
    /* cost_matrix is Q x G numbers (echoed in the cost form too): it also
     * bounds the solver's O(min(Q,G)^2 max(Q,G)) work */
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "cost_matrix");
    st = dl_check_output(&ctx->limits, (double)Q * (double)G, where, "the cost matrix", err);
  }
  if (st == DETLOSS_OK && !cost_form) {
    cost = malloc((qg ? qg : 1) * sizeof(double));
    if (!cost) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  if (st == DETLOSS_OK) {
    pi = malloc((k ? k : 1) * sizeof *pi);
    gi = malloc((k ? k : 1) * sizeof *gi);
    res->assigned_gt = malloc((Q ? Q : 1) * sizeof(int64_t));
    if (!pi || !gi || !res->assigned_gt)
      st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  double total = 0.0;
  if (st == DETLOSS_OK) {
    if (cost_form) {
      st = detloss_linear_sum_assignment(cost, Q, G, pi, gi, err);
      for (size_t i = 0; st == DETLOSS_OK && i < k; i++)
        total += cost[(size_t)pi[i] * G + (size_t)gi[i]];
    } else {
      st = detloss_hungarian_match(logits.data, Q, nl, boxes, in->gt, in->gt_labels, G, pi, gi,
                                   &total, cost, &o, err);
    }
    if (st != DETLOSS_OK) locate(err, path);
  }
  if (st == DETLOSS_OK) {
    res->num_anchors = Q;
    for (size_t q = 0; q < Q; q++) res->assigned_gt[q] = -1;
    for (size_t i = 0; i < k; i++) res->assigned_gt[pi[i]] = gi[i];
    dlj_key(out, "pred_index");
    dlj_int64_tensor(out, pi, &k, 1);
    dlj_key(out, "gt_index");
    dlj_int64_tensor(out, gi, &k, 1);
    dlj_kv_num(out, "cost", total);
    dlj_key(out, "cost_matrix");
    dlj_arr_begin(out);
    for (size_t q = 0; q < Q; q++) {
      dlj_arr_begin(out);
      for (size_t g = 0; g < G; g++) dlj_num(out, cost[q * G + g]);
      dlj_arr_end(out);
    }
    dlj_arr_end(out);
  }
  dlj_tensor_free(&logits);
  free(boxes);
  free(cost);
  free(pi);
  free(gi);
  return st;
}
