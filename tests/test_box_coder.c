/* test_box_coder.c - encode/decode of (dx, dy, dw, dh) deltas. */
#include <cjson/cJSON.h>

#include "detloss/detloss.h"
#include "testutil.h"

static void encode_of_the_published_example_is_exact(void **state) {
  (void)state;
  /* gt [2,4,22,36] on anchor [0,0,16,16] (docs/math/box_coder.md s5):
   * anchor w = h = 16, centre (8,8); gt w = 20, h = 32, centre (12,20):
   * dx = (12-8)/16 = 0.25, dy = (20-8)/16 = 0.75, dw = ln(20/16) = ln 1.25,
   * dh = ln(32/16) = ln 2. With weights (10,10,5,5): (2.5, 7.5, 5 ln 1.25, 5 ln 2). */
  const float a[4] = {0, 0, 16, 16}, g[4] = {2, 4, 22, 36};
  float d[4];
  detloss_error err;
  assert_int_equal(detloss_box_encode(a, g, 1, d, NULL, &err), DETLOSS_OK);
  const double want1[4] = {0.25, 0.75, 0.22314355131420976, 0.6931471805599453};
  dl_assert_close(d, want1, 4, 1e-7, 0);
  detloss_coder_options o = detloss_coder_options_default();
  o.weights[0] = o.weights[1] = 10;
  o.weights[2] = o.weights[3] = 5;
  assert_int_equal(detloss_box_encode(a, g, 1, d, &o, &err), DETLOSS_OK);
  const double want2[4] = {2.5, 7.5, 1.1157177565710488, 3.4657359027997265};
  dl_assert_close(d, want2, 4, 1e-7, 0);
  /* and back */
  float b[4];
  assert_int_equal(detloss_box_decode(a, d, 1, b, &o, &err), DETLOSS_OK);
  const double back[4] = {2, 4, 22, 36};
  dl_assert_close(b, back, 4, 1e-6, 1e-5);
}

static void decode_clamps_dw_and_dh_from_above_only(void **state) {
  (void)state;
  /* Anchor [0,0,16,16]: dw = 10 is clamped to ln(1000/16), so w = 16 * 1000/16
   * = 1000 around centre 8: x1 = -492, x2 = 508. dh = -10 is not clamped:
   * h = 16 e^-10 = 7.2638e-4 around 8. */
  const float a[4] = {0, 0, 16, 16}, d[4] = {0, 0, 10, -10};
  float b[4];
  detloss_error err;
  assert_int_equal(detloss_box_decode(a, d, 1, b, NULL, &err), DETLOSS_OK);
  double h = 16.0 * exp(-10.0);
  const double want[4] = {-492, 8 - h / 2, 508, 8 + h / 2};
  dl_assert_close(b, want, 4, 1e-6, 1e-5);
  /* The clamp applies after dividing by the weight: dw = 25 with ww = 5 is
   * 5 > 4.135, clamped; dw = 20 is 4 < 4.135, kept: w = 16 e^4 = 873.55. */
  detloss_coder_options o = detloss_coder_options_default();
  o.weights[2] = o.weights[3] = 5;
  const float d2[4] = {0, 0, 25, 20};
  assert_int_equal(detloss_box_decode(a, d2, 1, b, &o, &err), DETLOSS_OK);
  double w4 = 16.0 * exp(4.0);
  const double want2[4] = {-492, 8 - w4 / 2, 508, 8 + w4 / 2};
  dl_assert_close(b, want2, 4, 1e-6, 1e-4);
}

static void decode_inverts_encode_on_random_boxes(void **state) {
  (void)state;
  dl_rng r = {11};
  size_t n = 1000;
  float *a = malloc(4 * n * sizeof(float)), *g = malloc(4 * n * sizeof(float));
  float *d = malloc(4 * n * sizeof(float)), *b = malloc(4 * n * sizeof(float));
  double *want = malloc(4 * n * sizeof(double));
  for (size_t i = 0; i < n; i++) {
    for (int k = 0; k < 2; k++) {
      float x = (float)dl_rng_uniform(&r, -50, 800);
      a[4 * i + k] = x;
      a[4 * i + k + 2] = x + (float)exp(dl_rng_uniform(&r, 1, 6));
      float y = (float)dl_rng_uniform(&r, -50, 800);
      g[4 * i + k] = y;
      g[4 * i + k + 2] = y + (float)exp(dl_rng_uniform(&r, 1, 6));
    }
  }
  for (size_t i = 0; i < 4 * n; i++) want[i] = g[i];
  detloss_coder_options o = detloss_coder_options_default();
  o.clip = INFINITY; /* sizes up to e^5 apart exceed ln(1000/16) */
  detloss_error err;
  assert_int_equal(detloss_box_encode(a, g, n, d, &o, &err), DETLOSS_OK);
  assert_int_equal(detloss_box_decode(a, d, n, b, &o, &err), DETLOSS_OK);
  /* float32 round trip: a few ulps of the largest coordinate (~1200). */
  dl_assert_close(b, want, 4 * n, 1e-5, 1e-3);
  free(a);
  free(g);
  free(d);
  free(b);
  free(want);
}

static void zero_width_anchor_decodes_to_zero_width(void **state) {
  (void)state;
  /* decode never divides by the anchor width: w = e^dw * 0 = 0. */
  const float a[4] = {5, 5, 5, 15}, d[4] = {1, 0, 1, 0};
  float b[4];
  detloss_error err;
  assert_int_equal(detloss_box_decode(a, d, 1, b, NULL, &err), DETLOSS_OK);
  const double want[4] = {5, 5, 5, 15};
  dl_assert_close(b, want, 4, 0, 0);
}

static float *rows(const cJSON *arr, size_t *n) {
  *n = (size_t)cJSON_GetArraySize(arr);
  float *out = malloc(4 * *n * sizeof(float) + 1);
  size_t i = 0;
  for (const cJSON *r = arr->child; r; r = r->next, i++)
    for (int k = 0; k < 4; k++) out[4 * i + k] = (float)cJSON_GetArrayItem(r, k)->valuedouble;
  return out;
}

static double *rowsd(const cJSON *arr) {
  size_t n = (size_t)cJSON_GetArraySize(arr);
  double *out = malloc(4 * n * sizeof(double) + 1);
  size_t i = 0;
  for (const cJSON *r = arr->child; r; r = r->next, i++)
    for (int k = 0; k < 4; k++) out[4 * i + k] = cJSON_GetArrayItem(r, k)->valuedouble;
  return out;
}

static void encode_and_decode_agree_with_torchvision_boxcoder(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("box_coder/torchvision_coder.json"));
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  int ncases = 0;
  for (const cJSON *c = cJSON_GetObjectItem(root, "cases")->child; c; c = c->next, ncases++) {
    detloss_coder_options o = detloss_coder_options_default();
    for (int k = 0; k < 4; k++)
      o.weights[k] = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(c, "weights"), k)->valuedouble;
    size_t n, n2, n3;
    float *a = rows(cJSON_GetObjectItem(c, "anchors"), &n);
    float *g = rows(cJSON_GetObjectItem(c, "boxes"), &n2);
    float *dd = rows(cJSON_GetObjectItem(c, "decode_deltas"), &n3);
    assert_true(n == n2 && n == n3 && n == 64);
    double *e32 = rowsd(cJSON_GetObjectItem(c, "deltas_f32"));
    double *e64 = rowsd(cJSON_GetObjectItem(c, "deltas_f64"));
    double *b32 = rowsd(cJSON_GetObjectItem(c, "decoded_f32"));
    double *b64 = rowsd(cJSON_GetObjectItem(c, "decoded_f64"));
    float *d = malloc(4 * n * sizeof(float)), *b = malloc(4 * n * sizeof(float));
    detloss_error err;
    assert_int_equal(detloss_box_encode(a, g, n, d, &o, &err), DETLOSS_OK);
    assert_int_equal(detloss_box_decode(a, dd, n, b, &o, &err), DETLOSS_OK);
    /* float32 torchvision: same operations; log/exp may differ in the last ulp,
     * which the weights (up to 10) scale. */
    dl_assert_close(d, e32, 4 * n, 2e-6, 1e-6);
    dl_assert_close(b, b32, 4 * n, 2e-6, 1e-4);
    /* float64: float32 rounding of inputs to ~1e3 px magnitudes. */
    dl_assert_close(d, e64, 4 * n, 1e-5, 1e-5);
    dl_assert_close(b, b64, 4 * n, 1e-5, 1e-3);
    free(a);
    free(g);
    free(dd);
    free(e32);
    free(e64);
    free(b32);
    free(b64);
    free(d);
    free(b);
  }
  assert_int_equal(ncases, 2);
  cJSON_Delete(root);
  free(text);
}

static void results_are_bitwise_identical_for_1_2_and_4_threads(void **state) {
  (void)state;
  dl_rng r = {5};
  size_t n = 50000;
  float *a = malloc(4 * n * sizeof(float)), *g = malloc(4 * n * sizeof(float));
  float *ref = malloc(4 * n * sizeof(float)), *got = malloc(4 * n * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    float x = (float)dl_rng_uniform(&r, 0, 1000), y = (float)dl_rng_uniform(&r, 0, 1000);
    a[4 * i] = x;
    a[4 * i + 1] = y;
    a[4 * i + 2] = x + (float)dl_rng_uniform(&r, 1, 300);
    a[4 * i + 3] = y + (float)dl_rng_uniform(&r, 1, 300);
    g[4 * i] = x + (float)dl_rng_uniform(&r, -20, 20);
    g[4 * i + 1] = y + (float)dl_rng_uniform(&r, -20, 20);
    g[4 * i + 2] = g[4 * i] + (float)dl_rng_uniform(&r, 1, 300);
    g[4 * i + 3] = g[4 * i + 1] + (float)dl_rng_uniform(&r, 1, 300);
  }
  for (int decode = 0; decode < 2; decode++) {
    detloss_coder_options o = detloss_coder_options_default();
    detloss_error err;
    o.num_threads = 1;
    if (decode)
      assert_int_equal(detloss_box_decode(a, ref, n, got, &o, &err), 0);
    else
      assert_int_equal(detloss_box_encode(a, g, n, ref, &o, &err), 0);
    float *base = malloc(4 * n * sizeof(float));
    memcpy(base, decode ? got : ref, 4 * n * sizeof(float));
    for (int t = 2; t <= 4; t += 2) {
      o.num_threads = t;
      if (decode)
        assert_int_equal(detloss_box_decode(a, ref, n, got, &o, &err), 0);
      else
        assert_int_equal(detloss_box_encode(a, g, n, got, &o, &err), 0);
      dl_assert_bitwise_equal(got, base, 4 * n);
    }
    free(base);
  }
  free(a);
  free(g);
  free(ref);
  free(got);
}

static void bad_input_is_reported_and_output_untouched(void **state) {
  (void)state;
  const float a[8] = {0, 0, 10, 10, 0, 0, 0, 10}; /* anchor 1 has zero width */
  const float g[8] = {1, 1, 9, 9, 1, 1, 9, 9};
  const float flat[8] = {1, 1, 9, 9, 3, 3, 3, 9}; /* box 1 has zero width */
  const float nan_d[8] = {0, 0, 0, 0, 0, 0, NAN, 0};
  const float big_d[8] = {0, 0, 0, 0, 1e38f, 0, 0, 0}; /* 1e38 * width 8 overflows */
  float out[8] = {7, 7, 7, 7, 7, 7, 7, 7};
  detloss_error err;
  detloss_coder_options o = detloss_coder_options_default();

  assert_int_equal(detloss_box_encode(a, g, 2, out, NULL, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "anchors[1]");
  assert_int_equal(detloss_box_encode(a, flat, 1, out, NULL, &err), DETLOSS_OK);
  for (int i = 0; i < 4; i++) out[i] = 7; /* first row was valid: reset */
  assert_int_equal(detloss_box_encode(g, flat, 2, out, NULL, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "boxes[1]");
  assert_int_equal(detloss_box_decode(g, nan_d, 2, out, NULL, &err), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "deltas[1]");
  assert_int_equal(detloss_box_decode(g, big_d, 2, out, NULL, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "deltas[1]");
  assert_int_equal(detloss_box_decode(NULL, big_d, 2, out, NULL, &err), DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "anchors");
  o.weights[2] = 0;
  assert_int_equal(detloss_box_encode(g, g, 2, out, &o, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "weights[2]");
  o = detloss_coder_options_default();
  o.clip = 0;
  assert_int_equal(detloss_box_decode(g, g, 2, out, &o, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "clip");
  o.clip = NAN;
  assert_int_equal(detloss_box_decode(g, g, 2, out, &o, &err), DETLOSS_ERR_RANGE);
  for (int i = 0; i < 8; i++) assert_true(out[i] == 7.0f);
}

/* Encode and decode work in place (the output may equal either
 * input exactly; each row is read before it is written) and give the same
 * bits as out of place; a partial overlap is DETLOSS_ERR_SHAPE. */
static void coding_works_in_place_and_rejects_partial_overlap(void **state) {
  (void)state;
  const float an[8] = {0, 0, 10, 10, 5, 5, 25, 15};
  const float bx[8] = {1, 2, 9, 12, 4, 6, 30, 14};
  float ref[8], io[8], dec[8];
  detloss_error err;
  assert_int_equal(detloss_box_encode(an, bx, 2, ref, NULL, &err), DETLOSS_OK);
  memcpy(io, bx, sizeof io);
  assert_int_equal(detloss_box_encode(an, io, 2, io, NULL, &err), DETLOSS_OK);
  dl_assert_bitwise_equal(io, ref, 8);
  memcpy(io, an, sizeof io);
  assert_int_equal(detloss_box_encode(io, bx, 2, io, NULL, &err), DETLOSS_OK);
  dl_assert_bitwise_equal(io, ref, 8);
  assert_int_equal(detloss_box_decode(an, ref, 2, dec, NULL, &err), DETLOSS_OK);
  memcpy(io, ref, sizeof io);
  assert_int_equal(detloss_box_decode(an, io, 2, io, NULL, &err), DETLOSS_OK);
  dl_assert_bitwise_equal(io, dec, 8);
  float buf[12];
  memcpy(buf, bx, sizeof bx);
  assert_int_equal(detloss_box_encode(an, buf, 2, buf + 4, NULL, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "deltas");
  assert_non_null(strstr(err.msg, "overlaps boxes"));
  assert_int_equal(detloss_box_decode(an, buf, 2, buf + 1, NULL, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "boxes");
  assert_true(memcmp(buf, bx, sizeof bx) == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(encode_of_the_published_example_is_exact),
      cmocka_unit_test(decode_clamps_dw_and_dh_from_above_only),
      cmocka_unit_test(decode_inverts_encode_on_random_boxes),
      cmocka_unit_test(zero_width_anchor_decodes_to_zero_width),
      cmocka_unit_test(encode_and_decode_agree_with_torchvision_boxcoder),
      cmocka_unit_test(results_are_bitwise_identical_for_1_2_and_4_threads),
      cmocka_unit_test(bad_input_is_reported_and_output_untouched),
      cmocka_unit_test(coding_works_in_place_and_rejects_partial_overlap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
