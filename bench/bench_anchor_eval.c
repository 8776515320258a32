/*
 * bench_anchor_eval.c - detloss_anchor_eval() on a large synthetic data set.
 *
 * 100000 images (640 x 480 or 480 x 640), 0-20 boxes each (about 10 on
 * average), sides log-uniform in [4, 600] px with aspect ratios in [1/3, 3],
 * evaluated as `detloss eval` does with configs/torchvision_fasterrcnn_fpn_rpn.json
 * (FPN anchors, resize 800/1333, RPN matcher) and torchvision's RetinaNet anchors,
 * plus the YOLOv5 shape check. Prints one JSON object of timings.
 * usage: bench_anchor_eval [num_images] [threads]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "detloss/detloss.h"
#include "harness.h"

static double now_s(void) { return bench_now_ms() * 1e-3; }

static bench_rng st = {0x9E3779B97F4A7C15ull};
static double u01(void) { return bench_rng_u01(&st); }

static double run(const detloss_eval_dataset *d, const detloss_eval_anchors *src,
                  const detloss_eval_options *o, detloss_eval_report *r) {
  double t = now_s();
  detloss_error err;
  if (detloss_anchor_eval(d, src, NULL, r, o, &err) != DETLOSS_OK) {
    fprintf(stderr, "bench_anchor_eval: %s: %s\n", err.where, err.msg);
    exit(1);
  }
  return now_s() - t;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)atol(argv[1]) : 100000;
  int threads = argc > 2 ? atoi(argv[2]) : 0;
  float *hw = malloc(2 * n * sizeof(float));
  size_t *start = malloc((n + 1) * sizeof(size_t));
  float *boxes = malloc(n * 20 * 4 * sizeof(float));
  size_t t = 0;
  start[0] = 0;
  for (size_t i = 0; i < n; i++) {
    int land = u01() < 0.7;
    float H = land ? 480.0f : 640.0f, W = land ? 640.0f : 480.0f;
    hw[2 * i] = H;
    hw[2 * i + 1] = W;
    int g = (int)(u01() * 21.0);
    for (int j = 0; j < g; j++, t++) {
      double s = exp(log(4.0) + u01() * log(600.0 / 4.0)), a = exp((u01() - 0.5) * 2.0 * log(3.0));
      double w = fmin(s * sqrt(a), W), h = fmin(s / sqrt(a), H);
      double x = u01() * ((double)W - w), y = u01() * ((double)H - h);
      float *b = boxes + 4 * t;
      b[0] = (float)x;
      b[1] = (float)y;
      b[2] = (float)(x + w);
      b[3] = (float)(y + h);
    }
    start[i + 1] = t;
  }
  detloss_eval_dataset d = {n, hw, start, boxes, NULL};
  float r3[3] = {0.5f, 1.0f, 2.0f};
  float fs[5] = {32, 64, 128, 256, 512};
  float rs[15] = {32, 40, 50, 64, 80, 101, 128, 161, 203, 256, 322, 406, 512, 645, 812};
  detloss_anchor_level fpn[5], ret[5];
  for (int l = 0; l < 5; l++) {
    float s4 = (float)(4 << l), s8 = (float)(8 << l);
    detloss_anchor_level a = {0, 0, s4, s4, &fs[l], 1, r3, 3, NULL, 0, NULL, 0};
    detloss_anchor_level b = {0, 0, s8, s8, &rs[3 * l], 3, r3, 3, NULL, 0, NULL, 0};
    fpn[l] = a;
    ret[l] = b;
  }
  detloss_anchor_config gf = {fpn, 5, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  detloss_anchor_config gr = {ret, 5, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  float y5[18] = {10, 13, 16, 30, 33, 23, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198, 373, 326};
  detloss_eval_anchors sf = {&gf, NULL, 0, NULL, 0}, sr = {&gr, NULL, 0, NULL, 0},
                       sy = {NULL, NULL, 0, y5, 9};
  detloss_eval_report *rep = malloc(sizeof *rep);
  detloss_eval_options o = detloss_eval_options_default();
  o.num_threads = threads;
  o.resize_min_size = 800;
  o.resize_max_size = 1333;
  double t_rpn = run(&d, &sf, &o, rep);
  double rec_rpn = rep->all.recall;
  size_t gts = rep->all.num_gt, anchors = rep->num_anchors;
  o.match.high = 0.5f;
  o.match.low = 0.4f;
  double t_ret = run(&d, &sr, &o, rep);
  detloss_eval_options oy = detloss_eval_options_default();
  oy.metric = DETLOSS_EVAL_WH_RATIO;
  oy.resize_max_size = 640;
  oy.num_threads = threads;
  double t_y5 = run(&d, &sy, &oy, rep);
  printf(
      "{\"bench\": \"anchor_eval\", \"images\": %zu, \"gts\": %zu, \"threads\": %d, "
      "\"openmp\": %d, \"fpn_anchors_total\": %zu, \"rpn_fpn_s\": %.3f, \"rpn_recall\": %.6f, "
      "\"retinanet_s\": %.3f, \"yolov5_wh_ratio_s\": %.3f, \"us_per_gt_rpn\": %.3f}\n",
      n, gts, threads, detloss_has_openmp(), anchors, t_rpn, rec_rpn, t_ret, t_y5,
      1e6 * t_rpn / (double)gts);
  free(rep);
  free(hw);
  free(start);
  free(boxes);
  return 0;
}
