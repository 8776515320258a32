/*
 * loss_internal.h - helpers shared by the loss source files (loss_common.c
 * implements them; loss_cls.c, loss_reg.c, loss_box.c, loss_embed.c use them).
 * Nothing here names a loss family: the families depend on loss_common.c,
 * never the other way round (the element-wise dispatch is in
 * loss_elementwise.c, see loss_elementwise.h).
 *
 * The reduction rules of every loss (detloss.h, "Common loss conventions"):
 *   NONE: loss[i] = w_i l_i,  grad = d(sum_i w_i l_i)
 *   SUM:  loss = sum_i w_i l_i (accumulated in double per block, blocks in order)
 *   MEAN: loss = SUM / count, count = number of elements (cross_entropy: of
 *         non-ignored rows); count = 0 gives 0 with zero gradient.
 */
#ifndef DETLOSS_LOSS_INTERNAL_H
#define DETLOSS_LOSS_INTERNAL_H

#include <stddef.h>

#include "internal.h"
#include "parallel.h"

/* Fixed number of elements per parallel block for the element-wise losses:
 * never derived from the thread count, so the block sums and thus the
 * reduced loss are bitwise identical for any number of threads. */
#define DL_LOSS_BLOCK 16384

/* *opt, or detloss_loss_options_default(kind) when opt is NULL. */
detloss_loss_options dl_loss_resolve(detloss_loss_kind kind, const detloss_loss_options *opt);

/* DETLOSS_ERR_RANGE (where "reduction") unless r is NONE, SUM or MEAN. */
detloss_status dl_check_reduction(detloss_reduction r, detloss_error *err);

/* Floats in the loss output: n for NONE, 1 for SUM and MEAN. */
static inline size_t dl_loss_out_len(detloss_reduction r, size_t n) {
  return r == DETLOSS_REDUCTION_NONE ? n : 1;
}

/* d(reduced loss) / d(weighted per-element loss): 1 for NONE and SUM,
 * 1/count for MEAN, and 0 for MEAN with count = 0. */
double dl_loss_grad_scale(detloss_reduction r, size_t count);

/* The reduced loss from the ordered double total: total for SUM (and NONE),
 * total / count for MEAN, 0 for MEAN with count = 0. */
float dl_loss_reduce(detloss_reduction r, double total, size_t count);

/* Block-parallel ordered sum. fn(ctx, i0, i1) processes items [i0, i1) and
 * returns their double sum. dl_parallel_sum cuts [0, n) into blocks of
 * `block` items, runs them on up to num_threads threads (0 = OpenMP default)
 * and adds the block sums serially in block order into *total (0 for n = 0).
 * Returns DETLOSS_OK, or DETLOSS_ERR_NOMEM (where "workspace") before any
 * fn call when the block partials cannot be allocated. */
typedef double (*dl_sum_fn)(void *ctx, size_t i0, size_t i1);
detloss_status dl_parallel_sum(size_t n, size_t block, int num_threads, dl_sum_fn fn, void *ctx,
                               double *total, detloss_error *err);

/* Block-parallel search. fn(ctx, i0, i1) returns the first bad item in
 * [i0, i1), or i1 when there is none. *first = the smallest bad index over
 * [0, n), or n when every item is good. Returns DETLOSS_OK or
 * DETLOSS_ERR_NOMEM (where "workspace"). */
typedef size_t (*dl_find_fn)(void *ctx, size_t i0, size_t i1);
detloss_status dl_parallel_find(size_t n, size_t block, int num_threads, dl_find_fn fn, void *ctx,
                                size_t *first, detloss_error *err);

/* Parallel dl_check_finite: DETLOSS_ERR_NULL (x NULL with n > 0),
 * DETLOSS_ERR_SHAPE (n > DL_MAX_ELEMS) or DETLOSS_ERR_NONFINITE naming the
 * first bad element "name[i]". */
detloss_status dl_check_finite_par(const float *x, size_t n, const char *name, int num_threads,
                                   detloss_error *err);

/* Elements per chunk: a kernel call fills a chunk's losses and gradients into
 * stack buffers, the driver then weights, scales, stores and sums them. */
#define DL_LOSS_CHUNK 256

/* Chunk kernel: for k in [0, m), m <= DL_LOSS_CHUNK, the unweighted loss l[k]
 * and its derivative g[k] = d l[k] / d x[k] of element i0 + k (i0 lets a
 * kernel broadcast a per-column parameter such as pos_weight). */
typedef void (*dl_elem_kernel)(const void *params, const float *x, const float *y, size_t i0,
                               size_t m, float *l, float *g);

/* Runs kern over [0, n) in DL_LOSS_BLOCK blocks on num_threads threads and
 * applies the common rules: weight w (NULL = 1) multiplies l and g; NONE
 * stores w l into loss[i]; SUM/MEAN store the ordered double block sum
 * (divided by n for MEAN) into loss[0]; grad (NULL = skip) gets w g times
 * dl_loss_grad_scale(r, n). The caller has validated everything. */
detloss_status dl_elementwise_run(dl_elem_kernel kern, const void *params, const float *x,
                                  const float *y, const float *w, size_t n, float *loss,
                                  float *grad, detloss_reduction r, int num_threads,
                                  detloss_error *err);

/* loss_box.c: one box pair of the IoU family with torchvision's semantics
 * (eps added to the denominators; kind IOU, GIOU, DIOU or CIOU), gradient
 * w.r.t. p times s into gp[4] (NULL = value only); the kernel of
 * detloss_loss_boxes. The FCOS head's torchvision variant (GIOU, eps 1e-7) and
 * the DETR head (GIOU, eps 0: torchvision generalized_box_iou and DETR's box_ops,
 * valid for boxes of positive area). */
double dl_box_pair_torchvision(detloss_loss_kind kind, const float *p, const float *g, double eps,
                               double s, float *gp);
/* loss_box.c: mmdetection's variant (bbox_overlaps with the union and the
 * enclosing area clamped >= eps): giou 1 - GIoU, else -ln(max(IoU, eps));
 * gradient w.r.t. p times s into gp[4] (NULL = value only). In double. */
double dl_box_pair_mmdet(int giou, const double *p, const double *g, double eps, double s,
                         double *gp);
/* ultralytics CIoU (bbox_iou(xywh=False, CIoU=True, eps=1e-7)) of box1 and box2
 * (x1, y1, x2, y2), in double, and d CIoU / d box1 into g1 [4] (NULL = skip)
 * with alpha held constant; atan1 = atan(w1 / h1) or NaN (computed). loss_box.c. */
double dl_ciou_ultralytics(const double *b1, const double *b2, double atan1, double *g1);
/* One row of detloss_loss_classes (loss_cls.c), for the heads that evaluate
 * rows themselves (head_detr.c): the row z [c] with target class t in [0, c)
 * and weight w; returns w l (CROSS_ENTROPY with label smoothing eps, or
 * SOFTMAX_FOCAL with alpha, gamma) in double and, when g != NULL, writes
 * g [c] = gscale w dl/dz. The bits of detloss_loss_classes' rows. */
double dl_loss_class_row(detloss_loss_kind kind, const float *z, size_t c, int64_t t, float w,
                         double eps, double alpha, double gamma, double gscale, float *g);

#endif /* DETLOSS_LOSS_INTERNAL_H */
