/*
 * loss_elementwise.c - the public entry points of the element-wise losses:
 * detloss_loss_elementwise checks what every kind shares (reduction, counts,
 * pointers, aliasing) and hands the kind to its family (loss_elementwise.h);
 * detloss_sigmoid_focal_loss is its shorthand for the focal loss.
 */
#include <stddef.h>

#include "loss_elementwise.h"
#include "loss_internal.h"

detloss_status detloss_loss_elementwise(detloss_loss_kind kind, const float *input,
                                        const float *target, const float *weight, size_t n,
                                        float *loss, float *grad, const detloss_loss_options *opt,
                                        detloss_error *err) {
  detloss_loss_options o = dl_loss_resolve(kind, opt);
  DL_FORWARD_IF_ERROR(dl_check_reduction(o.reduction, err));
  DL_RETURN_ERROR_IF(n > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE, "n",
                     "%zu elements is more than can be addressed", n);
  DL_FORWARD_IF_ERROR(dl_check_ptr(input, n, "input", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(target, n, "target", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(loss, dl_loss_out_len(o.reduction, n), "loss", err));
  {
    const int pw =
        kind == DETLOSS_LOSS_BCE_WITH_LOGITS && o.pos_weight != NULL && o.pos_weight_len <= n;
    dl_span sp[6] = {dl_span_of(input, n, sizeof(float), "input", 0),
                     dl_span_of(target, n, sizeof(float), "target", 0),
                     dl_span_of(weight, n, sizeof(float), "weight", 0),
                     dl_span_of(pw ? o.pos_weight : NULL, o.pos_weight_len, sizeof(float),
                                "pos_weight", 0),
                     dl_span_of(loss, dl_loss_out_len(o.reduction, n), sizeof(float), "loss", 1),
                     dl_span_of(grad, n, sizeof(float), "grad", 1)};
    DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 6, err));
  }
  switch (kind) {
    case DETLOSS_LOSS_BCE_WITH_LOGITS:
    case DETLOSS_LOSS_BCE:
    case DETLOSS_LOSS_SIGMOID_FOCAL:
    case DETLOSS_LOSS_HINGE:
      return dl_loss_cls_elementwise(kind, input, target, weight, n, loss, grad, &o, err);
    case DETLOSS_LOSS_L1:
    case DETLOSS_LOSS_MSE:
    case DETLOSS_LOSS_SMOOTH_L1:
    case DETLOSS_LOSS_HUBER:
      return dl_loss_reg_elementwise(kind, input, target, weight, n, loss, grad, &o, err);
    case DETLOSS_LOSS_VARIFOCAL:
      return dl_loss_quality_elementwise(kind, input, target, weight, n, loss, grad, &o, err);
    default: break;
  }
  const char *name = detloss_loss_name(kind);
  return dl_fail(err, DETLOSS_ERR_RANGE, "kind",
                 "%s%s%s (%d) is not an element-wise loss (bce_with_logits, bce, sigmoid_focal, "
                 "hinge, l1, mse, smooth_l1, huber, varifocal)",
                 name ? "'" : "", name ? name : "unknown kind", name ? "'" : "", (int)kind);
}

detloss_status detloss_sigmoid_focal_loss(const float *logits, const float *targets, size_t n,
                                          float alpha, float gamma, detloss_reduction reduction,
                                          float *loss, float *grad, int num_threads,
                                          detloss_error *err) {
  detloss_loss_options o = detloss_loss_options_default(DETLOSS_LOSS_SIGMOID_FOCAL);
  o.alpha = alpha;
  o.gamma = gamma;
  o.reduction = reduction;
  o.num_threads = num_threads;
  return detloss_loss_elementwise(DETLOSS_LOSS_SIGMOID_FOCAL, logits, targets, NULL, n, loss, grad,
                                  &o, err);
}
