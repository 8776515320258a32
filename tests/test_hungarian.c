/* test_hungarian.c - DETR's Hungarian matcher (src/hungarian.c): hand-worked
 * costs of both semantics, the batched call equal to the per-image calls and
 * identical for 1 and 2 threads, errors, the "hungarian" assigner, and the
 * cross-check against a float64 torch + scipy reference of DETR's matcher
 * (tests/fixtures/hungarian: 38 scenes, 71 images, with repeated queries
 * that create equal-cost optima): pairs identical, cost blocks within 1e-12. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testjson.h"
#include "testutil.h"
#include "assign.h"
#include "detloss/detloss.h"

static void detr_costs_of_a_hand_worked_pair(void **state) {
  (void)state;
  /* K = 1 class + no-object; both queries have logits [0, 0]: softmax 0.5,
   * class cost -0.5.
   * q0 box (0.5,0.5,0.2,0.2) = gt: L1 0, GIoU 1 -> C = 5*0 - 0.5 - 2*1 = -2.5.
   * q1 box (0.5,0.5,0.4,0.2): L1 0.2; corners x 0.3..0.7, y 0.4..0.6 (area
   * 0.08), gt 0.4..0.6 (0.04), inter 0.04, union 0.08, IoU 0.5, enclosing
   * 0.08 -> GIoU 0.5; C = 5*0.2 - 0.5 - 2*0.5 = -0.5. Match (q0, gt0). */
  const float logits[4] = {0, 0, 0, 0};
  const float boxes[8] = {0.5f, 0.5f, 0.2f, 0.2f, 0.5f, 0.5f, 0.4f, 0.2f};
  const float gt[4] = {0.5f, 0.5f, 0.2f, 0.2f};
  const int64_t lab[1] = {0};
  double cost[2], total = 0;
  int64_t pi = -9, gi = -9;
  detloss_error e;
  assert_int_equal(detloss_hungarian_match(logits, 2, 2, boxes, gt, lab, 1, &pi, &gi, &total, cost,
                                           NULL, &e),
                   DETLOSS_OK);
  /* 0.2f, 0.4f are not exact in binary: the L1 term carries float32 rounding */
  assert_true(fabs(cost[0] - -2.5) < 1e-7);
  assert_true(fabs(cost[1] - -0.5) < 1e-7);
  assert_int_equal(pi, 0);
  assert_int_equal(gi, 0);
  assert_true(total == cost[0]);
}

static void focal_class_cost_at_logit_zero(void **state) {
  (void)state;
  /* p = sigmoid(0) = 0.5; pos = 0.25 * 0.5^2 * (-ln(0.5 + 1e-8)),
   * neg = 0.75 * 0.5^2 * (-ln(0.5 + 1e-8)); class cost = pos - neg
   * = -0.125 * (-ln(0.50000001)) = -0.0866433951... With identical boxes
   * (L1 0, GIoU 1) and weights 2/5/2: C = 2 * cls - 2. */
  const float logits[3] = {0, 3, -1};
  const float box[4] = {0.3f, 0.6f, 0.1f, 0.25f};
  const int64_t lab[1] = {0};
  double cost;
  detloss_hungarian_options o = detloss_hungarian_options_focal();
  assert_int_equal(o.cost_class, 2.0f);
  detloss_error e;
  assert_int_equal(detloss_hungarian_cost(logits, 1, 3, box, box, lab, 1, &cost, &o, &e),
                   DETLOSS_OK);
  double cls = -0.125 * -log(0.5 + 1e-8);
  assert_true(fabs(cls - -0.0866433951) < 1e-10);
  assert_true(fabs(cost - (2.0 * cls - 2.0)) < 1e-12);
}

/* Reads the fixtures and checks every scene. */
static void pairs_and_costs_equal_the_torch_scipy_reference(void **state) {
  (void)state;
  char *text = dl_read_file(DETLOSS_FIXTURE_DIR "/hungarian/hungarian_cases.json");
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *cs;
  size_t scenes = 0, images = 0, dups = 0, same_pairs = 0, all_pairs = 0;
  cJSON_ArrayForEach(cs, cJSON_GetObjectItem(root, "cases")) {
    size_t B = (size_t)cJSON_GetObjectItem(cs, "num_images")->valueint;
    size_t Q = (size_t)cJSON_GetObjectItem(cs, "num_queries")->valueint;
    size_t nl = (size_t)cJSON_GetObjectItem(cs, "num_logits")->valueint;
    detloss_hungarian_options o =
        strcmp(cJSON_GetObjectItem(cs, "semantics")->valuestring, "focal") == 0
            ? detloss_hungarian_options_focal()
            : detloss_hungarian_options_default();
    int dup = cJSON_IsTrue(cJSON_GetObjectItem(cs, "duplicates"));
    dups += (size_t)dup;
    float *logits = malloc(B * Q * nl * sizeof(float)), *boxes = malloc(B * Q * 4 * sizeof(float));
    dl_json_rows(cJSON_GetObjectItem(cs, "logits"), 0, logits, NULL);
    dl_json_rows(cJSON_GetObjectItem(cs, "pred_boxes"), 0, boxes, NULL);
    const cJSON *jg = cJSON_GetObjectItem(cs, "gt");
    size_t TG = (size_t)cJSON_GetArraySize(jg);
    float *gt = malloc((TG + 1) * 4 * sizeof(float));
    int64_t *lab = malloc((TG + 1) * sizeof(int64_t));
    size_t *counts = malloc(B * sizeof(size_t));
    dl_json_rows(jg, 4, gt, NULL);
    const cJSON *v;
    size_t i = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(cs, "gt_labels")) lab[i++] = (int64_t)v->valuedouble;
    i = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(cs, "gt_counts")) counts[i++] = (size_t)v->valueint;
    size_t TP = 0;
    for (size_t b = 0; b < B; b++) TP += Q < counts[b] ? Q : counts[b];
    int64_t *bp[2], *bg[2];
    for (int t = 0; t < 2; t++) {
      bp[t] = malloc((TP + 1) * sizeof(int64_t));
      bg[t] = malloc((TP + 1) * sizeof(int64_t));
      o.num_threads = t + 1;
      detloss_error e;
      assert_int_equal(detloss_hungarian_match_batch(B, Q, nl, logits, boxes, gt, lab, counts,
                                                     bp[t], bg[t], &o, &e),
                       DETLOSS_OK);
    }
    assert_memory_equal(bp[0], bp[1], TP * sizeof(int64_t));
    assert_memory_equal(bg[0], bg[1], TP * sizeof(int64_t));
    size_t goff = 0, poff = 0;
    for (size_t b = 0; b < B; b++, images++) {
      size_t G = counts[b], k = Q < G ? Q : G;
      int64_t *pi = malloc((k + 1) * sizeof(int64_t)), *gi = malloc((k + 1) * sizeof(int64_t));
      double *cm = malloc((Q * G + 1) * sizeof(double));
      detloss_error e;
      assert_int_equal(detloss_hungarian_match(logits + b * Q * nl, Q, nl, boxes + b * Q * 4,
                                               gt + 4 * goff, lab + goff, G, pi, gi, NULL, cm, &o,
                                               &e),
                       DETLOSS_OK);
      const cJSON *wp = cJSON_GetArrayItem(cJSON_GetObjectItem(cs, "pred_index"), (int)b);
      const cJSON *wg = cJSON_GetArrayItem(cJSON_GetObjectItem(cs, "gt_index"), (int)b);
      const cJSON *wc = cJSON_GetArrayItem(cJSON_GetObjectItem(cs, "cost"), (int)b);
      assert_int_equal((size_t)cJSON_GetArraySize(wp), k);
      /* The same costs give the same pairs: the solver on the reference's
       * own float64 block returns scipy's pairs, in every scene. */
      double *rc = malloc((Q * G + 1) * sizeof(double));
      int64_t *ri = malloc((k + 1) * sizeof(int64_t)), *rk = malloc((k + 1) * sizeof(int64_t));
      for (size_t j = 0; j < Q * G; j++) rc[j] = cJSON_GetArrayItem(wc, (int)j)->valuedouble;
      assert_int_equal(detloss_linear_sum_assignment(rc, Q, G, ri, rk, &e), DETLOSS_OK);
      double got = 0.0, want = 0.0;
      for (size_t j = 0; j < k; j++) {
        long long ep = (long long)cJSON_GetArrayItem(wp, (int)j)->valuedouble;
        long long eg = (long long)cJSON_GetArrayItem(wg, (int)j)->valuedouble;
        assert_int_equal(ri[j], ep);
        assert_int_equal(rk[j], eg);
        assert_int_equal(bp[0][poff + j], pi[j]);
        assert_int_equal(bg[0][poff + j], gi[j]);
        got += cm[(size_t)pi[j] * G + (size_t)gi[j]];
        want += rc[(size_t)ep * G + (size_t)eg];
        /* End to end (our float64 costs): the same pairs, except in the
         * scenes built with repeated queries and gts, whose many equal-cost
         * optima are separated only by the last bit of torch's and our
         * float64 costs (which differ in exp/log rounding): there the
         * optimum's cost must agree instead (below). */
        if (!dup && (pi[j] != ep || gi[j] != eg)) {
          print_error("scene %zu image %zu pair %zu: (%lld, %lld), reference (%lld, %lld)\n",
                      scenes, b, j, (long long)pi[j], (long long)gi[j], ep, eg);
          fail();
        }
        if (pi[j] == ep && gi[j] == eg) same_pairs++;
        all_pairs++;
      }
      assert_true(fabs(got - want) <= 1e-12 * fmax(1.0, fabs(want)));
      free(rc);
      free(ri);
      free(rk);
      for (size_t j = 0; j < Q * G; j++) {
        double ref = cJSON_GetArrayItem(wc, (int)j)->valuedouble;
        if (!(fabs(cm[j] - ref) <= 1e-12 + 1e-12 * fabs(ref))) {
          print_error("scene %zu image %zu cost[%zu] = %.17g, reference %.17g\n", scenes, b, j,
                      cm[j], ref);
          fail();
        }
      }
      goff += G;
      poff += k;
      free(pi);
      free(gi);
      free(cm);
    }
    for (int t = 0; t < 2; t++) {
      free(bp[t]);
      free(bg[t]);
    }
    free(logits);
    free(boxes);
    free(gt);
    free(lab);
    free(counts);
    scenes++;
  }
  assert_true(scenes >= 30);
  assert_true(images >= 60);
  assert_true(dups >= 10);
  /* and nearly all pairs agree end to end even so */
  assert_true(same_pairs * 100 >= all_pairs * 95);
  cJSON_Delete(root);
  free(text);
}

static void errors_name_the_argument_and_leave_outputs_untouched(void **state) {
  (void)state;
  float logits[6] = {0, 1, 2, 0, 1, 2};
  float boxes[8] = {0.5f, 0.5f, 0.2f, 0.2f, 0.4f, 0.4f, 0.1f, 0.3f};
  float gt[8] = {0.5f, 0.5f, 0.2f, 0.2f, 0.3f, 0.3f, 0.2f, 0.1f};
  int64_t lab[2] = {0, 1};
  int64_t pi[2] = {7, 7}, gi[2] = {7, 7};
  detloss_error e;
  logits[4] = NAN;
  assert_int_equal(detloss_hungarian_match(logits, 2, 3, boxes, gt, lab, 2, pi, gi, NULL, NULL,
                                           NULL, &e),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(e.where, "logits[1][1]");
  /* batched: image 1 of 2 with one query each */
  size_t counts[2] = {1, 1};
  assert_int_equal(detloss_hungarian_match_batch(2, 1, 3, logits, boxes, gt, lab, counts, pi, gi,
                                                 NULL, &e),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(e.where, "logits[1][0][1]");
  logits[4] = 1;
  boxes[6] = 0.0f; /* w = 0 */
  assert_int_equal(detloss_hungarian_match(logits, 2, 3, boxes, gt, lab, 2, pi, gi, NULL, NULL,
                                           NULL, &e),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "pred_boxes[1]");
  assert_int_equal(detloss_hungarian_match_batch(2, 1, 3, logits, boxes, gt, lab, counts, pi, gi,
                                                 NULL, &e),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "pred_boxes[1][0]");
  boxes[6] = 0.1f;
  gt[7] = -0.1f;
  assert_int_equal(detloss_hungarian_match_batch(2, 1, 3, logits, boxes, gt, lab, counts, pi, gi,
                                                 NULL, &e),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "gt[1]");
  gt[7] = 0.1f;
  /* DETR: 3 logits = 2 classes + no-object; label 2 is the no-object column */
  lab[1] = 2;
  assert_int_equal(detloss_hungarian_match(logits, 2, 3, boxes, gt, lab, 2, pi, gi, NULL, NULL,
                                           NULL, &e),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "gt_labels[1]");
  /* ... but a class with the focal cost (3 logits = 3 classes) */
  detloss_hungarian_options f = detloss_hungarian_options_focal();
  f.focal_alpha = 1.5f;
  assert_int_equal(detloss_hungarian_match(logits, 2, 3, boxes, gt, lab, 2, pi, gi, NULL, NULL, &f,
                                           &e),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "focal_alpha");
  lab[1] = -1;
  assert_int_equal(detloss_hungarian_match(logits, 2, 3, boxes, gt, lab, 2, pi, gi, NULL, NULL,
                                           NULL, &e),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "gt_labels[1]");
  lab[1] = 1;
  assert_int_equal(detloss_hungarian_match(logits, 2, 1, boxes, gt, lab, 2, pi, gi, NULL, NULL,
                                           NULL, &e),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "num_logits");
  detloss_hungarian_options o = detloss_hungarian_options_default();
  o.cost_giou = -1.0f;
  assert_int_equal(detloss_hungarian_match(logits, 2, 3, boxes, gt, lab, 2, pi, gi, NULL, NULL, &o,
                                           &e),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "cost_giou");
  assert_int_equal(detloss_hungarian_match(logits, 2, 3, boxes, gt, lab, 2, pi, NULL, NULL, NULL,
                                           NULL, &e),
                   DETLOSS_ERR_NULL);
  assert_string_equal(e.where, "gt_index");
  assert_int_equal(detloss_hungarian_match(logits, 2, 3, boxes, gt, lab, 2, pi, pi + 1, NULL, NULL,
                                           NULL, &e),
                   DETLOSS_ERR_SHAPE);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(pi[i], 7);
    assert_int_equal(gi[i], 7);
  }
  /* G = 0 and Q = 0: nothing to match, nothing written */
  double total = 5.0;
  assert_int_equal(detloss_hungarian_match(logits, 2, 3, boxes, NULL, NULL, 0, pi, gi, &total, NULL,
                                           NULL, &e),
                   DETLOSS_OK);
  assert_true(total == 0.0);
  assert_int_equal(pi[0], 7);
  assert_int_equal(detloss_hungarian_match(NULL, 0, 3, NULL, gt, lab, 2, pi, gi, NULL, NULL, NULL,
                                           &e),
                   DETLOSS_OK);
  assert_int_equal(pi[0], 7);
}

static void the_assigner_gives_each_query_its_gt_or_background(void **state) {
  (void)state;
  const dl_assigner *a = dl_assigner_find("hungarian");
  assert_non_null(a);
  assert_string_equal(a->options_type, "detloss_hungarian_options");
  /* the hand-worked pair of detr_costs_of_a_hand_worked_pair, plus a third
   * query far away: q0 -> gt 0, q1 and q2 background */
  const float logits[6] = {0, 0, 0, 0, 0, 0};
  const float boxes[12] = {0.5f, 0.5f, 0.2f, 0.2f, 0.5f, 0.5f, 0.4f, 0.2f, 0.9f, 0.9f, 0.1f, 0.1f};
  const float gt[4] = {0.5f, 0.5f, 0.2f, 0.2f};
  const int64_t lab[1] = {0};
  dl_assign_input in;
  memset(&in, 0, sizeof in);
  in.num_anchors = 3;
  in.pred_scores = logits;
  in.num_classes = 2;
  in.pred_boxes = boxes;
  in.gt = gt;
  in.num_gt = 1;
  in.gt_labels = lab;
  int64_t m[3], la[3];
  float qa[3];
  dl_assign_result out = {.gt_index = m, .labels = la, .quality = qa};
  detloss_error e;
  assert_int_equal(a->fn(&in, NULL, &out, &e), DETLOSS_OK);
  assert_int_equal(m[0], 0);
  assert_int_equal(la[0], 0);
  assert_true(fabsf(qa[0] - -2.5f) < 1e-6f);
  for (int q = 1; q < 3; q++) {
    assert_int_equal(m[q], DL_ASSIGN_BACKGROUND);
    assert_int_equal(la[q], -1);
    assert_true(qa[q] == 0.0f);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(detr_costs_of_a_hand_worked_pair),
      cmocka_unit_test(focal_class_cost_at_logit_zero),
      cmocka_unit_test(pairs_and_costs_equal_the_torch_scipy_reference),
      cmocka_unit_test(errors_name_the_argument_and_leave_outputs_untouched),
      cmocka_unit_test(the_assigner_gives_each_query_its_gt_or_background),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
