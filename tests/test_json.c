/* test_json.c - the JSON layer: reader, writer and the compute driver. */
#include <cjson/cJSON.h>

#include "detloss/detloss_json.h"
#include "json/jread.h"
#include "json/jwrite.h"
#include "testutil.h"

static char *compute(const char *text, detloss_status want, detloss_error *err) {
  char *out = (char *)"untouched";
  detloss_status st = detloss_compute_json(text, strlen(text), &out, NULL, NULL, err);
  assert_int_equal(st, want);
  if (st != DETLOSS_OK) {
    assert_string_equal(out, "untouched"); /* nothing half-written */
    return NULL;
  }
  return out;
}

static void writer_uses_nine_significant_digits_and_no_negative_zero(void **state) {
  (void)state;
  dlj_buf b;
  dlj_buf_init(&b);
  dlj_obj_begin(&b);
  dlj_kv_num(&b, "third", (double)(1.0f / 3.0f));
  dlj_kv_num(&b, "negzero", -0.0);
  dlj_kv_num(&b, "nan", NAN);
  dlj_kv_int(&b, "big", 1234567890123LL);
  dlj_kv_str(&b, "s", "a\"b\\c\n");
  size_t shape[2] = {2, 0};
  dlj_key(&b, "empty_rows");
  dlj_float_tensor(&b, NULL, shape, 2);
  dlj_key(&b, "arr");
  dlj_arr_begin(&b);
  dlj_intval(&b, 1);
  dlj_obj_begin(&b);
  dlj_kv_num(&b, "x", 2.5);
  dlj_obj_end(&b);
  dlj_arr_end(&b);
  dlj_obj_end(&b);
  assert_false(b.oom);
  assert_string_equal(b.p, "{\"third\":0.333333343,\"negzero\":0,\"nan\":null,\"big\":1234567890123,"
                           "\"s\":\"a\\\"b\\\\c\\u000a\",\"empty_rows\":[[],[]],"
                           "\"arr\":[1,{\"x\":2.5}]}");
  /* the written text parses back, and the float round-trips */
  cJSON *j = cJSON_Parse(b.p);
  assert_non_null(j);
  float third = (float)cJSON_GetObjectItem(j, "third")->valuedouble;
  assert_true(third == 1.0f / 3.0f);
  cJSON_Delete(j);
  dlj_buf_free(&b);
}

static void reader_reports_the_json_path_of_each_fault(void **state) {
  (void)state;
  detloss_error err;
  cJSON *c = cJSON_Parse("{\"a\": [[1,2],[3]], \"b\": \"x\", \"n\": 2.5, \"r\": [[1,2,3,4],[1,2,3]],"
                         "\"i\": [1, 2.5], \"t\": [[[1]]]}");
  dlj_tensor t;
  assert_int_equal(dlj_tensor_get(c, "a", "[3]", 1, &t, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "[3].a[1]");
  assert_string_equal(err.msg, "expected 2 numbers, got 1");
  float f;
  assert_int_equal(dlj_float(c, "b", "", 1, &f, &err), DETLOSS_ERR_TYPE);
  assert_string_equal(err.where, "b");
  assert_string_equal(err.msg, "expected a number, got a string");
  assert_int_equal(dlj_float(c, "missing", "images[1]", 1, &f, &err), DETLOSS_ERR_MISSING);
  assert_string_equal(err.where, "images[1].missing");
  f = 7;
  assert_int_equal(dlj_float(c, "missing", "", 0, &f, &err), DETLOSS_OK);
  assert_true(f == 7.0f); /* optional: default kept */
  long long v;
  assert_int_equal(dlj_int(c, "n", "", 1, 0, 10, &v, &err), DETLOSS_ERR_TYPE);
  float *rows;
  size_t n;
  assert_int_equal(dlj_boxes(c, "r", "images[1]", 1, &rows, &n, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "images[1].r[1]");
  assert_string_equal(err.msg, "expected 4 numbers, got 3");
  int64_t *ints;
  assert_int_equal(dlj_int_array(c, "i", "", 1, 0, 9, &ints, &n, &err), DETLOSS_ERR_TYPE);
  assert_string_equal(err.where, "i[1]");
  assert_int_equal(dlj_tensor_get(c, "t", "", 1, &t, &err), DETLOSS_OK);
  assert_int_equal(t.ndim, 3);
  assert_int_equal(t.count, 1);
  assert_true(t.data[0] == 1.0f);
  dlj_tensor_free(&t);
  const char *allowed[] = {"a", "b", "n", "r", "i", "tt", NULL};
  assert_int_equal(dlj_check_keys(c, "cfg", allowed, &err), DETLOSS_ERR_UNKNOWN);
  assert_string_equal(err.where, "cfg.t");
  assert_string_equal(err.msg, "unknown key (did you mean 'tt'?)");
  cJSON_Delete(c);
}

static void one_case_gives_one_object_and_an_array_gives_an_array(void **state) {
  (void)state;
  detloss_error err;
  /* [0,0,2,2] vs [1,1,3,3]: I = 1, U = 7: IoU = 1/7 = 0.142857143 */
  char *out = compute("{\"op\":\"iou\",\"boxes1\":[[0,0,2,2]],\"boxes2\":[[1,1,3,3]]}",
                      DETLOSS_OK, &err);
  assert_string_equal(out, "{\"op\":\"iou\",\"matrix\":[[0.142857149]]}\n");
  detloss_free(out);
  out = compute("[{\"op\":\"iou\",\"kind\":\"iou\",\"boxes1\":[],\"boxes2\":[]},"
                "{\"op\":\"encode\",\"anchors\":[[0,0,16,16]],\"boxes\":[[0,0,16,16]]}]",
                DETLOSS_OK, &err);
  assert_string_equal(out, "[{\"op\":\"iou\",\"kind\":\"iou\",\"matrix\":[]},"
                           "{\"op\":\"encode\",\"deltas\":[[0,0,0,0]]}]\n");
  detloss_free(out);
  out = compute("[]", DETLOSS_OK, &err);
  assert_string_equal(out, "[]\n");
  detloss_free(out);
}

static void a_bad_case_anywhere_fails_the_whole_run(void **state) {
  (void)state;
  detloss_error err;
  compute("[{\"op\":\"iou\",\"boxes1\":[],\"boxes2\":[]}, {\"op\":\"iou\",\"boxes1\":[[0,0,1]],"
          "\"boxes2\":[]}]",
          DETLOSS_ERR_SHAPE, &err);
  assert_string_equal(err.where, "[1].boxes1[0]");
  compute("[1]", DETLOSS_ERR_TYPE, &err);
  assert_string_equal(err.where, "[0]");
  compute("{\"op\": 3}", DETLOSS_ERR_TYPE, &err);
  assert_string_equal(err.where, "op");
  compute("{\"op\":\"decode\",\"anchors\":[[0,0,1,1]],\"deltas\":[[0,0,0,0]],\"clip\":-1}",
          DETLOSS_ERR_RANGE, &err);
  assert_string_equal(err.where, "clip");
  compute("{\"op\":\"iou\",\n\"boxes1\": [1,,2]}", DETLOSS_ERR_PARSE, &err);
  assert_string_equal(err.where, "line 2, column 14");
  compute("{\"op\":\"iou\"", DETLOSS_ERR_PARSE, &err);
  assert_string_equal(err.msg, "JSON syntax error: unexpected end of input");
  /* library errors are prefixed with the case path */
  compute("[{\"op\":\"encode\",\"anchors\":[[0,0,1,1],[0,0,0,1]],\"boxes\":[[0,0,1,1],[0,0,1,1]]}]",
          DETLOSS_ERR_RANGE, &err);
  assert_string_equal(err.where, "[0].anchors[1]");
}

static void deep_nesting_is_rejected_without_recursion_blowup(void **state) {
  (void)state;
  /* cJSON limits nesting (CJSON_NESTING_LIMIT = 1000): 100000 brackets are
   * a syntax error, not a stack overflow. */
  size_t depth = 100000;
  char *text = malloc(depth + 1);
  memset(text, '[', depth);
  text[depth] = '\0';
  detloss_error err;
  char *out = NULL;
  assert_int_equal(detloss_compute_json(text, depth, &out, NULL, NULL, &err), DETLOSS_ERR_PARSE);
  assert_null(out);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(writer_uses_nine_significant_digits_and_no_negative_zero),
      cmocka_unit_test(reader_reports_the_json_path_of_each_fault),
      cmocka_unit_test(one_case_gives_one_object_and_an_array_gives_an_array),
      cmocka_unit_test(a_bad_case_anywhere_fails_the_whole_run),
      cmocka_unit_test(deep_nesting_is_rejected_without_recursion_blowup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
