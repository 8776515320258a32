#!/usr/bin/python3
"""Time DETR's training loss: detloss against the torch + scipy reference pipeline.

    DETLOSS_LIBRARY=build/libdetloss.so PYTHONPATH=python:python/tests \\
        OMP_NUM_THREADS=2 /usr/bin/python3 bench/compare_detr.py [--threads 2] [--reps 21]

Workload (issue #17): a batch of 16 images x 300 queries x 91 classes (DETR's COCO
head: K = 92 logits with the no-object column; focal: K = 91), 20 gt boxes per image
on average (uniform in [10, 30], seeded), boxes normalised (cx, cy, w, h). Under
torch.set_num_threads(threads), in one process, interleaved repetition by repetition
(load from other processes hits every variant alike), forward + backward of:

  reference   SetCriterion + HungarianMatcher written as DETR writes them
              (python/tests/detr_reference.py: the (B Q) x sum(G) cost block in torch,
              .cpu(), scipy.optimize.linear_sum_assignment per image, the dense losses,
              autograd); losses labels, boxes, cardinality
  drop-in     detloss.torch_detr.SetCriterion (the same dict; one C call, its backward)
  numpy       detloss.detr_loss on numpy arrays (the C call alone, gradients included)

Prints one JSON object per class loss (softmax, focal): median and minimum wall ms of
each, the median CPU ms (process time, all threads: less sensitive to other processes'
load), the ratios reference / variant (of the medians), whether the losses agree, the load
average before and after (/proc/loadavg), torch and scipy versions.
"""
import json
import os
import sys
import time

import numpy as np
import scipy
import torch

import detloss
from detloss.torch_detr import SetCriterion
from detr_reference import reference_criterion

B, Q, C = 16, 300, 91


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0:3]
    except OSError:
        return None


def batch(rng, K):
    logits = torch.from_numpy(rng.normal(0, 2, (B, Q, K)).astype(np.float32))
    boxes = torch.from_numpy((1 / (1 + np.exp(-rng.normal(0, 1.2, (B, Q, 4))))).astype(np.float32))
    boxes[..., 2:] = (boxes[..., 2:] * 0.6).clamp(min=0.02)
    targets = []
    for _ in range(B):
        G = int(rng.integers(10, 31))
        cxcy = rng.uniform(0.15, 0.85, (G, 2))
        wh = rng.uniform(0.03, 0.5, (G, 2))
        targets.append({"labels": torch.from_numpy(rng.integers(0, C, G)),
                        "boxes": torch.from_numpy(np.concatenate([cxcy, wh], 1).astype(np.float32))})
    return logits, boxes, targets


def total(d, wd):
    return sum(v * wd[k] for k, v in d.items() if k in wd)


def main():
    argv = sys.argv
    threads = int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 2
    reps = int(argv[argv.index("--reps") + 1]) if "--reps" in argv else 21
    torch.set_num_threads(threads)
    rng = np.random.default_rng(2026)
    for cls_loss in ("softmax", "focal"):
        K = C + 1 if cls_loss == "softmax" else C
        logits, boxes, targets = batch(rng, K)
        ref = reference_criterion(C, cls_loss=cls_loss)
        crit = SetCriterion(C, None, ref.weight_dict, cls_loss=cls_loss, num_threads=threads)
        wd = ref.weight_dict
        lb = [t["labels"].numpy() for t in targets]
        bx = [t["boxes"].numpy() for t in targets]

        def run_torch(c):
            lg = logits.clone().requires_grad_()
            bb = boxes.clone().requires_grad_()
            d = c({"pred_logits": lg, "pred_boxes": bb}, targets)
            total(d, wd).backward()
            return float(total(d, wd))

        def run_numpy():
            r = detloss.detr_loss(logits.numpy(), boxes.numpy(), lb, bx, cls_loss=cls_loss,
                                  num_threads=threads)
            return r.loss

        variants = {"reference": lambda: run_torch(ref), "drop-in": lambda: run_torch(crit),
                    "numpy": run_numpy}
        load0 = loadavg()
        vals = {k: f() for k, f in variants.items()}
        times = {k: [] for k in variants}
        cpu = {k: [] for k in variants}
        for _ in range(reps):
            for k, f in variants.items():
                t0, c0 = time.perf_counter(), time.process_time()
                f()
                times[k].append((time.perf_counter() - t0) * 1e3)
                cpu[k].append((time.process_time() - c0) * 1e3)
        med = {k: float(np.median(v)) for k, v in times.items()}
        cmed = {k: float(np.median(v)) for k, v in cpu.items()}
        print(json.dumps({
            "cls_loss": cls_loss, "images": B, "queries": Q, "classes": C, "logits": K,
            "gt_total": int(sum(len(x) for x in lb)), "threads": threads, "reps": reps,
            "torch": torch.__version__, "scipy": scipy.__version__,
            "median_ms": {k: round(v, 3) for k, v in med.items()},
            "min_ms": {k: round(float(np.min(v)), 3) for k, v in times.items()},
            "ratio_reference_over": {k: round(med["reference"] / v, 2)
                                     for k, v in med.items() if k != "reference"},
            "median_cpu_ms": {k: round(v, 3) for k, v in cmed.items()},
            "cpu_ratio_reference_over": {k: round(cmed["reference"] / v, 2)
                                         for k, v in cmed.items() if k != "reference"},
            "loss": {k: round(v, 6) for k, v in vals.items()},
            "loss_rel_diff": max(abs(v - vals["reference"]) / abs(vals["reference"])
                                 for v in vals.values()),
            "loadavg_before": load0, "loadavg_after": loadavg(), "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
