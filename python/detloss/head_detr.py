"""detloss.head_detr - DETR's set-prediction loss on numpy arrays.

    r = detr_loss(pred_logits, pred_boxes, labels, boxes)            # DETR (softmax)
    r = detr_loss(pred_logits, pred_boxes, labels, boxes, cls_loss="focal")  # Deformable-DETR
    r.loss_ce, r.loss_bbox, r.loss_giou, r.loss, r.matches, r.grad_pred_logits, r.grad_pred_boxes

facebookresearch/detr SetCriterion (losses "labels" and "boxes") with its
HungarianMatcher, in one C call over the batch (detloss_detr_loss): each image is
matched on its own Q x G_i cost block (scipy's pairs, ties included), then
  softmax: loss_ce = sum_q w_q CE(x_q, t_q) / sum_q w_q (no-object column last,
           w = eos_coef for no-object, 1 otherwise; torch cross_entropy with weight)
  focal:   loss_ce = sum of torchvision's sigmoid focal loss over queries and classes / nb
  loss_bbox = sum over pairs of |b_q - b_g|_1 / nb,  loss_giou = sum of (1 - GIoU) / nb
  loss = weight_ce loss_ce + weight_bbox loss_bbox + weight_giou loss_giou
nb = max(num_boxes, 1), num_boxes None = the batch's gt count. A distributed caller
passes DETR's all-reduced count divided by the world size. The gradients are those of
`loss` with the matching held fixed (DETR matches under no_grad).
Boxes are normalised (cx, cy, w, h) with w, h > 0. Docs: docs/math/detr_loss.md.
"""
import collections
import ctypes

import numpy as np

from . import _lib
from ._lib import DetlossError, array, ptr, threads

__all__ = ["detr_loss", "DetrLossResult"]


class DetrOptions(ctypes.Structure):  # detloss_detr_options
    _fields_ = [("cls_loss", ctypes.c_int), ("eos_coef", ctypes.c_float),
                ("focal_alpha", ctypes.c_float), ("focal_gamma", ctypes.c_float),
                ("cost_class", ctypes.c_float), ("cost_bbox", ctypes.c_float),
                ("cost_giou", ctypes.c_float), ("weight_ce", ctypes.c_float),
                ("weight_bbox", ctypes.c_float), ("weight_giou", ctypes.c_float),
                ("num_boxes", ctypes.c_double), ("num_threads", ctypes.c_int)]


class DetrImage(ctypes.Structure):  # detloss_detr_image
    _fields_ = [("pred_logits", ctypes.c_void_p), ("pred_boxes", ctypes.c_void_p),
                ("boxes", ctypes.c_void_p), ("labels", ctypes.c_void_p),
                ("num_gt", ctypes.c_size_t), ("matches", ctypes.c_void_p),
                ("grad_pred_logits", ctypes.c_void_p), ("grad_pred_boxes", ctypes.c_void_p),
                ("argmax", ctypes.c_void_p)]


class DetrResult(ctypes.Structure):  # detloss_detr_result
    _fields_ = [("loss_ce", ctypes.c_float), ("loss_bbox", ctypes.c_float),
                ("loss_giou", ctypes.c_float), ("loss", ctypes.c_float),
                ("num_boxes", ctypes.c_double), ("ce_weight_sum", ctypes.c_double),
                ("num_matched", ctypes.c_size_t), ("nonfinite", ctypes.c_int)]


_vp, _sz, _i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
_lib._SIGS.update({
    "detloss_detr_options_default": (DetrOptions, []),
    "detloss_detr_options_focal": (DetrOptions, []),
    "detloss_detr_loss": (_i, [_vp, _sz, _sz, _sz, _vp, _vp, _vp]),
})

CLS_LOSSES = {"softmax": 0, "focal": 1}

DetrLossResult = collections.namedtuple(
    "DetrLossResult", "loss_ce loss_bbox loss_giou loss num_boxes ce_weight_sum num_matched "
                      "matches grad_pred_logits grad_pred_boxes argmax")


def options(cls_loss="softmax", eos_coef=0.1, focal_alpha=0.25, focal_gamma=2.0,
            cost_class=None, cost_bbox=5.0, cost_giou=2.0, weight_ce=None, weight_bbox=5.0,
            weight_giou=2.0, num_boxes=None, num_threads=0):
    """A detloss_detr_options: the contract's defaults (cost_class and weight_ce None =
    1, or 2 for focal); every value checked and named."""
    if cls_loss not in CLS_LOSSES:
        raise DetlossError(_lib.ERR_UNKNOWN, "cls_loss", "unknown class loss %r (expected "
                           "softmax or focal)" % (cls_loss,))
    o = _lib.fn("detloss_detr_options_default" if cls_loss == "softmax"
                else "detloss_detr_options_focal")()
    o.eos_coef = _lib.scalar("eos_coef", eos_coef, lo=0)
    o.focal_alpha = _lib.scalar("focal_alpha", focal_alpha)
    o.focal_gamma = _lib.scalar("focal_gamma", focal_gamma, lo=0)
    if cost_class is not None:
        o.cost_class = _lib.scalar("cost_class", cost_class, lo=0)
    o.cost_bbox = _lib.scalar("cost_bbox", cost_bbox, lo=0)
    o.cost_giou = _lib.scalar("cost_giou", cost_giou, lo=0)
    if weight_ce is not None:
        o.weight_ce = _lib.scalar("weight_ce", weight_ce, lo=0)
    o.weight_bbox = _lib.scalar("weight_bbox", weight_bbox, lo=0)
    o.weight_giou = _lib.scalar("weight_giou", weight_giou, lo=0)
    o.num_boxes = -1.0 if num_boxes is None else _lib.scalar("num_boxes", num_boxes, lo=0)
    o.num_threads = threads(num_threads)
    return o


def run(logits, pboxes, labels, boxes, opt, grad_logits=None, grad_boxes=None, matches=None,
        argmax=None):
    """The C call on checked C-contiguous arrays: logits float32 [B, Q, K], pboxes
    float32 [B, Q, 4], labels / boxes lists of B int64 [G_i] / float32 [G_i, 4];
    outputs (or None) laid out like the inputs, matches and argmax int64 [B, Q]. Returns the
    DetrResult. Used by the numpy function and the torch drop-in."""
    B, Q, K = logits.shape
    ims = (DetrImage * max(B, 1))()
    for i in range(B):
        im = ims[i]
        im.pred_logits = logits.ctypes.data + i * Q * K * 4
        im.pred_boxes = pboxes.ctypes.data + i * Q * 16
        im.boxes = ptr(boxes[i])
        im.labels = ptr(labels[i])
        im.num_gt = labels[i].shape[0]
        im.matches = None if matches is None else matches.ctypes.data + i * Q * 8
        im.grad_pred_logits = None if grad_logits is None else \
            grad_logits.ctypes.data + i * Q * K * 4
        im.grad_pred_boxes = None if grad_boxes is None else grad_boxes.ctypes.data + i * Q * 16
        im.argmax = None if argmax is None else argmax.ctypes.data + i * Q * 8
    res = DetrResult()
    err = _lib.Error()
    st = _lib.fn("detloss_detr_loss")(ims, B, Q, K, ctypes.byref(res), ctypes.byref(opt),
                                      ctypes.byref(err))
    _lib.check(st, err)
    return res


def targets(labels, boxes, B):
    """labels, boxes: B arrays each ([G_i] int64 >= 0, [G_i, 4] float32)."""
    if len(labels) != B or len(boxes) != B:
        raise DetlossError(_lib.ERR_SHAPE, "labels", "expected %d images, got %d labels and %d "
                           "boxes" % (B, len(labels), len(boxes)))
    bx = [array("boxes[%d]" % i, b, shape=(None, 4)) for i, b in enumerate(boxes)]
    lb = [array("labels[%d]" % i, x, np.int64, shape=(bx[i].shape[0],))
          for i, x in enumerate(labels)]
    return lb, bx


def detr_loss(pred_logits, pred_boxes, labels, boxes, *, cls_loss="softmax", eos_coef=0.1,
              focal_alpha=0.25, focal_gamma=2.0, cost_class=None, cost_bbox=5.0, cost_giou=2.0,
              weight_ce=None, weight_bbox=5.0, weight_giou=2.0, num_boxes=None, grad=True,
              num_threads=0):
    """DETR's loss of a batch (module docstring). pred_logits [B, Q, K] (softmax: K = C + 1,
    the no-object column last; focal: K = C), pred_boxes [B, Q, 4] (cx, cy, w, h);
    labels a list of B int arrays [G_i] in [0, C), boxes a list of B arrays [G_i, 4]
    (cx, cy, w, h), G_i = 0 allowed. num_boxes: the caller's (all-reduced) gt count,
    None = sum of G_i. Returns a DetrLossResult: the unweighted loss_ce, loss_bbox,
    loss_giou, the weighted loss (floats), num_boxes (nb used), ce_weight_sum,
    num_matched, matches int64 [B, Q] (gt index or -1), with grad the float32
    gradients of loss [B, Q, K] and [B, Q, 4] (else None), and argmax int64 [B, Q] (each
    query's largest logit, the first on ties, for DETR's class_error and
    cardinality_error). Errors raise DetlossError
    naming the input ("images[1].pred_logits[3][2]" for the C checks)."""
    lg = array("pred_logits", pred_logits, shape=(None, None, None))
    B, Q, K = lg.shape
    pb = array("pred_boxes", pred_boxes, shape=(B, Q, 4))
    lb, bx = targets(labels, boxes, B)
    o = options(cls_loss, eos_coef, focal_alpha, focal_gamma, cost_class, cost_bbox, cost_giou,
                weight_ce, weight_bbox, weight_giou, num_boxes, num_threads)
    gl = np.empty((B, Q, K), np.float32) if grad else None
    gb = np.empty((B, Q, 4), np.float32) if grad else None
    m = np.empty((B, Q), np.int64)
    am = np.empty((B, Q), np.int64)
    r = run(lg, pb, lb, bx, o, gl, gb, m, am)
    return DetrLossResult(float(r.loss_ce), float(r.loss_bbox), float(r.loss_giou), float(r.loss),
                          r.num_boxes, r.ce_weight_sum, r.num_matched, m, gl, gb, am)
