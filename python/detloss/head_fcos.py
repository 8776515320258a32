"""The FCOS head loss (detloss_fcos_loss): numpy in, numpy out.

    from detloss import fcos_loss
    out = fcos_loss(feature_maps, cls_logits, bbox_pred, centerness, gt_boxes, gt_labels,
                    grad=True)
    out["loss_cls"], out["loss_bbox"], out["loss_centerness"], out["grad_cls_logits"]

Semantics: mmdetection 3.x FCOSHead.loss_by_feat (variant "mmdet", the default) or
torchvision 0.14 FCOSHead.compute_loss (variant "torchvision"); docs/math/fcos_loss.md.
For distributed training pass the cross-rank averages as avg_num_pos (and, mmdet,
avg_centerness_sum): mmdet all-reduces both before its clamps.
"""
import ctypes

import numpy as np

from . import _lib
from ._lib import array, call, ptr, threads

__all__ = ["fcos_loss", "grid_points"]

_vp, _sz, _i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int


class FcosLossOptions(ctypes.Structure):
    _fields_ = [("variant", ctypes.c_int), ("regress_ranges", ctypes.c_void_p),
                ("center_sampling", ctypes.c_int), ("center_sample_radius", ctypes.c_float),
                ("norm_on_bbox", ctypes.c_int), ("alpha", ctypes.c_float),
                ("gamma", ctypes.c_float), ("box_loss", ctypes.c_int),
                ("avg_num_pos", ctypes.c_double), ("avg_centerness_sum", ctypes.c_double),
                ("num_threads", ctypes.c_int)]


class FcosImage(ctypes.Structure):
    _fields_ = [("num_gt", ctypes.c_size_t), ("gt", ctypes.c_void_p),
                ("labels", ctypes.c_void_p), ("cls_logits", ctypes.c_void_p),
                ("bbox_pred", ctypes.c_void_p), ("centerness", ctypes.c_void_p),
                ("grad_cls_logits", ctypes.c_void_p), ("grad_bbox_pred", ctypes.c_void_p),
                ("grad_centerness", ctypes.c_void_p), ("assigned_labels", ctypes.c_void_p)]


class FcosResult(ctypes.Structure):
    _fields_ = [("loss_cls", ctypes.c_float), ("loss_bbox", ctypes.c_float),
                ("loss_centerness", ctypes.c_float), ("num_pos", ctypes.c_size_t),
                ("num_pos_norm", ctypes.c_double), ("centerness_norm", ctypes.c_double),
                ("centerness_sum", ctypes.c_double), ("nonfinite", ctypes.c_int)]


_lib._SIGS.update({
    "detloss_fcos_loss_options_default": (FcosLossOptions, []),
    "detloss_grid_points": (_i, [_vp, _vp, _sz, ctypes.c_float, _vp, _vp]),
    "detloss_fcos_loss": (_i, [_vp, _sz, _vp, _vp, _sz, _sz, _vp, _sz, _vp, _vp, _vp]),
})

_VARIANTS = {"mmdet": 0, "torchvision": 1}
_BOX = {"giou": 0, "iou": 1}
DEFAULT_STRIDES = (8, 16, 32, 64, 128)


def grid_points(feature_maps, strides=DEFAULT_STRIDES, offset=0.5):
    """Points of a pyramid, level-major: ((x + offset) s, (y + offset) s), y outer.
    offset 0.5: mmdet MlvlPointGenerator; 0: torchvision's anchor centres."""
    fm = array("feature_maps", feature_maps, np.uint64, shape=(None, 2)).astype(np.uintp)
    st = array("strides", strides, shape=(len(fm),))
    out = np.empty((int(fm[:, 0].astype(np.int64) @ fm[:, 1].astype(np.int64)) if len(fm) else 0,
                    2), np.float32)
    call("detloss_grid_points", ptr(fm), ptr(st), len(fm), ctypes.c_float(offset), ptr(out))
    return out


def _pick(table, name, value):
    if value not in table:
        raise _lib.DetlossError(_lib.ERR_UNKNOWN, name, "unknown %s %r (expected %s)"
                                % (name, value, " or ".join(table)))
    return table[value]


def fcos_loss(feature_maps, cls_logits, bbox_pred, centerness, gt_boxes, gt_labels,
              strides=DEFAULT_STRIDES, regress_ranges=None, center_sampling=True,
              center_sample_radius=1.5, norm_on_bbox=True, alpha=0.25, gamma=2.0,
              box_loss="giou", avg_num_pos=None, avg_centerness_sum=None, variant="mmdet",
              points=None, grad=False, num_threads=0):
    """FCOS head loss over a batch (docs/math/fcos_loss.md).

    cls_logits [B][P][C], bbox_pred [B][P][4] (l, t, r, b after the head's activation;
    stride units with norm_on_bbox), centerness [B][P] logits; gt_boxes / gt_labels:
    lists of B arrays [G_i][4] / [G_i]. feature_maps [[h, w] per level] with strides
    give the points (mmdet: offset 0.5; torchvision: 0), or pass points [P][2].
    avg_num_pos / avg_centerness_sum: the caller's cross-rank normalizers (None = this
    batch's). Returns a dict: loss_cls, loss_bbox, loss_centerness (floats), num_pos,
    num_pos_norm, centerness_norm, labels [B][P] (-1 background) and, with grad, the
    gradients of the sum of the three losses: grad_cls_logits, grad_bbox_pred,
    grad_centerness (targets held constant).
    """
    cls = array("cls_logits", cls_logits, shape=(None, None, None))
    B, P, C = cls.shape
    bbox = array("bbox_pred", bbox_pred, shape=(B, P, 4))
    ctr = array("centerness", np.reshape(np.asarray(centerness), (B, P))
                if np.size(centerness) == B * P else centerness, shape=(B, P))
    fm = array("feature_maps", feature_maps, np.int64, shape=(None, 2), lo=0)
    L = len(fm)
    st = array("strides", strides, shape=(L,))
    fmz = np.ascontiguousarray(fm, dtype=np.uintp)
    lc = np.ascontiguousarray(fm[:, 0] * fm[:, 1], dtype=np.uintp)
    if points is None:
        points = np.empty((int(lc.sum()), 2), np.float32)
        call("detloss_grid_points", ptr(fmz), ptr(st), L,
             ctypes.c_float(0.0 if variant == "torchvision" else 0.5), ptr(points))
    pts = array("points", points, shape=(None, 2))
    if len(gt_boxes) != B or len(gt_labels) != B:
        raise _lib.DetlossError(_lib.ERR_SHAPE, "gt_boxes",
                                "expected %d images (cls_logits), got %d boxes and %d labels"
                                % (B, len(gt_boxes), len(gt_labels)))
    o = _lib.fn("detloss_fcos_loss_options_default")()
    o.variant = _pick(_VARIANTS, "variant", variant)
    rr = None
    if regress_ranges is not None:
        rr = array("regress_ranges", regress_ranges, shape=(L, 2))
        o.regress_ranges = ptr(rr)
    o.center_sampling = int(bool(center_sampling))
    o.center_sample_radius = float(center_sample_radius)
    o.norm_on_bbox = int(bool(norm_on_bbox))
    o.alpha = float(alpha)
    o.gamma = float(gamma)
    o.box_loss = _pick(_BOX, "box_loss", box_loss)
    o.avg_num_pos = -1.0 if avg_num_pos is None else float(avg_num_pos)
    o.avg_centerness_sum = -1.0 if avg_centerness_sum is None else float(avg_centerness_sum)
    o.num_threads = threads(num_threads)
    keep = []
    ims = (FcosImage * B)()
    labels = np.empty((B, P), np.int64)
    g_cls = np.empty((B, P, C), np.float32) if grad else None
    g_bb = np.empty((B, P, 4), np.float32) if grad else None
    g_ct = np.empty((B, P), np.float32) if grad else None
    for i in range(B):
        g = array("gt_boxes[%d]" % i, gt_boxes[i], shape=(None, 4))
        lb = array("gt_labels[%d]" % i, gt_labels[i], np.int64, shape=(len(g),))
        keep += [g, lb]
        im = ims[i]
        im.num_gt = len(g)
        im.gt, im.labels = ptr(g), ptr(lb)
        im.cls_logits, im.bbox_pred, im.centerness = ptr(cls[i]), ptr(bbox[i]), ptr(ctr[i])
        im.assigned_labels = ptr(labels[i])
        if grad:
            im.grad_cls_logits, im.grad_bbox_pred = ptr(g_cls[i]), ptr(g_bb[i])
            im.grad_centerness = ptr(g_ct[i])
    r = FcosResult()
    call("detloss_fcos_loss", ptr(pts), len(pts), ptr(lc), ptr(st), L, C, ims, B,
         ctypes.byref(r), ctypes.byref(o))
    out = {"loss_cls": float(r.loss_cls), "loss_bbox": float(r.loss_bbox),
           "loss_centerness": float(r.loss_centerness), "num_pos": int(r.num_pos),
           "num_pos_norm": r.num_pos_norm, "centerness_norm": r.centerness_norm,
           "centerness_sum": r.centerness_sum, "nonfinite": bool(r.nonfinite), "labels": labels}
    if grad:
        out.update(grad_cls_logits=g_cls, grad_bbox_pred=g_bb, grad_centerness=g_ct)
    return out
