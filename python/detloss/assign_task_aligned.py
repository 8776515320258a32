"""detloss.assign - the dynamic assigners (numpy API).

Task-aligned assignment (TOOD, YOLOv8), per image and batched:

    r = detloss.task_aligned_assign(points, scores, pred_boxes, gt, gt_labels)
    r.assigned_gt, r.assigned_labels, r.target_scores, r.align_metrics   # [A] each

semantics "ultralytics" (default: topk 10, alpha 0.5, beta 6, YOLOv8's loss) or
"tood" (TOOD / mmdetection 3.x: topk 13, alpha 1, beta 6); docs/math/task_aligned.md.
"""
import collections
import ctypes

import numpy as np

from . import _lib
from ._lib import DetlossError, array, ptr, threads

__all__ = ["TaskAlignedResult", "task_aligned_assign", "task_aligned_assign_batch"]

_vp, _sz, _i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int


# ---- task-aligned assigner ----

class _TaskAlignedOptions(ctypes.Structure):  # detloss_task_aligned_options
    _fields_ = [("semantics", ctypes.c_int), ("topk", ctypes.c_int64), ("alpha", ctypes.c_float),
                ("beta", ctypes.c_float), ("num_threads", ctypes.c_int)]


class _TaskAlignedImage(ctypes.Structure):  # detloss_task_aligned_image
    _fields_ = [("num_points", _sz), ("points", _vp), ("level_counts", _vp),
                ("num_levels", _sz), ("scores", _vp), ("pred_boxes", _vp), ("num_gt", _sz),
                ("gt", _vp), ("gt_labels", _vp), ("assigned_gt", _vp),
                ("assigned_labels", _vp), ("target_scores", _vp), ("align_metrics", _vp)]


_lib._SIGS.update({
    "detloss_task_aligned_options_default": (_TaskAlignedOptions, []),
    "detloss_task_aligned_options_tood": (_TaskAlignedOptions, []),
    "detloss_assign_task_aligned": (_i, [_vp, _sz, _vp, _sz, _vp, _sz, _vp, _vp, _vp, _sz, _vp,
                                         _vp, _vp, _vp, _vp, _vp]),
    "detloss_assign_task_aligned_batch": (_i, [_vp, _sz, _sz, _vp, _vp]),
})

_TAL_SEMANTICS = {"ultralytics": 0, "tood": 1}

TaskAlignedResult = collections.namedtuple(
    "TaskAlignedResult", ["assigned_gt", "assigned_labels", "target_scores", "align_metrics"])


def _task_aligned_options(semantics, topk, alpha, beta, num_threads):
    if semantics not in _TAL_SEMANTICS:
        raise DetlossError(_lib.ERR_RANGE, "semantics", "must be one of %s, got %r"
                           % (sorted(_TAL_SEMANTICS), semantics))
    name = "detloss_task_aligned_options_" + ("tood" if semantics == "tood" else "default")
    o = _lib.fn(name)()
    if topk is not None:
        o.topk = _lib.integer("topk", topk, "int64", lo=1)
    if alpha is not None:
        o.alpha = _lib.scalar("alpha", alpha, lo=0.0)
    if beta is not None:
        o.beta = _lib.scalar("beta", beta, lo=0.0, lo_open=True)
    o.num_threads = threads(num_threads)
    return o


def _level_counts(points, level_counts):
    """level_counts as size_t, or (when None) the runs of points whose y never
    decreases (make_anchors' level-major grids: one run per level)."""
    if level_counts is not None:
        lc = array("level_counts", level_counts, np.uint64, shape=(None,), lo=0)
        return lc
    if len(points) == 0:
        return None
    starts = np.flatnonzero(np.diff(points[:, 1]) < 0) + 1
    bounds = np.concatenate([[0], starts, [len(points)]])
    return np.diff(bounds).astype(np.uint64)


def _image(points, scores, pred_boxes, gt, gt_labels, level_counts, C=None):
    p = array("points", points, shape=(None, 2))
    A = p.shape[0]
    s = array("scores", scores, shape=(A, C))
    b = array("pred_boxes", pred_boxes, shape=(A, 4))
    g = array("gt", gt, shape=(None, 4))
    lab = array("gt_labels", gt_labels, np.int64, shape=(g.shape[0],))
    lc = _level_counts(p, level_counts)
    return p, s, b, g, lab, lc


def task_aligned_assign(points, scores, pred_boxes, gt, gt_labels, *, level_counts=None,
                        semantics="ultralytics", topk=None, alpha=None, beta=None,
                        num_threads=0):
    """Task-aligned assignment of one image.

    points [A, 2] anchor points (x, y) in pixels, level-major (for anchor boxes pass their
    centres); scores [A, C] class probabilities; pred_boxes [A, 4] decoded (x1, y1, x2, y2);
    gt [G, 4], gt_labels [G] in [0, C). level_counts [L] (points per level; default: the
    runs of non-decreasing y, which are the levels of make_anchors-style grids). topk, alpha,
    beta default to the semantics' values. Returns TaskAlignedResult: assigned_gt [A] int64
    (-1 background), assigned_labels [A] int64 (-1 background), target_scores [A] float32
    (the normalised alignment score; the class target is it at assigned_labels),
    align_metrics [A] float32. Ties at the k-th place go to the lowest anchor index."""
    p, s, b, g, lab, lc = _image(points, scores, pred_boxes, gt, gt_labels, level_counts)
    opt = _task_aligned_options(semantics, topk, alpha, beta, num_threads)
    A = p.shape[0]
    ag, al = np.empty(A, np.int64), np.empty(A, np.int64)
    ts, am = np.empty(A, np.float32), np.empty(A, np.float32)
    _lib.call("detloss_assign_task_aligned", ptr(p), A, ptr(lc), 0 if lc is None else len(lc),
              ptr(s), s.shape[1], ptr(b), ptr(g), ptr(lab), g.shape[0], ptr(ag), ptr(al),
              ptr(ts), ptr(am), ctypes.byref(opt))
    return TaskAlignedResult(ag, al, ts, am)


def task_aligned_assign_batch(points, scores, pred_boxes, gts, gt_labels, *, level_counts=None,
                              semantics="ultralytics", topk=None, alpha=None, beta=None,
                              num_threads=0):
    """task_aligned_assign() on B images in one call (images in parallel, no padding).

    points [A, 2] shared by the images; scores [B, A, C]; pred_boxes [B, A, 4]; gts and
    gt_labels: sequences of B arrays ([G_i, 4] and [G_i]). Returns TaskAlignedResult of
    [B, A] arrays. Bitwise the same as the per-image calls."""
    p = array("points", points, shape=(None, 2))
    A = p.shape[0]
    s = array("scores", scores, shape=(None, A, None))
    B, C = s.shape[0], s.shape[2]
    b = array("pred_boxes", pred_boxes, shape=(B, A, 4))
    if len(gts) != B or len(gt_labels) != B:
        raise DetlossError(_lib.ERR_SHAPE, "gts", "expected %d images of gts and labels, got %d "
                           "and %d" % (B, len(gts), len(gt_labels)))
    lc = _level_counts(p, level_counts)
    opt = _task_aligned_options(semantics, topk, alpha, beta, num_threads)
    ag, al = np.empty((B, A), np.int64), np.empty((B, A), np.int64)
    ts, am = np.empty((B, A), np.float32), np.empty((B, A), np.float32)
    ims = (_TaskAlignedImage * max(B, 1))()
    keep = []
    for i in range(B):
        g = array("gts[%d]" % i, gts[i], shape=(None, 4))
        lab = array("gt_labels[%d]" % i, gt_labels[i], np.int64, shape=(g.shape[0],))
        keep += [g, lab]
        ims[i] = _TaskAlignedImage(A, ptr(p), ptr(lc), 0 if lc is None else len(lc),
                                   ptr(s[i]), ptr(b[i]), g.shape[0], ptr(g), ptr(lab),
                                   ptr(ag[i]), ptr(al[i]), ptr(ts[i]), ptr(am[i]))
    _lib.call("detloss_assign_task_aligned_batch", ims, B, C, ctypes.byref(opt))
    return TaskAlignedResult(ag, al, ts, am)
