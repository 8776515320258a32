/* test_head_yolov8.c - detloss_yolov8_loss: ultralytics v8DetectionLoss over a batch. */
#include <math.h>

#include "head_testutil.h"
#include "loss_internal.h"

#define Y_MAX_IMAGES 4
#define PI_D 3.14159265358979323846

/* A batch read from a fixture (tests/fixtures/yolov8/<name>.json: {"input": <compute
 * case>, "expected": <op output>}) or built by hand; the test owns the arrays. */
typedef struct ybatch {
  size_t n, A, C, R, H, W;
  detloss_yolov8_image im[Y_MAX_IMAGES];
  float *gt[Y_MAX_IMAGES], *pd[Y_MAX_IMAGES], *ps[Y_MAX_IMAGES];
  float *gd[Y_MAX_IMAGES], *gs[Y_MAX_IMAGES];
  int64_t *labels[Y_MAX_IMAGES], *assigned[Y_MAX_IMAGES];
  detloss_yolov8_options o;
} ybatch;

static void yb_alloc_image(ybatch *b, size_t i, size_t G) {
  b->gt[i] = ht_alloc((G ? G : 1) * 4 * sizeof(float));
  b->labels[i] = ht_alloc((G ? G : 1) * sizeof(int64_t));
  b->pd[i] = ht_alloc(b->A * 4 * b->R * sizeof(float));
  b->ps[i] = ht_alloc(b->A * b->C * sizeof(float));
  b->gd[i] = ht_alloc(b->A * 4 * b->R * sizeof(float));
  b->gs[i] = ht_alloc(b->A * b->C * sizeof(float));
  b->assigned[i] = ht_alloc(b->A * sizeof(int64_t));
  detloss_yolov8_image *im = &b->im[i];
  memset(im, 0, sizeof *im);
  im->gt = b->gt[i];
  im->num_gt = G;
  im->labels = b->labels[i];
  im->pred_distri = b->pd[i];
  im->pred_scores = b->ps[i];
  im->grad_pred_distri = b->gd[i];
  im->grad_pred_scores = b->gs[i];
  im->assigned_gt = b->assigned[i];
}

static void yb_free(ybatch *b) {
  for (size_t i = 0; i < b->n; i++) {
    free(b->gt[i]);
    free(b->labels[i]);
    free(b->pd[i]);
    free(b->ps[i]);
    free(b->gd[i]);
    free(b->gs[i]);
    free(b->assigned[i]);
  }
  memset(b, 0, sizeof *b);
}

static double num_or(const cJSON *cfg, const char *key, double dflt) {
  const cJSON *v = cJSON_GetObjectItem(cfg, key);
  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static size_t layout_anchors(const detloss_yolov8_options *o, size_t H, size_t W) {
  size_t A = 0;
  for (size_t l = 0; l < o->num_levels; l++) {
    size_t s = (size_t)o->strides[l];
    A += (H / s) * (W / s);
  }
  return A;
}

static cJSON *yb_load(const char *path, ybatch *b, const cJSON **expected) {
  char *txt = dl_read_file(path);
  cJSON *root = cJSON_Parse(txt);
  free(txt);
  assert_non_null(root);
  const cJSON *in = cJSON_GetObjectItem(root, "input");
  *expected = cJSON_GetObjectItem(root, "expected");
  memset(b, 0, sizeof *b);
  b->o = detloss_yolov8_options_default();
  const cJSON *cfg = cJSON_GetObjectItem(in, "config");
  const cJSON *st = cJSON_GetObjectItem(cfg, "strides");
  if (st) {
    b->o.num_levels = 0;
    for (const cJSON *e = st->child; e; e = e->next)
      b->o.strides[b->o.num_levels++] = (float)e->valuedouble;
  }
  b->o.reg_max = (size_t)num_or(cfg, "reg_max", 16);
  b->o.topk = (int64_t)num_or(cfg, "topk", 10);
  b->o.alpha = (float)num_or(cfg, "alpha", 0.5);
  b->o.beta = (float)num_or(cfg, "beta", 6.0);
  b->o.gain_box = (float)num_or(cfg, "box", 7.5);
  b->o.gain_cls = (float)num_or(cfg, "cls", 0.5);
  b->o.gain_dfl = (float)num_or(cfg, "dfl", 1.5);
  b->o.target_score_sum = num_or(cfg, "target_score_sum", 0.0);
  const cJSON *sz = cJSON_GetObjectItem(in, "image_size");
  b->H = (size_t)cJSON_GetArrayItem(sz, 0)->valuedouble;
  b->W = (size_t)cJSON_GetArrayItem(sz, 1)->valuedouble;
  b->R = b->o.reg_max;
  b->A = layout_anchors(&b->o, b->H, b->W);
  const cJSON *images = cJSON_GetObjectItem(in, "images");
  for (const cJSON *e = images->child; e; e = e->next, b->n++) {
    assert_true(b->n < Y_MAX_IMAGES);
    size_t G = ht_count(cJSON_GetObjectItem(e, "gt")) / 4;
    b->C = ht_count(cJSON_GetObjectItem(e, "pred_scores")) / b->A;
    yb_alloc_image(b, b->n, G);
    if (G) ht_floats_into(cJSON_GetObjectItem(e, "gt"), b->gt[b->n], 4 * G);
    size_t nl;
    double *lab = ht_doubles(cJSON_GetObjectItem(e, "labels"), &nl);
    for (size_t g = 0; g < G; g++) b->labels[b->n][g] = (int64_t)lab[g];
    free(lab);
    ht_floats_into(cJSON_GetObjectItem(e, "pred_distri"), b->pd[b->n], b->A * 4 * b->R);
    ht_floats_into(cJSON_GetObjectItem(e, "pred_scores"), b->ps[b->n], b->A * b->C);
  }
  return root;
}

/* Every fixture of tests/fixtures/yolov8 (float64 torch reference of ultralytics
 * v8DetectionLoss, gen_yolov8.py): losses to 2e-6 relative, gradients to 5e-7
 * absolute (their magnitude is <= 0.6), the assignment exactly. */
static void run_fixture(const char *path) {
  ybatch b;
  const cJSON *e;
  cJSON *root = yb_load(path, &b, &e);
  detloss_yolov8_result r;
  detloss_error err;
  b.o.num_threads = 2;
  assert_int_equal(detloss_yolov8_loss(b.H, b.W, b.C, b.im, b.n, &r, &b.o, &err), DETLOSS_OK);
  dl_assert_close1(r.loss, cJSON_GetObjectItem(e, "loss")->valuedouble, 2e-6, 1e-7);
  dl_assert_close1(r.loss_box, cJSON_GetObjectItem(e, "loss_box")->valuedouble, 2e-6, 1e-7);
  dl_assert_close1(r.loss_cls, cJSON_GetObjectItem(e, "loss_cls")->valuedouble, 2e-6, 1e-7);
  dl_assert_close1(r.loss_dfl, cJSON_GetObjectItem(e, "loss_dfl")->valuedouble, 2e-6, 1e-7);
  assert_int_equal(r.num_fg, (size_t)cJSON_GetObjectItem(e, "num_fg")->valuedouble);
  assert_int_equal(r.nonfinite, 0);
  const cJSON *ag = cJSON_GetObjectItem(e, "assigned_gt");
  const cJSON *gd = cJSON_GetObjectItem(e, "grad_pred_distri");
  const cJSON *gs = cJSON_GetObjectItem(e, "grad_pred_scores");
  for (size_t i = 0; i < b.n; i++) {
    size_t n;
    double *a = ht_doubles(cJSON_GetArrayItem(ag, (int)i), &n);
    assert_int_equal(n, b.A);
    for (size_t k = 0; k < n; k++) assert_int_equal(b.assigned[i][k], (int64_t)a[k]);
    free(a);
    double *g = ht_doubles(cJSON_GetArrayItem(gd, (int)i), &n);
    assert_int_equal(n, b.A * 4 * b.R);
    dl_assert_close(b.gd[i], g, n, 0, 5e-7);
    free(g);
    g = ht_doubles(cJSON_GetArrayItem(gs, (int)i), &n);
    assert_int_equal(n, b.A * b.C);
    dl_assert_close(b.gs[i], g, n, 0, 5e-7);
    free(g);
  }
  cJSON_Delete(root);
  yb_free(&b);
}

static void fixture_two_images(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("yolov8/two_images.json"));
}
static void fixture_zero_gt_image_and_conflicts(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("yolov8/zero_gt_and_conflicts.json"));
}
static void fixture_gt_with_negative_sum_is_padding(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("yolov8/padding_gt.json"));
}
static void fixture_options_reg_max_8_topk_5_caller_normalizer(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("yolov8/options.json"));
}
static void fixture_no_gt_in_the_batch(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("yolov8/no_gt.json"));
}

/* One 16 x 16 image at stride 16 only: A = 1 anchor, point (8, 8) = (0.5, 0.5) grid;
 * C = 1, topk 1. */
static void one_anchor_batch(ybatch *b, size_t G) {
  memset(b, 0, sizeof *b);
  b->o = detloss_yolov8_options_default();
  b->o.strides[0] = 16.0f;
  b->o.num_levels = 1;
  b->o.topk = 1;
  b->H = b->W = 16;
  b->R = 16;
  b->A = 1;
  b->C = 1;
  b->n = 1;
  yb_alloc_image(b, 0, G);
}

/*
 * Hand-worked, G = 0: only BCE. One anchor, C = 1, logit 0, target 0:
 *   BCEL(0, 0) = ln 2 = 0.69314718; S = max(0, 1) = 1;
 *   loss_cls = 0.5 * ln 2 = 0.34657359, loss = 1 image * 0.34657359;
 *   d loss / dx = gain_cls * B / S * (sigmoid(0) - 0) = 0.5 * 0.5 = 0.25.
 * pred_distri gets exactly 0 (no foreground).
 */
static void hand_worked_background_only(void **s) {
  (void)s;
  ybatch b;
  one_anchor_batch(&b, 0);
  for (size_t k = 0; k < 64; k++) b.pd[0][k] = 0.1f * (float)k;
  b.ps[0][0] = 0.0f;
  detloss_yolov8_result r;
  assert_int_equal(detloss_yolov8_loss(16, 16, 1, b.im, 1, &r, &b.o, NULL), DETLOSS_OK);
  dl_assert_close1(r.loss_cls, 0.34657359, 1e-6, 0);
  dl_assert_close1(r.loss, 0.34657359, 1e-6, 0);
  assert_true(r.loss_box == 0.0f && r.loss_dfl == 0.0f);
  assert_int_equal(r.num_fg, 0);
  dl_assert_close1(r.normalizer, 1.0, 0, 0);
  dl_assert_close1(b.gs[0][0], 0.25, 1e-6, 0);
  for (size_t k = 0; k < 64; k++) assert_true(b.gd[0][k] == 0.0f);
  assert_int_equal(b.assigned[0][0], -1);
  yb_free(&b);
}

/*
 * Hand-worked, one positive. gt [0, 0, 16, 16] (class 0), the anchor at (0.5, 0.5) grid.
 * Side logits: 0 on bins 0 and 1, -100 elsewhere: softmax (1/2, 1/2, ~0) (e^-100 ~ 4e-44),
 * so every side decodes to d = 0.5 and the predicted box is (0, 0, 1, 1) grid = the gt.
 * Class logit 0: s = 1/2.
 * Assigner (pixels, eps 1e-7): w = 16, h = 16 + 1e-7 for both boxes, inter = 256,
 *   union = 2 (256 + 1.6e-6) - 256 + 1e-7 = 256 + 3.3e-6, u = 0.9999999871; t = s^0.5 u^6;
 *   target score n = t u / (t + 1e-9) = 0.999999986, which rounds to 1.0f (float spacing
 *   below 1 is 6e-8): n = 1, S = max(1, 1) = 1.
 * cls: BCEL(0, 1) = ln 2: loss_cls = 0.5 ln 2 = 0.34657359; dx = 0.5 (1/2 - 1) = -0.25.
 * box (grid units): w = 1, h = 1 + 1e-7, union = 1 + 3e-7, 1 - CIoU = 1 - 1/(1 + 3e-7)
 *   = 2.9999991e-7 (rho = v = 0): loss_box = 7.5 * 2.9999991e-7 = 2.2499993e-6.
 * DFL: targets 0.5 - 0 = 0.5 (l, t) and 1 - 0.5 = 0.5 (r, b): DFL_side = 0.5 CE(z, 0) +
 *   0.5 CE(z, 1) = ln 2 (softmax 1/2 at both bins); mean over sides ln 2;
 *   loss_dfl = 1.5 * 1 * ln 2 = 1.03972077.
 * loss = 1 image * (0.34657359 + 0.0000022500 + 1.03972077) = 1.38629661.
 * DFL gradient: 1.5 / 4 (softmax - 0.5 e0 - 0.5 e1) = 0 at every bin (softmax = target);
 *   the box gradient is ~1e-7 (CIoU at its maximum).
 */
static void hand_worked_prediction_equal_to_gt(void **s) {
  (void)s;
  ybatch b;
  one_anchor_batch(&b, 1);
  const float gt[4] = {0, 0, 16, 16};
  memcpy(b.gt[0], gt, sizeof gt);
  b.labels[0][0] = 0;
  for (size_t k = 0; k < 64; k++) b.pd[0][k] = (k % 16) < 2 ? 0.0f : -100.0f;
  b.ps[0][0] = 0.0f;
  detloss_yolov8_result r;
  detloss_error err;
  assert_int_equal(detloss_yolov8_loss(16, 16, 1, b.im, 1, &r, &b.o, &err), DETLOSS_OK);
  assert_int_equal(r.num_fg, 1);
  assert_int_equal(b.assigned[0][0], 0);
  dl_assert_close1(r.target_score_sum, 1.0, 0, 0);
  dl_assert_close1(r.loss_cls, 0.34657359, 1e-6, 0);
  dl_assert_close1(r.loss_box, 2.2499993e-6, 1e-5, 0);
  dl_assert_close1(r.loss_dfl, 1.03972077, 1e-6, 0);
  dl_assert_close1(r.loss, 1.38629661, 1e-6, 0);
  dl_assert_close1(b.gs[0][0], -0.25, 1e-6, 0);
  for (size_t k = 0; k < 64; k++) dl_assert_close1(b.gd[0][k], 0.0, 0, 1e-6);
  yb_free(&b);
}

/* A random batch: B images of 64 x 96, C classes, G gts each (sides 6..50 px). */
static void random_batch(ybatch *b, size_t B, size_t C, size_t G, uint64_t seed) {
  memset(b, 0, sizeof *b);
  b->o = detloss_yolov8_options_default();
  b->H = 64;
  b->W = 96;
  b->R = 16;
  b->C = C;
  b->n = B;
  b->A = layout_anchors(&b->o, b->H, b->W);
  dl_rng rng = {seed};
  for (size_t i = 0; i < B; i++) {
    size_t Gi = i == 1 ? 0 : G; /* image 1 has no gt */
    yb_alloc_image(b, i, Gi);
    for (size_t g = 0; g < Gi; g++) {
      float w = (float)dl_rng_uniform(&rng, 6, 50), h = (float)dl_rng_uniform(&rng, 6, 50);
      float x = (float)dl_rng_uniform(&rng, 0, 96 - w), y = (float)dl_rng_uniform(&rng, 0, 64 - h);
      float *bx = b->gt[i] + 4 * g;
      bx[0] = x;
      bx[1] = y;
      bx[2] = x + w;
      bx[3] = y + h;
      b->labels[i][g] = (int64_t)(dl_rng_uniform(&rng, 0, (double)C - 1e-9));
    }
    for (size_t k = 0; k < b->A * 4 * b->R; k++) {
      double d = 2.0 + (double)((k / 16) % 3);
      b->pd[i][k] = (float)(-((double)(k % 16) - d) * ((double)(k % 16) - d) * 0.5 +
                            0.3 * dl_rng_normal(&rng));
    }
    for (size_t k = 0; k < b->A * C; k++) b->ps[i][k] = (float)(dl_rng_normal(&rng) * 1.5 - 1.0);
  }
}

/* Bitwise identical results and gradients for 1, 2, 3 and 8 threads (4 images: both
 * schedules, images in parallel and threads inside one image). */
static void bitwise_identical_for_1_2_3_8_threads(void **s) {
  (void)s;
  ybatch b;
  random_batch(&b, 4, 7, 6, 42);
  detloss_yolov8_result r1, r;
  b.o.num_threads = 1;
  assert_int_equal(detloss_yolov8_loss(b.H, b.W, b.C, b.im, b.n, &r1, &b.o, NULL), DETLOSS_OK);
  assert_true(r1.num_fg > 0);
  float *gd1[4], *gs1[4];
  int64_t *as1[4];
  for (size_t i = 0; i < b.n; i++) {
    gd1[i] = ht_alloc(b.A * 64 * sizeof(float));
    gs1[i] = ht_alloc(b.A * b.C * sizeof(float));
    as1[i] = ht_alloc(b.A * sizeof(int64_t));
    memcpy(gd1[i], b.gd[i], b.A * 64 * sizeof(float));
    memcpy(gs1[i], b.gs[i], b.A * b.C * sizeof(float));
    memcpy(as1[i], b.assigned[i], b.A * sizeof(int64_t));
  }
  const int threads[3] = {2, 3, 8};
  for (int t = 0; t < 3; t++) {
    for (size_t nb = 1; nb <= b.n; nb += b.n - 1) { /* 1 image (threads inside) and 4 */
      b.o.num_threads = threads[t];
      assert_int_equal(detloss_yolov8_loss(b.H, b.W, b.C, b.im, nb, &r, &b.o, NULL), DETLOSS_OK);
      if (nb == b.n) {
        assert_memory_equal(&r.loss, &r1.loss, sizeof r.loss);
        assert_memory_equal(&r.loss_box, &r1.loss_box, sizeof r.loss_box);
        assert_memory_equal(&r.loss_cls, &r1.loss_cls, sizeof r.loss_cls);
        assert_memory_equal(&r.loss_dfl, &r1.loss_dfl, sizeof r.loss_dfl);
        assert_int_equal(r.num_fg, r1.num_fg);
      }
      for (size_t i = 0; i < nb; i++) {
        if (nb == b.n) {
          dl_assert_bitwise_equal(b.gd[i], gd1[i], b.A * 64);
          dl_assert_bitwise_equal(b.gs[i], gs1[i], b.A * b.C);
        }
        assert_memory_equal(b.assigned[i], as1[i], b.A * sizeof(int64_t));
      }
    }
  }
  for (size_t i = 0; i < b.n; i++) {
    free(gd1[i]);
    free(gs1[i]);
    free(as1[i]);
  }
  yb_free(&b);
}

/* The classification gradient by central differences: an image without gt, where the
 * loss is BCE alone with constant zero targets (32 x 32 at strides 8 and 16: A = 20,
 * C = 2, so the float32 loss ~ 7 keeps ~1e-6 of absolute resolution), h = 1e-2,
 * checked to 5e-4 relative + 6e-5 absolute. */
static void bce_gradient_matches_central_differences(void **s) {
  (void)s;
  ybatch b;
  memset(&b, 0, sizeof b);
  b.o = detloss_yolov8_options_default();
  b.o.num_levels = 2;
  b.H = b.W = 32;
  b.R = 16;
  b.C = 2;
  b.n = 1;
  b.A = layout_anchors(&b.o, 32, 32);
  yb_alloc_image(&b, 0, 0);
  dl_rng rng = {3};
  for (size_t k = 0; k < b.A * 64; k++) b.pd[0][k] = (float)dl_rng_normal(&rng);
  for (size_t k = 0; k < b.A * 2; k++) b.ps[0][k] = (float)(2.0 * dl_rng_normal(&rng));
  detloss_yolov8_result r, rp, rm;
  assert_int_equal(detloss_yolov8_loss(32, 32, 2, b.im, 1, &r, &b.o, NULL), DETLOSS_OK);
  for (size_t q = 0; q < b.A * 2; q += 3) {
    float g = b.gs[0][q], x0 = b.ps[0][q];
    float h = 1e-2f;
    b.ps[0][q] = x0 + h;
    assert_int_equal(detloss_yolov8_loss(32, 32, 2, b.im, 1, &rp, &b.o, NULL), DETLOSS_OK);
    b.ps[0][q] = x0 - h;
    assert_int_equal(detloss_yolov8_loss(32, 32, 2, b.im, 1, &rm, &b.o, NULL), DETLOSS_OK);
    b.ps[0][q] = x0;
    double fd = ((double)rp.loss - (double)rm.loss) / (2.0 * (double)h);
    dl_assert_close1(g, fd, 5e-4, 6e-5); /* 6e-5: 2 ulp of the loss / 2h */
  }
  yb_free(&b);
}

/* naive double CIoU of ultralytics with alpha given (held constant) */
static double ciou_alpha_fixed(const double *p, const double *g, double alpha) {
  const double eps = 1e-7;
  double w1 = p[2] - p[0], h1 = p[3] - p[1] + eps, w2 = g[2] - g[0], h2 = g[3] - g[1] + eps;
  double iw = fmin(p[2], g[2]) - fmax(p[0], g[0]), ih = fmin(p[3], g[3]) - fmax(p[1], g[1]);
  double inter = fmax(iw, 0) * fmax(ih, 0);
  double uni = w1 * h1 + w2 * h2 - inter + eps;
  double cw = fmax(p[2], g[2]) - fmin(p[0], g[0]), ch = fmax(p[3], g[3]) - fmin(p[1], g[1]);
  double c2 = cw * cw + ch * ch + eps;
  double dx = g[0] + g[2] - p[0] - p[2], dy = g[1] + g[3] - p[1] - p[3];
  double v = 4.0 / (PI_D * PI_D) * pow(atan(w2 / h2) - atan(w1 / h1), 2);
  return inter / uni - ((dx * dx + dy * dy) / 4.0 / c2 + v * alpha);
}

/* dl_ciou_ultralytics' gradient w.r.t. box 1 against central differences (h = 1e-6, in
 * double) of the CIoU with alpha held at its value at the point, for overlapping,
 * disjoint and nested pairs (no coordinate ties: no kinks). Tolerance 1e-6. */
static void ultralytics_ciou_gradient_matches_central_differences(void **s) {
  (void)s;
  const double pairs[4][8] = {{1.0, 2.0, 5.5, 7.25, 2.5, 0.75, 6.0, 5.0},
                              {0.0, 0.0, 2.0, 3.0, 4.0, 5.0, 7.5, 6.0},
                              {1.0, 1.0, 9.0, 8.0, 2.0, 3.0, 4.0, 5.5},
                              {3.0, 1.5, 4.0, 9.0, 0.5, 2.0, 7.0, 3.0}};
  for (int q = 0; q < 4; q++) {
    const double *p = pairs[q], *g = pairs[q] + 4;
    double grad[4];
    double c = dl_ciou_ultralytics(p, g, NAN, grad);
    /* alpha at the point: from the value, v and iou (recomputed naively) */
    double w1 = p[2] - p[0], h1 = p[3] - p[1] + 1e-7, w2 = g[2] - g[0], h2 = g[3] - g[1] + 1e-7;
    double v = 4.0 / (PI_D * PI_D) * pow(atan(w2 / h2) - atan(w1 / h1), 2);
    double iw = fmin(p[2], g[2]) - fmax(p[0], g[0]), ih = fmin(p[3], g[3]) - fmax(p[1], g[1]);
    double inter = fmax(iw, 0) * fmax(ih, 0);
    double iou = inter / (w1 * h1 + w2 * h2 - inter + 1e-7);
    double alpha = v / (v - iou + (1.0 + 1e-7));
    dl_assert_close1(c, ciou_alpha_fixed(p, g, alpha), 1e-12, 1e-12);
    for (int k = 0; k < 4; k++) {
      double pp[4], pm[4];
      memcpy(pp, p, sizeof pp);
      memcpy(pm, p, sizeof pm);
      pp[k] += 1e-6;
      pm[k] -= 1e-6;
      double fd = (ciou_alpha_fixed(pp, g, alpha) - ciou_alpha_fixed(pm, g, alpha)) / 2e-6;
      dl_assert_close1(grad[k], fd, 1e-6, 1e-8);
    }
  }
}

/* Bad input: errors named, outputs (result, gradients, assigned_gt) untouched. */
static void bad_input_is_named_and_leaves_outputs_untouched(void **s) {
  (void)s;
  ybatch b;
  random_batch(&b, 2, 3, 2, 9);
  detloss_yolov8_result r;
  memset(&r, 0x5a, sizeof r);
  for (size_t i = 0; i < b.n; i++) {
    memset(b.gd[i], 0x5a, b.A * 64 * sizeof(float));
    memset(b.assigned[i], 0x5a, b.A * sizeof(int64_t));
  }
  detloss_error err;
  assert_int_equal(detloss_yolov8_loss(60, 96, 3, b.im, 2, &r, &b.o, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "image_h");
  assert_int_equal(detloss_yolov8_loss(64, 96, 3, b.im, 0, &r, &b.o, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "num_images");
  assert_int_equal(detloss_yolov8_loss(64, 96, 3, b.im, 2, NULL, &b.o, &err), DETLOSS_ERR_NULL);
  detloss_yolov8_options o = b.o;
  o.topk = 200; /* A = 96 + 24 + 6 = 126 */
  assert_int_equal(detloss_yolov8_loss(64, 96, 3, b.im, 2, &r, &o, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "topk");
  o = b.o;
  o.reg_max = 1;
  assert_int_equal(detloss_yolov8_loss(64, 96, 3, b.im, 2, &r, &o, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "reg_max");
  b.labels[0][1] = 3;
  assert_int_equal(detloss_yolov8_loss(64, 96, 3, b.im, 2, &r, &b.o, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "images[0].labels[1]");
  b.labels[0][1] = 0;
  b.ps[1][7] = NAN;
  assert_int_equal(detloss_yolov8_loss(64, 96, 3, b.im, 2, &r, &b.o, &err), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "images[1].pred_scores[7]");
  b.ps[1][7] = 0.0f;
  b.pd[0][70] = INFINITY;
  assert_int_equal(detloss_yolov8_loss(64, 96, 3, b.im, 2, &r, &b.o, &err), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "images[0].pred_distri[70]");
  b.pd[0][70] = 0.0f;
  /* a gradient buffer shared by two images */
  b.im[1].grad_pred_scores = b.im[0].grad_pred_scores;
  assert_int_equal(detloss_yolov8_loss(64, 96, 3, b.im, 2, &r, &b.o, &err), DETLOSS_ERR_SHAPE);
  b.im[1].grad_pred_scores = b.gs[1];
  unsigned char sentinel[sizeof r];
  memset(sentinel, 0x5a, sizeof sentinel);
  assert_memory_equal(&r, sentinel, sizeof r);
  for (size_t i = 0; i < b.n; i++) {
    for (size_t k = 0; k < b.A * 64; k++) assert_memory_equal(&b.gd[i][k], sentinel, 4);
    for (size_t k = 0; k < b.A; k++) assert_memory_equal(&b.assigned[i][k], sentinel, 8);
  }
  assert_int_equal(detloss_yolov8_loss(64, 96, 3, b.im, 2, &r, &b.o, &err), DETLOSS_OK);
  yb_free(&b);
}

/* The caller's normaliser divides everything: S = max(target_score_sum, 1), and the
 * result reports this batch's own sum. */
static void caller_target_score_sum_scales_every_term(void **s) {
  (void)s;
  ybatch b;
  random_batch(&b, 2, 4, 3, 5);
  detloss_yolov8_result r0, r1;
  assert_int_equal(detloss_yolov8_loss(b.H, b.W, b.C, b.im, b.n, &r0, &b.o, NULL), DETLOSS_OK);
  double S0 = r0.normalizer;
  assert_true(r0.target_score_sum > 0);
  b.o.target_score_sum = 4.0 * S0;
  assert_int_equal(detloss_yolov8_loss(b.H, b.W, b.C, b.im, b.n, &r1, &b.o, NULL), DETLOSS_OK);
  dl_assert_close1(r1.normalizer, 4.0 * S0, 0, 0);
  dl_assert_close1(r1.target_score_sum, r0.target_score_sum, 0, 0);
  dl_assert_close1(r1.loss, (double)r0.loss / 4.0, 1e-6, 0);
  dl_assert_close1(r1.loss_box, (double)r0.loss_box / 4.0, 1e-6, 0);
  dl_assert_close1(r1.loss_dfl, (double)r0.loss_dfl / 4.0, 1e-6, 0);
  yb_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hand_worked_background_only),
      cmocka_unit_test(hand_worked_prediction_equal_to_gt),
      cmocka_unit_test(fixture_two_images),
      cmocka_unit_test(fixture_zero_gt_image_and_conflicts),
      cmocka_unit_test(fixture_gt_with_negative_sum_is_padding),
      cmocka_unit_test(fixture_options_reg_max_8_topk_5_caller_normalizer),
      cmocka_unit_test(fixture_no_gt_in_the_batch),
      cmocka_unit_test(bitwise_identical_for_1_2_3_8_threads),
      cmocka_unit_test(bce_gradient_matches_central_differences),
      cmocka_unit_test(ultralytics_ciou_gradient_matches_central_differences),
      cmocka_unit_test(bad_input_is_named_and_leaves_outputs_untouched),
      cmocka_unit_test(caller_target_score_sum_scales_every_term),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
