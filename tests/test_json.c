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
  assert_string_equal(b.p,
                      "{\"third\":0.333333343,\"negzero\":0,\"nan\":null,\"big\":1234567890123,"
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
  cJSON *c = cJSON_Parse(
      "{\"a\": [[1,2],[3]], \"b\": \"x\", \"n\": 2.5, \"r\": [[1,2,3,4],[1,2,3]],"
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
  char *out =
      compute("{\"op\":\"iou\",\"boxes1\":[[0,0,2,2]],\"boxes2\":[[1,1,3,3]]}", DETLOSS_OK, &err);
  assert_string_equal(out, "{\"op\":\"iou\",\"matrix\":[[0.142857149]]}\n");
  detloss_free(out);
  out = compute(
      "[{\"op\":\"iou\",\"kind\":\"iou\",\"boxes1\":[],\"boxes2\":[]},"
      "{\"op\":\"encode\",\"anchors\":[[0,0,16,16]],\"boxes\":[[0,0,16,16]]}]",
      DETLOSS_OK, &err);
  assert_string_equal(out,
                      "[{\"op\":\"iou\",\"kind\":\"iou\",\"matrix\":[]},"
                      "{\"op\":\"encode\",\"deltas\":[[0,0,0,0]]}]\n");
  detloss_free(out);
  out = compute("[]", DETLOSS_OK, &err);
  assert_string_equal(out, "[]\n");
  detloss_free(out);
}

static void a_bad_case_anywhere_fails_the_whole_run(void **state) {
  (void)state;
  detloss_error err;
  compute(
      "[{\"op\":\"iou\",\"boxes1\":[],\"boxes2\":[]}, {\"op\":\"iou\",\"boxes1\":[[0,0,1]],"
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

/* Compute with an explicit length (the text may hold NUL bytes). */
static void expect_parse_error(const char *text, size_t len, const char *where, const char *msg) {
  detloss_error err;
  char *out = (char *)"untouched";
  memset(&err, 0, sizeof err);
  detloss_status st = detloss_compute_json(text, len, &out, NULL, NULL, &err);
  if (st != DETLOSS_ERR_PARSE || strcmp(err.where, where) != 0 || strcmp(err.msg, msg) != 0) {
    print_error("input %s: got status %d, '%s: %s'; expected '%s: %s'\n", text, (int)st, err.where,
                err.msg, where, msg);
    fail();
  }
  assert_string_equal(out, "untouched");
}
#define EXPECT_PARSE(lit, where, msg) expect_parse_error(lit, sizeof(lit) - 1, where, msg)

static void invalid_json_is_a_syntax_error_never_out_of_memory(void **state) {
  (void)state;
  /* `{"op":"iou","kind":"` is 20 bytes: the string's content starts at column 21. */
  EXPECT_PARSE("{\"op\":\"iou\",\"kind\":\"\\ud800\",\"boxes1\":[],\"boxes2\":[]}",
               "line 1, column 21",
               "JSON syntax error: unpaired UTF-16 surrogate (a high surrogate without a low one)");
  EXPECT_PARSE("{\"op\":\"iou\",\"kind\":\"\\udc00\",\"boxes1\":[],\"boxes2\":[]}",
               "line 1, column 21",
               "JSON syntax error: unpaired UTF-16 surrogate (a low surrogate first)");
  EXPECT_PARSE("{\"op\":\"iou\",\"kind\":\"\\ud800\\u0041\"}", "line 1, column 21",
               "JSON syntax error: unpaired UTF-16 surrogate (a high surrogate without a low one)");
  EXPECT_PARSE("{\"op\":\"iou\",\"kind\":\"\\ud800\\ud800\"}", "line 1, column 21",
               "JSON syntax error: unpaired UTF-16 surrogate (a high surrogate without a low one)");
  EXPECT_PARSE("[\"\\u12\"]", "line 1, column 3",
               "JSON syntax error: invalid \\u escape (expected 4 hex digits)");
  EXPECT_PARSE("[\"\\u12", "line 1, column 7", "JSON syntax error: unexpected end of input");
  EXPECT_PARSE("[\"\\u0000\"]", "line 1, column 3",
               "JSON syntax error: \\u0000 (NUL) is not supported in strings");
  EXPECT_PARSE("[\"a\tb\"]", "line 1, column 4",
               "JSON syntax error: control character in a string (escape it)");
  EXPECT_PARSE("[\"\\x\"]", "line 1, column 3", "JSON syntax error: invalid escape in a string");
  /* 64 digits: longer than cJSON's 63-character number buffer */
  EXPECT_PARSE("[1234567890123456789012345678901234567890123456789012345678901234]",
               "line 1, column 2", "JSON syntax error: number longer than 63 characters");
  EXPECT_PARSE("[01]", "line 1, column 3", "JSON syntax error: expected ',' or ']'");
  EXPECT_PARSE("[1.]", "line 1, column 4", "JSON syntax error: invalid number");
  EXPECT_PARSE("{\"a\" 1}", "line 1, column 6", "JSON syntax error: expected ':'");
  EXPECT_PARSE("{\"a\":1,}", "line 1, column 8", "JSON syntax error: expected a string key");
  EXPECT_PARSE("[tru", "line 1, column 5", "JSON syntax error: unexpected end of input");
  EXPECT_PARSE("", "line 1, column 1", "JSON syntax error: unexpected end of input");
  EXPECT_PARSE(" \n ", "line 2, column 2", "JSON syntax error: unexpected end of input");

  /* Nesting: 1000 levels parse (then fail as a case), 1001 are a syntax error at the
   * 1001st bracket, opened and closed or not. */
  for (size_t depth = 1000; depth <= 1001; depth++) {
    char *text = malloc(2 * depth + 1);
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    text[2 * depth] = '\0';
    detloss_error err;
    char *out = NULL;
    detloss_status st = detloss_compute_json(text, 2 * depth, &out, NULL, NULL, &err);
    if (depth == 1000) {
      assert_int_equal(st, DETLOSS_ERR_TYPE);
      assert_string_equal(err.where, "[0]");
    } else {
      assert_int_equal(st, DETLOSS_ERR_PARSE);
      assert_string_equal(err.where, "line 1, column 1001");
      assert_string_equal(err.msg, "JSON syntax error: nested deeper than 1000 levels");
    }
    free(text);
  }
}

static void nul_bytes_and_invalid_utf8_are_syntax_errors_at_their_column(void **state) {
  (void)state;
  /* A valid case followed by a NUL and more text: the NUL (column 37) is the error,
   * not the end of the input. */
  EXPECT_PARSE("{\"op\":\"iou\",\"boxes1\":[],\"boxes2\":[]}\0{\"op\":\"x\"}", "line 1, column 37",
               "JSON syntax error: NUL byte in the input");
  EXPECT_PARSE("[\"a\0b\"]", "line 1, column 4", "JSON syntax error: NUL byte in the input");
  EXPECT_PARSE("[1,\0]", "line 1, column 4", "JSON syntax error: NUL byte in the input");
  /* Ill-formed UTF-8 (RFC 3629), each at the first byte of the bad sequence, column 3. */
  static const char *const bad[] = {
      "[\"\xff\"]",             /* a byte >= 0xF5 */
      "[\"\xf5\x80\x80\x80\"]", /* lead byte above U+10FFFF */
      "[\"\xf4\x90\x80\x80\"]", /* U+110000 */
      "[\"\xc0\x80\"]",         /* overlong NUL */
      "[\"\xc1\xbf\"]",         /* overlong */
      "[\"\xe0\x80\xaf\"]",     /* overlong '/' */
      "[\"\xf0\x80\x80\xaf\"]", /* overlong '/' */
      "[\"\xed\xa0\x80\"]",     /* U+D800 encoded in UTF-8 */
      "[\"\xed\xbf\xbf\"]",     /* U+DFFF encoded in UTF-8 */
      "[\"\xe2\x82\"]",         /* truncated euro sign */
      "[\"\x80\"]",             /* a stray continuation byte */
      "[\"\xc3(\"]",            /* a lead byte without its continuation */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_parse_error(bad[i], strlen(bad[i]), "line 1, column 3",
                       "JSON syntax error: invalid UTF-8 in a string");
  /* Columns count characters: after "é€" (2 characters, 5 bytes) the bad byte is column 5. */
  EXPECT_PARSE("[\"\xc3\xa9\xe2\x82\xac\xff\"]", "line 1, column 5",
               "JSON syntax error: invalid UTF-8 in a string");
  /* Well-formed UTF-8 and a leading byte-order mark are accepted: the case fails only on
   * its kind, whose name comes back intact. */
  detloss_error err;
  compute(
      "\xef\xbb\xbf{\"op\":\"iou\",\"kind\":\"h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\","
      "\"boxes1\":[],\"boxes2\":[]}",
      DETLOSS_ERR_UNKNOWN, &err);
  assert_string_equal(err.msg,
                      "unknown kind 'h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80' (expected iou, giou, "
                      "diou or ciou)");
  /* A byte-order mark followed by a short value (cJSON skips a mark only when two more
   * bytes follow it; found by the config fuzzer as "out of memory"): the mark and "6" is a
   * bare number, not a case object; the mark and "[]" is an empty run, "[]\n". */
  compute(
      "\xef\xbb\xbf"
      "6",
      DETLOSS_ERR_TYPE, &err);
  assert_string_equal(err.where, "(root)");
  char *bom_out = compute("\xef\xbb\xbf[]", DETLOSS_OK, &err);
  assert_string_equal(bom_out, "[]\n");
  detloss_free(bom_out);
  /* A surrogate pair is one character. */
  char *out = compute("[]", DETLOSS_OK, &err);
  detloss_free(out);
  compute("{\"op\":\"iou\",\"kind\":\"\\ud83d\\ude00\",\"boxes1\":[],\"boxes2\":[]}",
          DETLOSS_ERR_UNKNOWN, &err);
  assert_string_equal(err.msg,
                      "unknown kind '\xf0\x9f\x98\x80' (expected iou, giou, diou or ciou)");
}

static void duplicate_keys_are_errors_naming_their_path(void **state) {
  (void)state;
  detloss_error err;
  compute("{\"op\":\"iou\",\"boxes1\":[],\"boxes2\":[],\"op\":\"giou\"}", DETLOSS_ERR_PARSE, &err);
  assert_string_equal(err.where, "op");
  assert_string_equal(err.msg, "duplicate key");
  compute(
      "[{\"op\":\"iou\",\"boxes1\":[],\"boxes2\":[]},"
      "{\"op\":\"loss\",\"loss\":\"sigmoid_focal\",\"params\":{\"gamma\":1,\"gamma\":2}}]",
      DETLOSS_ERR_PARSE, &err);
  assert_string_equal(err.where, "[1].params.gamma");
  compute("{\"op\":\"rpn_loss\",\"images\":[{},{\"gt\":[],\"anchors\":[],\"gt\":[]}]}",
          DETLOSS_ERR_PARSE, &err);
  assert_string_equal(err.where, "images[1].gt");
  /* A large object is checked by sorting: 40 distinct keys, then the 7th again. */
  char text[1024];
  size_t n = (size_t)snprintf(text, sizeof text, "{");
  for (int k = 0; k < 40; k++)
    n += (size_t)snprintf(text + n, sizeof text - n, "\"k%d\":%d,", k, k);
  snprintf(text + n, sizeof text - n, "\"k6\":0}");
  compute(text, DETLOSS_ERR_PARSE, &err);
  assert_string_equal(err.where, "k6");
  /* Same key text in different objects is fine. */
  char *out = compute(
      "[{\"op\":\"iou\",\"boxes1\":[],\"boxes2\":[]},{\"op\":\"iou\",\"boxes1\":[],"
      "\"boxes2\":[]}]",
      DETLOSS_OK, &err);
  detloss_free(out);
}

static void error_messages_stay_on_one_line(void **state) {
  (void)state;
  detloss_error err;
  /* "\n" and ESC decoded from the JSON strings become '?' in where and msg */
  compute("{\"op\":\"io\\nu\\u001b[31m\"}", DETLOSS_ERR_UNKNOWN, &err);
  assert_string_equal(err.msg,
                      "unknown op 'io?u?[31m' (expected iou, encode, decode, anchors, "
                      "match, loss, embedding_loss, rpn_loss, retina_loss, anchor_eval, assign, "
                      "fcos_loss, yolov8_loss, detr_loss)");
  compute("{\"op\":\"iou\",\"boxes1\":[],\"boxes2\":[],\"a\\nb\":1}", DETLOSS_ERR_UNKNOWN, &err);
  assert_string_equal(err.where, "a?b");
}

/* Runs text and expects an error at where with exactly msg. */
static void expect_error(const char *text, detloss_status want, const char *where,
                         const char *msg) {
  detloss_error err;
  memset(&err, 0, sizeof err);
  char *out = (char *)"untouched";
  detloss_status st = detloss_compute_json(text, strlen(text), &out, NULL, NULL, &err);
  if (st != want || strcmp(err.where, where) != 0 || strcmp(err.msg, msg) != 0) {
    print_error("input %s:\n  got status %d, '%s: %s'\n  expected %d, '%s: %s'\n", text, (int)st,
                err.where, err.msg, (int)want, where, msg);
    fail();
  }
  assert_string_equal(out, "untouched");
}

static void unknown_keys_anywhere_in_a_case_are_errors(void **state) {
  (void)state;
  const detloss_status U = DETLOSS_ERR_UNKNOWN;
  /* A typo of "kind" used to compute plain IoU silently. */
  expect_error("{\"op\":\"iou\",\"kidn\":\"giou\",\"boxes1\":[[0,0,1,1]],\"boxes2\":[[0,0,2,2]]}",
               U, "kidn", "unknown key (did you mean 'kind'?)");
  /* Top level of every op (in an array: the case index leads the path). */
  expect_error("[{\"op\":\"encode\",\"anchors\":[],\"boxes\":[],\"weight\":[1,1,1,1]}]", U,
               "[0].weight", "unknown key (did you mean 'weights'?)");
  expect_error("{\"op\":\"decode\",\"anchors\":[],\"deltas\":[],\"clamp\":1}", U, "clamp",
               "unknown key (did you mean 'clip'?)");
  expect_error("{\"op\":\"encode\",\"anchors\":[],\"boxes\":[],\"clip\":1}", U, "clip",
               "unknown key");
  expect_error(
      "{\"op\":\"anchors\",\"image_size\":[8,8],\"feature_maps\":[[1,1]],\"sizes\":[[8]],"
      "\"aspect_ratios\":[[1]],\"ofset\":0}",
      U, "ofset", "unknown key (did you mean 'offset'?)");
  expect_error("{\"op\":\"match\",\"anchors\":[],\"gt\":[],\"hihg\":0.5}", U, "hihg",
               "unknown key (did you mean 'high'?)");
  expect_error("{\"op\":\"loss\",\"loss\":\"l1\",\"input\":[1],\"target\":[1],\"reduce\":\"sum\"}",
               U, "reduce", "unknown key");
  expect_error("{\"op\":\"loss\",\"loss\":\"giou_loss\",\"input\":[],\"target\":[],\"grads\":true}",
               U, "grads", "unknown key (did you mean 'grad'?)");
  expect_error(
      "{\"op\":\"embedding_loss\",\"loss\":\"triplet_margin\",\"x1\":[[1]],\"x2\":[[1]],"
      "\"x3\":[[1]],\"x4\":[[1]]}",
      U, "x4", "unknown key (did you mean 'x1'?)");
  expect_error("{\"op\":\"rpn_loss\",\"images\":[],\"confg\":{}}", U, "confg",
               "unknown key (did you mean 'config'?)");
  expect_error("{\"op\":\"retina_loss\",\"images\":[],\"kind\":\"x\"}", U, "kind", "unknown key");
  expect_error("{\"op\":\"anchor_eval\",\"dataset\":{},\"anchors\":[],\"metrc\":\"iou\"}", U,
               "metrc", "unknown key (did you mean 'metric'?)");
  /* Keys that belong to another kind of the same op. */
  expect_error(
      "{\"op\":\"embedding_loss\",\"loss\":\"contrastive\",\"x1\":[[1]],\"x2\":[[1]],"
      "\"target\":[1],\"x3\":[[1]]}",
      U, "x3", "unknown key for loss 'contrastive' (only triplet_margin takes x3)");
  expect_error(
      "{\"op\":\"embedding_loss\",\"loss\":\"triplet_margin\",\"x1\":[[1]],\"x2\":[[1]],"
      "\"x3\":[[1]],\"target\":[1]}",
      U, "target", "unknown key for loss 'triplet_margin' (triplet_margin takes x3, not target)");
  expect_error(
      "{\"op\":\"loss\",\"loss\":\"l1\",\"input\":[1],\"target\":[1],\"params\":{\"beta\":1}}", U,
      "params.beta", "unknown key");
  /* Nested objects: images[i], config, matcher, dataset (+ its images), anchor_config
   * (+ its levels). */
  const char *img = "{\"anchors\":[],\"gt\":[],\"deltas\":[],\"objectness\":[]";
  char t[1024];
  snprintf(t, sizeof t, "{\"op\":\"rpn_loss\",\"images\":[%s},%s,\"is_crowed\":[]}]}", img, img);
  expect_error(t, U, "images[1].is_crowed", "unknown key (did you mean 'is_crowd'?)");
  snprintf(t, sizeof t, "{\"op\":\"rpn_loss\",\"images\":[%s,\"labels\":[]}]}", img);
  expect_error(t, U, "images[0].labels", "unknown key");
  expect_error(
      "{\"op\":\"retina_loss\",\"images\":[{\"anchors\":[],\"gt\":[],\"deltas\":[],"
      "\"cls_logits\":[],\"objectness\":[]}],\"config\":{\"num_classes\":2}}",
      U, "images[0].objectness", "unknown key");
  expect_error("{\"op\":\"rpn_loss\",\"images\":[],\"config\":{\"fg_iou_tresh\":0.5}}", U,
               "config.fg_iou_tresh", "unknown key (did you mean 'fg_iou_thresh'?)");
  const char *ds = "\"dataset\":{\"images\":[{\"width\":8,\"height\":8,\"boxes\":[[0,0,4,4]]}]}";
  snprintf(t, sizeof t,
           "{\"op\":\"anchor_eval\",%s,\"anchors\":[[0,0,4,4]],\"matcher\":{\"lo\":0.1}}", ds);
  expect_error(t, U, "matcher.lo", "unknown key (did you mean 'low'?)");
  expect_error(
      "{\"op\":\"anchor_eval\",\"dataset\":{\"images\":[{\"width\":8,\"height\":8,"
      "\"boxes\":[],\"boxs\":[]}]},\"anchors\":[[0,0,4,4]]}",
      U, "dataset.images[0].boxs", "unknown key (did you mean 'boxes'?)");
  expect_error(
      "{\"op\":\"anchor_eval\",\"dataset\":{\"images\":[{\"width\":8,\"height\":8,"
      "\"boxes\":[]}],\"nmae\":\"x\"},\"anchors\":[[0,0,4,4]]}",
      U, "dataset.nmae", "unknown key (did you mean 'name'?)");
  snprintf(t, sizeof t,
           "{\"op\":\"anchor_eval\",%s,\"anchor_config\":{\"strides\":[8],"
           "\"sizes\":[[8]],\"aspect_ratio\":[1]}}",
           ds);
  expect_error(t, U, "anchor_config.aspect_ratio", "unknown key (did you mean 'aspect_ratios'?)");
  snprintf(t, sizeof t,
           "{\"op\":\"anchor_eval\",%s,\"anchor_config\":{\"levels\":[{\"stride\":8,"
           "\"sizes\":[8],\"aspect_ratios\":[1],\"strid\":8}]}}",
           ds);
  expect_error(t, U, "anchor_config.levels[0].strid", "unknown key (did you mean 'stride'?)");
  /* The full key set of each op still runs. */
  snprintf(t, sizeof t,
           "{\"op\":\"anchor_eval\",%s,\"anchors\":[[0,0,4,4]],\"metric\":\"iou\","
           "\"iou_thresh\":0.5,\"ratio_thresh\":4,\"resize_long_side\":8,\"resize_min_size\":8,"
           "\"worst\":1,\"matcher\":{\"high\":0.7,\"low\":0.3,\"allow_low_quality\":true,"
           "\"low_quality_min_iou\":0,\"semantics\":\"torchvision\"}}",
           ds);
  detloss_error err;
  char *out = compute(t, DETLOSS_OK, &err);
  detloss_free(out);
  out = compute(
      "{\"op\":\"match\",\"anchors\":[[0,0,1,1]],\"gt\":[[0,0,1,1]],\"high\":0.7,"
      "\"low\":0.3,\"allow_low_quality\":true,\"low_quality_min_iou\":0,"
      "\"semantics\":\"mmdet\",\"gt_max_assign_all\":true,\"is_crowd\":[0],"
      "\"crowd_ioa_thresh\":0.7,\"allowed_border\":0,\"image_size\":[8,8]}",
      DETLOSS_OK, &err);
  detloss_free(out);
}

static void ragged_and_mixed_arrays_name_the_first_bad_element(void **state) {
  (void)state;
  /* [[], 5] used to pass as an empty [2][0] tensor. */
  expect_error("{\"op\":\"loss\",\"loss\":\"l1\",\"input\":[[],5],\"target\":[[],5]}",
               DETLOSS_ERR_TYPE, "input[1]", "expected an array of 0 elements, got a number");
  expect_error("{\"op\":\"loss\",\"loss\":\"l1\",\"input\":[[],[1]],\"target\":[[],[1]]}",
               DETLOSS_ERR_SHAPE, "input[1]", "expected 0 numbers, got 1");
  expect_error("{\"op\":\"loss\",\"loss\":\"l1\",\"input\":[[[],[]],[[],[\"a\"]]],\"target\":[]}",
               DETLOSS_ERR_SHAPE, "input[1][1]", "expected 0 numbers, got 1");
  expect_error("{\"op\":\"loss\",\"loss\":\"mse\",\"input\":[[1,2],[3]],\"target\":[[1,2],[3]]}",
               DETLOSS_ERR_SHAPE, "input[1]", "expected 2 numbers, got 1");
  expect_error("{\"op\":\"loss\",\"loss\":\"mse\",\"input\":[1,[2]],\"target\":[1,2]}",
               DETLOSS_ERR_TYPE, "input[1]", "expected a number, got an array");
  expect_error("{\"op\":\"loss\",\"loss\":\"mse\",\"input\":[1,2],\"target\":[\"1\",\"2\"]}",
               DETLOSS_ERR_TYPE, "target[0]", "expected a number, got a string");
  expect_error("{\"op\":\"iou\",\"boxes1\":[[0,0,1,1],[0,0,1]],\"boxes2\":[]}", DETLOSS_ERR_SHAPE,
               "boxes1[1]", "expected 4 numbers, got 3");
  expect_error("{\"op\":\"iou\",\"boxes1\":[[0,0,1,\"1\"]],\"boxes2\":[]}", DETLOSS_ERR_TYPE,
               "boxes1[0][3]", "expected a number, got a string");
  expect_error("{\"op\":\"match\",\"anchors\":[],\"gt\":[],\"is_crowd\":[[0]]}", DETLOSS_ERR_TYPE,
               "is_crowd[0]", "expected a number, got an array");
  expect_error(
      "{\"op\":\"anchors\",\"image_size\":[8,8],\"feature_maps\":[[1,1]],\"sizes\":[[8,[8]]],"
      "\"aspect_ratios\":[[1]]}",
      DETLOSS_ERR_TYPE, "sizes[0][1]", "expected a number, got an array");
  expect_error(
      "{\"op\":\"retina_loss\",\"images\":[{\"anchors\":[[0,0,1,1]],\"gt\":[],\"deltas\":"
      "[[0,0,0,0]],\"cls_logits\":[[1],5]}]}",
      DETLOSS_ERR_TYPE, "images[0].cls_logits[1]", "expected an array of 1 elements, got a number");
}

/* Limits, integer ranges and non-finite results. */

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
  assert_int_equal(d.max_input_bytes, (size_t)1 << 30);     /* 1 GiB, as the README says */
  assert_int_equal(d.max_output_numbers, (size_t)16777216); /* 2^24 */
  assert_int_equal(d.max_anchors, (size_t)134217728);       /* 2^27 */
  assert_true(d.max_image_side == 100000.0);
  assert_memory_equal(&d, &i, sizeof d);
  detloss_compute_options o = DETLOSS_COMPUTE_OPTIONS_INIT;
  assert_null(o.limits); /* NULL = the defaults */
}

/* iou_hand: boxes1 2 rows, boxes2 4 rows -> a 2 x 4 matrix = 8 numbers. */
#define IOU_2X4                                                                                    \
  "{\"op\":\"iou\",\"boxes1\":[[0,0,10,10],[0,0,4,2]],\"boxes2\":[[5,5,15,15],[20,0,30,20],"       \
  "[1,1,3,5],[5,5,5,5]]}"

static void a_result_past_max_output_numbers_is_refused_before_it_runs(void **state) {
  (void)state;
  detloss_json_limits lim = {0, 7, 0, 0.0}; /* 0 fields: the defaults */
  detloss_error err;
  char *out;
  assert_int_equal(compute_lim(IOU_2X4, &lim, &out, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(out, "untouched");
  assert_string_equal(err.where, "boxes2");
  assert_string_equal(err.msg,
                      "a 2 x 4 matrix would return 8 numbers, more than the limit "
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
  assert_non_null(strstr(err.msg,
                         "134217728 numbers, more than the limit max_output_numbers = "
                         "16777216"));
}

static void anchors_and_image_sides_past_their_limits_are_refused(void **state) {
  (void)state;
  detloss_error err;
  char *out;
  /* 3 x 5 cells x (2 sizes x 1 ratio) = 30 anchors */
  const char *c30 =
      "[{\"op\":\"anchors\",\"image_size\":[30,50],\"feature_maps\":[[3,5]],"
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
  cJSON *o = cJSON_Parse(
      "{\"p\":9223372036854775808,\"n\":-1e300,\"e\":9007199254740992,"
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
  compute(
      "{\"op\":\"rpn_loss\",\"config\":{\"seed\":9223372036854775808},\"images\":[{\"anchors\":"
      "[[0,0,10,10]],\"gt\":[[0,0,10,10]],\"objectness\":[0],\"deltas\":[[0,0,0,0]]}]}",
      DETLOSS_ERR_RANGE, &err);
  assert_string_equal(err.where, "config.seed");
  (void)out;
}

static void a_non_finite_result_is_a_range_error_naming_the_element(void **state) {
  (void)state;
  detloss_error err;
  /* size 3e38 with ratio 0.5: w = 3e38 / sqrt(0.5) = 4.2e38 > FLT_MAX, so x1 = -inf;
   * it was written as null with status 0. The core now refuses the size itself
   * (a base anchor beyond the 1e18 coordinate bound), naming the field; the
   * driver's own null check is covered by the finder test below. */
  compute(
      "[{\"op\":\"iou\",\"boxes1\":[[0,0,1,1]],\"boxes2\":[[0,0,1,1]]},"
      "{\"op\":\"anchors\",\"image_size\":[32,32],\"feature_maps\":[[1,1]],"
      "\"sizes\":[[3e38]],\"aspect_ratios\":[[0.5]]}]",
      DETLOSS_ERR_RANGE, &err);
  assert_string_equal(err.where, "[1].levels[0].sizes[0]");
  assert_non_null(strstr(err.msg, "beyond the coordinate bound 1e18"));
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

/* The path stack: push a key or an index, pop back to the mark; library
 * errors located through their argument's key and shape. */
static void the_path_stack_and_located_library_errors(void **state) {
  (void)state;
  dlj_path p;
  dlj_path_init(&p, "");
  size_t m0 = dlj_path_key(&p, "images");
  size_t m1 = dlj_path_index(&p, 1);
  dlj_path_key(&p, "gt");
  assert_string_equal(p.buf, "images[1].gt");
  dlj_path_pop(&p, m1);
  assert_string_equal(p.buf, "images");
  dlj_path_pop(&p, m0);
  assert_string_equal(p.buf, "");
  assert_int_equal(p.len, 0);
  /* a path longer than the buffer is cut as dlj_join cuts it */
  char key[200], joined[DETLOSS_WHERE_MAX];
  memset(key, 'k', sizeof key - 1);
  key[sizeof key - 1] = '\0';
  dlj_path_init(&p, "[3]");
  dlj_path_key(&p, key);
  dlj_join(joined, sizeof joined, "[3]", key);
  assert_string_equal(p.buf, joined);
  assert_int_equal(p.len, strlen(joined));

  static const size_t shape[2] = {2, 3};
  const dlj_arg args[] = {{"logits", "input", shape, 2, 0},
                          {"gamma", "params.gamma", NULL, 0, 0},
                          {"pos_weight", "params.pos_weight", NULL, 0, 0}};
  dlj_path at;
  dlj_path_init(&at, "[2]");
  detloss_error e;
  snprintf(e.where, sizeof e.where, "logits[5]");
  dlj_locate(&e, &at, args, 3);
  assert_string_equal(e.where, "[2].input[1][2]"); /* flat 5 = row 1, column 2 of [2][3] */
  snprintf(e.where, sizeof e.where, "pos_weight[1]");
  dlj_locate(&e, &at, args, 3);
  assert_string_equal(e.where, "[2].params.pos_weight[1]");
  snprintf(e.where, sizeof e.where, "gammas");
  dlj_locate(&e, &at, args, 3); /* not an argument's name: only put under the case */
  assert_string_equal(e.where, "[2].gammas");
  e.where[0] = '\0';
  dlj_locate(&e, &at, args, 3);
  assert_string_equal(e.where, "[2]");
}

/* Marks restore the exact path they were taken at, in any nesting of keys and
 * indices; a key right at the root takes no dot; popping to a mark at or past
 * the end changes nothing. */
static void path_stack_push_pop_keys_and_indices(void **state) {
  (void)state;
  dlj_path p;
  dlj_path_init(&p, NULL);
  assert_string_equal(p.buf, "");
  size_t m0 = dlj_path_index(&p, 0);
  assert_string_equal(p.buf, "[0]");
  size_t m1 = dlj_path_key(&p, "images");
  size_t m2 = dlj_path_index(&p, 12);
  size_t m3 = dlj_path_index(&p, 3);
  dlj_path_key(&p, "boxes");
  assert_string_equal(p.buf, "[0].images[12][3].boxes");
  assert_int_equal(p.len, strlen(p.buf));
  dlj_path_pop(&p, m3);
  assert_string_equal(p.buf, "[0].images[12]");
  dlj_path_pop(&p, 1000); /* past the end: unchanged */
  assert_string_equal(p.buf, "[0].images[12]");
  dlj_path_pop(&p, m2);
  dlj_path_key(&p, "gt");
  assert_string_equal(p.buf, "[0].images.gt");
  dlj_path_pop(&p, m1);
  assert_string_equal(p.buf, "[0]");
  dlj_path_pop(&p, m0);
  assert_string_equal(p.buf, "");
  dlj_path_key(&p, "match");
  dlj_path_key(&p, "high");
  assert_string_equal(p.buf, "match.high"); /* no leading dot at the root */
}

/* A path deeper than DETLOSS_WHERE_MAX - 1 characters is cut, never written
 * past the buffer: it stays NUL-terminated, len = strlen, and it is the head
 * of the whole path (as snprintf cuts it). Popping back below the cut gives
 * the exact path of that depth again. */
static void path_stack_overflow_of_a_deep_path_is_cut_safely(void **state) {
  (void)state;
  char whole[64 * DETLOSS_WHERE_MAX] = "";
  size_t wl = 0, marks[400];
  dlj_path p;
  dlj_path_init(&p, "");
  for (size_t d = 0; d < 400; d++) {
    if (d % 3 == 2) {
      marks[d] = dlj_path_key(&p, "level");
      wl += (size_t)snprintf(whole + wl, sizeof whole - wl, ".level");
    } else {
      marks[d] = dlj_path_index(&p, 100000 + d);
      wl += (size_t)snprintf(whole + wl, sizeof whole - wl, "[%zu]", 100000 + d);
    }
    assert_true(p.len <= DETLOSS_WHERE_MAX - 1);
    assert_int_equal(p.len, strlen(p.buf));
    assert_memory_equal(p.buf, whole, p.len); /* the head of the whole path */
  }
  assert_int_equal(p.len, DETLOSS_WHERE_MAX - 1); /* 400 segments of >= 6 characters: cut */
  /* "[100000]" and "[100001]" are 8 characters, ".level" 6: 22 per 3 segments,
   * so the 9 segments before marks[9] are 66 characters */
  dlj_path_pop(&p, marks[9]);
  assert_int_equal(p.len, 66);
  assert_memory_equal(p.buf, whole, 66);
  assert_int_equal(p.buf[66], '\0');
  dlj_path_pop(&p, marks[0]);
  assert_string_equal(p.buf, "");
}

/* dlj_locate writes the path of the case, then the argument's key and index,
 * in the one format of every JSON error ("[4].dataset.images[3]"); an exact
 * argument matches only its whole name. */
static void located_errors_have_the_path_format(void **state) {
  (void)state;
  static const dlj_arg args[] = {{"grid.levels", "anchor_config.strides", NULL, 0, 1},
                                 {"data.image_hw", "dataset.images", NULL, 0, 0}};
  dlj_path at;
  dlj_path_init(&at, "");
  detloss_error e;
  snprintf(e.where, sizeof e.where, "grid.levels");
  dlj_locate(&e, &at, args, 2);
  assert_string_equal(e.where, "anchor_config.strides");
  snprintf(e.where, sizeof e.where, "grid.levels[1].stride"); /* exact: not this one */
  dlj_locate(&e, &at, args, 2);
  assert_string_equal(e.where, "grid.levels[1].stride");
  dlj_path_index(&at, 4);
  snprintf(e.where, sizeof e.where, "data.image_hw[3]");
  dlj_locate(&e, &at, args, 2);
  assert_string_equal(e.where, "[4].dataset.images[3]");
  snprintf(e.where, sizeof e.where, "boxes1[0]");
  dlj_locate(&e, &at, NULL, 0);
  assert_string_equal(e.where, "[4].boxes1[0]");
  dlj_locate(NULL, &at, args, 2); /* no error to fill: nothing happens */
  /* a library error (a coordinate past 1e18) of the second case, under "[1]" */
  detloss_error err;
  compute(
      "[{\"op\":\"iou\",\"boxes1\":[[0,0,1,1]],\"boxes2\":[[0,0,1,1]]},"
      "{\"op\":\"iou\",\"boxes1\":[[0,0,1,1],[0,0,1e19,1]],\"boxes2\":[[0,0,1,1]]}]",
      DETLOSS_ERR_RANGE, &err);
  assert_string_equal(err.where, "[1].boxes1[1]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(writer_uses_nine_significant_digits_and_no_negative_zero),
      cmocka_unit_test(reader_reports_the_json_path_of_each_fault),
      cmocka_unit_test(the_path_stack_and_located_library_errors),
      cmocka_unit_test(path_stack_push_pop_keys_and_indices),
      cmocka_unit_test(path_stack_overflow_of_a_deep_path_is_cut_safely),
      cmocka_unit_test(located_errors_have_the_path_format),
      cmocka_unit_test(one_case_gives_one_object_and_an_array_gives_an_array),
      cmocka_unit_test(a_bad_case_anywhere_fails_the_whole_run),
      cmocka_unit_test(deep_nesting_is_rejected_without_recursion_blowup),
      cmocka_unit_test(invalid_json_is_a_syntax_error_never_out_of_memory),
      cmocka_unit_test(nul_bytes_and_invalid_utf8_are_syntax_errors_at_their_column),
      cmocka_unit_test(duplicate_keys_are_errors_naming_their_path),
      cmocka_unit_test(error_messages_stay_on_one_line),
      cmocka_unit_test(unknown_keys_anywhere_in_a_case_are_errors),
      cmocka_unit_test(ragged_and_mixed_arrays_name_the_first_bad_element),
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
