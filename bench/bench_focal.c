/*
 * bench_focal.c - sigmoid focal loss forward + backward over RetinaNet's
 * logits at 800x1344 (201,600 anchors x 80 classes), against the floor: a
 * plain read-logits / write-gradient pass over the same memory, measured in
 * the same run with the same threads and block size.
 *
 * usage: bench_focal [threads=2] [reps=21] [anchors=201600] [classes=80]
 * Prints one JSON object with the median and minimum times in milliseconds.
 * bench/compare_focal.py runs this and torchvision's sigmoid_focal_loss.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detloss/detloss.h"
#include "parallel.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct floor_ctx {
  const float *x;
  float *g;
} floor_ctx;

/* The floor: read each logit, write one gradient value (same traffic as the
 * gradient output of the loss, minus the targets). */
static void floor_block(void *vctx, size_t i0, size_t i1, size_t block) {
  (void)block;
  const floor_ctx *f = (const floor_ctx *)vctx;
  for (size_t i = i0; i < i1; i++) f->g[i] = f->x[i] * 0.5f;
}

/* splitmix64 */
static uint64_t rng_state = 12345;
static uint64_t rng_u64(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double rng_uniform(void) { return (double)(rng_u64() >> 11) * (1.0 / 9007199254740992.0); }

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  int reps = argc > 2 ? atoi(argv[2]) : 21;
  size_t anchors = argc > 3 ? (size_t)atol(argv[3]) : 201600;
  size_t classes = argc > 4 ? (size_t)atol(argv[4]) : 80;
  size_t n = anchors * classes;
  float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *g = malloc(n * sizeof *g);
  double *t_loss = malloc((size_t)reps * sizeof(double));
  double *t_floor = malloc((size_t)reps * sizeof(double));
  if (!x || !y || !g || !t_loss || !t_floor) return 1;
  /* Logits as a RetinaNet head at initialisation: prior-biased towards
   * negatives (bias -log((1-0.01)/0.01) = -4.6) with spread; about one
   * positive class for 1% of anchors. */
  for (size_t i = 0; i < n; i++) x[i] = (float)(-4.6 + 6.0 * (rng_uniform() - 0.5));
  memset(y, 0, n * sizeof *y);
  for (size_t a = 0; a < anchors; a++)
    if (rng_uniform() < 0.01) y[a * classes + (size_t)(rng_uniform() * (double)classes)] = 1.0f;

  detloss_error err;
  float loss = 0.0f;
  floor_ctx fc = {x, g};
  /* warm-up: page in every buffer */
  detloss_sigmoid_focal_loss(x, y, n, 0.25f, 2.0f, DETLOSS_REDUCTION_SUM, &loss, g, threads,
                             &err);
  dl_parallel_blocks(n, 16384, threads, floor_block, &fc);
  for (int r = 0; r < reps; r++) {
    double t0 = now_ms();
    detloss_status st = detloss_sigmoid_focal_loss(x, y, n, 0.25f, 2.0f,
                                                   DETLOSS_REDUCTION_SUM, &loss, g, threads,
                                                   &err);
    double t1 = now_ms();
    if (st != DETLOSS_OK) {
      fprintf(stderr, "bench_focal: %s: %s\n", err.where, err.msg);
      return 1;
    }
    dl_parallel_blocks(n, 16384, threads, floor_block, &fc);
    double t2 = now_ms();
    t_loss[r] = t1 - t0;
    t_floor[r] = t2 - t1;
  }
  qsort(t_loss, (size_t)reps, sizeof(double), cmp_double);
  qsort(t_floor, (size_t)reps, sizeof(double), cmp_double);
  double ml = t_loss[reps / 2], mf = t_floor[reps / 2];
  printf("{\"bench\": \"sigmoid_focal_fwd_bwd\", \"anchors\": %zu, \"classes\": %zu, "
         "\"threads\": %d, \"reps\": %d, \"openmp\": %d, \"loss\": %.9g, "
         "\"detloss_ms_median\": %.3f, \"detloss_ms_min\": %.3f, "
         "\"floor_ms_median\": %.3f, \"floor_ms_min\": %.3f, \"ratio_to_floor\": %.2f}\n",
         anchors, classes, threads, reps, detloss_has_openmp(), (double)loss, ml, t_loss[0], mf,
         t_floor[0], ml / mf);
  free(x);
  free(y);
  free(g);
  free(t_loss);
  free(t_floor);
  return 0;
}
