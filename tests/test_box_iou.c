/* test_box_iou.c - box area and the IoU-family matrices and pairs. */
#include <cjson/cJSON.h>
#include <float.h>

#include "detloss/detloss.h"
#include "testutil.h"

static float *iou_matrix(detloss_iou_kind kind, const float *b1, size_t n, const float *b2,
                         size_t m) {
  float *out = calloc(n * m + 1, sizeof(float));
  detloss_error err;
  assert_int_equal(detloss_iou_matrix(kind, b1, n, b2, m, out, NULL, &err), DETLOSS_OK);
  return out;
}

static double iou1(detloss_iou_kind kind, const float *a, const float *b) {
  float out;
  detloss_error err;
  assert_int_equal(detloss_iou_matrix(kind, a, 1, b, 1, &out, NULL, &err), DETLOSS_OK);
  return (double)out;
}

static void overlapping_squares_have_iou_one_seventh(void **state) {
  (void)state;
  /* [0,0,10,10] vs [5,5,15,15]: I = 5*5 = 25, U = 100 + 100 - 25 = 175,
   * IoU = 25/175 = 1/7. C = 15*15 = 225, GIoU = 1/7 - (225-175)/225 = 1/7 - 2/9.
   * Centres (5,5), (10,10): rho^2 = 50; diagonal^2 = 15^2 + 15^2 = 450:
   * DIoU = 1/7 - 50/450 = 1/7 - 1/9. Both square: v = 0, CIoU = DIoU. */
  const float a[4] = {0, 0, 10, 10}, b[4] = {5, 5, 15, 15};
  dl_assert_close1(iou1(DETLOSS_IOU, a, b), 1.0 / 7, 1e-7, 0);
  dl_assert_close1(iou1(DETLOSS_GIOU, a, b), 1.0 / 7 - 2.0 / 9, 1e-6, 1e-7);
  dl_assert_close1(iou1(DETLOSS_DIOU, a, b), 1.0 / 7 - 1.0 / 9, 1e-6, 1e-7);
  dl_assert_close1(iou1(DETLOSS_CIOU, a, b), 1.0 / 7 - 1.0 / 9, 1e-6, 1e-7);
}

static void disjoint_boxes_match_the_published_losses(void **state) {
  (void)state;
  /* [0,0,10,10] vs [20,0,30,20]: I = 0, IoU = 0. C = 30*20 = 600, U = 300:
   * GIoU = -(600-300)/600 = -0.5 (loss 1.5). Centres (5,5), (25,10):
   * rho^2 = 400 + 25 = 425, c^2 = 900 + 400 = 1300: DIoU = -425/1300 = -0.32692308.
   * v = 4/pi^2 (atan(10/10) - atan(10/20))^2 = 0.04195572, alpha = v/(1 - 0 + v)
   * = 0.04026700, CIoU = DIoU - alpha v = -0.32861254 (loss 1.32861254,
   * docs/math/box_iou.md s6). */
  const float a[4] = {0, 0, 10, 10}, b[4] = {20, 0, 30, 20};
  dl_assert_close1(iou1(DETLOSS_IOU, a, b), 0.0, 0, 0);
  dl_assert_close1(iou1(DETLOSS_GIOU, a, b), -0.5, 1e-7, 0);
  dl_assert_close1(iou1(DETLOSS_DIOU, a, b), -0.32692308, 1e-6, 0);
  dl_assert_close1(iou1(DETLOSS_CIOU, a, b), -0.32861254, 1e-6, 0);
}

static void elongated_pair_matches_the_published_losses(void **state) {
  (void)state;
  /* [0,0,4,2] vs [1,1,3,5]: I = 2*1 = 2, U = 8 + 8 - 2 = 14, IoU = 1/7.
   * Losses (docs/math/box_losses.md): GIoU 1.15714286, DIoU 0.95470383, CIoU 0.98218322. */
  const float a[4] = {0, 0, 4, 2}, b[4] = {1, 1, 3, 5};
  dl_assert_close1(iou1(DETLOSS_IOU, a, b), 1.0 / 7, 1e-7, 0);
  dl_assert_close1(iou1(DETLOSS_GIOU, a, b), 1.0 - 1.15714286, 1e-6, 1e-7);
  dl_assert_close1(iou1(DETLOSS_DIOU, a, b), 1.0 - 0.95470383, 1e-5, 1e-7);
  dl_assert_close1(iou1(DETLOSS_CIOU, a, b), 1.0 - 0.98218322, 1e-5, 1e-7);
}

static void boxes_touching_at_an_edge_do_not_intersect(void **state) {
  (void)state;
  /* [0,0,10,10] vs [10,0,20,10]: I = 0; C = 20*10 = 200 = U: GIoU = 0.
   * Centres 10 apart: rho^2 = 100, c^2 = 400 + 100 = 500: DIoU = -0.2. */
  const float a[4] = {0, 0, 10, 10}, b[4] = {10, 0, 20, 10};
  dl_assert_close1(iou1(DETLOSS_IOU, a, b), 0.0, 0, 0);
  dl_assert_close1(iou1(DETLOSS_GIOU, a, b), 0.0, 0, 1e-7);
  dl_assert_close1(iou1(DETLOSS_DIOU, a, b), -0.2, 1e-6, 0);
}

static void nested_box_iou_is_the_area_ratio(void **state) {
  (void)state;
  /* [0,0,10,10] contains [2,2,4,4]: I = 4, U = 100: IoU = 0.04; C = U: GIoU = 0.04.
   * Centres (5,5), (3,3): rho^2 = 8, c^2 = 200: DIoU = 0.04 - 0.04 = 0. */
  const float a[4] = {0, 0, 10, 10}, b[4] = {2, 2, 4, 4};
  dl_assert_close1(iou1(DETLOSS_IOU, a, b), 0.04, 1e-6, 0);
  dl_assert_close1(iou1(DETLOSS_GIOU, a, b), 0.04, 1e-6, 0);
  dl_assert_close1(iou1(DETLOSS_DIOU, a, b), 0.0, 0, 1e-7);
}

static void identical_boxes_have_iou_one_for_every_kind(void **state) {
  (void)state;
  const float a[4] = {3.5f, 1.25f, 17, 40};
  for (int k = 0; k < 4; k++) dl_assert_close1(iou1((detloss_iou_kind)k, a, a), 1.0, 1e-7, 0);
}

static void degenerate_boxes_give_zero_not_nan(void **state) {
  (void)state;
  /* Two identical points: U = 0 (torchvision: 0/0 = NaN); we return 0 for
   * IoU; C = 0 so the GIoU penalty is 0; rho = 0 so DIoU = 0; w = h = 0 so
   * atan(w/h) is taken as 0 and v = 0. */
  const float p[4] = {5, 5, 5, 5};
  for (int k = 0; k < 4; k++) dl_assert_close1(iou1((detloss_iou_kind)k, p, p), 0.0, 0, 0);
  /* Two distinct points: IoU 0, C = 3*4 = 12, U = 0: GIoU = -12/12 = -1;
   * rho^2 = 25 = c^2: DIoU = -25/(25 + 1e-7). */
  const float q[4] = {0, 0, 0, 0}, r[4] = {3, 4, 3, 4};
  dl_assert_close1(iou1(DETLOSS_GIOU, q, r), -1.0, 1e-7, 0);
  dl_assert_close1(iou1(DETLOSS_DIOU, q, r), -1.0, 1e-6, 0);
}

static void zero_height_box_has_a_finite_ciou(void **state) {
  (void)state;
  /* [0,0,10,0] vs [0,0,10,10]: I = 0, IoU = 0. atan(10/0) = pi/2 (as in
   * torchvision), atan(10/10) = pi/4: v = 4/pi^2 (pi/4)^2 = 1/4.
   * Centres (5,0), (5,5): rho^2 = 25; c^2 = 100 + 100 = 200: DIoU = -1/8.
   * alpha = (1/4)/(1 + 1/4) = 1/5: CIoU = -1/8 - 1/20 = -0.175. */
  const float a[4] = {0, 0, 10, 0}, b[4] = {0, 0, 10, 10};
  dl_assert_close1(iou1(DETLOSS_CIOU, a, b), -0.175, 1e-6, 0);
  dl_assert_close1(iou1(DETLOSS_CIOU, b, a), -0.175, 1e-6, 0);
}

static void inverted_boxes_are_legal_and_finite(void **state) {
  (void)state;
  /* [10,10,0,0] is inverted on both axes: area (-10)(-10) = 100, but its
   * intersection with anything is 0 (min x2 - max x1 < 0). */
  const float inv[4] = {10, 10, 0, 0}, b[4] = {0, 0, 10, 10}, half[4] = {10, 0, 0, 10};
  float area[3];
  const float three[12] = {10, 10, 0, 0, 10, 0, 0, 10, 0, 0, 10, 10};
  detloss_error err;
  assert_int_equal(detloss_box_area(three, 3, area, &err), DETLOSS_OK);
  const double want_area[3] = {100, -100, 100};
  dl_assert_close(area, want_area, 3, 0, 0);
  for (int k = 0; k < 4; k++) {
    double v = iou1((detloss_iou_kind)k, inv, b);
    assert_true(isfinite(v));
    v = iou1((detloss_iou_kind)k, half, b);
    assert_true(isfinite(v));
  }
  dl_assert_close1(iou1(DETLOSS_IOU, inv, b), 0.0, 0, 0);
}

static float *random_boxes(dl_rng *r, size_t n, int allow_degenerate) {
  float *b = malloc(4 * n * sizeof(float) + 1);
  for (size_t i = 0; i < n; i++) {
    float x = (float)dl_rng_uniform(r, 0, 300), y = (float)dl_rng_uniform(r, 0, 300);
    float w = (float)exp(dl_rng_uniform(r, 0, 5)), h = (float)exp(dl_rng_uniform(r, 0, 5));
    if (allow_degenerate && dl_rng_uniform(r, 0, 1) < 0.1) w = 0;
    if (allow_degenerate && dl_rng_uniform(r, 0, 1) < 0.1) h = 0;
    b[4 * i] = x;
    b[4 * i + 1] = y;
    b[4 * i + 2] = x + w;
    b[4 * i + 3] = y + h;
  }
  return b;
}

static void every_kind_is_symmetric_and_bounded(void **state) {
  (void)state;
  dl_rng r = {1};
  size_t n = 40, m = 30;
  float *b1 = random_boxes(&r, n, 1), *b2 = random_boxes(&r, m, 1);
  for (int k = 0; k < 4; k++) {
    float *ab = iou_matrix((detloss_iou_kind)k, b1, n, b2, m);
    float *ba = iou_matrix((detloss_iou_kind)k, b2, m, b1, n);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < m; j++) {
        float v = ab[i * m + j];
        assert_true(isfinite(v));
        /* bounds: IoU in [0,1]; GIoU, DIoU, CIoU in [-1,1] (CIoU >= -1.5 in
         * general; here >= -1 - max(alpha v) = -1 - 1) */
        if (k == DETLOSS_IOU)
          assert_true(v >= 0.0f && v <= 1.0f);
        else
          assert_true(v >= -2.0f && v <= 1.0f);
        if (k == DETLOSS_GIOU || k == DETLOSS_DIOU) assert_true(v >= -1.0f);
        /* symmetry: exactly equal up to float rounding order (1 ulp) */
        dl_assert_close1(ba[j * n + i], v, 1e-6, 1e-7);
      }
    free(ab);
    free(ba);
  }
  free(b1);
  free(b2);
}

static void pairs_equal_the_matrix_diagonal(void **state) {
  (void)state;
  dl_rng r = {2};
  size_t n = 50;
  float *b1 = random_boxes(&r, n, 1), *b2 = random_boxes(&r, n, 1);
  float *pairs = malloc(n * sizeof(float));
  for (int k = 0; k < 4; k++) {
    float *m = iou_matrix((detloss_iou_kind)k, b1, n, b2, n);
    detloss_error err;
    assert_int_equal(detloss_iou_pairs((detloss_iou_kind)k, b1, b2, n, pairs, NULL, &err),
                     DETLOSS_OK);
    for (size_t i = 0; i < n; i++)
      assert_memory_equal(&pairs[i], &m[i * n + i], sizeof(float)); /* bitwise */
    free(m);
  }
  free(pairs);
  free(b1);
  free(b2);
}

static void empty_inputs_write_nothing(void **state) {
  (void)state;
  float b[4] = {0, 0, 1, 1}, out[2] = {42, 42};
  detloss_error err;
  assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, b, 1, NULL, 0, out, NULL, &err), DETLOSS_OK);
  assert_int_equal(detloss_iou_matrix(DETLOSS_GIOU, NULL, 0, b, 1, out, NULL, &err), DETLOSS_OK);
  assert_int_equal(detloss_iou_matrix(DETLOSS_CIOU, NULL, 0, NULL, 0, NULL, NULL, &err),
                   DETLOSS_OK);
  assert_int_equal(detloss_iou_pairs(DETLOSS_DIOU, NULL, NULL, 0, NULL, NULL, &err), DETLOSS_OK);
  assert_true(out[0] == 42.0f && out[1] == 42.0f);
}

static void results_are_bitwise_identical_for_1_2_and_4_threads(void **state) {
  (void)state;
  dl_rng r = {3};
  size_t n = 300, m = 400;
  float *b1 = random_boxes(&r, n, 1), *b2 = random_boxes(&r, m, 1);
  float *ref = malloc(n * m * sizeof(float)), *got = malloc(n * m * sizeof(float));
  for (int k = 0; k < 4; k++) {
    detloss_iou_options o = detloss_iou_options_default();
    detloss_error err;
    o.num_threads = 1;
    assert_int_equal(detloss_iou_matrix((detloss_iou_kind)k, b1, n, b2, m, ref, &o, &err), 0);
    for (int t = 2; t <= 4; t += 2) {
      o.num_threads = t;
      assert_int_equal(detloss_iou_matrix((detloss_iou_kind)k, b1, n, b2, m, got, &o, &err), 0);
      dl_assert_bitwise_equal(got, ref, n * m);
    }
  }
  free(ref);
  free(got);
  free(b1);
  free(b2);
}

static float *json_rows(const cJSON *arr, size_t *n) {
  *n = (size_t)cJSON_GetArraySize(arr);
  float *out = malloc(4 * *n * sizeof(float) + 1);
  size_t i = 0;
  for (const cJSON *r = arr->child; r; r = r->next, i++)
    for (int k = 0; k < 4; k++) out[4 * i + k] = (float)cJSON_GetArrayItem(r, k)->valuedouble;
  return out;
}

static double *json_matrix(const cJSON *arr, size_t n, size_t m) {
  double *out = malloc(n * m * sizeof(double) + 1);
  size_t i = 0;
  for (const cJSON *r = arr->child; r; r = r->next, i++)
    for (size_t j = 0; j < m; j++) out[i * m + j] = cJSON_GetArrayItem(r, (int)j)->valuedouble;
  return out;
}

static void matrices_agree_with_torchvision(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("box_iou/torchvision_iou.json"));
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  int ncases = 0;
  for (const cJSON *c = cJSON_GetObjectItem(root, "cases")->child; c; c = c->next, ncases++) {
    const char *kind = cJSON_GetObjectItem(c, "kind")->valuestring;
    detloss_iou_kind k = strcmp(kind, "iou") == 0    ? DETLOSS_IOU
                         : strcmp(kind, "giou") == 0 ? DETLOSS_GIOU
                         : strcmp(kind, "diou") == 0 ? DETLOSS_DIOU
                                                     : DETLOSS_CIOU;
    size_t n, m;
    float *b1 = json_rows(cJSON_GetObjectItem(c, "boxes1"), &n);
    float *b2 = json_rows(cJSON_GetObjectItem(c, "boxes2"), &m);
    double *e32 = json_matrix(cJSON_GetObjectItem(c, "expected_f32"), n, m);
    double *e64 = json_matrix(cJSON_GetObjectItem(c, "expected_f64"), n, m);
    float *got = iou_matrix(k, b1, n, b2, m);
    /* Same float32 operations in the same order as torchvision: IoU, GIoU
     * and DIoU agree to the bit; CIoU differs only through atanf's last ulp. */
    if (k == DETLOSS_CIOU)
      dl_assert_close(got, e32, n * m, 1e-6, 1e-7);
    else
      dl_assert_close(got, e32, n * m, 0, 0);
    /* Against float64: float32 rounding only. */
    dl_assert_close(got, e64, n * m, 1e-5, 1e-6);
    free(b1);
    free(b2);
    free(e32);
    free(e64);
    free(got);
  }
  assert_int_equal(ncases, 12);
  cJSON_Delete(root);
  free(text);
}

static void bad_input_is_reported_and_output_untouched(void **state) {
  (void)state;
  float good[8] = {0, 0, 1, 1, 2, 2, 3, 3};
  float bad[8] = {0, 0, 1, 1, 2, NAN, 3, 3};
  float huge[4] = {0, 0, 1e20f, 1};
  float out[4] = {7, 7, 7, 7};
  detloss_error err;
  detloss_iou_options o = detloss_iou_options_default();

  assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, NULL, 2, good, 2, out, NULL, &err),
                   DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "boxes1");
  assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, good, 2, bad, 2, out, NULL, &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "boxes2[1]");
  assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, huge, 1, good, 2, out, NULL, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "boxes1[0]");
  assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, good, 2, good, 2, NULL, NULL, &err),
                   DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "out");
  o.eps = 0.0f;
  assert_int_equal(detloss_iou_matrix(DETLOSS_DIOU, good, 2, good, 2, out, &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "eps");
  o.eps = NAN;
  assert_int_equal(detloss_iou_pairs(DETLOSS_CIOU, good, good, 2, out, &o, &err),
                   DETLOSS_ERR_RANGE);
  assert_int_equal(detloss_iou_matrix((detloss_iou_kind)9, good, 2, good, 2, out, NULL, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "kind");
  /* n*m overflows size_t: rejected before any box is read. */
  assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, good, (size_t)1 << 40, good, (size_t)1 << 40,
                                      out, NULL, &err),
                   DETLOSS_ERR_SHAPE);
  assert_int_equal(detloss_box_area(bad, 2, out, &err), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "boxes[1]");
  for (int i = 0; i < 4; i++) assert_true(out[i] == 7.0f);
  /* err may be NULL */
  assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, good, 2, bad, 2, out, NULL, NULL),
                   DETLOSS_ERR_NONFINITE);
}

/* Finite boxes never give Inf or NaN. Inverted boxes can make the
 * DIoU/GIoU quotients leave the float range; they saturate at -FLT_MAX.
 *   a = (3s, 0, 0, 0) (x2 < x1), b = (s, 0, s, 0): enclosing width
 *   max(0, s) - min(3s, s) = 0, height 0, so c^2 = 0; centres 1.5s and s:
 *   rho^2 = (0.5 s)^2. s = 1e17: rho^2 = 2.5e33, / (0 + 1e-7) = 2.5e40 > FLT_MAX.
 *   With s = 1 and eps = 1e-45 (the smallest subnormal): 0.25 / 1.4e-45 = Inf too.
 *   GIoU: a = (3, 0, 0, 1) (area -3), b = (0, 0, 1e-39, 1): C = 1e-39 * 1,
 *   U = -3 + 1e-39, (C - U) / C = 3e39 > FLT_MAX.
 * Before the fix these were -Inf (JSON null from the CLI). */
static void inverted_boxes_saturate_instead_of_overflowing(void **state) {
  (void)state;
  const float a[4] = {3e17f, 0, 0, 0}, b[4] = {1e17f, 0, 1e17f, 0};
  const float a1[4] = {3, 0, 0, 0}, b1[4] = {1, 0, 1, 0};
  const float ag[4] = {3, 0, 0, 1}, bg[4] = {0, 0, 1e-39f, 1};
  detloss_iou_options tiny = detloss_iou_options_default();
  tiny.eps = 1e-45f;
  const detloss_iou_kind kinds[3] = {DETLOSS_GIOU, DETLOSS_DIOU, DETLOSS_CIOU};
  for (int q = 0; q < 3; q++) {
    float m = 0.0f, p = 0.0f;
    if (kinds[q] != DETLOSS_GIOU) {
      assert_int_equal(detloss_iou_matrix(kinds[q], a, 1, b, 1, &m, NULL, NULL), DETLOSS_OK);
      assert_true(m == -FLT_MAX);
      assert_int_equal(detloss_iou_pairs(kinds[q], a, b, 1, &p, NULL, NULL), DETLOSS_OK);
      assert_true(p == -FLT_MAX);
      assert_int_equal(detloss_iou_matrix(kinds[q], a1, 1, b1, 1, &m, &tiny, NULL), DETLOSS_OK);
      assert_true(m == -FLT_MAX);
      /* the same pair with the default eps: 0.25 / 1e-7 = 2.5e6, unchanged */
      assert_int_equal(detloss_iou_pairs(kinds[q], a1, b1, 1, &p, NULL, NULL), DETLOSS_OK);
      assert_true(isfinite(p) && p < -2.4e6f && p > -2.6e6f);
    } else {
      assert_int_equal(detloss_iou_matrix(kinds[q], ag, 1, bg, 1, &m, NULL, NULL), DETLOSS_OK);
      assert_true(m == -FLT_MAX);
      assert_int_equal(detloss_iou_pairs(kinds[q], ag, bg, 1, &p, NULL, NULL), DETLOSS_OK);
      assert_true(p == -FLT_MAX);
    }
  }
}

/* The output may not overlap boxes1 or boxes2 (the matrix is written
 * while boxes1 is read); the status is DETLOSS_ERR_SHAPE naming "out". */
static void the_output_may_not_overlap_an_input(void **state) {
  (void)state;
  float buf[16] = {0, 0, 2, 2, 1, 1, 3, 3, 0, 0, 1, 1, 7, 7, 7, 7};
  detloss_error err;
  assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, buf, 2, buf + 8, 1, buf + 1, NULL, &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "out");
  assert_non_null(strstr(err.msg, "boxes1"));
  assert_int_equal(detloss_iou_pairs(DETLOSS_GIOU, buf, buf + 4, 1, buf + 7, NULL, &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "out");
  assert_int_equal(detloss_box_area(buf, 2, buf + 4, &err), DETLOSS_ERR_SHAPE);
  assert_true(buf[4] == 1 && buf[7] == 3 && buf[1] == 0);
  /* adjacent, not overlapping: fine. (0,0,2,2) vs (0,0,1,1): IoU 1/4 */
  assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, buf, 1, buf + 8, 1, buf + 12, NULL, &err),
                   DETLOSS_OK);
  assert_true(buf[12] == 0.25f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(overlapping_squares_have_iou_one_seventh),
      cmocka_unit_test(disjoint_boxes_match_the_published_losses),
      cmocka_unit_test(elongated_pair_matches_the_published_losses),
      cmocka_unit_test(boxes_touching_at_an_edge_do_not_intersect),
      cmocka_unit_test(nested_box_iou_is_the_area_ratio),
      cmocka_unit_test(identical_boxes_have_iou_one_for_every_kind),
      cmocka_unit_test(degenerate_boxes_give_zero_not_nan),
      cmocka_unit_test(zero_height_box_has_a_finite_ciou),
      cmocka_unit_test(inverted_boxes_are_legal_and_finite),
      cmocka_unit_test(every_kind_is_symmetric_and_bounded),
      cmocka_unit_test(pairs_equal_the_matrix_diagonal),
      cmocka_unit_test(empty_inputs_write_nothing),
      cmocka_unit_test(results_are_bitwise_identical_for_1_2_and_4_threads),
      cmocka_unit_test(matrices_agree_with_torchvision),
      cmocka_unit_test(bad_input_is_reported_and_output_untouched),
      cmocka_unit_test(inverted_boxes_saturate_instead_of_overflowing),
      cmocka_unit_test(the_output_may_not_overlap_an_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
