"""detr_loss (numpy) and the SetCriterion drop-in (torch) against a torch reference of
DETR's SetCriterion + HungarianMatcher written from the published semantics
(detr_reference.py: dense batched tensors, scipy.optimize.linear_sum_assignment), in
float64 on the same float32 inputs: values, matches and gradients, softmax and the
Deformable-DETR focal variant, aux outputs, the caller's num_boxes, a few SGD steps of
a tiny DETR-style query head, deep copy and pickle. Worst differences are printed
(pytest -s) and asserted to float32 tolerance."""
import copy
import ctypes
import glob
import json
import os
import pickle

import numpy as np
import pytest

import detloss
from detloss import head_detr
from conftest import REPO

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")
from detloss.torch_detr import SetCriterion  # noqa: E402
from detloss.torch_hungarian import HungarianMatcher  # noqa: E402
from detr_reference import reference_criterion, RefHungarianMatcher, RefSetCriterion  # noqa: E402

FIXTURES = sorted(glob.glob(os.path.join(REPO, "tests", "fixtures", "detr", "*.json")))
RTOL, ATOL = 1e-5, 1e-6
WORST = {}


def _worst(name, got, exp):
    got, exp = np.asarray(got, np.float64), np.asarray(exp, np.float64)
    d = float(np.max(np.abs(got - exp) / (ATOL + RTOL * np.abs(exp)))) if got.size else 0.0
    a = float(np.max(np.abs(got - exp))) if got.size else 0.0
    w = WORST.setdefault(name, [0.0, 0.0])
    w[0], w[1] = max(w[0], a), max(w[1], d)
    assert d <= 1.0, "%s: |diff| %.3g is %.3g x the tolerance" % (name, a, d)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print("\nworst differences to the float64 reference (abs, fraction of rtol %g / atol %g):"
          % (RTOL, ATOL))
    for k, (a, d) in sorted(WORST.items()):
        print("  %-34s %.3g  (%.2f)" % (k, a, d))


def test_the_ctypes_mirrors_have_the_headers_fields_and_sizes():
    import test_layout
    parsed = test_layout._parse_structs()
    for cname, cls in (("detloss_detr_options", head_detr.DetrOptions),
                       ("detloss_detr_image", head_detr.DetrImage),
                       ("detloss_detr_result", head_detr.DetrResult)):
        fields = parsed[cname]
        assert [f[0] for f in cls._fields_] == [f[0] for f in fields], cname
        for (name, base, ptr_, n), (_, ptype) in zip(fields, cls._fields_):
            assert ctypes.sizeof(ptype) == test_layout._c_size(base, ptr_, n, parsed), name
    o = detloss._lib.fn("detloss_detr_options_default")()
    assert (o.cls_loss, o.cost_class, o.cost_bbox, o.cost_giou, o.weight_ce, o.weight_bbox,
            o.weight_giou, o.num_boxes) == (0, 1, 5, 2, 1, 5, 2, -1)
    assert (o.eos_coef, o.focal_alpha, o.focal_gamma) == (np.float32(0.1), 0.25, 2)
    f = detloss._lib.fn("detloss_detr_options_focal")()
    assert (f.cls_loss, f.cost_class, f.weight_ce) == (1, 2, 2)


@pytest.mark.parametrize("path", FIXTURES, ids=[os.path.basename(p)[:-5] for p in FIXTURES])
def test_numpy_detr_loss_matches_the_float64_fixtures(path):
    with open(path) as f:
        fx = json.load(f)
    c, e = fx["case"], fx["expected"]
    ims = c["images"]
    r = detloss.detr_loss(np.array([i["pred_logits"] for i in ims]),
                          np.array([i["pred_boxes"] for i in ims]),
                          [i["labels"] for i in ims], [i["boxes"] for i in ims],
                          **c.get("config", {}))
    for k in ("loss_ce", "loss_bbox", "loss_giou", "loss"):
        _worst("numpy " + k, getattr(r, k), e[k])
    assert r.matches.tolist() == e["matches"]
    _worst("numpy grad_pred_logits", r.grad_pred_logits, e["grad_pred_logits"])
    _worst("numpy grad_pred_boxes", r.grad_pred_boxes, e["grad_pred_boxes"])


def _batch(seed, B, Q, K, gts, C, dtype=torch.float32, aux=0):
    g = torch.Generator().manual_seed(seed)
    def one():
        logits = (torch.randn(B, Q, K, generator=g) * 2).to(dtype)
        boxes = torch.rand(B, Q, 4, generator=g) * 0.8 + 0.1
        boxes[..., 2:] = boxes[..., 2:] * 0.6 + 0.02
        return {"pred_logits": logits.requires_grad_(), "pred_boxes": boxes.to(dtype).requires_grad_()}
    out = one()
    if aux:
        out["aux_outputs"] = [one() for _ in range(aux)]
    targets = []
    for G in gts:
        cxcy = torch.rand(G, 2, generator=g) * 0.7 + 0.15
        wh = torch.rand(G, 2, generator=g) * 0.45 + 0.05
        targets.append({"labels": torch.randint(0, C, (G,), generator=g),
                        "boxes": torch.cat([cxcy, wh], 1).to(dtype)})
    return out, targets


def _leaves(out):
    ls = [out["pred_logits"], out["pred_boxes"]]
    for a in out.get("aux_outputs", []):
        ls += [a["pred_logits"], a["pred_boxes"]]
    return ls


def _as64(out, targets):
    o64 = {k: v.detach().double().requires_grad_() for k, v in out.items() if k != "aux_outputs"}
    if "aux_outputs" in out:
        o64["aux_outputs"] = [{k: v.detach().double().requires_grad_() for k, v in a.items()}
                              for a in out["aux_outputs"]]
    t64 = [{"labels": t["labels"], "boxes": t["boxes"].double()} for t in targets]
    return o64, t64


def _compare(tag, crit, ref, out, targets, num_boxes=None):
    torch.set_default_dtype(torch.float64)
    try:
        o64, t64 = _as64(out, targets)
        want = ref(o64, t64, num_boxes=num_boxes)
        wd = ref.weight_dict
        tot = sum(v * wd[k.rsplit("_", 1)[0] if k[-1].isdigit() else k] for k, v in want.items()
                  if (k.rsplit("_", 1)[0] if k[-1].isdigit() else k) in wd)
        tot.backward()
    finally:
        torch.set_default_dtype(torch.float32)
    got = crit(out, targets) if num_boxes is None else crit(out, targets, num_boxes=num_boxes)
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for k in want:
        if k.startswith("class_error") or k.startswith("cardinality_error"):
            assert abs(float(got[k]) - float(want[k])) < 1e-4, k
        else:
            assert got[k].dtype == out["pred_logits"].dtype
            _worst("%s %s" % (tag, k.rstrip("_0123456789")), float(got[k]), float(want[k]))
    wd = crit.weight_dict
    gtot = sum(v * wd[k.rsplit("_", 1)[0] if k[-1].isdigit() else k] for k, v in got.items()
               if (k.rsplit("_", 1)[0] if k[-1].isdigit() else k) in wd)
    gtot.backward()
    for a, b, name in zip(_leaves(out), _leaves(o64), ["logits", "boxes"] * 8):
        _worst("%s grad %s" % (tag, name), a.grad, b.grad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_softmax_drop_in_matches_detr_set_criterion_values_and_gradients(seed):
    C = 7
    out, targets = _batch(seed, 3, 12, C + 1, [4, 0, 9], C, aux=2)
    ref = reference_criterion(C)
    crit = SetCriterion(C, HungarianMatcher(1, 5, 2), ref.weight_dict, eos_coef=0.1,
                        losses=["labels", "boxes", "cardinality"])
    _compare("softmax", crit, ref, out, targets)


@pytest.mark.parametrize("seed", [3, 4])
def test_focal_drop_in_matches_deformable_detr_set_criterion(seed):
    C = 6
    out, targets = _batch(seed, 2, 15, C, [5, 13], C, aux=1)
    ref = reference_criterion(C, cls_loss="focal")
    crit = SetCriterion(C, HungarianMatcher(2, 5, 2, semantics="focal"), ref.weight_dict,
                        losses=["labels", "boxes", "cardinality"], cls_loss="focal")
    _compare("focal", crit, ref, out, targets)


def test_focal_alpha_gamma_and_caller_num_boxes():
    C = 5
    out, targets = _batch(5, 2, 10, C, [3, 2], C)
    ref = reference_criterion(C, cls_loss="focal", focal_alpha=0.35, focal_gamma=1.5)
    crit = SetCriterion(C, None, ref.weight_dict, cls_loss="focal", focal_alpha=0.35,
                        focal_gamma=1.5)
    _compare("focal a/g nb", crit, ref, out, targets, num_boxes=12.5)


def test_caller_num_boxes_below_one_is_clamped_like_detr():
    C = 4
    out, targets = _batch(6, 2, 8, C + 1, [1, 0], C)
    ref = reference_criterion(C)
    crit = SetCriterion(C, None, ref.weight_dict)
    _compare("softmax nb", crit, ref, out, targets, num_boxes=0.5)


def test_matches_are_the_reference_matchers():
    C = 9
    out, targets = _batch(7, 4, 25, C + 1, [3, 25, 30, 0], C)
    ref = RefHungarianMatcher(1, 5, 2)
    want = ref(out, targets)
    lg = out["pred_logits"].detach().numpy()
    r = detloss.detr_loss(lg, out["pred_boxes"].detach().numpy(),
                          [t["labels"].numpy() for t in targets],
                          [t["boxes"].numpy() for t in targets])
    for b, (i, j) in enumerate(want):
        m = [-1] * 25
        for a, c in zip(i.tolist(), j.tolist()):
            m[a] = c
        assert r.matches[b].tolist() == m


def test_an_image_without_gt_and_a_batch_without_any():
    C = 3
    for gts in ([0, 2], [0, 0]):
        out, targets = _batch(8, 2, 5, C + 1, gts, C)
        ref = reference_criterion(C)
        crit = SetCriterion(C, None, ref.weight_dict)
        _compare("softmax empty", crit, ref, out, targets)


def test_float64_inputs_give_float64_losses_and_gradients():
    C = 4
    out, targets = _batch(9, 2, 6, C + 1, [2, 3], C, dtype=torch.float64)
    crit = SetCriterion(C)
    d = crit(out, targets)
    assert d["loss_ce"].dtype == torch.float64
    sum(d[k] for k in ("loss_ce", "loss_bbox", "loss_giou")).backward()
    assert out["pred_logits"].grad.dtype == torch.float64


def test_no_grad_inputs_and_eval_mode_work():
    C = 4
    out, targets = _batch(10, 2, 6, C + 1, [2, 3], C)
    crit = SetCriterion(C)
    with torch.no_grad():
        d = crit(out, targets)
    assert not d["loss_ce"].requires_grad
    out2 = {k: v.detach() for k, v in out.items()}
    d2 = crit(out2, targets)
    assert float(d2["loss_giou"]) == float(d["loss_giou"])


def test_deep_copy_and_pickle_give_the_same_losses():
    C = 4
    out, targets = _batch(11, 2, 6, C + 1, [2, 3], C)
    crit = SetCriterion(C, HungarianMatcher(1, 5, 2), None, 0.2, ["labels", "boxes"])
    a = crit(out, targets)
    for other in (copy.deepcopy(crit), pickle.loads(pickle.dumps(crit))):
        b = other(out, targets)
        assert sorted(a) == sorted(b)
        for k in a:
            assert float(a[k]) == float(b[k])
        assert other.weight_dict == crit.weight_dict and other.eos_coef == 0.2
    assert "empty_weight" in crit.state_dict()


def test_bad_input_raises_a_named_error():
    C = 4
    out, targets = _batch(12, 2, 6, C + 1, [2, 3], C)
    crit = SetCriterion(C)
    bad = {k: v.detach().clone() for k, v in out.items()}
    bad["pred_logits"][1, 3, 2] = float("nan")
    with pytest.raises(detloss.DetlossError) as e:
        crit(bad, targets)
    assert e.value.where == "images[1].pred_logits[3][2]"
    bad = {k: v.detach().clone() for k, v in out.items()}
    bad["pred_boxes"][0, 1, 2] = 0.0
    with pytest.raises(detloss.DetlossError) as e:
        crit(bad, targets)
    assert e.value.where == "images[0].pred_boxes[1]"
    t2 = [dict(t) for t in targets]
    t2[1]["labels"] = torch.tensor([0, 4, 1])  # 4 is the no-object column
    with pytest.raises(detloss.DetlossError) as e:
        crit(out, t2)
    assert e.value.where == "images[1].labels[1]"
    with pytest.raises(detloss.DetlossError):
        SetCriterion(C, losses=["labels", "masks"])


class TinyQueryHead(torch.nn.Module):
    """A transformer-free DETR-style head: learned queries plus a per-image feature,
    an MLP, a class head (K logits) and a box head (sigmoid cx, cy, w, h)."""

    def __init__(self, Q, d, K, layers=2):
        super().__init__()
        self.query = torch.nn.Parameter(torch.randn(Q, d) * 0.5)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(),
                                       torch.nn.Linear(d, d), torch.nn.ReLU())
        self.cls = torch.nn.Linear(d, K)
        self.box = torch.nn.Linear(d, 4)
        self.layers = layers

    def forward(self, feat):  # feat [B, d]
        h = self.query[None] + feat[:, None]
        outs = []
        for _ in range(self.layers):
            h = h + self.mlp(h)
            outs.append({"pred_logits": self.cls(h), "pred_boxes": self.box(h).sigmoid()})
        out = dict(outs[-1])
        out["aux_outputs"] = outs[:-1]
        return out


@pytest.mark.parametrize("cls_loss", ["softmax", "focal"])
def test_sgd_steps_of_a_tiny_detr_head_follow_the_reference_loss_curve(cls_loss):
    torch.manual_seed(0)
    C, Q, d, B = 5, 12, 16, 4
    K = C + 1 if cls_loss == "softmax" else C
    model = TinyQueryHead(Q, d, K)
    model_ref = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    feat = torch.randn(B, d, generator=g)
    targets = []
    for G in (3, 0, 5, 2):
        cxcy = torch.rand(G, 2, generator=g) * 0.6 + 0.2
        wh = torch.rand(G, 2, generator=g) * 0.3 + 0.1
        targets.append({"labels": torch.randint(0, C, (G,), generator=g),
                        "boxes": torch.cat([cxcy, wh], 1)})
    ref = reference_criterion(C, cls_loss=cls_loss)
    crit = SetCriterion(C, None, ref.weight_dict, cls_loss=cls_loss)
    wd = ref.weight_dict

    def total(d):
        return sum(v * wd[k.rsplit("_", 1)[0] if k[-1].isdigit() else k] for k, v in d.items()
                   if (k.rsplit("_", 1)[0] if k[-1].isdigit() else k) in wd)

    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opt_ref = torch.optim.SGD(model_ref.parameters(), lr=0.05, momentum=0.9)
    curve, curve_ref = [], []
    for step in range(8):
        for m, o, c, cv in ((model, opt, crit, curve), (model_ref, opt_ref, ref, curve_ref)):
            o.zero_grad()
            loss = total(c(m(feat), targets))
            loss.backward()
            o.step()
            cv.append(float(loss))
    diff = max(abs(a - b) / abs(b) for a, b in zip(curve, curve_ref))
    WORST.setdefault("sgd %s loss curve (rel)" % cls_loss, [diff, 0.0])
    print("\n%s curve detloss %s\n%s curve reference %s (max rel diff %.2g)"
          % (cls_loss, [round(x, 6) for x in curve], cls_loss, [round(x, 6) for x in curve_ref],
             diff))
    assert diff < 2e-5
    assert curve[-1] < curve[0]
    for p, q in zip(model.parameters(), model_ref.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)


def _dist_worker(rank, world, init, out_dir):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        for cls_loss in ("focal", "softmax"):
            C = 6
            K = C + 1 if cls_loss == "softmax" else C
            out, targets = _batch(20, 4, 10, K, [3, 0, 5, 2], C)
            lo, hi = 2 * rank, 2 * rank + 2
            mine = {k: v.detach()[lo:hi].clone().requires_grad_() for k, v in out.items()}
            crit = SetCriterion(C, None, None, cls_loss=cls_loss, num_threads=1)
            d = crit(mine, targets[lo:hi])  # num_boxes: DETR's all-reduce inside forward
            wd = crit.weight_dict
            sum(d[k] * wd[k] for k in wd).backward()
            # DDP averages the gradients over the ranks
            grads = [mine["pred_logits"].grad / world, mine["pred_boxes"].grad / world]
            torch.save({"loss": {k: float(d[k]) for k in wd}, "grads": grads},
                       os.path.join(out_dir, "%s_rank%d.pt" % (cls_loss, rank)))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_all_reduce_num_boxes_like_one_process(tmp_path):
    """2 processes (gloo), half the batch each, num_boxes all-reduced inside forward as
    DETR does: the box terms (and the focal class term) summed over the ranks and the
    rank-averaged gradients equal one process on the whole batch. DETR's softmax
    loss_ce is a mean over each rank's own queries, so there the logits' gradient of
    each rank is compared after rescaling by the rank's share of the class weights."""
    import torch.multiprocessing as mp
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    init = "file://" + str(tmp_path / "rendezvous")
    mp.spawn(_dist_worker, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    for cls_loss in ("focal", "softmax"):
        C = 6
        K = C + 1 if cls_loss == "softmax" else C
        out, targets = _batch(20, 4, 10, K, [3, 0, 5, 2], C)
        crit = SetCriterion(C, None, None, cls_loss=cls_loss)
        d = crit(out, targets)
        wd = crit.weight_dict
        sum(d[k] * wd[k] for k in wd).backward()
        ranks = [torch.load(str(tmp_path / ("%s_rank%d.pt" % (cls_loss, r)))) for r in range(2)]
        terms = ["loss_bbox", "loss_giou"] + (["loss_ce"] if cls_loss == "focal" else [])
        for k in terms:  # each rank divides by nb = N / world
            _worst("gloo %s %s (sum of ranks)" % (cls_loss, k),
                   sum(r["loss"][k] for r in ranks) / 2, float(d[k]))
        gb = torch.cat([r["grads"][1] for r in ranks])
        _worst("gloo %s grad boxes" % cls_loss, gb, out["pred_boxes"].grad)
        gl = torch.cat([r["grads"][0] for r in ranks])
        if cls_loss == "focal":
            _worst("gloo focal grad logits", gl, out["pred_logits"].grad)
            continue
        # sum of class weights: matched 1 (3 + 5 + 2 pairs), the rest eos_coef 0.1
        w_all = 10 + 0.1 * 30
        w_rank = [3 + 0.1 * 17, 7 + 0.1 * 13]
        for r in range(2):
            _worst("gloo softmax grad logits (rescaled)",
                   gl[2 * r:2 * r + 2] * 2 * w_rank[r] / w_all,
                   out["pred_logits"].grad[2 * r:2 * r + 2])
