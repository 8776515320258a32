"""detloss.torch_detr - DETR's SetCriterion as a drop-in torch module.

    from detloss.torch_detr import SetCriterion       # also detloss.torch_detr.DetrLoss
    criterion = SetCriterion(num_classes, matcher, weight_dict, eos_coef=0.1,
                             losses=["labels", "boxes", "cardinality"])    # DETR main.py
    criterion = SetCriterion(num_classes, matcher, weight_dict,
                             losses=["labels", "boxes", "cardinality"],
                             cls_loss="focal", focal_alpha=0.25)           # Deformable-DETR
    loss_dict = criterion(outputs, targets)               # or (..., num_boxes=all_reduced)
    loss = sum(loss_dict[k] * weight_dict[k] for k in loss_dict if k in weight_dict)

The constructor is facebookresearch/detr's SetCriterion(num_classes, matcher,
weight_dict, eos_coef, losses), plus keywords for the focal variant. `matcher` is
read for its weights only (cost_class, cost_bbox, cost_giou: DETR's or detloss's
HungarianMatcher, or None for 1 / 5 / 2, focal 2 / 5 / 2): the matching itself runs
inside the C call, per image on its Q x G_i block (scipy's pairs on the float64
cost). forward(outputs, targets) takes DETR's dicts: outputs {"pred_logits"
[B, Q, K], "pred_boxes" [B, Q, 4], optional "aux_outputs": a list of such dicts},
targets a list of B {"labels" [G_i], "boxes" [G_i, 4]} (normalised cx, cy, w, h), and
returns DETR's dict: loss_ce, class_error (with "labels"), loss_bbox, loss_giou (with
"boxes"), cardinality_error (with "cardinality"), and for aux output i the same keys
suffixed "_i" (no class_error, as DETR). "masks" is not supported.

num_boxes: DETR divides the box terms (and the focal class term) by the batch's gt
count, all-reduced over the ranks and divided by the world size, clamped to >= 1.
forward does the same when torch.distributed is initialized and num_boxes is None;
pass num_boxes= to give the count yourself (e.g. computed once for several calls).

Gradients flow to pred_logits and pred_boxes of every output (autograd), those of
the matching held fixed as in DETR. The losses are computed in float32 on the CPU
(the predictions are copied there once per call) and returned in the input's dtype
and device. class_error and cardinality_error are no-grad logging values computed in
torch from the logits and the C call's matches, as DETR computes them.
Docs: docs/math/detr_loss.md.
"""
import numpy as np
import torch

from . import _lib
from . import head_detr as _h

__all__ = ["SetCriterion", "DetrLoss"]


class _DetrLossFunction(torch.autograd.Function):
    """(pred_logits, pred_boxes) -> (loss_ce, loss_bbox, loss_giou, matches)."""

    @staticmethod
    def forward(ctx, logits, boxes, labels, tboxes, opt):
        dev, dt = logits.device, logits.dtype
        lg = logits.detach().to("cpu", torch.float32).contiguous()
        pb = boxes.detach().to("cpu", torch.float32).contiguous()
        B, Q, K = lg.shape
        need = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        gl = torch.empty((B, Q, K), dtype=torch.float32) if need else None
        gg = torch.empty((B, Q, 4), dtype=torch.float32) if need else None
        m = torch.empty((B, Q), dtype=torch.int64)
        am = torch.empty((B, Q), dtype=torch.int64)
        res = _h.run(lg.numpy(), pb.numpy(), labels, tboxes, opt,
                     None if gl is None else gl.numpy(), None if gg is None else gg.numpy(),
                     m.numpy(), am.numpy())
        if need:
            # d loss_bbox / d boxes = sign(b_q - b_g) / nb on matched rows (0 at a zero
            # difference, torch's abs backward); the C call gave d loss_ce (weight_ce 1)
            # and d loss_giou (weight_bbox 0, weight_giou 1).
            mask = m >= 0
            tgt = torch.zeros((B, Q, 4), dtype=torch.float32)
            if bool(mask.any()):
                cat = torch.from_numpy(np.concatenate([b for b in tboxes]))
                off = torch.as_tensor(np.cumsum([0] + [b.shape[0] for b in tboxes])[:-1])
                rows = m + off[:, None]
                tgt[mask] = cat[rows[mask]]
            sl1 = torch.sign(pb - tgt) * mask[..., None] / res.num_boxes
            ctx.save_for_backward(gl, gg, sl1)
        ctx.dev, ctx.dt = dev, dt
        out = [torch.tensor(v, dtype=dt, device=dev)
               for v in (res.loss_ce, res.loss_bbox, res.loss_giou)]
        ctx.mark_non_differentiable(m, am)
        return out[0], out[1], out[2], m, am

    @staticmethod
    def backward(ctx, g_ce, g_bbox, g_giou, g_m, g_am):
        gl, gg, sl1 = ctx.saved_tensors
        g_ce, g_bbox, g_giou = (g.to("cpu", torch.float32) for g in (g_ce, g_bbox, g_giou))
        d_logits = d_boxes = None
        if ctx.needs_input_grad[0]:
            # weight 1 (DETR's loss_ce weight): the C call's buffer as it is
            d_logits = (gl if bool(g_ce == 1) else gl * g_ce).to(ctx.dev, ctx.dt)
        if ctx.needs_input_grad[1]:
            d_boxes = (gg * g_giou + sl1 * g_bbox).to(ctx.dev, ctx.dt)
        return d_logits, d_boxes, None, None, None


class SetCriterion(torch.nn.Module):
    """DETR's SetCriterion (module docstring). cls_loss "softmax" (DETR: K = num_classes + 1
    logits, eos_coef weights the no-object class) or "focal" (Deformable-DETR / DINO: K =
    num_classes, sigmoid focal loss with focal_alpha, focal_gamma, also used by the matching
    cost). num_threads None = torch.get_num_threads()."""

    def __init__(self, num_classes, matcher=None, weight_dict=None, eos_coef=0.1,
                 losses=("labels", "boxes", "cardinality"), *, cls_loss="softmax",
                 focal_alpha=0.25, focal_gamma=2.0, num_threads=None):
        super().__init__()
        if cls_loss not in _h.CLS_LOSSES:
            raise _lib.DetlossError(_lib.ERR_UNKNOWN, "cls_loss", "unknown class loss %r "
                                    "(expected softmax or focal)" % (cls_loss,))
        bad = [x for x in losses if x not in ("labels", "boxes", "cardinality")]
        if bad:
            raise _lib.DetlossError(_lib.ERR_UNSUPPORTED, "losses", "%r is not supported "
                                    "(labels, boxes, cardinality)" % (bad[0],))
        focal = cls_loss == "focal"
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = dict(weight_dict) if weight_dict is not None else {
            "loss_ce": 2.0 if focal else 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}
        self.eos_coef = eos_coef
        self.losses = list(losses)
        self.cls_loss = cls_loss
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.num_threads = num_threads
        if not focal:  # DETR keeps this buffer; kept so state_dict() has the same keys
            w = torch.ones(num_classes + 1)
            w[-1] = eos_coef
            self.register_buffer("empty_weight", w)

    def _costs(self):
        m = self.matcher
        dc = 2.0 if self.cls_loss == "focal" else 1.0
        if m is None:
            return dc, 5.0, 2.0
        return (float(getattr(m, "cost_class", dc)), float(getattr(m, "cost_bbox", 5.0)),
                float(getattr(m, "cost_giou", 2.0)))

    def _options(self, num_boxes):
        cc, cb, cg = self._costs()
        n = torch.get_num_threads() if self.num_threads is None else self.num_threads
        # weight_ce 1, weight_bbox 0, weight_giou 1: the call's gradients are those of
        # loss_ce (logits) and loss_giou (boxes); the L1 one is formed in torch
        return _h.options(self.cls_loss, self.eos_coef, self.focal_alpha, self.focal_gamma,
                          cc, cb, cg, 1.0, 0.0, 1.0, num_boxes, n)

    @staticmethod
    def _num_boxes(targets, device):
        n = float(sum(len(t["labels"]) for t in targets))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            t = torch.as_tensor([n], dtype=torch.float, device=device)
            torch.distributed.all_reduce(t)
            n = (t / torch.distributed.get_world_size()).item()
        return max(n, 1.0)

    def _one(self, out, labels, tboxes, targets, opt, log):
        logits, boxes = out["pred_logits"], out["pred_boxes"]
        if logits.dim() != 3 or boxes.shape != logits.shape[:2] + (4,):
            raise _lib.DetlossError(_lib.ERR_SHAPE, "pred_logits", "expected pred_logits "
                                    "[B, Q, K] and pred_boxes [B, Q, 4], got %s and %s"
                                    % (tuple(logits.shape), tuple(boxes.shape)))
        ce, l1, gi, m, am = _DetrLossFunction.apply(logits, boxes, labels, tboxes, opt)
        d = {}
        if "labels" in self.losses:
            d["loss_ce"] = ce
            if log:
                with torch.no_grad():
                    mask = m >= 0
                    if bool(mask.any()):
                        tl = torch.cat([torch.as_tensor(x) for x in labels])
                        off = torch.as_tensor(np.cumsum([0] + [x.shape[0] for x in labels])[:-1])
                        tco = tl[(m + off[:, None])[mask]]
                        # DETR: top-1 of the matched queries' logits (the C call's argmax)
                        acc = am[mask].eq(tco).float().sum() * (100.0 / tco.numel())
                        acc = acc.to(logits.device)
                    else:
                        acc = torch.zeros([], device=logits.device)
                    d["class_error"] = 100 - acc
        if "boxes" in self.losses:
            d["loss_bbox"] = l1
            d["loss_giou"] = gi
        if "cardinality" in self.losses:
            with torch.no_grad():
                lens = torch.as_tensor([len(t["labels"]) for t in targets])
                card = (am != logits.shape[-1] - 1).sum(1)  # logits.argmax(-1), from the C call
                d["cardinality_error"] = torch.nn.functional.l1_loss(
                    card.float(), lens.float()).to(logits.device)
        return d

    def forward(self, outputs, targets, num_boxes=None):
        """DETR's loss dict (module docstring). num_boxes: the count the box terms (and the
        focal class term) are divided by before the clamp at 1; None = DETR's: this batch's
        gt count, all-reduced and divided by the world size when torch.distributed is
        initialized."""
        logits = outputs["pred_logits"]
        if num_boxes is None:
            num_boxes = self._num_boxes(targets, logits.device)
        elif torch.is_tensor(num_boxes):
            num_boxes = float(num_boxes.item())
        opt = self._options(float(num_boxes))
        labels = [_lib.array("targets[%d].labels" % i, t["labels"].detach().cpu().numpy(),
                             np.int64, shape=(None,)) for i, t in enumerate(targets)]
        tboxes = [_lib.array("targets[%d].boxes" % i,
                             t["boxes"].detach().to("cpu", torch.float32).numpy(),
                             shape=(labels[i].shape[0], 4)) for i, t in enumerate(targets)]
        if len(targets) != logits.shape[0]:
            raise _lib.DetlossError(_lib.ERR_SHAPE, "targets", "has %d images but pred_logits "
                                    "has %d" % (len(targets), logits.shape[0]))
        losses = self._one(outputs, labels, tboxes, targets, opt, True)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            d = self._one(aux, labels, tboxes, targets, opt, False)
            losses.update({k + "_%d" % i: v for k, v in d.items()})
        return losses


DetrLoss = SetCriterion
