"""detloss.fit_anchors / fit_metrics (detloss_fit_shapes), cross-checked against numpy."""
import numpy as np
import pytest

import detloss


def two_clusters(n=200, jitter=True):
    # n/2 boxes around (10, 20) and n/2 around (100, 50); the jitter d cycles through
    # -0.2 .. 0.2, so each cluster's mean is exactly its centre
    i = np.arange(n)
    d = 0.1 * ((i // 2) % 5 - 2) if jitter else np.zeros(n)
    c = i % 2
    return np.stack([np.where(c, 100.0, 10.0) + d, np.where(c, 50.0, 20.0) - d], 1).astype(
        np.float32)


def np_metrics(wh, k, thr=4.0):
    """Reference in float64 numpy: darknet avg IoU and YOLOv5 metric()/fitness."""
    wh, k = wh.astype(np.float64), k.astype(np.float64)
    inter = np.minimum(wh[:, None, 0], k[None, :, 0]) * np.minimum(wh[:, None, 1], k[None, :, 1])
    iou = inter / (wh[:, None, 0] * wh[:, None, 1] + k[None, :, 0] * k[None, :, 1] - inter)
    r = wh[:, None] / k[None]
    x = np.minimum(r, 1 / r).min(2)
    best = x.max(1)
    return {"mean_iou": iou.max(1).mean(), "fitness": (best * (best > 1 / thr)).mean(),
            "bpr": (best > 1 / thr).mean(), "aat": (x > 1 / thr).sum(1).mean()}


@pytest.mark.parametrize("method", ["kmeans", "evolve"])
def test_two_clusters_give_the_cluster_shapes(method):
    s, rep = detloss.fit_anchors(two_clusters(), 2, method)
    assert s.dtype == np.float32 and s.shape == (2, 2)
    np.testing.assert_allclose(s, [[10, 20], [100, 50]], atol=0.25)
    assert rep["num_labels"] == 200 and rep["before"] is None
    assert rep["after"]["bpr"] == 1.0 and rep["after"]["mean_iou"] > 0.98


def test_metrics_match_numpy_and_the_yolov5_worked_values():
    wh = np.array([[10, 20], [3, 40]], np.float32)
    k = np.array([[10, 13], [16, 30], [33, 23]], np.float32)
    m = detloss.fit_metrics(wh, k)
    # reference-semantics §7.2: best [0.65, 0.3], aat 2.0, bpr 1.0, fitness 0.475
    assert m["fitness"] == pytest.approx(0.475, abs=1e-6)
    assert m["aat"] == 2.0 and m["bpr"] == 1.0
    rng = np.random.default_rng(0)
    wh = rng.lognormal(3.5, 0.8, (500, 2)).astype(np.float32)
    k = rng.lognormal(3.5, 0.8, (9, 2)).astype(np.float32)
    got, ref = detloss.fit_metrics(wh, k), np_metrics(wh, k)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12)


def test_same_seed_same_bits_for_any_thread_count():
    rng = np.random.default_rng(1)
    wh = rng.lognormal(3.5, 0.8, (6000, 2)).astype(np.float32)
    for method in ("kmeans", "evolve"):
        a = [detloss.fit_anchors(wh, 9, method, seed=42, generations=50, restarts=2,
                                 num_threads=t)[0] for t in (1, 2, 3)]
        assert a[0].tobytes() == a[1].tobytes() == a[2].tobytes()


def test_evolve_report_before_and_after():
    rng = np.random.default_rng(2)
    wh = rng.lognormal(3.5, 0.8, (2000, 2)).astype(np.float32)
    old = np.array([[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90],
                    [156, 198], [373, 326]], np.float32)
    s, rep = detloss.fit_anchors(wh, 9, "evolve", old=old, generations=300)
    ref_before, ref_after = np_metrics(wh, old), np_metrics(wh, s)
    assert rep["before"]["fitness"] == pytest.approx(ref_before["fitness"], rel=1e-9)
    assert rep["after"]["fitness"] == pytest.approx(ref_after["fitness"], rel=1e-6)
    assert rep["after"]["fitness"] >= ref_before["fitness"]
    assert np.all(np.diff(s[:, 0] * s[:, 1]) >= 0)  # sorted by area


def test_boxes_are_accepted_as_well_as_wh():
    wh = two_clusters(jitter=False)
    boxes = np.concatenate([np.zeros_like(wh) + 5, wh + 5], 1)
    a, _ = detloss.fit_anchors(wh, 2)
    b, _ = detloss.fit_anchors(boxes, 2)
    np.testing.assert_array_equal(a, b)


def test_bad_input_names_the_field():
    wh = two_clusters(10)
    with pytest.raises(detloss.DetlossError) as e:
        detloss.fit_anchors(wh, 11)
    assert e.value.where == "k"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.fit_anchors(wh, 0)
    assert e.value.where == "k"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.fit_anchors(np.zeros((0, 2), np.float32), 1)
    assert e.value.where == "wh" and "without boxes" in e.value.message
    with pytest.raises(detloss.DetlossError) as e:
        detloss.fit_anchors(wh, 2, "levels")
    assert e.value.where == "method"
    bad = wh.copy()
    bad[3, 1] = np.nan
    with pytest.raises(detloss.DetlossError) as e:
        detloss.fit_anchors(bad, 2)
    assert e.value.where == "wh[3]" and e.value.status_name == "nonfinite"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.fit_anchors(wh[:, :1], 2)
    assert e.value.where == "wh"
