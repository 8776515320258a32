/*
 * case_assign_fcos.c - op `assign`, method "fcos" (docs/compute-cases.md,
 * docs/math/fcos_targets.md).
 *
 * semantics "mmdet" (default; mmdetection FCOSHead._get_targets_single) |
 * "original" (tianzhi0549/FCOS) | "torchvision" (torchvision 0.14 FCOS). Fields: points [A][2],
 * level_counts [L] (sum A), strides [L], regress_ranges [L][2] (FCOS's five when absent; required
 * when L != 5), center_sampling (false), center_sample_radius (1.5),
 * norm_on_bbox (false). Output: bbox_targets [A][4], centerness_targets [A]
 * (0 at negatives), num_gt_without_pos, gt_out_of_range [indices] and warnings
 * [one string per such gt]; the dispatcher adds assigned_gt, assigned_labels,
 * num_pos.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/cases.h"
#include "json/evalcfg.h"

static detloss_status read_options(const cJSON *c, const char *path, detloss_fcos_options *o,
                                   detloss_error *err) {
  *o = detloss_fcos_options_default();
  const char *sem = "mmdet";
  DL_FORWARD_IF_ERROR(dlj_string(c, "semantics", path, 0, &sem, err));
  if (strcmp(sem, "original") == 0) {
    o->semantics = DETLOSS_FCOS_ORIGINAL;
  } else if (strcmp(sem, "torchvision") == 0) {
    o->semantics = DETLOSS_FCOS_TORCHVISION;
  } else if (strcmp(sem, "mmdet") != 0) {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "semantics");
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown semantics '%s' for method fcos (expected mmdet, original or "
                   "torchvision)",
                   sem);
  }
  DL_FORWARD_IF_ERROR(dlj_bool(c, "center_sampling", path, 0, &o->center_sampling, err));
  DL_FORWARD_IF_ERROR(dlj_float(c, "center_sample_radius", path, 0, &o->center_sample_radius, err));
  DL_FORWARD_IF_ERROR(dlj_bool(c, "norm_on_bbox", path, 0, &o->norm_on_bbox, err));
  return DETLOSS_OK;
}

/* The library names a point's coordinate by its flat index ("points[5]"): shape
 * {A, 2} turns it into the case's "points[2][1]". */
static void locate(detloss_error *err, const char *path, size_t A) {
  const size_t shape[2] = {A, 2};
  const dlj_arg args[] = {
      {"points", "points", shape, 2, 0},
      {"level_counts", "level_counts", NULL, 0, 0},
      {"strides", "strides", NULL, 0, 0},
      {"regress_ranges", "regress_ranges", NULL, 0, 0},
      {"center_sample_radius", "center_sample_radius", NULL, 0, 0},
      {"gt", "gt", NULL, 0, 0},
  };
  dlj_path at;
  dlj_path_init(&at, path);
  dlj_locate(err, &at, args, sizeof args / sizeof args[0]);
}

detloss_status dl_case_assign_fcos(const cJSON *c, const char *path, const dl_assign_case *in,
                                   dlj_buf *out, dl_assign_case_result *res, const dl_case_ctx *ctx,
                                   detloss_error *err) {
  detloss_fcos_options o;
  DL_FORWARD_IF_ERROR(read_options(c, path, &o, err));
  o.num_threads = ctx->num_threads;
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, "gt");
  DL_RETURN_ERROR_IF(!in->has_gt, err, DETLOSS_ERR_MISSING, where, "is missing");
  float *points = NULL, *ranges = NULL, *bbox = NULL, *ctr = NULL;
  int64_t *lc64 = NULL;
  size_t *lc = NULL;
  size_t A = 0, L = 0, nr = 0;
  dlj_tensor strides = {NULL, 0, -1, {0}};
  detloss_status st = dlj_rows(c, "points", path, 1, 2, &points, &A, err);
  if (st == DETLOSS_OK)
    st = dlj_int_array(c, "level_counts", path, 1, 0, DLJ_MAX_EXACT_INT, &lc64, &L, err);
  if (st == DETLOSS_OK) st = dlj_tensor_get(c, "strides", path, 1, &strides, err);
  if (st == DETLOSS_OK && (strides.ndim != 1 || strides.count != L)) {
    dlj_join(where, sizeof where, path, "strides");
    st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected %zu numbers (one per level)", L);
  }
  if (st == DETLOSS_OK && dlj_field(c, "regress_ranges") != NULL) {
    st = dlj_rows(c, "regress_ranges", path, 1, 2, &ranges, &nr, err);
    if (st == DETLOSS_OK && nr != L) {
      dlj_join(where, sizeof where, path, "regress_ranges");
      st = dl_fail(err, DETLOSS_ERR_SHAPE, where, "has %zu rows for %zu levels", nr, L);
    }
    o.regress_ranges = ranges;
  }
  if (st == DETLOSS_OK && ranges == NULL && L != 5) {
    dlj_join(where, sizeof where, path, "regress_ranges");
    st = dl_fail(err, DETLOSS_ERR_MISSING, where, "is required with %zu levels (the default has 5)",
                 L);
  }
  if (st == DETLOSS_OK) {
    dlj_join(where, sizeof where, path, "bbox_targets");
    st = dl_check_output(&ctx->limits, 6.0 * (double)A, where, "the targets", err);
  }
  if (st == DETLOSS_OK) {
    lc = malloc((L ? L : 1) * sizeof *lc);
    bbox = malloc((A ? 4 * A : 1) * sizeof *bbox);
    ctr = malloc((A ? A : 1) * sizeof *ctr);
    res->assigned_gt = malloc((A ? A : 1) * sizeof(int64_t));
    if (!lc || !bbox || !ctr || !res->assigned_gt)
      st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  if (st == DETLOSS_OK) {
    for (size_t l = 0; l < L; l++) lc[l] = (size_t)lc64[l];
    st = detloss_fcos_targets(points, A, lc, strides.data, L, in->gt, in->num_gt, res->assigned_gt,
                              bbox, ctr, &o, err);
    if (st != DETLOSS_OK) locate(err, path, A);
  }
  uint8_t *oor = NULL;
  uint32_t *npos = NULL;
  if (st == DETLOSS_OK) {
    oor = malloc(in->num_gt ? in->num_gt : 1);
    npos = calloc(in->num_gt ? in->num_gt : 1, sizeof *npos);
    if (!oor || !npos) st = dl_fail(err, DETLOSS_ERR_NOMEM, path, "out of memory");
  }
  if (st == DETLOSS_OK)
    st = detloss_fcos_out_of_range(in->gt, in->num_gt, o.regress_ranges, L, oor, NULL, err);
  if (st == DETLOSS_OK) {
    res->num_anchors = A;
    size_t shape[2] = {A, 4};
    dlj_key(out, "bbox_targets");
    dlj_float_tensor(out, bbox, shape, 2);
    dlj_key(out, "centerness_targets");
    dlj_float_tensor(out, ctr, &A, 1);
    /* A gt with no positive is background everywhere, as in mmdet and FCOS, which say
     * nothing; here it is counted, and a gt whose size misses every level's range is
     * named (docs/math/fcos_targets.md s5). */
    for (size_t a = 0; a < A; a++)
      if (res->assigned_gt[a] >= 0) npos[res->assigned_gt[a]]++;
    size_t none = 0;
    for (size_t g = 0; g < in->num_gt; g++) none += npos[g] == 0;
    dlj_kv_int(out, "num_gt_without_pos", (long long)none);
    dlj_key(out, "gt_out_of_range");
    dlj_arr_begin(out);
    for (size_t g = 0; g < in->num_gt; g++)
      if (oor[g]) dlj_intval(out, (long long)g);
    dlj_arr_end(out);
    dlj_key(out, "warnings");
    dlj_arr_begin(out);
    for (size_t g = 0; g < in->num_gt; g++) {
      if (!oor[g]) continue;
      const float *b = in->gt + 4 * g;
      double m = (double)b[2] - (double)b[0];
      if ((double)b[3] - (double)b[1] > m) m = (double)b[3] - (double)b[1];
      char msg[256];
      snprintf(msg, sizeof msg,
               "gt[%zu]: a point inside it has max(l, t, r, b) in [%g, %g), outside every "
               "level's regress range: no positive (mmdet and FCOS skip it silently)",
               g, 0.5 * m, m);
      dlj_str(out, msg);
    }
    dlj_arr_end(out);
  }
  free(oor);
  free(npos);
  free(points);
  free(ranges);
  free(bbox);
  free(ctr);
  free(lc64);
  free(lc);
  dlj_tensor_free(&strides);
  return st;
}
