/*
 * test_bad_input.c - the bad-input matrix: every public function of the core
 * API with each class of bad argument. The classes (rows are counted per
 * class and printed by the last test, bad_input_rows_per_class):
 *   null      NULL where data is required                (DETLOSS_ERR_NULL)
 *   shape     sizes that disagree or overflow            (DETLOSS_ERR_SHAPE)
 *   nonfinite NaN/Inf inputs                             (DETLOSS_ERR_NONFINITE)
 *   range     values outside their domain                (DETLOSS_ERR_RANGE)
 *   overflow  finite input whose result or size would not be finite or
 *             representable: anchors of size 3e38, coordinates beyond 1e18,
 *             a stride of 1e-30 turned into a feature-map size (range-checked
 *             before any float -> integer conversion), anchor counts that
 *             overflow                                   (_RANGE or _SHAPE)
 *   alias     an output that overlaps an input or another output
 *                                                        (DETLOSS_ERR_SHAPE)
 * Each row asserts the documented status, the argument named in err->where,
 * that a message is given, and that every caller output buffer is untouched
 * (alias rows pass an OUT_* buffer as the overlapping input, so "untouched"
 * covers it too). (The JSON layer's classes are covered by tests/cli and
 * test_json/test_config.)
 */
#include "detloss/detloss.h"
#include "testutil.h"

#define SENT 777.0f
#define N 8

static float OUT_F[4 * N * 80];
static float OUT_G[4 * N * 80];
static int64_t OUT_I[4 * N];
static int8_t OUT_B[4 * N];
static size_t OUT_Z[4];
static detloss_head_result OUT_R;
static detloss_eval_gt OUT_GT[N];
static detloss_eval_report OUT_REP;

static void reset_outputs(void) {
  for (size_t i = 0; i < sizeof OUT_F / sizeof OUT_F[0]; i++) OUT_F[i] = OUT_G[i] = SENT;
  for (size_t i = 0; i < sizeof OUT_I / sizeof OUT_I[0]; i++) OUT_I[i] = -777;
  memset(OUT_B, 0x77, sizeof OUT_B);
  for (int i = 0; i < 4; i++) OUT_Z[i] = 777;
  memset(&OUT_R, 0x77, sizeof OUT_R);
  memset(OUT_GT, 0x77, sizeof OUT_GT);
  memset(&OUT_REP, 0x77, sizeof OUT_REP);
}

static void assert_outputs_untouched(const char *what) {
  int ok = 1;
  for (size_t i = 0; i < sizeof OUT_F / sizeof OUT_F[0]; i++)
    ok &= OUT_F[i] == SENT && OUT_G[i] == SENT;
  for (size_t i = 0; i < sizeof OUT_I / sizeof OUT_I[0]; i++) ok &= OUT_I[i] == -777;
  for (size_t i = 0; i < sizeof OUT_B; i++) ok &= OUT_B[i] == 0x77;
  for (int i = 0; i < 4; i++) ok &= OUT_Z[i] == 777;
  const unsigned char *r = (const unsigned char *)&OUT_R;
  for (size_t i = 0; i < sizeof OUT_R; i++) ok &= r[i] == 0x77;
  const unsigned char *g = (const unsigned char *)OUT_GT;
  for (size_t i = 0; i < sizeof OUT_GT; i++) ok &= g[i] == 0x77;
  const unsigned char *rep = (const unsigned char *)&OUT_REP;
  for (size_t i = 0; i < sizeof OUT_REP; i++) ok &= rep[i] == 0x77;
  if (!ok) {
    print_error("%s: an output buffer was written on error\n", what);
    fail();
  }
}

enum { C_NULL, C_SHAPE, C_NONFINITE, C_RANGE, C_OVERFLOW, C_ALIAS, NUM_CLASSES };
static const char *const CLASS_NAMES[NUM_CLASSES] = {"null",  "shape",    "nonfinite",
                                                     "range", "overflow", "alias"};
static size_t ROWS[NUM_CLASSES];

static int class_of_status(detloss_status s) {
  switch (s) {
    case DETLOSS_ERR_NULL: return C_NULL;
    case DETLOSS_ERR_SHAPE: return C_SHAPE;
    case DETLOSS_ERR_NONFINITE: return C_NONFINITE;
    default: return C_RANGE;
  }
}

/* Runs the call with E = &err, then checks status, where and untouched outputs;
 * the row counts in the class of its status. */
#define BAD(call, want_status, want_where)                                                         \
  BAD_IN(class_of_status(want_status), call, want_status, want_where)
/* A row of an explicit class (overflow, alias). */
#define BAD_IN(cls, call, want_status, want_where)                                                 \
  do {                                                                                             \
    ROWS[(cls)]++;                                                                                 \
    detloss_error e_;                                                                              \
    memset(&e_, 0, sizeof e_);                                                                     \
    reset_outputs();                                                                               \
    detloss_error *E = &e_;                                                                        \
    detloss_status s_ = (call);                                                                    \
    if (s_ != (want_status) || strcmp(e_.where, (want_where)) != 0 || !e_.msg[0] ||                \
        e_.status != s_) {                                                                         \
      print_error(                                                                                 \
          "%s\n  -> status %d (%s), where '%s', msg '%s'\n  expected status %d, "                  \
          "where '%s'\n",                                                                          \
          #call, (int)s_, detloss_status_str(s_), e_.where, e_.msg, (int)(want_status),            \
          (want_where));                                                                           \
      fail();                                                                                      \
    }                                                                                              \
    assert_outputs_untouched(#call);                                                               \
    (void)E;                                                                                       \
  } while (0)

static const float BOX[4 * N] = {0, 0, 10, 10, 5, 5, 15, 15, 1, 2, 3, 4, 0, 0, 4, 2,
                                 2, 2, 9,  9,  3, 1, 8,  6,  0, 5, 5, 9, 4, 4, 6, 6};
static float NANBOX[4 * N];
static const size_t HUGE_N = (size_t)1 << 62;

static int setup(void **state) {
  (void)state;
  memcpy(NANBOX, BOX, sizeof BOX);
  NANBOX[4 * 2 + 1] = NAN; /* row 2 */
  return 0;
}

static void box_geometry_and_coding(void **state) {
  (void)state;
  detloss_iou_options io = detloss_iou_options_default();
  detloss_coder_options co = detloss_coder_options_default();
  /* NULL */
  BAD(detloss_box_area(NULL, 2, OUT_F, E), DETLOSS_ERR_NULL, "boxes");
  BAD(detloss_box_area(BOX, 2, NULL, E), DETLOSS_ERR_NULL, "out");
  BAD(detloss_iou_matrix(DETLOSS_GIOU, BOX, 2, NULL, 2, OUT_F, NULL, E), DETLOSS_ERR_NULL,
      "boxes2");
  BAD(detloss_iou_pairs(DETLOSS_IOU, NULL, BOX, 2, OUT_F, NULL, E), DETLOSS_ERR_NULL, "boxes1");
  BAD(detloss_box_encode(BOX, NULL, 2, OUT_F, NULL, E), DETLOSS_ERR_NULL, "boxes");
  BAD(detloss_box_decode(BOX, BOX, 2, NULL, NULL, E), DETLOSS_ERR_NULL, "boxes");
  /* sizes that overflow */
  BAD(detloss_iou_matrix(DETLOSS_IOU, BOX, HUGE_N, BOX, 8, OUT_F, NULL, E), DETLOSS_ERR_SHAPE,
      "out");
  BAD(detloss_box_area(BOX, HUGE_N, OUT_F, E), DETLOSS_ERR_SHAPE, "boxes");
  /* non-finite */
  BAD(detloss_iou_matrix(DETLOSS_DIOU, NANBOX, 4, BOX, 2, OUT_F, NULL, E), DETLOSS_ERR_NONFINITE,
      "boxes1[2]");
  BAD(detloss_iou_pairs(DETLOSS_CIOU, BOX, NANBOX, 4, OUT_F, NULL, E), DETLOSS_ERR_NONFINITE,
      "boxes2[2]");
  BAD(detloss_box_encode(BOX, NANBOX, 4, OUT_F, NULL, E), DETLOSS_ERR_NONFINITE, "boxes[2]");
  BAD(detloss_box_decode(BOX, NANBOX, 4, OUT_F, NULL, E), DETLOSS_ERR_NONFINITE, "deltas[2]");
  /* out of range */
  io.eps = -1;
  BAD(detloss_iou_matrix(DETLOSS_CIOU, BOX, 2, BOX, 2, OUT_F, &io, E), DETLOSS_ERR_RANGE, "eps");
  BAD(detloss_iou_matrix((detloss_iou_kind)7, BOX, 2, BOX, 2, OUT_F, NULL, E), DETLOSS_ERR_RANGE,
      "kind");
  co.weights[1] = -10;
  BAD(detloss_box_encode(BOX, BOX, 2, OUT_F, &co, E), DETLOSS_ERR_RANGE, "weights[1]");
  co = detloss_coder_options_default();
  co.clip = NAN;
  BAD(detloss_box_decode(BOX, BOX, 2, OUT_F, &co, E), DETLOSS_ERR_RANGE, "clip");
}

static const float RATIOS[3] = {0.5f, 1, 2}, SIZES[1] = {16};

static detloss_anchor_config grid_config(detloss_anchor_level *lv) {
  memset(lv, 0, sizeof *lv);
  lv->feat_h = 2;
  lv->feat_w = 3;
  lv->stride_h = lv->stride_w = 8;
  lv->sizes = SIZES;
  lv->num_sizes = 1;
  lv->ratios = RATIOS;
  lv->num_ratios = 3;
  detloss_anchor_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.levels = lv;
  cfg.num_levels = 1;
  return cfg;
}

static void anchors_matching_sampling_targets(void **state) {
  (void)state;
  detloss_anchor_level lv;
  detloss_anchor_config cfg = grid_config(&lv); /* 18 anchors */
  detloss_match_options mo = detloss_match_options_default();
  detloss_sample_options so = detloss_sample_options_default();
  const int64_t matches[N] = {0, -1, -2, 1, -1, -1, 0, -2};
  int64_t bad_matches[N];
  memcpy(bad_matches, matches, sizeof matches);
  bad_matches[5] = -7;
  /* NULL */
  BAD(detloss_anchors_count(NULL, OUT_Z, E), DETLOSS_ERR_NULL, "cfg");
  BAD(detloss_anchors_generate(&cfg, NULL, 18, E), DETLOSS_ERR_NULL, "anchors");
  BAD(detloss_match(NULL, 4, BOX, 2, NULL, OUT_I, OUT_F, NULL, E), DETLOSS_ERR_NULL, "anchors");
  BAD(detloss_match(BOX, 4, BOX, 2, NULL, NULL, OUT_F, NULL, E), DETLOSS_ERR_NULL, "matches");
  BAD(detloss_sample_balanced(NULL, 4, 0, OUT_B, NULL, NULL, NULL, E), DETLOSS_ERR_NULL, "matches");
  BAD(detloss_match_targets(BOX, 8, NULL, 2, matches, OUT_B, OUT_I, OUT_F, NULL, E),
      DETLOSS_ERR_NULL, "gt");
  /* sizes that disagree */
  BAD(detloss_anchors_generate(&cfg, OUT_F, 17, E), DETLOSS_ERR_SHAPE, "count");
  BAD(detloss_match_grid(&cfg, BOX, 2, NULL, OUT_I, OUT_F, 5, NULL, E), DETLOSS_ERR_SHAPE,
      "num_anchors");
  /* non-finite */
  BAD(detloss_match(BOX, 4, NANBOX, 4, NULL, OUT_I, OUT_F, NULL, E), DETLOSS_ERR_NONFINITE,
      "gt[2]");
  BAD(detloss_match_grid(&cfg, NANBOX, 4, NULL, OUT_I, OUT_F, 18, NULL, E), DETLOSS_ERR_NONFINITE,
      "gt[2]");
  /* out of range */
  mo.low = 0.8f; /* low > high */
  BAD(detloss_match(BOX, 4, BOX, 2, NULL, OUT_I, OUT_F, &mo, E), DETLOSS_ERR_RANGE, "low");
  mo = detloss_match_options_default();
  mo.high = 1.5f;
  BAD(detloss_match(BOX, 4, BOX, 2, NULL, OUT_I, OUT_F, &mo, E), DETLOSS_ERR_RANGE, "high");
  so.positive_fraction = 1.5;
  BAD(detloss_sample_balanced(matches, 8, 0, OUT_B, &OUT_Z[0], &OUT_Z[1], &so, E),
      DETLOSS_ERR_RANGE, "positive_fraction");
  so = detloss_sample_options_default();
  so.batch_size_per_image = -1;
  BAD(detloss_sample_balanced(matches, 8, 0, OUT_B, &OUT_Z[0], &OUT_Z[1], &so, E),
      DETLOSS_ERR_RANGE, "batch_size_per_image");
  BAD(detloss_sample_balanced(bad_matches, 8, 0, OUT_B, &OUT_Z[0], &OUT_Z[1], NULL, E),
      DETLOSS_ERR_RANGE, "matches[5]");
  BAD(detloss_match_targets(BOX, 8, BOX, 1, matches, OUT_B, OUT_I, OUT_F, NULL, E),
      DETLOSS_ERR_RANGE, "matches[3]");
}

static void element_and_class_losses(void **state) {
  (void)state;
  const float x[N] = {0.1f, -2, 3, 0.5f, 1, -1, 2, 0};
  const float y[N] = {1, 0, 1, 0, 0, 1, 1, 0};
  float ynan[N], ybad[N];
  memcpy(ynan, y, sizeof y);
  memcpy(ybad, y, sizeof y);
  ynan[6] = NAN;
  ybad[3] = 2.0f; /* outside [0, 1] */
  const int64_t t[4] = {0, 2, 1, 3};
  const int64_t tbad[4] = {0, 9, 1, 3};
  detloss_loss_options o = detloss_loss_options_default(DETLOSS_LOSS_SMOOTH_L1);
  /* NULL */
  BAD(detloss_loss_elementwise(DETLOSS_LOSS_L1, NULL, y, NULL, 8, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_NULL, "input");
  BAD(detloss_loss_elementwise(DETLOSS_LOSS_MSE, x, y, NULL, 8, NULL, OUT_G, NULL, E),
      DETLOSS_ERR_NULL, "loss");
  BAD(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, x, NULL, NULL, 2, 4, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_NULL, "target");
  /* sizes: class-indexed with c = 0, overflow */
  BAD(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, x, t, NULL, 2, 0, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_SHAPE, "logits");
  BAD(detloss_loss_classes(DETLOSS_LOSS_SOFTMAX_FOCAL, x, t, NULL, HUGE_N, HUGE_N, OUT_F, OUT_G,
                           NULL, E),
      DETLOSS_ERR_SHAPE, "logits");
  /* the row losses (quality_focal, distribution_focal) */
  BAD(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, NULL, NULL, 2, 4, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_NULL, "target");
  BAD(detloss_loss_rows(DETLOSS_LOSS_DISTRIBUTION_FOCAL, x, y, NULL, 2, 0, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_SHAPE, "input");
  BAD(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, y, NULL, HUGE_N, HUGE_N, OUT_F, OUT_G, NULL,
                        E),
      DETLOSS_ERR_SHAPE, "input");
  BAD(detloss_loss_rows(DETLOSS_LOSS_SIGMOID_FOCAL, x, y, NULL, 2, 4, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_RANGE, "kind");
  BAD(detloss_loss_rows(DETLOSS_LOSS_QUALITY_FOCAL, x, ynan, NULL, 2, 4, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_NONFINITE, "target[6]");
  /* kind of the wrong family */
  BAD(detloss_loss_elementwise(DETLOSS_LOSS_CROSS_ENTROPY, x, y, NULL, 8, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_RANGE, "kind");
  BAD(detloss_loss_elementwise(DETLOSS_LOSS_QUALITY_FOCAL, x, y, NULL, 8, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_RANGE, "kind");
  /* non-finite */
  BAD(detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, x, ynan, NULL, 8, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_NONFINITE, "target[6]");
  /* out of range */
  BAD(detloss_loss_elementwise(DETLOSS_LOSS_BCE_WITH_LOGITS, x, ybad, NULL, 8, OUT_F, OUT_G, NULL,
                               E),
      DETLOSS_ERR_RANGE, "target[3]");
  BAD(detloss_loss_elementwise(DETLOSS_LOSS_HINGE, x, y, NULL, 8, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_RANGE, "target[1]");
  o.beta = -1;
  BAD(detloss_loss_elementwise(DETLOSS_LOSS_SMOOTH_L1, x, y, NULL, 8, OUT_F, OUT_G, &o, E),
      DETLOSS_ERR_RANGE, "beta");
  BAD(detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, x, tbad, NULL, 2, 4, OUT_F, OUT_G, NULL, E),
      DETLOSS_ERR_RANGE, "target[1]");
  BAD(detloss_sigmoid_focal_loss(x, y, 8, 0.25f, -1.0f, DETLOSS_REDUCTION_SUM, OUT_F, OUT_G, 1, E),
      DETLOSS_ERR_RANGE, "gamma");
  BAD(detloss_sigmoid_focal_loss(x, y, 8, 0.25f, 2.0f, (detloss_reduction)9, OUT_F, OUT_G, 1, E),
      DETLOSS_ERR_RANGE, "reduction");
}

static void box_and_embedding_losses(void **state) {
  (void)state;
  const float e[4 * N] = {0};
  float enan[4 * N];
  memcpy(enan, BOX, sizeof enan);
  enan[9] = INFINITY; /* row 2 of [.][4] */
  const float tgt_bad[N] = {1, 0, 0.5f, 1, 0, 1, 0, 1};
  detloss_loss_options o = detloss_loss_options_default(DETLOSS_LOSS_GIOU);
  BAD(detloss_loss_boxes(DETLOSS_LOSS_GIOU, BOX, NULL, NULL, 4, OUT_F, OUT_G, NULL, NULL, E),
      DETLOSS_ERR_NULL, "target");
  BAD(detloss_loss_boxes(DETLOSS_LOSS_DIOU, NANBOX, BOX, NULL, 4, OUT_F, OUT_G, NULL, NULL, E),
      DETLOSS_ERR_NONFINITE, "pred[2]");
  o.eps = 0;
  BAD(detloss_loss_boxes(DETLOSS_LOSS_CIOU, BOX, BOX, NULL, 4, OUT_F, OUT_G, NULL, &o, E),
      DETLOSS_ERR_RANGE, "eps");
  BAD(detloss_loss_boxes(DETLOSS_LOSS_L1, BOX, BOX, NULL, 4, OUT_F, OUT_G, NULL, NULL, E),
      DETLOSS_ERR_RANGE, "kind");
  BAD(detloss_loss_embedding(DETLOSS_LOSS_CONTRASTIVE, e, NULL, NULL, tgt_bad, NULL, 4, 4, OUT_F,
                             OUT_G, NULL, NULL, NULL, E),
      DETLOSS_ERR_NULL, "x2");
  BAD(detloss_loss_embedding(DETLOSS_LOSS_TRIPLET_MARGIN, e, e, enan, NULL, NULL, 4, 4, OUT_F,
                             OUT_G, NULL, NULL, NULL, E),
      DETLOSS_ERR_NONFINITE, "x3[2][1]");
  BAD(detloss_loss_embedding(DETLOSS_LOSS_CONTRASTIVE, e, e, NULL, tgt_bad, NULL, 4, 4, OUT_F,
                             OUT_G, NULL, NULL, NULL, E),
      DETLOSS_ERR_RANGE, "target[2]");
  BAD(detloss_loss_embedding(DETLOSS_LOSS_COSINE_EMBEDDING, e, e, NULL, tgt_bad, NULL, 4, 4, OUT_F,
                             OUT_G, NULL, NULL, NULL, E),
      DETLOSS_ERR_RANGE, "target[1]");
}

static void detector_losses(void **state) {
  (void)state;
  float anchors[4 * N], obj[N], deltas[4 * N], logits[N * 3];
  memcpy(anchors, BOX, sizeof anchors);
  for (int i = 0; i < N; i++) obj[i] = 0.1f * (float)i;
  for (int i = 0; i < 4 * N; i++) deltas[i] = 0.01f * (float)i;
  for (int i = 0; i < 3 * N; i++) logits[i] = -0.1f * (float)i;
  const int64_t labels[2] = {0, 5}; /* 5 is out of range for 3 classes */
  detloss_head_image im[2];
  memset(im, 0, sizeof im);
  for (int b = 0; b < 2; b++) {
    im[b].anchors = anchors;
    im[b].num_anchors = N;
    im[b].gt = BOX;
    im[b].num_gt = 2;
    im[b].labels = labels;
    im[b].num_predictions = N;
    im[b].objectness = obj;
    im[b].cls_logits = logits;
    im[b].deltas = deltas;
    /* each image its own gradient buffers (shared ones are an alias error) */
    im[b].grad_objectness = OUT_G + 256 * b;
    im[b].grad_cls_logits = OUT_G + 256 * b + 64;
    im[b].grad_deltas = OUT_F + 256 * b;
  }
  detloss_head_image one = im[0];
  one.labels = NULL;
  BAD(detloss_rpn_loss(NULL, 1, &OUT_R, NULL, NULL, E), DETLOSS_ERR_NULL, "images");
  BAD(detloss_rpn_loss(im, 0, &OUT_R, NULL, NULL, E), DETLOSS_ERR_SHAPE, "num_images");
  im[1].num_predictions = N - 1;
  BAD(detloss_rpn_loss(im, 2, &OUT_R, NULL, NULL, E), DETLOSS_ERR_SHAPE,
      "images[1].num_predictions");
  im[1].num_predictions = N;
  im[1].gt = NANBOX;
  im[1].num_gt = 3;
  BAD(detloss_rpn_loss(im, 2, &OUT_R, NULL, NULL, E), DETLOSS_ERR_NONFINITE, "images[1].gt[2]");
  im[1].gt = BOX;
  im[1].num_gt = 2;
  BAD(detloss_retina_loss(im, 2, 3, &OUT_R, NULL, NULL, E), DETLOSS_ERR_RANGE,
      "images[0].labels[1]");
  BAD(detloss_retina_loss(&one, 1, 3, &OUT_R, NULL, NULL, E), DETLOSS_ERR_NULL, "images[0].labels");
}

static void anchor_evaluation(void **state) {
  (void)state;
  const float hw[2] = {100, 100};
  const size_t start[2] = {0, 4};
  detloss_eval_dataset ds = {1, hw, start, BOX, NULL};
  detloss_eval_dataset dsnan = {1, hw, start, NANBOX, NULL};
  detloss_eval_anchors src = {NULL, BOX, 8, NULL, 0};
  detloss_eval_anchors two = {NULL, BOX, 8, BOX, 2};
  detloss_eval_options o = detloss_eval_options_default();
  BAD(detloss_anchor_eval(NULL, &src, OUT_GT, &OUT_REP, NULL, E), DETLOSS_ERR_NULL, "data");
  BAD(detloss_anchor_eval(&dsnan, &src, OUT_GT, &OUT_REP, NULL, E), DETLOSS_ERR_NONFINITE,
      "data.boxes[2]");
  BAD(detloss_anchor_eval(&ds, &two, OUT_GT, &OUT_REP, NULL, E), DETLOSS_ERR_SHAPE, "src");
  o.iou_thresh = 0;
  BAD(detloss_anchor_eval(&ds, &src, OUT_GT, &OUT_REP, &o, E), DETLOSS_ERR_RANGE, "iou_thresh");
}

/* Finite input whose result or size would overflow: range-checked first. */
static void overflowing_results_and_sizes(void **state) {
  (void)state;
  float sizes[1] = {3e38f}, ratios[3] = {0.5f, 1, 2};
  detloss_anchor_level lv = {2, 2, 8, 8, sizes, 1, ratios, 3, NULL, 0, NULL, 0};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  /* size 3e38 / sqrt(0.5) = 4.2e38: Inf base anchors */
  BAD_IN(C_OVERFLOW, detloss_anchors_count(&cfg, OUT_Z, E), DETLOSS_ERR_RANGE,
         "levels[0].sizes[0]");
  BAD_IN(C_OVERFLOW, detloss_anchors_generate(&cfg, OUT_F, 12, E), DETLOSS_ERR_RANGE,
         "levels[0].sizes[0]");
  BAD_IN(C_OVERFLOW, detloss_anchors_level_base(&cfg, 0, OUT_F, 3, OUT_Z, E), DETLOSS_ERR_RANGE,
         "levels[0].sizes[0]");
  /* stride 1e30 on a 2 x 2 map: the second cell at 1e30, beyond 1e18 */
  sizes[0] = 16;
  lv.stride_h = lv.stride_w = 1e30f;
  BAD_IN(C_OVERFLOW, detloss_anchors_generate(&cfg, OUT_F, 12, E), DETLOSS_ERR_RANGE,
         "levels[0].stride");
  BAD_IN(C_OVERFLOW, detloss_match_grid(&cfg, BOX, 2, NULL, OUT_I, OUT_F, 12, NULL, E),
         DETLOSS_ERR_RANGE, "levels[0].stride");
  /* 2^40 x 2^40 cells x 3: the count overflows (or is not indexable) */
  lv.stride_h = lv.stride_w = 1e-30f;
  lv.feat_h = lv.feat_w = (size_t)1 << (sizeof(size_t) >= 8 ? 40 : 20);
  BAD_IN(C_OVERFLOW, detloss_anchors_count(&cfg, OUT_Z, E), DETLOSS_ERR_SHAPE, "levels[0].feat_h");
  /* coordinates beyond 1e18: areas and IoUs would be Inf / NaN */
  const float big[8] = {-1e20f, -1e20f, 1e20f, 1e20f, 0, 0, 1, 1};
  BAD_IN(C_OVERFLOW, detloss_match(big, 2, BOX, 2, NULL, OUT_I, OUT_F, NULL, E), DETLOSS_ERR_RANGE,
         "anchors[0]");
  BAD_IN(C_OVERFLOW, detloss_match(BOX, 2, big, 2, NULL, OUT_I, OUT_F, NULL, E), DETLOSS_ERR_RANGE,
         "gt[0]");
  BAD_IN(C_OVERFLOW, detloss_iou_matrix(DETLOSS_DIOU, BOX, 2, big, 2, OUT_F, NULL, E),
         DETLOSS_ERR_RANGE, "boxes2[0]");
  /* anchor evaluation: a stride of 1e-30 becomes a feature-map size of 1e32 */
  const float hw[2] = {100, 100};
  const size_t start[2] = {0, 4};
  detloss_eval_dataset ds = {1, hw, start, BOX, NULL};
  float one = 1, s16 = 16;
  detloss_anchor_level el = {0, 0, 1e-30f, 1e-30f, &s16, 1, &one, 1, NULL, 0, NULL, 0};
  detloss_anchor_config ecfg = {&el, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  detloss_eval_anchors grid = {&ecfg, NULL, 0, NULL, 0};
  BAD_IN(C_OVERFLOW, detloss_anchor_eval(&ds, &grid, OUT_GT, &OUT_REP, NULL, E), DETLOSS_ERR_RANGE,
         "grid.levels[0].stride");
  detloss_eval_anchors ex = {NULL, big, 2, NULL, 0};
  BAD_IN(C_OVERFLOW, detloss_anchor_eval(&ds, &ex, OUT_GT, &OUT_REP, NULL, E), DETLOSS_ERR_RANGE,
         "anchors[0]");
  /* an image that resizing makes infinite: 1e-40 x 100, short side to 800 */
  const float tiny_hw[2] = {1e-40f, 100};
  detloss_eval_dataset tds = {1, tiny_hw, start, BOX, NULL};
  detloss_eval_options eo = detloss_eval_options_default();
  eo.resize_min_size = 800;
  detloss_eval_anchors src = {NULL, BOX, 8, NULL, 0};
  BAD_IN(C_OVERFLOW, detloss_anchor_eval(&tds, &src, OUT_GT, &OUT_REP, &eo, E), DETLOSS_ERR_RANGE,
         "data.image_hw[0]");
}

/* An output that overlaps an input or another output: one row per function
 * with array inputs and outputs. The overlapping input is an OUT_* buffer
 * (filled with 777s, valid values) so that the row also proves it untouched. */
static void outputs_overlapping_inputs(void **state) {
  (void)state;
  float *F = OUT_F;
  BAD_IN(C_ALIAS, detloss_box_area(F, 2, F + 1, E), DETLOSS_ERR_SHAPE, "out");
  BAD_IN(C_ALIAS, detloss_iou_matrix(DETLOSS_IOU, BOX, 2, F, 2, F + 4, NULL, E), DETLOSS_ERR_SHAPE,
         "out");
  BAD_IN(C_ALIAS, detloss_iou_pairs(DETLOSS_CIOU, F, BOX, 2, F + 7, NULL, E), DETLOSS_ERR_SHAPE,
         "out");
  /* encode/decode work in place (output == input) but not with a shifted output */
  BAD_IN(C_ALIAS, detloss_box_encode(BOX, F, 2, F + 4, NULL, E), DETLOSS_ERR_SHAPE, "deltas");
  BAD_IN(C_ALIAS, detloss_box_decode(F + 2, BOX, 2, F, NULL, E), DETLOSS_ERR_SHAPE, "boxes");
  float sizes[2] = {16, 1};
  detloss_anchor_level lv = {2, 3, 8, 8, sizes, 1, sizes + 1, 1, NULL, 0, NULL, 0};
  detloss_anchor_config cfg = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  lv.sizes = F; /* 777 */
  lv.ratios = F + 1;
  BAD_IN(C_ALIAS, detloss_anchors_generate(&cfg, F, 6, E), DETLOSS_ERR_SHAPE, "anchors");
  BAD_IN(C_ALIAS, detloss_anchors_level_base(&cfg, 0, F, 1, OUT_Z, E), DETLOSS_ERR_SHAPE, "base");
  lv.sizes = sizes;
  lv.ratios = sizes + 1;
  /* the anchors array passed as the max_iou output */
  BAD_IN(C_ALIAS, detloss_match(F, 4, BOX, 2, NULL, OUT_I, F + 8, NULL, E), DETLOSS_ERR_SHAPE,
         "max_iou");
  BAD_IN(C_ALIAS, detloss_match_grid(&cfg, F, 2, NULL, OUT_I, F + 4, 6, NULL, E), DETLOSS_ERR_SHAPE,
         "max_iou");
  BAD_IN(C_ALIAS,
         detloss_sample_balanced(OUT_I, 8, 0, (int8_t *)(void *)(OUT_I + 2), NULL, NULL, NULL, E),
         DETLOSS_ERR_SHAPE, "sampled");
  BAD_IN(C_ALIAS, detloss_match_targets(BOX, 4, BOX, 2, OUT_I, OUT_B, OUT_I + 1, NULL, NULL, E),
         DETLOSS_ERR_SHAPE, "matched_gt");
  BAD_IN(C_ALIAS, detloss_loss_elementwise(DETLOSS_LOSS_L1, F, BOX, NULL, 8, OUT_G, F + 4, NULL, E),
         DETLOSS_ERR_SHAPE, "grad");
  BAD_IN(C_ALIAS,
         detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, F, OUT_I, NULL, 2, 4, F + 2, OUT_G, NULL,
                              E),
         DETLOSS_ERR_SHAPE, "loss");
  BAD_IN(C_ALIAS,
         detloss_sigmoid_focal_loss(F, BOX, 8, 0.25f, 2, DETLOSS_REDUCTION_SUM, OUT_G, F, 1, E),
         DETLOSS_ERR_SHAPE, "grad");
  BAD_IN(C_ALIAS,
         detloss_loss_rows(DETLOSS_LOSS_DISTRIBUTION_FOCAL, F, BOX, NULL, 2, 4, OUT_G, F + 1, NULL,
                           E),
         DETLOSS_ERR_SHAPE, "grad");
  BAD_IN(C_ALIAS,
         detloss_loss_boxes(DETLOSS_LOSS_GIOU, F, BOX, NULL, 2, OUT_G, OUT_G + 8, F + 4, NULL, E),
         DETLOSS_ERR_SHAPE, "grad_target");
  BAD_IN(C_ALIAS,
         detloss_loss_embedding(DETLOSS_LOSS_TRIPLET_MARGIN, F, F + 8, F + 16, NULL, NULL, 2, 4,
                                OUT_G, OUT_G + 8, OUT_G + 16, F + 20, NULL, E),
         DETLOSS_ERR_SHAPE, "grad_x3");
  /* detector losses: a gradient over its own predictions, and two images
   * sharing one gradient buffer */
  float obj[N], logits[3 * N];
  for (int i = 0; i < N; i++) obj[i] = 0.1f * (float)i;
  for (int i = 0; i < 3 * N; i++) logits[i] = -0.1f * (float)i;
  const int64_t labels[2] = {0, 1};
  detloss_head_image im[2];
  memset(im, 0, sizeof im);
  for (int b = 0; b < 2; b++) {
    im[b].anchors = BOX;
    im[b].num_anchors = N;
    im[b].gt = BOX;
    im[b].num_gt = 2;
    im[b].labels = labels;
    im[b].num_predictions = N;
    im[b].objectness = obj;
    im[b].cls_logits = logits;
    im[b].deltas = F;
    im[b].grad_objectness = OUT_G + 256 * b;
    im[b].grad_cls_logits = OUT_G + 256 * b + 64;
    im[b].grad_deltas = F + 256 + 64 * b;
  }
  im[1].grad_deltas = F + 8; /* over the deltas both images read */
  BAD_IN(C_ALIAS, detloss_rpn_loss(im, 2, &OUT_R, NULL, NULL, E), DETLOSS_ERR_SHAPE,
         "images[1].grad_deltas");
  im[1].grad_deltas = F + 256;
  BAD_IN(C_ALIAS, detloss_retina_loss(im, 2, 3, &OUT_R, NULL, NULL, E), DETLOSS_ERR_SHAPE,
         "images[1].grad_deltas");
  /* anchor evaluation: the report over the boxes it reads */
  const float hw[2] = {100, 100};
  const size_t start[2] = {0, 4};
  detloss_eval_dataset ds = {1, hw, start, (const float *)(const void *)&OUT_REP, NULL};
  detloss_eval_anchors src = {NULL, BOX, 8, NULL, 0};
  BAD_IN(C_ALIAS, detloss_anchor_eval(&ds, &src, OUT_GT, &OUT_REP, NULL, E), DETLOSS_ERR_SHAPE,
         "report");
}

static void bad_input_rows_per_class(void **state) {
  (void)state;
  size_t total = 0;
  printf("bad-input rows per class:");
  for (int c = 0; c < NUM_CLASSES; c++) {
    printf(" %s %zu%s", CLASS_NAMES[c], ROWS[c], c + 1 < NUM_CLASSES ? "," : "\n");
    total += ROWS[c];
    assert_true(ROWS[c] > 0);
  }
  printf("bad-input rows: %zu\n", total);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(box_geometry_and_coding),
      cmocka_unit_test(anchors_matching_sampling_targets),
      cmocka_unit_test(element_and_class_losses),
      cmocka_unit_test(box_and_embedding_losses),
      cmocka_unit_test(detector_losses),
      cmocka_unit_test(anchor_evaluation),
      cmocka_unit_test(overflowing_results_and_sizes),
      cmocka_unit_test(outputs_overlapping_inputs),
      cmocka_unit_test(bad_input_rows_per_class),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
