/* test_head_rpn.c - detloss_rpn_loss: Faster R-CNN RPN loss over a batch. */
#include "head_testutil.h"

static detloss_rpn_options opts(int threads) {
  detloss_rpn_options o = detloss_rpn_options_default();
  o.num_threads = threads;
  return o;
}

/* Two anchors, one gt [0,0,10,10]:
 *   a0 = [0,0,10,10]   IoU 1 -> positive;  a1 = [20,20,30,30]  IoU 0 -> negative.
 * Both sampled (1 <= 128 positives, 1 <= 255 negatives): D = 2. Logits 0. */
static void two_anchor_image(ht_batch *b) {
  memset(b, 0, sizeof *b);
  ht_image(b, 0, 2, 1, 1, 0);
  const float an[8] = {0, 0, 10, 10, 20, 20, 30, 30};
  const float gt[4] = {0, 0, 10, 10};
  const float d[8] = {0.05f, -0.5f, 0.0f, 0.2f, 1, 1, 1, 1};
  memcpy(b->anchors[0], an, sizeof an);
  memcpy(b->gt[0], gt, sizeof gt);
  memcpy(b->deltas[0], d, sizeof d);
}

/*
 * torchvision convention:
 *   loss_objectness = (BCE(0, 1) + BCE(0, 0)) / 2 = (ln 2 + ln 2) / 2 = 0.6931471806
 *   d/dx = (sigmoid(0) - y) / 2 = (-0.25, +0.25)
 *   box: target of a0 = encode(a0, gt) = 0; smooth-L1 beta 1/9 of (0.05, -0.5, 0, 0.2):
 *     0.5 * 0.05^2 * 9 = 0.01125;  0.5 - 1/18 = 0.4444444;  0;  0.2 - 1/18 = 0.1444444
 *     sum 0.01125 + 0.4444444 + 0.1444444 = 0.6001388889, / D = 0.3000694444;  gradient (0.05 * 9,
 * -1, 0, 1) / 2 = (0.225, -0.5, 0, 0.5); a1 is a negative: box gradient 0 whatever its deltas.
 */
static void hand_worked_two_anchors_torchvision(void **state) {
  (void)state;
  ht_batch b;
  two_anchor_image(&b);
  detloss_head_result r;
  detloss_head_image_stats ps;
  detloss_rpn_options o = opts(1);
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, &ps, &o, &err), DETLOSS_OK);
  dl_assert_close1(r.loss_cls, 0.6931471806, 1e-6, 0);
  dl_assert_close1(r.loss_box_reg, 0.3000694444, 1e-6, 0);
  dl_assert_close1(r.normalizer, 2.0, 0, 0);
  assert_int_equal(r.num_sampled_pos, 1);
  assert_int_equal(r.num_sampled_neg, 1);
  assert_int_equal(r.num_pos, 1);
  assert_int_equal(r.num_neg, 1);
  assert_int_equal(r.num_ignored, 0);
  const double go[2] = {-0.25, 0.25};
  dl_assert_close(b.gpred[0], go, 2, 1e-6, 0);
  const double gd[8] = {0.225, -0.5, 0, 0.5, 0, 0, 0, 0};
  dl_assert_close(b.gdeltas[0], gd, 8, 1e-6, 0);
  dl_assert_close1(ps.loss_cls, 0.6931471806, 1e-6, 0);
  ht_free(&b);
}

/*
 * detectron2 preset: divisor 256 x 1 image, box loss L1 (smooth-L1 beta 0):
 *   loss_objectness = 2 ln 2 / 256 = 0.00541521235;  d/dx = (-0.5, 0.5) / 256
 *   loss_box_reg = (0.05 + 0.5 + 0 + 0.2) / 256 = 0.0029296875;  gradient sign(d) / 256
 */
static void hand_worked_two_anchors_detectron2(void **state) {
  (void)state;
  ht_batch b;
  two_anchor_image(&b);
  detloss_head_result r;
  detloss_rpn_options o = detloss_rpn_options_preset(DETLOSS_RPN_DETECTRON2);
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, NULL, &o, &err), DETLOSS_OK);
  dl_assert_close1(r.loss_cls, 0.00541521235, 1e-6, 0);
  dl_assert_close1(r.loss_box_reg, 0.0029296875, 1e-6, 0);
  dl_assert_close1(r.normalizer, 256.0, 0, 0);
  const double go[2] = {-0.5 / 256, 0.5 / 256};
  dl_assert_close(b.gpred[0], go, 2, 1e-6, 0);
  const double gd[8] = {1.0 / 256, -1.0 / 256, 0, 1.0 / 256, 0, 0, 0, 0};
  dl_assert_close(b.gdeltas[0], gd, 8, 1e-6, 0);
  ht_free(&b);
}

/*
 * py-faster-rcnn preset on a 25 x 25 image: a1 = [20,20,30,30] is not inside
 * (x2 = 30 >= W + 0) -> ignored before matching; only a0 is sampled, D = 1:
 *   loss_objectness = ln 2 = 0.6931471806, gradient (-0.5, 0)
 *   loss_box_reg = 0.6001388889 / 1 (smooth-L1 beta 1/9, sigma 3), gradient (0.45, -1, 0, 1)
 */
static void hand_worked_two_anchors_py_faster_rcnn_border(void **state) {
  (void)state;
  ht_batch b;
  two_anchor_image(&b);
  b.im[0].image_h = 25;
  b.im[0].image_w = 25;
  detloss_head_result r;
  detloss_rpn_options o = detloss_rpn_options_preset(DETLOSS_RPN_PY_FASTER_RCNN);
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, NULL, &o, &err), DETLOSS_OK);
  dl_assert_close1(r.loss_cls, 0.6931471806, 1e-6, 0);
  dl_assert_close1(r.loss_box_reg, 0.6001388889, 1e-6, 0);
  assert_int_equal(r.num_ignored, 1);
  assert_int_equal(r.num_sampled_neg, 0);
  const double go[2] = {-0.5, 0};
  dl_assert_close(b.gpred[0], go, 2, 1e-6, 0);
  assert_true(b.gpred[0][1] == 0.0f);
  const double gd[8] = {0.45, -1, 0, 1, 0, 0, 0, 0};
  dl_assert_close(b.gdeltas[0], gd, 8, 1e-6, 0);
  ht_free(&b);
}

/* torchvision fixtures (no random sampling): losses to 1e-5 relative of the
 * float64 reference, gradients to 1e-4 relative + 1e-7 absolute. */
static void run_fixture(const char *path) {
  ht_batch b;
  const cJSON *exp;
  cJSON *root = ht_load_fixture(path, &b, 0, &exp);
  detloss_rpn_options o = opts(2);
  detloss_head_result r;
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, b.n, &r, NULL, &o, &err), DETLOSS_OK);
  dl_assert_close1(r.loss_cls, ht_num(exp, "loss_objectness"), 1e-5, 0);
  dl_assert_close1(r.loss_box_reg, ht_num(exp, "loss_box_reg"), 1e-5, 1e-7);
  assert_int_equal(r.num_sampled_pos, (size_t)ht_num(exp, "num_pos"));
  assert_int_equal(r.num_sampled_neg, (size_t)ht_num(exp, "num_neg"));
  ht_check_grad(exp, "grad_objectness", &b, 1, 1, 1e-4, 1e-7);
  ht_check_grad(exp, "grad_deltas", &b, 0, 4, 1e-4, 1e-7);
  cJSON_Delete(root);
  ht_free(&b);
}
static void matches_torchvision_on_two_images(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("heads/rpn_two_images.json"));
}
static void matches_torchvision_with_a_zero_gt_image(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("heads/rpn_zero_gt_image.json"));
}
static void matches_torchvision_on_three_images(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("heads/rpn_three_images.json"));
}

/* n images: image i has G = 2 + i gt (image 1: none) and extra + 6 G anchors. */
static void random_batch(ht_batch *b, uint64_t seed, size_t n, size_t extra) {
  dl_rng r = {seed};
  memset(b, 0, sizeof *b);
  for (size_t i = 0; i < n; i++) {
    size_t G = (i == 1) ? 0 : 2 + i, A = extra + 6 * G;
    ht_image(b, i, A, G, 1, 0);
    ht_random_boxes(&r, b->gt[i], G, 200.0, 10.0, 80.0);
    ht_random_anchors(&r, b->anchors[i], extra, b->gt[i], G, 6, 0.25);
    for (size_t k = 0; k < A; k++) b->pred[i][k] = (float)(dl_rng_normal(&r) * 2.0);
    for (size_t k = 0; k < A * 4; k++) b->deltas[i][k] = (float)(dl_rng_normal(&r) * 0.3);
  }
}

static double total_loss(ht_batch *b, const detloss_rpn_options *o) {
  detloss_head_result r;
  detloss_error err;
  float *gp[HT_MAX_IMAGES], *gd[HT_MAX_IMAGES];
  for (size_t i = 0; i < b->n; i++) {
    gp[i] = b->im[i].grad_objectness;
    gd[i] = b->im[i].grad_deltas;
    b->im[i].grad_objectness = b->im[i].grad_deltas = NULL;
  }
  assert_int_equal(detloss_rpn_loss(b->im, b->n, &r, NULL, o, &err), DETLOSS_OK);
  for (size_t i = 0; i < b->n; i++) {
    b->im[i].grad_objectness = gp[i];
    b->im[i].grad_deltas = gd[i];
  }
  return (double)r.loss_cls + (double)r.loss_box_reg;
}

/* Central differences in double on loss_objectness + loss_box_reg w.r.t. every
 * logit and delta (matching and sampling do not depend on them); h = 5e-3,
 * tolerance 1e-3 relative + 5e-5 absolute. Kinks skipped: L1 at d = target;
 * IoU kinds where the one-sided slopes disagree (at most 10% of them). */
static void gradient_check(detloss_rpn_convention conv, detloss_head_box_loss kind) {
  ht_batch b;
  random_batch(&b, 11 + (uint64_t)kind, 3, 12);
  detloss_rpn_options o = detloss_rpn_options_preset(conv);
  o.box_loss = kind;
  o.num_threads = 1;
  detloss_head_result r;
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, b.n, &r, NULL, &o, &err), DETLOSS_OK);
  assert_true(r.num_sampled_pos > 0 && r.num_sampled_neg > 0);
  const double h = 5e-3;
  size_t checked = 0, skipped = 0;
  for (size_t i = 0; i < b.n; i++) {
    size_t A = b.im[i].num_anchors;
    int64_t *m = ht_alloc(A * sizeof(int64_t));
    assert_int_equal(detloss_match(b.anchors[i], A, b.gt[i], b.im[i].num_gt, NULL, m, NULL,
                                   &o.match, &err),
                     DETLOSS_OK);
    for (size_t k = 0; k < A; k++) {
      float x0 = b.pred[i][k];
      b.pred[i][k] = (float)((double)x0 + h);
      double fp = total_loss(&b, &o);
      b.pred[i][k] = (float)((double)x0 - h);
      double fm = total_loss(&b, &o);
      b.pred[i][k] = x0;
      double e[1] = {(fp - fm) /
                     ((double)(float)((double)x0 + h) - (double)(float)((double)x0 - h))};
      dl_assert_close(&b.gpred[i][k], e, 1, 1e-3, 5e-5);
    }
    for (size_t a = 0; a < A; a++) {
      float t[4] = {0, 0, 0, 0};
      if (m[a] >= 0)
        assert_int_equal(detloss_box_encode(b.anchors[i] + 4 * a, b.gt[i] + 4 * m[a], 1, t, NULL,
                                            &err),
                         DETLOSS_OK);
      for (size_t c = 0; c < 4; c++) {
        size_t k = 4 * a + c;
        float x0 = b.deltas[i][k];
        int l1 = kind == DETLOSS_HEAD_BOX_L1 ||
                 (kind == DETLOSS_HEAD_BOX_SMOOTH_L1 && o.smooth_l1_beta == 0.0f);
        if (l1 && m[a] >= 0 && fabs((double)x0 - (double)t[c]) < 2 * h) continue; /* kink */
        b.deltas[i][k] = (float)((double)x0 + h);
        double fp = total_loss(&b, &o);
        b.deltas[i][k] = (float)((double)x0 - h);
        double fm = total_loss(&b, &o);
        b.deltas[i][k] = x0;
        if (kind >= DETLOSS_HEAD_BOX_GIOU && m[a] >= 0) {
          double f0 = total_loss(&b, &o);
          double fw = (fp - f0) / h, bw = (f0 - fm) / h;
          checked++;
          if (fabs(fw - bw) > 0.02 * fmax(fabs(fw), fabs(bw)) + 2e-4) {
            skipped++;
            continue;
          }
        }
        double e[1] = {(fp - fm) /
                       ((double)(float)((double)x0 + h) - (double)(float)((double)x0 - h))};
        dl_assert_close(&b.gdeltas[i][k], e, 1, 1e-3, 5e-5);
      }
    }
    free(m);
  }
  assert_true(skipped * 10 <= checked);
  ht_free(&b);
}
static void gradients_match_finite_differences_torchvision(void **s) {
  (void)s;
  gradient_check(DETLOSS_RPN_TORCHVISION, DETLOSS_HEAD_BOX_SMOOTH_L1);
}
static void gradients_match_finite_differences_detectron2_l1(void **s) {
  (void)s;
  gradient_check(DETLOSS_RPN_DETECTRON2, DETLOSS_HEAD_BOX_SMOOTH_L1);
}
static void gradients_match_finite_differences_detectron2_giou(void **s) {
  (void)s;
  gradient_check(DETLOSS_RPN_DETECTRON2, DETLOSS_HEAD_BOX_GIOU);
}

/* A zero-gt image alone: every anchor negative and sampled (3 <= 256):
 * loss_objectness = mean softplus(x) = (ln 2 + ln(1+e) + ln(1+e^-1)) / 3
 * = (0.6931471806 + 1.3132616875 + 0.3132616875) / 3 = 0.7732235185; box 0. */
static void zero_gt_image_is_all_negative_with_zero_box_loss(void **s) {
  (void)s;
  ht_batch b;
  memset(&b, 0, sizeof b);
  ht_image(&b, 0, 3, 0, 1, 0);
  ht_random_boxes(&(dl_rng){5}, b.anchors[0], 3, 100.0, 5.0, 30.0);
  b.pred[0][0] = 0.0f;
  b.pred[0][1] = 1.0f;
  b.pred[0][2] = -1.0f;
  for (int k = 0; k < 12; k++) b.deltas[0][k] = 0.5f;
  detloss_head_result r;
  detloss_rpn_options o = opts(1);
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, NULL, &o, &err), DETLOSS_OK);
  dl_assert_close1(r.loss_cls, 0.7732235185, 1e-6, 0);
  assert_true(r.loss_box_reg == 0.0f);
  assert_int_equal(r.num_neg, 3);
  assert_int_equal(r.num_sampled_neg, 3);
  for (int k = 0; k < 12; k++) assert_true(b.gdeltas[0][k] == 0.0f);
  ht_free(&b);
}

/* Without low-quality matches, anchors with IoU in [0.3, 0.7) are all ignored:
 * nothing is sampled in the whole batch (D = 0), so both losses are 0 with
 * zero gradients (torchvision would divide 0 by 0).
 * IoU([0,0,10,10], [0,0,10,20]) = 0.5, ([0,0,10,10], [0,0,20,20]) = 0.25 -> negative
 * is avoided by using [0,0,10,25]: 0.4. */
static void all_ignored_batch_gives_zero_losses_and_gradients(void **s) {
  (void)s;
  ht_batch b;
  memset(&b, 0, sizeof b);
  ht_image(&b, 0, 2, 1, 1, 0);
  const float an[8] = {0, 0, 10, 20, 0, 0, 10, 25};
  const float gt[4] = {0, 0, 10, 10};
  memcpy(b.anchors[0], an, sizeof an);
  memcpy(b.gt[0], gt, sizeof gt);
  b.pred[0][0] = 3.0f;
  ht_fill_grads(&b, 1, 9.0f);
  detloss_rpn_options o = opts(1);
  o.match.allow_low_quality = 0;
  detloss_head_result r;
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, NULL, &o, &err), DETLOSS_OK);
  assert_true(r.loss_cls == 0.0f && r.loss_box_reg == 0.0f);
  assert_int_equal(r.num_ignored, 2);
  assert_true(r.normalizer == 0.0);
  ht_assert_grads_are(&b, 1, 0.0f);
  ht_free(&b);
}

/* Sampling caps: an image with 300 positives and 500 negatives samples
 * exactly 128 and 128 (torchvision counts); the other anchors get gradient 0;
 * another seed picks another subset of the same size. */
static void sampling_takes_256_per_image_and_depends_on_the_seed(void **s) {
  (void)s;
  ht_batch b;
  memset(&b, 0, sizeof b);
  ht_image(&b, 0, 800, 1, 1, 0);
  const float gt[4] = {100, 100, 150, 150};
  memcpy(b.gt[0], gt, sizeof gt);
  for (int a = 0; a < 800; a++) {
    /* 300 copies of the gt (IoU 1), 500 far boxes (IoU 0) */
    float off = a < 300 ? 0.0f : 300.0f;
    float box[4] = {100 + off, 100 + off, 150 + off, 150 + off};
    memcpy(b.anchors[0] + 4 * a, box, sizeof box);
    b.pred[0][a] = 0.01f * (float)(a % 13);
  }
  detloss_head_result r;
  detloss_rpn_options o = opts(2);
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, NULL, &o, &err), DETLOSS_OK);
  assert_int_equal(r.num_pos, 300);
  assert_int_equal(r.num_neg, 500);
  assert_int_equal(r.num_sampled_pos, 128);
  assert_int_equal(r.num_sampled_neg, 128);
  size_t nz = 0;
  for (int a = 0; a < 800; a++) nz += b.gpred[0][a] != 0.0f;
  assert_int_equal(nz, 256);
  float *g0 = ht_alloc(800 * sizeof(float));
  memcpy(g0, b.gpred[0], 800 * sizeof(float));
  o.sample.seed = 12345;
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, NULL, &o, &err), DETLOSS_OK);
  assert_int_equal(r.num_sampled_pos, 128);
  assert_true(memcmp(g0, b.gpred[0], 800 * sizeof(float)) != 0);
  free(g0);
  ht_free(&b);
}

/* Bitwise identical for 1, 2 and 4 threads: three images of ~20,000 anchors
 * (several blocks each; 2 threads run images in parallel, 4 run blocks). */
static void results_are_bitwise_identical_for_1_2_4_threads(void **s) {
  (void)s;
  ht_batch b[3];
  detloss_head_result r[3];
  const int th[3] = {1, 2, 4};
  for (int t = 0; t < 3; t++) {
    random_batch(&b[t], 2024, 3, 20000);
    detloss_rpn_options o = opts(th[t]);
    detloss_error err;
    assert_int_equal(detloss_rpn_loss(b[t].im, 3, &r[t], NULL, &o, &err), DETLOSS_OK);
  }
  for (int t = 1; t < 3; t++) {
    assert_memory_equal(&r[0].loss_cls, &r[t].loss_cls, sizeof(float));
    assert_memory_equal(&r[0].loss_box_reg, &r[t].loss_box_reg, sizeof(float));
    assert_int_equal(r[0].num_sampled_pos, r[t].num_sampled_pos);
    for (size_t i = 0; i < 3; i++) {
      dl_assert_bitwise_equal(b[0].gpred[i], b[t].gpred[i], b[0].im[i].num_anchors);
      dl_assert_bitwise_equal(b[0].gdeltas[i], b[t].gdeltas[i], b[0].im[i].num_anchors * 4);
    }
  }
  for (int t = 0; t < 3; t++) ht_free(&b[t]);
}

static void per_image_stats_add_up_to_the_batch(void **s) {
  (void)s;
  ht_batch b;
  random_batch(&b, 4, 3, 30);
  detloss_head_result r;
  detloss_head_image_stats ps[3];
  detloss_rpn_options o = opts(2);
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &o, &err), DETLOSS_OK);
  double c = 0, x = 0;
  size_t sp = 0, sn = 0;
  for (int i = 0; i < 3; i++) {
    c += (double)ps[i].loss_cls;
    x += (double)ps[i].loss_box_reg;
    sp += ps[i].num_sampled_pos;
    sn += ps[i].num_sampled_neg;
    assert_int_equal(ps[i].num_pos + ps[i].num_neg + ps[i].num_ignored, b.im[i].num_anchors);
  }
  dl_assert_close1(r.loss_cls, c, 1e-6, 0);
  dl_assert_close1(r.loss_box_reg, x, 1e-6, 1e-9);
  assert_int_equal(r.num_sampled_pos, sp);
  assert_int_equal(r.num_sampled_neg, sn);
  dl_assert_close1(r.normalizer, (double)(sp + sn), 0, 0);
  ht_free(&b);
}

/* NaN logit of a sampled anchor -> NaN loss and the flag (status OK); of an
 * ignored anchor -> not in the loss, gradient 0. */
static void non_finite_logits_propagate_to_the_flag(void **s) {
  (void)s;
  ht_batch b;
  two_anchor_image(&b);
  b.im[0].image_h = 25;
  b.im[0].image_w = 25;
  detloss_rpn_options o = detloss_rpn_options_preset(DETLOSS_RPN_PY_FASTER_RCNN);
  detloss_head_result r;
  detloss_error err;
  b.pred[0][1] = nanf(""); /* a1 is border-ignored */
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, NULL, &o, &err), DETLOSS_OK);
  assert_int_equal(r.nonfinite, 0);
  assert_true(b.gpred[0][1] == 0.0f);
  b.pred[0][0] = nanf(""); /* a0, a sampled positive */
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, NULL, &o, &err), DETLOSS_OK);
  assert_int_equal(r.nonfinite, 1);
  assert_true(isnan(r.loss_cls));
  b.pred[0][0] = 0.0f;
  b.deltas[0][2] = -INFINITY;
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, NULL, &o, &err), DETLOSS_OK);
  assert_int_equal(r.nonfinite, 1);
  assert_true(isinf(r.loss_box_reg));
  ht_free(&b);
}

/* One source per kernel: the objectness term of detloss_rpn_loss is the BCE
 * with logits of detloss_loss_elementwise, bit for bit. Options that sample
 * every anchor not ignored (B = A, f = 1), so the sampled set is known from
 * detloss_match alone: target 1 for matched anchors, 0 for the others;
 * weight 1/D for the sampled anchors and 0 for the ignored ones
 * (D = number sampled). The head's gradient, (dl/dx) * (float)(1/D), is the
 * public gradient with that weight: the product of two floats rounds once
 * either way. */
static void objectness_gradients_are_bitwise_those_of_bce_with_logits(void **s) {
  (void)s;
  ht_batch b;
  random_batch(&b, 11, 1, 400);
  const size_t A = b.im[0].num_anchors;
  detloss_rpn_options o = opts(2);
  o.sample.batch_size_per_image = (int64_t)A;
  o.sample.positive_fraction = 1.0;
  detloss_head_result r;
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, 1, &r, NULL, &o, &err), DETLOSS_OK);
  int64_t *m = ht_alloc(A * sizeof(int64_t));
  assert_int_equal(detloss_match(b.anchors[0], A, b.gt[0], b.im[0].num_gt, NULL, m, NULL, &o.match,
                                 &err),
                   DETLOSS_OK);
  size_t D = 0;
  for (size_t a = 0; a < A; a++) D += m[a] != -2;
  assert_int_equal(r.num_sampled_pos + r.num_sampled_neg, D);
  assert_true(D > 0 && r.num_pos > 0);
  float *y = ht_alloc(A * sizeof(float)), *w = ht_alloc(A * sizeof(float)),
        *l = ht_alloc(A * sizeof(float)), *g = ht_alloc(A * sizeof(float));
  for (size_t a = 0; a < A; a++) {
    y[a] = m[a] >= 0 ? 1.0f : 0.0f;
    w[a] = m[a] == -2 ? 0.0f : (float)(1.0 / (double)D);
  }
  detloss_loss_options lo = detloss_loss_options_default(DETLOSS_LOSS_BCE_WITH_LOGITS);
  lo.reduction = DETLOSS_REDUCTION_NONE;
  assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, b.pred[0], y, w, A, l, g,
                                            &lo, &err),
                   DETLOSS_OK);
  ht_assert_bitwise(b.gpred[0], g, A, "grad_objectness");
  free(m);
  free(y);
  free(w);
  free(l);
  free(g);
  ht_free(&b);
}

/* The per-anchor objectness losses, bit for bit: batches of 8 one-anchor
 * images, each either a positive (anchor = its one gt) or a negative (no gt);
 * every anchor is sampled, so D = 8 and image i's loss_cls is
 * (float)(l_i / 8), exact in double: the public per-element loss
 * (reduction none) scaled the same way must give the same bits. 32 batches,
 * logits ~ N(0, 3^2). */
static void objectness_losses_are_bitwise_those_of_bce_with_logits(void **s) {
  (void)s;
  enum { N = HT_MAX_IMAGES, ROUNDS = 32 };
  dl_rng rng = {77};
  float head[N * ROUNDS], pub[N * ROUNDS];
  for (int round = 0; round < ROUNDS; round++) {
    ht_batch b;
    memset(&b, 0, sizeof b);
    float x[N], y[N], l[N];
    for (size_t i = 0; i < N; i++) {
      int pos = dl_rng_u64(&rng) & 1;
      ht_image(&b, i, 1, pos ? 1 : 0, 1, 0);
      const float box[4] = {10, 20, 60, 90};
      memcpy(b.anchors[i], box, sizeof box);
      if (pos) memcpy(b.gt[i], box, sizeof box);
      x[i] = b.pred[i][0] = (float)(dl_rng_normal(&rng) * 3.0);
      y[i] = pos ? 1.0f : 0.0f;
    }
    detloss_rpn_options o = opts(1);
    detloss_head_result r;
    detloss_head_image_stats ps[N];
    detloss_error err;
    assert_int_equal(detloss_rpn_loss(b.im, N, &r, ps, &o, &err), DETLOSS_OK);
    assert_true(r.normalizer == (double)N);
    detloss_loss_options lo = detloss_loss_options_default(DETLOSS_LOSS_BCE_WITH_LOGITS);
    lo.reduction = DETLOSS_REDUCTION_NONE;
    assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, x, y, NULL, N, l, NULL,
                                              &lo, &err),
                     DETLOSS_OK);
    for (size_t i = 0; i < N; i++) {
      head[round * N + i] = ps[i].loss_cls;
      pub[round * N + i] = (float)((double)l[i] / (double)N);
    }
    ht_free(&b);
  }
  ht_assert_bitwise(head, pub, N * ROUNDS, "per-anchor loss_cls");
}

static void bad_input_names_image_and_field_and_leaves_outputs_untouched(void **s) {
  (void)s;
  ht_batch b;
  random_batch(&b, 8, 3, 10);
  detloss_rpn_options o = opts(2);
  detloss_head_result r, r0;
  memset(&r, 0x5a, sizeof r);
  r0 = r;
  detloss_head_image_stats ps[3];
  detloss_error err;
  ht_fill_grads(&b, 1, 7.0f);

  b.im[2].num_predictions = b.im[2].num_anchors + 1;
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &o, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "images[2].num_predictions");
  b.im[2].num_predictions = b.im[2].num_anchors;

  assert_int_equal(detloss_rpn_loss(b.im, 0, &r, ps, &o, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "num_images");
  assert_int_equal(detloss_rpn_loss(b.im, 3, NULL, ps, &o, &err), DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "result");

  const float *ob = b.im[1].objectness;
  b.im[1].objectness = NULL;
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &o, &err), DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "images[1].objectness");
  b.im[1].objectness = ob;

  float keep = b.anchors[1][7];
  b.anchors[1][7] = -INFINITY;
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &o, &err), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "images[1].anchors[1]");
  b.anchors[1][7] = keep;
  keep = b.gt[2][5];
  b.gt[2][5] = nanf("");
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &o, &err), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "images[2].gt[1]");
  b.gt[2][5] = keep;

  detloss_rpn_options bad = detloss_rpn_options_preset(DETLOSS_RPN_PY_FASTER_RCNN);
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &bad, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "images[0].image_h");
  bad = o;
  bad.smooth_l1_beta = -1.0f;
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &bad, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "smooth_l1_beta");
  bad = o;
  bad.convention = (detloss_rpn_convention)7;
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &bad, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "convention");
  bad = o;
  bad.sample.positive_fraction = 1.5;
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &bad, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "sample.positive_fraction");
  bad = o;
  bad.match.high = 1.5f;
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &bad, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "match.high");

  assert_memory_equal(&r, &r0, sizeof r);
  ht_assert_grads_are(&b, 1, 7.0f);
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r, ps, &o, &err), DETLOSS_OK);
  ht_free(&b);
}

/* Matching through the grid config (detloss_match_grid) gives the same bits
 * as matching the explicit anchors. */
static void grid_config_matching_gives_the_same_result(void **s) {
  (void)s;
  const float sizes[2] = {16, 32}, ratios[3] = {0.5f, 1.0f, 2.0f};
  detloss_anchor_level lv[2];
  memset(lv, 0, sizeof lv);
  for (int l = 0; l < 2; l++) {
    lv[l].feat_h = l ? 8 : 16;
    lv[l].feat_w = l ? 10 : 20;
    lv[l].stride_h = lv[l].stride_w = l ? 16.0f : 8.0f;
    lv[l].sizes = &sizes[l];
    lv[l].num_sizes = 1;
    lv[l].ratios = ratios;
    lv[l].num_ratios = 3;
  }
  detloss_anchor_config cfg = {lv, 2, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  size_t A;
  detloss_error err;
  assert_int_equal(detloss_anchors_count(&cfg, &A, &err), DETLOSS_OK);
  ht_batch b[2];
  detloss_head_result r[2];
  for (int t = 0; t < 2; t++) {
    memset(&b[t], 0, sizeof b[t]);
    ht_image(&b[t], 0, A, 3, 1, 0);
    assert_int_equal(detloss_anchors_generate(&cfg, b[t].anchors[0], A, &err), DETLOSS_OK);
    dl_rng rng = {42};
    ht_random_boxes(&rng, b[t].gt[0], 3, 128.0, 10.0, 40.0);
    for (size_t k = 0; k < A; k++) b[t].pred[0][k] = (float)dl_rng_normal(&rng);
    for (size_t k = 0; k < 4 * A; k++) b[t].deltas[0][k] = (float)(0.2 * dl_rng_normal(&rng));
    if (t) b[t].im[0].anchor_config = &cfg;
    detloss_rpn_options o = opts(2);
    assert_int_equal(detloss_rpn_loss(b[t].im, 1, &r[t], NULL, &o, &err), DETLOSS_OK);
  }
  assert_memory_equal(&r[0].loss_cls, &r[1].loss_cls, sizeof(float));
  assert_memory_equal(&r[0].loss_box_reg, &r[1].loss_box_reg, sizeof(float));
  dl_assert_bitwise_equal(b[0].gpred[0], b[1].gpred[0], A);
  dl_assert_bitwise_equal(b[0].gdeltas[0], b[1].gdeltas[0], 4 * A);
  ht_free(&b[0]);
  ht_free(&b[1]);
}

/* A caller workspace gives the same bits; one too small is refused with the
 * outputs untouched. */
static void caller_workspace_gives_the_same_bits(void **s) {
  (void)s;
  ht_batch b;
  random_batch(&b, 31, 3, 40);
  detloss_rpn_options o = opts(2);
  detloss_head_result r1, r2;
  detloss_error err;
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r1, NULL, &o, &err), DETLOSS_OK);
  float *g1 = ht_alloc(b.im[0].num_anchors * sizeof(float));
  memcpy(g1, b.gpred[0], b.im[0].num_anchors * sizeof(float));
  size_t need = 0;
  assert_int_equal(detloss_rpn_workspace_size(b.im, 3, &need, &err), DETLOSS_OK);
  assert_true(need >= 9 * (b.im[0].num_anchors + b.im[1].num_anchors + b.im[2].num_anchors));
  o.workspace = ht_alloc(need);
  o.workspace_size = need - 1;
  ht_fill_grads(&b, 1, 3.0f);
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r2, NULL, &o, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "workspace_size");
  ht_assert_grads_are(&b, 1, 3.0f);
  o.workspace_size = need;
  assert_int_equal(detloss_rpn_loss(b.im, 3, &r2, NULL, &o, &err), DETLOSS_OK);
  assert_memory_equal(&r1.loss_cls, &r2.loss_cls, sizeof(float));
  assert_memory_equal(&r1.loss_box_reg, &r2.loss_box_reg, sizeof(float));
  dl_assert_bitwise_equal(g1, b.gpred[0], b.im[0].num_anchors);
  free(o.workspace);
  free(g1);
  ht_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hand_worked_two_anchors_torchvision),
      cmocka_unit_test(hand_worked_two_anchors_detectron2),
      cmocka_unit_test(hand_worked_two_anchors_py_faster_rcnn_border),
      cmocka_unit_test(matches_torchvision_on_two_images),
      cmocka_unit_test(matches_torchvision_with_a_zero_gt_image),
      cmocka_unit_test(matches_torchvision_on_three_images),
      cmocka_unit_test(gradients_match_finite_differences_torchvision),
      cmocka_unit_test(gradients_match_finite_differences_detectron2_l1),
      cmocka_unit_test(gradients_match_finite_differences_detectron2_giou),
      cmocka_unit_test(zero_gt_image_is_all_negative_with_zero_box_loss),
      cmocka_unit_test(all_ignored_batch_gives_zero_losses_and_gradients),
      cmocka_unit_test(sampling_takes_256_per_image_and_depends_on_the_seed),
      cmocka_unit_test(results_are_bitwise_identical_for_1_2_4_threads),
      cmocka_unit_test(per_image_stats_add_up_to_the_batch),
      cmocka_unit_test(non_finite_logits_propagate_to_the_flag),
      cmocka_unit_test(objectness_gradients_are_bitwise_those_of_bce_with_logits),
      cmocka_unit_test(objectness_losses_are_bitwise_those_of_bce_with_logits),
      cmocka_unit_test(bad_input_names_image_and_field_and_leaves_outputs_untouched),
      cmocka_unit_test(grid_config_matching_gives_the_same_result),
      cmocka_unit_test(caller_workspace_gives_the_same_bits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
