/*
 * bench_heads.c - the detector losses of issue 5, value + gradients
 * including matching (and RPN sampling), on the workloads:
 *   rpn:    2 images 800x1344, FPN anchors (strides 4..64, sizes 32..512,
 *           ratios 0.5/1/2: 268,569 per image), 20 gt each;
 *   retina: 2 images 800x1344, 201,600 anchors per image (strides 8..128,
 *           3 scales x 3 ratios), 80 classes, 20 gt each.
 *
 * usage: bench_heads [threads=2] [reps=11] [input_dir]
 * With input_dir (written by bench/compare_heads.py) the inputs are read from
 * raw float32 / int64 files there, so detloss and torchvision see the same
 * numbers; without it they are generated here (same shapes, own random data).
 * Prints one JSON object: median and minimum milliseconds per head.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#include "detloss/detloss.h"

#define NIMG 2
#define IMG_H 800
#define IMG_W 1344
#define NGT 20
#define NCLS 80

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static uint64_t rng_state = 2024;
static double rng_uniform(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "bench_heads: out of memory\n");
    exit(1);
  }
  return p;
}

static void read_raw(const char *dir, const char *name, void *dst, size_t bytes) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f || fread(dst, 1, bytes, f) != bytes) {
    fprintf(stderr, "bench_heads: cannot read %zu bytes from %s\n", bytes, path);
    exit(1);
  }
  fclose(f);
}

/* Anchors of a torchvision AnchorGenerator on an 800x1344 image; *cfg_out
 * receives the grid config (static storage), passed to the loss so that it
 * matches with detloss_match_grid. */
static detloss_anchor_level lv_store[2][5];
static float sizes_ret[5][3];
static detloss_anchor_config cfg_store[2];
static float *make_anchors(int retina, size_t *count, const detloss_anchor_config **cfg_out) {
  static const float sizes_rpn[5] = {32, 64, 128, 256, 512};
  static const float ratios[3] = {0.5f, 1.0f, 2.0f};
  static const size_t fh_rpn[5] = {200, 100, 50, 25, 13}, fw_rpn[5] = {336, 168, 84, 42, 21};
  static const size_t fh_ret[5] = {100, 50, 25, 13, 7}, fw_ret[5] = {168, 84, 42, 21, 11};
  detloss_anchor_level *lv = lv_store[retina];
  memset(lv, 0, 5 * sizeof *lv);
  for (int l = 0; l < 5; l++) {
    float base = 32.0f * (float)(1 << l);
    /* torchvision retinanet_resnet50_fpn: x, x*2^(1/3), x*2^(2/3) */
    /* torchvision retinanet_resnet50_fpn: (x, int(x 2^(1/3)), int(x 2^(2/3))) */
    sizes_ret[l][0] = base;
    sizes_ret[l][1] = floorf(base * 1.25992105f);
    sizes_ret[l][2] = floorf(base * 1.58740105f);
    lv[l].feat_h = retina ? fh_ret[l] : fh_rpn[l];
    lv[l].feat_w = retina ? fw_ret[l] : fw_rpn[l];
    lv[l].stride_h = (float)(IMG_H / lv[l].feat_h);
    lv[l].stride_w = (float)(IMG_W / lv[l].feat_w);
    lv[l].sizes = retina ? sizes_ret[l] : &sizes_rpn[l];
    lv[l].num_sizes = retina ? 3 : 1;
    lv[l].ratios = ratios;
    lv[l].num_ratios = 3;
  }
  detloss_anchor_config cfg = {lv, 5, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  cfg_store[retina] = cfg;
  *cfg_out = &cfg_store[retina];
  detloss_error err;
  if (detloss_anchors_count(&cfg, count, &err) != DETLOSS_OK) {
    fprintf(stderr, "bench_heads: %s: %s\n", err.where, err.msg);
    exit(1);
  }
  float *a = xmalloc(*count * 4 * sizeof(float));
  if (detloss_anchors_generate(&cfg, a, *count, &err) != DETLOSS_OK) {
    fprintf(stderr, "bench_heads: %s: %s\n", err.where, err.msg);
    exit(1);
  }
  return a;
}

static void random_gt(float *gt, int64_t *labels) {
  for (int g = 0; g < NGT; g++) {
    float x = (float)(rng_uniform() * (IMG_W - 64)), y = (float)(rng_uniform() * (IMG_H - 64));
    float w = (float)(16 + rng_uniform() * 300), h = (float)(16 + rng_uniform() * 300);
    gt[4 * g] = x;
    gt[4 * g + 1] = y;
    gt[4 * g + 2] = x + w < IMG_W ? x + w : IMG_W;
    gt[4 * g + 3] = y + h < IMG_H ? y + h : IMG_H;
    if (labels) labels[g] = (int64_t)(rng_uniform() * NCLS);
  }
}

static double median_and_min(double *t, int reps, double *mn) {
  qsort(t, (size_t)reps, sizeof(double), cmp_double);
  *mn = t[0];
  return t[reps / 2];
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  int reps = argc > 2 ? atoi(argv[2]) : 11;
  const char *dir = argc > 3 ? argv[3] : NULL;
  detloss_error err;
  double *t = xmalloc((size_t)reps * sizeof(double));

  /* ---- RPN ---- */
  size_t A;
  const detloss_anchor_config *cfg;
  float *anchors = make_anchors(0, &A, &cfg);
  detloss_head_image im[NIMG];
  memset(im, 0, sizeof im);
  float *gt = xmalloc(NIMG * NGT * 4 * sizeof(float));
  float *obj = xmalloc(NIMG * A * sizeof(float)), *del = xmalloc(NIMG * A * 4 * sizeof(float));
  float *gobj = xmalloc(NIMG * A * sizeof(float)), *gdel = xmalloc(NIMG * A * 4 * sizeof(float));
  if (dir) {
    read_raw(dir, "rpn_gt.f32", gt, NIMG * NGT * 4 * sizeof(float));
    read_raw(dir, "rpn_objectness.f32", obj, NIMG * A * sizeof(float));
    read_raw(dir, "rpn_deltas.f32", del, NIMG * A * 4 * sizeof(float));
  } else {
    for (int i = 0; i < NIMG; i++) random_gt(gt + i * NGT * 4, NULL);
    for (size_t k = 0; k < NIMG * A; k++) obj[k] = (float)(4.0 * (rng_uniform() - 0.5));
    for (size_t k = 0; k < NIMG * A * 4; k++) del[k] = (float)(0.4 * (rng_uniform() - 0.5));
  }
  for (int i = 0; i < NIMG; i++) {
    im[i].anchors = anchors;
    im[i].anchor_config = getenv("BENCH_PLAIN_MATCH") ? NULL : cfg;
    im[i].num_anchors = A;
    im[i].num_predictions = A;
    im[i].gt = gt + i * NGT * 4;
    im[i].num_gt = NGT;
    im[i].image_h = IMG_H;
    im[i].image_w = IMG_W;
    im[i].objectness = obj + (size_t)i * A;
    im[i].deltas = del + (size_t)i * A * 4;
    im[i].grad_objectness = gobj + (size_t)i * A;
    im[i].grad_deltas = gdel + (size_t)i * A * 4;
  }
  detloss_rpn_options ro = detloss_rpn_options_default();
  ro.num_threads = threads;
  /* a training loop keeps its scratch between steps */
  if (detloss_rpn_workspace_size(im, NIMG, &ro.workspace_size, &err) != DETLOSS_OK) return 1;
  ro.workspace = getenv("BENCH_NO_WORKSPACE") ? NULL : xmalloc(ro.workspace_size);
  detloss_head_result res;
  if (detloss_rpn_loss(im, NIMG, &res, NULL, &ro, &err) != DETLOSS_OK) {
    fprintf(stderr, "bench_heads: rpn: %s: %s\n", err.where, err.msg);
    return 1;
  }
  for (int r = 0; r < reps; r++) {
    double t0 = now_ms();
    detloss_rpn_loss(im, NIMG, &res, NULL, &ro, &err);
    t[r] = now_ms() - t0;
  }
  double rpn_min, rpn_med = median_and_min(t, reps, &rpn_min);
  printf("{\"threads\": %d, \"reps\": %d,\n", threads, reps);
  printf(" \"rpn\": {\"anchors_per_image\": %zu, \"median_ms\": %.4f, \"min_ms\": %.4f, "
         "\"loss_objectness\": %.9g, \"loss_box_reg\": %.9g, \"num_pos\": %zu, \"num_neg\": %zu},\n",
         A, rpn_med, rpn_min, (double)res.loss_cls, (double)res.loss_box_reg, res.num_sampled_pos,
         res.num_sampled_neg);
  free(ro.workspace);
  free(anchors);
  free(gt);
  free(obj);
  free(del);
  free(gobj);
  free(gdel);

  if (getenv("BENCH_ONLY_RPN")) {
    printf(" \"retina\": null}\n");
    return 0;
  }
  /* ---- RetinaNet ---- */
  anchors = make_anchors(1, &A, &cfg);
  gt = xmalloc(NIMG * NGT * 4 * sizeof(float));
  int64_t *labels = xmalloc(NIMG * NGT * sizeof(int64_t));
  float *cls = xmalloc(NIMG * A * NCLS * sizeof(float));
  float *gcls = xmalloc(NIMG * A * NCLS * sizeof(float));
  del = xmalloc(NIMG * A * 4 * sizeof(float));
  gdel = xmalloc(NIMG * A * 4 * sizeof(float));
  if (dir) {
    read_raw(dir, "retina_gt.f32", gt, NIMG * NGT * 4 * sizeof(float));
    read_raw(dir, "retina_labels.i64", labels, NIMG * NGT * sizeof(int64_t));
    read_raw(dir, "retina_cls_logits.f32", cls, NIMG * A * NCLS * sizeof(float));
    read_raw(dir, "retina_deltas.f32", del, NIMG * A * 4 * sizeof(float));
  } else {
    for (int i = 0; i < NIMG; i++) random_gt(gt + i * NGT * 4, labels + i * NGT);
    for (size_t k = 0; k < NIMG * A * NCLS; k++) cls[k] = (float)(-4.6 + 6.0 * (rng_uniform() - 0.5));
    for (size_t k = 0; k < NIMG * A * 4; k++) del[k] = (float)(0.4 * (rng_uniform() - 0.5));
  }
  for (int i = 0; i < NIMG; i++) {
    memset(&im[i], 0, sizeof im[i]);
    im[i].anchors = anchors;
    im[i].anchor_config = getenv("BENCH_PLAIN_MATCH") ? NULL : cfg;
    im[i].num_anchors = A;
    im[i].num_predictions = A;
    im[i].gt = gt + i * NGT * 4;
    im[i].labels = labels + i * NGT;
    im[i].num_gt = NGT;
    im[i].image_h = IMG_H;
    im[i].image_w = IMG_W;
    im[i].cls_logits = cls + (size_t)i * A * NCLS;
    im[i].deltas = del + (size_t)i * A * 4;
    im[i].grad_cls_logits = gcls + (size_t)i * A * NCLS;
    im[i].grad_deltas = gdel + (size_t)i * A * 4;
  }
  detloss_retina_options to = detloss_retina_options_default();
  to.num_threads = threads;
  if (detloss_retina_workspace_size(im, NIMG, NCLS, &to.workspace_size, &err) != DETLOSS_OK)
    return 1;
  to.workspace = getenv("BENCH_NO_WORKSPACE") ? NULL : xmalloc(to.workspace_size);
  if (detloss_retina_loss(im, NIMG, NCLS, &res, NULL, &to, &err) != DETLOSS_OK) {
    fprintf(stderr, "bench_heads: retina: %s: %s\n", err.where, err.msg);
    return 1;
  }
  for (int r = 0; r < reps; r++) {
    double t0 = now_ms();
    detloss_retina_loss(im, NIMG, NCLS, &res, NULL, &to, &err);
    t[r] = now_ms() - t0;
  }
  double ret_min, ret_med = median_and_min(t, reps, &ret_min);
  printf(" \"retina\": {\"anchors_per_image\": %zu, \"classes\": %d, \"median_ms\": %.4f, "
         "\"min_ms\": %.4f, \"loss_cls\": %.9g, \"loss_box_reg\": %.9g, \"num_pos\": %zu}}\n",
         A, NCLS, ret_med, ret_min, (double)res.loss_cls, (double)res.loss_box_reg, res.num_pos);
  free(to.workspace);
  free(anchors);
  free(gt);
  free(labels);
  free(cls);
  free(gcls);
  free(del);
  free(gdel);
  free(t);
  return 0;
}
