"""None or a wrong kind of object for an array / tensor argument: every public
entry point raises detloss's DetlossTypeError (a TypeError and a ValueError)
naming the argument as the caller spelled it -- never a bare TypeError, KeyError or
AttributeError from inside the binding, and never a library status for a value the
binding should have refused. None keeps the status "null"; other objects "type"."""
import inspect

import numpy as np
import pytest

import detloss
from detloss import DetlossError, DetlossTypeError

BOX = np.array([[0, 0, 10, 10]], np.float32)
A2 = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float32)
GRID = {"levels": [{"stride": 8, "sizes": [16.0], "aspect_ratios": [1.0]}]}
RPN_IMAGE = {"anchors": A2, "gt": BOX, "objectness": np.zeros(2), "deltas": np.zeros((2, 4))}
RETINA_IMAGE = {"anchors": A2, "gt": BOX, "labels": [0], "cls_logits": np.zeros((2, 3)),
                "deltas": np.zeros((2, 4))}
X3 = np.zeros((2, 3), np.float32)
P = np.full(3, 0.5, np.float32)

# function, valid positional arguments, valid keyword arguments
OPS = [
    (detloss.box_area, (BOX,), {}),
    (detloss.box_iou, (BOX, BOX), {}),
    (detloss.generalized_box_iou, (BOX, BOX), {}),
    (detloss.distance_box_iou, (BOX, BOX), {}),
    (detloss.complete_box_iou, (BOX, BOX), {}),
    (detloss.box_iou_pairs, (BOX, BOX), {}),
    (detloss.box_encode, (BOX, BOX), {}),
    (detloss.box_decode, (BOX, BOX), {}),
    (detloss.load_anchor_preset, ("torchvision_retinanet",), {}),
    (detloss.anchor_config, (GRID["levels"],), {}),
    (detloss.anchors_count, (GRID,), {"image_size": (16, 16)}),
    (detloss.anchors_base, (GRID,), {}),
    (detloss.anchors_generate, (GRID,), {"image_size": (16, 16)}),
    (detloss.anchor_grid, (GRID,), {"image_size": (16, 16)}),
    (detloss.torchvision_anchor_grid, ([[16.0]], [[1.0]], (16, 16), [[2, 2]]), {}),
    (detloss.grid_anchors, ((16, 16), [[2, 2]], [[16.0]], [[1.0]]), {}),
    (detloss.match, (A2, BOX), {}),
    (detloss.match_grid, (GRID, BOX), {"image_size": (16, 16)}),
    (detloss.sample_balanced, ([0, -1],), {}),
    (detloss.match_targets, (BOX, BOX, [0]), {}),
    (detloss.binary_cross_entropy_with_logits, (P, P), {}),
    (detloss.binary_cross_entropy, (P, P), {}),
    (detloss.cross_entropy, (X3, [0, 1]), {}),
    (detloss.sigmoid_focal_loss, (P, P), {}),
    (detloss.softmax_focal_loss, (X3, [0, 1]), {}),
    (detloss.hinge_loss, (P, np.ones(3)), {}),
    (detloss.l1_loss, (P, P), {}),
    (detloss.mse_loss, (P, P), {}),
    (detloss.smooth_l1_loss, (P, P), {}),
    (detloss.huber_loss, (P, P), {}),
    (detloss.iou_loss, (BOX, BOX), {}),
    (detloss.generalized_box_iou_loss, (BOX, BOX), {}),
    (detloss.distance_box_iou_loss, (BOX, BOX), {}),
    (detloss.complete_box_iou_loss, (BOX, BOX), {}),
    (detloss.contrastive_loss, (X3, X3, [1, 0]), {}),
    (detloss.cosine_embedding_loss, (X3 + 1, X3 + 1, [1, -1]), {}),
    (detloss.triplet_margin_loss, (X3, X3, X3), {}),
    (detloss.rpn_loss, ([RPN_IMAGE],), {}),
    (detloss.retina_loss, ([RETINA_IMAGE], 3), {}),
    (detloss.anchor_eval, ([{"height": 32, "width": 32, "boxes": [[1, 1, 9, 9]]}],),
     {"anchors": BOX}),
    (detloss.compute, ({"op": "iou", "boxes1": [[0, 0, 1, 1]], "boxes2": [[0, 0, 1, 1]]},), {}),
]


def _cases(table):
    out = []
    for fn, args, kw in table:
        names = list(inspect.signature(fn).parameters)
        for k in range(len(args)):
            out.append(pytest.param(fn, args, kw, k, names[k],
                                    id="%s.%s" % (fn.__name__, names[k])))
    return out


def _check(fn, args, kw, k, name, bad, status):
    fn(*args, **kw)  # the valid call works
    a = list(args)
    a[k] = bad
    with pytest.raises(DetlossTypeError) as ei:
        fn(*a, **kw)
    e = ei.value
    assert isinstance(e, TypeError) and isinstance(e, ValueError)
    assert e.where == name or e.where.startswith((name + "[", name + ".")), e
    assert e.status_name == status, e


@pytest.mark.parametrize("fn,args,kw,k,name", _cases(OPS))
def test_numpy_api_none_argument_is_a_detloss_type_error_naming_it(fn, args, kw, k, name):
    _check(fn, args, kw, k, name, None, "null")


@pytest.mark.parametrize("fn,args,kw,k,name", _cases(OPS))
def test_numpy_api_wrong_object_is_a_detloss_type_error_naming_it(fn, args, kw, k, name):
    _check(fn, args, kw, k, name, object(), "type")


def test_images_that_are_not_dicts_are_named():
    for bad in (None, 3, [None], ["image"]):
        with pytest.raises(DetlossTypeError) as e:
            detloss.rpn_loss(bad)
        assert e.value.where.startswith("images"), e.value
    with pytest.raises(DetlossTypeError) as e:
        detloss.anchor_eval([{"height": 1, "width": 1}, 5], anchors=BOX)
    assert e.value.where == "dataset.images[1]"


def _torch_table():
    torch = pytest.importorskip("torch")
    import detloss.torch as dt
    b = torch.tensor([[0.0, 0, 10, 10]])
    x = torch.zeros(2, 3)
    p = torch.full((3,), 0.5)
    anchors = [torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])]
    return [
        (dt.sigmoid_focal_loss, (p, p), {}),
        (dt.generalized_box_iou_loss, (b, b), {}),
        (dt.distance_box_iou_loss, (b, b), {}),
        (dt.complete_box_iou_loss, (b, b), {}),
        (dt.iou_loss, (b, b), {}),
        (dt.box_iou, (b, b), {}),
        (dt.generalized_box_iou, (b, b), {}),
        (dt.distance_box_iou, (b, b), {}),
        (dt.complete_box_iou, (b, b), {}),
        (dt.box_area, (b,), {}),
        (dt.rpn_loss, (torch.zeros(2), torch.zeros(2, 4), anchors, [{"boxes": b}]), {}),
        (dt.retina_loss, (torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), anchors,
                          [{"boxes": b, "labels": torch.tensor([0])}]), {}),
        (dt.binary_cross_entropy_with_logits, (p, p), {}),
        (dt.binary_cross_entropy, (p, p), {}),
        (dt.l1_loss, (p, p), {}),
        (dt.mse_loss, (p, p), {}),
        (dt.smooth_l1_loss, (p, p), {}),
        (dt.huber_loss, (p, p), {}),
        (dt.hinge_loss, (p, torch.ones(3)), {}),
        (dt.cross_entropy, (x, torch.tensor([0, 1])), {}),
        (dt.softmax_focal_loss, (x, torch.tensor([0, 1])), {}),
        (dt.cosine_embedding_loss, (x + 1, x + 1, torch.tensor([1, -1])), {}),
        (dt.triplet_margin_loss, (x, x, x), {}),
        (dt.contrastive_loss, (x, x, torch.tensor([1.0, 0.0])), {}),
    ]


def _torch_cases():
    try:
        return _cases(_torch_table())
    except pytest.skip.Exception:
        return []


@pytest.mark.parametrize("fn,args,kw,k,name", _torch_cases())
def test_torch_none_argument_is_a_detloss_type_error_naming_it(fn, args, kw, k, name):
    _check(fn, args, kw, k, name, None, "null")


@pytest.mark.parametrize("fn,args,kw,k,name", _torch_cases())
def test_torch_wrong_object_is_a_detloss_type_error_naming_it(fn, args, kw, k, name):
    _check(fn, args, kw, k, name, "tensor", "type")


def test_torch_rpn_loss_of_none_names_the_argument():
    pytest.importorskip("torch")
    import detloss.torch as dt
    with pytest.raises(DetlossTypeError) as e:
        dt.rpn_loss(None, None, None, None)
    assert e.value.where in ("objectness", "anchors")
    with pytest.raises(DetlossTypeError) as e:
        detloss.rpn_loss(None)
    assert e.value.where == "images"


def test_torch_targets_missing_labels_or_not_dicts_are_named():
    torch = pytest.importorskip("torch")
    import detloss.torch as dt
    anchors = [torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])]
    b = torch.tensor([[0.0, 0, 10, 10]])
    with pytest.raises(DetlossError) as e:  # a missing key, as for "boxes"
        dt.retina_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), anchors, [{"boxes": b}])
    assert e.value.where == "targets[0].labels" and e.value.status_name == "missing"
    with pytest.raises(DetlossTypeError) as e:
        dt.rpn_loss(torch.zeros(2), torch.zeros(2, 4), anchors, [b])
    assert e.value.where == "targets[0]"
    with pytest.raises(DetlossTypeError) as e:
        dt.patch_retinanet(None)
    assert e.value.where == "model"
    with pytest.raises(DetlossTypeError) as e:
        dt.patch_rpn(object())
    assert e.value.where == "model"
