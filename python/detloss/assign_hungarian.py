"""detloss.assign - set matching (DETR) on numpy arrays.

    linear_sum_assignment(cost)                    # scipy.optimize.linear_sum_assignment's pairs
    hungarian_cost(logits, pred_boxes, gt, gt_labels)       # DETR's Q x G cost block, float64
    hungarian_match(logits, pred_boxes, gt, gt_labels)      # (pred_index, gt_index) of one image
    hungarian_match_batch(logits, pred_boxes, gts, labels)  # a list of them, one thread per image

The solver returns the pairs of scipy >= 1.9 linear_sum_assignment, including
its choice among equal-cost optima (float64 cost; +inf forbids a pair; NaN or
-inf, or no complete matching of finite cost, raise DetlossError naming
"cost..."). The matcher computes DETR's cost (models/matcher.py: -softmax
probability of the gt's class with the no-object column last, 5 x L1 on (cx,
cy, w, h), -2 x GIoU on the corners) or, with semantics="focal", the focal
class cost of Deformable-DETR / DINO / RT-DETR (weights 2 / 5 / 2, alpha 0.25,
gamma 2), per image on the Q x G_i block only, in float64 from float32
inputs; boxes are (cx, cy, w, h) with w, h > 0. Docs: docs/math/hungarian.md.
"""
import ctypes

import numpy as np

from . import _lib
from ._lib import DetlossError, array, call, ptr, threads

__all__ = ["linear_sum_assignment", "hungarian_cost", "hungarian_match", "hungarian_match_batch"]


class HungarianOptions(ctypes.Structure):  # detloss_hungarian_options
    _fields_ = [("semantics", ctypes.c_int), ("cost_class", ctypes.c_float),
                ("cost_bbox", ctypes.c_float), ("cost_giou", ctypes.c_float),
                ("focal_alpha", ctypes.c_float), ("focal_gamma", ctypes.c_float),
                ("num_threads", ctypes.c_int)]


_vp, _sz, _i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
_lib._SIGS.update({
    "detloss_linear_sum_assignment": (_i, [_vp, _sz, _sz, _vp, _vp, _vp]),
    "detloss_hungarian_options_default": (HungarianOptions, []),
    "detloss_hungarian_options_focal": (HungarianOptions, []),
    "detloss_hungarian_cost": (_i, [_vp, _sz, _sz, _vp, _vp, _vp, _sz, _vp, _vp, _vp]),
    "detloss_hungarian_match": (_i, [_vp, _sz, _sz, _vp, _vp, _vp, _sz, _vp, _vp, _vp, _vp, _vp,
                                     _vp]),
    "detloss_hungarian_match_batch": (_i, [_sz, _sz, _sz, _vp, _vp, _vp, _vp, _vp, _vp, _vp, _vp,
                                           _vp]),
})

SEMANTICS = {"detr": 0, "focal": 1}


def linear_sum_assignment(cost):
    """(row_ind, col_ind) int64 of the minimum-cost assignment of cost [R, C]
    (float64; +inf = forbidden), exactly as scipy.optimize.linear_sum_assignment
    (scipy >= 1.9) returns them, ties included. row_ind is ascending."""
    c = array("cost", cost, np.float64)
    if c.ndim != 2:
        raise DetlossError(_lib.ERR_SHAPE, "cost", "expected a 2-D array, got shape %s"
                           % (tuple(c.shape),))
    k = min(c.shape)
    r = np.empty(k, np.int64)
    j = np.empty(k, np.int64)
    call("detloss_linear_sum_assignment", ptr(c), c.shape[0], c.shape[1], ptr(r), ptr(j))
    return r, j


def _options(semantics, cost_class, cost_bbox, cost_giou, focal_alpha, focal_gamma, num_threads):
    if semantics not in SEMANTICS:
        raise DetlossError(_lib.ERR_UNKNOWN, "semantics", "unknown semantics %r (expected detr or "
                           "focal)" % (semantics,))
    o = _lib.fn("detloss_hungarian_options_default" if semantics == "detr"
                else "detloss_hungarian_options_focal")()
    if cost_class is not None:
        o.cost_class = _lib.scalar("cost_class", cost_class, lo=0)
    o.cost_bbox = _lib.scalar("cost_bbox", cost_bbox, lo=0)
    o.cost_giou = _lib.scalar("cost_giou", cost_giou, lo=0)
    o.focal_alpha = _lib.scalar("focal_alpha", focal_alpha)
    o.focal_gamma = _lib.scalar("focal_gamma", focal_gamma)
    o.num_threads = threads(num_threads)
    return o


def _image(logits, pred_boxes, gt, gt_labels):
    lg = array("logits", logits, shape=(None, None))
    pb = array("pred_boxes", pred_boxes, shape=(lg.shape[0], 4))
    g = array("gt", gt, shape=(None, 4))
    lb = array("gt_labels", gt_labels, np.int64, shape=(g.shape[0],))
    return lg, pb, g, lb


def hungarian_cost(logits, pred_boxes, gt, gt_labels, *, semantics="detr", cost_class=None,
                   cost_bbox=5.0, cost_giou=2.0, focal_alpha=0.25, focal_gamma=2.0):
    """DETR's matching cost of one image, [Q, G] float64:
    cost_bbox * L1(cxcywh) + cost_class * class cost - cost_giou * GIoU.
    logits [Q, K+1] ("detr", no-object last) or [Q, K] ("focal"); pred_boxes [Q, 4],
    gt [G, 4] (cx, cy, w, h); gt_labels [G] in [0, K). cost_class None = 1 (detr) or
    2 (focal)."""
    lg, pb, g, lb = _image(logits, pred_boxes, gt, gt_labels)
    o = _options(semantics, cost_class, cost_bbox, cost_giou, focal_alpha, focal_gamma, 0)
    c = np.empty((lg.shape[0], g.shape[0]), np.float64)
    call("detloss_hungarian_cost", ptr(lg), lg.shape[0], lg.shape[1], ptr(pb), ptr(g), ptr(lb),
         g.shape[0], ptr(c), ctypes.byref(o))
    return c


def hungarian_match(logits, pred_boxes, gt, gt_labels, *, semantics="detr", cost_class=None,
                    cost_bbox=5.0, cost_giou=2.0, focal_alpha=0.25, focal_gamma=2.0,
                    return_cost=False):
    """(pred_index, gt_index) int64 [min(Q, G)] of one image, pred_index ascending: DETR's
    HungarianMatcher for one image (scipy's pairs on the float64 cost). With
    return_cost also (total cost, cost matrix [Q, G])."""
    lg, pb, g, lb = _image(logits, pred_boxes, gt, gt_labels)
    o = _options(semantics, cost_class, cost_bbox, cost_giou, focal_alpha, focal_gamma, 0)
    Q, G = lg.shape[0], g.shape[0]
    k = min(Q, G)
    pi, gi = np.empty(k, np.int64), np.empty(k, np.int64)
    total = ctypes.c_double()
    cm = np.empty((Q, G), np.float64) if return_cost else None
    call("detloss_hungarian_match", ptr(lg), Q, lg.shape[1], ptr(pb), ptr(g), ptr(lb), G, ptr(pi),
         ptr(gi), ctypes.byref(total), ptr(cm), ctypes.byref(o))
    return (pi, gi, total.value, cm) if return_cost else (pi, gi)


def hungarian_match_batch(logits, pred_boxes, gts, gt_labels, *, semantics="detr",
                          cost_class=None, cost_bbox=5.0, cost_giou=2.0, focal_alpha=0.25,
                          focal_gamma=2.0, num_threads=0):
    """DETR's HungarianMatcher over a batch: logits [B, Q, K(+1)], pred_boxes [B, Q, 4],
    gts a list of B arrays [G_i, 4], gt_labels a list of B arrays [G_i]. Returns a list of
    B (pred_index, gt_index) pairs of int64 arrays, as DETR. One C call; the images run on
    num_threads threads (0 = OpenMP default), each on its own Q x G_i block; the result
    does not depend on the thread count."""
    lg = array("logits", logits, shape=(None, None, None))
    B, Q, nl = lg.shape
    pb = array("pred_boxes", pred_boxes, shape=(B, Q, 4))
    if len(gts) != B or len(gt_labels) != B:
        raise DetlossError(_lib.ERR_SHAPE, "gts", "expected %d images, got %d boxes and %d labels"
                           % (B, len(gts), len(gt_labels)))
    gl = [array("gts[%d]" % i, x, shape=(None, 4)) for i, x in enumerate(gts)]
    ll = [array("gt_labels[%d]" % i, x, np.int64, shape=(gl[i].shape[0],))
          for i, x in enumerate(gt_labels)]
    counts = np.array([x.shape[0] for x in gl], dtype=np.uintp)
    g = np.ascontiguousarray(np.concatenate(gl) if B else np.empty((0, 4)), dtype=np.float32)
    lb = np.ascontiguousarray(np.concatenate(ll) if B else np.empty(0), dtype=np.int64)
    o = _options(semantics, cost_class, cost_bbox, cost_giou, focal_alpha, focal_gamma,
                 num_threads)
    ks = np.minimum(counts, Q).astype(np.int64)
    tp = int(ks.sum())
    pi, gi = np.empty(tp, np.int64), np.empty(tp, np.int64)
    call("detloss_hungarian_match_batch", B, Q, nl, ptr(lg), ptr(pb), ptr(g), ptr(lb),
         ptr(counts), ptr(pi), ptr(gi), ctypes.byref(o))
    out, off = [], 0
    for k in ks.tolist():
        out.append((pi[off:off + k], gi[off:off + k]))
        off += k
    return out
