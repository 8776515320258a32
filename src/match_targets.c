/*
 * match_targets.c - training targets from matches: labels, matched gt, deltas.
 *
 * torchvision RegionProposalNetwork.assign_targets_to_anchors (models/detection/rpn.py):
 *   matched_gt = gt[clamp(matches, min=0)], labels = (matches >= 0), labels[-1] = 0,
 *   labels[-2] = -1; regression targets = BoxCoder.encode(matched_gt, anchors).
 * Here deltas are computed for positives only (detloss_box_encode, torchvision
 * BoxCoder semantics) and are 0 elsewhere; no loss reads them there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

detloss_status detloss_match_targets(const float *anchors, size_t num_anchors, const float *gt,
                                     size_t num_gt, const int64_t *matches, int8_t *labels,
                                     int64_t *matched_gt, float *deltas,
                                     const detloss_coder_options *coder, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_boxes(anchors, num_anchors, "anchors", err));
  DL_FORWARD_IF_ERROR(dl_check_boxes(gt, num_gt, "gt", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(matches, num_anchors, "matches", err));
  dl_span sp[6] = {dl_span_of(anchors, num_anchors, 4 * sizeof(float), "anchors", 0),
                   dl_span_of(gt, num_gt, 4 * sizeof(float), "gt", 0),
                   dl_span_of(matches, num_anchors, sizeof(int64_t), "matches", 0),
                   dl_span_of(labels, num_anchors, sizeof(int8_t), "labels", 1),
                   dl_span_of(matched_gt, num_anchors, sizeof(int64_t), "matched_gt", 1),
                   dl_span_of(deltas, num_anchors, 4 * sizeof(float), "deltas", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 6, err));
  char where[DETLOSS_WHERE_MAX];
  size_t npos = 0;
  for (size_t a = 0; a < num_anchors; a++) {
    int64_t m = matches[a];
    if (m < -2 || (m >= 0 && (uint64_t)m >= (uint64_t)num_gt)) {
      snprintf(where, sizeof where, "matches[%zu]", a);
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %lld, expected -2, -1 or a gt index < %zu",
                     (long long)m, num_gt);
    }
    if (m < 0) continue;
    npos++;
    if (deltas == NULL) continue;
    const float *an = anchors + 4 * a, *g = gt + 4 * (size_t)m;
    if (!(an[2] - an[0] > 0.0f && an[3] - an[1] > 0.0f)) {
      snprintf(where, sizeof where, "anchors[%zu]", a);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "is a positive with zero or negative width/height: cannot encode against it");
    }
    if (!(g[2] - g[0] > 0.0f && g[3] - g[1] > 0.0f)) {
      snprintf(where, sizeof where, "gt[%lld]", (long long)m);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "is matched (anchor %zu) but has zero or negative width/height: its "
                     "regression target would be log(0)",
                     a);
    }
  }
  float *pd = NULL;
  if (deltas != NULL && npos > 0) {
    /* Encode every positive into scratch first, so an encoding error leaves the
     * outputs untouched. */
    float *pa = malloc(npos * 4 * sizeof(float));
    float *pg = malloc(npos * 4 * sizeof(float));
    pd = malloc(npos * 4 * sizeof(float));
    if (!pa || !pg || !pd) {
      free(pa);
      free(pg);
      free(pd);
      return dl_fail(err, DETLOSS_ERR_NOMEM, "deltas", "out of memory");
    }
    size_t j = 0;
    for (size_t a = 0; a < num_anchors; a++) {
      if (matches[a] < 0) continue;
      memcpy(pa + 4 * j, anchors + 4 * a, 4 * sizeof(float));
      memcpy(pg + 4 * j, gt + 4 * (size_t)matches[a], 4 * sizeof(float));
      j++;
    }
    detloss_status st = detloss_box_encode(pa, pg, npos, pd, coder, err);
    free(pa);
    free(pg);
    if (st != DETLOSS_OK) {
      free(pd);
      return st;
    }
  } else if (deltas != NULL) {
    /* validate the coder options even when nothing is encoded */
    float one[4] = {0.0f, 0.0f, 1.0f, 1.0f}, d[4];
    DL_FORWARD_IF_ERROR(detloss_box_encode(one, one, 1, d, coder, err));
  }
  size_t j = 0;
  for (size_t a = 0; a < num_anchors; a++) {
    int64_t m = matches[a];
    if (labels) labels[a] = (int8_t)(m >= 0 ? 1 : (m == -1 ? 0 : -1));
    if (matched_gt) matched_gt[a] = m >= 0 ? m : 0;
    if (deltas) {
      if (m >= 0) {
        memcpy(deltas + 4 * a, pd + 4 * j, 4 * sizeof(float));
        j++;
      } else {
        memset(deltas + 4 * a, 0, 4 * sizeof(float));
      }
    }
  }
  free(pd);
  return DETLOSS_OK;
}
