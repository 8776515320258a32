#!/usr/bin/python3
"""Time detloss.torch.Matcher (the torch drop-in) against torchvision's Matcher.

    DETLOSS_LIBRARY=build/libdetloss.so PYTHONPATH=python \\
        /usr/bin/python3 bench/compare_matcher_dropin.py [--threads 2] [--reps 15]

FPN anchors of an 800 x 1216 image batch (torchvision AnchorGenerator, sizes 32..512 one
per level, ratios 0.5 / 1 / 2, feature maps of strides 4..64: 242,991 anchors); gt boxes
G = 20 and 100 (uniform centres, log-uniform sides in [16, 512], clipped to the image;
seeded). Under torch.set_num_threads(threads), in the same process and interleaved
repetition by repetition (so load from other processes hits every variant alike):

  torchvision       Matcher(0.7, 0.3, True)(box_iou(gt, anchors))          torchvision 0.14
  matrix            detloss Matcher(0.7, 0.3, True)(box_iou(gt, anchors))   the same matrix
  fused             detloss Matcher.match_boxes(gt, anchors)                no matrix
  fused_grid        match_boxes(gt, anchors, anchor_grid=...)               on the grid

Prints one JSON object per G: median and minimum ms of each, the ratios torchvision /
variant (of the medians), whether every variant's matches equal torchvision's, the load
average before and after (/proc/loadavg), and the torch / torchvision versions.
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torchvision
from torchvision.models.detection._utils import Matcher as TvMatcher
from torchvision.models.detection.anchor_utils import AnchorGenerator as TvAnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

import detloss.torch as dt

H, W = 800, 1216
SIZES = ((32,), (64,), (128,), (256,), (512,))
RATIOS = ((0.5, 1.0, 2.0),) * 5


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0:3]
    except OSError:
        return None


def gt_boxes(rng, g):
    cx, cy = rng.uniform(0, W, g), rng.uniform(0, H, g)
    w = np.exp(rng.uniform(np.log(16), np.log(512), g))
    h = np.exp(rng.uniform(np.log(16), np.log(512), g))
    b = np.stack([np.maximum(0, cx - w / 2), np.maximum(0, cy - h / 2),
                  np.minimum(W, cx + w / 2), np.minimum(H, cy + h / 2)], 1)
    return torch.from_numpy(b.astype(np.float32))


def main():
    argv = sys.argv
    threads = int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 2
    reps = int(argv[argv.index("--reps") + 1]) if "--reps" in argv else 15
    torch.set_num_threads(threads)
    il = ImageList(torch.zeros(1, 3, H, W), [(H, W)])
    fms = [torch.zeros(1, 1, H // s, W // s) for s in (4, 8, 16, 32)] + \
        [torch.zeros(1, 1, (H + 63) // 64, (W + 63) // 64)]
    anchors = TvAnchorGenerator(SIZES, RATIOS)(il, fms)[0]
    gen = dt.AnchorGenerator(SIZES, RATIOS)
    ours = gen(il, fms)
    grid = gen.grid_for(ours)
    assert grid is not None and torch.equal(ours[0], anchors)
    tv, me = TvMatcher(0.7, 0.3, True), dt.Matcher(0.7, 0.3, True)
    variants = {
        "torchvision": lambda g: tv(box_iou(g, anchors)),
        "matrix": lambda g: me(box_iou(g, anchors)),
        "fused": lambda g: me.match_boxes(g, anchors),
        "fused_grid": lambda g: me.match_boxes(g, anchors, anchor_grid=grid),
    }
    rng = np.random.default_rng(2026)
    for G in (20, 100):
        gt = gt_boxes(rng, G)
        load0 = loadavg()
        ref = variants["torchvision"](gt)
        same = {k: bool(torch.equal(f(gt), ref)) for k, f in variants.items()}
        times = {k: [] for k in variants}
        for _ in range(reps):
            for k, f in variants.items():
                t0 = time.perf_counter()
                f(gt)
                times[k].append((time.perf_counter() - t0) * 1e3)
        med = {k: float(np.median(v)) for k, v in times.items()}
        print(json.dumps({
            "gt": G, "anchors": int(anchors.shape[0]), "image": [H, W], "threads": threads,
            "reps": reps, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "median_ms": {k: round(v, 3) for k, v in med.items()},
            "min_ms": {k: round(float(np.min(v)), 3) for k, v in times.items()},
            "ratio_torchvision_over": {k: round(med["torchvision"] / v, 2)
                                       for k, v in med.items() if k != "torchvision"},
            "matches_equal_torchvision": same,
            "loadavg_before": load0, "loadavg_after": loadavg(),
            "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
