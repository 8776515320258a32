/*
 * workloads.c - the standard workloads of `detloss bench`.
 *
 * Inputs are deterministic (bench_u01/bench_normal with fixed seeds) and
 * mirrored by bench/compare_torchvision.py, so torchvision times the very
 * same numbers. Sizes follow the torchvision detectors at 800x1344:
 *   FPN anchors: sizes 32..512 on feature maps 200x336 .. 13x21 (strides =
 *   image size // feature size, as torchvision's AnchorGenerator computes
 *   them), ratios 0.5/1/2: 268,569 anchors.
 *   RetinaNet: strides 8..128, 3 scales x 3 ratios: 201,600 anchors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss.h"
#include "detloss/detloss_json.h"
#include "cli/cli.h"
#include "harness.h"
#include "parallel.h"

#define SEED_GT 7
#define SEED_LOGITS 11
#define SEED_TARGETS 13

typedef struct fpn_setup {
  detloss_anchor_level levels[5];
  float sizes[5];
  float ratios[3];
  detloss_anchor_config cfg;
  float img_h, img_w;
  size_t count;
  float *anchors;
} fpn_setup;

/* torchvision's FPN feature maps for an image of h x w: ceil(h / 2^k) for
 * k = 2..6 (the backbone halves with rounding up), strides h // feat. */
static int fpn_init(fpn_setup *s, float img_h, float img_w) {
  memset(s, 0, sizeof *s);
  s->img_h = img_h;
  s->img_w = img_w;
  s->ratios[0] = 0.5f;
  s->ratios[1] = 1.0f;
  s->ratios[2] = 2.0f;
  for (int l = 0; l < 5; l++) {
    size_t div = (size_t)4 << l;
    size_t fh = ((size_t)img_h + div - 1) / div, fw = ((size_t)img_w + div - 1) / div;
    s->sizes[l] = (float)(32 << l);
    detloss_anchor_level *lv = &s->levels[l];
    lv->feat_h = fh;
    lv->feat_w = fw;
    lv->stride_h = (float)((size_t)img_h / fh);
    lv->stride_w = (float)((size_t)img_w / fw);
    lv->sizes = &s->sizes[l];
    lv->num_sizes = 1;
    lv->ratios = s->ratios;
    lv->num_ratios = 3;
  }
  s->cfg.levels = s->levels;
  s->cfg.num_levels = 5;
  s->cfg.convention = DETLOSS_ANCHORS_TORCHVISION;
  s->cfg.offset = 0.0f;
  detloss_error err;
  if (detloss_anchors_count(&s->cfg, &s->count, &err) != DETLOSS_OK) return 0;
  s->anchors = malloc(s->count * 4 * sizeof(float));
  if (!s->anchors) return 0;
  return detloss_anchors_generate(&s->cfg, s->anchors, s->count, &err) == DETLOSS_OK;
}

/* The standard image (800 x 1344, or 256 x 320 for --small), times
 * --image-scale, rounded to a multiple of 32 as torchvision pads it. */
static void image_size(const bench_run *run, float *h, float *w) {
  double H = run->small ? 256.0 : 800.0, W = run->small ? 320.0 : 1344.0;
  if (run->image_scale > 0) {
    H = 32.0 * ceil(H * run->image_scale / 32.0);
    W = 32.0 * ceil(W * run->image_scale / 32.0);
  }
  *h = (float)H;
  *w = (float)W;
}

static void match_fpn(bench_run *run, size_t g) {
  fpn_setup s;
  float img_h, img_w;
  image_size(run, &img_h, &img_w);
  if (run->gt > 0) g = (size_t)run->gt;
  if (!fpn_init(&s, img_h, img_w)) {
    run->failed = 1;
    return;
  }
  float *gt = malloc(g * 4 * sizeof(float));
  int64_t *m1 = malloc(s.count * sizeof(int64_t)), *m2 = malloc(s.count * sizeof(int64_t));
  float *v1 = malloc(s.count * sizeof(float)), *v2 = malloc(s.count * sizeof(float));
  if (!gt || !m1 || !m2 || !v1 || !v2) {
    run->failed = 1;
    goto done;
  }
  bench_gt_boxes(SEED_GT + g, g, img_h, img_w, gt);
  detloss_match_options mo = detloss_match_options_default(); /* RPN: 0.7 / 0.3, low quality */
  mo.num_threads = run->threads;
  detloss_error err;
  for (int r = 0; r < run->warmup + run->repeats; r++) {
    double t0 = bench_now_ms();
    detloss_status st = detloss_match_grid(&s.cfg, gt, g, NULL, m1, v1, s.count, &mo, &err);
    double t1 = bench_now_ms();
    detloss_status st2 = detloss_match(s.anchors, s.count, gt, g, NULL, m2, v2, &mo, &err);
    double t2 = bench_now_ms();
    if (st != DETLOSS_OK || st2 != DETLOSS_OK) {
      run->failed = 1;
      goto done;
    }
    if (r >= run->warmup) {
      bench_record(run, "match", t1 - t0);
      bench_record(run, "match_plain", t2 - t1);
    }
  }
  /* The grid path must equal the plain path (the library's normal API). */
  if (memcmp(m1, m2, s.count * sizeof(int64_t)) != 0 || memcmp(v1, v2, s.count * sizeof(float)))
    run->failed = 1;
  size_t pos = 0;
  for (size_t a = 0; a < s.count; a++) pos += m1[a] >= 0;
  run->check = (double)pos;
  run->check_name = "num_matched";
  snprintf(run->note, sizeof run->note, "%zu anchors, %zu gt", s.count, g);
done:
  free(s.anchors);
  free(gt);
  free(m1);
  free(m2);
  free(v1);
  free(v2);
}

static void w_match_fpn_g20(bench_run *run) { match_fpn(run, 20); }
static void w_match_fpn_g100(bench_run *run) { match_fpn(run, 100); }

/* focal_16m: sigmoid focal loss over 201,600 x 80 logits, and the floor. */

typedef struct floor_ctx {
  const float *x;
  float *g;
} floor_ctx;

/* The memory floor: read each logit, write one gradient value. */
static void floor_block(void *vctx, size_t i0, size_t i1, size_t block) {
  const floor_ctx *f = vctx;
  (void)block;
  for (size_t i = i0; i < i1; i++) f->g[i] = f->x[i] * 0.5f;
}

/* Logits N(0,1); about 1% of anchors have one positive class. */
static void focal_inputs(size_t anchors, size_t classes, float *x, float *y) {
  for (size_t i = 0; i < anchors * classes; i++) x[i] = (float)bench_normal(SEED_LOGITS, i);
  memset(y, 0, anchors * classes * sizeof(float));
  for (size_t a = 0; a < anchors; a++)
    if (bench_u01(SEED_TARGETS, 2 * a) < 0.01)
      y[a * classes + (size_t)(bench_u01(SEED_TARGETS, 2 * a + 1) * (double)classes)] = 1.0f;
}

static void w_focal_16m(bench_run *run) {
  size_t anchors = run->small ? 2000 : 201600, n;
  size_t classes = run->classes > 0 ? (size_t)run->classes : 80;
  if (run->image_scale > 0)
    anchors = (size_t)((double)anchors * run->image_scale * run->image_scale);
  n = anchors * classes;
  float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
  float *g = malloc(n * sizeof(float));
  if (!x || !y || !g) {
    run->failed = 1;
    goto done;
  }
  focal_inputs(anchors, classes, x, y);
  detloss_error err;
  floor_ctx fc = {x, g};
  float loss = 0, loss2 = 0;
  for (int r = 0; r < run->warmup + run->repeats; r++) {
    double t0 = bench_now_ms();
    detloss_status s1 = detloss_sigmoid_focal_loss(x, y, n, 0.25f, 2.0f, DETLOSS_REDUCTION_SUM,
                                                   &loss2, NULL, run->threads, &err);
    double t1 = bench_now_ms();
    detloss_status s2 = detloss_sigmoid_focal_loss(x, y, n, 0.25f, 2.0f, DETLOSS_REDUCTION_SUM,
                                                   &loss, g, run->threads, &err);
    double t2 = bench_now_ms();
    dl_parallel_blocks(n, 16384, run->threads, floor_block, &fc);
    double t3 = bench_now_ms();
    if (s1 != DETLOSS_OK || s2 != DETLOSS_OK || !isfinite(loss) || loss != loss2) {
      run->failed = 1;
      goto done;
    }
    if (r >= run->warmup) {
      bench_record(run, "fwd", t1 - t0);
      bench_record(run, "fwd_bwd", t2 - t1);
      bench_record(run, "floor", t3 - t2);
    }
  }
  run->check = (double)loss;
  run->check_name = "loss_sum";
  snprintf(run->note, sizeof run->note, "%zu x %zu logits", anchors, classes);
done:
  free(x);
  free(y);
  free(g);
}

/* rpn_fpn_b2, retina_b2: the detector losses, value + gradients, matching
 * included. Stages: assign (the batch's grid matching alone), total (the
 * whole loss call: matching, sampling, targets, loss and gradients), and
 * loss_fwd_bwd = total - assign of the same run. */

#define SEED_OBJ 17
#define SEED_DELTAS 19
#define SEED_CLS 23
#define SEED_LABELS 29
#define HEAD_IMAGES 2
#define HEAD_GT 20

/* RetinaNet anchors (torchvision retinanet_resnet50_fpn): P3-P7, strides 8..128,
 * sizes (x, int(x 2^(1/3)), int(x 2^(2/3))) for x = 32..512, ratios 0.5/1/2. */
static int retina_init(fpn_setup *s, float img_h, float img_w, float *sizes15) {
  static const float SZ[15] = {32,  40,  50,  64,  80,  101, 128, 161,
                               203, 256, 322, 406, 512, 645, 812};
  memset(s, 0, sizeof *s);
  memcpy(sizes15, SZ, sizeof SZ);
  s->img_h = img_h;
  s->img_w = img_w;
  s->ratios[0] = 0.5f;
  s->ratios[1] = 1.0f;
  s->ratios[2] = 2.0f;
  for (int l = 0; l < 5; l++) {
    size_t div = (size_t)8 << l;
    size_t fh = ((size_t)img_h + div - 1) / div, fw = ((size_t)img_w + div - 1) / div;
    detloss_anchor_level *lv = &s->levels[l];
    lv->feat_h = fh;
    lv->feat_w = fw;
    lv->stride_h = (float)((size_t)img_h / fh);
    lv->stride_w = (float)((size_t)img_w / fw);
    lv->sizes = sizes15 + 3 * l;
    lv->num_sizes = 3;
    lv->ratios = s->ratios;
    lv->num_ratios = 3;
  }
  s->cfg.levels = s->levels;
  s->cfg.num_levels = 5;
  detloss_error err;
  if (detloss_anchors_count(&s->cfg, &s->count, &err) != DETLOSS_OK) return 0;
  s->anchors = malloc(s->count * 4 * sizeof(float));
  if (!s->anchors) return 0;
  return detloss_anchors_generate(&s->cfg, s->anchors, s->count, &err) == DETLOSS_OK;
}

static void head_workload(bench_run *run, int retina) {
  float img_h, img_w;
  image_size(run, &img_h, &img_w);
  size_t C = retina ? (run->classes > 0 ? (size_t)run->classes : 80) : 1;
  size_t G = run->gt > 0 ? (size_t)run->gt : HEAD_GT;
  fpn_setup s;
  float sizes15[15];
  detloss_head_image im[HEAD_IMAGES];
  float *gt = NULL, *pred = NULL, *deltas = NULL, *gpred = NULL, *gdel = NULL;
  int64_t *labels = NULL, *m = NULL;
  float *miou = NULL;
  if (!(retina ? retina_init(&s, img_h, img_w, sizes15) : fpn_init(&s, img_h, img_w))) {
    run->failed = 1;
    return;
  }
  size_t A = s.count;
  gt = malloc(HEAD_IMAGES * G * 4 * sizeof(float));
  labels = malloc(HEAD_IMAGES * G * sizeof(int64_t));
  pred = malloc(HEAD_IMAGES * A * C * sizeof(float));
  gpred = malloc(HEAD_IMAGES * A * C * sizeof(float));
  deltas = malloc(HEAD_IMAGES * A * 4 * sizeof(float));
  gdel = malloc(HEAD_IMAGES * A * 4 * sizeof(float));
  m = malloc(A * sizeof(int64_t));
  miou = malloc(A * sizeof(float));
  if (!gt || !labels || !pred || !gpred || !deltas || !gdel || !m || !miou) {
    run->failed = 1;
    goto done;
  }
  /* objectness / class logits N(0,1), deltas N(0, 0.5), labels uniform */
  for (size_t i = 0; i < HEAD_IMAGES * A * C; i++)
    pred[i] = (float)bench_normal(retina ? SEED_CLS : SEED_OBJ, i);
  for (size_t i = 0; i < HEAD_IMAGES * A * 4; i++)
    deltas[i] = (float)(0.5 * bench_normal(SEED_DELTAS, i));
  for (size_t i = 0; i < HEAD_IMAGES * G; i++)
    labels[i] = (int64_t)(bench_u01(SEED_LABELS, i) * (double)C);
  memset(im, 0, sizeof im);
  for (size_t b = 0; b < HEAD_IMAGES; b++) {
    bench_gt_boxes(SEED_GT + 1000 * (b + 1), G, img_h, img_w, gt + b * G * 4);
    im[b].anchors = s.anchors;
    im[b].num_anchors = A;
    im[b].anchor_config = &s.cfg;
    im[b].gt = gt + b * G * 4;
    im[b].num_gt = G;
    im[b].labels = retina ? labels + b * G : NULL;
    im[b].image_h = img_h;
    im[b].image_w = img_w;
    im[b].num_predictions = A;
    if (retina) {
      im[b].cls_logits = pred + b * A * C;
      im[b].grad_cls_logits = gpred + b * A * C;
    } else {
      im[b].objectness = pred + b * A;
      im[b].grad_objectness = gpred + b * A;
    }
    im[b].deltas = deltas + b * A * 4;
    im[b].grad_deltas = gdel + b * A * 4;
  }
  detloss_rpn_options ro = detloss_rpn_options_default();
  detloss_retina_options to = detloss_retina_options_default();
  ro.num_threads = to.num_threads = run->threads;
  detloss_match_options mo = retina ? to.match : ro.match;
  mo.num_threads = run->threads;
  detloss_head_result res;
  detloss_error err;
  for (int r = 0; r < run->warmup + run->repeats; r++) {
    double t0 = bench_now_ms();
    for (size_t b = 0; b < HEAD_IMAGES; b++)
      if (detloss_match_grid(&s.cfg, im[b].gt, G, NULL, m, miou, A, &mo, &err) != DETLOSS_OK) {
        run->failed = 1;
        goto done;
      }
    double t1 = bench_now_ms();
    detloss_status st = retina ? detloss_retina_loss(im, HEAD_IMAGES, C, &res, NULL, &to, &err)
                               : detloss_rpn_loss(im, HEAD_IMAGES, &res, NULL, &ro, &err);
    double t2 = bench_now_ms();
    if (st != DETLOSS_OK || res.nonfinite) {
      fprintf(stderr, "%s: %s: %s\n", retina ? "retina_b2" : "rpn_fpn_b2", err.where, err.msg);
      run->failed = 1;
      goto done;
    }
    if (r >= run->warmup) {
      bench_record(run, "assign", t1 - t0);
      bench_record(run, "loss_fwd_bwd", (t2 - t1) - (t1 - t0));
      bench_record(run, "total", t2 - t1);
    }
  }
  run->check = (double)res.loss_cls + (double)res.loss_box_reg;
  run->check_name = "loss_sum";
  snprintf(run->note, sizeof run->note,
           "%d images x %zu anchors%s, %zu gt each; loss_cls %.6f, "
           "loss_box_reg %.6f",
           HEAD_IMAGES, A, retina ? " x 80 classes" : "", G, (double)res.loss_cls,
           (double)res.loss_box_reg);
done:
  free(s.anchors);
  free(gt);
  free(labels);
  free(pred);
  free(gpred);
  free(deltas);
  free(gdel);
  free(m);
  free(miou);
}

static void w_rpn_fpn_b2(bench_run *run) { head_workload(run, 0); }
static void w_retina_b2(bench_run *run) { head_workload(run, 1); }

/* eval_coco: `detloss eval`'s core on the bundled data set. */

static void w_eval_coco(bench_run *run) {
  dl_data_dirs dirs;
  char cfg_file[DL_PATH_CAP];
  dl_cli_data_dirs(&dirs);
  detloss_config *cfg = NULL;
  detloss_dataset *ds = NULL;
  detloss_eval_gt *gt = NULL;
  detloss_eval_report *rep = NULL;
  detloss_error err;
  /* The README's main job: torchvision's FPN RPN anchors on the COCO subset.
   * Loading (JSON parsing) is its own stage. */
  double t0 = bench_now_ms();
  if (dl_cli_config_path("torchvision_fasterrcnn_fpn_rpn", &dirs, cfg_file, sizeof cfg_file) !=
      DL_EXIT_OK) {
    run->failed = 1;
    goto done;
  }
  if (detloss_config_load(cfg_file, dirs.search, &cfg, &err) != DETLOSS_OK ||
      detloss_dataset_load(cfg->dataset_path, &ds, &err) != DETLOSS_OK) {
    fprintf(stderr, "eval_coco: %s: %s\n", err.where, err.msg);
    run->failed = 1;
    goto done;
  }
  bench_record(run, "load", bench_now_ms() - t0);
  gt = malloc((ds->num_boxes ? ds->num_boxes : 1) * sizeof *gt);
  rep = malloc(sizeof *rep);
  if (!gt || !rep) {
    run->failed = 1;
    goto done;
  }
  detloss_eval_options o = cfg->eval;
  o.num_threads = run->threads;
  detloss_eval_dataset view = detloss_dataset_view(ds);
  detloss_eval_anchors src = detloss_config_eval_anchors(cfg);
  for (int r = 0; r < run->warmup + run->repeats; r++) {
    double t1 = bench_now_ms();
    if (detloss_anchor_eval(&view, &src, gt, rep, &o, &err) != DETLOSS_OK) {
      run->failed = 1;
      goto done;
    }
    if (r >= run->warmup) bench_record(run, "eval", bench_now_ms() - t1);
  }
  run->check = rep->all.recall;
  run->check_name = "recall";
  snprintf(run->note, sizeof run->note, "%zu images, %zu gt", view.num_images, rep->all.num_gt);
done:
  free(gt);
  free(rep);
  if (ds) detloss_dataset_free(ds);
  if (cfg) detloss_config_free(cfg);
}

const bench_workload bench_workloads[] = {
    {"match_fpn_g20", "match 268,569 FPN anchors to 20 gt (RPN matcher)", w_match_fpn_g20},
    {"match_fpn_g100", "match 268,569 FPN anchors to 100 gt (RPN matcher)", w_match_fpn_g100},
    {"focal_16m", "sigmoid focal loss + gradient over 201,600 x 80 logits, and the memory floor",
     w_focal_16m},
    {"rpn_fpn_b2", "RPN loss + gradients, 2 images x 268,569 FPN anchors, 20 gt each",
     w_rpn_fpn_b2},
    {"retina_b2", "RetinaNet loss + gradients, 2 images x 201,600 anchors x 80 classes, 20 gt each",
     w_retina_b2},
    {"eval_coco", "detloss eval core: FPN RPN anchors on the bundled COCO subset", w_eval_coco},
    /* @@workloads */
};
const size_t bench_num_workloads = sizeof bench_workloads / sizeof bench_workloads[0];
