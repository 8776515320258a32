/*
 * fit_kmeans.c - KMEANS: darknet calc_anchors k-means on box shapes.
 *
 * darknet (AlexeyAB src/detector.c calc_anchors, src/matrix.c do_kmeans):
 *   distance d(g, c) = 1 - IoU of the boxes g = (w, h) and c sharing a corner,
 *   IoU = min(w,cw) min(h,ch) / (w h + cw ch - min(w,cw) min(h,ch));
 *   expectation: each label to its closest centre (strict <: lowest index on ties);
 *   maximisation: a centre becomes the arithmetic mean (w, h) of its members,
 *   an empty cluster keeps its centre; at most 1000 rounds, stop when no
 *   assignment changed; anchors sorted by area; reported "avg IoU" = mean best IoU.
 * Differences on purpose: seeding is k-means++ (Arthur & Vassilvitskii, SODA
 * 2007) with D(g)^2 = (1 - IoU)^2 weights instead of darknet's k distinct
 * random labels (which it prints as "k-means++"), from the seeded counter
 * generator instead of srand(time(0)); and `restarts` independent runs, the
 * highest mean best IoU winning (the maintainer's advice is to run it several
 * times and keep the best, AlexeyAB/darknet#2115). Assignments start at -1,
 * so the first expectation always counts as a change (darknet starts at 0 and
 * can stop before its first update when every label is closest to centre 0).
 */
#include <stdlib.h>
#include <string.h>

#include "fit_internal.h"
#include "parallel.h"

typedef struct actx {
  const float *wh;
  const double *c;
  size_t k;
  int32_t *assign;
  double *part; /* [block][2]: changed assignments, sum of best IoU */
} actx;

/* Expectation over labels [i0, i1): closest centre by 1 - IoU (= largest IoU). */
static void assign_blk(void *vc, size_t i0, size_t i1, size_t b) {
  actx *c = vc;
  double changed = 0.0, sum = 0.0;
  for (size_t i = i0; i < i1; i++) {
    double w = c->wh[2 * i], h = c->wh[2 * i + 1], best = -1.0;
    int32_t bq = 0;
    for (size_t q = 0; q < c->k; q++) {
      double iou = dl_fit_corner_iou(w, h, c->c[2 * q], c->c[2 * q + 1]);
      if (iou > best) { /* strict: the lowest index wins ties */
        best = iou;
        bq = (int32_t)q;
      }
    }
    if (c->assign[i] != bq) changed += 1.0;
    c->assign[i] = bq;
    sum += best;
  }
  c->part[2 * b] = changed;
  c->part[2 * b + 1] = sum;
}

/* k-means++ seeding: centre 0 a uniform label, then each next centre label g
 * with probability D(g)^2 / sum D^2, D = 1 - max IoU with the chosen centres.
 * Serial, O(n k): the cumulative sum runs in label order. */
static void seed_pp(const float *wh, size_t n, size_t k, uint64_t state, double *d2, double *cen) {
  uint64_t draw = 0;
  size_t g = (size_t)(dl_fit_uniform(state, draw++) * (double)n);
  if (g >= n) g = n - 1;
  cen[0] = wh[2 * g];
  cen[1] = wh[2 * g + 1];
  for (size_t i = 0; i < n; i++) {
    double d = 1.0 - dl_fit_corner_iou(wh[2 * i], wh[2 * i + 1], cen[0], cen[1]);
    d2[i] = d * d;
  }
  for (size_t q = 1; q < k; q++) {
    double total = 0.0;
    for (size_t i = 0; i < n; i++) total += d2[i];
    double u = dl_fit_uniform(state, draw++);
    if (total > 0.0) {
      double target = u * total, run = 0.0;
      g = n - 1;
      for (size_t i = 0; i < n; i++) {
        run += d2[i];
        if (run > target && d2[i] > 0.0) {
          g = i;
          break;
        }
      }
      while (d2[g] == 0.0 && g > 0) g--; /* rounding at the end: last label with weight */
    } else {                             /* every label sits on a centre: any label */
      g = (size_t)(u * (double)n);
      if (g >= n) g = n - 1;
    }
    cen[2 * q] = wh[2 * g];
    cen[2 * q + 1] = wh[2 * g + 1];
    for (size_t i = 0; i < n; i++) {
      double d = 1.0 - dl_fit_corner_iou(wh[2 * i], wh[2 * i + 1], cen[2 * q], cen[2 * q + 1]);
      if (d * d < d2[i]) d2[i] = d * d;
    }
  }
}

detloss_status dl_fit_kmeans(const float *wh, size_t n, size_t k, const detloss_fit_options *o,
                             double *centres, size_t *iters, detloss_error *err) {
  size_t nb = dl_num_blocks(n, DL_FIT_BLOCK);
  int32_t *assign = malloc(n * sizeof(int32_t));
  double *d2 = malloc(n * sizeof(double));
  double *part = malloc((nb ? nb : 1) * 2 * sizeof(double));
  double *cen = malloc(k * 2 * sizeof(double));
  double *acc = malloc(k * 3 * sizeof(double));
  if (!assign || !d2 || !part || !cen || !acc) {
    free(assign);
    free(d2);
    free(part);
    free(cen);
    free(acc);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "kmeans", "out of memory");
  }
  double best_score = -1.0;
  size_t total_steps = o->restarts;
  for (size_t t = 0; t < o->restarts; t++) {
    uint64_t state = dl_fit_stream(o->seed, DL_FIT_STREAM_KMEANS + t);
    seed_pp(wh, n, k, state, d2, cen);
    for (size_t i = 0; i < n; i++) assign[i] = -1;
    actx c = {wh, cen, k, assign, part};
    size_t it = 0;
    for (; it < o->max_iter; it++) {
      dl_parallel_blocks(n, DL_FIT_BLOCK, o->num_threads, assign_blk, &c);
      double changed = 0.0;
      for (size_t b = 0; b < nb; b++) changed += part[2 * b];
      if (changed == 0.0) break;
      /* maximisation, serially in label order: the sums do not depend on threads */
      memset(acc, 0, k * 3 * sizeof(double));
      for (size_t i = 0; i < n; i++) {
        double *a = acc + 3 * assign[i];
        a[0] += (double)wh[2 * i];
        a[1] += (double)wh[2 * i + 1];
        a[2] += 1.0;
      }
      for (size_t q = 0; q < k; q++)
        if (acc[3 * q + 2] > 0.0) {
          cen[2 * q] = acc[3 * q] / acc[3 * q + 2];
          cen[2 * q + 1] = acc[3 * q + 1] / acc[3 * q + 2];
        }
    }
    /* score of the final centres: mean best IoU (one more expectation) */
    dl_parallel_blocks(n, DL_FIT_BLOCK, o->num_threads, assign_blk, &c);
    double score = 0.0;
    for (size_t b = 0; b < nb; b++) score += part[2 * b + 1];
    if (score > best_score) { /* strict: the lowest restart wins ties */
      best_score = score;
      memcpy(centres, cen, k * 2 * sizeof(double));
      *iters = it;
    }
    if (o->progress) o->progress(o->progress_user, t + 1, total_steps);
  }
  dl_fit_sort_by_area(centres, k);
  free(assign);
  free(d2);
  free(part);
  free(cen);
  free(acc);
  return DETLOSS_OK;
}
