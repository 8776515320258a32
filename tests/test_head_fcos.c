/*
 * test_head_fcos.c - detloss_fcos_loss (src/head_fcos.c): a hand-worked case,
 * the float64 torch reference fixtures (tests/fixtures/fcos_loss: mmdet
 * semantics, and torchvision's own FCOS.compute_loss for the torchvision variant), finite
 * differences, thread invariance, the torchvision variant's strict ranges, the caller's
 * normalizers, bad input with outputs untouched.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detloss/detloss.h"
#include "head_testutil.h"
#include "testutil.h"

/* A batch read from a fixture ({"case", "expected"}). */
typedef struct fx {
  size_t B, P, L, C;
  float points[2 * 4096];
  size_t lc[8], fm[16];
  float strides[8], ranges[16];
  detloss_fcos_loss_options o;
  detloss_fcos_image im[4];
  float *cls[4], *bbox[4], *ctr[4], *gt[4], *gcls[4], *gbbox[4], *gctr[4];
  int64_t *lab[4], *alab[4];
  cJSON *root;
  const cJSON *exp;
} fx;

static void fx_load(fx *f, const char *path) {
  memset(f, 0, sizeof *f);
  char *txt = dl_read_file(path);
  f->root = cJSON_Parse(txt);
  free(txt);
  assert_non_null(f->root);
  const cJSON *c = cJSON_GetObjectItem(f->root, "case");
  f->exp = cJSON_GetObjectItem(f->root, "expected");
  const cJSON *cfg = cJSON_GetObjectItem(c, "config");
  f->o = detloss_fcos_loss_options_default();
  static const float ds[5] = {8, 16, 32, 64, 128};
  memcpy(f->strides, ds, sizeof ds);
  f->L = 5;
  const cJSON *v;
  if ((v = cJSON_GetObjectItem(cfg, "strides")))
    f->L = ht_count(v), ht_floats_into(v, f->strides, f->L);
  if ((v = cJSON_GetObjectItem(cfg, "regress_ranges"))) {
    ht_floats_into(v, f->ranges, 2 * f->L);
    f->o.regress_ranges = f->ranges;
  }
  if ((v = cJSON_GetObjectItem(cfg, "center_sampling"))) f->o.center_sampling = cJSON_IsTrue(v);
  if ((v = cJSON_GetObjectItem(cfg, "norm_on_bbox"))) f->o.norm_on_bbox = cJSON_IsTrue(v);
  if ((v = cJSON_GetObjectItem(cfg, "center_sample_radius")))
    f->o.center_sample_radius = (float)v->valuedouble;
  if ((v = cJSON_GetObjectItem(cfg, "alpha"))) f->o.alpha = (float)v->valuedouble;
  if ((v = cJSON_GetObjectItem(cfg, "gamma"))) f->o.gamma = (float)v->valuedouble;
  if ((v = cJSON_GetObjectItem(cfg, "avg_num_pos"))) f->o.avg_num_pos = v->valuedouble;
  if ((v = cJSON_GetObjectItem(cfg, "avg_centerness_sum")))
    f->o.avg_centerness_sum = v->valuedouble;
  if ((v = cJSON_GetObjectItem(cfg, "box_loss")) && strcmp(v->valuestring, "iou") == 0)
    f->o.box_loss = DETLOSS_FCOS_BOX_IOU;
  if ((v = cJSON_GetObjectItem(cfg, "variant")) && strcmp(v->valuestring, "torchvision") == 0)
    f->o.variant = DETLOSS_FCOS_LOSS_TORCHVISION;
  const cJSON *fm = cJSON_GetObjectItem(c, "feature_maps");
  size_t l = 0;
  for (const cJSON *e = fm->child; e; e = e->next, l++) {
    f->fm[2 * l] = (size_t)cJSON_GetArrayItem(e, 0)->valuedouble;
    f->fm[2 * l + 1] = (size_t)cJSON_GetArrayItem(e, 1)->valuedouble;
    f->lc[l] = f->fm[2 * l] * f->fm[2 * l + 1];
    f->P += f->lc[l];
  }
  assert_int_equal(l, f->L);
  assert_true(f->P <= 4096);
  /* mmdet's points at (x + 0.5) s; torchvision's anchors centred at x s */
  const float offset = f->o.variant == DETLOSS_FCOS_LOSS_TORCHVISION ? 0.0f : 0.5f;
  assert_int_equal(detloss_grid_points(f->fm, f->strides, f->L, offset, f->points, NULL),
                   DETLOSS_OK);
  const cJSON *imgs = cJSON_GetObjectItem(c, "images");
  size_t i = 0;
  for (const cJSON *e = imgs->child; e; e = e->next, i++) {
    const cJSON *cl = cJSON_GetObjectItem(e, "cls_logits");
    f->C = ht_count(cl) / f->P;
    size_t G = ht_count(cJSON_GetObjectItem(e, "gt")) / 4, P = f->P, C = f->C;
    f->gt[i] = ht_alloc((4 * G + 1) * sizeof(float));
    f->lab[i] = ht_alloc((G + 1) * sizeof(int64_t));
    f->cls[i] = ht_alloc(P * C * sizeof(float));
    f->bbox[i] = ht_alloc(4 * P * sizeof(float));
    f->ctr[i] = ht_alloc(P * sizeof(float));
    f->gcls[i] = ht_alloc(P * C * sizeof(float));
    f->gbbox[i] = ht_alloc(4 * P * sizeof(float));
    f->gctr[i] = ht_alloc(P * sizeof(float));
    f->alab[i] = ht_alloc(P * sizeof(int64_t));
    ht_floats_into(cJSON_GetObjectItem(e, "gt"), f->gt[i], 4 * G);
    size_t g = 0;
    for (const cJSON *x = cJSON_GetObjectItem(e, "labels")->child; x; x = x->next, g++)
      f->lab[i][g] = (int64_t)x->valuedouble;
    ht_floats_into(cl, f->cls[i], P * C);
    ht_floats_into(cJSON_GetObjectItem(e, "bbox_pred"), f->bbox[i], 4 * P);
    ht_floats_into(cJSON_GetObjectItem(e, "centerness"), f->ctr[i], P);
    detloss_fcos_image im = {G,         f->gt[i],   f->lab[i],   f->cls[i],  f->bbox[i],
                             f->ctr[i], f->gcls[i], f->gbbox[i], f->gctr[i], f->alab[i]};
    f->im[i] = im;
  }
  f->B = i;
}

static void fx_free(fx *f) {
  for (size_t i = 0; i < f->B; i++) {
    free(f->gt[i]);
    free(f->lab[i]);
    free(f->cls[i]);
    free(f->bbox[i]);
    free(f->ctr[i]);
    free(f->gcls[i]);
    free(f->gbbox[i]);
    free(f->gctr[i]);
    free(f->alab[i]);
  }
  cJSON_Delete(f->root);
}

static detloss_status fx_run(fx *f, detloss_fcos_result *r) {
  return detloss_fcos_loss(f->points, f->P, f->lc, f->strides, f->L, f->C, f->im, f->B, r, &f->o,
                           NULL);
}

/* Values to 1e-5 relative of the float64 reference, gradients to 1e-4 relative
 * + 1e-7 absolute (float32 logits and sums), labels exactly. */
static void check_fixture(const char *path) {
  fx f;
  fx_load(&f, path);
  detloss_fcos_result r;
  assert_int_equal(fx_run(&f, &r), DETLOSS_OK);
  const cJSON *e = f.exp;
  dl_assert_close1(r.loss_cls, cJSON_GetObjectItem(e, "loss_cls")->valuedouble, 1e-5, 1e-7);
  dl_assert_close1(r.loss_bbox, cJSON_GetObjectItem(e, "loss_bbox")->valuedouble, 1e-5, 1e-7);
  dl_assert_close1(r.loss_centerness, cJSON_GetObjectItem(e, "loss_centerness")->valuedouble, 1e-5,
                   1e-7);
  assert_int_equal(r.num_pos, (size_t)cJSON_GetObjectItem(e, "num_pos")->valuedouble);
  assert_false(r.nonfinite);
  size_t n;
  double *lab = ht_doubles(cJSON_GetObjectItem(e, "labels"), &n);
  double *gc = ht_doubles(cJSON_GetObjectItem(e, "grad_cls_logits"), &n);
  double *gb = ht_doubles(cJSON_GetObjectItem(e, "grad_bbox_pred"), &n);
  double *gt = ht_doubles(cJSON_GetObjectItem(e, "grad_centerness"), &n);
  for (size_t i = 0; i < f.B; i++) {
    for (size_t p = 0; p < f.P; p++) assert_int_equal(f.alab[i][p], (int64_t)lab[i * f.P + p]);
    dl_assert_close(f.gcls[i], gc + i * f.P * f.C, f.P * f.C, 1e-4, 1e-7);
    dl_assert_close(f.gbbox[i], gb + i * f.P * 4, f.P * 4, 1e-4, 1e-7);
    dl_assert_close(f.gctr[i], gt + i * f.P, f.P, 1e-4, 1e-7);
  }
  free(lab);
  free(gc);
  free(gb);
  free(gt);
  fx_free(&f);
}

static void matches_mmdet_reference_on_two_images(void **s) {
  (void)s;
  check_fixture(DL_FIXTURE("fcos_loss/two_images.json"));
}
static void image_without_gt_is_all_background(void **s) {
  (void)s;
  check_fixture(DL_FIXTURE("fcos_loss/zero_gt_image.json"));
}
static void iou_log_loss_in_pixels_without_center_sampling(void **s) {
  (void)s;
  check_fixture(DL_FIXTURE("fcos_loss/iou_pixels.json"));
}
static void caller_normalizers_replace_the_batch_counts(void **s) {
  (void)s;
  check_fixture(DL_FIXTURE("fcos_loss/caller_normalizers.json"));
}
static void batch_without_positives_has_zero_box_and_centerness_loss(void **s) {
  (void)s;
  check_fixture(DL_FIXTURE("fcos_loss/no_positives.json"));
}
static void three_levels_alpha_off_gamma_zero(void **s) {
  (void)s;
  check_fixture(DL_FIXTURE("fcos_loss/three_levels.json"));
}
static void torchvision_variant_matches_torchvisions_own_compute_loss(void **s) {
  (void)s;
  check_fixture(DL_FIXTURE("fcos_loss/torchvision.json"));
}
static void equal_areas_go_to_the_lowest_gt_index(void **s) {
  (void)s;
  check_fixture(DL_FIXTURE("fcos_loss/equal_areas.json"));
}

/*
 * Hand-worked: one level, stride 8, a 1 x 2 map: points (4, 4) and (12, 4);
 * C = 1; gt [0, 0, 16, 8] label 0; no centre sampling, range [-1, 1e8], pixels.
 *   p0: (l, t, r, b) = (4, 4, 12, 4), centerness sqrt(4/12 * 4/4) = sqrt(1/3)
 *   p1: (12, 4, 4, 4), centerness sqrt(1/3). Both positive: npos = 2, N = 2,
 *   D = 2 sqrt(1/3) = 1.154700538.
 *   bbox_pred p0 = its target: GIoU loss 0. p1 = (4, 4, 4, 4): box (-4,-4,4,4),
 *   area 64, inside the target (-12,-4,4,4) of area 128: IoU 1/2, enclosure =
 *   target, GIoU 1/2, loss 1/2. loss_bbox = sqrt(1/3) (0 + 1/2) / (D + eps)
 *   = 0.25 (to 1e-7).
 *   centerness logits 0: BCE(0, y) = ln 2 for any y: loss_centerness = 2 ln 2 /
 *   (2 + eps) = ln 2 = 0.693147.
 *   cls logits 0, both targets 1: p_t = 1/2, focal = 0.25 (1/2)^2 ln 2 each;
 *   loss_cls = 2 (0.0625 ln 2) / 2 = 0.0433217.
 */
static void hand_worked_two_points(void **s) {
  (void)s;
  const float pts[4] = {4, 4, 12, 4}, st[1] = {8}, rr[2] = {-1, 1e8f}, gt[4] = {0, 0, 16, 8};
  const size_t lc[1] = {2};
  const int64_t lab[1] = {0};
  const float cls[2] = {0, 0}, ctr[2] = {0, 0}, bb[8] = {4, 4, 12, 4, 4, 4, 4, 4};
  float gcls[2], gbb[8], gct[2];
  int64_t al[2];
  detloss_fcos_image im = {1, gt, lab, cls, bb, ctr, gcls, gbb, gct, al};
  detloss_fcos_loss_options o = detloss_fcos_loss_options_default();
  o.center_sampling = 0;
  o.norm_on_bbox = 0;
  o.regress_ranges = rr;
  detloss_fcos_result r;
  assert_int_equal(detloss_fcos_loss(pts, 2, lc, st, 1, 1, &im, 1, &r, &o, NULL), DETLOSS_OK);
  assert_int_equal(r.num_pos, 2);
  dl_assert_close1(r.loss_bbox, 0.25, 1e-6, 1e-7);
  dl_assert_close1(r.loss_centerness, log(2.0), 1e-6, 1e-7);
  dl_assert_close1(r.loss_cls, 0.0625 * log(2.0), 1e-6, 1e-7);
  dl_assert_close1(r.centerness_norm, 2.0 * sqrt(1.0 / 3.0), 1e-7, 0);
  assert_int_equal(al[0], 0);
  assert_int_equal(al[1], 0);
  /* d BCE / dx at x = 0: sigmoid(0) - y = 1/2 - sqrt(1/3), / N */
  dl_assert_close1(gct[0], (0.5 - sqrt(1.0 / 3.0)) / 2.0, 1e-6, 1e-7);
}

/* Central differences (double steps on float inputs) of the total loss against
 * the analytic gradient, targets held constant (small steps keep the
 * assignment, which does not depend on the predictions anyway). */
static double total(fx *f) {
  detloss_fcos_result r;
  assert_int_equal(fx_run(f, &r), DETLOSS_OK);
  return (double)r.loss_cls + (double)r.loss_bbox + (double)r.loss_centerness;
}

static void gradients_match_finite_differences(void **s) {
  (void)s;
  fx f;
  fx_load(&f, DL_FIXTURE("fcos_loss/two_images.json"));
  total(&f);
  float *g_cls = ht_alloc(f.P * f.C * sizeof(float)), *g_bb = ht_alloc(4 * f.P * sizeof(float));
  float *g_ct = ht_alloc(f.P * sizeof(float));
  memcpy(g_cls, f.gcls[1], f.P * f.C * sizeof(float));
  memcpy(g_bb, f.gbbox[1], 4 * f.P * sizeof(float));
  memcpy(g_ct, f.gctr[1], f.P * sizeof(float));
  const float h = 1e-2f;
  size_t checked = 0;
  for (size_t p = 0; p < f.P; p++) {
    if (f.alab[1][p] < 0 && p % 17 != 0) continue; /* every positive, some negatives */
    float *xs[3] = {&f.cls[1][p * f.C + (p % f.C)], &f.bbox[1][4 * p + (p % 4)], &f.ctr[1][p]};
    double an[3] = {g_cls[p * f.C + (p % f.C)], g_bb[4 * p + (p % 4)], g_ct[p]};
    for (int k = 0; k < 3; k++) {
      float x0 = *xs[k];
      double l0 = total(&f);
      *xs[k] = x0 + h;
      double lp = total(&f);
      *xs[k] = x0 - h;
      double lm = total(&f);
      *xs[k] = x0;
      double fd = (lp - lm) / (2.0 * (double)h);
      /* a kink of the box loss within h (an edge of the prediction crossing an
       * edge of the target: max/min switch): the one-sided slopes disagree; skip */
      if (fabs((lp - l0) - (l0 - lm)) / (double)h > 1e-3) continue;
      /* float32 losses (~6) over 2h: ~1e-5 noise; curvature h^2: ~1e-5 */
      if (!dl_close_one(an[k], fd, 2e-2, 2e-4)) {
        print_error("point %zu input %d: analytic %.9g, finite difference %.9g\n", p, k, an[k], fd);
        fail();
      }
      checked++;
    }
  }
  assert_true(checked > 50);
  free(g_cls);
  free(g_bb);
  free(g_ct);
  fx_free(&f);
}

static void bitwise_identical_for_1_2_3_8_threads(void **s) {
  (void)s;
  fx f;
  fx_load(&f, DL_FIXTURE("fcos_loss/two_images.json"));
  const size_t n = f.P * f.C;
  float *ref = ht_alloc(n * sizeof(float)), *refb = ht_alloc(4 * f.P * sizeof(float));
  detloss_fcos_result r0, r;
  const int th[4] = {1, 2, 3, 8};
  for (int t = 0; t < 4; t++) {
    f.o.num_threads = th[t];
    assert_int_equal(fx_run(&f, &r), DETLOSS_OK);
    if (t == 0) {
      r0 = r;
      memcpy(ref, f.gcls[0], n * sizeof(float));
      memcpy(refb, f.gbbox[1], 4 * f.P * sizeof(float));
      continue;
    }
    assert_memory_equal(&r.loss_cls, &r0.loss_cls, sizeof(float));
    assert_memory_equal(&r.loss_bbox, &r0.loss_bbox, sizeof(float));
    assert_memory_equal(&r.loss_centerness, &r0.loss_centerness, sizeof(float));
    dl_assert_bitwise_equal(f.gcls[0], ref, n);
    dl_assert_bitwise_equal(f.gbbox[1], refb, 4 * f.P);
  }
  free(ref);
  free(refb);
  fx_free(&f);
}

/* A point whose largest distance is exactly 64: mmdet's ranges are inclusive
 * ([-1, 64] and [64, 128] both take it), torchvision's are strict (0 < m < 64,
 * 64 < m < 128: neither). Stride 8 level: point (4, 4), gt [4 - 8, 4 - 8, 4 + 64, 4 + 8]
 * -> (l, t, r, b) = (8, 8, 64, 8), max 64. */
static void range_boundary_is_inclusive_for_mmdet_and_strict_for_torchvision(void **s) {
  (void)s;
  const float pts[2] = {4, 4}, st[1] = {8}, gt[4] = {-4, -4, 68, 12};
  const float rr[2] = {0, 64};
  const size_t lc[1] = {1};
  const int64_t lab[1] = {0};
  const float cls[1] = {0}, ctr[1] = {0}, bb[4] = {1, 1, 1, 1};
  int64_t al[1];
  detloss_fcos_image im = {1, gt, lab, cls, bb, ctr, NULL, NULL, NULL, al};
  detloss_fcos_loss_options o = detloss_fcos_loss_options_default();
  o.center_sampling = 0;
  o.regress_ranges = rr;
  detloss_fcos_result r;
  assert_int_equal(detloss_fcos_loss(pts, 1, lc, st, 1, 1, &im, 1, &r, &o, NULL), DETLOSS_OK);
  assert_int_equal(r.num_pos, 1);
  assert_int_equal(al[0], 0);
  o.variant = DETLOSS_FCOS_LOSS_TORCHVISION;
  assert_int_equal(detloss_fcos_loss(pts, 1, lc, st, 1, 1, &im, 1, &r, &o, NULL), DETLOSS_OK);
  assert_int_equal(r.num_pos, 0);
  assert_int_equal(al[0], -1);
  /* torchvision: loss_cls = focal sum / max(1, 0) with no eps: 0.75 (1/2)^2 ln 2 */
  dl_assert_close1(r.loss_cls, 0.75 * 0.25 * log(2.0), 1e-6, 0);
}

static void bad_input_leaves_outputs_untouched(void **s) {
  (void)s;
  fx f;
  fx_load(&f, DL_FIXTURE("fcos_loss/two_images.json"));
  detloss_fcos_result r;
  memset(&r, 0x5a, sizeof r);
  detloss_fcos_result sentinel = r;
  f.gcls[0][0] = 123.0f;
  detloss_error err;
  /* a label outside [0, C) */
  int64_t keep = f.lab[1][2];
  f.lab[1][2] = (int64_t)f.C;
  assert_int_equal(detloss_fcos_loss(f.points, f.P, f.lc, f.strides, f.L, f.C, f.im, f.B, &r, &f.o,
                                     &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "images[1].labels[2]");
  f.lab[1][2] = keep;
  /* a gradient output on top of an input */
  f.im[0].grad_centerness = (float *)f.im[1].centerness;
  assert_int_equal(detloss_fcos_loss(f.points, f.P, f.lc, f.strides, f.L, f.C, f.im, f.B, &r, &f.o,
                                     &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "images[0].grad_centerness");
  f.im[0].grad_centerness = f.gctr[0];
  /* a non-finite gt */
  f.gt[0][1] = NAN;
  assert_int_equal(detloss_fcos_loss(f.points, f.P, f.lc, f.strides, f.L, f.C, f.im, f.B, &r, &f.o,
                                     &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "images[0].gt[0]");
  f.gt[0][1] = 1.0f;
  /* level counts that do not sum to P */
  f.lc[0]--;
  assert_int_equal(detloss_fcos_loss(f.points, f.P, f.lc, f.strides, f.L, f.C, f.im, f.B, &r, &f.o,
                                     &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "level_counts");
  f.lc[0]++;
  /* torchvision with the IoU loss, and a non-finite normalizer */
  f.o.variant = DETLOSS_FCOS_LOSS_TORCHVISION;
  f.o.box_loss = DETLOSS_FCOS_BOX_IOU;
  assert_int_equal(detloss_fcos_loss(f.points, f.P, f.lc, f.strides, f.L, f.C, f.im, f.B, &r, &f.o,
                                     &err),
                   DETLOSS_ERR_RANGE);
  f.o = detloss_fcos_loss_options_default();
  f.o.avg_num_pos = INFINITY;
  assert_int_equal(detloss_fcos_loss(f.points, f.P, f.lc, f.strides, f.L, f.C, f.im, f.B, &r, &f.o,
                                     &err),
                   DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "avg_num_pos");
  assert_int_equal(detloss_fcos_loss(f.points, f.P, f.lc, f.strides, f.L, f.C, f.im, 0, &r, &f.o,
                                     &err),
                   DETLOSS_ERR_SHAPE);
  assert_memory_equal(&r, &sentinel, sizeof r);
  assert_true(f.gcls[0][0] == 123.0f);
  fx_free(&f);
}

static void grid_points_follow_mmdet_offset(void **s) {
  (void)s;
  const size_t fm[4] = {2, 3, 1, 1};
  const float st[2] = {8, 16};
  float p[14];
  assert_int_equal(detloss_grid_points(fm, st, 2, 0.5f, p, NULL), DETLOSS_OK);
  /* level 0: y 0 -> x 4, 12, 20 at y 4; y 1 -> y 12; level 1: (8, 8) */
  const float want[14] = {4, 4, 12, 4, 20, 4, 4, 12, 12, 12, 20, 12, 8, 8};
  assert_memory_equal(p, want, sizeof want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hand_worked_two_points),
      cmocka_unit_test(matches_mmdet_reference_on_two_images),
      cmocka_unit_test(image_without_gt_is_all_background),
      cmocka_unit_test(iou_log_loss_in_pixels_without_center_sampling),
      cmocka_unit_test(caller_normalizers_replace_the_batch_counts),
      cmocka_unit_test(batch_without_positives_has_zero_box_and_centerness_loss),
      cmocka_unit_test(three_levels_alpha_off_gamma_zero),
      cmocka_unit_test(equal_areas_go_to_the_lowest_gt_index),
      cmocka_unit_test(torchvision_variant_matches_torchvisions_own_compute_loss),
      cmocka_unit_test(gradients_match_finite_differences),
      cmocka_unit_test(bitwise_identical_for_1_2_3_8_threads),
      cmocka_unit_test(range_boundary_is_inclusive_for_mmdet_and_strict_for_torchvision),
      cmocka_unit_test(bad_input_leaves_outputs_untouched),
      cmocka_unit_test(grid_points_follow_mmdet_offset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
