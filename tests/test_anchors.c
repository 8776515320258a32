/* test_anchors.c - anchor generation from grid configs, and the published anchor sets. */
#include <cjson/cJSON.h>

#include "testutil.h"
#include "detloss/detloss.h"

#define ANCHOR_SET(name) DETLOSS_FIXTURE_DIR "/../../anchors/" name

typedef struct cfg_store {
  detloss_anchor_level lv[8];
  float sizes[8][8], ratios[8][8];
  detloss_anchor_config cfg;
} cfg_store;

/* The numbers of a (possibly nested) JSON array, flattened in order. */
static size_t floats_into(const cJSON *arr, float *out, size_t cap) {
  size_t n = 0;
  for (const cJSON *e = arr->child; e; e = e->next) {
    if (cJSON_IsArray(e)) {
      n += floats_into(e, out + n, cap - n);
      continue;
    }
    assert_true(n < cap);
    out[n++] = (float)e->valuedouble;
  }
  return n;
}

/* torchvision cases give image_size (stride = image // feature); detectron2 ones strides. */
static void config_of(const cJSON *c, cfg_store *s) {
  memset(s, 0, sizeof *s);
  const cJSON *is = cJSON_GetObjectItemCaseSensitive(c, "image_size");
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(c, "strides");
  const cJSON *fm = cJSON_GetObjectItemCaseSensitive(c, "feature_maps");
  const cJSON *sz = cJSON_GetObjectItemCaseSensitive(c, "sizes");
  const cJSON *ar = cJSON_GetObjectItemCaseSensitive(c, "aspect_ratios");
  size_t L = (size_t)cJSON_GetArraySize(fm);
  for (size_t l = 0; l < L; l++) {
    const cJSON *f = cJSON_GetArrayItem(fm, (int)l);
    long h = (long)cJSON_GetArrayItem(f, 0)->valuedouble,
         w = (long)cJSON_GetArrayItem(f, 1)->valuedouble;
    s->lv[l].feat_h = (size_t)h;
    s->lv[l].feat_w = (size_t)w;
    if (is) {
      s->lv[l].stride_h = (float)((long)cJSON_GetArrayItem(is, 0)->valuedouble / h);
      s->lv[l].stride_w = (float)((long)cJSON_GetArrayItem(is, 1)->valuedouble / w);
    } else {
      s->lv[l].stride_h = s->lv[l].stride_w = (float)cJSON_GetArrayItem(st, (int)l)->valuedouble;
    }
    s->lv[l].sizes = s->sizes[l];
    s->lv[l].num_sizes = floats_into(cJSON_GetArrayItem(sz, (int)l), s->sizes[l], 8);
    s->lv[l].ratios = s->ratios[l];
    s->lv[l].num_ratios = floats_into(cJSON_GetArrayItem(ar, (int)l), s->ratios[l], 8);
  }
  const cJSON *conv = cJSON_GetObjectItemCaseSensitive(c, "convention");
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(c, "offset");
  s->cfg.levels = s->lv;
  s->cfg.num_levels = L;
  s->cfg.convention = strcmp(conv->valuestring, "detectron2") == 0 ? DETLOSS_ANCHORS_DETECTRON2
                                                                   : DETLOSS_ANCHORS_TORCHVISION;
  s->cfg.offset = off ? (float)off->valuedouble : 0.0f;
}

/* Bitwise against torchvision AnchorGenerator and the detectron2 rules (tolerance 0). */
static void generated_anchors_equal_the_reference_generators_bit_for_bit(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("anchors/anchors_cases.json"));
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  int n = 0;
  for (const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "cases")->child; c;
       c = c->next, n++) {
    cfg_store s;
    config_of(c, &s);
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "anchors");
    size_t A = 0;
    assert_int_equal(detloss_anchors_count(&s.cfg, &A, NULL), DETLOSS_OK);
    assert_int_equal(A, (size_t)cJSON_GetArraySize(want));
    float *got = malloc(A * 4 * sizeof(float)), *exp_ = malloc(A * 4 * sizeof(float));
    assert_int_equal(detloss_anchors_generate(&s.cfg, got, A, NULL), DETLOSS_OK);
    size_t i = 0;
    for (const cJSON *r = want->child; r; r = r->next)
      for (const cJSON *e = r->child; e; e = e->next) exp_[i++] = (float)e->valuedouble;
    dl_assert_bitwise_equal(got, exp_, 4 * A);
    free(got);
    free(exp_);
  }
  assert_true(n >= 7);
  cJSON_Delete(root);
  free(text);
}

static void torchvision_base_anchors_of_size_32_are_rounded_half_to_even(void **state) {
  (void)state;
  /* ratio 0.5: h_ratio = sqrt(0.5) = 0.70710677, w_ratio = 1.4142135; ws = 45.254833,
   * hs = 22.627417; halves 22.6274 -> 23 and 11.3137 -> 11: [-23,-11,23,11]; ratio 1:
   * [-16,-16,16,16]; ratio 2: [-11,-23,11,23] (docs/math/anchors.md s1). Size 45 ratio 1:
   * 22.5 rounds half to even -> 22. */
  float sizes[2] = {32, 45}, ratios[3] = {0.5f, 1.0f, 2.0f};
  detloss_anchor_level lv = {1, 1, 16, 16, sizes, 2, ratios, 3, NULL, 0, NULL, 0};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  float base[6 * 4];
  size_t k = 0;
  assert_int_equal(detloss_anchors_level_base(&cfg, 0, base, 6, &k, NULL), DETLOSS_OK);
  assert_int_equal(k, 6);
  /* ratio-major: index = r * 2 + s */
  const double want32[12] = {-23, -11, 23, 11, -16, -16, 16, 16, -11, -23, 11, 23};
  float got32[12];
  memcpy(got32, base + 0, 4 * sizeof(float));      /* r 0.5, s 32 */
  memcpy(got32 + 4, base + 8, 4 * sizeof(float));  /* r 1, s 32 */
  memcpy(got32 + 8, base + 16, 4 * sizeof(float)); /* r 2, s 32 */
  dl_assert_close(got32, want32, 12, 0.0, 0.0);
  const double want45[4] = {-22, -22, 22, 22};
  dl_assert_close(base + 12, want45, 4, 0.0, 0.0);
}

static void detectron2_base_anchors_are_unrounded_and_size_major(void **state) {
  (void)state;
  /* size 32 ratio 0.5: w = sqrt(1024 / 0.5) = 45.254834, h = 0.5 w = 22.627417:
   * [-22.627417, -11.3137085, 22.627417, 11.3137085] (docs/math/anchors.md s1). */
  float sizes[2] = {32, 64}, ratios[2] = {0.5f, 1.0f};
  detloss_anchor_level lv = {1, 1, 16, 16, sizes, 2, ratios, 2, NULL, 0, NULL, 0};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_DETECTRON2, 0.0f};
  float base[16];
  size_t k = 0;
  assert_int_equal(detloss_anchors_level_base(&cfg, 0, base, 4, &k, NULL), DETLOSS_OK);
  const double want[16] = {-22.627416997969522,
                           -11.313708498984761,
                           22.627416997969522,
                           11.313708498984761,
                           -16,
                           -16,
                           16,
                           16,
                           -45.254833995939045,
                           -22.627416997969522,
                           45.254833995939045,
                           22.627416997969522,
                           -32,
                           -32,
                           32,
                           32};
  dl_assert_close(base, want, 16, 1e-7, 0.0); /* float32 rounding of the double values */
}

static void anchors_are_ordered_level_then_row_then_column_then_base(void **state) {
  (void)state;
  /* one explicit base box [-2,-1,2,1], stride (h 10, w 20), offset 0.5, 2 x 3 cells:
   * anchor (y, x) = [(x + .5) 20 - 2, (y + .5) 10 - 1, (x + .5) 20 + 2, (y + .5) 10 + 1] */
  float base[4] = {-2, -1, 2, 1};
  detloss_anchor_level lv = {2, 3, 10, 20, NULL, 0, NULL, 0, NULL, 0, base, 1};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.5f};
  float a[24];
  assert_int_equal(detloss_anchors_generate(&cfg, a, 6, NULL), DETLOSS_OK);
  double want[24];
  for (int y = 0; y < 2; y++)
    for (int x = 0; x < 3; x++) {
      double cx = (x + 0.5) * 20, cy = (y + 0.5) * 10;
      double *w = want + 4 * (y * 3 + x);
      w[0] = cx - 2;
      w[1] = cy - 1;
      w[2] = cx + 2;
      w[3] = cy + 1;
    }
  dl_assert_close(a, want, 24, 0.0, 0.0);
}

static cJSON *load_set(const char *path) {
  char *text = dl_read_file(path);
  cJSON *j = cJSON_Parse(text);
  free(text);
  assert_non_null(j);
  assert_non_null(cJSON_GetObjectItemCaseSensitive(j, "source"));
  return j;
}

static void the_classic_faster_rcnn_set_reproduces_py_faster_rcnn(void **state) {
  (void)state;
  cJSON *j = load_set(ANCHOR_SET("faster_rcnn_classic.json"));
  const cJSON *l0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "levels"), 0);
  float base[36], plus1[36];
  assert_int_equal(floats_into(cJSON_GetObjectItemCaseSensitive(l0, "base"), base, 36), 36);
  assert_int_equal(floats_into(cJSON_GetObjectItemCaseSensitive(l0, "base_plus_one"), plus1, 36),
                   36);
  /* py-faster-rcnn generate_anchors() (docs/math/anchors.md s1, ratio-major) */
  const double pub[36] = {-84, -40, 99, 55, -176, -88,  191, 103, -360, -184, 375, 199,
                          -56, -56, 71, 71, -120, -120, 135, 135, -248, -248, 263, 263,
                          -36, -80, 51, 95, -80,  -168, 95,  183, -168, -344, 183, 359};
  dl_assert_close(plus1, pub, 36, 0.0, 0.0);
  /* continuous convention: x2 + 1, y2 + 1 (same widths: 99 - -84 + 1 = 184 = 100 - -84) */
  double cont[36];
  for (int i = 0; i < 36; i++) cont[i] = pub[i] + ((i % 4) >= 2 ? 1.0 : 0.0);
  dl_assert_close(base, cont, 36, 0.0, 0.0);
  /* on a 2 x 3 map with stride 16: anchor (y 1, x 2, k) = base[k] + (32, 16, 32, 16) */
  detloss_anchor_level lv = {2, 3, 16, 16, NULL, 0, NULL, 0, NULL, 0, base, 9};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  float a[54 * 4];
  assert_int_equal(detloss_anchors_generate(&cfg, a, 54, NULL), DETLOSS_OK);
  double want[36];
  for (int i = 0; i < 36; i++) want[i] = cont[i] + ((i % 2) == 0 ? 32.0 : 16.0);
  dl_assert_close(a + 4 * (9 * 5), want, 36, 0.0, 0.0);
  cJSON_Delete(j);
}

static void yolo_shape_sets_centre_on_cell_centres(void **state) {
  (void)state;
  cJSON *j = load_set(ANCHOR_SET("yolov3.json"));
  const cJSON *l0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "levels"), 0);
  float shapes[6];
  assert_int_equal(floats_into(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(l0, "shapes"),
                                                  0),
                               shapes, 2),
                   2);
  assert_int_equal(floats_into(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(l0, "shapes"),
                                                  1),
                               shapes + 2, 2),
                   2);
  assert_int_equal(floats_into(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(l0, "shapes"),
                                                  2),
                               shapes + 4, 2),
                   2);
  /* (10,13) at stride 8, cell (0,0), offset 0.5: centre (4,4): [-1,-2.5,9,10.5] */
  detloss_anchor_level lv = {1, 2, 8, 8, NULL, 0, NULL, 0, shapes, 3, NULL, 0};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION,
                               (float)cJSON_GetObjectItemCaseSensitive(j, "offset")->valuedouble};
  float a[24];
  assert_int_equal(detloss_anchors_generate(&cfg, a, 6, NULL), DETLOSS_OK);
  const double want[8] = {-1, -2.5, 9, 10.5, -4, -11, 12, 19}; /* (16,30): 4 -/+ 8, 4 -/+ 15 */
  dl_assert_close(a, want, 8, 0.0, 0.0);
  const double second_cell[4] = {7, -2.5, 17, 10.5}; /* cell x = 1: centre 12 */
  dl_assert_close(a + 12, second_cell, 4, 0.0, 0.0);
  cJSON_Delete(j);
}

static void retinanet_set_has_three_truncated_scales_per_octave(void **state) {
  (void)state;
  cJSON *j = load_set(ANCHOR_SET("torchvision_retinanet.json"));
  int l = 0;
  for (const cJSON *lv = cJSON_GetObjectItemCaseSensitive(j, "levels")->child; lv;
       lv = lv->next, l++) {
    float s[3];
    assert_int_equal(floats_into(cJSON_GetObjectItemCaseSensitive(lv, "sizes"), s, 3), 3);
    double x = 32.0 * (1 << l);
    const double want[3] = {x, floor(x * pow(2.0, 1.0 / 3.0)), floor(x * pow(2.0, 2.0 / 3.0))};
    dl_assert_close(s, want, 3, 0.0, 0.0);
  }
  assert_int_equal(l, 5);
  cJSON_Delete(j);
  /* every published set loads and names its source */
  const char *sets[] = {ANCHOR_SET("torchvision_fpn.json"), ANCHOR_SET("yolov2_voc.json"),
                        ANCHOR_SET("yolov2_coco.json"),     ANCHOR_SET("yolov5.json"),
                        ANCHOR_SET("yolov4.json"),          ANCHOR_SET("ssd300.json")};
  for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) cJSON_Delete(load_set(sets[i]));
}

static void bad_configs_are_rejected_naming_the_field_with_outputs_untouched(void **state) {
  (void)state;
  float sizes[2] = {32, -1}, ratios[1] = {1};
  detloss_anchor_level lv = {2, 2, 8, 8, sizes, 1, ratios, 1, NULL, 0, NULL, 0};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  float out[16];
  for (int i = 0; i < 16; i++) out[i] = 42.0f;
  detloss_error err;
  /* count mismatch: 2 x 2 x 1 = 4 anchors, 3 requested */
  assert_int_equal(detloss_anchors_generate(&cfg, out, 3, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "count");
  lv.num_sizes = 2; /* now a negative size */
  assert_int_equal(detloss_anchors_generate(&cfg, out, 8, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "levels[0].sizes[1]");
  lv.num_sizes = 1;
  lv.stride_w = 0.0f;
  assert_int_equal(detloss_anchors_generate(&cfg, out, 4, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "levels[0].stride");
  lv.stride_w = 8.0f;
  cfg.offset = 1.0f;
  assert_int_equal(detloss_anchors_generate(&cfg, out, 4, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "offset");
  cfg.offset = 0.0f;
  ratios[0] = NAN;
  assert_int_equal(detloss_anchors_generate(&cfg, out, 4, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "levels[0].ratios[0]");
  ratios[0] = 1.0f;
  for (int i = 0; i < 16; i++) assert_true(out[i] == 42.0f);
  size_t k;
  assert_int_equal(detloss_anchors_level_base(&cfg, 0, out, 0, &k, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "capacity");
  assert_int_equal(detloss_anchors_level_base(&cfg, 1, NULL, 0, &k, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "level");
  assert_int_equal(detloss_anchors_count(NULL, &k, &err), DETLOSS_ERR_NULL);
  assert_int_equal(detloss_anchors_generate(&cfg, out, 4, &err), DETLOSS_OK);
  /* an empty level (0 x 5 cells) contributes nothing */
  lv.feat_h = 0;
  assert_int_equal(detloss_anchors_count(&cfg, &k, NULL), DETLOSS_OK);
  assert_int_equal(k, 0);
}

/* A finite config whose anchors would not be finite (or would
 * leave the 1e18 coordinate bound of the IoU family) is a range error naming
 * the field, before anything is written; so is a count that overflows. */
static void configs_whose_anchors_overflow_are_rejected_naming_the_field(void **state) {
  (void)state;
  float sizes[1] = {3e38f}, ratios[3] = {0.5f, 1.0f, 2.0f};
  detloss_anchor_level lv = {2, 2, 8, 8, sizes, 1, ratios, 3, NULL, 0, NULL, 0};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  float out[48];
  for (int i = 0; i < 48; i++) out[i] = 42.0f;
  detloss_error err;
  size_t k = 0;
  /* size 3e38, ratio 0.5: ws = 3e38 / sqrt(0.5) = 4.2e38 > FLT_MAX: -Inf/+Inf corners
   * (before the fix: DETLOSS_OK with Inf anchors, JSON null in the CLI). */
  assert_int_equal(detloss_anchors_count(&cfg, &k, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "levels[0].sizes[0]");
  assert_int_equal(detloss_anchors_generate(&cfg, out, 12, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "levels[0].sizes[0]");
  /* 2e18 with ratio 1 is finite (+-1e18 is allowed) but 3e18 is beyond the bound */
  sizes[0] = 2e18f;
  lv.num_ratios = 1;
  lv.ratios = ratios + 1;
  lv.feat_h = lv.feat_w = 1;
  assert_int_equal(detloss_anchors_generate(&cfg, out, 1, &err), DETLOSS_OK);
  assert_true(out[2] == 1e18f);
  sizes[0] = 3e18f;
  for (int i = 0; i < 48; i++) out[i] = 42.0f;
  assert_int_equal(detloss_anchors_level_base(&cfg, 0, out, 1, &k, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "levels[0].sizes[0]");
  /* detectron2: w = sqrt(s^2 / r) in double, then float: Inf for s = 3e38 */
  sizes[0] = 3e38f;
  cfg.convention = DETLOSS_ANCHORS_DETECTRON2;
  assert_int_equal(detloss_anchors_count(&cfg, &k, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "levels[0].sizes[0]");
  cfg.convention = DETLOSS_ANCHORS_TORCHVISION;
  /* shapes and explicit base anchors are bounded likewise */
  const float shapes[2] = {10.0f, 3e18f};
  lv.shapes = shapes;
  lv.num_shapes = 1;
  assert_int_equal(detloss_anchors_count(&cfg, &k, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "levels[0].shapes[0]");
  lv.shapes = NULL;
  lv.num_shapes = 0;
  /* A stride that puts the last cell beyond 1e18: size 32, stride 1e30 on a
   * 2 x 2 map, offset 0.5: shift 1.5e30 (finite, but areas would overflow). */
  sizes[0] = 32.0f;
  lv.feat_h = lv.feat_w = 2;
  lv.stride_h = lv.stride_w = 1e30f;
  cfg.offset = 0.5f;
  assert_int_equal(detloss_anchors_generate(&cfg, out, 4, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "levels[0].stride");
  for (int i = 0; i < 48; i++) assert_true(out[i] == 42.0f);
  /* the anchor count: 2^31 x 2^31 cells x 1 overflows size_t on 32-bit and
   * exceeds the indexable count (DL_MAX_ELEMS / 4 = 2^58 on 64-bit) with 2^60 */
  cfg.offset = 0.0f;
  lv.stride_h = lv.stride_w = 1e-30f; /* keeps the extent tiny */
  lv.feat_h = (size_t)1 << 31;
  lv.feat_w = (size_t)1 << 31;
  if (sizeof(size_t) >= 8) lv.feat_w = (size_t)1 << 29; /* 2^60 anchors */
  assert_int_equal(detloss_anchors_count(&cfg, &k, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "levels[0].feat_h");
}

/* The output may not overlap the config it is generated from. */
static void anchors_may_not_overlap_their_config(void **state) {
  (void)state;
  float buf[64];
  for (int i = 0; i < 64; i++) buf[i] = 0.0f;
  buf[0] = 32.0f; /* sizes */
  buf[1] = 1.0f;  /* ratios */
  detloss_anchor_level lv = {2, 2, 8, 8, buf, 1, buf + 1, 1, NULL, 0, NULL, 0};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  detloss_error err;
  size_t k;
  assert_int_equal(detloss_anchors_generate(&cfg, buf, 4, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "anchors");
  assert_non_null(strstr(err.msg, "overlaps levels[0].sizes"));
  assert_int_equal(detloss_anchors_level_base(&cfg, 0, buf + 1, 1, &k, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "base");
  assert_true(buf[0] == 32.0f && buf[1] == 1.0f && buf[2] == 0.0f);
  /* disjoint: fine */
  assert_int_equal(detloss_anchors_generate(&cfg, buf + 8, 4, &err), DETLOSS_OK);
  assert_true(buf[8] == -16.0f && buf[10] == 16.0f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(generated_anchors_equal_the_reference_generators_bit_for_bit),
      cmocka_unit_test(torchvision_base_anchors_of_size_32_are_rounded_half_to_even),
      cmocka_unit_test(detectron2_base_anchors_are_unrounded_and_size_major),
      cmocka_unit_test(anchors_are_ordered_level_then_row_then_column_then_base),
      cmocka_unit_test(the_classic_faster_rcnn_set_reproduces_py_faster_rcnn),
      cmocka_unit_test(yolo_shape_sets_centre_on_cell_centres),
      cmocka_unit_test(retinanet_set_has_three_truncated_scales_per_octave),
      cmocka_unit_test(bad_configs_are_rejected_naming_the_field_with_outputs_untouched),
      cmocka_unit_test(configs_whose_anchors_overflow_are_rejected_naming_the_field),
      cmocka_unit_test(anchors_may_not_overlap_their_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
