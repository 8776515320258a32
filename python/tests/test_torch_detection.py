"""detloss.torch's detection utility classes against torchvision 0.14's (BoxCoder, Matcher,
BalancedPositiveNegativeSampler, AnchorGenerator), and the patch_* helpers: deepcopy,
pickle round trip and unpatch for every one of them."""
import copy
import io
import pickle

import pytest

torch = pytest.importorskip("torch")
tv_utils = pytest.importorskip("torchvision.models.detection._utils")
from torchvision.models.detection import anchor_utils as tv_anchor  # noqa: E402
from torchvision.models.detection.image_list import ImageList  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

import detloss.torch as dt  # noqa: E402
from detloss import DetlossError  # noqa: E402
from detloss import torch_detection as td  # noqa: E402


def _boxes(g, n, scale=100.0, dtype=torch.float32):
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale / 2 + 1
    return torch.cat([xy, xy + wh], 1).to(dtype)


WEIGHTS = [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]


# ------------------------------------------------------------------------------ BoxCoder
@pytest.mark.parametrize("w", WEIGHTS)
def test_box_coder_encode_single_equals_torchvisions_float32_to_rounding_and_float64_exactly(w):
    g = torch.Generator().manual_seed(1)
    a, b = _boxes(g, 2000), _boxes(g, 2000)
    ref, got = tv_utils.BoxCoder(w).encode_single(b, a), dt.BoxCoder(w).encode_single(b, a)
    assert got.dtype == ref.dtype == torch.float32 and got.shape == ref.shape
    # C logf vs torch's vectorised log: an ulp of the log term (deltas are O(1) here)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    a64, b64 = a.double(), b.double()
    ref = tv_utils.BoxCoder(w).encode_single(b64, a64)
    got = dt.BoxCoder(w).encode_single(b64, a64)
    assert got.dtype == torch.float64 and torch.equal(got, ref)


@pytest.mark.parametrize("w", WEIGHTS)
@pytest.mark.parametrize("k", [1, 3])
def test_box_coder_decode_single_equals_torchvisions_with_classes_and_clip(w, k):
    g = torch.Generator().manual_seed(2)
    a = _boxes(g, 1000)
    d = torch.randn(1000, 4 * k, generator=g) * 2
    d[::7, 2] = 30.0  # beyond bbox_xform_clip * ww: clamped
    ref = tv_utils.BoxCoder(w).decode_single(d, a)
    got = dt.BoxCoder(w).decode_single(d, a)
    assert got.dtype == ref.dtype and got.shape == ref.shape == (1000, 4 * k)
    # coordinates up to ~1e4 (clamped exp): a few float32 ulps of the coordinate
    torch.testing.assert_close(got, ref, rtol=2e-6, atol=1e-4)
    ref64 = tv_utils.BoxCoder(w).decode_single(d.double(), a)
    assert torch.equal(dt.BoxCoder(w).decode_single(d.double(), a), ref64)


@pytest.mark.parametrize("w", WEIGHTS)
def test_box_coder_decode_single_gradients_equal_torchvisions(w):
    g = torch.Generator().manual_seed(3)
    a = _boxes(g, 500)
    d = torch.randn(500, 8, generator=g)
    d[::5, 2] = 30.0  # clamped: no gradient through dw there
    go = torch.randn(500, 8, generator=g)
    grads = []
    for coder in (tv_utils.BoxCoder(w), dt.BoxCoder(w)):
        dd, aa = d.clone().requires_grad_(), a.clone().requires_grad_()
        (coder.decode_single(dd, aa) * go).sum().backward()
        grads.append((dd.grad, aa.grad))
    # float32 closed form vs torch's autograd chain: relative 1e-5 of the largest entry
    for got, ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    assert torch.all(grads[1][0][::5, 2] == 0)


def test_box_coder_decode_gradient_matches_finite_differences_in_float64():
    # the closed form of _DecodeFunction, checked against central differences of the
    # float64 formula (torch.autograd.gradcheck of the float64 torch path) at the float32
    # point: analytic (float32) vs numeric agree to 1e-4 relative
    g = torch.Generator().manual_seed(4)
    a = _boxes(g, 20)
    d = torch.randn(20, 4, generator=g)
    coder = dt.BoxCoder((10.0, 10.0, 5.0, 5.0))
    dd, aa = d.clone().requires_grad_(), a.clone().requires_grad_()
    go = torch.randn(20, 4, generator=g, dtype=torch.float64)
    (coder.decode_single(dd, aa) * go.float()).sum().backward()
    f = lambda x, y: (coder.decode_single(x, y) * go).sum()  # noqa: E731 (float64 path)
    d64, a64, h = d.double(), a.double(), 1e-6
    for t, grad in ((d64, dd.grad), (a64, aa.grad)):
        num = torch.zeros_like(t)
        for i in range(t.shape[0]):
            for j in range(4):
                tp, tm = t.clone(), t.clone()
                tp[i, j] += h
                tm[i, j] -= h
                args_p = (tp, a64) if t is d64 else (d64, tp)
                args_m = (tm, a64) if t is d64 else (d64, tm)
                num[i, j] = (f(*args_p) - f(*args_m)) / (2 * h)
        torch.testing.assert_close(grad.double(), num, rtol=1e-4, atol=1e-4)


def test_box_coder_lists_and_errors_follow_torchvision():
    g = torch.Generator().manual_seed(5)
    a = [_boxes(g, 30), _boxes(g, 0), _boxes(g, 12)]
    b = [_boxes(g, 30), _boxes(g, 0), _boxes(g, 12)]
    ref, got = tv_utils.BoxCoder((1, 1, 1, 1)), dt.BoxCoder((1, 1, 1, 1))
    r, o = ref.encode(b, a), got.encode(b, a)
    assert isinstance(o, tuple) and [t.shape for t in o] == [t.shape for t in r]
    for x, y in zip(o, r):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
    codes = torch.randn(42, 4, generator=g)
    rd, od = ref.decode(codes, a), got.decode(codes, a)
    assert od.shape == rd.shape == (42, 1, 4)
    torch.testing.assert_close(od, rd, rtol=2e-6, atol=1e-4)
    for bad_args in ((codes, a[0]), (codes.tolist(), a)):
        with pytest.raises(AssertionError) as e_ref:
            ref.decode(*bad_args)
        with pytest.raises(AssertionError) as e_got:
            got.decode(*bad_args)
        assert str(e_got.value) == str(e_ref.value)
    # zero-width boxes: torchvision's inf / NaN, not an error
    z = torch.tensor([[0.0, 0, 0, 10]])
    assert torch.equal(got.encode_single(z, z).isnan(), ref.encode_single(z, z).isnan())
    assert got.weights == (1, 1, 1, 1) and got.bbox_xform_clip == ref.bbox_xform_clip


# ------------------------------------------------------------------------------ Matcher
@pytest.mark.parametrize("low_quality", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matcher_on_a_quality_matrix_equals_torchvisions_with_ties_and_nan(low_quality, dtype):
    g = torch.Generator().manual_seed(6)
    for trial in range(20):
        q = (torch.rand(7, 300, generator=g, dtype=torch.float64) * 10).floor() / 10  # ties
        q[:, ::17] = float("nan") if trial % 3 == 0 else q[:, ::17]
        q = q.to(dtype)
        ref = tv_utils.Matcher(0.7, 0.3, low_quality)(q)
        got = dt.Matcher(0.7, 0.3, low_quality)(q)
        assert got.dtype == torch.int64 and torch.equal(got, ref)


def test_matcher_errors_and_constants_follow_torchvision():
    m, r = dt.Matcher(0.5, 0.4, True), tv_utils.Matcher(0.5, 0.4, True)
    assert (m.BELOW_LOW_THRESHOLD, m.BETWEEN_THRESHOLDS) == (-1, -2)
    assert (dt.Matcher.BELOW_LOW_THRESHOLD, dt.Matcher.BETWEEN_THRESHOLDS) == (-1, -2)
    for shape in ((0, 5), (3, 0), (0, 0)):
        with pytest.raises(ValueError) as e_ref:
            r(torch.zeros(shape))
        with pytest.raises(ValueError) as e_got:
            m(torch.zeros(shape))
        assert str(e_got.value) == str(e_ref.value)
    with pytest.raises(ValueError, match="No ground-truth"):
        m.match_boxes(torch.zeros(0, 4), torch.ones(3, 4))
    with pytest.raises(ValueError, match="No proposal"):
        m.match_boxes(torch.ones(3, 4), torch.zeros(0, 4))
    with pytest.raises(AssertionError, match="low_threshold should be <= high_threshold"):
        dt.Matcher(0.3, 0.7)


@pytest.mark.parametrize("low_quality", [False, True])
def test_matcher_fused_path_equals_torchvisions_matcher_on_box_iou(low_quality):
    g = torch.Generator().manual_seed(7)
    ag = dt.AnchorGenerator(((16,), (32,)), ((0.5, 1.0, 2.0),) * 2)
    il = ImageList(torch.zeros(1, 3, 96, 128), [(96, 128)])
    anchors = ag(il, [torch.zeros(1, 1, 24, 32), torch.zeros(1, 1, 12, 16)])
    grid = ag.grid_for(anchors)
    assert grid is not None
    for _ in range(10):
        gt = _boxes(g, 9, scale=90)
        for thr in ((0.7, 0.3), (0.5, 0.4), (0.5, 0.5)):
            ref = tv_utils.Matcher(*thr, low_quality)(box_iou(gt, anchors[0]))
            m = dt.Matcher(*thr, low_quality)
            assert torch.equal(m.match_boxes(gt, anchors[0]), ref)
            assert torch.equal(m.match_boxes(gt, anchors[0], anchor_grid=grid), ref)
            assert torch.equal(m.match_boxes(gt.double(), anchors[0], num_threads=1), ref)


# ------------------------------------------------------------------------------ sampler
def _labels(g, n_images=3, n=400):
    # RPN-style float labels (1 / 0 / -1) and ROI-style int64 class labels (>= 1 / 0 / -1)
    out = [torch.randint(-1, 2, (n,), generator=g).float() for _ in range(n_images)]
    out.append(torch.randint(-1, 4, (n,), generator=g))
    out.append(torch.zeros(5))  # few candidates: budget not filled
    return out


@pytest.mark.parametrize("bs,frac", [(64, 0.5), (256, 0.25), (10, 1.0), (0, 0.5)])
def test_sampler_torch_mode_draws_exactly_as_torchvision(bs, frac):
    lab = _labels(torch.Generator().manual_seed(8))
    torch.manual_seed(123)
    ref = tv_utils.BalancedPositiveNegativeSampler(bs, frac)(lab)
    after_ref = torch.rand(3)
    torch.manual_seed(123)
    s = dt.BalancedPositiveNegativeSampler(bs, frac)
    assert s.generator == "torch"
    got = s(lab)
    after_got = torch.rand(3)
    for x, y in zip(got[0] + got[1], ref[0] + ref[1]):
        assert x.dtype == y.dtype == torch.uint8 and torch.equal(x, y)
    assert torch.equal(after_got, after_ref)  # the generator advanced exactly as torchvision's


def test_sampler_detloss_mode_has_torchvisions_counts_and_its_documented_draws():
    lab = _labels(torch.Generator().manual_seed(9))
    ref = tv_utils.BalancedPositiveNegativeSampler(64, 0.25)(lab)
    s = dt.BalancedPositiveNegativeSampler(64, 0.25, generator="detloss", seed=7)
    got = s(lab)
    for x, y, lb in zip(got[0] + got[1], ref[0] + ref[1], lab + lab):
        assert x.dtype == torch.uint8 and int(x.sum()) == int(y.sum())
    for pm, nm, lb in zip(got[0], got[1], lab):
        assert bool(torch.all(lb[pm.bool()] >= 1)) and bool(torch.all(lb[nm.bool()] == 0))
    # a fixed seed draws nothing from torch's generator and gives the same subset again
    torch.manual_seed(1)
    again = s(lab)
    x1 = torch.rand(1)
    torch.manual_seed(1)
    x0 = torch.rand(1)
    assert torch.equal(x1, x0)
    assert all(torch.equal(a, b) for a, b in zip(again[0] + again[1], got[0] + got[1]))
    # seed=None: exactly one torch.randint(0, 2**62, (1,)) per call
    s2 = dt.BalancedPositiveNegativeSampler(64, 0.25, generator="detloss")
    torch.manual_seed(2)
    s2(lab)
    y1 = torch.rand(1)
    torch.manual_seed(2)
    torch.randint(0, 2 ** 62, (1,))
    assert torch.equal(torch.rand(1), y1)
    with pytest.raises(DetlossError) as e:
        dt.BalancedPositiveNegativeSampler(64, 0.25, generator="numpy")
    assert e.value.where == "generator"


# ------------------------------------------------------------------------------ anchors
GEN_ARGS = [(((32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 3),
            (((16, 24), (40,)), ((0.5, 1.0), (1.0, 2.0, 3.0))),
            ((128, 256, 512), (0.5, 1.0, 2.0))]  # not nested: torchvision's normalisation


@pytest.mark.parametrize("sizes,ratios", GEN_ARGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_anchor_generator_equals_torchvisions(sizes, ratios, dtype):
    ref, got = tv_anchor.AnchorGenerator(sizes, ratios), dt.AnchorGenerator(sizes, ratios)
    assert got.num_anchors_per_location() == ref.num_anchors_per_location()
    assert got.sizes == ref.sizes and got.aspect_ratios == ref.aspect_ratios
    assert all(torch.equal(a, b) for a, b in zip(got.cell_anchors, ref.cell_anchors))
    n = len(ref.cell_anchors)
    il = ImageList(torch.zeros(2, 3, 200, 264), [(200, 264), (190, 250)])
    fms = [torch.zeros(2, 4, 200 // 2 ** (l + 2), 264 // 2 ** (l + 2), dtype=dtype)
           for l in range(n)]
    r, o = ref(il, fms), got(il, fms)
    assert len(o) == 2 and all(x.dtype == dtype and torch.equal(x, y) for x, y in zip(o, r))
    assert o[0].data_ptr() != o[1].data_ptr()  # one tensor per image, as torch.cat gives
    assert got.grid_for(o) is not None and got.grid_for(list(o)) is None
    # customised cell anchors are honoured, as torchvision's grid_anchors does
    for m in (ref, got):
        m.cell_anchors = [c * 2 + 1 for c in m.cell_anchors]
    assert all(torch.equal(x, y) for x, y in zip(got(il, fms), ref(il, fms)))
    # non-integral cell anchors in float64: still torchvision's float64 sums
    for m in (ref, got):
        m.cell_anchors = [c + 0.1 for c in m.cell_anchors]
    assert all(torch.equal(x, y) for x, y in zip(got(il, fms), ref(il, fms)))
    with pytest.raises(AssertionError) as e_ref:
        ref(il, fms[:-1] + fms[:1] + fms[:1])
    with pytest.raises(AssertionError) as e_got:
        got(il, fms[:-1] + fms[:1] + fms[:1])
    assert str(e_got.value).split() == str(e_ref.value).split()


# ------------------------------------------------------------------------------ patches
def tiny_backbone(channels=16):
    b = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(),
                            torch.nn.Conv2d(8, channels, 3, 2, 1), torch.nn.ReLU())
    b.out_channels = channels
    return b


def tiny_faster_rcnn(seed=0):
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign
    torch.manual_seed(seed)
    return FasterRCNN(tiny_backbone(), num_classes=None,
                      rpn_anchor_generator=AnchorGenerator(((16, 32, 64),), ((0.5, 1.0, 2.0),)),
                      box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
                      box_head=TwoMLPHead(16 * 7 * 7, 32), box_predictor=FastRCNNPredictor(32, 3),
                      min_size=96, max_size=96, rpn_batch_size_per_image=64,
                      box_batch_size_per_image=64)


def tiny_retinanet(seed=0):
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    torch.manual_seed(seed)
    return RetinaNet(tiny_backbone(), num_classes=3,
                     anchor_generator=AnchorGenerator(((16, 32, 64),), ((0.5, 1.0, 2.0),)),
                     min_size=96, max_size=96)


def batch(step, n=2, size=96):
    g = torch.Generator().manual_seed(1000 + step)
    images = [torch.rand(3, size, size, generator=g) for _ in range(n)]
    targets = []
    for _ in range(n):
        b = _boxes(g, 3, scale=size * 0.6)
        targets.append({"boxes": b, "labels": torch.randint(1, 3, (3,), generator=g)})
    return images, targets


def losses_of(model, step=0, seed=42):
    torch.manual_seed(seed)
    model.train()
    images, targets = batch(step)
    return {k: v.item() for k, v in model(images, targets).items()}


PATCHES = {
    "patch_rpn": (tiny_faster_rcnn, dt.patch_rpn, lambda m: [m.rpn, m.rpn.anchor_generator]),
    "patch_rpn_detloss": (tiny_faster_rcnn, lambda m: dt.patch_rpn(m, sampler="detloss"),
                          lambda m: [m.rpn]),
    "patch_retinanet": (tiny_retinanet, dt.patch_retinanet,
                        lambda m: [m, m.anchor_generator]),
    "patch_box_coder": (tiny_faster_rcnn, dt.patch_box_coder,
                        lambda m: [m.rpn.box_coder, m.roi_heads.box_coder]),
    "patch_matcher": (tiny_faster_rcnn, dt.patch_matcher,
                      lambda m: [m.rpn.proposal_matcher, m.roi_heads.proposal_matcher]),
    "patch_sampler": (tiny_faster_rcnn, dt.patch_sampler,
                      lambda m: [m.rpn.fg_bg_sampler, m.roi_heads.fg_bg_sampler]),
    "patch_sampler_detloss": (tiny_faster_rcnn,
                              lambda m: dt.patch_sampler(m, generator="detloss", seed=5),
                              lambda m: [m.rpn.fg_bg_sampler]),
    "patch_anchor_generator": (tiny_retinanet, dt.patch_anchor_generator,
                               lambda m: [m.anchor_generator]),
}


@pytest.mark.parametrize("name", sorted(PATCHES))
def test_patched_model_deep_copies_pickles_and_unpatches(name):
    build, patch, patched_parts = PATCHES[name]
    model = build()
    stock_types = [type(o) for o in patched_parts(model)]
    stock = losses_of(model)
    assert patch(model) is model
    parts = patched_parts(model)
    assert all(dt.is_patched(o) and isinstance(o, t) for o, t in zip(parts, stock_types))
    ref = losses_of(model)
    if name in ("patch_box_coder", "patch_matcher", "patch_sampler", "patch_anchor_generator",
                "patch_rpn", "patch_retinanet"):  # torchvision's draws: stock's values
        for k in stock:
            assert ref[k] == pytest.approx(stock[k], rel=1e-5, abs=1e-7), k
    # a deep copy runs on its own modules: the original's are never called
    twin = copy.deepcopy(model)
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in model.modules()]
    assert losses_of(twin) == ref and calls == []
    for h in hooks:
        h.remove()
    assert all(dt.is_patched(o) for o in patched_parts(twin))
    # and its own parameters: changing the copy leaves the original's losses alone
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
    assert losses_of(twin) != ref and losses_of(model) == ref
    # pickle and torch.save round trips give a patched model with the same losses
    loaded = pickle.loads(pickle.dumps(model))
    assert all(dt.is_patched(o) for o in patched_parts(loaded)) and losses_of(loaded) == ref
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    assert losses_of(torch.load(buf)) == ref
    # unpatch restores torchvision's classes and stock behaviour
    assert dt.unpatch(model) is model
    assert [type(o) for o in patched_parts(model)] == stock_types
    assert not any(k.startswith("_detloss_") for o in patched_parts(model) for k in vars(o))
    assert losses_of(model) == stock


def test_patched_rpn_on_images_without_gt_gives_torchvisions_losses():
    model = tiny_faster_rcnn()
    images, _ = batch(0)
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
             for _ in images]
    torch.manual_seed(0)
    ref = {k: v.item() for k, v in model.train()(images, empty).items()}
    dt.patch_rpn(model)
    torch.manual_seed(0)
    got = {k: v.item() for k, v in model(images, empty).items()}
    assert got["loss_rpn_box_reg"] == ref["loss_rpn_box_reg"] == 0.0
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-6), k


def test_a_standalone_anchor_generator_pickles_without_its_grid_cache():
    gen = dt.AnchorGenerator(((16,),), ((1.0,),))
    il = ImageList(torch.zeros(1, 3, 32, 32), [(32, 32)])
    a = gen(il, [torch.zeros(1, 1, 8, 8)])
    assert gen.grid_for(a) is not None
    back = pickle.loads(pickle.dumps(gen))
    assert "_detloss_cache" not in vars(back) and back.grid_for(a) is None
    assert torch.equal(back(il, [torch.zeros(1, 1, 8, 8)])[0], a[0])


def test_patched_classes_are_rebuilt_by_name_in_a_fresh_lookup():
    cls = type(dt.patch_matcher(tv_utils.Matcher(0.5, 0.4)))
    name = cls.__qualname__
    del td._PATCHED[(td.Matcher.__name__, tv_utils.Matcher)]
    del td.__dict__[name]
    rebuilt = getattr(td, name)
    assert rebuilt.__qualname__ == name and rebuilt._detloss_base is tv_utils.Matcher
    assert issubclass(rebuilt, td.Matcher) and issubclass(rebuilt, tv_utils.Matcher)


def test_patch_helpers_refuse_what_they_cannot_patch():
    with pytest.raises(dt.DetlossTypeError) as e:
        dt.patch_retinanet(None)
    assert e.value.where == "model"
    with pytest.raises(dt.DetlossTypeError) as e:
        dt.patch_rpn(object())
    assert e.value.where == "model"
    with pytest.raises(DetlossError) as e:
        dt.patch_rpn(tiny_faster_rcnn(), sampler="numpy")
    assert e.value.where == "sampler"
    with pytest.raises(dt.DetlossTypeError) as e:
        dt.patch_rpn(tiny_faster_rcnn(), seed=3)  # a detloss-sampler option
    assert e.value.where == "seed"
    m = tiny_faster_rcnn()
    with pytest.raises(DetlossError) as e:
        dt.patch_sampler(m, generator="numpy")
    assert e.value.where == "generator" and not dt.is_patched(m.rpn.fg_bg_sampler)
