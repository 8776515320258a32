/*
 * test_nomem.c - allocation failure is reported, never crashed on.
 *
 * The test binary links with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
 * (tests/CMakeLists.txt), so every allocation made by the library's objects
 * goes through the wrappers below, and cJSON's through cJSON_InitHooks. For
 * each call, the k-th allocation is made to fail, for k = 0, 1, 2, ... until
 * the call makes fewer than k + 1 allocations. Each failing run must return
 * DETLOSS_ERR_NOMEM with a message and leave every output untouched, or (where
 * the library has a fallback) succeed with the same result as the run that
 * had no failure. The sanitizer and memcheck suites run this binary too, so a
 * leak on any failure path fails them.
 */
#include <cjson/cJSON.h>
#include <stdatomic.h>

#include "detloss/detloss.h"
#include "detloss/detloss_json.h"
#include "testutil.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);

/* Atomic: the library allocates inside OpenMP worker threads too (per-block
 * scratch), so the wrappers run concurrently (a data race ThreadSanitizer
 * reported while the counters were plain longs). */
static _Atomic long g_fail_at = -1; /* the allocation to fail, -1: none */
static _Atomic long g_count = 0;    /* allocations seen since armed */

static int should_fail(void) {
  long at = atomic_load(&g_fail_at);
  if (at < 0) return 0;
  return atomic_fetch_add(&g_count, 1) == at;
}
void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t s) { return should_fail() ? NULL : __real_calloc(n, s); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }
static void *hook_malloc(size_t n) { return __wrap_malloc(n); }
static void hook_free(void *p) { free(p); }

/* One call under test: runs into caller buffers (out, out_len bytes). */
typedef detloss_status (*call_fn)(void *ctx, unsigned char *out, detloss_error *err);

/* Fails each allocation of fn in turn; returns the number of allocations
 * the successful run made. */
static long sweep(const char *name, call_fn fn, void *ctx, size_t out_len) {
  unsigned char *ref = malloc(out_len), *got = malloc(out_len);
  detloss_error err;
  memset(ref, 0x5C, out_len);
  g_count = 0;
  g_fail_at = 1L << 40; /* armed, never failing: counts the allocations */
  detloss_status st = fn(ctx, ref, &err);
  long total = g_count;
  g_fail_at = -1;
  if (st != DETLOSS_OK) {
    print_error("%s: the reference run failed: %s: %s\n", name, err.where, err.msg);
    fail();
  }
  for (long k = 0; k < total; k++) {
    memset(got, 0x5C, out_len);
    memset(&err, 0, sizeof err);
    g_count = 0;
    g_fail_at = k;
    st = fn(ctx, got, &err);
    g_fail_at = -1;
    if (st == DETLOSS_ERR_NOMEM) {
      for (size_t i = 0; i < out_len; i++)
        if (got[i] != 0x5C) {
          print_error("%s: allocation %ld failed and output byte %zu was written\n", name, k, i);
          fail();
        }
      if (!err.msg[0] || err.status != st) {
        print_error("%s: allocation %ld failed without a message\n", name, k);
        fail();
      }
    } else if (st == DETLOSS_OK) { /* a fallback path: same result */
      if (memcmp(got, ref, out_len) != 0) {
        print_error("%s: allocation %ld failed, the call succeeded with another result\n", name, k);
        fail();
      }
    } else {
      print_error("%s: allocation %ld failed and gave status %d (%s: %s), not NOMEM\n", name, k,
                  (int)st, err.where, err.msg);
      fail();
    }
  }
  free(ref);
  free(got);
  return total;
}

#define NA 3000
#define NG 13
static float A[NA * 4], GT[NG * 4], X[NA * 4], Y[NA * 4];
static int64_t CLS[NA];
static const float RATIOS[3] = {0.5f, 1, 2}, SIZES[2] = {24, 48};
static detloss_anchor_level LV;
static detloss_anchor_config CFG;
static size_t NGRID;
#define NGRID_MAX 3000 /* 20 x 25 cells x 6 anchors */
static float *GRID;

static int setup(void **state) {
  (void)state;
  cJSON_Hooks hooks = {hook_malloc, hook_free};
  cJSON_InitHooks(&hooks);
  dl_rng r = {5};
  for (size_t i = 0; i < NA; i++) {
    float x = (float)dl_rng_uniform(&r, 0, 400), y = (float)dl_rng_uniform(&r, 0, 400);
    A[4 * i] = x;
    A[4 * i + 1] = y;
    A[4 * i + 2] = x + (float)dl_rng_uniform(&r, 8, 80);
    A[4 * i + 3] = y + (float)dl_rng_uniform(&r, 8, 80);
    CLS[i] = (int64_t)(i % 7);
  }
  for (size_t i = 0; i < 4 * NA; i++) {
    X[i] = (float)dl_rng_normal(&r);
    Y[i] = dl_rng_uniform(&r, 0, 1) < 0.2 ? 1.0f : 0.0f;
  }
  memcpy(GT, A + 4 * 100, sizeof GT); /* gts equal to some anchors */
  LV.feat_h = 20;
  LV.feat_w = 25;
  LV.stride_h = LV.stride_w = 16;
  LV.sizes = SIZES;
  LV.num_sizes = 2;
  LV.ratios = RATIOS;
  LV.num_ratios = 3;
  CFG.levels = &LV;
  CFG.num_levels = 1;
  detloss_anchors_count(&CFG, &NGRID, NULL);
  GRID = malloc(NGRID * 4 * sizeof(float));
  detloss_anchors_generate(&CFG, GRID, NGRID, NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(GRID);
  cJSON_InitHooks(NULL);
  return 0;
}

static detloss_status c_iou(void *ctx, unsigned char *out, detloss_error *err) {
  (void)ctx;
  return detloss_iou_matrix(DETLOSS_CIOU, GT, NG, A, NA, (float *)out, NULL, err);
}

static detloss_status c_match(void *ctx, unsigned char *out, detloss_error *err) {
  int grid = *(int *)ctx;
  detloss_match_options o = detloss_match_options_default();
  o.semantics = grid == 2 ? DETLOSS_MATCH_MMDET : DETLOSS_MATCH_TORCHVISION;
  int64_t *m = (int64_t *)out;
  size_t n = grid == 1 ? NGRID : NA;
  float *v = (float *)(m + n);
  if (grid == 1) return detloss_match_grid(&CFG, GT, NG, NULL, m, v, NGRID, &o, err);
  return detloss_match(A, NA, GT, NG, NULL, m, v, &o, err);
}

static detloss_status c_sample(void *ctx, unsigned char *out, detloss_error *err) {
  (void)ctx;
  int64_t m[NA];
  for (size_t i = 0; i < NA; i++) m[i] = (int64_t)(i % 5) - 2;
  size_t *np = (size_t *)out, *nn = np + 1;
  return detloss_sample_balanced(m, NA, 1, (int8_t *)(nn + 1), np, nn, NULL, err);
}

static detloss_status c_losses(void *ctx, unsigned char *out, detloss_error *err) {
  int which = *(int *)ctx;
  float *loss = (float *)out, *grad = loss + 1;
  detloss_loss_options o = detloss_loss_options_default(DETLOSS_LOSS_SIGMOID_FOCAL);
  o.num_threads = 2;
  switch (which) {
    case 0:
      return detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, X, Y, NULL, 4 * NA, loss, grad,
                                      &o, err);
    case 1:
      return detloss_loss_classes(DETLOSS_LOSS_CROSS_ENTROPY, X, CLS, NULL, NA / 2, 8, loss, grad,
                                  NULL, err);
    case 2:
      return detloss_loss_boxes(DETLOSS_LOSS_GIOU, A, A + 4, NULL, NA - 1, loss, grad, NULL, NULL,
                                err);
    default:
      return detloss_loss_embedding(DETLOSS_LOSS_TRIPLET_MARGIN, X, X + 8, X + 16, NULL, NULL,
                                    NA / 2 - 4, 8, loss, grad, NULL, NULL, NULL, err);
  }
}

static detloss_status c_heads(void *ctx, unsigned char *out, detloss_error *err) {
  int retina = *(int *)ctx;
  const int64_t labels[NG] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  detloss_head_image im[2];
  memset(im, 0, sizeof im);
  detloss_head_result *res = (detloss_head_result *)out;
  float *g = (float *)(res + 1);
  for (int b = 0; b < 2; b++) {
    im[b].anchors = GRID;
    im[b].num_anchors = NGRID;
    im[b].anchor_config = b ? &CFG : NULL;
    im[b].gt = GT;
    im[b].num_gt = NG;
    im[b].labels = labels;
    im[b].num_predictions = NGRID;
    im[b].objectness = X;
    im[b].cls_logits = X;
    im[b].deltas = Y;
    im[b].grad_objectness = g + (size_t)b * NGRID * 3;
    im[b].grad_cls_logits = g + (size_t)b * NGRID * 3;
    im[b].grad_deltas = g + 6 * NGRID + (size_t)b * NGRID * 4;
  }
  if (retina) return detloss_retina_loss(im, 2, 3, res, NULL, NULL, err);
  return detloss_rpn_loss(im, 2, res, NULL, NULL, err);
}

/* FCOS head loss: two levels (25 x 25 at stride 16, 13 x 13 at 32) on 2 threads. */
#define FCOS_P (625 + 169)
static detloss_status c_fcos(void *ctx, unsigned char *out, detloss_error *err) {
  (void)ctx;
  static const size_t fm[4] = {25, 25, 13, 13}, lc[2] = {625, 169};
  static const float st[2] = {16, 32}, rr[4] = {-1, 64, 64, 1e8f};
  static const int64_t labels[NG] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  float pts[2 * FCOS_P];
  assert_int_equal(detloss_grid_points(fm, st, 2, 0.5f, pts, NULL), DETLOSS_OK);
  detloss_fcos_result *res = (detloss_fcos_result *)out;
  float *g = (float *)(res + 1);
  int64_t *al = (int64_t *)(g + 16 * FCOS_P);
  detloss_fcos_image im[2];
  for (int b = 0; b < 2; b++) {
    detloss_fcos_image one = {b ? NG : 5,
                              GT,
                              labels,
                              X,
                              X + 3 * FCOS_P,
                              X + 7 * FCOS_P,
                              g + b * 8 * FCOS_P,
                              g + b * 8 * FCOS_P + 3 * FCOS_P,
                              g + b * 8 * FCOS_P + 7 * FCOS_P,
                              al + b * FCOS_P};
    im[b] = one;
  }
  detloss_fcos_loss_options o = detloss_fcos_loss_options_default();
  o.regress_ranges = rr;
  o.num_threads = 2;
  return detloss_fcos_loss(pts, FCOS_P, lc, st, 2, 3, im, 2, res, &o, err);
}

/* yolov8_loss on 2 images of 32 x 32 at strides 8 and 16 (A = 20), C = 3, reg_max 16:
 * result, then per image grad_pred_distri [20][64], grad_pred_scores [20][3] and
 * assigned_gt [20]. Image 1 has no gt. */
#define Y8_A 20
#define Y8_OUT                                                                                     \
  (sizeof(detloss_yolov8_result) + 2 * Y8_A * (64 + 3) * sizeof(float) + 2 * Y8_A * sizeof(int64_t))
static detloss_status c_yolov8(void *ctx, unsigned char *out, detloss_error *err) {
  (void)ctx;
  static float pd[Y8_A * 64], ps[Y8_A * 3];
  for (size_t k = 0; k < Y8_A * 64; k++) pd[k] = (float)((k * 7) % 13) * 0.3f - 1.5f;
  for (size_t k = 0; k < Y8_A * 3; k++) ps[k] = (float)((k * 5) % 11) * 0.4f - 2.0f;
  const float gt[12] = {2.5f,  3.0f,  20.0f, 24.5f, 10.0f, 12.5f,
                        30.0f, 31.0f, 1.0f,  16.5f, 9.0f,  30.0f};
  const int64_t labels[3] = {0, 2, 1};
  detloss_yolov8_result *res = (detloss_yolov8_result *)out;
  float *g = (float *)(res + 1);
  int64_t *ag = (int64_t *)(g + 2 * Y8_A * 67);
  detloss_yolov8_image im[2];
  memset(im, 0, sizeof im);
  for (int b = 0; b < 2; b++) {
    im[b].gt = gt;
    im[b].num_gt = b ? 0 : 3;
    im[b].labels = labels;
    im[b].pred_distri = pd;
    im[b].pred_scores = ps;
    im[b].grad_pred_distri = g + (size_t)b * Y8_A * 67;
    im[b].grad_pred_scores = g + (size_t)b * Y8_A * 67 + Y8_A * 64;
    im[b].assigned_gt = ag + (size_t)b * Y8_A;
  }
  detloss_yolov8_options o = detloss_yolov8_options_default();
  o.num_levels = 2;
  o.num_threads = 2;
  return detloss_yolov8_loss(32, 32, 3, im, 2, res, &o, err);
}

static detloss_status c_eval(void *ctx, unsigned char *out, detloss_error *err) {
  (void)ctx;
  const float hw[4] = {400, 420, 380, 400};
  const size_t start[3] = {0, 7, NG};
  detloss_eval_dataset ds = {2, hw, start, GT, NULL};
  detloss_eval_anchors src = {&CFG, NULL, 0, NULL, 0};
  detloss_eval_report *rep = (detloss_eval_report *)out;
  return detloss_anchor_eval(&ds, &src, (detloss_eval_gt *)(rep + 1), rep, NULL, err);
}

static detloss_status c_json(void *ctx, unsigned char *out, detloss_error *err) {
  const char *text = ctx;
  char *res = NULL;
  detloss_status st = detloss_compute_json(text, strlen(text), &res, NULL, NULL, err);
  if (st == DETLOSS_OK) {
    snprintf((char *)out, 512, "%s", res);
    detloss_free(res);
  }
  return st;
}

static detloss_status c_config(void *ctx, unsigned char *out, detloss_error *err) {
  (void)ctx;
  static const char text[] =
      "{\"anchors\": {\"levels\": [{\"stride\": 16, \"sizes\": [32, 64], \"aspect_ratios\": "
      "[0.5, "
      "1, 2]}]},"
      " \"matcher\": {\"high\": 0.6, \"low\": 0.4}}";
  detloss_config *cfg = NULL;
  detloss_status st = detloss_config_parse(text, sizeof text - 1, "mem.json", NULL, &cfg, err);
  if (st == DETLOSS_OK) {
    detloss_eval_anchors src = detloss_config_eval_anchors(cfg);
    size_t n = 0;
    detloss_anchors_count(src.grid, &n, NULL);
    memcpy(out, &n, sizeof n);
    detloss_config_free(cfg);
  }
  return st;
}

static detloss_status c_dataset(void *ctx, unsigned char *out, detloss_error *err) {
  (void)ctx;
  static const char text[] =
      "{\"images\": [{\"id\": 1, \"width\": 100, \"height\": 80, \"boxes\": [[1, 2, 30, 40], "
      "[5, 5, 9, 9]], \"labels\": [0, 1]}, {\"id\": 2, \"width\": 50, \"height\": 50, \"boxes\": "
      "[]}]}";
  detloss_dataset *ds = NULL;
  detloss_status st = detloss_dataset_parse(text, sizeof text - 1, "mem.json", &ds, err);
  if (st == DETLOSS_OK) {
    memcpy(out, &ds->num_boxes, sizeof ds->num_boxes);
    memcpy(out + 8, ds->boxes, 8 * sizeof(float));
    detloss_dataset_free(ds);
  }
  return st;
}

/* The task-aligned assigner on scattered points (the x-sorted path, which
 * allocates its index), per image (ctx: 0 ultralytics, 1 tood) and batched (2). */
static float TA_PTS[NA * 2];
static int64_t TA_LAB[NG];
static detloss_status c_task_aligned(void *ctx, unsigned char *out, detloss_error *err) {
  int mode = *(int *)ctx;
  for (size_t i = 0; i < NA; i++) {
    TA_PTS[2 * i] = (A[4 * i] + A[4 * i + 2]) / 2;
    TA_PTS[2 * i + 1] = (A[4 * i + 1] + A[4 * i + 3]) / 2;
  }
  for (size_t g = 0; g < NG; g++) TA_LAB[g] = (int64_t)(g % 4);
  int64_t *ag = (int64_t *)(void *)out;
  float *ts = (float *)(void *)(out + NA * sizeof(int64_t));
  detloss_task_aligned_options o =
      mode == 1 ? detloss_task_aligned_options_tood() : detloss_task_aligned_options_default();
  o.num_threads = 2;
  if (mode < 2)
    return detloss_assign_task_aligned(TA_PTS, NA, NULL, 0, Y, 4, A, GT, TA_LAB, NG, ag, NULL, ts,
                                       NULL, &o, err);
  detloss_task_aligned_image im[2] = {
      {NA / 2, TA_PTS, NULL, 0, Y, A, NG, GT, TA_LAB, ag, NULL, ts, NULL},
      {NA / 2, TA_PTS + NA, NULL, 0, Y + 2 * NA, A + 2 * NA, NG, GT, TA_LAB, ag + NA / 2, NULL,
       ts + NA / 2, NULL},
  };
  return detloss_assign_task_aligned_batch(im, 2, 4, &o, err);
}

/* SimOTA: the hand-worked scene of test_assign_simota.c, per image (2 threads)
 * or batched (two images). */
static detloss_status c_simota(void *ctx, unsigned char *out, detloss_error *err) {
  static const float points[] = {5, 5, 15, 5, 25, 5};
  static const size_t lc[] = {3};
  static const float strides[] = {10};
  static const float scores[] = {0.5f, 0.5f, 0.8f, 0.4f, 0.5f, 0.5f};
  static const float pred[] = {0, 0, 10, 10, 0, 0, 20, 10, 10, 0, 30, 10};
  static const float gt[] = {0, 0, 20, 10, 0, 0, 20, 10};
  static const int64_t labels[] = {0, 1};
  detloss_simota_options o = detloss_simota_options_default();
  o.num_threads = 2;
  int64_t *ag = (int64_t *)(void *)out;
  float *iou = (float *)(void *)(out + 6 * sizeof(int64_t));
  if (*(const int *)ctx == 0)
    return detloss_assign_simota(points, 3, lc, strides, 1, scores, 2, pred, gt, labels, 2, ag,
                                 NULL, iou, &o, err);
  detloss_simota_image im[2] = {{3, points, lc, scores, pred, 2, gt, labels, ag, NULL, iou},
                                {3, points, lc, scores, pred, 2, gt, labels, ag + 3, NULL,
                                 iou + 3}};
  return detloss_assign_simota_batch(im, 2, strides, 1, 2, &o, err);
}

static void geometry_and_matching_report_allocation_failure(void **state) {
  (void)state;
  long n = sweep("iou_matrix", c_iou, NULL, NG * NA * sizeof(float));
  assert_true(n >= 1); /* the column scratch */
  for (int grid = 0; grid < 3; grid++)
    sweep(grid == 1 ? "match_grid" : "match", c_match, &grid,
          (grid == 1 ? NGRID : NA) * (sizeof(int64_t) + sizeof(float)));
  sweep("sample_balanced", c_sample, NULL, 2 * sizeof(size_t) + NA);
  for (int mode = 0; mode < 3; mode++)
    assert_true(sweep("assign_task_aligned", c_task_aligned, &mode,
                      NA * (sizeof(int64_t) + sizeof(float))) >= 1);
  for (int batch = 0; batch < 2; batch++)
    assert_true(sweep(batch ? "simota_batch" : "simota", c_simota, &batch,
                      6 * (sizeof(int64_t) + sizeof(float))) >= 1);
}

static void losses_report_allocation_failure(void **state) {
  (void)state;
  for (int w = 0; w < 4; w++) sweep("losses", c_losses, &w, (1 + 4 * NA) * sizeof(float));
}

static void detector_losses_and_eval_report_allocation_failure(void **state) {
  (void)state;
  for (int retina = 0; retina < 2; retina++)
    assert_true(sweep(retina ? "retina_loss" : "rpn_loss", c_heads, &retina,
                      sizeof(detloss_head_result) + 14 * NGRID * sizeof(float)) >= 1);
  assert_true(sweep("fcos_loss", c_fcos, NULL,
                    sizeof(detloss_fcos_result) + 16 * FCOS_P * sizeof(float) +
                        2 * FCOS_P * sizeof(int64_t)) >= 1);
  assert_true(sweep("yolov8_loss", c_yolov8, NULL, Y8_OUT) >= 1);
  assert_true(sweep("anchor_eval", c_eval, NULL,
                    sizeof(detloss_eval_report) + NG * sizeof(detloss_eval_gt)) >= 1);
}

static void json_layer_reports_allocation_failure(void **state) {
  (void)state;
  static const char cases[] =
      "[{\"op\": \"iou\", \"kind\": \"giou\", \"boxes1\": [[0,0,2,2],[1,1,3,3]], \"boxes2\": "
      "[[0,0,1,1]]},"
      " {\"op\": \"match\", \"anchors\": [[0,0,2,2],[1,1,3,3]], \"gt\": [[0,0,2,2]]},"
      " {\"op\": \"loss\", \"loss\": \"sigmoid_focal\", \"input\": [0.5, -1], \"target\": [1, "
      "0], "
      "\"grad\": true}]";
  long n = sweep("compute_json", c_json, (void *)cases, 512);
  assert_true(n > 10); /* cJSON's tree, the tensors, the output text */
  sweep("config_parse", c_config, NULL, sizeof(size_t));
  sweep("dataset_parse", c_dataset, NULL, 8 + 8 * sizeof(float));
}

/* Hungarian matching: 2 images x 6 queries x 4 logits, 3 and 0 gts (Q > G:
 * the transposed copy is allocated too). */
static const float HL[2 * 6 * 4] = {0, 1, 2, 3, 1, 0, 2, 1, 3, 2, 1, 0, 0, 0, 1, 1,
                                    2, 2, 0, 1, 1, 3, 0, 2, 1, 1, 1, 1, 0, 2, 0, 2,
                                    3, 0, 0, 1, 2, 1, 0, 0, 1, 2, 3, 0, 0, 0, 2, 2};
static float HB[2 * 6 * 4];
static const float HG[3 * 4] = {0.3f, 0.3f, 0.2f, 0.2f, 0.6f, 0.5f,
                                0.3f, 0.1f, 0.5f, 0.5f, 0.4f, 0.4f};
static const int64_t HLAB[3] = {0, 2, 1};

static detloss_status c_lsa(void *ctx, unsigned char *out, detloss_error *err) {
  (void)ctx;
  static const double cost[12] = {1, 1, 2, 1, 1, 2, 0, 5, 5, 3, 0, 0};
  int64_t *o = (int64_t *)(void *)out;
  return detloss_linear_sum_assignment(cost, 4, 3, o, o + 3, err);
}
static detloss_status c_hungarian(void *ctx, unsigned char *out, detloss_error *err) {
  int64_t *o = (int64_t *)(void *)out;
  if (ctx) {
    const size_t counts[2] = {3, 0};
    return detloss_hungarian_match_batch(2, 6, 4, HL, HB, HG, HLAB, counts, o, o + 3, NULL, err);
  }
  return detloss_hungarian_match(HL, 6, 4, HB, HG, HLAB, 3, o, o + 3, (double *)(void *)(o + 6),
                                 (double *)(void *)(o + 7), NULL, err);
}

/* DETR's loss on the Hungarian inputs above (3 and 0 gts), softmax and focal,
 * on 1 and 2 threads: the per-image scratch, the matcher's, the partials. */
static detloss_status c_detr(void *ctx, unsigned char *out, detloss_error *err) {
  int mode = *(int *)ctx;
  detloss_detr_result *res = (detloss_detr_result *)(void *)out;
  float *g = (float *)(void *)(res + 1);
  int64_t *m = (int64_t *)(void *)(g + 96);
  detloss_detr_image im[2];
  memset(im, 0, sizeof im);
  for (int b = 0; b < 2; b++) {
    im[b].pred_logits = HL + 24 * b;
    im[b].pred_boxes = HB + 24 * b;
    im[b].boxes = b ? NULL : HG;
    im[b].labels = b ? NULL : HLAB;
    im[b].num_gt = b ? 0 : 3;
    im[b].grad_pred_logits = g + 24 * b;
    im[b].grad_pred_boxes = g + 48 + 24 * b;
    im[b].matches = m + 6 * b;
  }
  detloss_detr_options o =
      (mode & 1) ? detloss_detr_options_focal() : detloss_detr_options_default();
  o.num_threads = (mode & 2) ? 2 : 1;
  return detloss_detr_loss(im, 2, 6, 4, res, &o, err);
}

static void hungarian_matching_reports_allocation_failure(void **state) {
  (void)state;
  for (int i = 0; i < 12; i++) {
    HB[4 * i] = 0.1f + 0.07f * (float)i;
    HB[4 * i + 1] = 0.8f - 0.05f * (float)i;
    HB[4 * i + 2] = 0.1f + 0.02f * (float)i;
    HB[4 * i + 3] = 0.3f - 0.01f * (float)i;
  }
  assert_true(sweep("linear_sum_assignment", c_lsa, NULL, 6 * sizeof(int64_t)) >= 1);
  assert_true(sweep("hungarian_match", c_hungarian, NULL, 7 * 8 + 18 * sizeof(double)) >= 1);
  int batch = 1;
  assert_true(sweep("hungarian_match_batch", c_hungarian, &batch, 6 * sizeof(int64_t)) >= 1);
  static const char cases[] =
      "[{\"op\": \"assign\", \"method\": \"hungarian\", \"logits\": [[0, 1], [1, 0], [2, 2]], "
      "\"pred_boxes\": [[0.5, 0.5, 0.2, 0.2], [0.4, 0.4, 0.1, 0.3], [0.3, 0.6, 0.2, 0.1]], "
      "\"gt\": [[0.5, 0.5, 0.2, 0.2]], \"gt_labels\": [0]},"
      " {\"op\": \"assign\", \"method\": \"hungarian\", \"cost\": [[1, 2], [0, 3]], "
      "\"gt_labels\": [0, 1]}]";
  assert_true(sweep("compute_json_assign", c_json, (void *)cases, 1024) > 10);
  for (int mode = 0; mode < 4; mode++)
    assert_true(sweep("detr_loss", c_detr, &mode,
                      sizeof(detloss_detr_result) + 96 * sizeof(float) + 12 * sizeof(int64_t)) >=
                3);
}

/* ATSS on the grid's anchors (one level, then split as two), per image on 2 threads and
 * batched over 2 images (gts split 7 + 6), with one ignore box (mmdet). */
static detloss_status c_atss(void *ctx, unsigned char *out, detloss_error *err) {
  int mode = *(int *)ctx;
  detloss_atss_options o = detloss_atss_options_default();
  o.num_threads = 2;
  o.ignore_iof_thr = 0.5f;
  int64_t *m = (int64_t *)(void *)out;
  float *iou = (float *)(void *)(m + 2 * NGRID);
  const size_t one[1] = {NGRID}, two[2] = {NGRID / 2, NGRID - NGRID / 2};
  const float ign[4] = {10, 10, 60, 60};
  if (mode < 2)
    return detloss_atss_assign(GRID, NGRID, mode ? two : one, mode ? 2 : 1, GT, NG, ign, 1, m, iou,
                               &o, err);
  const size_t gc[2] = {7, NG - 7}, ic[2] = {1, 0};
  return detloss_atss_assign_batch(2, GRID, NGRID, one, 1, GT, gc, ign, ic, m, iou, &o, err);
}

/* FCOS targets on the grid's anchor centres as points (two levels), per image on 2 threads
 * (with and without centre sampling) and batched over 2 images. */
static detloss_status c_fcos_targets(void *ctx, unsigned char *out, detloss_error *err) {
  int mode = *(int *)ctx;
  static float pts[NGRID_MAX * 2];
  for (size_t a = 0; a < NGRID; a++) {
    pts[2 * a] = 0.5f * (GRID[4 * a] + GRID[4 * a + 2]);
    pts[2 * a + 1] = 0.5f * (GRID[4 * a + 1] + GRID[4 * a + 3]);
  }
  detloss_fcos_options o = detloss_fcos_options_default();
  const float rr[4] = {-1, 40, 40, 1e8f}, st[2] = {16, 16};
  o.regress_ranges = rr;
  o.num_threads = 2;
  o.center_sampling = mode == 1;
  const size_t lc[2] = {NGRID / 2, NGRID - NGRID / 2};
  int64_t *m = (int64_t *)(void *)out;
  float *bt = (float *)(void *)(m + 2 * NGRID), *ctr = bt + 8 * NGRID;
  if (mode < 2) return detloss_fcos_targets(pts, NGRID, lc, st, 2, GT, NG, m, bt, ctr, &o, err);
  const size_t gc[2] = {7, NG - 7};
  return detloss_fcos_targets_batch(2, pts, NGRID, lc, st, 2, GT, gc, m, bt, ctr, &o, err);
}

/* detloss_anchor_eval_ex with ATSS (on the grid) and FCOS (on two point levels). */
static detloss_status c_eval_ex(void *ctx, unsigned char *out, detloss_error *err) {
  int fcos = *(int *)ctx;
  const float hw[4] = {400, 420, 380, 400};
  const size_t start[3] = {0, 7, NG};
  detloss_eval_dataset ds = {2, hw, start, GT, NULL};
  detloss_eval_anchors src = {&CFG, NULL, 0, NULL, 0};
  detloss_eval_assigner as = detloss_eval_assigner_default();
  as.method = fcos ? DETLOSS_EVAL_METHOD_FCOS : DETLOSS_EVAL_METHOD_ATSS;
  as.num_point_levels = 2;
  as.point_strides[0] = 16;
  as.point_strides[1] = 32;
  const float rr[4] = {-1, 40, 40, 1e8f};
  memcpy(as.regress_ranges, rr, sizeof rr);
  as.num_ranges = 2;
  detloss_eval_options o = detloss_eval_options_default();
  o.num_threads = 2;
  detloss_eval_report *rep = (detloss_eval_report *)(void *)out;
  return detloss_anchor_eval_ex(&ds, &src, &as, (detloss_eval_gt *)(void *)(rep + 1), rep, &o, err);
}

static void atss_and_fcos_report_allocation_failure(void **state) {
  (void)state;
  assert_true(NGRID <= NGRID_MAX);
  for (int mode = 0; mode < 3; mode++)
    assert_true(sweep(mode == 2 ? "atss_batch" : "atss", c_atss, &mode,
                      2 * NGRID * (sizeof(int64_t) + sizeof(float))) >= 1);
  for (int mode = 0; mode < 3; mode++)
    assert_true(sweep(mode == 2 ? "fcos_batch" : "fcos", c_fcos_targets, &mode,
                      2 * NGRID * (sizeof(int64_t) + 5 * sizeof(float))) >= 1);
  for (int fcos = 0; fcos < 2; fcos++)
    assert_true(sweep(fcos ? "anchor_eval_ex_fcos" : "anchor_eval_ex_atss", c_eval_ex, &fcos,
                      sizeof(detloss_eval_report) + NG * sizeof(detloss_eval_gt)) >= 1);
  static const char cases[] =
      "[{\"op\": \"assign\", \"method\": \"atss\", \"anchors\": [[0,0,10,10],[10,0,20,10],"
      "[0,10,10,20],[10,10,20,20]], \"level_counts\": [4], \"gt\": [[2,2,14,14]], "
      "\"gt_labels\": [0], \"topk\": 3},"
      " {\"op\": \"assign\", \"method\": \"fcos\", \"points\": [[8,8],[24,8],[8,24],[24,24]], "
      "\"level_counts\": [4], \"strides\": [16], \"regress_ranges\": [[-1, 20]], "
      "\"gt\": [[4,4,28,28],[0,0,64,64]], \"gt_labels\": [0, 1]}]";
  assert_true(sweep("compute_json_atss_fcos", c_json, (void *)cases, 1024) > 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hungarian_matching_reports_allocation_failure),
      cmocka_unit_test(geometry_and_matching_report_allocation_failure),
      cmocka_unit_test(losses_report_allocation_failure),
      cmocka_unit_test(detector_losses_and_eval_report_allocation_failure),
      cmocka_unit_test(json_layer_reports_allocation_failure),
      cmocka_unit_test(atss_and_fcos_report_allocation_failure),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
