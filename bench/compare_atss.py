#!/usr/bin/python3
"""ATSS on a RetinaNet-style 800 x 1333 image (P3-P7, 30 gts): detloss_atss_assign (through
ctypes, 2 threads) against a torch port of mmdetection's ATSSAssigner written the way it is
written (dense A x G IoU and distance matrices, per-level topk; float32, CPU, 2 threads),
timed in the same process, interleaved, medians of N runs.

  /usr/bin/python3 bench/compare_atss.py [path/to/libdetloss.so] [runs]

Workloads: 9 anchors per location (RetinaNet anchors: octave base 4, 3 scales, ratios
0.5/1/2: 200,700 anchors) and ATSS's own 1 anchor per location (octave base 8: 22,300).
The assignments are checked equal (the scene has no distance tie at a top-k boundary on the
1-anchor grid; with 9 anchors per location the 9 anchors of a location share a centre, so
torch.topk's set can differ from detloss's lowest-index rule: the count of differing
anchors is reported, not asserted)."""
import ctypes
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

INF = 100000000.0


class AtssOptions(ctypes.Structure):
    _fields_ = [("semantics", ctypes.c_int), ("topk", ctypes.c_int64),
                ("anchors_per_location", ctypes.c_int64), ("ignore_iof_thr", ctypes.c_float),
                ("num_threads", ctypes.c_int)]


def anchors_for(img_h, img_w, octave_base, scales_per_octave, ratios):
    boxes, counts = [], []
    for st in [8, 16, 32, 64, 128]:
        fh, fw = math.ceil(img_h / st), math.ceil(img_w / st)
        base = []
        for r in ratios:
            for i in range(scales_per_octave):
                size = st * octave_base * 2 ** (i / scales_per_octave)
                w, h = size / math.sqrt(r), size * math.sqrt(r)
                base.append([-w / 2, -h / 2, w / 2, h / 2])
        base = np.array(base)
        ys, xs = np.meshgrid(np.arange(fh) * st, np.arange(fw) * st, indexing="ij")
        shifts = np.stack([xs.ravel(), ys.ravel(), xs.ravel(), ys.ravel()], 1)
        a = (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)
        boxes.append(a)
        counts.append(a.shape[0])
    return np.concatenate(boxes).astype(np.float32), counts


def torch_atss(priors, counts, gt, topk=9):
    """mmdet ATSSAssigner.assign as written (float32)."""
    A, G = priors.shape[0], gt.shape[0]
    area1 = (priors[:, 2] - priors[:, 0]) * (priors[:, 3] - priors[:, 1])
    area2 = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    lt = torch.max(priors[:, None, :2], gt[None, :, :2])
    rb = torch.min(priors[:, None, 2:], gt[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    ov = wh[..., 0] * wh[..., 1]
    overlaps = ov / torch.clamp(area1[:, None] + area2[None] - ov, min=1e-6)
    gcx, gcy = (gt[:, 0] + gt[:, 2]) / 2.0, (gt[:, 1] + gt[:, 3]) / 2.0
    gpts = torch.stack((gcx, gcy), 1)
    bcx, bcy = (priors[:, 0] + priors[:, 2]) / 2.0, (priors[:, 1] + priors[:, 3]) / 2.0
    bpts = torch.stack((bcx, bcy), 1)
    distances = (bpts[:, None, :] - gpts[None, :, :]).pow(2).sum(-1).sqrt()
    cand, start = [], 0
    for n in counts:
        d = distances[start:start + n, :]
        k = min(topk, n)
        _, idx = d.topk(k, dim=0, largest=False)
        cand.append(idx + start)
        start += n
    cand = torch.cat(cand, 0)
    cov = overlaps[cand, torch.arange(G)]
    thr = cov.mean(0) + cov.std(0)
    is_pos = cov >= thr[None, :]
    for g in range(G):
        cand[:, g] += g * A
    ex, ey = bcx.view(1, -1).expand(G, A).contiguous().view(-1), bcy.view(1, -1).expand(G, A).contiguous().view(-1)
    cidx = cand.view(-1)
    l_ = ex[cidx].view(-1, G) - gt[:, 0]
    t_ = ey[cidx].view(-1, G) - gt[:, 1]
    r_ = gt[:, 2] - ex[cidx].view(-1, G)
    b_ = gt[:, 3] - ey[cidx].view(-1, G)
    is_pos &= torch.stack([l_, t_, r_, b_], 1).min(1)[0] > 0.01
    ovi = torch.full_like(overlaps, -INF).t().contiguous().view(-1)
    index = cidx.view(-1)[is_pos.view(-1)]
    ovi[index] = overlaps.t().contiguous().view(-1)[index]
    ovi = ovi.view(G, -1).t()
    mx, arg = ovi.max(1)
    return torch.where(mx != -INF, arg, torch.full_like(arg, -1))


def main():
    lib_path = sys.argv[1] if len(sys.argv) > 1 else "_build/rel/libdetloss.so"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    lib = ctypes.CDLL(os.path.abspath(lib_path))
    f = lib.detloss_atss_assign
    f.restype = ctypes.c_int
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    cx, cy = rng.uniform(0, 1333, 30), rng.uniform(0, 800, 30)
    w, h = rng.uniform(16, 500, 30), rng.uniform(16, 400, 30)
    gt = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)
    print(f"torch {torch.__version__}, 2 threads; load (1-min loadavg) at start: "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    rows = []
    for name, (ob, spo, ratios) in [("9 anchors/location (200,700)", (4, 3, [0.5, 1.0, 2.0])),
                                    ("1 anchor/location (22,300)", (8, 1, [1.0]))]:
        anchors, counts = anchors_for(800, 1333, ob, spo, ratios)
        A = anchors.shape[0]
        lc = (ctypes.c_size_t * len(counts))(*counts)
        out = np.zeros(A, dtype=np.int64)
        iou = np.zeros(A, dtype=np.float32)
        opt = AtssOptions(0, 9, 1, -1.0, 2)
        pa, pg = anchors.ctypes.data_as(ctypes.c_void_p), gt.ctypes.data_as(ctypes.c_void_p)
        ta, tg = torch.from_numpy(anchors), torch.from_numpy(gt)

        def run_c():
            st = f(pa, ctypes.c_size_t(A), lc, ctypes.c_size_t(len(counts)), pg,
                   ctypes.c_size_t(30), None, ctypes.c_size_t(0),
                   out.ctypes.data_as(ctypes.c_void_p), iou.ctypes.data_as(ctypes.c_void_p),
                   ctypes.byref(opt), None)
            assert st == 0, st

        tc, tt, cc, ct = [], [], [], []
        ref = None
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            run_c()
            tc.append(time.perf_counter() - t0)
            cc.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            ref = torch_atss(ta, counts, tg)
            tt.append(time.perf_counter() - t0)
            ct.append(time.process_time() - c0)
        diff = int((torch.from_numpy(out) != ref).sum())
        mc, mt = statistics.median(tc) * 1e3, statistics.median(tt) * 1e3
        pc, pt = statistics.median(cc) * 1e3, statistics.median(ct) * 1e3
        rows.append((name, A, mt, mc, mt / mc, pt, pc, pt / pc, diff, int((out >= 0).sum())))
    print("| workload | anchors | torch ref wall (ms) | detloss wall (ms) | wall ratio | "
          "torch CPU (ms) | detloss CPU (ms) | CPU ratio | anchors differing | positives |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.2f} | {r[4]:.0f}x | {r[5]:.1f} | "
              f"{r[6]:.2f} | {r[7]:.0f}x | {r[8]} | {r[9]} |")
    print(f"load at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
