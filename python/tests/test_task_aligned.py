"""The task-aligned assigner's numpy API and the torch drop-in TaskAlignedAssigner against
the float64 torch references of ultralytics and TOOD/mmdet written in
tests/fixtures/task_aligned/gen_task_aligned.py (dense B x M x A tensors, the way the
references write them; top-k ties to the lowest index)."""
import importlib.util
import os

import numpy as np
import pytest

import detloss

torch = pytest.importorskip("torch")
from detloss.torch_assign import TaskAlignedAssigner  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    "gen_task_aligned", os.path.join(REPO, "tests", "fixtures", "task_aligned",
                                     "gen_task_aligned.py"))
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def make_anchors(h, w, strides=(8, 16, 32)):
    """ultralytics make_anchors: level-major, row-major, centres at (j + 0.5) s."""
    pts = []
    for s in strides:
        ys, xs = torch.meshgrid(torch.arange(h // s), torch.arange(w // s), indexing="ij")
        pts.append(torch.stack([(xs + 0.5) * s, (ys + 0.5) * s], -1).reshape(-1, 2))
    return torch.cat(pts).float()


def random_batch(rng, bs, C, max_gt, h=96, w=128, ties=False):
    anc = make_anchors(h, w)
    A = anc.shape[0]
    if ties:
        scores = rng.choice([0.0, 0.5, 1.0], size=(bs, A, C))
    else:
        scores = rng.uniform(0, 1, (bs, A, C))
    wh = rng.uniform(4, 48, (bs, A, 2))
    c = anc.numpy()[None] + rng.normal(0, 6, (bs, A, 2))
    pred = np.concatenate([c - wh / 2, c + wh / 2], -1)
    if ties:
        pred[:] = np.round(pred / 8) * 8
        pred[..., 2:] = np.maximum(pred[..., 2:], pred[..., :2] + 8)
    gtb = np.zeros((bs, max_gt, 4))
    gtl = np.zeros((bs, max_gt, 1))
    mg = np.zeros((bs, max_gt, 1))
    for i in range(bs):
        g = int(rng.integers(0, max_gt + 1)) if i else max_gt
        x1 = rng.uniform(-4, w - 8, g)
        y1 = rng.uniform(-4, h - 8, g)
        gw, gh = rng.uniform(4, 70, g), rng.uniform(4, 70, g)
        gtb[i, :g] = np.stack([x1, y1, x1 + gw, y1 + gh], -1)
        gtl[i, :g, 0] = rng.integers(0, C, g)
        mg[i, :g] = 1
    t = lambda x: torch.tensor(np.asarray(x, np.float32))  # noqa: E731
    return t(scores), t(pred), anc, t(gtl), t(gtb), t(mg)


@pytest.mark.parametrize("seed,ties,topk,alpha,beta", [
    (0, False, 10, 0.5, 6.0), (1, False, 13, 1.0, 6.0), (2, True, 10, 0.5, 6.0),
    (3, False, 3, 0.5, 2.0), (4, True, 40, 1.0, 6.0)])
def test_drop_in_matches_the_ultralytics_reference(seed, ties, topk, alpha, beta):
    rng = np.random.default_rng(seed)
    C = 6
    batch = random_batch(rng, 4, C, 9, ties=ties)
    got = TaskAlignedAssigner(topk=topk, num_classes=C, alpha=alpha, beta=beta)(*batch)
    d = [x.double() for x in batch]
    exp = ref.ultralytics_reference(d[0], d[1], d[2], d[3], d[4], d[5], topk, C, alpha, beta)
    lab, box, ts, fg, tgi = got
    assert lab.dtype == torch.int64 and tgi.dtype == torch.int64 and fg.dtype == torch.bool
    assert fg.sum() > 20
    assert torch.equal(fg, exp[3])
    assert torch.equal(tgi, exp[4])
    assert torch.equal(lab, exp[0])
    assert torch.equal(box.double(), exp[1])
    np.testing.assert_allclose(ts.double().numpy(), exp[2].numpy(), rtol=2e-6, atol=1e-9)


def test_drop_in_without_gts_returns_the_background_label():
    rng = np.random.default_rng(5)
    s, p, a, gl, gb, mg = random_batch(rng, 2, 4, 3)
    lab, box, ts, fg, tgi = TaskAlignedAssigner(num_classes=4)(s, p, a, gl[:, :0], gb[:, :0],
                                                               mg[:, :0])
    assert torch.all(lab == 4) and not fg.any() and ts.abs().sum() == 0


def test_numpy_batch_equals_single_calls_and_threads():
    rng = np.random.default_rng(6)
    s, p, a, gl, gb, mg = random_batch(rng, 3, 5, 12)
    gts = [gb[i, mg[i, :, 0] > 0].numpy() for i in range(3)]
    labs = [gl[i, mg[i, :, 0] > 0, 0].long().numpy() for i in range(3)]
    for sem in ("ultralytics", "tood"):
        b1 = detloss.task_aligned_assign_batch(a, s, p, gts, labs, semantics=sem, num_threads=1)
        b2 = detloss.task_aligned_assign_batch(a, s, p, gts, labs, semantics=sem, num_threads=2)
        for x, y in zip(b1, b2):
            assert np.array_equal(x, y)
        for i in range(3):
            r = detloss.task_aligned_assign(a, s[i], p[i], gts[i], labs[i], semantics=sem)
            for x, y in zip(r, b1):
                assert np.array_equal(x, y[i])


@pytest.mark.parametrize("seed,ties", [(7, False), (8, True), (9, False)])
def test_tood_matches_the_mmdet_reference(seed, ties):
    rng = np.random.default_rng(seed)
    s, p, a, gl, gb, mg = random_batch(rng, 2, 5, 8, ties=ties)
    for i in range(2):
        keep = mg[i, :, 0] > 0
        g, lab = gb[i, keep], gl[i, keep, 0].long()
        r = detloss.task_aligned_assign(a, s[i], p[i], g, lab, semantics="tood")
        ag, met, norm = ref.tood_reference(s[i].double(), p[i].double(), a.double(), g.double(),
                                           lab, 13, 1.0, 6.0)
        assert np.array_equal(r.assigned_gt, ag.numpy())
        assert np.array_equal(r.assigned_labels, np.where(ag >= 0, lab[ag.clamp(0)], -1))
        np.testing.assert_allclose(r.align_metrics, met.numpy(), rtol=2e-6, atol=1e-30)
        np.testing.assert_allclose(r.target_scores, norm.numpy(), rtol=2e-6, atol=1e-12)


def test_errors_name_the_argument():
    a = np.array([[4, 4], [8, 8]], np.float32)
    s = np.array([[0.5], [np.nan]], np.float32)
    p = np.array([[0, 0, 10, 10]] * 2, np.float32)
    g = np.array([[0, 0, 10, 10]], np.float32)
    with pytest.raises(detloss.DetlossError) as e:
        detloss.task_aligned_assign(a, s, p, g, [0])
    assert e.value.where == "scores[1]" and e.value.status_name == "nonfinite"
    s[1, 0] = 0.5
    with pytest.raises(detloss.DetlossError) as e:
        detloss.task_aligned_assign(a, s, p, g, [1])
    assert e.value.where == "gt_labels[0]"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.task_aligned_assign(a, s, p, g, [0], topk=0)
    assert e.value.where == "topk"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.task_aligned_assign(a, s, p, g, [0], semantics="mmdet")
    assert e.value.where == "semantics"
    with pytest.raises(detloss.DetlossError) as e:
        detloss.task_aligned_assign(a, s[:1], p, g, [0])
    assert e.value.where == "scores"
