#!/usr/bin/python3
"""fcos_loss: detloss vs a torch implementation of mmdetection's FCOSHead.loss_by_feat
(tests/fixtures/fcos_loss/fcos_ref.py, dense P x G tensors per image, float32 here),
in the same run, on the issue's workload: 2 images at 800 x 1333 (padded to 800 x 1344:
P3-P7 = 22,400 points), 80 classes, 30 gt per image, loss and gradients.

    OMP_NUM_THREADS=2 /usr/bin/python3 bench/compare_fcos.py [reps]

Both sides on 2 threads (torch.set_num_threads(2)); repetitions interleaved; medians.
Prints the load average, since other jobs may share the machine.
"""
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "fcos_loss"))
import fcos_ref  # noqa: E402

import detloss  # noqa: E402

FM = [[100, 168], [50, 84], [25, 42], [13, 21], [7, 11]]
B, C, G = 2, 80, 30


def scene(seed=0):
    rng = np.random.default_rng(seed)
    P = sum(h * w for h, w in FM)
    gts, labels = [], []
    for _ in range(B):
        wh = rng.uniform(16, 600, (G, 2))
        xy = rng.uniform(0, 1, (G, 2)) * (np.array([1333, 800]) - wh)
        gts.append(np.concatenate([xy, xy + wh], 1).astype(np.float32))
        labels.append(rng.integers(0, C, G))
    return (rng.normal(-4, 1, (B, P, C)).astype(np.float32),
            rng.uniform(0.5, 8, (B, P, 4)).astype(np.float32),
            rng.normal(0, 1, (B, P)).astype(np.float32), gts, labels)


def run_detloss(s):
    cls, bbox, ctr, gts, labels = s
    return detloss.fcos_loss(FM, cls, bbox, ctr, gts, labels, grad=True, num_threads=2)


def run_torch(s):
    cls, bbox, ctr, gts, labels = s
    t = [torch.tensor(a, requires_grad=True) for a in (cls, bbox, ctr)]
    losses, _ = fcos_ref.mmdet_fcos_loss(FM, *t, [torch.tensor(g) for g in gts],
                                         [torch.tensor(lb) for lb in labels])
    (losses["loss_cls"] + losses["loss_bbox"] + losses["loss_centerness"]).backward()
    return losses


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    torch.set_num_threads(2)
    s = scene()
    a, b = run_detloss(s), run_torch(s)
    for k in ("loss_cls", "loss_bbox", "loss_centerness"):
        print("%-16s detloss %.6f  torch %.6f" % (k, a[k], float(b[k])))
    td, tt = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        run_detloss(s)
        td.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_torch(s)
        tt.append(time.perf_counter() - t0)
    md, mt = np.median(td), np.median(tt)
    print("load average %s; %d reps, 2 threads" % (os.getloadavg(), reps))
    print("| fcos_loss 2 x 22,400 points x 80 classes x 30 gt | detloss %.1f ms | torch %.1f ms "
          "| %.1fx |" % (md * 1e3, mt * 1e3, mt / md))


if __name__ == "__main__":
    main()
