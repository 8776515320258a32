"""detloss.torch as a drop-in (issue 19): integer and half boxes with torchvision's
dtypes, the focal <= BCE invariant, argument errors that name the argument, and the
TorchScript refusal. Values against torchvision 0.14 at float32 tolerances (rtol 1e-5,
atol 1e-6 unless a test says otherwise)."""
import pytest

torch = pytest.importorskip("torch")
tvo = pytest.importorskip("torchvision.ops")

import detloss.torch as dt  # noqa: E402

VAL = dict(rtol=1e-5, atol=1e-6)
INT_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8]
BOX_OPS = ["box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"]
BOX_LOSSES = ["generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"]


def _int_boxes(g, n):
    xy = torch.randint(0, 60, (n, 2), generator=g)
    wh = torch.randint(1, 60, (n, 2), generator=g)  # no empty boxes: 0/0 is NaN in torchvision
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_integer_boxes_give_torchvision_dtypes_and_values(dtype):
    # uint8: torchvision's rb - lt wraps around in uint8 for disjoint boxes (its IoU of
    # those is garbage), so the values are compared with its int64 result
    g = torch.Generator().manual_seed(1)
    b1, b2 = _int_boxes(g, 7).to(dtype), _int_boxes(g, 7).to(dtype)
    # box_area: integer areas, exactly (int32 unless int64, as torchvision's _upcast)
    ours, ref = dt.box_area(b1), tvo.box_area(b1)
    assert ours.dtype == ref.dtype and torch.equal(ours, ref)
    for name in BOX_OPS + BOX_LOSSES:
        ours, ref = getattr(dt, name)(b1, b2), getattr(tvo, name)(b1, b2)
        assert ours.dtype == ref.dtype == torch.float32, name
        ref = getattr(tvo, name)(b1.long(), b2.long())
        torch.testing.assert_close(ours, ref, **VAL, msg=name)


def test_float64_box_area_is_torchvisions_exactly():
    # torchvision test_ops.py's FLOAT_BOXES areas (about 6e5 px^2) need float64: float32
    # rounds them by up to 0.03 px^2
    b = torch.tensor([[285.3538, 185.5758, 1193.5110, 851.4551],
                      [279.2440, 197.9812, 1189.4746, 849.2019]], dtype=torch.float64)
    ours = dt.box_area(b)
    assert ours.dtype == torch.float64 and torch.equal(ours, tvo.box_area(b))


def test_integer_box_area_is_exact_beyond_float32():
    # 100000^2 = 1e10 is not a float32 integer neighbourhood of 1: int64 keeps it exactly
    b = torch.tensor([[0, 0, 100001, 100003]], dtype=torch.int64)
    assert dt.box_area(b).item() == 100001 * 100003 == tvo.box_area(b).item()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_boxes_are_computed_in_float32_and_returned_as_torchvision_does(dtype):
    g = torch.Generator().manual_seed(2)
    b1 = (torch.rand(6, 2, generator=g) * 300).repeat(1, 2)
    b1[:, 2:] += torch.rand(6, 2, generator=g) * 300 + 1
    b2 = b1.flip(0) + 3
    h1, h2 = b1.to(dtype), b2.to(dtype)
    for name in ["box_area"] + BOX_OPS + BOX_LOSSES:
        args = (h1,) if name == "box_area" else (h1, h2)
        ours, ref = getattr(dt, name)(*args), getattr(tvo, name)(*args)
        assert ours.dtype == ref.dtype == torch.float32, name
        # detloss widens the half values to float32 and computes there (torchvision takes
        # some differences in half first): compared with torchvision on the widened values
        ref = getattr(tvo, name)(*[a.float() for a in args])
        torch.testing.assert_close(ours, ref, **VAL, msg=name)
    # an area above the float16 maximum (65504) is finite: 300 x 300 = 90000
    big = torch.tensor([[0, 0, 300, 300]], dtype=dtype)
    assert dt.box_area(big).item() == 90000.0
    assert dt.box_iou(big, big).item() == 1.0


def test_half_box_loss_gradients_come_back_in_the_input_dtype():
    b1 = torch.tensor([[0.0, 0, 10, 10], [2, 2, 8, 9]], dtype=torch.float16, requires_grad=True)
    b2 = torch.tensor([[1.0, 1, 11, 12], [2, 3, 8, 8]], dtype=torch.float16, requires_grad=True)
    r1, r2 = b1.detach().float().requires_grad_(), b2.detach().float().requires_grad_()
    for name in BOX_LOSSES:
        loss = getattr(dt, name)(b1, b2, reduction="sum")
        ref = getattr(tvo, name)(r1, r2, reduction="sum")
        assert loss.dtype == torch.float32
        g = torch.autograd.grad(loss, [b1, b2])
        gr = torch.autograd.grad(ref, [r1, r2])
        for a, b in zip(g, gr):
            assert a.dtype == torch.float16
            torch.testing.assert_close(a.float(), b, rtol=2e-3, atol=1e-3)


def test_focal_loss_in_bfloat16_returns_bfloat16_like_torchvision():
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(50, 4, generator=g) * 3).to(torch.bfloat16)
    y = (torch.rand(50, 4, generator=g) > 0.7).to(torch.bfloat16)
    for red in ("none", "sum", "mean"):
        ours, ref = dt.sigmoid_focal_loss(x, y, reduction=red), tvo.sigmoid_focal_loss(
            x.float(), y.float(), reduction=red)
        assert ours.dtype == tvo.sigmoid_focal_loss(x, y, reduction=red).dtype == torch.bfloat16
        # computed in float32 and rounded once to bfloat16 (8 bits): rtol 2^-8
        torch.testing.assert_close(ours.float(), ref, rtol=4e-3, atol=1e-5)
    # float16: torchvision has no CPU sigmoid for it; detloss returns float16 as it would
    xh, yh = x.to(torch.float16), y.to(torch.float16)
    out = dt.sigmoid_focal_loss(xh, yh, reduction="none")
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), tvo.sigmoid_focal_loss(xh.float(), yh.float()),
                               rtol=1e-3, atol=1e-5)


def _focal_inputs(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * 6
    x[::17] = 100.0
    x[5::17] = -100.0
    y = torch.rand(n, generator=g)
    y[::2] = (y[::2] > 0.5).float()  # half binary, half soft targets
    return x, y


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", [-1.0, 0.25, 1.0])
def test_focal_never_exceeds_bce_on_a_million_elements(gamma, alpha):
    x, y = _focal_inputs(10 ** 6, 7)
    focal = dt.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma)
    bce = dt.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert torch.isfinite(focal).all() and (focal >= 0).all()
    # bitwise: the modulating factor and alpha_t (<= 1) multiply detloss's BCE value
    assert (focal <= bce).all()
    if gamma == 0 and alpha < 0:
        assert torch.equal(focal, bce)
    # and against the float64 BCE max(x, 0) - x y + log1p(e^-|x|): within float32
    # rounding, relative 1e-6 (torch's float64 BCE takes log(1 + e^-|x|), whose relative
    # error is 1e-4 at |x| = 27, so it is not the reference here)
    xd, yd = x.double(), y.double()
    ref = xd.clamp(min=0) - xd * yd + torch.log1p(torch.exp(-xd.abs()))
    assert (focal.double() <= ref * (1 + 1e-6) + 1e-37).all()


def test_focal_at_saturated_logits_is_finite_and_matches_float64():
    x = torch.tensor([100.0, -100.0, 100.0, -100.0, 100.0, -100.0], requires_grad=True)
    y = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.3, 0.3])
    xr = x.detach().double().requires_grad_()
    for gamma in (0.0, 0.5, 2.0):
        ours = dt.sigmoid_focal_loss(x, y, gamma=gamma)
        ref = tvo.sigmoid_focal_loss(xr, y.double(), gamma=gamma)
        torch.testing.assert_close(ours.double(), ref.detach(), **VAL)
        g, = torch.autograd.grad(ours.sum(), x)
        assert torch.isfinite(g).all()
        gr, = torch.autograd.grad(ref.sum(), xr)
        ok = torch.isfinite(gr)  # autograd: 0 * 0^(gamma - 1) = NaN where 1 - p_t = 0
        torch.testing.assert_close(g.double()[ok], gr[ok], **VAL)


@pytest.mark.parametrize("gamma,alpha", [(0.0, -1.0), (0.5, 0.25), (2.0, 0.25), (2.0, 1.0)])
def test_focal_gradient_matches_central_differences(gamma, alpha):
    # d/dx by central differences (h 1e-5) of torchvision's formula in float64, against
    # detloss's closed form in float32: rtol 1e-4, atol 1e-6
    x, y = _focal_inputs(400, 11)
    x = x.clamp(-12, 12)
    xg = x.clone().requires_grad_()
    g, = torch.autograd.grad(dt.sigmoid_focal_loss(xg, y, alpha, gamma, "sum"), xg)
    h = 1e-5
    xd, yd = x.double(), y.double()
    fd = (tvo.sigmoid_focal_loss(xd + h, yd, alpha, gamma) -
          tvo.sigmoid_focal_loss(xd - h, yd, alpha, gamma)) / (2 * h)
    torch.testing.assert_close(g.double(), fd, rtol=1e-4, atol=1e-6)


# every argument error is a ValueError or TypeError naming the argument
_x, _y = torch.randn(4, 3), torch.rand(4, 3)
_b = torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 4]])
_t = torch.tensor([0, 1, 2, 1])
_anchors = [torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])]
_tg = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}]
_cls, _reg, _obj = torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), torch.zeros(1, 2)

BAD_ARGS = [
    # (argument, call, bad value, exception)
    ("reduction", lambda v: dt.sigmoid_focal_loss(_x, _y, reduction=v), "xyz", ValueError),
    ("reduction", lambda v: dt.sigmoid_focal_loss(_x, _y, reduction=v), None, ValueError),
    ("reduction", lambda v: dt.generalized_box_iou_loss(_b, _b, reduction=v), "xyz", ValueError),
    ("reduction", lambda v: dt.l1_loss(_x, _y, reduction=v), "avg", ValueError),
    ("reduction", lambda v: dt.cross_entropy(_x, _t, reduction=v), 1, ValueError),
    ("alpha", lambda v: dt.sigmoid_focal_loss(_x, _y, alpha=v), "a", TypeError),
    ("gamma", lambda v: dt.sigmoid_focal_loss(_x, _y, gamma=v), float("nan"), ValueError),
    ("num_threads", lambda v: dt.sigmoid_focal_loss(_x, _y, num_threads=v), -1, ValueError),
    ("num_threads", lambda v: dt.box_iou(_b, _b, num_threads=v), "2", TypeError),
    ("inputs", lambda v: dt.sigmoid_focal_loss(v, _y), None, TypeError),
    ("inputs", lambda v: dt.sigmoid_focal_loss(v, _y), [[1.0]], TypeError),
    ("targets", lambda v: dt.sigmoid_focal_loss(_x, v), torch.zeros(5), ValueError),
    ("boxes1", lambda v: dt.generalized_box_iou_loss(v, _b), torch.zeros(2, 3), ValueError),
    ("boxes1", lambda v: dt.box_iou(v, _b), torch.zeros(2, 4, dtype=torch.bool), TypeError),
    ("boxes2", lambda v: dt.complete_box_iou(_b, v), torch.zeros(2, 4, 1), ValueError),
    ("boxes", lambda v: dt.box_area(v), torch.zeros(2, 4, dtype=torch.complex64), TypeError),
    ("eps", lambda v: dt.distance_box_iou(_b, _b, eps=v), "e", TypeError),
    ("eps", lambda v: dt.distance_box_iou_loss(_b, _b, eps=v), -1.0, ValueError),
    ("weight", lambda v: dt.binary_cross_entropy_with_logits(_x, _y, weight=v), torch.ones(5),
     ValueError),
    ("beta", lambda v: dt.smooth_l1_loss(_x, _y, beta=v), "b", TypeError),
    ("label_smoothing", lambda v: dt.cross_entropy(_x, _t, label_smoothing=v), 2.0, ValueError),
    ("ignore_index", lambda v: dt.cross_entropy(_x, _t, ignore_index=v), 1.5, TypeError),
    ("target", lambda v: dt.cross_entropy(_x, v), torch.zeros(4), TypeError),
    ("swap", lambda v: dt.triplet_margin_loss(_x, _x, _x, swap=v), torch.zeros(2), TypeError),
    ("p", lambda v: dt.triplet_margin_loss(_x, _x, _x, p=v), "2", TypeError),
    ("anchors", lambda v: dt.retina_loss(_cls, _reg, v, _tg), None, TypeError),
    ("anchors[0]", lambda v: dt.retina_loss(_cls, _reg, v, _tg), [[1, 2]], TypeError),
    ("targets", lambda v: dt.retina_loss(_cls, _reg, _anchors, v), None, TypeError),
    ("fg_iou_thresh", lambda v: dt.retina_loss(_cls, _reg, _anchors, _tg, fg_iou_thresh=v), 1.5,
     ValueError),
    ("bg_iou_thresh", lambda v: dt.rpn_loss(_obj, _reg, _anchors, _tg, bg_iou_thresh=v), "x",
     TypeError),
    ("allow_low_quality",
     lambda v: dt.retina_loss(_cls, _reg, _anchors, _tg, allow_low_quality=v), torch.ones(2),
     TypeError),
    ("normalizer", lambda v: dt.retina_loss(_cls, _reg, _anchors, _tg, normalizer=v), ["x"],
     TypeError),
    ("box_loss", lambda v: dt.retina_loss(_cls, _reg, _anchors, _tg, box_loss=v), "l3",
     ValueError),
    ("config", lambda v: dt.retina_loss(_cls, _reg, _anchors, _tg, config=v), "torchvision",
     TypeError),
    ("config", lambda v: dt.rpn_loss(_obj, _reg, _anchors, _tg, config=v), {}, TypeError),
    ("convention", lambda v: dt.rpn_loss(_obj, _reg, _anchors, _tg, convention=v),
     torch.zeros(2), TypeError),
    ("image_sizes", lambda v: dt.retina_loss(_cls, _reg, _anchors, _tg, image_sizes=v), 3,
     TypeError),
    ("image_sizes[0]", lambda v: dt.retina_loss(_cls, _reg, _anchors, _tg, image_sizes=v),
     [(10, -1)], ValueError),
    ("image_sizes", lambda v: dt.retina_loss(_cls, _reg, _anchors, _tg, image_sizes=v,
                                             allowed_border=0), None, ValueError),
    ("batch_size_per_image",
     lambda v: dt.rpn_loss(_obj, _reg, _anchors, _tg, batch_size_per_image=v), -1, ValueError),
    ("seed", lambda v: dt.rpn_loss(_obj, _reg, _anchors, _tg, seed=v), 0.5, TypeError),
    ("return_stats", lambda v: dt.rpn_loss(_obj, _reg, _anchors, _tg, return_stats=v), "yes",
     TypeError),
    ("objectness", lambda v: dt.rpn_loss(v, _reg, _anchors, _tg), None, TypeError),
    ("cls_logits", lambda v: dt.retina_loss(v, _reg, _anchors, _tg), "x", TypeError),
]


@pytest.mark.parametrize("arg,call,value,exc", BAD_ARGS,
                         ids=["%s-%d" % (a[0], i) for i, a in enumerate(BAD_ARGS)])
def test_every_argument_error_names_the_argument(arg, call, value, exc):
    with pytest.raises(exc) as e:
        call(value)
    assert isinstance(e.value, (ValueError, TypeError))
    assert arg in str(e.value), str(e.value)


def test_a_bad_reduction_names_the_valid_values():
    with pytest.raises(ValueError) as e:
        dt.sigmoid_focal_loss(_x, _y, reduction="xyz")
    for v in ("'none'", "'mean'", "'sum'", "'xyz'"):
        assert v in str(e.value)


def _calls_detloss(x, y):
    return dt.l1_loss(x, y)


class _Model(torch.nn.Module):
    def forward(self, x, y):
        return _calls_detloss(x, y)


@pytest.mark.parametrize("name", [n for n in dt.__all__
                                  if callable(getattr(dt, n)) and
                                  not isinstance(getattr(dt, n), type) and
                                  n not in dt._SCRIPTABLE])
def test_scripting_an_eager_only_function_raises_one_clear_error(name):
    with pytest.raises(RuntimeError, match="eager-mode function") as e:
        torch.jit.script(getattr(dt, name))
    assert "detloss.torch.%s" % name in str(e.value)


def test_scripting_code_that_calls_detloss_names_the_function_and_the_way_out():
    with pytest.raises(RuntimeError, match="l1_loss is an eager-mode") as e:
        torch.jit.script(_Model())
    assert "torch.jit.ignore" in str(e.value)
