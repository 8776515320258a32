/* test_assign_task_aligned.c - the task-aligned assigner (src/assign_task_aligned.c):
 * hand-worked cases for both semantics (arithmetic in the comments), the tie and
 * zero-fill rules, the cross-check against the float64 torch references of
 * ultralytics and TOOD/mmdet (tests/fixtures/task_aligned), errors, thread and
 * batch invariance, the grid and scattered search paths, and the assign
 * interface row. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "testjson.h"
#include "assign.h"
#include "detloss/detloss.h"

static detloss_task_aligned_options opts(int tood, int64_t topk, float alpha, float beta) {
  detloss_task_aligned_options o =
      tood ? detloss_task_aligned_options_tood() : detloss_task_aligned_options_default();
  o.topk = topk;
  o.alpha = alpha;
  o.beta = beta;
  return o;
}

static void defaults_are_the_published_ones(void **state) {
  (void)state;
  detloss_task_aligned_options u = detloss_task_aligned_options_default();
  /* ultralytics v8DetectionLoss: TaskAlignedAssigner(topk=10, alpha=0.5, beta=6.0) */
  assert_int_equal(u.semantics, DETLOSS_TASK_ALIGNED_ULTRALYTICS);
  assert_int_equal(u.topk, 10);
  assert_true(u.alpha == 0.5f && u.beta == 6.0f);
  /* TOOD config: TaskAlignedAssigner(topk=13), alpha 1, beta 6 */
  detloss_task_aligned_options t = detloss_task_aligned_options_tood();
  assert_int_equal(t.semantics, DETLOSS_TASK_ALIGNED_TOOD);
  assert_int_equal(t.topk, 13);
  assert_true(t.alpha == 1.0f && t.beta == 6.0f);
}

/* One gt [0,0,16,16] (class 0), three points inside it, every predicted box equal
 * to the gt. CIoU(gt, gt) = inter / (2 w h' - inter + 1e-7) with h' = h + 1e-7
 * (ultralytics adds eps to both heights; v = 0, rho = 0): 256 / (256 + 3.2e-6 + 1e-7)
 * = 1 - 1.3e-8. With alpha 0.5, beta 6: t = sqrt(s) * u^6 = sqrt(s) (1 - 7.7e-8):
 * s = 0.36, 0.64, 0.04 give t = 0.6, 0.8, 0.2. topk 2 takes points 1 and 0.
 * Target score = t * max u / (max t + 1e-9) = 0.6/0.8 = 0.75 and 1 (to ~1e-7). */
static void ultralytics_hand_worked_top2_of_three(void **state) {
  (void)state;
  const float pts[6] = {4, 4, 8, 8, 12, 12};
  const float sc[3] = {0.36f, 0.64f, 0.04f};
  const float pred[12] = {0, 0, 16, 16, 0, 0, 16, 16, 0, 0, 16, 16};
  const float gt[4] = {0, 0, 16, 16};
  const int64_t lab[1] = {0};
  int64_t ag[3], al[3];
  float ts[3], am[3];
  detloss_task_aligned_options o = opts(0, 2, 0.5f, 6.0f);
  assert_int_equal(detloss_assign_task_aligned(pts, 3, NULL, 0, sc, 1, pred, gt, lab, 1, ag, al, ts,
                                               am, &o, NULL),
                   DETLOSS_OK);
  assert_int_equal(ag[0], 0);
  assert_int_equal(ag[1], 0);
  assert_int_equal(ag[2], -1);
  assert_int_equal(al[0], 0);
  assert_int_equal(al[2], -1);
  const double ets[3] = {0.75, 1.0, 0.0}, eam[3] = {0.6, 0.8, 0.0};
  dl_assert_close(ts, ets, 3, 1e-6, 1e-9);
  dl_assert_close(am, eam, 3, 1e-6, 1e-9);
}

/* Four points inside one gt, all with the same t (same score, same box): topk 2
 * takes the two lowest indices (torch.topk's order is undefined; detloss's rule). */
static void a_tie_at_the_kth_place_goes_to_the_lowest_index(void **state) {
  (void)state;
  const float pts[8] = {4, 4, 12, 4, 4, 12, 12, 12};
  const float sc[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  float pred[16];
  for (int a = 0; a < 4; a++) {
    pred[4 * a] = 0;
    pred[4 * a + 1] = 0;
    pred[4 * a + 2] = 16;
    pred[4 * a + 3] = 16;
  }
  const float gt[4] = {0, 0, 16, 16};
  const int64_t lab[1] = {0};
  int64_t ag[4];
  for (int tood = 0; tood < 2; tood++) {
    detloss_task_aligned_options o = opts(tood, 2, 1.0f, 6.0f);
    assert_int_equal(detloss_assign_task_aligned(pts, 4, NULL, 0, sc, 1, pred, gt, lab, 1, ag, NULL,
                                                 NULL, NULL, &o, NULL),
                     DETLOSS_OK);
    assert_int_equal(ag[0], 0);
    assert_int_equal(ag[1], 0);
    assert_int_equal(ag[2], -1);
    assert_int_equal(ag[3], -1);
  }
}

/* ultralytics has no t > 0 filter. Points 0..5 on a row at x = 2, 6, ..., 22 (y = 4);
 * gt [4, 0, 13, 8] holds points 1 (x 6), 2 (x 10)... and point 5 is moved inside
 * too (x 12 -> it is [12,4]). Scores: only point 5 has s > 0, so t > 0 only there
 * (p = 1). topk 3: the top-3 over all 6 anchors is point 5, then the two
 * lowest-indexed t = 0 anchors, 0 and 1. Point 0 (x 2) is outside the gt, so the
 * positives are 1 (t = 0, target score 0) and 5; point 2 (inside, t = 0) is not
 * taken. TOOD (t > 0 filter) takes only point 5. */
static void ultralytics_fills_its_topk_with_the_lowest_zero_metric_anchors(void **state) {
  (void)state;
  const float pts[12] = {2, 4, 6, 4, 10, 4, 14, 4, 18, 4, 12, 4};
  const float sc[6] = {0, 0, 0, 0, 0, 0.81f};
  float pred[24];
  for (int a = 0; a < 6; a++) {
    pred[4 * a] = 4;
    pred[4 * a + 1] = 0;
    pred[4 * a + 2] = 13;
    pred[4 * a + 3] = 8;
  }
  const float gt[4] = {4, 0, 13, 8};
  const int64_t lab[1] = {0};
  int64_t ag[6];
  float ts[6];
  detloss_task_aligned_options o = opts(0, 3, 0.5f, 6.0f);
  assert_int_equal(detloss_assign_task_aligned(pts, 6, NULL, 0, sc, 1, pred, gt, lab, 1, ag, NULL,
                                               ts, NULL, &o, NULL),
                   DETLOSS_OK);
  const int64_t e[6] = {-1, 0, -1, -1, -1, 0};
  for (int a = 0; a < 6; a++) assert_int_equal(ag[a], e[a]);
  /* t5 = 0.9 * u^6 with u ~ 1: score = t5 * u / (t5 + 1e-9) ~ 1; t1 = 0: score 0 */
  const double ets[6] = {0, 0, 0, 0, 0, 1.0};
  dl_assert_close(ts, ets, 6, 1e-6, 1e-9);
  o = opts(1, 3, 0.5f, 6.0f);
  assert_int_equal(detloss_assign_task_aligned(pts, 6, NULL, 0, sc, 1, pred, gt, lab, 1, ag, NULL,
                                               NULL, NULL, &o, NULL),
                   DETLOSS_OK);
  const int64_t et[6] = {-1, -1, -1, -1, -1, 0};
  for (int a = 0; a < 6; a++) assert_int_equal(ag[a], et[a]);
}

/* reference-semantics-2 §4.3 worked values (ultralytics, topk 1, alpha 0.5, beta 6):
 * points (15,5), (25,5); gts g0 [10,0,20,10] c0, g1 [10,0,30,10] c1, g2 [0,0,30,10] c2;
 * CIoU(g, a) = [[0.3233, 0], [0.6415, 0.8980], [1.0, 0.5635]]; top-1: g0 -> a0
 * (t = sqrt(0.9) 0.3233^6 = 0.00108), g1 -> a0 (sqrt(0.9) 0.6415^6 = 0.0663 > 0.0524),
 * g2 -> a1 (sqrt(0.9) 0.5635^6 = 0.0304 > 0.001). a0 is contested by g0 and g1 and
 * goes to argmax over ALL gts of CIoU = g2 (1.0), although g2 did not take it.
 * Result [2, 2]; scores: a0 t(a0,g2) = sqrt(1e-6) * 1 = 0.001, a1 0.0304; pa = 0.0304,
 * po = 1.0 -> a0 0.001/0.0304 = 0.0329131, a1 0.99999995. TOOD would give a0 to g1. */
static void ultralytics_conflicts_go_to_the_argmax_over_all_gts(void **state) {
  (void)state;
  const float pts[4] = {15, 5, 25, 5};
  const float sc[6] = {0.9f, 0.9f, 1e-6f, 0.01f, 0.01f, 0.9f};
  const float pred[8] = {0, 0, 30, 10, 12, 0, 30, 10};
  const float gt[12] = {10, 0, 20, 10, 10, 0, 30, 10, 0, 0, 30, 10};
  const int64_t lab[3] = {0, 1, 2};
  int64_t ag[2];
  float ts[2];
  detloss_task_aligned_options o = opts(0, 1, 0.5f, 6.0f);
  assert_int_equal(detloss_assign_task_aligned(pts, 2, NULL, 0, sc, 3, pred, gt, lab, 3, ag, NULL,
                                               ts, NULL, &o, NULL),
                   DETLOSS_OK);
  assert_int_equal(ag[0], 2);
  assert_int_equal(ag[1], 2);
  const double ets[2] = {0.0329131, 0.99999995};
  dl_assert_close(ts, ets, 2, 1e-5, 1e-9);
}

/* TOOD: inside by more than 0.01 px. gt [0,0,10,10]; point 0 at x = 9.995 (r =
 * 0.005 <= 0.01: not positive), point 1 at x = 5 (inside). Both predicted boxes
 * equal the gt (IoU 1), s = 1: t = 1 for both; topk 13 takes both, only point 1
 * is positive; its score 1 / (1 + 1e-7) * 1. */
static void tood_needs_the_centre_inside_by_a_hundredth(void **state) {
  (void)state;
  const float pts[4] = {9.995f, 5, 5, 5};
  const float sc[2] = {1, 1};
  const float pred[8] = {0, 0, 10, 10, 0, 0, 10, 10};
  const float gt[4] = {0, 0, 10, 10};
  const int64_t lab[1] = {0};
  int64_t ag[2];
  float ts[2], am[2];
  detloss_task_aligned_options o = detloss_task_aligned_options_tood();
  assert_int_equal(detloss_assign_task_aligned(pts, 2, NULL, 0, sc, 1, pred, gt, lab, 1, ag, NULL,
                                               ts, am, &o, NULL),
                   DETLOSS_OK);
  assert_int_equal(ag[0], -1);
  assert_int_equal(ag[1], 0);
  const double ets[2] = {0, 1.0 / (1.0 + 1e-7)}, eam[2] = {0, 1};
  dl_assert_close(ts, ets, 2, 1e-7, 0);
  dl_assert_close(am, eam, 2, 1e-7, 0);
}

/* The fixtures: every case of tests/fixtures/task_aligned/task_aligned_cases.json;
 * assignments exactly, scores and metrics to float32 rounding. */
static void matches_the_float64_torch_references(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("task_aligned/task_aligned_cases.json"));
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *cases = cJSON_GetObjectItem(root, "cases"), *c;
  size_t ncase = 0, npos = 0;
  cJSON_ArrayForEach(c, cases) {
    const char *sem = cJSON_GetObjectItem(c, "semantics")->valuestring;
    size_t C = (size_t)cJSON_GetObjectItem(c, "num_classes")->valuedouble;
    const cJSON *jp = cJSON_GetObjectItem(c, "points");
    size_t A = (size_t)cJSON_GetArraySize(jp);
    size_t G = (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(c, "gt"));
    size_t L = (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(c, "level_counts"));
    float *pts = malloc(A * 2 * sizeof *pts), *sc = malloc(A * C * sizeof *sc);
    float *pred = malloc(A * 4 * sizeof *pred), *gt = malloc((G + 1) * 4 * sizeof *gt);
    int64_t *lab = malloc((G + 1) * sizeof *lab), *ag = malloc(A * sizeof *ag);
    size_t *lc = malloc(L * sizeof *lc);
    float *ts = malloc(A * sizeof *ts), *am = malloc(A * sizeof *am);
    double *lab_d = malloc((G + 1) * sizeof *lab_d), *lc_d = malloc(L * sizeof *lc_d);
    double *ets = malloc(A * sizeof *ets), *eam = malloc(A * sizeof *eam);
    double *eag = malloc(A * sizeof *eag);
    dl_json_rows(jp, 2, pts, NULL);
    const cJSON *row;
    size_t a = 0;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(c, "scores")) {
      dl_json_rows(row, 0, sc + a * C, NULL);
      a++;
    }
    dl_json_rows(cJSON_GetObjectItem(c, "pred_boxes"), 4, pred, NULL);
    dl_json_rows(cJSON_GetObjectItem(c, "gt"), 4, gt, NULL);
    dl_json_rows(cJSON_GetObjectItem(c, "gt_labels"), 0, NULL, lab_d);
    dl_json_rows(cJSON_GetObjectItem(c, "level_counts"), 0, NULL, lc_d);
    for (size_t g = 0; g < G; g++) lab[g] = (int64_t)lab_d[g];
    for (size_t l = 0; l < L; l++) lc[l] = (size_t)lc_d[l];
    const cJSON *ex = cJSON_GetObjectItem(c, "expect");
    dl_json_rows(cJSON_GetObjectItem(ex, "assigned_gt"), 0, NULL, eag);
    dl_json_rows(cJSON_GetObjectItem(ex, "target_scores"), 0, NULL, ets);
    dl_json_rows(cJSON_GetObjectItem(ex, "align_metrics"), 0, NULL, eam);
    detloss_task_aligned_options o =
        opts(strcmp(sem, "tood") == 0, (int64_t)cJSON_GetObjectItem(c, "topk")->valuedouble,
             (float)cJSON_GetObjectItem(c, "alpha")->valuedouble,
             (float)cJSON_GetObjectItem(c, "beta")->valuedouble);
    detloss_error err;
    detloss_status st = detloss_assign_task_aligned(pts, A, lc, L, sc, C, pred, gt, lab, G, ag,
                                                    NULL, ts, am, &o, &err);
    if (st != DETLOSS_OK) print_error("case %zu: %s: %s\n", ncase, err.where, err.msg);
    assert_int_equal(st, DETLOSS_OK);
    for (a = 0; a < A; a++) {
      if (ag[a] != (int64_t)eag[a])
        print_error("case %zu (%s %s) anchor %zu: gt %lld, expected %lld\n", ncase, sem,
                    cJSON_GetObjectItem(c, "mode")->valuestring, a, (long long)ag[a],
                    (long long)eag[a]);
      assert_int_equal(ag[a], (int64_t)eag[a]);
      npos += ag[a] >= 0;
    }
    dl_assert_close(ts, ets, A, 2e-6, 1e-12);
    dl_assert_close(am, eam, A, 2e-6, 1e-30);
    free(pts), free(sc), free(pred), free(gt), free(lab), free(ag), free(lc), free(ts), free(am);
    free(lab_d), free(lc_d), free(ets), free(eam), free(eag);
    ncase++;
  }
  assert_true(ncase >= 40);
  assert_true(npos >= 500);
  cJSON_Delete(root);
  free(text);
}

/* A random YOLOv8-like image: a 160 x 192 grid at strides 8/16/32, C classes, G gts. */
typedef struct scene {
  size_t A, C, G, lc[3];
  float *pts, *sc, *pred, *gt;
  int64_t *lab;
} scene;

static void make_scene(scene *s, size_t C, size_t G, uint64_t seed) {
  dl_rng r = {seed};
  const size_t H = 160, W = 192, st[3] = {8, 16, 32};
  s->A = 0;
  for (int l = 0; l < 3; l++) {
    s->lc[l] = (H / st[l]) * (W / st[l]);
    s->A += s->lc[l];
  }
  s->C = C;
  s->G = G;
  s->pts = malloc(s->A * 2 * sizeof(float));
  s->sc = malloc(s->A * C * sizeof(float));
  s->pred = malloc(s->A * 4 * sizeof(float));
  s->gt = malloc((G + 1) * 4 * sizeof(float));
  s->lab = malloc((G + 1) * sizeof(int64_t));
  size_t a = 0;
  for (int l = 0; l < 3; l++)
    for (size_t i = 0; i < H / st[l]; i++)
      for (size_t j = 0; j < W / st[l]; j++, a++) {
        s->pts[2 * a] = ((float)j + 0.5f) * (float)st[l];
        s->pts[2 * a + 1] = ((float)i + 0.5f) * (float)st[l];
        float w = (float)dl_rng_uniform(&r, 4, 60), h = (float)dl_rng_uniform(&r, 4, 60);
        float cx = s->pts[2 * a] + (float)dl_rng_uniform(&r, -6, 6);
        float cy = s->pts[2 * a + 1] + (float)dl_rng_uniform(&r, -6, 6);
        s->pred[4 * a] = cx - w / 2;
        s->pred[4 * a + 1] = cy - h / 2;
        s->pred[4 * a + 2] = cx + w / 2;
        s->pred[4 * a + 3] = cy + h / 2;
      }
  for (size_t k = 0; k < s->A * C; k++) s->sc[k] = (float)dl_rng_uniform(&r, 0, 1);
  for (size_t g = 0; g < G; g++) {
    float w = (float)dl_rng_uniform(&r, 4, 100), h = (float)dl_rng_uniform(&r, 4, 100);
    float x = (float)dl_rng_uniform(&r, 0, (double)W - 4),
          y = (float)dl_rng_uniform(&r, 0, (double)H - 4);
    s->gt[4 * g] = x;
    s->gt[4 * g + 1] = y;
    s->gt[4 * g + 2] = x + w;
    s->gt[4 * g + 3] = y + h;
    s->lab[g] = (int64_t)(dl_rng_u64(&r) % C);
  }
}

static void free_scene(scene *s) {
  free(s->pts), free(s->sc), free(s->pred), free(s->gt), free(s->lab);
}

typedef struct outs {
  int64_t *ag, *al;
  float *ts, *am;
} outs;
static void alloc_outs(outs *o, size_t A) {
  o->ag = malloc(A * sizeof(int64_t));
  o->al = malloc(A * sizeof(int64_t));
  o->ts = malloc(A * sizeof(float));
  o->am = malloc(A * sizeof(float));
}
static void free_outs(outs *o) { free(o->ag), free(o->al), free(o->ts), free(o->am); }
static void assert_outs_equal(const outs *x, const outs *y, size_t A) {
  assert_memory_equal(x->ag, y->ag, A * sizeof(int64_t));
  assert_memory_equal(x->al, y->al, A * sizeof(int64_t));
  dl_assert_bitwise_equal(x->ts, y->ts, A);
  dl_assert_bitwise_equal(x->am, y->am, A);
}

/* 1, 2 and 3 threads, the batch of three images against the per-image calls, and
 * the grid search against the x-sorted one (the same points as one scattered
 * level: level_counts [A] is not a grid), for both semantics: bitwise equal. */
static void threads_batch_and_search_paths_give_the_same_bits(void **state) {
  (void)state;
  scene s[3];
  for (int i = 0; i < 3; i++) make_scene(&s[i], 7, (size_t)(10 + 20 * i), 100 + (uint64_t)i);
  size_t A = s[0].A;
  for (int tood = 0; tood < 2; tood++) {
    detloss_task_aligned_options o =
        tood ? detloss_task_aligned_options_tood() : detloss_task_aligned_options_default();
    outs ref[3], x;
    alloc_outs(&x, A);
    size_t npos = 0;
    for (int i = 0; i < 3; i++) {
      alloc_outs(&ref[i], A);
      o.num_threads = 1;
      assert_int_equal(detloss_assign_task_aligned(s[i].pts, A, s[i].lc, 3, s[i].sc, 7, s[i].pred,
                                                   s[i].gt, s[i].lab, s[i].G, ref[i].ag, ref[i].al,
                                                   ref[i].ts, ref[i].am, &o, NULL),
                       DETLOSS_OK);
      for (size_t a = 0; a < A; a++) npos += ref[i].ag[a] >= 0;
      for (int t = 2; t <= 3; t++) {
        o.num_threads = t;
        assert_int_equal(detloss_assign_task_aligned(s[i].pts, A, s[i].lc, 3, s[i].sc, 7, s[i].pred,
                                                     s[i].gt, s[i].lab, s[i].G, x.ag, x.al, x.ts,
                                                     x.am, &o, NULL),
                         DETLOSS_OK);
        assert_outs_equal(&ref[i], &x, A);
      }
      size_t one = A;
      o.num_threads = 2;
      assert_int_equal(detloss_assign_task_aligned(s[i].pts, A, &one, 1, s[i].sc, 7, s[i].pred,
                                                   s[i].gt, s[i].lab, s[i].G, x.ag, x.al, x.ts,
                                                   x.am, &o, NULL),
                       DETLOSS_OK);
      assert_outs_equal(&ref[i], &x, A);
    }
    assert_true(npos > 100);
    outs b[3];
    detloss_task_aligned_image im[3];
    for (int i = 0; i < 3; i++) {
      alloc_outs(&b[i], A);
      detloss_task_aligned_image t = {A,         s[i].pts, s[i].lc, 3,        s[i].sc,
                                      s[i].pred, s[i].G,   s[i].gt, s[i].lab, b[i].ag,
                                      b[i].al,   b[i].ts,  b[i].am};
      im[i] = t;
    }
    for (int t = 1; t <= 3; t++) {
      o.num_threads = t;
      assert_int_equal(detloss_assign_task_aligned_batch(im, 3, 7, &o, NULL), DETLOSS_OK);
      for (int i = 0; i < 3; i++) assert_outs_equal(&ref[i], &b[i], A);
    }
    for (int i = 0; i < 3; i++) free_outs(&ref[i]), free_outs(&b[i]);
    free_outs(&x);
  }
  for (int i = 0; i < 3; i++) free_scene(&s[i]);
}

/* G = 0, A = 0: all background, no error; topk > A uses A. */
static void empty_inputs_give_background(void **state) {
  (void)state;
  const float pts[2] = {1, 1}, sc[2] = {0.5f, 0.5f}, pred[4] = {0, 0, 2, 2};
  int64_t ag[1] = {7}, al[1] = {7};
  float ts[1] = {7}, am[1] = {7};
  assert_int_equal(detloss_assign_task_aligned(pts, 1, NULL, 0, sc, 2, pred, NULL, NULL, 0, ag, al,
                                               ts, am, NULL, NULL),
                   DETLOSS_OK);
  assert_int_equal(ag[0], -1);
  assert_int_equal(al[0], -1);
  assert_true(ts[0] == 0.0f && am[0] == 0.0f);
  const float gt[4] = {0, 0, 2, 2};
  const int64_t lab[1] = {1};
  assert_int_equal(detloss_assign_task_aligned(NULL, 0, NULL, 0, NULL, 2, NULL, gt, lab, 1, NULL,
                                               NULL, NULL, NULL, NULL, NULL),
                   DETLOSS_OK);
  /* topk 10 > A = 1: the one point inside is positive */
  assert_int_equal(detloss_assign_task_aligned(pts, 1, NULL, 0, sc, 2, pred, gt, lab, 1, ag, al, ts,
                                               am, NULL, NULL),
                   DETLOSS_OK);
  assert_int_equal(ag[0], 0);
  assert_int_equal(al[0], 1);
}

static void expect_error(detloss_status got, const detloss_error *err, detloss_status st,
                         const char *where) {
  assert_int_equal(got, st);
  assert_string_equal(err->where, where);
}

static void errors_name_the_argument_and_leave_the_outputs_untouched(void **state) {
  (void)state;
  float pts[4] = {4, 4, 8, 8}, sc[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  float pred[8] = {0, 0, 10, 10, 0, 0, 10, 10}, gt[8] = {0, 0, 10, 10, 2, 2, 9, 9};
  int64_t lab[2] = {0, 1}, ag[2] = {5, 5};
  float ts[2] = {5, 5};
  size_t lc[2] = {1, 2};
  detloss_error err;
  detloss_task_aligned_options o = detloss_task_aligned_options_default();
#define CALL(LC, L, OPT)                                                                           \
  detloss_assign_task_aligned(pts, 2, LC, L, sc, 2, pred, gt, lab, 2, ag, NULL, ts, NULL, OPT, &err)
  sc[3] = NAN;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_NONFINITE, "scores[3]");
  sc[3] = 1.5f;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_RANGE, "scores[3]");
  sc[3] = -0.0f;
  expect_error(CALL(lc, 2, &o), &err, DETLOSS_ERR_SHAPE, "level_counts");
  lab[1] = 2;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_RANGE, "gt_labels[1]");
  lab[1] = -1;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_RANGE, "gt_labels[1]");
  lab[1] = 1;
  pred[5] = INFINITY;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_NONFINITE, "pred_boxes[1]");
  pred[5] = 0;
  gt[6] = NAN;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_NONFINITE, "gt[1]");
  gt[6] = 9;
  pts[1] = NAN;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_NONFINITE, "points[0]");
  pts[1] = 4;
  o.topk = 0;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_RANGE, "topk");
  o = detloss_task_aligned_options_default();
  o.alpha = -1;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_RANGE, "alpha");
  o = detloss_task_aligned_options_default();
  o.beta = 0;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_RANGE, "beta");
  o = detloss_task_aligned_options_default();
  o.semantics = (detloss_task_aligned_semantics)7;
  expect_error(CALL(NULL, 0, &o), &err, DETLOSS_ERR_RANGE, "semantics");
  expect_error(detloss_assign_task_aligned(pts, 2, NULL, 0, sc, 2, pred, gt, lab, 2, ag, NULL,
                                           (float *)(void *)ag, NULL, NULL, &err),
               &err, DETLOSS_ERR_SHAPE, "target_scores");
  expect_error(detloss_assign_task_aligned(pts, 2, NULL, 0, sc, 0, pred, gt, lab, 2, ag, NULL, ts,
                                           NULL, NULL, &err),
               &err, DETLOSS_ERR_SHAPE, "num_classes");
#undef CALL
  assert_int_equal(ag[0], 5);
  assert_int_equal(ag[1], 5);
  assert_true(ts[0] == 5.0f && ts[1] == 5.0f);
  /* batch: the second image's fault, named with its index, nothing written */
  int64_t ag0[2] = {5, 5};
  sc[2] = NAN;
  detloss_task_aligned_image im[2] = {
      {2, pts, NULL, 0, sc, pred, 2, gt, lab, ag0, NULL, NULL, NULL},
      {2, pts, NULL, 0, sc, pred, 2, gt, lab, ag, NULL, NULL, NULL},
  };
  sc[2] = 0.5f;
  float sc2[4] = {0.5f, 0.5f, NAN, 0.5f};
  im[1].scores = sc2;
  expect_error(detloss_assign_task_aligned_batch(im, 2, 2, NULL, &err), &err, DETLOSS_ERR_NONFINITE,
               "images[1].scores[2]");
  assert_int_equal(ag0[0], 5);
}

/* The assign interface: row "task_aligned", anchors through their centres. */
static void the_registry_row_runs_the_assigner_on_anchor_centres(void **state) {
  (void)state;
  const dl_assigner *r = dl_assigner_find("task_aligned");
  assert_non_null(r);
  assert_string_equal(r->options_type, "detloss_task_aligned_options");
  detloss_task_aligned_options o;
  r->options_default(&o);
  assert_int_equal(o.topk, 10);
  /* anchors [0,0,8,8] and [8,8,16,16]: centres (4,4), (12,12), as in the hand case */
  const float anchors[8] = {0, 0, 8, 8, 8, 8, 16, 16}, pts[4] = {4, 4, 12, 12};
  const float sc[2] = {0.36f, 0.64f}, pred[8] = {0, 0, 16, 16, 0, 0, 16, 16};
  const float gt[4] = {0, 0, 16, 16};
  const int64_t lab[1] = {0};
  dl_assign_input in;
  memset(&in, 0, sizeof in);
  in.num_anchors = 2;
  in.anchors = anchors;
  in.num_gt = 1;
  in.gt = gt;
  in.gt_labels = lab;
  in.num_classes = 1;
  in.pred_scores = sc;
  in.pred_boxes = pred;
  int64_t ag[2], al[2], ag2[2];
  float q[2], ts[2], am[2], ts2[2];
  dl_assign_result out = {.gt_index = ag,
                          .labels = al,
                          .quality = q,
                          .target_scores = ts,
                          .align_metrics = am};
  assert_int_equal(r->fn(&in, NULL, &out, NULL), DETLOSS_OK);
  assert_int_equal(detloss_assign_task_aligned(pts, 2, NULL, 0, sc, 1, pred, gt, lab, 1, ag2, NULL,
                                               ts2, NULL, NULL, NULL),
                   DETLOSS_OK);
  assert_memory_equal(ag, ag2, sizeof ag);
  dl_assert_bitwise_equal(ts, ts2, 2);
  assert_int_equal(al[1], 0);
  /* overlap with the assigned gt: CIoU ~ 1 */
  const double eq[2] = {1, 1};
  dl_assert_close(q, eq, 2, 1e-6, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_are_the_published_ones),
      cmocka_unit_test(ultralytics_hand_worked_top2_of_three),
      cmocka_unit_test(a_tie_at_the_kth_place_goes_to_the_lowest_index),
      cmocka_unit_test(ultralytics_fills_its_topk_with_the_lowest_zero_metric_anchors),
      cmocka_unit_test(ultralytics_conflicts_go_to_the_argmax_over_all_gts),
      cmocka_unit_test(tood_needs_the_centre_inside_by_a_hundredth),
      cmocka_unit_test(matches_the_float64_torch_references),
      cmocka_unit_test(threads_batch_and_search_paths_give_the_same_bits),
      cmocka_unit_test(empty_inputs_give_background),
      cmocka_unit_test(errors_name_the_argument_and_leave_the_outputs_untouched),
      cmocka_unit_test(the_registry_row_runs_the_assigner_on_anchor_centres),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
