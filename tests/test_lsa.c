/* test_lsa.c - the linear sum assignment solver (src/lsa.c) through
 * detloss_linear_sum_assignment(): hand-worked matrices, edge shapes, errors,
 * and pair-for-pair agreement with scipy 1.10 linear_sum_assignment on the
 * 1,004 matrices of tests/fixtures/lsa/lsa_cases.json (ties, tall and wide,
 * +inf entries, infeasible ones). Pairs are integers: compared exactly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testjson.h"
#include "testutil.h"
#include "detloss/detloss.h"

/* Solves cost [r][c] and checks the pairs against rows/cols (k entries). */
static void expect_pairs(const double *cost, size_t r, size_t c, const int64_t *rows,
                         const int64_t *cols, size_t k) {
  int64_t ri[64], ci[64];
  detloss_error e;
  assert_true(k <= 64);
  assert_int_equal(detloss_linear_sum_assignment(cost, r, c, ri, ci, &e), DETLOSS_OK);
  for (size_t i = 0; i < k; i++) {
    if (ri[i] != rows[i] || ci[i] != cols[i])
      print_error("pair %zu: (%lld, %lld), expected (%lld, %lld)\n", i, (long long)ri[i],
                  (long long)ci[i], (long long)rows[i], (long long)cols[i]);
    assert_int_equal(ri[i], rows[i]);
    assert_int_equal(ci[i], cols[i]);
  }
}

static void square_matrix_takes_the_unique_cheapest_permutation(void **state) {
  (void)state;
  /* [[4,1,3],[2,0,5],[3,2,2]]: permutations (col of rows 0,1,2) and costs:
   * 012: 4+0+2=6, 021: 4+5+2=11, 102: 1+2+2=5, 120: 1+5+3=9, 201: 3+2+2=7,
   * 210: 3+0+3=6 -> unique minimum 5 at (0,1), (1,0), (2,2). */
  const double c[9] = {4, 1, 3, 2, 0, 5, 3, 2, 2};
  const int64_t r[3] = {0, 1, 2}, k[3] = {1, 0, 2};
  expect_pairs(c, 3, 3, r, k, 3);
}

static void ties_follow_scipy_not_the_lowest_index(void **state) {
  (void)state;
  /* scipy 1.10.1: zeros 3x3 -> identity; zeros 5x2 and 2x5 -> (0,0), (1,1). */
  const double z[10] = {0};
  const int64_t id[3] = {0, 1, 2};
  expect_pairs(z, 3, 3, id, id, 3);
  expect_pairs(z, 5, 2, id, id, 2);
  expect_pairs(z, 2, 5, id, id, 2);
  /* Tall [[1,1,2],[1,1,2],[0,5,5],[3,0,0]] (solved transposed): optimum 1 is
   * reached by rows {1,2,3} -> cols (1,0,2) = 1+0+0 and by rows {0,2,3} ->
   * (1,0,2) = 1+0+0 too; scipy returns rows [1,2,3], cols [1,0,2]. */
  const double t[12] = {1, 1, 2, 1, 1, 2, 0, 5, 5, 3, 0, 0};
  const int64_t tr[3] = {1, 2, 3}, tc[3] = {1, 0, 2};
  expect_pairs(t, 4, 3, tr, tc, 3);
}

static void inf_entries_are_forbidden_pairs(void **state) {
  (void)state;
  /* [[inf,1],[1,inf]]: only the anti-diagonal is finite (cost 2). */
  const double c[4] = {HUGE_VAL, 1, 1, HUGE_VAL};
  const int64_t r[2] = {0, 1}, k[2] = {1, 0};
  expect_pairs(c, 2, 2, r, k, 2);
}

static void empty_and_single_matrices(void **state) {
  (void)state;
  int64_t ri[2] = {7, 7}, ci[2] = {7, 7};
  detloss_error e;
  assert_int_equal(detloss_linear_sum_assignment(NULL, 0, 3, NULL, NULL, &e), DETLOSS_OK);
  assert_int_equal(detloss_linear_sum_assignment(NULL, 3, 0, ri, ci, &e), DETLOSS_OK);
  assert_int_equal(ri[0], 7); /* nothing written */
  const double one = -2.5;
  assert_int_equal(detloss_linear_sum_assignment(&one, 1, 1, ri, ci, &e), DETLOSS_OK);
  assert_int_equal(ri[0], 0);
  assert_int_equal(ci[0], 0);
}

static void errors_name_the_entry_and_leave_the_outputs_untouched(void **state) {
  (void)state;
  int64_t ri[2] = {7, 7}, ci[2] = {7, 7};
  detloss_error e;
  double c[4] = {1, 2, 3, NAN};
  assert_int_equal(detloss_linear_sum_assignment(c, 2, 2, ri, ci, &e), DETLOSS_ERR_NONFINITE);
  assert_string_equal(e.where, "cost[1][1]");
  c[3] = -HUGE_VAL;
  assert_int_equal(detloss_linear_sum_assignment(c, 2, 2, ri, ci, &e), DETLOSS_ERR_NONFINITE);
  assert_string_equal(e.where, "cost[1][1]");
  /* [[inf,inf],[1,1]]: row 0 can take nothing -> infeasible (scipy ValueError) */
  const double inf_row[4] = {HUGE_VAL, HUGE_VAL, 1, 1};
  assert_int_equal(detloss_linear_sum_assignment(inf_row, 2, 2, ri, ci, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "cost");
  assert_int_equal(detloss_linear_sum_assignment(NULL, 2, 2, ri, ci, &e), DETLOSS_ERR_NULL);
  assert_string_equal(e.where, "cost");
  assert_int_equal(detloss_linear_sum_assignment(c, 2, 2, ri, NULL, &e), DETLOSS_ERR_NULL);
  assert_string_equal(e.where, "col_ind");
  c[3] = 0;
  assert_int_equal(detloss_linear_sum_assignment(c, 2, 2, ri, ri + 1, &e), DETLOSS_ERR_SHAPE);
  assert_int_equal(detloss_linear_sum_assignment(c, 2, 2, (int64_t *)(void *)c, ci, &e),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(e.where, "row_ind");
  for (int i = 0; i < 2; i++) {
    assert_int_equal(ri[i], 7);
    assert_int_equal(ci[i], 7);
  }
}

/* Every fixture matrix: pairs identical to scipy's, or infeasible where
 * scipy said so; the total cost equals scipy's to 1e-12 relative. */
static void pairs_equal_scipy_on_a_thousand_matrices(void **state) {
  (void)state;
  char *text = dl_read_file(DETLOSS_FIXTURE_DIR "/lsa/lsa_cases.json");
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *cases = cJSON_GetObjectItem(root, "cases");
  size_t n = 0, ties = 0, infeasible = 0;
  const cJSON *cs;
  cJSON_ArrayForEach(cs, cases) {
    size_t r = (size_t)cJSON_GetObjectItem(cs, "rows")->valueint;
    size_t c = (size_t)cJSON_GetObjectItem(cs, "cols")->valueint;
    double *cost = malloc((r * c + 1) * sizeof(double));
    size_t k = r < c ? r : c, i = 0;
    int64_t *ri = malloc((k ? k : 1) * sizeof(int64_t)),
            *ci = malloc((k ? k : 1) * sizeof(int64_t));
    const cJSON *row, *v;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(cs, "cost")) {
      cJSON_ArrayForEach(v, row) cost[i++] = cJSON_IsNull(v) ? HUGE_VAL : v->valuedouble;
    }
    assert_int_equal(i, r * c);
    detloss_error e;
    detloss_status st = detloss_linear_sum_assignment(cost, r, c, ri, ci, &e);
    if (cJSON_GetObjectItem(cs, "error")) {
      assert_int_equal(st, DETLOSS_ERR_RANGE);
      infeasible++;
    } else {
      assert_int_equal(st, DETLOSS_OK);
      const cJSON *er = cJSON_GetObjectItem(cs, "row_ind"),
                  *ec = cJSON_GetObjectItem(cs, "col_ind");
      assert_int_equal((size_t)cJSON_GetArraySize(er), k);
      double total = 0.0;
      for (size_t j = 0; j < k; j++) {
        long long wr = (long long)cJSON_GetArrayItem(er, (int)j)->valuedouble;
        long long wc = (long long)cJSON_GetArrayItem(ec, (int)j)->valuedouble;
        if (ri[j] != wr || ci[j] != wc) {
          print_error("case %zu (%s, %zux%zu) pair %zu: (%lld, %lld), scipy (%lld, %lld)\n", n,
                      cJSON_GetObjectItem(cs, "kind")->valuestring, r, c, j, (long long)ri[j],
                      (long long)ci[j], wr, wc);
          fail();
        }
        total += cost[(size_t)ri[j] * c + (size_t)ci[j]];
      }
      double want = cJSON_GetObjectItem(cs, "total")->valuedouble;
      assert_true(fabs(total - want) <= 1e-12 * fmax(1.0, fabs(want)));
      if (strncmp(cJSON_GetObjectItem(cs, "kind")->valuestring, "int", 3) == 0) ties++;
    }
    free(cost);
    free(ri);
    free(ci);
    n++;
  }
  assert_true(n >= 1000);
  assert_true(ties >= 400);
  assert_true(infeasible >= 3);
  cJSON_Delete(root);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(square_matrix_takes_the_unique_cheapest_permutation),
      cmocka_unit_test(ties_follow_scipy_not_the_lowest_index),
      cmocka_unit_test(inf_entries_are_forbidden_pairs),
      cmocka_unit_test(empty_and_single_matrices),
      cmocka_unit_test(errors_name_the_entry_and_leave_the_outputs_untouched),
      cmocka_unit_test(pairs_equal_scipy_on_a_thousand_matrices),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
