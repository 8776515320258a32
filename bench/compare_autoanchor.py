#!/usr/bin/python3
"""detloss fit (evolve, kmeans) against YOLOv5 AutoAnchor semantics, timed in the same run.

    /usr/bin/python3 bench/compare_autoanchor.py BUILD_DIR DATASET.json [DATASET.json ...]
        [--threads 2] [--seeds 2] [--dl-seeds 5] [--reps 3]

BUILD_DIR holds libdetloss.so and the detloss command. Per data set (the common format
of data/: xyxy pixels per image):
  wh = the (w, h) of every non-crowd box after YOLOv5's resize (long side 640, float32);
  reference = kmean_anchors(n=9, img_size=640, thr=4.0, gen=1000) written here from its
    published semantics (ultralytics/yolov5 utils/autoanchor.py, v7.0): labels with a side
    >= 2 px kept, scipy.cluster.vq.kmeans(wh / std, 9, iter=30) * std (random fallback when
    scipy returns fewer than 9), 1000 generations of v = ((U < 0.9) * random() * N(0,1) *
    0.1 + 1).clip(0.3, 3.0), k' = (k v).clip(min=2), kept when the torch float32 fitness
    mean(best * (best > 1/4)) rises; numpy / Python random seeded per run, torch threads =
    --threads;
  detloss = detloss.fit_anchors(wh, 9, "evolve", seed=s, num_threads=--threads) (the same
    algorithm through the library, in process: the same wh, no file reading), and the
    `detloss fit` command end to end (reading the file, both evaluations) once;
  detloss_evolve_10k = the same with 10,000 generations (still far cheaper than the
    reference's 1,000): the evolution is a seed-dependent local search, and the extra
    generations are what the speed buys;
  kmeans = detloss.fit_anchors(wh, 9, "kmeans") (darknet distance, 10 k-means++ restarts).
The reference runs --seeds times (numpy and Python random seeded 0, 1, ...), detloss
--dl-seeds times (seeds 0, 1, ...), each detloss seed --reps times for the timing.
Every anchor set is scored by the same float64 numpy code on the same wh: fitness (on the
labels kept by the >= 2 px rule, what evolve maximises), BPR and mean best IoU of
corner-aligned boxes (on all labels); "before" is YOLOv5's default anchors. Times are
medians (and minima) over seeds x reps; the machine is shared, so the load average is
printed. One JSON object per data set, then one for kmeans k = 9 on the largest.
"""
import json
import os
import random
import subprocess
import sys
import time

import numpy as np
import scipy
import torch
from scipy.cluster.vq import kmeans

YOLOV5_ANCHORS = np.array([[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119],
                           [116, 90], [156, 198], [373, 326]], np.float64)


def load_wh(path, img_size=640):
    d = json.load(open(path))
    out = []
    for im in d["images"]:
        H, W = float(im["height"]), float(im["width"])
        s = np.float32(img_size) / np.float32(max(H, W))
        b = np.asarray(im["boxes"], np.float64).reshape(-1, 4)
        crowd = np.asarray(im.get("iscrowd", [0] * len(b)), bool)
        b = b[~crowd]
        b[:, 0::2] = b[:, 0::2].clip(0, W)
        b[:, 1::2] = b[:, 1::2].clip(0, H)
        wh = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1).astype(np.float32) * s
        out.append(wh[(wh > 0).all(1)])
    return np.concatenate(out).astype(np.float32), d.get("name", path)


def scores(wh0, k, thr=4.0):
    """fitness on the >= 2 px labels; bpr and mean best corner IoU on all (float64)."""
    def metric(wh):
        r = wh[:, None] / k[None]
        x = np.minimum(r, 1 / r).min(2)
        return x, x.max(1)
    wh0 = wh0.astype(np.float64)
    k = np.asarray(k, np.float64)
    wh = wh0[(wh0 >= 2.0).any(1)]
    _, best = metric(wh)
    _, best0 = metric(wh0)
    inter = np.minimum(wh0[:, None, 0], k[None, :, 0]) * np.minimum(wh0[:, None, 1], k[None, :, 1])
    iou = inter / (wh0[:, None, 0] * wh0[:, None, 1] + k[None, :, 0] * k[None, :, 1] - inter)
    return {"fitness": float((best * (best > 1 / thr)).mean()),
            "bpr": float((best0 > 1 / thr).mean()), "mean_iou": float(iou.max(1).mean())}


def yolov5_kmean_anchors(wh0, n=9, img_size=640, thr=4.0, gen=1000):
    """kmean_anchors of YOLOv5 (v7.0 semantics), from the published description."""
    thr = 1 / thr
    wh_np = wh0[(wh0 >= 2.0).any(1)].astype(np.float32)

    def metric(k, wh):
        r = wh[:, None] / k[None]
        x = torch.min(r, 1 / r).min(2)[0]
        return x, x.max(1)[0]

    wh = torch.tensor(wh_np, dtype=torch.float32)

    def anchor_fitness(k):
        _, best = metric(torch.tensor(k, dtype=torch.float32), wh)
        return (best * (best > thr).float()).mean()

    s = wh_np.std(0)
    k = kmeans(wh_np / s, n, iter=30)[0] * s
    if len(k) != n:  # scipy dropped an empty cluster: YOLOv5's random fallback
        k = np.sort(np.random.rand(n * 2)).reshape(n, 2) * img_size
    k = k[np.argsort(k.prod(1))]
    npr = np.random
    f, sh, mp, sg = anchor_fitness(k), k.shape, 0.9, 0.1
    for _ in range(gen):
        v = np.ones(sh)
        while (v == 1).all():
            v = ((npr.random(sh) < mp) * random.random() * npr.randn(*sh) * sg + 1).clip(0.3, 3.0)
        kg = (k.copy() * v).clip(min=2.0)
        fg = anchor_fitness(kg)
        if fg > f:
            f, k = fg, kg.copy()
    return k[np.argsort(k.prod(1))].astype(np.float32)


def timed(fn):
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def stats(ts):
    return {"median": float(np.median(ts)), "min": float(np.min(ts))}


def main():
    args = sys.argv[1:]
    opt = {"--threads": 2, "--seeds": 2, "--dl-seeds": 5, "--reps": 3}
    for key in list(opt):
        if key in args:
            i = args.index(key)
            opt[key] = int(args[i + 1])
            del args[i:i + 2]
    build, paths = args[0], args[1:]
    os.environ.setdefault("DETLOSS_LIBRARY", os.path.join(build, "libdetloss.so"))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import detloss
    th = opt["--threads"]
    torch.set_num_threads(th)
    print(json.dumps({"machine": {"nproc": os.cpu_count(), "loadavg": os.getloadavg(),
                                  "torch": torch.__version__, "scipy": scipy.__version__,
                                  "numpy": np.__version__, "threads": th}}))
    largest = None
    for path in paths:
        wh, name = load_wh(path)
        if largest is None or len(wh) > len(largest[0]):
            largest = (wh, name)
        t_ref, t_dl, t_dl10, res_ref, res_dl, res_dl10 = [], [], [], [], [], []
        for seed in range(opt["--seeds"]):
            np.random.seed(seed)
            random.seed(seed)
            t, k = timed(lambda: yolov5_kmean_anchors(wh))
            t_ref.append(t)
            res_ref.append(scores(wh, k))
        for seed in range(opt["--dl-seeds"]):
            for _ in range(opt["--reps"]):
                t, (kd, _) = timed(lambda: detloss.fit_anchors(wh, 9, "evolve", seed=seed,
                                                               restarts=30, num_threads=th))
                t_dl.append(t)
            res_dl.append(scores(wh, kd))
            t, (kd, _) = timed(lambda: detloss.fit_anchors(wh, 9, "evolve", seed=seed,
                                                           restarts=30, generations=10000,
                                                           num_threads=th))
            t_dl10.append(t)
            res_dl10.append(scores(wh, kd))
        t_km = []
        for _ in range(opt["--reps"]):
            t, (kk, _) = timed(lambda: detloss.fit_anchors(wh, 9, "kmeans", restarts=10,
                                                           num_threads=th))
            t_km.append(t)
        cfg = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs",
                           "yolov5_autoanchor.json")
        t0 = time.perf_counter()
        p = subprocess.run([os.path.join(build, "detloss"), "fit", cfg, "--dataset", path,
                            "--method", "evolve", "--threads", str(th), "--json"],
                           capture_output=True, text=True, check=True)
        t_cli = time.perf_counter() - t0
        cli = json.loads(p.stdout)

        def agg(rs):
            return {key: {"mean": float(np.mean([r[key] for r in rs])),
                          "min": float(np.min([r[key] for r in rs])),
                          "max": float(np.max([r[key] for r in rs]))} for key in rs[0]}
        ratio = float(np.median(t_ref) / np.median(t_dl))
        print(json.dumps({
            "dataset": name, "file": os.path.basename(path), "labels": int(len(wh)),
            "labels_ge_2px": int((wh >= 2).any(1).sum()),
            "before_yolov5_default": scores(wh, YOLOV5_ANCHORS),
            "yolov5_reference": {"time_s": stats(t_ref), "scores": agg(res_ref)},
            "detloss_evolve": {"time_s": stats(t_dl), "scores": agg(res_dl)},
            "detloss_evolve_10k": {"time_s": stats(t_dl10), "scores": agg(res_dl10)},
            "detloss_kmeans": {"time_s": stats(t_km), "scores": scores(wh, kk)},
            "detloss_fit_cli_evolve": {"wall_s": t_cli,
                                       "shape_metrics_after": cli["shape_metrics_after"]},
            "speedup_evolve_median": ratio,
            "speedup_evolve_min": float(np.min(t_ref) / np.min(t_dl)),
            "speedup_evolve_10k_median": float(np.median(t_ref) / np.median(t_dl10)),
            "loadavg_after": os.getloadavg()}))
        sys.stdout.flush()
    wh, name = largest
    ts = [timed(lambda: detloss.fit_anchors(wh, 9, "kmeans", restarts=10, num_threads=th))[0]
          for _ in range(max(opt["--reps"], 5))]
    print(json.dumps({"kmeans_k9_largest": name, "labels": int(len(wh)), "time_s": stats(ts)}))


if __name__ == "__main__":
    main()
