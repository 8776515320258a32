/*
 * fit_internal.h - shared by the anchor-fitting modules (fit_common.c,
 * fit_kmeans.c, fit_evolve.c, fit_levels.c).
 *
 * Random numbers: a counter-based generator, the construction of sample.c.
 * Draw number c of stream s under seed S is
 *   mix64(state(S, s) + (c + 1) * GOLDEN),   state(S, s) = mix64(mix64(S + GOLDEN) ^ f(s)),
 * with mix64 the splitmix64 output function (Steele, Lea, Flood, OOPSLA 2014).
 * A draw depends only on (seed, stream, counter), never on the thread that
 * asks for it or on earlier draws, so every fit is bitwise identical for any
 * thread count.
 */
#ifndef DETLOSS_FIT_INTERNAL_H
#define DETLOSS_FIT_INTERNAL_H

#include <math.h>
#include <stdint.h>

#include "internal.h"

#define DL_FIT_GOLDEN 0x9E3779B97F4A7C15ull

static inline uint64_t dl_fit_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* The state of stream s under seed (streams: one per restart, generation, ...). */
static inline uint64_t dl_fit_stream(uint64_t seed, uint64_t s) {
  return dl_fit_mix64(dl_fit_mix64(seed + DL_FIT_GOLDEN) ^
                      (s * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
}

static inline uint64_t dl_fit_bits(uint64_t state, uint64_t c) {
  return dl_fit_mix64(state + (c + 1) * DL_FIT_GOLDEN);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double dl_fit_uniform(uint64_t state, uint64_t c) {
  return (double)(dl_fit_bits(state, c) >> 11) * 0x1.0p-53;
}

/* Standard normal from draws c and c + 1 (Box-Muller, cosine branch). */
static inline double dl_fit_normal(uint64_t state, uint64_t c) {
  double u1 = 1.0 - dl_fit_uniform(state, c); /* (0, 1] */
  double u2 = dl_fit_uniform(state, c + 1);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Streams (disjoint ranges of s). */
#define DL_FIT_STREAM_KMEANS 0x100000000ull /* + restart */
#define DL_FIT_STREAM_WHITE 0x200000000ull  /* + run (EVOLVE's whitened k-means) */
#define DL_FIT_STREAM_EVOLVE 0x300000000ull /* + generation */
#define DL_FIT_STREAM_LEVELS 0x400000000ull /* + restart of Nelder-Mead */

/* Labels per parallel block (a fixed size: the results never depend on threads). */
#define DL_FIT_BLOCK 2048

/* IoU of two boxes sharing a corner (darknet matrix.c): inter / union. */
static inline double dl_fit_corner_iou(double w1, double h1, double w2, double h2) {
  double inter = (w1 < w2 ? w1 : w2) * (h1 < h2 ? h1 : h2);
  return inter / (w1 * h1 + w2 * h2 - inter);
}

/* Validates wh [n][2] (finite, > 0) and k; names "wh[i]" / "k". */
detloss_status dl_fit_check_wh(const float *wh, size_t n, const char *name, detloss_error *err);

/* Sorts shapes [k][2] by area ascending, ties by w, then h (insertion sort). */
void dl_fit_sort_by_area(double *shapes, size_t k);

/* KMEANS on wh [n][2] (validated): centres [k][2] sorted; *iters the Lloyd
 * steps of the winning restart. Returns _OK or _NOMEM. */
detloss_status dl_fit_kmeans(const float *wh, size_t n, size_t k, const detloss_fit_options *o,
                             double *centres, size_t *iters, detloss_error *err);

/* EVOLVE on wh [n][2] (validated): shapes [k][2] sorted; *used the labels
 * kept, *accepted the accepted mutations. Returns _OK, _RANGE ("k" above the
 * labels kept) or _NOMEM. */
detloss_status dl_fit_evolve(const float *wh, size_t n, size_t k, const detloss_fit_options *o,
                             double *shapes, size_t *used, size_t *accepted, detloss_error *err);

/* Metrics of shapes [k][2] (double) on wh [n][2]. Returns _OK or _NOMEM. */
detloss_status dl_fit_metrics(const float *wh, size_t n, const double *shapes, size_t k, double thr,
                              int num_threads, detloss_fit_metrics *m, detloss_error *err);

#endif /* DETLOSS_FIT_INTERNAL_H */
