"""detloss.torch - PyTorch autograd functions backed by detloss (CPU tensors).

Drop-in replacements (same names, arguments, defaults and results as torchvision):

    from detloss.torch import sigmoid_focal_loss          # torchvision.ops.sigmoid_focal_loss
    from detloss.torch import generalized_box_iou_loss    # ... and distance_/complete_box_iou_loss
    from detloss.torch import box_iou, generalized_box_iou, distance_box_iou, complete_box_iou

the other losses with torch.nn.functional's names (binary_cross_entropy_with_logits,
binary_cross_entropy, l1_loss, mse_loss, smooth_l1_loss, huber_loss, cross_entropy
(class indices, no per-class weight), cosine_embedding_loss, triplet_margin_loss;
plus hinge_loss, softmax_focal_loss, contrastive_loss), and the detector losses:

    rpn_loss(objectness, pred_bbox_deltas, anchors, targets, ...)     -> (loss_objectness, loss_rpn_box_reg)
    retina_loss(cls_logits, bbox_regression, anchors, targets, ...)   -> (loss_cls, loss_box_reg)
    patch_retinanet(model)   # model.compute_loss(targets, head_outputs, anchors) runs on detloss
    patch_rpn(model)         # a FasterRCNN's (or an RPN's) forward computes its loss on detloss

How it works: the forward pass calls the C library once, which returns the
loss and, in the same pass, its gradient (closed forms, docs/math); the
backward pass multiplies that stored gradient by grad_output. No graph of
intermediate tensors is built, so memory is one gradient buffer per input.
The buffer is handed to autograd at the first backward (no copy), so a second
backward through the same loss (retain_graph=True) raises a RuntimeError:
recompute the loss instead.

Which inputs are differentiated: every input torch / torchvision differentiates.
  * the predictions (inputs, input, boxes1, x1, ...): by the C library;
  * targets of the soft-target losses (sigmoid_focal_loss,
    binary_cross_entropy_with_logits, binary_cross_entropy), weight and
    pos_weight: closed forms evaluated in float64 in the backward, only when
    they require grad (docs/math/losses.md eq. 15-18); the regression losses' target: minus the
    input's gradient; boxes2 of the IoU losses: by the C library.
  * not differentiated, refused with DetlossError "unsupported" naming the
    argument when it requires grad (detach it, or use torch's function):
    hinge_loss's target (+-1 labels), contrastive_loss's target,
    cross_entropy / softmax_focal_loss's row_weight, the IoU matrices and
    box_area (matching quantities: torchvision's are differentiable, detloss's
    are not), and the anchors and gt boxes of rpn_loss / retina_loss.
  * second-order gradients are not supported: a backward with
    create_graph=True (torch.autograd.grad(..., create_graph=True),
    loss.backward(create_graph=True)) raises a RuntimeError saying so, instead
    of returning a gradient without a graph. Use the torch / torchvision
    function where higher derivatives are needed (gradient penalties,
    Hessian-vector products).

Tensors must be on the CPU (DetlossError naming the argument otherwise); None
or a non-tensor for a tensor argument raises DetlossTypeError (a TypeError)
naming it. The arithmetic is float32: float64 inputs are rounded to float32,
float16 / bfloat16 inputs widened to it (a copy). Results follow torchvision's dtypes
(docs/torch.md): the box ops and IoU losses return float64 for float64 boxes and
float32 for all others (half and integer boxes too, as torchvision's _upcast; integer
boxes give box_area integer areas); the other losses return the input's dtype;
gradients come back in each input's dtype. Integer-valued arguments (labels, class
indices, iscrowd flags, seeds, counts) follow detloss.ops's rules: checked for
type and range first. Non-contiguous inputs are made contiguous (a copy).
num_threads=None (the default) uses torch.get_num_threads(); the results are
bitwise the same for any count.

TorchScript (docs/torch.md): the drop-ins for torchvision's functions (box_area, the
four IoU matrices, sigmoid_focal_loss, the IoU losses and iou_loss) are scriptable: in a
scripted function or module they call torch.ops.detloss.* operators, registered when this
module is imported, with the eager values bit for bit and first-order gradients of the
losses (CPU tensors). A saved scripted module needs detloss.torch imported before
torch.jit.load. The other functions are eager-mode only: torch.jit.script of one (or of
code calling one) raises a RuntimeError saying so and what to use instead.
"""
import ctypes
import functools

from typing import Optional

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import _lib, ops
from ._lib import DetlossError, DetlossTypeError

__all__ = [
    "sigmoid_focal_loss", "generalized_box_iou_loss", "distance_box_iou_loss",
    "complete_box_iou_loss", "iou_loss", "box_iou", "generalized_box_iou", "distance_box_iou",
    "complete_box_iou", "box_area", "rpn_loss", "retina_loss", "patch_retinanet", "patch_rpn",
    "unpatch", "binary_cross_entropy_with_logits", "binary_cross_entropy", "l1_loss", "mse_loss",
    "smooth_l1_loss", "huber_loss", "hinge_loss", "cross_entropy", "softmax_focal_loss",
    "cosine_embedding_loss", "triplet_margin_loss", "contrastive_loss", "quality_focal_loss",
    "distribution_focal_loss", "varifocal_loss",
]

_F32 = torch.float32


def _nthreads(n):
    return torch.get_num_threads() if n is None else _lib.threads(n)


def _first_order(backward):
    """once_differentiable, plus a clear error for create_graph=True: autograd runs a
    backward with grad mode on exactly when it is asked to build a graph of the
    gradient, which detloss's stored closed-form gradients cannot provide."""
    inner = once_differentiable(backward)

    @functools.wraps(backward)
    def wrapper(ctx, *grad_outputs):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "detloss.torch: second-order gradients (create_graph=True) are not supported: "
                "the backward returns the closed-form gradient detloss computed in the forward, "
                "which is not itself differentiable; use the torch / torchvision function "
                "where higher derivatives are needed")
        return inner(ctx, *grad_outputs)
    return wrapper


def _no_grad_wanted(name, t, why):
    """DetlossError naming t when autograd would need a gradient detloss does not give."""
    if isinstance(t, torch.Tensor) and t.requires_grad and torch.is_grad_enabled():
        raise DetlossError(_lib.ERR_UNSUPPORTED, name, "requires grad, but %s; pass "
                           "%s.detach() (or compute under torch.no_grad())" % (why, name))


def _tensor(name, t, last=None, ndim=None, ints=False):
    """t as a contiguous float32 CPU tensor (no copy when it already is one). ints: integer
    tensors (not bool) are accepted too, converted to float32 (boxes, as torchvision's
    _upcast accepts them)."""
    if t is None:
        raise DetlossTypeError(_lib.ERR_NULL, name, "is required (a torch.Tensor), got None")
    if not isinstance(t, torch.Tensor):
        raise DetlossTypeError(_lib.ERR_TYPE, name, "must be a torch.Tensor, got %s"
                               % type(t).__name__)
    if t.device.type != "cpu":
        raise DetlossError(_lib.ERR_UNSUPPORTED, name, "tensor is on device %s; detloss computes "
                           "on the CPU (move it with .cpu())" % t.device)
    if t.layout != torch.strided:
        raise DetlossTypeError(_lib.ERR_TYPE, name, "must be a dense (strided) tensor, got %s"
                               % t.layout)
    if not t.dtype.is_floating_point and not (ints and _is_int(t)):
        raise DetlossTypeError(_lib.ERR_TYPE, name, "must be a %s tensor, got %s"
                               % ("floating-point or integer" if ints else "floating-point",
                                  t.dtype))
    if ndim is not None and t.dim() != ndim:
        raise DetlossError(_lib.ERR_SHAPE, name, "expected %d dimensions, got shape %s"
                           % (ndim, tuple(t.shape)))
    if last is not None and (t.dim() == 0 or t.shape[-1] != last):
        raise DetlossError(_lib.ERR_SHAPE, name, "expected shape [..., %d], got %s"
                           % (last, tuple(t.shape)))
    t = t.detach()
    if t.dtype != _F32:
        t = t.to(_F32)
    return t.contiguous()


def _is_int(t):
    return not t.dtype.is_floating_point and not t.is_complex() and t.dtype != torch.bool


def _box_dtype(*ts):
    """The dtype of torchvision's box ops and IoU losses for these inputs: float64 stays
    float64, everything else (float32, float16, bfloat16, integers) gives float32, as
    torchvision's _upcast / _upcast_non_float compute half and integer boxes in float32."""
    return torch.float64 if ts[0].dtype == torch.float64 else _F32


def _int_tensor(name, t, n, lo=None, hi=None):
    """An integer argument (class indices, labels, flags) as a flat int64 tensor: an
    integer or bool tensor, or anything detloss.ops takes as an integer array (lists,
    numpy arrays: checked as there); values checked against [lo, hi]."""
    if t is None:
        raise DetlossTypeError(_lib.ERR_NULL, name, "is required (an integer tensor), got None")
    if not isinstance(t, torch.Tensor):
        t = torch.from_numpy(_lib.array(name, t, np.int64, lo=lo, hi=hi).reshape(-1))
    if t.device.type != "cpu":
        raise DetlossError(_lib.ERR_UNSUPPORTED, name, "tensor is on device %s; detloss computes "
                           "on the CPU" % t.device)
    if t.dtype.is_floating_point or t.is_complex():
        raise DetlossTypeError(_lib.ERR_TYPE, name, "must be an integer tensor, got %s" % t.dtype)
    t = t.detach().reshape(-1).to(torch.int64).contiguous()
    if t.numel() and ((lo is not None and int(t.min()) < lo) or
                      (hi is not None and int(t.max()) > hi)):
        bad = int(t.min()) if lo is not None and int(t.min()) < lo else int(t.max())
        raise DetlossError(_lib.ERR_RANGE, name, "must hold integers in [%s, %s], got %d"
                           % (lo, hi, bad))
    if t.numel() != n:
        raise DetlossError(_lib.ERR_SHAPE, name, "has %d values for %d boxes" % (t.numel(), n))
    return t


def _p(t):
    return None if t is None else t.data_ptr()


def _take(ctx, name):
    g = getattr(ctx, name, None)
    if g is None:
        raise RuntimeError("detloss.torch: the gradient of this loss was already handed to "
                           "autograd (a second backward through the same loss, e.g. with "
                           "retain_graph=True, is not supported); recompute the loss")
    setattr(ctx, name, None)
    return g


def _scale(g, go, dtype):
    """g * grad_output, in place on detloss's buffer (which autograd then owns)."""
    if go.dim() == 0 or go.numel() == 1:
        s = float(go)
        if s != 1.0:
            g.mul_(s)
    else:
        g.mul_(go.to(g.dtype))
    return g if dtype == _F32 else g.to(dtype)


def _f64(name, t, like=None):
    """The float32 values detloss computed with, in float64 (for the closed forms of the
    gradients evaluated in Python); broadcast to like's shape if given."""
    v = _tensor(name, t).double()
    return v if like is None else v.expand(like.shape)


def _chain(g_el, go, red, n):
    """d(reduced loss)/d(element) * grad_output: g_el [shape of the loss elements]."""
    g = g_el * go.double()
    return g / n if red == 2 and n else g


# element-wise: sigmoid focal loss
def _focal_target_grad(x, y, alpha, gamma):
    """d l / d y of torchvision's sigmoid focal loss (docs/math/losses.md eq. 17), in float64:
        l = a_t ce m^g,  ce = softplus(x) - x y,  m = 1 - p_t = y (1 - p) + (1 - y) p,
        a_t = a y + (1 - a)(1 - y) (a >= 0; else a_t = 1),  p = sigmoid(x);
        d ce/dy = -x,  dm/dy = 1 - 2p,  d a_t/dy = 2a - 1:
        dl/dy = a_t (-x m^g + g m^(g-1) (1 - 2p) ce) + (2a - 1) ce m^g  (a >= 0).
    The middle term is 0 where m = 0 (its limit: ce ~ m there) and for g = 0."""
    p, q = torch.sigmoid(x), torch.sigmoid(-x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    m = y * q + (1 - y) * p
    mod = m.pow(gamma)
    d = -x * mod
    if gamma != 0:
        safe = torch.where(m > 0, m, torch.ones_like(m))
        d = d + torch.where(m > 0, gamma * safe.pow(gamma - 1) * (1 - 2 * p) * ce,
                            torch.zeros_like(m))
    if alpha >= 0:
        at = alpha * y + (1 - alpha) * (1 - y)
        d = at * d + (2 * alpha - 1) * ce * mod
    return d


class SigmoidFocalLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, targets, alpha, gamma, reduction, num_threads):
        x = _tensor("inputs", inputs)
        y = _tensor("targets", targets)
        if y.shape != x.shape:
            raise DetlossError(_lib.ERR_SHAPE, "targets", "shape %s differs from inputs %s"
                               % (tuple(y.shape), tuple(x.shape)))
        red = _lib.reduction(reduction)
        a, g = _lib.scalar("alpha", alpha), _lib.scalar("gamma", gamma)
        loss = torch.empty(x.shape if red == 0 else (), dtype=_F32)
        grad = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        _lib.call("detloss_sigmoid_focal_loss", _p(x), _p(y), x.numel(), a, g, red, _p(loss),
                  _p(grad), _nthreads(num_threads))
        ctx.grad, ctx.dtype = grad, inputs.dtype
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(inputs, targets)
            ctx.params = (a, g, red, x.numel())
        return loss if inputs.dtype == _F32 else loss.to(inputs.dtype)

    @staticmethod
    @_first_order
    def backward(ctx, go):
        g = _scale(_take(ctx, "grad"), go, ctx.dtype) if ctx.needs_input_grad[0] else None
        gy = None
        if ctx.needs_input_grad[1]:
            inputs, targets = ctx.saved_tensors
            a, gamma, red, n = ctx.params
            d = _focal_target_grad(_f64("inputs", inputs), _f64("targets", targets), a, gamma)
            gy = _chain(d, go, red, n).to(targets.dtype)
        return g, gy, None, None, None, None


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none", num_threads: Optional[int] = None) -> Tensor:
    """torchvision.ops.sigmoid_focal_loss on detloss (value and gradients w.r.t. inputs
    and, when they require grad, targets: soft targets as in distillation).

    Unlike autograd, the gradient w.r.t. inputs is finite for every gamma >= 0 at
    saturated logits. targets must have the shape of inputs (no broadcasting).
    Scriptable (torch.jit.script): see "TorchScript" at the end of this module."""
    if not torch.jit.is_scripting():
        return SigmoidFocalLossFunction.apply(inputs, targets, alpha, gamma, reduction,
                                              num_threads)
    need_x = inputs.requires_grad and torch.is_grad_enabled()
    need_y = targets.requires_grad and torch.is_grad_enabled()
    loss, gx, gy, err = torch.ops.detloss.sigmoid_focal_loss(
        inputs, targets, alpha, gamma, reduction, num_threads, need_x, need_y)
    _script_raise(err)
    return _attach(_attach(loss, inputs, gx, need_x, False), targets, gy, need_y, False)


class BoxLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, boxes1, boxes2, kind, reduction, eps, num_threads):
        b1 = _tensor("boxes1", boxes1, last=4, ints=True)
        b2 = _tensor("boxes2", boxes2, last=4, ints=True)
        if b2.shape != b1.shape:
            raise DetlossError(_lib.ERR_SHAPE, "boxes2", "shape %s differs from boxes1 %s"
                               % (tuple(b2.shape), tuple(b1.shape)))
        red = _lib.reduction(reduction)
        n = b1.numel() // 4
        opt = ops.loss_options(kind, reduction, _nthreads(num_threads), eps=eps)
        loss = torch.empty(b1.shape[:-1] if red == 0 else (), dtype=_F32)
        g1 = torch.empty_like(b1) if ctx.needs_input_grad[0] else None
        g2 = torch.empty_like(b2) if ctx.needs_input_grad[1] else None
        _lib.call("detloss_loss_boxes", ops.LOSS_KINDS[kind], _p(b1), _p(b2), None, n, _p(loss),
                  _p(g1), _p(g2), ctypes.byref(opt))
        ctx.g1, ctx.g2, ctx.dt1, ctx.dt2 = g1, g2, boxes1.dtype, boxes2.dtype
        out = _box_dtype(boxes1, boxes2)
        return loss if out == _F32 else loss.to(out)

    @staticmethod
    @_first_order
    def backward(ctx, go):
        if go.dim() > 0:
            go = go.unsqueeze(-1)
        g1 = _scale(_take(ctx, "g1"), go, ctx.dt1) if ctx.needs_input_grad[0] else None
        g2 = _scale(_take(ctx, "g2"), go, ctx.dt2) if ctx.needs_input_grad[1] else None
        return g1, g2, None, None, None, None


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                             eps: float = 1e-7, num_threads: Optional[int] = None) -> Tensor:
    """torchvision.ops.generalized_box_iou_loss on detloss (gradients w.r.t. both boxes)."""
    if not torch.jit.is_scripting():
        return BoxLossFunction.apply(boxes1, boxes2, "giou_loss", reduction, eps, num_threads)
    need1 = boxes1.requires_grad and torch.is_grad_enabled()
    need2 = boxes2.requires_grad and torch.is_grad_enabled()
    loss, g1, g2, err = torch.ops.detloss.generalized_box_iou_loss(
        boxes1, boxes2, reduction, eps, num_threads, need1, need2)
    _script_raise(err)
    return _attach(_attach(loss, boxes1, g1, need1, True), boxes2, g2, need2, True)


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                          eps: float = 1e-7, num_threads: Optional[int] = None) -> Tensor:
    """torchvision.ops.distance_box_iou_loss on detloss."""
    if not torch.jit.is_scripting():
        return BoxLossFunction.apply(boxes1, boxes2, "diou_loss", reduction, eps, num_threads)
    need1 = boxes1.requires_grad and torch.is_grad_enabled()
    need2 = boxes2.requires_grad and torch.is_grad_enabled()
    loss, g1, g2, err = torch.ops.detloss.distance_box_iou_loss(
        boxes1, boxes2, reduction, eps, num_threads, need1, need2)
    _script_raise(err)
    return _attach(_attach(loss, boxes1, g1, need1, True), boxes2, g2, need2, True)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                          eps: float = 1e-7, num_threads: Optional[int] = None) -> Tensor:
    """torchvision.ops.complete_box_iou_loss on detloss (the trade-off alpha is a
    constant for the gradient, as in torchvision)."""
    if not torch.jit.is_scripting():
        return BoxLossFunction.apply(boxes1, boxes2, "ciou_loss", reduction, eps, num_threads)
    need1 = boxes1.requires_grad and torch.is_grad_enabled()
    need2 = boxes2.requires_grad and torch.is_grad_enabled()
    loss, g1, g2, err = torch.ops.detloss.complete_box_iou_loss(
        boxes1, boxes2, reduction, eps, num_threads, need1, need2)
    _script_raise(err)
    return _attach(_attach(loss, boxes1, g1, need1, True), boxes2, g2, need2, True)


def iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
             eps: float = 1e-7, num_threads: Optional[int] = None) -> Tensor:
    """1 - I / (U + eps) of matched pairs."""
    if not torch.jit.is_scripting():
        return BoxLossFunction.apply(boxes1, boxes2, "iou_loss", reduction, eps, num_threads)
    need1 = boxes1.requires_grad and torch.is_grad_enabled()
    need2 = boxes2.requires_grad and torch.is_grad_enabled()
    loss, g1, g2, err = torch.ops.detloss.iou_loss(
        boxes1, boxes2, reduction, eps, num_threads, need1, need2)
    _script_raise(err)
    return _attach(_attach(loss, boxes1, g1, need1, True), boxes2, g2, need2, True)


# the other losses, with torch.nn.functional's names and defaults
_SYMMETRIC = {"l1", "mse", "smooth_l1", "huber"}  # functions of d = input - target


class ElementwiseLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, weight, pos_weight, kind, reduction, params, num_threads):
        x = _tensor("input", input)
        y = _tensor("target", target)
        if y.shape != x.shape:
            raise DetlossError(_lib.ERR_SHAPE, "target", "shape %s differs from input %s"
                               % (tuple(y.shape), tuple(x.shape)))
        w = None
        if weight is not None:
            w = _tensor("weight", weight)
            try:
                w = w.expand(x.shape).contiguous()
            except RuntimeError:
                raise DetlossError(_lib.ERR_SHAPE, "weight", "shape %s does not broadcast to %s"
                                   % (tuple(weight.shape), tuple(x.shape)))
        keep = dict(params)
        if pos_weight is not None:
            keep["pos_weight"] = _tensor("pos_weight", pos_weight).reshape(-1).numpy()
        opt = ops.loss_options(kind, reduction, _nthreads(num_threads), **keep)
        red = _lib.reduction(reduction)
        loss = torch.empty(x.shape if red == 0 else (), dtype=_F32)
        need = ctx.needs_input_grad[0] or (ctx.needs_input_grad[1] and kind in _SYMMETRIC)
        grad = torch.empty_like(x) if need else None
        _lib.call("detloss_loss_elementwise", ops.LOSS_KINDS[kind], _p(x), _p(y), _p(w),
                  x.numel(), _p(loss), _p(grad), ctypes.byref(opt))
        ctx.grad, ctx.dt, ctx.dty, ctx.kind = grad, input.dtype, target.dtype, kind
        if any(ctx.needs_input_grad[2:4]) or (ctx.needs_input_grad[1] and kind not in _SYMMETRIC):
            ctx.save_for_backward(input, target, weight, pos_weight)
            ctx.params = (red, x.numel(), keep, opt.num_threads)
        return loss if input.dtype == _F32 else loss.to(input.dtype)

    @staticmethod
    @_first_order
    def backward(ctx, go):
        gx = gy = gw = gpw = None
        need_x, need_y, need_w, need_pw = ctx.needs_input_grad[:4]
        want_target = need_y and ctx.kind in _SYMMETRIC
        if need_x or want_target:
            g = _scale(_take(ctx, "grad"), go, _F32)
            if want_target:  # d loss / d target = - d loss / d input for functions of x - y
                gy = (-g).to(ctx.dty)
            if need_x:
                gx = g if ctx.dt == _F32 else g.to(ctx.dt)
        if need_w or need_pw or (need_y and not want_target):
            gy2, gw, gpw = _elementwise_extra_grads(ctx, go, need_y and not want_target, need_w,
                                                    need_pw)
            gy = gy if gy2 is None else gy2
        return gx, gy, gw, gpw, None, None, None, None


def _elementwise_extra_grads(ctx, go, need_y, need_w, need_pw):
    """Gradients w.r.t. the target of the BCE losses, weight and pos_weight, in float64
    (docs/math/losses.md eq. 15-18): with w the weight and pw the pos_weight (1 if absent),
      bce_with_logits: l = w ((1 - y) x + (1 + (pw - 1) y) softplus(-x))
          dl/dy = w ((pw - 1) softplus(-x) - x),   dl/dpw = w y softplus(-x)
      bce: l = -w (y max(ln x, -100) + (1 - y) max(ln(1 - x), -100))
          dl/dy = w (max(ln(1 - x), -100) - max(ln x, -100))
      any element-wise loss: dl/dw = the unweighted loss (from the library)."""
    input, target, weight, pos_weight = ctx.saved_tensors
    red, n, params, nthreads = ctx.params
    kind = ctx.kind
    x = _f64("input", input)
    w = None if weight is None else _f64("weight", weight, x)
    gy = gw = gpw = None
    pw = None
    if pos_weight is not None:
        pwf = _f64("pos_weight", pos_weight).reshape(-1)
        pw = pwf.expand(x.shape) if pwf.numel() > 1 else pwf.reshape(()).expand(x.shape)
    if need_y or need_pw:
        y = _f64("target", target)
        if kind == "bce_with_logits":
            sp = torch.nn.functional.softplus(-x)
            if need_y:
                d = -x if pw is None else (pw - 1) * sp - x
                d = d if w is None else w * d
                gy = _chain(d, go, red, n).to(target.dtype)
            if need_pw:
                d = y * sp if w is None else w * y * sp
                gpw = _chain(d, go, red, n).sum_to_size(pos_weight.shape).to(pos_weight.dtype)
        elif need_y:  # bce on probabilities
            d = torch.log1p(-x).clamp(min=-100) - torch.log(x).clamp(min=-100)
            d = d if w is None else w * d
            gy = _chain(d, go, red, n).to(target.dtype)
    if need_w:
        xf, yf = _tensor("input", input), _tensor("target", target)
        opt = ops.loss_options(kind, "none", nthreads, **params)
        unweighted = torch.empty_like(xf)
        _lib.call("detloss_loss_elementwise", ops.LOSS_KINDS[kind], _p(xf), _p(yf), None,
                  xf.numel(), _p(unweighted), None, ctypes.byref(opt))
        gw = _chain(unweighted.double(), go, red, n).sum_to_size(weight.shape).to(weight.dtype)
    return gy, gw, gpw


def _elementwise(kind, input, target, weight, reduction, num_threads, pos_weight=None,
                 **params):
    return ElementwiseLossFunction.apply(input, target, weight, pos_weight, kind, reduction,
                                         params, num_threads)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None, *, num_threads=None):
    """torch.nn.functional.binary_cross_entropy_with_logits (weight broadcast to input;
    pos_weight broadcast over the last dimension). Differentiable w.r.t. input, target,
    weight and pos_weight, as torch's."""
    return _elementwise("bce_with_logits", input, target, weight, reduction, num_threads,
                        pos_weight=pos_weight)


def binary_cross_entropy(input, target, weight=None, reduction="mean", *, num_threads=None):
    """torch.nn.functional.binary_cross_entropy (log clamped at -100). Differentiable
    w.r.t. input, target and weight, as torch's."""
    return _elementwise("bce", input, target, weight, reduction, num_threads)


def l1_loss(input, target, reduction="mean", *, weight=None, num_threads=None):
    return _elementwise("l1", input, target, weight, reduction, num_threads)


def mse_loss(input, target, reduction="mean", *, weight=None, num_threads=None):
    return _elementwise("mse", input, target, weight, reduction, num_threads)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0, *, weight=None, num_threads=None):
    return _elementwise("smooth_l1", input, target, weight, reduction, num_threads, beta=beta)


def huber_loss(input, target, reduction="mean", delta=1.0, *, weight=None, num_threads=None):
    return _elementwise("huber", input, target, weight, reduction, num_threads, delta=delta)


def hinge_loss(input, target, margin=1.0, reduction="mean", *, weight=None, num_threads=None):
    """max(0, margin - target * input), target +-1 (labels: a target that requires grad
    raises DetlossError "unsupported")."""
    _no_grad_wanted("target", target, "hinge_loss's targets are +-1 labels, not "
                    "differentiated")
    return _elementwise("hinge", input, target, weight, reduction, num_threads, margin=margin)


class ClassLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, weight, kind, reduction, params, num_threads):
        x = _tensor("input", input, ndim=2)
        n, c = x.shape
        t = _int_tensor("target", target, n)
        w = None if weight is None else _tensor("row_weight", weight).reshape(-1)
        if w is not None and w.numel() != n:
            raise DetlossError(_lib.ERR_SHAPE, "row_weight", "has %d values for %d rows"
                               % (w.numel(), n))
        opt = ops.loss_options(kind, reduction, _nthreads(num_threads), **params)
        red = _lib.reduction(reduction)
        loss = torch.empty((n,) if red == 0 else (), dtype=_F32)
        grad = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        _lib.call("detloss_loss_classes", ops.LOSS_KINDS[kind], _p(x), _p(t), _p(w), n, c,
                  _p(loss), _p(grad), ctypes.byref(opt))
        ctx.grad, ctx.dt = grad, input.dtype
        return loss if input.dtype == _F32 else loss.to(input.dtype)

    @staticmethod
    @_first_order
    def backward(ctx, go):
        g = None
        if ctx.needs_input_grad[0]:
            g = _scale(_take(ctx, "grad"), go.unsqueeze(-1) if go.dim() else go, ctx.dt)
        return g, None, None, None, None, None, None


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, *, row_weight=None, num_threads=None):
    """torch.nn.functional.cross_entropy with class-index targets, input [N, C].
    torch's per-class weight is not supported (its mean divides by the weight sum);
    row_weight [N] multiplies each row's loss (mean still divides by the row count)."""
    if weight is not None:
        raise DetlossError(_lib.ERR_UNSUPPORTED, "weight", "per-class weights are not "
                           "supported; use row_weight (weight[target]) with reduction 'sum'")
    _no_grad_wanted("row_weight", row_weight, "detloss does not differentiate the row weights")
    return ClassLossFunction.apply(input, target, row_weight, "cross_entropy", reduction,
                                   {"ignore_index": ignore_index,
                                    "label_smoothing": label_smoothing}, num_threads)


def softmax_focal_loss(input, target, alpha=1.0, gamma=2.0, reduction="mean",
                       ignore_index=-100, *, row_weight=None, num_threads=None):
    """Per row -alpha (1 - p_t)^gamma log p_t, p_t the softmax probability of the target."""
    _no_grad_wanted("row_weight", row_weight, "detloss does not differentiate the row weights")
    return ClassLossFunction.apply(input, target, row_weight, "softmax_focal", reduction,
                                   {"alpha": alpha, "gamma": gamma,
                                    "ignore_index": ignore_index}, num_threads)


class QualityLossFunction(torch.autograd.Function):
    """quality_focal / distribution_focal (one loss per row) and varifocal (per element):
    the gradient w.r.t. input only (the references' targets are constants)."""
    @staticmethod
    def forward(ctx, input, target, weight, kind, reduction, params, num_threads):
        form = ops.LOSSES[kind].form
        x = _tensor("input", input, ndim=2)
        n, c = x.shape
        y = _tensor("target", target)
        want = (n,) if form == "distribution" else (n, c)
        if tuple(y.shape) != want:
            raise DetlossError(_lib.ERR_SHAPE, "target", "shape %s, expected %s"
                               % (tuple(y.shape), want))
        lshape = (n, c) if form == "elementwise" else (n,)
        w = None if weight is None else _tensor("weight", weight)
        if w is not None and tuple(w.shape) != lshape:
            raise DetlossError(_lib.ERR_SHAPE, "weight", "shape %s, expected %s"
                               % (tuple(w.shape), lshape))
        opt = ops.loss_options(kind, reduction, _nthreads(num_threads), **params)
        red = _lib.reduction(reduction)
        loss = torch.empty(lshape if red == 0 else (), dtype=_F32)
        grad = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        if form == "elementwise":
            _lib.call("detloss_loss_elementwise", ops.LOSS_KINDS[kind], _p(x), _p(y), _p(w),
                      n * c, _p(loss), _p(grad), ctypes.byref(opt))
        else:
            _lib.call("detloss_loss_rows", ops.LOSS_KINDS[kind], _p(x), _p(y), _p(w), n, c,
                      _p(loss), _p(grad), ctypes.byref(opt))
        ctx.grad, ctx.dt, ctx.rows = grad, input.dtype, form != "elementwise"
        return loss if input.dtype == _F32 else loss.to(input.dtype)

    @staticmethod
    @_first_order
    def backward(ctx, go):
        g = None
        if ctx.needs_input_grad[0]:
            g = _scale(_take(ctx, "grad"), go.unsqueeze(-1) if ctx.rows and go.dim() else go,
                       ctx.dt)
        return g, None, None, None, None, None, None


def _quality(kind, input, target, weight, reduction, params, num_threads):
    _no_grad_wanted("target", target, "the references hold the targets constant")
    _no_grad_wanted("weight", weight, "detloss does not differentiate the weights")
    return QualityLossFunction.apply(input, target, weight, kind, reduction, params,
                                     num_threads)


def quality_focal_loss(input, target, beta=2.0, activated=False, weight=None,
                       reduction="mean", *, num_threads=None):
    """mmdetection quality_focal_loss_tensor_target: per row sum_c BCE(x, y) |y - s|^beta,
    input [N, C] logits (probabilities when activated), target [N, C] soft scores,
    weight [N]; gradient of the whole expression (0 at the kink y = s)."""
    return _quality("quality_focal", input, target, weight, reduction,
                    {"beta": beta, "activated": bool(activated)}, num_threads)


def distribution_focal_loss(input, target, weight=None, reduction="mean", *,
                            num_threads=None):
    """mmdetection distribution_focal_loss: input [N, n+1] logits, target [N] in [0, n]
    (GFL: 17 bins, targets clamped to 15.9; ultralytics: 16 bins, clamped to 14.99)."""
    return _quality("distribution_focal", input, target, weight, reduction, {}, num_threads)


def varifocal_loss(input, target, alpha=0.75, gamma=2.0, iou_weighted=True, weight=None,
                   reduction="mean", *, detach_weight=False, num_threads=None):
    """mmdetection varifocal_loss: input [N, C] logits, target [N, C] IoU-aware scores;
    detach_weight=True holds the focal weight constant (RT-DETR)."""
    return _quality("varifocal", input, target, weight, reduction,
                    {"alpha": alpha, "gamma": gamma, "iou_weighted": bool(iou_weighted),
                     "detach_weight": bool(detach_weight)}, num_threads)


_EMBED_NAMES = {"triplet_margin": ("anchor", "positive", "negative"),
                "cosine_embedding": ("input1", "input2", None),
                "contrastive": ("x1", "x2", None)}


class EmbeddingLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x1, x2, x3, target, kind, reduction, params, num_threads):
        n1, n2, n3 = _EMBED_NAMES[kind]
        a = _tensor(n1, x1, ndim=2)
        n, d = a.shape
        b = _tensor(n2, x2, ndim=2)
        if b.shape != a.shape:
            raise DetlossError(_lib.ERR_SHAPE, n2, "shape %s differs from %s %s"
                               % (tuple(b.shape), n1, tuple(a.shape)))
        c = None
        if kind == "triplet_margin":
            c = _tensor(n3, x3, ndim=2)
            if c.shape != a.shape:
                raise DetlossError(_lib.ERR_SHAPE, n3, "shape %s differs from %s %s"
                                   % (tuple(c.shape), n1, tuple(a.shape)))
        t = None
        if target is not None:
            t = _tensor("target", target if target.dtype.is_floating_point else target.float())
            t = t.reshape(-1)
            if t.numel() != n:
                raise DetlossError(_lib.ERR_SHAPE, "target", "has %d values for %d pairs"
                                   % (t.numel(), n))
        opt = ops.loss_options(kind, reduction, _nthreads(num_threads), **params)
        red = _lib.reduction(reduction)
        loss = torch.empty((n,) if red == 0 else (), dtype=_F32)
        gs = [torch.empty_like(a) if ctx.needs_input_grad[k] and (k < 2 or c is not None)
              else None for k in range(3)]
        _lib.call("detloss_loss_embedding", ops.LOSS_KINDS[kind], _p(a), _p(b), _p(c), _p(t),
                  None, n, d, _p(loss), _p(gs[0]), _p(gs[1]), _p(gs[2]), ctypes.byref(opt))
        ctx.g0, ctx.g1, ctx.g2 = gs
        ctx.dts = (x1.dtype, x2.dtype, x3.dtype if x3 is not None else _F32)
        return loss if x1.dtype == _F32 else loss.to(x1.dtype)

    @staticmethod
    @_first_order
    def backward(ctx, go):
        go = go.unsqueeze(-1) if go.dim() else go
        out = [_scale(_take(ctx, "g%d" % k), go, ctx.dts[k])
               if ctx.needs_input_grad[k] and getattr(ctx, "g%d" % k) is not None else None
               for k in range(3)]
        return (*out, None, None, None, None, None)


def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean", *,
                          num_threads=None):
    """torch.nn.functional.cosine_embedding_loss (target +1 / -1)."""
    return EmbeddingLossFunction.apply(input1, input2, None, _as_tensor("target", target),
                                       "cosine_embedding", reduction, {"margin": margin},
                                       num_threads)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False,
                        reduction="mean", *, num_threads=None):
    """torch.nn.functional.triplet_margin_loss."""
    return EmbeddingLossFunction.apply(anchor, positive, negative, None, "triplet_margin",
                                       reduction, {"margin": margin, "p": p, "eps": eps,
                                                   "swap": swap}, num_threads)


def contrastive_loss(x1, x2, target, margin=1.0, reduction="mean", *, num_threads=None):
    """Hadsell et al. 2006: 1/2 (y d^2 + (1 - y) max(0, margin - d)^2), y = 1 same identity.
    The target is not differentiated (one that requires grad raises "unsupported")."""
    _no_grad_wanted("target", target, "detloss does not differentiate contrastive_loss's "
                    "target")
    return EmbeddingLossFunction.apply(x1, x2, None, _as_tensor("target", target), "contrastive",
                                       reduction, {"margin": margin}, num_threads)


def _as_tensor(name, t):
    """A label argument given as a tensor, or anything detloss.ops reads as an array."""
    if isinstance(t, torch.Tensor):
        return t
    return torch.from_numpy(_lib.array(name, t))


# IoU matrices (no gradient, as they are used for matching)
_NOT_DIFFERENTIABLE = "detloss's IoU matrices and box_area have no gradient (torchvision's do)"


def _matrix(kind, boxes1, boxes2, eps, num_threads):
    b1 = _tensor("boxes1", boxes1, last=4, ndim=2, ints=True)
    b2 = _tensor("boxes2", boxes2, last=4, ndim=2, ints=True)
    _no_grad_wanted("boxes1", boxes1, _NOT_DIFFERENTIABLE)
    _no_grad_wanted("boxes2", boxes2, _NOT_DIFFERENTIABLE)
    out = torch.empty((b1.shape[0], b2.shape[0]), dtype=_F32)
    opt = _lib.IouOptions(_lib.scalar("eps", eps), _nthreads(num_threads))
    _lib.call("detloss_iou_matrix", ops._IOU_KINDS[kind], _p(b1), b1.shape[0], _p(b2),
              b2.shape[0], _p(out), ctypes.byref(opt))
    dt = _box_dtype(boxes1, boxes2)
    return out if dt == _F32 else out.to(dt)


def box_iou(boxes1: Tensor, boxes2: Tensor, num_threads: Optional[int] = None) -> Tensor:
    """torchvision.ops.box_iou (0 instead of NaN where both boxes are empty). No gradient:
    boxes that require grad (with grad mode on) raise DetlossError "unsupported"."""
    if not torch.jit.is_scripting():
        return _matrix("iou", boxes1, boxes2, 1e-7, num_threads)
    out, err = torch.ops.detloss.box_iou(boxes1, boxes2, num_threads)
    _script_raise(err)
    return out


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor,
                        num_threads: Optional[int] = None) -> Tensor:
    if not torch.jit.is_scripting():
        return _matrix("giou", boxes1, boxes2, 1e-7, num_threads)
    out, err = torch.ops.detloss.generalized_box_iou(boxes1, boxes2, num_threads)
    _script_raise(err)
    return out


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7,
                     num_threads: Optional[int] = None) -> Tensor:
    if not torch.jit.is_scripting():
        return _matrix("diou", boxes1, boxes2, eps, num_threads)
    out, err = torch.ops.detloss.distance_box_iou(boxes1, boxes2, eps, num_threads)
    _script_raise(err)
    return out


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7,
                     num_threads: Optional[int] = None) -> Tensor:
    if not torch.jit.is_scripting():
        return _matrix("ciou", boxes1, boxes2, eps, num_threads)
    out, err = torch.ops.detloss.complete_box_iou(boxes1, boxes2, eps, num_threads)
    _script_raise(err)
    return out


def box_area(boxes: Tensor) -> Tensor:
    """torchvision.ops.box_area: (x2 - x1) (y2 - y1), not clamped. float32 boxes are
    computed by detloss, float16 / bfloat16 boxes too after widening to float32 (and give
    float32, as torchvision's). Integer and float64 boxes are computed in torchvision's
    dtype (int64 and float64 kept, other integers int32, as its _upcast), exactly as it
    does, by torch: one subtraction pair and a product per box, which the float32 library
    could only round (an integer area with its wrap-around on overflow)."""
    if not torch.jit.is_scripting():
        return _box_area(boxes)
    out, err = torch.ops.detloss.box_area(boxes)
    _script_raise(err)
    return out


def _box_area(boxes):
    b = _tensor("boxes", boxes, last=4, ndim=2, ints=True)
    _no_grad_wanted("boxes", boxes, _NOT_DIFFERENTIABLE)
    if _is_int(boxes) or boxes.dtype == torch.float64:
        bi = boxes.detach()
        bi = bi if bi.dtype in (torch.int32, torch.int64, torch.float64) else bi.int()
        return (bi[:, 2] - bi[:, 0]) * (bi[:, 3] - bi[:, 1])
    out = torch.empty(b.shape[0], dtype=_F32)
    _lib.call("detloss_box_area", _p(b), b.shape[0], _p(out))
    dt = _box_dtype(boxes)
    return out if dt == _F32 else out.to(dt)


def _per_image_views(name, pred, num_images, width):
    """pred: a tensor [N, A, width] (or [N*A, width], [N, A] for width 1) or a list of N
    tensors [A_i, width]. Returns (list of contiguous float32 tensors, one per image, and
    a function mapping per-image gradients back to pred's structure)."""
    if isinstance(pred, (list, tuple)):
        if len(pred) != num_images:
            raise DetlossError(_lib.ERR_SHAPE, name, "has %d entries for %d images"
                               % (len(pred), num_images))
        return [_tensor("%s[%d]" % (name, i), p).reshape(p.shape[0], width) if p.dim() > 0
                else _tensor("%s[%d]" % (name, i), p) for i, p in enumerate(pred)], "list"
    t = _tensor(name, pred)
    if t.numel() % (num_images * width) != 0:
        raise DetlossError(_lib.ERR_SHAPE, name, "shape %s cannot be split into %d images of "
                           "rows of %d" % (tuple(pred.shape), num_images, width))
    return list(t.reshape(num_images, -1, width).unbind(0)), "batched"


def _check_targets(targets):
    """targets: a list of dicts (DetlossTypeError naming what is not)."""
    if targets is None:
        raise DetlossTypeError(_lib.ERR_NULL, "targets", "is required (a list of dicts), got None")
    if not isinstance(targets, (list, tuple)):
        raise DetlossTypeError(_lib.ERR_TYPE, "targets", "must be a list of dicts, got %s"
                               % type(targets).__name__)
    for i, t in enumerate(targets):
        if not isinstance(t, dict):
            raise DetlossTypeError(_lib.ERR_NULL if t is None else _lib.ERR_TYPE,
                                   "targets[%d]" % i, "must be a dict, got %s"
                                   % type(t).__name__)


def _targets(targets, num_images, need_labels):
    _check_targets(targets)
    if len(targets) != num_images:
        raise DetlossError(_lib.ERR_SHAPE, "targets", "must be a list of %d dicts" % num_images)
    out = []
    for i, t in enumerate(targets):
        if t.get("boxes") is None:
            raise DetlossError(_lib.ERR_MISSING, "targets[%d].boxes" % i, "is required")
        b = _tensor("targets[%d].boxes" % i, t["boxes"]).reshape(-1, 4)
        lab = None
        if need_labels:
            if t.get("labels") is None:
                raise DetlossError(_lib.ERR_MISSING, "targets[%d].labels" % i, "is required")
            lab = _int_tensor("targets[%d].labels" % i, t["labels"], b.shape[0])
        crowd = t.get("iscrowd")
        if crowd is not None:  # a flag per box: 0 / 1 (or bool)
            crowd = _int_tensor("targets[%d].iscrowd" % i, crowd, b.shape[0], 0, 1).to(
                torch.uint8)
        out.append((b, lab, crowd))
    return out


class _HeadLossFunction(torch.autograd.Function):
    """forward(ctx, spec, cls_pred, box_pred) -> (loss_cls, loss_box_reg); spec carries the
    non-tensor arguments (kind, anchors, targets, options)."""

    @staticmethod
    def forward(ctx, spec, cls_pred, box_pred):
        kind, anchors, targets, opt, num_classes = spec
        n = len(anchors)
        width = 1 if kind == "rpn" else num_classes
        cls_name = "objectness" if kind == "rpn" else "cls_logits"
        box_name = "pred_bbox_deltas" if kind == "rpn" else "bbox_regression"
        cls_v, cls_mode = _per_image_views(cls_name, cls_pred, n, width)
        box_v, box_mode = _per_image_views(box_name, box_pred, n, 4)
        tg = _targets(targets, n, kind == "retina")
        need_c, need_b = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        imgs = (_lib.HeadImage * n)()
        keep = []
        gcs = _grad_buffers(cls_v, cls_mode) if ctx.needs_input_grad[1] else [None] * n
        gbs = _grad_buffers(box_v, box_mode) if ctx.needs_input_grad[2] else [None] * n
        for i in range(n):
            a = _tensor("anchors[%d]" % i, anchors[i], last=4, ndim=2)
            b, lab, crowd = tg[i]
            c, d = cls_v[i], box_v[i]
            na = a.shape[0]
            if c.numel() != na * width:
                raise DetlossError(_lib.ERR_SHAPE, "%s[%d]" % (cls_name, i), "has %d values for "
                                   "%d anchors x %d" % (c.numel(), na, width))
            if d.numel() != na * 4:
                raise DetlossError(_lib.ERR_SHAPE, "%s[%d]" % (box_name, i), "has %d values for "
                                   "%d anchors x 4" % (d.numel(), na))
            gc, gb = gcs[i], gbs[i]
            im = imgs[i]
            im.anchors, im.num_anchors, im.gt, im.num_gt = _p(a), na, _p(b), b.shape[0]
            grid = spec.grids[i]
            if grid is not None and _grid_matches(grid, anchors[i], a):
                im.anchor_config = ctypes.addressof(grid.cfg)
            im.labels, im.gt_is_crowd = _p(lab), _p(crowd)
            im.num_predictions, im.deltas, im.grad_deltas = na, _p(d), _p(gb)
            if kind == "rpn":
                im.objectness, im.grad_objectness = _p(c), _p(gc)
            else:
                im.cls_logits, im.grad_cls_logits = _p(c), _p(gc)
            sz = spec_image_size(spec, i)
            if sz is not None:
                im.image_h, im.image_w = float(sz[0]), float(sz[1])
            keep.append((a, b, lab, crowd, c, d))
        res = _lib.HeadResult()
        per = (_lib.HeadImageStats * n)()
        _lib.use_workspace(opt, kind, ctypes.addressof(imgs), n, num_classes or 0)
        if kind == "rpn":
            _lib.call("detloss_rpn_loss", ctypes.addressof(imgs), n, ctypes.byref(res),
                      ctypes.addressof(per), ctypes.byref(opt))
        else:
            _lib.call("detloss_retina_loss", ctypes.addressof(imgs), n, num_classes,
                      ctypes.byref(res), ctypes.addressof(per), ctypes.byref(opt))
        del keep
        ctx.stats = {k: getattr(res, k) for k, _ in _lib.HeadResult._fields_}
        ctx.gc = _regroup(gcs, cls_pred) if need_c else None
        ctx.gb = _regroup(gbs, box_pred) if need_b else None
        spec_set_result(spec, ctx.stats, per)
        dt = cls_pred[0].dtype if isinstance(cls_pred, (list, tuple)) else cls_pred.dtype
        ctx.dtc = dt
        ctx.dtb = box_pred[0].dtype if isinstance(box_pred, (list, tuple)) else box_pred.dtype
        lc = torch.tensor(res.loss_cls, dtype=dt)
        lb = torch.tensor(res.loss_box_reg, dtype=dt)
        return lc, lb

    @staticmethod
    @_first_order
    def backward(ctx, g_cls, g_box):
        gc = gb = None
        if ctx.needs_input_grad[1]:
            gc = _scale_any(_take(ctx, "gc"), g_cls, ctx.dtc)
        if ctx.needs_input_grad[2]:
            gb = _scale_any(_take(ctx, "gb"), g_box, ctx.dtb)
        return None, gc, gb


def _grad_buffers(views, mode):
    """Gradient buffers laid out like the per-image views: for a batched tensor, views
    of one [N, A, width] buffer (so no stacking copy is needed later)."""
    if mode == "batched":
        full = torch.empty((len(views),) + tuple(views[0].shape), dtype=_F32)
        return list(full.unbind(0))
    return [torch.empty(v.shape, dtype=_F32) for v in views]


def _regroup(grads, like):
    """Per-image gradient buffers back in the structure of the prediction argument."""
    if isinstance(like, (list, tuple)):
        return [g.reshape(p.shape) for g, p in zip(grads, like)]
    base = grads[0]._base if grads[0]._base is not None else grads[0]
    return base.view(like.shape)


def _scale_any(g, go, dtype):
    if isinstance(g, list):
        return [_scale(x, go, dtype) for x in g]
    return _scale(g, go, dtype)


class _Spec(tuple):
    """(kind, anchors, targets, options, num_classes) plus image sizes and an out-slot
    for the counts."""


def spec_image_size(spec, i):
    sizes = getattr(spec, "image_sizes", None)
    return None if sizes is None else sizes[i]


def spec_set_result(spec, stats, per):
    spec.result = dict(stats, per_image=[{k: getattr(s, k) for k, _ in
                                          _lib.HeadImageStats._fields_} for s in per])


def _grid_matches(grid, original, a):
    """Whether the anchors tensor equals the grid's anchors; remembered per tensor (data
    pointer, shape, version counter), so a training loop pays the comparison once."""
    key = (original.data_ptr(), tuple(original.shape), original._version, str(original.dtype))
    known = getattr(grid, "_checked", None)
    if known is None:
        known = grid._checked = {}
    if key not in known:
        if len(known) > 64:
            known.clear()
        known[key] = grid.matches(a.numpy())
    if not known[key]:
        raise DetlossError(_lib.ERR_SHAPE, "anchor_grid", "the anchors are not the anchors of "
                           "the grid")
    return True


_HEAD_CONSTANTS = "detloss treats anchors and gt boxes as constants (matching is not " \
    "differentiable; torchvision would differentiate the regression targets)"


def _apply_head(kind, cls_pred, box_pred, anchors, targets, opt, num_classes, image_sizes,
                anchor_grid=None):
    if not isinstance(anchors, (list, tuple)):
        raise DetlossTypeError(_lib.ERR_NULL if anchors is None else _lib.ERR_TYPE, "anchors",
                               "must be a list of [A, 4] tensors, one per image, got %s"
                               % type(anchors).__name__)
    if len(anchors) == 0:
        raise DetlossError(_lib.ERR_SHAPE, "anchors", "empty batch")
    for i, a in enumerate(anchors):
        if not isinstance(a, torch.Tensor):
            raise DetlossTypeError(_lib.ERR_NULL if a is None else _lib.ERR_TYPE,
                                   "anchors[%d]" % i, "must be a tensor [A, 4], got %s"
                                   % type(a).__name__)
    _check_targets(targets)
    image_sizes = _image_sizes(image_sizes, len(anchors))
    if image_sizes is None and opt.match.allowed_border >= 0:
        raise DetlossError(_lib.ERR_MISSING, "image_sizes", "is required with allowed_border "
                           ">= 0 (anchors crossing the image border are ignored)")
    for i, a in enumerate(anchors):
        _no_grad_wanted("anchors[%d]" % i, a, _HEAD_CONSTANTS)
    for i, t in enumerate(targets):
        _no_grad_wanted("targets[%d].boxes" % i, t.get("boxes"), _HEAD_CONSTANTS)
    cls_name = "objectness" if kind == "rpn" else "cls_logits"
    box_name = "pred_bbox_deltas" if kind == "rpn" else "bbox_regression"
    spec = _Spec((kind, list(anchors), targets, opt, num_classes))
    spec.image_sizes = image_sizes
    spec.grids = ops._grids(anchor_grid, len(anchors))
    if isinstance(cls_pred, (list, tuple)) or isinstance(box_pred, (list, tuple)):
        # lists of per-image tensors: one Function per image would change the normalizer,
        # so the per-image tensors are concatenated (a copy) and split back by autograd.
        cls_l = list(cls_pred) if isinstance(cls_pred, (list, tuple)) else None
        box_l = list(box_pred) if isinstance(box_pred, (list, tuple)) else None
        if cls_l is None or box_l is None:
            raise DetlossTypeError(_lib.ERR_TYPE, box_name if cls_l else cls_name,
                                   "give %s and %s both as lists or both as tensors"
                                   % (cls_name, box_name))
        for name, l in ((cls_name, cls_l), (box_name, box_l)):
            for i, t in enumerate(l):
                _tensor("%s[%d]" % (name, i), t)
        spec_l = spec
        lc, lb = _ListHead.apply(spec_l, len(cls_l), *cls_l, *box_l)
        return lc, lb, spec.result
    lc, lb = _HeadLossFunction.apply(spec, cls_pred, box_pred)
    return lc, lb, spec.result


def _image_sizes(sizes, n):
    """image_sizes: None, or n pairs (H, W) of finite numbers > 0 (torchvision's
    ImageList.image_sizes: a list of (H, W) tuples)."""
    if sizes is None:
        return None
    if isinstance(sizes, (str, bytes, torch.Tensor)) or not hasattr(sizes, "__len__"):
        raise DetlossTypeError(_lib.ERR_TYPE, "image_sizes", "must be a list of (H, W) pairs, "
                               "one per image, got %s" % type(sizes).__name__)
    if len(sizes) != n:
        raise DetlossError(_lib.ERR_SHAPE, "image_sizes", "has %d entries for %d images"
                           % (len(sizes), n))
    out = []
    for i, s in enumerate(sizes):
        name = "image_sizes[%d]" % i
        if isinstance(s, (str, bytes)) or not hasattr(s, "__len__") or len(s) != 2:
            raise DetlossTypeError(_lib.ERR_TYPE, name, "must be a pair (H, W), got %r" % (s,))
        out.append((_lib.scalar(name, s[0], lo=0, lo_open=True),
                    _lib.scalar(name, s[1], lo=0, lo_open=True)))
    return out


class _ListHead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec, n, *tensors):
        cls_l, box_l = list(tensors[:n]), list(tensors[n:])

        class _Ctx:
            needs_input_grad = (False, any(t.requires_grad for t in cls_l),
                                any(t.requires_grad for t in box_l))
        inner = _Ctx()
        lc, lb = _HeadLossFunction.forward(inner, spec, cls_l, box_l)
        ctx.inner, ctx.n = inner, n
        return lc, lb

    @staticmethod
    @_first_order
    def backward(ctx, g_cls, g_box):
        _, gc, gb = _HeadLossFunction.backward(ctx.inner, g_cls, g_box)
        n = ctx.n
        gc = gc if gc is not None else [None] * n
        gb = gb if gb is not None else [None] * n
        return (None, None, *gc, *gb)


def retina_loss(cls_logits, bbox_regression, anchors, targets, *, config=None,
                fg_iou_thresh=None, bg_iou_thresh=None, allow_low_quality=None, alpha=None,
                gamma=None, box_loss=None, smooth_l1_beta=None, box_weights=None,
                normalizer=None, ema_state=None, ema_momentum=None, caller_normalizer=None,
                allowed_border=None, image_sizes=None, anchor_grid=None, num_threads=None,
                return_stats=False):
    """RetinaNet loss on detloss: (loss_cls, loss_box_reg), differentiable w.r.t. cls_logits
    and bbox_regression; the same values as torchvision RetinaNet.compute_loss.

    cls_logits [N, A, C] (or a list of [A_i, C]), bbox_regression [N, A, 4] (or a list),
    anchors: list of N tensors [A_i, 4], targets: list of N dicts with "boxes" [G, 4],
    "labels" [G] (and optional "iscrowd"). Options left at None keep torchvision's
    values (0.5 / 0.4 with low-quality matches, alpha 0.25, gamma 2, box_loss "l1",
    smooth_l1_beta 1, box_weights (1, 1, 1, 1), normalizer "torchvision") or those of
    config (a detloss.Config). normalizer "detectron2_ema" needs ema_state, a
    one-element float32 CPU tensor updated in place (start at 100.0). With
    return_stats a third value, a dict of the counts (num_pos, num_neg, ..., per_image),
    is returned. anchor_grid: the detloss.AnchorGrid the anchors come from (one, or one
    per image; e.g. detloss.torchvision_anchor_grid(...)): the same result, with matching
    on the grid (faster); the anchors are checked against it once per tensor."""
    o = ops.retina_options(config, fg_iou_thresh, bg_iou_thresh, allow_low_quality, alpha,
                           gamma, box_loss, smooth_l1_beta, box_weights, normalizer,
                           ema_momentum, caller_normalizer, allowed_border,
                           _nthreads(num_threads))
    if o.normalizer == ops.RETINA_NORMALIZERS["detectron2_ema"]:
        if not (isinstance(ema_state, torch.Tensor) and ema_state.dtype == _F32 and
                ema_state.numel() == 1 and ema_state.device.type == "cpu" and
                ema_state.is_contiguous()):
            raise DetlossTypeError(_lib.ERR_TYPE, "ema_state", "must be a one-element float32 "
                                   "CPU tensor (e.g. torch.tensor([100.0]))")
        o.ema_state = ema_state.data_ptr()
    if isinstance(cls_logits, torch.Tensor) and cls_logits.dim() >= 1:
        num_classes = cls_logits.shape[-1]
    elif isinstance(cls_logits, (list, tuple)) and len(cls_logits) and \
            isinstance(cls_logits[0], torch.Tensor) and cls_logits[0].dim() >= 1:
        num_classes = cls_logits[0].shape[-1]
    else:
        raise DetlossTypeError(_lib.ERR_NULL if cls_logits is None else _lib.ERR_TYPE,
                               "cls_logits", "must be a tensor [N, A, C] or a list of [A, C] "
                               "tensors, got %s" % type(cls_logits).__name__)
    lc, lb, stats = _apply_head("retina", cls_logits, bbox_regression, anchors, targets, o,
                                int(num_classes), image_sizes, anchor_grid)
    return (lc, lb, stats) if _lib.flag("return_stats", return_stats) else (lc, lb)


def rpn_loss(objectness, pred_bbox_deltas, anchors, targets, *, config=None, convention=None,
             fg_iou_thresh=None, bg_iou_thresh=None, allow_low_quality=None,
             batch_size_per_image=None, positive_fraction=None, seed=None, box_loss=None,
             smooth_l1_beta=None, box_weights=None, allowed_border=None, image_sizes=None,
             anchor_grid=None, num_threads=None, return_stats=False):
    """RPN loss on detloss: (loss_objectness, loss_rpn_box_reg), differentiable w.r.t.
    objectness and pred_bbox_deltas; torchvision RegionProposalNetwork's
    assign_targets_to_anchors + compute_loss in one call.

    objectness [N*A, 1] / [N, A] (or a list of [A_i]), pred_bbox_deltas [N*A, 4] /
    [N, A, 4] (or a list), anchors: list of N tensors [A_i, 4], targets: list of dicts
    with "boxes" (and optional "iscrowd"). Options left at None keep the convention's
    preset ("torchvision": 0.7 / 0.3, 256 per image, half positive, smooth-L1 beta 1/9;
    "detectron2", "py_faster_rcnn") or config's. Sampling is detloss's seeded choice:
    seed=None draws the seed from torch's generator (so torch.manual_seed makes runs
    repeatable); when an image has no more positives / negatives than its budget the
    result equals torchvision's exactly. image_sizes [(H, W)] are needed with
    allowed_border >= 0. anchor_grid: as in retina_loss."""
    if seed is None:
        seed = int(torch.randint(0, 2 ** 62, (1,)).item())
    o = ops.rpn_options(config, convention, fg_iou_thresh, bg_iou_thresh, allow_low_quality,
                        batch_size_per_image, positive_fraction, seed, box_loss, smooth_l1_beta,
                        box_weights, allowed_border, _nthreads(num_threads))
    lc, lb, stats = _apply_head("rpn", objectness, pred_bbox_deltas, anchors, targets, o, None,
                                image_sizes, anchor_grid)
    return (lc, lb, stats) if _lib.flag("return_stats", return_stats) else (lc, lb)


# The detection utility classes (BoxCoder, Matcher, BalancedPositiveNegativeSampler,
# AnchorGenerator) and the patch_* helpers live in torch_detection.py.
from .torch_detection import *  # noqa: E402,F401,F403
from .torch_detection import __all__ as _detection_all  # noqa: E402
__all__ += [n for n in _detection_all if n not in __all__]


# TorchScript (docs/torch.md, "TorchScript").
#
# The drop-ins for torchvision's functions (_SCRIPTABLE) are scriptable. Each is written
# `if not torch.jit.is_scripting(): return <the eager path>`, then a scripted path: the
# script compiler drops the first branch unread and compiles the rest, which calls an
# operator torch.ops.detloss.<name> registered here (torch.library, a Python kernel for
# CPU tensors: no C++ extension). The kernel runs the eager function itself, so the
# values are the eager values, bit for bit; for the losses it also returns the gradients
# w.r.t. the inputs that require grad: the closed forms detloss computed in the same
# call, taken through the eager autograd.Function with a grad_output of ones. The
# scripted path attaches them with _attach: loss + (x - x.detach()) * g, whose value is
# the loss (x - x.detach() is exactly 0 for finite x) and whose derivative w.r.t. x is g.
# First-order only: the attached g is a constant, so a create_graph=True backward gives
# a second derivative of 0 (eager mode raises instead). The box ops give values only (no
# gradient, as in eager mode, which refuses boxes that require grad; the kernel raises
# the same error). Argument errors cannot cross the operator boundary as exceptions (the
# TorchScript interpreter drops a Python kernel's message), so the kernel returns the
# message and the scripted code raises it (_script_raise): "T..." a TypeError, "V..." a
# ValueError, both surfacing as torch.jit.Error with the message.
#
# A scripted function or module saved with torch.jit.save refers to torch.ops.detloss.*:
# torch.jit.load needs them registered, i.e. detloss.torch imported in that process.

_SCRIPTABLE = ("sigmoid_focal_loss", "generalized_box_iou_loss", "distance_box_iou_loss",
               "complete_box_iou_loss", "iou_loss", "box_iou", "generalized_box_iou",
               "distance_box_iou", "complete_box_iou", "box_area")


def _script_raise(err: str) -> None:
    if err != "":
        if err.startswith("T"):
            raise TypeError(err[1:])
        raise ValueError(err[1:])


def _attach(loss: Tensor, x: Tensor, g: Tensor, need: bool, boxes: bool) -> Tensor:
    """loss, with d loss / d x = g (first order) when need: loss + (x - x.detach()) * g,
    summed over the box coordinates (boxes) or to a scalar (a reduced loss). g is float32
    (detloss's; float64 for the focal loss's targets): the product with grad_output is
    formed in g's dtype and rounded once to x's dtype, as in eager mode."""
    if not need:
        return loss
    d = (x - x.detach()).to(g.dtype) * g
    if loss.dim() == 0:
        return loss + d.sum().to(loss.dtype)
    if boxes:
        return loss + d.sum(-1).to(loss.dtype)
    return loss + d.to(loss.dtype)


def _kernel_error(name, e):
    return ("T" if isinstance(e, TypeError) else "V") + "detloss.torch.%s: %s" % (name, e)


_NO_GRAD = torch.empty(0)


_WIDENED = (torch.float64, torch.float16, torch.bfloat16)


def _as_computed(t, need):
    """t as the eager function computes with it: other float dtypes as float32 (the same
    values it would convert to), then a leaf requiring grad when need."""
    t = t.detach()
    return (t.float() if t.dtype in _WIDENED else t).requires_grad_(need)


def _loss_kernel(name, fn):
    """The CPU kernel of torch.ops.detloss.<name> for a loss of two differentiable tensors:
    (loss, d loss/d a, d loss/d b, error). The eager function runs on the float32 values it
    computes with (so its gradients come back in float32, unrounded); the loss is returned
    in the dtype eager mode returns (the input's for the focal loss, float64 for float64
    boxes and float32 for other boxes). Each gradient is that of the eager function (of
    the sum of the loss elements for reduction "none"), or an empty tensor when not asked;
    float32 (float64 for the focal loss's targets)."""
    focal = name == "sigmoid_focal_loss"

    def kernel(a, b, *args):
        *args, need_a, need_b = args
        try:
            dtype = a.dtype if focal else _box_dtype(a)
            a = _as_computed(a, need_a)
            # the focal loss's target gradient is formed in float64 (eager mode rounds it
            # once, to the target's dtype): float64 targets bring it back unrounded
            b = b.detach().double().requires_grad_() if focal and need_b else \
                _as_computed(b, need_b)
            with torch.enable_grad():
                loss = fn(a, b, *args)
                wrt = [t for t, need in ((a, need_a), (b, need_b)) if need]
                gs = list(torch.autograd.grad(loss, wrt, torch.ones_like(loss))) if wrt else []
            ga = gs.pop(0) if need_a else _NO_GRAD
            gb = gs.pop(0) if need_b else _NO_GRAD
            return loss.detach().to(dtype), ga, gb, ""
        except (ValueError, TypeError) as e:
            return _NO_GRAD, _NO_GRAD, _NO_GRAD, _kernel_error(name, e)
    return kernel


def _value_kernel(name, fn):
    """The CPU kernel of torch.ops.detloss.<name> for a box op: (value, error)."""
    def kernel(*args):
        try:
            return fn(*args), ""
        except (ValueError, TypeError) as e:
            return _NO_GRAD, _kernel_error(name, e)
    return kernel


def _eager(name):
    return lambda *args: globals()[name](*args)


_LOSS_SCHEMA = "(Tensor %s, Tensor %s, %s, int? num_threads, bool need_%s_grad, " \
    "bool need_%s_grad) -> (Tensor, Tensor, Tensor, str)"
_OP_SCHEMAS = {
    "sigmoid_focal_loss": (_LOSS_SCHEMA % ("inputs", "targets",
                                           "float alpha, float gamma, str reduction",
                                           "inputs", "targets"), _loss_kernel),
    "box_iou": ("(Tensor boxes1, Tensor boxes2, int? num_threads) -> (Tensor, str)",
                _value_kernel),
    "generalized_box_iou": ("(Tensor boxes1, Tensor boxes2, int? num_threads) -> (Tensor, str)",
                            _value_kernel),
    "distance_box_iou": ("(Tensor boxes1, Tensor boxes2, float eps, int? num_threads) -> "
                         "(Tensor, str)", _value_kernel),
    "complete_box_iou": ("(Tensor boxes1, Tensor boxes2, float eps, int? num_threads) -> "
                         "(Tensor, str)", _value_kernel),
    "box_area": ("(Tensor boxes) -> (Tensor, str)", _value_kernel),
}
for _name in ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss",
              "iou_loss"):
    _OP_SCHEMAS[_name] = (_LOSS_SCHEMA % ("boxes1", "boxes2", "str reduction, float eps",
                                          "boxes1", "boxes2"), _loss_kernel)


def _register_ops():
    """Define torch.ops.detloss.* with this module's kernels, once per process: a second
    copy of this module (imported from another path) finds them defined and keeps them."""
    try:
        lib = torch.library.Library("detloss", "DEF")
    except RuntimeError:
        return None
    for name in _SCRIPTABLE:
        schema, make = _OP_SCHEMAS[name]
        lib.define(name + schema)
        lib.impl(name, make(name, _eager(name)), "CPU")
    return lib


_OPS_LIBRARY = _register_ops()  # kept alive: the registration lasts as long as it does


# The other functions are eager-mode only. torch.jit.script refuses a function that
# carries __script_unsupported with "TorchScript error: <message>", also when it meets one
# inside a scripted function or module; without the marker it would fail inside its
# compiler with an internal message.
_EAGER_ONLY = (
    "detloss.torch.%s is an eager-mode function: it calls the detloss C library through "
    "ctypes, which TorchScript can neither compile nor save. In scripted code use "
    "torchvision's / torch's function of the same name, or keep the detloss call in eager "
    "mode: compute the loss outside the scripted module, or mark the Python function that "
    "calls it @torch.jit.ignore (it then runs in Python, and the scripted module cannot be "
    "saved with it). (detloss's drop-ins for torchvision's box ops and losses are "
    "scriptable.)")


def _mark_eager_only(namespace):
    for name in namespace.get("__all__", ()):
        fn = namespace.get(name)
        if callable(fn) and not isinstance(fn, type) and name not in _SCRIPTABLE:
            setattr(fn, "__script_unsupported", _EAGER_ONLY % name)


# The assigners' torch drop-ins (DETR HungarianMatcher, ultralytics TaskAlignedAssigner).
from .torch_assign import HungarianMatcher, TaskAlignedAssigner  # noqa: E402,F401

_mark_eager_only(globals())
