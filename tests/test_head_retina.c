/* test_head_retina.c - detloss_retina_loss: RetinaNet focal + box loss over a batch. */
#include "head_testutil.h"

static detloss_retina_options opts(int threads) {
  detloss_retina_options o = detloss_retina_options_default();
  o.num_threads = threads;
  return o;
}

/*
 * Hand-worked: one image, gt [0,0,10,10] of class 1, C = 2, all logits 0.
 *   a0 = [0,0,10,10]     IoU 1     -> positive (label 1)
 *   a1 = [20,20,30,30]   IoU 0     -> negative
 *   a2 = [0,0,10,22.222] IoU 0.45  -> ignored (0.4 <= IoU < 0.5; not the gt's best)
 * Focal at x = 0 (p = 1/2), alpha 0.25, gamma 2:
 *   y = 1: 0.25 * 0.5^2 * ln 2 = 0.0433216988,  dl/dx = -0.25*0.25*(0.5 + 2*0.5*ln 2)...
 *          = -alpha (1-p)^2 (1 - p - gamma p ln p) = -0.0625 * (0.5 + ln 2) = -0.0745716988
 *   y = 0: 0.75 * 0.5^2 * ln 2 = 0.1299650964,  dl/dx = (1-alpha) p^2 (p - gamma (1-p) ln(1-p))
 *          = 0.1875 * (0.5 + ln 2) = 0.2237150964
 * loss_cls = (0.1299650964 [a0 c0] + 0.0433216988 [a0 c1] + 2 * 0.1299650964 [a1]) / max(1, 1)
 *          = 0.4332169880; a2 contributes nothing and gets gradient 0.
 * Box (L1): target of a0 = encode(a0, gt) = 0; deltas (0.1, -0.2, 0.3, 0):
 *   loss_box_reg = (0.1 + 0.2 + 0.3 + 0) / 1 = 0.6, gradient sign(d) = (1, -1, 1, 0);
 *   a1, a2 (not positive) get gradient 0 whatever their deltas.
 */
static void hand_worked_three_anchors_two_classes(void **state) {
  (void)state;
  ht_batch b;
  memset(&b, 0, sizeof b);
  ht_image(&b, 0, 3, 1, 2, 1);
  const float an[12] = {0, 0, 10, 10, 20, 20, 30, 30, 0, 0, 10, 22.2222f};
  const float gt[4] = {0, 0, 10, 10};
  const float d[12] = {0.1f, -0.2f, 0.3f, 0.0f, 1, 1, 1, 1, -1, -1, -1, -1};
  memcpy(b.anchors[0], an, sizeof an);
  memcpy(b.gt[0], gt, sizeof gt);
  memcpy(b.deltas[0], d, sizeof d);
  b.labels[0][0] = 1;
  detloss_head_result r;
  detloss_head_image_stats ps;
  detloss_retina_options o = opts(1);
  detloss_error err;
  assert_int_equal(detloss_retina_loss(b.im, 1, 2, &r, &ps, &o, &err), DETLOSS_OK);
  dl_assert_close1(r.loss_cls, 0.4332169880, 1e-6, 0);
  dl_assert_close1(r.loss_box_reg, 0.6, 1e-6, 0);
  assert_int_equal(r.num_pos, 1);
  assert_int_equal(r.num_neg, 1);
  assert_int_equal(r.num_ignored, 1);
  assert_int_equal(r.nonfinite, 0);
  dl_assert_close1(r.normalizer, 1.0, 0, 0);
  const double gc[6] = {0.2237150964, -0.0745716988, 0.2237150964, 0.2237150964, 0, 0};
  dl_assert_close(b.gpred[0], gc, 6, 1e-6, 0);
  assert_true(b.gpred[0][4] == 0.0f && b.gpred[0][5] == 0.0f); /* exactly 0 */
  const double gd[12] = {1, -1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  dl_assert_close(b.gdeltas[0], gd, 12, 0, 0);
  assert_int_equal(ps.num_pos, 1);
  dl_assert_close1(ps.loss_cls, 0.4332169880, 1e-6, 0);
  ht_free(&b);
}

/* Every torchvision fixture: losses to 1e-5 relative of the float64 reference,
 * gradients to 1e-4 relative + 1e-7 absolute (float32 evaluation). */
static void run_fixture(const char *path, detloss_head_box_loss kind) {
  ht_batch b;
  const cJSON *exp;
  cJSON *root = ht_load_fixture(path, &b, 1, &exp);
  detloss_retina_options o = opts(2);
  o.box_loss = kind;
  detloss_head_result r;
  detloss_error err;
  assert_int_equal(detloss_retina_loss(b.im, b.n, b.C, &r, NULL, &o, &err), DETLOSS_OK);
  dl_assert_close1(r.loss_cls, ht_num(exp, "loss_cls"), 1e-5, 0);
  dl_assert_close1(r.loss_box_reg, ht_num(exp, "loss_box_reg"), 1e-5, 1e-7);
  assert_int_equal(r.num_pos, (size_t)ht_num(exp, "num_pos"));
  ht_check_grad(exp, "grad_cls_logits", &b, 1, b.C, 1e-4, 1e-7);
  ht_check_grad(exp, "grad_deltas", &b, 0, 4, 1e-4, 1e-7);
  cJSON_Delete(root);
  ht_free(&b);
}

static void matches_torchvision_with_l1(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("heads/retina_l1.json"), DETLOSS_HEAD_BOX_L1);
}
static void matches_torchvision_with_smooth_l1(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("heads/retina_smooth_l1.json"), DETLOSS_HEAD_BOX_SMOOTH_L1);
}
static void matches_torchvision_with_giou(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("heads/retina_giou.json"), DETLOSS_HEAD_BOX_GIOU);
}
static void matches_torchvision_with_diou(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("heads/retina_diou.json"), DETLOSS_HEAD_BOX_DIOU);
}
static void matches_torchvision_with_ciou(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("heads/retina_ciou.json"), DETLOSS_HEAD_BOX_CIOU);
}
static void matches_torchvision_with_a_zero_gt_image(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("heads/retina_zero_gt_image.json"), DETLOSS_HEAD_BOX_L1);
}
static void matches_torchvision_with_one_class(void **s) {
  (void)s;
  run_fixture(DL_FIXTURE("heads/retina_one_class.json"), DETLOSS_HEAD_BOX_L1);
}

/* A random batch: n images of A_i = 12 + 5 G_i anchors, C classes. */
static void random_batch(ht_batch *b, uint64_t seed, size_t n, size_t C, size_t extra) {
  dl_rng r = {seed};
  memset(b, 0, sizeof *b);
  b->C = C;
  for (size_t i = 0; i < n; i++) {
    size_t G = (i == 1) ? 0 : 2 + i, A = extra + 5 * G;
    ht_image(b, i, A, G, C, 1);
    ht_random_boxes(&r, b->gt[i], G, 200.0, 10.0, 80.0);
    ht_random_anchors(&r, b->anchors[i], extra, b->gt[i], G, 5, 0.5);
    for (size_t g = 0; g < G; g++) b->labels[i][g] = (int64_t)(dl_rng_u64(&r) % C);
    for (size_t k = 0; k < A * C; k++) b->pred[i][k] = (float)(dl_rng_normal(&r) * 2.0 - 1.0);
    for (size_t k = 0; k < A * 4; k++) b->deltas[i][k] = (float)(dl_rng_normal(&r) * 0.3);
  }
}

static double total_loss(ht_batch *b, const detloss_retina_options *o) {
  detloss_head_result r;
  detloss_error err;
  /* gradients not needed for the perturbed evaluations */
  float *gp[HT_MAX_IMAGES], *gd[HT_MAX_IMAGES];
  for (size_t i = 0; i < b->n; i++) {
    gp[i] = b->im[i].grad_cls_logits;
    gd[i] = b->im[i].grad_deltas;
    b->im[i].grad_cls_logits = NULL;
    b->im[i].grad_deltas = NULL;
  }
  assert_int_equal(detloss_retina_loss(b->im, b->n, b->C, &r, NULL, o, &err), DETLOSS_OK);
  for (size_t i = 0; i < b->n; i++) {
    b->im[i].grad_cls_logits = gp[i];
    b->im[i].grad_deltas = gd[i];
  }
  return (double)r.loss_cls + (double)r.loss_box_reg;
}

/* Central differences in double on the whole loss (loss_cls + loss_box_reg)
 * w.r.t. every logit and every delta; h = 5e-3; tolerance 1e-3 relative +
 * 5e-5 absolute (float32 loss values of magnitude ~1). For L1, deltas within
 * 2h of the kink d = target are skipped (targets from detloss_match +
 * detloss_box_encode). */
static void gradient_check(detloss_head_box_loss kind, float gamma, float alpha) {
  ht_batch b;
  random_batch(&b, 77 + (uint64_t)kind, 3, 3, 6);
  detloss_retina_options o = opts(1);
  o.box_loss = kind;
  o.gamma = gamma;
  o.alpha = alpha;
  detloss_head_result r;
  detloss_error err;
  assert_int_equal(detloss_retina_loss(b.im, b.n, b.C, &r, NULL, &o, &err), DETLOSS_OK);
  assert_true(r.num_pos > 0);
  const double h = 5e-3;
  size_t checked = 0, skipped = 0;
  for (size_t i = 0; i < b.n; i++) {
    size_t A = b.im[i].num_anchors;
    int64_t *m = ht_alloc(A * sizeof(int64_t));
    detloss_match_options mo = o.match;
    assert_int_equal(detloss_match(b.anchors[i], A, b.gt[i], b.im[i].num_gt, NULL, m, NULL, &mo,
                                   &err),
                     DETLOSS_OK);
    for (size_t k = 0; k < A * b.C; k++) {
      float x0 = b.pred[i][k];
      b.pred[i][k] = (float)((double)x0 + h);
      double fp = total_loss(&b, &o);
      b.pred[i][k] = (float)((double)x0 - h);
      double fm = total_loss(&b, &o);
      b.pred[i][k] = x0;
      double fd = (fp - fm) / ((double)(float)((double)x0 + h) - (double)(float)((double)x0 - h));
      double e[1] = {fd};
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
        if (kind == DETLOSS_HEAD_BOX_L1 && m[a] >= 0 && fabs((double)x0 - (double)t[c]) < 2 * h)
          continue; /* kink */
        b.deltas[i][k] = (float)((double)x0 + h);
        double fp = total_loss(&b, &o);
        b.deltas[i][k] = (float)((double)x0 - h);
        double fm = total_loss(&b, &o);
        b.deltas[i][k] = x0;
        double fd = (fp - fm) / ((double)(float)((double)x0 + h) - (double)(float)((double)x0 - h));
        if (kind >= DETLOSS_HEAD_BOX_GIOU && m[a] >= 0) {
          /* IoU-family kinks (a decoded edge crossing a gt edge within h:
           * max/min switch): the one-sided slopes disagree; skip those */
          double f0 = total_loss(&b, &o);
          double fw = (fp - f0) / h, bw = (f0 - fm) / h;
          checked++;
          if (fabs(fw - bw) > 0.02 * fmax(fabs(fw), fabs(bw)) + 2e-4) {
            skipped++;
            continue;
          }
        }
        double e[1] = {fd};
        dl_assert_close(&b.gdeltas[i][k], e, 1, 1e-3, 5e-5);
        if (m[a] < 0) assert_true(b.gdeltas[i][k] == 0.0f);
      }
    }
    free(m);
  }
  assert_true(skipped * 10 <= checked); /* the check keeps its power */
  ht_free(&b);
}

static void gradients_match_finite_differences_l1(void **s) {
  (void)s;
  gradient_check(DETLOSS_HEAD_BOX_L1, 2.0f, 0.25f);
}
static void gradients_match_finite_differences_smooth_l1_gamma_1_5(void **s) {
  (void)s;
  gradient_check(DETLOSS_HEAD_BOX_SMOOTH_L1, 1.5f, 0.25f);
}
static void gradients_match_finite_differences_giou_without_alpha(void **s) {
  (void)s;
  gradient_check(DETLOSS_HEAD_BOX_GIOU, 2.0f, -1.0f);
}
static void gradients_match_finite_differences_diou_gamma_0(void **s) {
  (void)s;
  gradient_check(DETLOSS_HEAD_BOX_DIOU, 0.0f, 0.5f);
}
/* No finite-difference check for CIoU: its gradient treats the trade-off
 * alpha as a constant (torchvision computes it under no_grad), so it is not
 * the derivative of the value; matches_torchvision_with_ciou checks it
 * against torchvision's autograd instead. */

/* The implicit one-hot kernel equals the element-wise sigmoid focal loss on
 * the materialized target (detloss_loss_elementwise, reduction NONE): per
 * element within 2e-6 relative (the same formulas), for gamma 2 and 1.5. */
static void focal_terms_equal_the_elementwise_sigmoid_focal_loss(void **s) {
  (void)s;
  for (int variant = 0; variant < 2; variant++) {
    ht_batch b;
    random_batch(&b, 5, 1, 7, 40);
    detloss_retina_options o = opts(1);
    o.gamma = variant ? 1.5f : 2.0f;
    detloss_head_result r;
    detloss_error err;
    assert_int_equal(detloss_retina_loss(b.im, 1, b.C, &r, NULL, &o, &err), DETLOSS_OK);
    size_t A = b.im[0].num_anchors, C = b.C, n = A * C;
    int64_t *m = ht_alloc(A * sizeof(int64_t));
    assert_int_equal(detloss_match(b.anchors[0], A, b.gt[0], b.im[0].num_gt, NULL, m, NULL,
                                   &o.match, &err),
                     DETLOSS_OK);
    float *y = ht_alloc(n * sizeof(float)), *l = ht_alloc(n * sizeof(float)),
          *g = ht_alloc(n * sizeof(float));
    for (size_t a = 0; a < A; a++)
      if (m[a] >= 0) y[a * C + (size_t)b.labels[0][m[a]]] = 1.0f;
    detloss_loss_options lo = detloss_loss_options_default(DETLOSS_LOSS_SIGMOID_FOCAL);
    lo.reduction = DETLOSS_REDUCTION_NONE;
    lo.gamma = o.gamma;
    assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, b.pred[0], y, NULL, n, l,
                                              g, &lo, &err),
                     DETLOSS_OK);
    size_t fg = r.num_pos > 0 ? r.num_pos : 1;
    double sum = 0.0;
    for (size_t a = 0; a < A; a++) {
      for (size_t c = 0; c < C; c++) {
        size_t k = a * C + c;
        double e[1] = {m[a] == -2 ? 0.0 : (double)g[k] / (double)fg};
        dl_assert_close(&b.gpred[0][k], e, 1, 2e-6, 1e-12);
        if (m[a] != -2) sum += (double)l[k];
      }
    }
    dl_assert_close1(r.loss_cls, sum / (double)fg, 2e-6, 0);
    free(m);
    free(y);
    free(l);
    free(g);
    ht_free(&b);
  }
}

/* One source per kernel: the classification term of detloss_retina_loss is
 * the sigmoid focal loss of detloss_loss_elementwise, bit for bit. Target:
 * one-hot at the matched gt's label (detloss_match), weight 1/max(1, fg) for
 * the anchors not ignored and 0 for the ignored ones (one image, torchvision
 * normalizer). The head's gradient, (dl/dx) * (float)(1/fg), is the public
 * gradient with that weight: the product of two floats rounds once either
 * way. gamma 2 (the squared path) and 1.5 (the exp path), alpha 0.25 and off. */
static void focal_gradients_are_bitwise_those_of_sigmoid_focal_loss(void **s) {
  (void)s;
  for (int variant = 0; variant < 4; variant++) {
    ht_batch b;
    random_batch(&b, 21, 1, 7, 300);
    detloss_retina_options o = opts(2);
    o.gamma = (variant & 1) ? 1.5f : 2.0f;
    o.alpha = (variant & 2) ? -1.0f : 0.25f;
    detloss_head_result r;
    detloss_error err;
    assert_int_equal(detloss_retina_loss(b.im, 1, b.C, &r, NULL, &o, &err), DETLOSS_OK);
    const size_t A = b.im[0].num_anchors, C = b.C, n = A * C;
    int64_t *m = ht_alloc(A * sizeof(int64_t));
    assert_int_equal(detloss_match(b.anchors[0], A, b.gt[0], b.im[0].num_gt, NULL, m, NULL,
                                   &o.match, &err),
                     DETLOSS_OK);
    assert_true(r.num_pos > 0 && r.num_ignored > 0);
    const float scale = (float)(1.0 / (double)r.num_pos);
    float *y = ht_alloc(n * sizeof(float)), *w = ht_alloc(n * sizeof(float)),
          *l = ht_alloc(n * sizeof(float)), *g = ht_alloc(n * sizeof(float));
    for (size_t a = 0; a < A; a++) {
      if (m[a] >= 0) y[a * C + (size_t)b.labels[0][m[a]]] = 1.0f;
      for (size_t c = 0; c < C; c++) w[a * C + c] = m[a] == -2 ? 0.0f : scale;
    }
    detloss_loss_options lo = detloss_loss_options_default(DETLOSS_LOSS_SIGMOID_FOCAL);
    lo.reduction = DETLOSS_REDUCTION_NONE;
    lo.gamma = o.gamma;
    lo.alpha = o.alpha;
    assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, b.pred[0], y, w, n, l, g,
                                              &lo, &err),
                     DETLOSS_OK);
    ht_assert_bitwise(b.gpred[0], g, n, "grad_cls_logits");
    free(m);
    free(y);
    free(w);
    free(l);
    free(g);
    ht_free(&b);
  }
}

/* The per-anchor focal losses, bit for bit: batches of 8 one-anchor images
 * with C = 1, each either a positive (anchor = its one gt, label 0) or a
 * negative (no gt); torchvision normalizer: image i's loss_cls is
 * (float)(l_i / (8 max(1, fg_i))) = (float)(l_i / 8), exact in double: the
 * public per-element loss (reduction none) scaled the same way must give the
 * same bits. 32 batches, logits ~ N(0, 3^2), the four gamma/alpha variants. */
static void focal_losses_are_bitwise_those_of_sigmoid_focal_loss(void **s) {
  (void)s;
  enum { N = HT_MAX_IMAGES, ROUNDS = 32 };
  for (int variant = 0; variant < 4; variant++) {
    dl_rng rng = {91};
    float head[N * ROUNDS], pub[N * ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
      ht_batch b;
      memset(&b, 0, sizeof b);
      b.C = 1;
      float x[N], y[N], l[N];
      for (size_t i = 0; i < N; i++) {
        int pos = dl_rng_u64(&rng) & 1;
        ht_image(&b, i, 1, pos ? 1 : 0, 1, 1);
        const float box[4] = {10, 20, 60, 90};
        memcpy(b.anchors[i], box, sizeof box);
        if (pos) memcpy(b.gt[i], box, sizeof box);
        x[i] = b.pred[i][0] = (float)(dl_rng_normal(&rng) * 3.0);
        y[i] = pos ? 1.0f : 0.0f;
      }
      detloss_retina_options o = opts(1);
      o.gamma = (variant & 1) ? 1.5f : 2.0f;
      o.alpha = (variant & 2) ? -1.0f : 0.25f;
      detloss_head_result r;
      detloss_head_image_stats ps[N];
      detloss_error err;
      assert_int_equal(detloss_retina_loss(b.im, N, 1, &r, ps, &o, &err), DETLOSS_OK);
      detloss_loss_options lo = detloss_loss_options_default(DETLOSS_LOSS_SIGMOID_FOCAL);
      lo.reduction = DETLOSS_REDUCTION_NONE;
      lo.gamma = o.gamma;
      lo.alpha = o.alpha;
      assert_int_equal(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, y, NULL, N, l, NULL,
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
}

/* A zero-gt image: every anchor negative, its box loss 0 with zero gradient,
 * normalized by max(1, 0) = 1: loss_cls = sum of (1-alpha) p^2 softplus(x). */
static void zero_gt_image_is_all_negative_with_zero_box_loss(void **s) {
  (void)s;
  ht_batch b;
  memset(&b, 0, sizeof b);
  ht_image(&b, 0, 2, 0, 1, 1);
  const float an[8] = {0, 0, 10, 10, 5, 5, 20, 20};
  memcpy(b.anchors[0], an, sizeof an);
  b.pred[0][0] = 0.0f;  /* 0.75 * 0.25 * ln 2 = 0.1299650964 */
  b.pred[0][1] = -2.0f; /* p = 0.119202922, 0.75 p^2 ln(1 + e^-2) = 0.0013615913 */
  b.deltas[0][0] = 3.0f;
  detloss_head_result r;
  detloss_head_image_stats ps;
  detloss_retina_options o = opts(1);
  detloss_error err;
  assert_int_equal(detloss_retina_loss(b.im, 1, 1, &r, &ps, &o, &err), DETLOSS_OK);
  double p = 1.0 / (1.0 + exp(2.0));
  double expect = 0.75 * 0.25 * log(2.0) + 0.75 * p * p * log1p(exp(-2.0));
  dl_assert_close1(r.loss_cls, expect, 1e-6, 0);
  assert_true(r.loss_box_reg == 0.0f);
  assert_int_equal(r.num_pos, 0);
  assert_int_equal(r.num_neg, 2);
  for (int k = 0; k < 8; k++) assert_true(b.gdeltas[0][k] == 0.0f);
  ht_free(&b);
}

/* Without low-quality matches, anchors whose IoU with the gt is in [0.4, 0.5)
 * are all ignored: the image adds 0 and its logit gradients are exactly 0.
 * IoU([0,0,10,10], [0,0,10,22.2222]) = 100 / 222.222 = 0.45; [0,0,10,24] -> 0.4167. */
static void all_ignored_image_contributes_nothing(void **s) {
  (void)s;
  ht_batch b;
  memset(&b, 0, sizeof b);
  ht_image(&b, 0, 2, 1, 3, 1);
  const float an[8] = {0, 0, 10, 22.2222f, 0, 0, 10, 24};
  const float gt[4] = {0, 0, 10, 10};
  memcpy(b.anchors[0], an, sizeof an);
  memcpy(b.gt[0], gt, sizeof gt);
  for (int k = 0; k < 6; k++) b.pred[0][k] = (float)k - 2.5f;
  ht_fill_grads(&b, 3, 9.0f);
  detloss_retina_options o = opts(1);
  o.match.allow_low_quality = 0;
  detloss_head_result r;
  detloss_error err;
  assert_int_equal(detloss_retina_loss(b.im, 1, 3, &r, NULL, &o, &err), DETLOSS_OK);
  assert_true(r.loss_cls == 0.0f && r.loss_box_reg == 0.0f);
  assert_int_equal(r.num_ignored, 2);
  ht_assert_grads_are(&b, 3, 0.0f);
  ht_free(&b);
}

/* detectron2 EMA normalizer: n <- 0.9 n + 0.1 max(P, 1) from 100 with P = 10
 * on each of three steps: 91.0, 82.9, 75.61 (docs/math/heads.md s2);
 * the loss is the batch sum over n (= the torchvision value * 10 / n here,
 * one image with 10 positives). */
static void detectron2_ema_normalizer_follows_91_82_9_75_61(void **s) {
  (void)s;
  ht_batch b;
  memset(&b, 0, sizeof b);
  ht_image(&b, 0, 11, 10, 2, 1);
  for (int g = 0; g < 10; g++) {
    float box[4] = {20.0f * (float)g, 0, 20.0f * (float)g + 10, 10};
    memcpy(b.gt[0] + 4 * g, box, sizeof box);
    memcpy(b.anchors[0] + 4 * g, box, sizeof box); /* IoU 1: 10 positives */
    b.labels[0][g] = g % 2;
  }
  const float neg[4] = {0, 100, 10, 110};
  memcpy(b.anchors[0] + 40, neg, sizeof neg);
  for (int k = 0; k < 22; k++) b.pred[0][k] = 0.1f * (float)k - 1.0f;
  for (int k = 0; k < 44; k++) b.deltas[0][k] = 0.05f * (float)(k % 7) - 0.1f;
  detloss_head_result tv, r;
  detloss_error err;
  detloss_retina_options o = opts(1);
  assert_int_equal(detloss_retina_loss(b.im, 1, 2, &tv, NULL, &o, &err), DETLOSS_OK);
  float state = DETLOSS_RETINA_EMA_INIT;
  o.normalizer = DETLOSS_RETINA_NORM_DETECTRON2_EMA;
  o.ema_state = &state;
  const double want[3] = {91.0, 82.9, 75.61};
  for (int step = 0; step < 3; step++) {
    assert_int_equal(detloss_retina_loss(b.im, 1, 2, &r, NULL, &o, &err), DETLOSS_OK);
    dl_assert_close1(state, want[step], 1e-6, 0);
    dl_assert_close1(r.normalizer, want[step], 1e-6, 0);
    dl_assert_close1(r.loss_cls, (double)tv.loss_cls * 10.0 / want[step], 1e-6, 0);
    dl_assert_close1(r.loss_box_reg, (double)tv.loss_box_reg * 10.0 / want[step], 1e-6, 0);
  }
  /* caller normalizer: the all-reduced count, e.g. 40 over four ranks */
  o.normalizer = DETLOSS_RETINA_NORM_CALLER;
  o.caller_normalizer = 40.0;
  assert_int_equal(detloss_retina_loss(b.im, 1, 2, &r, NULL, &o, &err), DETLOSS_OK);
  dl_assert_close1(r.loss_cls, (double)tv.loss_cls * 10.0 / 40.0, 1e-6, 0);
  /* a failed call leaves the EMA state untouched */
  o.normalizer = DETLOSS_RETINA_NORM_DETECTRON2_EMA;
  b.labels[0][3] = 2;
  assert_int_equal(detloss_retina_loss(b.im, 1, 2, &r, NULL, &o, &err), DETLOSS_ERR_RANGE);
  assert_true(state == (float)want[2] || fabs((double)state - want[2]) < 1e-4);
  float before = state;
  assert_int_equal(detloss_retina_loss(b.im, 1, 2, &r, NULL, &o, &err), DETLOSS_ERR_RANGE);
  assert_true(state == before);
  ht_free(&b);
}

/* Bitwise identical losses and gradients for 1, 2 and 4 threads (images in
 * parallel or blocks in parallel, several blocks per image). */
static void results_are_bitwise_identical_for_1_2_4_threads(void **s) {
  (void)s;
  ht_batch b[3];
  detloss_head_result r[3];
  const int th[3] = {1, 2, 4};
  for (int t = 0; t < 3; t++) {
    random_batch(&b[t], 99, 3, 20, 2500);
    detloss_retina_options o = opts(th[t]);
    o.box_loss = DETLOSS_HEAD_BOX_GIOU;
    detloss_error err;
    assert_int_equal(detloss_retina_loss(b[t].im, 3, 20, &r[t], NULL, &o, &err), DETLOSS_OK);
  }
  for (int t = 1; t < 3; t++) {
    assert_memory_equal(&r[0].loss_cls, &r[t].loss_cls, sizeof(float));
    assert_memory_equal(&r[0].loss_box_reg, &r[t].loss_box_reg, sizeof(float));
    for (size_t i = 0; i < 3; i++) {
      dl_assert_bitwise_equal(b[0].gpred[i], b[t].gpred[i], b[0].im[i].num_anchors * 20);
      dl_assert_bitwise_equal(b[0].gdeltas[i], b[t].gdeltas[i], b[0].im[i].num_anchors * 4);
    }
  }
  for (int t = 0; t < 3; t++) ht_free(&b[t]);
}

/* Per-image shares add up to the batch values; counts add up. */
static void per_image_stats_add_up_to_the_batch(void **s) {
  (void)s;
  ht_batch b;
  random_batch(&b, 3, 4, 5, 30);
  detloss_head_result r;
  detloss_head_image_stats ps[4];
  detloss_retina_options o = opts(2);
  detloss_error err;
  assert_int_equal(detloss_retina_loss(b.im, 4, 5, &r, ps, &o, &err), DETLOSS_OK);
  double c = 0, x = 0;
  size_t p = 0, n = 0, ig = 0;
  for (int i = 0; i < 4; i++) {
    c += (double)ps[i].loss_cls;
    x += (double)ps[i].loss_box_reg;
    p += ps[i].num_pos;
    n += ps[i].num_neg;
    ig += ps[i].num_ignored;
    assert_int_equal(ps[i].num_pos + ps[i].num_neg + ps[i].num_ignored, b.im[i].num_anchors);
  }
  dl_assert_close1(r.loss_cls, c, 1e-6, 0);
  dl_assert_close1(r.loss_box_reg, x, 1e-6, 0);
  assert_int_equal(r.num_pos, p);
  assert_int_equal(r.num_neg, n);
  assert_int_equal(r.num_ignored, ig);
  ht_free(&b);
}

/* A crowd gt is never matched; an anchor it covers (IoA > 0.7) is ignored. */
static void crowd_gt_makes_covered_anchors_ignored(void **s) {
  (void)s;
  ht_batch b;
  memset(&b, 0, sizeof b);
  ht_image(&b, 0, 2, 2, 1, 1);
  const float an[8] = {0, 0, 10, 10, 50, 50, 60, 60};
  const float gt[8] = {0, 0, 10, 10, 45, 45, 70, 70};
  const uint8_t crowd[2] = {0, 1};
  memcpy(b.anchors[0], an, sizeof an);
  memcpy(b.gt[0], gt, sizeof gt);
  b.im[0].gt_is_crowd = crowd;
  detloss_head_result r;
  detloss_retina_options o = opts(1);
  detloss_error err;
  assert_int_equal(detloss_retina_loss(b.im, 1, 1, &r, NULL, &o, &err), DETLOSS_OK);
  assert_int_equal(r.num_pos, 1);
  assert_int_equal(r.num_ignored, 1);
  assert_true(b.gpred[0][1] == 0.0f);
  ht_free(&b);
}

/* Non-finite logits: in the loss -> non-finite loss and the flag, status OK;
 * on an ignored anchor -> not in the loss, gradient 0, loss finite. */
static void non_finite_logits_propagate_to_the_flag(void **s) {
  (void)s;
  ht_batch b;
  memset(&b, 0, sizeof b);
  ht_image(&b, 0, 3, 1, 2, 1);
  const float an[12] = {0, 0, 10, 10, 20, 20, 30, 30, 0, 0, 10, 22.2222f};
  const float gt[4] = {0, 0, 10, 10};
  memcpy(b.anchors[0], an, sizeof an);
  memcpy(b.gt[0], gt, sizeof gt);
  detloss_head_result r;
  detloss_retina_options o = opts(1);
  detloss_error err;
  b.pred[0][4] = nanf(""); /* a2 is ignored */
  b.pred[0][5] = INFINITY;
  assert_int_equal(detloss_retina_loss(b.im, 1, 2, &r, NULL, &o, &err), DETLOSS_OK);
  assert_int_equal(r.nonfinite, 0);
  assert_true(isfinite(r.loss_cls));
  assert_true(b.gpred[0][4] == 0.0f && b.gpred[0][5] == 0.0f);
  b.pred[0][2] = nanf(""); /* a1, a negative */
  assert_int_equal(detloss_retina_loss(b.im, 1, 2, &r, NULL, &o, &err), DETLOSS_OK);
  assert_int_equal(r.nonfinite, 1);
  assert_true(isnan(r.loss_cls));
  b.pred[0][2] = INFINITY; /* y = 0 at +Inf: loss +Inf */
  assert_int_equal(detloss_retina_loss(b.im, 1, 2, &r, NULL, &o, &err), DETLOSS_OK);
  assert_int_equal(r.nonfinite, 1);
  b.pred[0][2] = 0.0f;
  b.deltas[0][1] = nanf(""); /* the positive's delta, GIoU on decoded boxes */
  o.box_loss = DETLOSS_HEAD_BOX_GIOU;
  assert_int_equal(detloss_retina_loss(b.im, 1, 2, &r, NULL, &o, &err), DETLOSS_OK);
  assert_int_equal(r.nonfinite, 1);
  assert_true(isfinite(r.loss_cls));
  assert_true(isnan(r.loss_box_reg));
  ht_free(&b);
}

/* Bad input: status, err.where naming image and field, outputs untouched. */
static void bad_input_names_image_and_field_and_leaves_outputs_untouched(void **s) {
  (void)s;
  ht_batch b;
  random_batch(&b, 8, 3, 4, 10);
  detloss_retina_options o = opts(2);
  detloss_head_result r, r0;
  memset(&r, 0x5a, sizeof r);
  r0 = r;
  detloss_head_image_stats ps[3];
  detloss_error err;
  ht_fill_grads(&b, 4, 7.0f);

  b.labels[2][1] = 4; /* C = 4 */
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &o, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "images[2].labels[1]");
  b.labels[2][1] = -1;
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &o, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "images[2].labels[1]");
  b.labels[2][1] = 0;

  b.im[1].num_predictions = b.im[1].num_anchors - 1;
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &o, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "images[1].num_predictions");
  b.im[1].num_predictions = b.im[1].num_anchors;

  assert_int_equal(detloss_retina_loss(b.im, 0, 4, &r, ps, &o, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "num_images");
  assert_int_equal(detloss_retina_loss(b.im, 3, 0, &r, ps, &o, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "num_classes");

  float keep = b.anchors[0][5];
  b.anchors[0][5] = nanf("");
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &o, &err), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "images[0].anchors[1]");
  b.anchors[0][5] = keep;
  keep = b.gt[2][2];
  b.gt[2][2] = INFINITY;
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &o, &err), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "images[2].gt[0]");
  b.gt[2][2] = keep;

  const float *cl = b.im[0].cls_logits;
  b.im[0].cls_logits = NULL;
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &o, &err), DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "images[0].cls_logits");
  b.im[0].cls_logits = cl;

  /* a degenerate gt can only be matched through the low-quality rule's
   * h_g = 0 quirk; an element-wise box loss cannot encode against it */
  float gkeep[4];
  memcpy(gkeep, b.gt[0], sizeof gkeep);
  b.gt[0][2] = b.gt[0][0];
  b.gt[0][3] = b.gt[0][1];
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &o, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "images[0].gt[0]");
  memcpy(b.gt[0], gkeep, sizeof gkeep);

  detloss_retina_options bad = o;
  bad.gamma = -1.0f;
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &bad, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "gamma");
  bad = o;
  bad.normalizer = DETLOSS_RETINA_NORM_DETECTRON2_EMA;
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &bad, &err), DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "ema_state");
  bad = o;
  bad.normalizer = DETLOSS_RETINA_NORM_CALLER;
  bad.caller_normalizer = 0.0;
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &bad, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "caller_normalizer");
  bad = o;
  bad.match.low = 0.9f;
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &bad, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "match.low");
  bad = o;
  bad.box_weights[2] = 0.0f;
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &bad, &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "box_weights[2]");

  assert_memory_equal(&r, &r0, sizeof r);
  ht_assert_grads_are(&b, 4, 7.0f);
  /* and the batch is fine again */
  assert_int_equal(detloss_retina_loss(b.im, 3, 4, &r, ps, &o, &err), DETLOSS_OK);
  ht_free(&b);
}

/* NULL gradient pointers: nothing written there, the same loss values. */
static void null_gradients_give_the_same_losses(void **s) {
  (void)s;
  ht_batch b;
  random_batch(&b, 21, 2, 3, 20);
  detloss_retina_options o = opts(1);
  detloss_head_result r1, r2;
  detloss_error err;
  assert_int_equal(detloss_retina_loss(b.im, 2, 3, &r1, NULL, &o, &err), DETLOSS_OK);
  for (size_t i = 0; i < 2; i++) b.im[i].grad_cls_logits = b.im[i].grad_deltas = NULL;
  assert_int_equal(detloss_retina_loss(b.im, 2, 3, &r2, NULL, &o, &err), DETLOSS_OK);
  assert_memory_equal(&r1.loss_cls, &r2.loss_cls, sizeof(float));
  assert_memory_equal(&r1.loss_box_reg, &r2.loss_box_reg, sizeof(float));
  ht_free(&b);
}

/* A caller workspace gives the same bits; one too small is refused with the
 * outputs untouched. */
static void caller_workspace_gives_the_same_bits(void **s) {
  (void)s;
  ht_batch b;
  random_batch(&b, 31, 3, 5, 40);
  detloss_retina_options o = opts(2);
  detloss_head_result r1, r2;
  detloss_error err;
  assert_int_equal(detloss_retina_loss(b.im, 3, 5, &r1, NULL, &o, &err), DETLOSS_OK);
  float *g1 = ht_alloc(b.im[0].num_anchors * 5 * sizeof(float));
  memcpy(g1, b.gpred[0], b.im[0].num_anchors * 5 * sizeof(float));
  size_t need = 0;
  assert_int_equal(detloss_retina_workspace_size(b.im, 3, 5, &need, &err), DETLOSS_OK);
  assert_true(need >= 8 * (b.im[0].num_anchors + b.im[1].num_anchors + b.im[2].num_anchors));
  o.workspace = ht_alloc(need);
  o.workspace_size = need - 1;
  ht_fill_grads(&b, 5, 3.0f);
  assert_int_equal(detloss_retina_loss(b.im, 3, 5, &r2, NULL, &o, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "workspace_size");
  ht_assert_grads_are(&b, 5, 3.0f);
  o.workspace_size = need;
  assert_int_equal(detloss_retina_loss(b.im, 3, 5, &r2, NULL, &o, &err), DETLOSS_OK);
  assert_memory_equal(&r1.loss_cls, &r2.loss_cls, sizeof(float));
  assert_memory_equal(&r1.loss_box_reg, &r2.loss_box_reg, sizeof(float));
  dl_assert_bitwise_equal(g1, b.gpred[0], b.im[0].num_anchors * 5);
  free(o.workspace);
  free(g1);
  ht_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hand_worked_three_anchors_two_classes),
      cmocka_unit_test(matches_torchvision_with_l1),
      cmocka_unit_test(matches_torchvision_with_smooth_l1),
      cmocka_unit_test(matches_torchvision_with_giou),
      cmocka_unit_test(matches_torchvision_with_diou),
      cmocka_unit_test(matches_torchvision_with_ciou),
      cmocka_unit_test(matches_torchvision_with_a_zero_gt_image),
      cmocka_unit_test(matches_torchvision_with_one_class),
      cmocka_unit_test(gradients_match_finite_differences_l1),
      cmocka_unit_test(gradients_match_finite_differences_smooth_l1_gamma_1_5),
      cmocka_unit_test(gradients_match_finite_differences_giou_without_alpha),
      cmocka_unit_test(gradients_match_finite_differences_diou_gamma_0),
      cmocka_unit_test(focal_terms_equal_the_elementwise_sigmoid_focal_loss),
      cmocka_unit_test(focal_gradients_are_bitwise_those_of_sigmoid_focal_loss),
      cmocka_unit_test(focal_losses_are_bitwise_those_of_sigmoid_focal_loss),
      cmocka_unit_test(zero_gt_image_is_all_negative_with_zero_box_loss),
      cmocka_unit_test(all_ignored_image_contributes_nothing),
      cmocka_unit_test(detectron2_ema_normalizer_follows_91_82_9_75_61),
      cmocka_unit_test(results_are_bitwise_identical_for_1_2_4_threads),
      cmocka_unit_test(per_image_stats_add_up_to_the_batch),
      cmocka_unit_test(crowd_gt_makes_covered_anchors_ignored),
      cmocka_unit_test(non_finite_logits_propagate_to_the_flag),
      cmocka_unit_test(bad_input_names_image_and_field_and_leaves_outputs_untouched),
      cmocka_unit_test(null_gradients_give_the_same_losses),
      cmocka_unit_test(caller_workspace_gives_the_same_bits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
