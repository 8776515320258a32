/*
 * test_dataset_read.c - the streaming data-set readers (src/json/jstream.c,
 * dataset_stream.c) and YOLO label directories (dataset_yolo.c).
 * Values are exact (tolerance 0: pixel coordinates of fixtures chosen so
 * that every product is exact in float).
 */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "detloss/detloss_json.h"
#include "json/jread.h"
#include "testutil.h"

static void assert_box(const detloss_dataset *d, size_t k, float x1, float y1, float x2, float y2) {
  const float e[4] = {x1, y1, x2, y2};
  for (int c = 0; c < 4; c++) {
    if (d->boxes[4 * k + (size_t)c] != e[c])
      fail_msg("box %zu[%d] = %g, expected %g", k, c, (double)d->boxes[4 * k + (size_t)c],
               (double)e[c]);
  }
}

static void yolo_directory_reads_sizes_from_png_and_jpeg_headers(void **state) {
  (void)state;
  detloss_dataset *d = NULL;
  detloss_error err;
  assert_int_equal(detloss_dataset_load(DL_FIXTURE("yolo/ok"), &d, &err), DETLOSS_OK);
  assert_int_equal(d->num_images, 3);
  assert_int_equal(d->num_boxes, 3);
  /* a.png 64 x 48 (IHDR), b.jpg 40 x 30 (SOF0), c.png 10 x 20; hw is height, width */
  const float hw[6] = {48, 64, 30, 40, 20, 10};
  for (int k = 0; k < 6; k++) assert_true(d->image_hw[k] == hw[k]);
  const size_t start[4] = {0, 2, 3, 3};
  for (int k = 0; k < 4; k++) assert_int_equal(d->box_start[k], start[k]);
  /* a: (0.5, 0.5, 0.25, 0.5): x 0.375*64 = 24 .. 0.625*64 = 40, y 0.25*48 = 12 .. 0.75*48 = 36 */
  assert_box(d, 0, 24, 12, 40, 36);
  /* a: (0.125, 0.25, 0.25, 0.5): x 0 .. 0.25*64 = 16, y 0 .. 0.5*48 = 24 */
  assert_box(d, 1, 0, 0, 16, 24);
  /* b: the whole 40 x 30 image */
  assert_box(d, 2, 0, 0, 40, 30);
  assert_int_equal(d->is_crowd[0] + d->is_crowd[1] + d->is_crowd[2], 0);
  detloss_dataset_free(d);
}

static void a_labels_directory_finds_its_images_directory(void **state) {
  (void)state;
  detloss_dataset *d = NULL;
  detloss_error err;
  assert_int_equal(detloss_dataset_load(DL_FIXTURE("yolo/ok/labels"), &d, &err), DETLOSS_OK);
  assert_int_equal(d->num_images, 3);
  assert_true(d->image_hw[2] == 30.0f && d->image_hw[3] == 40.0f);
  detloss_dataset_free(d);
}

static void a_given_image_size_opens_no_image(void **state) {
  (void)state;
  detloss_yolo_options o = detloss_yolo_options_default();
  o.image_w = 100.0f;
  o.image_h = 50.0f;
  detloss_dataset *d = NULL;
  detloss_error err;
  /* bad_header's a.jpg is not an image: with a given size it is never read */
  assert_int_equal(detloss_dataset_load_yolo(DL_FIXTURE("yolo/bad_header"), &o, NULL, &d, &err),
                   DETLOSS_OK);
  /* (0.5, 0.5, 0.2, 0.2): x 0.4*100 = 40 .. 60, y 0.4*50 = 20 .. 30 */
  assert_box(d, 0, 40, 20, 60, 30);
  detloss_dataset_free(d);
}

static void expect_yolo_error(const char *dir, detloss_status st, const char *where_tail,
                              const char *msg_part) {
  detloss_dataset *d = NULL;
  detloss_error err;
  assert_int_equal(detloss_dataset_load(dir, &d, &err), st);
  assert_null(d);
  size_t n = strlen(err.where), k = strlen(where_tail);
  if (n < k || strcmp(err.where + n - k, where_tail) != 0)
    fail_msg("where '%s' does not end with '%s'", err.where, where_tail);
  if (!strstr(err.msg, msg_part)) fail_msg("msg '%s' lacks '%s'", err.msg, msg_part);
}

static void bad_label_files_are_errors_naming_file_and_line(void **state) {
  (void)state;
  expect_yolo_error(DL_FIXTURE("yolo/four_columns"), DETLOSS_ERR_SHAPE, "labels/a.txt: line 2",
                    "expected 5 columns (class cx cy w h), got 4");
  expect_yolo_error(DL_FIXTURE("yolo/bad_header"), DETLOSS_ERR_PARSE, "images/a.jpg",
                    "cannot read the image size");
  /* cx 0.95 + w/2 0.1 = 1.05 > 1 + 0.01 */
  expect_yolo_error(DL_FIXTURE("yolo/outside"), DETLOSS_ERR_RANGE, "labels/a.txt: line 1",
                    "outside [0, 1]");
  expect_yolo_error(DL_FIXTURE("yolo/zero_size"), DETLOSS_ERR_RANGE, "labels/a.txt: line 1",
                    "non-positive size");
  /* a directory without label files */
  expect_yolo_error(DL_FIXTURE("yolo/ok/images"), DETLOSS_ERR_SHAPE, "yolo/ok/images",
                    "no label files");
}

static void a_label_directory_without_boxes_reads_as_zero_boxes(void **state) {
  (void)state;
  detloss_dataset *d = NULL;
  detloss_error err;
  assert_int_equal(detloss_dataset_load(DL_FIXTURE("yolo/no_boxes"), &d, &err), DETLOSS_OK);
  assert_int_equal(d->num_images, 1);
  assert_int_equal(d->num_boxes, 0);
  /* detloss_anchor_eval (and so `detloss eval`) refuses it: "the data set has no boxes" */
  detloss_eval_dataset v = detloss_dataset_view(d);
  assert_int_equal(v.box_start[1], 0);
  detloss_dataset_free(d);
}

static const char COCO[] =
    "{\"info\": {\"year\": 2017, \"x\": [1, {\"a\": null}]},\n"
    " \"annotations\": [\n"
    "  {\"id\": 1, \"image_id\": 7, \"bbox\": [8, 8, 16, 16], \"iscrowd\": 0,\n"
    "   \"segmentation\": [[1.5, 2, 3, 4, 5, 6]], \"area\": 256},\n"
    "  {\"id\": 2, \"image_id\": 3, \"bbox\": [0, 0, 5, 5.5], \"iscrowd\": 1,\n"
    "   \"segmentation\": {\"size\": [20, 20], \"counts\": \"ab\\u00e9\\ud83d\\ude00\"}},\n"
    "  {\"id\": 3, \"image_id\": 7, \"bbox\": [1, 1, 2, 2], \"iscrowd\": false}],\n"
    " \"images\": [{\"id\": 7, \"width\": 64, \"height\": 48, \"file_name\": \"a.jpg\"},\n"
    "            {\"id\": 3, \"width\": 20, \"height\": 20}],\n"
    " \"licenses\": [], \"categories\": [{\"id\": 1, \"name\": \"a\"}]}\n";

static void coco_read_as_a_stream_skips_polygons_rle_and_info(void **state) {
  (void)state;
  detloss_dataset *d = NULL;
  detloss_error err;
  /* annotations before images: the stream keeps them until the images are known */
  assert_int_equal(detloss_dataset_parse(COCO, strlen(COCO), "c.json", &d, &err), DETLOSS_OK);
  assert_true(d->is_coco);
  assert_int_equal(d->num_images, 2);
  assert_int_equal(d->num_boxes, 3);
  assert_int_equal(d->box_start[1], 2);
  assert_box(d, 0, 8, 8, 24, 24); /* [8, 8, 16, 16] -> [8, 8, 8 + 16, 8 + 16] */
  assert_box(d, 1, 1, 1, 3, 3);
  assert_box(d, 2, 0, 0, 5, 5.5f);
  assert_int_equal(d->is_crowd[2], 1);
  assert_int_equal(d->image_id[0], 7);
  assert_true(d->image_hw[0] == 48.0f && d->image_hw[1] == 64.0f);
  detloss_dataset_free(d);
}

/* Every prefix of a valid text is a truncated file: the stream must give the
 * tree parser's error (dlj_parse), position and message. */
static void every_truncation_gives_the_tree_parsers_error(void **state) {
  (void)state;
  size_t n = strlen(COCO);
  for (size_t len = 0; len < n - 1; len++) {
    detloss_dataset *d = NULL;
    detloss_error e1, e2;
    cJSON *root = NULL;
    detloss_status s1 = dlj_parse(COCO, len, "c.json", &root, &e1);
    cJSON_Delete(root);
    detloss_status s2 = detloss_dataset_parse(COCO, len, "c.json", &d, &e2);
    assert_null(d);
    if (s1 == DETLOSS_OK) continue; /* cannot happen for a strict prefix of one object */
    assert_int_equal(s2, s1);
    if (strcmp(e1.where, e2.where) != 0 || strcmp(e1.msg, e2.msg) != 0)
      fail_msg("prefix %zu: tree '%s: %s', stream '%s: %s'", len, e1.where, e1.msg, e2.where,
               e2.msg);
  }
}

static void inverted_boxes_are_errors(void **state) {
  (void)state;
  detloss_dataset *d = NULL;
  detloss_error err;
  const char *t =
      "{\"images\": [{\"width\": 100, \"height\": 100, \"boxes\": "
      "[[10, 10, 30, 30], [50, 10, 20, 40]]}]}";
  assert_int_equal(detloss_dataset_parse(t, strlen(t), "d.json", &d, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "d.json: images[0].boxes[1]");
  assert_non_null(strstr(err.msg, "x2 < x1"));
  const char *c =
      "{\"images\": [{\"id\": 1, \"width\": 9, \"height\": 9}], "
      "\"annotations\": [{\"image_id\": 1, \"bbox\": [1, 2, 3, -4]}]}";
  assert_int_equal(detloss_dataset_parse(c, strlen(c), "c.json", &d, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "c.json: annotations[0].bbox");
  assert_non_null(strstr(err.msg, "negative height"));
}

static void syntax_faults_come_before_duplicate_keys_and_data_faults(void **state) {
  (void)state;
  detloss_dataset *d = NULL;
  detloss_error err;
  /* a duplicate key and a bad box early, a syntax fault at the end */
  const char *t = "{\"images\": [{\"width\": 1, \"width\": 2, \"boxes\": [[1]]}]";
  assert_int_equal(detloss_dataset_parse(t, strlen(t), "d.json", &d, &err), DETLOSS_ERR_PARSE);
  assert_string_equal(err.where, "d.json: line 1, column 54"); /* 53 characters, then the end */
  assert_string_equal(err.msg, "JSON syntax error: unexpected end of input");
  const char *u = "{\"images\": [{\"width\": 1, \"width\": 2, \"boxes\": [[1]]}]}";
  assert_int_equal(detloss_dataset_parse(u, strlen(u), "d.json", &d, &err), DETLOSS_ERR_PARSE);
  assert_string_equal(err.where, "d.json: images[0].width");
  assert_string_equal(err.msg, "duplicate key");
}

/* A file of several MiB read in 1 MiB windows, with a 3 MiB string (the
 * window grows) and tokens across every window edge, equals the same text
 * read from memory. */
static void a_file_read_in_windows_equals_the_text(void **state) {
  (void)state;
  size_t cap = 8u << 20, n = 0;
  char *t = malloc(cap);
  assert_non_null(t);
  n += (size_t)snprintf(t + n, cap - n, "{\"info\": \"");
  for (size_t k = 0; k < (3u << 20); k++) t[n++] = (char)('a' + k % 26);
  n += (size_t)snprintf(t + n, cap - n, "\", \"images\": [");
  for (int i = 0; i < 20000; i++)
    n += (size_t)snprintf(t + n, cap - n, "%s{\"id\": %d, \"width\": %d, \"height\": 480}",
                          i ? ", " : "", i + 1, 100 + i % 900);
  n += (size_t)snprintf(t + n, cap - n, "], \"annotations\": [");
  for (int a = 0; a < 40000; a++)
    n += (size_t)snprintf(t + n, cap - n,
                          "%s{\"image_id\": %d, \"bbox\": [%d.25, %d.5, %d.125, 7], "
                          "\"segmentation\": [[1.25, 2.5, 3.75, 4, 5, 6, 7, 8]]}",
                          a ? ",\n" : "", 1 + (a * 7) % 20000, a % 97, a % 89, 1 + a % 50);
  n += (size_t)snprintf(t + n, cap - n, "]}\n");
  assert_true(n < cap);
  char path[] = "/tmp/detloss_test_dataset_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(t, 1, n, f), n);
  fclose(f);
  detloss_dataset *a = NULL, *b = NULL;
  detloss_error err;
  assert_int_equal(detloss_dataset_load(path, &a, &err), DETLOSS_OK);
  assert_int_equal(detloss_dataset_parse(t, n, path, &b, &err), DETLOSS_OK);
  remove(path);
  assert_int_equal(a->num_images, 20000);
  assert_int_equal(a->num_boxes, 40000);
  assert_int_equal(b->num_boxes, 40000);
  assert_memory_equal(a->boxes, b->boxes, 4 * 40000 * sizeof(float));
  assert_memory_equal(a->image_hw, b->image_hw, 2 * 20000 * sizeof(float));
  assert_memory_equal(a->box_start, b->box_start, 20001 * sizeof(size_t));
  /* annotation 0: image 1, bbox [0.25, 0.5, 1.125, 7] -> [0.25, 0.5, 1.375, 7.5] */
  assert_box(a, a->box_start[0], 0.25f, 0.5f, 1.375f, 7.5f);
  detloss_dataset_free(a);
  detloss_dataset_free(b);
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(yolo_directory_reads_sizes_from_png_and_jpeg_headers),
      cmocka_unit_test(a_labels_directory_finds_its_images_directory),
      cmocka_unit_test(a_given_image_size_opens_no_image),
      cmocka_unit_test(bad_label_files_are_errors_naming_file_and_line),
      cmocka_unit_test(a_label_directory_without_boxes_reads_as_zero_boxes),
      cmocka_unit_test(coco_read_as_a_stream_skips_polygons_rle_and_info),
      cmocka_unit_test(every_truncation_gives_the_tree_parsers_error),
      cmocka_unit_test(inverted_boxes_are_errors),
      cmocka_unit_test(syntax_faults_come_before_duplicate_keys_and_data_faults),
      cmocka_unit_test(a_file_read_in_windows_equals_the_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
