/*
 * fit_levels.c - LEVELS: per-level sizes and shared aspect ratios (and
 * scales) of an FPN / RetinaNet grid config, fitted to the config's own
 * matcher outcome on a data set.
 *
 * The published practice (Zlocha, Dou & Glocker 2019, arXiv:1906.02283,
 * martinzlocha/anchor-optimization) optimises ratios and scales shared by all
 * levels with scipy's differential evolution against a function of each gt's
 * best IoU with zero-centred anchors. Here the objective is what the config's
 * head will see: anchors placed on the real grid of every resized image and
 * the config's matcher (detloss_anchor_eval with count_positives), maximising
 *   F = num_with_pos / N + mean_best / (N + 1)
 * (lexicographic: the share of gts that get at least one positive first,
 * then the mean best IoU, since mean_best / (N + 1) < 1 / N).
 *
 * Optimiser: Nelder-Mead (Nelder & Mead, Comput. J. 7, 1965; coefficients
 * reflection 1, expansion 2, contraction 1/2, shrink 1/2) in log space, with
 * restarts from the best point on a new simplex whose steps have random signs
 * (the counter generator, stream LEVELS + restart) when the simplex has
 * collapsed. Own code, not NLopt: the problem has at most a few dozen
 * parameters and a step-shaped objective that costs a full data-set
 * evaluation per call, so the evaluation budget (max_evals), not the
 * optimiser, sets the run time; NLopt's Nelder-Mead/Subplex would add a
 * build dependency for the same algorithm and its restarts and stopping rules
 * would still have to be written here to make the result seed-reproducible.
 */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit_internal.h"

#define LOG_SIZE_MIN 0.0 /* sizes in [1, 1e5] px */
#define LOG_SIZE_MAX 11.512925464970229
#define LOG_RATIO_MAX 2.772588722239781 /* ratios in [1/16, 16] */

typedef struct lv {
  const detloss_eval_dataset *data;
  const detloss_anchor_config *grid;
  detloss_eval_options ev;
  size_t L, S, R, D;
  detloss_anchor_level *levels;
  float *sizes, *ratios; /* scratch for the candidate */
  detloss_eval_report *rep;
  size_t evals;
} lv;

static void decode(const lv *c, const double *x, float *sizes, float *ratios) {
  for (size_t l = 0; l < c->L; l++) {
    double b = fmin(fmax(x[l], LOG_SIZE_MIN), LOG_SIZE_MAX);
    sizes[l * c->S] = (float)exp(b);
    for (size_t j = 1; j < c->S; j++) {
      double s = fmin(fmax(b + x[c->L + j - 1], LOG_SIZE_MIN), LOG_SIZE_MAX);
      sizes[l * c->S + j] = (float)exp(s);
    }
  }
  for (size_t i = 0; i < c->R; i++) {
    double r = fmin(fmax(x[c->L + c->S - 1 + i], -LOG_RATIO_MAX), LOG_RATIO_MAX);
    ratios[i] = (float)exp(r);
  }
}

/* Evaluates sizes [L*S], ratios [R] into *out (and F). */
static detloss_status evaluate(lv *c, const float *sizes, const float *ratios,
                               detloss_fit_levels_outcome *out, double *F, detloss_error *err) {
  for (size_t l = 0; l < c->L; l++) {
    c->levels[l] = c->grid->levels[l];
    c->levels[l].sizes = sizes + l * c->S;
    c->levels[l].ratios = ratios;
  }
  detloss_anchor_config g = *c->grid;
  g.levels = c->levels;
  detloss_eval_anchors src = {&g, NULL, 0, NULL, 0};
  DL_FORWARD_IF_ERROR(detloss_anchor_eval(c->data, &src, NULL, c->rep, &c->ev, err));
  c->evals++;
  const detloss_eval_stats *s = &c->rep->all;
  out->num_gt = s->num_gt;
  out->num_with_pos = s->num_gt - s->pos_hist[0];
  out->share_with_pos = s->num_gt ? (double)out->num_with_pos / (double)s->num_gt : 0.0;
  out->mean_best = s->mean_best;
  out->recall = s->recall;
  double N = s->num_gt ? (double)s->num_gt : 1.0;
  *F = (double)out->num_with_pos / N + s->mean_best / (N + 1.0);
  return DETLOSS_OK;
}

detloss_status detloss_fit_levels(const detloss_eval_dataset *data,
                                  const detloss_anchor_config *grid,
                                  const detloss_eval_options *eval, float *sizes, float *ratios,
                                  detloss_fit_levels_report *report, const detloss_fit_options *opt,
                                  detloss_error *err) {
  detloss_fit_options o = opt ? *opt : detloss_fit_options_default();
  DL_RETURN_ERROR_IF(!data || !grid || !sizes || !ratios, err, DETLOSS_ERR_NULL,
                     !data    ? "data"
                     : !grid  ? "grid"
                     : !sizes ? "sizes"
                              : "ratios",
                     "must not be NULL");
  DL_RETURN_ERROR_IF(grid->num_levels < 1 || !grid->levels, err, DETLOSS_ERR_SHAPE, "grid.levels",
                     "LEVELS needs a grid anchor set with at least one level");
  DL_RETURN_ERROR_IF(grid->num_levels > DETLOSS_EVAL_MAX_LEVELS, err, DETLOSS_ERR_SHAPE,
                     "grid.levels", "at most %d levels", DETLOSS_EVAL_MAX_LEVELS);
  DL_RETURN_ERROR_IF(o.max_evals < 1, err, DETLOSS_ERR_RANGE, "max_evals", "must be at least 1");
  detloss_eval_options ev = eval ? *eval : detloss_eval_options_default();
  DL_RETURN_ERROR_IF(ev.metric != DETLOSS_EVAL_IOU, err, DETLOSS_ERR_SHAPE, "eval.metric",
                     "LEVELS optimises the matcher's IoU outcome: the metric must be iou");
  size_t L = grid->num_levels, S = grid->levels[0].num_sizes, R = grid->levels[0].num_ratios;
  for (size_t l = 0; l < L; l++) {
    const detloss_anchor_level *v = &grid->levels[l];
    char where[64];
    snprintf(where, sizeof where, "grid.levels[%zu]", l);
    DL_RETURN_ERROR_IF(v->num_base || v->num_shapes, err, DETLOSS_ERR_SHAPE, where,
                       "LEVELS fits sizes and aspect ratios: this level has %s",
                       v->num_base ? "explicit base anchors" : "shapes (use kmeans or evolve)");
    DL_RETURN_ERROR_IF(v->num_sizes < 1 || v->num_ratios < 1 || !v->sizes || !v->ratios, err,
                       DETLOSS_ERR_SHAPE, where, "needs sizes and aspect ratios");
    DL_RETURN_ERROR_IF(v->num_sizes != S || v->num_ratios != R, err, DETLOSS_ERR_SHAPE, where,
                       "every level needs the same number of sizes (%zu) and ratios (%zu) for "
                       "shared scales and ratios",
                       S, R);
    for (size_t i = 0; i < S; i++)
      DL_RETURN_ERROR_IF(!(v->sizes[i] > 0.0f) || !isfinite(v->sizes[i]), err, DETLOSS_ERR_RANGE,
                         where, "sizes must be finite and > 0");
    for (size_t i = 0; i < R; i++)
      DL_RETURN_ERROR_IF(!(v->ratios[i] > 0.0f) || !isfinite(v->ratios[i]), err, DETLOSS_ERR_RANGE,
                         where, "ratios must be finite and > 0");
  }
  ev.count_positives = 1;
  ev.num_worst = 0;
  ev.num_threads = o.num_threads;
  ev.progress = NULL;
  ev.progress_user = NULL;

  size_t D = L + (S - 1) + R;
  lv c;
  memset(&c, 0, sizeof c);
  c.data = data;
  c.grid = grid;
  c.ev = ev;
  c.L = L;
  c.S = S;
  c.R = R;
  c.D = D;
  c.levels = malloc(L * sizeof *c.levels);
  c.sizes = malloc((L * S + R) * 2 * sizeof(float));
  c.rep = malloc(sizeof *c.rep);
  double *simp = malloc((D + 1) * (D + 5) * sizeof(double)); /* simplex, values, work points */
  if (!c.levels || !c.sizes || !c.rep || !simp) {
    free(c.levels);
    free(c.sizes);
    free(c.rep);
    free(simp);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "levels", "out of memory");
  }
  c.ratios = c.sizes + L * S;
  float *bs = c.ratios + R, *br = bs + L * S; /* best so far */
  detloss_fit_levels_report rep;
  memset(&rep, 0, sizeof rep);
  double bestF, F;
  detloss_status st;

  /* before: the config's own sizes and ratios (every level's ratios as given
   * for the evaluation; the output would share level 0's) */
  {
    detloss_anchor_config g = *grid;
    detloss_eval_anchors src = {&g, NULL, 0, NULL, 0};
    st = detloss_anchor_eval(data, &src, NULL, c.rep, &c.ev, err);
    if (st != DETLOSS_OK) goto done;
    c.evals++;
    const detloss_eval_stats *s = &c.rep->all;
    rep.before.num_gt = s->num_gt;
    rep.before.num_with_pos = s->num_gt - s->pos_hist[0];
    rep.before.share_with_pos =
        s->num_gt ? (double)rep.before.num_with_pos / (double)s->num_gt : 0.0;
    rep.before.mean_best = s->mean_best;
    rep.before.recall = s->recall;
  }
  /* start point */
  double *X = simp, *fx = simp + (D + 1) * D, *xc = fx + (D + 1), *xr = xc + D, *xe = xr + D,
         *xk = xe + D;
  (void)xk;
  double *x0 = X;
  for (size_t l = 0; l < L; l++) x0[l] = log((double)grid->levels[l].sizes[0]);
  for (size_t j = 1; j < S; j++) {
    double a = 0.0;
    for (size_t l = 0; l < L; l++)
      a += log((double)grid->levels[l].sizes[j] / (double)grid->levels[l].sizes[0]);
    x0[L + j - 1] = a / (double)L;
  }
  for (size_t i = 0; i < R; i++) x0[L + S - 1 + i] = log((double)grid->levels[0].ratios[i]);
  bestF = -1.0;
  int shared = 1; /* can the config's own set be written with shared ratios? */
  for (size_t l = 1; l < L; l++)
    for (size_t i = 0; i < R; i++) shared &= grid->levels[l].ratios[i] == grid->levels[0].ratios[i];
  if (shared) {
    for (size_t l = 0; l < L; l++) memcpy(bs + l * S, grid->levels[l].sizes, S * sizeof(float));
    memcpy(br, grid->levels[0].ratios, R * sizeof(float));
    double N = rep.before.num_gt ? (double)rep.before.num_gt : 1.0;
    bestF = (double)rep.before.num_with_pos / N + rep.before.mean_best / (N + 1.0);
    rep.after = rep.before;
  }
  detloss_fit_levels_outcome oc;
#define EVAL_AT(pt, fout)                                                                          \
  do {                                                                                             \
    decode(&c, (pt), c.sizes, c.ratios);                                                           \
    st = evaluate(&c, c.sizes, c.ratios, &oc, &(fout), err);                                       \
    if (st != DETLOSS_OK) goto done;                                                               \
    if ((fout) > bestF) {                                                                          \
      bestF = (fout);                                                                              \
      memcpy(bs, c.sizes, (L * S + R) * sizeof(float));                                            \
      rep.after = oc;                                                                              \
    }                                                                                              \
    if (o.progress)                                                                                \
      o.progress(o.progress_user, c.evals < o.max_evals ? c.evals : o.max_evals, o.max_evals);     \
  } while (0)
  /* br follows bs in memory: one memcpy copies sizes and ratios */
  size_t restart = 0;
  double step = 0.15;
  while (c.evals < o.max_evals) {
    /* simplex around X[0] */
    uint64_t state = dl_fit_stream(o.seed, DL_FIT_STREAM_LEVELS + restart);
    for (size_t v = 1; v <= D; v++) {
      memcpy(X + v * D, X, D * sizeof(double));
      double sgn = restart == 0 ? 1.0 : (dl_fit_uniform(state, v) < 0.5 ? -1.0 : 1.0);
      X[v * D + v - 1] += sgn * step;
    }
    for (size_t v = 0; v <= D && c.evals < o.max_evals; v++) EVAL_AT(X + v * D, fx[v]);
    if (c.evals >= o.max_evals) break;
    /* Nelder-Mead on -F */
    while (c.evals < o.max_evals) {
      /* order: best (largest F) first; stable insertion sort, lowest index on ties */
      for (size_t i = 1; i <= D; i++) {
        size_t j = i;
        while (j > 0 && fx[j] > fx[j - 1]) {
          double t = fx[j];
          fx[j] = fx[j - 1];
          fx[j - 1] = t;
          for (size_t d = 0; d < D; d++) {
            double u = X[j * D + d];
            X[j * D + d] = X[(j - 1) * D + d];
            X[(j - 1) * D + d] = u;
          }
          j--;
        }
      }
      double diam = 0.0;
      for (size_t v = 1; v <= D; v++)
        for (size_t d = 0; d < D; d++) diam = fmax(diam, fabs(X[v * D + d] - X[d]));
      if (diam < 1e-3) break;
      for (size_t d = 0; d < D; d++) {
        double a = 0.0;
        for (size_t v = 0; v < D; v++) a += X[v * D + d];
        xc[d] = a / (double)D;
      }
      double *xw = X + D * D, fr, fe, fk;
      for (size_t d = 0; d < D; d++) xr[d] = xc[d] + (xc[d] - xw[d]);
      EVAL_AT(xr, fr);
      if (fr > fx[0]) {
        if (c.evals >= o.max_evals) break;
        for (size_t d = 0; d < D; d++) xe[d] = xc[d] + 2.0 * (xr[d] - xc[d]);
        EVAL_AT(xe, fe);
        if (fe > fr) {
          memcpy(xw, xe, D * sizeof(double));
          fx[D] = fe;
        } else {
          memcpy(xw, xr, D * sizeof(double));
          fx[D] = fr;
        }
      } else if (fr > fx[D - 1]) {
        memcpy(xw, xr, D * sizeof(double));
        fx[D] = fr;
      } else {
        if (c.evals >= o.max_evals) break;
        int outside = fr > fx[D];
        for (size_t d = 0; d < D; d++)
          xe[d] = outside ? xc[d] + 0.5 * (xr[d] - xc[d]) : xc[d] + 0.5 * (xw[d] - xc[d]);
        EVAL_AT(xe, fk);
        if (fk > (outside ? fr : fx[D])) {
          memcpy(xw, xe, D * sizeof(double));
          fx[D] = fk;
        } else { /* shrink towards the best */
          for (size_t v = 1; v <= D && c.evals < o.max_evals; v++) {
            for (size_t d = 0; d < D; d++) X[v * D + d] = X[d] + 0.5 * (X[v * D + d] - X[d]);
            EVAL_AT(X + v * D, fx[v]);
          }
        }
      }
    }
    /* restart from the best point with a smaller step */
    size_t ib = 0;
    for (size_t v = 1; v <= D; v++)
      if (fx[v] > fx[ib]) ib = v;
    if (ib) memcpy(X, X + ib * D, D * sizeof(double));
    restart++;
    step = step > 0.04 ? step * 0.6 : 0.15;
  }
#undef EVAL_AT
  (void)F;
  rep.evaluations = c.evals;
  memcpy(sizes, bs, L * S * sizeof(float));
  memcpy(ratios, br, R * sizeof(float));
  if (report) *report = rep;
  st = DETLOSS_OK;
done:
  free(c.levels);
  free(c.sizes);
  free(c.rep);
  free(simp);
  return st;
}
