/*
 * test_loss_box.c - IoU-family box losses (detloss_loss_boxes): torchvision
 * float64 fixtures, hand-worked values, finite-difference gradients against an
 * independent double implementation, extreme inputs, bad input, thread
 * invariance.
 */
#include <cjson/cJSON.h>
#include <float.h>

#include "testjson.h"
#include "testutil.h"
#include "detloss/detloss.h"

static const detloss_loss_kind KINDS[4] = {DETLOSS_LOSS_IOU, DETLOSS_LOSS_GIOU, DETLOSS_LOSS_DIOU,
                                           DETLOSS_LOSS_CIOU};

static detloss_loss_options opts(detloss_loss_kind k, detloss_reduction r) {
  detloss_loss_options o = detloss_loss_options_default(k);
  o.reduction = r;
  return o;
}

/* An independent double reference: the torchvision formulas, written out. */

/* The loss of one pair in double. For CIoU, alpha_in < 0 computes alpha from
 * the boxes; alpha_in >= 0 holds it fixed (alpha is a constant for the
 * gradient), which is what finite differences must do. *alpha_out gets alpha. */
static double ref_loss(detloss_loss_kind k, const double *p, const double *g, double eps,
                       double alpha_in, double *alpha_out) {
  double ix1 = fmax(p[0], g[0]), iy1 = fmax(p[1], g[1]);
  double ix2 = fmin(p[2], g[2]), iy2 = fmin(p[3], g[3]);
  double inter = (ix2 > ix1 && iy2 > iy1) ? (ix2 - ix1) * (iy2 - iy1) : 0.0;
  double w = p[2] - p[0], h = p[3] - p[1], wg = g[2] - g[0], hg = g[3] - g[1];
  double uni = w * h + wg * hg - inter;
  double iou = inter / (uni + eps);
  double cw = fmax(p[2], g[2]) - fmin(p[0], g[0]);
  double ch = fmax(p[3], g[3]) - fmin(p[1], g[1]);
  double l = 1.0 - iou;
  if (k == DETLOSS_LOSS_GIOU) l += (cw * ch - uni) / (cw * ch + eps);
  if (k == DETLOSS_LOSS_DIOU || k == DETLOSS_LOSS_CIOU) {
    double dx = (p[0] + p[2]) / 2 - (g[0] + g[2]) / 2, dy = (p[1] + p[3]) / 2 - (g[1] + g[3]) / 2;
    l += (dx * dx + dy * dy) / (cw * cw + ch * ch + eps);
  }
  if (k == DETLOSS_LOSS_CIOU) {
    const double pi = 3.14159265358979323846;
    double v = 4 / (pi * pi) * pow(atan(wg / hg) - atan(w / h), 2);
    double alpha = alpha_in >= 0 ? alpha_in : v / (1 - iou + v + eps);
    if (alpha_out) *alpha_out = alpha;
    l += alpha * v;
  }
  return l;
}

/* Every fixture case: values and both gradients within 1e-5 relative, 1e-6
 * absolute of torchvision float64 autograd (float32 inputs, so the only
 * difference is our final rounding to float). Ties (identical boxes, shared
 * edges) are included: torch.maximum/minimum split the gradient in halves, as
 * we do. */
static void values_and_gradients_match_torchvision_float64(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("loss_box/torchvision_box_losses.json"));
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  assert_non_null(cJSON_GetObjectItem(root, "torchvision"));
  const cJSON *c;
  int count = 0;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
    detloss_loss_kind kind;
    assert_int_equal(detloss_loss_from_name(cJSON_GetObjectItem(c, "kind")->valuestring, &kind,
                                            NULL),
                     DETLOSS_OK);
    detloss_loss_options o =
        opts(kind, dl_json_reduction(cJSON_GetObjectItem(c, "reduction")->valuestring));
    o.eps = (float)cJSON_GetObjectItem(c, "eps")->valuedouble;
    size_t n = (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(c, "pred"));
    size_t cap = n ? n : 1;
    float *pred = malloc(cap * 4 * sizeof(float)), *tgt = malloc(cap * 4 * sizeof(float));
    float *w = NULL, *loss = malloc(cap * sizeof(float));
    float *gp = malloc(cap * 4 * sizeof(float)), *gt = malloc(cap * 4 * sizeof(float));
    double *eloss = malloc(cap * sizeof(double)), *egp = malloc(cap * 4 * sizeof(double));
    double *egt = malloc(cap * 4 * sizeof(double));
    dl_json_rows(cJSON_GetObjectItem(c, "pred"), 4, pred, NULL);
    dl_json_rows(cJSON_GetObjectItem(c, "target"), 4, tgt, NULL);
    const cJSON *jw = cJSON_GetObjectItem(c, "weight");
    if (cJSON_IsArray(jw)) {
      w = malloc(cap * sizeof(float));
      dl_json_rows(jw, 0, w, NULL);
    }
    const cJSON *jl = cJSON_GetObjectItem(c, "loss");
    size_t nl = 1;
    if (cJSON_IsArray(jl))
      nl = dl_json_rows(jl, 0, NULL, eloss);
    else
      eloss[0] = jl->valuedouble;
    dl_json_rows(cJSON_GetObjectItem(c, "grad_pred"), 4, NULL, egp);
    dl_json_rows(cJSON_GetObjectItem(c, "grad_target"), 4, NULL, egt);
    detloss_error err;
    assert_int_equal(detloss_loss_boxes(kind, pred, tgt, w, n, loss, gp, gt, &o, &err), DETLOSS_OK);
    dl_assert_close(loss, eloss, nl, 1e-5, 1e-6);
    dl_assert_close(gp, egp, 4 * n, 1e-5, 1e-6);
    dl_assert_close(gt, egt, 4 * n, 1e-5, 1e-6);
    free(pred);
    free(tgt);
    free(w);
    free(loss);
    free(gp);
    free(gt);
    free(eloss);
    free(egp);
    free(egt);
    count++;
  }
  assert_true(count >= 34); /* as many as the generator writes */
  cJSON_Delete(root);
  free(text);
}

/* docs/math/box_losses.md, hand-checked values:
 *  [0,0,10,10] vs [5,5,15,15]: I = 25, U = 175, IoU = 1/7; C = 15*15 = 225,
 *    GIoU loss = 1 - 1/7 + 50/225 = 1.07936508; rho^2 = 50, c^2 = 450,
 *    DIoU loss = 6/7 + 1/9 = 0.96825397; same aspect (v = 0): CIoU = DIoU.
 *  [0,0,10,10] vs [20,0,30,20]: I = 0, U = 300, C = 30*20 = 600,
 *    GIoU loss = 1 + 300/600 = 1.5; rho^2 = 20^2 + 5^2 = 425, c^2 = 900 + 400,
 *    DIoU loss = 1 + 425/1300 = 1.32692308;
 *    v = 4/pi^2 (atan(1/2) - atan(1))^2 = 0.0410...,  alpha = v/(1 + v) -> 1.32861254.
 *  [0,0,4,2] vs [1,1,3,5]: I = 2*1 = 2, U = 8 + 8 - 2 = 14, IoU = 1/7, C = 4*5 = 20,
 *    GIoU loss = 6/7 + 6/20 = 1.15714286; rho^2 = 0 + 4 = 4, c^2 = 16 + 25,
 *    DIoU loss = 6/7 + 4/41 = 0.95470383; CIoU 0.98218322 (alpha 0.16373752). */
static void hand_checked_pairs_give_the_documented_losses(void **state) {
  (void)state;
  const float p[12] = {0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 4, 2};
  const float t[12] = {5, 5, 15, 15, 20, 0, 30, 20, 1, 1, 3, 5};
  const double expect[4][3] = {{1 - 1.0 / 7, 1.0, 1 - 1.0 / 7},
                               {1.07936508, 1.5, 1.15714286},
                               {0.96825397, 1.32692308, 0.95470383},
                               {0.96825397, 1.32861254, 0.98218322}};
  for (int k = 0; k < 4; k++) {
    detloss_loss_options o = opts(KINDS[k], DETLOSS_REDUCTION_NONE);
    float loss[3];
    assert_int_equal(detloss_loss_boxes(KINDS[k], p, t, NULL, 3, loss, NULL, NULL, &o, NULL),
                     DETLOSS_OK);
    /* the table has 8-9 digits, float rounding 6e-8; eps = 1e-7 moves them < 1e-8 */
    dl_assert_close(loss, expect[k], 3, 0, 1.5e-7);
  }
}

/* Random pairs away from kinks: central differences (step 1e-4 px, in double)
 * of the independent reference, with CIoU's alpha held at its value (it is a
 * constant for the gradient), against the analytic gradient for both boxes.
 * Kinks skipped: coordinate ties (max/min switches) and the intersection mask
 * boundary, within 0.05 px. */
static void gradients_match_central_differences(void **state) {
  (void)state;
  dl_rng rng = {77};
  int checked = 0;
  for (int trial = 0; trial < 400; trial++) {
    double pd[4], gd[4];
    for (int j = 0; j < 2; j++) {
      double *b = j ? gd : pd;
      double x = dl_rng_uniform(&rng, 0, 40), y = dl_rng_uniform(&rng, 0, 40);
      b[0] = x;
      b[1] = y;
      b[2] = x + dl_rng_uniform(&rng, 1, 30);
      b[3] = y + dl_rng_uniform(&rng, 1, 30);
    }
    float pf[4], gf[4];
    for (int k = 0; k < 4; k++) {
      pf[k] = (float)pd[k];
      gf[k] = (float)gd[k];
      pd[k] = pf[k];
      gd[k] = gf[k];
    }
    int near = 0;
    for (int k = 0; k < 4; k++) near |= fabs(pd[k] - gd[k]) < 0.05;
    near |= fabs(fmin(pd[2], gd[2]) - fmax(pd[0], gd[0])) < 0.05;
    near |= fabs(fmin(pd[3], gd[3]) - fmax(pd[1], gd[1])) < 0.05;
    if (near) continue;
    for (int kk = 0; kk < 4; kk++) {
      detloss_loss_kind kind = KINDS[kk];
      detloss_loss_options o = opts(kind, DETLOSS_REDUCTION_SUM);
      float loss, gp[4], gt[4];
      assert_int_equal(detloss_loss_boxes(kind, pf, gf, NULL, 1, &loss, gp, gt, &o, NULL),
                       DETLOSS_OK);
      double alpha = 0.0;
      double l0 = ref_loss(kind, pd, gd, 1e-7, -1.0, &alpha);
      dl_assert_close1(loss, l0, 1e-6, 1e-7);
      double fdp[4], fdt[4];
      const double hstep = 1e-4;
      for (int k = 0; k < 4; k++) {
        double a[4], b[4];
        memcpy(a, pd, sizeof a);
        memcpy(b, gd, sizeof b);
        a[k] += hstep;
        double lp = ref_loss(kind, a, gd, 1e-7, alpha, NULL);
        a[k] -= 2 * hstep;
        double lm = ref_loss(kind, a, gd, 1e-7, alpha, NULL);
        fdp[k] = (lp - lm) / (2 * hstep);
        b[k] += hstep;
        lp = ref_loss(kind, pd, b, 1e-7, alpha, NULL);
        b[k] -= 2 * hstep;
        lm = ref_loss(kind, pd, b, 1e-7, alpha, NULL);
        fdt[k] = (lp - lm) / (2 * hstep);
      }
      /* FD truncation ~ h^2 |f'''| ~ 1e-8 for boxes of >= 1 px; float rounding 6e-8 rel */
      dl_assert_close(gp, fdp, 4, 1e-5, 1e-7);
      dl_assert_close(gt, fdt, 4, 1e-5, 1e-7);
      checked++;
    }
  }
  assert_true(checked > 200);
}

/* The losses are symmetric (torchvision's docstrings): swapping the boxes
 * gives the same loss and swaps the gradients, bit for bit. */
static void swapping_pred_and_target_swaps_the_gradients(void **state) {
  (void)state;
  const float a[8] = {1, 2, 11, 9, 0, 0, 3, 0}, b[8] = {4, 1, 13, 6, 1, 1, 5, 4};
  for (int kk = 0; kk < 4; kk++) {
    detloss_loss_options o = opts(KINDS[kk], DETLOSS_REDUCTION_NONE);
    float l1[2], l2[2], ga1[8], gb1[8], ga2[8], gb2[8];
    assert_int_equal(detloss_loss_boxes(KINDS[kk], a, b, NULL, 2, l1, ga1, gb1, &o, NULL), 0);
    assert_int_equal(detloss_loss_boxes(KINDS[kk], b, a, NULL, 2, l2, gb2, ga2, &o, NULL), 0);
    dl_assert_bitwise_equal(l1, l2, 2);
    dl_assert_bitwise_equal(ga1, ga2, 8);
    dl_assert_bitwise_equal(gb1, gb2, 8);
  }
}

/* Reductions: none gives w_i l_i; sum = their sum; mean = sum / n (not over
 * the weights); the gradients scale the same way (1, 1, 1/n). */
static void reductions_and_weights_follow_the_conventions(void **state) {
  (void)state;
  const float p[12] = {0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 4, 2};
  const float t[12] = {5, 5, 15, 15, 20, 0, 30, 20, 1, 1, 3, 5};
  const float w[3] = {0.5f, 2.0f, 0.0f};
  for (int kk = 0; kk < 4; kk++) {
    detloss_loss_options on = opts(KINDS[kk], DETLOSS_REDUCTION_NONE);
    detloss_loss_options os = opts(KINDS[kk], DETLOSS_REDUCTION_SUM);
    detloss_loss_options om = opts(KINDS[kk], DETLOSS_REDUCTION_MEAN);
    float ln[3], lu[3], ls, lm, gn[12], gu[12], gs[12], gm[12];
    assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, NULL, 3, lu, gu, NULL, &on, NULL), 0);
    assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, w, 3, ln, gn, NULL, &on, NULL), 0);
    assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, w, 3, &ls, gs, NULL, &os, NULL), 0);
    assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, w, 3, &lm, gm, NULL, &om, NULL), 0);
    double e[3], eg[12], sum = 0;
    for (int i = 0; i < 3; i++) {
      e[i] = (double)w[i] * (double)lu[i];
      sum += e[i];
      for (int k = 0; k < 4; k++) eg[4 * i + k] = (double)w[i] * (double)gu[4 * i + k];
    }
    dl_assert_close(ln, e, 3, 1e-6, 0);
    dl_assert_close1(ls, sum, 1e-6, 0);
    dl_assert_close1(lm, sum / 3, 1e-6, 0);
    dl_assert_close(gn, eg, 12, 1e-6, 0);
    dl_assert_close(gs, eg, 12, 1e-6, 0);
    for (int j = 0; j < 12; j++) eg[j] /= 3;
    dl_assert_close(gm, eg, 12, 1e-6, 0);
  }
}

/* Mean over zero boxes is 0 (torchvision: 0 * sum, also 0); NULL arrays are
 * fine with n = 0. */
static void mean_of_no_boxes_is_zero(void **state) {
  (void)state;
  for (int kk = 0; kk < 4; kk++) {
    detloss_loss_options o = opts(KINDS[kk], DETLOSS_REDUCTION_MEAN);
    float loss = 123.0f;
    assert_int_equal(detloss_loss_boxes(KINDS[kk], NULL, NULL, NULL, 0, &loss, NULL, NULL, &o,
                                        NULL),
                     DETLOSS_OK);
    assert_true(loss == 0.0f); /* exact */
  }
  /* NONE with n = 0 writes nothing and needs no buffer */
  detloss_loss_options o = opts(DETLOSS_LOSS_GIOU, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_boxes(DETLOSS_LOSS_GIOU, NULL, NULL, NULL, 0, NULL, NULL, NULL, &o,
                                      NULL),
                   DETLOSS_OK);
}

/* NULL options mean the defaults: eps 1e-7 and MEAN. */
static void null_options_mean_defaults(void **state) {
  (void)state;
  const float p[8] = {0, 0, 10, 10, 0, 0, 4, 2}, t[8] = {5, 5, 15, 15, 1, 1, 3, 5};
  for (int kk = 0; kk < 4; kk++) {
    detloss_loss_options o = opts(KINDS[kk], DETLOSS_REDUCTION_MEAN);
    float a, b, ga[8], gb[8];
    assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, NULL, 2, &a, ga, NULL, NULL, NULL), 0);
    assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, NULL, 2, &b, gb, NULL, &o, NULL), 0);
    assert_memory_equal(&a, &b, sizeof a);
    dl_assert_bitwise_equal(ga, gb, 8);
  }
}

static int all_finite(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* Identical proper boxes: IoU = A/(A + eps), loss ~ eps/A = 1e-9 (every kind:
 * no centre distance, no aspect difference), gradient ~1e-11 (not exactly 0:
 * eps). Identical degenerate (0,0,0,0): I = U = C = 0, loss 1 for every kind
 * (pytorch/vision #7746), gradient finite (0: nothing depends smoothly). */
static void identical_boxes_give_zero_and_degenerate_ones_give_one(void **state) {
  (void)state;
  const float b[8] = {0, 0, 10, 10, 0, 0, 0, 0};
  for (int kk = 0; kk < 4; kk++) {
    detloss_loss_options o = opts(KINDS[kk], DETLOSS_REDUCTION_NONE);
    float loss[2], gp[8], gt[8];
    assert_int_equal(detloss_loss_boxes(KINDS[kk], b, b, NULL, 2, loss, gp, gt, &o, NULL), 0);
    const double e[2] = {1e-9, 1.0}; /* 1 - 100/(100 + 1e-7) = 1e-9 */
    dl_assert_close(loss, e, 2, 1e-6, 1e-15);
    assert_true(all_finite(gp, 8) && all_finite(gt, 8));
    for (int k = 0; k < 8; k++) assert_true(fabsf(gp[k]) < 1e-9f);
  }
}

/* Zero height: torchvision's CIoU gives NaN gradients (atan(w/0) backward is
 * 0 * inf). Here atan(w/0) = pi/2 and the derivative is the h -> 0+ limit, so
 * the value and gradient at h = 0 equal the limits from h = 1e-4 within the
 * O(h) change. Pred [20,0,30,0] (w 10, h 0) against [0,0,10,5], disjoint, so
 * the intersection stays 0 on both sides:
 *   U = 0 + 50, IoU = 0; rho^2 = 20^2 + 2.5^2, c^2 = 30^2 + 5^2;
 *   v = 4/pi^2 (atan(2) - pi/2)^2. */
static void ciou_at_zero_height_is_the_limit_and_finite(void **state) {
  (void)state;
  const float p0[4] = {20, 0, 30, 0}, p1[4] = {20, 0, 30, 1e-4f}, t[4] = {0, 0, 10, 5};
  detloss_loss_options o = opts(DETLOSS_LOSS_CIOU, DETLOSS_REDUCTION_SUM);
  float l0, l1, g0[4], g1[4], gt0[4];
  assert_int_equal(detloss_loss_boxes(DETLOSS_LOSS_CIOU, p0, t, NULL, 1, &l0, g0, gt0, &o, NULL),
                   0);
  assert_int_equal(detloss_loss_boxes(DETLOSS_LOSS_CIOU, p1, t, NULL, 1, &l1, g1, NULL, &o, NULL),
                   0);
  const double pi = 3.14159265358979323846;
  double v = 4 / (pi * pi) * pow(atan(2.0) - pi / 2, 2);
  double expect = 1.0 + (400.0 + 6.25) / (925.0 + 1e-7) + v * v / (1.0 + v + 1e-7);
  dl_assert_close1(l0, expect, 1e-6, 0);
  assert_true(all_finite(g0, 4) && all_finite(gt0, 4));
  double g1d[4];
  for (int k = 0; k < 4; k++) g1d[k] = g1[k];
  /* O(h) change of the gradient over h = 1e-4 with 1/w = 0.1 scale: < 1e-4 */
  dl_assert_close(g0, g1d, 4, 1e-3, 1e-4);
  /* d atan(w/h)/dh at h = 0 is -1/w, not 0: the y2 gradient is non-zero */
  assert_true(fabsf(g0[3]) > 1e-3f);
}

/* A point box (w = h = 0) in CIoU: atan(0/0) is taken as 0 and its derivative
 * as 0; value and gradients are finite (torchvision: NaN value). Point at the
 * centre of [0,0,10,10]: I = 0 (empty), U = 100, IoU = 0, rho = 0, v =
 * 4/pi^2 (pi/4)^2 = 1/4, alpha = 0.25/1.25 = 0.2, loss = 1 + 0.05. */
static void ciou_of_a_point_box_is_finite(void **state) {
  (void)state;
  const float p[4] = {5, 5, 5, 5}, t[4] = {0, 0, 10, 10};
  detloss_loss_options o = opts(DETLOSS_LOSS_CIOU, DETLOSS_REDUCTION_SUM);
  float l, gp[4], gt[4];
  assert_int_equal(detloss_loss_boxes(DETLOSS_LOSS_CIOU, p, t, NULL, 1, &l, gp, gt, &o, NULL), 0);
  dl_assert_close1(l, 1.0 + 0.25 * 0.25 / (1.25 + 1e-7), 1e-6, 0);
  assert_true(all_finite(gp, 4) && all_finite(gt, 4));
}

/* Inverted, disjoint, touching and huge boxes never give NaN or Inf. The
 * losses are scale-invariant up to eps: boxes scaled by 1e30 give the same
 * loss as at scale 1 (eps negligible) and gradients scaled by 1e-30. */
static void extreme_boxes_stay_finite_and_scale_invariant(void **state) {
  (void)state;
  const float p[24] = {5,      5, 2,     8,       /* inverted in x */
                       9,      9, 1,     1,       /* inverted in both */
                       0,      0, 1,     1,       /* disjoint, far */
                       0,      0, 5,     5,       /* touching edge */
                       0,      0, 3e38f, 3e38f,   /* huge */
                       -3e38f, 0, 0,     1e-40f}; /* huge and subnormal */
  const float t[24] = {0, 0, 10, 10, 0,     0,     3,     4,     1e6f, 1e6f, 1e6f + 1, 1e6f + 2,
                       5, 0, 9,  5,  1e38f, 1e38f, 2e38f, 3e38f, 0,    0,    1e-40f,   3e38f};
  for (int kk = 0; kk < 4; kk++) {
    detloss_loss_options o = opts(KINDS[kk], DETLOSS_REDUCTION_NONE);
    float l[6], gp[24], gt[24];
    assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, NULL, 6, l, gp, gt, &o, NULL), 0);
    assert_true(all_finite(l, 6) && all_finite(gp, 24) && all_finite(gt, 24));
    o.reduction = DETLOSS_REDUCTION_MEAN;
    float m;
    assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, NULL, 6, &m, gp, gt, &o, NULL), 0);
    assert_true(isfinite(m) && all_finite(gp, 24) && all_finite(gt, 24));

    const float a[4] = {1, 2, 5, 7}, b[4] = {2, 1, 6, 4};
    float as[4], bs[4];
    for (int k = 0; k < 4; k++) {
      as[k] = a[k] * 1e30f;
      bs[k] = b[k] * 1e30f;
    }
    float l1, l2, g1[4], g2[4];
    o.reduction = DETLOSS_REDUCTION_SUM;
    assert_int_equal(detloss_loss_boxes(KINDS[kk], a, b, NULL, 1, &l1, g1, NULL, &o, NULL), 0);
    assert_int_equal(detloss_loss_boxes(KINDS[kk], as, bs, NULL, 1, &l2, g2, NULL, &o, NULL), 0);
    dl_assert_close1(l2, l1, 1e-6, 0);
    double gs[4];
    for (int k = 0; k < 4; k++) gs[k] = (double)g1[k] * 1e-30;
    dl_assert_close(g2, gs, 4, 1e-5, 0);
  }
}

/* A float drawn from a mix: special values (0, +-subnormal, +-FLT_MAX, ...)
 * one time in three, else a random mantissa with exponent in [-125, 125]. */
static float extreme_float(dl_rng *r) {
  static const float v[] = {0,       1,        -1,   1e-45f, -1e-45f, 1e-38f, 3e38f, -3e38f,
                            FLT_MAX, -FLT_MAX, 0.5f, 2,      1e20f,   -1e20f, 1e-20f};
  uint64_t u = dl_rng_u64(r);
  if (u % 3 == 0) return v[(u >> 8) % (sizeof v / sizeof v[0])];
  int e = (int)((u >> 8) % 251) - 125;
  return (float)ldexp((double)((u >> 20) % 1000000) / 1e6 * ((u >> 40) & 1 ? 1 : -1), e);
}

/* 100,000 random pairs of extreme boxes (huge, subnormal, inverted, zero
 * sized, exact ties between the boxes one time in four) and extreme weights:
 * no NaN or Inf in any loss or gradient, for every kind. */
static void random_extreme_boxes_never_give_nan_or_inf(void **state) {
  (void)state;
  const size_t n = 100000;
  float *p = malloc(16 * n), *t = malloc(16 * n), *gp = malloc(16 * n), *gt = malloc(16 * n);
  float *l = malloc(4 * n), *w = malloc(4 * n);
  dl_rng rng = {2026};
  for (size_t i = 0; i < 4 * n; i++) {
    p[i] = extreme_float(&rng);
    t[i] = (dl_rng_u64(&rng) & 3) == 0 ? p[i] : extreme_float(&rng);
  }
  for (size_t i = 0; i < n; i++) w[i] = (dl_rng_u64(&rng) & 1) ? 1.0f : extreme_float(&rng);
  for (int kk = 0; kk < 4; kk++) {
    detloss_loss_options o = opts(KINDS[kk], DETLOSS_REDUCTION_NONE);
    assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, w, n, l, gp, gt, &o, NULL), 0);
    assert_true(all_finite(l, n) && all_finite(gp, 4 * n) && all_finite(gt, 4 * n));
    o.reduction = DETLOSS_REDUCTION_MEAN;
    assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, w, n, l, gp, NULL, &o, NULL), 0);
    assert_true(all_finite(l, 1) && all_finite(gp, 4 * n));
  }
  free(p);
  free(t);
  free(gp);
  free(gt);
  free(l);
  free(w);
}

/* Bad input: status, err.where, and outputs untouched (sentinels survive). */
static void bad_input_is_rejected_with_outputs_untouched(void **state) {
  (void)state;
  float p[8] = {0, 0, 1, 1, 0, 0, 2, 2}, t[8] = {0, 0, 2, 2, 1, 1, 3, 3}, w[2] = {1, 1};
  float loss[2] = {-7, -7}, gp[8], gt[8];
  for (int k = 0; k < 8; k++) gp[k] = gt[k] = -7;
  detloss_loss_options o = opts(DETLOSS_LOSS_GIOU, DETLOSS_REDUCTION_NONE);
  detloss_error err;
#define EXPECT_FAIL(call, status, wh)                                                              \
  do {                                                                                             \
    memset(&err, 0, sizeof err);                                                                   \
    assert_int_equal((call), (status));                                                            \
    assert_string_equal(err.where, (wh));                                                          \
    for (int k_ = 0; k_ < 8; k_++) assert_true(gp[k_] == -7.0f && gt[k_] == -7.0f);                \
    assert_true(loss[0] == -7.0f && loss[1] == -7.0f);                                             \
  } while (0)
  EXPECT_FAIL(detloss_loss_boxes(DETLOSS_LOSS_GIOU, NULL, t, w, 2, loss, gp, gt, &o, &err),
              DETLOSS_ERR_NULL, "pred");
  EXPECT_FAIL(detloss_loss_boxes(DETLOSS_LOSS_GIOU, p, NULL, w, 2, loss, gp, gt, &o, &err),
              DETLOSS_ERR_NULL, "target");
  EXPECT_FAIL(detloss_loss_boxes(DETLOSS_LOSS_GIOU, p, t, w, 2, NULL, gp, gt, &o, &err),
              DETLOSS_ERR_NULL, "loss");
  p[6] = NAN;
  EXPECT_FAIL(detloss_loss_boxes(DETLOSS_LOSS_GIOU, p, t, w, 2, loss, gp, gt, &o, &err),
              DETLOSS_ERR_NONFINITE, "pred[1]");
  p[6] = 2;
  t[0] = INFINITY;
  EXPECT_FAIL(detloss_loss_boxes(DETLOSS_LOSS_GIOU, p, t, w, 2, loss, gp, gt, &o, &err),
              DETLOSS_ERR_NONFINITE, "target[0]");
  t[0] = 0;
  w[1] = NAN;
  EXPECT_FAIL(detloss_loss_boxes(DETLOSS_LOSS_GIOU, p, t, w, 2, loss, gp, gt, &o, &err),
              DETLOSS_ERR_NONFINITE, "weight[1]");
  w[1] = 1;
  const float bad_eps[3] = {0.0f, -1e-7f, NAN};
  for (int i = 0; i < 3; i++) {
    o.eps = bad_eps[i];
    EXPECT_FAIL(detloss_loss_boxes(DETLOSS_LOSS_GIOU, p, t, w, 2, loss, gp, gt, &o, &err),
                DETLOSS_ERR_RANGE, "eps");
  }
  o.eps = 1e-7f;
  o.reduction = (detloss_reduction)7;
  EXPECT_FAIL(detloss_loss_boxes(DETLOSS_LOSS_GIOU, p, t, w, 2, loss, gp, gt, &o, &err),
              DETLOSS_ERR_RANGE, "reduction");
  o.reduction = DETLOSS_REDUCTION_NONE;
  EXPECT_FAIL(detloss_loss_boxes(DETLOSS_LOSS_L1, p, t, w, 2, loss, gp, gt, &o, &err),
              DETLOSS_ERR_RANGE, "kind");
  EXPECT_FAIL(detloss_loss_boxes(DETLOSS_LOSS_GIOU, p, t, w, SIZE_MAX / 2, loss, gp, gt, &o, &err),
              DETLOSS_ERR_SHAPE, "n");
#undef EXPECT_FAIL
}

/* 50,000 pairs (13 blocks of 4096): loss (sum and none) and gradients are
 * bitwise identical for 1, 2 and 4 threads. */
static void results_are_bitwise_identical_for_any_thread_count(void **state) {
  (void)state;
  const size_t n = 50000;
  float *p = malloc(n * 4 * sizeof(float)), *t = malloc(n * 4 * sizeof(float));
  float *w = malloc(n * sizeof(float));
  dl_rng rng = {5};
  for (size_t i = 0; i < n; i++) {
    float x = (float)dl_rng_uniform(&rng, 0, 500), y = (float)dl_rng_uniform(&rng, 0, 500);
    t[4 * i] = x;
    t[4 * i + 1] = y;
    t[4 * i + 2] = x + (float)dl_rng_uniform(&rng, 0, 80);
    t[4 * i + 3] = y + (float)dl_rng_uniform(&rng, 0, 80);
    for (int k = 0; k < 4; k++) p[4 * i + k] = t[4 * i + k] + (float)dl_rng_uniform(&rng, -20, 20);
    w[i] = (float)dl_rng_uniform(&rng, 0, 2);
  }
  float *g[3], *l[3], s[3];
  for (int r = 0; r < 3; r++) {
    g[r] = malloc(n * 4 * sizeof(float));
    l[r] = malloc(n * sizeof(float));
  }
  const int threads[3] = {1, 2, 4};
  for (int kk = 0; kk < 4; kk++) {
    for (int r = 0; r < 3; r++) {
      detloss_loss_options o = opts(KINDS[kk], DETLOSS_REDUCTION_SUM);
      o.num_threads = threads[r];
      assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, w, n, &s[r], g[r], NULL, &o, NULL), 0);
      o.reduction = DETLOSS_REDUCTION_NONE;
      assert_int_equal(detloss_loss_boxes(KINDS[kk], p, t, w, n, l[r], NULL, NULL, &o, NULL), 0);
    }
    for (int r = 1; r < 3; r++) {
      dl_assert_bitwise_equal(&s[0], &s[r], 1);
      dl_assert_bitwise_equal(g[0], g[r], 4 * n);
      dl_assert_bitwise_equal(l[0], l[r], n);
    }
  }
  for (int r = 0; r < 3; r++) {
    free(g[r]);
    free(l[r]);
  }
  free(p);
  free(t);
  free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(values_and_gradients_match_torchvision_float64),
      cmocka_unit_test(hand_checked_pairs_give_the_documented_losses),
      cmocka_unit_test(gradients_match_central_differences),
      cmocka_unit_test(swapping_pred_and_target_swaps_the_gradients),
      cmocka_unit_test(reductions_and_weights_follow_the_conventions),
      cmocka_unit_test(mean_of_no_boxes_is_zero),
      cmocka_unit_test(null_options_mean_defaults),
      cmocka_unit_test(identical_boxes_give_zero_and_degenerate_ones_give_one),
      cmocka_unit_test(ciou_at_zero_height_is_the_limit_and_finite),
      cmocka_unit_test(ciou_of_a_point_box_is_finite),
      cmocka_unit_test(extreme_boxes_stay_finite_and_scale_invariant),
      cmocka_unit_test(random_extreme_boxes_never_give_nan_or_inf),
      cmocka_unit_test(bad_input_is_rejected_with_outputs_untouched),
      cmocka_unit_test(results_are_bitwise_identical_for_any_thread_count),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
