/*
 * test_anchor_eval.c - detloss_anchor_eval(): anchor-set coverage of a data set.
 *
 * Independent references used here:
 *   - hand-worked cases (arithmetic in the comments);
 *   - brute force on materialized anchors: detloss_anchors_generate() +
 *     detloss_iou_matrix() (torchvision box_iou bit for bit, tested in
 *     test_box_iou.c) + detloss_match() (torchvision Matcher, test_match.c);
 *   - tests/fixtures/anchor_eval/coco_subset_expected.json, produced by
 *     gen_anchor_eval.py with torchvision 0.14.1 (GeneralizedRCNNTransform
 *     resize, AnchorGenerator.grid_anchors, box_iou, Matcher; YOLOv5's
 *     autoanchor metric in torch) on the bundled data set, under
 *     configs/torchvision_fasterrcnn_fpn_rpn.json and configs/yolov5_autoanchor.json.
 */
#include <cjson/cJSON.h>

#include "detloss/detloss.h"
#include "detloss/detloss_json.h"
#include "testutil.h"

#define SRC_DIR DETLOSS_FIXTURE_DIR "/../.."

typedef struct rdata {
  size_t n, total;
  float *hw;
  size_t *start;
  float *boxes;
  uint8_t *crowd;
} rdata;

static void rdata_free(rdata *d) {
  free(d->hw);
  free(d->start);
  free(d->boxes);
  free(d->crowd);
}

static double urand(dl_rng *r, double lo, double hi) { return dl_rng_uniform(r, lo, hi); }

/* Random images of size up to 200 x 300 with up to gmax boxes each (log-uniform sizes,
 * some poking out, some degenerate, some crowd). */
static rdata random_data(uint64_t seed, size_t n, size_t gmax) {
  dl_rng r = {seed};
  rdata d;
  d.n = n;
  d.hw = malloc(2 * n * sizeof(float));
  d.start = malloc((n + 1) * sizeof(size_t));
  d.boxes = malloc(n * gmax * 4 * sizeof(float) + 16);
  d.crowd = calloc(n * gmax + 1, 1);
  size_t t = 0;
  d.start[0] = 0;
  for (size_t i = 0; i < n; i++) {
    float H = (float)(int)urand(&r, 20, 200), W = (float)(int)urand(&r, 20, 300);
    d.hw[2 * i] = H;
    d.hw[2 * i + 1] = W;
    size_t g = (size_t)urand(&r, 0, (double)gmax + 0.99);
    for (size_t j = 0; j < g; j++, t++) {
      double w = exp(urand(&r, log(1.5), log(1.2 * (double)W)));
      double h = w * exp(urand(&r, -1.0, 1.0));
      double x = urand(&r, -0.1 * (double)W, (double)W), y = urand(&r, -0.1 * (double)H, (double)H);
      float *b = d.boxes + 4 * t;
      b[0] = (float)x;
      b[1] = (float)y;
      b[2] = (float)(x + w);
      b[3] = (float)(y + h);
      double u = dl_rng_uniform(&r, 0.0, 1.0);
      if (u < 0.03)
        b[2] = b[0]; /* zero width */
      else if (u < 0.06)
        d.crowd[t] = 1; /* crowd */
    }
    d.start[i + 1] = t;
  }
  d.total = t;
  return d;
}

static detloss_eval_dataset view(const rdata *d) {
  detloss_eval_dataset v = {d->n, d->hw, d->start, d->boxes, d->crowd};
  return v;
}

/* Brute force per gt over materialized anchors: best IoU, fit count, level of the
 * first anchor reaching the best, positives under detloss_match. Clipping and
 * filtering as documented (no resize). */
static void brute_force(const detloss_eval_dataset *d, const detloss_anchor_config *tmpl,
                        const float *explicit_anchors, size_t na_explicit,
                        const detloss_eval_options *o, detloss_eval_gt *out) {
  for (size_t i = 0; i < d->num_images; i++) {
    float H = d->image_hw[2 * i], W = d->image_hw[2 * i + 1];
    detloss_anchor_level lv[8];
    detloss_anchor_config cfg;
    size_t A, off[9] = {0};
    float *anchors;
    if (tmpl) {
      cfg = *tmpl;
      for (size_t l = 0; l < tmpl->num_levels; l++) {
        lv[l] = tmpl->levels[l];
        lv[l].feat_h = (size_t)ceil((double)H / (double)lv[l].stride_h);
        lv[l].feat_w = (size_t)ceil((double)W / (double)lv[l].stride_w);
      }
      cfg.levels = lv;
      assert_int_equal(detloss_anchors_count(&cfg, &A, NULL), DETLOSS_OK);
      anchors = malloc((A + 1) * 4 * sizeof(float));
      assert_int_equal(detloss_anchors_generate(&cfg, anchors, A, NULL), DETLOSS_OK);
      for (size_t l = 0; l < tmpl->num_levels; l++) {
        size_t k;
        detloss_anchors_level_base(&cfg, l, NULL, 0, &k, NULL);
        off[l + 1] = off[l] + lv[l].feat_h * lv[l].feat_w * k;
      }
    } else {
      A = na_explicit;
      anchors = malloc((A + 1) * 4 * sizeof(float));
      memcpy(anchors, explicit_anchors, A * 4 * sizeof(float));
      off[1] = A;
    }
    size_t nl = tmpl ? tmpl->num_levels : 1;
    size_t r0 = d->box_start[i], r1 = d->box_start[i + 1], G = 0;
    float *gt = malloc((r1 - r0 + 1) * 4 * sizeof(float));
    size_t *row = malloc((r1 - r0 + 1) * sizeof(size_t));
    for (size_t r = r0; r < r1; r++) {
      const float *b = d->boxes + 4 * r;
      float c[4] = {fminf(fmaxf(b[0], 0), W), fminf(fmaxf(b[1], 0), H), fminf(fmaxf(b[2], 0), W),
                    fminf(fmaxf(b[3], 0), H)};
      memset(&out[r], 0, sizeof out[r]);
      out[r].level = -1;
      if (d->is_crowd && d->is_crowd[r]) continue;
      if (!(c[2] > c[0] && c[3] > c[1])) continue;
      memcpy(gt + 4 * G, c, sizeof c);
      row[G++] = r;
    }
    float *iou = malloc((G * A + 1) * sizeof(float));
    assert_int_equal(detloss_iou_matrix(DETLOSS_IOU, gt, G, anchors, A, iou, NULL, NULL),
                     DETLOSS_OK);
    for (size_t g = 0; g < G; g++) {
      float best = 0.0f;
      size_t first = SIZE_MAX;
      uint32_t fit = 0;
      for (size_t a = 0; a < A; a++) {
        float v = iou[g * A + a];
        if (v >= o->iou_thresh) fit++;
        if (v > best) {
          best = v;
          first = a;
        }
      }
      detloss_eval_gt *e = &out[row[g]];
      e->best = best;
      e->num_fit = fit;
      if (first != SIZE_MAX) {
        size_t l = 0;
        while (l + 1 < nl && first >= off[l + 1]) l++;
        e->level = (int16_t)l;
      }
    }
    if (G > 0 && A > 0) {
      int64_t *m = malloc(A * sizeof(int64_t));
      detloss_match_options mo = o->match;
      mo.image_h = H;
      mo.image_w = W;
      assert_int_equal(detloss_match(anchors, A, gt, G, NULL, m, NULL, &mo, NULL), DETLOSS_OK);
      for (size_t a = 0; a < A; a++)
        if (m[a] >= 0) out[row[m[a]]].num_pos++;
      free(m);
    }
    free(iou);
    free(gt);
    free(row);
    free(anchors);
  }
}

static void assert_per_gt_equal(const detloss_eval_gt *got, const detloss_eval_gt *want, size_t n) {
  for (size_t r = 0; r < n; r++) {
    if (got[r].status != DETLOSS_EVAL_GT_OK) continue;
    if (memcmp(&got[r].best, &want[r].best, sizeof(float)) != 0 ||
        got[r].num_fit != want[r].num_fit || got[r].num_pos != want[r].num_pos ||
        got[r].level != want[r].level) {
      print_error("gt %zu: best %.9g / %.9g, fit %u / %u, pos %u / %u, level %d / %d\n", r,
                  (double)got[r].best, (double)want[r].best, got[r].num_fit, want[r].num_fit,
                  got[r].num_pos, want[r].num_pos, got[r].level, want[r].level);
      fail();
    }
  }
}

/* One 100x100 image, anchors a0 = [0,0,10,10], a1 = [0,0,40,40]:
 *   g0 = [5,5,15,15]: IoU(a0) = 25/175 = 1/7, IoU(a1) = 100/1600 = 0.0625 -> best 1/7, no fit;
 *   g1 = [0,0,40,20]: IoU(a0) = 100/800 = 0.125, IoU(a1) = 800/1600 = 0.5 -> best 0.5, fits.
 * recall 1/2, mean best (1/7 + 1/2)/2 = 0.32142857, anchors per gt 1/2.
 * Matcher 0.7/0.3 with low-quality matches: a0's argmax is g0 (1/7 > 0.125) and it is
 * g0's best -> positive of g0; a1 is g1's best -> positive of g1: one positive each. */
static void explicit_anchors_hand_worked(void **state) {
  (void)state;
  float hw[2] = {100, 100};
  size_t start[2] = {0, 2};
  float boxes[8] = {5, 5, 15, 15, 0, 0, 40, 20};
  float anchors[8] = {0, 0, 10, 10, 0, 0, 40, 40};
  detloss_eval_dataset d = {1, hw, start, boxes, NULL};
  detloss_eval_anchors src = {NULL, anchors, 2, NULL, 0};
  detloss_eval_gt g[2];
  detloss_eval_report r;
  assert_int_equal(detloss_anchor_eval(&d, &src, g, &r, NULL, NULL), DETLOSS_OK);
  dl_assert_close1(g[0].best, 1.0 / 7.0, 1e-6, 0);
  dl_assert_close1(g[1].best, 0.5, 1e-6, 0);
  assert_int_equal(g[0].num_fit, 0);
  assert_int_equal(g[1].num_fit, 1);
  assert_int_equal(g[0].num_pos, 1);
  assert_int_equal(g[1].num_pos, 1);
  assert_int_equal(r.all.num_gt, 2);
  dl_assert_close1(r.all.recall, 0.5, 0, 0);
  dl_assert_close1(r.all.mean_best, (1.0 / 7.0 + 0.5) / 2.0, 1e-6, 0);
  dl_assert_close1(r.all.anchors_per_gt, 0.5, 0, 0);
  assert_int_equal(r.all.pos_hist[1], 2);
  /* both areas (100, 800) are < 32^2: small */
  assert_int_equal(r.by_size[DETLOSS_EVAL_SMALL].num_gt, 2);
  assert_int_equal(r.num_anchors, 2);
}

/* tests/fixtures/anchor_eval/tiny_dataset.json under tiny_config.json: 64x64 image,
 * one level, stride 16, 16 px square anchors [16x-8, 16y-8, 16x+8, 16y+8], x, y in 0..3
 * (ceil(64/16) = 4); a second image 48x32 without boxes (3 x 2 cells).
 *   [8,8,24,24]   equals the anchor of cell (1,1): best 1, one fit, one positive;
 *   [0,0,8,8]     vs cell (0,0) [-8,-8,8,8]: I = 64, U = 256 + 64 - 64 -> 0.25;
 *   [30,-5,70,20] clipped to [30,0,64,20] (area 680): best cell (3,1) [40,8,56,24]:
 *                 I = 16 * 12 = 192, U = 680 + 256 - 192 = 744 -> 0.2580645;
 *   [10,10,10,20] zero width: left out.
 * recall 1/3, mean best (1 + 0.25 + 192/744)/3, anchors per gt 1/3; each gt gets one
 * positive (its best anchor, whose argmax it is); anchors 16 + 6 = 22. */
static void tiny_fixture_hand_worked(void **state) {
  (void)state;
  float hw[4] = {64, 64, 48, 32};
  size_t start[3] = {0, 4, 4};
  float boxes[16] = {8, 8, 24, 24, 0, 0, 8, 8, 30, -5, 70, 20, 10, 10, 10, 20};
  float size = 16, ratio = 1;
  detloss_anchor_level lv = {0, 0, 16, 16, &size, 1, &ratio, 1, NULL, 0, NULL, 0};
  detloss_anchor_config grid = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  detloss_eval_dataset d = {2, hw, start, boxes, NULL};
  detloss_eval_anchors src = {&grid, NULL, 0, NULL, 0};
  detloss_eval_gt g[4];
  detloss_eval_report r;
  detloss_eval_options o = detloss_eval_options_default();
  o.num_worst = 2;
  assert_int_equal(detloss_anchor_eval(&d, &src, g, &r, &o, NULL), DETLOSS_OK);
  dl_assert_close1(g[0].best, 1.0, 0, 0);
  dl_assert_close1(g[1].best, 0.25, 1e-7, 0);
  dl_assert_close1(g[2].best, 192.0 / 744.0, 1e-6, 0);
  assert_int_equal(g[3].status, DETLOSS_EVAL_GT_DEGENERATE);
  assert_int_equal(g[2].clipped, 1);
  dl_assert_close1(g[2].w, 34.0, 0, 0);
  dl_assert_close1(g[2].h, 20.0, 0, 0);
  for (int k = 0; k < 3; k++) assert_int_equal(g[k].num_pos, 1);
  dl_assert_close1(r.all.recall, 1.0 / 3.0, 1e-15, 0);
  dl_assert_close1(r.all.mean_best, (1.0 + 0.25 + 192.0 / 744.0) / 3.0, 1e-6, 0);
  dl_assert_close1(r.all.anchors_per_gt, 1.0 / 3.0, 1e-15, 0);
  assert_int_equal(r.num_clipped, 1);
  assert_int_equal(r.num_degenerate, 1);
  assert_int_equal(r.num_images_empty, 1);
  assert_int_equal(r.num_anchors, 22);
  assert_int_equal(r.level_best[0], 3);
  assert_int_equal(r.level_pos[0], 3);
  /* worst first: 0.25 (box 1), then 0.258 (box 2) */
  assert_int_equal(r.num_worst, 2);
  assert_int_equal(r.worst[0].box, 1);
  assert_int_equal(r.worst[1].box, 2);
}

/* gt 20 x 10, shapes 10x10 and 40x10: r = min(2, 1/2, 1, 1) = 1/2 and
 * min(1/2, 2, 1, 1) = 1/2: best 1/2, both fit (> 1/4); with threshold 1.5 (> 2/3)
 * neither fits. */
static void wh_ratio_hand_worked(void **state) {
  (void)state;
  float hw[2] = {100, 100};
  size_t start[2] = {0, 1};
  float boxes[4] = {10, 10, 30, 20};
  float shapes[4] = {10, 10, 40, 10};
  detloss_eval_dataset d = {1, hw, start, boxes, NULL};
  detloss_eval_anchors src = {NULL, NULL, 0, shapes, 2};
  detloss_eval_options o = detloss_eval_options_default();
  o.metric = DETLOSS_EVAL_WH_RATIO;
  detloss_eval_gt g;
  detloss_eval_report r;
  assert_int_equal(detloss_anchor_eval(&d, &src, &g, &r, &o, NULL), DETLOSS_OK);
  dl_assert_close1(g.best, 0.5, 0, 0);
  assert_int_equal(g.num_fit, 2);
  dl_assert_close1(r.all.recall, 1.0, 0, 0);
  o.ratio_thresh = 1.5f;
  assert_int_equal(detloss_anchor_eval(&d, &src, &g, &r, &o, NULL), DETLOSS_OK);
  assert_int_equal(g.num_fit, 0);
  dl_assert_close1(r.all.recall, 0.0, 0, 0);
}

/* Areas after clipping: 31x33 = 1023 small, 32x32 = 1024 medium (cocoeval's
 * [32^2, 96^2)), 95x97 = 9215 medium, 96x96 = 9216 large. */
static void size_classes_follow_coco_area_ranges(void **state) {
  (void)state;
  float hw[2] = {200, 200};
  size_t start[2] = {0, 4};
  float boxes[16] = {0, 0, 31, 33, 0, 0, 32, 32, 0, 0, 95, 97, 0, 0, 96, 96};
  float anchors[4] = {0, 0, 32, 32};
  detloss_eval_dataset d = {1, hw, start, boxes, NULL};
  detloss_eval_anchors src = {NULL, anchors, 1, NULL, 0};
  detloss_eval_gt g[4];
  detloss_eval_report r;
  assert_int_equal(detloss_anchor_eval(&d, &src, g, &r, NULL, NULL), DETLOSS_OK);
  assert_int_equal(g[0].size, DETLOSS_EVAL_SMALL);
  assert_int_equal(g[1].size, DETLOSS_EVAL_MEDIUM);
  assert_int_equal(g[2].size, DETLOSS_EVAL_MEDIUM);
  assert_int_equal(g[3].size, DETLOSS_EVAL_LARGE);
  assert_int_equal(r.by_size[0].num_gt, 1);
  assert_int_equal(r.by_size[1].num_gt, 2);
  assert_int_equal(r.by_size[2].num_gt, 1);
}

/* torchvision resize of a 480 x 640 image to short side 800 (long side <= 1333):
 * scale = (1/480) * 800 in float32 = 1.6666667, size floor(480 s) = 800, floor(640 s)
 * = 1066 (what GeneralizedRCNNTransform gives, checked in gen_anchor_eval.py); boxes
 * scale by 800/480 and 1066/640 per axis. Long-side mode: 640 -> 320, scale 1/2. */
static void resize_modes_scale_boxes_as_documented(void **state) {
  (void)state;
  float hw[2] = {480, 640};
  size_t start[2] = {0, 1};
  float boxes[4] = {0, 0, 640, 480};
  float anchors[4] = {0, 0, 10, 10};
  detloss_eval_dataset d = {1, hw, start, boxes, NULL};
  detloss_eval_anchors src = {NULL, anchors, 1, NULL, 0};
  detloss_eval_options o = detloss_eval_options_default();
  o.resize_min_size = 800;
  o.resize_max_size = 1333;
  detloss_eval_gt g;
  detloss_eval_report r;
  assert_int_equal(detloss_anchor_eval(&d, &src, &g, &r, &o, NULL), DETLOSS_OK);
  dl_assert_close1(g.w, 640.0f * (1066.0f / 640.0f), 0, 0);
  dl_assert_close1(g.h, 480.0f * (800.0f / 480.0f), 0, 0);
  o.resize_min_size = 0;
  o.resize_max_size = 320;
  assert_int_equal(detloss_anchor_eval(&d, &src, &g, &r, &o, NULL), DETLOSS_OK);
  dl_assert_close1(g.w, 320.0, 0, 0);
  dl_assert_close1(g.h, 240.0, 0, 0);
}

static void check_grid_against_brute_force(const detloss_anchor_config *grid,
                                           detloss_eval_options o, uint64_t seed) {
  rdata rd = random_data(seed, 40, 12);
  detloss_eval_dataset d = view(&rd);
  detloss_eval_anchors src = {grid, NULL, 0, NULL, 0};
  detloss_eval_gt *got = malloc((rd.total + 1) * sizeof *got);
  detloss_eval_gt *want = malloc((rd.total + 1) * sizeof *want);
  detloss_eval_report r;
  assert_int_equal(detloss_anchor_eval(&d, &src, got, &r, &o, NULL), DETLOSS_OK);
  brute_force(&d, grid, NULL, 0, &o, want);
  assert_per_gt_equal(got, want, rd.total);
  free(got);
  free(want);
  rdata_free(&rd);
}

/* The fused per-gt grid scan and the sparse positive count equal brute force over
 * all generated anchors (bitwise best, exact counts), for torchvision and detectron2
 * conventions, offsets, unequal strides, explicit bases and shapes. */
static void grid_scan_equals_brute_force_over_generated_anchors(void **state) {
  (void)state;
  float s0[2] = {16, 24}, s1[1] = {48}, s2[1] = {96}, r3[3] = {0.5f, 1.0f, 2.0f}, r1[1] = {1.0f};
  detloss_anchor_level lv[3] = {{0, 0, 8, 8, s0, 2, r3, 3, NULL, 0, NULL, 0},
                                {0, 0, 16, 16, s1, 1, r3, 3, NULL, 0, NULL, 0},
                                {0, 0, 32, 24, s2, 1, r1, 1, NULL, 0, NULL, 0}};
  detloss_anchor_config tv = {lv, 3, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  detloss_eval_options o = detloss_eval_options_default();
  check_grid_against_brute_force(&tv, o, 1);
  detloss_anchor_config d2 = {lv, 3, DETLOSS_ANCHORS_DETECTRON2, 0.5f};
  check_grid_against_brute_force(&d2, o, 2);
  o.match.high = 0.5f;
  o.match.low = 0.4f;
  o.iou_thresh = 0.3f;
  check_grid_against_brute_force(&tv, o, 3);
  o.match.allow_low_quality = 0;
  check_grid_against_brute_force(&d2, o, 4);
  /* explicit base anchors (py-faster-rcnn style) and non-square strides */
  float base[8] = {-20, -10, 21, 11, -8, -8, 8, 8};
  detloss_anchor_level lb = {0, 0, 12, 10, NULL, 0, NULL, 0, NULL, 0, base, 2};
  detloss_anchor_config bc = {&lb, 1, DETLOSS_ANCHORS_TORCHVISION, 0.25f};
  o = detloss_eval_options_default();
  check_grid_against_brute_force(&bc, o, 5);
}

/* Settings the sparse count does not cover run the matcher densely; torchvision's
 * h_g = 0 quirk (a gt overlapping no anchor makes every anchor positive) included. */
static void dense_fallback_matches_brute_force(void **state) {
  (void)state;
  /* tiny YOLO-like shapes far apart: small gts between cell centres overlap nothing */
  float shp[4] = {4, 4, 6, 3};
  detloss_anchor_level lv = {0, 0, 32, 32, NULL, 0, NULL, 0, shp, 2, NULL, 0};
  detloss_anchor_config quirk = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.5f};
  detloss_eval_options o = detloss_eval_options_default();
  check_grid_against_brute_force(&quirk, o, 11);
  o.match.low_quality_min_iou = 0.1f; /* no quirk: sparse path */
  check_grid_against_brute_force(&quirk, o, 12);
  float s[1] = {32}, r[3] = {0.5f, 1.0f, 2.0f};
  detloss_anchor_level l2[1] = {{0, 0, 16, 16, s, 1, r, 3, NULL, 0, NULL, 0}};
  detloss_anchor_config g2 = {l2, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  o = detloss_eval_options_default();
  o.match.semantics = DETLOSS_MATCH_MMDET;
  o.match.low_quality_min_iou = 0.3f;
  check_grid_against_brute_force(&g2, o, 13);
  o = detloss_eval_options_default();
  o.match.allowed_border = 0.0f;
  check_grid_against_brute_force(&g2, o, 14);
}

static void explicit_anchors_equal_brute_force(void **state) {
  (void)state;
  rdata rd = random_data(21, 30, 10);
  dl_rng rr = {99};
  float an[4 * 50];
  for (int a = 0; a < 50; a++) {
    double x = urand(&rr, -20, 280), y = urand(&rr, -20, 180), w = urand(&rr, 4, 120),
           h = urand(&rr, 4, 120);
    an[4 * a] = (float)x;
    an[4 * a + 1] = (float)y;
    an[4 * a + 2] = (float)(x + w);
    an[4 * a + 3] = (float)(y + h);
  }
  detloss_eval_dataset d = view(&rd);
  detloss_eval_anchors src = {NULL, an, 50, NULL, 0};
  detloss_eval_options o = detloss_eval_options_default();
  detloss_eval_gt *got = malloc((rd.total + 1) * sizeof *got);
  detloss_eval_gt *want = malloc((rd.total + 1) * sizeof *want);
  detloss_eval_report r;
  assert_int_equal(detloss_anchor_eval(&d, &src, got, &r, &o, NULL), DETLOSS_OK);
  brute_force(&d, NULL, an, 50, &o, want);
  assert_per_gt_equal(got, want, rd.total);
  free(got);
  free(want);
  rdata_free(&rd);
}

static void crowd_and_degenerate_boxes_are_counted_not_evaluated(void **state) {
  (void)state;
  rdata rd = random_data(31, 60, 10);
  detloss_eval_dataset d = view(&rd);
  float s[1] = {32}, ratio[1] = {1};
  detloss_anchor_level lv = {0, 0, 16, 16, s, 1, ratio, 1, NULL, 0, NULL, 0};
  detloss_anchor_config grid = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0};
  detloss_eval_anchors src = {&grid, NULL, 0, NULL, 0};
  detloss_eval_gt *g = malloc((rd.total + 1) * sizeof *g);
  detloss_eval_report r;
  assert_int_equal(detloss_anchor_eval(&d, &src, g, &r, NULL, NULL), DETLOSS_OK);
  size_t crowd = 0, deg = 0, ok = 0, clipped = 0;
  for (size_t i = 0; i < rd.total; i++) {
    crowd += rd.crowd[i];
    if (g[i].status == DETLOSS_EVAL_GT_DEGENERATE) deg++;
    if (g[i].status == DETLOSS_EVAL_GT_OK) ok++;
    if (g[i].status != DETLOSS_EVAL_GT_CROWD) clipped += g[i].clipped;
  }
  assert_true(crowd > 0 && deg > 0 && clipped > 0);
  assert_int_equal(r.num_crowd, crowd);
  assert_int_equal(r.num_degenerate, deg);
  assert_int_equal(r.num_clipped, clipped);
  assert_int_equal(r.all.num_gt, ok);
  assert_int_equal(r.num_boxes, rd.total);
  assert_int_equal(r.by_size[0].num_gt + r.by_size[1].num_gt + r.by_size[2].num_gt, ok);
  size_t hist = 0;
  for (int k = 0; k < 4; k++) hist += r.all.pos_hist[k];
  assert_int_equal(hist, ok);
  /* worst list: ascending best, every listed gt is an evaluated one */
  for (size_t k = 1; k < r.num_worst; k++) assert_true(r.worst[k - 1].best <= r.worst[k].best);
  free(g);
  rdata_free(&rd);
}

static void results_are_bitwise_identical_for_1_2_4_threads(void **state) {
  (void)state;
  rdata rd = random_data(41, 300, 15);
  detloss_eval_dataset d = view(&rd);
  float s0[1] = {32}, s1[1] = {64}, r3[3] = {0.5f, 1.0f, 2.0f};
  detloss_anchor_level lv[2] = {{0, 0, 8, 8, s0, 1, r3, 3, NULL, 0, NULL, 0},
                                {0, 0, 16, 16, s1, 1, r3, 3, NULL, 0, NULL, 0}};
  detloss_anchor_config grid = {lv, 2, DETLOSS_ANCHORS_TORCHVISION, 0};
  detloss_eval_anchors src = {&grid, NULL, 0, NULL, 0};
  detloss_eval_gt *g[3];
  detloss_eval_report *r = calloc(3, sizeof *r);
  int threads[3] = {1, 2, 4};
  for (int t = 0; t < 3; t++) {
    g[t] = calloc(rd.total + 1, sizeof *g[t]);
    detloss_eval_options o = detloss_eval_options_default();
    o.num_threads = threads[t];
    o.resize_min_size = 300;
    o.resize_max_size = 500;
    assert_int_equal(detloss_anchor_eval(&d, &src, g[t], &r[t], &o, NULL), DETLOSS_OK);
  }
  for (int t = 1; t < 3; t++) {
    assert_memory_equal(&r[0], &r[t], sizeof r[0]);
    assert_memory_equal(g[0], g[t], rd.total * sizeof *g[0]);
  }
  for (int t = 0; t < 3; t++) free(g[t]);
  free(r);
  rdata_free(&rd);
}

typedef struct prog {
  size_t calls, last, total;
  int monotone;
} prog;

static void on_progress(void *user, size_t done, size_t total) {
  prog *p = user;
  if (done < p->last) p->monotone = 0;
  p->last = done;
  p->total = total;
  p->calls++;
}

static void progress_reaches_the_image_count_monotonically(void **state) {
  (void)state;
  rdata rd = random_data(51, 9000, 2);
  detloss_eval_dataset d = view(&rd);
  float an[4] = {0, 0, 20, 20};
  detloss_eval_anchors src = {NULL, an, 1, NULL, 0};
  prog p = {0, 0, 0, 1};
  detloss_eval_options o = detloss_eval_options_default();
  o.progress = on_progress;
  o.progress_user = &p;
  detloss_eval_report r;
  assert_int_equal(detloss_anchor_eval(&d, &src, NULL, &r, &o, NULL), DETLOSS_OK);
  assert_true(p.calls >= 3); /* 9000 images in chunks of 4096 */
  assert_true(p.monotone);
  assert_int_equal(p.last, 9000);
  assert_int_equal(p.total, 9000);
  rdata_free(&rd);
}

static void expect_error(const detloss_eval_dataset *d, const detloss_eval_anchors *src,
                         const detloss_eval_options *o, detloss_status want, const char *where) {
  detloss_eval_report r;
  memset(&r, 0xAB, sizeof r);
  detloss_eval_report before = r;
  detloss_error err;
  memset(&err, 0, sizeof err);
  assert_int_equal(detloss_anchor_eval(d, src, NULL, &r, o, &err), want);
  assert_string_equal(err.where, where);
  assert_memory_equal(&r, &before, sizeof r); /* untouched */
}

static void bad_inputs_fail_with_status_and_where(void **state) {
  (void)state;
  float hw[4] = {100, 100, 50, 50};
  size_t start[3] = {0, 1, 2};
  float boxes[8] = {1, 1, 20, 20, 5, 5, 9, 9};
  float an[4] = {0, 0, 10, 10}, shp[2] = {10, 10};
  detloss_eval_dataset d = {2, hw, start, boxes, NULL};
  detloss_eval_anchors src = {NULL, an, 1, NULL, 0};
  detloss_eval_options o = detloss_eval_options_default();
  expect_error(NULL, &src, &o, DETLOSS_ERR_NULL, "data");
  detloss_eval_dataset e = d;
  e.num_images = 0;
  expect_error(&e, &src, &o, DETLOSS_ERR_SHAPE, "data.num_images");
  size_t nobox[3] = {0, 0, 0};
  e = d;
  e.box_start = nobox;
  expect_error(&e, &src, &o, DETLOSS_ERR_SHAPE, "data.boxes");
  size_t decr[3] = {0, 2, 1};
  e = d;
  e.box_start = decr;
  expect_error(&e, &src, &o, DETLOSS_ERR_SHAPE, "data.box_start[2]");
  float nan_boxes[8] = {1, 1, 20, 20, 5, NAN, 9, 9};
  e = d;
  e.boxes = nan_boxes;
  expect_error(&e, &src, &o, DETLOSS_ERR_NONFINITE, "data.boxes[1]");
  float bad_hw[4] = {100, 100, 0, 50};
  e = d;
  e.image_hw = bad_hw;
  expect_error(&e, &src, &o, DETLOSS_ERR_RANGE, "data.image_hw[1]");
  detloss_eval_anchors none = {NULL, NULL, 0, NULL, 0};
  expect_error(&d, &none, &o, DETLOSS_ERR_SHAPE, "src");
  detloss_eval_anchors two = {NULL, an, 1, shp, 1};
  expect_error(&d, &two, &o, DETLOSS_ERR_SHAPE, "src");
  detloss_eval_anchors shapes = {NULL, NULL, 0, shp, 1};
  expect_error(&d, &shapes, &o, DETLOSS_ERR_RANGE, "src.shapes");
  detloss_eval_options b = o;
  b.iou_thresh = 0.0f;
  expect_error(&d, &src, &b, DETLOSS_ERR_RANGE, "iou_thresh");
  b = o;
  b.ratio_thresh = 0.5f;
  expect_error(&d, &src, &b, DETLOSS_ERR_RANGE, "ratio_thresh");
  b = o;
  b.num_worst = DETLOSS_EVAL_MAX_WORST + 1;
  expect_error(&d, &src, &b, DETLOSS_ERR_RANGE, "num_worst");
  b = o;
  b.resize_max_size = INFINITY;
  expect_error(&d, &src, &b, DETLOSS_ERR_RANGE, "resize_max_size");
  b = o;
  b.match.low = 0.9f;
  expect_error(&d, &src, &b, DETLOSS_ERR_RANGE, "low");
  float zero = 0;
  float ratio = 1;
  detloss_anchor_level lv = {0, 0, 16, 16, &zero, 1, &ratio, 1, NULL, 0, NULL, 0};
  detloss_anchor_config g = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0};
  detloss_eval_anchors gs = {&g, NULL, 0, NULL, 0};
  expect_error(&d, &gs, &o, DETLOSS_ERR_RANGE, "levels[0].sizes[0]");
}

/* Feature-map sizes ceil(size / stride) are range-checked in
 * double before they become size_t. Image 100000 x 1 resized with 800 / 1333:
 * scale = min(800 / 1, 1333 / 100000) = 0.01333, so 1333 x floor(0.0133) = 0
 * pixels; stride 1e-30 gives ceil(1333 / 1e-30) = 1.3e33 rows of 0 columns.
 * The anchor count 1.3e33 x 0 = 0 passed the old check, and (size_t)1.3e33 is
 * undefined (UBSan float-cast-overflow in the sanitize build). Now: a range
 * error naming the stride, report and per_gt untouched. */
static void a_tiny_stride_is_a_range_error_before_any_conversion(void **state) {
  (void)state;
  float hw[2] = {100000, 1};
  size_t start[2] = {0, 1};
  float boxes[4] = {0, 0, 1, 50};
  float size = 32, ratio = 1;
  detloss_anchor_level lv = {0, 0, 1e-30f, 1e-30f, &size, 1, &ratio, 1, NULL, 0, NULL, 0};
  detloss_anchor_config g = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0};
  detloss_eval_dataset d = {1, hw, start, boxes, NULL};
  detloss_eval_anchors gs = {&g, NULL, 0, NULL, 0};
  detloss_eval_options o = detloss_eval_options_default();
  o.resize_min_size = 800;
  o.resize_max_size = 1333;
  expect_error(&d, &gs, &o, DETLOSS_ERR_RANGE, "grid.levels[0].stride");
  /* the same without resizing: 1e35 x 1e30 cells */
  o.resize_min_size = o.resize_max_size = 0;
  expect_error(&d, &gs, &o, DETLOSS_ERR_RANGE, "grid.levels[0].stride");
  /* a stride of 1e30 with offset 0.5 puts the only cell's anchor at 5e29 */
  lv.stride_h = lv.stride_w = 1e30f;
  g.offset = 0.5f;
  expect_error(&d, &gs, &o, DETLOSS_ERR_RANGE, "grid.levels[0].stride");
  /* an image that resizing makes infinite: 1e-40 (subnormal) x 1, short side
   * to 800: scale (1 / 1e-40) * 800 = Inf in float */
  g.offset = 0.0f;
  lv.stride_h = lv.stride_w = 16;
  hw[0] = 1e-40f;
  o.resize_min_size = 800;
  expect_error(&d, &gs, &o, DETLOSS_ERR_RANGE, "data.image_hw[0]");
  /* explicit anchors beyond the 1e18 coordinate bound (their area would be Inf) */
  hw[0] = 100;
  o.resize_min_size = 0;
  float big[4] = {-1e30f, -1e30f, 1e30f, 1e30f};
  detloss_eval_anchors ex = {NULL, big, 1, NULL, 0};
  expect_error(&d, &ex, &o, DETLOSS_ERR_RANGE, "anchors[0]");
}

/* per_gt and report may not overlap each other or the inputs. */
static void outputs_may_not_overlap_inputs_or_each_other(void **state) {
  (void)state;
  float hw[2] = {100, 100};
  size_t start[2] = {0, 1};
  float an[4] = {0, 0, 10, 10};
  union {
    detloss_eval_report r;
    float boxes[4];
  } u;
  memset(&u, 0, sizeof u);
  u.boxes[2] = u.boxes[3] = 10;
  detloss_eval_dataset d = {1, hw, start, u.boxes, NULL};
  detloss_eval_anchors src = {NULL, an, 1, NULL, 0};
  detloss_error err;
  assert_int_equal(detloss_anchor_eval(&d, &src, NULL, &u.r, NULL, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "report");
  assert_non_null(strstr(err.msg, "data.boxes"));
  detloss_eval_report r;
  detloss_eval_gt *pg = (detloss_eval_gt *)(void *)&r;
  assert_int_equal(detloss_anchor_eval(&d, &src, pg, &r, NULL, &err), DETLOSS_ERR_SHAPE);
  assert_string_equal(err.where, "report");
  assert_non_null(strstr(err.msg, "per_gt"));
  detloss_eval_gt gt1;
  assert_int_equal(detloss_anchor_eval(&d, &src, &gt1, &r, NULL, &err), DETLOSS_OK);
  assert_true(gt1.best == 1.0f && r.all.num_gt == 1);
}

static const cJSON *field(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  assert_non_null(v);
  return v;
}

static void check_stats(const detloss_eval_stats *s, const cJSON *e, int with_pos) {
  /* Counts exact; means of the same float32 values, summed in another order:
   * rtol 1e-12. */
  assert_int_equal(s->num_gt, (size_t)field(e, "num_gt")->valuedouble);
  dl_assert_close1(s->recall, field(e, "recall")->valuedouble, 1e-12, 0);
  dl_assert_close1(s->mean_best, field(e, "mean_best")->valuedouble, 1e-12, 0);
  dl_assert_close1(s->anchors_per_gt, field(e, "anchors_per_gt")->valuedouble, 1e-12, 0);
  if (!with_pos) return;
  dl_assert_close1(s->positives_per_gt, field(e, "positives_per_gt")->valuedouble, 1e-12, 0);
  const cJSON *h = field(e, "positives_hist");
  static const char *const K[4] = {"0", "1", "2-4", "5+"};
  for (int k = 0; k < 4; k++) assert_int_equal(s->pos_hist[k], (size_t)field(h, K[k])->valuedouble);
}

static void run_config(const char *cfg_path, detloss_config **cfg, detloss_dataset **ds,
                       detloss_eval_gt **g, detloss_eval_report *r, int threads) {
  const char *const search[] = {SRC_DIR, NULL};
  detloss_error err;
  detloss_status st = detloss_config_load(cfg_path, search, cfg, &err);
  if (st) print_error("%s: %s\n", err.where, err.msg);
  assert_int_equal(st, DETLOSS_OK);
  assert_non_null((*cfg)->dataset_path);
  assert_int_equal(detloss_dataset_load((*cfg)->dataset_path, ds, &err), DETLOSS_OK);
  *g = malloc((*ds)->num_boxes * sizeof **g);
  detloss_eval_dataset v = detloss_dataset_view(*ds);
  detloss_eval_anchors src = detloss_config_eval_anchors(*cfg);
  detloss_eval_options o = (*cfg)->eval;
  o.num_threads = threads;
  assert_int_equal(detloss_anchor_eval(&v, &src, *g, r, &o, &err), DETLOSS_OK);
}

/* The headline numbers of `detloss eval configs/torchvision_fasterrcnn_fpn_rpn.json`
 * on data/coco2017_subset.json, per gt and aggregated, equal torchvision's
 * (gen_anchor_eval.py: GeneralizedRCNNTransform(800, 1333).resize, AnchorGenerator on
 * ceil(H/stride) x ceil(W/stride) maps, box_iou, Matcher(0.7, 0.3, True)). */
static void bundled_coco_subset_rpn_matches_torchvision(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("anchor_eval/coco_subset_expected.json"));
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *ex = field(root, "torchvision_fasterrcnn_fpn_rpn");
  detloss_config *cfg;
  detloss_dataset *ds;
  detloss_eval_gt *g;
  detloss_eval_report r;
  run_config(SRC_DIR "/configs/torchvision_fasterrcnn_fpn_rpn.json", &cfg, &ds, &g, &r, 0);
  const cJSON *st = field(ex, "stats");
  check_stats(&r.all, field(st, "all"), 1);
  check_stats(&r.by_size[0], field(st, "small"), 1);
  check_stats(&r.by_size[1], field(st, "medium"), 1);
  check_stats(&r.by_size[2], field(st, "large"), 1);
  assert_int_equal(r.num_crowd, (size_t)field(ex, "num_crowd")->valuedouble);
  assert_int_equal(r.num_anchors, (size_t)field(ex, "num_anchors")->valuedouble);
  const cJSON *lb = field(ex, "level_best"), *lp = field(ex, "level_pos");
  for (size_t l = 0; l < 5; l++) {
    assert_int_equal(r.level_best[l], (size_t)cJSON_GetArrayItem(lb, (int)l)->valuedouble);
    assert_int_equal(r.level_pos[l], (size_t)cJSON_GetArrayItem(lp, (int)l)->valuedouble);
  }
  /* per gt, in data-set order of the evaluated gts: best bitwise (float32 values
   * printed with 17 digits by Python), counts and level exact */
  const cJSON *pb = field(ex, "per_gt_best")->child, *pf = field(ex, "per_gt_fit")->child,
              *pp = field(ex, "per_gt_pos")->child, *pl = field(ex, "per_gt_level")->child;
  size_t n = 0;
  for (size_t i = 0; i < ds->num_boxes; i++) {
    if (g[i].status != DETLOSS_EVAL_GT_OK) continue;
    assert_non_null(pb);
    if (g[i].best != (float)pb->valuedouble || g[i].num_fit != (uint32_t)pf->valuedouble ||
        g[i].num_pos != (uint32_t)pp->valuedouble || g[i].level != (int)pl->valuedouble) {
      print_error("gt row %zu: best %.9g / %.9g fit %u / %g pos %u / %g level %d / %g\n", i,
                  (double)g[i].best, pb->valuedouble, g[i].num_fit, pf->valuedouble, g[i].num_pos,
                  pp->valuedouble, g[i].level, pl->valuedouble);
      fail();
    }
    pb = pb->next;
    pf = pf->next;
    pp = pp->next;
    pl = pl->next;
    n++;
  }
  assert_null(pb);
  assert_int_equal(n, 3237);
  free(g);
  detloss_dataset_free(ds);
  detloss_config_free(cfg);
  cJSON_Delete(root);
  free(text);
}

/* configs/yolov5_autoanchor.json: YOLOv5's autoanchor BPR (recall) and AAT (anchors
 * per gt) on the bundled data at imgsz 640, as utils/autoanchor.py metric() computes
 * them in torch (gen_anchor_eval.py). */
static void bundled_coco_subset_yolov5_matches_autoanchor_metric(void **state) {
  (void)state;
  char *text = dl_read_file(DL_FIXTURE("anchor_eval/coco_subset_expected.json"));
  cJSON *root = cJSON_Parse(text);
  const cJSON *ex = field(root, "yolov5_autoanchor");
  detloss_config *cfg;
  detloss_dataset *ds;
  detloss_eval_gt *g;
  detloss_eval_report r;
  run_config(SRC_DIR "/configs/yolov5_autoanchor.json", &cfg, &ds, &g, &r, 1);
  const cJSON *st = field(ex, "stats");
  check_stats(&r.all, field(st, "all"), 0);
  check_stats(&r.by_size[0], field(st, "small"), 0);
  check_stats(&r.by_size[1], field(st, "medium"), 0);
  check_stats(&r.by_size[2], field(st, "large"), 0);
  const cJSON *pb = field(ex, "per_gt_best")->child;
  for (size_t i = 0; i < ds->num_boxes; i++) {
    if (g[i].status != DETLOSS_EVAL_GT_OK) continue;
    assert_true(g[i].best == (float)pb->valuedouble);
    pb = pb->next;
  }
  free(g);
  detloss_dataset_free(ds);
  detloss_config_free(cfg);
  cJSON_Delete(root);
  free(text);
}

/* ATSS positives (detloss_anchor_eval_ex, topk 4) on one 64 x 64 image; anchors 16 x 16
 * centred on 16 * (x, y), x, y in 0..3 (16 anchors, one level). mmdet semantics:
 *   gt 0 [8,8,40,40] (32 x 32, area 1024: medium), centre (24,24): the 4 nearest centres
 *     (16,16) (32,16) (16,32) (32,32) are all at sqrt(128); each anchor overlaps 16 x 16:
 *     IoU 256 / (1024 + 256 - 256) = 0.25; mean 0.25, std 0 -> threshold 0.25; all four
 *     pass and their centres lie inside the gt: 4 positives; best IoU 0.25.
 *   gt 1 [50,2,54,6] (4 x 4: small), centre (52,4): nearest (48,0) d 5.66, (48,16) 12.6,
 *     (32,0) 20.4, (32,16) 23.3; IoUs 16/256 = 0.0625, 0, 0, 0: mean 0.015625, unbiased
 *     std sqrt((0.046875^2 + 3 * 0.015625^2) / 3) = 0.03125 -> threshold 0.046875;
 *     (48,0) passes it but its centre x 48 < 50 lies outside the gt: 0 positives.
 * So positives per gt 2, one gt (the small one) never trained on; level_pos 4. */
static void atss_positives_of_a_tiny_image_are_hand_checked(void **state) {
  (void)state;
  float hw[2] = {64, 64};
  size_t start[2] = {0, 2};
  float boxes[8] = {8, 8, 40, 40, 50, 2, 54, 6};
  float size = 16, ratio = 1;
  detloss_anchor_level lv = {0, 0, 16, 16, &size, 1, &ratio, 1, NULL, 0, NULL, 0};
  detloss_anchor_config grid = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  detloss_eval_dataset d = {1, hw, start, boxes, NULL};
  detloss_eval_anchors src = {&grid, NULL, 0, NULL, 0};
  detloss_eval_assigner as = detloss_eval_assigner_default();
  as.method = DETLOSS_EVAL_METHOD_ATSS;
  as.atss.topk = 4;
  detloss_eval_gt g[2];
  detloss_eval_report r;
  detloss_eval_options o = detloss_eval_options_default();
  assert_int_equal(detloss_anchor_eval_ex(&d, &src, &as, g, &r, &o, NULL), DETLOSS_OK);
  assert_int_equal(g[0].num_pos, 4);
  assert_int_equal(g[1].num_pos, 0);
  dl_assert_close1(g[0].best, 0.25, 1e-7, 0);
  dl_assert_close1(g[1].best, 0.0625, 1e-7, 0);
  dl_assert_close1(r.all.positives_per_gt, 2.0, 1e-15, 0);
  assert_int_equal(r.all.pos_hist[0], 1);
  assert_int_equal(r.by_size[DETLOSS_EVAL_SMALL].pos_hist[0], 1);
  assert_int_equal(r.by_size[DETLOSS_EVAL_MEDIUM].pos_hist[2], 1);
  assert_int_equal(r.level_pos[0], 4);
  assert_int_equal(r.num_anchors, 16);

  /* The same anchors as an explicit list (row-major cells): the same counts. */
  float anchors[16 * 4];
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 4; x++) {
      float *a = anchors + 4 * (4 * y + x);
      a[0] = 16.0f * (float)x - 8.0f;
      a[1] = 16.0f * (float)y - 8.0f;
      a[2] = 16.0f * (float)x + 8.0f;
      a[3] = 16.0f * (float)y + 8.0f;
    }
  detloss_eval_anchors flat = {NULL, anchors, 16, NULL, 0};
  detloss_eval_gt g2[2];
  detloss_eval_report r2;
  assert_int_equal(detloss_anchor_eval_ex(&d, &flat, &as, g2, &r2, &o, NULL), DETLOSS_OK);
  assert_int_equal(g2[0].num_pos, 4);
  assert_int_equal(g2[1].num_pos, 0);

  /* topk 9 (mmdet's). gt 0: the 4 above plus 5 of the 8 centres at sqrt(640), e.g.
   * (0,16) [-8,8,8,24] and (48,16) [40,8,56,24], which only touch the gt: IoU 0. IoUs
   * 4 x 0.25, 5 x 0: mean 1/9, std sqrt((4 (0.25 - 1/9)^2 + 5 (1/9)^2) / 8) = 0.13176,
   * threshold 0.2429 < 0.25: still 4. gt 1: more IoU-0 candidates lower its threshold,
   * but (48,0) stays outside the gt: still 0. */
  as.atss.topk = 9;
  assert_int_equal(detloss_anchor_eval_ex(&d, &src, &as, g2, &r2, &o, NULL), DETLOSS_OK);
  assert_int_equal(g2[0].num_pos, 4);
  assert_int_equal(g2[1].num_pos, 0);
}

/* Random images on a 3-level grid: the per-gt ATSS positives of detloss_anchor_eval_ex
 * equal those of detloss_atss_assign on the materialized anchors (detloss_anchors_generate,
 * level-major), for the mmdet and original semantics, and for 1 and 2 threads. */
static void atss_positives_equal_detloss_atss_assign(void **state) {
  (void)state;
  float s0[1] = {32}, s1[1] = {64}, s2[1] = {128}, rat[2] = {0.5f, 1.0f};
  detloss_anchor_level lv[3] = {{0, 0, 8, 8, s0, 1, rat, 2, NULL, 0, NULL, 0},
                                {0, 0, 16, 16, s1, 1, rat, 2, NULL, 0, NULL, 0},
                                {0, 0, 32, 32, s2, 1, rat, 2, NULL, 0, NULL, 0}};
  detloss_anchor_config grid = {lv, 3, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  dl_rng rng = {16};
  enum { N = 6, GMAX = 8 };
  float hw[2 * N];
  size_t start[N + 1];
  float boxes[4 * N * GMAX];
  start[0] = 0;
  for (int i = 0; i < N; i++) {
    float H = (float)(int)urand(&rng, 40, 200), W = (float)(int)urand(&rng, 40, 200);
    hw[2 * i] = H;
    hw[2 * i + 1] = W;
    size_t G = (size_t)urand(&rng, 0, GMAX + 0.999);
    start[i + 1] = start[i] + G;
    for (size_t j = start[i]; j < start[i + 1]; j++) {
      float w = (float)urand(&rng, 2, W), h = (float)urand(&rng, 2, H);
      float x = (float)urand(&rng, 0, W - w), y = (float)urand(&rng, 0, H - h);
      float *b = boxes + 4 * j;
      b[0] = x;
      b[1] = y;
      b[2] = x + w;
      b[3] = y + h;
    }
  }
  detloss_eval_dataset d = {N, hw, start, boxes, NULL};
  detloss_eval_anchors src = {&grid, NULL, 0, NULL, 0};
  detloss_eval_options o = detloss_eval_options_default();
  for (int sem = 0; sem < 2; sem++) {
    detloss_eval_assigner as = detloss_eval_assigner_default();
    as.method = DETLOSS_EVAL_METHOD_ATSS;
    as.atss.semantics = sem ? DETLOSS_ATSS_ORIGINAL : DETLOSS_ATSS_MMDET;
    as.atss.anchors_per_location = sem ? 2 : 1;
    detloss_eval_gt g[N * GMAX], g1[N * GMAX];
    detloss_eval_report r, r1;
    o.num_threads = 2;
    assert_int_equal(detloss_anchor_eval_ex(&d, &src, &as, g, &r, &o, NULL), DETLOSS_OK);
    o.num_threads = 1;
    assert_int_equal(detloss_anchor_eval_ex(&d, &src, &as, g1, &r1, &o, NULL), DETLOSS_OK);
    assert_memory_equal(&r, &r1, sizeof r);
    assert_true(r.all.positives_per_gt > 1.0 && r.all.num_gt > 10); /* not a vacuous case */
    for (int i = 0; i < N; i++) {
      size_t G = start[i + 1] - start[i];
      /* the image's anchors, level-major, and its level counts */
      size_t counts[3], A = 0;
      for (size_t l = 0; l < 3; l++) {
        lv[l].feat_h = (size_t)ceilf(hw[2 * i] / lv[l].stride_h);
        lv[l].feat_w = (size_t)ceilf(hw[2 * i + 1] / lv[l].stride_w);
        counts[l] = lv[l].feat_h * lv[l].feat_w * 2;
        A += counts[l];
      }
      float *an = malloc(A * 4 * sizeof(float));
      int64_t *asg = malloc(A * sizeof(int64_t));
      assert_non_null(an);
      assert_non_null(asg);
      assert_int_equal(detloss_anchors_generate(&grid, an, A, NULL), DETLOSS_OK);
      detloss_atss_options ao = as.atss;
      assert_int_equal(detloss_atss_assign(an, A, counts, 3, boxes + 4 * start[i], G, NULL, 0, asg,
                                           NULL, &ao, NULL),
                       DETLOSS_OK);
      for (size_t j = 0; j < G; j++) {
        uint32_t want = 0;
        for (size_t a = 0; a < A; a++) want += asg[a] == (int64_t)j;
        assert_int_equal(g[start[i] + j].num_pos, want);
      }
      free(an);
      free(asg);
      for (size_t l = 0; l < 3; l++) lv[l].feat_h = lv[l].feat_w = 0;
    }
  }
}

/* The assigner's faults name "assigner.*"; NULL is the matcher, bit for bit. */
static void eval_ex_checks_the_assigner(void **state) {
  (void)state;
  float hw[2] = {64, 64};
  size_t start[2] = {0, 1};
  float boxes[4] = {8, 8, 40, 40};
  float size = 16, ratio = 1;
  detloss_anchor_level lv = {0, 0, 16, 16, &size, 1, &ratio, 1, NULL, 0, NULL, 0};
  detloss_anchor_config grid = {&lv, 1, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  detloss_eval_dataset d = {1, hw, start, boxes, NULL};
  detloss_eval_anchors src = {&grid, NULL, 0, NULL, 0};
  detloss_eval_options o = detloss_eval_options_default();
  detloss_eval_report r, r0;
  detloss_eval_gt g[1];
  detloss_error e;
  memset(&r, 0x5a, sizeof r);
  memset(&r0, 0, sizeof r0);
  assert_int_equal(detloss_anchor_eval_ex(&d, &src, NULL, g, &r, &o, NULL), DETLOSS_OK);
  assert_int_equal(detloss_anchor_eval(&d, &src, g, &r0, &o, NULL), DETLOSS_OK);
  assert_memory_equal(&r, &r0, sizeof r);
  detloss_eval_assigner as = detloss_eval_assigner_default();
  assert_int_equal(as.method, DETLOSS_EVAL_METHOD_MAX_IOU);
  assert_int_equal(as.atss.topk, 9);
  as.method = DETLOSS_EVAL_METHOD_SIMOTA;
  memset(&r, 0x5a, sizeof r);
  memcpy(&r0, &r, sizeof r);
  assert_int_equal(detloss_anchor_eval_ex(&d, &src, &as, g, &r, &o, &e), DETLOSS_ERR_UNSUPPORTED);
  assert_string_equal(e.where, "assigner.method");
  assert_non_null(strstr(e.msg, "simota is a dynamic assigner"));
  assert_memory_equal(&r, &r0, sizeof r); /* untouched */
  as.method = DETLOSS_EVAL_METHOD_ATSS;
  as.atss.topk = 0;
  assert_int_equal(detloss_anchor_eval_ex(&d, &src, &as, g, &r, &o, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "assigner.topk");
  as.atss.topk = 9;
  as.method = (detloss_eval_method)17;
  assert_int_equal(detloss_anchor_eval_ex(&d, &src, &as, g, &r, &o, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "assigner.method");
  as.method = DETLOSS_EVAL_METHOD_ATSS;
  o.metric = DETLOSS_EVAL_WH_RATIO;
  assert_int_equal(detloss_anchor_eval_ex(&d, &src, &as, g, &r, &o, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "assigner.method");
  assert_memory_equal(&r, &r0, sizeof r);
}

/* FCOS positives (detloss_anchor_eval_ex, method FCOS, mmdet, no centre sampling) on one
 * 64 x 64 image with two point levels, offset 0.5:
 *   level 0: stride 16, points x, y in {8, 24, 40, 56} (16 points), range [-1, 20]
 *   level 1: stride 32, points x, y in {16, 48} (4 points), range [20, 30]
 *   gt 0 [4,4,28,28] (24 x 24, area 576: small): inside on level 0 (8|24, 8|24), each with
 *     max(l,t,r,b) = 20 (e.g. (8,8): l = t = 4, r = b = 20): in [-1, 20]: 4 positives, each
 *     centerness sqrt(4/20 * 4/20) = 0.2; on level 1 (16,16) is inside (5 points inside in
 *     all) but max = 12 < 20: not positive. best 0.2, level 0.
 *   gt 1 [0,0,64,64] (64 x 64, area 4096: medium): all 20 points inside, but m = 64 and
 *     inside points have max(l,t,r,b) in [32, 64): above 20 and 30: outside every level's
 *     range, no positive (silently in mmdet and FCOS), out_of_range 1.
 *   gt 2 [10,30,14,34] (4 x 4: small): in range (m/2 = 2 <= 20) but no point lies strictly
 *     inside it (x 8 < 10, 24 > 14): no positive, out_of_range 0, num_fit 0.
 * Report: recall 1/3 (one gt with a positive), positives/gt 4/3, points/gt (5 + 20 + 0)/3,
 * mean best 0.2/3, 20 points, level_pos {4, 0}, one gt out of range; worst: gt 1, gt 2 (best
 * 0, data-set order), gt 0. */
static void fcos_positives_of_a_tiny_image_are_hand_checked(void **state) {
  (void)state;
  float hw[2] = {64, 64};
  size_t start[2] = {0, 3};
  float boxes[12] = {4, 4, 28, 28, 0, 0, 64, 64, 10, 30, 14, 34};
  detloss_eval_dataset d = {1, hw, start, boxes, NULL};
  detloss_eval_anchors none;
  memset(&none, 0, sizeof none);
  detloss_eval_assigner as = detloss_eval_assigner_default();
  as.method = DETLOSS_EVAL_METHOD_FCOS;
  as.num_point_levels = 2;
  as.point_strides[0] = 16;
  as.point_strides[1] = 32;
  const float rr[4] = {-1, 20, 20, 30};
  memcpy(as.regress_ranges, rr, sizeof rr);
  as.num_ranges = 2;
  detloss_eval_gt g[3];
  detloss_eval_report r;
  detloss_eval_options o = detloss_eval_options_default();
  for (int cs = 0; cs < 2; cs++) {
    /* centre sampling (radius 1.5 strides = 24 px on level 0) clips to each gt here */
    as.fcos.center_sampling = cs;
    assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, NULL), DETLOSS_OK);
    assert_int_equal(g[0].num_pos, 4);
    assert_int_equal(g[1].num_pos, 0);
    assert_int_equal(g[2].num_pos, 0);
    dl_assert_close1(g[0].best, 0.2, 1e-7, 0);
    assert_true(g[1].best == 0.0f && g[2].best == 0.0f);
    assert_int_equal(g[0].level, 0);
    assert_int_equal(g[1].level, -1);
    assert_int_equal(g[0].num_fit, 5);
    assert_int_equal(g[1].num_fit, 20);
    assert_int_equal(g[2].num_fit, 0);
    assert_int_equal(g[0].out_of_range, 0);
    assert_int_equal(g[1].out_of_range, 1);
    assert_int_equal(g[2].out_of_range, 0);
    assert_int_equal(r.num_anchors, 20);
    assert_int_equal(r.num_out_of_range, 1);
    assert_int_equal(r.all.num_recalled, 1);
    dl_assert_close1(r.all.recall, 1.0 / 3.0, 1e-15, 0);
    dl_assert_close1(r.all.positives_per_gt, 4.0 / 3.0, 1e-15, 0);
    dl_assert_close1(r.all.anchors_per_gt, 25.0 / 3.0, 1e-15, 0);
    dl_assert_close1(r.all.mean_best, (double)g[0].best / 3.0, 1e-15, 0);
    assert_int_equal(r.all.pos_hist[0], 2);
    assert_int_equal(r.all.pos_hist[2], 1);
    assert_int_equal(r.by_size[DETLOSS_EVAL_SMALL].num_gt, 2);
    assert_int_equal(r.by_size[DETLOSS_EVAL_SMALL].pos_hist[0], 1);
    assert_int_equal(r.by_size[DETLOSS_EVAL_MEDIUM].pos_hist[0], 1);
    assert_int_equal(r.num_levels, 2);
    assert_int_equal(r.level_pos[0], 4);
    assert_int_equal(r.level_pos[1], 0);
    assert_int_equal(r.level_best[0], 1);
    assert_int_equal(r.num_worst, 3);
    assert_int_equal(r.worst[0].box, 1);
    assert_int_equal(r.worst[1].box, 2);
    assert_int_equal(r.worst[2].box, 0);
  }
  /* FCOS's default ranges (5 levels; [-1, 64] on level 0): gt 1 (m = 64, inside points at
   * max 32..56) is in range on level 0 and takes the points not taken by the smaller gt 0. */
  as.num_ranges = 0;
  as.num_point_levels = 5;
  for (int l = 2; l < 5; l++) as.point_strides[l] = (float)(16 << l);
  as.fcos.center_sampling = 0;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, NULL), DETLOSS_OK);
  assert_int_equal(g[1].out_of_range, 0);
  assert_int_equal(g[0].num_pos + g[1].num_pos, 16); /* every level-0 point: 16 inside gt 1 */
  assert_int_equal(g[0].num_pos, 4);
}

/* Random images, 3 point levels: the per-gt FCOS positives, best centerness and points
 * inside of detloss_anchor_eval_ex equal those computed from detloss_fcos_targets on the
 * materialized points (level-major, x fastest, (i + 0.5) * stride), with and without centre
 * sampling, and the report is the same for 1 and 2 threads. */
static void fcos_positives_equal_detloss_fcos_targets(void **state) {
  (void)state;
  dl_rng rng = {61};
  enum { N = 6, GMAX = 8 };
  float hw[2 * N];
  size_t start[N + 1];
  float boxes[4 * N * GMAX];
  start[0] = 0;
  for (int i = 0; i < N; i++) {
    float H = (float)(int)urand(&rng, 40, 300), W = (float)(int)urand(&rng, 40, 300);
    hw[2 * i] = H;
    hw[2 * i + 1] = W;
    size_t G = (size_t)urand(&rng, 0, GMAX + 0.999);
    start[i + 1] = start[i] + G;
    for (size_t j = start[i]; j < start[i + 1]; j++) {
      float w = (float)urand(&rng, 2, W), h = (float)urand(&rng, 2, H);
      float x = (float)urand(&rng, 0, W - w), y = (float)urand(&rng, 0, H - h);
      float *b = boxes + 4 * j;
      b[0] = x;
      b[1] = y;
      b[2] = x + w;
      b[3] = y + h;
    }
  }
  detloss_eval_dataset d = {N, hw, start, boxes, NULL};
  detloss_eval_anchors none;
  memset(&none, 0, sizeof none);
  detloss_eval_options o = detloss_eval_options_default();
  const float strides[3] = {8, 16, 32}, rr[6] = {-1, 32, 32, 64, 64, 1e8f};
  for (int cs = 0; cs < 2; cs++) {
    detloss_eval_assigner as = detloss_eval_assigner_default();
    as.method = DETLOSS_EVAL_METHOD_FCOS;
    as.num_point_levels = 3;
    memcpy(as.point_strides, strides, sizeof strides);
    memcpy(as.regress_ranges, rr, sizeof rr);
    as.num_ranges = 3;
    as.fcos.center_sampling = cs;
    detloss_eval_gt g[N * GMAX], g1[N * GMAX];
    detloss_eval_report r, r1;
    o.num_threads = 2;
    assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, NULL), DETLOSS_OK);
    o.num_threads = 1;
    assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g1, &r1, &o, NULL), DETLOSS_OK);
    assert_memory_equal(&r, &r1, sizeof r);
    assert_memory_equal(g, g1, start[N] * sizeof g[0]);
    assert_true(r.all.positives_per_gt > 1.0 && r.all.num_gt > 10); /* not a vacuous case */
    detloss_fcos_options fo = as.fcos;
    fo.regress_ranges = rr;
    for (int i = 0; i < N; i++) {
      size_t G = start[i + 1] - start[i], counts[3], A = 0;
      for (int l = 0; l < 3; l++) {
        counts[l] = (size_t)(ceilf(hw[2 * i] / strides[l]) * ceilf(hw[2 * i + 1] / strides[l]));
        A += counts[l];
      }
      float *pts = malloc(2 * A * sizeof(float)), *ctr = malloc(A * sizeof(float));
      int64_t *asg = malloc(A * sizeof(int64_t));
      assert_true(pts && ctr && asg);
      size_t k = 0;
      for (int l = 0; l < 3; l++) {
        size_t fh = (size_t)ceilf(hw[2 * i] / strides[l]),
               fw = (size_t)ceilf(hw[2 * i + 1] / strides[l]);
        for (size_t y = 0; y < fh; y++)
          for (size_t x = 0; x < fw; x++, k++) {
            pts[2 * k] = ((float)x + 0.5f) * strides[l];
            pts[2 * k + 1] = ((float)y + 0.5f) * strides[l];
          }
      }
      assert_int_equal(detloss_fcos_targets(pts, A, counts, strides, 3, boxes + 4 * start[i], G,
                                            asg, NULL, ctr, &fo, NULL),
                       DETLOSS_OK);
      for (size_t j = 0; j < G; j++) {
        const float *b = boxes + 4 * (start[i] + j);
        uint32_t want = 0, inside = 0;
        float best = 0.0f;
        for (size_t a = 0; a < A; a++) {
          if (asg[a] == (int64_t)j) {
            want++;
            if (ctr[a] > best) best = ctr[a];
          }
          float x = pts[2 * a], y = pts[2 * a + 1];
          inside += x > b[0] && x < b[2] && y > b[1] && y < b[3];
        }
        assert_int_equal(g[start[i] + j].num_pos, want);
        assert_int_equal(g[start[i] + j].num_fit, inside);
        assert_true(g[start[i] + j].best == best);
      }
      free(pts);
      free(ctr);
      free(asg);
    }
  }
}

/* FCOS's faults name "assigner.*", outputs untouched. */
static void fcos_eval_checks_its_point_levels(void **state) {
  (void)state;
  float hw[2] = {64, 64};
  size_t start[2] = {0, 1};
  float boxes[4] = {8, 8, 40, 40};
  detloss_eval_dataset d = {1, hw, start, boxes, NULL};
  detloss_eval_anchors none;
  memset(&none, 0, sizeof none);
  detloss_eval_options o = detloss_eval_options_default();
  detloss_eval_report r, r0;
  detloss_eval_gt g[1];
  detloss_error e;
  memset(&r, 0x5a, sizeof r);
  memcpy(&r0, &r, sizeof r);
  detloss_eval_assigner as = detloss_eval_assigner_default();
  as.method = DETLOSS_EVAL_METHOD_FCOS;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_ERR_SHAPE);
  assert_string_equal(e.where, "assigner.num_point_levels");
  as.num_point_levels = 5;
  for (int l = 0; l < 5; l++) as.point_strides[l] = (float)(8 << l);
  as.point_strides[3] = -64;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "assigner.point_strides[3]");
  as.point_strides[3] = NAN;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_ERR_NONFINITE);
  assert_string_equal(e.where, "assigner.point_strides[3]");
  as.point_strides[3] = 64;
  as.point_offset = 1.0f;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "assigner.point_offset");
  as.point_offset = 0.5f;
  as.num_ranges = 2;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_ERR_SHAPE);
  assert_string_equal(e.where, "assigner.regress_ranges");
  as.num_point_levels = 2;
  as.regress_ranges[0] = 64;
  as.regress_ranges[1] = -1;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "assigner.regress_ranges[0]");
  as.regress_ranges[0] = -1;
  as.regress_ranges[1] = 64;
  as.regress_ranges[2] = 64;
  as.regress_ranges[3] = INFINITY;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_ERR_NONFINITE);
  assert_string_equal(e.where, "assigner.regress_ranges[1]");
  as.regress_ranges[3] = 1e8f;
  as.fcos.center_sample_radius = -1;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "assigner.center_sample_radius");
  as.fcos.center_sample_radius = 1.5f;
  as.point_strides[0] = 1e-30f; /* a 64 px image would have 6.4e31 x 6.4e31 points */
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "assigner.point_strides[0]");
  as.point_strides[0] = 8;
  o.metric = DETLOSS_EVAL_WH_RATIO;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_ERR_RANGE);
  assert_string_equal(e.where, "assigner.method");
  assert_memory_equal(&r, &r0, sizeof r); /* untouched throughout */
  o.metric = DETLOSS_EVAL_IOU;
  assert_int_equal(detloss_anchor_eval_ex(&d, &none, &as, g, &r, &o, &e), DETLOSS_OK);
  assert_int_equal(g[0].num_pos > 0, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(explicit_anchors_hand_worked),
      cmocka_unit_test(tiny_fixture_hand_worked),
      cmocka_unit_test(wh_ratio_hand_worked),
      cmocka_unit_test(size_classes_follow_coco_area_ranges),
      cmocka_unit_test(resize_modes_scale_boxes_as_documented),
      cmocka_unit_test(grid_scan_equals_brute_force_over_generated_anchors),
      cmocka_unit_test(dense_fallback_matches_brute_force),
      cmocka_unit_test(explicit_anchors_equal_brute_force),
      cmocka_unit_test(crowd_and_degenerate_boxes_are_counted_not_evaluated),
      cmocka_unit_test(results_are_bitwise_identical_for_1_2_4_threads),
      cmocka_unit_test(progress_reaches_the_image_count_monotonically),
      cmocka_unit_test(bad_inputs_fail_with_status_and_where),
      cmocka_unit_test(bundled_coco_subset_rpn_matches_torchvision),
      cmocka_unit_test(bundled_coco_subset_yolov5_matches_autoanchor_metric),
      cmocka_unit_test(a_tiny_stride_is_a_range_error_before_any_conversion),
      cmocka_unit_test(outputs_may_not_overlap_inputs_or_each_other),
      cmocka_unit_test(atss_positives_of_a_tiny_image_are_hand_checked),
      cmocka_unit_test(atss_positives_equal_detloss_atss_assign),
      cmocka_unit_test(eval_ex_checks_the_assigner),
      cmocka_unit_test(fcos_positives_of_a_tiny_image_are_hand_checked),
      cmocka_unit_test(fcos_positives_equal_detloss_fcos_targets),
      cmocka_unit_test(fcos_eval_checks_its_point_levels),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
