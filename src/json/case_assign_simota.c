/*
 * case_assign_simota.c - op `assign`, method "simota" (docs/compute-cases.md,
 * docs/math/simota.md).
 *
 * semantics "mmdet" (default; mmdetection 3.x SimOTAAssigner) | "yolox_0.3"
 * (YOLOX <= 0.3.0) | "yolox" (YOLOX after PR #1589). Fields: points [A][2],
 * level_counts [L] (sum A), strides [L], scores [A][C] probabilities,
 * pred_boxes [A][4], center_radius (2.5; 1.5 for yolox), candidate_topk (10),
 * iou_weight (3), cls_weight (1). Output: assigned_iou [A] (0 at background);
 * the dispatcher adds assigned_gt, assigned_labels, num_pos.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"

static const char *const SEMANTICS[] = {"mmdet", "yolox_0.3", "yolox"};

static detloss_status read_options(const cJSON *c, const char *path, detloss_simota_options *o,
                                   detloss_error *err) {
  const char *sem = "mmdet";
  DL_FORWARD_IF_ERROR(dlj_string(c, "semantics", path, 0, &sem, err));
  size_t k = 0;
  while (k < 3 && strcmp(sem, SEMANTICS[k]) != 0) k++;
  if (k == 3) {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "semantics");
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown semantics '%s' for method simota (expected mmdet, yolox_0.3 or yolox)",
                   sem);
  }
  *o = detloss_simota_options_for((detloss_simota_semantics)k);
  DL_FORWARD_IF_ERROR(dlj_float(c, "center_radius", path, 0, &o->center_radius, err));
  long long topk = o->candidate_topk;
  DL_FORWARD_IF_ERROR(
      dlj_int(c, "candidate_topk", path, 0, -DLJ_MAX_EXACT_INT, DLJ_MAX_EXACT_INT, &topk, err));
  o->candidate_topk = (int64_t)topk;
  DL_FORWARD_IF_ERROR(dlj_float(c, "iou_weight", path, 0, &o->iou_weight, err));
  DL_FORWARD_IF_ERROR(dlj_float(c, "cls_weight", path, 0, &o->cls_weight, err));
  return DETLOSS_OK;
}

detloss_status dl_case_assign_simota(const cJSON *c, const char *path, const dl_assign_case *in,
                                     dlj_buf *out, dl_assign_case_result *res,
                                     const dl_case_ctx *ctx, detloss_error *err) {
  detloss_simota_options o;
  DL_FORWARD_IF_ERROR(read_options(c, path, &o, err));
  o.num_threads = ctx->num_threads;
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "gt");
  DL_RETURN_ERROR_IF(!in->has_gt, err, DETLOSS_ERR_MISSING, where, "is missing");
  float *points = NULL, *pred = NULL, *iou = NULL;
  int64_t *lc64 = NULL;
  size_t *lc = NULL;
  size_t A = 0, L = 0, np = 0, C = 0;
  dlj_tensor strides = {NULL, 0, -1, {0}}, sc = {NULL, 0, -1, {0}};
  detloss_status st = dlj_rows(c, "points", path, 1, 2, &points, &A, err);
  if (st == DETLOSS_OK)
    st = dlj_int_array(c, "level_counts", path, 1, 0, DLJ_MAX_EXACT_INT, &lc64, &L, err);
  if (st == DETLOSS_OK) st = dlj_tensor_get(c, "strides", path, 1, &strides, err);
  if (st == DETLOSS_OK && (strides.ndim != 1 || strides.count != L)) {
    dlj_join(where, sizeof where, path, "strides");
    st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected %zu numbers (one per level)", L);
  }
  if (st == DETLOSS_OK) st = dlj_tensor_get(c, "scores", path, 1, &sc, err);
  if (st == DETLOSS_OK) {
    dlj_join(where, sizeof where, path, "scores");
    if (sc.ndim == 2 && sc.shape[0] == A)
      C = sc.shape[1];
    else if (!(A == 0 && sc.count == 0 && sc.ndim >= 1))
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected [%zu][C] (one row per point)", A);
  }
  if (st == DETLOSS_OK) st = dlj_boxes(c, "pred_boxes", path, 1, &pred, &np, err);
  if (st == DETLOSS_OK && np != A) {
    dlj_join(where, sizeof where, path, "pred_boxes");
    st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "has %zu boxes for %zu points", np, A);
  }
  if (st == DETLOSS_OK) {
    dlj_join(where, sizeof where, path, "assigned_iou");
    st = dl_check_output(&ctx->limits, 3.0 * (double)A, where, "the assignment", err);
  }
  if (st == DETLOSS_OK) {
    lc = malloc((L ? L : 1) * sizeof *lc);
    iou = malloc((A ? A : 1) * sizeof *iou);
    res->assigned_gt = malloc((A ? A : 1) * sizeof(int64_t));
    if (!lc || !iou || !res->assigned_gt)
      st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  if (st == DETLOSS_OK) {
    for (size_t l = 0; l < L; l++) lc[l] = (size_t)lc64[l];
    st = detloss_assign_simota(points, A, lc, strides.data, L, sc.data, C, pred, in->gt,
                               in->gt_labels, in->num_gt, res->assigned_gt, NULL, iou, &o, err);
    if (st != DETLOSS_OK) {
      size_t pshape[2] = {A, 2};
      const dlj_arg args[] = {
          {"points", "points", pshape, 2, 0},
          {"level_counts", "level_counts", NULL, -1, 0},
          {"strides", "strides", NULL, -1, 0},
          {"scores", "scores", NULL, -1, 0},
          {"num_classes", "scores", NULL, -1, 0},
          {"pred_boxes", "pred_boxes", NULL, -1, 0},
          {"gt_labels", "gt_labels", NULL, -1, 0},
          {"gt", "gt", NULL, -1, 0},
          {"center_radius", "center_radius", NULL, -1, 0},
          {"candidate_topk", "candidate_topk", NULL, -1, 0},
          {"iou_weight", "iou_weight", NULL, -1, 0},
          {"cls_weight", "cls_weight", NULL, -1, 0},
      };
      dlj_path at;
      dlj_path_init(&at, path);
      dlj_locate(err, &at, args, sizeof args / sizeof args[0]);
    }
  }
  if (st == DETLOSS_OK) {
    res->num_anchors = A;
    dlj_key(out, "assigned_iou");
    dlj_float_tensor(out, iou, &A, 1);
  }
  free(points);
  free(pred);
  free(iou);
  free(lc64);
  free(lc);
  dlj_tensor_free(&strides);
  dlj_tensor_free(&sc);
  return st;
}
