/*
 * bench_loss_box.c - IoU-family box losses (value + gradient w.r.t. the
 * predictions, MEAN) and the triplet margin loss (value + all gradients).
 *
 * usage: bench_loss_box [threads=2] [reps=11] [boxes=1000000] [pairs=100000] [dim=128]
 * Prints one JSON object with the median time in milliseconds per loss.
 * The torchvision side is not part of this program: time torchvision.ops'
 * generalized_box_iou_loss (and torch's triplet_margin_loss) on the same sizes,
 * float32, value + backward, with torch.set_num_threads(threads).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "detloss/detloss.h"
#include "harness.h"

static bench_rng rng = {777};
static double rng_uniform(void) { return bench_rng_u01(&rng); }

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  int reps = argc > 2 ? atoi(argv[2]) : 11;
  size_t n = argc > 3 ? (size_t)atol(argv[3]) : 1000000;
  size_t np = argc > 4 ? (size_t)atol(argv[4]) : 100000;
  size_t d = argc > 5 ? (size_t)atol(argv[5]) : 128;
  if (reps < 1 || reps > 1001) reps = 11;
  float *p = malloc(4 * n * sizeof(float)), *t = malloc(4 * n * sizeof(float));
  float *g = malloc(4 * n * sizeof(float));
  float *x[3], *gx[3];
  for (int j = 0; j < 3; j++) {
    x[j] = malloc(np * d * sizeof(float));
    gx[j] = malloc(np * d * sizeof(float));
  }
  double *ms = malloc((size_t)reps * sizeof(double));
  if (!p || !t || !g || !ms || !x[0] || !x[1] || !x[2] || !gx[0] || !gx[1] || !gx[2]) return 1;
  for (size_t i = 0; i < n; i++) {
    float cx = (float)(rng_uniform() * 1000), cy = (float)(rng_uniform() * 800);
    float w = (float)(16 + rng_uniform() * 300), h = (float)(16 + rng_uniform() * 300);
    t[4 * i] = cx - w / 2;
    t[4 * i + 1] = cy - h / 2;
    t[4 * i + 2] = cx + w / 2;
    t[4 * i + 3] = cy + h / 2;
    for (int k = 0; k < 4; k++) p[4 * i + k] = t[4 * i + k] + (float)((rng_uniform() - 0.5) * 40);
  }
  for (int j = 0; j < 3; j++)
    for (size_t i = 0; i < np * d; i++) x[j][i] = (float)(rng_uniform() * 2 - 1);
  const detloss_loss_kind kinds[5] = {DETLOSS_LOSS_IOU, DETLOSS_LOSS_GIOU, DETLOSS_LOSS_DIOU,
                                      DETLOSS_LOSS_CIOU, DETLOSS_LOSS_TRIPLET_MARGIN};
  printf("{\"threads\": %d, \"boxes\": %zu, \"pairs\": %zu, \"dim\": %zu", threads, n, np, d);
  for (int kk = 0; kk < 5; kk++) {
    detloss_loss_options o = detloss_loss_options_default(kinds[kk]);
    o.num_threads = threads;
    float loss = 0;
    for (int r = 0; r < reps + 1; r++) {
      double t0 = bench_now_ms();
      detloss_status st =
          kk < 4 ? detloss_loss_boxes(kinds[kk], p, t, NULL, n, &loss, g, NULL, &o, NULL)
                 : detloss_loss_embedding(kinds[kk], x[0], x[1], x[2], NULL, NULL, np, d, &loss,
                                          gx[0], gx[1], gx[2], &o, NULL);
      double t1 = bench_now_ms();
      if (st != DETLOSS_OK) return 1;
      if (r > 0) ms[r - 1] = t1 - t0; /* the first run is warm-up */
    }
    bench_sort(ms, reps);
    printf(", \"%s_ms\": %.3f, \"%s_loss\": %.9g", detloss_loss_name(kinds[kk]), ms[reps / 2],
           detloss_loss_name(kinds[kk]), (double)loss);
  }
  printf("}\n");
  for (int j = 0; j < 3; j++) {
    free(x[j]);
    free(gx[j]);
  }
  free(p);
  free(t);
  free(g);
  free(ms);
  return 0;
}
