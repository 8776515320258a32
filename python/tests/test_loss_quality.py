"""Quality Focal, Distribution Focal and Varifocal losses through the numpy API
(detloss.ops.loss picks them up from the library's registry), against float64 torch
references written from mmdetection's / ultralytics' / RT-DETR's published semantics
(values and autograd gradients), and against the committed fixture
tests/fixtures/loss_quality/loss_quality.json. Tolerance: float32 against float64,
rtol 1e-5, atol 1e-6 (as the C suite)."""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import detloss
from detloss import ops
from conftest import REPO

FIXTURE = os.path.join(REPO, "tests", "fixtures", "loss_quality", "loss_quality.json")
RTOL, ATOL = 1e-5, 1e-6


def qfl_ref(pred, target, beta=2.0):
    s = pred.sigmoid()
    loss = F.binary_cross_entropy_with_logits(pred, torch.zeros_like(pred),
                                              reduction="none") * s.pow(beta)
    pos = target != 0
    loss[pos] = F.binary_cross_entropy_with_logits(pred[pos], target[pos], reduction="none") \
        * (target[pos] - s[pos]).abs().pow(beta)
    return loss.sum(1)


def dfl_ref(pred, label):
    dl = label.long()
    dr = dl + 1
    return F.cross_entropy(pred, dl, reduction="none") * (dr.double() - label) + \
        F.cross_entropy(pred, dr, reduction="none") * (label - dl.double())


def vfl_ref(pred, q, alpha=0.75, gamma=2.0, iou_weighted=True, detach=False):
    s = pred.sigmoid()
    sd = s.detach() if detach else s
    pos = (q > 0).double()
    fw = (q if iou_weighted else 1.0) * pos + alpha * (sd - q).abs().pow(gamma) * (1 - pos)
    return F.binary_cross_entropy_with_logits(pred, q, reduction="none") * fw


def _f32(a):
    return np.asarray(a, np.float32)


def _ref(fn, x, y, reduction, weight=None, **kw):
    xt = torch.tensor(_f32(x), dtype=torch.float64, requires_grad=True)
    yt = torch.tensor(_f32(y), dtype=torch.float64)
    per = fn(xt, yt, **kw)
    if weight is not None:
        per = per * torch.tensor(_f32(weight), dtype=torch.float64)
    loss = per if reduction == "none" else per.sum() if reduction == "sum" else per.mean()
    (g,) = torch.autograd.grad(loss.sum(), xt)
    return loss.detach().numpy(), g.numpy()


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_quality_focal_matches_mmdetection(reduction, beta):
    rng = np.random.default_rng(1)
    x = _f32(rng.normal(size=(9, 6)) * 3)
    y = _f32(rng.random((9, 6)) * (rng.random((9, 6)) < 0.3))
    w = _f32(rng.random(9) * 2)
    l, g = ops.loss("quality_focal", x, y, w, reduction, grad=True, beta=beta)
    el, eg = _ref(qfl_ref, x, y, reduction, w, beta=beta)
    np.testing.assert_allclose(l, el, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g, eg, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_distribution_focal_matches_mmdetection(reduction):
    rng = np.random.default_rng(2)
    x = _f32(rng.normal(size=(11, 17)) * 2)
    y = _f32(rng.random(11) * 15.9)
    l, g = ops.loss("distribution_focal", x, y, None, reduction, grad=True)
    el, eg = _ref(dfl_ref, x, y, reduction)
    np.testing.assert_allclose(l, el, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g, eg, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("detach", [False, True])
def test_varifocal_matches_mmdetection_and_rtdetr(reduction, gamma, detach):
    rng = np.random.default_rng(3)
    x = _f32(rng.normal(size=(7, 5)) * 3)
    x[0, :2] = (100, -100)
    q = _f32(rng.random((7, 5)) * (rng.random((7, 5)) < 0.3))
    l, g = ops.loss("varifocal", x, q, None, reduction, grad=True, gamma=gamma,
                    detach_weight=detach)
    el, eg = _ref(vfl_ref, x, q, reduction, gamma=gamma, detach=detach)
    np.testing.assert_allclose(l, el, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g, eg, rtol=RTOL, atol=ATOL)


def test_varifocal_without_iou_weighting():
    rng = np.random.default_rng(4)
    x = _f32(rng.normal(size=(5, 4)))
    q = _f32(rng.random((5, 4)) * (rng.random((5, 4)) < 0.5))
    l, g = ops.loss("varifocal", x, q, reduction="sum", grad=True, iou_weighted=False)
    el, eg = _ref(vfl_ref, x, q, "sum", iou_weighted=False)
    np.testing.assert_allclose(l, el, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g, eg, rtol=RTOL, atol=ATOL)


def test_the_committed_fixture_agrees():
    with open(FIXTURE) as f:
        cases = json.load(f)["cases"]
    assert len(cases) == 43
    for c in cases:
        params = dict(c["params"])
        l, g = ops.loss(c["loss"], c["input"], c["target"], c.get("weight"), c["reduction"],
                        grad=True, **params)
        np.testing.assert_allclose(l, c["expected_loss"], rtol=RTOL, atol=ATOL, err_msg=c["name"])
        np.testing.assert_allclose(g, c["expected_grad"], rtol=RTOL, atol=ATOL,
                                   err_msg=c["name"])


def test_kinks_and_saturation_are_finite_where_autograd_is_not():
    x = _f32([[0.0, 100.0, -100.0]])
    y = _f32([[0.5, 0.0, 0.3]])
    for beta in (0.0, 0.25, 0.5, 2.0):
        l, g = ops.loss("quality_focal", x, y, reduction="sum", grad=True, beta=beta)
        assert np.isfinite(l) and np.isfinite(g).all()
        assert g[0, 0] == 0.0  # the kink s = y
    xt = torch.tensor([[0.0]], dtype=torch.float64, requires_grad=True)
    qfl_ref(xt, torch.tensor([[0.5]], dtype=torch.float64), 0.5).sum().backward()
    assert torch.isnan(xt.grad).all()  # autograd: 0 * inf at the kink


def test_errors_name_the_argument():
    x = _f32([[0.0, 1.0, 2.0]])
    with pytest.raises(detloss.DetlossError) as e:
        ops.loss("distribution_focal", x, _f32([2.5]))
    assert e.value.where == "target[0]"
    with pytest.raises(detloss.DetlossError):
        ops.loss("quality_focal", x, _f32([0.5]))
    with pytest.raises(detloss.DetlossError) as e:
        ops.loss("varifocal", x, _f32([[0, 1.5, 0]]))
    assert e.value.where.startswith("target")
    with pytest.raises(detloss.DetlossError):
        ops.loss("varifocal", x, _f32([[0, 0.5, 0]]), detach_weight="yes")


def test_torch_autograd_functions_match_the_references():
    import detloss.torch as dt
    rng = np.random.default_rng(5)
    x = torch.tensor(_f32(rng.normal(size=(6, 5)) * 3))
    y = torch.tensor(_f32(rng.random((6, 5)) * (rng.random((6, 5)) < 0.4)))
    w = torch.tensor(_f32(rng.random(6)))
    for red in ("none", "sum", "mean"):
        cases = [
            (lambda a: dt.quality_focal_loss(a, y, weight=w, reduction=red),
             lambda a: qfl_ref(a, y.double()) * w.double(), "row"),
            (lambda a: dt.varifocal_loss(a, y, reduction=red, detach_weight=True),
             lambda a: vfl_ref(a, y.double(), detach=True), "elem"),
            (lambda a: dt.distribution_focal_loss(a, y[:, 0] * 4, reduction=red),
             lambda a: dfl_ref(a, y[:, 0].double() * 4), "row"),
        ]
        for ours, ref, _ in cases:
            a = x.clone().requires_grad_(True)
            l = ours(a)
            (l.sum() * 1.5).backward()
            b = x.double().clone().requires_grad_(True)
            per = ref(b)
            lr = per if red == "none" else per.sum() if red == "sum" else per.mean()
            (lr.sum() * 1.5).backward()
            np.testing.assert_allclose(l.detach().numpy(), lr.detach().numpy(), rtol=RTOL,
                                       atol=ATOL)
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL)
