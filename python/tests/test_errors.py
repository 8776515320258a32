"""Bad input: a clear exception naming the argument, never a crash; outputs untouched."""
import numpy as np
import pytest

import detloss
from detloss import DetlossError, DetlossTypeError, _lib


def _raises(fn, status, where, exc=DetlossError):
    with pytest.raises(exc) as ei:
        fn()
    e = ei.value
    assert isinstance(e, ValueError)
    assert e.status_name == status, e
    assert e.where == where, e
    assert where in str(e) and e.message
    return e


BOX = np.array([[0, 0, 10, 10]], np.float32)


def test_wrong_dtypes_name_the_argument():
    _raises(lambda: detloss.box_iou(np.array([["a", "b", "c", "d"]]), BOX), "type", "boxes1",
            DetlossTypeError)
    _raises(lambda: detloss.box_iou(BOX, np.ones((1, 4), np.complex64)), "type", "boxes2",
            DetlossTypeError)
    _raises(lambda: detloss.box_area(np.array([[object()] * 4])), "type", "boxes",
            DetlossTypeError)
    _raises(lambda: detloss.box_iou([[1, 2, 3]], [[1, 2]]), "shape", "boxes1")
    _raises(lambda: detloss.cross_entropy(np.zeros((2, 3)), [0.5, 1]), "type", "target",
            DetlossTypeError)
    assert issubclass(DetlossTypeError, TypeError)


def test_ragged_lists_and_strings_are_refused():
    _raises(lambda: detloss.box_iou([[0, 0, 1, 1], [0, 0, 1]], BOX), "type", "boxes1",
            DetlossTypeError)
    _raises(lambda: detloss.box_area("boxes"), "type", "boxes", DetlossTypeError)


def test_wrong_shapes_name_the_argument():
    _raises(lambda: detloss.box_iou(np.zeros((2, 3)), BOX), "shape", "boxes1")
    _raises(lambda: detloss.box_iou(BOX, np.zeros(4)), "shape", "boxes2")
    _raises(lambda: detloss.box_encode(np.zeros((2, 4)), np.zeros((3, 4))), "shape", "boxes")
    _raises(lambda: detloss.l1_loss(np.zeros(3), np.zeros(4)), "shape", "target")
    _raises(lambda: detloss.generalized_box_iou_loss(np.zeros((2, 4)), np.zeros((2, 4)),
                                                     weight=np.ones(3)), "shape", "weight")
    _raises(lambda: detloss.match(np.zeros((2, 4)), BOX, gt_is_crowd=[1, 0]), "shape",
            "gt_is_crowd")


def test_non_finite_values_are_reported_by_the_library_with_the_element():
    bad = np.array([[0, 0, 10, 10], [0, 0, np.nan, 1]], np.float32)
    e = _raises(lambda: detloss.box_iou(bad, BOX), "nonfinite", "boxes1[1]")
    assert e.status == _lib.ERR_NONFINITE
    _raises(lambda: detloss.sigmoid_focal_loss([0.0, np.inf], [0.0, 1.0]), "nonfinite",
            "input[1]")
    _raises(lambda: detloss.match([[0, 0, 1, np.inf]], BOX), "nonfinite", "anchors[0]")


def test_out_of_range_options_are_reported_with_the_option_name():
    _raises(lambda: detloss.distance_box_iou(BOX, BOX, eps=0.0), "range", "eps")
    _raises(lambda: detloss.match(BOX, BOX, high=0.3, low=0.7), "range", "low")
    _raises(lambda: detloss.sigmoid_focal_loss([0.0], [1.0], reduction="avg"), "range",
            "reduction")
    _raises(lambda: detloss.sigmoid_focal_loss([0.0], [1.0], gamma=-1), "range", "gamma")
    _raises(lambda: detloss.box_iou(BOX, BOX, num_threads=-1), "range", "num_threads")
    _raises(lambda: detloss.match(BOX, BOX, semantics="yolo"), "range", "semantics")
    _raises(lambda: detloss.loss("focal", [0.0], [1.0]), "unknown", "loss")
    _raises(lambda: detloss.loss("l1", [0.0], [1.0], betta=1), "unknown", "betta")
    _raises(lambda: detloss.sigmoid_focal_loss([0.0], [1.0], alpha=float("nan")), "nonfinite",
            "alpha")
    _raises(lambda: detloss.load_anchor_preset("no_such_preset"), "not_found", "name")


def test_head_losses_name_the_image_and_field():
    a = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float32)
    im = {"anchors": a, "gt": BOX, "objectness": np.zeros(3), "deltas": np.zeros((2, 4))}
    _raises(lambda: detloss.rpn_loss([im]), "shape", "images[0].objectness")
    im = {"anchors": a, "gt": BOX, "labels": [5], "cls_logits": np.zeros((2, 3)),
          "deltas": np.zeros((2, 4))}
    _raises(lambda: detloss.retina_loss([im], 3), "range", "images[0].labels[0]")
    _raises(lambda: detloss.retina_loss([], 3), "shape", "images")
    _raises(lambda: detloss.rpn_loss([{"anchors": a}]), "null", "images[0].deltas")


def test_non_contiguous_and_float64_inputs_are_copied_and_give_the_same_result():
    rng = np.random.default_rng(1)
    b = rng.uniform(0, 50, (8, 8)).astype(np.float64)
    b[:, 2:4] += 60
    view = b[:, ::2]  # non-contiguous float64 [8, 4]
    assert not view.flags.c_contiguous
    ref = detloss.box_iou(np.ascontiguousarray(view, np.float32), BOX)
    np.testing.assert_array_equal(detloss.box_iou(view, BOX), ref)


def test_c_contiguous_float32_inputs_are_passed_without_a_copy_and_out_is_written_in_place():
    a = np.zeros((5, 4), np.float32)
    assert _lib.array("a", a, shape=(None, 4)) is a
    m = np.zeros(3, np.int64)
    assert _lib.array("m", m, np.int64) is m
    out = np.full((1, 1), -1, np.float32)
    r = detloss.box_iou(BOX, BOX, out=out)
    assert r is out and out[0, 0] == 1.0


def test_bad_out_arrays_are_refused_not_copied():
    _raises(lambda: detloss.box_iou(BOX, BOX, out=np.zeros((1, 1), np.float64)), "type", "out",
            DetlossTypeError)
    _raises(lambda: detloss.box_iou(BOX, BOX, out=np.zeros((1, 2), np.float32)), "shape", "out")
    _raises(lambda: detloss.box_iou(BOX, np.zeros((2, 4)), out=np.zeros((2, 2), np.float32).T),
            "shape", "out")
    _raises(lambda: detloss.box_iou(BOX, BOX, out=[[0.0]]), "type", "out", DetlossTypeError)


def test_outputs_are_untouched_on_error():
    out = np.full((2, 1), 7, np.float32)
    bad = np.array([[0, 0, 1, 1], [0, 0, np.nan, 1]], np.float32)
    with pytest.raises(DetlossError):
        detloss.box_iou(bad, BOX, out=out)
    assert np.all(out == 7)


def test_a_tensor_on_another_device_is_refused_naming_the_argument():
    torch = pytest.importorskip("torch")
    meta = torch.empty((1, 4), device="meta")
    _raises(lambda: detloss.box_iou(meta, BOX), "unsupported", "boxes1")
    # CPU tensors work through the numpy API, without a copy when float32
    np.testing.assert_array_equal(detloss.box_iou(torch.from_numpy(BOX), BOX), [[1.0]])
