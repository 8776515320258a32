/*
 * loss_common.c - what every loss shares: reductions, the block-parallel sum
 * and search drivers and the element-wise driver (loss_internal.h). The
 * kinds' names and default options are in the registry, loss_registry.c. It
 * calls no loss family: the families (loss_cls.c, loss_reg.c, ...) call it.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss_internal.h"
#include "vec.h"

detloss_loss_options dl_loss_resolve(detloss_loss_kind kind, const detloss_loss_options *opt) {
  return opt ? *opt : detloss_loss_options_default(kind);
}

detloss_status dl_check_reduction(detloss_reduction r, detloss_error *err) {
  DL_RETURN_ERROR_IF(r != DETLOSS_REDUCTION_NONE && r != DETLOSS_REDUCTION_SUM &&
                         r != DETLOSS_REDUCTION_MEAN,
                     err, DETLOSS_ERR_RANGE, "reduction",
                     "is %d, expected none (0), sum (1) or mean (2)", (int)r);
  return DETLOSS_OK;
}

double dl_loss_grad_scale(detloss_reduction r, size_t count) {
  if (r != DETLOSS_REDUCTION_MEAN) return 1.0;
  return count == 0 ? 0.0 : 1.0 / (double)count;
}

float dl_loss_reduce(detloss_reduction r, double total, size_t count) {
  if (r != DETLOSS_REDUCTION_MEAN) return (float)total;
  return count == 0 ? 0.0f : (float)(total / (double)count);
}

typedef struct sum_ctx {
  dl_sum_fn fn;
  void *ctx;
  double *partials;
} sum_ctx;

static void sum_block(void *vctx, size_t i0, size_t i1, size_t block) {
  sum_ctx *s = (sum_ctx *)vctx;
  s->partials[block] = s->fn(s->ctx, i0, i1);
}

/* Small reductions keep their partials on the stack (no allocation, no
 * failure path); larger ones allocate one double per block. */
#define STACK_BLOCKS 64

detloss_status dl_parallel_sum(size_t n, size_t block, int num_threads, dl_sum_fn fn, void *ctx,
                               double *total, detloss_error *err) {
  if (block == 0) block = n ? n : 1;
  size_t nb = dl_num_blocks(n, block);
  double stack[STACK_BLOCKS];
  double *partials = stack;
  if (nb > STACK_BLOCKS) {
    partials = (double *)malloc(nb * sizeof *partials);
    DL_RETURN_ERROR_IF(partials == NULL, err, DETLOSS_ERR_NOMEM, "workspace",
                       "cannot allocate %zu block sums", nb);
  }
  sum_ctx s = {fn, ctx, partials};
  dl_parallel_blocks(n, block, num_threads, sum_block, &s);
  *total = dl_sum_blocks(partials, nb);
  if (partials != stack) free(partials);
  return DETLOSS_OK;
}

typedef struct find_ctx {
  dl_find_fn fn;
  void *ctx;
  size_t *first;
} find_ctx;

static void find_block(void *vctx, size_t i0, size_t i1, size_t block) {
  find_ctx *f = (find_ctx *)vctx;
  f->first[block] = f->fn(f->ctx, i0, i1);
}

detloss_status dl_parallel_find(size_t n, size_t block, int num_threads, dl_find_fn fn, void *ctx,
                                size_t *first, detloss_error *err) {
  if (block == 0) block = n ? n : 1;
  size_t nb = dl_num_blocks(n, block);
  size_t stack[STACK_BLOCKS];
  size_t *firsts = stack;
  if (nb > STACK_BLOCKS) {
    firsts = (size_t *)malloc(nb * sizeof *firsts);
    DL_RETURN_ERROR_IF(firsts == NULL, err, DETLOSS_ERR_NOMEM, "workspace",
                       "cannot allocate %zu block results", nb);
  }
  find_ctx f = {fn, ctx, firsts};
  dl_parallel_blocks(n, block, num_threads, find_block, &f);
  *first = n;
  for (size_t b = 0; b < nb; b++) {
    size_t i1 = (n - b * block < block) ? n : b * block + block;
    if (firsts[b] < i1) {
      *first = firsts[b];
      break;
    }
  }
  if (firsts != stack) free(firsts);
  return DETLOSS_OK;
}

/* A float is finite iff its exponent bits are not all ones. The integer test
 * lets the block scan vectorize (isfinite() on floats does not, at -O2). */
DL_VEC_FN static inline int finite_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return (u & 0x7f800000u) != 0x7f800000u;
}

DL_VEC_FN DL_VEC_CLONES static size_t find_nonfinite(void *ctx, size_t i0, size_t i1) {
  const float *x = (const float *)ctx;
  unsigned bad = 0;
  for (size_t i = i0; i < i1; i++) bad |= (unsigned)!finite_bits(x[i]);
  if (!bad) return i1;
  for (size_t i = i0; i < i1; i++)
    if (!finite_bits(x[i])) return i;
  return i1;
}

detloss_status dl_check_finite_par(const float *x, size_t n, const char *name, int num_threads,
                                   detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_ptr(x, n, name, err));
  DL_RETURN_ERROR_IF(n > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE, name,
                     "%zu elements is more than can be addressed", n);
  size_t first = n;
  DL_FORWARD_IF_ERROR(dl_parallel_find(n, DL_LOSS_BLOCK, num_threads, find_nonfinite,
                                       (void *)(uintptr_t)x, &first, err));
  if (first < n) {
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "%s[%zu]", name, first);
    return dl_fail(err, DETLOSS_ERR_NONFINITE, where, "is %s, expected a finite number",
                   isnan(x[first]) ? "NaN" : "infinite");
  }
  return DETLOSS_OK;
}

typedef struct elem_ctx {
  dl_elem_kernel kern;
  const void *params;
  const float *x, *y, *w;
  float *loss, *grad;
  detloss_reduction r;
  float gscale;
} elem_ctx;

/* One block: chunks of DL_LOSS_CHUNK elements. The chunk's weighted losses
 * are summed into 8 double lanes (lane = index within the chunk mod 8, so the
 * lane sums vectorize and the order is fixed by the element index alone), the
 * lanes are added in a fixed tree at the end of the block. */
DL_VEC_FN DL_VEC_CLONES static double elem_block(void *vctx, size_t i0, size_t i1) {
  const elem_ctx *e = (const elem_ctx *)vctx;
  float lb[DL_LOSS_CHUNK], gb[DL_LOSS_CHUNK];
  double ld[DL_LOSS_CHUNK];
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const float s = e->gscale;
  for (size_t c0 = i0; c0 < i1; c0 += DL_LOSS_CHUNK) {
    size_t m = i1 - c0 < DL_LOSS_CHUNK ? i1 - c0 : DL_LOSS_CHUNK;
    /* the kernel writes the gradient straight into the caller's buffer */
    float *g = e->grad ? e->grad + c0 : gb;
#if defined(__GNUC__)
    /* Inputs four chunks ahead, so that memory runs under this chunk's math
     * (measured: the focal kernel's share of a 16M-logit run fell from 3.6x
     * to 2.2x the floor's). Only addresses inside the block are formed. */
    if (i1 - c0 >= 5 * DL_LOSS_CHUNK)
      for (size_t k = 0; k < DL_LOSS_CHUNK; k += 16) {
        __builtin_prefetch(e->x + c0 + 4 * DL_LOSS_CHUNK + k);
        __builtin_prefetch(e->y + c0 + 4 * DL_LOSS_CHUNK + k);
      }
#endif
    e->kern(e->params, e->x + c0, e->y + c0, c0, m, lb, g);
    size_t mm = (m + 7) & ~(size_t)7;
    if (e->w) {
      /* The weighted loss is formed in double: the product of two floats is
       * exact there, so a per-element output rounds once, as a float product
       * would, but huge finite losses times weights of both signs cannot
       * overflow to +-Inf and add up to NaN (found by fuzz_numeric). A zero
       * weight gives exactly 0, also for an infinite loss. */
      const float *w = e->w + c0;
      /* An element loss beyond float range (e.g. (x - y)^2 of huge inputs) is
       * +Inf from the kernel; it saturates at FLT_MAX here, as the box losses
       * do, so that weights of both signs cannot make Inf - Inf. */
      for (size_t k = 0; k < m; k++) {
        double l = lb[k] > FLT_MAX ? (double)FLT_MAX : (double)lb[k];
        ld[k] = w[k] == 0.0f ? 0.0 : l * (double)w[k];
      }
      /* likewise the gradient scale w s: in float a tiny weight times 1/n
       * underflows to 0 and meets an infinite gradient (x - y overflowing). */
      if (e->grad)
        for (size_t k = 0; k < m; k++)
          g[k] = w[k] == 0.0f ? 0.0f : (float)((double)g[k] * ((double)w[k] * (double)s));
      if (e->r == DETLOSS_REDUCTION_NONE)
        for (size_t k = 0; k < m; k++) e->loss[c0 + k] = (float)ld[k];
      for (size_t k = m; k < mm; k++) ld[k] = 0.0;
      for (size_t j = 0; j < mm; j += 8)
        for (size_t q = 0; q < 8; q++) acc[q] += ld[j + q];
      continue;
    }
    if (e->grad && s != 1.0f)
      for (size_t k = 0; k < m; k++) g[k] *= s;
    if (e->r == DETLOSS_REDUCTION_NONE) memcpy(e->loss + c0, lb, m * sizeof(float));
    for (size_t k = m; k < mm; k++) lb[k] = 0.0f;
    for (size_t j = 0; j < mm; j += 8)
      for (size_t q = 0; q < 8; q++) acc[q] += (double)lb[j + q];
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

detloss_status dl_elementwise_run(dl_elem_kernel kern, const void *params, const float *x,
                                  const float *y, const float *w, size_t n, float *loss,
                                  float *grad, detloss_reduction r, int num_threads,
                                  detloss_error *err) {
  elem_ctx e = {kern, params, x, y, w, loss, grad, r, (float)dl_loss_grad_scale(r, n)};
  double total = 0.0;
  DL_FORWARD_IF_ERROR(dl_parallel_sum(n, DL_LOSS_BLOCK, num_threads, elem_block, &e, &total, err));
  if (r != DETLOSS_REDUCTION_NONE) loss[0] = dl_loss_reduce(r, total, n);
  return DETLOSS_OK;
}
