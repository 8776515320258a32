"""ATSS and FCOS label assignment (numpy in, numpy out; torch tensors in, torch tensors out),
returning the fields of mmdetection's AssignResult.

    from detloss import atss_assign, fcos_targets
    r = atss_assign(anchors, level_counts, gt, gt_labels)   # r.gt_inds, r.max_overlaps, r.labels
    t = fcos_targets(points, level_counts, strides, gt, gt_labels, center_sampling=True)

AssignResult as mmdet has it: num_gts; gt_inds [A] int64, 1-based (k > 0: gt k - 1; 0
background; -1 ignored); max_overlaps [A] (here the IoU with the assigned gt, 0 elsewhere:
mmdet's ATSS returns -1e8 at non-positives; FCOS: the centerness target); labels [A] (the
assigned gt's label, -1 elsewhere: mmdet uses -1 for ATSS). Semantics, variants and the tie
rule: docs/math/atss.md, docs/math/fcos_targets.md.
"""
import collections
import ctypes

import numpy as np

from . import _lib
from ._lib import array, call, ptr, threads

__all__ = ["AssignResult", "FcosTargets", "atss_assign", "fcos_targets", "fcos_out_of_range"]


# The ctypes mirrors live in _lib (detloss_config embeds them through detloss_eval_assigner).
AtssOptions = _lib.AtssOptions
FcosOptions = _lib.FcosOptions


_vp, _sz, _i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
_lib._SIGS.update({
    "detloss_atss_options_default": (AtssOptions, []),
    "detloss_fcos_options_default": (FcosOptions, []),
    "detloss_atss_assign": (_i, [_vp, _sz, _vp, _sz, _vp, _sz, _vp, _sz, _vp, _vp, _vp, _vp]),
    "detloss_atss_assign_batch": (_i, [_sz, _vp, _sz, _vp, _sz, _vp, _vp, _vp, _vp, _vp, _vp,
                                       _vp, _vp]),
    "detloss_fcos_targets": (_i, [_vp, _sz, _vp, _vp, _sz, _vp, _sz, _vp, _vp, _vp, _vp, _vp]),
    "detloss_fcos_targets_batch": (_i, [_sz, _vp, _sz, _vp, _vp, _sz, _vp, _vp, _vp, _vp, _vp,
                                        _vp, _vp]),
    "detloss_fcos_out_of_range": (_i, [_vp, _sz, _vp, _sz, _vp, _vp, _vp]),
})

AssignResult = collections.namedtuple("AssignResult", "num_gts gt_inds max_overlaps labels")
FcosTargets = collections.namedtuple(
    "FcosTargets", "num_gts gt_inds max_overlaps labels bbox_targets centerness_targets")

_SEMANTICS = {"mmdet": 0, "original": 1}
_FCOS_SEMANTICS = {"mmdet": 0, "original": 1, "torchvision": 2}


def _semantics(s, table=_SEMANTICS):
    if s not in table:
        raise _lib.DetlossError(_lib.ERR_UNKNOWN, "semantics",
                                "unknown semantics %r (expected %s)" % (s, " or ".join(table)))
    return table[s]


def _unwrap(x):
    """(numpy array or the input, the torch module when x is a tensor)."""
    if type(x).__module__.startswith("torch"):
        import torch
        return x.detach().cpu().numpy(), torch
    return x, None


def _counts(level_counts):
    c = array("level_counts", level_counts, np.uint64, shape=(None,))
    return c.astype(np.uintp)


def _result(assigned, labels, quality, G, torch):
    gt_inds = np.where(assigned >= 0, assigned + 1, np.where(assigned == -2, -1, 0))
    if labels is None:
        lab = np.where(assigned >= 0, assigned, -1)  # no labels given: the gt index
    else:
        lab = np.where(assigned >= 0, labels[np.maximum(assigned, 0)] if G else -1, -1)
    out = [G, gt_inds.astype(np.int64), quality, lab.astype(np.int64)]
    if torch is not None:
        out = [G] + [torch.from_numpy(np.ascontiguousarray(v)) for v in out[1:]]
    return out


def atss_assign(anchors, level_counts, gt, gt_labels=None, *, topk=9, semantics="mmdet",
                anchors_per_location=1, ignore=None, ignore_iof_thr=-1.0, num_threads=0):
    """ATSS for one image: anchors [A, 4] level-major with level_counts [L], gt [G, 4],
    gt_labels [G] (optional). semantics "mmdet" (mmdet 3.x ATSSAssigner; ignore boxes [K, 4]
    with ignore_iof_thr > 0) or "original" (sfzhang15/ATSS: +1 IoU, k = topk *
    anchors_per_location). Returns AssignResult (numpy, or torch when anchors is a tensor);
    max_overlaps is the IoU with the assigned gt (0 elsewhere)."""
    anchors, torch = _unwrap(anchors)
    gt, _ = _unwrap(gt)
    gt_labels, _ = _unwrap(gt_labels) if gt_labels is not None else (None, None)
    ignore, _ = _unwrap(ignore) if ignore is not None else (None, None)
    a = array("anchors", anchors, shape=(None, 4))
    g = array("gt", gt, shape=(None, 4))
    lab = array("gt_labels", gt_labels, np.int64, shape=(g.shape[0],), allow_none=True)
    ig = array("ignore", ignore, shape=(None, 4), allow_none=True)
    lc = _counts(level_counts)
    opt = AtssOptions(_semantics(semantics), _lib.integer("topk", topk, "int64", lo=1),
                      _lib.integer("anchors_per_location", anchors_per_location, "int64", lo=1),
                      float(ignore_iof_thr), threads(num_threads))
    A = a.shape[0]
    assigned = np.empty(A, np.int64)
    iou = np.empty(A, np.float32)
    call("detloss_atss_assign", ptr(a), A, ptr(lc), lc.shape[0], ptr(g), g.shape[0], ptr(ig),
         0 if ig is None else ig.shape[0], ptr(assigned), ptr(iou), ctypes.byref(opt))
    return AssignResult(*_result(assigned, lab, iou, g.shape[0], torch))


def fcos_targets(points, level_counts, strides, gt, gt_labels=None, *, regress_ranges=None,
                 center_sampling=False, center_sample_radius=1.5, norm_on_bbox=False,
                 semantics="mmdet", num_threads=0):
    """FCOS targets for one image: points [A, 2] level-major with level_counts [L] and
    strides [L], gt [G, 4], regress_ranges [L, 2] (None: FCOS's five). semantics "mmdet"
    (FCOSHead._get_targets_single), "original" (tianzhi0549/FCOS) or "torchvision"
    (torchvision 0.14 FCOS.compute_loss: strict ranges, float32 area key; pass its ranges
    4 s / 8 s). Returns FcosTargets: the AssignResult fields (max_overlaps = centerness) plus bbox_targets [A, 4] (l, t, r, b,
    / stride with norm_on_bbox) and centerness_targets [A]; 0 at negatives."""
    points, torch = _unwrap(points)
    gt, _ = _unwrap(gt)
    gt_labels, _ = _unwrap(gt_labels) if gt_labels is not None else (None, None)
    p = array("points", points, shape=(None, 2))
    g = array("gt", gt, shape=(None, 4))
    lab = array("gt_labels", gt_labels, np.int64, shape=(g.shape[0],), allow_none=True)
    lc = _counts(level_counts)
    st = array("strides", strides, shape=(lc.shape[0],))
    rr = array("regress_ranges", regress_ranges, shape=(lc.shape[0], 2), allow_none=True)
    opt = FcosOptions(_semantics(semantics, _FCOS_SEMANTICS), ptr(rr), int(bool(center_sampling)),
                      float(center_sample_radius), int(bool(norm_on_bbox)),
                      threads(num_threads))
    A = p.shape[0]
    assigned = np.empty(A, np.int64)
    bt = np.empty((A, 4), np.float32)
    ctr = np.empty(A, np.float32)
    call("detloss_fcos_targets", ptr(p), A, ptr(lc), ptr(st), lc.shape[0], ptr(g), g.shape[0],
         ptr(assigned), ptr(bt), ptr(ctr), ctypes.byref(opt))
    res = _result(assigned, lab, ctr, g.shape[0], torch)
    extra = [bt, ctr] if torch is None else [torch.from_numpy(bt), torch.from_numpy(ctr.copy())]
    return FcosTargets(*res, *extra)


def fcos_out_of_range(gt, regress_ranges=None, num_levels=5):
    """The gts that no FCOS level can take for their size (detloss_fcos_out_of_range): a
    bool array [G], True when m = max(w, h) > 0 and [m/2, m) meets no level's [lo, hi]
    (a point inside the gt has max(l, t, r, b) in [m/2, m)). regress_ranges [L, 2] (None:
    FCOS's five, num_levels 5). fcos_targets gives such gts no positive, as mmdet and FCOS
    do, without an error."""
    gt, _ = _unwrap(gt)
    g = array("gt", gt, shape=(None, 4))
    rr = array("regress_ranges", regress_ranges, shape=(None, 2), allow_none=True)
    L = rr.shape[0] if rr is not None else int(num_levels)
    out = np.empty(g.shape[0], np.uint8)
    call("detloss_fcos_out_of_range", ptr(g), g.shape[0], ptr(rr), L, ptr(out), None)
    return out.astype(bool)
