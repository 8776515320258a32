"""detloss.torch_assign - torch drop-ins for the dynamic assigners (CPU or any device:
the inputs are copied to the host, the results back to the inputs' device).

    from detloss.torch_assign import TaskAlignedAssigner   # ultralytics.utils.tal
"""
import numpy as np
import torch

from . import assign_task_aligned as _assign

__all__ = ["TaskAlignedAssigner"]


# ---- task-aligned assigner ----

class TaskAlignedAssigner(torch.nn.Module):
    """ultralytics TaskAlignedAssigner (YOLOv8, tal.py v8.1) on detloss: the same
    constructor and forward, the same outputs, computed per image over only the anchors
    inside each gt (no B x M x A tensors, no padding to the densest image).

    __init__(topk=13, num_classes=80, alpha=1.0, beta=6.0, eps=1e-9): ultralytics' class
    defaults (YOLOv8's loss builds it with topk=10, alpha=0.5, beta=6.0). eps is the
    inside-gt margin and normalisation eps of ultralytics; only 1e-9 is supported.

    forward(pd_scores [b, A, C] probabilities, pd_bboxes [b, A, 4] xyxy pixels,
    anc_points [A, 2], gt_labels [b, M, 1], gt_bboxes [b, M, 4], mask_gt [b, M, 1]) ->
    target_labels [b, A] long, target_bboxes [b, A, 4], target_scores [b, A, C],
    fg_mask [b, A] bool, target_gt_idx [b, A] long — as ultralytics: background anchors
    get gt 0's label and box (target_gt_idx 0) with zero scores; M = 0 gives labels
    num_classes and zeros. Differences: a tie at the k-th place of a top-k goes to the
    lowest anchor index (torch.topk's choice is undefined); arithmetic in float64.
    Not differentiable (ultralytics runs it under no_grad)."""

    def __init__(self, topk=13, num_classes=80, alpha=1.0, beta=6.0, eps=1e-9):
        super().__init__()
        if eps != 1e-9:
            raise ValueError("detloss TaskAlignedAssigner: only eps=1e-9 (ultralytics) is "
                             "supported, got %r" % (eps,))
        self.topk = topk
        self.num_classes = num_classes
        self.bg_idx = num_classes
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.num_threads = 0

    @torch.no_grad()
    def forward(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
        bs, na = pd_scores.shape[0], pd_scores.shape[1]
        nm = gt_bboxes.shape[1]
        dev = gt_bboxes.device
        if nm == 0:
            return (torch.full_like(pd_scores[..., 0], self.bg_idx).to(dev),
                    torch.zeros_like(pd_bboxes).to(dev), torch.zeros_like(pd_scores).to(dev),
                    torch.zeros_like(pd_scores[..., 0]).to(dev),
                    torch.zeros_like(pd_scores[..., 0]).to(dev))
        sc = pd_scores.detach().to("cpu", torch.float32).contiguous().numpy()
        pb = pd_bboxes.detach().to("cpu", torch.float32).contiguous().numpy()
        ap = anc_points.detach().to("cpu", torch.float32).contiguous().numpy()
        gb = gt_bboxes.detach().to("cpu", torch.float32).numpy()
        gl = gt_labels.detach().to("cpu").reshape(bs, nm).to(torch.int64).numpy()
        mg = mask_gt.detach().to("cpu").reshape(bs, nm).numpy() > 0
        real = [np.flatnonzero(mg[i]) for i in range(bs)]
        r = _assign.task_aligned_assign_batch(
            ap, sc, pb, [gb[i, real[i]] for i in range(bs)], [gl[i, real[i]] for i in range(bs)],
            semantics="ultralytics", topk=self.topk, alpha=self.alpha, beta=self.beta,
            num_threads=self.num_threads)
        fg = r.assigned_gt >= 0
        tgi = np.zeros((bs, na), np.int64)
        for i in range(bs):
            tgi[i, fg[i]] = real[i][r.assigned_gt[i, fg[i]]]
        target_gt_idx = torch.from_numpy(tgi)
        bi = torch.arange(bs)[:, None]
        labels_all = gt_labels.detach().to("cpu").reshape(bs, nm).long()
        target_labels = labels_all[bi, target_gt_idx].clamp(0)
        target_bboxes = gt_bboxes.detach().to("cpu")[bi, target_gt_idx]
        fg_t = torch.from_numpy(fg)
        norm = torch.from_numpy(r.target_scores).to(pd_scores.dtype)
        target_scores = torch.zeros((bs, na, self.num_classes), dtype=pd_scores.dtype)
        target_scores.scatter_(2, target_labels.unsqueeze(-1), norm.unsqueeze(-1))
        target_scores[~fg_t] = 0
        return (target_labels.to(dev), target_bboxes.to(dev), target_scores.to(dev),
                fg_t.to(dev), target_gt_idx.to(dev))
