"""The YOLOv8 loss: detloss.yolov8_loss (numpy) and the torch drop-in
detloss.torch_yolov8.V8DetectionLoss against a torch reference of ultralytics
v8DetectionLoss (8.1) written from the published semantics (yolov8_reference.py:
dense batched TaskAlignedAssigner, bbox2dist, DFLoss, BboxLoss).

Tolerances: the reference runs in float64 on float32-rounded inputs; detloss reads
float32 and sums in double, so values agree to ~1e-6 relative and gradients to ~1e-7
absolute (stated per test). The worst differences are printed (pytest -s)."""
import copy
import json
import os
import pickle
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from detloss import DetlossError, yolov8_loss  # noqa: E402
from detloss.torch_yolov8 import V8DetectionLoss  # noqa: E402
from yolov8_reference import RefV8DetectionLoss, split_feats  # noqa: E402

from conftest import REPO  # noqa: E402

FIXTURES = os.path.join(REPO, "tests", "fixtures", "yolov8")


def _report(name, a, b):
    d = float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) \
        if np.size(a) else 0.0
    print("%s: worst |detloss - reference| = %.3g" % (name, d))
    return d


def _feats(rng, B, H, W, nc, R=16, strides=(8, 16, 32), dtype=torch.float32):
    out = []
    for s in strides:
        h, w = H // s, W // s
        d = rng.uniform(0.5, 4.0, size=(B, 4, 1, h, w))
        k = np.arange(R).reshape(1, 1, R, 1, 1)
        dist = -((k - d) ** 2) + rng.normal(0, 0.3, size=(B, 4, R, h, w))
        cls = rng.normal(-1.0, 1.5, size=(B, nc, h, w))
        x = np.concatenate([dist.reshape(B, 4 * R, h, w), cls], 1).astype(np.float32)
        out.append(torch.tensor(x, dtype=dtype))
    return out


def _batch(rng, B, H, W, nc, per_image):
    bi, cl, bb = [], [], []
    for i in range(B):
        for _ in range(per_image[i]):
            w, h = rng.uniform(0.08, 0.6), rng.uniform(0.08, 0.6)
            cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
            bi.append(i)
            cl.append(int(rng.integers(nc)))
            bb.append([cx, cy, w, h])
    f = torch.float32
    return {"batch_idx": torch.tensor(bi, dtype=f), "cls": torch.tensor(cl, dtype=f).view(-1, 1),
            "bboxes": torch.tensor(bb, dtype=f).view(-1, 4)}


@pytest.mark.parametrize("name", ["two_images", "zero_gt_and_conflicts", "padding_gt",
                                  "options", "no_gt"])
def test_numpy_function_matches_the_stored_float64_fixtures(name):
    with open(os.path.join(FIXTURES, name + ".json")) as f:
        fx = json.load(f)
    c, e = fx["input"], fx["expected"]
    cfg = c["config"]
    r = yolov8_loss(c["image_size"], [im["gt"] for im in c["images"]],
                    [im["labels"] for im in c["images"]],
                    [im["pred_distri"] for im in c["images"]],
                    [im["pred_scores"] for im in c["images"]],
                    strides=cfg.get("strides", (8, 16, 32)), reg_max=cfg.get("reg_max", 16),
                    topk=cfg.get("topk", 10), alpha=cfg.get("alpha", 0.5),
                    beta=cfg.get("beta", 6.0), box=cfg.get("box", 7.5), cls=cfg.get("cls", 0.5),
                    dfl=cfg.get("dfl", 1.5), target_score_sum=cfg.get("target_score_sum"))
    for k in ("loss", "loss_box", "loss_cls", "loss_dfl"):
        assert getattr(r, k) == pytest.approx(e[k], rel=2e-6, abs=1e-7), k
    assert r.num_fg == e["num_fg"]
    assert r.assigned_gt.tolist() == e["assigned_gt"]
    assert _report(name + " grad_pred_distri", r.grad_pred_distri, e["grad_pred_distri"]) < 5e-7
    assert _report(name + " grad_pred_scores", r.grad_pred_scores, e["grad_pred_scores"]) < 5e-7


def _compare_dropin(B, H, W, nc, per_image, seed, tss=None, **kw):
    rng = np.random.default_rng(seed)
    feats32 = _feats(rng, B, H, W, nc, strides=kw.get("strides", (8, 16, 32)),
                     R=kw.get("reg_max", 16))
    batch = _batch(rng, B, H, W, nc, per_image)
    ours = V8DetectionLoss(nc=nc, **kw)
    f1 = [f.clone().requires_grad_(True) for f in feats32]
    total, items = ours(f1, batch, target_score_sum=tss)
    total.backward()
    ref = RefV8DetectionLoss(nc, **kw)
    f2 = [f.double().requires_grad_(True) for f in feats32]
    batch64 = {k: v.double() for k, v in batch.items()}
    rt, ri = ref(f2, batch64, target_score_sum=tss)
    rt.backward()
    return total, items, f1, rt, ri, f2, ours, ref


@pytest.mark.parametrize("B,H,W,nc,per_image,seed", [
    (2, 64, 64, 4, [3, 2], 1), (3, 96, 64, 6, [5, 0, 4], 2), (1, 128, 128, 3, [8], 3)])
def test_dropin_equals_the_reference_in_values_and_gradients_wrt_the_feature_maps(
        B, H, W, nc, per_image, seed):
    total, items, f1, rt, ri, f2, ours, ref = _compare_dropin(B, H, W, nc, per_image, seed)
    assert total.shape == () and items.shape == (3,) and not items.requires_grad
    assert float(total) == pytest.approx(float(rt), rel=2e-6)
    assert _report("items", items.numpy(), ri.numpy()) < 2e-6 * max(1.0, float(ri.abs().max()))
    # the same assignment as the reference
    fg = ref.last_fg.numpy()
    gi = np.where(fg, ref.last_gt_idx.numpy(), -1)
    assert ours.last_result.assigned_gt.tolist() == gi.tolist()
    for l, (a, b) in enumerate(zip(f1, f2)):
        d = _report("grad level %d" % l, a.grad.numpy(), b.grad.numpy())
        assert d < 1e-6 * max(1.0, float(b.grad.abs().max()) * B)


def test_dropin_takes_the_callers_target_score_sum_as_the_reference_divides_by_it():
    total, items, f1, rt, ri, f2, ours, _ = _compare_dropin(2, 64, 64, 3, [2, 3], 7, tss=17.5)
    assert ours.last_result.normalizer == 17.5
    assert float(total) == pytest.approx(float(rt), rel=2e-6)
    for a, b in zip(f1, f2):
        assert _report("grad (tss 17.5)", a.grad.numpy(), b.grad.numpy()) < 1e-6


def test_dropin_with_other_options_reg_max_8_topk_5_two_levels():
    kw = dict(reg_max=8, strides=(8, 16), box=5.0, cls=1.0, dfl=0.25, tal_topk=5)
    rkw = dict(reg_max=8, strides=(8, 16), box=5.0, cls=1.0, dfl=0.25, topk=5)
    rng = np.random.default_rng(5)
    feats = _feats(rng, 2, 64, 48, 4, R=8, strides=(8, 16))
    batch = _batch(rng, 2, 64, 48, 4, [3, 2])
    f1 = [f.clone().requires_grad_(True) for f in feats]
    total, _ = V8DetectionLoss(nc=4, **kw)(f1, batch)
    total.backward()
    f2 = [f.double().requires_grad_(True) for f in feats]
    rt, _ = RefV8DetectionLoss(4, **rkw)(f2, {k: v.double() for k, v in batch.items()})
    rt.backward()
    assert float(total) == pytest.approx(float(rt), rel=2e-6)
    for a, b in zip(f1, f2):
        assert _report("grad (reg_max 8)", a.grad.numpy(), b.grad.numpy()) < 1e-6


# A tiny YOLO-style network (no pretrained weights): a strided conv backbone and a
# Detect-like head with one conv per level giving 4 reg_max + nc channels.

class Detect(torch.nn.Module):
    def __init__(self, nc, reg_max, ch):
        super().__init__()
        self.nc, self.reg_max = nc, reg_max
        self.no = nc + 4 * reg_max
        self.stride = torch.tensor([8.0, 16.0, 32.0])
        self.cv = torch.nn.ModuleList(torch.nn.Conv2d(c, self.no, 1) for c in ch)

    def forward(self, xs):
        return [cv(x) for cv, x in zip(self.cv, xs)]


class TinyYolo(torch.nn.Module):
    def __init__(self, nc=3, reg_max=16):
        super().__init__()
        self.args = types.SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
        self.model = torch.nn.ModuleList([
            torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.SiLU(),
                                torch.nn.Conv2d(8, 8, 3, 2, 1), torch.nn.SiLU(),
                                torch.nn.Conv2d(8, 8, 3, 2, 1), torch.nn.SiLU()),
            torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, 2, 1), torch.nn.SiLU()),
            torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, 2, 1), torch.nn.SiLU()),
            Detect(nc, reg_max, (8, 16, 16))])

    def forward(self, img):
        p3 = self.model[0](img)
        p4 = self.model[1](p3)
        p5 = self.model[2](p4)
        return self.model[3]([p3, p4, p5])


def _train(model, crit, imgs, batch, steps, lr=0.01):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    curve = []
    for _ in range(steps):
        opt.zero_grad()
        loss, items = crit(model(imgs), batch)
        loss.backward()
        opt.step()
        curve.append(float(loss))
    return curve


def test_sgd_steps_of_a_tiny_yolo_head_follow_the_reference_loss_curve():
    torch.manual_seed(0)
    rng = np.random.default_rng(11)
    model = TinyYolo(nc=3)
    twin = copy.deepcopy(model).double()
    imgs = torch.randn(2, 3, 64, 64)
    batch = _batch(rng, 2, 64, 64, 3, [3, 2])
    ours = _train(model, V8DetectionLoss(model), imgs, batch, 6)
    ref = _train(twin, RefV8DetectionLoss(3), imgs.double(),
                 {k: v.double() for k, v in batch.items()}, 6)
    print("loss curve detloss  ", ["%.6f" % v for v in ours])
    print("loss curve reference", ["%.6f" % v for v in ref])
    _report("loss curve (relative)", np.array(ours) / np.array(ref), np.ones(len(ref)))
    assert ours[-1] < ours[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-4)


def test_the_criterion_is_built_from_a_model_and_survives_deepcopy_and_pickle():
    model = TinyYolo(nc=3)
    model.criterion = V8DetectionLoss(model)
    c = model.criterion
    assert (c.nc, c.reg_max, c.strides, c.box, c.cls, c.dfl, c.tal_topk) == \
        (3, 16, (8.0, 16.0, 32.0), 7.5, 0.5, 1.5, 10)
    imgs = torch.randn(2, 3, 64, 64)
    batch = _batch(np.random.default_rng(3), 2, 64, 64, 3, [2, 2])
    l0, _ = model.criterion(model(imgs), batch)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        l1, _ = clone.criterion(clone(imgs), batch)
        assert float(l1) == float(l0)
    c2 = pickle.loads(pickle.dumps(c))
    assert c2.last_result is None and c2.nc == 3


def test_dict_args_and_explicit_numbers_override_the_model():
    model = TinyYolo(nc=3)
    model.args = {"box": 1.0, "cls": 2.0, "dfl": 3.0}
    c = V8DetectionLoss(model, dfl=0.5)
    assert (c.box, c.cls, c.dfl) == (1.0, 2.0, 0.5)


def test_bad_input_raises_with_the_argument_named():
    feats = _feats(np.random.default_rng(0), 1, 64, 64, 2)
    batch = _batch(np.random.default_rng(0), 1, 64, 64, 2, [1])
    with pytest.raises(DetlossError) as e:
        V8DetectionLoss(nc=3)(feats, batch)  # 66 channels per map but 4*16 + 3 = 67
    assert e.value is not None
    batch["cls"][0] = 5
    with pytest.raises(DetlossError, match="labels"):
        V8DetectionLoss(nc=2)(feats, batch)


def test_a_scaled_loss_scales_the_gradient_and_float64_maps_get_float64_gradients():
    rng = np.random.default_rng(21)
    feats = _feats(rng, 2, 64, 64, 3)
    batch = _batch(rng, 2, 64, 64, 3, [2, 2])
    crit = V8DetectionLoss(nc=3)
    f1 = [f.clone().requires_grad_(True) for f in feats]
    total, _ = crit(f1, batch)
    total.backward()
    f2 = [f.double().requires_grad_(True) for f in feats]
    total2, items2 = crit(f2, batch)
    (2.5 * total2).backward()
    assert total2.dtype == torch.float64 and items2.dtype == torch.float64
    for a, b in zip(f1, f2):
        assert b.grad.dtype == torch.float64
        np.testing.assert_allclose(b.grad.numpy(), 2.5 * a.grad.double().numpy(), rtol=1e-6,
                                   atol=1e-12)
