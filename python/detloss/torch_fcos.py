"""FCOS head loss for PyTorch: an autograd function on detloss_fcos_loss and a one-line
drop-in for torchvision 0.14's FCOS.compute_loss (matcher + FCOSHead.compute_loss).

    from detloss.torch_fcos import fcos_loss_torch, patch_torchvision_fcos
    losses = fcos_loss_torch(feature_maps, cls, bbox, ctr, gt_boxes, gt_labels)  # mmdet
    patch_torchvision_fcos(model)   # model: torchvision.models.detection.FCOS

Gradients flow to cls_logits, bbox_pred and centerness; the targets are constants, as
in the references. Computed in float32 on the CPU; results come back in the input's
dtype and device. Distributed training: pass avg_num_pos (and, mmdet,
avg_centerness_sum) all-reduced over the ranks, as mmdet's reduce_mean does.
"""
import numpy as np
import torch

from .head_fcos import fcos_loss as _fcos_loss_np

__all__ = ["fcos_loss_torch", "torchvision_fcos_loss", "patch_torchvision_fcos"]


def _np(t):
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


class _FcosLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cls, bbox, ctr, kw):
        out = _fcos_loss_np(cls_logits=_np(cls), bbox_pred=_np(bbox), centerness=_np(ctr),
                            grad=True, **kw)
        mk = lambda a: torch.from_numpy(a).to(device=cls.device, dtype=cls.dtype)  # noqa: E731
        ctx.save_for_backward(mk(out["grad_cls_logits"]), mk(out["grad_bbox_pred"]),
                              mk(out["grad_centerness"]).reshape(ctr.shape))
        ctx.extra = out
        return tuple(torch.tensor(out[k], dtype=cls.dtype, device=cls.device)
                     for k in ("loss_cls", "loss_bbox", "loss_centerness"))

    @staticmethod
    def backward(ctx, g_cls, g_box, g_ctr):
        gc, gb, gt = ctx.saved_tensors
        # each loss depends on one input only: d loss_cls / d cls_logits, and so on
        return g_cls * gc, g_box * gb, g_ctr * gt, None


def fcos_loss_torch(feature_maps, cls_logits, bbox_pred, centerness, gt_boxes, gt_labels,
                    **options):
    """mmdet FCOSHead.loss_by_feat semantics (variant="torchvision" for torchvision's).
    cls_logits [B][P][C], bbox_pred [B][P][4], centerness [B][P] tensors; gt_boxes /
    gt_labels lists of tensors or arrays. options: those of detloss.fcos_loss
    (strides, regress_ranges, center_sampling, ..., avg_num_pos, avg_centerness_sum).
    Returns {"loss_cls", "loss_bbox", "loss_centerness"} (scalar tensors)."""
    kw = dict(options)
    kw.update(feature_maps=feature_maps,
              gt_boxes=[np.asarray(_np(g) if torch.is_tensor(g) else g, np.float32)
                        .reshape(-1, 4) for g in gt_boxes],
              gt_labels=[np.asarray(lb.cpu().numpy() if torch.is_tensor(lb) else lb, np.int64)
                         for lb in gt_labels])
    lc, lb, lt = _FcosLoss.apply(cls_logits, bbox_pred, centerness, kw)
    return {"loss_cls": lc, "loss_bbox": lb, "loss_centerness": lt}


def torchvision_fcos_loss(targets, head_outputs, anchors, num_anchors_per_level,
                          center_sampling_radius=1.5, avg_num_pos=None, num_threads=0):
    """torchvision 0.14 FCOS.compute_loss (matcher) + FCOSHead.compute_loss in one call:
    same arguments, same dict {"classification", "bbox_regression", "bbox_ctrness"}.
    Every image's anchors must be the same (a padded batch) with one size per level
    (torchvision's default AnchorGenerator: the stride). avg_num_pos: the caller's
    normalizer instead of this batch's foreground count (torchvision has none)."""
    a = anchors[0]
    for other in anchors[1:]:
        if not torch.equal(other, a):
            raise ValueError("torchvision_fcos_loss: every image must have the same anchors")
    an = _np(a)
    counts = [int(n) for n in num_anchors_per_level]
    sizes = an[:, 2] - an[:, 0]
    strides, o = [], 0
    for n in counts:
        s = sizes[o:o + n]
        if n and not np.all(s == s[0]):
            raise ValueError("torchvision_fcos_loss: anchors of one level must share one size")
        strides.append(float(s[0]) if n else 1.0)
        o += n
    points = np.stack(((an[:, 0] + an[:, 2]) / 2, (an[:, 1] + an[:, 3]) / 2), 1)
    out = fcos_loss_torch(
        [[n, 1] for n in counts], head_outputs["cls_logits"], head_outputs["bbox_regression"],
        head_outputs["bbox_ctrness"].squeeze(2), [t["boxes"] for t in targets],
        [t["labels"] for t in targets], strides=strides, variant="torchvision",
        center_sampling=True, center_sample_radius=center_sampling_radius, points=points,
        avg_num_pos=avg_num_pos, num_threads=num_threads)
    return {"classification": out["loss_cls"], "bbox_regression": out["loss_bbox"],
            "bbox_ctrness": out["loss_centerness"]}


def patch_torchvision_fcos(model, avg_num_pos=None, num_threads=0):
    """Makes model (a torchvision FCOS) compute its loss with torchvision_fcos_loss: the
    model's class is swapped for a patched subclass (detloss.torch.patch_fcos), so the
    patched model deep-copies, pickles and torch.saves; detloss.torch.unpatch reverts."""
    from .torch_detection import patch_fcos
    return patch_fcos(model, avg_num_pos=avg_num_pos, num_threads=num_threads)
