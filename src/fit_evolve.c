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

typedef struct fctx {
  const float *lw, *lh, *w, *h; /* kept labels: logs and sides, [m] each */
  const float *klw, *klh;       /* shapes' logs [k] */
  const float *kw, *kh;         /* shapes [k] */
  size_t k;
  float lthr; /* ln(thr): fits when the best log distance < lthr (r > 1/thr) */
  double *part;
} fctx;

DL_VEC_FN DL_VEC_CLONES static void fitness_blk(void *vc, size_t i0, size_t i1, size_t b) {
  fctx *c = vc;
  float dmin[EV_BLOCK];
  int32_t arg[EV_BLOCK];
  size_t m = i1 - i0;
  const float *lw = c->lw + i0, *lh = c->lh + i0;
  for (size_t i = 0; i < m; i++) {
    dmin[i] = FLT_MAX;
    arg[i] = 0;
  }
  for (size_t q = 0; q < c->k; q++) {
    float a = c->klw[q], bb = c->klh[q];
    for (size_t i = 0; i < m; i++) {
      float dw = fabsf(lw[i] - a), dh = fabsf(lh[i] - bb);
      float d = dw > dh ? dw : dh;
      int better = d < dmin[i]; /* strict: the first shape wins ties */
      dmin[i] = better ? d : dmin[i];
      arg[i] = better ? (int32_t)q : arg[i];
    }
  }
  double sum = 0.0;
  for (size_t i = 0; i < m; i++) {
    if (!(dmin[i] < c->lthr)) continue;
    size_t q = (size_t)arg[i];
    float rw = c->w[i0 + i] / c->kw[q], rh = c->h[i0 + i] / c->kh[q];
    float r = fminf(fminf(rw, 1.0f / rw), fminf(rh, 1.0f / rh));
    sum += (double)r;
  }
  c->part[b] = sum;
}

static double fitness(fctx *c, size_t m, size_t nb, int threads, const double *shapes, float *klw,
                      float *klh, float *kw, float *kh) {
  for (size_t q = 0; q < c->k; q++) {
    kw[q] = (float)shapes[2 * q];
    kh[q] = (float)shapes[2 * q + 1];
    klw[q] = logf(kw[q]);
    klh[q] = logf(kh[q]);
  }
  dl_parallel_blocks(m, EV_BLOCK, threads, fitness_blk, c);
  return dl_sum_blocks(c->part, nb) / (double)m;
}

/* --- scipy-style whitened k-means ---------------------------------------- */

typedef struct wctx {
  const double *x; /* [m][2] whitened */
  const double *c;
  size_t k;
  int32_t *assign;
  double *part; /* [block]: sum of distances */
} wctx;

static void wassign_blk(void *vc, size_t i0, size_t i1, size_t b) {
  wctx *c = vc;
  double sum = 0.0;
  for (size_t i = i0; i < i1; i++) {
    double x = c->x[2 * i], y = c->x[2 * i + 1], best = DBL_MAX;
    int32_t bq = 0;
    for (size_t q = 0; q < c->k; q++) {
      double dx = x - c->c[2 * q], dy = y - c->c[2 * q + 1], d = dx * dx + dy * dy;
      if (d < best) {
        best = d;
        bq = (int32_t)q;
      }
    }
    c->assign[i] = bq;
    sum += sqrt(best);
  }
  c->part[b] = sum;
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
  double *x = malloc(m * 2 * sizeof(double));
  int32_t *assign = malloc(m * sizeof(int32_t));
  double *part = malloc(nbmax * sizeof(double));
  double *cen = malloc(k * 6 * sizeof(double)); /* run centres, best, trial */
  double *acc = malloc(k * 3 * sizeof(double));
  float *kf = malloc(k * 4 * sizeof(float));
  size_t *idx = malloc(k * sizeof(size_t));
  if (!f4 || !x || !assign || !part || !cen || !acc || !kf || !idx) {
    free(f4);
    free(x);
    free(assign);
    free(part);
    free(cen);
    free(acc);
    free(kf);
    free(idx);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "evolve", "out of memory");
  }
  float *lw = f4, *lh = f4 + m, *fw = f4 + 2 * m, *fh = f4 + 3 * m;
  size_t j = 0;
  double mean[2] = {0, 0}, var[2] = {0, 0};
  for (size_t i = 0; i < n; i++) {
    if (!(wh[2 * i] >= o->min_side || wh[2 * i + 1] >= o->min_side)) continue;
    fw[j] = wh[2 * i];
    fh[j] = wh[2 * i + 1];
    lw[j] = logf(fw[j]);
    lh[j] = logf(fh[j]);
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
    x[2 * i] = (double)fw[i] / sd[0];
    x[2 * i + 1] = (double)fh[i] / sd[1];
  }
  double *run = cen, *best = cen + 2 * k;
  double best_d = DBL_MAX;
  size_t steps_total = o->restarts + o->generations, steps = 0;
  wctx wc = {x, run, k, assign, part};
  for (size_t t = 0; t < o->restarts; t++) {
    uint64_t state = dl_fit_stream(o->seed, DL_FIT_STREAM_WHITE + t);
    distinct(state, m, k, idx);
    for (size_t q = 0; q < k; q++) {
      run[2 * q] = x[2 * idx[q]];
      run[2 * q + 1] = x[2 * idx[q] + 1];
    }
    double prev = DBL_MAX, dist = DBL_MAX;
    for (size_t it = 0; it < o->max_iter; it++) {
      dl_parallel_blocks(m, DL_FIT_BLOCK, o->num_threads, wassign_blk, &wc);
      double cur = dl_sum_blocks(part, nbw) / (double)m;
      prev = dist;
      dist = cur;
      memset(acc, 0, k * 3 * sizeof(double));
      for (size_t i = 0; i < m; i++) {
        double *a = acc + 3 * assign[i];
        a[0] += x[2 * i];
        a[1] += x[2 * i + 1];
        a[2] += 1.0;
      }
      for (size_t q = 0; q < k; q++)
        if (acc[3 * q + 2] > 0.0) {
          run[2 * q] = acc[3 * q] / acc[3 * q + 2];
          run[2 * q + 1] = acc[3 * q + 1] / acc[3 * q + 2];
        }
      /* scipy: stop when |previous mean distance - this one| <= 1e-5 */
      if (prev != DBL_MAX && fabs(prev - dist) <= 1e-5) break;
    }
    if (dist < best_d) { /* strict: the first run wins ties (numpy argmin) */
      best_d = dist;
      memcpy(best, run, k * 2 * sizeof(double));
    }
    if (o->progress) o->progress(o->progress_user, ++steps, steps_total);
  }
  for (size_t q = 0; q < k; q++) {
    shapes[2 * q] = best[2 * q] * sd[0];
    shapes[2 * q + 1] = best[2 * q + 1] * sd[1];
  }
  dl_fit_sort_by_area(shapes, k);

  /* evolution */
  fctx fc = {lw, lh, fw, fh, kf, kf + k, kf + 2 * k, kf + 3 * k, k, logf(o->ratio_thresh), part};
  float *klw = kf, *klh = kf + k, *kw = kf + 2 * k, *kh = kf + 3 * k;
  double f = fitness(&fc, m, nbe, o->num_threads, shapes, klw, klh, kw, kh);
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
      double ft = fitness(&fc, m, nbe, o->num_threads, trial, klw, klh, kw, kh);
      if (ft > f) {
        f = ft;
        memcpy(shapes, trial, k * 2 * sizeof(double));
        acc_n++;
      }
    }
    if (o->progress && ((g + 1) % 16 == 0 || g + 1 == o->generations))
      o->progress(o->progress_user, o->restarts + g + 1, steps_total);
    steps++;
  }
  dl_fit_sort_by_area(shapes, k);
  *used = m;
  *accepted = acc_n;
  free(f4);
  free(x);
  free(assign);
  free(part);
  free(cen);
  free(acc);
  free(kf);
  free(idx);
  return DETLOSS_OK;
}
