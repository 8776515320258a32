#!/usr/bin/python3
"""DETR's Hungarian matching: detloss against the torch cost + scipy pipeline.

    DETLOSS_LIBRARY=_build/python/libdetloss.so /usr/bin/python3 bench/compare_hungarian.py \
        [--threads 2] [--reps 21]

The batch of issue 16: 16 images x Q queries (Q = 100 and 300) x 91 classes + the
no-object column x 20 gt per image, random logits and (cx, cy, w, h) boxes (seeded).
Reference: DETR's HungarianMatcher.forward as DETR writes it (models/matcher.py),
in float32 on the CPU under torch.set_num_threads(threads): softmax over the
flattened (B*Q, 92) logits, one (B*Q) x sum(G) cost matrix (cdist p=1, GIoU on
corners), .cpu(), split per image, scipy.optimize.linear_sum_assignment per block.
detloss: detloss.torch_assign.HungarianMatcher (the same call, through the Python
binding: one C call for the batch, each image on its own Q x 20 float64 block, one
thread per image) with num_threads = threads. Both run in the same process,
interleaved, reps times each after a warm-up; the medians and minima are printed
with their ratio, and the pairs are checked equal (scipy on DETR's float32 cost vs
ours on float64: identical unless an optimum is tied to float32 rounding).
"""
import json
import os
import sys
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from detloss.torch_assign import HungarianMatcher  # noqa: E402


def corners(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def giou(a, b):
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
    area = wh2[..., 0] * wh2[..., 1]
    return inter / union - (area - union) / area


@torch.no_grad()
def detr_reference(outputs, targets, w_class=1, w_bbox=5, w_giou=2):
    bs, nq = outputs["pred_logits"].shape[:2]
    out_prob = outputs["pred_logits"].flatten(0, 1).softmax(-1)
    out_bbox = outputs["pred_boxes"].flatten(0, 1)
    tgt_ids = torch.cat([v["labels"] for v in targets])
    tgt_bbox = torch.cat([v["boxes"] for v in targets])
    cost_class = -out_prob[:, tgt_ids]
    cost_bbox = torch.cdist(out_bbox, tgt_bbox, p=1)
    cost_giou = -giou(corners(out_bbox), corners(tgt_bbox))
    C = w_bbox * cost_bbox + w_class * cost_class + w_giou * cost_giou
    C = C.view(bs, nq, -1).cpu()
    sizes = [len(v["boxes"]) for v in targets]
    indices = [linear_sum_assignment(c[i]) for i, c in enumerate(C.split(sizes, -1))]
    return [(torch.as_tensor(i, dtype=torch.int64), torch.as_tensor(j, dtype=torch.int64))
            for i, j in indices]


def batch(B, Q, K, G, seed):
    g = torch.Generator().manual_seed(seed)
    outputs = {"pred_logits": torch.randn(B, Q, K + 1, generator=g) * 2,
               "pred_boxes": torch.cat([torch.rand(B, Q, 2, generator=g) * 0.8 + 0.1,
                                        torch.rand(B, Q, 2, generator=g) * 0.45 + 0.05], -1)}
    targets = [{"labels": torch.randint(0, K, (G,), generator=g),
                "boxes": torch.cat([torch.rand(G, 2, generator=g) * 0.8 + 0.1,
                                    torch.rand(G, 2, generator=g) * 0.45 + 0.05], -1)}
               for _ in range(B)]
    return outputs, targets


def main():
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 21
    torch.set_num_threads(threads)
    ours = HungarianMatcher(1, 5, 2, num_threads=threads)
    for Q in (100, 300):
        outputs, targets = batch(16, Q, 91, 20, seed=Q)
        want, got = detr_reference(outputs, targets), ours(outputs, targets)
        same = sum(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(want, got))
        tr, td = [], []
        detr_reference(outputs, targets), ours(outputs, targets)  # warm-up
        for _ in range(reps):
            t0 = time.perf_counter()
            detr_reference(outputs, targets)
            t1 = time.perf_counter()
            ours(outputs, targets)
            t2 = time.perf_counter()
            tr.append((t1 - t0) * 1e3)
            td.append((t2 - t1) * 1e3)
        print(json.dumps({
            "batch": "16 x %d queries x 92 logits x 20 gt" % Q, "threads": threads, "reps": reps,
            "torch_scipy_ms_median": round(float(np.median(tr)), 3),
            "torch_scipy_ms_min": round(float(np.min(tr)), 3),
            "detloss_ms_median": round(float(np.median(td)), 3),
            "detloss_ms_min": round(float(np.min(td)), 3),
            "ratio_median": round(float(np.median(tr) / np.median(td)), 1),
            "ratio_min": round(float(np.min(tr) / np.min(td)), 1),
            "images_with_identical_pairs": "%d/16" % same,
            "torch": torch.__version__}))


if __name__ == "__main__":
    main()
