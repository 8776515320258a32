/*
 * bench_loss_quality.c - the quality losses (value + gradient w.r.t. the
 * logits, reduction SUM) at detector sizes, against a plain memory pass.
 *
 * usage: bench_loss_quality [threads=2] [reps=9] [images=16]
 *   QFL: images x 8,400 anchors x 80 classes (YOLOv8 / GFL at 640 x 640),
 *        scores y = 0 except one class of every 10th anchor (y uniform in (0, 1));
 *   DFL: images x 8,400 anchors x 4 sides, 16 bins (ultralytics reg_max 15),
 *        targets uniform in [0, 15];
 *   VFL: the QFL inputs (mmdetection defaults: alpha 0.75, gamma 2, iou_weighted).
 * Logits are N(0, 2^2) from bench_normal (compare_quality.py draws the same).
 * floor: one pass reading the logits and the targets and writing the gradient
 * (g = x - y, the least any of these losses must move), with the same number
 * of threads over the same fixed blocks; the closest a kernel can come.
 * Prints one JSON object: the median (and min) time in ms of each, the loss
 * values (a cross-check with compare_quality.py) and whether each loss gives
 * the same bits (value and gradient) at 1 thread as at `threads`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss.h"
#include "harness.h"
#include "loss_internal.h"

#define A 8400u
#define C 80u
#define BINS 16u

typedef struct floor_ctx {
  const float *x, *y;
  float *g;
  size_t per_y; /* inputs per target: 1 (QFL, VFL) or BINS (DFL) */
} floor_ctx;

static double floor_block(void *v, size_t i0, size_t i1) {
  const floor_ctx *f = (const floor_ctx *)v;
  for (size_t i = i0; i < i1; i++) f->g[i] = f->x[i] - f->y[i / f->per_y];
  return 0.0;
}

static void time_floor(const char *name, floor_ctx *fc, size_t n, int threads, double *ms,
                       int reps) {
  for (int r = 0; r < reps + 1; r++) {
    double t0 = bench_now_ms(), sink = 0.0;
    dl_parallel_sum(n, 16384, threads, floor_block, fc, &sink, NULL);
    if (r > 0) ms[r - 1] = bench_now_ms() - t0;
  }
  bench_sort(ms, reps);
  printf("\"%s_ms\": %.3f, \"%s_min_ms\": %.3f, ", name, ms[reps / 2], name, ms[0]);
}

typedef struct job {
  const char *name;
  detloss_loss_kind kind;
  const float *x, *y;
  size_t n, c; /* rows and columns (VFL: n elements, c = 1) */
} job;

static detloss_status run_job(const job *j, int threads, float *loss, float *g) {
  detloss_loss_options o = detloss_loss_options_default(j->kind);
  o.num_threads = threads;
  o.reduction = DETLOSS_REDUCTION_SUM;
  if (j->kind == DETLOSS_LOSS_VARIFOCAL)
    return detloss_loss_elementwise(j->kind, j->x, j->y, NULL, j->n, loss, g, &o, NULL);
  return detloss_loss_rows(j->kind, j->x, j->y, NULL, j->n, j->c, loss, g, &o, NULL);
}

static void report(const char *name, double *ms, int reps, int last) {
  bench_sort(ms, reps);
  printf("\"%s_ms\": %.3f, \"%s_min_ms\": %.3f%s", name, ms[reps / 2], name, ms[0],
         last ? "" : ", ");
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  int reps = argc > 2 ? atoi(argv[2]) : 9;
  size_t images = argc > 3 ? (size_t)atol(argv[3]) : 16;
  if (reps < 1 || reps > BENCH_MAX_REPEATS) reps = 9;
  const size_t nq = images * A * C, nd = images * A * 4;
  float *xq = malloc(nq * sizeof(float)), *yq = malloc(nq * sizeof(float));
  float *xd = malloc(nd * BINS * sizeof(float)), *yd = malloc(nd * sizeof(float));
  float *g = malloc(nq * sizeof(float)), *g1 = malloc(nq * sizeof(float));
  double *ms = malloc((size_t)reps * sizeof(double));
  if (!xq || !yq || !xd || !yd || !g || !g1 || !ms) return 1;
  for (size_t i = 0; i < nq; i++) {
    xq[i] = (float)(2.0 * bench_normal(11, i));
    yq[i] = 0.0f;
  }
  for (size_t a = 0; a < images * A; a += 10) /* every 10th anchor: one class, score in (0, 1) */
    yq[a * C + (size_t)(bench_u01(12, a) * C)] = (float)bench_u01(13, a);
  for (size_t i = 0; i < nd * BINS; i++) xd[i] = (float)(2.0 * bench_normal(14, i));
  for (size_t i = 0; i < nd; i++) yd[i] = (float)(bench_u01(15, i) * (BINS - 1));

  const job jobs[3] = {{"qfl", DETLOSS_LOSS_QUALITY_FOCAL, xq, yq, images * A, C},
                       {"dfl", DETLOSS_LOSS_DISTRIBUTION_FOCAL, xd, yd, nd, BINS},
                       {"vfl", DETLOSS_LOSS_VARIFOCAL, xq, yq, nq, 1}};
  printf("{\"threads\": %d, \"images\": %zu, ", threads, images);
  floor_ctx fq = {xq, yq, g, 1}, fd = {xd, yd, g, BINS};
  time_floor("floor_qfl", &fq, nq, threads, ms, reps);
  time_floor("floor_dfl", &fd, nd * BINS, threads, ms, reps);
  for (int k = 0; k < 3; k++) {
    const job *j = &jobs[k];
    float loss = 0, loss1 = 0;
    for (int r = 0; r < reps + 1; r++) {
      double t0 = bench_now_ms();
      if (run_job(j, threads, &loss, g) != DETLOSS_OK) return 1;
      if (r > 0) ms[r - 1] = bench_now_ms() - t0; /* the first run is warm-up */
    }
    if (run_job(j, 1, &loss1, g1) != DETLOSS_OK) return 1;
    size_t len = j->n * j->c;
    int same = memcmp(&loss, &loss1, sizeof loss) == 0 && memcmp(g, g1, len * sizeof(float)) == 0;
    printf("\"%s_loss\": %.9g, \"%s_bitwise_1_vs_%d_threads\": %s, ", j->name, (double)loss,
           j->name, threads, same ? "true" : "false");
    report(j->name, ms, reps, k == 2);
  }
  printf("}\n");
  free(xq);
  free(yq);
  free(xd);
  free(yd);
  free(g);
  free(g1);
  free(ms);
  return 0;
}
