"""TorchScript (issue 19, item 5): the drop-ins for torchvision's box ops and losses
compile with torch.jit.script and run as torch.ops.detloss.* operators.

Values: scripted == eager bitwise (torch.equal: the operator's kernel runs the eager
function). Gradients of the scripted losses w.r.t. the predictions (inputs, boxes1,
boxes2): bitwise equal to eager's in every dtype (both are detloss's float32 closed form
times grad_output, one float32 product, rounded once to the input's dtype). The focal
loss's target gradient: rtol 1e-6 (eager forms d * grad_output / n in float64, scripted
(d / n) * grad_output: the float64 results differ in the last bit, rarely visible after
rounding to float32)."""
import io

import pytest

torch = pytest.importorskip("torch")

import detloss.torch as dt  # noqa: E402

LOSSES = ["generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss",
          "iou_loss"]
MATRICES = ["box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"]
REDUCTIONS = ["none", "mean", "sum"]
CALLS = 4  # calls per scripted function: the profiling executor optimises from the 3rd


def _boxes(g, n, dtype=torch.float32):
    xy = torch.rand((n, 2), generator=g, dtype=torch.float64) * 50
    wh = torch.rand((n, 2), generator=g, dtype=torch.float64) * 30 + 0.5
    return torch.cat([xy, xy + wh], 1).to(dtype)


def _logits(g, shape, dtype=torch.float32):
    return (torch.randn(shape, generator=g, dtype=torch.float64) * 4).to(dtype)


def test_the_scriptable_functions_are_registered_as_operators():
    assert set(dt._SCRIPTABLE) >= {"sigmoid_focal_loss", "box_area"} | set(LOSSES) | \
        set(MATRICES)
    for name in dt._SCRIPTABLE:
        assert callable(getattr(torch.ops.detloss, name))
        assert not hasattr(getattr(dt, name), "__script_unsupported")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int32,
                                   torch.int64, torch.uint8])
@pytest.mark.parametrize("name", MATRICES + ["box_area"])
def test_scripted_box_ops_equal_eager_bitwise(name, dtype):
    g = torch.Generator().manual_seed(1)
    fn, s = getattr(dt, name), torch.jit.script(getattr(dt, name))
    for i in range(CALLS):
        b1, b2 = _boxes(g, 7 + i, dtype), _boxes(g, 5, dtype)
        if name == "box_area":
            want, got = fn(b1), s(b1)
        else:
            want, got = fn(b1, b2), s(b1, b2)
        assert got.dtype == want.dtype
        assert torch.equal(got, want)


@pytest.mark.parametrize("name", ["distance_box_iou", "complete_box_iou"])
def test_scripted_eps_and_num_threads_reach_the_library(name):
    g = torch.Generator().manual_seed(2)
    b1, b2 = _boxes(g, 9), _boxes(g, 4)
    s = torch.jit.script(getattr(dt, name))
    for eps in (1e-7, 0.5):
        want = getattr(dt, name)(b1, b2, eps)
        assert torch.equal(s(b1, b2, eps), want)
        assert torch.equal(s(b1, b2, eps=eps, num_threads=1), want)
        assert torch.equal(s(b1, b2, eps, 2), want)
    assert not torch.equal(s(b1, b2, 1e-7), s(b1, b2, 0.5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", LOSSES)
def test_scripted_box_loss_values_and_gradients_equal_eager(name, reduction, dtype):
    g = torch.Generator().manual_seed(3)
    fn, s = getattr(dt, name), torch.jit.script(getattr(dt, name))
    for i in range(CALLS):
        a, b = _boxes(g, 6 + i, dtype), _boxes(g, 6 + i, dtype)
        ea, eb = a.clone().requires_grad_(), b.clone().requires_grad_()
        sa, sb = a.clone().requires_grad_(), b.clone().requires_grad_()
        want, got = fn(ea, eb, reduction), s(sa, sb, reduction=reduction)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.equal(got.detach(), want.detach())
        go = torch.rand(want.shape, generator=g, dtype=torch.float64).to(want.dtype) + 0.5
        want.backward(go)
        got.backward(go)
        for e, t in ((ea, sa), (eb, sb)):
            assert t.grad.dtype == e.grad.dtype
            assert torch.equal(t.grad, e.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 0.0), (0.58, 0.5), (1.0, 2)])
def test_scripted_focal_loss_values_and_gradients_equal_eager(alpha, gamma, reduction, dtype):
    g = torch.Generator().manual_seed(4)
    s = torch.jit.script(dt.sigmoid_focal_loss)
    for i in range(CALLS):
        x = _logits(g, (5 + i, 3), dtype)
        y = torch.rand((5 + i, 3), generator=g, dtype=torch.float64).to(dtype)  # soft targets
        ex, ey = x.clone().requires_grad_(), y.clone().requires_grad_()
        sx, sy = x.clone().requires_grad_(), y.clone().requires_grad_()
        want = dt.sigmoid_focal_loss(ex, ey, alpha, gamma, reduction)
        got = s(sx, sy, alpha=alpha, gamma=gamma, reduction=reduction)
        assert got.dtype == want.dtype and torch.equal(got.detach(), want.detach())
        go = torch.rand(want.shape, generator=g, dtype=torch.float64).to(dtype) + 0.5
        want.backward(go)
        got.backward(go)
        assert sx.grad.dtype == ex.grad.dtype and torch.equal(sx.grad, ex.grad)
        assert sy.grad.dtype == ey.grad.dtype
        torch.testing.assert_close(sy.grad, ey.grad, rtol=1e-6, atol=0)


def test_scripted_losses_without_grad_and_with_one_differentiable_input():
    g = torch.Generator().manual_seed(5)
    a, b = _boxes(g, 8), _boxes(g, 8)
    s = torch.jit.script(dt.complete_box_iou_loss)
    with torch.no_grad():
        out = s(a.clone().requires_grad_(), b, "sum")
    assert not out.requires_grad and torch.equal(out, dt.complete_box_iou_loss(a, b, "sum"))
    ta = a.clone().requires_grad_()
    out = s(ta, b, "mean")
    out.backward()
    ea = a.clone().requires_grad_()
    dt.complete_box_iou_loss(ea, b, "mean").backward()
    assert torch.equal(ta.grad, ea.grad)


def test_scripted_focal_half_inputs_keep_their_dtype():
    g = torch.Generator().manual_seed(6)
    x, y = _logits(g, (40,), torch.float16), (torch.rand(40, generator=g) > 0.5).half()
    s = torch.jit.script(dt.sigmoid_focal_loss)
    for r in REDUCTIONS:
        got, want = s(x, y, reduction=r), dt.sigmoid_focal_loss(x, y, reduction=r)
        assert got.dtype == torch.float16 and torch.equal(got, want)


def test_scripted_gradient_has_no_graph_of_its_own():
    """First order only: the attached gradient is a constant, so a create_graph=True
    backward returns a gradient that does not require grad (a second backward through
    it raises torch's 'does not require grad'), never a silently wrong Hessian."""
    g = torch.Generator().manual_seed(7)
    x = _logits(g, (6,)).requires_grad_()
    y = (torch.rand(6, generator=g) > 0.5).float()
    loss = torch.jit.script(dt.sigmoid_focal_loss)(x, y, reduction="sum")
    gx, = torch.autograd.grad(loss, x, create_graph=True)
    assert not gx.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        gx.pow(2).sum().backward()


class _Head(torch.nn.Module):
    """A module whose forward calls detloss: scripted as a whole, saved, loaded."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, feats: torch.Tensor, gt: torch.Tensor, labels: torch.Tensor):
        pred = self.lin(feats)
        boxes = torch.cat([pred[:, :2], pred[:, :2] + pred[:, 2:].exp()], 1)
        box = dt.generalized_box_iou_loss(boxes, gt, reduction="mean")
        cls = dt.sigmoid_focal_loss(pred[:, 0], labels, reduction="sum")
        iou = dt.box_iou(boxes.detach(), gt)
        return box + cls, iou


def test_a_scripted_module_saves_loads_and_trains_like_the_eager_one():
    torch.manual_seed(8)
    eager = _Head()
    scripted = torch.jit.script(eager)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    assert "detloss::generalized_box_iou_loss" in str(loaded.inlined_graph)
    g = torch.Generator().manual_seed(9)
    feats, gt = torch.randn(10, 4, generator=g), _boxes(g, 10)
    labels = (torch.rand(10, generator=g) > 0.5).float()
    want, want_iou = eager(feats, gt, labels)
    want_grads = torch.autograd.grad(want, list(eager.parameters()))
    for m in (scripted, loaded):
        for _ in range(CALLS):
            got, got_iou = m(feats, gt, labels)
            assert torch.equal(got.detach(), want.detach()) and torch.equal(got_iou, want_iou)
            grads = torch.autograd.grad(got, list(m.parameters()))
            for a, b in zip(grads, want_grads):
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)  # float32 products
                # in the Linear backward; the loss gradients themselves are bitwise equal


def test_scripted_argument_errors_carry_detloss_message():
    g = torch.Generator().manual_seed(10)
    a = _boxes(g, 3)
    s = torch.jit.script(dt.generalized_box_iou_loss)
    with pytest.raises(torch.jit.Error, match="reduction: must be 'none', 'sum' or 'mean'"):
        s(a, a, "xyz")
    with pytest.raises(torch.jit.Error, match="boxes2: shape"):
        s(a, a[:2])
    with pytest.raises(torch.jit.Error, match="TypeError: .*boxes1: must be a floating-point"):
        s(a > 1, a)
    with pytest.raises(torch.jit.Error, match="box_iou: boxes1: requires grad"):
        torch.jit.script(dt.box_iou)(a.clone().requires_grad_(), a)
    with torch.no_grad():  # as in eager mode: without grad mode the boxes are constants
        torch.jit.script(dt.box_iou)(a.clone().requires_grad_(), a)


def _eager_only(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return dt.sigmoid_focal_loss(x, y) + dt.l1_loss(x, y)


def test_scripting_code_that_also_calls_an_eager_only_function_names_it():
    with pytest.raises(RuntimeError, match="detloss.torch.l1_loss is an eager-mode function"):
        torch.jit.script(_eager_only)


class _Focal(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor):
        return dt.sigmoid_focal_loss(x, y, reduction="sum")


_LOAD = """
import sys
import torch
if sys.argv[2] == "import":
    sys.path.insert(0, sys.argv[3])
    import detloss.torch  # noqa: F401  registers torch.ops.detloss.*
try:
    m = torch.jit.load(sys.argv[1])
except RuntimeError as e:
    print("LOAD FAILED", str(e).strip().splitlines()[0])
    sys.exit(0)
x = torch.linspace(-3, 3, 7)
print(repr(m(x, (x > 0).float()).item()))
"""


def test_a_saved_module_loads_in_a_new_process_after_importing_detloss(tmp_path):
    import os
    import subprocess
    import sys
    path = str(tmp_path / "focal.pt")
    torch.jit.save(torch.jit.script(_Focal()), path)
    pydir = os.path.dirname(os.path.dirname(os.path.abspath(dt.__file__)))
    run = [sys.executable, "-c", _LOAD, path]
    without = subprocess.run(run + ["plain"], capture_output=True, text=True, timeout=120)
    assert "LOAD FAILED Unknown builtin op: detloss::sigmoid_focal_loss" in without.stdout, \
        without.stdout + without.stderr
    with_ = subprocess.run(run + ["import", pydir], capture_output=True, text=True, timeout=120)
    assert with_.returncode == 0, with_.stderr
    x = torch.linspace(-3, 3, 7)
    assert float(with_.stdout.strip()) == dt.sigmoid_focal_loss(x, (x > 0).float(),
                                                                reduction="sum").item()


def test_a_scripted_torchvision_retinanet_trains_on_detloss_like_the_eager_one(monkeypatch):
    """torchvision's RetinaNet, scripted as a whole in training mode with detloss's
    sigmoid_focal_loss and box_iou patched in: the same losses (bitwise) and parameter
    gradients (float32 tolerance of torch.testing: rtol 1.3e-6, atol 1e-5) as eager mode.
    (TorchScript caches the compiled RetinaNet code with detloss in it for this process:
    no other test here scripts a torchvision model.)"""
    retinanet = pytest.importorskip("torchvision.models.detection.retinanet")
    monkeypatch.setattr(retinanet, "sigmoid_focal_loss", dt.sigmoid_focal_loss)
    monkeypatch.setattr(retinanet.box_ops, "box_iou", dt.box_iou)
    torch.manual_seed(11)
    model = retinanet.retinanet_resnet50_fpn(weights=None, weights_backbone=None,
                                             num_classes=5, min_size=96, max_size=128)
    model.train()
    images = [torch.rand(3, 96, 128), torch.rand(3, 90, 120)]
    targets = [{"boxes": torch.tensor([[10., 20, 60, 90], [30, 30, 100, 80]]),
                "labels": torch.tensor([1, 3])},
               {"boxes": torch.tensor([[5., 5, 50, 40]]), "labels": torch.tensor([2])}]
    params = [p for p in model.parameters() if p.requires_grad]
    want = model(images, targets)
    want_grads = torch.autograd.grad(sum(want.values()), params)
    scripted = torch.jit.script(model)
    got, _ = scripted(images, targets)
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    got_grads = torch.autograd.grad(sum(got.values()),
                                    [p for p in scripted.parameters() if p.requires_grad])
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b)
