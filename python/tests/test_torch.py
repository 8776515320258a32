"""detloss.torch against torchvision's own functions, value and gradient.

detloss computes in float32, so torch.autograd.gradcheck (which needs float64
to be meaningful) does not apply; instead every value and gradient is compared
with torchvision's autograd at stated float32 tolerances: against torchvision
in float32 (rtol 1e-5, atol 1e-6 for values; rtol 1e-4, atol 1e-6 for
gradients) and against torchvision in float64 (rtol 1e-4, atol 1e-6), the
float64 result being the better reference for both."""
import types

import pytest

torch = pytest.importorskip("torch")
tvo = pytest.importorskip("torchvision.ops")

import detloss  # noqa: E402
import detloss.torch as dt  # noqa: E402
from detloss import DetlossError  # noqa: E402

VAL = dict(rtol=1e-5, atol=1e-6)
GRAD = dict(rtol=1e-4, atol=1e-6)


def _boxes(g, n, scale=100.0):
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale / 2 + 1
    return torch.cat([xy, xy + wh], 1)


def _compare(ours, theirs, inputs, weight_seed=0):
    """value and gradient of sum(w * loss) with random w (so 'none' checks each element)."""
    w = torch.randn(theirs.shape, generator=torch.Generator().manual_seed(weight_seed),
                    dtype=theirs.dtype)
    ga = torch.autograd.grad((ours * w.to(ours.dtype)).sum(), inputs[0])
    gb = torch.autograd.grad((theirs * w).sum(), inputs[1])
    torch.testing.assert_close(ours.double(), theirs.double(), **VAL)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a.double(), b.double(), **GRAD)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 1.0), (0.5, 0.0)])
def test_sigmoid_focal_loss_matches_torchvision_in_value_and_gradient(reduction, alpha, gamma):
    g = torch.Generator().manual_seed(1)
    x64 = 3 * torch.randn(64, 7, generator=g, dtype=torch.float64)
    y64 = (torch.rand(64, 7, generator=g, dtype=torch.float64) < 0.2).double()
    for ref_dtype in (torch.float32, torch.float64):
        x = x64.float().requires_grad_()
        xr = x64.to(ref_dtype).requires_grad_()
        ours = dt.sigmoid_focal_loss(x, y64.float(), alpha, gamma, reduction)
        theirs = tvo.sigmoid_focal_loss(xr, y64.to(ref_dtype), alpha, gamma, reduction)
        assert ours.shape == theirs.shape and ours.dtype == torch.float32
        _compare(ours, theirs, ([x], [xr]))


def test_float64_inputs_give_float64_results_and_gradients():
    x = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    y = (torch.rand(10, 3) < 0.5).double()
    l = dt.sigmoid_focal_loss(x, y, reduction="sum")
    assert l.dtype == torch.float64
    l.backward()
    assert x.grad.dtype == torch.float64
    ref = torch.autograd.grad(tvo.sigmoid_focal_loss(x, y, reduction="sum"), x)[0]
    torch.testing.assert_close(x.grad, ref, **GRAD)


def test_the_focal_gradient_stays_finite_at_saturated_logits_where_autograd_gives_nan():
    x = torch.tensor([-100.0, 100.0, 0.0], requires_grad=True)
    y = torch.tensor([0.0, 1.0, 1.0])
    dt.sigmoid_focal_loss(x, y, gamma=0.5, reduction="sum").backward()
    assert torch.isfinite(x.grad).all()
    x2 = x.detach().clone().requires_grad_()
    tvo.sigmoid_focal_loss(x2, y, gamma=0.5, reduction="sum").backward()
    assert not torch.isfinite(x2.grad).all()  # torchvision: (1 - p_t)^-0.5 * 0 -> NaN


@pytest.mark.parametrize("name", ["generalized_box_iou_loss", "distance_box_iou_loss",
                                  "complete_box_iou_loss"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_box_losses_match_torchvision_for_both_boxes(name, reduction):
    g = torch.Generator().manual_seed(2)
    b1, b2 = _boxes(g, 40), _boxes(g, 40)
    b2[:5] = b1[:5] + 0.5  # heavy overlap
    for ref_dtype in (torch.float32, torch.float64):
        p, t = b1.float().requires_grad_(), b2.float().requires_grad_()
        pr, tr = b1.to(ref_dtype).requires_grad_(), b2.to(ref_dtype).requires_grad_()
        ours = getattr(dt, name)(p, t, reduction)
        theirs = getattr(tvo, name)(pr, tr, reduction)
        _compare(ours, theirs, ([p, t], [pr, tr]))


def test_box_losses_accept_leading_batch_dimensions():
    g = torch.Generator().manual_seed(3)
    b1, b2 = _boxes(g, 12).float().view(3, 4, 4), _boxes(g, 12).float().view(3, 4, 4)
    p, pr = b1.clone().requires_grad_(), b1.clone().requires_grad_()
    _compare(dt.generalized_box_iou_loss(p, b2), tvo.generalized_box_iou_loss(pr, b2),
             ([p], [pr]))


def test_iou_matrices_match_torchvision():
    g = torch.Generator().manual_seed(4)
    b1, b2 = _boxes(g, 20).float(), _boxes(g, 30).float()
    torch.testing.assert_close(dt.box_iou(b1, b2), tvo.box_iou(b1, b2), rtol=0, atol=0)
    for n in ("generalized_box_iou", "distance_box_iou", "complete_box_iou"):
        torch.testing.assert_close(getattr(dt, n)(b1, b2), getattr(tvo, n)(b1, b2), **VAL)
    torch.testing.assert_close(dt.box_area(b1), tvo.box_area(b1), rtol=0, atol=0)


def test_a_second_backward_through_the_same_loss_is_a_clear_error():
    x = torch.randn(5, requires_grad=True)
    l = dt.sigmoid_focal_loss(x, torch.zeros(5), reduction="sum")
    l.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="already handed to autograd"):
        l.backward()


def test_second_order_gradients_are_refused_not_silently_zero():
    # create_graph=True used to return a gradient without a graph
    x = torch.randn(5, requires_grad=True)
    l = dt.sigmoid_focal_loss(x, torch.zeros(5), reduction="sum")
    with pytest.raises(RuntimeError, match="second-order"):
        torch.autograd.grad(l, x, create_graph=True)


def test_bad_tensors_are_refused_naming_the_argument():
    y = torch.zeros(3)
    with pytest.raises(DetlossError) as e:
        dt.sigmoid_focal_loss(torch.zeros(3, device="meta"), y)
    assert e.value.where == "inputs" and e.value.status_name == "unsupported"
    with pytest.raises(TypeError) as e:
        dt.sigmoid_focal_loss(torch.zeros(3, dtype=torch.int64), y)
    assert e.value.where == "inputs"
    with pytest.raises(DetlossError) as e:
        dt.sigmoid_focal_loss(torch.zeros(3), torch.zeros(4))
    assert e.value.where == "targets"
    with pytest.raises(DetlossError) as e:
        dt.generalized_box_iou_loss(torch.zeros(3, 3), torch.zeros(3, 3))
    assert e.value.where == "boxes1"
    with pytest.raises(DetlossError) as e:
        dt.sigmoid_focal_loss(torch.tensor([float("nan")]), torch.zeros(1))
    assert e.value.where == "input[0]" and e.value.status_name == "nonfinite"
    # non-contiguous tensors are fine (copied)
    x = torch.randn(4, 6)[:, ::2].requires_grad_()
    torch.testing.assert_close(dt.sigmoid_focal_loss(x, torch.zeros(4, 3)),
                               tvo.sigmoid_focal_loss(x, torch.zeros(4, 3)), **VAL)


def _anchor_batch(n_images, A, seed):
    g = torch.Generator().manual_seed(seed)
    return [_boxes(g, A, 200).float() for _ in range(n_images)], g


def _retina_reference(loss_type, targets, cls, reg, anchors):
    from torchvision.models.detection import _utils as du
    from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
    head = RetinaNetHead(8, 1, cls.shape[-1])
    head.regression_head._loss_type = loss_type
    fake = types.SimpleNamespace(proposal_matcher=du.Matcher(0.5, 0.4, True), head=head)
    r = RetinaNet.compute_loss(fake, targets, {"cls_logits": cls, "bbox_regression": reg},
                               anchors)
    return r["classification"], r["bbox_regression"]


def _retina_inputs(seed=5):
    anchors, g = _anchor_batch(2, 400, seed)
    targets = [{"boxes": anchors[0][[3, 50, 100, 7]] + torch.randn(4, 4, generator=g),
                "labels": torch.tensor([1, 4, 0, 4])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    cls = torch.randn(2, 400, 5, generator=g).requires_grad_()
    reg = (0.1 * torch.randn(2, 400, 4, generator=g)).requires_grad_()
    return anchors, targets, cls, reg


@pytest.mark.parametrize("loss_type", ["l1", "smooth_l1", "giou", "diou", "ciou"])
def test_retina_loss_matches_torchvision_retinanet_compute_loss(loss_type):
    anchors, targets, cls, reg = _retina_inputs()
    rc, rb = _retina_reference(loss_type, targets, cls, reg, anchors)
    lc, lb = dt.retina_loss(cls, reg, anchors, targets, box_loss=loss_type)
    torch.testing.assert_close(lc, rc, **VAL)
    torch.testing.assert_close(lb, rb, **VAL)
    ga = torch.autograd.grad(rc + 2 * rb, [cls, reg])
    gb = torch.autograd.grad(lc + 2 * lb, [cls, reg])
    for a, b in zip(gb, ga):
        torch.testing.assert_close(a, b, **GRAD)


def test_retina_loss_takes_lists_of_per_image_tensors():
    anchors, targets, cls, reg = _retina_inputs(6)
    cl = [c.detach().clone().requires_grad_() for c in cls]
    rl = [r.detach().clone().requires_grad_() for r in reg]
    lc, lb = dt.retina_loss(cls, reg, anchors, targets)
    lc2, lb2 = dt.retina_loss(cl, rl, anchors, targets)
    assert lc.item() == lc2.item() and lb.item() == lb2.item()
    g = torch.autograd.grad(lc + lb, [cls, reg])
    g2 = torch.autograd.grad(lc2 + lb2, cl + rl)
    assert torch.equal(g[0], torch.stack(g2[:2])) and torch.equal(g[1], torch.stack(g2[2:]))


def test_retina_ema_normalizer_updates_the_state_tensor():
    anchors, targets, cls, reg = _retina_inputs(7)
    state = torch.tensor([100.0])
    _, _, st = dt.retina_loss(cls, reg, anchors, targets, normalizer="detectron2_ema",
                              ema_state=state, return_stats=True)
    # n <- 0.9 * 100 + 0.1 * max(P, 1)
    assert state.item() == pytest.approx(0.9 * 100 + 0.1 * max(st["num_pos"], 1), rel=1e-6)


def test_rpn_loss_matches_torchvision_when_nothing_is_subsampled():
    from torchvision.models.detection import _utils as du
    from torchvision.models.detection.rpn import RegionProposalNetwork as RPN
    from torchvision.ops import boxes as box_ops
    anchors, g = _anchor_batch(2, 300, 8)
    targets = [{"boxes": anchors[0][[3, 50, 100]] + torch.randn(3, 4, generator=g)},
               {"boxes": anchors[1][[9]] * 1.05}]
    obj = torch.randn(600, 1, generator=g).requires_grad_()
    reg = (0.1 * torch.randn(600, 4, generator=g)).requires_grad_()
    fake = types.SimpleNamespace(proposal_matcher=du.Matcher(0.7, 0.3, True),
                                 box_similarity=box_ops.box_iou,
                                 fg_bg_sampler=du.BalancedPositiveNegativeSampler(10 ** 6, 0.5),
                                 box_coder=du.BoxCoder((1.0, 1.0, 1.0, 1.0)))
    labels, mgt = RPN.assign_targets_to_anchors(fake, anchors, targets)
    ro, rb = RPN.compute_loss(fake, obj, reg, labels, fake.box_coder.encode(mgt, anchors))
    lo, lb = dt.rpn_loss(obj, reg, anchors, targets, batch_size_per_image=10 ** 6)
    torch.testing.assert_close(lo, ro, **VAL)
    torch.testing.assert_close(lb, rb, **VAL)
    ga = torch.autograd.grad(ro + 3 * rb, [obj, reg])
    gb = torch.autograd.grad(lo + 3 * lb, [obj, reg])
    for a, b in zip(gb, ga):
        torch.testing.assert_close(a, b, **GRAD)


def test_rpn_sampling_follows_torchs_generator_when_no_seed_is_given():
    anchors, g = _anchor_batch(1, 2000, 9)
    targets = [{"boxes": anchors[0][:40] + 1}]
    obj = torch.randn(2000, generator=g).requires_grad_()
    reg = torch.zeros(2000, 4, requires_grad=True)
    torch.manual_seed(0)
    a = dt.rpn_loss(obj, reg, anchors, targets, batch_size_per_image=64)[0].item()
    torch.manual_seed(0)
    b = dt.rpn_loss(obj, reg, anchors, targets, batch_size_per_image=64)[0].item()
    c = dt.rpn_loss(obj, reg, anchors, targets, batch_size_per_image=64)[0].item()
    assert a == b and a != c


def _images_and_targets(n=2, size=128, classes=3, seed=10):
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, size, size, generator=g) for _ in range(n)]
    targets = []
    for i in range(n):
        b = _boxes(g, 3, size / 2).float()
        targets.append({"boxes": b, "labels": torch.randint(1, classes, (3,), generator=g)})
    return images, targets


def _losses_and_grads(model, images, targets, keys, params):
    for p in params:
        p.grad = None
    losses = model(images, targets)
    sum(losses[k] for k in keys).backward()
    return {k: losses[k].item() for k in keys}, [p.grad.clone() for p in params]


def test_patch_retinanet_gives_torchvisions_losses_and_gradients():
    from torchvision.models.detection import retinanet_resnet50_fpn
    torch.manual_seed(0)
    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3,
                                   min_size=128, max_size=128).train()
    images, targets = _images_and_targets()
    keys = ["classification", "bbox_regression"]
    params = [model.head.classification_head.cls_logits.weight,
              model.head.regression_head.bbox_reg.weight]
    ref, gref = _losses_and_grads(model, images, targets, keys, params)
    dt.patch_retinanet(model)
    assert dt.is_patched(model) and dt.is_patched(model.anchor_generator)
    got, ggot = _losses_and_grads(model, images, targets, keys, params)
    # the anchors came from the patched generator's grid: matching ran on the grid
    grids = list(model.anchor_generator._detloss_cache["grids"].values())
    assert len(grids) == 1 and grids[0] is not None
    for k in keys:
        assert got[k] == pytest.approx(ref[k], rel=1e-5)
    for a, b in zip(ggot, gref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    dt.unpatch(model)
    assert not dt.is_patched(model) and not dt.is_patched(model.anchor_generator)


def test_patch_rpn_gives_torchvisions_rpn_losses_and_gradients():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn
    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None,
                                              num_classes=3, min_size=160, max_size=160,
                                              rpn_batch_size_per_image=10 ** 6).train()
    images, targets = _images_and_targets(size=160, seed=11)
    keys = ["loss_objectness", "loss_rpn_box_reg"]
    params = [model.rpn.head.cls_logits.weight, model.rpn.head.bbox_pred.weight]

    class RpnOnly(torch.nn.Module):  # the model up to its RPN (the ROI heads are slow on CPU)
        def forward(self, images, targets):
            il, tg = model.transform(images, targets)
            return model.rpn(il, model.backbone(il.tensors), tg)[1]

    ref, gref = _losses_and_grads(RpnOnly(), images, targets, keys, params)
    dt.patch_rpn(model)
    got, ggot = _losses_and_grads(RpnOnly(), images, targets, keys, params)
    assert dt.is_patched(model.rpn)
    grids = list(model.rpn.anchor_generator._detloss_cache["grids"].values())
    assert len(grids) == 1 and grids[0] is not None
    for k in keys:
        assert got[k] == pytest.approx(ref[k], rel=1e-5)
    for a, b in zip(ggot, gref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # in eval mode the patched forward gives torchvision's proposals and no losses
    model.eval()
    il, _ = model.transform(images)
    with torch.no_grad():
        boxes, losses = model.rpn(il, model.backbone(il.tensors))
        dt.unpatch(model)
        ref_boxes, _ = model.rpn(il, model.backbone(il.tensors))
    assert losses == {} and all(torch.equal(a, b) for a, b in zip(boxes, ref_boxes))
    assert not dt.is_patched(model.rpn) and not dt.is_patched(model.rpn.anchor_generator)


F = torch.nn.functional


def _pair(shape, seed, kind="normal"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if kind == "prob":
        y = torch.rand(shape, generator=g, dtype=torch.float64)
    elif kind == "sign":
        y = torch.randint(0, 2, shape, generator=g).double() * 2 - 1
    else:
        y = torch.randn(shape, generator=g, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name,kind,kw,ref", [
    ("binary_cross_entropy_with_logits", "prob", {}, None),
    ("binary_cross_entropy_with_logits", "prob", {"pos_weight": torch.tensor([0.5, 2.0, 3.0])},
     None),
    ("l1_loss", "normal", {}, None), ("mse_loss", "normal", {}, None),
    ("smooth_l1_loss", "normal", {"beta": 0.5}, None),
    ("huber_loss", "normal", {"delta": 0.7}, None),
    ("binary_cross_entropy", "prob", {}, None),
])
def test_elementwise_losses_match_torch_functional(name, kind, kw, ref, reduction):
    x64, y64 = _pair((8, 3), 21, kind)
    if name == "binary_cross_entropy":
        x64 = torch.sigmoid(x64)
    w = torch.rand(8, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.5
    for ref_dtype in (torch.float32, torch.float64):
        x, xr = x64.float().requires_grad_(), x64.to(ref_dtype).requires_grad_()
        y, yr = y64.float().requires_grad_(), y64.to(ref_dtype).requires_grad_()
        extra = {k: (v.to(ref_dtype) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        if name in ("binary_cross_entropy_with_logits", "binary_cross_entropy"):
            ours = getattr(dt, name)(x, y.detach(), weight=w.float(), reduction=reduction, **kw)
            theirs = getattr(F, name)(xr, yr.detach(), weight=w.to(ref_dtype),
                                      reduction=reduction, **extra)
            _compare(ours, theirs, ([x], [xr]))
        else:
            ours = getattr(dt, name)(x, y, reduction=reduction, **kw)
            theirs = getattr(F, name)(xr, yr, reduction=reduction, **extra)
            _compare(ours, theirs, ([x, y], [xr, yr]))  # symmetric: target gradient too


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.2}, {"ignore_index": 1}])
def test_cross_entropy_matches_torch_functional(kw, reduction):
    g = torch.Generator().manual_seed(22)
    x64 = torch.randn(10, 5, generator=g, dtype=torch.float64)
    t = torch.randint(0, 5, (10,), generator=g)
    x, xr = x64.float().requires_grad_(), x64.clone().requires_grad_()
    _compare(dt.cross_entropy(x, t, reduction=reduction, **kw),
             F.cross_entropy(xr, t, reduction=reduction, **kw), ([x], [xr]))
    with pytest.raises(DetlossError) as e:
        dt.cross_entropy(x, t, weight=torch.ones(5))
    assert e.value.where == "weight"


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_embedding_losses_match_torch_functional(reduction):
    g = torch.Generator().manual_seed(23)
    a64, p64, n64 = (torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([1, -1, 1, -1, -1, 1])
    a, p, n = (v.float().requires_grad_() for v in (a64, p64, n64))
    ar, pr, nr = (v.clone().requires_grad_() for v in (a64, p64, n64))
    _compare(dt.triplet_margin_loss(a, p, n, margin=2.0, swap=True, reduction=reduction),
             F.triplet_margin_loss(ar, pr, nr, margin=2.0, swap=True, reduction=reduction),
             ([a, p, n], [ar, pr, nr]))
    a, p = (v.float().requires_grad_() for v in (a64, p64))
    ar, pr = (v.clone().requires_grad_() for v in (a64, p64))
    _compare(dt.cosine_embedding_loss(a, p, t, margin=0.1, reduction=reduction),
             F.cosine_embedding_loss(ar, pr, t, margin=0.1, reduction=reduction),
             ([a, p], [ar, pr]))


def test_contrastive_loss_equals_the_numpy_binding():
    g = torch.Generator().manual_seed(24)
    a, b = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    t = torch.tensor([1.0, 0, 1, 0, 0])
    x1, x2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    l = dt.contrastive_loss(x1, x2, t, margin=2.0, reduction="sum")
    l.backward()
    ref, g1, g2 = detloss.contrastive_loss(a, b, t, margin=2.0, reduction="sum", grad=True)
    assert l.item() == ref
    assert torch.equal(x1.grad, torch.from_numpy(g1)) and torch.equal(x2.grad, torch.from_numpy(g2))


@pytest.mark.parametrize("hw", [(800, 1344), (257, 311), (96, 128)])
def test_torchvision_anchor_grid_reproduces_anchor_generator_bit_for_bit(hw):
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList
    sizes = tuple((x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))) for x in (32, 64, 128, 256, 512))
    ratios = ((0.5, 1.0, 2.0),) * 5
    gen = AnchorGenerator(sizes, ratios)
    feats = [torch.zeros(1, 1, -(-hw[0] // (8 << l)), -(-hw[1] // (8 << l))) for l in range(5)]
    ref = gen(ImageList(torch.zeros(1, 3, *hw), [hw]), feats)[0]
    grid = detloss.torchvision_anchor_grid(sizes, ratios, hw, [f.shape[-2:] for f in feats])
    assert torch.equal(torch.from_numpy(grid.anchors()), ref)


def test_head_losses_on_a_grid_equal_the_plain_path_and_check_the_anchors():
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList
    hw, sizes, ratios = (160, 224), ((32,), (64,)), ((0.5, 1.0, 2.0),) * 2
    feats = [torch.zeros(1, 1, 20, 28), torch.zeros(1, 1, 10, 14)]
    anchors = AnchorGenerator(sizes, ratios)(ImageList(torch.zeros(2, 3, *hw), [hw] * 2), feats)
    grid = detloss.torchvision_anchor_grid(sizes, ratios, hw, [(20, 28), (10, 14)])
    g = torch.Generator().manual_seed(30)
    A = anchors[0].shape[0]
    targets = [{"boxes": _boxes(g, 4, 150).float(), "labels": torch.tensor([0, 1, 2, 1])},
               {"boxes": _boxes(g, 2, 150).float(), "labels": torch.tensor([2, 0])}]
    cls = torch.randn(2, A, 3, generator=g).requires_grad_()
    reg = (0.2 * torch.randn(2, A, 4, generator=g)).requires_grad_()
    a = dt.retina_loss(cls, reg, anchors, targets)
    b = dt.retina_loss(cls, reg, anchors, targets, anchor_grid=grid)
    assert a[0].item() == b[0].item() and a[1].item() == b[1].item()
    ga = torch.autograd.grad(a[0] + a[1], [cls, reg])
    gb = torch.autograd.grad(b[0] + b[1], [cls, reg])
    assert all(torch.equal(x, y) for x, y in zip(ga, gb))
    obj = torch.randn(2 * A, 1, generator=g)
    r1 = dt.rpn_loss(obj, reg.detach(), anchors, targets, seed=1)
    r2 = dt.rpn_loss(obj, reg.detach(), anchors, targets, seed=1, anchor_grid=grid)
    assert r1[0].item() == r2[0].item() and r1[1].item() == r2[1].item()
    shifted = [x + 1 for x in anchors]
    with pytest.raises(DetlossError) as e:
        dt.retina_loss(cls, reg, shifted, targets, anchor_grid=grid)
    assert e.value.where == "anchor_grid"
