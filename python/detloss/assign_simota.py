"""SimOTA (YOLOX) label assignment: a numpy function and a torch function that
returns the fields of mmdetection's AssignResult. The C library does the work
(detloss_assign_simota, docs/math/simota.md): exact float64 costs, the class
cost without the G x A x C tensor, ties to the lowest index.

    from detloss import simota_assign
    gt_idx, labels, ious = simota_assign(points, level_counts, strides, scores,
                                         pred_boxes, gt, gt_labels)
"""
import collections
import ctypes

import numpy as np

from . import _lib
from ._lib import DetlossError, array, call, ptr, threads

__all__ = ["simota_assign", "simota_assign_torch", "SimOTAAssignResult", "SIMOTA_SEMANTICS"]

SIMOTA_SEMANTICS = {"mmdet": 0, "yolox_0.3": 1, "yolox": 2}
_RADIUS = {"mmdet": 2.5, "yolox_0.3": 2.5, "yolox": 1.5}


def _options(semantics, center_radius, candidate_topk, iou_weight, cls_weight, num_threads):
    if semantics not in SIMOTA_SEMANTICS:
        raise DetlossError(_lib.ERR_UNKNOWN, "semantics",
                           "unknown semantics %r (expected mmdet, yolox_0.3 or yolox)"
                           % (semantics,))
    o = _lib.SimotaOptions()
    o.semantics = SIMOTA_SEMANTICS[semantics]
    o.center_radius = _lib.scalar("center_radius", _RADIUS[semantics] if center_radius is None
                                  else center_radius)
    o.candidate_topk = _lib.integer("candidate_topk", candidate_topk, "int64", lo=1)
    o.iou_weight = _lib.scalar("iou_weight", iou_weight)
    o.cls_weight = _lib.scalar("cls_weight", cls_weight)
    o.num_threads = threads(num_threads)
    return o


def simota_assign(points, level_counts, strides, scores, pred_boxes, gt, gt_labels, *,
                  semantics="mmdet", center_radius=None, candidate_topk=10, iou_weight=3.0,
                  cls_weight=1.0, num_threads=0):
    """SimOTA assignment of one image.

    points [A, 2] prior centres (x, y), level-major; level_counts [L] (sum A);
    strides [L]; scores [A, C] class probabilities in [0, 1] (YOLOX:
    sqrt(sigmoid(cls) * sigmoid(obj))); pred_boxes [A, 4] decoded (x1, y1, x2, y2);
    gt [G, 4]; gt_labels [G] in [0, C). semantics "mmdet" (default), "yolox_0.3"
    or "yolox"; center_radius None = the semantics' default (2.5, or 1.5 for yolox).
    Returns (assigned_gt [A] int64 (-1 background), assigned_labels [A] int64 (-1
    background), assigned_iou [A] float32 (0 at background))."""
    p = array("points", points, shape=(None, 2))
    A = p.shape[0]
    lc = array("level_counts", level_counts, np.uint64, shape=(None,), lo=0)
    st = array("strides", strides, shape=(lc.shape[0],))
    s = array("scores", scores, shape=(A, None))
    b = array("pred_boxes", pred_boxes, shape=(A, 4))
    g = array("gt", gt, shape=(None, 4))
    lab = array("gt_labels", gt_labels, np.int64, shape=(g.shape[0],))
    o = _options(semantics, center_radius, candidate_topk, iou_weight, cls_weight, num_threads)
    ag = np.empty(A, np.int64)
    al = np.empty(A, np.int64)
    iou = np.empty(A, np.float32)
    call("detloss_assign_simota", ptr(p), A, ptr(lc), ptr(st), lc.shape[0], ptr(s), s.shape[1],
         ptr(b), ptr(g), ptr(lab), g.shape[0], ptr(ag), ptr(al), ptr(iou), ctypes.byref(o))
    return ag, al, iou


SimOTAAssignResult = collections.namedtuple("SimOTAAssignResult",
                                            "num_gts gt_inds max_overlaps labels")


def simota_assign_torch(priors, decoded_bboxes, pred_scores, gt_bboxes, gt_labels, *,
                        semantics="mmdet", center_radius=None, candidate_topk=10,
                        iou_weight=3.0, cls_weight=1.0, num_threads=0):
    """mmdet SimOTAAssigner.assign on tensors, returning AssignResult's fields
    (num_gts, gt_inds: 1-based, 0 background; max_overlaps: IoU at positives, -1e5
    elsewhere as mmdet (0 everywhere when there is no gt, prior or candidate);
    labels: -1 background), on the tensors' device (computed on the CPU).

    priors [A, 4] (cx, cy, stride_w, stride_h) as mmdet's YOLOX head passes them
    (stride_w must equal stride_h; consecutive priors of equal stride form a level);
    decoded_bboxes [A, 4]; pred_scores [A, C] probabilities; gt_bboxes [G, 4];
    gt_labels [G]. No gradient flows (the references run under no_grad)."""
    import torch
    dev = decoded_bboxes.device
    pr = priors.detach().cpu().double().numpy()
    if pr.ndim != 2 or pr.shape[1] != 4:
        raise DetlossError(_lib.ERR_SHAPE, "priors", "expected [A, 4] (cx, cy, sw, sh)")
    if np.any(pr[:, 2] != pr[:, 3]):
        raise DetlossError(_lib.ERR_UNSUPPORTED, "priors",
                           "stride_w != stride_h is not supported (one stride per prior)")
    sw = pr[:, 2]
    cut = np.flatnonzero(np.diff(sw) != 0) + 1 if sw.size else np.zeros(0, int)
    bounds = np.concatenate([[0], cut, [sw.size]]).astype(np.int64) if sw.size else np.zeros(1, int)
    lc = np.diff(bounds) if sw.size else np.zeros(0, np.int64)
    strides = sw[bounds[:-1]] if sw.size else np.zeros(0)
    ag, al, iou = simota_assign(
        pr[:, :2], lc, strides, pred_scores.detach().cpu().float().numpy(),
        decoded_bboxes.detach().cpu().float().numpy(), gt_bboxes.detach().cpu().float().numpy(),
        gt_labels.detach().cpu().long().numpy(), semantics=semantics, center_radius=center_radius,
        candidate_topk=candidate_topk, iou_weight=iou_weight, cls_weight=cls_weight,
        num_threads=num_threads)
    G, A = gt_bboxes.shape[0], pr.shape[0]
    gt_inds = torch.from_numpy(ag + 1).to(dev)
    mo = torch.from_numpy(iou).to(dev)
    if G > 0 and A > 0:
        # mmdet: -INF (1e5) at every prior that is not positive, unless no prior was valid
        rs = _RADIUS[semantics] if center_radius is None else center_radius
        if _any_candidate(pr, gt_bboxes.detach().cpu().double().numpy(), rs, semantics):
            mo = torch.where(gt_inds > 0, mo, torch.full_like(mo, -100000.0))
    return SimOTAAssignResult(G, gt_inds, mo, torch.from_numpy(al).to(dev))


def _any_candidate(pr, gt, r, semantics):
    x, y, s = pr[:, 0:1], pr[:, 1:2], pr[:, 2:3]
    cx, cy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
    ctr = (x - (cx - r * s) > 0) & (y - (cy - r * s) > 0) & ((cx + r * s) - x > 0) & \
        ((cy + r * s) - y > 0)
    if semantics == "yolox":
        return bool(ctr.any())
    box = (x - gt[:, 0] > 0) & (y - gt[:, 1] > 0) & (gt[:, 2] - x > 0) & (gt[:, 3] - y > 0)
    return bool((ctr | box).any())
