/* test_loss_registry.c - the table of loss kinds (src/loss_registry.c): rows
 * indexed by kind, names, defaults, and the parameter domains agreeing with
 * the checks of the loss functions. */
#include <math.h>
#include <string.h>

#include "loss_testutil.h"

static void rows_are_indexed_by_kind_and_names_round_trip(void **state) {
  (void)state;
  size_t n = detloss_loss_count();
  assert_int_equal(n, DETLOSS_LOSS_VARIFOCAL + 1);
  for (size_t k = 0; k < n; k++) {
    const detloss_loss_info *r = detloss_loss_info_get((detloss_loss_kind)k);
    assert_non_null(r);
    assert_int_equal(r->kind, k);
    assert_ptr_equal(detloss_loss_info_by_name(r->name), r);
    assert_string_equal(detloss_loss_name((detloss_loss_kind)k), r->name);
    assert_true(r->form <= DETLOSS_LOSS_FORM_DISTRIBUTION);
    assert_true(r->grad_inputs[0] != '\0' && r->reference[0] != '\0');
    assert_true(r->num_params == 0 || r->params != NULL);
  }
  assert_null(detloss_loss_info_get((detloss_loss_kind)n));
  assert_null(detloss_loss_info_by_name("giou"));
  assert_null(detloss_loss_info_by_name(NULL));
  assert_int_equal(detloss_loss_info_get(DETLOSS_LOSS_SOFTMAX_FOCAL)->form,
                   DETLOSS_LOSS_FORM_CLASSES);
  assert_int_equal(detloss_loss_info_get(DETLOSS_LOSS_CIOU)->form, DETLOSS_LOSS_FORM_BOXES);
  assert_int_equal(detloss_loss_info_get(DETLOSS_LOSS_QUALITY_FOCAL)->form,
                   DETLOSS_LOSS_FORM_SOFT_ROWS);
  assert_int_equal(detloss_loss_info_get(DETLOSS_LOSS_DISTRIBUTION_FOCAL)->form,
                   DETLOSS_LOSS_FORM_DISTRIBUTION);
  assert_int_equal(detloss_loss_info_get(DETLOSS_LOSS_VARIFOCAL)->form,
                   DETLOSS_LOSS_FORM_ELEMENTWISE);
}

/* detloss_loss_options_default(kind) holds each row's default in its field. */
static void the_default_options_hold_each_rows_defaults(void **state) {
  (void)state;
  for (size_t k = 0; k < detloss_loss_count(); k++) {
    const detloss_loss_info *r = detloss_loss_info_get((detloss_loss_kind)k);
    detloss_loss_options o = detloss_loss_options_default(r->kind);
    for (size_t i = 0; i < r->num_params; i++) {
      const detloss_loss_param *p = &r->params[i];
      const char *f = (const char *)&o + p->offset;
      if (p->type == DETLOSS_PARAM_FLOAT) {
        float v;
        memcpy(&v, f, sizeof v);
        assert_true(v == (float)p->default_value);
      } else if (p->type == DETLOSS_PARAM_INT) {
        int64_t v;
        memcpy(&v, f, sizeof v);
        assert_true(v == (int64_t)p->default_value);
      } else if (p->type == DETLOSS_PARAM_BOOL) {
        int v;
        memcpy(&v, f, sizeof v);
        assert_int_equal(v, p->default_value != 0.0);
      } else {
        assert_null(o.pos_weight);
      }
      /* the default lies in the domain */
      assert_true(p->lo_open ? p->default_value > p->lo || p->type == DETLOSS_PARAM_FLOATS
                             : p->default_value >= p->lo);
      assert_true(p->hi_open ? p->default_value < p->hi : p->default_value <= p->hi);
    }
  }
  /* spot checks against the header's per-field list */
  assert_true(detloss_loss_options_default(DETLOSS_LOSS_SOFTMAX_FOCAL).alpha == 1.0f);
  assert_true(detloss_loss_options_default(DETLOSS_LOSS_COSINE_EMBEDDING).margin == 0.0f);
  assert_true(detloss_loss_options_default(DETLOSS_LOSS_TRIPLET_MARGIN).eps == 1e-6f);
  assert_true(detloss_loss_options_default(DETLOSS_LOSS_QUALITY_FOCAL).beta == 2.0f);
  assert_true(detloss_loss_options_default(DETLOSS_LOSS_SMOOTH_L1).beta == 1.0f);
  assert_true(detloss_loss_options_default(DETLOSS_LOSS_VARIFOCAL).alpha == 0.75f);
  assert_int_equal(detloss_loss_options_default(DETLOSS_LOSS_VARIFOCAL).iou_weighted, 1);
  assert_int_equal(detloss_loss_options_default(DETLOSS_LOSS_VARIFOCAL).detach_weight, 0);
  assert_int_equal(detloss_loss_options_default(DETLOSS_LOSS_QUALITY_FOCAL).activated, 0);
}

/* One valid element of kind's form, run with options o. */
static detloss_status run_one(const detloss_loss_info *r, const detloss_loss_options *o,
                              detloss_error *err) {
  float loss, g[8];
  static const float x[2] = {0.5f, 0.25f}, y[1] = {1.0f};
  static const float b1[4] = {0, 0, 2, 2}, b2[4] = {1, 1, 3, 3};
  static const float e1[2] = {1, 0}, e2[2] = {0, 1}, e3[2] = {1, 1};
  static const int64_t t[1] = {0};
  switch (r->form) {
    case DETLOSS_LOSS_FORM_ELEMENTWISE:
      return detloss_loss_elementwise(r->kind, x, y, NULL, 1, &loss, g, o, err);
    case DETLOSS_LOSS_FORM_CLASSES:
      return detloss_loss_classes(r->kind, x, t, NULL, 1, 2, &loss, g, o, err);
    case DETLOSS_LOSS_FORM_BOXES:
      return detloss_loss_boxes(r->kind, b1, b2, NULL, 1, &loss, g, g + 4, o, err);
    case DETLOSS_LOSS_FORM_EMBEDDING:
      return detloss_loss_embedding(r->kind, e1, e2, e3, y, NULL, 1, 2, &loss, g, g + 2, g + 4, o,
                                    err);
    case DETLOSS_LOSS_FORM_SOFT_ROWS:
      return detloss_loss_rows(r->kind, x, x, NULL, 1, 2, &loss, g, o, err);
    case DETLOSS_LOSS_FORM_DISTRIBUTION:
      return detloss_loss_rows(r->kind, x, y, NULL, 1, 2, &loss, g, o, err);
  }
  return DETLOSS_ERR_RANGE;
}

/* The domain in a row is the one its loss function checks: the default runs,
 * a value just past a finite bound is DETLOSS_ERR_RANGE naming the param. */
static void a_float_param_past_its_bound_is_rejected_naming_it(void **state) {
  (void)state;
  size_t checked = 0;
  for (size_t k = 0; k < detloss_loss_count(); k++) {
    const detloss_loss_info *r = detloss_loss_info_get((detloss_loss_kind)k);
    detloss_error err;
    detloss_loss_options o0 = detloss_loss_options_default(r->kind);
    assert_int_equal(run_one(r, &o0, &err), DETLOSS_OK);
    for (size_t i = 0; i < r->num_params; i++) {
      const detloss_loss_param *p = &r->params[i];
      if (p->type != DETLOSS_PARAM_FLOAT) continue;
      for (int side = 0; side < 2; side++) {
        double bound = side ? p->hi : p->lo;
        int open = side ? p->hi_open : p->lo_open;
        if (!isfinite(bound)) continue;
        float bad = open ? (float)bound : (float)(side ? bound + 0.5 : bound - 0.5);
        detloss_loss_options o = o0;
        memcpy((char *)&o + p->offset, &bad, sizeof bad);
        memset(&err, 0, sizeof err);
        assert_int_equal(run_one(r, &o, &err), DETLOSS_ERR_RANGE);
        assert_string_equal(err.where, p->key);
        checked++;
      }
    }
  }
  assert_true(checked >= 10);
}

/* The unknown-name message lists the table's names in kind order. */
static void an_unknown_name_lists_every_row(void **state) {
  (void)state;
  detloss_error err;
  detloss_loss_kind kind;
  assert_int_equal(detloss_loss_from_name("zzzzzzzzzzzz", &kind, &err), DETLOSS_ERR_UNKNOWN);
  assert_string_equal(err.msg,
                      "unknown loss 'zzzzzzzzzzzz' (expected one of bce_with_logits, bce, "
                      "cross_entropy, sigmoid_focal, softmax_focal, hinge, l1, mse, smooth_l1, "
                      "huber, iou_loss, giou_loss, diou_loss, ciou_loss, contrastive, "
                      "cosine_embedding, triplet_margin, quality_focal, distribution_focal, "
                      "varifocal)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rows_are_indexed_by_kind_and_names_round_trip),
      cmocka_unit_test(the_default_options_hold_each_rows_defaults),
      cmocka_unit_test(a_float_param_past_its_bound_is_rejected_naming_it),
      cmocka_unit_test(an_unknown_name_lists_every_row),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
