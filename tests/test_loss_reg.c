/* test_loss_reg.c - L1, MSE, smooth L1 and Huber losses and their gradients. */
#include "loss_testutil.h"

static detloss_loss_options opts(detloss_loss_kind kind, detloss_reduction r) {
  detloss_loss_options o = detloss_loss_options_default(kind);
  o.reduction = r;
  return o;
}

/* Per-element loss of one element in double (naive reference, torch formulas). */
static double ref_elem(detloss_loss_kind kind, double x, double y, const detloss_loss_options *o) {
  double d = x - y, z = fabs(d);
  switch (kind) {
    case DETLOSS_LOSS_L1: return z;
    case DETLOSS_LOSS_MSE: return d * d;
    case DETLOSS_LOSS_SMOOTH_L1: {
      double b = (double)o->beta;
      if (b == 0.0) return z;
      return z < b ? 0.5 * d * d / b : z - 0.5 * b;
    }
    case DETLOSS_LOSS_HUBER: {
      double de = (double)o->delta;
      return z < de ? 0.5 * d * d : de * (z - 0.5 * de);
    }
    default: fail();
  }
  return 0.0;
}

static void smooth_l1_matches_the_hand_worked_table(void **state) {
  (void)state;
  /* docs/math/losses.md, hand-checked values: beta = 1/9: d = 0.05 -> 0.5*0.0025*9 = 0.01125;
   * d = 0.5 -> 0.5 - 1/18 = 0.44444444.  beta = 0.1: d = 0.05 -> 0.5*0.0025/0.1 = 0.0125;
   * d = 0.3 -> 0.3 - 0.05 = 0.25. Gradients: d/beta inside (0.45, 0.5), sign outside (1, 1). */
  const float x[2] = {0.05f, 0.5f}, y[2] = {0.0f, 0.0f};
  float loss[2], grad[2];
  detloss_loss_options o = opts(DETLOSS_LOSS_SMOOTH_L1, DETLOSS_REDUCTION_NONE);
  o.beta = 1.0f / 9.0f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SMOOTH_L1, x, y, NULL, 2, loss, grad, &o,
                                            NULL),
                   DETLOSS_OK);
  const double el[2] = {0.01125, 0.44444444444}, eg[2] = {0.45, 1.0};
  dl_assert_close(loss, el, 2, 1e-6, 1e-8);
  dl_assert_close(grad, eg, 2, 1e-6, 1e-8);
  const float x2[2] = {0.05f, 0.3f};
  o.beta = 0.1f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SMOOTH_L1, x2, y, NULL, 2, loss, grad, &o,
                                            NULL),
                   DETLOSS_OK);
  const double el2[2] = {0.0125, 0.25}, eg2[2] = {0.5, 1.0};
  dl_assert_close(loss, el2, 2, 1e-6, 1e-8);
  dl_assert_close(grad, eg2, 2, 1e-6, 1e-8);
}

static void huber_is_delta_times_smooth_l1_with_beta_delta(void **state) {
  (void)state;
  /* delta = 2: d = 3 -> 2*(3 - 1) = 4, grad 2; d = -1 -> 0.5, grad -1.
   * smooth_l1 beta = 2: d = 3 -> 3 - 1 = 2 = 4/2; d = -1 -> 0.25 = 0.5/2. */
  const float x[2] = {3.0f, -1.0f}, y[2] = {0.0f, 0.0f};
  float lh[2], gh[2], ls[2], gs[2];
  detloss_loss_options oh = opts(DETLOSS_LOSS_HUBER, DETLOSS_REDUCTION_NONE);
  oh.delta = 2.0f;
  detloss_loss_options os = opts(DETLOSS_LOSS_SMOOTH_L1, DETLOSS_REDUCTION_NONE);
  os.beta = 2.0f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_HUBER, x, y, NULL, 2, lh, gh, &oh, NULL),
                   DETLOSS_OK);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SMOOTH_L1, x, y, NULL, 2, ls, gs, &os,
                                            NULL),
                   DETLOSS_OK);
  const double el[2] = {4.0, 0.5}, eg[2] = {2.0, -1.0};
  dl_assert_close(lh, el, 2, 1e-7, 0.0);
  dl_assert_close(gh, eg, 2, 1e-7, 0.0);
  const double els[2] = {2.0, 0.25}, egs[2] = {1.0, -0.5};
  dl_assert_close(ls, els, 2, 1e-7, 0.0);
  dl_assert_close(gs, egs, 2, 1e-7, 0.0);
}

static void l1_and_mse_means_divide_by_the_element_count_not_the_weights(void **state) {
  (void)state;
  /* d = (1, -2, 3), w = (1, 2, 0.5): l1 weighted = 1 + 4 + 1.5 = 6.5, mean 6.5/3;
   * grad = w sign(d) / 3 = (1/3, -2/3, 1/6).
   * mse weighted = 1 + 8 + 4.5 = 13.5, mean 4.5; grad = 2 d w / 3 = (2/3, -8/3, 1). */
  const float x[3] = {1.0f, -2.0f, 3.0f}, y[3] = {0.0f, 0.0f, 0.0f}, w[3] = {1.0f, 2.0f, 0.5f};
  float loss, grad[3];
  detloss_loss_options o = opts(DETLOSS_LOSS_L1, DETLOSS_REDUCTION_MEAN);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_L1, x, y, w, 3, &loss, grad, &o, NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss, 6.5 / 3.0, 1e-7, 0.0);
  const double eg[3] = {1.0 / 3.0, -2.0 / 3.0, 1.0 / 6.0};
  dl_assert_close(grad, eg, 3, 1e-7, 0.0);
  o = opts(DETLOSS_LOSS_MSE, DETLOSS_REDUCTION_MEAN);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_MSE, x, y, w, 3, &loss, grad, &o, NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss, 4.5, 1e-7, 0.0);
  const double eg2[3] = {2.0 / 3.0, -8.0 / 3.0, 1.0};
  dl_assert_close(grad, eg2, 3, 1e-7, 0.0);
}

static void kinks_have_zero_gradient_and_beta_zero_is_l1(void **state) {
  (void)state;
  /* d = 0 for every element: L1, smooth_l1 (beta 0 and 1) and huber give loss 0 and
   * gradient 0 (torch's sign(0) = 0); beta = 0 on d = (0.5, -2) equals L1: (0.5, 2),
   * gradient (1, -1), no 0/0. */
  const float x[3] = {1.5f, -2.0f, 0.0f}, y[3] = {1.5f, -2.0f, 0.0f};
  float loss[3], grad[3];
  const double zero[3] = {0, 0, 0};
  detloss_loss_kind kinds[3] = {DETLOSS_LOSS_L1, DETLOSS_LOSS_SMOOTH_L1, DETLOSS_LOSS_HUBER};
  for (int k = 0; k < 3; k++) {
    detloss_loss_options o = opts(kinds[k], DETLOSS_REDUCTION_NONE);
    o.beta = 0.0f;
    assert_int_equal(detloss_loss_elementwise(kinds[k], x, y, NULL, 3, loss, grad, &o, NULL),
                     DETLOSS_OK);
    dl_assert_close(loss, zero, 3, 0.0, 0.0);
    dl_assert_close(grad, zero, 3, 0.0, 0.0);
  }
  const float x2[2] = {0.5f, -2.0f}, y2[2] = {0.0f, 0.0f};
  detloss_loss_options o = opts(DETLOSS_LOSS_SMOOTH_L1, DETLOSS_REDUCTION_NONE);
  o.beta = 0.0f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SMOOTH_L1, x2, y2, NULL, 2, loss, grad, &o,
                                            NULL),
                   DETLOSS_OK);
  const double el[2] = {0.5, 2.0}, eg[2] = {1.0, -1.0};
  dl_assert_close(loss, el, 2, 0.0, 0.0);
  dl_assert_close(grad, eg, 2, 0.0, 0.0);
}

static void mean_over_zero_elements_is_zero(void **state) {
  (void)state;
  float loss = 7.0f;
  detloss_loss_options o = opts(DETLOSS_LOSS_SMOOTH_L1, DETLOSS_REDUCTION_MEAN);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SMOOTH_L1, NULL, NULL, NULL, 0, &loss,
                                            NULL, &o, NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss, 0.0, 0.0, 0.0);
  o.reduction = DETLOSS_REDUCTION_SUM;
  loss = 7.0f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_MSE, NULL, NULL, NULL, 0, &loss, NULL, &o,
                                            NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss, 0.0, 0.0, 0.0);
}

static void every_regression_loss_matches_torch_float64(void **state) {
  (void)state;
  size_t n = lt_run_fixture(DL_FIXTURE("loss_reg/loss_reg.json"), 0);
  assert_true(n >= 30);
}

static void gradients_match_central_differences_in_double(void **state) {
  (void)state;
  dl_rng r = {42};
  enum { N = 64 };
  float x[N], y[N], w[N], loss, grad[N];
  const detloss_loss_kind kinds[4] = {DETLOSS_LOSS_L1, DETLOSS_LOSS_MSE, DETLOSS_LOSS_SMOOTH_L1,
                                      DETLOSS_LOSS_HUBER};
  for (int k = 0; k < 4; k++) {
    detloss_loss_options o = opts(kinds[k], DETLOSS_REDUCTION_MEAN);
    o.beta = 0.7f;
    o.delta = 1.3f;
    for (size_t i = 0; i < N; i++) {
      x[i] = (float)dl_rng_normal(&r) * 2.0f;
      y[i] = (float)dl_rng_normal(&r) * 2.0f;
      w[i] = (float)dl_rng_uniform(&r, 0.1, 2.0);
    }
    assert_int_equal(detloss_loss_elementwise(kinds[k], x, y, w, N, &loss, grad, &o, NULL),
                     DETLOSS_OK);
    double expected[N];
    double total = 0.0;
    for (size_t i = 0; i < N; i++) {
      double d = fabs((double)x[i] - (double)y[i]);
      /* skip kinks: d = 0 and |d| = beta or delta */
      int kink = d < 1e-3 || fabs(d - 0.7) < 1e-3 || fabs(d - 1.3) < 1e-3;
      const double h = 1e-6;
      double fp = ref_elem(kinds[k], (double)x[i] + h, (double)y[i], &o);
      double fm = ref_elem(kinds[k], (double)x[i] - h, (double)y[i], &o);
      expected[i] = kink ? (double)grad[i] : (double)w[i] * (fp - fm) / (2.0 * h) / N;
      total += (double)w[i] * ref_elem(kinds[k], (double)x[i], (double)y[i], &o);
    }
    dl_assert_close(grad, expected, N, 1e-5, 1e-7);
    dl_assert_close1(loss, total / N, 1e-6, 1e-7);
  }
}

static void bad_parameters_and_non_finite_data_are_named_and_outputs_untouched(void **state) {
  (void)state;
  float x[4] = {1, 2, 3, 4}, y[4] = {0, 0, 0, 0}, w[4] = {1, 1, 1, 1};
  float loss[4], grad[4];
  detloss_error err;
  detloss_loss_options o = opts(DETLOSS_LOSS_SMOOTH_L1, DETLOSS_REDUCTION_NONE);
  o.beta = -0.5f;
  lt_fill(loss, 4);
  lt_fill(grad, 4);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SMOOTH_L1, x, y, NULL, 4, loss, grad, &o,
                                            &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "beta");
  o = opts(DETLOSS_LOSS_HUBER, DETLOSS_REDUCTION_NONE);
  o.delta = 0.0f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_HUBER, x, y, NULL, 4, loss, grad, &o,
                                            &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "delta");
  o = opts(DETLOSS_LOSS_L1, DETLOSS_REDUCTION_NONE);
  y[2] = NAN;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_L1, x, y, NULL, 4, loss, grad, &o, &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "target[2]");
  y[2] = 0.0f;
  x[3] = INFINITY;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_MSE, x, y, NULL, 4, loss, grad, &o, &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "input[3]");
  x[3] = 4.0f;
  w[1] = NAN;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_MSE, x, y, w, 4, loss, grad, &o, &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "weight[1]");
  o.reduction = (detloss_reduction)7;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_MSE, x, y, NULL, 4, loss, grad, &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "reduction");
  o.reduction = DETLOSS_REDUCTION_NONE;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_GIOU, x, y, NULL, 4, loss, grad, &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "kind");
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_MSE, NULL, y, NULL, 4, loss, grad, &o,
                                            &err),
                   DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "input");
  lt_assert_untouched(loss, 4);
  lt_assert_untouched(grad, 4);
}

static void results_are_bitwise_identical_for_1_2_and_4_threads(void **state) {
  (void)state;
  const size_t n = 150001; /* several blocks and a ragged last chunk */
  float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
  float *g[3], l[3];
  assert_non_null(x);
  assert_non_null(y);
  dl_rng r = {7};
  for (size_t i = 0; i < n; i++) {
    x[i] = (float)dl_rng_normal(&r) * 3.0f;
    y[i] = (float)dl_rng_normal(&r);
  }
  const int threads[3] = {1, 2, 4};
  const detloss_loss_kind kinds[3] = {DETLOSS_LOSS_SMOOTH_L1, DETLOSS_LOSS_MSE, DETLOSS_LOSS_HUBER};
  for (int k = 0; k < 3; k++) {
    for (int t = 0; t < 3; t++) {
      g[t] = malloc(n * sizeof(float));
      assert_non_null(g[t]);
      detloss_loss_options o = opts(kinds[k], DETLOSS_REDUCTION_MEAN);
      o.num_threads = threads[t];
      assert_int_equal(detloss_loss_elementwise(kinds[k], x, y, NULL, n, &l[t], g[t], &o, NULL),
                       DETLOSS_OK);
    }
    dl_assert_bitwise_equal(&l[0], &l[1], 1);
    dl_assert_bitwise_equal(&l[0], &l[2], 1);
    dl_assert_bitwise_equal(g[0], g[1], n);
    dl_assert_bitwise_equal(g[0], g[2], n);
    for (int t = 0; t < 3; t++) free(g[t]);
  }
  free(x);
  free(y);
}

static void sum_of_a_million_elements_is_accurate(void **state) {
  (void)state;
  /* 2^20 elements of L1 with d = 0.1f: the double block sums give n * 0.1f to
   * 1e-7 relative, where a float running sum would drift by ~1e-3. */
  const size_t n = (size_t)1 << 20;
  float *x = malloc(n * sizeof(float)), *y = calloc(n, sizeof(float));
  assert_non_null(x);
  assert_non_null(y);
  for (size_t i = 0; i < n; i++) x[i] = 0.1f;
  float loss;
  detloss_loss_options o = opts(DETLOSS_LOSS_L1, DETLOSS_REDUCTION_SUM);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_L1, x, y, NULL, n, &loss, NULL, &o, NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss, (double)n * (double)0.1f, 1e-7, 0.0);
  free(x);
  free(y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(smooth_l1_matches_the_hand_worked_table),
      cmocka_unit_test(huber_is_delta_times_smooth_l1_with_beta_delta),
      cmocka_unit_test(l1_and_mse_means_divide_by_the_element_count_not_the_weights),
      cmocka_unit_test(kinks_have_zero_gradient_and_beta_zero_is_l1),
      cmocka_unit_test(mean_over_zero_elements_is_zero),
      cmocka_unit_test(every_regression_loss_matches_torch_float64),
      cmocka_unit_test(gradients_match_central_differences_in_double),
      cmocka_unit_test(bad_parameters_and_non_finite_data_are_named_and_outputs_untouched),
      cmocka_unit_test(results_are_bitwise_identical_for_1_2_and_4_threads),
      cmocka_unit_test(sum_of_a_million_elements_is_accurate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
