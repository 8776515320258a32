"""detloss.simota_assign / simota_assign_torch against the float64 torch references
of tests/fixtures/simota/gen_simota.py (mmdet, YOLOX 0.3.0, YOLOX after #1589) on new
random scenes: assignments equal, IoUs within float32 rounding."""
import importlib.util
import os

import numpy as np
import pytest

import detloss

torch = pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "..", "tests", "fixtures", "simota", "gen_simota.py")


def _gen():
    spec = importlib.util.spec_from_file_location("gen_simota", GEN)
    m = importlib.util.module_from_spec(spec)
    old = torch.get_default_dtype()
    try:
        spec.loader.exec_module(m)  # sets float64 as the default dtype
    finally:
        torch.set_default_dtype(old)
    return m


def _ref(gen, sem, sc):
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return gen.run_ref(sem, sc)
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("sem", ["mmdet", "yolox_0.3", "yolox"])
def test_numpy_matches_reference(sem):
    gen = _gen()
    rng = np.random.default_rng(99)
    for i in range(8):
        sc = gen.make_scene(rng, sem, i)
        want_gt, want_iou = _ref(gen, sem, sc)
        C = len(sc["scores"][0])
        ag, al, iou = detloss.simota_assign(
            sc["points"], sc["level_counts"], sc["strides"], np.array(sc["scores"]).reshape(-1, C),
            np.array(sc["pred_boxes"]).reshape(-1, 4), np.array(sc["gt"]).reshape(-1, 4),
            sc["gt_labels"], semantics=sem, center_radius=sc["center_radius"],
            candidate_topk=sc["candidate_topk"], iou_weight=sc["iou_weight"],
            cls_weight=sc["cls_weight"])
        np.testing.assert_array_equal(ag, want_gt.numpy())
        lab = np.array(sc["gt_labels"] + [-1], np.int64)  # lab[-1] = -1 for background
        np.testing.assert_array_equal(al, lab[ag])
        np.testing.assert_allclose(iou, want_iou.numpy(), rtol=0, atol=1e-6)


def test_torch_returns_mmdet_assign_result_fields():
    gen = _gen()
    rng = np.random.default_rng(5)
    sc = gen.make_scene(rng, "mmdet", 3)
    want_gt, want_iou = _ref(gen, "mmdet", sc)
    pts = torch.tensor(sc["points"], dtype=torch.float32)
    s = torch.tensor(np.repeat(sc["strides"], sc["level_counts"]), dtype=torch.float32)
    priors = torch.cat([pts, s[:, None], s[:, None]], 1)
    C = len(sc["scores"][0])
    r = detloss.simota_assign_torch(
        priors, torch.tensor(sc["pred_boxes"]).reshape(-1, 4), torch.tensor(sc["scores"]).reshape(-1, C),
        torch.tensor(sc["gt"]).reshape(-1, 4), torch.tensor(sc["gt_labels"]))
    assert r.num_gts == len(sc["gt_labels"])
    assert torch.equal(r.gt_inds, want_gt + 1)
    pos = want_gt >= 0
    assert torch.allclose(r.max_overlaps[pos].double(), want_iou[pos], atol=1e-6)
    assert bool((r.max_overlaps[~pos] == -100000.0).all())
    lab = torch.tensor(sc["gt_labels"])
    assert torch.equal(r.labels, torch.where(pos, lab[want_gt.clamp(min=0)], torch.tensor(-1)))


def test_bad_input_names_the_argument():
    with pytest.raises(detloss.DetlossError) as e:
        detloss.simota_assign([[5, 5]], [1], [8], [[1.5]], [[0, 0, 10, 10]], [[0, 0, 10, 10]], [0])
    assert e.value.where == "scores[0][0]"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.simota_assign([[5, 5]], [1], [-8], [[0.5]], [[0, 0, 10, 10]], [[0, 0, 10, 10]], [0])
    assert e.value.where == "strides[0]"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.simota_assign([[5, 5]], [1], [8], [[0.5]], [[0, 0, 10, 10]], [[0, 0, 10, 10]], [1])
    assert e.value.where == "gt_labels[0]"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.simota_assign([[5, 5]], [1], [8], [[0.5]], [[0, 0, 10, 10]], [[0, 0, 10, 10]], [0],
                              semantics="yolox_2")
    assert e.value.where == "semantics"
