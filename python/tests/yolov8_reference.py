"""A torch reference of ultralytics ``v8DetectionLoss`` (8.1), written from the
published semantics (docs/math/yolov8_loss.md) the way ultralytics writes it:
dense batched tensors, the gts zero-padded to the densest image, the batched
``TaskAlignedAssigner`` (B x M x A tensors), ``bbox2dist``, ``DFLoss`` and
``BboxLoss``. Not copied from ultralytics. Used by python/tests/test_head_yolov8.py,
tests/fixtures/yolov8/gen_yolov8.py and bench/compare_yolov8.py.

The assigner is tests/fixtures/task_aligned/gen_task_aligned.py's
``ultralytics_reference`` (the project's reference of tal.py); with ``stable=True``
a top-k tie at the k-th place goes to the lowest anchor index (detloss's rule;
torch.topk leaves it undefined), with ``stable=False`` it calls torch.topk as
ultralytics does.
"""
import os
import sys

import torch
import torch.nn.functional as F

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(_ROOT, "tests", "fixtures", "task_aligned"))
from gen_task_aligned import ciou, ultralytics_reference  # noqa: E402

sys.path.pop(0)


def make_anchors(feats, strides, offset=0.5):
    """ultralytics make_anchors: grid points (x + 0.5, y + 0.5) per level, y outer."""
    pts, st = [], []
    dtype = feats[0].dtype
    for f, s in zip(feats, strides):
        h, w = f.shape[2:]
        sx = torch.arange(w, dtype=dtype) + offset
        sy = torch.arange(h, dtype=dtype) + offset
        yy, xx = torch.meshgrid(sy, sx, indexing="ij")
        pts.append(torch.stack((xx, yy), -1).view(-1, 2))
        st.append(torch.full((h * w, 1), float(s), dtype=dtype))
    return torch.cat(pts), torch.cat(st)


def xywh2xyxy(x):
    y = x.clone()
    y[..., 0] = x[..., 0] - x[..., 2] / 2
    y[..., 1] = x[..., 1] - x[..., 3] / 2
    y[..., 2] = x[..., 0] + x[..., 2] / 2
    y[..., 3] = x[..., 1] + x[..., 3] / 2
    return y


def bbox2dist(anchor_points, bbox, reg_max):
    x1y1, x2y2 = bbox.chunk(2, -1)
    return torch.cat((anchor_points - x1y1, x2y2 - anchor_points), -1).clamp_(0, reg_max - 0.01)


def df_loss(pred_dist, target):
    """DFLoss: left/right bin cross-entropy, mean over the 4 sides (keepdim)."""
    tl = target.long()
    tr = tl + 1
    wl = tr - target
    wr = 1 - wl
    return (F.cross_entropy(pred_dist, tl.view(-1), reduction="none").view(tl.shape) * wl
            + F.cross_entropy(pred_dist, tr.view(-1), reduction="none").view(tl.shape) * wr
            ).mean(-1, keepdim=True)


class RefV8DetectionLoss:
    """v8DetectionLoss(model) with the model's numbers given explicitly."""

    def __init__(self, nc, reg_max=16, strides=(8, 16, 32), box=7.5, cls=0.5, dfl=1.5,
                 topk=10, alpha=0.5, beta=6.0, stable=True):
        self.nc, self.reg_max = nc, reg_max
        self.no = nc + 4 * reg_max
        self.stride = torch.tensor(strides, dtype=torch.float64)
        self.gains = (box, cls, dfl)
        self.topk, self.alpha, self.beta, self.stable = topk, alpha, beta, stable
        self.bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def preprocess(self, targets, batch_size, scale_tensor):
        if targets.shape[0] == 0:
            return torch.zeros(batch_size, 0, 5, dtype=targets.dtype)
        i = targets[:, 0]
        _, counts = i.unique(return_counts=True)
        out = torch.zeros(batch_size, int(counts.max()), 5, dtype=targets.dtype)
        for j in range(batch_size):
            matches = i == j
            n = int(matches.sum())
            if n:
                out[j, :n] = targets[matches, 1:]
        out[..., 1:5] = xywh2xyxy(out[..., 1:5].mul_(scale_tensor))
        return out

    def bbox_decode(self, anchor_points, pred_dist):
        b, a, c = pred_dist.shape
        proj = torch.arange(self.reg_max, dtype=pred_dist.dtype)
        d = pred_dist.view(b, a, 4, c // 4).softmax(3).matmul(proj)
        lt, rb = d.chunk(2, -1)
        return torch.cat((anchor_points - lt, anchor_points + rb), -1)

    def __call__(self, preds, batch, target_score_sum=None):
        feats = preds[1] if isinstance(preds, tuple) else preds
        B = feats[0].shape[0]
        dtype = feats[0].dtype
        loss = torch.zeros(3, dtype=dtype)
        pred_distri, pred_scores = torch.cat([xi.view(B, self.no, -1) for xi in feats], 2).split(
            (self.reg_max * 4, self.nc), 1)
        pred_scores = pred_scores.permute(0, 2, 1).contiguous()
        pred_distri = pred_distri.permute(0, 2, 1).contiguous()
        imgsz = torch.tensor(feats[0].shape[2:], dtype=dtype) * self.stride[0].to(dtype)
        anchor_points, stride_tensor = make_anchors(feats, self.stride.tolist(), 0.5)
        targets = torch.cat((batch["batch_idx"].view(-1, 1), batch["cls"].view(-1, 1),
                             batch["bboxes"]), 1).to(dtype)
        targets = self.preprocess(targets, B, scale_tensor=imgsz[[1, 0, 1, 0]])
        gt_labels, gt_bboxes = targets.split((1, 4), 2)
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0)
        pred_bboxes = self.bbox_decode(anchor_points, pred_distri)
        _, target_bboxes, target_scores, fg_mask, target_gt_idx, _ = ultralytics_reference(
            pred_scores.detach().sigmoid(), (pred_bboxes.detach() * stride_tensor).type(dtype),
            anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt, topk=self.topk,
            num_classes=self.nc, alpha=self.alpha, beta=self.beta, stable=self.stable)
        self.last_fg, self.last_gt_idx = fg_mask, target_gt_idx
        tss = target_scores.sum() if target_score_sum is None else target_score_sum
        self.last_tss = float(target_scores.sum())
        tss = max(tss, 1)
        loss[1] = self.bce(pred_scores, target_scores.to(dtype)).sum() / tss
        if fg_mask.sum():
            target_bboxes = target_bboxes / stride_tensor
            weight = target_scores.sum(-1)[fg_mask].unsqueeze(-1)
            iou = ciou(pred_bboxes[fg_mask], target_bboxes[fg_mask])
            loss[0] = ((1.0 - iou) * weight).sum() / tss
            target_ltrb = bbox2dist(anchor_points, target_bboxes, self.reg_max - 1)
            loss[2] = (df_loss(pred_distri[fg_mask].view(-1, self.reg_max), target_ltrb[fg_mask])
                       * weight).sum() / tss
        loss[0] = loss[0] * self.gains[0]
        loss[1] = loss[1] * self.gains[1]
        loss[2] = loss[2] * self.gains[2]
        return loss.sum() * B, loss.detach()


def split_feats(feats, nc, reg_max):
    """Feature maps [B, 4R + C, h, w] per level -> pred_distri [B, A, 4R], pred_scores [B, A, C]."""
    B = feats[0].shape[0]
    no = nc + 4 * reg_max
    x = torch.cat([f.reshape(B, no, -1) for f in feats], 2)
    d, s = x.split((4 * reg_max, nc), 1)
    return d.permute(0, 2, 1).contiguous(), s.permute(0, 2, 1).contiguous()

