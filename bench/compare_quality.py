#!/usr/bin/python3
"""Quality losses: detloss's torch drop-ins against torch written the way mmdetection
writes them, and against a plain memory pass, in one process (interleaved).

    DETLOSS_LIBRARY=_build/python/libdetloss.so /usr/bin/python3 bench/compare_quality.py [--threads 2] [--reps 7] [--images 16]

Inputs (bench/bench_loss_quality.c draws the same ones with the C harness's generator):
  QFL / VFL: images x 8,400 anchors x 80 classes, logits N(0, 2^2), scores 0 except one
             class of every 10th anchor (uniform in (0, 1));
  DFL: images x 8,400 x 4 rows of 16 bins (ultralytics reg_max 15), logits N(0, 2^2),
       targets uniform in [0, 15).
Each timed step is the value (reduction "sum") and the backward to the logits.
References (mmdetection's formulas, torch float32, autograd for the gradient):
  QFL  quality_focal_loss_tensor_target: BCE-with-logits(x, y) * |sigmoid(x) - y|^beta
  DFL  distribution_focal_loss: CE(x, floor y) (floor y + 1 - y) + CE(x, floor y + 1) (y - floor y)
  VFL  varifocal_loss: BCE-with-logits(x, q) * (q [q > 0] + alpha |sigmoid(x) - q|^gamma [q <= 0])
floor: torch.sub(x, y, out=g), reading the logits and targets and writing a gradient-sized
tensor (the least either implementation must move). Prints one JSON line: medians and
minima (ms), wall and CPU-time ratios, the relative difference of the loss values and the
worst gradient difference relative to the largest gradient.
"""
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
sys.path.insert(0, HERE)
from compare_torchvision import bench_normal, bench_u01  # noqa: E402

import detloss.torch as dt  # noqa: E402

A, C, BINS = 8400, 80, 16


def arg(name, default, cast=int):
    return cast(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def inputs(images):
    nq, nd = images * A * C, images * A * 4
    xq = (2.0 * bench_normal(11, np.arange(nq))).astype(np.float32).reshape(-1, C)
    yq = np.zeros(nq, np.float32)
    a = np.arange(0, images * A, 10, dtype=np.uint64)
    cls = (bench_u01(12, a) * C).astype(np.uint64)
    yq[(a * C + cls).astype(np.int64)] = bench_u01(13, a).astype(np.float32)
    xd = (2.0 * bench_normal(14, np.arange(nd * BINS))).astype(np.float32).reshape(-1, BINS)
    yd = (bench_u01(15, np.arange(nd)) * (BINS - 1)).astype(np.float32)
    t = torch.from_numpy
    return t(xq), t(yq.reshape(-1, C)), t(xd), t(yd)


def qfl_torch(x, y, beta=2.0):
    s = x.sigmoid()
    return (F.binary_cross_entropy_with_logits(x, y, reduction="none") *
            (s - y).abs().pow(beta)).sum()


def dfl_torch(x, y):
    left = y.long()
    right = left + 1
    wl, wr = right.float() - y, y - left.float()
    return (F.cross_entropy(x, left, reduction="none") * wl +
            F.cross_entropy(x, right, reduction="none") * wr).sum()


def vfl_torch(x, q, alpha=0.75, gamma=2.0):
    s = x.sigmoid()
    w = q * (q > 0.0).float() + alpha * (s - q).abs().pow(gamma) * (q <= 0.0).float()
    return (F.binary_cross_entropy_with_logits(x, q, reduction="none") * w).sum()


def step(fn, x, y):
    xx = x.detach().requires_grad_()
    loss = fn(xx, y)
    loss.backward()
    return float(loss), xx.grad


def main():
    threads, reps, images = arg("--threads", 2), arg("--reps", 7), arg("--images", 16)
    torch.set_num_threads(threads)
    xq, yq, xd, yd = inputs(images)
    g = torch.empty_like(xq)
    gd = torch.empty_like(xd)
    jobs = {
        "qfl": (lambda x, y: dt.quality_focal_loss(x, y, reduction="sum", num_threads=threads),
                qfl_torch, xq, yq, lambda: torch.sub(xq, yq, out=g)),
        "dfl": (lambda x, y: dt.distribution_focal_loss(x, y, reduction="sum",
                                                        num_threads=threads),
                dfl_torch, xd, yd, lambda: torch.sub(xd, yd[:, None], out=gd)),
        "vfl": (lambda x, y: dt.varifocal_loss(x, y, reduction="sum", num_threads=threads),
                vfl_torch, xq, yq, lambda: torch.sub(xq, yq, out=g)),
    }
    out = {"bench": "quality_losses", "threads": threads, "images": images, "reps": reps,
           "torch": torch.__version__, "load_before": os.getloadavg()[0]}
    for name, (ours, ref, x, y, floor) in jobs.items():
        lo, go = step(ours, x, y)  # warm-up, and the values compared below
        lr, gr = step(ref, x, y)
        floor()
        t = {"detloss": [], "torch": [], "floor": []}
        c = {"detloss": [], "torch": []}
        for _ in range(reps):
            for who, fn in (("detloss", ours), ("torch", ref)):
                c0, t0 = cpu_s(), time.perf_counter()
                step(fn, x, y)
                t[who].append(1e3 * (time.perf_counter() - t0))
                c[who].append(cpu_s() - c0)
            t0 = time.perf_counter()
            floor()
            t["floor"].append(1e3 * (time.perf_counter() - t0))
        med = {k: float(np.median(v)) for k, v in t.items()}
        out[name] = {
            "detloss_ms": round(med["detloss"], 1), "detloss_min_ms": round(min(t["detloss"]), 1),
            "torch_ms": round(med["torch"], 1), "torch_min_ms": round(min(t["torch"]), 1),
            "floor_ms": round(med["floor"], 1),
            "ratio_median": round(med["torch"] / med["detloss"], 2),
            "ratio_min": round(min(t["torch"]) / min(t["detloss"]), 2),
            "cpu_ratio": round(float(np.median(c["torch"]) / np.median(c["detloss"])), 2),
            "detloss_over_floor": round(med["detloss"] / med["floor"], 1),
            "loss_detloss": lo, "loss_torch": lr,
            "loss_rel_diff": abs(lo - lr) / abs(lr),
            "grad_worst_rel_to_max": float((go - gr).abs().max() / gr.abs().max()),
        }
    out["load_after"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
