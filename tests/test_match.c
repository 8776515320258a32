/* test_match.c - anchor matching (detloss_match, detloss_match_grid) and targets. */
#include <cjson/cJSON.h>

#include "testutil.h"
#include "detloss/detloss.h"

static float *rows_of(const cJSON *arr, size_t width, size_t *n) {
  *n = (size_t)cJSON_GetArraySize(arr);
  float *out = malloc((*n ? *n : 1) * width * sizeof(float));
  assert_non_null(out);
  size_t i = 0;
  for (const cJSON *r = arr->child; r; r = r->next, i++) {
    size_t k = 0;
    for (const cJSON *e = r->child; e; e = e->next, k++) out[i * width + k] = (float)e->valuedouble;
    assert_int_equal(k, width);
  }
  return out;
}

static float *floats_of(const cJSON *arr, size_t *n) {
  *n = (size_t)cJSON_GetArraySize(arr);
  float *out = malloc((*n ? *n : 1) * sizeof(float));
  assert_non_null(out);
  size_t i = 0;
  for (const cJSON *e = arr->child; e; e = e->next) out[i++] = (float)e->valuedouble;
  return out;
}

static double num_or(const cJSON *c, const char *key, double dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? 1.0 : 0.0;
  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static detloss_match_options options_of(const cJSON *c) {
  detloss_match_options o = detloss_match_options_default();
  o.high = (float)num_or(c, "high", 0.7);
  o.low = (float)num_or(c, "low", 0.3);
  o.allow_low_quality = (int)num_or(c, "allow_low_quality", 1);
  o.low_quality_min_iou = (float)num_or(c, "low_quality_min_iou", 0.0);
  o.gt_max_assign_all = (int)num_or(c, "gt_max_assign_all", 1);
  o.crowd_ioa_thresh = (float)num_or(c, "crowd_ioa_thresh", 0.7);
  o.allowed_border = (float)num_or(c, "allowed_border", -1.0);
  const cJSON *is = cJSON_GetObjectItemCaseSensitive(c, "image_size");
  if (is) {
    o.image_h = (float)cJSON_GetArrayItem(is, 0)->valuedouble;
    o.image_w = (float)cJSON_GetArrayItem(is, 1)->valuedouble;
  }
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "semantics");
  if (s && strcmp(s->valuestring, "detectron2") == 0) o.semantics = DETLOSS_MATCH_DETECTRON2;
  if (s && strcmp(s->valuestring, "mmdet") == 0) o.semantics = DETLOSS_MATCH_MMDET;
  return o;
}

/* A grid config from a fixture's image_size / feature_maps / sizes / aspect_ratios
 * (torchvision: stride = image size // feature size). Storage is static per call. */
typedef struct cfg_store {
  detloss_anchor_level lv[8];
  float sizes[8][8], ratios[8][8];
  detloss_anchor_config cfg;
} cfg_store;

static void config_of(const cJSON *c, cfg_store *s) {
  memset(s, 0, sizeof *s);
  const cJSON *is = cJSON_GetObjectItemCaseSensitive(c, "image_size");
  const cJSON *fm = cJSON_GetObjectItemCaseSensitive(c, "feature_maps");
  const cJSON *sz = cJSON_GetObjectItemCaseSensitive(c, "sizes");
  const cJSON *ar = cJSON_GetObjectItemCaseSensitive(c, "aspect_ratios");
  size_t L = (size_t)cJSON_GetArraySize(fm);
  assert_true(L <= 8);
  long H = (long)cJSON_GetArrayItem(is, 0)->valuedouble,
       W = (long)cJSON_GetArrayItem(is, 1)->valuedouble;
  for (size_t l = 0; l < L; l++) {
    const cJSON *f = cJSON_GetArrayItem(fm, (int)l);
    long h = (long)cJSON_GetArrayItem(f, 0)->valuedouble,
         w = (long)cJSON_GetArrayItem(f, 1)->valuedouble;
    s->lv[l].feat_h = (size_t)h;
    s->lv[l].feat_w = (size_t)w;
    s->lv[l].stride_h = (float)(H / h);
    s->lv[l].stride_w = (float)(W / w);
    size_t n = 0;
    for (const cJSON *e = cJSON_GetArrayItem(sz, (int)l)->child; e; e = e->next)
      s->sizes[l][n++] = (float)e->valuedouble;
    s->lv[l].sizes = s->sizes[l];
    s->lv[l].num_sizes = n;
    n = 0;
    for (const cJSON *e = cJSON_GetArrayItem(ar, (int)l)->child; e; e = e->next)
      s->ratios[l][n++] = (float)e->valuedouble;
    s->lv[l].ratios = s->ratios[l];
    s->lv[l].num_ratios = n;
  }
  s->cfg.levels = s->lv;
  s->cfg.num_levels = L;
  s->cfg.convention = DETLOSS_ANCHORS_TORCHVISION;
  s->cfg.offset = 0.0f;
}

static void assert_matches_equal(const int64_t *got, const int64_t *want, size_t n,
                                 const char *name) {
  for (size_t i = 0; i < n; i++) {
    if (got[i] != want[i]) {
      print_error("%s: matches[%zu] = %lld, expected %lld\n", name, i, (long long)got[i],
                  (long long)want[i]);
      fail();
    }
  }
}

/* Every fixture case: matches exactly, max_iou bitwise (tolerance 0: the IoU is computed
 * with torchvision's float32 operations); grid cases through both paths. */
static void every_fixture_case_matches_its_reference_exactly(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("match/match_cases.json"));
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
  int ncase = 0, ngrid = 0;
  for (const cJSON *c = cases->child; c; c = c->next, ncase++) {
    const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
    detloss_match_options o = options_of(c);
    size_t G, A, nm;
    float *gt = rows_of(cJSON_GetObjectItemCaseSensitive(c, "gt"), 4, &G);
    float *want_mi = floats_of(cJSON_GetObjectItemCaseSensitive(c, "max_iou"), &nm);
    int64_t *want = malloc(nm * sizeof *want);
    size_t i = 0;
    for (const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "matches")->child; e; e = e->next)
      want[i++] = (int64_t)e->valuedouble;
    uint8_t crowd[64] = {0};
    const cJSON *ic = cJSON_GetObjectItemCaseSensitive(c, "is_crowd");
    i = 0;
    if (ic)
      for (const cJSON *e = ic->child; e; e = e->next) crowd[i++] = (uint8_t)e->valueint;
    float *anchors;
    cfg_store cs;
    int grid = cJSON_GetObjectItemCaseSensitive(c, "anchors") == NULL;
    if (grid) {
      config_of(c, &cs);
      assert_int_equal(detloss_anchors_count(&cs.cfg, &A, NULL), DETLOSS_OK);
      anchors = malloc(A * 4 * sizeof(float));
      assert_int_equal(detloss_anchors_generate(&cs.cfg, anchors, A, NULL), DETLOSS_OK);
      ngrid++;
    } else {
      anchors = rows_of(cJSON_GetObjectItemCaseSensitive(c, "anchors"), 4, &A);
    }
    assert_int_equal(A, nm);
    int64_t *m = malloc((A ? A : 1) * sizeof *m);
    float *mi = malloc((A ? A : 1) * sizeof *mi);
    detloss_error err = {0};
    detloss_status st = detloss_match(anchors, A, gt, G, ic ? crowd : NULL, m, mi, &o, &err);
    if (st != DETLOSS_OK) print_error("%s: %s: %s\n", name, err.where, err.msg);
    assert_int_equal(st, DETLOSS_OK);
    assert_matches_equal(m, want, A, name);
    dl_assert_bitwise_equal(mi, want_mi, A);
    if (grid) {
      memset(m, 0x55, A * sizeof *m);
      assert_int_equal(detloss_match_grid(&cs.cfg, gt, G, ic ? crowd : NULL, m, mi, A, &o, NULL),
                       DETLOSS_OK);
      assert_matches_equal(m, want, A, name);
      dl_assert_bitwise_equal(mi, want_mi, A);
    }
    free(gt);
    free(want_mi);
    free(want);
    free(anchors);
    free(m);
    free(mi);
  }
  assert_true(ncase >= 50);
  assert_true(ngrid >= 8);
  cJSON_Delete(root);
  free(text);
}

static void an_anchor_best_for_two_gts_takes_the_lower_gt_index(void **state) {
  (void)state;
  /* a0 [0,0,10,10] vs gt0 [0,0,9,10]: 90/100 = 0.9; vs gt1 [1,0,10,10]: 90/100 = 0.9 (tie):
   * argmax is gt0, positive (0.9 >= 0.7). a1 [20,20,30,30] overlaps nothing: negative. */
  const float anchors[] = {0, 0, 10, 10, 20, 20, 30, 30};
  const float gt[] = {0, 0, 9, 10, 1, 0, 10, 10};
  int64_t m[2];
  float mi[2];
  assert_int_equal(detloss_match(anchors, 2, gt, 2, NULL, m, mi, NULL, NULL), DETLOSS_OK);
  assert_int_equal(m[0], 0);
  assert_int_equal(m[1], -1);
  dl_assert_close1(mi[0], 0.9, 0.0, 1e-7); /* 0.9f */
  dl_assert_close1(mi[1], 0.0, 0.0, 0.0);
}

static void a_gt_whose_best_iou_is_below_low_still_gets_its_best_anchor(void **state) {
  (void)state;
  /* gt [0,0,4,4] vs a0 [0,0,10,10]: 16/100 = 0.16 < low 0.3 -> -1, then low-quality: a0 is
   * gt0's best -> positive 0. a1 [5,5,15,15]: 0 -> -1. With allow_low_quality = 0: -1. */
  const float anchors[] = {0, 0, 10, 10, 5, 5, 15, 15};
  const float gt[] = {0, 0, 4, 4};
  int64_t m[2];
  assert_int_equal(detloss_match(anchors, 2, gt, 1, NULL, m, NULL, NULL, NULL), DETLOSS_OK);
  assert_int_equal(m[0], 0);
  assert_int_equal(m[1], -1);
  detloss_match_options o = detloss_match_options_default();
  o.allow_low_quality = 0;
  assert_int_equal(detloss_match(anchors, 2, gt, 1, NULL, m, NULL, &o, NULL), DETLOSS_OK);
  assert_int_equal(m[0], -1);
}

static void zero_gt_makes_every_anchor_negative_with_zero_iou(void **state) {
  (void)state;
  const float anchors[] = {0, 0, 10, 10, 5, 5, 15, 15, 1, 1, 2, 2};
  int64_t m[3] = {7, 7, 7};
  float mi[3] = {7, 7, 7};
  detloss_match_options o = detloss_match_options_default();
  o.low = 0.0f; /* even with low = 0 (0 < 0 is false) G = 0 means negative */
  for (int s = 0; s < 3; s++) {
    o.semantics = (detloss_match_semantics)s;
    assert_int_equal(detloss_match(anchors, 3, NULL, 0, NULL, m, mi, &o, NULL), DETLOSS_OK);
    for (int i = 0; i < 3; i++) {
      assert_int_equal(m[i], -1);
      dl_assert_close1(mi[i], 0.0, 0.0, 0.0);
    }
  }
}

static void zero_anchors_write_nothing(void **state) {
  (void)state;
  const float gt[] = {0, 0, 4, 4};
  assert_int_equal(detloss_match(NULL, 0, gt, 1, NULL, NULL, NULL, NULL, NULL), DETLOSS_OK);
}

static void a_zero_area_gt_promotes_every_anchor_unless_a_floor_is_set(void **state) {
  (void)state;
  /* gt1 [5,5,5,9] has zero width: IoU 0 with everything, h_1 = 0 = IoU of every anchor,
   * so (torchvision) every anchor is restored to its own argmax: a0 -> 0 (IoU 1),
   * a1 [30,30,40,40] (all zeros) -> argmax 0. With low_quality_min_iou 0.1, nothing. */
  const float anchors[] = {0, 0, 10, 10, 30, 30, 40, 40};
  const float gt[] = {0, 0, 10, 10, 5, 5, 5, 9};
  int64_t m[2];
  assert_int_equal(detloss_match(anchors, 2, gt, 2, NULL, m, NULL, NULL, NULL), DETLOSS_OK);
  assert_int_equal(m[0], 0);
  assert_int_equal(m[1], 0);
  detloss_match_options o = detloss_match_options_default();
  o.low_quality_min_iou = 0.1f;
  assert_int_equal(detloss_match(anchors, 2, gt, 2, NULL, m, NULL, &o, NULL), DETLOSS_OK);
  assert_int_equal(m[0], 0);
  assert_int_equal(m[1], -1);
  /* mmdet: the zero-area gt itself is assigned to every anchor (later gt wins) */
  o = detloss_match_options_default();
  o.semantics = DETLOSS_MATCH_MMDET;
  assert_int_equal(detloss_match(anchors, 2, gt, 2, NULL, m, NULL, &o, NULL), DETLOSS_OK);
  assert_int_equal(m[0], 1);
  assert_int_equal(m[1], 1);
}

static void crowd_boxes_ignore_covered_anchors_and_are_never_matched(void **state) {
  (void)state;
  /* crowd gt0 [0,0,20,20]: a0 [0,0,10,10] IoA 1 > 0.7 -> -2, max_iou -1;
   * a1 [15,0,25,10]: IoA 50/100 = 0.5 -> kept; its IoU with gt1 [15,0,25,10] is 1 -> 1.
   * a2 [40,40,50,50]: no overlap -> -1 (never matched to the crowd gt). */
  const float anchors[] = {0, 0, 10, 10, 15, 0, 25, 10, 40, 40, 50, 50};
  const float gt[] = {0, 0, 20, 20, 15, 0, 25, 10};
  const uint8_t crowd[] = {1, 0};
  int64_t m[3];
  float mi[3];
  assert_int_equal(detloss_match(anchors, 3, gt, 2, crowd, m, mi, NULL, NULL), DETLOSS_OK);
  assert_int_equal(m[0], -2);
  assert_int_equal(m[1], 1);
  assert_int_equal(m[2], -1);
  dl_assert_close1(mi[0], -1.0, 0.0, 0.0);
  dl_assert_close1(mi[1], 1.0, 0.0, 0.0);
  /* crowd_ioa_thresh < 0: no anchor is ignored; a0 then has IoU 0 with gt1 -> -1 */
  detloss_match_options o = detloss_match_options_default();
  o.crowd_ioa_thresh = -1.0f;
  assert_int_equal(detloss_match(anchors, 3, gt, 2, crowd, m, mi, &o, NULL), DETLOSS_OK);
  assert_int_equal(m[0], -1);
}

static void border_anchors_are_ignored_when_allowed_border_is_set(void **state) {
  (void)state;
  /* image 32x32, allowed_border 0: a0 [-4,0,12,16] (x1 < 0) and a1 [16,16,32,32]
   * (x2 = 32, not < 32) are outside; a2 [8,8,24,24] inside, IoU 1 with the gt. */
  const float anchors[] = {-4, 0, 12, 16, 16, 16, 32, 32, 8, 8, 24, 24};
  const float gt[] = {8, 8, 24, 24};
  int64_t m[3];
  float mi[3];
  detloss_match_options o = detloss_match_options_default();
  o.allowed_border = 0.0f;
  o.image_h = o.image_w = 32.0f;
  assert_int_equal(detloss_match(anchors, 3, gt, 1, NULL, m, mi, &o, NULL), DETLOSS_OK);
  assert_int_equal(m[0], -2);
  assert_int_equal(m[1], -2);
  assert_int_equal(m[2], 0);
  o.allowed_border = 4.0f; /* -4 >= -4 and 32 < 36: both kept, IoU 32/480 and 64/448: -1 */
  assert_int_equal(detloss_match(anchors, 3, gt, 1, NULL, m, mi, &o, NULL), DETLOSS_OK);
  assert_int_equal(m[0], -1);
  assert_int_equal(m[1], -1);
  assert_int_equal(m[2], 0);
}

/* Grid path == plain path on random data. */

typedef struct rand_cfg {
  detloss_anchor_level lv[4];
  float sizes[4][3], ratios[4][3], shapes[4][6], base[4][8];
  detloss_anchor_config cfg;
} rand_cfg;

static void random_config(dl_rng *r, rand_cfg *rc) {
  memset(rc, 0, sizeof *rc);
  size_t L = 1 + (size_t)(dl_rng_u64(r) % 4);
  for (size_t l = 0; l < L; l++) {
    detloss_anchor_level *lv = &rc->lv[l];
    float stride = (float)(4u << (dl_rng_u64(r) % 4));
    if (dl_rng_u64(r) % 4 == 0) stride = (float)dl_rng_uniform(r, 3.0, 20.0); /* non-integer */
    lv->stride_h = stride;
    lv->stride_w = dl_rng_u64(r) % 3 == 0 ? stride * 1.5f : stride;
    lv->feat_h = 1 + (size_t)(dl_rng_u64(r) % 24);
    lv->feat_w = 1 + (size_t)(dl_rng_u64(r) % 24);
    int kind = (int)(dl_rng_u64(r) % 3);
    if (kind == 0) {
      size_t ns = 1 + (size_t)(dl_rng_u64(r) % 3), nr = 1 + (size_t)(dl_rng_u64(r) % 3);
      for (size_t i = 0; i < ns; i++) rc->sizes[l][i] = (float)dl_rng_uniform(r, 4.0, 80.0);
      for (size_t i = 0; i < nr; i++) rc->ratios[l][i] = (float)dl_rng_uniform(r, 0.3, 3.0);
      lv->sizes = rc->sizes[l];
      lv->num_sizes = ns;
      lv->ratios = rc->ratios[l];
      lv->num_ratios = nr;
    } else if (kind == 1) {
      size_t n = 1 + (size_t)(dl_rng_u64(r) % 3);
      for (size_t i = 0; i < 2 * n; i++) rc->shapes[l][i] = (float)dl_rng_uniform(r, 3.0, 90.0);
      lv->shapes = rc->shapes[l];
      lv->num_shapes = n;
    } else {
      /* explicit base boxes, integer corners (many exact ties), one degenerate */
      for (size_t i = 0; i < 2; i++) {
        float w = (float)(2 + dl_rng_u64(r) % 40), h = (float)(2 + dl_rng_u64(r) % 40);
        float x0 = (float)(int)dl_rng_uniform(r, -30.0, 5.0),
              y0 = (float)(int)dl_rng_uniform(r, -30.0, 5.0);
        float *b = rc->base[l] + 4 * i;
        b[0] = x0;
        b[1] = y0;
        b[2] = x0 + w;
        b[3] = i == 1 && dl_rng_u64(r) % 4 == 0 ? y0 : y0 + h;
      }
      lv->base = rc->base[l];
      lv->num_base = 2;
    }
  }
  rc->cfg.levels = rc->lv;
  rc->cfg.num_levels = L;
  rc->cfg.convention = dl_rng_u64(r) % 2 ? DETLOSS_ANCHORS_DETECTRON2 : DETLOSS_ANCHORS_TORCHVISION;
  rc->cfg.offset = dl_rng_u64(r) % 2 ? 0.5f : 0.0f;
}

static void random_gt(dl_rng *r, float *gt, uint8_t *crowd, size_t G, float H, float W,
                      int integer) {
  for (size_t g = 0; g < G; g++) {
    float w = (float)exp(dl_rng_uniform(r, log(2.0), log(150.0)));
    float h = (float)exp(dl_rng_uniform(r, log(2.0), log(150.0)));
    float cx = (float)dl_rng_uniform(r, -10.0, (double)W + 10.0);
    float cy = (float)dl_rng_uniform(r, -10.0, (double)H + 10.0);
    float *b = gt + 4 * g;
    b[0] = cx - w / 2;
    b[1] = cy - h / 2;
    b[2] = cx + w / 2;
    b[3] = cy + h / 2;
    if (integer)
      for (int k = 0; k < 4; k++) b[k] = floorf(b[k]);
    if (dl_rng_u64(r) % 10 == 0) b[2] = b[0]; /* zero width */
    if (g > 0 && dl_rng_u64(r) % 5 == 0) memcpy(b, gt + 4 * (dl_rng_u64(r) % g), 4 * sizeof(float));
    /* ^ an exact duplicate of an earlier gt: every anchor ties between the two */
    crowd[g] = dl_rng_u64(r) % 6 == 0;
  }
}

static void grid_path_equals_plain_path_on_random_configs(void **state) {
  (void)state;
  dl_rng r = {20261124};
  int compared = 0;
  for (int t = 0; t < 300; t++) {
    rand_cfg rc;
    random_config(&r, &rc);
    size_t A;
    assert_int_equal(detloss_anchors_count(&rc.cfg, &A, NULL), DETLOSS_OK);
    float *anchors = malloc((A ? A : 1) * 4 * sizeof(float));
    assert_int_equal(detloss_anchors_generate(&rc.cfg, anchors, A, NULL), DETLOSS_OK);
    size_t G = (size_t)(dl_rng_u64(&r) % 12);
    float gt[4 * 12];
    uint8_t crowd[12];
    random_gt(&r, gt, crowd, G, 200.0f, 200.0f, t % 2 == 0);
    detloss_match_options o = detloss_match_options_default();
    o.semantics = (detloss_match_semantics)(t % 3);
    o.high = (float)dl_rng_uniform(&r, 0.3, 0.8);
    o.low = (float)dl_rng_uniform(&r, 0.0, (double)o.high);
    o.allow_low_quality = (t / 3) % 4 != 0;
    o.gt_max_assign_all = (t / 7) % 2;
    if (t % 5 == 0) o.low_quality_min_iou = 0.2f;
    if (t % 4 == 1) {
      o.allowed_border = (float)(dl_rng_u64(&r) % 3) * 8.0f;
      o.image_h = 150.0f;
      o.image_w = 170.0f;
    }
    const uint8_t *cr = t % 3 == 1 ? crowd : NULL;
    int64_t *m1 = malloc((A ? A : 1) * sizeof *m1), *m2 = malloc((A ? A : 1) * sizeof *m2);
    float *i1 = malloc((A ? A : 1) * sizeof *i1), *i2 = malloc((A ? A : 1) * sizeof *i2);
    assert_int_equal(detloss_match(anchors, A, gt, G, cr, m1, i1, &o, NULL), DETLOSS_OK);
    assert_int_equal(detloss_match_grid(&rc.cfg, gt, G, cr, m2, i2, A, &o, NULL), DETLOSS_OK);
    assert_matches_equal(m2, m1, A, "grid vs plain");
    dl_assert_bitwise_equal(i2, i1, A);
    compared += (int)A;
    free(anchors);
    free(m1);
    free(m2);
    free(i1);
    free(i2);
  }
  assert_true(compared > 100000);
}

/* The matcher takes its IoUs from the IoU module's kernel (dl_pair_iou, box_kernels.h):
 * with no crowd and no border rule, max_iou[a] is bitwise the largest entry of column a
 * of the IoU matrix detloss_iou_matrix(DETLOSS_IOU, gt, anchors), on both paths. Tiny boxes whose
 * intersection underflows to 0 (1e-23 x 1e-23: area 1e-46 < the smallest float) have IoU 0 there.
 */
static void max_iou_is_bitwise_the_column_maximum_of_box_iou(void **state) {
  (void)state;
  dl_rng r = {20261205};
  for (int t = 0; t < 40; t++) {
    rand_cfg rc;
    random_config(&r, &rc);
    size_t A;
    assert_int_equal(detloss_anchors_count(&rc.cfg, &A, NULL), DETLOSS_OK);
    size_t G = 1 + (size_t)(dl_rng_u64(&r) % 12);
    float *anchors = malloc((A + 1) * 4 * sizeof(float));
    assert_int_equal(detloss_anchors_generate(&rc.cfg, anchors, A, NULL), DETLOSS_OK);
    float gt[4 * 13];
    uint8_t crowd[13];
    random_gt(&r, gt, crowd, G, 200.0f, 200.0f, t % 2 == 0);
    /* plain path only: one more anchor and gt, both tiny and overlapping */
    const float tiny[4] = {0.0f, 0.0f, 1e-23f, 1e-23f};
    memcpy(anchors + 4 * A, tiny, sizeof tiny);
    memcpy(gt + 4 * G, tiny, sizeof tiny);
    float *iou = malloc((G + 1) * (A + 1) * sizeof(float));
    float *mi = malloc((A + 1) * sizeof(float)), *mig = malloc((A + 1) * sizeof(float));
    int64_t *m = malloc((A + 1) * sizeof(int64_t));
    detloss_match_options o = detloss_match_options_default();
    o.semantics = (detloss_match_semantics)(t % 3);
    for (int grid = 0; grid < 2; grid++) {
      size_t Ag = A + (size_t)(1 - grid), Gg = G + (size_t)(1 - grid);
      assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, gt, Gg, anchors, Ag, iou, NULL, NULL),
                       DETLOSS_OK);
      if (grid)
        assert_int_equal(detloss_match_grid(&rc.cfg, gt, Gg, NULL, m, mig, Ag, &o, NULL),
                         DETLOSS_OK);
      else
        assert_int_equal(detloss_match(anchors, Ag, gt, Gg, NULL, m, mi, &o, NULL), DETLOSS_OK);
      const float *got = grid ? mig : mi;
      for (size_t a = 0; a < Ag; a++) {
        float best = 0.0f;
        for (size_t g = 0; g < Gg; g++)
          if (iou[g * Ag + a] > best) best = iou[g * Ag + a];
        dl_assert_bitwise_equal(&got[a], &best, 1);
      }
    }
    assert_true(mi[A] == 0.0f); /* the tiny pair: no NaN, no IoU */
    free(anchors);
    free(iou);
    free(mi);
    free(mig);
    free(m);
  }
}

static void matching_is_bitwise_identical_for_1_2_and_4_threads(void **state) {
  (void)state;
  /* torchvision FPN anchors on a 320x416 image: 5 levels, 3 ratios, ~16k anchors */
  float sizes[5] = {32, 64, 128, 256, 512}, ratios[3] = {0.5f, 1.0f, 2.0f};
  detloss_anchor_level lv[5];
  size_t fh[5] = {80, 40, 20, 10, 5}, fw[5] = {104, 52, 26, 13, 7};
  for (int l = 0; l < 5; l++) {
    memset(&lv[l], 0, sizeof lv[l]);
    lv[l].feat_h = fh[l];
    lv[l].feat_w = fw[l];
    lv[l].stride_h = (float)(320 / fh[l]);
    lv[l].stride_w = (float)(416 / fw[l]);
    lv[l].sizes = &sizes[l];
    lv[l].num_sizes = 1;
    lv[l].ratios = ratios;
    lv[l].num_ratios = 3;
  }
  detloss_anchor_config cfg = {lv, 5, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  size_t A;
  assert_int_equal(detloss_anchors_count(&cfg, &A, NULL), DETLOSS_OK);
  float *anchors = malloc(A * 4 * sizeof(float));
  assert_int_equal(detloss_anchors_generate(&cfg, anchors, A, NULL), DETLOSS_OK);
  dl_rng r = {7};
  float gt[4 * 40];
  uint8_t crowd[40];
  random_gt(&r, gt, crowd, 40, 320.0f, 416.0f, 1);
  int64_t *m[3], *mg[3];
  float *mi[3], *mig[3];
  int threads[3] = {1, 2, 4};
  for (int s = 0; s < 3; s++) {
    detloss_match_options o = detloss_match_options_default();
    o.semantics = (detloss_match_semantics)s;
    for (int t = 0; t < 3; t++) {
      o.num_threads = threads[t];
      m[t] = malloc(A * sizeof(int64_t));
      mg[t] = malloc(A * sizeof(int64_t));
      mi[t] = malloc(A * sizeof(float));
      mig[t] = malloc(A * sizeof(float));
      assert_int_equal(detloss_match(anchors, A, gt, 40, crowd, m[t], mi[t], &o, NULL), DETLOSS_OK);
      assert_int_equal(detloss_match_grid(&cfg, gt, 40, crowd, mg[t], mig[t], A, &o, NULL),
                       DETLOSS_OK);
    }
    for (int t = 1; t < 3; t++) {
      assert_memory_equal(m[t], m[0], A * sizeof(int64_t));
      assert_memory_equal(mi[t], mi[0], A * sizeof(float));
      assert_memory_equal(mg[t], m[0], A * sizeof(int64_t));
      assert_memory_equal(mig[t], mi[0], A * sizeof(float));
    }
    for (int t = 0; t < 3; t++) {
      free(m[t]);
      free(mg[t]);
      free(mi[t]);
      free(mig[t]);
    }
  }
  free(anchors);
}

static void bad_options_are_rejected_with_the_field_named_and_outputs_untouched(void **state) {
  (void)state;
  const float anchors[] = {0, 0, 10, 10};
  const float gt[] = {0, 0, 10, 10};
  detloss_match_options o;
  int64_t m[1] = {42};
  float mi[1] = {42.0f};
  detloss_error err;
#define BAD(stmt, status, where_)                                                                  \
  do {                                                                                             \
    o = detloss_match_options_default();                                                           \
    stmt;                                                                                          \
    memset(&err, 0, sizeof err);                                                                   \
    assert_int_equal(detloss_match(anchors, 1, gt, 1, NULL, m, mi, &o, &err), status);             \
    assert_string_equal(err.where, where_);                                                        \
    assert_int_equal(m[0], 42);                                                                    \
    dl_assert_close1(mi[0], 42.0, 0.0, 0.0);                                                       \
  } while (0)
  BAD(o.high = 1.5f, DETLOSS_ERR_RANGE, "high");
  BAD(o.high = NAN, DETLOSS_ERR_RANGE, "high");
  BAD(o.low = -0.1f, DETLOSS_ERR_RANGE, "low");
  BAD((o.low = 0.8f, o.high = 0.5f), DETLOSS_ERR_RANGE, "low");
  BAD(o.low_quality_min_iou = 2.0f, DETLOSS_ERR_RANGE, "low_quality_min_iou");
  BAD(o.semantics = (detloss_match_semantics)9, DETLOSS_ERR_RANGE, "semantics");
  BAD(o.crowd_ioa_thresh = 1.5f, DETLOSS_ERR_RANGE, "crowd_ioa_thresh");
  BAD(o.allowed_border = 0.0f, DETLOSS_ERR_RANGE, "image_h");
  BAD(o.allowed_border = INFINITY, DETLOSS_ERR_RANGE, "allowed_border");
#undef BAD
  const float badgt[] = {0, 0, NAN, 10};
  memset(&err, 0, sizeof err);
  assert_int_equal(detloss_match(anchors, 1, badgt, 1, NULL, m, mi, NULL, &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "gt[0]");
  const float badanc[] = {0, 0, 10, 10, 0, INFINITY, 1, 1};
  int64_t m2[2] = {42, 42};
  assert_int_equal(detloss_match(badanc, 2, gt, 1, NULL, m2, NULL, NULL, &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "anchors[1]");
  assert_int_equal(m2[0], 42);
  assert_int_equal(detloss_match(anchors, 1, gt, 1, NULL, NULL, NULL, NULL, &err),
                   DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "matches");
  assert_int_equal(m[0], 42);
}

static void grid_match_rejects_an_anchor_count_that_disagrees_with_the_config(void **state) {
  (void)state;
  float size = 32, ratio = 1;
  detloss_anchor_level lv = {4, 4, 8, 8, &size, 1, &ratio, 1, NULL, 0, NULL, 0};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  const float gt[] = {0, 0, 10, 10};
  int64_t m[17];
  for (int i = 0; i < 17; i++) m[i] = 42;
  detloss_error err;
  assert_int_equal(detloss_match_grid(&cfg, gt, 1, NULL, m, NULL, 17, NULL, &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "num_anchors");
  for (int i = 0; i < 17; i++) assert_int_equal(m[i], 42);
  assert_int_equal(detloss_match_grid(&cfg, gt, 1, NULL, m, NULL, 16, NULL, &err), DETLOSS_OK);
}

static void targets_give_labels_matched_gt_and_deltas_for_positives(void **state) {
  (void)state;
  /* anchor [0,0,16,16] matched to gt [2,4,22,36]: wa = 16, xa = 8, ya = 8; wg = 20, hg = 32,
   * xg = 12, yg = 20: (4/16, 12/16, ln(20/16), ln(32/16)) = (0.25, 0.75, 0.2231436, 0.6931472)
   * (docs/math/box_coder.md s5). a1: -1 -> label 0; a2: -2 -> label -1. */
  const float anchors[] = {0, 0, 16, 16, 0, 0, 8, 8, 1, 1, 2, 2};
  const float gt[] = {5, 5, 6, 6, 2, 4, 22, 36};
  const int64_t matches[] = {1, -1, -2};
  int8_t labels[3];
  int64_t mg[3];
  float d[12];
  memset(d, 0x7f, sizeof d);
  assert_int_equal(detloss_match_targets(anchors, 3, gt, 2, matches, labels, mg, d, NULL, NULL),
                   DETLOSS_OK);
  assert_int_equal(labels[0], 1);
  assert_int_equal(labels[1], 0);
  assert_int_equal(labels[2], -1);
  assert_int_equal(mg[0], 1);
  assert_int_equal(mg[1], 0);
  assert_int_equal(mg[2], 0);
  const double want[12] = {0.25, 0.75, 0.22314355131420976, 0.6931471805599453, 0, 0, 0, 0, 0, 0,
                           0,    0};
  dl_assert_close(d, want, 12, 1e-6, 1e-7);
}

static void targets_reject_a_matched_zero_area_gt_and_bad_indices(void **state) {
  (void)state;
  const float anchors[] = {0, 0, 16, 16};
  const float gt[] = {5, 5, 5, 9};
  int64_t matches[] = {0};
  int8_t labels[1] = {42};
  float d[4] = {42, 42, 42, 42};
  detloss_error err;
  assert_int_equal(detloss_match_targets(anchors, 1, gt, 1, matches, labels, NULL, d, NULL, &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "gt[0]");
  assert_int_equal(labels[0], 42);
  /* without deltas the same matches are fine (labels only) */
  assert_int_equal(detloss_match_targets(anchors, 1, gt, 1, matches, labels, NULL, NULL, NULL,
                                         &err),
                   DETLOSS_OK);
  assert_int_equal(labels[0], 1);
  matches[0] = 1; /* only one gt */
  labels[0] = 42;
  assert_int_equal(detloss_match_targets(anchors, 1, gt, 1, matches, labels, NULL, NULL, NULL,
                                         &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "matches[0]");
  assert_int_equal(labels[0], 42);
}

/* Coordinates beyond 1e18 would overflow the areas (w * h > FLT_MAX)
 * and make an IoU Inf / Inf = NaN: (-1e20, -1e20, 1e20, 1e20) with itself has
 * inter = 4e40 = Inf and union (Inf + Inf) - Inf = NaN. Before the fix:
 * DETLOSS_OK with max_iou NaN. Now a range error naming the box. */
static void coordinates_beyond_1e18_are_a_range_error(void **state) {
  (void)state;
  const float big[4] = {-1e20f, -1e20f, 1e20f, 1e20f}, ok[4] = {0, 0, 10, 10};
  int64_t m[1] = {99};
  float mi[1] = {99.0f};
  detloss_error err;
  assert_int_equal(detloss_match(big, 1, big, 1, NULL, m, mi, NULL, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "anchors[0]");
  assert_int_equal(detloss_match(ok, 1, big, 1, NULL, m, mi, NULL, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "gt[0]");
  assert_true(m[0] == 99 && mi[0] == 99.0f);
  /* 1e18 itself is fine: (0, 0, 1e18, 1e18) with itself, IoU 1 */
  const float edge[4] = {0, 0, 1e18f, 1e18f};
  assert_int_equal(detloss_match(edge, 1, edge, 1, NULL, m, mi, NULL, &err), DETLOSS_OK);
  assert_true(m[0] == 0 && mi[0] == 1.0f);
}

/* The outputs may not overlap the inputs or each other. Passing
 * the anchors as max_iou would overwrite anchors still to be read. */
static void outputs_that_overlap_an_input_are_rejected(void **state) {
  (void)state;
  float anchors[8] = {0, 0, 10, 10, 5, 5, 15, 15};
  const float gt[4] = {0, 0, 10, 10};
  int64_t m[4] = {7, 7, 7, 7};
  int8_t lab[2] = {5, 5};
  detloss_error err;
  assert_int_equal(detloss_match(anchors, 2, gt, 1, NULL, m, anchors + 2, NULL, &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "max_iou");
  assert_non_null(strstr(err.msg, "overlaps anchors"));
  assert_true(anchors[2] == 10.0f && m[0] == 7);
  /* matches and max_iou sharing memory */
  assert_int_equal(detloss_match(anchors, 2, gt, 1, NULL, m, (float *)(void *)(m + 1), NULL, &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "max_iou");
  assert_non_null(strstr(err.msg, "overlaps matches"));
  /* sampling into the matches it reads */
  const int64_t mm[2] = {0, -1};
  int64_t mc[2] = {0, -1};
  assert_int_equal(detloss_sample_balanced(mc, 2, 0, (int8_t *)(void *)mc, NULL, NULL, NULL, &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "sampled");
  /* targets: matched_gt written over matches */
  assert_int_equal(detloss_match_targets(anchors, 2, gt, 1, mc, lab, mc, NULL, NULL, &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "matched_gt");
  assert_true(mc[0] == mm[0] && mc[1] == mm[1] && lab[0] == 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_fixture_case_matches_its_reference_exactly),
      cmocka_unit_test(an_anchor_best_for_two_gts_takes_the_lower_gt_index),
      cmocka_unit_test(a_gt_whose_best_iou_is_below_low_still_gets_its_best_anchor),
      cmocka_unit_test(zero_gt_makes_every_anchor_negative_with_zero_iou),
      cmocka_unit_test(zero_anchors_write_nothing),
      cmocka_unit_test(a_zero_area_gt_promotes_every_anchor_unless_a_floor_is_set),
      cmocka_unit_test(crowd_boxes_ignore_covered_anchors_and_are_never_matched),
      cmocka_unit_test(border_anchors_are_ignored_when_allowed_border_is_set),
      cmocka_unit_test(grid_path_equals_plain_path_on_random_configs),
      cmocka_unit_test(max_iou_is_bitwise_the_column_maximum_of_box_iou),
      cmocka_unit_test(matching_is_bitwise_identical_for_1_2_and_4_threads),
      cmocka_unit_test(bad_options_are_rejected_with_the_field_named_and_outputs_untouched),
      cmocka_unit_test(grid_match_rejects_an_anchor_count_that_disagrees_with_the_config),
      cmocka_unit_test(targets_give_labels_matched_gt_and_deltas_for_positives),
      cmocka_unit_test(targets_reject_a_matched_zero_area_gt_and_bad_indices),
      cmocka_unit_test(coordinates_beyond_1e18_are_a_range_error),
      cmocka_unit_test(outputs_that_overlap_an_input_are_rejected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
