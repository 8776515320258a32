/*
 * bench_hungarian.c - DETR's Hungarian matching of one batch, in the C library alone.
 *
 * Workload (issue 16): 16 images x Q queries (100 and 300) x 92 logits (91 classes + the
 * no-object column) x 20 gt per image; logits normal x 2, boxes (cx, cy, w, h) with
 * centres uniform in [0.1, 0.9] and sides in [0.05, 0.5] (counter-based, seeded).
 * detloss_hungarian_match_batch with the DETR costs (1 / 5 / 2): per image the 100 x 20
 * (or 300 x 20) float64 block and its assignment, one image per thread.
 *
 *   bench_hungarian [--threads N] [--reps R]
 *
 * Prints one JSON object per Q: median and minimum milliseconds per batch over R runs
 * after one warm-up. bench/compare_hungarian.py times the torch + scipy pipeline and
 * the Python drop-in on the same shapes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss.h"
#include "harness.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int threads = 2, reps = 51;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
    if (strcmp(argv[i], "--reps") == 0) reps = atoi(argv[i + 1]);
  }
  if (reps < 1) reps = 1;
  const size_t B = 16, K1 = 92, G = 20;
  const size_t qs[2] = {100, 300};
  for (int t = 0; t < 2; t++) {
    size_t Q = qs[t];
    float *logits = malloc(B * Q * K1 * sizeof(float)), *boxes = malloc(B * Q * 4 * sizeof(float));
    float *gt = malloc(B * G * 4 * sizeof(float));
    int64_t *labels = malloc(B * G * sizeof(int64_t)), *pi = malloc(B * G * sizeof(int64_t)),
            *gi = malloc(B * G * sizeof(int64_t));
    size_t counts[16];
    double *ms = malloc((size_t)reps * sizeof(double));
    if (!logits || !boxes || !gt || !labels || !pi || !gi || !ms) return 1;
    for (size_t i = 0; i < B * Q * K1; i++) logits[i] = (float)(2.0 * bench_normal(Q, i));
    for (size_t i = 0; i < B * Q; i++) {
      boxes[4 * i] = (float)(0.1 + 0.8 * bench_u01(Q + 1, 4 * i));
      boxes[4 * i + 1] = (float)(0.1 + 0.8 * bench_u01(Q + 1, 4 * i + 1));
      boxes[4 * i + 2] = (float)(0.05 + 0.45 * bench_u01(Q + 1, 4 * i + 2));
      boxes[4 * i + 3] = (float)(0.05 + 0.45 * bench_u01(Q + 1, 4 * i + 3));
    }
    for (size_t i = 0; i < B * G; i++) {
      gt[4 * i] = (float)(0.1 + 0.8 * bench_u01(Q + 2, 4 * i));
      gt[4 * i + 1] = (float)(0.1 + 0.8 * bench_u01(Q + 2, 4 * i + 1));
      gt[4 * i + 2] = (float)(0.05 + 0.45 * bench_u01(Q + 2, 4 * i + 2));
      gt[4 * i + 3] = (float)(0.05 + 0.45 * bench_u01(Q + 2, 4 * i + 3));
      labels[i] = (int64_t)(91.0 * bench_u01(Q + 3, i)) % 91;
    }
    for (size_t b = 0; b < B; b++) counts[b] = G;
    detloss_hungarian_options o = detloss_hungarian_options_default();
    o.num_threads = threads;
    detloss_error err;
    for (int r = -1; r < reps; r++) {
      double t0 = bench_now_ms();
      if (detloss_hungarian_match_batch(B, Q, K1, logits, boxes, gt, labels, counts, pi, gi, &o,
                                        &err) != DETLOSS_OK) {
        fprintf(stderr, "bench_hungarian: %s: %s\n", err.where, err.msg);
        return 1;
      }
      double t1 = bench_now_ms();
      if (r >= 0) ms[r] = t1 - t0;
    }
    qsort(ms, (size_t)reps, sizeof(double), cmp_double);
    printf(
        "{\"workload\": \"hungarian_detr_b16_q%zu_g20\", \"threads\": %d, \"reps\": %d, "
        "\"median_ms\": %.4f, \"min_ms\": %.4f}\n",
        Q, threads, reps, ms[reps / 2], ms[0]);
    free(logits);
    free(boxes);
    free(gt);
    free(labels);
    free(pi);
    free(gi);
    free(ms);
  }
  return 0;
}
