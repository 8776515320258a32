"""Set matching (detloss.assign, detloss.torch_assign) against references written
here from the published semantics: scipy.optimize.linear_sum_assignment for the
solver, and DETR's HungarianMatcher (facebookresearch/detr models/matcher.py,
util/box_ops.py; the focal class cost of Deformable-DETR models/matcher.py)
written in torch the way DETR writes it: one (B*Q) x sum(G) cost matrix for the
batch, .cpu(), split per image, scipy per block. Pairs are compared exactly;
cost matrices within rtol 1e-12, atol 1e-12 of the float64 reference."""
import ctypes

import numpy as np
import pytest

torch = pytest.importorskip("torch")
scipy_opt = pytest.importorskip("scipy.optimize")

import detloss  # noqa: E402
from detloss import DetlossError  # noqa: E402
from detloss.assign import HungarianOptions  # noqa: E402
from detloss.torch_assign import HungarianMatcher  # noqa: E402
from detloss import _lib  # noqa: E402


# --- the reference ------------------------------------------------------------------------

def _corners(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def _giou(a, b):
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[:, :2])
    rb = torch.min(a[:, None, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b - inter
    lt2 = torch.min(a[:, None, :2], b[:, :2])
    rb2 = torch.max(a[:, None, 2:], b[:, 2:])
    wh2 = (rb2 - lt2).clamp(min=0)
    enc = wh2[..., 0] * wh2[..., 1]
    return inter / union - (enc - union) / enc


class RefMatcher(torch.nn.Module):
    """DETR's HungarianMatcher from its published semantics; focal=True uses the
    Deformable-DETR class cost (alpha 0.25, gamma 2, eps 1e-8)."""

    def __init__(self, cost_class=1, cost_bbox=1, cost_giou=1, focal=False):
        super().__init__()
        self.cost_class, self.cost_bbox, self.cost_giou, self.focal = \
            cost_class, cost_bbox, cost_giou, focal

    @torch.no_grad()
    def forward(self, outputs, targets):
        bs, nq = outputs["pred_logits"].shape[:2]
        out_bbox = outputs["pred_boxes"].flatten(0, 1)
        tgt_ids = torch.cat([v["labels"] for v in targets])
        tgt_bbox = torch.cat([v["boxes"] for v in targets])
        if self.focal:
            p = outputs["pred_logits"].flatten(0, 1).sigmoid()
            neg = 0.75 * (p ** 2) * (-(1 - p + 1e-8).log())
            pos = 0.25 * ((1 - p) ** 2) * (-(p + 1e-8).log())
            cost_class = pos[:, tgt_ids] - neg[:, tgt_ids]
        else:
            cost_class = -outputs["pred_logits"].flatten(0, 1).softmax(-1)[:, tgt_ids]
        cost_bbox = torch.cdist(out_bbox, tgt_bbox, p=1)
        cost_giou = -_giou(_corners(out_bbox), _corners(tgt_bbox))
        C = self.cost_bbox * cost_bbox + self.cost_class * cost_class + self.cost_giou * cost_giou
        C = C.view(bs, nq, -1).cpu()
        sizes = [len(v["boxes"]) for v in targets]
        blocks = [c[i] for i, c in enumerate(C.split(sizes, -1))]
        idx = [scipy_opt.linear_sum_assignment(b) for b in blocks]
        return [(torch.as_tensor(i, dtype=torch.int64), torch.as_tensor(j, dtype=torch.int64))
                for i, j in idx], blocks


def _scene(seed, B, Q, K, gmax, focal, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    ncols = K if focal else K + 1
    # float32 values, so that the float32 inputs the C library reads are exact
    logits = (torch.randn(B, Q, ncols, generator=g) * 2).float().to(dtype)
    boxes = torch.cat([torch.rand(B, Q, 2, generator=g) * 0.8 + 0.1,
                       torch.rand(B, Q, 2, generator=g) * 0.45 + 0.05], -1).float().to(dtype)
    targets = []
    for _ in range(B):
        n = int(torch.randint(0, gmax + 1, (1,), generator=g))
        tb = torch.cat([torch.rand(n, 2, generator=g) * 0.8 + 0.1,
                        torch.rand(n, 2, generator=g) * 0.45 + 0.05], -1).float().to(dtype)
        targets.append({"labels": torch.randint(0, K, (n,), generator=g), "boxes": tb})
    return {"pred_logits": logits, "pred_boxes": boxes}, targets


# --- the solver ---------------------------------------------------------------------------

def test_linear_sum_assignment_returns_scipys_pairs_with_ties():
    rng = np.random.default_rng(7)
    for t in range(300):
        r, c = rng.integers(0, 9, 2)
        if t % 3 == 0:
            m = rng.integers(0, 3, (r, c)).astype(np.float64)  # many equal optima
        elif t % 3 == 1:
            m = rng.standard_normal((r, c))
        else:
            m = rng.integers(0, 4, (r, c)).astype(np.float64)
            m[rng.random((r, c)) < 0.2] = np.inf
        try:
            want = scipy_opt.linear_sum_assignment(m)
        except ValueError:
            with pytest.raises(DetlossError) as e:
                detloss.linear_sum_assignment(m)
            assert e.value.where == "cost" and e.value.status_name == "range"
            continue
        got = detloss.linear_sum_assignment(m)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), m


def test_linear_sum_assignment_rejects_nan_naming_the_entry():
    with pytest.raises(DetlossError) as e:
        detloss.linear_sum_assignment([[1.0, 2.0], [np.nan, 0.0]])
    assert e.value.where == "cost[1][0]" and e.value.status_name == "nonfinite"


# --- the matcher --------------------------------------------------------------------------

@pytest.mark.parametrize("focal", [False, True])
def test_batched_match_equals_the_float64_reference(focal):
    w = (2, 5, 2) if focal else (1, 5, 2)
    ref = RefMatcher(*w, focal=focal)
    for seed in range(12):
        outputs, targets = _scene(seed, B=3, Q=[5, 30, 100][seed % 3], K=[3, 20, 91][seed % 3],
                                  gmax=[4, 12, 20][seed % 3], focal=focal)
        want, blocks = ref(outputs, targets)
        for nt in (1, 2):
            got = detloss.hungarian_match_batch(
                outputs["pred_logits"].numpy(), outputs["pred_boxes"].numpy(),
                [t["boxes"].numpy() for t in targets], [t["labels"].numpy() for t in targets],
                semantics="focal" if focal else "detr", num_threads=nt)
            for (gi, gj), (wi, wj) in zip(got, want):
                assert np.array_equal(gi, wi.numpy()) and np.array_equal(gj, wj.numpy())
        for b, t in enumerate(targets):
            c = detloss.hungarian_cost(outputs["pred_logits"][b].numpy(),
                                       outputs["pred_boxes"][b].numpy(), t["boxes"].numpy(),
                                       t["labels"].numpy(), semantics="focal" if focal else "detr")
            np.testing.assert_allclose(c, blocks[b].numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("focal", [False, True])
def test_the_torch_matcher_is_a_drop_in_for_detrs(focal):
    """Same signature and results as DETR's matcher run in float32 (DETR's dtype)."""
    w = (2, 5, 2) if focal else (1, 5, 2)
    ours = HungarianMatcher(*w, semantics="focal" if focal else "detr")
    ref = RefMatcher(*w, focal=focal)
    same = total = 0
    for seed in range(8):
        outputs, targets = _scene(100 + seed, B=4, Q=100, K=91, gmax=20, focal=focal,
                                  dtype=torch.float32)
        got = ours(outputs, targets)
        want, blocks = ref(outputs, targets)
        assert len(got) == len(targets)
        for (gi, gj), (wi, wj), blk in zip(got, want, blocks):
            assert gi.dtype == torch.int64 and gj.dtype == torch.int64
            assert torch.all(gi[1:] > gi[:-1])
            total += 1
            if torch.equal(gi, wi) and torch.equal(gj, wj):
                same += 1
            else:  # float32 vs float64 cost: only an optimum equal to float32 rounding
                assert abs(float(blk[gi, gj].sum()) - float(blk[wi, wj].sum())) < 1e-4
    assert same == total


def test_matcher_constructor_and_empty_targets():
    m = HungarianMatcher()
    assert (m.cost_class, m.cost_bbox, m.cost_giou) == (1, 1, 1)
    with pytest.raises(AssertionError):
        HungarianMatcher(0, 0, 0)
    outputs, _ = _scene(1, B=2, Q=7, K=3, gmax=0, focal=False, dtype=torch.float32)
    targets = [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}] * 2
    for i, j in m(outputs, targets):
        assert i.shape == (0,) and j.shape == (0,) and i.dtype == torch.int64


def test_errors_name_the_argument():
    logits = np.zeros((2, 3, 4), np.float32)
    boxes = np.full((2, 3, 4), 0.25, np.float32)
    gts = [np.full((1, 4), 0.25, np.float32)] * 2
    labels = [np.array([0])] * 2
    logits[1, 2, 3] = np.nan
    with pytest.raises(DetlossError) as e:
        detloss.hungarian_match_batch(logits, boxes, gts, labels)
    assert e.value.where == "logits[1][2][3]"
    logits[1, 2, 3] = 0
    with pytest.raises(DetlossError) as e:  # DETR: label 3 is the no-object column
        detloss.hungarian_match(logits[0], boxes[0], gts[0], [3])
    assert e.value.where == "gt_labels[0]"
    with pytest.raises(DetlossError) as e:
        detloss.hungarian_match(logits[0], boxes[0], [[0.5, 0.5, 0.0, 0.1]], [0])
    assert e.value.where == "gt[0]"
    with pytest.raises(DetlossError) as e:
        detloss.hungarian_match(logits[0], boxes[0], gts[0], [0], semantics="dino")
    assert e.value.where == "semantics"


def test_options_mirror_reads_the_documented_defaults():
    assert ctypes.sizeof(HungarianOptions) == 28
    d = _lib.fn("detloss_hungarian_options_default")()
    assert (d.semantics, d.cost_class, d.cost_bbox, d.cost_giou, d.focal_alpha, d.focal_gamma,
            d.num_threads) == (0, 1.0, 5.0, 2.0, 0.25, 2.0, 0)
    f = _lib.fn("detloss_hungarian_options_focal")()
    assert (f.semantics, f.cost_class, f.cost_bbox, f.cost_giou) == (1, 2.0, 5.0, 2.0)
