/*
 * fit_evolve.c - EVOLVE: YOLOv5 AutoAnchor (ultralytics/yolov5 utils/autoanchor.py
 * kmean_anchors, v7.0 semantics).
 *
 *   1. labels kept: either side >= min_side (YOLOv5: wh0[(wh0 >= 2.0).any(1)]);
 *   2. s = population std of the kept (w, h) per column; k-means of wh / s
 *      (scipy.cluster.vq.kmeans(obs, k, iter=30): `restarts` independent runs,
 *      each from k distinct labels, Lloyd steps with Euclidean distance until the
 *      mean (non-squared) distance decreases by <= 1e-5; the lowest mean
 *      distance wins); shapes = codes * s;
 *   3. fitness f(K) = mean over kept labels of best * [best > 1/thr],
 *      best = max_k min(w/aw, aw/w, h/ah, ah/h);
 *   4. `generations` rounds: v = ((U < mp) * R * N(0,1) * sigma + 1) clipped to
 *      [0.3, 3.0] per coordinate, R ~ U(0,1) one per attempt (Python's
 *      random.random()), drawn again while every v == 1; K' = max(K v, min_side);
 *      K := K' when f(K') > f(K) (strict);
 *   5. shapes sorted by area.
 * Differences on purpose: one counter-based generator keyed by the seed
 * instead of numpy's and Python's global generators; a k-means cluster that
 * loses all its labels keeps its code instead of being dropped (scipy drops it
 * and YOLOv5 then falls back to random shapes, ultralytics/yolov5#3482).
 *
 * The fitness runs 1000 times over all labels. best = max_k r_k equals
 * exp(-min_k max(|ln w - ln aw|, |ln h - ln ah|)), so the inner loop is
 * subtractions and comparisons on precomputed logarithms (float32, vectorized
 * over a block of labels); r is then computed by division for the winning
 * shape only. Blocks of labels are summed in double, in block order.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "fit_internal.h"
#include "parallel.h"
#include "vec.h"

#define EV_BLOCK 4096
#define KB 1024

typedef struct fctx {
  const float *w, *h, *iw, *ih;     /* kept labels and their reciprocals, [m] each */
  const float *kw, *kh, *ikw, *ikh; /* shapes and their reciprocals, [k] each */
  size_t k;
  float thr; /* 1/thr: fits when best > thr */
  double *part;
} fctx;

/* best_i = max_q min(w/aw, aw/w, h/ah, ah/h), with each ratio as a product by
 * a precomputed reciprocal (float32; within an ulp of the division); the sum
 * of best_i [best_i > 1/thr] over the block in 8 double lanes. Shape-outer,
 * label-inner: vectorized over labels, the same bits for any vector width. */
DL_VEC_FN DL_VEC_CLONES static void fitness_blk(void *vc, size_t i0, size_t i1, size_t b) {
  fctx *c = vc;
  float best[EV_BLOCK];
  size_t m = i1 - i0;
  const float *w = c->w + i0, *h = c->h + i0, *iw = c->iw + i0, *ih = c->ih + i0;
  for (size_t i = 0; i < m; i++) best[i] = 0.0f;
  for (size_t q = 0; q < c->k; q++) {
    float aw = c->kw[q], ah = c->kh[q], iaw = c->ikw[q], iah = c->ikh[q];
    for (size_t i = 0; i < m; i++) {
      float r1 = w[i] * iaw, r2 = aw * iw[i], r3 = h[i] * iah, r4 = ah * ih[i];
      float x = r1 < r2 ? r1 : r2;
      x = r3 < x ? r3 : x;
      x = r4 < x ? r4 : x;
      best[i] = x > best[i] ? x : best[i];
    }
  }
  float thr = c->thr;
  for (size_t i = 0; i < m; i++) best[i] = best[i] > thr ? best[i] : 0.0f;
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= m; i += 8)
    for (size_t j = 0; j < 8; j++) lanes[j] += (double)best[i + j];
  for (size_t j = 0; i < m; i++, j++) lanes[j] += (double)best[i];
  double t = 0.0;
  for (size_t j = 0; j < 8; j++) t += lanes[j];
  c->part[b] = t;
}

static double fitness(fctx *c, size_t m, size_t nb, int threads, const double *shapes, float *kf) {
  size_t k = c->k;
  for (size_t q = 0; q < k; q++) {
    kf[q] = (float)shapes[2 * q];
    kf[k + q] = (float)shapes[2 * q + 1];
    kf[2 * k + q] = 1.0f / kf[q];
    kf[3 * k + q] = 1.0f / kf[k + q];
  }
  dl_parallel_blocks(m, EV_BLOCK, threads, fitness_blk, c);
  return dl_sum_blocks(c->part, nb) / (double)m;
}

/* --- scipy-style whitened k-means ---------------------------------------- */

typedef struct wctx {
  const float *x, *y;   /* whitened labels [m] each (float32, as YOLOv5's wh / s) */
  const float *cx, *cy; /* codes [k] */
  size_t k;
  int32_t *assign;
} wctx;

/* scipy vq over [i0, i1): the nearest code by Euclidean distance (lowest
 * index on ties), float32; returns the sum of the distances (8 double lanes). */
DL_VEC_FN DL_VEC_CLONES static double wassign_run(const wctx *c, size_t i0, size_t i1) {
  float best[KB];
  int32_t arg[KB];
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t s = i0; s < i1; s += KB) {
    size_t m = i1 - s < KB ? i1 - s : KB;
    const float *x = c->x + s, *y = c->y + s;
    for (size_t i = 0; i < m; i++) {
      best[i] = FLT_MAX;
      arg[i] = 0;
    }
    for (size_t q = 0; q < c->k; q++) {
      float a = c->cx[q], bb = c->cy[q];
      int32_t qq = (int32_t)q;
      for (size_t i = 0; i < m; i++) {
        float dx = x[i] - a, dy = y[i] - bb, d = dx * dx + dy * dy;
        int better = d < best[i];
        best[i] = better ? d : best[i];
        arg[i] = better ? qq : arg[i];
      }
    }
    for (size_t i = 0; i < m; i++) {
      c->assign[s + i] = arg[i];
      best[i] = sqrtf(best[i]);
    }
    size_t i = 0;
    for (; i + 8 <= m; i += 8)
      for (size_t j = 0; j < 8; j++) lanes[j] += (double)best[i + j];
    for (size_t j = 0; i < m; i++, j++) lanes[j] += (double)best[i];
  }
  double t = 0.0;
  for (size_t j = 0; j < 8; j++) t += lanes[j];
  return t;
}

/* k distinct indices of [0, m) (Floyd's sampling algorithm), in draw order. */
static void distinct(uint64_t state, size_t m, size_t k, size_t *out) {
  size_t got = 0;
  uint64_t draw = 0;
  for (size_t j = m - k; j < m; j++) {
    size_t t = (size_t)(dl_fit_uniform(state, draw++) * (double)(j + 1));
    if (t > j) t = j;
    int seen = 0;
    for (size_t a = 0; a < got; a++) seen |= out[a] == t;
    out[got++] = seen ? j : t;
  }
}

/* One whitened k-means run (serial): scipy _kmeans from k distinct labels. */
typedef struct wrun {
  const float *x, *y;
  size_t m, k;
  const detloss_fit_options *o;
  double *codes; /* [runs][k][2] */
  double *dist;  /* [runs]: final mean distance; -1 when out of memory */
} wrun;

static void wrun_blk(void *vc, size_t t0, size_t t1, size_t b) {
  (void)b;
  wrun *r = vc;
  size_t m = r->m, k = r->k;
  for (size_t t = t0; t < t1; t++) {
    double *run = r->codes + 2 * k * t;
    int32_t *assign = malloc(m * sizeof(int32_t));
    double *acc = malloc(k * 3 * sizeof(double));
    size_t *idx = malloc(k * sizeof(size_t));
    float *cf = malloc(k * 2 * sizeof(float));
    if (!assign || !acc || !idx || !cf) {
      r->dist[t] = -1.0;
      free(assign);
      free(acc);
      free(idx);
      free(cf);
      continue;
    }
    uint64_t state = dl_fit_stream(r->o->seed, DL_FIT_STREAM_WHITE + t);
    distinct(state, m, k, idx);
    for (size_t q = 0; q < k; q++) {
      run[2 * q] = (double)r->x[idx[q]];
      run[2 * q + 1] = (double)r->y[idx[q]];
    }
    double prev = DBL_MAX, dist = DBL_MAX;
    wctx wc = {r->x, r->y, cf, cf + k, k, assign};
    for (size_t it = 0; it < r->o->max_iter; it++) {
      for (size_t q = 0; q < k; q++) {
        cf[q] = (float)run[2 * q];
        cf[k + q] = (float)run[2 * q + 1];
      }
      prev = dist;
      dist = wassign_run(&wc, 0, m) / (double)m;
      memset(acc, 0, k * 3 * sizeof(double));
      for (size_t i = 0; i < m; i++) {
        double *a = acc + 3 * assign[i];
        a[0] += (double)r->x[i];
        a[1] += (double)r->y[i];
        a[2] += 1.0;
      }
      for (size_t q = 0; q < k; q++)
        if (acc[3 * q + 2] > 0.0) {
          run[2 * q] = acc[3 * q] / acc[3 * q + 2];
          run[2 * q + 1] = acc[3 * q + 1] / acc[3 * q + 2];
        }
      /* scipy 1.10 _kmeans: `diff = prev_avg_dists[0] - prev_avg_dists[1]`,
       * loop `while diff > thresh`: a signed difference, so a run stops as soon
       * as the mean (non-squared) distance decreases by <= 1e-5 OR grows (Lloyd
       * steps minimise the squared distance, and the mean distance can rise).
       * An absolute difference ran on past the rise, to squared-error optima of
       * a higher mean distance (0.3246 vs 0.3109 median over 40 runs on
       * coco2017_subset), and so picked other k-means starts than YOLOv5. */
      if (prev != DBL_MAX && prev - dist <= 1e-5) break;
    }
    r->dist[t] = dist;
    free(cf);
    free(assign);
    free(acc);
    free(idx);
  }
}

/* Fitness blocks run on several threads only when a generation has enough
 * work to pay for a parallel region (each region waits for every thread to be
 * scheduled, which on a busy machine costs far more than a small
 * generation). The blocks are the same either way, so the bits are too. */
#define EV_PARALLEL_MIN ((size_t)1 << 18)

detloss_status dl_fit_evolve(const float *wh, size_t n, size_t k, const detloss_fit_options *o,
                             double *shapes, size_t *used, size_t *accepted, detloss_error *err) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++) m += wh[2 * i] >= o->min_side || wh[2 * i + 1] >= o->min_side;
  DL_RETURN_ERROR_IF(m == 0, err, DETLOSS_ERR_SHAPE, "wh",
                     "no box has a side of at least %g px: nothing to fit", (double)o->min_side);
  DL_RETURN_ERROR_IF(k > m, err, DETLOSS_ERR_RANGE, "k",
                     "%zu shapes from %zu boxes with a side >= %g px: k must be at most that", k, m,
                     (double)o->min_side);
  size_t nbw = dl_num_blocks(m, DL_FIT_BLOCK), nbe = dl_num_blocks(m, EV_BLOCK);
  size_t nbmax = nbw > nbe ? nbw : nbe;
  float *f4 = malloc(m * 4 * sizeof(float));
  float *x = malloc(m * 2 * sizeof(float)); /* whitened: x [m], then y [m] */
  double *part = malloc(nbmax * sizeof(double));
  double *cen = malloc(k * 6 * sizeof(double)); /* run centres, best, trial */
  float *kf = malloc(k * 4 * sizeof(float));
  if (!f4 || !x || !part || !cen || !kf) {
    free(f4);
    free(x);
    free(part);
    free(cen);
    free(kf);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "evolve", "out of memory");
  }
  float *lw = f4, *lh = f4 + m, *fw = f4 + 2 * m, *fh = f4 + 3 * m; /* 1/w, 1/h, w, h */
  size_t j = 0;
  double mean[2] = {0, 0}, var[2] = {0, 0};
  for (size_t i = 0; i < n; i++) {
    if (!(wh[2 * i] >= o->min_side || wh[2 * i + 1] >= o->min_side)) continue;
    fw[j] = wh[2 * i];
    fh[j] = wh[2 * i + 1];
    lw[j] = 1.0f / fw[j];
    lh[j] = 1.0f / fh[j];
    mean[0] += (double)fw[j];
    mean[1] += (double)fh[j];
    j++;
  }
  mean[0] /= (double)m;
  mean[1] /= (double)m;
  for (size_t i = 0; i < m; i++) {
    var[0] += ((double)fw[i] - mean[0]) * ((double)fw[i] - mean[0]);
    var[1] += ((double)fh[i] - mean[1]) * ((double)fh[i] - mean[1]);
  }
  /* numpy std (ddof 0); a constant column is left unscaled */
  double sd[2];
  for (int c = 0; c < 2; c++) {
    sd[c] = sqrt(var[c] / (double)m);
    if (!(sd[c] > 0.0)) sd[c] = 1.0;
  }
  for (size_t i = 0; i < m; i++) {
    /* YOLOv5 divides float32 wh by float32 s */
    x[i] = fw[i] / (float)sd[0];
    x[m + i] = fh[i] / (float)sd[1];
  }
  double *best = cen + 2 * k;
  size_t steps_total = o->restarts + o->generations;
  {
    size_t R = o->restarts;
    double *runs = malloc(R * (2 * k + 1) * sizeof(double));
    if (!runs) {
      free(f4);
      free(x);
      free(part);
      free(cen);
      free(kf);
      return dl_fail(err, DETLOSS_ERR_NOMEM, "evolve", "out of memory");
    }
    wrun wr = {x, x + m, m, k, o, runs, runs + R * 2 * k};
    dl_parallel_blocks(R, 1, o->num_threads, wrun_blk, &wr);
    size_t bt = 0;
    int oom = 0;
    for (size_t t = 0; t < R; t++) {
      oom |= wr.dist[t] < 0.0;
      if (wr.dist[t] < wr.dist[bt]) bt = t; /* strict: the first run wins ties (numpy argmin) */
    }
    memcpy(best, runs + 2 * k * bt, 2 * k * sizeof(double));
    free(runs);
    if (oom) {
      free(f4);
      free(x);
      free(part);
      free(cen);
      free(kf);
      return dl_fail(err, DETLOSS_ERR_NOMEM, "evolve", "out of memory");
    }
    if (o->progress) o->progress(o->progress_user, R, steps_total);
  }
  for (size_t q = 0; q < k; q++) {
    shapes[2 * q] = best[2 * q] * sd[0];
    shapes[2 * q + 1] = best[2 * q + 1] * sd[1];
  }
  dl_fit_sort_by_area(shapes, k);

  /* evolution */
  fctx fc = {fw, fh, lw, lh, kf, kf + k, kf + 2 * k, kf + 3 * k, k, 1.0f / o->ratio_thresh, part};
  int ev_threads = m >= EV_PARALLEL_MIN ? o->num_threads : 1;
  double f = fitness(&fc, m, nbe, ev_threads, shapes, kf);
  double *trial = cen + 4 * k;
  size_t acc_n = 0;
  size_t per_attempt = 1 + 3 * 2 * k;
  for (size_t g = 0; g < o->generations; g++) {
    uint64_t state = dl_fit_stream(o->seed, DL_FIT_STREAM_EVOLVE + g);
    int moved = 0;
    for (uint64_t a = 0; a < 1000 && !moved; a++) { /* YOLOv5: while (v == 1).all() */
      uint64_t base = a * per_attempt;
      double rr = dl_fit_uniform(state, base);
      for (size_t e = 0; e < 2 * k; e++) {
        uint64_t c0 = base + 1 + 3 * e;
        double v = 1.0;
        if (dl_fit_uniform(state, c0) < (double)o->mutation_prob)
          v = rr * dl_fit_normal(state, c0 + 1) * (double)o->sigma + 1.0;
        v = v < 0.3 ? 0.3 : (v > 3.0 ? 3.0 : v);
        moved |= v != 1.0;
        double t = shapes[e] * v;
        trial[e] = t < (double)o->min_side ? (double)o->min_side : t;
      }
    }
    if (moved) {
      double ft = fitness(&fc, m, nbe, ev_threads, trial, kf);
      if (ft > f) {
        f = ft;
        memcpy(shapes, trial, k * 2 * sizeof(double));
        acc_n++;
      }
    }
    if (o->progress && ((g + 1) % 16 == 0 || g + 1 == o->generations))
      o->progress(o->progress_user, o->restarts + g + 1, steps_total);
  }
  dl_fit_sort_by_area(shapes, k);
  *used = m;
  *accepted = acc_n;
  free(f4);
  free(x);
  free(part);
  free(cen);
  free(kf);
  return DETLOSS_OK;
}
