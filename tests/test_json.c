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

/* ---- limits (issue 13 A2), integers (A3), non-finite results (A6) ---- */

static detloss_status compute_lim(const char *text, const detloss_json_limits *lim, char **out,
                                  detloss_error *err) {
  detloss_compute_options o = DETLOSS_COMPUTE_OPTIONS_INIT;
  o.limits = lim;
  *out = (char *)"untouched";
  return detloss_compute_json(text, strlen(text), out, NULL, &o, err);
}

static void json_limits_have_the_documented_defaults(void **state) {
  (void)state;
  detloss_json_limits d = detloss_json_limits_default(), i = DETLOSS_JSON_LIMITS_INIT;
  assert_int_equal(d.max_input_bytes, (size_t)1 << 30);         /* 1 GiB, as the README says */
  assert_int_equal(d.max_output_numbers, (size_t)16777216);     /* 2^24 */
  assert_int_equal(d.max_anchors, (size_t)134217728);           /* 2^27 */
  assert_true(d.max_image_side == 100000.0);
  assert_memory_equal(&d, &i, sizeof d);
  detloss_compute_options o = DETLOSS_COMPUTE_OPTIONS_INIT;
  assert_null(o.limits); /* NULL = the defaults */
}

/* iou_hand: boxes1 2 rows, boxes2 4 rows -> a 2 x 4 matrix = 8 numbers. */
#define IOU_2X4 \
  "{\"op\":\"iou\",\"boxes1\":[[0,0,10,10],[0,0,4,2]],\"boxes2\":[[5,5,15,15],[20,0,30,20]," \
  "[1,1,3,5],[5,5,5,5]]}"

static void a_result_past_max_output_numbers_is_refused_before_it_runs(void **state) {
  (void)state;
  detloss_json_limits lim = {0, 7, 0, 0.0}; /* 0 fields: the defaults */
  detloss_error err;
  char *out;
  assert_int_equal(compute_lim(IOU_2X4, &lim, &out, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(out, "untouched");
  assert_string_equal(err.where, "boxes2");
  assert_string_equal(err.msg, "a 2 x 4 matrix would return 8 numbers, more than the limit "
                               "max_output_numbers = 7");
  lim.max_output_numbers = 8; /* exactly the limit is fine */
  assert_int_equal(compute_lim(IOU_2X4, &lim, &out, &err), DETLOSS_OK);
  detloss_free(out);
  /* 4096 x 8192 cells x 1 anchor = 2^25 anchors = 2^27 numbers: the 116-byte case that
   * printed 720 MB is refused by the default 2^24. */
  assert_int_equal(compute_lim("{\"op\":\"anchors\",\"image_size\":[4096,8192],\"feature_maps\":"
                               "[[4096,8192]],\"sizes\":[[32]],\"aspect_ratios\":[[1]]}",
                               NULL, &out, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "feature_maps");
  assert_non_null(strstr(err.msg, "134217728 numbers, more than the limit max_output_numbers = "
                                  "16777216"));
}

static void anchors_and_image_sides_past_their_limits_are_refused(void **state) {
  (void)state;
  detloss_error err;
  char *out;
  /* 3 x 5 cells x (2 sizes x 1 ratio) = 30 anchors */
  const char *c30 = "[{\"op\":\"anchors\",\"image_size\":[30,50],\"feature_maps\":[[3,5]],"
                    "\"sizes\":[[8,16]],\"aspect_ratios\":[[1]]}]";
  detloss_json_limits lim = {0, 0, 29, 0.0};
  assert_int_equal(compute_lim(c30, &lim, &out, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "[0].feature_maps");
  assert_string_equal(err.msg, "would generate 30 anchors, more than the limit max_anchors = 29");
  lim.max_anchors = 30;
  assert_int_equal(compute_lim(c30, &lim, &out, &err), DETLOSS_OK);
  detloss_free(out);
  lim.max_image_side = 49.0; /* image_size [30, 50]: the width is 1 px too wide */
  assert_int_equal(compute_lim(c30, &lim, &out, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "[0].image_size[1]");
  assert_string_equal(err.msg, "50 px is above the limit max_image_side = 49");
}

static void input_past_max_input_bytes_is_refused(void **state) {
  (void)state;
  detloss_json_limits lim = {sizeof IOU_2X4 - 2, 0, 0, 0.0}; /* one byte short */
  detloss_error err;
  char *out;
  assert_int_equal(compute_lim(IOU_2X4, &lim, &out, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "(input)");
  assert_string_equal(out, "untouched");
  lim.max_input_bytes++;
  assert_int_equal(compute_lim(IOU_2X4, &lim, &out, &err), DETLOSS_OK);
  detloss_free(out);
}

static void stream_reader_stops_at_max_bytes_plus_one(void **state) {
  (void)state;
  FILE *f = tmpfile();
  assert_non_null(f);
  for (int i = 0; i < 100; i++) fputc('x', f);
  char *text = NULL;
  size_t len = 0;
  detloss_error err;
  rewind(f);
  assert_int_equal(dlj_read_stream(f, "t", 100, &text, &len, &err), DETLOSS_OK);
  assert_int_equal(len, 100);
  assert_int_equal(text[100], '\0');
  free(text);
  rewind(f);
  text = NULL;
  assert_int_equal(dlj_read_stream(f, "t", 99, &text, &len, &err), DETLOSS_ERR_RANGE);
  assert_null(text);
  assert_string_equal(err.where, "t");
  assert_string_equal(err.msg, "the input is larger than the limit max_input_bytes = 99");
  fclose(f);
}

static void integer_fields_out_of_range_are_errors_not_casts(void **state) {
  (void)state;
  cJSON *o = cJSON_Parse("{\"p\":9223372036854775808,\"n\":-1e300,\"e\":9007199254740992,"
                         "\"f\":2.5,\"h\":1e300}");
  assert_non_null(o);
  long long v = 7;
  detloss_error err;
  /* 2^63 does not fit long long: the cast was undefined behaviour */
  assert_int_equal(dlj_int(o, "p", "", 1, 0, INT64_MAX, &v, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "p");
  assert_string_equal(err.msg, "9.22337203685478e+18 is outside [0, 9007199254740992]");
  assert_int_equal(dlj_int(o, "n", "", 1, INT64_MIN, INT64_MAX, &v, &err), DETLOSS_ERR_RANGE);
  assert_int_equal(dlj_int(o, "h", "", 1, INT64_MIN, INT64_MAX, &v, &err), DETLOSS_ERR_RANGE);
  assert_int_equal(v, 7); /* untouched */
  assert_int_equal(dlj_int(o, "f", "", 1, INT64_MIN, INT64_MAX, &v, &err), DETLOSS_ERR_TYPE);
  /* 2^53, the largest integer a double holds exactly, is accepted */
  assert_int_equal(dlj_int(o, "e", "", 1, INT64_MIN, INT64_MAX, &v, &err), DETLOSS_OK);
  assert_true(v == 9007199254740992LL);
  cJSON_Delete(o);
  char *out;
  compute("{\"op\":\"rpn_loss\",\"config\":{\"seed\":9223372036854775808},\"images\":[{\"anchors\":"
          "[[0,0,10,10]],\"gt\":[[0,0,10,10]],\"objectness\":[0],\"deltas\":[[0,0,0,0]]}]}",
          DETLOSS_ERR_RANGE, &err);
  assert_string_equal(err.where, "config.seed");
  (void)out;
}

static void a_non_finite_result_is_a_range_error_naming_the_element(void **state) {
  (void)state;
  detloss_error err;
  /* size 3e38 with ratio 0.5: w = 3e38 / sqrt(0.5) = 4.2e38 > FLT_MAX, so x1 = -inf;
   * it was written as null with status 0. */
  compute("[{\"op\":\"iou\",\"boxes1\":[[0,0,1,1]],\"boxes2\":[[0,0,1,1]]},"
          "{\"op\":\"anchors\",\"image_size\":[32,32],\"feature_maps\":[[1,1]],"
          "\"sizes\":[[3e38]],\"aspect_ratios\":[[0.5]]}]",
          DETLOSS_ERR_RANGE, &err);
  assert_string_equal(err.where, "[1].anchors[0][0]");
  assert_string_equal(err.msg, "result is not finite (op anchors: the finite input overflows "
                               "float32)");
}

static void nonfinite_finder_ignores_strings_and_names_the_first_null(void **state) {
  (void)state;
  char where[DETLOSS_WHERE_MAX];
  const char *ok = "{\"op\":\"null\",\"a\":[1,2]}";
  assert_int_equal(dlj_find_nonfinite(ok, strlen(ok), where, sizeof where), 0);
  const char *bad = "{\"op\":\"x\",\"m\":[[1,2],[3,null]],\"k\":null}";
  assert_int_equal(dlj_find_nonfinite(bad, strlen(bad), where, sizeof where), 1);
  assert_string_equal(where, "m[1][1]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(writer_uses_nine_significant_digits_and_no_negative_zero),
      cmocka_unit_test(reader_reports_the_json_path_of_each_fault),
      cmocka_unit_test(one_case_gives_one_object_and_an_array_gives_an_array),
      cmocka_unit_test(a_bad_case_anywhere_fails_the_whole_run),
      cmocka_unit_test(deep_nesting_is_rejected_without_recursion_blowup),
      cmocka_unit_test(json_limits_have_the_documented_defaults),
      cmocka_unit_test(a_result_past_max_output_numbers_is_refused_before_it_runs),
      cmocka_unit_test(anchors_and_image_sides_past_their_limits_are_refused),
      cmocka_unit_test(input_past_max_input_bytes_is_refused),
      cmocka_unit_test(stream_reader_stops_at_max_bytes_plus_one),
      cmocka_unit_test(integer_fields_out_of_range_are_errors_not_casts),
      cmocka_unit_test(a_non_finite_result_is_a_range_error_naming_the_element),
      cmocka_unit_test(nonfinite_finder_ignores_strings_and_names_the_first_null),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
