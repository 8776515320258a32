/*
 * test_jtree.c - the packed tree of compute cases (src/json/jtree.c): arrays
 * of numbers kept as one block must give the same results and the same
 * faults, byte for byte, as the plain cJSON tree. Every compute case under
 * tests/cli/cases and the hand cases below run with nothing packed
 * (pack_min 0), everything packed (pack_min 1) and the default; the three
 * must agree on status, where, message and output bytes.
 */
#define _POSIX_C_SOURCE 200809L /* opendir, fmemopen under strict C11 */
#include <cjson/cJSON.h>
#include <dirent.h>

#include "detloss/detloss_json.h"
#include "json/cases.h"
#include "json/jtree.h"
#include "testutil.h"

typedef struct run_result {
  detloss_status st;
  detloss_error err;
  char *out;
  size_t len;
} run_result;

static run_result run(const char *text, size_t len, size_t pack_min) {
  run_result r;
  memset(&r, 0, sizeof r);
  r.st = dl_compute_json_packed(text, len, pack_min, &r.out, &r.len, NULL, &r.err);
  return r;
}

/* Runs text with pack_min 0, 1 and the default; fails on any difference. */
static void same_packed_or_not(const char *name, const char *text, size_t len) {
  run_result a = run(text, len, 0), b = run(text, len, 1), c = run(text, len, DLJ_PACK_MIN);
  run_result *rs[2] = {&b, &c};
  for (int k = 0; k < 2; k++) {
    run_result *r = rs[k];
    if (r->st != a.st || (a.st != DETLOSS_OK && (strcmp(r->err.where, a.err.where) != 0 ||
                                                 strcmp(r->err.msg, a.err.msg) != 0))) {
      print_error("%s (pack_min %s): status %d '%s: %s', plain tree %d '%s: %s'\n", name,
                  k ? "default" : "1", (int)r->st, r->err.where, r->err.msg, (int)a.st, a.err.where,
                  a.err.msg);
      fail();
    }
    if (a.st == DETLOSS_OK && (r->len != a.len || memcmp(r->out, a.out, a.len) != 0)) {
      print_error("%s (pack_min %s): output differs from the plain tree's\n", name,
                  k ? "default" : "1");
      fail();
    }
  }
  free(a.out);
  free(b.out);
  free(c.out);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static void every_cli_case_gives_the_same_bytes_packed_or_not(void **state) {
  (void)state;
  const char *dir = DETLOSS_FIXTURE_DIR "/../cli/cases";
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
    if (l > 9 && strcmp(e->d_name + l - 9, ".out.json") == 0) continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    size_t len;
    char *text = read_file(path, &len);
    same_packed_or_not(e->d_name, text, len);
    free(text);
    n++;
  }
  closedir(d);
  assert_true(n > 200); /* the ~290 compute cases of tests/cli */
}

/* Faults inside packed arrays, and arrays that stop being rectangular. */
static void faults_in_packed_arrays_match_the_plain_tree(void **state) {
  (void)state;
  static const char *const cases[] = {
      /* fine */
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],[1,1,5,9]],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      /* a number out of float range, and one out of double range */
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],[1,1,5,1e39]],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],[1,1,5,9]],\"boxes\":[[0,0,8,8],[2,2,4,1e999]]}",
      /* rows of the wrong width, rows of rows, a flat list */
      "{\"op\":\"encode\",\"anchors\":[[0,0,10],[1,1,5]],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      "{\"op\":\"encode\",\"anchors\":[[[0],[0],[10],[1]]],\"boxes\":[[0,0,8,8]]}",
      "{\"op\":\"encode\",\"anchors\":[0,0,10,10],\"boxes\":[[0,0,8,8]]}",
      /* ragged: short, long, deeper, mixed, a string late in the array */
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],[1,1,5]],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],[1,1,5,9,9]],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],[1,1,5,[9]]],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],7],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],[1,1,5,\"9\"]],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],{\"a\":1}],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      "{\"op\":\"encode\",\"anchors\":[[],[1,1,5,9]],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      "{\"op\":\"encode\",\"anchors\":[[[[[1]]]]],\"boxes\":[[0,0,8,8]]}",
      "{\"op\":\"encode\",\"anchors\":[\"x\",[1,1,5,9]],\"boxes\":[[0,0,8,8],[2,2,4,4]]}",
      /* tensors and integer arrays */
      "{\"op\":\"loss\",\"loss\":\"smooth_l1\",\"input\":[[1,2],[3,4]],\"target\":[[1,2],[3,5]],"
      "\"reduction\":\"none\"}",
      "{\"op\":\"loss\",\"loss\":\"smooth_l1\",\"input\":[[1,2],[3,4]],\"target\":[[1,2],[3]]}",
      "{\"op\":\"loss\",\"loss\":\"cross_entropy\",\"input\":[[1,2,3],[3,4,5]],\"target\":[0,2],"
      "\"reduction\":\"none\"}",
      "{\"op\":\"loss\",\"loss\":\"cross_entropy\",\"input\":[[1,2,3],[3,4,5]],\"target\":[0,2.5]}",
      "{\"op\":\"loss\",\"loss\":\"cross_entropy\",\"input\":[[1,2,3],[3,4,5]],\"target\":[0,7]}",
      "{\"op\":\"loss\",\"loss\":\"cross_entropy\",\"input\":[[1,2,3],[3,4,5]],\"target\":[0,1e300]"
      "}",
      "{\"op\":\"loss\",\"loss\":\"cross_entropy\",\"input\":[[1,2,3],[3,4,5]],\"target\":[[0],[1]]"
      "}",
      /* arrays that code walks itself: hungarian costs, a data set, anchor configs */
      "{\"op\":\"assign\",\"method\":\"hungarian\",\"cost\":[[1,2],[0.5,3],[2,2]],"
      "\"gt_labels\":[0,1]}",
      "{\"op\":\"assign\",\"method\":\"hungarian\",\"cost\":[[1,2],[0.5,1e999]],"
      "\"gt_labels\":[0,1]}",
      "{\"op\":\"anchor_eval\",\"dataset\":{\"images\":[{\"width\":100,\"height\":80,"
      "\"boxes\":[[10,10,40,50],[5,5,20,30]]}]},\"anchor_shapes\":[[16,16],[32,64]]}",
      "{\"op\":\"anchors\",\"image_size\":[64,64],\"feature_maps\":[[4,4],[2,2]],"
      "\"sizes\":[[16],[32]],\"aspect_ratios\":[[0.5,1,2],[1]]}",
      /* the root: a bare array of numbers, a number, duplicates, syntax */
      "[1,2,3]",
      "[[1,2],[3,4]]",
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10]],\"anchors\":[[0,0,8,8]]}",
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],[1,1,5,9]],\"boxes\":[[0,0,8,8],[2,2,4,4]",
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10],[1,1,5,9]],\"boxes\":[[0,0,8,8],[2,2,4,-]]}",
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char name[32];
    snprintf(name, sizeof name, "hand case %zu", k);
    same_packed_or_not(name, cases[k], strlen(cases[k]));
  }
}

/* Rows long enough to be packed by default, one fault placed late. */
static void a_late_fault_in_a_large_array_is_named_exactly(void **state) {
  (void)state;
  size_t rows = 1000, cap = rows * 64 + 256, len = 0;
  char *t = malloc(cap);
  assert_non_null(t);
  for (int fault = 0; fault < 4; fault++) {
    len = (size_t)snprintf(t, cap, "{\"op\":\"encode\",\"anchors\":[");
    for (size_t i = 0; i < rows; i++) {
      const char *last = "9";
      if (i == 777 && fault == 1) last = "1e39";
      if (i == 777 && fault == 2) last = "9,1";
      if (i == 777 && fault == 3) last = "true";
      len +=
          (size_t)snprintf(t + len, cap - len, "%s[%zu,1,%zu.5,%s]", i ? "," : "", i, i + 3, last);
    }
    len += (size_t)snprintf(t + len, cap - len, "],\"boxes\":[");
    for (size_t i = 0; i < rows; i++)
      len += (size_t)snprintf(t + len, cap - len, "%s[%zu,2,%zu,8]", i ? "," : "", i, i + 5);
    len += (size_t)snprintf(t + len, cap - len, "]}");
    same_packed_or_not("large", t, len);
    detloss_error err;
    char *out = NULL;
    detloss_status st = detloss_compute_json(t, len, &out, NULL, NULL, &err);
    if (fault == 0) {
      assert_int_equal(st, DETLOSS_OK);
      free(out);
    } else {
      static const char *const where[] = {"", "anchors[777][3]", "anchors[777]", "anchors[777][3]"};
      assert_string_equal(err.where, where[fault]);
    }
  }
  free(t);
}

static void numeric_arrays_are_packed_with_their_shape(void **state) {
  (void)state;
  const char *text = "{\"a\":[[1,2,3],[4,5,6]],\"b\":[1,[2]],\"c\":[[]],\"d\":[\"x\",[7,8]]}";
  dljs j;
  assert_int_equal(dlj_stream_open_mem(&j, text, strlen(text), NULL, NULL), DETLOSS_OK);
  cJSON *root = NULL;
  assert_int_equal(dlj_parse_packed(&j, 1, &root, NULL), DETLOSS_OK);
  dlj_stream_close(&j);
  const dlj_pack *p = dlj_packed(dlj_field(root, "a"));
  assert_non_null(p);
  assert_int_equal(p->ndim, 2);
  assert_int_equal(p->shape[0], 2);
  assert_int_equal(p->shape[1], 3);
  assert_true(p->v[5] == 6.0);
  /* the plain view of a packed array: [[1,2,3],[4,5,6]] */
  const cJSON *t = dlj_tree(dlj_field(root, "a"));
  assert_true(cJSON_IsArray(t) && cJSON_GetArraySize(t) == 2);
  assert_true(cJSON_GetArrayItem(cJSON_GetArrayItem(t, 1), 2)->valuedouble == 6.0);
  /* mixed and empty arrays stay nodes; an array after a string is packed */
  assert_null(dlj_packed(dlj_field(root, "b")));
  assert_int_equal(cJSON_GetArraySize(dlj_field(root, "b")), 2);
  assert_null(dlj_packed(dlj_field(root, "c")));
  const cJSON *d = dlj_field(root, "d");
  assert_null(dlj_packed(d));
  assert_non_null(dlj_packed(cJSON_GetArrayItem(d, 1)));
  dlj_tree_delete(root);
}

static void the_file_reader_gives_the_bytes_of_the_text_reader(void **state) {
  (void)state;
  const char *texts[] = {
      /* one string in two pieces (parenthesized: clang's -Wstring-concatenation) */
      ("[{\"op\":\"encode\",\"anchors\":[[0,0,10,10]],\"boxes\":[[1,1,8,8]]},"
       "{\"op\":\"iou\",\"boxes1\":[[0,0,2,2]],\"boxes2\":[[1,1,3,3]]}]"),
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10]],\n\"boxes\":[[1,1,8,8]}",
      "{\"op\":\"encode\",\"anchors\":[[0,0,10,10]],\"anchors\":[[1,1,8,8]]}",
  };
  for (size_t k = 0; k < 3; k++) {
    size_t len = strlen(texts[k]);
    FILE *f = fmemopen((void *)(uintptr_t)texts[k], len, "rb");
    assert_non_null(f);
    run_result a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.st = detloss_compute_json_file(f, "case.json", &a.out, &a.len, NULL, &a.err);
    fclose(f);
    b.st = detloss_compute_json(texts[k], len, &b.out, &b.len, NULL, &b.err);
    assert_int_equal(a.st, b.st);
    if (a.st == DETLOSS_OK) {
      assert_int_equal(a.len, b.len);
      assert_memory_equal(a.out, b.out, a.len);
    } else {
      assert_string_equal(a.err.where, b.err.where);
      assert_string_equal(a.err.msg, b.err.msg);
    }
    free(a.out);
    free(b.out);
  }
  /* the limit names the file */
  const char *t = texts[0];
  FILE *f = fmemopen((void *)(uintptr_t)t, strlen(t), "rb");
  detloss_json_limits lim = detloss_json_limits_default();
  lim.max_input_bytes = 20;
  detloss_compute_options o = DETLOSS_COMPUTE_OPTIONS_INIT;
  o.limits = &lim;
  char *out = NULL;
  detloss_error err;
  assert_int_equal(detloss_compute_json_file(f, "case.json", &out, NULL, &o, &err),
                   DETLOSS_ERR_RANGE);
  fclose(f);
  assert_string_equal(err.where, "case.json");
  assert_string_equal(err.msg, "the input is larger than the limit max_input_bytes = 20");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_cli_case_gives_the_same_bytes_packed_or_not),
      cmocka_unit_test(faults_in_packed_arrays_match_the_plain_tree),
      cmocka_unit_test(a_late_fault_in_a_large_array_is_named_exactly),
      cmocka_unit_test(numeric_arrays_are_packed_with_their_shape),
      cmocka_unit_test(the_file_reader_gives_the_bytes_of_the_text_reader),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
