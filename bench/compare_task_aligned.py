#!/usr/bin/python3
"""Task-aligned assigner: detloss against a torch port of ultralytics' TaskAlignedAssigner
written the way ultralytics writes it (dense B x M x A tensors, gts padded to the densest
image, torch.topk; tests/fixtures/task_aligned/gen_task_aligned.py with stable=False,
float32 as ultralytics runs it).

    DETLOSS_LIBRARY=_build/py/libdetloss.so /usr/bin/python3 bench/compare_task_aligned.py yolov8 [--threads 2] [--reps 9]
    /usr/bin/time -v /usr/bin/python3 bench/compare_task_aligned.py dense --impl detloss [--images 8]
    /usr/bin/time -v /usr/bin/python3 bench/compare_task_aligned.py dense --impl torch --images 1 --cap-gb 4

yolov8: 16 images x 8,400 anchors (640 x 640 at strides 8/16/32) x 80 classes x 30 gts
(log-uniform sides 16..400 px), ultralytics semantics (topk 10, alpha 0.5, beta 6).
Times both (interleaved, median and minimum of --reps, torch.set_num_threads and
num_threads = --threads; wall time and the process's CPU time), checks that the foreground masks and gt indices agree, prints
one JSON line.
dense: 8 images x 8,400 anchors x 60 classes, 5,000 / 4,500 / ... gts per image (xView-
like: log-uniform sides 4..40 px). Runs one implementation once after a warm-up;
run it under /usr/bin/time -v for the peak RSS. The torch port is run under an address-
space cap (--cap-gb, RLIMIT_AS) so that it fails with MemoryError instead of
swapping; its dense tensors need about B x M x A x 4 floats for the in-gt deltas alone.
"""
import importlib.util
import json
import os
import resource
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
_spec = importlib.util.spec_from_file_location(
    "gen_task_aligned", os.path.join(REPO, "tests", "fixtures", "task_aligned",
                                     "gen_task_aligned.py"))
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def arg(name, default, cast=int):
    return cast(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def cpu_s():
    """CPU seconds of this process (all threads): a load-robust cost on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_anchors(h=640, w=640, strides=(8, 16, 32)):
    pts = []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
        pts.append(np.stack([(xs + 0.5) * s, (ys + 0.5) * s], -1).reshape(-1, 2))
    return np.concatenate(pts).astype(np.float32)


def scene(bs, C, gts_per_image, lo, hi, seed):
    rng = np.random.default_rng(seed)
    anc = make_anchors()
    A = len(anc)
    scores = (1 / (1 + np.exp(-rng.normal(-3, 2, (bs, A, C))))).astype(np.float32)
    wh = np.exp(rng.uniform(np.log(8), np.log(200), (bs, A, 2)))
    c = anc[None] + rng.normal(0, 4, (bs, A, 2))
    pred = np.concatenate([c - wh / 2, c + wh / 2], -1).astype(np.float32)
    M = max(gts_per_image)
    gtb = np.zeros((bs, M, 4), np.float32)
    gtl = np.zeros((bs, M, 1), np.float32)
    mg = np.zeros((bs, M, 1), np.float32)
    for i, g in enumerate(gts_per_image):
        w = np.exp(rng.uniform(np.log(lo), np.log(hi), g))
        h = np.exp(rng.uniform(np.log(lo), np.log(hi), g))
        x1 = rng.uniform(0, 640 - w)
        y1 = rng.uniform(0, 640 - h)
        gtb[i, :g] = np.stack([x1, y1, x1 + w, y1 + h], -1)
        gtl[i, :g, 0] = rng.integers(0, C, g)
        mg[i, :g] = 1
    return anc, scores, pred, gtl, gtb, mg


def run_detloss(anc, scores, pred, gtl, gtb, mg, threads):
    import detloss
    bs = scores.shape[0]
    keep = [mg[i, :, 0] > 0 for i in range(bs)]
    gts = [np.ascontiguousarray(gtb[i, keep[i]]) for i in range(bs)]
    labs = [gtl[i, keep[i], 0].astype(np.int64) for i in range(bs)]
    return detloss.task_aligned_assign_batch(anc, scores, pred, gts, labs, topk=10, alpha=0.5,
                                             beta=6.0, num_threads=threads)


def run_torch(anc, scores, pred, gtl, gtb, mg, C):
    t = torch.from_numpy
    return ref.ultralytics_reference(t(scores), t(pred), t(anc), t(gtl), t(gtb), t(mg), 10, C,
                                     0.5, 6.0, stable=False)


def yolov8():
    threads, reps = arg("--threads", 2), arg("--reps", 9)
    torch.set_num_threads(threads)
    C, bs = 80, 16
    data = scene(bs, C, [30] * bs, 16, 400, 1)
    tt, td, ct, cd = [], [], [], []
    run_detloss(*data, threads), run_torch(*data, C)  # warm-up
    for _ in range(reps):
        c0, t0 = cpu_s(), time.perf_counter()
        r = run_detloss(*data, threads)
        c1, t1 = cpu_s(), time.perf_counter()
        e = run_torch(*data, C)
        c2, t2 = cpu_s(), time.perf_counter()
        td.append(t1 - t0)
        tt.append(t2 - t1)
        cd.append(c1 - c0)
        ct.append(c2 - c1)
    fg_t, tgi_t = e[3].numpy(), e[4].numpy()
    fg_d = r.assigned_gt >= 0
    same_fg = float((fg_d == fg_t).mean())
    same_gt = bool(np.array_equal(np.where(fg_d, r.assigned_gt, 0), np.where(fg_t, tgi_t, 0)))
    out = dict(bench="task_aligned_yolov8", images=bs, anchors=int(len(data[0])), classes=C,
               gt_per_image=30, threads=threads, reps=reps,
               detloss_ms_median=1e3 * float(np.median(td)), detloss_ms_min=1e3 * min(td),
               torch_ms_median=1e3 * float(np.median(tt)), torch_ms_min=1e3 * min(tt),
               ratio_median=float(np.median(tt) / np.median(td)), ratio_min=min(tt) / min(td),
               detloss_cpu_ms_median=1e3 * float(np.median(cd)),
               torch_cpu_ms_median=1e3 * float(np.median(ct)),
               cpu_ratio_median=float(np.median(ct) / np.median(cd)),
               positives=int(fg_d.sum()), fg_agreement=same_fg, gt_index_identical=same_gt,
               loadavg=os.getloadavg())
    print(json.dumps(out))


def dense():
    impl, bs = arg("--impl", "detloss", str), arg("--images", 8)
    threads = arg("--threads", 2)
    torch.set_num_threads(threads)
    C = 60
    gts = [5000 - 500 * i for i in range(bs)]
    data = scene(bs, C, gts, 4, 40, 2)
    if impl == "torch":
        cap = arg("--cap-gb", 4.0, float)
        resource.setrlimit(resource.RLIMIT_AS, (int(cap * 2 ** 30), int(cap * 2 ** 30)))
    t0 = time.perf_counter()
    try:
        if impl == "detloss":
            r = run_detloss(*data, threads)
            pos = int((r.assigned_gt >= 0).sum())
        else:
            e = run_torch(*data, C)
            pos = int(e[3].sum())
        status = "ok"
    except (MemoryError, RuntimeError) as ex:
        pos, status = -1, "failed: %s" % str(ex).splitlines()[0][:120]
    t1 = time.perf_counter()
    print(json.dumps(dict(bench="task_aligned_dense", impl=impl, images=bs,
                          anchors=int(len(data[0])), classes=C, gts=gts, threads=threads,
                          seconds=t1 - t0, positives=pos, status=status,
                          dense_bmax4_gib=bs * max(gts) * len(data[0]) * 16 / 2 ** 30,
                          loadavg=os.getloadavg())))


if __name__ == "__main__":
    {"yolov8": yolov8, "dense": dense}[sys.argv[1]]()
