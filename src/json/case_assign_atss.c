/*
 * case_assign_atss.c - op `assign`, method "atss" (docs/compute-cases.md,
 * docs/math/atss.md).
 *
 * semantics "mmdet" (default; mmdetection 3.x ATSSAssigner) | "original"
 * (sfzhang15/ATSS). Fields: anchors [A][4], level_counts [L] (sum A), topk
 * (9), anchors_per_location (1; original only, ignored by mmdet), ignore
 * [K][4] and ignore_iof_thr (-1) (mmdet only: with original a non-empty ignore
 * or a threshold >= 0 is an error). Output: assigned_iou [A] (IoU of each
 * positive with its gt, 0 elsewhere); the dispatcher adds assigned_gt (-2 for
 * ignored anchors), assigned_labels and num_pos.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"

static detloss_status read_options(const cJSON *c, const char *path, detloss_atss_options *o,
                                   detloss_error *err) {
  *o = detloss_atss_options_default();
  const char *sem = "mmdet";
  DL_FORWARD_IF_ERROR(dlj_string(c, "semantics", path, 0, &sem, err));
  char where[DETLOSS_WHERE_MAX];
  if (strcmp(sem, "original") == 0) {
    o->semantics = DETLOSS_ATSS_ORIGINAL;
  } else if (strcmp(sem, "mmdet") != 0) {
    dlj_join(where, sizeof where, path, "semantics");
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown semantics '%s' for method atss (expected mmdet or original)", sem);
  }
  long long v = o->topk;
  DL_FORWARD_IF_ERROR(dlj_int(c, "topk", path, 0, 1, DLJ_MAX_EXACT_INT, &v, err));
  o->topk = v;
  v = o->anchors_per_location;
  DL_FORWARD_IF_ERROR(dlj_int(c, "anchors_per_location", path, 0, 1, DLJ_MAX_EXACT_INT, &v, err));
  if (o->semantics == DETLOSS_ATSS_ORIGINAL) o->anchors_per_location = v;
  DL_FORWARD_IF_ERROR(dlj_float(c, "ignore_iof_thr", path, 0, &o->ignore_iof_thr, err));
  if (o->semantics == DETLOSS_ATSS_ORIGINAL && o->ignore_iof_thr >= 0) {
    dlj_join(where, sizeof where, path, "ignore_iof_thr");
    return dl_fail(err, DETLOSS_ERR_RANGE, where,
                   "is %g but semantics original has no ignore regions (it would change nothing)",
                   (double)o->ignore_iof_thr);
  }
  return DETLOSS_OK;
}

static void locate(detloss_error *err, const char *path) {
  static const dlj_arg args[] = {
      {"anchors", "anchors", NULL, 0, 0},
      {"level_counts", "level_counts", NULL, 0, 0},
      {"gt", "gt", NULL, 0, 0},
      {"ignore", "ignore", NULL, 0, 0},
      {"topk", "topk", NULL, 0, 0},
      {"anchors_per_location", "anchors_per_location", NULL, 0, 0},
      {"ignore_iof_thr", "ignore_iof_thr", NULL, 0, 0},
  };
  dlj_path at;
  dlj_path_init(&at, path);
  dlj_locate(err, &at, args, sizeof args / sizeof args[0]);
}

detloss_status dl_case_assign_atss(const cJSON *c, const char *path, const dl_assign_case *in,
                                   dlj_buf *out, dl_assign_case_result *res, const dl_case_ctx *ctx,
                                   detloss_error *err) {
  detloss_atss_options o;
  DL_FORWARD_IF_ERROR(read_options(c, path, &o, err));
  o.num_threads = ctx->num_threads;
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "gt");
  DL_RETURN_ERROR_IF(!in->has_gt, err, DETLOSS_ERR_MISSING, where, "is missing");
  float *anchors = NULL, *ignore = NULL, *iou = NULL;
  int64_t *lc64 = NULL;
  size_t *lc = NULL;
  size_t A = 0, L = 0, K = 0;
  detloss_status st = dlj_boxes(c, "anchors", path, 1, &anchors, &A, err);
  if (st == DETLOSS_OK)
    st = dlj_int_array(c, "level_counts", path, 1, 0, DLJ_MAX_EXACT_INT, &lc64, &L, err);
  if (st == DETLOSS_OK) st = dlj_boxes(c, "ignore", path, 0, &ignore, &K, err);
  if (st == DETLOSS_OK && o.semantics == DETLOSS_ATSS_ORIGINAL && K > 0) {
    dlj_join(where, sizeof where, path, "ignore");
    st = dl_fail(err, DETLOSS_ERR_RANGE, where,
                 "has %zu boxes but semantics original has no ignore regions", K);
  }
  if (st == DETLOSS_OK) {
    dlj_join(where, sizeof where, path, "assigned_gt");
    st = dl_check_output(&ctx->limits, 2.0 * (double)A, where, "the assignment", err);
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
    st = detloss_atss_assign(anchors, A, lc, L, in->gt, in->num_gt, ignore, K, res->assigned_gt,
                             iou, &o, err);
    if (st != DETLOSS_OK) locate(err, path);
  }
  if (st == DETLOSS_OK) {
    res->num_anchors = A;
    dlj_key(out, "assigned_iou");
    dlj_float_tensor(out, iou, &A, 1);
  }
  free(anchors);
  free(ignore);
  free(iou);
  free(lc64);
  free(lc);
  return st;
}
