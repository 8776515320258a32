/* test_loss_quality.c - Quality Focal, Distribution Focal and Varifocal
 * losses (src/loss_quality.c, kernels in src/loss_kernels.h): hand-worked
 * values, float64 torch references (tests/fixtures/loss_quality, written
 * from mmdetection / ultralytics / RT-DETR semantics), gradients by central
 * differences, saturated logits, every gamma / beta >= 0, errors, threads. */
#include <math.h>
#include <string.h>

#include "loss_kernels.h"
#include "loss_testutil.h"

static detloss_loss_options opts(detloss_loss_kind kind, detloss_reduction r) {
  detloss_loss_options o = detloss_loss_options_default(kind);
  o.reduction = r;
  return o;
}

/* reference-semantics worked values (float64, beta 2), mmdet QFL:
 * pred [[-1, 2, 0.5], [0.3, -0.2, -3]], row 0 has score 0.7 at class 1.
 * Row 0, class 1: s = sigmoid(2) = 0.880797, BCEL(2, 0.7) = 2 (1 - 0.7) + ln(1 + e^-2)
 * = 0.6 + 0.126928 = 0.726928, |0.7 - 0.880797|^2 = 0.032688 -> 0.023762.
 * Class 0: softplus(-1) s^2 = 0.313262 * 0.268941^2 = 0.022658; class 2:
 * softplus(0.5) s^2 = 0.974077 * 0.622459^2 = 0.377411; sum 0.423831. */
static void quality_focal_matches_the_worked_values(void **state) {
  (void)state;
  static const float x[6] = {-1, 2, 0.5f, 0.3f, -0.2f, -3};
  static const float y[6] = {0, 0.7f, 0, 0, 0, 0};
  static const double el[2] = {0.4238311783585225, 0.40324552048779394};
  static const double eg[6] = {0.05258112997756062, 0.03350769013275824, 0.5261518218745831,
                               0.4295064685857505,  0.22451939165633195, 0.0003148718464882809};
  float loss[2], grad[6];
  detloss_error err;
  detloss_loss_options o = opts(DETLOSS_LOSS_QUALITY_FOCAL, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, y, NULL, 2, 3, loss, grad, &o,
                                     &err),
                   DETLOSS_OK);
  /* 0.7f is not 0.7: the float input moves the values by ~1e-8 */
  dl_assert_close(loss, el, 2, 1e-6, 1e-7);
  dl_assert_close(grad, eg, 6, 1e-6, 1e-7);
}

/* DFL worked value: pred [0.1, 0.5, 2, -1, 0], y = 2.3 -> k = 2, wl = 0.7, wr = 0.3;
 * lse = ln(e^0.1 + e^0.5 + e^2 + e^-1 + e^0) = ln(11.510...) = 2.443...;
 * l = 0.7 (lse - 2) + 0.3 (lse + 1) = 1.343288. */
static void distribution_focal_matches_the_worked_values(void **state) {
  (void)state;
  static const float x[5] = {0.1f, 0.5f, 2.0f, -1.0f, 0.0f};
  static const float y[1] = {2.3f};
  static const double el[1] = {1.3432881340384557};
  static const double eg[5] = {0.09601142021290462, 0.1432322079292254, -0.05807777920320156,
                               -0.26804057450633856, 0.08687472556741016};
  float loss[1], grad[5];
  detloss_loss_options o = opts(DETLOSS_LOSS_DISTRIBUTION_FOCAL, DETLOSS_REDUCTION_SUM);
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_DISTRIBUTION_FOCAL, x, y, NULL, 1, 5, loss, grad,
                                     &o, NULL),
                   DETLOSS_OK);
  dl_assert_close(loss, el, 1, 1e-6, 1e-7);
  dl_assert_close(grad, eg, 5, 1e-6, 1e-6);
}

/* DFL at the ends: z = [0, 0, 0]. y = 2 = n: CE(z, 2) = ln 3 = 1.098612, grad
 * softmax - e_2 = [1/3, 1/3, -2/3]; y = 0: CE(z, 0) = ln 3, grad [-2/3, 1/3, 1/3];
 * y = 1: wl = 1, wr = 0: ln 3, grad [1/3, -2/3, 1/3]. */
static void distribution_focal_at_integer_targets_and_the_last_bin(void **state) {
  (void)state;
  static const float x[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  static const float y[3] = {2, 0, 1};
  const double t = 1.0 / 3.0;
  const double el[3] = {log(3.0), log(3.0), log(3.0)};
  const double eg[9] = {t, t, -2 * t, -2 * t, t, t, t, -2 * t, t};
  float loss[3], grad[9];
  detloss_loss_options o = opts(DETLOSS_LOSS_DISTRIBUTION_FOCAL, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_DISTRIBUTION_FOCAL, x, y, NULL, 3, 3, loss, grad,
                                     &o, NULL),
                   DETLOSS_OK);
  dl_assert_close(loss, el, 3, 1e-6, 0);
  dl_assert_close(grad, eg, 9, 1e-6, 1e-7);
}

/* VFL worked values (alpha 0.75, gamma 2): pred [[1.5, -0.5], [0.2, -2]],
 * q [[0.8, 0], [0, 0]]. (0,0): q > 0: 0.8 BCEL(1.5, 0.8) = 0.8 (1.5 0.2 + ln(1 +
 * e^-1.5)) = 0.8 (0.3 + 0.201413) = 0.401131, grad 0.8 (0.817574 - 0.8) = 0.014060.
 * (0,1): 0.75 sigmoid(-0.5)^2 softplus(-0.5) = 0.75 0.377541^2 0.474077 = 0.050680.
 * Detached (RT-DETR): the negatives' gradient is alpha s^gamma s only. */
static void varifocal_matches_the_worked_values_with_and_without_detach(void **state) {
  (void)state;
  static const float x[4] = {1.5f, -0.5f, 0.2f, -2.0f};
  static const float q[4] = {0.8f, 0, 0, 0};
  static const double el[4] = {0.4011306223862019, 0.050680117888127714, 0.18096846559881893,
                               0.0013526721264302823};
  static const double eg[4] = {0.014059580954914885, 0.10345274801318578, 0.2876000000612579,
                               0.0036532051465445765};
  static const double egd[4] = {0.014059580954914885, 0.04036012344143554, 0.1246682985190286,
                                0.001270345833700733};
  float loss[4], grad[4];
  detloss_loss_options o = opts(DETLOSS_LOSS_VARIFOCAL, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_VARIFOCAL, x, q, NULL, 4, loss, grad, &o,
                                            NULL),
                   DETLOSS_OK);
  dl_assert_close(loss, el, 4, 1e-6, 1e-7);
  dl_assert_close(grad, eg, 4, 1e-5, 1e-7); /* 0.8f != 0.8: 2e-8 in the first gradient */
  o.detach_weight = 1;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_VARIFOCAL, x, q, NULL, 4, loss, grad, &o,
                                            NULL),
                   DETLOSS_OK);
  dl_assert_close(loss, el, 4, 1e-6, 1e-7);
  dl_assert_close(grad, egd, 4, 1e-5, 1e-7);
  /* iou_weighted false: (0,0) weighs 1: BCEL = 0.501413, grad 0.817574 - 0.8 = 0.017574 */
  o.detach_weight = 0;
  o.iou_weighted = 0;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_VARIFOCAL, x, q, NULL, 4, loss, grad, &o,
                                            NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss[0], 0.4011306223862019 / 0.8, 1e-6, 0);
  dl_assert_close1(grad[0], 0.8175744761936437 - 0.8, 1e-5, 1e-7);
}

/* The kink of |y - s| (x = 0, y = 0.5: s = 0.5 exactly) has derivative 0,
 * and 0^0 = 1: beta 0 gives l = BCEL(0, 0.5) = ln 2, grad s - y = 0; beta
 * 0.5 and 2 give l = 0 ln 2 = 0, grad 0 (autograd: NaN for beta 0.5). VFL
 * gamma 0 at q = 0, x = 0: l = 0.75 ln 2 = 0.519860, grad 0.75 s = 0.375. */
static void kinks_and_zero_exponents_follow_the_contract(void **state) {
  (void)state;
  static const float x[1] = {0}, y[1] = {0.5f}, z[1] = {0};
  float loss[1], grad[1];
  detloss_loss_options o = opts(DETLOSS_LOSS_QUALITY_FOCAL, DETLOSS_REDUCTION_SUM);
  const float betas[3] = {0.0f, 0.5f, 2.0f};
  for (int b = 0; b < 3; b++) {
    o.beta = betas[b];
    assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, y, NULL, 1, 1, loss, grad, &o,
                                       NULL),
                     DETLOSS_OK);
    dl_assert_close1(loss[0], b == 0 ? log(2.0) : 0.0, 1e-7, 0);
    dl_assert_close1(grad[0], 0.0, 0, 0);
  }
  detloss_loss_options v = opts(DETLOSS_LOSS_VARIFOCAL, DETLOSS_REDUCTION_SUM);
  v.gamma = 0.0f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_VARIFOCAL, x, z, NULL, 1, loss, grad, &v,
                                            NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss[0], 0.75 * log(2.0), 1e-7, 0);
  dl_assert_close1(grad[0], 0.375, 1e-7, 0);
}

static void matches_the_float64_torch_references(void **state) {
  (void)state;
  size_t n = lt_run_fixture(DL_FIXTURE("loss_quality/loss_quality.json"), 0);
  assert_int_equal(n, 43);
  assert_int_equal(lt_run_fixture(DL_FIXTURE("loss_quality/loss_quality.json"), 3), 43);
}

/* Central differences in double on the kernels (they take float inputs and
 * evaluate in double): steps of 2^-10 on float inputs of magnitude < 8 are
 * exact, so the error is the O(h^2) truncation only. Tolerance: |fd - g| <=
 * 1e-5 + 1e-4 |g| (activated: 1e-3 |g|). Points within 0.02 of the kink are
 * skipped for beta < 2 (the derivative is not Lipschitz there). */
static double lcg(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return (double)(*s >> 8) / 16777216.0;
}

static void gradients_match_central_differences(void **state) {
  (void)state;
  const double h = 1.0 / 1024.0;
  unsigned seed = 17;
  size_t checked = 0;
  const double exps[4] = {0.0, 0.5, 2.0, 3.0};
  for (int e = 0; e < 4; e++) {
    for (int it = 0; it < 200; it++) {
      float x = (float)(round((lcg(&seed) * 12.0 - 6.0) * 1024.0) / 1024.0);
      float y = it % 3 == 0 ? 0.0f : (float)lcg(&seed);
      for (int act = 0; act < 2; act++) {
        float xx = act ? (float)(round((0.02 + 0.96 * lcg(&seed)) * 1024.0) / 1024.0) : x;
        double s = act ? (double)xx : 1.0 / (1.0 + exp(-(double)xx));
        if (exps[e] < 2.0 && fabs(s - (double)y) < 2e-2) continue;
        double l, g, lp, gp, lm, gm;
        dl_quality_focal_elem(xx, y, exps[e], act, &l, &g);
        dl_quality_focal_elem((float)((double)xx + h), y, exps[e], act, &lp, &gp);
        dl_quality_focal_elem((float)((double)xx - h), y, exps[e], act, &lm, &gm);
        double fd = (lp - lm) / (2 * h);
        if (act) { /* torch's BCE backward is the exact derivative away from 0, 1 */
          dl_assert_close1(g, fd, 1e-3, 1e-5);
        } else {
          dl_assert_close1(g, fd, 1e-4, 1e-5);
        }
        checked++;
      }
      for (int det = 0; det < 1; det++) {
        double l, g, lp, gp, lm, gm;
        for (int iw = 0; iw < 2; iw++) {
          dl_varifocal_elem(x, y, 0.75, exps[e], iw, 0, &l, &g);
          dl_varifocal_elem((float)((double)x + h), y, 0.75, exps[e], iw, 0, &lp, &gp);
          dl_varifocal_elem((float)((double)x - h), y, 0.75, exps[e], iw, 0, &lm, &gm);
          dl_assert_close1(g, (lp - lm) / (2 * h), 1e-4, 1e-5);
          checked++;
        }
      }
    }
  }
  /* DFL rows: 6 bins, y anywhere in [0, 5] */
  for (int it = 0; it < 100; it++) {
    float z[6], g[6];
    for (int j = 0; j < 6; j++) z[j] = (float)(round((lcg(&seed) * 8.0 - 4.0) * 1024.0) / 1024.0);
    float y = (float)(lcg(&seed) * 5.0);
    if (it == 0) y = 5.0f;
    (void)dl_distribution_focal_row(z, 6, y, 1.0, g);
    for (int j = 0; j < 6; j++) {
      float zp[6], zm[6];
      memcpy(zp, z, sizeof z);
      memcpy(zm, z, sizeof z);
      zp[j] = (float)((double)z[j] + h);
      zm[j] = (float)((double)z[j] - h);
      double fd = (dl_distribution_focal_row(zp, 6, y, 1.0, NULL) -
                   dl_distribution_focal_row(zm, 6, y, 1.0, NULL)) /
                  (2 * h);
      dl_assert_close1(g[j], fd, 1e-4, 1e-5);
      checked++;
    }
  }
  assert_true(checked > 2500);
}

/* The detached VFL gradient is the full one minus the differentiated weight:
 * alpha s^gamma gamma (1 - s) softplus(x) at q = 0, nothing at q > 0. */
static void detached_varifocal_drops_exactly_the_weight_derivative(void **state) {
  (void)state;
  const float xs[5] = {-3.0f, -0.5f, 0.0f, 1.25f, 4.0f};
  for (int i = 0; i < 5; i++) {
    double l, g, ld, gd;
    double x = xs[i], s = 1.0 / (1.0 + exp(-x)), sp = log1p(exp(x));
    dl_varifocal_elem(xs[i], 0.0f, 0.75, 2.0, 1, 0, &l, &g);
    dl_varifocal_elem(xs[i], 0.0f, 0.75, 2.0, 1, 1, &ld, &gd);
    assert_true(l == ld);
    dl_assert_close1(g - gd, 0.75 * s * s * 2.0 * (1.0 - s) * sp, 1e-12, 1e-15);
    dl_varifocal_elem(xs[i], 0.5f, 0.75, 2.0, 1, 0, &l, &g);
    dl_varifocal_elem(xs[i], 0.5f, 0.75, 2.0, 1, 1, &ld, &gd);
    assert_true(l == ld && g == gd);
  }
}

/* Logits of +-100 (and +-1e4) with every exponent: finite values and gradients. */
static void saturated_logits_give_finite_results_for_every_exponent(void **state) {
  (void)state;
  static const float x[8] = {100, -100, 1e4f, -1e4f, 88, -88, 0, 30};
  static const float y[8] = {0, 0, 0.5f, 1, 0.25f, 0, 1, 0.999f};
  static const float ydfl[2] = {0.0f, 2.5f};
  const float exps[5] = {0.0f, 0.25f, 0.5f, 2.0f, 7.0f};
  float loss[8], grad[8];
  for (int e = 0; e < 5; e++) {
    detloss_loss_options o = opts(DETLOSS_LOSS_QUALITY_FOCAL, DETLOSS_REDUCTION_NONE);
    o.beta = exps[e];
    assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, y, NULL, 2, 4, loss, grad, &o,
                                       NULL),
                     DETLOSS_OK);
    assert_true(lt_all_finite(loss, 2) && lt_all_finite(grad, 8));
    detloss_loss_options v = opts(DETLOSS_LOSS_VARIFOCAL, DETLOSS_REDUCTION_NONE);
    v.gamma = exps[e];
    for (int d = 0; d < 2; d++) {
      v.detach_weight = d;
      assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_VARIFOCAL, x, y, NULL, 8, loss, grad,
                                                &v, NULL),
                       DETLOSS_OK);
      assert_true(lt_all_finite(loss, 8) && lt_all_finite(grad, 8));
    }
  }
  detloss_loss_options o = opts(DETLOSS_LOSS_DISTRIBUTION_FOCAL, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_DISTRIBUTION_FOCAL, x, ydfl, NULL, 2, 4, loss,
                                     grad, &o, NULL),
                   DETLOSS_OK);
  assert_true(lt_all_finite(loss, 2) && lt_all_finite(grad, 8));
  /* row 0 = [100, -100, 1e4, -1e4], y = 0: CE(z, 0) = 1e4 - 100 = 9900 */
  dl_assert_close1(loss[0], 9900.0, 1e-7, 0);
}

/* mean divides by the number of per-element losses: rows for QFL / DFL,
 * elements for VFL; N = 0 gives 0; weights multiply before the reduction. */
static void reductions_and_weights_follow_the_contract(void **state) {
  (void)state;
  static const float x[6] = {-1, 2, 0.5f, 0.3f, -0.2f, -3};
  static const float y[6] = {0, 0.7f, 0, 0, 0, 0.2f};
  static const float w[2] = {2.0f, 0.5f};
  float none[2], sum[1], mean[1], gnone[6], gmean[6];
  detloss_loss_options o = opts(DETLOSS_LOSS_QUALITY_FOCAL, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, y, w, 2, 3, none, gnone, &o,
                                     NULL),
                   DETLOSS_OK);
  o.reduction = DETLOSS_REDUCTION_SUM;
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, y, w, 2, 3, sum, NULL, &o,
                                     NULL),
                   DETLOSS_OK);
  o.reduction = DETLOSS_REDUCTION_MEAN;
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, y, w, 2, 3, mean, gmean, &o,
                                     NULL),
                   DETLOSS_OK);
  dl_assert_close1(sum[0], (double)none[0] + (double)none[1], 1e-6, 0);
  dl_assert_close1(mean[0], (double)sum[0] / 2.0, 1e-6, 0);
  for (int i = 0; i < 6; i++) dl_assert_close1(gmean[i], (double)gnone[i] / 2.0, 1e-6, 0);
  /* VFL mean over the 6 elements */
  detloss_loss_options v = opts(DETLOSS_LOSS_VARIFOCAL, DETLOSS_REDUCTION_SUM);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_VARIFOCAL, x, y, NULL, 6, sum, NULL, &v,
                                            NULL),
                   DETLOSS_OK);
  v.reduction = DETLOSS_REDUCTION_MEAN;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_VARIFOCAL, x, y, NULL, 6, mean, NULL, &v,
                                            NULL),
                   DETLOSS_OK);
  dl_assert_close1(mean[0], (double)sum[0] / 6.0, 1e-6, 0);
  /* N = 0 */
  mean[0] = 7.0f;
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_DISTRIBUTION_FOCAL, NULL, NULL, NULL, 0, 5, mean,
                                     NULL, &o, NULL),
                   DETLOSS_OK);
  assert_true(mean[0] == 0.0f);
}

static void bad_inputs_are_rejected_with_outputs_untouched(void **state) {
  (void)state;
  static const float x[6] = {-1, 2, 0.5f, 0.3f, -0.2f, -3};
  static const float ybad[6] = {0, 1.5f, 0, 0, 0, 0};
  static const float yneg[6] = {0, 0, 0, 0, -0.1f, 0};
  static const float ydfl[2] = {1.0f, 2.5f}; /* 3 bins: y must be <= 2 */
  float loss[6], grad[6];                    /* varifocal with none: 6 losses */
  detloss_error err;
  lt_fill(loss, 6);
  lt_fill(grad, 6);
  detloss_loss_options o = opts(DETLOSS_LOSS_QUALITY_FOCAL, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, ybad, NULL, 2, 3, loss, grad,
                                     &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "target[1]");
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, yneg, NULL, 2, 3, loss, grad,
                                     &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "target[4]");
  o.activated = 1; /* probabilities: -1 is out of [0, 1] */
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, yneg, NULL, 2, 3, loss, grad,
                                     &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "input[0]");
  o.activated = 0;
  o.beta = -1.0f;
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, ybad, NULL, 2, 3, loss, grad,
                                     &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "beta");
  detloss_loss_options d = opts(DETLOSS_LOSS_DISTRIBUTION_FOCAL, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_DISTRIBUTION_FOCAL, x, ydfl, NULL, 2, 3, loss,
                                     grad, &d, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "target[1]");
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_DISTRIBUTION_FOCAL, x, ydfl, NULL, 2, 0, loss,
                                     grad, &d, &err),
                   DETLOSS_ERR_SHAPE);
  assert_int_equal(detloss_loss_rows(DETLOSS_LOSS_VARIFOCAL, x, ydfl, NULL, 2, 3, loss, grad, &d,
                                     &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "kind");
  detloss_loss_options v = opts(DETLOSS_LOSS_VARIFOCAL, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_VARIFOCAL, x, ybad, NULL, 6, loss, grad,
                                            &v, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "target[1]");
  v.alpha = -0.5f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_VARIFOCAL, x, yneg, NULL, 6, loss, grad,
                                            &v, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "alpha");
  lt_assert_untouched(loss, 6);
  lt_assert_untouched(grad, 6);
}

/* Bitwise identical results for 1, 2, 3 and 8 threads (rows across blocks). */
static void results_are_bitwise_identical_for_any_thread_count(void **state) {
  (void)state;
  const size_t n = 20000, c = 17;
  float *x = malloc(n * c * sizeof(float)), *y = malloc(n * c * sizeof(float));
  float *t = malloc(n * sizeof(float));
  float *g[2] = {malloc(n * c * sizeof(float)), malloc(n * c * sizeof(float))};
  assert_true(x && y && t && g[0] && g[1]);
  unsigned seed = 5;
  for (size_t i = 0; i < n * c; i++) {
    x[i] = (float)(lcg(&seed) * 10.0 - 5.0);
    y[i] = lcg(&seed) < 0.2 ? (float)lcg(&seed) : 0.0f;
  }
  for (size_t i = 0; i < n; i++) t[i] = (float)(lcg(&seed) * 16.0);
  const detloss_loss_kind kinds[3] = {DETLOSS_LOSS_QUALITY_FOCAL, DETLOSS_LOSS_DISTRIBUTION_FOCAL,
                                      DETLOSS_LOSS_VARIFOCAL};
  const int threads[4] = {1, 2, 3, 8};
  for (int k = 0; k < 3; k++) {
    float l0 = 0, l;
    for (int ti = 0; ti < 4; ti++) {
      detloss_loss_options o = opts(kinds[k], DETLOSS_REDUCTION_MEAN);
      o.num_threads = threads[ti];
      float *gg = g[ti ? 1 : 0];
      detloss_status st =
          k == 0   ? detloss_loss_rows(kinds[k], x, y, NULL, n, c, &l, gg, &o, NULL)
          : k == 1 ? detloss_loss_rows(kinds[k], x, t, NULL, n, c, &l, gg, &o, NULL)
                   : detloss_loss_elementwise(kinds[k], x, y, NULL, n * c, &l, gg, &o, NULL);
      assert_int_equal(st, DETLOSS_OK);
      if (ti == 0) {
        l0 = l;
      } else {
        assert_memory_equal(&l, &l0, sizeof l);
        dl_assert_bitwise_equal(g[1], g[0], n * c);
      }
    }
  }
  free(x);
  free(y);
  free(t);
  free(g[0]);
  free(g[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(quality_focal_matches_the_worked_values),
      cmocka_unit_test(distribution_focal_matches_the_worked_values),
      cmocka_unit_test(distribution_focal_at_integer_targets_and_the_last_bin),
      cmocka_unit_test(varifocal_matches_the_worked_values_with_and_without_detach),
      cmocka_unit_test(kinks_and_zero_exponents_follow_the_contract),
      cmocka_unit_test(matches_the_float64_torch_references),
      cmocka_unit_test(gradients_match_central_differences),
      cmocka_unit_test(detached_varifocal_drops_exactly_the_weight_derivative),
      cmocka_unit_test(saturated_logits_give_finite_results_for_every_exponent),
      cmocka_unit_test(reductions_and_weights_follow_the_contract),
      cmocka_unit_test(bad_inputs_are_rejected_with_outputs_untouched),
      cmocka_unit_test(results_are_bitwise_identical_for_any_thread_count),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
