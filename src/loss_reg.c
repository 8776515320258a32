/*
 * loss_reg.c - regression losses with their gradients (element-wise, d = x - y):
 * L1, MSE, smooth L1 (beta; beta = 0 is L1) and Huber (delta).
 * Each kernel evaluates the value in the operation order of torch's CPU
 * kernels (aten/src/ATen/native/cpu/PointwiseOpsKernel.cpp, Loss.cpp).
 */
#include <math.h>
#include <string.h>

#include "loss_elementwise.h"
#include "loss_internal.h"
#include "vec.h"

typedef struct reg_params {
  float beta, delta;
} reg_params;

/* sign(d) with sign(0) = 0 (torch's l1_loss backward): the kink's gradient is 0. */
DL_VEC_FN static inline float sign0(float d) { return (float)(d > 0.0f) - (float)(d < 0.0f); }

/* L1 (torch l1_loss): l = |d|, dl/dx = sign(d). */
DL_VEC_FN DL_VEC_CLONES static void kern_l1(const void *vp, const float *x, const float *y,
                                            size_t i0, size_t m, float *l, float *g) {
  (void)vp;
  (void)i0;
  for (size_t k = 0; k < m; k++) {
    float d = x[k] - y[k];
    l[k] = fabsf(d);
    g[k] = sign0(d);
  }
}

/* MSE (torch mse_loss): l = d^2, dl/dx = 2 d. */
DL_VEC_FN DL_VEC_CLONES static void kern_mse(const void *vp, const float *x, const float *y,
                                             size_t i0, size_t m, float *l, float *g) {
  (void)vp;
  (void)i0;
  for (size_t k = 0; k < m; k++) {
    float d = x[k] - y[k];
    l[k] = d * d;
    g[k] = 2.0f * d;
  }
}

/*
 * Smooth L1 (torch smooth_l1_loss, Girshick, Fast R-CNN, ICCV 2015, eq. 3):
 *   l = 0.5 d^2 / beta  if |d| < beta,  else |d| - 0.5 beta
 *   dl/dx = d / beta inside, sign(d) outside (both equal +-1 at |d| = beta).
 * beta = 0 dispatches to L1 (as torch does), so there is no 0/0.
 */
DL_VEC_FN DL_VEC_CLONES static void kern_smooth_l1(const void *vp, const float *x, const float *y,
                                                   size_t i0, size_t m, float *l, float *g) {
  (void)i0;
  const float beta = ((const reg_params *)vp)->beta;
  const float half_beta = 0.5f * beta;
  for (size_t k = 0; k < m; k++) {
    float d = x[k] - y[k];
    float z = fabsf(d);
    int in = z < beta;
    l[k] = in ? 0.5f * z * z / beta : z - half_beta;
    g[k] = in ? d / beta : sign0(d);
  }
}

/*
 * Huber (torch huber_loss): l = 0.5 d^2 if |d| < delta, else delta (|d| - 0.5 delta);
 *   dl/dx = d inside, delta sign(d) outside.
 */
DL_VEC_FN DL_VEC_CLONES static void kern_huber(const void *vp, const float *x, const float *y,
                                               size_t i0, size_t m, float *l, float *g) {
  (void)i0;
  const float delta = ((const reg_params *)vp)->delta;
  const float half_delta = 0.5f * delta;
  for (size_t k = 0; k < m; k++) {
    float d = x[k] - y[k];
    float z = fabsf(d);
    int in = z < delta;
    l[k] = in ? 0.5f * z * z : delta * (z - half_delta);
    g[k] = in ? d : delta * sign0(d);
  }
}

detloss_status dl_loss_reg_elementwise(detloss_loss_kind kind, const float *input,
                                       const float *target, const float *weight, size_t n,
                                       float *loss, float *grad, const detloss_loss_options *o,
                                       detloss_error *err) {
  reg_params p;
  memset(&p, 0, sizeof p);
  dl_elem_kernel kern = NULL;
  switch (kind) {
    case DETLOSS_LOSS_L1: kern = kern_l1; break;
    case DETLOSS_LOSS_MSE: kern = kern_mse; break;
    case DETLOSS_LOSS_SMOOTH_L1:
      DL_RETURN_ERROR_IF(!(isfinite(o->beta) && o->beta >= 0.0f), err, DETLOSS_ERR_RANGE, "beta",
                         "is %g, expected a finite value >= 0 (0 means L1)", (double)o->beta);
      p.beta = o->beta;
      kern = o->beta == 0.0f ? kern_l1 : kern_smooth_l1;
      break;
    case DETLOSS_LOSS_HUBER:
      DL_RETURN_ERROR_IF(!(isfinite(o->delta) && o->delta > 0.0f), err, DETLOSS_ERR_RANGE, "delta",
                         "is %g, expected a finite value > 0", (double)o->delta);
      p.delta = o->delta;
      kern = kern_huber;
      break;
    default: return dl_fail(err, DETLOSS_ERR_RANGE, "kind", "is not a regression loss");
  }
  const int nt = o->num_threads;
  DL_FORWARD_IF_ERROR(dl_check_finite_par(input, n, "input", nt, err));
  DL_FORWARD_IF_ERROR(dl_check_finite_par(target, n, "target", nt, err));
  if (weight) DL_FORWARD_IF_ERROR(dl_check_finite_par(weight, n, "weight", nt, err));
  return dl_elementwise_run(kern, &p, input, target, weight, n, loss, grad, o->reduction, nt, err);
}
