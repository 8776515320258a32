/*
 * test_head_detr.c - detloss_detr_loss (DETR SetCriterion + HungarianMatcher,
 * and the Deformable-DETR focal variant).
 *
 * Values against the float64 torch reference fixtures (tests/fixtures/detr,
 * gen_detr.py: losses and gradients to rtol 1e-5 / atol 1e-6, matches exact),
 * a hand-worked image, gradients by central differences of a double
 * reference written here (matches held fixed, as the contract says), thread
 * counts 1, 2, 3, 8 bitwise identical, G = 0 images, the caller's num_boxes,
 * scipy's choice at an exact cost tie, and every bad-input class with the
 * outputs left untouched.
 */
#include "head_testutil.h"

#define DB_MAX 8

/* A batch whose arrays the test owns. */
typedef struct db_batch {
  size_t n, Q, K;
  detloss_detr_image im[DB_MAX];
  float *logits[DB_MAX], *pboxes[DB_MAX], *boxes[DB_MAX], *glogits[DB_MAX], *gboxes[DB_MAX];
  int64_t *labels[DB_MAX], *matches[DB_MAX];
} db_batch;

static void db_image(db_batch *b, size_t i, size_t G) {
  detloss_detr_image *im = &b->im[i];
  memset(im, 0, sizeof *im);
  b->logits[i] = ht_alloc(b->Q * b->K * sizeof(float));
  b->pboxes[i] = ht_alloc(b->Q * 4 * sizeof(float));
  b->boxes[i] = ht_alloc(G * 4 * sizeof(float));
  b->labels[i] = ht_alloc(G * sizeof(int64_t));
  b->glogits[i] = ht_alloc(b->Q * b->K * sizeof(float));
  b->gboxes[i] = ht_alloc(b->Q * 4 * sizeof(float));
  b->matches[i] = ht_alloc(b->Q * sizeof(int64_t));
  im->pred_logits = b->logits[i];
  im->pred_boxes = b->pboxes[i];
  im->boxes = b->boxes[i];
  im->labels = b->labels[i];
  im->num_gt = G;
  im->matches = b->matches[i];
  im->grad_pred_logits = b->glogits[i];
  im->grad_pred_boxes = b->gboxes[i];
  if (i + 1 > b->n) b->n = i + 1;
}

static void db_free(db_batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    free(b->logits[i]);
    free(b->pboxes[i]);
    free(b->boxes[i]);
    free(b->labels[i]);
    free(b->glogits[i]);
    free(b->gboxes[i]);
    free(b->matches[i]);
  }
  memset(b, 0, sizeof *b);
}

/* Random batch: logits N(0, 2), predicted boxes in (0, 1) with w, h in
 * [0.02, 0.6), gt centres in [0.15, 0.85), sizes [0.05, 0.5). */
static void db_random(db_batch *b, uint64_t seed, size_t n, size_t Q, size_t K, const size_t *gts,
                      size_t C) {
  dl_rng r = {seed};
  memset(b, 0, sizeof *b);
  b->Q = Q;
  b->K = K;
  for (size_t i = 0; i < n; i++) {
    db_image(b, i, gts[i]);
    for (size_t k = 0; k < Q * K; k++) b->logits[i][k] = (float)(2.0 * dl_rng_normal(&r));
    for (size_t q = 0; q < Q; q++) {
      b->pboxes[i][4 * q] = (float)dl_rng_uniform(&r, 0.1, 0.9);
      b->pboxes[i][4 * q + 1] = (float)dl_rng_uniform(&r, 0.1, 0.9);
      b->pboxes[i][4 * q + 2] = (float)dl_rng_uniform(&r, 0.02, 0.6);
      b->pboxes[i][4 * q + 3] = (float)dl_rng_uniform(&r, 0.02, 0.6);
    }
    for (size_t g = 0; g < gts[i]; g++) {
      b->boxes[i][4 * g] = (float)dl_rng_uniform(&r, 0.15, 0.85);
      b->boxes[i][4 * g + 1] = (float)dl_rng_uniform(&r, 0.15, 0.85);
      b->boxes[i][4 * g + 2] = (float)dl_rng_uniform(&r, 0.05, 0.5);
      b->boxes[i][4 * g + 3] = (float)dl_rng_uniform(&r, 0.05, 0.5);
      b->labels[i][g] = (int64_t)(dl_rng_u64(&r) % C);
    }
  }
}

/* ---- fixtures ---- */

static void run_fixture(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/detr/%s.json", DETLOSS_FIXTURE_DIR, name);
  char *txt = dl_read_file(path);
  cJSON *root = cJSON_Parse(txt);
  free(txt);
  assert_non_null(root);
  const cJSON *c = cJSON_GetObjectItem(root, "case"), *exp = cJSON_GetObjectItem(root, "expected");
  const cJSON *cfg = cJSON_GetObjectItem(c, "config");
  detloss_detr_options o = detloss_detr_options_default();
  const cJSON *v;
  if (cfg && (v = cJSON_GetObjectItem(cfg, "cls_loss")) && strcmp(v->valuestring, "focal") == 0)
    o = detloss_detr_options_focal();
  struct {
    const char *k;
    float *f;
  } keys[] = {{"eos_coef", &o.eos_coef},       {"focal_alpha", &o.focal_alpha},
              {"focal_gamma", &o.focal_gamma}, {"cost_class", &o.cost_class},
              {"cost_bbox", &o.cost_bbox},     {"cost_giou", &o.cost_giou},
              {"weight_ce", &o.weight_ce},     {"weight_bbox", &o.weight_bbox},
              {"weight_giou", &o.weight_giou}};
  for (size_t k = 0; cfg && k < sizeof keys / sizeof keys[0]; k++)
    if ((v = cJSON_GetObjectItem(cfg, keys[k].k))) *keys[k].f = (float)v->valuedouble;
  if (cfg && (v = cJSON_GetObjectItem(cfg, "num_boxes"))) o.num_boxes = v->valuedouble;
  db_batch b;
  memset(&b, 0, sizeof b);
  const cJSON *imgs = cJSON_GetObjectItem(c, "images");
  size_t i = 0;
  for (const cJSON *e = imgs->child; e; e = e->next, i++) {
    const cJSON *pl = cJSON_GetObjectItem(e, "pred_logits");
    if (i == 0) {
      b.Q = (size_t)cJSON_GetArraySize(pl);
      b.K = (size_t)cJSON_GetArraySize(pl->child);
    }
    size_t G = (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(e, "labels"));
    db_image(&b, i, G);
    ht_floats_into(pl, b.logits[i], b.Q * b.K);
    ht_floats_into(cJSON_GetObjectItem(e, "pred_boxes"), b.pboxes[i], b.Q * 4);
    ht_floats_into(cJSON_GetObjectItem(e, "boxes"), b.boxes[i], G * 4);
    size_t k = 0;
    for (const cJSON *l = cJSON_GetObjectItem(e, "labels")->child; l; l = l->next)
      b.labels[i][k++] = (int64_t)l->valuedouble;
  }
  detloss_detr_result r;
  detloss_error err;
  assert_int_equal(detloss_detr_loss(b.im, b.n, b.Q, b.K, &r, &o, &err), DETLOSS_OK);
  dl_assert_close1(r.loss_ce, ht_num(exp, "loss_ce"), 1e-5, 1e-6);
  dl_assert_close1(r.loss_bbox, ht_num(exp, "loss_bbox"), 1e-5, 1e-6);
  dl_assert_close1(r.loss_giou, ht_num(exp, "loss_giou"), 1e-5, 1e-6);
  dl_assert_close1(r.loss, ht_num(exp, "loss"), 1e-5, 1e-6);
  const cJSON *m = cJSON_GetObjectItem(exp, "matches");
  const cJSON *gl = cJSON_GetObjectItem(exp, "grad_pred_logits");
  const cJSON *gb = cJSON_GetObjectItem(exp, "grad_pred_boxes");
  for (i = 0; i < b.n; i++) {
    const cJSON *mi = cJSON_GetArrayItem(m, (int)i);
    for (size_t q = 0; q < b.Q; q++)
      assert_int_equal(b.matches[i][q], (int64_t)cJSON_GetArrayItem(mi, (int)q)->valuedouble);
    size_t n;
    double *e = ht_doubles(cJSON_GetArrayItem(gl, (int)i), &n);
    assert_int_equal(n, b.Q * b.K);
    dl_assert_close(b.glogits[i], e, n, 1e-5, 1e-6);
    free(e);
    e = ht_doubles(cJSON_GetArrayItem(gb, (int)i), &n);
    assert_int_equal(n, b.Q * 4);
    dl_assert_close(b.gboxes[i], e, n, 1e-5, 1e-6);
    free(e);
  }
  db_free(&b);
  cJSON_Delete(root);
}

static void softmax_two_images_match_the_torch_reference(void **s) {
  (void)s;
  run_fixture("softmax_two_images");
}
static void softmax_image_without_gt_matches_the_torch_reference(void **s) {
  (void)s;
  run_fixture("softmax_zero_gt_image");
}
static void more_gt_than_queries_matches_the_torch_reference(void **s) {
  (void)s;
  run_fixture("softmax_more_gt_than_queries");
}
static void softmax_with_every_option_set_matches_the_torch_reference(void **s) {
  (void)s;
  run_fixture("softmax_options");
}
static void focal_variant_matches_the_torch_reference(void **s) {
  (void)s;
  run_fixture("focal_two_images");
  run_fixture("focal_options");
}
static void batch_without_any_gt_matches_the_torch_reference(void **s) {
  (void)s;
  run_fixture("softmax_all_empty");
}
static void batch_of_four_with_twenty_queries_matches_the_torch_reference(void **s) {
  (void)s;
  run_fixture("softmax_batch_of_four");
}

/* ---- hand-worked ---- */

/*
 * One image, Q = 2 queries, K = 2 logits (class 0 + no object), one gt of class 0
 * at (0.6, 0.5, 0.2, 0.2); both queries have logits (0, 0): softmax (1/2, 1/2).
 * q0 = (0.5, 0.5, 0.2, 0.2): corners x [0.4, 0.6] against the gt's [0.5, 0.7],
 *   y [0.4, 0.6] both: I = 0.1 * 0.2 = 0.02, U = 0.04 + 0.04 - 0.02 = 0.06,
 *   E = 0.3 * 0.2 = 0.06 = U, GIoU = 1/3; L1 = 0.1.
 *   cost = 5 * 0.1 - 0.5 - 2/3 = -2/3.
 * q1 = (0.2, 0.8, 0.1, 0.1): L1 = 0.4 + 0.3 + 0.1 + 0.1 = 0.9, GIoU < 0: cost > 0.
 * So q0 takes the gt: matches (0, -1); nb = 1, sum w = 1 + 0.1 = 1.1.
 *   loss_ce = (1 ln 2 + 0.1 ln 2) / 1.1 = ln 2 = 0.69314718
 *   loss_bbox = 0.1, loss_giou = 1 - 1/3 = 2/3
 *   loss = ln 2 + 5 * 0.1 + 2 * 2/3 = 2.52648051
 * d loss / d logits: q0 (1/1.1) ((1/2, 1/2) - (1, 0)) = (-0.45454545, 0.45454545),
 *   q1 (0.1/1.1) ((1/2, 1/2) - (0, 1)) = (0.04545454, -0.04545454).
 * d loss / d q0 box, with dGIoU = dI/U - I dU/U^2 + dU/E - U dE/E^2
 *   = 16.667 dI + 11.111 dU - 16.667 dE at (I, U, E) = (0.02, 0.06, 0.06):
 *   cx: dI = ih = 0.2, dU = -0.2, dE = 0.2 (E's left side is q0's x1 = cx - w/2)
 *       -> dGIoU = 4.4444, so 5 * (-1) + 2 * (-4.4444) = -13.888889;
 *   w:  dI = 0.2 * 0.5 = 0.1, dU = 0.2 - 0.1 = 0.1, dE = 0.5 * 0.2 = 0.1
 *       -> dGIoU = 1.1111, L1 difference 0 -> 0: 2 * (-1.1111) = -2.2222222;
 *   cy, h: the y corners tie (autograd gives each side half): dGIoU = 0, L1 0 -> 0.
 */
static void hand_worked_image(void **s) {
  (void)s;
  db_batch b;
  memset(&b, 0, sizeof b);
  b.Q = 2;
  b.K = 2;
  db_image(&b, 0, 1);
  const float pb[8] = {0.5f, 0.5f, 0.2f, 0.2f, 0.2f, 0.8f, 0.1f, 0.1f};
  const float gt[4] = {0.6f, 0.5f, 0.2f, 0.2f};
  memcpy(b.pboxes[0], pb, sizeof pb);
  memcpy(b.boxes[0], gt, sizeof gt);
  b.labels[0][0] = 0;
  detloss_detr_result r;
  assert_int_equal(detloss_detr_loss(b.im, 1, 2, 2, &r, NULL, NULL), DETLOSS_OK);
  assert_int_equal(b.matches[0][0], 0);
  assert_int_equal(b.matches[0][1], -1);
  dl_assert_close1(r.loss_ce, 0.69314718, 1e-6, 0);
  dl_assert_close1(r.loss_bbox, 0.1, 1e-5, 0);
  dl_assert_close1(r.loss_giou, 2.0 / 3.0, 1e-5, 0);
  dl_assert_close1(r.loss, 2.52648051, 1e-5, 0);
  dl_assert_close1(r.num_boxes, 1.0, 0, 0);
  dl_assert_close1(r.ce_weight_sum, 1.1, 1e-7, 0);
  assert_int_equal(r.num_matched, 1);
  const double gl[4] = {-1.0 / 2.2, 1.0 / 2.2, 0.05 / 1.1, -0.05 / 1.1};
  dl_assert_close(b.glogits[0], gl, 4, 1e-6, 1e-7);
  const double gb[8] = {-5.0 - 2.0 * 40.0 / 9.0, 0, -2.0 * 10.0 / 9.0, 0, 0, 0, 0, 0};
  dl_assert_close(b.gboxes[0], gb, 8, 1e-4, 1e-5);
  db_free(&b);
}

/* ---- gradients by central differences of a double reference ---- */

/* The loss in double with the matches held fixed (the contract's "targets are
 * constants"): docs/math/detr_loss.md eq. (1)-(5), written out independently. */
static double ref_loss(const db_batch *b, double *const *x, double *const *p,
                       const detloss_detr_options *o) {
  const size_t Q = b->Q, K = b->K;
  const int softmax = o->cls_loss == DETLOSS_DETR_SOFTMAX;
  size_t total = 0;
  for (size_t i = 0; i < b->n; i++) total += b->im[i].num_gt;
  double nb = o->num_boxes >= 0 ? o->num_boxes : (double)total;
  nb = nb > 1 ? nb : 1;
  double ce = 0, wsum = 0, l1 = 0, gi = 0;
  for (size_t i = 0; i < b->n; i++)
    for (size_t q = 0; q < Q; q++) {
      int64_t m = b->matches[i][q];
      const double *z = x[i] + q * K;
      int64_t t = m >= 0 ? b->labels[i][m] : (softmax ? (int64_t)K - 1 : -1);
      if (softmax) {
        double mx = z[0], se = 0;
        for (size_t k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        for (size_t k = 0; k < K; k++) se += exp(z[k] - mx);
        double w = m >= 0 ? 1.0 : (double)o->eos_coef;
        ce += w * (mx + log(se) - z[t]);
        wsum += w;
      } else {
        for (size_t k = 0; k < K; k++) {
          double y = (int64_t)k == t ? 1.0 : 0.0, pr = 1 / (1 + exp(-z[k]));
          double bce = fmax(z[k], 0) - z[k] * y + log1p(exp(-fabs(z[k])));
          double pt = pr * y + (1 - pr) * (1 - y);
          double al = (double)o->focal_alpha, at = al * y + (1 - al) * (1 - y);
          ce += at * bce * pow(1 - pt, (double)o->focal_gamma);
        }
      }
      if (m < 0) continue;
      const double *a = p[i] + 4 * q;
      const float *gf = b->boxes[i] + 4 * m;
      const double g[4] = {gf[0], gf[1], gf[2], gf[3]};
      for (int k = 0; k < 4; k++) l1 += fabs(a[k] - g[k]);
      double ax1 = a[0] - a[2] / 2, ay1 = a[1] - a[3] / 2, ax2 = a[0] + a[2] / 2,
             ay2 = a[1] + a[3] / 2;
      double gx1 = g[0] - g[2] / 2.0, gy1 = g[1] - g[3] / 2.0, gx2 = g[0] + g[2] / 2.0,
             gy2 = g[1] + g[3] / 2.0;
      double iw = fmax(fmin(ax2, gx2) - fmax(ax1, gx1), 0),
             ih = fmax(fmin(ay2, gy2) - fmax(ay1, gy1), 0);
      double I = iw * ih, U = a[2] * a[3] + (gx2 - gx1) * (gy2 - gy1) - I;
      double E = (fmax(ax2, gx2) - fmin(ax1, gx1)) * (fmax(ay2, gy2) - fmin(ay1, gy1));
      gi += 1 - (I / U - (E - U) / E);
    }
  double lce = softmax ? (wsum > 0 ? ce / wsum : 0) : ce / nb;
  return (double)o->weight_ce * lce + (double)o->weight_bbox * l1 / nb +
         (double)o->weight_giou * gi / nb;
}

static void check_fd(const detloss_detr_options *o, uint64_t seed) {
  const size_t gts[3] = {3, 0, 5};
  const size_t K = o->cls_loss == DETLOSS_DETR_SOFTMAX ? 5 : 4;
  db_batch b;
  db_random(&b, seed, 3, 7, K, gts, o->cls_loss == DETLOSS_DETR_SOFTMAX ? K - 1 : K);
  detloss_detr_result r;
  detloss_error err;
  assert_int_equal(detloss_detr_loss(b.im, b.n, b.Q, b.K, &r, o, &err), DETLOSS_OK);
  double *x[3], *p[3];
  for (size_t i = 0; i < 3; i++) {
    x[i] = ht_alloc(b.Q * K * sizeof(double));
    p[i] = ht_alloc(b.Q * 4 * sizeof(double));
    for (size_t k = 0; k < b.Q * K; k++) x[i][k] = b.logits[i][k];
    for (size_t k = 0; k < b.Q * 4; k++) p[i][k] = b.pboxes[i][k];
  }
  dl_assert_close1(r.loss, ref_loss(&b, x, p, o), 1e-5, 1e-6);
  const double h = 1e-5;
  for (size_t i = 0; i < 3; i++) {
    for (size_t k = 0; k < b.Q * K; k++) {
      double v = x[i][k];
      x[i][k] = v + h;
      double fp = ref_loss(&b, x, p, o);
      x[i][k] = v - h;
      double fm = ref_loss(&b, x, p, o);
      x[i][k] = v;
      dl_assert_close1(b.glogits[i][k], (fp - fm) / (2 * h), 1e-4, 1e-6);
    }
    for (size_t k = 0; k < b.Q * 4; k++) {
      double v = p[i][k];
      p[i][k] = v + h;
      double fp = ref_loss(&b, x, p, o);
      p[i][k] = v - h;
      double fm = ref_loss(&b, x, p, o);
      p[i][k] = v;
      /* random boxes: no L1 kink or corner tie within h (checked by the value) */
      dl_assert_close1(b.gboxes[i][k], (fp - fm) / (2 * h), 1e-4, 1e-5);
    }
  }
  for (size_t i = 0; i < 3; i++) {
    free(x[i]);
    free(p[i]);
  }
  db_free(&b);
}

static void softmax_gradients_match_central_differences(void **s) {
  (void)s;
  detloss_detr_options o = detloss_detr_options_default();
  check_fd(&o, 11);
  o.eos_coef = 0.3f;
  o.weight_ce = 1.5f;
  o.num_boxes = 2.5;
  check_fd(&o, 12);
}

static void focal_gradients_match_central_differences(void **s) {
  (void)s;
  detloss_detr_options o = detloss_detr_options_focal();
  check_fd(&o, 13);
  o.focal_gamma = 1.5f;
  o.focal_alpha = 0.4f;
  check_fd(&o, 14);
  o.focal_gamma = 0.0f;
  check_fd(&o, 15);
}

/* ---- threads, normalizer, empty images, ties ---- */

static void results_are_bitwise_identical_for_1_2_3_8_threads(void **s) {
  (void)s;
  /* 5 images (outer schedule at 2 and 3 threads) and 2 images (inner: the
   * class pass in blocks of 16384 / 92 = 178 queries, 2 blocks of 300) */
  const size_t gts5[5] = {20, 0, 7, 31, 3}, gts2[2] = {25, 9};
  for (int cfg = 0; cfg < 4; cfg++) {
    const int focal = cfg & 1, two = cfg >> 1;
    size_t K = focal ? 91 : 92, n = two ? 2 : 5;
    db_batch b;
    db_random(&b, 100 + (uint64_t)cfg, n, two ? 300 : 40, K, two ? gts2 : gts5, 91);
    detloss_detr_options o = focal ? detloss_detr_options_focal() : detloss_detr_options_default();
    float *ref_l = ht_alloc(n * b.Q * K * sizeof(float)), *ref_b = ht_alloc(n * b.Q * 16);
    int64_t *ref_m = ht_alloc(n * b.Q * sizeof(int64_t));
    detloss_detr_result r0;
    const int threads[4] = {1, 2, 3, 8};
    for (int t = 0; t < 4; t++) {
      o.num_threads = threads[t];
      detloss_detr_result r;
      assert_int_equal(detloss_detr_loss(b.im, n, b.Q, K, &r, &o, NULL), DETLOSS_OK);
      for (size_t i = 0; i < n; i++) {
        if (t == 0) {
          memcpy(ref_l + i * b.Q * K, b.glogits[i], b.Q * K * sizeof(float));
          memcpy(ref_b + i * b.Q * 4, b.gboxes[i], b.Q * 16);
          memcpy(ref_m + i * b.Q, b.matches[i], b.Q * sizeof(int64_t));
        } else {
          dl_assert_bitwise_equal(b.glogits[i], ref_l + i * b.Q * K, b.Q * K);
          dl_assert_bitwise_equal(b.gboxes[i], ref_b + i * b.Q * 4, b.Q * 4);
          assert_memory_equal(b.matches[i], ref_m + i * b.Q, b.Q * sizeof(int64_t));
        }
      }
      if (t == 0)
        r0 = r;
      else
        assert_memory_equal(&r, &r0, sizeof r);
    }
    free(ref_l);
    free(ref_b);
    free(ref_m);
    db_free(&b);
  }
}

static void caller_num_boxes_divides_the_box_terms_and_is_clamped_at_one(void **s) {
  (void)s;
  const size_t gts[2] = {3, 2};
  db_batch b;
  db_random(&b, 21, 2, 6, 5, gts, 4);
  detloss_detr_options o = detloss_detr_options_default();
  detloss_detr_result r1, r2, r3;
  assert_int_equal(detloss_detr_loss(b.im, 2, 6, 5, &r1, &o, NULL), DETLOSS_OK);
  dl_assert_close1(r1.num_boxes, 5.0, 0, 0);
  o.num_boxes = 10.0; /* twice the local count: box terms halve, softmax CE unchanged */
  assert_int_equal(detloss_detr_loss(b.im, 2, 6, 5, &r2, &o, NULL), DETLOSS_OK);
  dl_assert_close1(r2.loss_bbox, r1.loss_bbox / 2, 1e-6, 0);
  dl_assert_close1(r2.loss_giou, r1.loss_giou / 2, 1e-6, 0);
  assert_true(r2.loss_ce == r1.loss_ce);
  o.num_boxes = 0.25; /* DETR: torch.clamp(num_boxes / world, min=1) */
  assert_int_equal(detloss_detr_loss(b.im, 2, 6, 5, &r3, &o, NULL), DETLOSS_OK);
  dl_assert_close1(r3.num_boxes, 1.0, 0, 0);
  dl_assert_close1(r3.loss_bbox, r1.loss_bbox * 5, 1e-6, 0);
  /* focal: the class term is divided by nb too */
  o = detloss_detr_options_focal();
  db_free(&b);
  db_random(&b, 22, 2, 6, 4, gts, 4);
  assert_int_equal(detloss_detr_loss(b.im, 2, 6, 4, &r1, &o, NULL), DETLOSS_OK);
  o.num_boxes = 10.0;
  assert_int_equal(detloss_detr_loss(b.im, 2, 6, 4, &r2, &o, NULL), DETLOSS_OK);
  dl_assert_close1(r2.loss_ce, r1.loss_ce / 2, 1e-6, 0);
  db_free(&b);
}

/* Every query of a batch without gt is no-object: the softmax CE is the plain
 * mean over the queries (each weight eos_coef cancels), box terms 0; with
 * eos_coef 0 the reference divides 0 by 0, here 0 with zero gradient. */
static void images_without_gt_are_all_no_object(void **s) {
  (void)s;
  const size_t gts[2] = {0, 0};
  db_batch b;
  db_random(&b, 31, 2, 4, 3, gts, 2);
  detloss_detr_result r;
  assert_int_equal(detloss_detr_loss(b.im, 2, 4, 3, &r, NULL, NULL), DETLOSS_OK);
  double ce = 0;
  for (size_t i = 0; i < 2; i++)
    for (size_t q = 0; q < 4; q++) {
      const float *zf = b.logits[i] + 3 * q;
      const double z[3] = {zf[0], zf[1], zf[2]};
      double mx = fmax(fmax(z[0], z[1]), z[2]);
      ce += mx + log(exp(z[0] - mx) + exp(z[1] - mx) + exp(z[2] - mx)) - z[2];
      assert_int_equal(b.matches[i][q], -1);
    }
  dl_assert_close1(r.loss_ce, ce / 8, 1e-6, 0);
  assert_true(r.loss_bbox == 0.0f && r.loss_giou == 0.0f);
  assert_int_equal(r.num_matched, 0);
  dl_assert_close1(r.num_boxes, 1.0, 0, 0);
  for (size_t i = 0; i < 2; i++)
    for (size_t k = 0; k < 16; k++) assert_true(b.gboxes[i][k] == 0.0f);
  detloss_detr_options o = detloss_detr_options_default();
  o.eos_coef = 0.0f;
  assert_int_equal(detloss_detr_loss(b.im, 2, 4, 3, &r, &o, NULL), DETLOSS_OK);
  assert_true(r.loss_ce == 0.0f && r.loss == 0.0f && !r.nonfinite);
  for (size_t k = 0; k < 12; k++) assert_true(b.glogits[0][k] == 0.0f);
  db_free(&b);
}

/* Two identical queries and one gt: an exact cost tie. scipy >= 1.9 solves the
 * tall 2 x 1 block transposed (1 x 2) and scans the columns from the last:
 * both reach the same reduced cost, and the tie rule (an unassigned column
 * wins on equality) leaves the lower column, query 0. */
static void exact_cost_tie_goes_where_scipy_puts_it(void **s) {
  (void)s;
  const size_t gts[1] = {1};
  db_batch b;
  db_random(&b, 41, 1, 3, 3, gts, 2);
  memcpy(b.logits[0] + 3, b.logits[0], 3 * sizeof(float));
  memcpy(b.pboxes[0] + 4, b.pboxes[0], 4 * sizeof(float));
  memcpy(b.logits[0] + 6, b.logits[0], 3 * sizeof(float));
  memcpy(b.pboxes[0] + 8, b.pboxes[0], 4 * sizeof(float));
  detloss_detr_result r;
  assert_int_equal(detloss_detr_loss(b.im, 1, 3, 3, &r, NULL, NULL), DETLOSS_OK);
  assert_int_equal(b.matches[0][0], 0);
  assert_int_equal(b.matches[0][1], -1);
  assert_int_equal(b.matches[0][2], -1);
  /* the same pairs as the matcher itself */
  int64_t pi[1], gi[1];
  assert_int_equal(detloss_hungarian_match(b.logits[0], 3, 3, b.pboxes[0], b.boxes[0], b.labels[0],
                                           1, pi, gi, NULL, NULL, NULL, NULL),
                   DETLOSS_OK);
  assert_int_equal(pi[0], 0);
  db_free(&b);
}

/* ---- bad input ---- */

static void expect_fail(db_batch *b, size_t n, size_t Q, size_t K, const detloss_detr_options *o,
                        detloss_status st, const char *where) {
  for (size_t i = 0; i < b->n; i++) {
    for (size_t k = 0; k < b->Q * b->K; k++) b->glogits[i][k] = 7.0f;
    for (size_t k = 0; k < b->Q * 4; k++) b->gboxes[i][k] = 7.0f;
    for (size_t k = 0; k < b->Q; k++) b->matches[i][k] = 77;
  }
  detloss_detr_result r;
  memset(&r, 0x5A, sizeof r);
  detloss_detr_result r0 = r;
  detloss_error err;
  detloss_status got = detloss_detr_loss(b->im, n, Q, K, &r, o, &err);
  if (got != st || strcmp(err.where, where) != 0) {
    print_error("status %d where '%s' (%s), expected %d '%s'\n", (int)got, err.where, err.msg,
                (int)st, where);
    fail();
  }
  assert_memory_equal(&r, &r0, sizeof r);
  for (size_t i = 0; i < b->n; i++) {
    for (size_t k = 0; k < b->Q * b->K; k++) assert_true(b->glogits[i][k] == 7.0f);
    for (size_t k = 0; k < b->Q * 4; k++) assert_true(b->gboxes[i][k] == 7.0f);
    for (size_t k = 0; k < b->Q; k++) assert_int_equal(b->matches[i][k], 77);
  }
}

static void bad_input_is_named_and_leaves_the_outputs_untouched(void **s) {
  (void)s;
  const size_t gts[2] = {2, 3};
  db_batch b;
  db_random(&b, 51, 2, 5, 4, gts, 3);
  detloss_detr_options o = detloss_detr_options_default();
  detloss_error err;
  assert_int_equal(detloss_detr_loss(b.im, 2, 5, 4, NULL, &o, &err), DETLOSS_ERR_NULL);
  expect_fail(&b, 0, 5, 4, &o, DETLOSS_ERR_SHAPE, "num_images");
  expect_fail(&b, 2, 0, 4, &o, DETLOSS_ERR_SHAPE, "num_queries");
  expect_fail(&b, 2, 5, 1, &o, DETLOSS_ERR_SHAPE, "num_logits");
  /* labels: the no-object column is not a class */
  b.labels[1][2] = 3;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_RANGE, "images[1].labels[2]");
  b.labels[1][2] = -1;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_RANGE, "images[1].labels[2]");
  b.labels[1][2] = 0;
  float keep = b.logits[0][9];
  b.logits[0][9] = nanf("");
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_NONFINITE, "images[0].pred_logits[2][1]");
  b.logits[0][9] = INFINITY;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_NONFINITE, "images[0].pred_logits[2][1]");
  b.logits[0][9] = keep;
  keep = b.pboxes[1][14];
  b.pboxes[1][14] = 0.0f; /* w of query 3 */
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_RANGE, "images[1].pred_boxes[3]");
  b.pboxes[1][14] = nanf("");
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_NONFINITE, "images[1].pred_boxes[3]");
  b.pboxes[1][14] = keep;
  keep = b.boxes[0][7];
  b.boxes[0][7] = -0.1f; /* h of gt 1 */
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_RANGE, "images[0].boxes[1]");
  b.boxes[0][7] = keep;
  /* options */
  o.eos_coef = -0.5f;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_RANGE, "eos_coef");
  o = detloss_detr_options_default();
  o.focal_alpha = 1.5f;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_RANGE, "focal_alpha");
  o = detloss_detr_options_default();
  o.weight_giou = INFINITY;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_RANGE, "weight_giou");
  o = detloss_detr_options_default();
  o.num_boxes = NAN;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_RANGE, "num_boxes");
  o = detloss_detr_options_default();
  o.cls_loss = (detloss_detr_cls_loss)7;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_RANGE, "cls_loss");
  o = detloss_detr_options_default();
  /* NULL pointers and aliasing */
  const float *pl = b.im[1].pred_logits;
  b.im[1].pred_logits = NULL;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_NULL, "images[1].pred_logits");
  b.im[1].pred_logits = pl;
  float *g = b.im[1].grad_pred_logits;
  b.im[1].grad_pred_logits = b.glogits[0];
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_SHAPE, "images[1].grad_pred_logits");
  b.im[1].grad_pred_logits = (float *)b.im[0].pred_logits;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_SHAPE, "images[1].grad_pred_logits");
  b.im[1].grad_pred_logits = g;
  /* focal: K = C, labels up to K - 1 are classes */
  o = detloss_detr_options_focal();
  b.labels[0][0] = 4;
  expect_fail(&b, 2, 5, 4, &o, DETLOSS_ERR_RANGE, "images[0].labels[0]");
  b.labels[0][0] = 3;
  detloss_detr_result r;
  assert_int_equal(detloss_detr_loss(b.im, 2, 5, 4, &r, &o, &err), DETLOSS_OK);
  db_free(&b);
}

/* The optional argmax output is torch.argmax of each row: the first largest
 * logit (row 1 of image 0 gets a tie at columns 1 and 3). */
static void optional_outputs_may_be_null_and_argmax_is_the_first_largest_logit(void **s) {
  (void)s;
  const size_t gts[2] = {2, 1};
  db_batch b;
  db_random(&b, 61, 2, 5, 4, gts, 3);
  const float tie[4] = {0.5f, 2.0f, -1.0f, 2.0f};
  memcpy(b.logits[0] + 4, tie, sizeof tie);
  int64_t am[2][5];
  b.im[0].argmax = am[0];
  b.im[1].argmax = am[1];
  detloss_detr_result r1, r2;
  assert_int_equal(detloss_detr_loss(b.im, 2, 5, 4, &r1, NULL, NULL), DETLOSS_OK);
  for (size_t i = 0; i < 2; i++)
    for (size_t q = 0; q < 5; q++) {
      const float *x = b.logits[i] + 4 * q;
      int64_t a = 0;
      for (int64_t k = 1; k < 4; k++)
        if (x[k] > x[a]) a = k;
      assert_int_equal(am[i][q], a);
    }
  assert_int_equal(am[0][1], 1);
  b.im[0].argmax = NULL;
  b.im[1].argmax = NULL;
  for (size_t i = 0; i < 2; i++) {
    b.im[i].matches = NULL;
    b.im[i].grad_pred_logits = NULL;
    b.im[i].grad_pred_boxes = NULL;
  }
  assert_int_equal(detloss_detr_loss(b.im, 2, 5, 4, &r2, NULL, NULL), DETLOSS_OK);
  assert_memory_equal(&r1, &r2, sizeof r1);
  db_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(softmax_two_images_match_the_torch_reference),
      cmocka_unit_test(softmax_image_without_gt_matches_the_torch_reference),
      cmocka_unit_test(more_gt_than_queries_matches_the_torch_reference),
      cmocka_unit_test(softmax_with_every_option_set_matches_the_torch_reference),
      cmocka_unit_test(focal_variant_matches_the_torch_reference),
      cmocka_unit_test(batch_without_any_gt_matches_the_torch_reference),
      cmocka_unit_test(batch_of_four_with_twenty_queries_matches_the_torch_reference),
      cmocka_unit_test(hand_worked_image),
      cmocka_unit_test(softmax_gradients_match_central_differences),
      cmocka_unit_test(focal_gradients_match_central_differences),
      cmocka_unit_test(results_are_bitwise_identical_for_1_2_3_8_threads),
      cmocka_unit_test(caller_num_boxes_divides_the_box_terms_and_is_clamped_at_one),
      cmocka_unit_test(images_without_gt_are_all_no_object),
      cmocka_unit_test(exact_cost_tie_goes_where_scipy_puts_it),
      cmocka_unit_test(bad_input_is_named_and_leaves_the_outputs_untouched),
      cmocka_unit_test(optional_outputs_may_be_null_and_argmax_is_the_first_largest_logit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
