#!/usr/bin/python3
"""compare_heads.py - detloss RPN / RetinaNet losses against torchvision on
the same inputs and the same number of threads (issue 5 benchmark).

usage: /usr/bin/python3 bench/compare_heads.py BENCH_HEADS_BINARY [threads=2] [reps=11] [rounds=5]

Builds the issue's workloads with torch (seeded), writes them as raw files
into a temporary directory, times torchvision's value + gradients including
matching (RPN: assign_targets_to_anchors, BoxCoder.encode, compute_loss,
backward; RetinaNet: Matcher per image, RetinaNetHead.compute_loss, backward)
with torch.set_num_threads(threads), then runs bench_heads on the same files
and prints both medians and the speed-ups as JSON.
"""
import json
import subprocess
import sys
import tempfile
import time

import torch
import torchvision
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import boxes as box_ops

H, W, NIMG, NGT, NCLS = 800, 1344, 2, 20, 80


def median(ts):
    ts = sorted(ts)
    return ts[len(ts) // 2]


def timeit(fn, reps, warm=2):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return median(ts), min(ts)


def random_gt(g):
    xy = torch.rand(NGT, 2, generator=g) * torch.tensor([W - 64.0, H - 64.0])
    wh = 16 + torch.rand(NGT, 2, generator=g) * 300
    b = torch.cat([xy, xy + wh], 1)
    b[:, 2].clamp_(max=W)
    b[:, 3].clamp_(max=H)
    return b


def main():
    binary = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 11
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    il = ImageList(torch.zeros(NIMG, 3, H, W), [(H, W)] * NIMG)
    out = {"threads": threads, "torch": torch.__version__, "torchvision": torchvision.__version__}
    with tempfile.TemporaryDirectory() as d:
        # ---- RPN: FPN anchors, strides 4..64 ----
        ag = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
        feats = [torch.zeros(NIMG, 1, h, w) for h, w in ((200, 336), (100, 168), (50, 84), (25, 42), (13, 21))]
        anchors = ag(il, feats)
        A = anchors[0].shape[0]
        targets = [dict(boxes=random_gt(g)) for _ in range(NIMG)]
        obj = (torch.rand(NIMG * A, 1, generator=g) - 0.5) * 4
        dl = (torch.rand(NIMG * A, 4, generator=g) - 0.5) * 0.4
        rpn = RegionProposalNetwork(ag, RPNHead(1, 3), 0.7, 0.3, 256, 0.5,
                                    dict(training=2000, testing=1000), dict(training=2000, testing=1000), 0.7)

        def rpn_step():
            o = obj.clone().requires_grad_()
            dd = dl.clone().requires_grad_()
            labels, mgt = rpn.assign_targets_to_anchors(anchors, targets)
            rt = rpn.box_coder.encode(mgt, anchors)
            lo, lb = rpn.compute_loss(o, dd, labels, rt)
            (lo + lb).backward()
            return o.grad, dd.grad

        out["rpn_torchvision_ms"], _ = timeit(rpn_step, reps)
        torch.stack([t["boxes"] for t in targets]).numpy().astype("float32").tofile(d + "/rpn_gt.f32")
        obj.numpy().astype("float32").tofile(d + "/rpn_objectness.f32")
        dl.numpy().astype("float32").tofile(d + "/rpn_deltas.f32")

        # ---- RetinaNet: strides 8..128, 3 scales x 3 ratios ----
        sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512))
        ag = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)
        feats = [torch.zeros(NIMG, 1, h, w) for h, w in ((100, 168), (50, 84), (25, 42), (13, 21), (7, 11))]
        anchors = ag(il, feats)
        A = anchors[0].shape[0]
        targets = [dict(boxes=random_gt(g), labels=torch.randint(0, NCLS, (NGT,), generator=g)) for _ in range(NIMG)]
        cls = -4.6 + (torch.rand(NIMG, A, NCLS, generator=g) - 0.5) * 6
        bbox = (torch.rand(NIMG, A, 4, generator=g) - 0.5) * 0.4
        head = RetinaNetHead(1, 9, NCLS)
        matcher = det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=True)

        def retina_step():
            c = cls.clone().requires_grad_()
            b = bbox.clone().requires_grad_()
            matched = [matcher(box_ops.box_iou(t["boxes"], a)) for t, a in zip(targets, anchors)]
            losses = head.compute_loss(targets, dict(cls_logits=c, bbox_regression=b), anchors, matched)
            (losses["classification"] + losses["bbox_regression"]).backward()
            return c.grad, b.grad

        out["retina_torchvision_ms"], _ = timeit(retina_step, max(3, reps // 2))
        torch.stack([t["boxes"] for t in targets]).numpy().astype("float32").tofile(d + "/retina_gt.f32")
        torch.stack([t["labels"] for t in targets]).numpy().astype("int64").tofile(d + "/retina_labels.i64")
        cls.numpy().astype("float32").tofile(d + "/retina_cls_logits.f32")
        bbox.numpy().astype("float32").tofile(d + "/retina_deltas.f32")

        # The same inputs through detloss. The machine may be shared: rounds
        # alternate torchvision and detloss timings so both see the same
        # conditions, and the medians over the rounds are reported.
        rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
        tv_rpn, tv_ret, dl_rpn, dl_ret = [out["rpn_torchvision_ms"]], [out["retina_torchvision_ms"]], [], []
        res = None
        for k in range(rounds):
            res = json.loads(subprocess.run([binary, str(threads), str(reps), d], check=True,
                                            capture_output=True, text=True).stdout)
            dl_rpn.append(res["rpn"]["median_ms"])
            dl_ret.append(res["retina"]["median_ms"])
            if k + 1 < rounds:
                tv_rpn.append(timeit(rpn_step, reps, 0)[0])
                tv_ret.append(timeit(retina_step, 1, 0)[0])
        out["rpn_torchvision_ms"] = median(tv_rpn)
        out["retina_torchvision_ms"] = median(tv_ret)
        out["rounds"] = rounds
        out["rpn_rounds_ms"] = {"torchvision": tv_rpn, "detloss": dl_rpn}
        out["retina_rounds_ms"] = {"torchvision": tv_ret, "detloss": dl_ret}
        # and the values, to show both computed the same thing
        c = cls.clone()
        matched = [matcher(box_ops.box_iou(t["boxes"], a)) for t, a in zip(targets, anchors)]
        tv = head.compute_loss(targets, dict(cls_logits=c, bbox_regression=bbox), anchors, matched)
    out["rpn_detloss_ms"] = median(dl_rpn)
    out["retina_detloss_ms"] = median(dl_ret)
    out["rpn_speedup"] = out["rpn_torchvision_ms"] / out["rpn_detloss_ms"]
    out["retina_speedup"] = out["retina_torchvision_ms"] / out["retina_detloss_ms"]
    out["retina_loss_cls"] = {"torchvision": float(tv["classification"]), "detloss": res["retina"]["loss_cls"]}
    out["retina_loss_box_reg"] = {"torchvision": float(tv["bbox_regression"]), "detloss": res["retina"]["loss_box_reg"]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
