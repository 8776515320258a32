/*
 * case_assign_task_aligned.c - `assign` with method "task_aligned"
 * (docs/compute-cases.md): points [A][2] or anchors [A][4] (exactly one; anchors
 * through their centres), scores [A][C] probabilities, pred_boxes [A][4],
 * optional level_counts [L] (sum A), topk, alpha, beta (the semantics' defaults:
 * ultralytics 10 / 0.5 / 6, tood 13 / 1 / 6) -> target_scores [A],
 * align_metrics [A] besides the common outputs (case_assign.c).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"

detloss_status dl_case_assign_task_aligned(const cJSON *c, const char *path,
                                           const dl_assign_case *cm, dlj_buf *out,
                                           dl_assign_case_result *res, const dl_case_ctx *ctx,
                                           detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const char *sem = "ultralytics";
  DL_FORWARD_IF_ERROR(dlj_string(c, "semantics", path, 0, &sem, err));
  int tood = strcmp(sem, "tood") == 0;
  if (!tood && strcmp(sem, "ultralytics") != 0) {
    dlj_join(where, sizeof where, path, "semantics");
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown semantics '%s' for method task_aligned (expected ultralytics or tood)",
                   sem);
  }
  if (!cm->has_gt) {
    dlj_join(where, sizeof where, path, "gt");
    return dl_fail(err, DETLOSS_ERR_MISSING, where, "is missing");
  }
  dlj_kv_str(out, "semantics", sem);
  detloss_task_aligned_options o =
      tood ? detloss_task_aligned_options_tood() : detloss_task_aligned_options_default();
  o.num_threads = ctx->num_threads;
  long long topk = o.topk;
  DL_FORWARD_IF_ERROR(
      dlj_int(c, "topk", path, 0, -DLJ_MAX_EXACT_INT, DLJ_MAX_EXACT_INT, &topk, err));
  o.topk = (int64_t)topk;
  DL_FORWARD_IF_ERROR(dlj_float(c, "alpha", path, 0, &o.alpha, err));
  DL_FORWARD_IF_ERROR(dlj_float(c, "beta", path, 0, &o.beta, err));
  int has_p = dlj_field(c, "points") != NULL, has_a = dlj_field(c, "anchors") != NULL;
  if (has_p == has_a) {
    dlj_join(where, sizeof where, path, has_p ? "anchors" : "points");
    return dl_fail(err, has_p ? DETLOSS_ERR_SHAPE : DETLOSS_ERR_MISSING, where,
                   has_p ? "give points or anchors, not both" : "is missing (or give anchors)");
  }
  float *pts = NULL, *anchors = NULL, *pred = NULL, *ts = NULL, *am = NULL;
  int64_t *lc64 = NULL, *ag = NULL;
  size_t *lc = NULL;
  size_t A = 0, np = 0, L = 0;
  dlj_tensor sc = {NULL, 0, -1, {0}};
  detloss_status st;
  if (has_p) {
    st = dlj_rows(c, "points", path, 1, 2, &pts, &A, err);
  } else {
    st = dlj_boxes(c, "anchors", path, 1, &anchors, &A, err);
    if (st == DETLOSS_OK && A > 0) {
      pts = malloc(A * 2 * sizeof *pts);
      if (!pts) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
      /* mmdet anchor_center: (x1 + x2) / 2 in float */
      for (size_t a = 0; pts && a < A; a++) {
        pts[2 * a] = (anchors[4 * a] + anchors[4 * a + 2]) / 2.0f;
        pts[2 * a + 1] = (anchors[4 * a + 1] + anchors[4 * a + 3]) / 2.0f;
      }
    }
  }
  const char *pkey = has_p ? "points" : "anchors";
  if (st == DETLOSS_OK) st = dlj_boxes(c, "pred_boxes", path, 1, &pred, &np, err);
  if (st == DETLOSS_OK && np != A) {
    dlj_join(where, sizeof where, path, "pred_boxes");
    st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "has %zu boxes for %zu %s", np, A, pkey);
  }
  if (st == DETLOSS_OK) st = dlj_tensor_get(c, "scores", path, 1, &sc, err);
  size_t C = 0;
  if (st == DETLOSS_OK) {
    dlj_join(where, sizeof where, path, "scores");
    if (sc.ndim == 2 && sc.shape[0] == A)
      C = sc.shape[1];
    else if (!(A == 0 && sc.count == 0 && sc.ndim >= 1))
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected [%zu][C] (one row per %s)", A,
                   has_p ? "point" : "anchor");
  }
  if (st == DETLOSS_OK)
    st = dlj_int_array(c, "level_counts", path, 0, 0, DLJ_MAX_EXACT_INT, &lc64, &L, err);
  if (st == DETLOSS_OK && lc64 != NULL) {
    lc = malloc((L ? L : 1) * sizeof *lc);
    if (!lc) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
    for (size_t l = 0; lc && l < L; l++) lc[l] = (size_t)lc64[l];
  }
  if (st == DETLOSS_OK && A > 0) {
    ag = malloc(A * sizeof *ag);
    ts = malloc(A * sizeof *ts);
    am = malloc(A * sizeof *am);
    if (!ag || !ts || !am) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  if (st == DETLOSS_OK) {
    st = detloss_assign_task_aligned(pts, A, lc, lc ? L : 0, sc.data, C, pred, cm->gt,
                                     cm->gt_labels, cm->num_gt, ag, NULL, ts, am, &o, err);
    if (st != DETLOSS_OK) {
      size_t sshape[2] = {A, C};
      dlj_arg args[] = {{"points", pkey, NULL, -1, 0},
                        {"scores", "scores", sshape, 2, 0},
                        {"num_classes", "scores", NULL, -1, 0},
                        {"pred_boxes", "pred_boxes", NULL, -1, 0},
                        {"gt_labels", "gt_labels", NULL, -1, 0},
                        {"gt", "gt", NULL, -1, 0},
                        {"level_counts", "level_counts", NULL, -1, 0},
                        {"topk", "topk", NULL, -1, 0},
                        {"alpha", "alpha", NULL, -1, 0},
                        {"beta", "beta", NULL, -1, 0}};
      dlj_path at;
      dlj_path_init(&at, path);
      dlj_locate(err, &at, args, sizeof args / sizeof args[0]);
    }
  }
  if (st == DETLOSS_OK) {
    dlj_key(out, "target_scores");
    dlj_float_tensor(out, ts, &A, 1);
    dlj_key(out, "align_metrics");
    dlj_float_tensor(out, am, &A, 1);
  }
  free(pts);
  free(anchors);
  free(pred);
  free(ts);
  free(am);
  if (st == DETLOSS_OK) {
    /* A = 0: ag is NULL; the dispatcher then writes empty arrays */
    if (ag == NULL) ag = malloc(sizeof *ag);
    if (ag == NULL) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
    res->assigned_gt = ag;
    res->num_anchors = A;
  } else {
    free(ag);
  }
  free(lc64);
  free(lc);
  dlj_tensor_free(&sc);
  return st;
}
