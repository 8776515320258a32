/*
 * fit_common.c - anchor fitting: options, validation, shape metrics and the
 * public entry detloss_fit_shapes() (methods in fit_kmeans.c, fit_evolve.c;
 * LEVELS in fit_levels.c).
 *
 * Metrics (include/detloss/detloss.h detloss_fit_metrics):
 *   darknet calc_anchors "avg IoU" (AlexeyAB/darknet src/detector.c): mean over
 *   labels of the best IoU of corner-aligned boxes, inter = min(w1,w2) min(h1,h2);
 *   YOLOv5 utils/autoanchor.py metric(): r = min(w/aw, aw/w, h/ah, ah/h),
 *   best = max over shapes, bpr = mean(best > 1/thr), aat = mean #{r > 1/thr},
 *   fitness = mean(best * (best > 1/thr)).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit_internal.h"
#include "parallel.h"

detloss_fit_options detloss_fit_options_default(void) {
  detloss_fit_options o = DETLOSS_FIT_OPTIONS_INIT;
  return o;
}

detloss_status dl_fit_check_wh(const float *wh, size_t n, const char *name, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_ptr(wh, n, name, err));
  DL_RETURN_ERROR_IF(n > DL_MAX_ELEMS / 2, err, DETLOSS_ERR_SHAPE, name, "too many rows");
  for (size_t i = 0; i < n; i++) {
    for (int c = 0; c < 2; c++) {
      float v = wh[2 * i + c];
      char where[64];
      if (!isfinite(v)) {
        snprintf(where, sizeof where, "%s[%zu]", name, i);
        return dl_fail(err, DETLOSS_ERR_NONFINITE, where, "width and height must be finite");
      }
      if (!(v > 0.0f) || v > DL_COORD_MAX) {
        snprintf(where, sizeof where, "%s[%zu]", name, i);
        return dl_fail(err, DETLOSS_ERR_RANGE, where,
                       "width and height must be > 0 and at most 1e18 (got %g)", (double)v);
      }
    }
  }
  return DETLOSS_OK;
}

void dl_fit_sort_by_area(double *s, size_t k) {
  for (size_t i = 1; i < k; i++) {
    double w = s[2 * i], h = s[2 * i + 1];
    size_t j = i;
    while (j > 0) {
      double pw = s[2 * (j - 1)], ph = s[2 * (j - 1) + 1];
      int less = w * h < pw * ph || (w * h == pw * ph && (w < pw || (w == pw && h < ph)));
      if (!less) break;
      s[2 * j] = pw;
      s[2 * j + 1] = ph;
      j--;
    }
    s[2 * j] = w;
    s[2 * j + 1] = h;
  }
}

typedef struct mctx {
  const float *wh;
  const double *s;
  size_t k;
  double thr;
  double *part; /* [block][4]: iou, fitness, bpr, aat sums */
} mctx;

static void metrics_blk(void *vc, size_t i0, size_t i1, size_t b) {
  mctx *c = vc;
  double acc[4] = {0, 0, 0, 0};
  for (size_t i = i0; i < i1; i++) {
    double w = c->wh[2 * i], h = c->wh[2 * i + 1], bi = 0.0, br = 0.0;
    size_t above = 0;
    for (size_t q = 0; q < c->k; q++) {
      double aw = c->s[2 * q], ah = c->s[2 * q + 1];
      double iou = dl_fit_corner_iou(w, h, aw, ah);
      double rw = w / aw, rh = h / ah;
      double r = fmin(fmin(rw, 1.0 / rw), fmin(rh, 1.0 / rh));
      if (iou > bi) bi = iou;
      if (r > br) br = r;
      above += r > c->thr;
    }
    acc[0] += bi;
    if (br > c->thr) {
      acc[1] += br;
      acc[2] += 1.0;
    }
    acc[3] += (double)above;
  }
  memcpy(c->part + 4 * b, acc, sizeof acc);
}

detloss_status dl_fit_metrics(const float *wh, size_t n, const double *shapes, size_t k, double thr,
                              int num_threads, detloss_fit_metrics *m, detloss_error *err) {
  size_t nb = dl_num_blocks(n, DL_FIT_BLOCK);
  double *part = malloc((nb ? nb : 1) * 4 * sizeof(double));
  DL_RETURN_ERROR_IF(!part, err, DETLOSS_ERR_NOMEM, "metrics", "out of memory");
  mctx c = {wh, shapes, k, 1.0 / thr, part};
  dl_parallel_blocks(n, DL_FIT_BLOCK, num_threads, metrics_blk, &c);
  double t[4] = {0, 0, 0, 0};
  for (size_t b = 0; b < nb; b++)
    for (int j = 0; j < 4; j++) t[j] += part[4 * b + j];
  free(part);
  double dn = n ? (double)n : 1.0;
  m->mean_iou = t[0] / dn;
  m->fitness = t[1] / dn;
  m->bpr = t[2] / dn;
  m->aat = t[3] / dn;
  return DETLOSS_OK;
}

static detloss_status check_options(const detloss_fit_options *o, detloss_error *err) {
  DL_RETURN_ERROR_IF(o->max_iter < 1, err, DETLOSS_ERR_RANGE, "max_iter", "must be at least 1");
  DL_RETURN_ERROR_IF(!(o->ratio_thresh >= 1.0f) || !isfinite(o->ratio_thresh), err,
                     DETLOSS_ERR_RANGE, "ratio_thresh", "must be finite and >= 1 (got %g)",
                     (double)o->ratio_thresh);
  DL_RETURN_ERROR_IF(!(o->mutation_prob >= 0.0f && o->mutation_prob <= 1.0f), err,
                     DETLOSS_ERR_RANGE, "mutation_prob", "must be in [0, 1]");
  DL_RETURN_ERROR_IF(!(o->sigma >= 0.0f) || !isfinite(o->sigma), err, DETLOSS_ERR_RANGE, "sigma",
                     "must be finite and >= 0");
  DL_RETURN_ERROR_IF(!(o->min_side >= 0.0f) || !isfinite(o->min_side), err, DETLOSS_ERR_RANGE,
                     "min_side", "must be finite and >= 0");
  return DETLOSS_OK;
}

detloss_status detloss_fit_metrics_of(const float *wh, size_t n, const float *shapes, size_t k,
                                      float ratio_thresh, int num_threads, detloss_fit_metrics *out,
                                      detloss_error *err) {
  DL_RETURN_ERROR_IF(!out, err, DETLOSS_ERR_NULL, "out", "must not be NULL");
  DL_FORWARD_IF_ERROR(dl_fit_check_wh(wh, n, "wh", err));
  DL_FORWARD_IF_ERROR(dl_fit_check_wh(shapes, k, "shapes", err));
  DL_RETURN_ERROR_IF(!(ratio_thresh >= 1.0f) || !isfinite(ratio_thresh), err, DETLOSS_ERR_RANGE,
                     "ratio_thresh", "must be finite and >= 1");
  double *s = malloc((k ? k : 1) * 2 * sizeof(double));
  DL_RETURN_ERROR_IF(!s, err, DETLOSS_ERR_NOMEM, "shapes", "out of memory");
  for (size_t i = 0; i < 2 * k; i++) s[i] = shapes[i];
  detloss_fit_metrics m;
  detloss_status st = dl_fit_metrics(wh, n, s, k, ratio_thresh, num_threads, &m, err);
  free(s);
  if (st == DETLOSS_OK) *out = m;
  return st;
}

detloss_status detloss_fit_shapes(detloss_fit_method method, const float *wh, size_t n, size_t k,
                                  const float *old, size_t num_old, float *shapes,
                                  detloss_fit_report *report, const detloss_fit_options *opt,
                                  detloss_error *err) {
  detloss_fit_options o = opt ? *opt : detloss_fit_options_default();
  DL_RETURN_ERROR_IF(method != DETLOSS_FIT_KMEANS && method != DETLOSS_FIT_EVOLVE, err,
                     DETLOSS_ERR_RANGE, "method",
                     "must be DETLOSS_FIT_KMEANS or DETLOSS_FIT_EVOLVE (LEVELS: "
                     "detloss_fit_levels)");
  DL_RETURN_ERROR_IF(!shapes && k > 0, err, DETLOSS_ERR_NULL, "shapes", "must not be NULL");
  DL_FORWARD_IF_ERROR(dl_fit_check_wh(wh, n, "wh", err));
  DL_RETURN_ERROR_IF(n == 0, err, DETLOSS_ERR_SHAPE, "wh",
                     "a data set without boxes: nothing to fit");
  DL_RETURN_ERROR_IF(k < 1, err, DETLOSS_ERR_RANGE, "k", "must be at least 1");
  DL_RETURN_ERROR_IF(k > n, err, DETLOSS_ERR_RANGE, "k",
                     "%zu shapes from %zu boxes: k must be at most the number of boxes", k, n);
  if (num_old) DL_FORWARD_IF_ERROR(dl_fit_check_wh(old, num_old, "old", err));
  DL_FORWARD_IF_ERROR(check_options(&o, err));
  if (o.restarts == 0) o.restarts = method == DETLOSS_FIT_KMEANS ? 10 : 30;
  dl_span sp[4] = {dl_span_of(wh, n, 2 * sizeof(float), "wh", 0),
                   dl_span_of(old, num_old, 2 * sizeof(float), "old", 0),
                   dl_span_of(shapes, k, 2 * sizeof(float), "shapes", 1),
                   dl_span_of(report, report ? 1 : 0, sizeof *report, "report", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 4, err));

  double *s = malloc((k + num_old) * 2 * sizeof(double));
  DL_RETURN_ERROR_IF(!s, err, DETLOSS_ERR_NOMEM, "shapes", "out of memory");
  detloss_fit_report r;
  memset(&r, 0, sizeof r);
  r.num_labels = n;
  detloss_status st;
  if (method == DETLOSS_FIT_KMEANS) {
    r.num_used = n;
    st = dl_fit_kmeans(wh, n, k, &o, s, &r.iterations, err);
  } else {
    st = dl_fit_evolve(wh, n, k, &o, s, &r.num_used, &r.iterations, err);
  }
  if (st == DETLOSS_OK)
    st = dl_fit_metrics(wh, n, s, k, o.ratio_thresh, o.num_threads, &r.after, err);
  if (st == DETLOSS_OK && num_old) {
    double *os = s + 2 * k;
    for (size_t i = 0; i < 2 * num_old; i++) os[i] = old[i];
    r.has_before = 1;
    st = dl_fit_metrics(wh, n, os, num_old, o.ratio_thresh, o.num_threads, &r.before, err);
  }
  if (st == DETLOSS_OK) {
    for (size_t i = 0; i < 2 * k; i++) shapes[i] = (float)s[i];
    if (report) *report = r;
  }
  free(s);
  return st;
}
