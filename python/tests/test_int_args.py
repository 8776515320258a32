"""Integer arguments: every integer argument of the Python API is
type- and range-checked before it reaches ctypes, which would otherwise wrap
(2**64 -> 0, [256] as uint8 -> 0) or truncate (2.9 -> 2) silently.

The rules (python/README.md, "Integer arguments"):
  * scalars: int, numpy integer, or an integral float (2.0); a non-integral
    float (2.9), a bool, a string -> DetlossTypeError (a TypeError and a
    ValueError) naming the argument; NaN/Inf -> DetlossError "nonfinite";
    outside the C type's range or the argument's domain -> DetlossError
    "range" (a ValueError) naming the argument.
  * integer arrays: integer dtypes, or float arrays holding integral values;
    fractional values -> DetlossTypeError; values outside the C type (uint8,
    int64) or the domain (is_crowd: 0 or 1) -> DetlossError "range", checked
    before any cast.
"""
import numpy as np
import pytest

import detloss
from detloss import DetlossError, DetlossTypeError

BOX = np.array([[0, 0, 10, 10]], np.float32)
A2 = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float32)
U64 = 2 ** 64
I64 = 2 ** 63
I32 = 2 ** 31
GRID = {"levels": [{"stride": 8, "sizes": [16.0], "aspect_ratios": [1.0]}]}


def _rpn_image():
    return {"anchors": A2, "gt": BOX, "objectness": np.zeros(2), "deltas": np.zeros((2, 4))}


def _retina_image(num_classes=3):
    try:  # as many columns as num_classes where that is a small valid count
        c = int(num_classes)
        c = c if c == num_classes and 1 <= c <= 3 and not isinstance(num_classes, bool) else 3
    except (TypeError, ValueError, OverflowError):
        c = 3
    return {"anchors": A2, "gt": BOX, "labels": [0], "cls_logits": np.zeros((2, c)),
            "deltas": np.zeros((2, 4))}


_DATASET = [{"height": 32, "width": 32, "boxes": [[1, 1, 9, 9]]}]

# (id, call taking the value, argument name, lowest valid, highest valid)
SCALARS = [
    ("box_iou.num_threads", lambda v: detloss.box_iou(BOX, BOX, num_threads=v), "num_threads",
     0, I32 - 1),
    ("box_iou_pairs.num_threads", lambda v: detloss.box_iou_pairs(BOX, BOX, num_threads=v),
     "num_threads", 0, I32 - 1),
    ("box_encode.num_threads", lambda v: detloss.box_encode(BOX, BOX, num_threads=v),
     "num_threads", 0, I32 - 1),
    ("box_decode.num_threads", lambda v: detloss.box_decode(BOX, BOX, num_threads=v),
     "num_threads", 0, I32 - 1),
    ("match.num_threads", lambda v: detloss.match(A2, BOX, num_threads=v), "num_threads", 0,
     I32 - 1),
    ("l1_loss.num_threads", lambda v: detloss.l1_loss([1.0], [0.0], num_threads=v),
     "num_threads", 0, I32 - 1),
    ("sample_balanced.batch_size_per_image",
     lambda v: detloss.sample_balanced([0, -1], batch_size_per_image=v), "batch_size_per_image",
     0, I64 - 1),
    ("sample_balanced.seed", lambda v: detloss.sample_balanced([0, -1], seed=v), "seed", 0,
     U64 - 1),
    ("sample_balanced.image_index", lambda v: detloss.sample_balanced([0, -1], image_index=v),
     "image_index", 0, U64 - 1),
    ("rpn_options.batch_size_per_image", lambda v: detloss.rpn_options(batch_size_per_image=v),
     "batch_size_per_image", 0, I64 - 1),
    ("rpn_options.seed", lambda v: detloss.rpn_options(seed=v), "seed", 0, U64 - 1),
    ("rpn_loss.batch_size_per_image",
     lambda v: detloss.rpn_loss([_rpn_image()], batch_size_per_image=v), "batch_size_per_image",
     0, I64 - 1),
    ("rpn_loss.seed", lambda v: detloss.rpn_loss([_rpn_image()], seed=v), "seed", 0, U64 - 1),
    ("rpn_loss.num_threads", lambda v: detloss.rpn_loss([_rpn_image()], num_threads=v),
     "num_threads", 0, I32 - 1),
    ("retina_loss.num_classes", lambda v: detloss.retina_loss([_retina_image(v)], v),
     "num_classes", 1, 2 ** 64 - 1),
    ("cross_entropy.ignore_index",
     lambda v: detloss.cross_entropy(np.zeros((1, 3)), [0], ignore_index=v), "ignore_index",
     -I64, I64 - 1),
    ("softmax_focal_loss.ignore_index",
     lambda v: detloss.softmax_focal_loss(np.zeros((1, 3)), [0], ignore_index=v),
     "ignore_index", -I64, I64 - 1),
    ("loss.ignore_index",
     lambda v: detloss.loss("cross_entropy", np.zeros((1, 3)), [0], ignore_index=v),
     "ignore_index", -I64, I64 - 1),
    ("anchor_eval.num_worst", lambda v: detloss.anchor_eval(_DATASET, anchors=BOX, num_worst=v),
     "num_worst", 0, 100),
    ("anchor_eval.num_threads",
     lambda v: detloss.anchor_eval(_DATASET, anchors=BOX, num_threads=v), "num_threads", 0,
     I32 - 1),
    ("anchors_base.level", lambda v: detloss.anchors_base(GRID, level=v), "level", 0, 0),
    ("anchors_count.feature_maps",
     lambda v: detloss.anchors_count(GRID, feature_maps=[[v, 2]]), "feature_maps[0]",
     0, 2 ** 20),
    ("anchor_config.feature_size",
     lambda v: detloss.anchors_count({"levels": [dict(GRID["levels"][0], feature_size=[2, v])]}),
     "config.levels[0].feature_size", 0, 2 ** 20),
    ("torchvision_anchor_grid.feature_maps",
     lambda v: detloss.torchvision_anchor_grid([[16.0]], [[1.0]], (64, 64), [[v, 4]]),
     "feature_maps[0]", 1, 64),
]
# the numeric ceiling of feature sizes is not the test's business; only the lower end,
# and values that are not integers
_NO_HIGH = {"anchors_count.feature_maps", "anchor_config.feature_size",
            "torchvision_anchor_grid.feature_maps"}


def _expect(fn, value, where, exc, status=None):
    with pytest.raises(exc) as ei:
        fn(value)
    e = ei.value
    assert isinstance(e, DetlossError), repr(e)
    assert e.where == where, e
    if status is not None:
        assert e.status_name == status, e
    return e


@pytest.mark.parametrize("case", SCALARS, ids=[c[0] for c in SCALARS])
def test_scalar_ints_out_of_range_are_value_errors_naming_the_argument(case):
    _id, fn, where, lo, hi = case
    fn(lo)
    fn(np.int64(lo))
    if hi < I64:
        fn(np.int64(hi)) if _id not in _NO_HIGH else None
    if _id not in _NO_HIGH:
        e = _expect(fn, hi + 1, where, ValueError, "range")
        assert str(hi + 1) in e.message
        _expect(fn, U64, where, ValueError, "range")
        _expect(fn, 2 ** 200, where, ValueError, "range")
    _expect(fn, lo - 1, where, ValueError, "range")
    _expect(fn, -U64, where, ValueError, "range")


@pytest.mark.parametrize("case", SCALARS, ids=[c[0] for c in SCALARS])
def test_scalar_ints_of_the_wrong_type_are_type_errors_naming_the_argument(case):
    _id, fn, where, lo, _hi = case
    fn(float(lo))  # an integral float is its integer
    e = _expect(fn, 2.9, where, TypeError, "type")  # was 2: truncated silently
    assert isinstance(e, ValueError) and isinstance(e, DetlossTypeError)
    _expect(fn, np.float32(1.5), where, TypeError, "type")
    _expect(fn, True, where, TypeError, "type")  # bools are refused
    _expect(fn, "3", where, TypeError, "type")
    _expect(fn, [lo], where, TypeError, "type")
    _expect(fn, float("nan"), where, ValueError, "nonfinite")
    _expect(fn, float("inf"), where, ValueError, "nonfinite")


# (id, call taking the array, where, dtype-or-domain lo, hi)
ARRAYS = [
    ("match.gt_is_crowd", lambda v: detloss.match(A2, BOX, gt_is_crowd=v), "gt_is_crowd", 0, 1),
    ("match_grid.gt_is_crowd",
     lambda v: detloss.match_grid(GRID, BOX, image_size=(16, 16), gt_is_crowd=v), "gt_is_crowd",
     0, 1),
    ("rpn_loss.is_crowd", lambda v: detloss.rpn_loss([dict(_rpn_image(), is_crowd=v)]),
     "images[0].is_crowd", 0, 1),
    ("retina_loss.is_crowd", lambda v: detloss.retina_loss([dict(_retina_image(), is_crowd=v)],
                                                           3), "images[0].is_crowd", 0, 1),
    ("anchor_eval.is_crowd",
     lambda v: detloss.anchor_eval([dict(_DATASET[0], is_crowd=v)], anchors=BOX),
     "dataset.images[0].is_crowd", 0, 1),
    ("sample_balanced.matches", lambda v: detloss.sample_balanced(v), "matches", -I64, I64 - 1),
    ("match_targets.matches", lambda v: detloss.match_targets(BOX, BOX, v), "matches", -I64,
     I64 - 1),
    ("cross_entropy.target", lambda v: detloss.cross_entropy(np.zeros((1, 3)), v), "target",
     -I64, I64 - 1),
    ("softmax_focal_loss.target", lambda v: detloss.softmax_focal_loss(np.zeros((1, 3)), v),
     "target", -I64, I64 - 1),
    ("retina_loss.labels", lambda v: detloss.retina_loss([dict(_retina_image(), labels=v)], 3),
     "images[0].labels", -I64, I64 - 1),
]


@pytest.mark.parametrize("case", ARRAYS, ids=[c[0] for c in ARRAYS])
def test_integer_arrays_out_of_range_are_value_errors_before_any_cast(case):
    _id, fn, where, lo, hi = case
    if hi == 1:  # a flag array: 0/1, bool, or integral floats
        fn([1])
        fn(np.array([True]))
        fn(np.array([1.0]))
        fn(np.array([1], np.uint64))
        e = _expect(fn, [256], where, ValueError, "range")  # was 0 (uint8 wrap-around)
        assert "256" in e.message
        _expect(fn, [2], where, ValueError, "range")
        _expect(fn, [-1], where, ValueError, "range")
        _expect(fn, np.array([257.0]), where, ValueError, "range")
    else:
        _expect(fn, np.array([I64], np.uint64), where, ValueError, "range")  # was -2^63
        _expect(fn, np.array([U64 - 1], np.uint64), where, ValueError, "range")  # was -1
        _expect(fn, np.array([1e19]), where, ValueError, "range")  # float -> int64 overflow
        _expect(fn, np.array([-1e19]), where, ValueError, "range")
    _expect(fn, [U64], where, ValueError, "range")  # a Python int list numpy cannot hold
    _expect(fn, [0.5], where, TypeError, "type")
    _expect(fn, [np.nan], where, ValueError, "nonfinite")


def test_is_crowd_of_256_is_no_longer_silently_not_crowd():
    # the crowd gt covers anchor 0 exactly: crowd -> ignored (-2); 256 used to wrap to 0
    # (not crowd), which matched anchor 0 to gt 0 instead
    assert detloss.match(A2, BOX, gt_is_crowd=[1])[0] == -2
    with pytest.raises(ValueError):
        detloss.match(A2, BOX, gt_is_crowd=[256])


def test_batch_size_of_two_to_the_64_is_no_longer_zero():
    with pytest.raises(ValueError) as e:
        detloss.sample_balanced([0, -1], batch_size_per_image=U64)
    assert e.value.where == "batch_size_per_image"
    with pytest.raises(TypeError) as e:
        detloss.sample_balanced([0, -1], batch_size_per_image=2.9)
    assert e.value.where == "batch_size_per_image"


def test_torch_integer_arguments_are_checked_the_same_way():
    torch = pytest.importorskip("torch")
    import detloss.torch as dt
    x = torch.zeros(2, 3)
    for bad, exc in ((U64, ValueError), (I64, ValueError), (2.9, TypeError), (True, TypeError)):
        with pytest.raises(exc) as e:
            dt.cross_entropy(x, torch.tensor([0, 1]), ignore_index=bad)
        assert e.value.where == "ignore_index"
        with pytest.raises(exc) as e:
            dt.softmax_focal_loss(x, torch.tensor([0, 1]), ignore_index=bad)
        assert e.value.where == "ignore_index"
        with pytest.raises(exc) as e:
            dt.sigmoid_focal_loss(x, x, num_threads=bad)
        assert e.value.where == "num_threads"
    anchors = [torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])]
    tg = [{"boxes": torch.tensor([[0.0, 0, 10, 10]])}]
    for name, bad, exc in (("seed", U64, ValueError), ("seed", -1, ValueError),
                           ("seed", 2.9, TypeError), ("batch_size_per_image", U64, ValueError),
                           ("batch_size_per_image", 2.9, TypeError)):
        with pytest.raises(exc) as e:
            dt.rpn_loss(torch.zeros(2), torch.zeros(2, 4), anchors, tg, **{name: bad})
        assert e.value.where == name
    # targets given as lists: checked like numpy arrays; iscrowd is a 0/1 flag
    for name, bad, exc in (("target", [U64, 0], ValueError), ("target", [0.5, 0], TypeError)):
        with pytest.raises(exc) as e:
            dt.cross_entropy(x, bad)
        assert e.value.where == name
    for bad in ([256], torch.tensor([256]), torch.tensor([2]), [-1]):
        with pytest.raises(ValueError) as e:
            dt.rpn_loss(torch.zeros(2), torch.zeros(2, 4), anchors,
                        [{"boxes": tg[0]["boxes"], "iscrowd": bad}])
        assert e.value.where == "targets[0].iscrowd"
    cls = torch.zeros(1, 2, 3)
    for bad, exc in (([U64], ValueError), ([0.5], TypeError)):
        with pytest.raises(exc) as e:
            dt.retina_loss(cls, torch.zeros(1, 2, 4), anchors,
                           [{"boxes": tg[0]["boxes"], "labels": bad}])
        assert e.value.where == "targets[0].labels"
