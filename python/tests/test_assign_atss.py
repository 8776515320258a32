"""detloss.atss_assign / detloss.fcos_targets against torch references of mmdetection's
ATSSAssigner and FCOSHead._get_targets_single (and the original repositories), written from
their published semantics in float64 (tests/fixtures/atss_fcos/gen_atss_fcos.py, imported
here): assignments exact, IoUs / targets within float32 tolerance; the AssignResult fields
as mmdet has them (gt_inds 1-based, 0 background, -1 ignored)."""
import importlib.util
import math
import os

import numpy as np
import pytest

import detloss
from conftest import REPO

torch = pytest.importorskip("torch")

GEN = os.path.join(REPO, "tests", "fixtures", "atss_fcos", "gen_atss_fcos.py")


@pytest.fixture(scope="module")
def ref():
    spec = importlib.util.spec_from_file_location("gen_atss_fcos", GEN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ANCHORS = np.array([[0, 0, 10, 10], [10, 0, 20, 10], [20, 0, 30, 10], [30, 0, 40, 10]],
                   np.float32)
GT = np.array([[2, 0, 14, 10], [20, 0, 40, 10]], np.float32)


def test_atss_hand_worked_fields_are_mmdets():
    # gt0 takes anchor 0 (IoU 4/7 >= t = 0.5526); gt1's t = 0.6220 > 0.5: no positive
    r = detloss.atss_assign(ANCHORS, [4], GT, [5, 7], topk=3)
    assert r.num_gts == 2
    assert r.gt_inds.tolist() == [1, 0, 0, 0]
    assert r.labels.tolist() == [5, -1, -1, -1]
    np.testing.assert_allclose(r.max_overlaps, [4 / 7, 0, 0, 0], rtol=1e-6)


def test_atss_ignore_is_minus_one_and_torch_in_torch_out():
    r = detloss.atss_assign(torch.tensor(ANCHORS), [4], torch.tensor(GT), torch.tensor([5, 7]),
                            topk=3, ignore=[[28, 0, 40, 10]], ignore_iof_thr=0.5)
    assert isinstance(r.gt_inds, torch.Tensor)
    assert r.gt_inds.tolist() == [1, 0, 2, -1]
    assert r.labels.tolist() == [5, -1, 7, -1]


def _atss_scene(ref, rng, semantics, apl_shape, G):
    ratios = [0.5, 1.0, 2.0] if apl_shape[0] == 3 else [1.0]
    scales = [1.0, 1.26, 1.59] if apl_shape[1] == 3 else [1.0]
    anchors, counts = ref.grid_anchors(96, 72, [8, 16, 32], [32, 64, 128], ratios, scales)
    gt = ref.random_gts(rng, G, 96, 72, [8, 16, 32], dup=1)
    return anchors.astype(np.float32), counts, gt.astype(np.float32), len(ratios) * len(scales)


@pytest.mark.parametrize("semantics", ["mmdet", "original"])
@pytest.mark.parametrize("apl_shape", [(1, 1), (3, 3)])
def test_atss_matches_the_torch_reference(ref, semantics, apl_shape):
    import random
    rng = random.Random(hash((semantics, apl_shape)) & 0xffff)
    checked = 0
    for _ in range(6):
        anchors, counts, gt, apl = _atss_scene(ref, rng, semantics, apl_shape, rng.randrange(1, 9))
        want, iou, ok = ref.atss_ref(torch.tensor(anchors, dtype=torch.float64), counts,
                                     torch.tensor(gt, dtype=torch.float64), 9, semantics,
                                     apl if semantics == "original" else 1,
                                     torch.zeros(0, 4, dtype=torch.float64), -1.0)
        if not ok:
            continue
        r = detloss.atss_assign(anchors, counts, gt, np.arange(len(gt)), semantics=semantics,
                                anchors_per_location=apl)
        want = np.array(want)
        np.testing.assert_array_equal(r.gt_inds, np.where(want >= 0, want + 1, 0))
        np.testing.assert_allclose(r.max_overlaps, np.array(iou), rtol=1e-6, atol=1e-7)
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize("semantics", ["mmdet", "original"])
@pytest.mark.parametrize("cs", [False, True])
def test_fcos_matches_the_torch_reference(ref, semantics, cs):
    import random
    rng = random.Random(7 + cs + 2 * (semantics == "original"))
    strides = [8, 16, 32, 64, 128]
    ranges = [[-1, 64], [64, 128], [128, 256], [256, 512], [512, 1e8]]
    pts, counts = ref.fcos_points(160, 128, strides, "half")
    for _ in range(5):
        gt = ref.random_gts(rng, rng.randrange(0, 10), 160, 128, strides, dup=1)
        norm = rng.random() < 0.5
        want, tg, ctr = ref.fcos_ref(torch.tensor(pts), counts, strides, ranges,
                                     torch.tensor(gt).reshape(-1, 4), semantics, cs, 1.5, norm)
        r = detloss.fcos_targets(pts, counts, strides, gt, np.arange(len(gt)),
                                 center_sampling=cs, norm_on_bbox=norm, semantics=semantics)
        want = np.array(want)
        np.testing.assert_array_equal(r.gt_inds, np.where(want >= 0, want + 1, 0))
        np.testing.assert_allclose(r.bbox_targets, np.array(tg), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(r.centerness_targets, np.array(ctr), rtol=1e-6, atol=1e-6)


def test_errors_name_the_argument():
    with pytest.raises(detloss.DetlossError) as e:
        detloss.atss_assign(ANCHORS, [3], GT)
    assert e.value.where == "level_counts"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.atss_assign(ANCHORS, [4], GT, topk=0)
    assert e.value.where == "topk"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.fcos_targets([[4, 4]], [1], [-8], [[0, 0, 8, 8]], regress_ranges=[[-1, 64]])
    assert e.value.where == "strides[0]"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.fcos_targets([[4, 4]], [1], [8], [[0, 0, 8, 8]])
    assert e.value.where == "regress_ranges"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.atss_assign(ANCHORS, [4], GT, semantics="yolov6")
    assert e.value.where == "semantics"


def test_fcos_out_of_range_names_the_gts_no_level_can_take():
    """The hand-worked case of tests/cli/cases/assign_fcos_out_of_range: range [-1, 20] on
    one level. The 24 x 24 gt (points inside at max(l,t,r,b) in [12, 24)) is reachable, the
    64 x 64 one ([32, 64)) is not, and fcos_targets gives it no positive; FCOS's five
    ranges reach both."""
    gt = [[4, 4, 28, 28], [0, 0, 64, 64]]
    oor = detloss.fcos_out_of_range(gt, [[-1, 20]])
    assert list(oor) == [False, True]
    r = detloss.fcos_targets([[8, 8], [24, 8], [8, 24], [24, 24]], [4], [16], gt,
                             regress_ranges=[[-1, 20]])
    assert list(r.gt_inds) == [1, 1, 1, 1]  # mmdet AssignResult: 1-based, gt 0 everywhere
    assert list(detloss.fcos_out_of_range(gt)) == [False, False]
    with pytest.raises(detloss.DetlossError) as e:
        detloss.fcos_out_of_range(gt, [[20, -1]])
    assert e.value.where == "regress_ranges[0]"
