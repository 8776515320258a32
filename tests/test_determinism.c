/*
 * test_determinism.c - every public computation gives bitwise identical
 * results for 1, 2, 3 and 8 threads and across repeated runs (README:
 * "Determinism"). Inputs are large enough to span many parallel blocks, and
 * of mixed magnitudes so that a sum whose order followed the threads would
 * differ in its last bits.
 *
 * DETLOSS_TEST_SMALL=1 (set by the memcheck suite, where valgrind made this the
 * slowest binary by minutes) shrinks every input about 4-10x and runs each
 * thread count once instead of twice: still several parallel blocks per call
 * (11,520 anchors: 3 match / box blocks, 2 RPN and sampler blocks; 40,009
 * elements: 3 loss blocks; 17 eval images: 3 blocks) and every thread count
 * 1, 2, 3, 8. The default suite runs the full sizes.
 */
#include "detloss/detloss.h"
#include "testutil.h"

static const int THREADS[] = {1, 2, 3, 8};
#define NT (sizeof THREADS / sizeof THREADS[0])

/* DETLOSS_TEST_SMALL set and not "0": the reduced workload (see the file comment). */
static int g_small;

/* A computation writes its outputs into one byte buffer (out, out_len). */
typedef void (*compute_fn)(const void *in, int threads, unsigned char *out);

/* Runs fn for every thread count twice and compares all outputs with the first. */
static void assert_deterministic(compute_fn fn, const void *in, size_t out_len, const char *what) {
  unsigned char *ref = malloc(out_len), *got = malloc(out_len);
  memset(ref, 0xA5, out_len);
  fn(in, 1, ref);
  for (int rep = 0; rep < (g_small ? 1 : 2); rep++)
    for (size_t t = 0; t < NT; t++) {
      memset(got, 0xA5, out_len); /* same fill: slots a call does not write compare equal */
      fn(in, THREADS[t], got);
      if (memcmp(ref, got, out_len) != 0) {
        size_t i = 0;
        while (ref[i] == got[i]) i++;
        print_error("%s: %d threads (run %d) differs from 1 thread at byte %zu\n", what, THREADS[t],
                    rep + 1, i);
        fail();
      }
    }
  free(ref);
  free(got);
}

typedef struct inputs {
  size_t na, ng, ne, nrows, ncls, emb_n, emb_d;
  float *anchors, *gt, *boxes_a, *boxes_b;
  float *x, *y01, *ypm, *w; /* element-wise */
  float *logits;            /* [nrows][ncls] */
  int64_t *cls;             /* [nrows] */
  float *e1, *e2, *e3, *et; /* embeddings */
  detloss_anchor_config cfg;
  detloss_anchor_level lv[2];
} inputs;

static const float RATIOS[3] = {0.5f, 1.0f, 2.0f}, SIZES0[1] = {32}, SIZES1[1] = {64};

static void make_inputs(inputs *in) {
  dl_rng r = {2026};
  memset(in, 0, sizeof *in);
  /* grid anchors: 96x128 and 48x64 cells, 3 ratios: 46,080 anchors (small: 48x64 and 24x32,
   * 11,520 anchors) */
  size_t sc = g_small ? 2 : 1;
  in->lv[0].feat_h = 96 / sc;
  in->lv[0].feat_w = 128 / sc;
  in->lv[0].stride_h = in->lv[0].stride_w = 8;
  in->lv[0].sizes = SIZES0;
  in->lv[0].num_sizes = 1;
  in->lv[0].ratios = RATIOS;
  in->lv[0].num_ratios = 3;
  in->lv[1] = in->lv[0];
  in->lv[1].feat_h = 48 / sc;
  in->lv[1].feat_w = 64 / sc;
  in->lv[1].stride_h = in->lv[1].stride_w = 16;
  in->lv[1].sizes = SIZES1;
  in->cfg.levels = in->lv;
  in->cfg.num_levels = 2;
  detloss_error err;
  assert_int_equal(detloss_anchors_count(&in->cfg, &in->na, &err), DETLOSS_OK);
  in->anchors = malloc(in->na * 4 * sizeof(float));
  assert_int_equal(detloss_anchors_generate(&in->cfg, in->anchors, in->na, &err), DETLOSS_OK);
  in->ng = 37;
  in->gt = malloc(in->ng * 4 * sizeof(float));
  for (size_t g = 0; g < in->ng; g++) {
    float x = (float)dl_rng_uniform(&r, 0, 900), y = (float)dl_rng_uniform(&r, 0, 700);
    in->gt[4 * g] = x;
    in->gt[4 * g + 1] = y;
    in->gt[4 * g + 2] = x + (float)exp(dl_rng_uniform(&r, 2.5, 5.5));
    in->gt[4 * g + 3] = y + (float)exp(dl_rng_uniform(&r, 2.5, 5.5));
  }
  /* matched box pairs for losses and coding */
  in->boxes_a = malloc(in->na * 4 * sizeof(float));
  in->boxes_b = malloc(in->na * 4 * sizeof(float));
  for (size_t i = 0; i < in->na; i++)
    for (int k = 0; k < 4; k++) {
      in->boxes_a[4 * i + k] = in->anchors[4 * i + k];
      in->boxes_b[4 * i + k] = in->anchors[4 * i + k] + (float)dl_rng_uniform(&r, -6, 6);
    }
  for (size_t i = 0; i < in->na; i++) { /* keep b proper */
    if (in->boxes_b[4 * i + 2] <= in->boxes_b[4 * i])
      in->boxes_b[4 * i + 2] = in->boxes_b[4 * i] + 1;
    if (in->boxes_b[4 * i + 3] <= in->boxes_b[4 * i + 1])
      in->boxes_b[4 * i + 3] = in->boxes_b[4 * i + 1] + 1;
  }
  in->ne = g_small ? 40009 : 300007;
  in->x = malloc(in->ne * sizeof(float));
  in->y01 = malloc(in->ne * sizeof(float));
  in->ypm = malloc(in->ne * sizeof(float));
  in->w = malloc(in->ne * sizeof(float));
  for (size_t i = 0; i < in->ne; i++) {
    in->x[i] = (float)(dl_rng_normal(&r) * pow(10.0, dl_rng_uniform(&r, -3, 1.5)));
    in->y01[i] = dl_rng_uniform(&r, 0, 1) < 0.3 ? 1.0f : 0.0f;
    in->ypm[i] = in->y01[i] > 0 ? 1.0f : -1.0f;
    in->w[i] = (float)dl_rng_uniform(&r, 0, 3);
  }
  in->nrows = g_small ? 4001 : 20011;
  in->ncls = 13;
  in->logits = malloc(in->nrows * in->ncls * sizeof(float));
  in->cls = malloc(in->nrows * sizeof(int64_t));
  for (size_t i = 0; i < in->nrows * in->ncls; i++) in->logits[i] = (float)(4 * dl_rng_normal(&r));
  for (size_t i = 0; i < in->nrows; i++)
    in->cls[i] = dl_rng_uniform(&r, 0, 1) < 0.05 ? -100 : (int64_t)dl_rng_uniform(&r, 0, 13);
  in->emb_n = g_small ? 1003 : 5003;
  in->emb_d = 37;
  size_t ed = in->emb_n * in->emb_d;
  in->e1 = malloc(ed * sizeof(float));
  in->e2 = malloc(ed * sizeof(float));
  in->e3 = malloc(ed * sizeof(float));
  in->et = malloc(in->emb_n * sizeof(float));
  for (size_t i = 0; i < ed; i++) {
    in->e1[i] = (float)dl_rng_normal(&r);
    in->e2[i] = in->e1[i] + (float)(0.3 * dl_rng_normal(&r));
    in->e3[i] = (float)dl_rng_normal(&r);
  }
  for (size_t i = 0; i < in->emb_n; i++) in->et[i] = dl_rng_uniform(&r, 0, 1) < 0.5 ? 1.0f : 0.0f;
}

static void free_inputs(inputs *in) {
  free(in->anchors);
  free(in->gt);
  free(in->boxes_a);
  free(in->boxes_b);
  free(in->x);
  free(in->y01);
  free(in->ypm);
  free(in->w);
  free(in->logits);
  free(in->cls);
  free(in->e1);
  free(in->e2);
  free(in->e3);
  free(in->et);
}

static inputs G_IN;
static int g_kind;
static detloss_reduction g_red;

static int setup(void **state) {
  (void)state;
  const char *small = getenv("DETLOSS_TEST_SMALL");
  g_small = small != NULL && small[0] != '\0' && strcmp(small, "0") != 0;
  make_inputs(&G_IN);
  return 0;
}
static int teardown(void **state) {
  (void)state;
  free_inputs(&G_IN);
  return 0;
}

static void c_iou(const void *v, int t, unsigned char *out) {
  const inputs *in = v;
  detloss_iou_options o = detloss_iou_options_default();
  o.num_threads = t;
  detloss_error err;
  size_t n = 2000; /* 2000 x 37 matrix and 46k pairs */
  assert_int_equal(detloss_iou_matrix((detloss_iou_kind)g_kind, in->anchors, n, in->gt, in->ng,
                                      (float *)out, &o, &err),
                   DETLOSS_OK);
  assert_int_equal(detloss_iou_pairs((detloss_iou_kind)g_kind, in->boxes_a, in->boxes_b, in->na,
                                     (float *)out + n * in->ng, &o, &err),
                   DETLOSS_OK);
}

static void c_coder(const void *v, int t, unsigned char *out) {
  const inputs *in = v;
  detloss_coder_options o = detloss_coder_options_default();
  o.num_threads = t;
  detloss_error err;
  float *d = (float *)out, *b = d + 4 * in->na;
  assert_int_equal(detloss_box_encode(in->boxes_a, in->boxes_b, in->na, d, &o, &err), DETLOSS_OK);
  assert_int_equal(detloss_box_decode(in->boxes_a, d, in->na, b, &o, &err), DETLOSS_OK);
}

static void c_match(const void *v, int t, unsigned char *out) {
  const inputs *in = v;
  detloss_match_options o = detloss_match_options_default();
  o.num_threads = t;
  o.semantics = (detloss_match_semantics)g_kind;
  detloss_error err;
  int64_t *m = (int64_t *)out;
  float *iou = (float *)(m + 2 * in->na);
  assert_int_equal(detloss_match(in->anchors, in->na, in->gt, in->ng, NULL, m, iou, &o, &err),
                   DETLOSS_OK);
  assert_int_equal(detloss_match_grid(&in->cfg, in->gt, in->ng, NULL, m + in->na, iou + in->na,
                                      in->na, &o, &err),
                   DETLOSS_OK);
  /* sampling and targets on those matches */
  detloss_sample_options so = detloss_sample_options_default();
  so.num_threads = t;
  so.seed = 99;
  int8_t *sampled = (int8_t *)(iou + 2 * in->na);
  size_t np, nn;
  assert_int_equal(detloss_sample_balanced(m, in->na, 3, sampled, &np, &nn, &so, &err), DETLOSS_OK);
  int8_t *labels = sampled + in->na;
  int64_t *mg = (int64_t *)(labels + in->na);
  float *deltas = (float *)(mg + in->na);
  assert_int_equal(detloss_match_targets(in->anchors, in->na, in->gt, in->ng, m, labels, mg, deltas,
                                         NULL, &err),
                   DETLOSS_OK);
}

static size_t match_out_len(const inputs *in) {
  return in->na *
         (2 * sizeof(int64_t) + 2 * sizeof(float) + 2 + sizeof(int64_t) + 4 * sizeof(float));
}

static void c_elementwise(const void *v, int t, unsigned char *out) {
  const inputs *in = v;
  detloss_loss_kind k = (detloss_loss_kind)g_kind;
  detloss_loss_options o = detloss_loss_options_default(k);
  o.num_threads = t;
  o.reduction = g_red;
  detloss_error err;
  const float *y = k == DETLOSS_LOSS_HINGE ? in->ypm : in->y01;
  const float *x = in->x;
  float *xb = NULL;
  if (k == DETLOSS_LOSS_BCE) { /* probabilities */
    xb = malloc(in->ne * sizeof(float));
    for (size_t i = 0; i < in->ne; i++) xb[i] = 1.0f / (1.0f + expf(-in->x[i]));
    x = xb;
  }
  float *loss = (float *)out, *grad = loss + in->ne;
  assert_int_equal(detloss_loss_elementwise(k, x, y, in->w, in->ne, loss, grad, &o, &err),
                   DETLOSS_OK);
  free(xb);
}

static void c_classes(const void *v, int t, unsigned char *out) {
  const inputs *in = v;
  detloss_loss_kind k = (detloss_loss_kind)g_kind;
  detloss_loss_options o = detloss_loss_options_default(k);
  o.num_threads = t;
  o.reduction = g_red;
  o.label_smoothing = k == DETLOSS_LOSS_CROSS_ENTROPY ? 0.1f : 0.0f;
  detloss_error err;
  float *loss = (float *)out, *grad = loss + in->nrows;
  assert_int_equal(detloss_loss_classes(k, in->logits, in->cls, NULL, in->nrows, in->ncls, loss,
                                        grad, &o, &err),
                   DETLOSS_OK);
}

static void c_boxes(const void *v, int t, unsigned char *out) {
  const inputs *in = v;
  detloss_loss_kind k = (detloss_loss_kind)g_kind;
  detloss_loss_options o = detloss_loss_options_default(k);
  o.num_threads = t;
  o.reduction = g_red;
  detloss_error err;
  float *loss = (float *)out, *gp = loss + in->na, *gt = gp + 4 * in->na;
  assert_int_equal(detloss_loss_boxes(k, in->boxes_b, in->boxes_a, NULL, in->na, loss, gp, gt, &o,
                                      &err),
                   DETLOSS_OK);
}

static void c_embedding(const void *v, int t, unsigned char *out) {
  const inputs *in = v;
  detloss_loss_kind k = (detloss_loss_kind)g_kind;
  detloss_loss_options o = detloss_loss_options_default(k);
  o.num_threads = t;
  o.reduction = g_red;
  detloss_error err;
  size_t ed = in->emb_n * in->emb_d;
  float *loss = (float *)out, *g1 = loss + in->emb_n, *g2 = g1 + ed, *g3 = g2 + ed;
  float *tgt = NULL;
  float *pm = NULL;
  if (k == DETLOSS_LOSS_CONTRASTIVE) tgt = in->et;
  if (k == DETLOSS_LOSS_COSINE_EMBEDDING) {
    pm = malloc(in->emb_n * sizeof(float));
    for (size_t i = 0; i < in->emb_n; i++) pm[i] = in->et[i] > 0 ? 1.0f : -1.0f;
    tgt = pm;
  }
  int trip = k == DETLOSS_LOSS_TRIPLET_MARGIN;
  assert_int_equal(detloss_loss_embedding(k, in->e1, in->e2, trip ? in->e3 : NULL, tgt, NULL,
                                          in->emb_n, in->emb_d, loss, g1, g2, trip ? g3 : NULL, &o,
                                          &err),
                   DETLOSS_OK);
  free(pm);
}

/* Detector losses: 2 images over the grid anchors, all outputs (both loss
 * terms, counts, per-image shares, every gradient) compared. g_kind: 0 RPN,
 * 1 RetinaNet (4 classes). */
static void c_heads(const void *v, int t, unsigned char *out) {
  const inputs *in = v;
  const size_t A = in->na, C = 4;
  int retina = g_kind == 1;
  float *pred = malloc(2 * A * C * sizeof(float)), *del = malloc(2 * A * 4 * sizeof(float));
  dl_rng r = {77};
  for (size_t i = 0; i < 2 * A * C; i++) pred[i] = (float)dl_rng_normal(&r);
  for (size_t i = 0; i < 2 * A * 4; i++) del[i] = (float)(0.3 * dl_rng_normal(&r));
  int64_t labels[64];
  for (size_t g = 0; g < in->ng; g++) labels[g] = (int64_t)(g % C);
  detloss_head_result *res = (detloss_head_result *)out;
  detloss_head_image_stats *ps = (detloss_head_image_stats *)(res + 1);
  float *grad_pred = (float *)(ps + 2), *grad_del = grad_pred + 2 * A * C;
  detloss_head_image im[2];
  memset(im, 0, sizeof im);
  for (int b = 0; b < 2; b++) {
    im[b].anchors = in->anchors;
    im[b].num_anchors = A;
    im[b].anchor_config = b ? &in->cfg : NULL; /* one image on each matching path */
    im[b].gt = in->gt + 4 * (size_t)b;         /* the two images see shifted gt lists */
    im[b].num_gt = in->ng - (size_t)b;
    im[b].labels = labels + b;
    im[b].num_predictions = A;
    if (retina) {
      im[b].cls_logits = pred + (size_t)b * A * C;
      im[b].grad_cls_logits = grad_pred + (size_t)b * A * C;
    } else {
      im[b].objectness = pred + (size_t)b * A;
      im[b].grad_objectness = grad_pred + (size_t)b * A;
    }
    im[b].deltas = del + (size_t)b * A * 4;
    im[b].grad_deltas = grad_del + (size_t)b * A * 4;
  }
  detloss_error err;
  if (retina) {
    detloss_retina_options o = detloss_retina_options_default();
    o.num_threads = t;
    o.box_loss = DETLOSS_HEAD_BOX_GIOU;
    assert_int_equal(detloss_retina_loss(im, 2, C, res, ps, &o, &err), DETLOSS_OK);
  } else {
    detloss_rpn_options o = detloss_rpn_options_default();
    o.num_threads = t;
    assert_int_equal(detloss_rpn_loss(im, 2, res, ps, &o, &err), DETLOSS_OK);
  }
  free(pred);
  free(del);
}

/* FCOS head loss, small (memcheck runs this file): 2 images, 3 levels (16 x 16,
 * 8 x 8, 4 x 4 at strides 8, 16, 32: 336 points), 64 classes (two classification
 * blocks per image); g_kind 0 mmdet, 1 torchvision. Losses, labels, gradients. */
#define FCOS_P 336
#define FCOS_C 64
static void c_fcos(const void *v, int t, unsigned char *out) {
  (void)v;
  static const size_t fm[6] = {16, 16, 8, 8, 4, 4}, lc[3] = {256, 64, 16};
  static const float st[3] = {8, 16, 32}, rr[6] = {-1, 32, 32, 64, 64, 1e8f};
  float *pts = malloc(2 * FCOS_P * sizeof(float));
  float *pred = malloc(2 * FCOS_P * (FCOS_C + 5) * sizeof(float));
  float gt[2][7 * 4];
  int64_t labels[7];
  dl_rng r = {91};
  for (size_t i = 0; i < 2 * FCOS_P * (FCOS_C + 5); i++) pred[i] = (float)dl_rng_normal(&r);
  for (int b = 0; b < 2; b++)
    for (int g = 0; g < 7; g++) {
      float x = (float)dl_rng_uniform(&r, 0, 90), y = (float)dl_rng_uniform(&r, 0, 90);
      float w = (float)dl_rng_uniform(&r, 6, 120), h = (float)dl_rng_uniform(&r, 6, 120);
      gt[b][4 * g] = x;
      gt[b][4 * g + 1] = y;
      gt[b][4 * g + 2] = x + w;
      gt[b][4 * g + 3] = y + h;
      labels[g] = (int64_t)(g * 9 % FCOS_C);
    }
  for (size_t i = 0; i < 2 * FCOS_P * 4; i++) /* positive distances */
    pred[2 * FCOS_P * FCOS_C + i] = fabsf(pred[2 * FCOS_P * FCOS_C + i]) + 0.1f;
  assert_int_equal(detloss_grid_points(fm, st, 3, 0.5f, pts, NULL), DETLOSS_OK);
  detloss_fcos_result *res = (detloss_fcos_result *)out;
  float *g = (float *)(res + 1);
  int64_t *al = (int64_t *)(g + 2 * FCOS_P * (FCOS_C + 5));
  const float *cls = pred, *box = pred + 2 * FCOS_P * FCOS_C, *ctr = box + 2 * FCOS_P * 4;
  float *gc = g, *gb = g + 2 * FCOS_P * FCOS_C, *gt_ = gb + 2 * FCOS_P * 4;
  detloss_fcos_image im[2];
  for (size_t b = 0; b < 2; b++) {
    detloss_fcos_image one = {7 - 3 * b,
                              gt[b],
                              labels,
                              cls + b * FCOS_P * FCOS_C,
                              box + b * FCOS_P * 4,
                              ctr + b * FCOS_P,
                              gc + b * FCOS_P * FCOS_C,
                              gb + b * FCOS_P * 4,
                              gt_ + b * FCOS_P,
                              al + b * FCOS_P};
    im[b] = one;
  }
  detloss_fcos_loss_options o = detloss_fcos_loss_options_default();
  o.variant = g_kind ? DETLOSS_FCOS_LOSS_TORCHVISION : DETLOSS_FCOS_LOSS_MMDET;
  o.regress_ranges = g_kind ? NULL : rr;
  o.num_threads = t;
  detloss_error err;
  memset(res, 0, sizeof *res); /* padding bytes compared too */
  assert_int_equal(detloss_fcos_loss(pts, FCOS_P, lc, st, 3, FCOS_C, im, 2, res, &o, &err),
                   DETLOSS_OK);
  free(pts);
  free(pred);
}

static size_t heads_out_len(const inputs *in) {
  return sizeof(detloss_head_result) + 2 * sizeof(detloss_head_image_stats) +
         2 * in->na * (4 + 4) * sizeof(float);
}

/* Anchor evaluation of 40 synthetic images over the grid config, per-gt
 * records and the report compared. */
static void c_eval(const void *v, int t, unsigned char *out) {
  const inputs *in = v;
  enum { MAX_IMAGES = 40 };
  const size_t IMAGES = g_small ? 17 : MAX_IMAGES;
  float hw[2 * MAX_IMAGES];
  size_t start[MAX_IMAGES + 1];
  float *boxes = malloc(IMAGES * in->ng * 4 * sizeof(float));
  for (size_t i = 0; i < IMAGES; i++) {
    hw[2 * i] = 700.0f + (float)(i % 5) * 31.0f;
    hw[2 * i + 1] = 900.0f + (float)(i % 7) * 17.0f;
    start[i] = i * in->ng;
    for (size_t k = 0; k < 4 * in->ng; k++)
      boxes[i * 4 * in->ng + k] = in->gt[k] * (0.6f + 0.01f * (float)i);
  }
  start[IMAGES] = IMAGES * in->ng;
  detloss_eval_dataset ds = {IMAGES, hw, start, boxes, NULL};
  detloss_eval_anchors src = {&in->cfg, NULL, 0, NULL, 0};
  detloss_eval_options o = detloss_eval_options_default();
  o.num_threads = t;
  o.resize_min_size = 800;
  o.resize_max_size = 1333;
  detloss_eval_report *rep = (detloss_eval_report *)out;
  detloss_eval_gt *gt = (detloss_eval_gt *)(rep + 1);
  detloss_error err;
  assert_int_equal(detloss_anchor_eval(&ds, &src, gt, rep, &o, &err), DETLOSS_OK);
  free(boxes);
}

static void iou_family_is_thread_invariant(void **state) {
  (void)state;
  for (g_kind = 0; g_kind < 4; g_kind++)
    assert_deterministic(c_iou, &G_IN, (2000 * G_IN.ng + G_IN.na) * sizeof(float), "iou");
}

static void box_coding_is_thread_invariant(void **state) {
  (void)state;
  assert_deterministic(c_coder, &G_IN, 8 * G_IN.na * sizeof(float), "coder");
}

static void matching_sampling_and_targets_are_thread_invariant(void **state) {
  (void)state;
  for (g_kind = 0; g_kind < 3; g_kind++)
    assert_deterministic(c_match, &G_IN, match_out_len(&G_IN), "match/sample/targets");
}

static void elementwise_losses_are_thread_invariant(void **state) {
  (void)state;
  const detloss_loss_kind kinds[] =
      {DETLOSS_LOSS_BCE_WITH_LOGITS, DETLOSS_LOSS_BCE,  DETLOSS_LOSS_SIGMOID_FOCAL,
       DETLOSS_LOSS_HINGE,           DETLOSS_LOSS_L1,   DETLOSS_LOSS_MSE,
       DETLOSS_LOSS_SMOOTH_L1,       DETLOSS_LOSS_HUBER};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
    for (int r = 0; r < 3; r++) {
      g_kind = (int)kinds[k];
      g_red = (detloss_reduction)r;
      assert_deterministic(c_elementwise, &G_IN, 2 * G_IN.ne * sizeof(float),
                           detloss_loss_name(kinds[k]));
    }
}

static void class_losses_are_thread_invariant(void **state) {
  (void)state;
  const detloss_loss_kind kinds[] = {DETLOSS_LOSS_CROSS_ENTROPY, DETLOSS_LOSS_SOFTMAX_FOCAL};
  for (size_t k = 0; k < 2; k++)
    for (int r = 0; r < 3; r++) {
      g_kind = (int)kinds[k];
      g_red = (detloss_reduction)r;
      assert_deterministic(c_classes, &G_IN, (G_IN.nrows * (1 + G_IN.ncls)) * sizeof(float),
                           detloss_loss_name(kinds[k]));
    }
}

static void box_losses_are_thread_invariant(void **state) {
  (void)state;
  for (int k = DETLOSS_LOSS_IOU; k <= DETLOSS_LOSS_CIOU; k++)
    for (int r = 0; r < 3; r++) {
      g_kind = k;
      g_red = (detloss_reduction)r;
      assert_deterministic(c_boxes, &G_IN, 9 * G_IN.na * sizeof(float),
                           detloss_loss_name((detloss_loss_kind)k));
    }
}

static void embedding_losses_are_thread_invariant(void **state) {
  (void)state;
  for (int k = DETLOSS_LOSS_CONTRASTIVE; k <= DETLOSS_LOSS_TRIPLET_MARGIN; k++)
    for (int r = 0; r < 3; r++) {
      g_kind = k;
      g_red = (detloss_reduction)r;
      assert_deterministic(c_embedding, &G_IN,
                           (G_IN.emb_n + 3 * G_IN.emb_n * G_IN.emb_d) * sizeof(float),
                           detloss_loss_name((detloss_loss_kind)k));
    }
}

static void detector_losses_are_thread_invariant(void **state) {
  (void)state;
  for (g_kind = 0; g_kind < 2; g_kind++)
    assert_deterministic(c_heads, &G_IN, heads_out_len(&G_IN), g_kind ? "retina_loss" : "rpn_loss");
}

static void fcos_loss_is_thread_invariant(void **state) {
  (void)state;
  for (g_kind = 0; g_kind < 2; g_kind++)
    assert_deterministic(c_fcos, NULL,
                         sizeof(detloss_fcos_result) +
                             2 * FCOS_P * ((FCOS_C + 5) * sizeof(float) + sizeof(int64_t)),
                         g_kind ? "fcos_loss torchvision" : "fcos_loss mmdet");
}

/* yolov8_loss: B images of 256 x 256 (A = 1344 anchor points, 2 BCE blocks at C = 20),
 * 12 gts each; B = 3 runs the images in parallel, B = 1 the threads inside one image.
 * Output: result, then per image the two gradients and assigned_gt. */
#define Y8_A 1344
#define Y8_C 20
#define Y8_IMG (Y8_A * (64 + Y8_C) * sizeof(float) + Y8_A * sizeof(int64_t))
static float *g_y8_pd, *g_y8_ps, g_y8_gt[3 * 12 * 4];
static int64_t g_y8_lab[3 * 12];
static void y8_inputs(void) {
  if (g_y8_pd) return;
  dl_rng r = {77};
  g_y8_pd = malloc(3 * Y8_A * 64 * sizeof(float));
  g_y8_ps = malloc(3 * Y8_A * Y8_C * sizeof(float));
  for (size_t k = 0; k < 3 * Y8_A * 64; k++)
    g_y8_pd[k] = (float)(-0.3 * ((double)(k % 16) - 3.0) * ((double)(k % 16) - 3.0) +
                         0.5 * dl_rng_normal(&r));
  for (size_t k = 0; k < 3 * Y8_A * Y8_C; k++) g_y8_ps[k] = (float)(2.0 * dl_rng_normal(&r) - 1.0);
  for (size_t g = 0; g < 3 * 12; g++) {
    double w = dl_rng_uniform(&r, 8, 120), h = dl_rng_uniform(&r, 8, 120);
    double x = dl_rng_uniform(&r, 0, 256 - w), y = dl_rng_uniform(&r, 0, 256 - h);
    g_y8_gt[4 * g] = (float)x;
    g_y8_gt[4 * g + 1] = (float)y;
    g_y8_gt[4 * g + 2] = (float)(x + w);
    g_y8_gt[4 * g + 3] = (float)(y + h);
    g_y8_lab[g] = (int64_t)(g % Y8_C);
  }
}
static void c_yolov8(const void *v, int t, unsigned char *out) {
  size_t B = *(const size_t *)v;
  y8_inputs();
  detloss_yolov8_result *res = (detloss_yolov8_result *)out;
  unsigned char *p = out + sizeof *res;
  detloss_yolov8_image im[3];
  memset(im, 0, sizeof im);
  for (size_t i = 0; i < B; i++, p += Y8_IMG) {
    im[i].gt = g_y8_gt + 48 * i;
    im[i].num_gt = 12;
    im[i].labels = g_y8_lab + 12 * i;
    im[i].pred_distri = g_y8_pd + (size_t)Y8_A * 64 * i;
    im[i].pred_scores = g_y8_ps + (size_t)Y8_A * Y8_C * i;
    im[i].grad_pred_distri = (float *)(void *)p;
    im[i].grad_pred_scores = (float *)(void *)p + Y8_A * 64;
    im[i].assigned_gt = (int64_t *)(void *)(p + Y8_A * (64 + Y8_C) * sizeof(float));
  }
  detloss_yolov8_options o = detloss_yolov8_options_default();
  o.num_threads = t;
  detloss_error err;
  assert_int_equal(detloss_yolov8_loss(256, 256, Y8_C, im, B, res, &o, &err), DETLOSS_OK);
}

static void yolov8_loss_is_thread_invariant(void **state) {
  (void)state;
  static const size_t one = 1, three = 3;
  assert_deterministic(c_yolov8, &one, sizeof(detloss_yolov8_result) + Y8_IMG, "yolov8_loss B=1");
  assert_deterministic(c_yolov8, &three, sizeof(detloss_yolov8_result) + 3 * Y8_IMG,
                       "yolov8_loss B=3");
  free(g_y8_pd);
  free(g_y8_ps);
  g_y8_pd = g_y8_ps = NULL;
}

/* DETR's loss, small (memcheck runs this binary): 4 images x 30 queries x 12
 * logits, 5, 0, 9 and 31 gts (more gts than queries), softmax and focal. */
#define DQ 30
#define DK 12
static float D_LOGITS[4 * DQ * DK], D_PB[4 * DQ * 4], D_GT[45 * 4];
static int64_t D_LAB[45];
static const size_t D_G[4] = {5, 0, 9, 31};

static void c_detr(const void *in, int threads, unsigned char *out) {
  int focal = *(const int *)in;
  detloss_detr_result *res = (detloss_detr_result *)(void *)out;
  float *g = (float *)(void *)(res + 1);
  int64_t *m = (int64_t *)(void *)(g + 4 * DQ * (DK + 4));
  detloss_detr_image im[4];
  memset(im, 0, sizeof im);
  size_t off = 0;
  for (int b = 0; b < 4; b++) {
    im[b].pred_logits = D_LOGITS + b * DQ * DK;
    im[b].pred_boxes = D_PB + b * DQ * 4;
    im[b].boxes = D_GT + 4 * off;
    im[b].labels = D_LAB + off;
    im[b].num_gt = D_G[b];
    im[b].grad_pred_logits = g + b * DQ * DK;
    im[b].grad_pred_boxes = g + 4 * DQ * DK + b * DQ * 4;
    im[b].matches = m + b * DQ;
    off += D_G[b];
  }
  detloss_detr_options o = focal ? detloss_detr_options_focal() : detloss_detr_options_default();
  o.num_threads = threads;
  memset(res, 0, sizeof *res);
  assert_int_equal(detloss_detr_loss(im, 4, DQ, DK, res, &o, NULL), DETLOSS_OK);
}

static void detr_loss_is_thread_invariant(void **state) {
  (void)state;
  dl_rng r = {77};
  for (size_t i = 0; i < 4 * DQ * DK; i++) D_LOGITS[i] = (float)(3.0 * dl_rng_normal(&r));
  for (size_t i = 0; i < 4 * DQ; i++) {
    D_PB[4 * i] = (float)dl_rng_uniform(&r, 0.05, 0.95);
    D_PB[4 * i + 1] = (float)dl_rng_uniform(&r, 0.05, 0.95);
    D_PB[4 * i + 2] = (float)dl_rng_uniform(&r, 0.01, 0.7);
    D_PB[4 * i + 3] = (float)dl_rng_uniform(&r, 0.01, 0.7);
  }
  for (size_t i = 0; i < 45; i++) {
    D_GT[4 * i] = (float)dl_rng_uniform(&r, 0.1, 0.9);
    D_GT[4 * i + 1] = (float)dl_rng_uniform(&r, 0.1, 0.9);
    D_GT[4 * i + 2] = (float)dl_rng_uniform(&r, 0.02, 0.5);
    D_GT[4 * i + 3] = (float)dl_rng_uniform(&r, 0.02, 0.5);
    D_LAB[i] = (int64_t)(dl_rng_u64(&r) % (DK - 1));
  }
  size_t len =
      sizeof(detloss_detr_result) + 4 * DQ * (DK + 4) * sizeof(float) + 4 * DQ * sizeof(int64_t);
  for (int focal = 0; focal < 2; focal++)
    assert_deterministic(c_detr, &focal, len, focal ? "detr_loss focal" : "detr_loss");
}

static void anchor_evaluation_is_thread_invariant(void **state) {
  (void)state;
  assert_deterministic(c_eval, &G_IN,
                       sizeof(detloss_eval_report) + 40 * G_IN.ng * sizeof(detloss_eval_gt),
                       "anchor_eval");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(iou_family_is_thread_invariant),
      cmocka_unit_test(fcos_loss_is_thread_invariant),
      cmocka_unit_test(box_coding_is_thread_invariant),
      cmocka_unit_test(matching_sampling_and_targets_are_thread_invariant),
      cmocka_unit_test(elementwise_losses_are_thread_invariant),
      cmocka_unit_test(class_losses_are_thread_invariant),
      cmocka_unit_test(box_losses_are_thread_invariant),
      cmocka_unit_test(embedding_losses_are_thread_invariant),
      cmocka_unit_test(detector_losses_are_thread_invariant),
      cmocka_unit_test(anchor_evaluation_is_thread_invariant),
      cmocka_unit_test(yolov8_loss_is_thread_invariant),
      cmocka_unit_test(detr_loss_is_thread_invariant),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
