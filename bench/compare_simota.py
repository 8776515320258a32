#!/usr/bin/python3
"""SimOTA speed: detloss (detloss_assign_simota_batch, 2 threads) against a torch
port of YOLOX's get_assignments written the way YOLOX writes it (dense G x A
geometry, pred.repeat(G) / one-hot repeat(M) class cost, torch.topk), float32 on
the CPU, torch.set_num_threads(2), in the same run.

Batch: 8 images x 8,400 priors (640 x 640, strides 8/16/32) x 80 classes x 50 gts.
Prints the median of several repeats of each and the ratio.

  DETLOSS_LIBRARY=_build/rel/libdetloss.so /usr/bin/python3 bench/compare_simota.py
"""
import ctypes
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from detloss import _lib  # noqa: E402
from detloss.assign_simota import _options  # noqa: E402


def scene(rng, G, C=80, img=640, strides=(8, 16, 32)):
    pts, lc = [], []
    for s in strides:
        n = img // s
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        pts.append(np.stack([(xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s], 1))
        lc.append(n * n)
    points = np.concatenate(pts).astype(np.float32)
    st = np.repeat(np.array(strides, np.float32), lc)
    A = points.shape[0]
    wh = st[:, None] * np.exp(rng.uniform(0, 2.5, (A, 2)))
    pc = points + rng.normal(0, 0.3, (A, 2)) * st[:, None]
    pred = np.concatenate([pc - wh / 2, pc + wh / 2], 1).astype(np.float32)
    cls = rng.normal(-4, 2, (A, C))
    obj = rng.normal(-3, 2, (A, 1))
    scores = np.sqrt(1 / (1 + np.exp(-cls)) / (1 + np.exp(-obj))).astype(np.float32)
    c = rng.uniform(20, img - 20, (G, 2))
    w = np.exp(rng.uniform(np.log(8), np.log(300), (G, 2)))
    gt = np.concatenate([c - w / 2, c + w / 2], 1).astype(np.float32)
    labels = rng.integers(0, C, G)
    return points, lc, strides, st, scores, pred, gt, labels


def yolox_torch(points, st, scores, pred, gt, labels, C):
    """YOLOX get_assignments (0.3.0, radius 2.5, penalty 1e5) in float32 torch."""
    G = gt.shape[0]
    xc, yc, s = points[:, 0][None], points[:, 1][None], st[None]
    gcx, gcy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    b_d = torch.stack([xc - (gcx - 0.5 * gw)[:, None], yc - (gcy - 0.5 * gh)[:, None],
                       (gcx + 0.5 * gw)[:, None] - xc, (gcy + 0.5 * gh)[:, None] - yc], 2)
    in_boxes = b_d.min(dim=-1).values > 0.0
    c_d = torch.stack([xc - (gcx[:, None] - 2.5 * s), yc - (gcy[:, None] - 2.5 * s),
                       (gcx[:, None] + 2.5 * s) - xc, (gcy[:, None] + 2.5 * s) - yc], 2)
    in_centers = c_d.min(dim=-1).values > 0.0
    fg = (in_boxes.sum(0) > 0) | (in_centers.sum(0) > 0)
    both = in_boxes[:, fg] & in_centers[:, fg]
    p = pred[fg]
    M = p.shape[0]
    tl = torch.max(gt[:, None, :2], p[:, :2])
    br = torch.min(gt[:, None, 2:], p[:, 2:])
    en = (tl < br).type(tl.type()).prod(dim=2)
    ai = torch.prod(br - tl, 2) * en
    ag = torch.prod(gt[:, 2:] - gt[:, :2], 1)
    ap = torch.prod(p[:, 2:] - p[:, :2], 1)
    ious = ai / (ag[:, None] + ap - ai)
    iou_loss = -torch.log(ious + 1e-8)
    gt_cls = F.one_hot(labels, C).float().unsqueeze(1).repeat(1, M, 1)
    cls_preds = scores[fg].unsqueeze(0).repeat(G, 1, 1)
    cls_loss = F.binary_cross_entropy(cls_preds, gt_cls, reduction="none").sum(-1)
    cost = cls_loss + 3.0 * iou_loss + 100000.0 * (~both)
    matching = torch.zeros_like(cost, dtype=torch.uint8)
    k_cand = min(10, ious.size(1))
    topk_ious, _ = torch.topk(ious, k_cand, dim=1)
    dks = torch.clamp(topk_ious.sum(1).int(), min=1).tolist()
    for g in range(G):
        _, pos = torch.topk(cost[g], k=dks[g], largest=False)
        matching[g][pos] = 1
    amg = matching.sum(0)
    if (amg > 1).sum() > 0:
        _, argmin = torch.min(cost[:, amg > 1], dim=0)
        matching[:, amg > 1] *= 0
        matching[argmin, amg > 1] = 1
    fg_in = matching.sum(0) > 0
    out = torch.full((points.shape[0],), -1, dtype=torch.long)
    fidx = fg.nonzero().squeeze(1)
    out[fidx[fg_in]] = matching[:, fg_in].argmax(0)
    return out


Image = _lib.SimotaImage


def main():
    B, G, C = 8, int(os.environ.get("SIMOTA_G", 50)), 80
    reps = int(os.environ.get("SIMOTA_REPS", 5))
    rng = np.random.default_rng(0)
    scenes = [scene(rng, G, C) for _ in range(B)]
    torch.set_num_threads(2)
    tt = [[torch.from_numpy(np.ascontiguousarray(x)) for x in (s[0], s[3], s[4], s[5], s[6])]
          + [torch.from_numpy(s[7])] for s in scenes]
    imgs = (Image * B)()
    keep = []
    for i, s in enumerate(scenes):
        lc = np.array(s[1], np.uint64)
        ag = np.empty(s[0].shape[0], np.int64)
        lab = s[7].astype(np.int64)
        keep += [lc, ag, lab]
        imgs[i] = Image(s[0].shape[0], s[0].ctypes.data, lc.ctypes.data, s[4].ctypes.data,
                        s[5].ctypes.data, G, s[6].ctypes.data, lab.ctypes.data, ag.ctypes.data,
                        None, None)
    strides = np.array(scenes[0][2], np.float32)
    f = _lib.lib.detloss_assign_simota_batch
    f.restype = ctypes.c_int
    f.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                  ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
    opt = _options("yolox_0.3", None, 10, 3.0, 1.0, 2)
    t_ref, t_dl = [], []
    for r in range(reps):
        t0 = time.perf_counter()
        with torch.no_grad():
            ref = [yolox_torch(*x[:5], x[5], C) for x in tt]
        t_ref.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        st = f(ctypes.cast(imgs, ctypes.c_void_p), B, strides.ctypes.data, 3, C,
               ctypes.addressof(opt), None)
        t_dl.append(time.perf_counter() - t0)
        assert st == 0
    same = sum(int((keep[3 * i + 1] == ref[i].numpy()).all()) for i in range(B))
    mr, md = statistics.median(t_ref), statistics.median(t_dl)
    print("SimOTA yolox_0.3, %d x %d priors x %d classes x %d gt, 2 threads, %d repeats"
          % (B, scenes[0][0].shape[0], C, G, reps))
    print("torch reference (float32, YOLOX style): median %.1f ms" % (mr * 1e3))
    print("detloss batch:                          median %.2f ms" % (md * 1e3))
    print("ratio %.0fx; images with identical assignment (float32 ref vs double): %d/%d"
          % (mr / md, same, B))
    print("load average:", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
