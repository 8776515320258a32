#!/usr/bin/env python3
"""Side-by-side benchmark: detloss against torchvision on the same inputs and threads.

usage: /usr/bin/python3 bench/compare_torchvision.py [--detloss build/detloss]
           [--threads 2] [--repeats 11] [--only W,W] [--json-out FILE] [--markdown]

Runs `detloss bench --json` for the standard workloads, then the same
workloads in torchvision (Debian's python3-torchvision) in this process with
torch.set_num_threads(threads), on the very same inputs: bench/harness.c's
counter-based generator is mirrored here with numpy (bench_u01). It checks
that both sides compute the same result (the workload's check value), and
prints median times and the ratio torchvision / detloss per stage.
torchvision is optional for detloss: nothing in the test suite needs this.
"""
import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import torchvision
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import box_iou, sigmoid_focal_loss

SEED_GT, SEED_LOGITS, SEED_TARGETS = 7, 11, 13
SEED_OBJ, SEED_DELTAS, SEED_CLS, SEED_LABELS = 17, 19, 23, 29
HEAD_IMAGES, HEAD_GT = 2, 20
M64 = (1 << 64) - 1


# the input generator of bench/harness.c, in numpy
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def bench_u01(seed, i):
    i = np.asarray(i, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = _mix64((np.uint64((seed << 32) & M64) + i) * np.uint64(0x9E3779B97F4A7C15))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def bench_normal(seed, i):
    i = np.asarray(i, dtype=np.uint64)
    u1 = bench_u01(seed, 2 * i)
    u2 = bench_u01(seed, 2 * i + 1)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(6.283185307179586 * u2)


def bench_gt_boxes(seed, g, img_h, img_w):
    i = np.arange(g, dtype=np.uint64)
    lo, hi = math.log(16.0), math.log(512.0)
    cx = bench_u01(seed, 4 * i) * img_w
    cy = bench_u01(seed, 4 * i + 1) * img_h
    w = np.exp(lo + (hi - lo) * bench_u01(seed, 4 * i + 2))
    h = np.exp(lo + (hi - lo) * bench_u01(seed, 4 * i + 3))
    b = np.stack([np.maximum(cx - w / 2, 0), np.maximum(cy - h / 2, 0),
                  np.minimum(cx + w / 2, img_w), np.minimum(cy + h / 2, img_h)], axis=1)
    return torch.from_numpy(b.astype(np.float32))


def fpn_anchors(img_h, img_w):
    sizes = ((32,), (64,), (128,), (256,), (512,))
    gen = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)
    feats = [torch.zeros(1, 1, math.ceil(img_h / (4 << l)), math.ceil(img_w / (4 << l)))
             for l in range(5)]
    il = ImageList(torch.zeros(1, 3, img_h, img_w), [(img_h, img_w)])
    return gen(il, feats)[0]


def retina_anchors(img_h, img_w):
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512))
    gen = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)
    feats = [torch.zeros(1, 1, math.ceil(img_h / (8 << l)), math.ceil(img_w / (8 << l)))
             for l in range(5)]
    il = ImageList(torch.zeros(1, 3, img_h, img_w), [(img_h, img_w)])
    return gen(il, feats)[0]


def head_inputs(retina, small):
    img_h, img_w = (256, 320) if small else (800, 1344)
    anchors = retina_anchors(img_h, img_w) if retina else fpn_anchors(img_h, img_w)
    A, C = anchors.shape[0], (80 if retina else 1)
    pred = bench_normal(SEED_CLS if retina else SEED_OBJ,
                        np.arange(HEAD_IMAGES * A * C, dtype=np.uint64)).astype(np.float32)
    deltas = (0.5 * bench_normal(SEED_DELTAS, np.arange(HEAD_IMAGES * A * 4, dtype=np.uint64))
              ).astype(np.float32)
    labels = (bench_u01(SEED_LABELS, np.arange(HEAD_IMAGES * HEAD_GT, dtype=np.uint64)) * C
              ).astype(np.int64)
    targets = []
    for b in range(HEAD_IMAGES):
        t = {"boxes": bench_gt_boxes(SEED_GT + 1000 * (b + 1), HEAD_GT, img_h, img_w)}
        if retina:
            t["labels"] = torch.from_numpy(labels[b * HEAD_GT:(b + 1) * HEAD_GT])
        targets.append(t)
    return anchors, torch.from_numpy(pred).reshape(HEAD_IMAGES, A, C), \
        torch.from_numpy(deltas).reshape(HEAD_IMAGES, A, 4), targets


def tv_rpn(small, repeats, warmup):
    """torchvision RegionProposalNetwork: assign_targets_to_anchors + BoxCoder.encode
    (assign), compute_loss + backward (loss_fwd_bwd). torchvision samples with
    torch.randperm, detloss with its seeded hash: the losses agree in distribution,
    not in value, so no value check here."""
    anchors, obj, deltas, targets = head_inputs(False, small)
    al = [anchors] * HEAD_IMAGES
    gen = AnchorGenerator(((32,),), ((1.0,),))
    rpn = RegionProposalNetwork(gen, RPNHead(1, 1), 0.7, 0.3, 256, 0.5,
                                dict(training=2000, testing=1000), dict(training=2000, testing=1000), 0.7)
    ts = {"assign": [], "loss_fwd_bwd": [], "total": []}
    for r in range(warmup + repeats):
        o = obj.reshape(-1, 1).clone().requires_grad_()
        d = deltas.reshape(-1, 4).clone().requires_grad_()
        t0 = time.perf_counter()
        labels, mgt = rpn.assign_targets_to_anchors(al, targets)
        rt = rpn.box_coder.encode(mgt, al)
        t1 = time.perf_counter()
        lo, lb = rpn.compute_loss(o, d, labels, rt)
        (lo + lb).backward()
        t2 = time.perf_counter()
        if r >= warmup:
            ts["assign"].append((t1 - t0) * 1e3)
            ts["loss_fwd_bwd"].append((t2 - t1) * 1e3)
            ts["total"].append((t2 - t0) * 1e3)
    return {k: summarize(v) for k, v in ts.items()}, {}


def tv_retina(small, repeats, warmup):
    """torchvision RetinaNet: Matcher(box_iou) per image (assign),
    RetinaNetHead.compute_loss + backward (loss_fwd_bwd). No sampling: the
    loss values must agree with detloss's."""
    anchors, cls, deltas, targets = head_inputs(True, small)
    al = [anchors] * HEAD_IMAGES
    head = RetinaNetHead(1, 9, 80)
    matcher = Matcher(0.5, 0.4, allow_low_quality_matches=True)
    ts = {"assign": [], "loss_fwd_bwd": [], "total": []}
    loss = None
    for r in range(warmup + repeats):
        c = cls.clone().requires_grad_()
        b = deltas.clone().requires_grad_()
        t0 = time.perf_counter()
        matched = [matcher(box_iou(t["boxes"], a)) for t, a in zip(targets, al)]
        t1 = time.perf_counter()
        losses = head.compute_loss(targets, {"cls_logits": c, "bbox_regression": b}, al, matched)
        tot = losses["classification"] + losses["bbox_regression"]
        tot.backward()
        t2 = time.perf_counter()
        loss = float(tot)
        if r >= warmup:
            ts["assign"].append((t1 - t0) * 1e3)
            ts["loss_fwd_bwd"].append((t2 - t1) * 1e3)
            ts["total"].append((t2 - t0) * 1e3)
    return {k: summarize(v) for k, v in ts.items()}, {"loss_sum": loss}


def summarize(ts):
    ts = sorted(ts)
    n = len(ts)
    med = ts[n // 2] if n % 2 else 0.5 * (ts[n // 2 - 1] + ts[n // 2])
    return {"median_ms": med, "min_ms": ts[0], "max_ms": ts[-1]}


def timed(fn, repeats, warmup):
    out = None
    ts = []
    for r in range(warmup + repeats):
        t0 = time.perf_counter()
        out = fn()
        t1 = time.perf_counter()
        if r >= warmup:
            ts.append((t1 - t0) * 1e3)
    ts.sort()
    n = len(ts)
    med = ts[n // 2] if n % 2 else 0.5 * (ts[n // 2 - 1] + ts[n // 2])
    return {"median_ms": med, "min_ms": ts[0], "max_ms": ts[-1]}, out


def tv_match(g, small, repeats, warmup):
    img_h, img_w = (256, 320) if small else (800, 1344)
    anchors = fpn_anchors(img_h, img_w)
    gt = bench_gt_boxes(SEED_GT + g, g, img_h, img_w)
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
    stats, m = timed(lambda: matcher(box_iou(gt, anchors)), repeats, warmup)
    return {"match": stats}, {"num_matched": int((m >= 0).sum())}


def tv_focal(small, repeats, warmup):
    anchors, classes = (2000 if small else 201600), 80
    n = anchors * classes
    x = torch.from_numpy(bench_normal(SEED_LOGITS, np.arange(n, dtype=np.uint64)).astype(np.float32))
    y = np.zeros(n, dtype=np.float32)
    a = np.arange(anchors, dtype=np.uint64)
    pos = bench_u01(SEED_TARGETS, 2 * a) < 0.01
    cls = (bench_u01(SEED_TARGETS, 2 * a + 1) * classes).astype(np.int64)
    y[(a[pos].astype(np.int64) * classes + cls[pos])] = 1.0
    y = torch.from_numpy(y)
    fwd, loss = timed(lambda: sigmoid_focal_loss(x, y, 0.25, 2.0, reduction="sum"), repeats, warmup)

    def fwd_bwd():
        xr = x.detach().requires_grad_(True)
        l = sigmoid_focal_loss(xr, y, 0.25, 2.0, reduction="sum")
        l.backward()
        return l

    fb, _ = timed(fwd_bwd, repeats, warmup)
    return {"fwd": fwd, "fwd_bwd": fb}, {"loss_sum": float(loss)}


def tv_eval_coco(small, repeats, warmup):
    """The torchvision way to evaluate FPN RPN anchors on the bundled data:
    per image torchvision's resize, AnchorGenerator.grid_anchors, box_iou and
    Matcher (0.7, 0.3, low quality); recall at IoU 0.5. Clipping and resizing
    reuse tests/fixtures/anchor_eval/gen_anchor_eval.py (torchvision's own
    GeneralizedRCNNTransform arithmetic)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    sys.path.insert(0, os.path.join(root, "tests", "fixtures", "anchor_eval"))
    import gen_anchor_eval as g
    data = json.load(open(os.path.join(root, "data", "coco2017_subset.json")))
    fpn = json.load(open(os.path.join(root, "anchors", "torchvision_fpn.json")))
    strides = [l["stride"] for l in fpn["levels"]]
    ag = AnchorGenerator(tuple(tuple(l["sizes"]) for l in fpn["levels"]),
                         tuple(tuple(l["aspect_ratios"]) for l in fpn["levels"]))
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
    images = []
    for im in data["images"]:
        H, W = float(im["height"]), float(im["width"])
        kept, _, _ = g.clip_filter(im["boxes"], im.get("iscrowd"), H, W)
        gt, Hr, Wr = g.resize(kept, H, W, {"min_size": 800, "max_size": 1333})
        images.append((gt, Hr, Wr))

    def run():
        hit = tot = 0
        for gt, Hr, Wr in images:
            sizes = [[math.ceil(Hr / s), math.ceil(Wr / s)] for s in strides]
            st = [[torch.tensor(s), torch.tensor(s)] for s in strides]
            anchors = torch.cat(ag.grid_anchors(sizes, st))
            if gt.shape[0] == 0:
                continue
            iou = box_iou(gt, anchors)
            best = iou.max(1).values
            matcher(iou)  # positives under the config's matcher, as detloss eval counts them
            hit += int((best >= 0.5).sum())
            tot += gt.shape[0]
        return hit / tot

    stats, recall = timed(run, repeats, warmup)
    return {"eval": stats}, {"recall": recall}


TV = {
    "rpn_fpn_b2": tv_rpn,
    "retina_b2": tv_retina,
    "eval_coco": tv_eval_coco,
    "match_fpn_g20": lambda s, r, w: tv_match(20, s, r, w),
    "match_fpn_g100": lambda s, r, w: tv_match(100, s, r, w),
    "focal_16m": tv_focal,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detloss", default=os.path.join(os.path.dirname(__file__), "..", "build", "detloss"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default=None)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cmd = [args.detloss, "bench", "--json", "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    if args.only:
        cmd += ["--only", args.only]
    if args.small:
        cmd += ["--small"]
    dl = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    rows, out = [], {"_meta": dict(dl["_meta"], torch=torch.__version__,
                                   torchvision=torchvision.__version__,
                                   python=platform.python_version())}
    for wname, wres in dl.items():
        if wname.startswith("_"):
            continue
        entry = {"detloss": wres}
        if wname in TV:
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            tv_stages, tv_check = TV[wname](args.small, args.repeats, args.warmup)
            entry["torchvision"] = dict(tv_stages, _check=tv_check,
                                        _peak_rss_mib_process=resource.getrusage(
                                            resource.RUSAGE_SELF).ru_maxrss / 1024,
                                        _rss_before_mib=rss0)
            # same result on both sides?
            for k, v in tv_check.items():
                mine = wres["_check"].get(k)
                same = mine is not None and abs(mine - v) <= 1e-4 * max(1.0, abs(v))
                entry.setdefault("agree", {})[k] = {"detloss": mine, "torchvision": v, "equal": same}
        out[wname] = entry
        for stage, st in wres.items():
            if stage.startswith("_"):
                continue
            tv = entry.get("torchvision", {}).get(stage)
            ratio = tv["median_ms"] / st["median_ms"] if tv and st["median_ms"] > 0 else None
            rows.append((wname, stage, st["median_ms"], tv["median_ms"] if tv else None, ratio))

    if args.markdown:
        print("| workload | stage | detloss median ms | torchvision median ms | speed-up |")
        print("|---|---|---:|---:|---:|")
        for w, s, a, b, r in rows:
            print(f"| {w} | {s} | {a:.2f} | {'' if b is None else f'{b:.2f}'} | "
                  f"{'' if r is None else f'{r:.1f}x'} |")
    else:
        print(f"{'workload':16} {'stage':12} {'detloss ms':>11} {'torchvision ms':>15} {'ratio':>8}")
        for w, s, a, b, r in rows:
            print(f"{w:16} {s:12} {a:11.3f} {'' if b is None else f'{b:15.3f}':>15} "
                  f"{'' if r is None else f'{r:7.1f}x':>8}")
    for w, e in out.items():
        for k, v in e.get("agree", {}).items() if isinstance(e, dict) else []:
            if not v["equal"]:
                print(f"WARNING: {w}: {k} differs: detloss {v['detloss']} vs torchvision {v['torchvision']}",
                      file=sys.stderr)
    print(f"# {dl['_meta']['cpu']}, {args.threads} threads, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, commit {dl['_meta']['commit']}, {dl['_meta']['date']}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
