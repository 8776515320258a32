/*
 * loss_elementwise.h - the element-wise loss families behind
 * detloss_loss_elementwise (loss_elementwise.c dispatches on the kind):
 * classification kinds in loss_cls.c, regression kinds in loss_reg.c, varifocal in loss_quality.c.
 * Each family checks its own parameters and inputs, then runs its kernel
 * through dl_elementwise_run (loss_internal.h).
 */
#ifndef DETLOSS_LOSS_ELEMENTWISE_H
#define DETLOSS_LOSS_ELEMENTWISE_H

#include <stddef.h>

#include "internal.h"

/* The element-wise kinds of each file, after detloss_loss_elementwise has
 * checked the pointers and the reduction (same arguments, opt resolved). */
detloss_status dl_loss_cls_elementwise(detloss_loss_kind kind, const float *input,
                                       const float *target, const float *weight, size_t n,
                                       float *loss, float *grad, const detloss_loss_options *o,
                                       detloss_error *err);
detloss_status dl_loss_reg_elementwise(detloss_loss_kind kind, const float *input,
                                       const float *target, const float *weight, size_t n,
                                       float *loss, float *grad, const detloss_loss_options *o,
                                       detloss_error *err);

detloss_status dl_loss_quality_elementwise(detloss_loss_kind kind, const float *input,
                                           const float *target, const float *weight, size_t n,
                                           float *loss, float *grad, const detloss_loss_options *o,
                                           detloss_error *err);

#endif /* DETLOSS_LOSS_ELEMENTWISE_H */
