"""Every numpy binding against the C library's own results: the `detloss compute`
JSON layer run in-process (detloss_compute_json), whose numbers are printed with 9
significant digits, so float32 values round-trip and the comparisons are EXACT
(assert_array_equal) unless a tolerance is stated; plus hand-worked values."""
import math

import numpy as np
import pytest

import detloss
from detloss import _lib
from conftest import random_boxes


def f32(x):
    return np.asarray(x, dtype=np.float32)


def boxes_with_edge_cases(rng, n):
    b = random_boxes(rng, n)
    b[0] = b[1]                      # identical boxes
    b[2] = [5, 5, 5, 5]              # degenerate (zero area)
    b[3] = [30, 30, 20, 40]          # inverted x
    return b


@pytest.mark.parametrize("kind,fn", [("iou", detloss.box_iou),
                                     ("giou", detloss.generalized_box_iou),
                                     ("diou", detloss.distance_box_iou),
                                     ("ciou", detloss.complete_box_iou)])
def test_iou_matrices_equal_the_compute_op(rng, kind, fn):
    b1, b2 = boxes_with_edge_cases(rng, 9), random_boxes(rng, 7)
    ref = detloss.compute({"op": "iou", "kind": kind, "boxes1": b1.tolist(),
                           "boxes2": b2.tolist()})["matrix"]
    got = fn(b1, b2)
    assert got.dtype == np.float32 and got.shape == (9, 7)
    np.testing.assert_array_equal(got, f32(ref))


def test_iou_hand_worked_values():
    # [0,0,10,10] vs [5,5,15,15]: I = 25, U = 175 -> 1/7; C = 225 -> giou = 1/7 - 50/225
    a, b = [[0, 0, 10, 10]], [[5, 5, 15, 15]]
    assert detloss.box_iou(a, b)[0, 0] == np.float32(25 / 175)
    assert abs(detloss.generalized_box_iou(a, b)[0, 0] - (1 / 7 - 50 / 225)) < 1e-7
    # diou: rho^2 = 50, c^2 = 450 -> 1/7 - 1/9
    assert abs(detloss.distance_box_iou(a, b)[0, 0] - (1 / 7 - 1 / 9)) < 1e-7
    # two empty boxes: IoU 0, not NaN
    assert detloss.box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0, 0] == 0


def test_diou_eps_is_passed_through(rng):
    b1, b2 = random_boxes(rng, 4), random_boxes(rng, 3)
    ref = detloss.compute({"op": "iou", "kind": "diou", "boxes1": b1.tolist(),
                           "boxes2": b2.tolist(), "eps": 0.5})["matrix"]
    np.testing.assert_array_equal(detloss.distance_box_iou(b1, b2, eps=0.5), f32(ref))
    assert not np.array_equal(detloss.distance_box_iou(b1, b2, eps=0.5),
                              detloss.distance_box_iou(b1, b2))


def test_box_area_and_pairs_are_the_matrix_diagonal_and_w_times_h(rng):
    b1, b2 = boxes_with_edge_cases(rng, 6), random_boxes(rng, 6)
    # areas: (x2 - x1) * (y2 - y1) in float32, inverted boxes negative as in torchvision
    np.testing.assert_array_equal(detloss.box_area(b1), (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1]))
    for kind, fn in (("iou", detloss.box_iou), ("giou", detloss.generalized_box_iou),
                     ("diou", detloss.distance_box_iou), ("ciou", detloss.complete_box_iou)):
        np.testing.assert_array_equal(detloss.box_iou_pairs(b1, b2, kind), np.diag(fn(b1, b2)))


def test_empty_inputs_give_empty_results():
    assert detloss.box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert detloss.box_iou([], [[0, 0, 1, 1]]).shape == (0, 1)
    assert detloss.box_area(np.zeros((0, 4))).shape == (0,)
    assert detloss.match(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0,)


def test_encode_and_decode_equal_the_compute_ops_with_weights_and_clip(rng):
    a, b = random_boxes(rng, 10), random_boxes(rng, 10)
    w = [10.0, 10.0, 5.0, 5.0]
    ref = detloss.compute({"op": "encode", "anchors": a.tolist(), "boxes": b.tolist(),
                           "weights": w})["deltas"]
    d = detloss.box_encode(a, b, w)
    np.testing.assert_array_equal(d, f32(ref))
    d[0, 2] = 20.0  # clipped by clip
    ref = detloss.compute({"op": "decode", "anchors": a.tolist(), "deltas": d.tolist(),
                           "weights": w, "clip": 2.0})["boxes"]
    np.testing.assert_array_equal(detloss.box_decode(a, d, w, clip=2.0), f32(ref))
    # round trip within float32 rounding (relative 1e-5 of the coordinates)
    np.testing.assert_allclose(detloss.box_decode(a, detloss.box_encode(a, b)), b, rtol=1e-5,
                               atol=1e-4)


def test_boxcoder_takes_torchvisions_argument_order(rng):
    a, b = random_boxes(rng, 5), random_boxes(rng, 5)
    coder = detloss.BoxCoder((10, 10, 5, 5))
    np.testing.assert_array_equal(coder.encode_single(b, a), detloss.box_encode(a, b, (10, 10, 5, 5)))
    np.testing.assert_array_equal(coder.decode_single(coder.encode_single(b, a), a),
                                  detloss.box_decode(a, detloss.box_encode(a, b, (10, 10, 5, 5)),
                                                     (10, 10, 5, 5)))


def test_grid_anchors_equal_the_anchors_op():
    case = {"op": "anchors", "image_size": [96, 128], "feature_maps": [[12, 16], [6, 8]],
            "sizes": [[32, 40], [64]], "aspect_ratios": [[0.5, 1, 2], [1.0]]}
    ref = detloss.compute(case)["anchors"]
    got = detloss.grid_anchors(case["image_size"], case["feature_maps"], case["sizes"],
                               case["aspect_ratios"])
    assert got.shape == (12 * 16 * 6 + 6 * 8, 4)
    np.testing.assert_array_equal(got, f32(ref))
    # hand-worked first cell anchor: size 32, ratio 0.5 -> h_ratio sqrt(.5), w = 32/sqrt(.5)
    # = 45.25 -> half 22.63 -> round -> 23; h = 22.63 -> half 11.31 -> 11
    np.testing.assert_array_equal(got[0], [-23, -11, 23, 11])


def test_presets_load_and_generate_the_documented_anchor_counts():
    assert {"torchvision_retinanet", "torchvision_fpn", "yolov5"} <= set(detloss.anchor_presets())
    # RetinaNet at 800x1344: strides 8..128, 9 anchors per cell
    n = sum(math.ceil(800 / s) * math.ceil(1344 / s) * 9 for s in (8, 16, 32, 64, 128))
    assert detloss.anchors_count("torchvision_retinanet", image_size=(800, 1344)) == n
    a = detloss.anchors_generate("torchvision_retinanet", image_size=(64, 64))
    assert a.shape == (detloss.anchors_count("torchvision_retinanet", image_size=(64, 64)), 4)
    base = detloss.anchors_base("yolov5", 0)  # shapes (10,13),(16,30),(33,23) centred on 0
    np.testing.assert_array_equal(base[0], [-5, -6.5, 5, 6.5])


def test_anchor_config_dicts_with_explicit_base_and_detectron2_convention():
    cfg = detloss.anchor_config([{"stride": 16, "feature_size": [2, 3],
                                  "base": [[-8, -8, 8, 8]]}], offset=0.5)
    a = detloss.anchors_generate(cfg)
    # cell (y, x) centre ((x + 0.5) * 16, (y + 0.5) * 16)
    np.testing.assert_array_equal(a[4], [24 - 8, 24 - 8, 24 + 8, 24 + 8])
    d2 = detloss.anchors_generate({"convention": "detectron2", "levels": [
        {"stride": 8, "feature_size": [1, 1], "sizes": [32], "aspect_ratios": [1.0]}]})
    np.testing.assert_array_equal(d2, [[-16, -16, 16, 16]])


@pytest.mark.parametrize("opts", [{}, {"high": 0.5, "low": 0.4},
                                  {"allow_low_quality": False},
                                  {"semantics": "mmdet", "low_quality_min_iou": 0.1}])
def test_match_equals_the_compute_op(rng, opts):
    a = detloss.grid_anchors([128, 128], [[16, 16], [8, 8]], [[16, 24], [48]], [[0.5, 1, 2], [1]])
    g = random_boxes(rng, 6, scale=128, min_size=8)
    case = {"op": "match", "anchors": a.tolist(), "gt": g.tolist(), **opts}
    ref = detloss.compute(case)
    m, v = detloss.match(a, g, return_max_iou=True, **opts)
    assert m.dtype == np.int64
    np.testing.assert_array_equal(m, ref["matches"])
    np.testing.assert_array_equal(v, f32(ref["max_iou"]))


def test_match_grid_equals_match_on_the_generated_anchors(rng):
    g = random_boxes(rng, 10, scale=256, min_size=10)
    a = detloss.anchors_generate("torchvision_retinanet", image_size=(256, 256))
    m1, v1 = detloss.match(a, g, 0.5, 0.4, return_max_iou=True)
    m2, v2 = detloss.match_grid("torchvision_retinanet", g, 0.5, 0.4, image_size=(256, 256),
                                return_max_iou=True)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(v1, v2)


def test_crowd_gts_are_never_matched_and_ignore_the_anchors_they_cover():
    a = f32([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]])
    g = f32([[0, 0, 10, 10], [20, 20, 30, 30]])
    m = detloss.match(a, g, gt_is_crowd=[False, True])
    np.testing.assert_array_equal(m, [0, -2, -1])


def test_allowed_border_ignores_anchors_outside_the_image():
    a = f32([[-5, 0, 10, 10], [0, 0, 10, 10]])
    m = detloss.match(a, [[0, 0, 10, 10]], allowed_border=0, image_size=(20, 20))
    np.testing.assert_array_equal(m, [-2, 0])


def test_sample_balanced_draws_the_torchvision_counts_deterministically():
    m = np.full(1000, -1, np.int64)
    m[:50] = 0
    m[50:60] = -2
    s, npos, nneg = detloss.sample_balanced(m, 64, 0.25, seed=3)
    # n_pos = min(50, floor(64 * .25)) = 16; n_neg = min(940, 64 - 16) = 48
    assert (npos, nneg) == (16, 48)
    assert (s == 1).sum() == 16 and (s == 0).sum() == 48
    assert np.all(m[s == 1] >= 0) and np.all(m[s == 0] == -1) and np.all(s[50:60] == -1)
    s2, _, _ = detloss.sample_balanced(m, 64, 0.25, seed=3, num_threads=3)
    np.testing.assert_array_equal(s, s2)
    s3, _, _ = detloss.sample_balanced(m, 64, 0.25, seed=4)
    assert not np.array_equal(s, s3)


def test_match_targets_encode_positives_and_zero_the_rest(rng):
    a = random_boxes(rng, 8)
    g = random_boxes(rng, 3)
    m = np.array([0, -1, 2, -2, 1, -1, 0, 2])
    labels, mg, d = detloss.match_targets(a, g, m)
    np.testing.assert_array_equal(labels, [1, 0, 1, -1, 1, 0, 1, 1])
    np.testing.assert_array_equal(mg, np.maximum(m, 0))
    pos = m >= 0
    np.testing.assert_array_equal(d[pos], detloss.box_encode(a[pos], g[m[pos]]))
    assert np.all(d[~pos] == 0)


ELEMENTWISE = [
    ("bce_with_logits", lambda r, s: r.normal(size=s), lambda r, s: r.uniform(size=s), {}),
    ("bce_with_logits", lambda r, s: r.normal(size=s), lambda r, s: r.uniform(size=s),
     {"pos_weight": [0.5, 2.0, 3.0]}),
    ("bce", lambda r, s: r.uniform(0.01, 0.99, s), lambda r, s: r.uniform(size=s), {}),
    ("sigmoid_focal", lambda r, s: 3 * r.normal(size=s), lambda r, s: (r.uniform(size=s) < .3) * 1.,
     {"alpha": 0.3, "gamma": 1.5}),
    ("hinge", lambda r, s: r.normal(size=s), lambda r, s: r.choice([-1., 1.], s), {"margin": 0.7}),
    ("l1", lambda r, s: r.normal(size=s), lambda r, s: r.normal(size=s), {}),
    ("mse", lambda r, s: r.normal(size=s), lambda r, s: r.normal(size=s), {}),
    ("smooth_l1", lambda r, s: r.normal(size=s), lambda r, s: r.normal(size=s), {"beta": 0.5}),
    ("huber", lambda r, s: r.normal(size=s), lambda r, s: r.normal(size=s), {"delta": 0.8}),
]


@pytest.mark.parametrize("name,gx,gy,params", ELEMENTWISE)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_elementwise_losses_and_gradients_equal_the_compute_op(rng, name, gx, gy, params,
                                                               reduction):
    x, y = f32(gx(rng, (4, 3))), f32(gy(rng, (4, 3)))
    w = f32(rng.uniform(0.5, 2, (4, 3)))
    ref = detloss.compute({"op": "loss", "loss": name, "input": x.tolist(), "target": y.tolist(),
                           "weight": w.tolist(), "reduction": reduction, "params": params,
                           "grad": True})
    l, g = detloss.loss(name, x, y, w, reduction, grad=True, **params)
    np.testing.assert_array_equal(l, f32(ref["loss"]))
    np.testing.assert_array_equal(g, f32(ref["grad"]))
    assert l.shape == ((4, 3) if reduction == "none" else ())


@pytest.mark.parametrize("name,params", [("cross_entropy", {"label_smoothing": 0.1}),
                                         ("cross_entropy", {"ignore_index": 2}),
                                         ("softmax_focal", {"alpha": 0.5, "gamma": 1.0})])
def test_class_indexed_losses_equal_the_compute_op(rng, name, params):
    x = f32(rng.normal(size=(6, 4)))
    t = rng.integers(0, 4, 6)
    ref = detloss.compute({"op": "loss", "loss": name, "input": x.tolist(), "target": t.tolist(),
                           "params": params, "grad": True})
    l, g = detloss.loss(name, x, t, grad=True, **params)
    np.testing.assert_array_equal(l, f32(ref["loss"]))
    np.testing.assert_array_equal(g, f32(ref["grad"]))


@pytest.mark.parametrize("name,fn", [("iou_loss", detloss.iou_loss),
                                     ("giou_loss", detloss.generalized_box_iou_loss),
                                     ("diou_loss", detloss.distance_box_iou_loss),
                                     ("ciou_loss", detloss.complete_box_iou_loss)])
def test_box_losses_and_both_gradients_equal_the_compute_op(rng, name, fn):
    p, t = boxes_with_edge_cases(rng, 7), random_boxes(rng, 7)
    for red in ("none", "sum", "mean"):
        ref = detloss.compute({"op": "loss", "loss": name, "input": p.tolist(),
                               "target": t.tolist(), "reduction": red, "grad": True})
        l, g1, g2 = fn(p, t, reduction=red, grad=True)
        np.testing.assert_array_equal(l, f32(ref["loss"]))
        np.testing.assert_array_equal(g1, f32(ref["grad"]))
        np.testing.assert_array_equal(g2, f32(ref["grad_target"]))
    # the torchvision default reduction is "none"
    assert fn(p, t).shape == (7,)


@pytest.mark.parametrize("name", ["contrastive", "cosine_embedding", "triplet_margin"])
def test_embedding_losses_equal_the_compute_op(rng, name):
    x1, x2, x3 = (f32(rng.normal(size=(5, 3))) for _ in range(3))
    case = {"op": "embedding_loss", "loss": name, "x1": x1.tolist(), "x2": x2.tolist(),
            "grad": True, "reduction": "sum"}
    if name == "triplet_margin":
        case.update(x3=x3.tolist(), params={"margin": 2.0, "swap": True})
        l, *g = detloss.triplet_margin_loss(x1, x2, x3, margin=2.0, swap=True, reduction="sum",
                                            grad=True)
    elif name == "contrastive":
        t = [1, 0, 1, 0, 0]
        case.update(target=t, params={"margin": 3.0})
        l, *g = detloss.contrastive_loss(x1, x2, t, margin=3.0, reduction="sum", grad=True)
    else:
        t = [1, -1, 1, -1, -1]
        case.update(target=t, params={"margin": 0.1})
        l, *g = detloss.cosine_embedding_loss(x1, x2, t, margin=0.1, reduction="sum", grad=True)
    ref = detloss.compute(case)
    np.testing.assert_array_equal(l, f32(ref["loss"]))
    for k, gk in enumerate(g):
        np.testing.assert_array_equal(gk, f32(ref["grad_x%d" % (k + 1)]))


def test_sigmoid_focal_hand_worked_value():
    # x = 0, y = 1: p = 0.5, CE = ln 2, (1 - p_t)^2 = 0.25, alpha_t = 0.25 -> 0.0625 ln 2
    assert abs(detloss.sigmoid_focal_loss([0.0], [1.0])[0] - 0.0625 * math.log(2)) < 1e-8


def test_results_are_bitwise_identical_for_any_thread_count(rng):
    x = f32(rng.normal(size=300000))
    y = f32(rng.uniform(size=300000) < 0.01)
    r = [detloss.sigmoid_focal_loss(x, y, reduction="sum", grad=True, num_threads=t)
         for t in (1, 2, 4)]
    for l, g in r[1:]:
        assert l.tobytes() == r[0][0].tobytes() and g.tobytes() == r[0][1].tobytes()


def _head_batch(rng, kind, num_classes=3):
    images = []
    for i, g in enumerate((4, 0)):
        a = detloss.grid_anchors([96, 96], [[6, 6], [3, 3]], [[24], [48]], [[0.5, 1, 2], [1]])
        gt = random_boxes(rng, g, scale=90, min_size=10)
        im = {"anchors": a, "gt": gt, "deltas": f32(0.1 * rng.normal(size=(len(a), 4)))}
        if kind == "rpn":
            im["objectness"] = f32(rng.normal(size=len(a)))
        else:
            im["labels"] = rng.integers(0, num_classes, g)
            im["cls_logits"] = f32(rng.normal(size=(len(a), num_classes)))
        images.append(im)
    return images


def _json_images(images):
    return [{k: np.asarray(v).tolist() for k, v in im.items()} for im in images]


@pytest.mark.parametrize("config", [{}, {"convention": "detectron2"},
                                    {"box_loss": "giou", "batch_size_per_image": 32}])
def test_rpn_loss_equals_the_compute_op(rng, config):
    images = _head_batch(rng, "rpn")
    ref = detloss.compute({"op": "rpn_loss", "images": _json_images(images), "config": config,
                           "grad": True})
    r = detloss.rpn_loss(images, **config)
    assert r["loss_objectness"] == np.float32(ref["loss_objectness"])
    assert r["loss_box_reg"] == np.float32(ref["loss_box_reg"])
    # the op's num_pos / num_neg are the sampled counts of the batch
    assert (r["num_sampled_pos"], r["num_sampled_neg"], r["normalizer"]) == \
        (ref["num_pos"], ref["num_neg"], ref["normalizer"])
    for i in range(2):
        np.testing.assert_array_equal(r["grad_objectness"][i], f32(ref["grad_objectness"][i]))
        np.testing.assert_array_equal(r["grad_deltas"][i], f32(ref["grad_deltas"][i]))
        assert r["per_image"][i]["num_sampled_pos"] == ref["per_image"][i]["num_sampled_pos"]


@pytest.mark.parametrize("config", [{}, {"box_loss": "smooth_l1", "smooth_l1_beta": 0.5},
                                    {"box_loss": "ciou", "alpha": -1, "gamma": 0.5},
                                    {"normalizer": "detectron2_ema", "ema_state": 50.0}])
def test_retina_loss_equals_the_compute_op(rng, config):
    images = _head_batch(rng, "retina")
    ref = detloss.compute({"op": "retina_loss", "images": _json_images(images),
                           "config": config, "grad": True})
    r = detloss.retina_loss(images, 3, **config)
    assert r["loss_cls"] == np.float32(ref["loss_cls"])
    assert r["loss_box_reg"] == np.float32(ref["loss_box_reg"])
    assert r["num_pos"] == ref["num_pos"]
    assert r["normalizer"] == pytest.approx(ref["normalizer"], rel=1e-8)  # JSON: 9 digits
    if "ema_state" in config:
        assert r["ema_state"] == np.float32(ref["ema_state"])
    for i in range(2):
        np.testing.assert_array_equal(r["grad_cls_logits"][i], f32(ref["grad_cls_logits"][i]))
        np.testing.assert_array_equal(r["grad_deltas"][i], f32(ref["grad_deltas"][i]))


def _eval_or_skip(*args, **kw):
    try:
        return detloss.anchor_eval(*args, **kw)
    except detloss.DetlossError as e:
        if e.status == _lib.ERR_UNSUPPORTED:
            pytest.skip("anchor evaluation not in this build: %s" % e)
        raise


def test_anchor_eval_best_ious_equal_the_max_of_box_iou(rng):
    anchors = detloss.grid_anchors([128, 128], [[8, 8]], [[32]], [[0.5, 1, 2]])
    # boxes inside the image (x2 <= 60 + 30), so nothing is clipped
    data = [{"height": 128, "width": 128, "boxes": random_boxes(rng, 5, 60, 4)},
            {"height": 128, "width": 128, "boxes": np.zeros((0, 4), np.float32)},
            {"height": 128, "width": 128, "boxes": random_boxes(rng, 3, 60, 4)}]
    calls = []
    rep, per = _eval_or_skip(data, anchors=anchors, return_per_gt=True, high=0.5, low=0.4,
                             progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (3, 3)
    assert np.all(per["clipped"] == 0) and np.all(per["status"] == 0)
    allb = np.concatenate([d["boxes"] for d in data])
    best = detloss.box_iou(allb, anchors).max(1)
    np.testing.assert_array_equal(per["best"], best)
    assert rep["num_gt"] == 8 and rep["num_images"] == 3 and rep["num_images_empty"] == 1
    assert rep["recall"] == pytest.approx(np.mean(best >= 0.5), abs=1e-12)
    assert rep["mean_best"] == pytest.approx(float(np.mean(best.astype(np.float64))), rel=1e-6)
    fit = (detloss.box_iou(allb, anchors) >= 0.5).sum(1)
    np.testing.assert_array_equal(per["num_fit"], fit)
    assert sum(rep["by_size"][k]["num_gt"] for k in ("small", "medium", "large")) == 8
    assert len(rep["worst"]) == 8 and rep["worst"][0]["best"] == best.min()


def test_anchor_eval_wh_ratio_hand_worked():
    # gt 20x40 vs shape 10x10: r = min(2, .5, 4, .25) = 0.25 -> fits iff 0.25 > 1/4: no;
    # vs shape 20x20: r = min(1, 1, 2, .5) = 0.5 -> fits.
    rep = _eval_or_skip([{"height": 100, "width": 100, "boxes": [[10, 10, 30, 50]]}],
                        shapes=[[10, 10], [20, 20]], metric="wh_ratio")
    assert rep["num_gt"] == 1 and rep["recall"] == 1.0
    assert rep["mean_best"] == pytest.approx(0.5) and rep["anchors_per_gt"] == 1.0
