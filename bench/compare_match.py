#!/usr/bin/python3
"""Compare detloss matching with torchvision box_iou + Matcher on the same inputs.

    /usr/bin/python3 bench/compare_match.py BUILD_DIR/bench/bench_match [--threads 2] [--reps 11]

For G = 20 and G = 100: draws the gt boxes (uniform centres, log-uniform sides in
[16, 512], clipped to the 800x1344 image; numpy seed fixed), builds torchvision's FPN
anchors with AnchorGenerator, times box_iou(gt, anchors) + Matcher(0.7, 0.3, True)
under torch.set_num_threads(threads) (median of reps), runs bench_match on the same
boxes and threads, checks that the matches are identical, and prints one JSON object
per G with both times (median and minimum over the repetitions: the minimum is the
robust figure on a shared machine), the ratios, torch's peak-RSS growth and detloss's
exact peak extra heap.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou


def main():
    bench = sys.argv[1]
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 11
    torch.set_num_threads(threads)
    H, W = 800, 1344
    ag = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
    fms = [torch.zeros(1, 1, h, w) for h, w in [(200, 336), (100, 168), (50, 84), (25, 42), (13, 21)]]
    anchors = ag(ImageList(torch.zeros(1, 3, H, W), [(H, W)]), fms)[0]
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
    rng = np.random.default_rng(2026)
    for G in (20, 100):
        cx, cy = rng.uniform(0, W, G), rng.uniform(0, H, G)
        w = np.exp(rng.uniform(np.log(16), np.log(512), G))
        h = np.exp(rng.uniform(np.log(16), np.log(512), G))
        gt = np.stack([np.maximum(0, cx - w / 2), np.maximum(0, cy - h / 2),
                       np.minimum(W, cx + w / 2), np.minimum(H, cy + h / 2)], 1).astype(np.float32)
        gtt = torch.from_numpy(gt)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            m = matcher(box_iou(gtt, anchors))
            times.append((time.perf_counter() - t0) * 1e3)
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tv_ms = float(np.median(times))
        with tempfile.TemporaryDirectory() as d:
            gp, mp = os.path.join(d, "gt.txt"), os.path.join(d, "m.txt")
            with open(gp, "w") as f:
                f.write("%d\n" % G)
                for b in gt:
                    f.write(" ".join("%.9g" % v for v in b) + "\n")
            out = subprocess.run([bench, "--gt", gp, "--threads", str(threads), "--reps",
                                  str(max(reps, 21)), "--dump", mp], capture_output=True,
                                 text=True, check=True).stdout
            r = json.loads(out)
            ours = np.loadtxt(mp, dtype=np.int64)
        same = bool(np.array_equal(ours, m.numpy()))
        print(json.dumps({
            "gt": G, "anchors": int(anchors.shape[0]), "threads": threads,
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "torchvision_ms": round(tv_ms, 3), "detloss_grid_ms": r["grid_ms"],
            "detloss_plain_ms": r["plain_ms"],
            "ratio_grid": round(tv_ms / r["grid_ms"], 1),
            "torchvision_min_ms": round(float(np.min(times)), 3),
            "detloss_grid_min_ms": r["grid_min_ms"],
            "ratio_grid_min": round(float(np.min(times)) / r["grid_min_ms"], 1),
            "ratio_plain": round(tv_ms / r["plain_ms"], 1),
            "matches_identical": same,
            "torchvision_peak_rss_growth_kb": rss1 - rss0,
            "detloss_peak_extra_heap_grid_bytes": r["peak_extra_heap_grid_bytes"],
            "detloss_peak_extra_heap_plain_bytes": r["peak_extra_heap_plain_bytes"],
            "iou_matrix_bytes_float32": 4 * G * int(anchors.shape[0])}))


if __name__ == "__main__":
    main()
