"""detloss.torch_detection - torch drop-ins for torchvision's detection utility classes, and
the patch_* helpers that swap detloss into a torchvision model (re-exported by detloss.torch).

    from detloss.torch import BoxCoder, Matcher, BalancedPositiveNegativeSampler, AnchorGenerator

take torchvision.models.detection._utils.BoxCoder / Matcher / BalancedPositiveNegativeSampler
and anchor_utils.AnchorGenerator's constructor arguments, methods, attributes and errors
(torchvision 0.14), and compute on the detloss C library where it has the operation:

  * BoxCoder.encode_single / decode_single: detloss_box_encode / _decode for float32 CPU
    tensors (torchvision's float32 results to float32 rounding: the C library's expf / logf
    and torch's vectorised exp / log can differ by an ulp); decode_single is differentiable
    (closed-form backward, docs/torch-binding.md). Other dtypes, devices, broadcasting
    shapes, encode_single inputs that require grad and inputs the C library refuses
    (zero-width boxes, non-finite values, which torchvision turns into inf / NaN) take a
    torch expression of the same formula in the input's dtype, so the result is still
    torchvision's.
  * Matcher(match_quality_matrix): torch code on the given matrix (detloss has no matrix
    matcher: the matrix is what it avoids). Matcher.match_boxes(gt_boxes, anchors) is the
    fused entry point: detloss_match (or detloss_match_grid with anchor_grid=), O(A + G)
    memory, no A x G matrix; the same matches as Matcher(box_iou(gt_boxes, anchors)).
  * BalancedPositiveNegativeSampler(..., generator="torch"): torch.randperm on torch's
    default generator, the same calls in the same order as torchvision (so a stock and a
    patched run from one seed sample the same anchors); generator="detloss": detloss's
    counter-based sampler (detloss_sample_balanced), seeded by seed= or by one draw from
    torch's generator per call.
  * AnchorGenerator.forward: detloss_anchors_generate on the grid of cell_anchors and the
    strides H // h, W // w (bit for bit torchvision's float32 anchors); it remembers the
    grid so that the patched losses match on it (detloss_match_grid).

Patching (patch_rpn, patch_retinanet, patch_box_coder, patch_matcher, patch_sampler,
patch_anchor_generator) changes the CLASS of the model's own objects to a subclass of
their torchvision class whose methods are detloss's (options live in instance attributes
named _detloss_*): a patched model is still one object graph, so copy.deepcopy(model)
gives a copy that runs on its own modules, pickle / torch.save + torch.load work (the
patched classes are importable from this module by name), and unpatch(model) restores the
torchvision classes. Only objects whose type is exactly the torchvision class are swapped
(a subclass may override the methods detloss replaces).
"""
import ctypes
import importlib
import math

import torch
from torch import nn

from . import _lib, ops
from ._lib import DetlossError, DetlossTypeError

__all__ = ["BoxCoder", "Matcher", "BalancedPositiveNegativeSampler", "AnchorGenerator",
           "patch_rpn", "patch_retinanet", "patch_fcos", "patch_box_coder", "patch_matcher", "patch_sampler",
           "patch_anchor_generator", "unpatch", "is_patched"]

_F32 = torch.float32
# torchvision _utils.BoxCoder's default clamp of dw, dh before exp: ln(1000 / 16)
# (detectron2's comment: no box grows beyond 1000 px from a 16 px anchor).
_BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _nthreads(n):
    return torch.get_num_threads() if n is None else _lib.threads(n)


def _c_ok(*ts):
    """True when the C library can take these tensors as they are: float32, CPU, 2-D [N, 4]
    of the same N, and no gradient to be recorded (callers handle gradients themselves)."""
    return all(isinstance(t, torch.Tensor) and t.dtype == _F32 and t.device.type == "cpu" and
               t.layout == torch.strided and t.dim() == 2 and t.shape[1] == 4 and
               t.shape[0] == ts[0].shape[0] for t in ts)


def _np(t):
    return t.detach().contiguous().numpy()


# ---------------------------------------------------------------------------- BoxCoder
def _encode_torch(reference_boxes, proposals, weights):
    """R-CNN regression targets (Girshick et al., CVPR 2014, App. C) as torch ops in the
    inputs' promoted dtype, in torchvision's order of operations (so the same bits):
        dx = wx (xg - xa) / wa,  dw = ww ln(wg / wa)   (centre = x1 + 0.5 w)."""
    w = torch.as_tensor(weights, dtype=reference_boxes.dtype, device=reference_boxes.device)
    aw = proposals[:, 2:3] - proposals[:, 0:1]
    ah = proposals[:, 3:4] - proposals[:, 1:2]
    ax = proposals[:, 0:1] + 0.5 * aw
    ay = proposals[:, 1:2] + 0.5 * ah
    gw = reference_boxes[:, 2:3] - reference_boxes[:, 0:1]
    gh = reference_boxes[:, 3:4] - reference_boxes[:, 1:2]
    gx = reference_boxes[:, 0:1] + 0.5 * gw
    gy = reference_boxes[:, 1:2] + 0.5 * gh
    return torch.cat((w[0] * (gx - ax) / aw, w[1] * (gy - ay) / ah,
                      w[2] * torch.log(gw / aw), w[3] * torch.log(gh / ah)), dim=1)


def _decode_torch(rel_codes, boxes, weights, clip):
    """The inverse transform as torch ops in rel_codes' dtype (autograd-differentiable);
    rel_codes [N, 4K] against boxes [N, 4]; torchvision's order of operations."""
    boxes = boxes.to(rel_codes.dtype)
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    bx = boxes[:, 0] + 0.5 * bw
    by = boxes[:, 1] + 0.5 * bh
    wx, wy, ww, wh = weights
    cx = rel_codes[:, 0::4] / wx * bw[:, None] + bx[:, None]
    cy = rel_codes[:, 1::4] / wy * bh[:, None] + by[:, None]
    pw = torch.exp(torch.clamp(rel_codes[:, 2::4] / ww, max=clip)) * bw[:, None]
    ph = torch.exp(torch.clamp(rel_codes[:, 3::4] / wh, max=clip)) * bh[:, None]
    half = torch.tensor(0.5, dtype=rel_codes.dtype, device=rel_codes.device)
    hw, hh = half * pw, half * ph
    return torch.stack((cx - hw, cy - hh, cx + hw, cy + hh), dim=2).flatten(1)


def _coder_opt(weights, clip):
    return ctypes.byref(ops._coder_options(weights, clip, torch.get_num_threads()))


class _DecodeFunction(torch.autograd.Function):
    """decode_single on detloss_box_decode, with the closed-form backward
    (docs/torch-binding.md "BoxCoder gradients"): with a = dx / wx, e = exp(min(dw / ww,
    clip)), w = bx2 - bx1, the outputs are x1 = bx1 + w (a + 1/2 - e/2) and
    x2 = bx1 + w (a + 1/2 + e/2) (y likewise), so
        dx1/d dx = dx2/d dx = w / wx,  dx1/d dw = -w e / (2 ww),  dx2/d dw = w e / (2 ww)
        (0 where dw / ww > clip: torch.clamp passes the gradient where dw / ww <= clip),
        dx1/d bx1 = 1/2 - a + e/2,  dx1/d bx2 = a + 1/2 - e/2,
        dx2/d bx1 = 1/2 - a - e/2,  dx2/d bx2 = a + 1/2 + e/2."""

    @staticmethod
    def forward(ctx, rel_codes, boxes, weights, clip, out_c):
        ctx.save_for_backward(rel_codes, boxes)
        ctx.weights, ctx.clip, ctx.boxes_dtype = weights, clip, boxes.dtype
        return out_c

    @staticmethod
    def backward(ctx, go):
        rel, boxes = ctx.saved_tensors
        n = rel.shape[0]
        d = rel.detach().reshape(n, -1, 4)
        b = boxes.detach().to(rel.dtype)[:, None, :]
        g = go.reshape(n, -1, 4)
        wx, wy, ww, wh = ctx.weights
        w = b[..., 2] - b[..., 0]
        h = b[..., 3] - b[..., 1]
        a, c = d[..., 0] / wx, d[..., 1] / wy
        sw, sh = d[..., 2] / ww, d[..., 3] / wh
        ew = torch.exp(torch.clamp(sw, max=ctx.clip))
        eh = torch.exp(torch.clamp(sh, max=ctx.clip))
        g1, g2, g3, g4 = g.unbind(-1)
        grad_rel = grad_boxes = None
        if ctx.needs_input_grad[0]:
            grad_rel = torch.stack((
                (g1 + g3) * w / wx, (g2 + g4) * h / wy,
                torch.where(sw <= ctx.clip, (g3 - g1) * 0.5 * w * ew / ww, torch.zeros_like(sw)),
                torch.where(sh <= ctx.clip, (g4 - g2) * 0.5 * h * eh / wh, torch.zeros_like(sh)),
            ), dim=-1).reshape(rel.shape)
        if ctx.needs_input_grad[1]:
            gx1 = g1 * (0.5 - a + 0.5 * ew) + g3 * (0.5 - a - 0.5 * ew)
            gx2 = g1 * (a + 0.5 - 0.5 * ew) + g3 * (a + 0.5 + 0.5 * ew)
            gy1 = g2 * (0.5 - c + 0.5 * eh) + g4 * (0.5 - c - 0.5 * eh)
            gy2 = g2 * (c + 0.5 - 0.5 * eh) + g4 * (c + 0.5 + 0.5 * eh)
            grad_boxes = torch.stack((gx1, gy1, gx2, gy2), dim=-1).sum(1).to(ctx.boxes_dtype)
        return grad_rel, grad_boxes, None, None, None


class BoxCoder:
    """torchvision.models.detection._utils.BoxCoder on detloss: weights (wx, wy, ww, wh),
    bbox_xform_clip (dw, dh are clamped to at most this before exp)."""

    def __init__(self, weights, bbox_xform_clip=_BBOX_XFORM_CLIP):
        self.weights = weights
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, reference_boxes, proposals):
        """Per-image lists of gt boxes and anchors -> a tuple of per-image deltas."""
        counts = [len(b) for b in reference_boxes]
        out = self.encode_single(torch.cat(reference_boxes, dim=0), torch.cat(proposals, dim=0))
        return out.split(counts, 0)

    def encode_single(self, reference_boxes, proposals):
        """Deltas [N, 4] of reference_boxes (gt) relative to proposals (anchors), in
        reference_boxes' dtype (torchvision's argument order: gt first)."""
        wants_grad = torch.is_grad_enabled() and (
            getattr(reference_boxes, "requires_grad", False) or
            getattr(proposals, "requires_grad", False))
        if not wants_grad and _c_ok(reference_boxes, proposals):
            out = torch.empty(reference_boxes.shape, dtype=_F32)
            a, g = proposals.detach().contiguous(), reference_boxes.detach().contiguous()
            try:
                _lib.call("detloss_box_encode", a.data_ptr(), g.data_ptr(), out.shape[0],
                          out.data_ptr(), _coder_opt(self.weights, _BBOX_XFORM_CLIP))
                return out
            except DetlossError:
                pass  # zero-width / non-finite boxes: torchvision gives inf / NaN, so do we
        return _encode_torch(reference_boxes, proposals, self.weights)

    def decode(self, rel_codes, boxes):
        """rel_codes [sum A_i, 4K] against a list of per-image boxes -> [sum A_i, K, 4]."""
        if not isinstance(boxes, (list, tuple)):
            raise AssertionError("This function expects boxes of type list or tuple.")
        if not isinstance(rel_codes, torch.Tensor):
            raise AssertionError("This function expects rel_codes of type torch.Tensor.")
        total = sum(b.size(0) for b in boxes)
        boxes = torch.cat(boxes, dim=0)
        if total > 0:
            rel_codes = rel_codes.reshape(total, -1)
        out = self.decode_single(rel_codes, boxes)
        return out.reshape(total, -1, 4) if total > 0 else out

    def decode_single(self, rel_codes, boxes):
        """Boxes [N, 4K] from rel_codes [N, 4K] relative to boxes [N, 4], in rel_codes'
        dtype; differentiable w.r.t. rel_codes and boxes."""
        if (isinstance(rel_codes, torch.Tensor) and isinstance(boxes, torch.Tensor) and
                rel_codes.dtype == _F32 and rel_codes.device.type == "cpu" and
                boxes.device.type == "cpu" and boxes.dtype.is_floating_point and
                rel_codes.dim() == 2 and boxes.dim() == 2 and boxes.shape[1] == 4 and
                rel_codes.shape[0] == boxes.shape[0] and rel_codes.shape[1] > 0 and
                rel_codes.shape[1] % 4 == 0):
            n, k = rel_codes.shape[0], rel_codes.shape[1] // 4
            b = boxes.detach().to(_F32)
            if k > 1:
                b = b.repeat_interleave(k, dim=0)
            b = b.contiguous()
            d = rel_codes.detach().contiguous()
            out = torch.empty(n, 4 * k, dtype=_F32)
            try:
                _lib.call("detloss_box_decode", b.data_ptr(), d.data_ptr(), n * k,
                          out.data_ptr(), _coder_opt(self.weights, self.bbox_xform_clip))
            except DetlossError:
                out = None  # non-finite input: torchvision's arithmetic, below
            if out is not None:
                if torch.is_grad_enabled() and (rel_codes.requires_grad or boxes.requires_grad):
                    return _DecodeFunction.apply(rel_codes, boxes, tuple(self.weights),
                                                 float(self.bbox_xform_clip), out)
                return out
        return _decode_torch(rel_codes, boxes, self.weights, self.bbox_xform_clip)


# ---------------------------------------------------------------------------- Matcher
class Matcher:
    """torchvision.models.detection._utils.Matcher: anchors (columns of the quality matrix)
    to gt (rows): matches[a] = gt index, BELOW_LOW_THRESHOLD (-1) or BETWEEN_THRESHOLDS (-2).

    __call__(match_quality_matrix [G, A]) works on the given matrix (torch ops, any dtype
    and device, torchvision's tie and NaN behaviour). match_boxes(gt_boxes, anchors) is the
    fused path for IoU matching: detloss computes each IoU where it needs it and never
    forms the G x A matrix (detloss_match; with anchor_grid= detloss_match_grid)."""

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold, low_threshold, allow_low_quality_matches=False):
        self.BELOW_LOW_THRESHOLD = -1
        self.BETWEEN_THRESHOLDS = -2
        if not low_threshold <= high_threshold:  # torchvision: torch._assert
            raise AssertionError("low_threshold should be <= high_threshold")
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    @staticmethod
    def _check_sizes(num_gt, num_anchors):
        # torchvision refuses an empty matrix, naming the empty side (gt first)
        if num_gt == 0:
            raise ValueError("No ground-truth boxes available for one of the images during "
                             "training")
        if num_anchors == 0:
            raise ValueError("No proposal boxes available for one of the images during "
                             "training")

    def __call__(self, match_quality_matrix):
        q = match_quality_matrix
        if q.numel() == 0:
            self._check_sizes(q.shape[0], 0)
        vals, idx = q.max(dim=0)  # best gt per anchor; torch.max keeps the first on ties
        matches = idx.clone()
        # written as two masked stores so that a NaN best value keeps its index (as
        # torchvision: NaN compares false with both thresholds)
        matches[vals < self.low_threshold] = self.BELOW_LOW_THRESHOLD
        matches[(vals >= self.low_threshold) & (vals < self.high_threshold)] = \
            self.BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            self.set_low_quality_matches_(matches, idx, q)
        return matches

    def set_low_quality_matches_(self, matches, all_matches, match_quality_matrix):
        """Every anchor that ties a gt's best quality (exact equality, all ties) gets its
        own best gt back (all_matches), even below the thresholds (Ren et al., Faster
        R-CNN, sec. 3.1.2: the anchor with the highest IoU for each gt is positive)."""
        q = match_quality_matrix
        best_of_gt = q.max(dim=1, keepdim=True).values
        hit = (q == best_of_gt).any(dim=0)
        matches[hit] = all_matches[hit]

    def match_boxes(self, gt_boxes, anchors, *, anchor_grid=None, num_threads=None):
        """Fused: the matches of Matcher(box_iou(gt_boxes, anchors)) without the matrix.

        gt_boxes [G, 4], anchors [A, 4] (CPU, floating point; computed in float32);
        anchor_grid: the detloss.AnchorGrid the anchors come from (e.g.
        AnchorGenerator.grid_for(anchors), or detloss.torchvision_anchor_grid(...)):
        matching then visits only the cells near each gt. Returns int64 [A]. The same
        ValueErrors as torchvision for G = 0 or A = 0. One difference: where a gt and an
        anchor both have zero area torchvision's IoU is NaN, detloss's 0."""
        g = _as_boxes("gt_boxes", gt_boxes)
        a = _as_boxes("anchors", anchors)
        self._check_sizes(g.shape[0], a.shape[0])
        kw = dict(high=self.high_threshold, low=self.low_threshold,
                  allow_low_quality=bool(self.allow_low_quality_matches),
                  num_threads=_nthreads(num_threads))
        if anchor_grid is not None:
            m = ops.match_grid(anchor_grid, _np(g), **kw)
            if m.shape[0] != a.shape[0]:
                raise DetlossError(_lib.ERR_SHAPE, "anchor_grid", "has %d anchors, anchors %d"
                                   % (m.shape[0], a.shape[0]))
        else:
            m = ops.match(_np(a), _np(g), **kw)
        return torch.from_numpy(m)


def _as_boxes(name, t):
    if not isinstance(t, torch.Tensor):
        raise DetlossTypeError(_lib.ERR_NULL if t is None else _lib.ERR_TYPE, name,
                               "must be a torch.Tensor [N, 4], got %s" % type(t).__name__)
    if t.device.type != "cpu":
        raise DetlossError(_lib.ERR_UNSUPPORTED, name, "tensor is on device %s; detloss "
                           "computes on the CPU (move it with .cpu())" % t.device)
    if t.dim() != 2 or t.shape[1] != 4:
        raise DetlossError(_lib.ERR_SHAPE, name, "expected shape [N, 4], got %s"
                           % (tuple(t.shape),))
    return t.detach().to(_F32).contiguous()


# ---------------------------------------------------------------------------- sampler
_GENERATORS = ("torch", "detloss")


class BalancedPositiveNegativeSampler:
    """torchvision.models.detection._utils.BalancedPositiveNegativeSampler: per image,
    min(|pos|, int(B f)) positives (value >= 1) and min(|neg|, B - that) negatives
    (value == 0) of matched_idxs; returns (pos masks, neg masks), uint8, one per image.

    generator="torch" (the default): the choice is torch.randperm(|pos|)[:n_pos] then
    torch.randperm(|neg|)[:n_neg], image after image, on torch's default generator:
    the same calls as torchvision, so the same anchors from the same seed, and the
    generator ends in the same state. generator="detloss": detloss_sample_balanced's
    counter-based choice (a function of (seed, image index, anchor index) only, the same
    for any thread count); seed=None draws one 62-bit seed per call with torch.randint
    from torch's generator (so torch.manual_seed still makes runs repeatable), an integer
    seed draws nothing."""

    def __init__(self, batch_size_per_image, positive_fraction, *, generator="torch",
                 seed=None):
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        _set_sampler_mode(self, generator, seed)

    @property
    def generator(self):
        return getattr(self, "_detloss_generator", "torch")

    @property
    def seed(self):
        return getattr(self, "_detloss_seed", None)

    def __call__(self, matched_idxs):
        if self.generator == "detloss":
            return self._detloss_call(matched_idxs)
        n_pos_max = int(self.batch_size_per_image * self.positive_fraction)
        pos_masks, neg_masks = [], []
        for m in matched_idxs:
            pos = torch.where(m >= 1)[0]
            neg = torch.where(m == 0)[0]
            n_pos = min(pos.numel(), n_pos_max)
            n_neg = min(neg.numel(), self.batch_size_per_image - n_pos)
            # the two draws torchvision makes, in its order: they decide the generator state
            pick_pos = torch.randperm(pos.numel(), device=pos.device)[:n_pos]
            pick_neg = torch.randperm(neg.numel(), device=neg.device)[:n_neg]
            pm = torch.zeros_like(m, dtype=torch.uint8)
            nm = torch.zeros_like(m, dtype=torch.uint8)
            pm[pos[pick_pos]] = 1
            nm[neg[pick_neg]] = 1
            pos_masks.append(pm)
            neg_masks.append(nm)
        return pos_masks, neg_masks

    def _detloss_call(self, matched_idxs):
        """detloss_sample_balanced per image (the same counts as above, computed in C)."""
        seed = self.seed
        if seed is None:
            seed = int(torch.randint(0, 2 ** 62, (1,)).item())
        pos_masks, neg_masks = [], []
        for i, m in enumerate(matched_idxs):
            # torchvision's label vocabulary (>= 1 positive, 0 negative, else ignored) in
            # detloss's (>= 0 positive, -1 negative, -2 ignored)
            c = torch.full(m.shape, -2, dtype=torch.int64)
            c[(m >= 1).cpu()] = 0
            c[(m == 0).cpu()] = -1
            s, _, _ = ops.sample_balanced(c.numpy(), self.batch_size_per_image,
                                          self.positive_fraction, seed=seed, image_index=i,
                                          num_threads=torch.get_num_threads())
            s = torch.from_numpy(s).to(m.device)
            pos_masks.append((s == 1).to(torch.uint8))
            neg_masks.append((s == 0).to(torch.uint8))
        return pos_masks, neg_masks


def _set_sampler_mode(obj, generator, seed):
    if generator not in _GENERATORS:
        raise DetlossError(_lib.ERR_RANGE, "generator", "must be one of %s, got %r"
                           % (", ".join(map(repr, _GENERATORS)), generator))
    if seed is not None:
        seed = _lib.integer("seed", seed, "uint64")
    obj._detloss_generator = generator
    obj._detloss_seed = seed


# ---------------------------------------------------------------------------- anchors
class AnchorGenerator(nn.Module):
    """torchvision.models.detection.anchor_utils.AnchorGenerator on detloss:
    sizes ((s, ...) per level), aspect_ratios ((h / w, ...) per level); forward(image_list,
    feature_maps) -> one [A, 4] tensor per image (the same anchors for every image), in
    feature_maps[0]'s dtype. grid_for(anchors) gives the detloss.AnchorGrid of the last
    forward when anchors is the list it returned (None otherwise)."""

    __annotations__ = {"cell_anchors": list}

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)):
        super().__init__()
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        self.sizes = sizes
        self.aspect_ratios = aspect_ratios
        self.cell_anchors = [self.generate_anchors(s, r) for s, r in zip(sizes, aspect_ratios)]

    def generate_anchors(self, scales, aspect_ratios, dtype=torch.float32,
                         device=torch.device("cpu")):
        """Cell anchors [len(ratios) * len(scales), 4] centred on 0, ratio-major:
        h = sqrt(r) s, w = s / sqrt(r), (-w, -h, w, h) / 2 rounded (half to even); float32
        by detloss_anchors_level_base, other dtypes in torch in that dtype."""
        if dtype == _F32 and torch.device(device).type == "cpu":
            s = [float(v) for v in torch.as_tensor(scales, dtype=_F32).reshape(-1)]
            r = [float(v) for v in torch.as_tensor(aspect_ratios, dtype=_F32).reshape(-1)]
            try:
                base = ops.anchors_base({"levels": [{"sizes": s, "aspect_ratios": r,
                                                     "stride": 1}]})
                return torch.from_numpy(base)
            except DetlossError:
                pass  # a size or ratio <= 0: torch's arithmetic gives torchvision's values
        sc = torch.as_tensor(scales, dtype=dtype, device=device)
        ar = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        hr = torch.sqrt(ar)
        wr = 1 / hr
        ws = (wr[:, None] * sc[None, :]).view(-1)
        hs = (hr[:, None] * sc[None, :]).view(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def set_cell_anchors(self, dtype, device):
        self.cell_anchors = [c.to(dtype=dtype, device=device) for c in self.cell_anchors]

    def num_anchors_per_location(self):
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def _check_levels(self, n_grids, n_strides):
        if not (n_grids == n_strides == len(self.cell_anchors)):
            # torchvision's torch._assert message
            raise AssertionError(
                "Anchors should be Tuple[Tuple[int]] because each feature map could "
                "potentially have different sizes and aspect ratios. There needs to be a "
                "match between the number of feature maps passed and the number of sizes / "
                "aspect ratios specified.")

    def grid_anchors(self, grid_sizes, strides):
        """Per level: cell anchors shifted to (x stride_w, y stride_h) for every cell,
        row-major, then cell anchor (torch ops, in the cell anchors' dtype)."""
        if self.cell_anchors is None:
            raise AssertionError("cell_anchors should not be None")
        self._check_levels(len(grid_sizes), len(strides))
        out = []
        for (gh, gw), (sh, sw), base in zip(grid_sizes, strides, self.cell_anchors):
            dev = base.device
            xs = torch.arange(0, int(gw), dtype=torch.int32, device=dev) * sw
            ys = torch.arange(0, int(gh), dtype=torch.int32, device=dev) * sh
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            xx, yy = xx.reshape(-1), yy.reshape(-1)
            shifts = torch.stack((xx, yy, xx, yy), dim=1)
            out.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
        return out

    def _cache(self):
        c = self.__dict__.get("_detloss_cache")
        if c is None:
            c = self.__dict__["_detloss_cache"] = {"grids": {}, "last": None}
        return c

    def __getstate__(self):
        # the grid cache holds ctypes structures and the last output: not state to copy
        state = self.__dict__.copy()
        state.pop("_detloss_cache", None)
        return state

    def _grid(self, image_size, grid_sizes):
        cells = [c.detach().to("cpu", _F32).contiguous() for c in self.cell_anchors]
        key = (image_size, grid_sizes, tuple(c.numpy().tobytes() for c in cells))
        grids = self._cache()["grids"]
        if key not in grids:
            if len(grids) > 64:  # many image sizes (multi-scale training): keep it bounded
                grids.clear()
            levels = [{"base": c.numpy().reshape(-1, 4),
                       "stride": [image_size[0] // g[0], image_size[1] // g[1]]}
                      for c, g in zip(cells, grid_sizes)]
            try:
                grids[key] = ops.AnchorGrid({"convention": "torchvision", "offset": 0.0,
                                             "levels": levels}, None,
                                            [list(g) for g in grid_sizes])
            except (DetlossError, ZeroDivisionError):
                grids[key] = None  # e.g. a feature map larger than the image (stride 0)
        return grids[key]

    def _integral(self, image_size):
        """True when float64 anchors equal the float32 grid's, cast: integer-valued cell
        anchors (the rounded defaults) plus integer shifts, all below 2^22, add exactly in
        float32 as in float64."""
        lim = 2.0 ** 22 - max(image_size)
        return all(bool(torch.all(c == c.round())) and float(c.abs().max()) < lim
                   for c in self.cell_anchors if c.numel())

    def forward(self, image_list, feature_maps):
        grid_sizes = tuple(tuple(int(v) for v in f.shape[-2:]) for f in feature_maps)
        image_size = tuple(int(v) for v in image_list.tensors.shape[-2:])
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        self._check_levels(len(grid_sizes), len(grid_sizes))
        grid = None
        if device.type == "cpu" and all(g[0] > 0 and g[1] > 0 for g in grid_sizes) and (
                dtype == torch.float32 or (dtype == torch.float64 and self._integral(image_size))):
            grid = self._grid(image_size, grid_sizes)
        if grid is not None:
            self.set_cell_anchors(dtype, device)
            a = torch.from_numpy(grid.anchors()).to(dtype)
        else:
            strides = [[torch.empty((), dtype=torch.int64, device=device).fill_(
                image_size[0] // g[0]), torch.empty((), dtype=torch.int64, device=device).fill_(
                image_size[1] // g[1])] for g in grid_sizes]
            self.set_cell_anchors(dtype, device)
            a = torch.cat(self.grid_anchors(grid_sizes, strides))
        out = [a if i == 0 else a.clone() for i in range(len(image_list.image_sizes))]
        self._cache()["last"] = (out, grid)
        return out

    def grid_for(self, anchors):
        """The detloss.AnchorGrid of the last forward if anchors is the list it returned."""
        last = self.__dict__.get("_detloss_cache", {}).get("last")
        return last[1] if last is not None and last[0] is anchors else None


# ---------------------------------------------------------------------------- patching
_PATCHED = {}
_PREFIX = "_Patched_"


def _patched_class(dropin, base):
    """The subclass of base whose methods are dropin's, registered in this module under a
    name that encodes base's module and qualified name (so pickle finds it, and a fresh
    process rebuilds it on load: module __getattr__ below)."""
    key = (dropin.__name__, base)
    cls = _PATCHED.get(key)
    if cls is None:
        name = _PREFIX + dropin.__name__ + "_" + \
            ("%s:%s" % (base.__module__, base.__qualname__)).encode().hex()
        cls = type(name, (dropin, base), {"__module__": __name__, "__qualname__": name,
                                          "_detloss_base": base,
                                          "__doc__": "%s patched by detloss (%s)"
                                          % (base.__qualname__, dropin.__name__)})
        _PATCHED[key] = cls
        globals()[name] = cls
    return cls


def __getattr__(name):
    if name.startswith(_PREFIX):
        dname, _, hexname = name[len(_PREFIX):].rpartition("_")
        mod, _, qual = bytes.fromhex(hexname).decode().partition(":")
        base = importlib.import_module(mod)
        for part in qual.split("."):
            base = getattr(base, part)
        return _patched_class(_DROPINS[dname], base)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def is_patched(obj):
    """True when obj's class is one of detloss's patched classes."""
    return "_detloss_base" in vars(type(obj))


def _swap(obj, dropin):
    if is_patched(obj) or isinstance(obj, dropin):
        return False
    obj.__class__ = _patched_class(dropin, type(obj))
    return True


def _restore(obj):
    if not is_patched(obj):
        return False
    obj.__class__ = type(obj)._detloss_base
    for k in [k for k in vars(obj) if k.startswith("_detloss_")]:
        delattr(obj, k)
    return True


def _objects(model):
    """model, its submodules and the plain objects they hold (matchers, samplers, coders)."""
    seen, out = set(), []
    roots = list(model.modules()) if isinstance(model, nn.Module) else [model]
    for m in roots:
        for o in [m] + [v for v in vars(m).values() if hasattr(v, "__dict__")]:
            if id(o) not in seen and not isinstance(o, type):
                seen.add(id(o))
                out.append(o)
    return out


def _patch_all(model, tv_cls, dropin):
    """Swap every object of exactly type tv_cls (or its patched form) reachable in model."""
    found = [o for o in _objects(model)
             if type(o) is tv_cls or (is_patched(o) and type(o)._detloss_base is tv_cls)]
    for o in found:
        _swap(o, dropin)
    return found


def _tv(name):
    from torchvision.models.detection import _utils, anchor_utils  # noqa: F401
    return {"BoxCoder": _utils.BoxCoder, "Matcher": _utils.Matcher,
            "BalancedPositiveNegativeSampler": _utils.BalancedPositiveNegativeSampler,
            "AnchorGenerator": anchor_utils.AnchorGenerator}[name]


def _check_model(model, attrs, what):
    missing = [a for a in attrs if not hasattr(model, a)]
    if missing:
        raise DetlossTypeError(_lib.ERR_NULL if model is None else _lib.ERR_TYPE, "model",
                               "must be %s, got %s (no %s)" % (what, type(model).__name__,
                                                               ", ".join(missing)))


def patch_box_coder(model):
    """Swap detloss's BoxCoder into every torchvision BoxCoder of model (or model itself).
    Returns model; unpatch(model) reverts."""
    _patch_all(model, _tv("BoxCoder"), BoxCoder)
    return model


def patch_matcher(model):
    """Swap detloss's Matcher into every torchvision Matcher of model (the same matches;
    torchvision's own code calls it with the quality matrix, so the fused path is used by
    patch_rpn / patch_retinanet and by callers of match_boxes). Returns model."""
    _patch_all(model, _tv("Matcher"), Matcher)
    return model


def patch_sampler(model, generator="torch", seed=None):
    """Swap detloss's BalancedPositiveNegativeSampler into every torchvision one of model
    (RPN and ROI heads), in the given generator mode (see the class). Returns model."""
    _set_sampler_mode(object.__new__(BalancedPositiveNegativeSampler), generator, seed)
    for o in _patch_all(model, _tv("BalancedPositiveNegativeSampler"),
                        BalancedPositiveNegativeSampler):
        _set_sampler_mode(o, generator, seed)
    return model


def patch_anchor_generator(model):
    """Swap detloss's AnchorGenerator into every torchvision AnchorGenerator of model (the
    same anchors; the patched losses then match on its grid). Returns model."""
    _patch_all(model, _tv("AnchorGenerator"), AnchorGenerator)
    return model


def _grid_of(module, anchors):
    gen = getattr(module, "anchor_generator", None)
    return gen.grid_for(anchors) if isinstance(gen, AnchorGenerator) else None


class _RetinaNetLoss:
    """RetinaNet.compute_loss(targets, head_outputs, anchors) on detloss.torch.retina_loss,
    with the thresholds, regression loss type and box coder weights read from the model at
    each call, and the options given to patch_retinanet."""

    def compute_loss(self, targets, head_outputs, anchors):
        from .torch import retina_loss
        m = self.proposal_matcher
        kw = dict(fg_iou_thresh=m.high_threshold, bg_iou_thresh=m.low_threshold,
                  allow_low_quality=m.allow_low_quality_matches,
                  box_loss=getattr(getattr(self.head, "regression_head", None), "_loss_type",
                                   "l1"),
                  box_weights=tuple(self.box_coder.weights))
        kw.update(getattr(self, "_detloss_options", {}))
        lc, lb = retina_loss(head_outputs["cls_logits"], head_outputs["bbox_regression"],
                             anchors, targets, anchor_grid=_grid_of(self, anchors), **kw)
        return {"classification": lc, "bbox_regression": lb}


class _RPNLoss:
    """RegionProposalNetwork.forward with the training loss on detloss: torchvision's head,
    anchor generator, decoding and proposal filtering, then either
      sampler "torch": detloss's fused matching (on the anchor grid when the generator is
        detloss's), the model's fg_bg_sampler (torch.randperm, as torchvision), regression
        targets by detloss_box_encode and the losses by detloss.torch's smooth_l1_loss /
        binary_cross_entropy_with_logits: torchvision's losses to float rounding, and the
        same draws from torch's generator;
      sampler "detloss": detloss.torch.rpn_loss (matching, counter-based sampling and the
        losses in one C call; one torch.randint draw for the seed unless seed= is given)."""

    def forward(self, images, features, targets=None):
        from torchvision.models.detection.rpn import concat_box_prediction_layers
        feats = list(features.values())
        obj_levels, delta_levels = self.head(feats)
        anchors = self.anchor_generator(images, feats)
        per_level = [o[0].numel() for o in obj_levels]  # A * H * W per level (one image)
        objectness, deltas = concat_box_prediction_layers(obj_levels, delta_levels)
        proposals = self.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
        boxes, _scores = self.filter_proposals(proposals, objectness, images.image_sizes,
                                               per_level)
        losses = {}
        if self.training:
            if targets is None:
                raise ValueError("targets should not be None")
            opts = dict(getattr(self, "_detloss_options", {}))
            sampler = opts.pop("sampler", "torch")
            grid = _grid_of(self, anchors)
            if sampler == "torch":
                lo, lb = self._detloss_torch_sampled(objectness, deltas, anchors, targets, grid,
                                                     **opts)
            else:
                from .torch import rpn_loss
                m, s = self.proposal_matcher, self.fg_bg_sampler
                kw = dict(fg_iou_thresh=m.high_threshold, bg_iou_thresh=m.low_threshold,
                          allow_low_quality=m.allow_low_quality_matches,
                          batch_size_per_image=s.batch_size_per_image,
                          positive_fraction=s.positive_fraction,
                          box_weights=tuple(self.box_coder.weights))
                kw.update(opts)
                lo, lb = rpn_loss(objectness, deltas, anchors, targets,
                                  image_sizes=list(images.image_sizes), anchor_grid=grid, **kw)
            losses = {"loss_objectness": lo, "loss_rpn_box_reg": lb}
        return boxes, losses

    def _detloss_torch_sampled(self, objectness, deltas, anchors, targets, grid,
                               smooth_l1_beta=1.0 / 9, num_threads=None):
        from .torch import binary_cross_entropy_with_logits, smooth_l1_loss
        m = self.proposal_matcher
        fused = Matcher(m.high_threshold, m.low_threshold, m.allow_low_quality_matches)
        labels, matches = [], []
        for i, (a, t) in enumerate(zip(anchors, targets)):
            gt = t["boxes"]
            if gt.numel() == 0:  # torchvision: every anchor a negative
                mi = torch.full((a.shape[0],), -1, dtype=torch.int64)
            else:
                mi = fused.match_boxes(gt, a, anchor_grid=grid, num_threads=num_threads)
            lab = (mi >= 0).to(_F32)
            lab[mi == Matcher.BETWEEN_THRESHOLDS] = -1.0
            labels.append(lab.to(a.device))
            matches.append(mi)
        pos_masks, neg_masks = self.fg_bg_sampler(labels)
        pos = torch.where(torch.cat(pos_masks, dim=0))[0]
        neg = torch.where(torch.cat(neg_masks, dim=0))[0]
        sampled = torch.cat([pos, neg], dim=0)
        # regression targets of the sampled positives only (torchvision encodes all A)
        gts, ancs = [], []
        for pm, mi, a, t in zip(pos_masks, matches, anchors, targets):
            p = torch.where(pm)[0]
            gts.append(t["boxes"].detach()[mi[p]])
            ancs.append(a.detach()[p])
        coder = BoxCoder(tuple(self.box_coder.weights))
        reg_t = coder.encode_single(torch.cat(gts).to(_F32), torch.cat(ancs).to(_F32))
        box_loss = smooth_l1_loss(deltas[pos], reg_t, reduction="sum", beta=smooth_l1_beta,
                                  num_threads=num_threads) / sampled.numel()
        obj_loss = binary_cross_entropy_with_logits(objectness.flatten()[sampled],
                                                    torch.cat(labels)[sampled],
                                                    num_threads=num_threads)
        return obj_loss, box_loss


class _FCOSLoss:
    """FCOS.compute_loss(targets, head_outputs, anchors, num_anchors_per_level) on
    detloss.torch_fcos.torchvision_fcos_loss (torchvision's matcher and FCOSHead loss in
    one C call), with center_sampling_radius read from the model at each call and the
    options given to patch_fcos."""

    def compute_loss(self, targets, head_outputs, anchors, num_anchors_per_level):
        from .torch_fcos import torchvision_fcos_loss
        return torchvision_fcos_loss(targets, head_outputs, anchors, num_anchors_per_level,
                                     self.center_sampling_radius,
                                     **getattr(self, "_detloss_options", {}))


_DROPINS = {c.__name__: c for c in (BoxCoder, Matcher, BalancedPositiveNegativeSampler,
                                    AnchorGenerator, _RetinaNetLoss, _RPNLoss, _FCOSLoss)}
_RPN_SAMPLERS = ("torch", "detloss")


def patch_retinanet(model, *, anchor_generator=True, **options):
    """Make a torchvision RetinaNet compute its training loss with detloss:
    model.compute_loss(targets, head_outputs, anchors) runs detloss.torch.retina_loss (the
    matcher thresholds, head.regression_head._loss_type and the box coder weights read from
    the model at each call; options, e.g. num_threads, normalizer, passed to retina_loss).
    anchor_generator=True also patches the anchor generator (patch_anchor_generator), so
    that matching runs on its grid. Returns the model; unpatch(model) reverts. The patched
    model deep-copies, pickles and torch.saves as a model."""
    _check_model(model, ("proposal_matcher", "anchor_generator", "box_coder", "compute_loss",
                         "head"), "a torchvision RetinaNet")
    if anchor_generator:
        patch_anchor_generator(model.anchor_generator)
    _swap(model, _RetinaNetLoss)
    model._detloss_options = dict(options)
    return model


def patch_rpn(model, *, sampler="torch", anchor_generator=True, **options):
    """Make the RPN of a torchvision FasterRCNN (or a RegionProposalNetwork itself) compute
    its training loss with detloss (see _RPNLoss for what runs where).

    sampler="torch" (the default): the model's own fg_bg_sampler draws the anchors with
    torch.randperm exactly as stock torchvision, so a stock and a patched run from the same
    seed sample the same anchors and give the same losses to float rounding; options:
    num_threads, smooth_l1_beta (default 1/9, torchvision's). sampler="detloss":
    detloss.torch.rpn_loss's counter-based sampler (options are passed to rpn_loss, e.g.
    seed, convention). anchor_generator=True also patches the anchor generator (matching on
    its grid). Returns the model; unpatch(model) reverts."""
    rpn = getattr(model, "rpn", model)
    _check_model(rpn, ("proposal_matcher", "fg_bg_sampler", "box_coder", "anchor_generator",
                       "head", "filter_proposals"),
                 "a torchvision FasterRCNN or RegionProposalNetwork")
    if sampler not in _RPN_SAMPLERS:
        raise DetlossError(_lib.ERR_RANGE, "sampler", "must be 'torch' or 'detloss', got %r"
                           % (sampler,))
    if sampler == "torch":
        bad = sorted(set(options) - {"num_threads", "smooth_l1_beta"})
        if bad:
            raise DetlossTypeError(_lib.ERR_TYPE, bad[0], "is not an option of "
                                   "sampler='torch' (num_threads, smooth_l1_beta); the other "
                                   "settings are read from the model")
    if anchor_generator:
        patch_anchor_generator(rpn.anchor_generator)
    _swap(rpn, _RPNLoss)
    rpn._detloss_options = dict(options, sampler=sampler)
    return model


def patch_fcos(model, *, avg_num_pos=None, num_threads=0):
    """Make a torchvision FCOS compute its training loss with detloss:
    model.compute_loss(targets, head_outputs, anchors, num_anchors_per_level) runs
    torchvision's matcher (centre sampling with model.center_sampling_radius, the 4s / 8s
    ranges) and FCOSHead.compute_loss as one C call (detloss.torch_fcos.
    torchvision_fcos_loss: the same loss dict, values and gradients). avg_num_pos: a
    caller-supplied normalizer (e.g. the foreground count all-reduced over the ranks)
    instead of this batch's count; None = torchvision's. Returns the model; unpatch(model)
    reverts. The patched model deep-copies, pickles and torch.saves as a model."""
    _check_model(model, ("center_sampling_radius", "compute_loss", "head", "anchor_generator"),
                 "a torchvision FCOS")
    _swap(model, _FCOSLoss)
    model._detloss_options = {"avg_num_pos": avg_num_pos, "num_threads": num_threads}
    return model


def unpatch(model):
    """Undo every patch_* on model: each patched object gets its torchvision class back
    and loses the _detloss_* attributes. Returns model."""
    for o in _objects(model):
        _restore(o)
    return model

