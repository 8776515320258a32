#!/usr/bin/python3
"""YOLOv8 loss: detloss against a torch port of ultralytics v8DetectionLoss (8.1) written
the way ultralytics writes it (python/tests/yolov8_reference.py with stable=False, i.e.
torch.topk; dense B x M x A assigner tensors, float32), in the same run.

    DETLOSS_LIBRARY=_build/rel/libdetloss.so /usr/bin/python3 bench/compare_yolov8.py [--threads 2] [--reps 9]

Workload (issue #17): 16 images x 8,400 anchors (640 x 640, strides 8/16/32) x 80 classes
x 30 gts per image (log-uniform sides 16..400 px), reg_max 16. Each repetition times,
interleaved:
  torch:   reference forward + backward (loss.backward() to the feature maps);
  dropin:  detloss.torch_yolov8.V8DetectionLoss forward + backward (includes the
           torch -> numpy layout copies of the feature maps and of the gradients);
  detloss: the C call alone (detloss.yolov8_loss on prepared [B, A, 4R] / [B, A, C]
           arrays, gradients included, written into kept output arrays (out=)).
torch.set_num_threads(--threads) and num_threads = --threads (OMP_NUM_THREADS is set
to it before torch is imported). Prints one JSON line: medians and minima (ms), ratios,
CPU time, the agreement of the losses, and the load average.
"""
import os
import sys


def arg(name, default, cast=int):
    return cast(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


os.environ["OMP_NUM_THREADS"] = str(arg("--threads", 2))

import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "python", "tests"))
import detloss  # noqa: E402
from detloss.torch_yolov8 import V8DetectionLoss  # noqa: E402
from yolov8_reference import RefV8DetectionLoss, split_feats  # noqa: E402


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def scene(B=16, C=80, G=30, R=16, seed=1):
    rng = np.random.default_rng(seed)
    feats = []
    for s in (8, 16, 32):
        h = w = 640 // s
        d = rng.uniform(0.5, 6.0, size=(B, 4, 1, h, w))
        k = np.arange(R).reshape(1, 1, R, 1, 1)
        dist = -((k - d) ** 2) * 0.5 + rng.normal(0, 0.3, size=(B, 4, R, h, w))
        cls = rng.normal(-4.0, 2.0, size=(B, C, h, w))
        feats.append(torch.tensor(np.concatenate([dist.reshape(B, 4 * R, h, w), cls], 1),
                                  dtype=torch.float32))
    bi, cl, bb = [], [], []
    for i in range(B):
        w = np.exp(rng.uniform(np.log(16), np.log(400), G)) / 640
        h = np.exp(rng.uniform(np.log(16), np.log(400), G)) / 640
        cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
        bi += [i] * G
        cl += list(rng.integers(0, C, G))
        bb.append(np.stack([cx, cy, w, h], -1))
    batch = {"batch_idx": torch.tensor(bi, dtype=torch.float32),
             "cls": torch.tensor(cl, dtype=torch.float32).view(-1, 1),
             "bboxes": torch.tensor(np.concatenate(bb), dtype=torch.float32)}
    return feats, batch


def main():
    threads, reps = arg("--threads", 2), arg("--reps", 9)
    torch.set_num_threads(threads)
    C, B = 80, 16
    feats, batch = scene(B, C)
    ref = RefV8DetectionLoss(C, stable=False)
    ours = V8DetectionLoss(nc=C, num_threads=threads)
    pd, ps = split_feats(feats, C, 16)
    pd, ps = pd.numpy(), ps.numpy()
    gts, labels = ours.targets(batch, B, (640, 640))

    def run_torch():
        f = [x.clone().requires_grad_(True) for x in feats]
        loss, items = ref(f, batch)
        loss.backward()
        return float(loss)

    def run_dropin():
        f = [x.clone().requires_grad_(True) for x in feats]
        loss, items = ours(f, batch)
        loss.backward()
        return float(loss)

    outs = (np.empty(pd.shape, np.float32), np.empty(ps.shape, np.float32))

    def run_c():
        return detloss.yolov8_loss((640, 640), gts, labels, pd, ps, num_threads=threads,
                                   out=outs).loss

    runs = {"torch": run_torch, "dropin": run_dropin, "detloss": run_c}
    vals = {k: f() for k, f in runs.items()}  # warm-up
    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    for _ in range(reps):
        for k, f in runs.items():
            c0, t0 = cpu_s(), time.perf_counter()
            f()
            c1, t1 = cpu_s(), time.perf_counter()
            wall[k].append(t1 - t0)
            cpu[k].append(c1 - c0)
    med = {k: 1e3 * float(np.median(v)) for k, v in wall.items()}
    out = dict(bench="yolov8_loss", images=B, anchors=8400, classes=C, gt_per_image=30,
               reg_max=16, threads=threads, reps=reps,
               torch_ms_median=med["torch"], dropin_ms_median=med["dropin"],
               detloss_ms_median=med["detloss"],
               torch_ms_min=1e3 * min(wall["torch"]), dropin_ms_min=1e3 * min(wall["dropin"]),
               detloss_ms_min=1e3 * min(wall["detloss"]),
               ratio_median=med["torch"] / med["detloss"],
               ratio_dropin_median=med["torch"] / med["dropin"],
               torch_cpu_ms_median=1e3 * float(np.median(cpu["torch"])),
               detloss_cpu_ms_median=1e3 * float(np.median(cpu["detloss"])),
               loss_torch=vals["torch"], loss_detloss=vals["detloss"],
               loss_rel_diff=abs(vals["detloss"] - vals["torch"]) / abs(vals["torch"]),
               num_fg=int(ours.last_result.num_fg), loadavg=os.getloadavg())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
