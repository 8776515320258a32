/*
 * test_assign_simota.c - SimOTA (src/assign_simota.c): a hand-worked scene,
 * float64 torch references of the three variants on random scenes with ties
 * (tests/fixtures/simota/gen_simota.py), batch = per image, thread invariance,
 * the registry row, a 500-gt image, and bad input.
 */
#include "testutil.h"

#include <cjson/cJSON.h>

#include "assign.h"
#include "detloss/detloss.h"
#include "testjson.h"

/*
 * Hand-worked: one level, stride 10, priors (5,5), (15,5), (25,5); C = 2.
 * gt0 = gt1 = [0,0,20,10], labels 0 and 1. Centre (10,5), centre region
 * r*s = 25: [-15,35] x [-20,30] holds every prior. In-box: priors 0, 1 (prior 2
 * has x2 - x = -5). So all 3 are candidates; prior 2 is penalised (+1e5).
 * pred: [0,0,10,10] (IoU 100/200 = 0.5), [0,0,20,10] (IoU 1),
 * [10,0,30,10] (IoU 100/300 = 1/3). Dynamic k = trunc(1 + 0.5 + 1/3) = 1 for
 * both gts.
 * scores: p0 = p2 = (0.5, 0.5): BCE sum 2 ln 2 = 1.386294 for either label;
 * p1 = (0.8, 0.4): S = -ln 0.2 - ln 0.6 = 1.609438 + 0.510826 = 2.120264;
 *   label 0: S - L0(0) + L1(0) = 2.120264 - 1.609438 + 0.223144 = 0.733969
 *   label 1: S - L0(1) + L1(1) = 2.120264 - 0.510826 + 0.916291 = 2.525729.
 * Costs (iou weight 3, eps 1e-7): prior 0: 1.386294 + 3 ln 2 = 3.465736;
 * prior 1: 0.733969 (gt0) / 2.525729 (gt1) - 3e-7; prior 2: > 1e5.
 * Both gts take prior 1 (k = 1); the conflict goes to the lower cost: gt0.
 * gt1 ends with no positive (reference behaviour).
 */
static void hand_worked_conflict_goes_to_lowest_cost(void **state) {
  (void)state;
  const float points[] = {5, 5, 15, 5, 25, 5};
  const size_t lc[] = {3};
  const float strides[] = {10};
  const float scores[] = {0.5f, 0.5f, 0.8f, 0.4f, 0.5f, 0.5f};
  const float pred[] = {0, 0, 10, 10, 0, 0, 20, 10, 10, 0, 30, 10};
  const float gt[] = {0, 0, 20, 10, 0, 0, 20, 10};
  const int64_t labels[] = {0, 1};
  int64_t ag[3], al[3];
  float iou[3];
  detloss_error err;
  for (int sem = 0; sem < 2; sem++) {
    detloss_simota_options o = detloss_simota_options_for((detloss_simota_semantics)sem);
    assert_int_equal(detloss_assign_simota(points, 3, lc, strides, 1, scores, 2, pred, gt, labels,
                                           2, ag, al, iou, &o, &err),
                     DETLOSS_OK);
    assert_int_equal(ag[0], -1);
    assert_int_equal(ag[1], 0);
    assert_int_equal(ag[2], -1);
    assert_int_equal(al[0], -1);
    assert_int_equal(al[1], 0);
    assert_int_equal(al[2], -1);
    const double want[] = {0, 1, 0};
    dl_assert_close(iou, want, 3, 0, 1e-7);
  }
  /* yolox (radius 1.5: region [-5,25] x [-10,20]): prior 2 (x = 25) is outside
   * it, so only priors 0, 1 are candidates, both good; same result. */
  detloss_simota_options o = detloss_simota_options_for(DETLOSS_SIMOTA_YOLOX);
  assert_int_equal(detloss_assign_simota(points, 3, lc, strides, 1, scores, 2, pred, gt, labels, 2,
                                         ag, NULL, NULL, &o, &err),
                   DETLOSS_OK);
  assert_int_equal(ag[1], 0);
  assert_int_equal(ag[0], -1);
  assert_int_equal(ag[2], -1);
}

/* Clamped logs: p = 1 for a class that is not the gt's gives L0 = 100 (not
 * Inf); p = 0 for the gt's class gives L1 = 100. One prior, one gt: it takes
 * the prior whatever the class cost (k = 1, one candidate). */
static void clamped_logs_keep_costs_finite(void **state) {
  (void)state;
  const float points[] = {5, 5};
  const size_t lc[] = {1};
  const float strides[] = {8};
  const float scores[] = {0.0f, 1.0f};
  const float pred[] = {0, 0, 10, 10};
  const float gt[] = {0, 0, 10, 10};
  const int64_t labels[] = {0};
  int64_t ag[1];
  float iou[1];
  assert_int_equal(detloss_assign_simota(points, 1, lc, strides, 1, scores, 2, pred, gt, labels, 1,
                                         ag, NULL, iou, NULL, NULL),
                   DETLOSS_OK);
  assert_int_equal(ag[0], 0);
  dl_assert_close1(iou[0], 1.0, 0, 1e-7);
}

typedef struct fx_case {
  detloss_simota_options o;
  size_t A, C, G, L;
  float *points, *scores, *pred, *gt, *strides;
  size_t *lc;
  int64_t *labels, *want_gt;
  double *want_iou;
} fx_case;

static detloss_simota_semantics sem_of(const char *s) {
  if (strcmp(s, "yolox_0.3") == 0) return DETLOSS_SIMOTA_YOLOX_030;
  if (strcmp(s, "yolox") == 0) return DETLOSS_SIMOTA_YOLOX;
  return DETLOSS_SIMOTA_MMDET;
}

static void fx_read(const cJSON *c, fx_case *f) {
  f->o = detloss_simota_options_for(sem_of(cJSON_GetObjectItem(c, "semantics")->valuestring));
  f->o.center_radius = (float)cJSON_GetObjectItem(c, "center_radius")->valuedouble;
  f->o.candidate_topk = (int64_t)cJSON_GetObjectItem(c, "candidate_topk")->valuedouble;
  f->o.iou_weight = (float)cJSON_GetObjectItem(c, "iou_weight")->valuedouble;
  f->o.cls_weight = (float)cJSON_GetObjectItem(c, "cls_weight")->valuedouble;
  const cJSON *pts = cJSON_GetObjectItem(c, "points"), *sc = cJSON_GetObjectItem(c, "scores");
  const cJSON *gt = cJSON_GetObjectItem(c, "gt"), *lc = cJSON_GetObjectItem(c, "level_counts");
  f->A = (size_t)cJSON_GetArraySize(pts);
  f->G = (size_t)cJSON_GetArraySize(gt);
  f->L = (size_t)cJSON_GetArraySize(lc);
  f->C = f->A ? (size_t)cJSON_GetArraySize(cJSON_GetArrayItem(sc, 0)) : 0;
  f->points = malloc((2 * f->A + 1) * sizeof(float));
  f->scores = malloc((f->A * f->C + 1) * sizeof(float));
  f->pred = malloc((4 * f->A + 1) * sizeof(float));
  f->gt = malloc((4 * f->G + 1) * sizeof(float));
  f->strides = malloc((f->L + 1) * sizeof(float));
  f->lc = malloc((f->L + 1) * sizeof(size_t));
  f->labels = malloc((f->G + 1) * sizeof(int64_t));
  f->want_gt = malloc((f->A + 1) * sizeof(int64_t));
  f->want_iou = malloc((f->A + 1) * sizeof(double));
  dl_json_rows(pts, 2, f->points, NULL);
  dl_json_rows(sc, f->C, f->scores, NULL);
  dl_json_rows(cJSON_GetObjectItem(c, "pred_boxes"), 4, f->pred, NULL);
  dl_json_rows(gt, 4, f->gt, NULL);
  dl_json_rows(cJSON_GetObjectItem(c, "strides"), 0, f->strides, NULL);
  dl_json_rows(cJSON_GetObjectItem(c, "assigned_iou"), 0, NULL, f->want_iou);
  for (size_t l = 0; l < f->L; l++) f->lc[l] = (size_t)cJSON_GetArrayItem(lc, (int)l)->valuedouble;
  for (size_t g = 0; g < f->G; g++)
    f->labels[g] =
        (int64_t)cJSON_GetArrayItem(cJSON_GetObjectItem(c, "gt_labels"), (int)g)->valuedouble;
  for (size_t a = 0; a < f->A; a++)
    f->want_gt[a] =
        (int64_t)cJSON_GetArrayItem(cJSON_GetObjectItem(c, "assigned_gt"), (int)a)->valuedouble;
}

static void fx_free(fx_case *f) {
  free(f->points);
  free(f->scores);
  free(f->pred);
  free(f->gt);
  free(f->strides);
  free(f->lc);
  free(f->labels);
  free(f->want_gt);
  free(f->want_iou);
}

/* Assignments exactly equal to the float64 references; IoUs within 1e-6 (the
 * float32 rounding of a double IoU in [0, 1] is below 6e-8). Each scene also
 * runs with 1 and 2 threads, bitwise equal. */
static void matches_torch_references_of_every_variant(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("simota/simota_cases.json"));
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *cases = cJSON_GetObjectItem(root, "cases"), *c;
  size_t n = 0, pos = 0;
  cJSON_ArrayForEach(c, cases) {
    fx_case f;
    fx_read(c, &f);
    int64_t *ag = malloc((f.A + 1) * sizeof *ag), *al = malloc((f.A + 1) * sizeof *al);
    int64_t *ag2 = malloc((f.A + 1) * sizeof *ag2);
    float *iou = malloc((f.A + 1) * sizeof *iou), *iou2 = malloc((f.A + 1) * sizeof *iou2);
    detloss_error err;
    f.o.num_threads = 1;
    detloss_status st = detloss_assign_simota(f.points, f.A, f.lc, f.strides, f.L, f.scores, f.C,
                                              f.pred, f.gt, f.labels, f.G, ag, al, iou, &f.o, &err);
    if (st != DETLOSS_OK) print_error("case %zu: %s: %s\n", n, err.where, err.msg);
    assert_int_equal(st, DETLOSS_OK);
    for (size_t a = 0; a < f.A; a++) {
      if (ag[a] != f.want_gt[a]) {
        print_error("case %zu (%s): assigned_gt[%zu] = %lld, reference %lld\n", n,
                    cJSON_GetObjectItem(c, "semantics")->valuestring, a, (long long)ag[a],
                    (long long)f.want_gt[a]);
        fail();
      }
      assert_int_equal(al[a], ag[a] >= 0 ? f.labels[ag[a]] : -1);
      pos += ag[a] >= 0;
    }
    dl_assert_close(iou, f.want_iou, f.A, 0, 1e-6);
    f.o.num_threads = 2;
    assert_int_equal(detloss_assign_simota(f.points, f.A, f.lc, f.strides, f.L, f.scores, f.C,
                                           f.pred, f.gt, f.labels, f.G, ag2, NULL, iou2, &f.o,
                                           NULL),
                     DETLOSS_OK);
    assert_memory_equal(ag, ag2, f.A * sizeof *ag);
    dl_assert_bitwise_equal(iou, iou2, f.A);
    free(ag);
    free(al);
    free(ag2);
    free(iou);
    free(iou2);
    fx_free(&f);
    n++;
  }
  assert_int_equal(n, 72);
  assert_true(pos > 500);
  cJSON_Delete(root);
  free(text);
}

/* The batched call equals the per-image calls, for 1 and 2 threads (the
 * fixture scenes with their semantics' default options). */
static void batch_equals_single_images(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("simota/simota_cases.json"));
  cJSON *root = cJSON_Parse(text);
  const cJSON *cases = cJSON_GetObjectItem(root, "cases");
  enum { N = 12 };
  fx_case f[N];
  detloss_simota_image im[N];
  int64_t *single[N];
  float *siou[N];
  for (size_t i = 0; i < N; i++) {
    fx_read(cJSON_GetArrayItem(cases, (int)i), &f[i]);
    assert_int_equal(f[i].C, f[0].C == f[i].C ? f[i].C : f[i].C); /* C may differ: see below */
  }
  detloss_simota_options o = detloss_simota_options_default();
  for (int threads = 1; threads <= 2; threads++) {
    /* group by class count: num_classes is shared by a batch */
    for (size_t C = 1; C <= 8; C++) {
      size_t n = 0;
      for (size_t i = 0; i < N; i++) {
        if (f[i].C != C) continue;
        single[n] = malloc((f[i].A + 1) * sizeof(int64_t));
        siou[n] = malloc((f[i].A + 1) * sizeof(float));
        o.num_threads = 1;
        assert_int_equal(detloss_assign_simota(f[i].points, f[i].A, f[i].lc, f[i].strides, f[i].L,
                                               f[i].scores, C, f[i].pred, f[i].gt, f[i].labels,
                                               f[i].G, single[n], NULL, siou[n], &o, NULL),
                         DETLOSS_OK);
        detloss_simota_image x = {f[i].A,
                                  f[i].points,
                                  f[i].lc,
                                  f[i].scores,
                                  f[i].pred,
                                  f[i].G,
                                  f[i].gt,
                                  f[i].labels,
                                  malloc((f[i].A + 1) * sizeof(int64_t)),
                                  NULL,
                                  malloc((f[i].A + 1) * sizeof(float))};
        im[n++] = x;
      }
      if (n == 0) continue;
      o.num_threads = threads;
      assert_int_equal(detloss_assign_simota_batch(im, n, f[0].strides, f[0].L, C, &o, NULL),
                       DETLOSS_OK);
      for (size_t k = 0; k < n; k++) {
        assert_memory_equal(im[k].assigned_gt, single[k], im[k].num_points * sizeof(int64_t));
        dl_assert_bitwise_equal(im[k].assigned_iou, siou[k], im[k].num_points);
        free(im[k].assigned_gt);
        free(im[k].assigned_iou);
        free(single[k]);
        free(siou[k]);
      }
    }
  }
  for (size_t i = 0; i < N; i++) fx_free(&f[i]);
  cJSON_Delete(root);
  free(text);
}

/* The registry row "simota" runs the same assigner through dl_assign_input. */
static void registry_row_runs_simota(void **state) {
  (void)state;
  const dl_assigner *r = dl_assigner_find("simota");
  assert_non_null(r);
  assert_int_equal(r->options_size, sizeof(detloss_simota_options));
  detloss_simota_options o;
  r->options_default(&o);
  assert_int_equal(o.candidate_topk, 10);
  assert_int_equal(r->check_options(&o, "assigner", NULL), DETLOSS_OK);
  o.candidate_topk = 0;
  detloss_error err;
  assert_int_equal(r->check_options(&o, "assigner", &err), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "assigner.candidate_topk");
  const float points[] = {5, 5, 15, 5, 25, 5};
  const size_t lc[] = {3};
  const float strides[] = {10};
  const float scores[] = {0.5f, 0.5f, 0.8f, 0.4f, 0.5f, 0.5f};
  const float pred[] = {0, 0, 10, 10, 0, 0, 20, 10, 10, 0, 30, 10};
  const float gt[] = {0, 0, 20, 10, 0, 0, 20, 10};
  const int64_t labels[] = {0, 1};
  dl_assign_input in;
  memset(&in, 0, sizeof in);
  in.num_anchors = 3;
  in.points = points;
  in.level_counts = lc;
  in.level_stride = strides;
  in.num_levels = 1;
  in.num_gt = 2;
  in.gt = gt;
  in.gt_labels = labels;
  in.num_classes = 2;
  in.pred_scores = scores;
  in.pred_boxes = pred;
  int64_t ag[3], al[3];
  float q[3];
  dl_assign_result out = {.gt_index = ag, .labels = al, .quality = q};
  assert_int_equal(r->fn(&in, NULL, &out, NULL), DETLOSS_OK);
  assert_int_equal(ag[1], 0);
  assert_int_equal(ag[0], -1);
  assert_int_equal(al[1], 0);
  dl_assert_close1(q[1], 1.0, 0, 1e-7);
  in.points = NULL;
  assert_int_equal(r->fn(&in, NULL, &out, &err), DETLOSS_ERR_UNSUPPORTED);
  assert_string_equal(err.where, "points");
}

/* A crowded YOLOX image: 640 x 640 (8,400 priors), 80 classes, 500 gts. Its
 * scratch is O(A + G * topk) (about 0.4 MB here), where the reference's class
 * cost alone is 3 x G x A_valid x C floats; the result is the same for 1 and 2
 * threads and every gt with a positive took at most 10. */
static void crowded_image_of_500_gts(void **state) {
  (void)state;
  enum { A = 8400, C = 80, G = 500 };
  float *points = malloc(A * 2 * sizeof(float)), *pred = malloc(A * 4 * sizeof(float));
  float *scores = malloc((size_t)A * C * sizeof(float)), *gt = malloc(G * 4 * sizeof(float));
  int64_t *labels = malloc(G * sizeof(int64_t)), *ag1 = malloc(A * sizeof(int64_t));
  int64_t *ag2 = malloc(A * sizeof(int64_t));
  const size_t lc[] = {6400, 1600, 400};
  const float strides[] = {8, 16, 32};
  dl_rng rng = {7};
  size_t a = 0;
  for (size_t l = 0; l < 3; l++) {
    size_t n = 640 / (size_t)strides[l];
    for (size_t y = 0; y < n; y++)
      for (size_t x = 0; x < n; x++, a++) {
        float s = strides[l];
        points[2 * a] = ((float)x + 0.5f) * s;
        points[2 * a + 1] = ((float)y + 0.5f) * s;
        float w = s * (float)dl_rng_uniform(&rng, 1, 6), h = s * (float)dl_rng_uniform(&rng, 1, 6);
        pred[4 * a] = points[2 * a] - w / 2;
        pred[4 * a + 1] = points[2 * a + 1] - h / 2;
        pred[4 * a + 2] = points[2 * a] + w / 2;
        pred[4 * a + 3] = points[2 * a + 1] + h / 2;
      }
  }
  for (size_t i = 0; i < (size_t)A * C; i++) scores[i] = (float)dl_rng_uniform(&rng, 0, 0.3);
  for (size_t g = 0; g < G; g++) {
    float cx = (float)dl_rng_uniform(&rng, 10, 630), cy = (float)dl_rng_uniform(&rng, 10, 630);
    float w = (float)dl_rng_uniform(&rng, 4, 80), h = (float)dl_rng_uniform(&rng, 4, 80);
    gt[4 * g] = cx - w / 2;
    gt[4 * g + 1] = cy - h / 2;
    gt[4 * g + 2] = cx + w / 2;
    gt[4 * g + 3] = cy + h / 2;
    labels[g] = (int64_t)(dl_rng_u64(&rng) % C);
  }
  detloss_simota_options o = detloss_simota_options_default();
  o.num_threads = 1;
  assert_int_equal(detloss_assign_simota(points, A, lc, strides, 3, scores, C, pred, gt, labels, G,
                                         ag1, NULL, NULL, &o, NULL),
                   DETLOSS_OK);
  o.num_threads = 2;
  assert_int_equal(detloss_assign_simota(points, A, lc, strides, 3, scores, C, pred, gt, labels, G,
                                         ag2, NULL, NULL, &o, NULL),
                   DETLOSS_OK);
  assert_memory_equal(ag1, ag2, A * sizeof(int64_t));
  size_t *per = calloc(G, sizeof *per), pos = 0;
  for (size_t i = 0; i < A; i++)
    if (ag1[i] >= 0) {
      per[ag1[i]]++;
      pos++;
    }
  for (size_t g = 0; g < G; g++) assert_true(per[g] <= 10);
  assert_true(pos >= 250);
  free(per);
  free(points);
  free(pred);
  free(scores);
  free(gt);
  free(labels);
  free(ag1);
  free(ag2);
}

/* Bad input: every fault names its argument; outputs untouched. */
static void bad_input_is_named_and_outputs_untouched(void **state) {
  (void)state;
  const float points[] = {5, 5, 15, 5, 25, 5};
  size_t lc[] = {3};
  float strides[] = {10};
  float scores[] = {0.5f, 0.5f, 0.8f, 0.4f, 0.5f, 0.5f};
  const float pred[] = {0, 0, 10, 10, 0, 0, 20, 10, 10, 0, 30, 10};
  const float gt[] = {0, 0, 20, 10, 0, 0, 20, 10};
  int64_t labels[] = {0, 1};
  int64_t ag[3] = {7, 7, 7};
  detloss_error err;
  detloss_simota_options o = detloss_simota_options_default();
#define RUN()                                                                                      \
  detloss_assign_simota(points, 3, lc, strides, 1, scores, 2, pred, gt, labels, 2, ag, NULL, NULL, \
                        &o, &err)
  scores[3] = NAN;
  assert_int_equal(RUN(), DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "scores[1][1]");
  scores[3] = 1.5f;
  assert_int_equal(RUN(), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "scores[1][1]");
  scores[3] = -0.25f;
  assert_int_equal(RUN(), DETLOSS_ERR_RANGE);
  scores[3] = 0.4f;
  labels[1] = 2;
  assert_int_equal(RUN(), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "gt_labels[1]");
  labels[1] = -1;
  assert_int_equal(RUN(), DETLOSS_ERR_RANGE);
  labels[1] = 1;
  strides[0] = -8;
  assert_int_equal(RUN(), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "strides[0]");
  strides[0] = 10;
  lc[0] = 2;
  assert_int_equal(RUN(), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "level_counts");
  lc[0] = 3;
  o.candidate_topk = 0;
  assert_int_equal(RUN(), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "candidate_topk");
  o = detloss_simota_options_default();
  o.center_radius = -1;
  assert_int_equal(RUN(), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "center_radius");
  o = detloss_simota_options_default();
  o.semantics = (detloss_simota_semantics)3;
  assert_int_equal(RUN(), DETLOSS_ERR_RANGE);
  assert_string_equal(err.where, "semantics");
  o = detloss_simota_options_default();
  assert_int_equal(detloss_assign_simota(points, 3, lc, strides, 1, scores, 2, pred, gt, labels, 2,
                                         (int64_t *)(void *)scores, NULL, NULL, &o, &err),
                   DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "assigned_gt");
  assert_int_equal(detloss_assign_simota(points, 3, lc, strides, 1, NULL, 2, pred, gt, labels, 2,
                                         ag, NULL, NULL, &o, &err),
                   DETLOSS_ERR_NULL);
  assert_string_equal(err.where, "scores");
  for (int i = 0; i < 3; i++) assert_int_equal(ag[i], 7);
  /* batch: the image is named */
  scores[3] = NAN;
  detloss_simota_image im[2] = {{3, points, lc, scores, pred, 2, gt, labels, ag, NULL, NULL},
                                {3, points, lc, scores, pred, 2, gt, labels, ag, NULL, NULL}};
  assert_int_equal(detloss_assign_simota_batch(im, 1, strides, 1, 2, &o, &err),
                   DETLOSS_ERR_NONFINITE);
  assert_string_equal(err.where, "images[0].scores[1][1]");
  scores[3] = 0.4f;
  assert_int_equal(detloss_assign_simota_batch(im, 2, strides, 1, 2, &o, &err), DETLOSS_ERR_SHAPE);
  for (int i = 0; i < 3; i++) assert_int_equal(ag[i], 7);
  /* empty: G = 0 and A = 0 are not errors */
  assert_int_equal(detloss_assign_simota(points, 3, lc, strides, 1, scores, 2, pred, gt, labels, 0,
                                         ag, NULL, NULL, &o, &err),
                   DETLOSS_OK);
  for (int i = 0; i < 3; i++) assert_int_equal(ag[i], -1);
  size_t lc0[] = {0};
  assert_int_equal(detloss_assign_simota(NULL, 0, lc0, strides, 1, NULL, 2, NULL, gt, labels, 2,
                                         NULL, NULL, NULL, &o, &err),
                   DETLOSS_OK);
#undef RUN
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hand_worked_conflict_goes_to_lowest_cost),
      cmocka_unit_test(clamped_logs_keep_costs_finite),
      cmocka_unit_test(matches_torch_references_of_every_variant),
      cmocka_unit_test(batch_equals_single_images),
      cmocka_unit_test(registry_row_runs_simota),
      cmocka_unit_test(crowded_image_of_500_gts),
      cmocka_unit_test(bad_input_is_named_and_outputs_untouched),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
