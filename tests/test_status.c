/* test_status.c - status strings, error filling, suggestions and the block-parallel driver. */
#include "detloss/detloss.h"
#include "internal.h"
#include "parallel.h"
#include "testutil.h"

static void every_status_has_a_distinct_name(void **state) {
  (void)state;
  const char *seen[DETLOSS_ERR_NOT_FOUND + 1];
  for (int s = 0; s <= DETLOSS_ERR_NOT_FOUND; s++) {
    const char *name = detloss_status_str((detloss_status)s);
    assert_non_null(name);
    assert_string_not_equal(name, "unknown status");
    for (int t = 0; t < s; t++) assert_string_not_equal(name, seen[t]);
    seen[s] = name;
  }
  assert_string_equal(detloss_status_str(DETLOSS_OK), "ok");
  assert_string_equal(detloss_status_str((detloss_status)999), "unknown status");
}

static void status_numbers_are_stable(void **state) {
  (void)state;
  /* Append-only: these numbers are part of the ABI and of the Python binding. */
  assert_int_equal(DETLOSS_OK, 0);
  assert_int_equal(DETLOSS_ERR_NULL, 1);
  assert_int_equal(DETLOSS_ERR_SHAPE, 2);
  assert_int_equal(DETLOSS_ERR_NONFINITE, 3);
  assert_int_equal(DETLOSS_ERR_RANGE, 4);
  assert_int_equal(DETLOSS_ERR_NOMEM, 5);
  assert_int_equal(DETLOSS_ERR_PARSE, 6);
  assert_int_equal(DETLOSS_ERR_UNSUPPORTED, 11);
  assert_int_equal(DETLOSS_ERR_NOT_FOUND, 12);
}

static void fail_fills_where_and_message_and_tolerates_null(void **state) {
  (void)state;
  detloss_error err;
  assert_int_equal(dl_fail(&err, DETLOSS_ERR_RANGE, "eps", "must be > %d", 0), DETLOSS_ERR_RANGE);
  assert_int_equal(err.status, DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "eps");
  assert_string_equal(err.msg, "must be > 0");
  assert_int_equal(dl_fail(NULL, DETLOSS_ERR_NULL, "x", "y"), DETLOSS_ERR_NULL);
}

static void checks_name_the_first_bad_element(void **state) {
  (void)state;
  detloss_error err;
  float x[5] = {0, 1, INFINITY, NAN, 2};
  assert_int_equal(dl_check_finite(x, 5, "input", &err), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "input[2]");
  assert_int_equal(dl_check_finite(x, 2, "input", &err), DETLOSS_OK);
  assert_int_equal(dl_check_finite(NULL, 0, "input", &err), DETLOSS_OK);
  assert_int_equal(dl_check_finite(NULL, 1, "input", &err), DETLOSS_ERR_NULL);
  float b[8] = {0, 0, 1, 1, 0, 0, 1, NAN};
  assert_int_equal(dl_check_boxes(b, 2, "gt", &err), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "gt[1]");
  size_t out;
  assert_int_equal(dl_mul_overflow(SIZE_MAX / 2 + 1, 2, &out), 1);
  assert_int_equal(dl_mul_overflow(3, 4, &out), 0);
  assert_int_equal(out, 12);
  assert_int_equal(dl_add_overflow(SIZE_MAX, 1, &out), 1);
}

static void suggestions_find_near_misses_only(void **state) {
  (void)state;
  const char *names[] = {"iou", "giou", "encode", "embedding_loss"};
  assert_string_equal(dl_suggest("iuo", names, 4), "iou");
  assert_string_equal(dl_suggest("enocde", names, 4), "encode");
  assert_string_equal(dl_suggest("embeding_loss", names, 4), "embedding_loss");
  assert_null(dl_suggest("frobnicate", names, 4));
}

typedef struct sum_ctx {
  const double *x;
  double *partials;
  size_t *hits;
} sum_ctx;

static void sum_block(void *vctx, size_t i0, size_t i1, size_t block) {
  sum_ctx *c = vctx;
  double s = 0;
  for (size_t i = i0; i < i1; i++) {
    s += c->x[i];
    c->hits[i]++;
  }
  c->partials[block] = s;
}

static void block_sums_are_identical_for_any_thread_count(void **state) {
  (void)state;
  /* Values of wildly different magnitudes make the sum order-sensitive: a
   * reduction whose order followed the threads would differ between runs. */
  size_t n = 100003, block = 1000, nb = dl_num_blocks(n, block);
  assert_int_equal(nb, 101);
  assert_int_equal(dl_num_blocks(0, block), 0);
  double *x = malloc(n * sizeof(double)), *p = malloc(nb * sizeof(double));
  size_t *hits = calloc(n, sizeof(size_t));
  dl_rng r = {9};
  for (size_t i = 0; i < n; i++) x[i] = dl_rng_normal(&r) * pow(10.0, dl_rng_uniform(&r, -8, 8));
  double ref = 0;
  for (int t = 1; t <= 8; t++) {
    sum_ctx c = {x, p, hits};
    dl_parallel_blocks(n, block, t, sum_block, &c);
    double s = dl_sum_blocks(p, nb);
    if (t == 1) ref = s;
    assert_memory_equal(&s, &ref, sizeof s);
  }
  for (size_t i = 0; i < n; i++) assert_int_equal(hits[i], 8); /* each item once per run */
  free(x);
  free(p);
  free(hits);
}

static void version_and_openmp_are_reported(void **state) {
  (void)state;
  assert_string_equal(detloss_version(), DETLOSS_VERSION_STRING);
#ifdef DETLOSS_TEST_EXPECT_OPENMP
  assert_int_equal(detloss_has_openmp(), DETLOSS_TEST_EXPECT_OPENMP);
#endif
  assert_true(dl_thread_count(3) == 3 || (!detloss_has_openmp() && dl_thread_count(3) == 1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_status_has_a_distinct_name),
      cmocka_unit_test(status_numbers_are_stable),
      cmocka_unit_test(fail_fills_where_and_message_and_tolerates_null),
      cmocka_unit_test(checks_name_the_first_bad_element),
      cmocka_unit_test(suggestions_find_near_misses_only),
      cmocka_unit_test(block_sums_are_identical_for_any_thread_count),
      cmocka_unit_test(version_and_openmp_are_reported),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
