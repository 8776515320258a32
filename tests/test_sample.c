/* test_sample.c - balanced positive/negative sampling (detloss_sample_balanced). */
#include <cjson/cJSON.h>

#include "testutil.h"
#include "detloss/detloss.h"

/* matches with P positives (gt index 0..3), N negatives (-1), I ignored (-2), shuffled
 * deterministically. */
static int64_t *make_matches(size_t P, size_t N, size_t I, uint64_t seed) {
  size_t A = P + N + I;
  int64_t *m = malloc((A ? A : 1) * sizeof *m);
  assert_non_null(m);
  for (size_t i = 0; i < A; i++) m[i] = i < P ? (int64_t)(i % 4) : (i < P + N ? -1 : -2);
  dl_rng r = {seed};
  for (size_t i = A; i > 1; i--) {
    size_t j = (size_t)(dl_rng_u64(&r) % i);
    int64_t t = m[i - 1];
    m[i - 1] = m[j];
    m[j] = t;
  }
  return m;
}

/* Checks the sampled labels against the matches: 1 only on positives, 0 only on
 * negatives, and the counts; returns nothing, fails on violation. */
static void check_subset(const int64_t *m, const int8_t *s, size_t A, size_t npos, size_t nneg) {
  size_t cp = 0, cn = 0;
  for (size_t a = 0; a < A; a++) {
    if (s[a] == 1) {
      assert_true(m[a] >= 0);
      cp++;
    } else if (s[a] == 0) {
      assert_int_equal(m[a], -1);
      cn++;
    } else {
      assert_int_equal(s[a], -1);
    }
  }
  assert_int_equal(cp, npos);
  assert_int_equal(cn, nneg);
}

/* Counts equal torchvision's BalancedPositiveNegativeSampler on every fixture case
 * (exact integers): n_pos = min(|pos|, int(B f)), n_neg = min(|neg|, B - n_pos). */
static void counts_equal_torchvision_balanced_sampler(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("sample/sample_counts.json"));
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  int n = 0;
  for (const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "cases")->child; c;
       c = c->next, n++) {
    size_t P = (size_t)cJSON_GetObjectItemCaseSensitive(c, "num_pos_in")->valuedouble;
    size_t N = (size_t)cJSON_GetObjectItemCaseSensitive(c, "num_neg_in")->valuedouble;
    size_t I = (size_t)cJSON_GetObjectItemCaseSensitive(c, "num_ignored_in")->valuedouble;
    detloss_sample_options o = detloss_sample_options_default();
    o.batch_size_per_image =
        (int64_t)cJSON_GetObjectItemCaseSensitive(c, "batch_size_per_image")->valuedouble;
    o.positive_fraction = cJSON_GetObjectItemCaseSensitive(c, "positive_fraction")->valuedouble;
    o.seed = (uint64_t)n;
    size_t want_p = (size_t)cJSON_GetObjectItemCaseSensitive(c, "num_pos")->valuedouble;
    size_t want_n = (size_t)cJSON_GetObjectItemCaseSensitive(c, "num_neg")->valuedouble;
    int64_t *m = make_matches(P, N, I, (uint64_t)n);
    size_t A = P + N + I;
    int8_t *s = malloc(A ? A : 1);
    size_t np = 99, nn = 99;
    assert_int_equal(detloss_sample_balanced(m, A, 0, s, &np, &nn, &o, NULL), DETLOSS_OK);
    assert_int_equal(np, want_p);
    assert_int_equal(nn, want_n);
    check_subset(m, s, A, want_p, want_n);
    free(m);
    free(s);
  }
  assert_true(n >= 10);
  cJSON_Delete(root);
  free(text);
}

static void when_everything_fits_the_budget_every_candidate_is_taken(void **state) {
  (void)state;
  /* 5 positives, 3 negatives, 2 ignored, B 256 f 0.5: n_pos = min(5, 128) = 5,
   * n_neg = min(3, 251) = 3: no randomness, any seed gives the same labels. */
  const int64_t m[10] = {0, -1, 2, -2, 1, -1, 0, 3, -2, -1};
  const int8_t want[10] = {1, 0, 1, -1, 1, 0, 1, 1, -1, 0};
  for (uint64_t seed = 0; seed < 5; seed++) {
    detloss_sample_options o = detloss_sample_options_default();
    o.seed = seed;
    int8_t s[10];
    assert_int_equal(detloss_sample_balanced(m, 10, seed * 7, s, NULL, NULL, &o, NULL), DETLOSS_OK);
    assert_memory_equal(s, want, 10);
  }
}

static void sampling_is_bitwise_identical_for_1_2_and_4_threads(void **state) {
  (void)state;
  /* an RPN-sized image: 268,569 anchors, 3000 positives, 4000 ignored */
  size_t P = 3000, I = 4000, N = 268569 - P - I, A = P + N + I;
  int64_t *m = make_matches(P, N, I, 11);
  int8_t *s[3];
  int threads[3] = {1, 2, 4};
  for (int t = 0; t < 3; t++) {
    detloss_sample_options o = detloss_sample_options_default();
    o.seed = 1234;
    o.num_threads = threads[t];
    s[t] = malloc(A);
    size_t np, nn;
    assert_int_equal(detloss_sample_balanced(m, A, 3, s[t], &np, &nn, &o, NULL), DETLOSS_OK);
    assert_int_equal(np, 128);
    assert_int_equal(nn, 128);
    check_subset(m, s[t], A, 128, 128);
  }
  assert_memory_equal(s[1], s[0], A);
  assert_memory_equal(s[2], s[0], A);
  for (int t = 0; t < 3; t++) free(s[t]);
  free(m);
}

static size_t count_differences(const int8_t *a, const int8_t *b, size_t n) {
  size_t d = 0;
  for (size_t i = 0; i < n; i++) d += a[i] != b[i];
  return d;
}

static void the_subset_depends_on_seed_and_image_index_only(void **state) {
  (void)state;
  size_t A = 5000;
  int64_t *m = make_matches(500, 4400, 100, 5);
  int8_t *s0 = malloc(A), *s1 = malloc(A), *s2 = malloc(A), *s3 = malloc(A);
  detloss_sample_options o = detloss_sample_options_default();
  o.seed = 9;
  assert_int_equal(detloss_sample_balanced(m, A, 0, s0, NULL, NULL, &o, NULL), DETLOSS_OK);
  assert_int_equal(detloss_sample_balanced(m, A, 0, s1, NULL, NULL, &o, NULL), DETLOSS_OK);
  assert_memory_equal(s0, s1, A); /* same (seed, image): same subset */
  assert_int_equal(detloss_sample_balanced(m, A, 1, s2, NULL, NULL, &o, NULL), DETLOSS_OK);
  o.seed = 10;
  assert_int_equal(detloss_sample_balanced(m, A, 0, s3, NULL, NULL, &o, NULL), DETLOSS_OK);
  /* 128 of 500 positives and 128 of 4400 negatives: two independent draws share about
   * 128^2/500 = 33 positives, so they differ in far more than 100 places */
  assert_true(count_differences(s0, s2, A) > 100);
  assert_true(count_differences(s0, s3, A) > 100);
  /* the chosen set is the k smallest keys, each key a function of (seed, image, anchor):
   * turning half of the unchosen negatives into ignored anchors (still > 128 negatives
   * left, so the counts stay 128/128) leaves the chosen set unchanged */
  int64_t *m2 = malloc(A * sizeof *m2);
  memcpy(m2, m, A * sizeof *m2);
  for (size_t a = 0; a < A; a++)
    if (m2[a] == -1 && s0[a] == -1 && a % 2 == 0) m2[a] = -2;
  o.seed = 9;
  assert_int_equal(detloss_sample_balanced(m2, A, 0, s1, NULL, NULL, &o, NULL), DETLOSS_OK);
  assert_memory_equal(s1, s0, A);
  free(m2);
  free(m);
  free(s0);
  free(s1);
  free(s2);
  free(s3);
}

static void every_positive_is_chosen_equally_often(void **state) {
  (void)state;
  /* 10 positives, budget int(6 * 0.5) = 3: each is chosen with probability 3/10. Over 3000
   * seeds the count of each is Binomial(3000, 0.3): mean 900, sd sqrt(3000*.3*.7) = 25.1;
   * the test allows 5 sd (126). Negatives: 3 of 20, mean 450, sd 19.6, allowed 98. */
  const size_t A = 30;
  int64_t m[30];
  for (size_t a = 0; a < A; a++) m[a] = a < 10 ? 0 : -1;
  size_t hits[30] = {0};
  detloss_sample_options o = detloss_sample_options_default();
  o.batch_size_per_image = 6;
  for (uint64_t seed = 0; seed < 3000; seed++) {
    o.seed = seed;
    int8_t s[30];
    assert_int_equal(detloss_sample_balanced(m, A, 0, s, NULL, NULL, &o, NULL), DETLOSS_OK);
    for (size_t a = 0; a < A; a++) hits[a] += s[a] >= 0;
  }
  for (size_t a = 0; a < 10; a++) dl_assert_close1((double)hits[a], 900.0, 0.0, 126.0);
  for (size_t a = 10; a < A; a++) dl_assert_close1((double)hits[a], 450.0, 0.0, 98.0);
}

static void bad_input_is_rejected_naming_the_field_with_outputs_untouched(void **state) {
  (void)state;
  const int64_t m[3] = {0, -1, -2};
  int8_t s[3] = {42, 42, 42};
  size_t np = 42;
  detloss_error err;
  detloss_sample_options o = detloss_sample_options_default();
  o.batch_size_per_image = -1;
  assert_int_equal(detloss_sample_balanced(m, 3, 0, s, &np, NULL, &o, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "batch_size_per_image");
  o = detloss_sample_options_default();
  o.positive_fraction = 1.5;
  assert_int_equal(detloss_sample_balanced(m, 3, 0, s, &np, NULL, &o, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "positive_fraction");
  o.positive_fraction = NAN;
  assert_int_equal(detloss_sample_balanced(m, 3, 0, s, &np, NULL, &o, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "positive_fraction");
  const int64_t bad[3] = {0, -3, -1};
  assert_int_equal(detloss_sample_balanced(bad, 3, 0, s, &np, NULL, NULL, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "matches[1]");
  assert_int_equal(detloss_sample_balanced(m, 3, 0, NULL, &np, NULL, NULL, &err), DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "sampled");
  for (int i = 0; i < 3; i++) assert_int_equal(s[i], 42);
  assert_int_equal(np, 42);
  /* zero anchors is fine */
  assert_int_equal(detloss_sample_balanced(NULL, 0, 0, NULL, &np, NULL, NULL, &err), DETLOSS_OK);
  assert_int_equal(np, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(counts_equal_torchvision_balanced_sampler),
      cmocka_unit_test(when_everything_fits_the_budget_every_candidate_is_taken),
      cmocka_unit_test(sampling_is_bitwise_identical_for_1_2_and_4_threads),
      cmocka_unit_test(the_subset_depends_on_seed_and_image_index_only),
      cmocka_unit_test(every_positive_is_chosen_equally_often),
      cmocka_unit_test(bad_input_is_rejected_naming_the_field_with_outputs_untouched),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
