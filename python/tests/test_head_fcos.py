"""FCOS head loss: the numpy function and the torch drop-ins against
- a float64 torch reference of mmdetection 3.x FCOSHead.loss_by_feat written from the
  published semantics (tests/fixtures/fcos_loss/fcos_ref.py, dense P x G tensors), and
- torchvision 0.14's own FCOS.compute_loss + FCOSHead.compute_loss (variant "torchvision").
Values and gradients; the worst differences are printed (pytest -s)."""
import os
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import detloss  # noqa: E402
from conftest import REPO  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures", "fcos_loss"))
import fcos_ref  # noqa: E402

from detloss.torch_fcos import fcos_loss_torch, torchvision_fcos_loss  # noqa: E402

FM = [[12, 16], [6, 8], [3, 4], [2, 2], [1, 1]]  # a 96 x 128 image


def _scene(seed, B=2, C=5, G=(4, 6), H=96, W=128):
    rng = np.random.default_rng(seed)
    P = sum(h * w for h, w in FM)
    gts, labels = [], []
    for n in G:
        wh = rng.uniform(8, 90, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * (np.array([W, H]) - wh)
        gts.append(np.concatenate([xy, xy + wh], 1).astype(np.float32))
        labels.append(rng.integers(0, C, n))
    cls = rng.normal(-2, 2, (B, P, C)).astype(np.float32)
    bbox = rng.uniform(0.2, 5, (B, P, 4)).astype(np.float32)
    ctr = rng.normal(0, 1, (B, P)).astype(np.float32)
    return cls, bbox, ctr, gts, labels


def _ref(cls, bbox, ctr, gts, labels, **kw):
    t = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (cls, bbox, ctr)]
    losses, lab = fcos_ref.mmdet_fcos_loss(
        FM, *t, [torch.tensor(g, dtype=torch.float64) for g in gts],
        [torch.tensor(lb) for lb in labels], **kw)
    (losses["loss_cls"] + losses["loss_bbox"] + losses["loss_centerness"]).backward()
    return losses, lab, [x.grad.numpy() for x in t]


def _worst(name, a, e):
    d = float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(e, np.float64))))
    print("%-32s worst abs diff %.3g" % (name, d))
    return d


@pytest.mark.parametrize("kw", [{}, {"box_loss": "iou", "center_sampling": False},
                                {"avg_num_pos": 9.5, "avg_centerness_sum": 3.5}])
def test_numpy_fcos_loss_matches_the_mmdet_reference(kw):
    cls, bbox, ctr, gts, labels = _scene(1)
    out = detloss.fcos_loss(FM, cls, bbox, ctr, gts, labels, grad=True, **kw)
    losses, lab, grads = _ref(cls, bbox, ctr, gts, labels, **kw)
    for k in ("loss_cls", "loss_bbox", "loss_centerness"):
        assert out[k] == pytest.approx(float(losses[k]), rel=1e-5, abs=1e-7)
        _worst(k, out[k], float(losses[k]))
    assert out["num_pos"] == losses["num_pos"] > 0
    np.testing.assert_array_equal(out["labels"], lab.numpy())
    for k, g in zip(("grad_cls_logits", "grad_bbox_pred", "grad_centerness"), grads):
        np.testing.assert_allclose(out[k], g, rtol=1e-4, atol=1e-7)
        _worst(k, out[k], g)


def test_torch_drop_in_gives_the_reference_gradients_per_loss():
    cls, bbox, ctr, gts, labels = _scene(2)
    t = [torch.tensor(a, requires_grad=True) for a in (cls, bbox, ctr)]
    out = fcos_loss_torch(FM, *t, gts, labels)
    w = (0.5, 2.0, 3.0)  # different weights per loss: each reaches only its own input
    sum(wi * out[k] for wi, k in zip(w, ("loss_cls", "loss_bbox", "loss_centerness"))).backward()
    r = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (cls, bbox, ctr)]
    losses, _ = fcos_ref.mmdet_fcos_loss(FM, *r, [torch.tensor(g, dtype=torch.float64)
                                                  for g in gts],
                                         [torch.tensor(lb) for lb in labels])
    sum(wi * losses[k] for wi, k in zip(w, ("loss_cls", "loss_bbox", "loss_centerness"))).backward()
    for a, b, n in zip(t, r, ("cls", "bbox", "ctr")):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-7)
        _worst("torch grad " + n, a.grad.numpy(), b.grad.numpy())


def _tv_anchors(B):
    out = []
    for (h, w), s in zip(FM, fcos_ref.DEFAULT_STRIDES):
        ys, xs = torch.meshgrid(torch.arange(h) * s, torch.arange(w) * s, indexing="ij")
        xs, ys = xs.reshape(-1).float(), ys.reshape(-1).float()
        out.append(torch.stack([xs - s / 2, ys - s / 2, xs + s / 2, ys + s / 2], 1))
    a = torch.cat(out)
    return [a.clone() for _ in range(B)], [h * w for h, w in FM]


def _tv_model(C):
    from torchvision.models.detection import fcos
    head = fcos.FCOSHead(32, 1, C, num_convs=1)
    return types.SimpleNamespace(center_sampling_radius=1.5, head=head), fcos.FCOS.compute_loss


@pytest.mark.parametrize("seed", [3, 4])
def test_torchvision_drop_in_matches_torchvisions_own_compute_loss(seed):
    pytest.importorskip("torchvision")
    cls, bbox, ctr, gts, labels = _scene(seed, G=(5, 0) if seed == 4 else (4, 6))
    B = len(gts)
    anchors, counts = _tv_anchors(B)
    targets = [{"boxes": torch.tensor(g), "labels": torch.tensor(lb)} for g, lb in zip(gts, labels)]
    res = {}
    for who in ("torchvision", "detloss"):
        t = [torch.tensor(a, requires_grad=True) for a in (cls, bbox, ctr)]
        ho = {"cls_logits": t[0], "bbox_regression": t[1], "bbox_ctrness": t[2][..., None]}
        model, tv_compute = _tv_model(cls.shape[2])
        if who == "torchvision":
            losses = tv_compute(model, targets, ho, anchors, counts)
        else:
            losses = torchvision_fcos_loss(targets, ho, anchors, counts,
                                           model.center_sampling_radius)
        sum(losses.values()).backward()
        res[who] = ({k: float(v) for k, v in losses.items()}, [x.grad.numpy() for x in t])
    (lt, gt_), (ld, gd) = res["torchvision"], res["detloss"]
    for k in lt:
        assert ld[k] == pytest.approx(lt[k], rel=2e-5, abs=1e-6), k
        _worst("torchvision " + k, ld[k], lt[k])
    for a, b, n in zip(gd, gt_, ("cls", "bbox", "ctr")):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-6)
        _worst("torchvision grad " + n, a, b)


def test_caller_normalizer_is_what_an_all_reduce_would_pass():
    # two "ranks" of one image each with the batch's positives count give the sums of the
    # whole batch: loss(batch) = loss(rank 0) + loss(rank 1) for loss_cls and centerness
    cls, bbox, ctr, gts, labels = _scene(5)
    whole = detloss.fcos_loss(FM, cls, bbox, ctr, gts, labels)
    n = whole["num_pos"]
    s = whole["centerness_sum"]
    parts = [detloss.fcos_loss(FM, cls[i:i + 1], bbox[i:i + 1], ctr[i:i + 1], gts[i:i + 1],
                               labels[i:i + 1], avg_num_pos=n, avg_centerness_sum=s)
             for i in range(2)]
    for k in ("loss_cls", "loss_bbox", "loss_centerness"):
        assert parts[0][k] + parts[1][k] == pytest.approx(whole[k], rel=1e-5)


def test_bad_input_names_the_argument():
    cls, bbox, ctr, gts, labels = _scene(6)
    labels[1][0] = 99
    with pytest.raises(detloss.DetlossError) as e:
        detloss.fcos_loss(FM, cls, bbox, ctr, gts, labels)
    assert e.value.where == "images[1].labels[0]"
    with pytest.raises(detloss.DetlossError):
        detloss.fcos_loss(FM, cls, bbox, ctr, gts, labels, box_loss="diou")


def test_grid_points_are_mmdets_and_torchvisions_point_layouts():
    pts = detloss.grid_points([[2, 3], [1, 1]], [8, 16])
    np.testing.assert_array_equal(pts, [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12],
                                        [8, 8]])
    ref = torch.cat(fcos_ref.mmdet_points(FM, fcos_ref.DEFAULT_STRIDES)).numpy()
    np.testing.assert_array_equal(detloss.grid_points(FM), ref)
    np.testing.assert_array_equal(detloss.grid_points([[1, 2]], [8], offset=0), [[0, 0], [8, 0]])


def test_fcos_targets_torchvision_semantics_are_torchvisions_matches():
    # the assigner on its own: semantics="torchvision" gives the matcher of FCOS.compute_loss
    from torchvision.models.detection import fcos
    _, _, _, gts, labels = _scene(9)
    anchors, counts = _tv_anchors(1)
    a = anchors[0]
    seen = {}
    model = types.SimpleNamespace(
        center_sampling_radius=1.5,
        head=types.SimpleNamespace(compute_loss=lambda t, h, an, m: seen.setdefault("m", m)))
    fcos.FCOS.compute_loss(model, [{"boxes": torch.tensor(gts[0]),
                                    "labels": torch.tensor(labels[0])}], {}, [a], counts)
    pts = ((a[:, :2] + a[:, 2:]) / 2).numpy()
    strides = np.array(fcos_ref.DEFAULT_STRIDES, np.float32)
    ranges = [[0, 64], [64, 128], [128, 256], [256, 512], [512, 3.4e38]]
    t = detloss.fcos_targets(pts, counts, strides, gts[0], labels[0], center_sampling=True,
                             regress_ranges=ranges, semantics="torchvision")
    np.testing.assert_array_equal(np.asarray(t.gt_inds) - 1, seen["m"][0].numpy())
