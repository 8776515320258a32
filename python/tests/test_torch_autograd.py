"""detloss.torch's autograd against torch's for every differentiable input:
gradients with respect to targets, weights and pos_weight where torch gives
them; a clear error where detloss does not differentiate an input that torch would;
a clear error for second-order gradients (create_graph=True).

The references are torch / torchvision in float64 on the same (float32-rounded)
values; the gradients detloss computes in float64 (targets, weights, pos_weight)
are compared at rtol 1e-5, atol 1e-6; gradients with respect to the inputs (float32
arithmetic in C) at the tolerance of test_torch.py (rtol 1e-4, atol 1e-6)."""
import pytest

torch = pytest.importorskip("torch")
tvo = pytest.importorskip("torchvision.ops")

import detloss.torch as dt  # noqa: E402
from detloss import DetlossError  # noqa: E402

F = torch.nn.functional
TIGHT = dict(rtol=1e-5, atol=1e-6)
INPUT = dict(rtol=1e-4, atol=1e-6)


def _weights(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _grads(ours, theirs, ins, refs):
    """gradients of sum(w * loss) (w random, so every element of a 'none' loss counts)."""
    w = _weights(theirs.shape)
    ga = torch.autograd.grad((ours.double() * w).sum(), ins)
    gb = torch.autograd.grad((theirs * w).sum(), refs)
    torch.testing.assert_close(ours.double(), theirs, **TIGHT)
    return ga, gb


def _leaf32(t):
    return t.detach().float().requires_grad_()


def _leaf64(t32):
    return t32.detach().double().requires_grad_()


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 1.0), (0.5, 0.0), (0.75, 0.5),
                                         (0.25, 3.5)])
def test_sigmoid_focal_loss_gradient_wrt_targets_matches_torchvision(reduction, alpha, gamma):
    g = torch.Generator().manual_seed(7)
    x = _leaf32(3 * torch.randn(40, 5, generator=g))
    y = _leaf32(torch.rand(40, 5, generator=g))  # soft targets (label smoothing, distillation)
    y.data[:10] = (y.data[:10] < 0.3).float()     # and hard ones
    xr, yr = _leaf64(x), _leaf64(y)
    ours = dt.sigmoid_focal_loss(x, y, alpha, gamma, reduction)
    theirs = tvo.sigmoid_focal_loss(xr, yr, alpha, gamma, reduction)
    (gx, gy), (gxr, gyr) = _grads(ours, theirs, [x, y], [xr, yr])
    assert gy.dtype == torch.float32
    torch.testing.assert_close(gy.double(), gyr, **TIGHT)
    torch.testing.assert_close(gx.double(), gxr, **INPUT)


def test_sigmoid_focal_target_gradient_alone_and_in_float64():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(20, generator=g, dtype=torch.float64)
    y = torch.rand(20, generator=g, dtype=torch.float64).requires_grad_()
    l = dt.sigmoid_focal_loss(x, y, reduction="mean")  # only the targets require grad
    assert l.requires_grad
    gy, = torch.autograd.grad(l, y)
    assert gy.dtype == torch.float64
    yr = y.detach().clone().requires_grad_()
    ref, = torch.autograd.grad(tvo.sigmoid_focal_loss(x.float().double(), yr, reduction="mean"),
                               yr)
    torch.testing.assert_close(gy, ref, **TIGHT)


def _reduce(l, reduction):
    return l if reduction == "none" else l.sum() if reduction == "sum" else l.mean()


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("pos_weight", [None, [0.5, 2.0, 3.0], [1.5]])
def test_bce_with_logits_gradient_wrt_target_matches_torch(reduction, pos_weight):
    g = torch.Generator().manual_seed(9)
    x = _leaf32(2 * torch.randn(6, 3, generator=g))
    y = _leaf32(torch.rand(6, 3, generator=g))
    xr, yr = _leaf64(x), _leaf64(y)
    pw = None if pos_weight is None else torch.tensor(pos_weight)
    ours = dt.binary_cross_entropy_with_logits(x, y, reduction=reduction, pos_weight=pw)
    theirs = F.binary_cross_entropy_with_logits(xr, yr, reduction=reduction,
                                                pos_weight=None if pw is None else pw.double())
    (gx, gy), (gxr, gyr) = _grads(ours, theirs, [x, y], [xr, yr])
    torch.testing.assert_close(gx.double(), gxr, **INPUT)
    assert gy.dtype == torch.float32
    torch.testing.assert_close(gy.double(), gyr, **TIGHT)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("pos_weight", [[0.5, 2.0, 3.0], [1.5]])
def test_bce_with_logits_gradients_wrt_weight_and_pos_weight(reduction, pos_weight):
    # torch refuses these ("not differentiable with respect to argument 'weight'"); detloss
    # gives them: the reference is the loss written out in float64, differentiated by autograd
    #   l = w ((1 - y) x + (1 + (pw - 1) y) softplus(-x))
    g = torch.Generator().manual_seed(9)
    x = _leaf32(2 * torch.randn(6, 3, generator=g))
    y = _leaf32(torch.rand(6, 3, generator=g))
    w = _leaf32(torch.rand(6, 1, generator=g) + 0.5)  # broadcast over the columns
    pw = _leaf32(torch.tensor(pos_weight))
    xr, yr, wr, pwr = _leaf64(x), _leaf64(y), _leaf64(w), _leaf64(pw)
    ours = dt.binary_cross_entropy_with_logits(x, y, w, reduction, pw)
    theirs = _reduce(wr * ((1 - yr) * xr + (1 + (pwr - 1) * yr) * F.softplus(-xr)), reduction)
    ga, gb = _grads(ours, theirs, [x, y, w, pw], [xr, yr, wr, pwr])
    torch.testing.assert_close(ga[0].double(), gb[0], **INPUT)
    for a, b in zip(ga[1:], gb[1:]):
        assert a.shape == b.shape and a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, **TIGHT)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_bce_gradients_wrt_target_and_weight(reduction):
    g = torch.Generator().manual_seed(10)
    x = _leaf32(torch.rand(7, 4, generator=g) * 0.98 + 0.01)
    y = _leaf32(torch.rand(7, 4, generator=g))
    w = _leaf32(torch.rand(4, generator=g) + 0.5)
    xr, yr, wr = _leaf64(x), _leaf64(y), _leaf64(w)
    ours = dt.binary_cross_entropy(x, y, weight=w, reduction=reduction)
    # torch differentiates the target, not the weight: the weight multiplies outside
    theirs = _reduce(wr * F.binary_cross_entropy(xr, yr, reduction="none"), reduction)
    ga, gb = _grads(ours, theirs, [y, w], [yr, wr])
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a.double(), b, **TIGHT)
    yr2 = _leaf64(y)  # torch's own target gradient with its weight argument
    ref, = torch.autograd.grad(F.binary_cross_entropy(xr.detach(), yr2, weight=wr.detach(),
                                                      reduction="sum"), yr2)
    gy, = torch.autograd.grad(dt.binary_cross_entropy(x.detach(), y, weight=w.detach(),
                                                      reduction="sum"), y)
    torch.testing.assert_close(gy.double(), ref, **TIGHT)


def test_bce_target_gradient_is_the_derivative_of_the_clamped_loss_at_0_and_1():
    # l = -(y max(ln x, -100) + (1 - y) max(ln(1 - x), -100)) is what torch (and detloss)
    # computes; its y-derivative max(ln(1 - x), -100) - max(ln x, -100) is +100 at x = 0
    # and -100 at x = 1. torch's target backward ignores the clamp and gives +-inf there;
    # detloss gives the derivative of the value it returned (finite), as for the focal loss.
    x = torch.tensor([0.0, 1.0, 0.5])
    y = torch.tensor([0.3, 0.6, 0.2], requires_grad=True)
    gy, = torch.autograd.grad(dt.binary_cross_entropy(x, y, reduction="sum"), y)
    torch.testing.assert_close(gy, torch.tensor([100.0, -100.0, 0.0]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name,kw", [("l1_loss", {}), ("mse_loss", {}),
                                     ("smooth_l1_loss", {"beta": 0.5}),
                                     ("huber_loss", {"delta": 0.7})])
def test_regression_losses_give_the_target_gradient_alone(name, kw):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(9, generator=g)
    y = _leaf32(torch.randn(9, generator=g))
    yr = _leaf64(y)
    ours = getattr(dt, name)(x, y, reduction="sum", **kw)
    theirs = getattr(F, name)(x.double(), yr, reduction="sum", **kw)
    gy, = torch.autograd.grad(ours, y)
    ref, = torch.autograd.grad(theirs, yr)
    torch.testing.assert_close(gy.double(), ref, **INPUT)


def test_weight_gradient_of_regression_losses_is_the_unweighted_loss():
    g = torch.Generator().manual_seed(12)
    x, y = torch.randn(5, generator=g), torch.randn(5, generator=g)
    w = torch.ones(5, requires_grad=True)
    l = dt.smooth_l1_loss(x, y, reduction="mean", weight=w, beta=0.5)
    gw, = torch.autograd.grad(l, w)
    ref = F.smooth_l1_loss(x.double(), y.double(), reduction="none", beta=0.5) / 5
    torch.testing.assert_close(gw.double(), ref, **TIGHT)


def test_inputs_detloss_does_not_differentiate_are_refused_by_name():
    x = torch.randn(3, 4)
    anchors = [torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])]
    b = torch.tensor([[0.0, 0, 10, 10]])
    cases = [
        ("target", lambda: dt.hinge_loss(x, torch.ones(3, 4, requires_grad=True))),
        ("target", lambda: dt.contrastive_loss(x, x, torch.ones(3, requires_grad=True))),
        ("row_weight", lambda: dt.cross_entropy(x, torch.tensor([0, 1, 2]),
                                                row_weight=torch.ones(3, requires_grad=True))),
        ("boxes1", lambda: dt.box_iou(b.clone().requires_grad_(), b)),
        ("boxes2", lambda: dt.generalized_box_iou(b, b.clone().requires_grad_())),
        ("boxes", lambda: dt.box_area(b.clone().requires_grad_())),
        ("anchors[0]", lambda: dt.rpn_loss(torch.zeros(2), torch.zeros(2, 4),
                                           [anchors[0].clone().requires_grad_()],
                                           [{"boxes": b}])),
        ("targets[0].boxes", lambda: dt.rpn_loss(torch.zeros(2), torch.zeros(2, 4), anchors,
                                                 [{"boxes": b.clone().requires_grad_()}])),
    ]
    for where, fn in cases:
        with pytest.raises(DetlossError) as e:
            fn()
        assert e.value.where == where and e.value.status_name == "unsupported", e.value
        assert "detach" in e.value.message
    # under no_grad (or detached) the same calls are fine
    with torch.no_grad():
        for _, fn in cases:
            fn()


def _losses():
    g = torch.Generator().manual_seed(13)
    x = torch.randn(4, 3, generator=g)
    b = torch.tensor([[0.0, 0, 10, 10], [1, 1, 5, 6]])
    anchors = [torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])]
    return [
        ("sigmoid_focal_loss",
         lambda t: dt.sigmoid_focal_loss(t, torch.rand(4, 3), reduction="sum"), x),
        ("bce_with_logits", lambda t: dt.binary_cross_entropy_with_logits(t, torch.rand(4, 3)), x),
        ("l1_loss", lambda t: dt.l1_loss(t, torch.zeros(4, 3)), x),
        ("cross_entropy", lambda t: dt.cross_entropy(t, torch.tensor([0, 1, 2, 0])), x),
        ("giou_loss", lambda t: dt.generalized_box_iou_loss(t, b + 1, reduction="sum"), b),
        ("triplet", lambda t: dt.triplet_margin_loss(t, x + 1, x - 1), x),
        ("retina", lambda t: sum(dt.retina_loss(t, torch.zeros(1, 2, 4), anchors,
                                                [{"boxes": b[:1], "labels": torch.tensor([0])}])),
         torch.zeros(1, 2, 3)),
        ("retina_list", lambda t: sum(dt.retina_loss([t[0]], [torch.zeros(2, 4)], anchors,
                                                     [{"boxes": b[:1],
                                                       "labels": torch.tensor([0])}])),
         torch.zeros(1, 2, 3)),
    ]


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
@pytest.mark.parametrize("name,fn,x", _losses(), ids=[c[0] for c in _losses()])
def test_create_graph_is_refused_with_a_clear_error(name, fn, x):
    t = x.clone().requires_grad_()
    g, = torch.autograd.grad(fn(t), t)  # first order: fine
    assert g.grad_fn is None
    t = x.clone().requires_grad_()
    with pytest.raises(RuntimeError, match="second-order"):
        torch.autograd.grad(fn(t), t, create_graph=True)
    t = x.clone().requires_grad_()
    with pytest.raises(RuntimeError, match="second-order"):
        fn(t).backward(create_graph=True)
