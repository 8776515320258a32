"""A torch reference of DETR's training loss, written from the published semantics
(facebookresearch/detr models/matcher.py HungarianMatcher, models/detr.py SetCriterion,
util/box_ops.py, util/misc.py accuracy; Deformable-DETR models/matcher.py and
models/deformable_detr.py SetCriterion.loss_labels with models/segmentation.py
sigmoid_focal_loss), the way those files compute it: dense batched tensors, the
cost of the whole batch as one (B Q) x sum(G) block split per image, and
scipy.optimize.linear_sum_assignment. Not copied code: written for detloss's tests
from the behaviour described in docs/math/detr_loss.md.

Used by tests/fixtures/detr/gen_detr.py (float64 fixtures), python/tests/test_head_detr.py
and bench/compare_detr.py (the reference pipeline the drop-in is timed against).
"""
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


def box_cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def generalized_box_iou(b1, b2):
    """Pairwise GIoU [N, M] of xyxy boxes, no eps; asserts proper boxes as DETR does."""
    assert (b1[:, 2:] >= b1[:, :2]).all()
    assert (b2[:, 2:] >= b2[:, :2]).all()
    a1, a2 = box_area(b1), box_area(b2)
    lt = torch.max(b1[:, None, :2], b2[:, :2])
    rb = torch.min(b1[:, None, 2:], b2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = a1[:, None] + a2 - inter
    iou = inter / union
    lt2 = torch.min(b1[:, None, :2], b2[:, :2])
    rb2 = torch.max(b1[:, None, 2:], b2[:, 2:])
    wh2 = (rb2 - lt2).clamp(min=0)
    area = wh2[..., 0] * wh2[..., 1]
    return iou - (area - union) / area


class RefHungarianMatcher(torch.nn.Module):
    def __init__(self, cost_class=1.0, cost_bbox=1.0, cost_giou=1.0, focal=False,
                 focal_alpha=0.25, focal_gamma=2.0):
        super().__init__()
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.focal, self.alpha, self.gamma = focal, focal_alpha, focal_gamma

    @torch.no_grad()
    def forward(self, outputs, targets):
        bs, nq = outputs["pred_logits"].shape[:2]
        logits = outputs["pred_logits"].flatten(0, 1)
        out_bbox = outputs["pred_boxes"].flatten(0, 1)
        tgt_ids = torch.cat([t["labels"] for t in targets])
        tgt_bbox = torch.cat([t["boxes"] for t in targets])
        if self.focal:
            p = logits.sigmoid()
            neg = (1 - self.alpha) * (p ** self.gamma) * (-(1 - p + 1e-8).log())
            pos = self.alpha * ((1 - p) ** self.gamma) * (-(p + 1e-8).log())
            cost_class = pos[:, tgt_ids] - neg[:, tgt_ids]
        else:
            cost_class = -logits.softmax(-1)[:, tgt_ids]
        cost_bbox = torch.cdist(out_bbox, tgt_bbox, p=1)
        cost_giou = -generalized_box_iou(box_cxcywh_to_xyxy(out_bbox),
                                         box_cxcywh_to_xyxy(tgt_bbox))
        C = self.cost_bbox * cost_bbox + self.cost_class * cost_class + self.cost_giou * cost_giou
        C = C.view(bs, nq, -1).cpu()
        sizes = [len(t["boxes"]) for t in targets]
        idx = [linear_sum_assignment(c[i]) for i, c in enumerate(C.split(sizes, -1))]
        return [(torch.as_tensor(i, dtype=torch.int64), torch.as_tensor(j, dtype=torch.int64))
                for i, j in idx]


def sigmoid_focal_loss(inputs, targets, num_boxes, alpha=0.25, gamma=2.0):
    """Deformable-DETR's: torchvision's focal loss, mean over queries, summed, / num_boxes."""
    prob = inputs.sigmoid()
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1).sum() / num_boxes


@torch.no_grad()
def accuracy(output, target):
    if target.numel() == 0:
        return torch.zeros([], device=output.device)
    pred = output.topk(1, 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return correct[:1].reshape(-1).float().sum(0) * (100.0 / target.size(0))


class RefSetCriterion(torch.nn.Module):
    """DETR's SetCriterion (softmax) or Deformable-DETR's (focal=True)."""

    def __init__(self, num_classes, matcher, weight_dict, eos_coef=0.1,
                 losses=("labels", "boxes", "cardinality"), focal=False, focal_alpha=0.25,
                 focal_gamma=2.0):
        super().__init__()
        self.num_classes, self.matcher, self.weight_dict = num_classes, matcher, weight_dict
        self.eos_coef, self.losses = eos_coef, list(losses)
        self.focal, self.focal_alpha, self.focal_gamma = focal, focal_alpha, focal_gamma
        w = torch.ones(num_classes + 1)
        w[-1] = eos_coef
        self.register_buffer("empty_weight", w)

    @staticmethod
    def _src_idx(indices):
        b = torch.cat([torch.full_like(s, i) for i, (s, _) in enumerate(indices)])
        s = torch.cat([s for s, _ in indices])
        return b, s

    def loss_labels(self, outputs, targets, indices, num_boxes, log=True):
        src = outputs["pred_logits"]
        idx = self._src_idx(indices)
        tco = torch.cat([t["labels"][J] for t, (_, J) in zip(targets, indices)])
        tc = torch.full(src.shape[:2], self.num_classes, dtype=torch.int64, device=src.device)
        tc[idx] = tco
        if self.focal:
            oh = torch.zeros([src.shape[0], src.shape[1], src.shape[2] + 1], dtype=src.dtype,
                             device=src.device)
            oh.scatter_(2, tc.unsqueeze(-1), 1)
            oh = oh[:, :, :-1]
            loss_ce = sigmoid_focal_loss(src, oh, num_boxes, self.focal_alpha,
                                         self.focal_gamma) * src.shape[1]
        else:
            loss_ce = F.cross_entropy(src.transpose(1, 2), tc,
                                      self.empty_weight.to(src.dtype))
        out = {"loss_ce": loss_ce}
        if log:
            out["class_error"] = 100 - accuracy(src[idx], tco)
        return out

    @torch.no_grad()
    def loss_cardinality(self, outputs, targets, indices, num_boxes):
        logits = outputs["pred_logits"]
        lens = torch.as_tensor([len(v["labels"]) for v in targets], device=logits.device)
        card = (logits.argmax(-1) != logits.shape[-1] - 1).sum(1)
        return {"cardinality_error": F.l1_loss(card.float(), lens.float())}

    def loss_boxes(self, outputs, targets, indices, num_boxes):
        idx = self._src_idx(indices)
        src = outputs["pred_boxes"][idx]
        tgt = torch.cat([t["boxes"][i] for t, (_, i) in zip(targets, indices)], dim=0)
        l1 = F.l1_loss(src, tgt, reduction="none")
        giou = 1 - torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(src),
                                                  box_cxcywh_to_xyxy(tgt)))
        return {"loss_bbox": l1.sum() / num_boxes, "loss_giou": giou.sum() / num_boxes}

    def get_loss(self, loss, outputs, targets, indices, num_boxes, **kw):
        fn = {"labels": self.loss_labels, "cardinality": self.loss_cardinality,
              "boxes": self.loss_boxes}[loss]
        return fn(outputs, targets, indices, num_boxes, **kw)

    def forward(self, outputs, targets, num_boxes=None):
        """num_boxes: the all-reduced count / world size (None = this batch's count)."""
        main = {k: v for k, v in outputs.items() if k != "aux_outputs"}
        indices = self.matcher(main, targets)
        if num_boxes is None:
            num_boxes = float(sum(len(t["labels"]) for t in targets))
        num_boxes = max(float(num_boxes), 1.0)
        losses = {}
        for loss in self.losses:
            losses.update(self.get_loss(loss, outputs, targets, indices, num_boxes))
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            ind = self.matcher(aux, targets)
            for loss in self.losses:
                kw = {"log": False} if loss == "labels" else {}
                d = self.get_loss(loss, aux, targets, ind, num_boxes, **kw)
                losses.update({k + "_%d" % i: v for k, v in d.items()})
        self.last_indices = indices
        return losses


def reference_criterion(num_classes, cls_loss="softmax", eos_coef=0.1, focal_alpha=0.25,
                        focal_gamma=2.0, cost_class=None, cost_bbox=5.0, cost_giou=2.0,
                        weight_ce=None, weight_bbox=5.0, weight_giou=2.0):
    """The reference with the contract's defaults (DETR main.py; focal: Deformable-DETR)."""
    focal = cls_loss == "focal"
    cc = (2.0 if focal else 1.0) if cost_class is None else cost_class
    wc = (2.0 if focal else 1.0) if weight_ce is None else weight_ce
    m = RefHungarianMatcher(cc, cost_bbox, cost_giou, focal, focal_alpha, focal_gamma)
    wd = {"loss_ce": wc, "loss_bbox": weight_bbox, "loss_giou": weight_giou}
    return RefSetCriterion(num_classes, m, wd, eos_coef, focal=focal, focal_alpha=focal_alpha,
                           focal_gamma=focal_gamma)


def weighted_total(losses, weight_dict):
    return sum(losses[k] * weight_dict[k.rsplit("_", 1)[0] if k[-1].isdigit() else k]
               for k in losses if (k.rsplit("_", 1)[0] if k[-1].isdigit() else k) in weight_dict)
