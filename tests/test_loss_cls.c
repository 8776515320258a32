/* test_loss_cls.c - classification losses (BCE with logits, BCE, sigmoid focal,
 * hinge, cross-entropy, softmax focal), their gradients, and the shared loss
 * options, names and vectorizable exp/log. */
#include <float.h>

#include "loss_testutil.h"
#include "loss_vmath.h"

static detloss_loss_options opts(detloss_loss_kind kind, detloss_reduction r) {
  detloss_loss_options o = detloss_loss_options_default(kind);
  o.reduction = r;
  return o;
}

static void defaults_follow_the_header_for_every_kind(void **state) {
  (void)state;
  for (int k = 0; k <= DETLOSS_LOSS_VARIFOCAL; k++) {
    detloss_loss_options o = detloss_loss_options_default((detloss_loss_kind)k);
    assert_int_equal(o.reduction, DETLOSS_REDUCTION_MEAN);
    dl_assert_close1(o.alpha,
                     k == DETLOSS_LOSS_SOFTMAX_FOCAL ? 1.0
                     : k == DETLOSS_LOSS_VARIFOCAL   ? 0.75
                                                     : 0.25,
                     0.0, 0.0);
    dl_assert_close1(o.gamma, 2.0, 0.0, 0.0);
    dl_assert_close1(o.beta, k == DETLOSS_LOSS_QUALITY_FOCAL ? 2.0 : 1.0, 0.0, 0.0);
    dl_assert_close1(o.delta, 1.0, 0.0, 0.0);
    dl_assert_close1(o.margin, k == DETLOSS_LOSS_COSINE_EMBEDDING ? 0.0 : 1.0, 0.0, 0.0);
    dl_assert_close1(o.label_smoothing, 0.0, 0.0, 0.0);
    dl_assert_close1(o.eps, k == DETLOSS_LOSS_TRIPLET_MARGIN ? 1e-6f : 1e-7f, 0.0, 0.0);
    dl_assert_close1(o.p, 2.0, 0.0, 0.0);
    assert_int_equal(o.swap, 0);
    assert_int_equal(o.ignore_index, -100);
    assert_null(o.pos_weight);
    assert_int_equal(o.pos_weight_len, 0);
    assert_int_equal(o.num_threads, 0);
    assert_int_equal(o.activated, 0);
    assert_int_equal(o.iou_weighted, 1);
    assert_int_equal(o.detach_weight, 0);
  }
}

static void names_round_trip_and_typos_get_a_suggestion(void **state) {
  (void)state;
  detloss_error err;
  for (int k = 0; k <= DETLOSS_LOSS_VARIFOCAL; k++) {
    const char *name = detloss_loss_name((detloss_loss_kind)k);
    assert_non_null(name);
    detloss_loss_kind back;
    assert_int_equal(detloss_loss_from_name(name, &back, &err), DETLOSS_OK);
    assert_int_equal(back, k);
  }
  assert_string_equal(detloss_loss_name(DETLOSS_LOSS_GIOU), "giou_loss");
  assert_null(detloss_loss_name((detloss_loss_kind)20));
  detloss_loss_kind kind = DETLOSS_LOSS_MSE;
  assert_int_equal(detloss_loss_from_name("sigmoid_focla", &kind, &err), DETLOSS_ERR_UNKNOWN);
  assert_string_equal(err.where, "loss");
  assert_non_null(strstr(err.msg, "did you mean 'sigmoid_focal'"));
  assert_int_equal(kind, DETLOSS_LOSS_MSE);
  assert_int_equal(detloss_loss_from_name("zzzzzzzzzzzz", &kind, &err), DETLOSS_ERR_UNKNOWN);
  assert_null(strstr(err.msg, "did you mean"));
  assert_int_equal(detloss_loss_from_name(NULL, &kind, &err), DETLOSS_ERR_NULL);
}

static double ulp_error(float a, double e) {
  float ef = (float)e;
  double ulp = (double)nextafterf(fabsf(ef), INFINITY) - (double)fabsf(ef);
  return fabs((double)a - e) / ulp;
}

static void vector_exp_and_log_are_within_three_ulp_of_double_libm(void **state) {
  (void)state;
  double worst_exp = 0, worst_log1p = 0, worst_atanh = 0, worst_log = 0;
  dl_rng r = {3};
  for (int i = 0; i < 200000; i++) {
    float x = (float)dl_rng_uniform(&r, -87.0, 0.0);
    double u = ulp_error(dl_expf_neg(x), exp((double)x));
    worst_exp = u > worst_exp ? u : worst_exp;
    float t = i % 2 ? (float)dl_rng_uniform(&r, 0.0, 1.0) : ldexpf(1.5f, -(i % 120));
    if (t > 1.0f) t = 1.0f;
    u = t == 0.0f ? 0.0 : ulp_error(dl_log1pf_01(t, 1.0f / (1.0f + t)), log1p((double)t));
    worst_log1p = u > worst_log1p ? u : worst_log1p;
    u = t == 0.0f ? 0.0 : ulp_error(dl_log1pf_01_atanh(t, 1.0f / (2.0f + t)), log1p((double)t));
    worst_atanh = u > worst_atanh ? u : worst_atanh;
    float v = i % 2 ? (float)dl_rng_uniform(&r, 1e-6, 4.0) : ldexpf(1.3f, -(i % 149));
    if (v != 1.0f && v > 0.0f) {
      u = ulp_error(dl_logf(v), log((double)v));
      worst_log = u > worst_log ? u : worst_log;
    }
  }
  print_message("worst ulp: exp %.2f, log1p %.2f, log1p atanh %.2f, log %.2f\n", worst_exp,
                worst_log1p, worst_atanh, worst_log);
  assert_true(worst_exp <= 2.0);
  assert_true(worst_log1p <= 2.0);
  assert_true(worst_atanh <= 3.0);
  assert_true(worst_log <= 2.0);
  /* exact points the kernels rely on */
  dl_assert_close1(dl_expf_neg(0.0f), 1.0, 0.0, 0.0);
  dl_assert_close1(dl_expf_neg(-INFINITY), 0.0, 0.0, 0.0);
  dl_assert_close1(dl_expf_neg(-100.0f), 0.0, 0.0, 0.0);
  dl_assert_close1(dl_logf(1.0f), 0.0, 0.0, 0.0);
  dl_assert_close1(dl_log1pf_01(0.0f, 1.0f), 0.0, 0.0, 0.0);
  dl_assert_close1(dl_log1pf_01_atanh(0.0f, 0.5f), 0.0, 0.0, 0.0);
}

static void sigmoid_focal_matches_the_reference_table(void **state) {
  (void)state;
  /* docs/math/losses.md, hand-checked values (alpha 0.25, gamma 2, float64 and finite differences):
   * x=0,y=1: p = 0.5, CE = ln 2, L = 0.25 * 0.25 * ln 2 = 0.0433216988,
   *          dL/dx = -0.25 * 0.25 * (0.5 - 2*0.5*ln 0.5) = -0.0745716988 */
  const float x[5] = {0.0f, 2.0f, -3.0f, 2.0f, -3.0f};
  const float y[5] = {1.0f, 1.0f, 1.0f, 0.0f, 0.0f};
  const double el[5] = {0.0433216988, 0.0004508907, 0.6915701103, 1.2375586346, 0.0000819625};
  const double eg[5] = {-0.0745716988, -0.0012177350, -0.2816874702, 0.8075352978, 0.0002361539};
  float loss[5], grad[5];
  assert_int_equal(detloss_sigmoid_focal_loss(x, y, 5, 0.25f, 2.0f, DETLOSS_REDUCTION_NONE, loss,
                                              grad, 1, NULL),
                   DETLOSS_OK);
  dl_assert_close(loss, el, 5, 1e-6, 1e-9);
  dl_assert_close(grad, eg, 5, 1e-6, 1e-9);
}

static void bce_with_logits_and_bce_at_one_half_are_ln2(void **state) {
  (void)state;
  /* logit 0 = probability 0.5: both losses are ln 2 = 0.693147181 for y = 1 and y = 0;
   * gradients: sigmoid(0) - y = -0.5, +0.5; BCE (x - y)/(x(1-x)) = -0.5/0.25 = -2, +2.
   * pos_weight 3 on y = 1: loss 3 ln 2, gradient 3 (sigmoid(0) - 1) = -1.5. */
  const float z[2] = {0.0f, 0.0f}, p[2] = {0.5f, 0.5f}, y[2] = {1.0f, 0.0f};
  float loss[2], grad[2];
  detloss_loss_options o = opts(DETLOSS_LOSS_BCE_WITH_LOGITS, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, z, y, NULL, 2, loss, grad,
                                            &o, NULL),
                   DETLOSS_OK);
  const double ln2[2] = {0.6931471805599453, 0.6931471805599453}, eg[2] = {-0.5, 0.5};
  dl_assert_close(loss, ln2, 2, 1e-7, 0.0);
  dl_assert_close(grad, eg, 2, 1e-7, 0.0);
  o = opts(DETLOSS_LOSS_BCE, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE, p, y, NULL, 2, loss, grad, &o, NULL),
                   DETLOSS_OK);
  const double eg2[2] = {-2.0, 2.0};
  dl_assert_close(loss, ln2, 2, 1e-7, 0.0);
  dl_assert_close(grad, eg2, 2, 1e-7, 0.0);
  const float pw = 3.0f;
  o = opts(DETLOSS_LOSS_BCE_WITH_LOGITS, DETLOSS_REDUCTION_NONE);
  o.pos_weight = &pw;
  o.pos_weight_len = 1;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, z, y, NULL, 2, loss, grad,
                                            &o, NULL),
                   DETLOSS_OK);
  const double el3[2] = {3.0 * 0.6931471805599453, 0.6931471805599453}, eg3[2] = {-1.5, 0.5};
  dl_assert_close(loss, el3, 2, 1e-7, 0.0);
  dl_assert_close(grad, eg3, 2, 1e-7, 0.0);
}

static void hinge_is_zero_with_zero_gradient_at_and_beyond_the_margin(void **state) {
  (void)state;
  /* margin 1: (x, y) = (0.25, 1) -> 0.75, grad -1; (2, 1) -> 0, grad 0;
   * (1, 1) is the kink -> 0, grad 0; (0.5, -1) -> 1.5, grad +1. */
  const float x[4] = {0.25f, 2.0f, 1.0f, 0.5f}, y[4] = {1.0f, 1.0f, 1.0f, -1.0f};
  float loss[4], grad[4];
  detloss_loss_options o = opts(DETLOSS_LOSS_HINGE, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_HINGE, x, y, NULL, 4, loss, grad, &o,
                                            NULL),
                   DETLOSS_OK);
  const double el[4] = {0.75, 0.0, 0.0, 1.5}, eg[4] = {-1.0, 0.0, 0.0, 1.0};
  dl_assert_close(loss, el, 4, 0.0, 0.0);
  dl_assert_close(grad, eg, 4, 0.0, 0.0);
}

static void cross_entropy_with_label_smoothing_on_equal_logits(void **state) {
  (void)state;
  /* logits (0,0,0), target 0, eps 0.3: every -ln p_c = ln 3, so the loss is ln 3 =
   * 1.0986123 whatever eps; grad = p - q = 1/3 - (0.7 + 0.1) = -0.4666667 for the
   * target, 1/3 - 0.1 = 0.2333333 for the others. Second row ignored (-100):
   * mean over 1 row, its gradient is 0. */
  const float z[6] = {0, 0, 0, 5, -1, 2};
  const int64_t t[2] = {0, -100};
  float loss, grad[6];
  detloss_loss_options o = opts(DETLOSS_LOSS_CROSS_ENTROPY, DETLOSS_REDUCTION_MEAN);
  o.label_smoothing = 0.3f;
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, z, t, NULL, 2, 3, &loss, grad,
                                        &o, NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss, 1.0986122886681098, 1e-7, 0.0);
  const double eg[6] = {-0.4666666667, 0.2333333333, 0.2333333333, 0, 0, 0};
  dl_assert_close(grad, eg, 6, 1e-6, 1e-9);
}

static void softmax_focal_on_two_equal_logits(void **state) {
  (void)state;
  /* logits (0,0), target 0, alpha 1, gamma 2: p_t = 0.5, L = 0.25 ln 2 = 0.1732868;
   * K = -(0.25)(1 + 2*0.5*(ln2/0.5)) = -0.5965736, grad_t = K q = -0.2982868,
   * grad_other = -K p = +0.2982868. With gamma 0 it is cross-entropy: ln 2, (-0.5, 0.5). */
  const float z[2] = {0.0f, 0.0f};
  const int64_t t[1] = {0};
  float loss, grad[2];
  detloss_loss_options o = opts(DETLOSS_LOSS_SOFTMAX_FOCAL, DETLOSS_REDUCTION_SUM);
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_SOFTMAX_FOCAL, z, t, NULL, 1, 2, &loss, grad,
                                        &o, NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss, 0.25 * 0.6931471805599453, 1e-7, 0.0);
  const double eg[2] = {-0.29828679513998635, 0.29828679513998635};
  dl_assert_close(grad, eg, 2, 1e-6, 0.0);
  o.gamma = 0.0f;
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_SOFTMAX_FOCAL, z, t, NULL, 1, 2, &loss, grad,
                                        &o, NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss, 0.6931471805599453, 1e-7, 0.0);
  const double eg0[2] = {-0.5, 0.5};
  dl_assert_close(grad, eg0, 2, 1e-7, 0.0);
}

static void every_classification_loss_matches_torch_float64(void **state) {
  (void)state;
  size_t n = lt_run_fixture(DL_FIXTURE("loss_cls/loss_cls.json"), 0);
  assert_true(n >= 30);
}

static double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

/* Naive double per-element losses (the formulas of torch / torchvision). */
static double ref_elem(detloss_loss_kind kind, double x, double y, double pw,
                       const detloss_loss_options *o) {
  switch (kind) {
    case DETLOSS_LOSS_BCE_WITH_LOGITS: return (1 - y) * x + (1 + (pw - 1) * y) * softplus(-x);
    case DETLOSS_LOSS_BCE: return -(y * log(x) + (1 - y) * log(1 - x));
    case DETLOSS_LOSS_SIGMOID_FOCAL: {
      double p = 1.0 / (1.0 + exp(-x));
      double ce = softplus(x) - x * y;
      double pt = p * y + (1 - p) * (1 - y);
      double at = o->alpha >= 0 ? (double)o->alpha * y + (1 - (double)o->alpha) * (1 - y) : 1.0;
      return at * pow(1 - pt, (double)o->gamma) * ce;
    }
    case DETLOSS_LOSS_HINGE: return fmax(0.0, (double)o->margin - y * x);
    default: fail();
  }
  return 0;
}

static void elementwise_gradients_match_central_differences(void **state) {
  (void)state;
  dl_rng r = {11};
  enum { N = 96 };
  float x[N], y[N], w[N], grad[N], loss;
  const float pw[4] = {0.5f, 1.0f, 2.0f, 4.0f};
  struct {
    detloss_loss_kind kind;
    float gamma;
    float alpha;
    int soft;
  } runs[] = {{DETLOSS_LOSS_BCE_WITH_LOGITS, 2, 0.25f, 1},
              {DETLOSS_LOSS_BCE, 2, 0.25f, 1},
              {DETLOSS_LOSS_SIGMOID_FOCAL, 2, 0.25f, 0},
              {DETLOSS_LOSS_SIGMOID_FOCAL, 0.5f, 0.25f, 0},
              {DETLOSS_LOSS_SIGMOID_FOCAL, 0.0f, -1.0f, 0},
              {DETLOSS_LOSS_SIGMOID_FOCAL, 2, 0.25f, 1},
              {DETLOSS_LOSS_SIGMOID_FOCAL, 1.5f, 0.6f, 1},
              {DETLOSS_LOSS_HINGE, 2, 0.25f, 0}};
  for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
    detloss_loss_kind kind = runs[k].kind;
    detloss_loss_options o = opts(kind, DETLOSS_REDUCTION_MEAN);
    o.gamma = runs[k].gamma;
    o.alpha = runs[k].alpha;
    if (kind == DETLOSS_LOSS_BCE_WITH_LOGITS) {
      o.pos_weight = pw;
      o.pos_weight_len = 4;
    }
    for (size_t i = 0; i < N; i++) {
      if (kind == DETLOSS_LOSS_BCE) {
        x[i] = (float)dl_rng_uniform(&r, 0.02, 0.98);
      } else {
        x[i] = (float)(dl_rng_normal(&r) * 3.0);
      }
      if (kind == DETLOSS_LOSS_HINGE) {
        y[i] = dl_rng_uniform(&r, 0, 1) < 0.5 ? -1.0f : 1.0f;
        if (fabs((double)o.margin - (double)y[i] * (double)x[i]) < 1e-3) x[i] += 0.1f; /* kink */
      } else if (runs[k].soft) {
        y[i] = (float)dl_rng_uniform(&r, 0.0, 1.0);
      } else {
        y[i] = dl_rng_uniform(&r, 0, 1) < 0.3 ? 1.0f : 0.0f;
      }
      w[i] = (float)dl_rng_uniform(&r, 0.2, 2.0);
    }
    assert_int_equal(detloss_loss_elementwise(kind, x, y, w, N, &loss, grad, &o, NULL), DETLOSS_OK);
    double expected[N], total = 0.0;
    for (size_t i = 0; i < N; i++) {
      double p = kind == DETLOSS_LOSS_BCE_WITH_LOGITS ? (double)pw[i % 4] : 1.0;
      double h = kind == DETLOSS_LOSS_BCE ? 1e-7 : 1e-5;
      double fp = ref_elem(kind, (double)x[i] + h, (double)y[i], p, &o);
      double fm = ref_elem(kind, (double)x[i] - h, (double)y[i], p, &o);
      expected[i] = (double)w[i] * (fp - fm) / (2 * h) / N;
      total += (double)w[i] * ref_elem(kind, (double)x[i], (double)y[i], p, &o);
    }
    print_message("%s gamma %g alpha %g soft %d\n", detloss_loss_name(kind), (double)o.gamma,
                  (double)o.alpha, runs[k].soft);
    dl_assert_close(grad, expected, N, 1e-5, 1e-7);
    dl_assert_close1(loss, total / N, 1e-5, 1e-7);
  }
}

static double ref_row(detloss_loss_kind kind, const double *z, size_t c, size_t t,
                      const detloss_loss_options *o) {
  double m = z[0];
  for (size_t k = 1; k < c; k++) m = fmax(m, z[k]);
  double s = 0;
  for (size_t k = 0; k < c; k++) s += exp(z[k] - m);
  double lse = m + log(s);
  if (kind == DETLOSS_LOSS_CROSS_ENTROPY) {
    double smooth = 0;
    for (size_t k = 0; k < c; k++) smooth += lse - z[k];
    double eps = (double)o->label_smoothing;
    return (1 - eps) * (lse - z[t]) + eps / (double)c * smooth;
  }
  double pt = exp(z[t] - lse);
  return -(double)o->alpha * pow(1 - pt, (double)o->gamma) * (z[t] - lse);
}

static void class_gradients_match_central_differences(void **state) {
  (void)state;
  dl_rng r = {5};
  enum { N = 9, C = 7 };
  float z[N * C], w[N], grad[N * C], loss;
  int64_t t[N];
  struct {
    detloss_loss_kind kind;
    float eps, gamma, alpha;
  } runs[] = {{DETLOSS_LOSS_CROSS_ENTROPY, 0.0f, 2, 1},
              {DETLOSS_LOSS_CROSS_ENTROPY, 0.15f, 2, 1},
              {DETLOSS_LOSS_SOFTMAX_FOCAL, 0, 2.0f, 0.5f},
              {DETLOSS_LOSS_SOFTMAX_FOCAL, 0, 0.3f, 1.0f}};
  for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
    detloss_loss_options o = opts(runs[k].kind, DETLOSS_REDUCTION_MEAN);
    o.label_smoothing = runs[k].eps;
    o.gamma = runs[k].gamma;
    o.alpha = runs[k].alpha;
    o.ignore_index = 3; /* a valid class: rows with target 3 are ignored */
    size_t count = 0;
    for (size_t i = 0; i < N; i++) {
      for (size_t c = 0; c < C; c++) z[i * C + c] = (float)(dl_rng_normal(&r) * 2.5);
      t[i] = (int64_t)(dl_rng_u64(&r) % C);
      w[i] = (float)dl_rng_uniform(&r, 0.3, 1.7);
      count += t[i] != 3;
    }
    t[2] = 3;
    count = 0;
    for (size_t i = 0; i < N; i++) count += t[i] != 3;
    assert_int_equal(detloss_loss_classes(runs[k].kind, z, t, w, N, C, &loss, grad, &o, NULL),
                     DETLOSS_OK);
    double expected[N * C], total = 0;
    for (size_t i = 0; i < N; i++) {
      double row[C];
      for (size_t c = 0; c < C; c++) row[c] = (double)z[i * C + c];
      for (size_t c = 0; c < C; c++) {
        if (t[i] == 3) {
          expected[i * C + c] = 0.0;
          continue;
        }
        const double h = 1e-5;
        double save = row[c];
        row[c] = save + h;
        double fp = ref_row(runs[k].kind, row, C, (size_t)t[i], &o);
        row[c] = save - h;
        double fm = ref_row(runs[k].kind, row, C, (size_t)t[i], &o);
        row[c] = save;
        expected[i * C + c] = (double)w[i] * (fp - fm) / (2 * h) / (double)count;
      }
      if (t[i] != 3) total += (double)w[i] * ref_row(runs[k].kind, row, C, (size_t)t[i], &o);
    }
    dl_assert_close(grad, expected, N * C, 1e-5, 1e-7);
    dl_assert_close1(loss, total / (double)count, 1e-5, 1e-7);
  }
}

static void saturated_logits_give_finite_analytic_limits(void **state) {
  (void)state;
  /* logits +-100 and +-1e30 with hard targets. Limits (p = sigmoid(x)):
   *   bce_with_logits: y=1, x=+big -> 0, grad -0 ; y=1, x=-big -> |x|, grad -1;
   *                    y=0, x=+big -> x, grad +1 ; y=0, x=-big -> 0, grad 0.
   *   focal (alpha .25, any gamma): y=1, x=-big -> 0.25 |x|, grad -0.25;
   *                    y=0, x=+big -> 0.75 x, grad +0.75; correct side -> 0, 0. */
  const float x[8] = {100, -100, 100, -100, 1e30f, -1e30f, 1e30f, -1e30f};
  const float y[8] = {1, 1, 0, 0, 1, 1, 0, 0};
  float loss[8], grad[8];
  detloss_loss_options o = opts(DETLOSS_LOSS_BCE_WITH_LOGITS, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, x, y, NULL, 8, loss, grad,
                                            &o, NULL),
                   DETLOSS_OK);
  const double el[8] = {0, 100, 100, 0, 0, 1e30, 1e30, 0};
  const double eg[8] = {0, -1, 1, 0, 0, -1, 1, 0};
  dl_assert_close(loss, el, 8, 1e-6, 1e-30);
  dl_assert_close(grad, eg, 8, 1e-6, 1e-30);
  const float gammas[4] = {0.0f, 0.25f, 0.5f, 2.0f};
  for (int k = 0; k < 4; k++) {
    o = opts(DETLOSS_LOSS_SIGMOID_FOCAL, DETLOSS_REDUCTION_NONE);
    o.gamma = gammas[k];
    assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, y, NULL, 8, loss, grad,
                                              &o, NULL),
                     DETLOSS_OK);
    const double fl[8] = {0, 25, 75, 0, 0, 0.25e30, 0.75e30, 0};
    const double fg[8] = {0, -0.25, 0.75, 0, 0, -0.25, 0.75, 0};
    print_message("gamma %g\n", (double)gammas[k]);
    dl_assert_close(loss, fl, 8, 1e-6, 1e-30);
    dl_assert_close(grad, fg, 8, 1e-6, 1e-30);
  }
}

static void focal_is_finite_where_autograd_gives_nan(void **state) {
  (void)state;
  /* gamma 0.5 at logits where 1 - p_t underflows (|x| from 17 to 1e4, correct side):
   * autograd computes 0 * (1-p_t)^(-0.5) = 0 * inf = NaN; the closed form gives
   * a loss and a gradient that are finite, >= 0 / of the right sign, and tiny. */
  float x[6] = {17, 30, 90, 104, 200, 1e4f}, y[6] = {1, 1, 1, 1, 1, 1};
  float loss[6], grad[6];
  detloss_loss_options o = opts(DETLOSS_LOSS_SIGMOID_FOCAL, DETLOSS_REDUCTION_NONE);
  o.gamma = 0.5f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, y, NULL, 6, loss, grad,
                                            &o, NULL),
                   DETLOSS_OK);
  assert_true(lt_all_finite(loss, 6));
  assert_true(lt_all_finite(grad, 6));
  for (int i = 0; i < 6; i++) {
    assert_true(loss[i] >= 0.0f && loss[i] < 1e-7f);
    assert_true(grad[i] <= 0.0f && grad[i] > -1e-7f);
  }
  /* x = 17: l = 0.25 (e^-17)^0.5 * e^-17 (to first order) = 0.25 e^-25.5 */
  dl_assert_close1(loss[0], 0.25 * exp(-25.5), 1e-4, 0.0);
}

static void vector_exp_of_a_non_positive_float_is_at_most_one(void **state) {
  (void)state;
  /* The focal <= BCE guarantee (loss_kernels.h) needs q^gamma = e^(gamma (ln w - L)) <= 1:
   * dl_expf_neg(x) <= 1 for x <= 0 and dl_logf(w) <= 0 for w in (0, 1]. Checked on every
   * float once (a scratch loop, 78 s); here every 61st bit pattern of [-inf, -0] and
   * (0, 1], plus the end points (e^0 = e^-0 = 1 exactly, ln 1 = 0). */
  size_t bad = 0;
  for (uint64_t u = 0x80000000u; u <= 0xff800000u; u += 61) {
    uint32_t b = (uint32_t)u;
    float x;
    memcpy(&x, &b, sizeof x);
    bad += !(dl_expf_neg(x) <= 1.0f);
  }
  for (uint32_t b = 1; b <= 0x3f800000u; b += 61) {
    float w;
    memcpy(&w, &b, sizeof w);
    bad += !(dl_logf(w) <= 0.0f);
  }
  assert_int_equal(bad, 0);
  dl_assert_close1(dl_expf_neg(0.0f), 1.0, 0.0, 0.0);
  dl_assert_close1(dl_expf_neg(-0.0f), 1.0, 0.0, 0.0);
  dl_assert_close1(dl_logf(1.0f), 0.0, 0.0, 0.0);
}

static void focal_never_exceeds_bce_and_equals_it_at_gamma_0_without_alpha(void **state) {
  (void)state;
  /* torchvision orders the value as (ce * (1-p_t)^gamma) * alpha_t, with ce the BCE with
   * logits: each factor after ce is <= 1 (for alpha in [0, 1] and y in [0, 1]), so the
   * focal loss is <= the BCE element by element, and gamma = 0, alpha = -1 is the BCE.
   * Checked bitwise against detloss's BCE with logits (same ce operations) on 2^18 elements
   * per run: logits N(0, 6^2) with 1/16 of them at +-100 (saturated), targets half soft
   * U(0, 1), half 0/1; sum reductions equal bitwise where the elements are. */
  enum { N = 1 << 18 };
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *yb = malloc(N * sizeof *yb);
  float *lf = malloc(N * sizeof *lf), *lb = malloc(N * sizeof *lb), *g = malloc(N * sizeof *g);
  assert_true(x && y && yb && lf && lb && g);
  dl_rng r = {19};
  for (size_t i = 0; i < N; i++) {
    x[i] = (float)(dl_rng_normal(&r) * 6.0);
    if (i % 16 == 3) x[i] = i % 32 == 3 ? 100.0f : -100.0f;
    y[i] = (float)dl_rng_uniform(&r, 0, 1);
    yb[i] = y[i] < 0.5f ? 0.0f : 1.0f;
  }
  const float gammas[3] = {0.0f, 0.5f, 2.0f}, alphas[3] = {-1.0f, 0.25f, 1.0f};
  for (int soft = 0; soft < 2; soft++) {
    const float *t = soft ? y : yb;
    detloss_loss_options ob = opts(DETLOSS_LOSS_BCE_WITH_LOGITS, DETLOSS_REDUCTION_NONE);
    assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, x, t, NULL, N, lb, NULL,
                                              &ob, NULL),
                     DETLOSS_OK);
    for (int gi = 0; gi < 3; gi++) {
      for (int ai = 0; ai < 3; ai++) {
        detloss_loss_options o = opts(DETLOSS_LOSS_SIGMOID_FOCAL, DETLOSS_REDUCTION_NONE);
        o.gamma = gammas[gi];
        o.alpha = alphas[ai];
        assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, t, NULL, N, lf, g,
                                                  &o, NULL),
                         DETLOSS_OK);
        assert_true(lt_all_finite(lf, N));
        assert_true(lt_all_finite(g, N));
        size_t above = 0;
        for (size_t i = 0; i < N; i++) above += !(lf[i] >= 0.0f && lf[i] <= lb[i]);
        print_message("soft %d gamma %g alpha %g: %zu elements above the BCE\n", soft,
                      (double)gammas[gi], (double)alphas[ai], above);
        assert_int_equal(above, 0);
        if (gi == 0 && ai == 0) {
          dl_assert_bitwise_equal(lf, lb, N);
          float sf, sb;
          o.reduction = ob.reduction = DETLOSS_REDUCTION_SUM;
          assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, t, NULL, N, &sf,
                                                    NULL, &o, NULL),
                           DETLOSS_OK);
          assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, x, t, NULL, N,
                                                    &sb, NULL, &ob, NULL),
                           DETLOSS_OK);
          dl_assert_bitwise_equal(&sf, &sb, 1);
          ob.reduction = DETLOSS_REDUCTION_NONE;
        }
      }
    }
  }
  free(x);
  free(y);
  free(yb);
  free(lf);
  free(lb);
  free(g);
}

static void bce_at_probabilities_zero_and_one_is_clamped_like_torch(void **state) {
  (void)state;
  /* torch: log clamped at -100, gradient (x - y)/max(x(1-x), 1e-12):
   * (x,y) = (0,1) -> 100, -1e12; (1,0) -> 100, +1e12; (0,0) -> 0, 0; (1,1) -> 0, 0. */
  const float x[4] = {0, 1, 0, 1}, y[4] = {1, 0, 0, 1};
  float loss[4], grad[4];
  detloss_loss_options o = opts(DETLOSS_LOSS_BCE, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE, x, y, NULL, 4, loss, grad, &o, NULL),
                   DETLOSS_OK);
  const double el[4] = {100, 100, 0, 0}, eg[4] = {-1e12, 1e12, 0, 0};
  dl_assert_close(loss, el, 4, 1e-6, 0.0);
  dl_assert_close(grad, eg, 4, 1e-6, 0.0);
}

static void cross_entropy_with_saturated_logits_is_exact(void **state) {
  (void)state;
  /* rows (100, -100): target 1 -> loss 200 (+ ln(1 + e^-200) = 200), grad (1, -1);
   * target 0 -> loss 0 exactly (e^-200 underflows), grad (0, 0).
   * softmax focal gamma 0.5 on the confident row: finite, 0. */
  const float z[4] = {100, -100, 100, -100};
  const int64_t t[2] = {1, 0};
  float loss[2], grad[4];
  detloss_loss_options o = opts(DETLOSS_LOSS_CROSS_ENTROPY, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, z, t, NULL, 2, 2, loss, grad,
                                        &o, NULL),
                   DETLOSS_OK);
  const double el[2] = {200, 0}, eg[4] = {1, -1, 0, 0};
  dl_assert_close(loss, el, 2, 1e-7, 0.0);
  dl_assert_close(grad, eg, 4, 1e-7, 0.0);
  o = opts(DETLOSS_LOSS_SOFTMAX_FOCAL, DETLOSS_REDUCTION_NONE);
  o.gamma = 0.5f;
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_SOFTMAX_FOCAL, z, t, NULL, 2, 2, loss, grad,
                                        &o, NULL),
                   DETLOSS_OK);
  const double fl[2] = {200, 0}, fg[4] = {1, -1, 0, 0};
  dl_assert_close(loss, fl, 2, 1e-7, 0.0);
  dl_assert_close(grad, fg, 4, 1e-7, 0.0);
}

static void cross_entropy_mean_with_every_row_ignored_is_zero(void **state) {
  (void)state;
  const float z[6] = {1, 2, 3, 4, 5, 6};
  const int64_t t[2] = {-100, -100};
  float loss = 7.0f, grad[6];
  lt_fill(grad, 6);
  detloss_loss_options o = opts(DETLOSS_LOSS_CROSS_ENTROPY, DETLOSS_REDUCTION_MEAN);
  o.label_smoothing = 0.1f;
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, z, t, NULL, 2, 3, &loss, grad,
                                        &o, NULL),
                   DETLOSS_OK);
  const double zero[6] = {0, 0, 0, 0, 0, 0};
  dl_assert_close1(loss, 0.0, 0.0, 0.0);
  dl_assert_close(grad, zero, 6, 0.0, 0.0);
  loss = 7.0f;
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, NULL, NULL, NULL, 0, 3, &loss,
                                        NULL, &o, NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss, 0.0, 0.0, 0.0);
  loss = 7.0f;
  o = opts(DETLOSS_LOSS_SIGMOID_FOCAL, DETLOSS_REDUCTION_MEAN);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, NULL, NULL, NULL, 0, &loss,
                                            NULL, &o, NULL),
                   DETLOSS_OK);
  dl_assert_close1(loss, 0.0, 0.0, 0.0);
}

static void a_binary_target_gives_the_same_bits_in_a_soft_chunk(void **state) {
  (void)state;
  /* The focal kernel takes a cheaper path for chunks of 0/1 targets; a 0/1
   * element must get the same bits when its chunk also holds soft targets. */
  enum { N = 300 };
  float x[N], y[N], y2[N], l1[N], g1[N], l2[N], g2[N];
  dl_rng r = {9};
  for (size_t i = 0; i < N; i++) {
    x[i] = (float)(dl_rng_normal(&r) * 5.0);
    y[i] = dl_rng_uniform(&r, 0, 1) < 0.5 ? 1.0f : 0.0f;
    y2[i] = y[i];
  }
  y2[5] = 0.3f; /* chunk 0 becomes soft */
  for (int gi = 0; gi < 2; gi++) {
    detloss_loss_options o = opts(DETLOSS_LOSS_SIGMOID_FOCAL, DETLOSS_REDUCTION_NONE);
    o.gamma = gi ? 2.0f : 1.3f;
    assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, y, NULL, N, l1, g1, &o,
                                              NULL),
                     DETLOSS_OK);
    assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, y2, NULL, N, l2, g2,
                                              &o, NULL),
                     DETLOSS_OK);
    l1[5] = l2[5];
    g1[5] = g2[5];
    dl_assert_bitwise_equal(l1, l2, N);
    dl_assert_bitwise_equal(g1, g2, N);
  }
}

static void out_of_domain_targets_and_parameters_are_named(void **state) {
  (void)state;
  float x[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f}, y[5] = {0, 1, 0, 2, 1};
  float loss[5], grad[5];
  lt_fill(loss, 5);
  lt_fill(grad, 5);
  detloss_error err;
  detloss_loss_options o = opts(DETLOSS_LOSS_BCE_WITH_LOGITS, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, x, y, NULL, 5, loss, grad,
                                            &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "target[3]");
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE, x, y, NULL, 5, loss, grad, &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "target[3]");
  y[3] = 1.0f;
  x[1] = 1.5f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE, x, y, NULL, 5, loss, grad, &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "input[1]");
  x[1] = NAN;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, y, NULL, 5, loss, grad,
                                            &o, &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "input[1]");
  x[1] = 0.2f;
  y[4] = NAN;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, y, NULL, 5, loss, grad,
                                            &o, &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "target[4]");
  y[4] = 1.0f;
  /* hinge labels must be exactly -1 or +1 */
  o = opts(DETLOSS_LOSS_HINGE, DETLOSS_REDUCTION_NONE);
  float yh[5] = {1, -1, 0, 1, -1};
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_HINGE, x, yh, NULL, 5, loss, grad, &o,
                                            &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "target[2]");
  yh[2] = 1;
  o.margin = -1.0f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_HINGE, x, yh, NULL, 5, loss, grad, &o,
                                            &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "margin");
  o = opts(DETLOSS_LOSS_SIGMOID_FOCAL, DETLOSS_REDUCTION_NONE);
  o.gamma = -0.5f;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, y, NULL, 5, loss, grad,
                                            &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "gamma");
  /* pos_weight: its length must divide n, values >= 0 */
  const float pw2[2] = {1.0f, 2.0f}, pwneg[1] = {-1.0f};
  o = opts(DETLOSS_LOSS_BCE_WITH_LOGITS, DETLOSS_REDUCTION_NONE);
  o.pos_weight = pw2;
  o.pos_weight_len = 2;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, x, y, NULL, 5, loss, grad,
                                            &o, &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "pos_weight");
  o.pos_weight = pwneg;
  o.pos_weight_len = 1;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, x, y, NULL, 5, loss, grad,
                                            &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "pos_weight[0]");
  lt_assert_untouched(loss, 5);
  lt_assert_untouched(grad, 5);
}

static void class_indices_out_of_range_are_named(void **state) {
  (void)state;
  const float z[6] = {1, 2, 3, 4, 5, 6};
  int64_t t[2] = {0, 3};
  float loss[2], grad[6];
  lt_fill(loss, 2);
  lt_fill(grad, 6);
  detloss_error err;
  detloss_loss_options o = opts(DETLOSS_LOSS_CROSS_ENTROPY, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, z, t, NULL, 2, 3, loss, grad,
                                        &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "target[1]");
  t[1] = -1;
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_SOFTMAX_FOCAL, z, t, NULL, 2, 3, loss, grad,
                                        &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "target[1]");
  t[1] = 1;
  o.label_smoothing = 1.5f;
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, z, t, NULL, 2, 3, loss, grad,
                                        &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "label_smoothing");
  o = opts(DETLOSS_LOSS_CROSS_ENTROPY, DETLOSS_REDUCTION_NONE);
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, z, t, NULL, 2, 0, loss, grad,
                                        &o, &err),
                   DETLOSS_ERR_SHAPE);
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_MSE, z, t, NULL, 2, 3, loss, grad, &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "kind");
  float zn[6] = {1, 2, 3, 4, INFINITY, 6};
  assert_int_equal(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, zn, t, NULL, 2, 3, loss, grad,
                                        &o, &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "logits[4]");
  lt_assert_untouched(loss, 2);
  lt_assert_untouched(grad, 6);
}

static void results_are_bitwise_identical_for_1_2_and_4_threads(void **state) {
  (void)state;
  const size_t rows = 3001, C = 80, n = rows * C; /* 240,080 logits: many blocks */
  float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
  int64_t *t = malloc(rows * sizeof(int64_t));
  assert_non_null(x);
  assert_non_null(y);
  assert_non_null(t);
  dl_rng r = {77};
  for (size_t i = 0; i < n; i++) {
    x[i] = (float)(dl_rng_normal(&r) * 4.0);
    y[i] = dl_rng_uniform(&r, 0, 1) < 0.02 ? 1.0f : (i % 97 == 0 ? 0.4f : 0.0f);
  }
  for (size_t i = 0; i < rows; i++) t[i] = i % 13 == 0 ? -100 : (int64_t)(dl_rng_u64(&r) % C);
  const int threads[3] = {1, 2, 4};
  const detloss_loss_kind kinds[4] = {DETLOSS_LOSS_SIGMOID_FOCAL, DETLOSS_LOSS_BCE_WITH_LOGITS,
                                      DETLOSS_LOSS_CROSS_ENTROPY, DETLOSS_LOSS_SOFTMAX_FOCAL};
  for (int k = 0; k < 4; k++) {
    float *g[3], l[3];
    for (int ti = 0; ti < 3; ti++) {
      g[ti] = malloc(n * sizeof(float));
      assert_non_null(g[ti]);
      detloss_loss_options o = opts(kinds[k], DETLOSS_REDUCTION_SUM);
      o.num_threads = threads[ti];
      o.label_smoothing = 0.1f;
      detloss_status st =
          k < 2 ? detloss_loss_elementwise(kinds[k], x, y, NULL, n, &l[ti], g[ti], &o, NULL)
                : detloss_loss_classes(kinds[k], x, t, NULL, rows, C, &l[ti], g[ti], &o, NULL);
      assert_int_equal(st, DETLOSS_OK);
    }
    dl_assert_bitwise_equal(&l[0], &l[1], 1);
    dl_assert_bitwise_equal(&l[0], &l[2], 1);
    dl_assert_bitwise_equal(g[0], g[1], n);
    dl_assert_bitwise_equal(g[0], g[2], n);
    for (int ti = 0; ti < 3; ti++) free(g[ti]);
  }
  free(x);
  free(y);
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_follow_the_header_for_every_kind),
      cmocka_unit_test(names_round_trip_and_typos_get_a_suggestion),
      cmocka_unit_test(vector_exp_and_log_are_within_three_ulp_of_double_libm),
      cmocka_unit_test(sigmoid_focal_matches_the_reference_table),
      cmocka_unit_test(bce_with_logits_and_bce_at_one_half_are_ln2),
      cmocka_unit_test(hinge_is_zero_with_zero_gradient_at_and_beyond_the_margin),
      cmocka_unit_test(cross_entropy_with_label_smoothing_on_equal_logits),
      cmocka_unit_test(softmax_focal_on_two_equal_logits),
      cmocka_unit_test(every_classification_loss_matches_torch_float64),
      cmocka_unit_test(elementwise_gradients_match_central_differences),
      cmocka_unit_test(class_gradients_match_central_differences),
      cmocka_unit_test(saturated_logits_give_finite_analytic_limits),
      cmocka_unit_test(focal_is_finite_where_autograd_gives_nan),
      cmocka_unit_test(vector_exp_of_a_non_positive_float_is_at_most_one),
      cmocka_unit_test(focal_never_exceeds_bce_and_equals_it_at_gamma_0_without_alpha),
      cmocka_unit_test(bce_at_probabilities_zero_and_one_is_clamped_like_torch),
      cmocka_unit_test(cross_entropy_with_saturated_logits_is_exact),
      cmocka_unit_test(cross_entropy_mean_with_every_row_ignored_is_zero),
      cmocka_unit_test(a_binary_target_gives_the_same_bits_in_a_soft_chunk),
      cmocka_unit_test(out_of_domain_targets_and_parameters_are_named),
      cmocka_unit_test(class_indices_out_of_range_are_named),
      cmocka_unit_test(results_are_bitwise_identical_for_1_2_and_4_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
