"""A drop-in for ultralytics ``v8DetectionLoss`` (8.1) computed by detloss.

    from detloss.torch_yolov8 import V8DetectionLoss
    criterion = V8DetectionLoss(model)                  # as ultralytics: reads model.args
    loss, loss_items = criterion(preds, batch)          # and model.model[-1] (Detect)
    loss.backward()

``preds`` is what the Detect head returns in training: a list of per-level feature
maps [B, 4 reg_max + nc, h, w] (or a tuple whose second item is that list);
``batch`` is the dict ultralytics' dataloader builds: 'batch_idx' [N], 'cls' [N]
(or [N, 1]) and 'bboxes' [N, 4] normalised (cx, cy, w, h). The image size is
feats[0].shape[2:] * stride[0], as ultralytics derives it. The result is
``(loss * batch_size, loss.detach())`` with loss the gained 3-vector [box, cls, dfl]
(ultralytics 8.1 returns ``loss.sum() * batch_size``: the first item here is that
0-dim tensor). Gradients flow to the feature maps (computed in closed form by the C
library in the forward call; the backward only scales them).

Construction: ``V8DetectionLoss(model)`` reads, as ultralytics does, ``model.args``
(attribute or dict: box, cls, dfl) and the Detect layer ``model.model[-1]`` (nc,
reg_max, stride); or give the numbers: ``V8DetectionLoss(nc=80, reg_max=16,
strides=(8, 16, 32), box=7.5, cls=0.5, dfl=1.5)`` (explicit keywords override what
the model gives). ``tal_topk`` (10), ``alpha`` (0.5) and ``beta`` (6.0) are the
assigner's.

Distributed training: ``criterion(preds, batch, target_score_sum=S)`` divides by
max(S, 1) instead of this batch's own sum of target scores; a caller all-reduces
``criterion.last_target_score_sum`` (this batch's sum, set by every call) over the
ranks -- e.g. computed by a first call with ``grad`` not needed -- or any other
normaliser it chooses.

Numerics: the C library reads float32 (float64 inputs are rounded; the gradient is
returned in the feature maps' dtype). The object holds only numbers: it can be
deep-copied and pickled.
"""
import numpy as np
import torch

from . import _lib
from ._lib import DetlossError
from .head_yolov8 import yolov8_loss

__all__ = ["V8DetectionLoss"]


def _hyp(args, key, default):
    if args is None:
        return default
    if isinstance(args, dict):
        return args.get(key, default)
    return getattr(args, key, default)


class _Yolov8Fn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, crit, gts, labels, image_size, tss, *feats):
        B = feats[0].shape[0]
        R, nc = crit.reg_max, crit.nc
        R4 = 4 * R
        A = sum(f.shape[2] * f.shape[3] for f in feats)
        # one transposing copy per level into the [B, A, 4R] and [B, A, C] layouts the C
        # library reads (no concatenated [B, no, A] intermediate)
        pd = torch.empty((B, A, R4), dtype=torch.float32)
        ps = torch.empty((B, A, nc), dtype=torch.float32)
        a0 = 0
        for f in feats:
            hw = f.shape[2] * f.shape[3]
            v = f.detach().to("cpu").reshape(B, R4 + nc, hw)
            pd[:, a0:a0 + hw].copy_(v[:, :R4].transpose(1, 2))
            ps[:, a0:a0 + hw].copy_(v[:, R4:].transpose(1, 2))
            a0 += hw
        need = any(ctx.needs_input_grad[5:])
        out = crit._grad_buffers(B, A) if need else None
        r = yolov8_loss(image_size, gts, labels, pd.numpy(), ps.numpy(), strides=crit.strides,
                        reg_max=R, topk=crit.tal_topk, alpha=crit.alpha, beta=crit.beta,
                        box=crit.box, cls=crit.cls, dfl=crit.dfl, target_score_sum=tss,
                        grad=need, num_threads=crit.num_threads, out=out)
        crit.last_result = r
        dtype, dev = feats[0].dtype, feats[0].device
        if need:
            gd, gs = torch.from_numpy(out[0]), torch.from_numpy(out[1])
            grads, a0 = [], 0
            for f in feats:
                h, w = f.shape[2:]
                g = torch.empty((B, R4 + nc, h * w), dtype=dtype)
                g[:, :R4].copy_(gd[:, a0:a0 + h * w].transpose(1, 2))
                g[:, R4:].copy_(gs[:, a0:a0 + h * w].transpose(1, 2))
                grads.append(g.view(B, R4 + nc, h, w).to(dev))
                a0 += h * w
            ctx.save_for_backward(*grads)
        ctx.nfeats = len(feats)
        items = torch.tensor([r.loss_box, r.loss_cls, r.loss_dfl], dtype=dtype, device=dev)
        total = torch.tensor(r.loss, dtype=dtype, device=dev)
        ctx.mark_non_differentiable(items)
        return total, items

    @staticmethod
    def backward(ctx, g_total, g_items):
        grads = ctx.saved_tensors
        if not grads:
            return (None,) * (5 + ctx.nfeats)
        if g_total.device.type == "cpu" and float(g_total) == 1.0:
            return (None,) * 5 + tuple(grads)  # loss.backward(): no extra pass
        return (None,) * 5 + tuple(g_total * gr for gr in grads)


class V8DetectionLoss:
    """ultralytics v8DetectionLoss (8.1) on the detloss C library. See the module doc."""

    def __init__(self, model=None, tal_topk=10, *, nc=None, reg_max=None, strides=None,
                 box=None, cls=None, dfl=None, alpha=0.5, beta=6.0, num_threads=0):
        m = args = None
        if model is not None:
            m = model.model[-1]
            args = getattr(model, "args", None)
        self.nc = int(nc if nc is not None else m.nc)
        self.reg_max = int(reg_max if reg_max is not None else (m.reg_max if m is not None
                                                                 else 16))
        if strides is None:
            strides = m.stride if m is not None else (8, 16, 32)
        if isinstance(strides, torch.Tensor):
            strides = strides.tolist()
        self.strides = tuple(float(s) for s in strides)
        self.box = float(box if box is not None else _hyp(args, "box", 7.5))
        self.cls = float(cls if cls is not None else _hyp(args, "cls", 0.5))
        self.dfl = float(dfl if dfl is not None else _hyp(args, "dfl", 1.5))
        self.tal_topk, self.alpha, self.beta = int(tal_topk), float(alpha), float(beta)
        self.num_threads = int(num_threads)
        self.no = self.nc + 4 * self.reg_max
        self.last_result = None
        self._buffers = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["last_result"] = None
        d["_buffers"] = None
        return d

    def _grad_buffers(self, B, A):
        """The [B, A, 4R] / [B, A, C] float32 arrays the C library writes the gradients into,
        kept between calls of the same shape (no fresh pages each step)."""
        buf = getattr(self, "_buffers", None)
        if buf is None or buf[0].shape != (B, A, 4 * self.reg_max):
            buf = (np.empty((B, A, 4 * self.reg_max), np.float32),
                   np.empty((B, A, self.nc), np.float32))
            self._buffers = buf
        return buf

    @property
    def last_target_score_sum(self):
        """This batch's sum of target scores from the last call (before the clamp)."""
        return None if self.last_result is None else self.last_result.target_score_sum

    def targets(self, batch, batch_size, image_size):
        """Per image gt [G, 4] pixels (x1, y1, x2, y2) and labels [G], from the batch dict
        as ultralytics' preprocess builds them (float32: xywh * (W, H, W, H), then
        x1 = cx - w / 2, ...), in the dataloader's order within each image."""
        H, W = image_size
        idx = batch["batch_idx"].detach().reshape(-1).cpu().long().numpy()
        cls = batch["cls"].detach().reshape(-1).cpu().long().numpy()
        bb = batch["bboxes"].detach().reshape(-1, 4).cpu().to(torch.float32)
        bb = bb * torch.tensor([W, H, W, H], dtype=torch.float32)
        xy = torch.stack([bb[:, 0] - bb[:, 2] / 2, bb[:, 1] - bb[:, 3] / 2,
                          bb[:, 0] + bb[:, 2] / 2, bb[:, 1] + bb[:, 3] / 2], 1).numpy()
        gts = [xy[idx == i] for i in range(batch_size)]
        labels = [cls[idx == i] for i in range(batch_size)]
        return gts, labels

    def __call__(self, preds, batch, *, target_score_sum=None):
        feats = preds[1] if isinstance(preds, tuple) else preds
        B = feats[0].shape[0]
        for l, f in enumerate(feats):
            if f.dim() != 4 or f.shape[0] != B or f.shape[1] != self.no:
                raise DetlossError(_lib.ERR_SHAPE, "preds[%d]" % l,
                                   "expected [%d, %d (4 reg_max + nc), h, w], got %s"
                                   % (B, self.no, tuple(f.shape)))
        if len(feats) != len(self.strides):
            raise DetlossError(_lib.ERR_SHAPE, "preds", "has %d levels but there are %d strides"
                               % (len(feats), len(self.strides)))
        # ultralytics: imgsz = feats[0].shape[2:] * stride[0]
        image_size = (int(round(feats[0].shape[2] * self.strides[0])),
                      int(round(feats[0].shape[3] * self.strides[0])))
        gts, labels = self.targets(batch, B, image_size)
        tss = None if target_score_sum is None else float(target_score_sum)
        total, items = _Yolov8Fn.apply(self, gts, labels, image_size, tss, *feats)
        return total, items
