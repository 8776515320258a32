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
#include "vec.h"

#define KB 1024 /* labels per inner chunk (stack arrays) */

typedef struct actx {
  const float *w, *h, *area; /* labels, structure of arrays [n] */
  const float *cw, *ch, *ca; /* centres (float32 as darknet), [k] */
  size_t k;
  int32_t *assign;
} actx;

/* Expectation over labels [i0, i1): the closest centre by 1 - IoU (the largest
 * IoU; strict >, so the lowest index wins ties), in float32 like darknet.
 * Loop order centre-outer, label-inner so that the compiler vectorizes over
 * labels; every lane does the same IEEE operations, so the bits do not depend
 * on the vector width. *changed gets the number of changed assignments, *sum
 * the sum of the best IoUs (in 8 double lanes, added in lane order). */
DL_VEC_FN DL_VEC_CLONES static void assign_run(const actx *c, size_t i0, size_t i1, size_t *changed,
                                               double *sum) {
  float best[KB];
  int32_t arg[KB];
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t ch = 0;
  for (size_t s = i0; s < i1; s += KB) {
    size_t m = i1 - s < KB ? i1 - s : KB;
    const float *w = c->w + s, *h = c->h + s, *ar = c->area + s;
    for (size_t i = 0; i < m; i++) {
      best[i] = -1.0f;
      arg[i] = 0;
    }
    for (size_t q = 0; q < c->k; q++) {
      float a = c->cw[q], b = c->ch[q], ab = c->ca[q];
      int32_t qq = (int32_t)q;
      for (size_t i = 0; i < m; i++) {
        float mw = w[i] < a ? w[i] : a, mh = h[i] < b ? h[i] : b;
        float inter = mw * mh;
        float iou = inter / (ar[i] + ab - inter);
        int better = iou > best[i];
        best[i] = better ? iou : best[i];
        arg[i] = better ? qq : arg[i];
      }
    }
    int32_t *as = c->assign + s;
    for (size_t i = 0; i < m; i++) {
      ch += as[i] != arg[i];
      as[i] = arg[i];
    }
    size_t i = 0;
    for (; i + 8 <= m; i += 8)
      for (size_t j = 0; j < 8; j++) lanes[j] += (double)best[i + j];
    for (size_t j = 0; i < m; i++, j++) lanes[j] += (double)best[i];
  }
  double t = 0.0;
  for (size_t j = 0; j < 8; j++) t += lanes[j];
  *changed = ch;
  *sum = t;
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

/* One restart, serial: k-means++ seeding, Lloyd steps, score = sum of best IoUs. */
typedef struct rctx {
  const float *wh;
  const float *w, *h, *area; /* [n] each */
  size_t n, k;
  const detloss_fit_options *o;
  double *cen;   /* [restarts][k][2] */
  double *score; /* [restarts]; -1 when out of memory */
  size_t *iters; /* [restarts] */
} rctx;

static void restart_blk(void *vc, size_t t0, size_t t1, size_t b) {
  (void)b;
  rctx *r = vc;
  size_t n = r->n, k = r->k;
  for (size_t t = t0; t < t1; t++) {
    double *cen = r->cen + 2 * k * t;
    int32_t *assign = malloc(n * sizeof(int32_t));
    double *d2 = malloc(n * sizeof(double));
    double *acc = malloc(k * 3 * sizeof(double));
    if (!assign || !d2 || !acc) {
      r->score[t] = -1.0;
      free(assign);
      free(d2);
      free(acc);
      continue;
    }
    uint64_t state = dl_fit_stream(r->o->seed, DL_FIT_STREAM_KMEANS + t);
    seed_pp(r->wh, n, k, state, d2, cen);
    for (size_t i = 0; i < n; i++) assign[i] = -1;
    float *cf = malloc(k * 3 * sizeof(float));
    if (!cf) {
      r->score[t] = -1.0;
      free(assign);
      free(d2);
      free(acc);
      continue;
    }
    actx c = {r->w, r->h, r->area, cf, cf + k, cf + 2 * k, k, assign};
    size_t it = 0, changed;
    double sum;
    for (; it < r->o->max_iter; it++) {
      for (size_t q = 0; q < k; q++) {
        cf[q] = (float)cen[2 * q];
        cf[k + q] = (float)cen[2 * q + 1];
        cf[2 * k + q] = cf[q] * cf[k + q];
      }
      assign_run(&c, 0, n, &changed, &sum);
      if (changed == 0) break;
      /* maximisation in label order */
      memset(acc, 0, k * 3 * sizeof(double));
      for (size_t i = 0; i < n; i++) {
        double *a = acc + 3 * assign[i];
        a[0] += (double)r->wh[2 * i];
        a[1] += (double)r->wh[2 * i + 1];
        a[2] += 1.0;
      }
      for (size_t q = 0; q < k; q++)
        if (acc[3 * q + 2] > 0.0) {
          cen[2 * q] = acc[3 * q] / acc[3 * q + 2];
          cen[2 * q + 1] = acc[3 * q + 1] / acc[3 * q + 2];
        }
    }
    for (size_t q = 0; q < k; q++) { /* the score of the final centres */
      cf[q] = (float)cen[2 * q];
      cf[k + q] = (float)cen[2 * q + 1];
      cf[2 * k + q] = cf[q] * cf[k + q];
    }
    assign_run(&c, 0, n, &changed, &sum);
    r->score[t] = sum;
    r->iters[t] = it;
    free(cf);
    free(assign);
    free(d2);
    free(acc);
  }
}

/* Restarts run in parallel (one per thread at a time, each serial over the
 * labels: a parallel region per Lloyd step costs more than the step on a busy
 * machine); each restart is a pure function of (seed, restart), and the
 * winner is chosen in restart order, so the result never depends on threads. */
detloss_status dl_fit_kmeans(const float *wh, size_t n, size_t k, const detloss_fit_options *o,
                             double *centres, size_t *iters, detloss_error *err) {
  size_t R = o->restarts;
  double *cen = malloc(R * k * 2 * sizeof(double));
  double *score = malloc(R * sizeof(double));
  size_t *its = malloc(R * sizeof(size_t));
  if (!cen || !score || !its) {
    free(cen);
    free(score);
    free(its);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "kmeans", "out of memory");
  }
  float *soa = malloc(n * 3 * sizeof(float));
  if (!soa) {
    free(cen);
    free(score);
    free(its);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "kmeans", "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    soa[i] = wh[2 * i];
    soa[n + i] = wh[2 * i + 1];
    soa[2 * n + i] = wh[2 * i] * wh[2 * i + 1];
  }
  rctx r = {wh, soa, soa + n, soa + 2 * n, n, k, o, cen, score, its};
  dl_parallel_blocks(R, 1, o->num_threads, restart_blk, &r);
  size_t best = 0;
  int oom = 0;
  for (size_t t = 0; t < R; t++) {
    oom |= score[t] < 0.0;
    if (score[t] > score[best]) best = t; /* strict: the lowest restart wins ties */
  }
  if (!oom) {
    memcpy(centres, cen + 2 * k * best, k * 2 * sizeof(double));
    *iters = its[best];
    dl_fit_sort_by_area(centres, k);
  }
  if (o->progress) o->progress(o->progress_user, R, R);
  free(soa);
  free(cen);
  free(score);
  free(its);
  DL_RETURN_ERROR_IF(oom, err, DETLOSS_ERR_NOMEM, "kmeans", "out of memory");
  return DETLOSS_OK;
}
