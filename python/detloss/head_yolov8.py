"""The YOLOv8 detection loss (ultralytics v8DetectionLoss, 8.1) on numpy arrays.
The C library does the work (detloss_yolov8_loss, docs/math/yolov8_loss.md): the
task-aligned assignment per image (no B x M x A tensors), BCE over the soft target
scores, CIoU and DFL on the foreground anchors, and every gradient in one call.

    from detloss import yolov8_loss
    r = yolov8_loss((640, 640), gts, labels, pred_distri, pred_scores)
    r.loss, r.grad_pred_distri, r.grad_pred_scores
"""
import collections
import ctypes

import numpy as np

from . import _lib
from ._lib import DetlossError, array, call, ptr, threads

__all__ = ["yolov8_loss", "Yolov8LossResult"]

Yolov8LossResult = collections.namedtuple(
    "Yolov8LossResult",
    "loss loss_box loss_cls loss_dfl num_fg target_score_sum normalizer assigned_gt "
    "grad_pred_distri grad_pred_scores")


def _options(strides, reg_max, topk, alpha, beta, box, cls, dfl, target_score_sum,
             num_threads):
    o = _lib.fn("detloss_yolov8_options_default")()
    st = [float(s) for s in strides]
    if not 1 <= len(st) <= 8:
        raise DetlossError(_lib.ERR_RANGE, "strides", "expected 1 to 8 strides, got %d" % len(st))
    for k, s in enumerate(st):
        o.strides[k] = _lib.scalar("strides", s, lo=0, lo_open=True)
    o.num_levels = len(st)
    o.reg_max = _lib.integer("reg_max", reg_max, "size_t", lo=2)
    o.topk = _lib.integer("topk", topk, "int64", lo=1)
    o.alpha = _lib.scalar("alpha", alpha, lo=0)
    o.beta = _lib.scalar("beta", beta, lo=0, lo_open=True)
    o.gain_box = _lib.scalar("box", box, lo=0)
    o.gain_cls = _lib.scalar("cls", cls, lo=0)
    o.gain_dfl = _lib.scalar("dfl", dfl, lo=0)
    if target_score_sum is not None:
        v = float(target_score_sum)
        if not v > 0 or not np.isfinite(v):
            raise DetlossError(_lib.ERR_RANGE, "target_score_sum",
                               "must be a finite number > 0 (or None), got %r" % (v,))
        o.target_score_sum = v
    o.num_threads = threads(num_threads)
    return o


def yolov8_loss(image_size, gt, labels, pred_distri, pred_scores, *, strides=(8, 16, 32),
                reg_max=16, topk=10, alpha=0.5, beta=6.0, box=7.5, cls=0.5, dfl=1.5,
                target_score_sum=None, grad=True, num_threads=0, out=None):
    """ultralytics v8DetectionLoss of a batch of B images, with gradients.

    image_size (H, W): the input size, a multiple of every stride; the anchors are
    the (H/s) x (W/s) grid points of each level, level-major, y outer.
    gt: B arrays [G_i, 4] (x1, y1, x2, y2) pixels; labels: B arrays [G_i] in [0, C).
    pred_distri [B, A, 4 reg_max] box-side logits (l, t, r, b, reg_max each);
    pred_scores [B, A, C] class logits. box, cls, dfl: the gains (hyp).
    target_score_sum: None = this batch's sum of target scores; a number = the
    caller's (e.g. all-reduced over the ranks of a distributed step), S = max(it, 1).
    Returns Yolov8LossResult: loss = (loss_box + loss_cls + loss_dfl) * B (what
    ultralytics back-propagates), the three gained terms, num_fg, target_score_sum
    (this batch's, before any clamp), normalizer S, assigned_gt [B, A] (-1 background)
    and, with grad, grad_pred_distri / grad_pred_scores (d loss / d inputs, float32).
    out: optional (grad_pred_distri, grad_pred_scores) float32 C-contiguous arrays of those
    shapes to write the gradients into (a training loop that keeps them avoids fresh
    pages on every call)."""
    if len(image_size) != 2:
        raise DetlossError(_lib.ERR_SHAPE, "image_size", "expected (H, W)")
    H = _lib.integer("image_size", image_size[0], "size_t", lo=1)
    W = _lib.integer("image_size", image_size[1], "size_t", lo=1)
    o = _options(strides, reg_max, topk, alpha, beta, box, cls, dfl, target_score_sum,
                 num_threads)
    R = int(o.reg_max)
    pd = array("pred_distri", pred_distri, shape=(None, None, 4 * R))
    B, A = pd.shape[0], pd.shape[1]
    ps = array("pred_scores", pred_scores, shape=(B, A, None))
    C = ps.shape[2]
    if len(gt) != B or len(labels) != B:
        raise DetlossError(_lib.ERR_SHAPE, "gt", "expected %d images (gt and labels), got %d and %d"
                           % (B, len(gt), len(labels)))
    gts = [array("gt[%d]" % i, g, shape=(None, 4)) for i, g in enumerate(gt)]
    labs = [array("labels[%d]" % i, lab, np.int64, shape=(gts[i].shape[0],))
            for i, lab in enumerate(labels)]
    ims = (_lib.Yolov8Image * max(B, 1))()
    assigned = np.empty((B, A), np.int64)
    gd = np.empty((B, A, 4 * R), np.float32) if grad and out is None else None
    gs = np.empty((B, A, C), np.float32) if grad and out is None else None
    if grad and out is not None:
        gd, gs = out
        for name, a, shp in (("out[0]", gd, (B, A, 4 * R)), ("out[1]", gs, (B, A, C))):
            if not (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == shp
                    and a.flags.c_contiguous and a.flags.writeable):
                raise DetlossError(_lib.ERR_SHAPE, name,
                                   "expected a writable C-contiguous float32 array of shape %s"
                                   % (shp,))
    for i in range(B):
        im = ims[i]
        im.gt, im.num_gt, im.labels = ptr(gts[i]), gts[i].shape[0], ptr(labs[i])
        im.pred_distri = pd.ctypes.data + i * pd.strides[0]
        im.pred_scores = ps.ctypes.data + i * ps.strides[0]
        im.assigned_gt = assigned.ctypes.data + i * assigned.strides[0]
        if grad:
            im.grad_pred_distri = gd.ctypes.data + i * gd.strides[0]
            im.grad_pred_scores = gs.ctypes.data + i * gs.strides[0]
    res = _lib.Yolov8Result()
    call("detloss_yolov8_loss", H, W, C, ims, B, ctypes.byref(res), ctypes.byref(o))
    return Yolov8LossResult(float(res.loss), float(res.loss_box), float(res.loss_cls),
                            float(res.loss_dfl), int(res.num_fg), float(res.target_score_sum),
                            float(res.normalizer), assigned, gd, gs)
