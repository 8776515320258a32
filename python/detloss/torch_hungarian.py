"""detloss.torch_assign - DETR's HungarianMatcher as a drop-in torch module.

    from detloss.torch_assign import HungarianMatcher   # also detloss.torch.HungarianMatcher
    matcher = HungarianMatcher(cost_class=1, cost_bbox=5, cost_giou=2)           # DETR main.py
    matcher = HungarianMatcher(2, 5, 2, semantics="focal")   # Deformable-DETR / DINO / RT-DETR
    indices = matcher(outputs, targets)

Same constructor and call as facebookresearch/detr models/matcher.py:
outputs {"pred_logits": [B, Q, K+1] (focal: [B, Q, K]), "pred_boxes": [B, Q, 4]
(cx, cy, w, h)}, targets a list of B dicts {"labels": [G_i] int64, "boxes":
[G_i, 4]}; returns a list of B (index_i, index_j) int64 CPU tensors,
index_i ascending. The matching runs without autograd (as DETR's, under
no_grad): the predictions are detached and copied to the CPU once, and the
whole batch is matched in one C call, each image on its own Q x G_i cost block
in float64 (DETR builds the (B Q) x sum(G) block in float32 and discards the
cross-image part). The pairs are scipy's on that float64 cost; on float32
inputs whose cost has exactly equal optima DETR's float32 cost may pick
another of them.
"""
import torch

from . import assign_hungarian as _assign
from ._lib import threads

__all__ = ["HungarianMatcher"]


class HungarianMatcher(torch.nn.Module):
    """DETR's HungarianMatcher (cost_class, cost_bbox, cost_giou weights; DETR's class
    defaults are 1 / 1 / 1, its training script's 1 / 5 / 2). semantics "detr" (softmax
    class cost with the no-object column) or "focal" (Deformable-DETR's focal class
    cost, focal_alpha 0.25, focal_gamma 2). num_threads None = torch.get_num_threads()."""

    def __init__(self, cost_class: float = 1, cost_bbox: float = 1, cost_giou: float = 1, *,
                 semantics="detr", focal_alpha=0.25, focal_gamma=2.0, num_threads=None):
        super().__init__()
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou
        self.semantics = semantics
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.num_threads = num_threads
        assert cost_class != 0 or cost_bbox != 0 or cost_giou != 0, "all costs cant be 0"

    @torch.no_grad()
    def forward(self, outputs, targets):
        logits = outputs["pred_logits"].detach().to("cpu", torch.float32).contiguous()
        boxes = outputs["pred_boxes"].detach().to("cpu", torch.float32).contiguous()
        gts = [t["boxes"].detach().to("cpu", torch.float32).contiguous() for t in targets]
        labels = [t["labels"].detach().to("cpu", torch.int64).contiguous() for t in targets]
        n = threads(torch.get_num_threads() if self.num_threads is None else self.num_threads)
        res = _assign.hungarian_match_batch(
            logits.numpy(), boxes.numpy(), [g.numpy() for g in gts],
            [lb.numpy() for lb in labels], semantics=self.semantics,
            cost_class=self.cost_class, cost_bbox=self.cost_bbox, cost_giou=self.cost_giou,
            focal_alpha=self.focal_alpha, focal_gamma=self.focal_gamma, num_threads=n)
        return [(torch.as_tensor(i, dtype=torch.int64), torch.as_tensor(j, dtype=torch.int64))
                for i, j in res]
