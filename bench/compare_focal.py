#!/usr/bin/python3
"""Sigmoid focal loss forward + backward: detloss vs torchvision, and the floor.

usage: /usr/bin/python3 bench/compare_focal.py BUILD_DIR/bench/bench_focal [threads=2] [reps=11]

Times torchvision.ops.sigmoid_focal_loss(reduction="sum") + autograd backward
on 201,600 x 80 float32 logits with torch.set_num_threads(threads), runs
bench_focal (detloss and the read-logits/write-gradient floor, same run) on
the same shape and threads, and prints one JSON object with the medians and
the ratios. The inputs follow the same recipe on both sides (logits uniform
in -4.6 +- 3, one positive class for ~1% of anchors), not the same bits:
the work per element does not depend on the values.
"""
import json
import statistics
import subprocess
import sys
import time

import torch
import torchvision
from torchvision.ops import sigmoid_focal_loss

binary = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 11
anchors, classes = 201600, 80

torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
x = (-4.6 + 6.0 * (torch.rand(anchors, classes, generator=g) - 0.5)).requires_grad_(True)
y = torch.zeros(anchors, classes)
pos = torch.rand(anchors, generator=g) < 0.01
cls = torch.randint(0, classes, (anchors,), generator=g)
y[pos, cls[pos]] = 1.0

times = []
for r in range(reps + 1):
    x.grad = None
    t0 = time.perf_counter()
    loss = sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0, reduction="sum")
    loss.backward()
    t1 = time.perf_counter()
    if r > 0:  # the first run warms up the allocator
        times.append((t1 - t0) * 1e3)
tv_ms = statistics.median(times)

out = subprocess.run([binary, str(threads), "21"], check=True, capture_output=True, text=True)
d = json.loads(out.stdout)
res = {
    "anchors": anchors, "classes": classes, "threads": threads,
    "torch": torch.__version__, "torchvision": torchvision.__version__,
    "torchvision_ms_median": round(tv_ms, 3),
    "detloss_ms_median": d["detloss_ms_median"],
    "floor_ms_median": d["floor_ms_median"],
    "speedup_vs_torchvision": round(tv_ms / d["detloss_ms_median"], 1),
    "ratio_to_floor": round(d["detloss_ms_median"] / d["floor_ms_median"], 2),
    "targets": {"speedup_vs_torchvision": ">= 30", "ratio_to_floor": "<= 4"},
}
print(json.dumps(res))
