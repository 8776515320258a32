#!/usr/bin/env python3
"""In-process comparison: the same torch tensors through torchvision and through
detloss's Python binding (detloss.torch / detloss.ops), value + backward.

usage: /usr/bin/python3 bench/compare_torch_binding.py [--detloss build/detloss]
           [--library build/libdetloss.so] [--threads 2] [--repeats 11] [--warmup 2]
           [--only W,W] [--small] [--json-out FILE] [--markdown]

For each standard workload (bench/workloads.c; inputs from the numpy mirror of its
generator in bench/compare_torchvision.py) it reports, in milliseconds (medians):
  c_cli      `detloss bench --json`: the C library alone, in its own process;
  c_ctypes   the bare C call from this process through ctypes, arguments prepared
             and output buffers reused (what the binding cannot go below);
  +alloc     the same with fresh gradient tensors per call (torch.empty: the
             allocation and first touch of the pages, which every autograd
             backward pays, torchvision's included);
  python     the binding's public call on torch tensors (argument checks, output
             tensors, autograd Function; for fwd_bwd also loss.backward());
  torchvision  the same computation in torchvision (autograd);
and the binding overhead python - (+alloc if measured, else c_ctypes). Workloads:
  focal_16m        sigmoid_focal_loss over 201,600 x 80 logits, reduction "sum":
                   fwd and fwd_bwd
  match_fpn_g20/100  268,569 FPN anchors vs 20/100 gt: torchvision
                   Matcher(box_iou(gt, anchors)) vs detloss.match (plain) and
                   detloss.match_grid (grid config)
  rpn_fpn_b2       RPN loss of 2 images x 268,569 FPN anchors, 20 gt each, matching and
                   sampling included, value + backward: torchvision
                   assign_targets_to_anchors + encode + compute_loss vs
                   detloss.torch.rpn_loss (anchor_grid: grid matching, as the C bench)
  retina_b2        RetinaNet loss of 2 images x 201,600 anchors x 80 classes, 20 gt
                   each, matching included, value + backward: torchvision
                   RetinaNet.compute_loss vs detloss.torch.retina_loss (anchor_grid)
  (head inputs: compare_torchvision.head_inputs; the C figure is the "total" stage)
Both sides use the same number of threads (torch.set_num_threads, num_threads).
"""
import argparse
import ctypes
import json
import math
import os
import platform
import subprocess
import sys
import types

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

from compare_torchvision import (HEAD_IMAGES, SEED_GT, SEED_LOGITS, SEED_TARGETS,  # noqa: E402
                                 bench_gt_boxes, bench_normal, bench_u01, fpn_anchors,
                                 head_inputs, timed)


def focal_inputs(small):
    anchors, classes = (2000 if small else 201600), 80
    n = anchors * classes
    x = torch.from_numpy(bench_normal(SEED_LOGITS, np.arange(n, dtype=np.uint64)).astype(np.float32))
    y = np.zeros(n, dtype=np.float32)
    a = np.arange(anchors, dtype=np.uint64)
    pos = bench_u01(SEED_TARGETS, 2 * a) < 0.01
    cls = (bench_u01(SEED_TARGETS, 2 * a + 1) * classes).astype(np.int64)
    y[(a[pos].astype(np.int64) * classes + cls[pos])] = 1.0
    return x, torch.from_numpy(y)


def w_focal(args, dl, _lib):
    from torchvision.ops import sigmoid_focal_loss as tv_focal
    x, y = focal_inputs(args.small)
    n = x.numel()
    out = {}
    loss = torch.empty(())
    grad = torch.empty_like(x)

    def c_fwd():
        _lib.call("detloss_sigmoid_focal_loss", x.data_ptr(), y.data_ptr(), n, 0.25, 2.0, 1,
                  loss.data_ptr(), None, args.threads)

    def c_fwd_bwd():
        _lib.call("detloss_sigmoid_focal_loss", x.data_ptr(), y.data_ptr(), n, 0.25, 2.0, 1,
                  loss.data_ptr(), grad.data_ptr(), args.threads)

    def py_fwd():
        return dl.sigmoid_focal_loss(x, y, 0.25, 2.0, "sum", num_threads=args.threads)

    def py_fwd_bwd():
        xr = x.detach().requires_grad_(True)
        l = dl.sigmoid_focal_loss(xr, y, 0.25, 2.0, "sum", num_threads=args.threads)
        l.backward()
        return l, xr.grad

    def tv_fwd():
        return tv_focal(x, y, 0.25, 2.0, "sum")

    def tv_fwd_bwd():
        xr = x.detach().requires_grad_(True)
        l = tv_focal(xr, y, 0.25, 2.0, "sum")
        l.backward()
        return l, xr.grad

    def c_fwd_bwd_alloc():  # a fresh gradient tensor per call, as autograd needs
        g = torch.empty_like(x)
        _lib.call("detloss_sigmoid_focal_loss", x.data_ptr(), y.data_ptr(), n, 0.25, 2.0, 1,
                  loss.data_ptr(), g.data_ptr(), args.threads)

    r = args.repeats, args.warmup
    out["fwd"] = {"c_ctypes": timed(c_fwd, *r)[0], "python": timed(py_fwd, *r)[0],
                  "torchvision": timed(tv_fwd, *r)[0]}
    out["fwd_bwd"] = {"c_ctypes": timed(c_fwd_bwd, *r)[0],
                      "c_ctypes_alloc": timed(c_fwd_bwd_alloc, *r)[0]}
    s, (lp, gp) = timed(py_fwd_bwd, *r)
    out["fwd_bwd"]["python"] = s
    s, (lt, gt) = timed(tv_fwd_bwd, *r)
    out["fwd_bwd"]["torchvision"] = s
    out["_check"] = {"loss_sum": {"detloss": float(lp), "torchvision": float(lt)},
                     "max_abs_grad_diff": float((gp - gt).abs().max())}
    return out


def fpn_config(img_h, img_w):
    levels = []
    for l in range(5):
        div = 4 << l
        fh, fw = math.ceil(img_h / div), math.ceil(img_w / div)
        levels.append({"sizes": [32 << l], "aspect_ratios": [0.5, 1.0, 2.0],
                       "feature_size": [fh, fw], "stride": [img_h // fh, img_w // fw]})
    return {"convention": "torchvision", "offset": 0.0, "levels": levels}


def w_match(args, g, dlops, _lib):
    from torchvision.models.detection._utils import Matcher
    from torchvision.ops import box_iou
    img_h, img_w = (256, 320) if args.small else (800, 1344)
    anchors = fpn_anchors(img_h, img_w).contiguous()
    gt = bench_gt_boxes(SEED_GT + g, g, img_h, img_w)
    cfg = fpn_config(img_h, img_w)
    assert np.array_equal(dlops.anchors_generate(cfg), anchors.numpy())
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
    A = anchors.shape[0]
    m = np.empty(A, np.int64)
    v = np.empty(A, np.float32)
    mo = dlops._match_options(num_threads=args.threads)
    ap, gp = anchors.data_ptr(), gt.data_ptr()

    def c_plain():
        _lib.call("detloss_match", ap, A, gp, g, None, m.ctypes.data, v.ctypes.data,
                  ctypes.byref(mo))

    conf = dlops._Config(cfg)

    def c_grid():
        _lib.call("detloss_match_grid", ctypes.byref(conf.cfg), gp, g, None, m.ctypes.data,
                  v.ctypes.data, A, ctypes.byref(mo))

    r = args.repeats, args.warmup
    out = {"match_plain": {"c_ctypes": timed(c_plain, *r)[0]},
           "match": {"c_ctypes": timed(c_grid, *r)[0]}}
    s, mp = timed(lambda: dlops.match(anchors, gt, return_max_iou=True,
                                      num_threads=args.threads), *r)
    out["match_plain"]["python"] = s
    s, mg = timed(lambda: dlops.match_grid(cfg, gt, return_max_iou=True,
                                           num_threads=args.threads), *r)
    out["match"]["python"] = s
    s, mt = timed(lambda: matcher(box_iou(gt, anchors)), *r)
    out["match"]["torchvision"] = out["match_plain"]["torchvision"] = s
    out["_check"] = {"num_matched": {"detloss": int((mp[0] >= 0).sum()),
                                     "torchvision": int((mt >= 0).sum())},
                     "matches_equal": bool(np.array_equal(mp[0], mt.numpy()) and
                                           np.array_equal(mg[0], mp[0]))}
    return out


def head_setup(retina, small):
    """The standard head workload (compare_torchvision.head_inputs, the numpy mirror of
    bench/workloads.c's rpn_fpn_b2 / retina_b2) and its anchor grid for detloss."""
    import detloss.ops as dlops
    anchors, pred, deltas, targets = head_inputs(retina, small)
    img_h, img_w = (256, 320) if small else (800, 1344)
    if retina:
        sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3)))
                      for x in (32, 64, 128, 256, 512))
        first = 8
    else:
        sizes, first = ((32,), (64,), (128,), (256,), (512,)), 4
    feats = [(math.ceil(img_h / (first << l)), math.ceil(img_w / (first << l))) for l in range(5)]
    grid = dlops.torchvision_anchor_grid(sizes, ((0.5, 1.0, 2.0),) * 5, (img_h, img_w), feats)
    return [anchors] * HEAD_IMAGES, pred, deltas, targets, grid


def w_head(args, retina, dl, dlops, _lib):
    from torchvision.models.detection import _utils as du
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
    from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
    anchors, pred, deltas, targets, grid = head_setup(retina, args.small)
    N, A, C = pred.shape
    if retina:
        fake = types.SimpleNamespace(proposal_matcher=du.Matcher(0.5, 0.4, True),
                                     head=RetinaNetHead(1, 9, C))

        def tv_step():
            c = pred.detach().requires_grad_()
            b = deltas.detach().requires_grad_()
            l = RetinaNet.compute_loss(fake, targets, {"cls_logits": c, "bbox_regression": b},
                                       anchors)
            (l["classification"] + l["bbox_regression"]).backward()
            return (l["classification"], l["bbox_regression"]), c.grad, b.grad

        def py_step():
            c = pred.detach().requires_grad_()
            b = deltas.detach().requires_grad_()
            lc, lb = dl.retina_loss(c, b, anchors, targets, anchor_grid=grid,
                                    num_threads=args.threads)
            (lc + lb).backward()
            return (lc, lb), c.grad, b.grad
    else:
        rpn = RegionProposalNetwork(AnchorGenerator(((32,),), ((1.0,),)), RPNHead(1, 1), 0.7,
                                    0.3, 256, 0.5, dict(training=2000, testing=1000),
                                    dict(training=2000, testing=1000), 0.7)

        def tv_step():
            o = pred.reshape(-1, 1).detach().requires_grad_()
            d = deltas.reshape(-1, 4).detach().requires_grad_()
            labels, mgt = rpn.assign_targets_to_anchors(anchors, targets)
            lo, lb = rpn.compute_loss(o, d, labels, rpn.box_coder.encode(mgt, anchors))
            (lo + lb).backward()
            return (lo, lb), o.grad, d.grad

        def py_step():
            o = pred.reshape(-1, 1).detach().requires_grad_()
            d = deltas.reshape(-1, 4).detach().requires_grad_()
            lo, lb = dl.rpn_loss(o, d, anchors, targets, anchor_grid=grid, seed=0,
                                 num_threads=args.threads)
            (lo + lb).backward()
            return (lo, lb), o.grad, d.grad

    images = []
    for i in range(N):
        im = {"anchors": anchors[i], "gt": targets[i]["boxes"], "deltas": deltas[i]}
        if retina:
            im.update(labels=targets[i]["labels"], cls_logits=pred[i])
        else:
            im["objectness"] = pred[i].reshape(-1)
        images.append(im)
    batch = dlops._HeadBatch(images, "retina" if retina else "rpn", C if retina else None,
                             grad=True, anchor_grid=grid)
    if retina:
        opt = dlops.retina_options(num_threads=args.threads)
    else:
        opt = dlops.rpn_options(num_threads=args.threads)
    res = _lib.HeadResult()

    def c_step():
        if retina:
            _lib.call("detloss_retina_loss", ctypes.addressof(batch.c), N, C, ctypes.byref(res),
                      None, ctypes.byref(opt))
        else:
            _lib.call("detloss_rpn_loss", ctypes.addressof(batch.c), N, ctypes.byref(res), None,
                      ctypes.byref(opt))

    def c_step_alloc():  # fresh gradient tensors per call, as autograd needs
        gc = torch.empty(N, A, C)
        gb = torch.empty(N, A, 4)
        for i in range(N):
            if retina:
                batch.c[i].grad_cls_logits = gc[i].data_ptr()
            else:
                batch.c[i].grad_objectness = gc[i].data_ptr()
            batch.c[i].grad_deltas = gb[i].data_ptr()
        c_step()

    reps = max(3, args.repeats // 2), 1
    out = {"total": {"c_ctypes": timed(c_step, *reps)[0],
                     "c_ctypes_alloc": timed(c_step_alloc, *reps)[0]}}
    s, (lp, gcp, gbp) = timed(py_step, *reps)
    out["total"]["python"] = s
    s, (lt, gct, gbt) = timed(tv_step, *reps)
    out["total"]["torchvision"] = s
    out["_check"] = {"loss_cls": {"detloss": float(lp[0]), "torchvision": float(lt[0])},
                     "loss_box_reg": {"detloss": float(lp[1]), "torchvision": float(lt[1])},
                     "anchors_per_image": A}
    if retina:  # no sampling: the same values and gradients
        out["_check"]["max_abs_grad_diff"] = float(max((gcp - gct).abs().max(),
                                                       (gbp - gbt).abs().max()))
    else:
        out["_check"]["note"] = ("torchvision samples with randperm, detloss with its seeded "
                                 "hash: same counts, different anchors, so values differ")
    return out


def _status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def child_memory(side, workload, args):
    """In a fresh process: the extra peak RSS (MiB) of one value + backward of `workload`
    on `side` ("detloss" or "torchvision") over the RSS with the inputs built."""
    import detloss.torch as dl
    from torchvision.models.detection import _utils as du
    from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
    from torchvision.ops import sigmoid_focal_loss as tv_focal
    torch.set_num_threads(args.threads)
    if workload == "focal_16m":
        x, y = focal_inputs(args.small)
        x.requires_grad_(True)
        if side == "detloss":
            def run():
                dl.sigmoid_focal_loss(x, y, 0.25, 2.0, "sum", num_threads=args.threads).backward()
        else:
            def run():
                tv_focal(x, y, 0.25, 2.0, "sum").backward()
    else:
        anchors, cls, reg, targets, grid = head_setup(True, args.small)
        C = cls.shape[-1]
        cls.requires_grad_(True)
        reg.requires_grad_(True)
        head = RetinaNetHead(1, 9, C)
        fake = types.SimpleNamespace(proposal_matcher=du.Matcher(0.5, 0.4, True), head=head)
        if side == "detloss":
            def run():
                lc, lb = dl.retina_loss(cls, reg, anchors, targets, anchor_grid=grid,
                                        num_threads=args.threads)
                (lc + lb).backward()
        else:
            def run():
                l = RetinaNet.compute_loss(fake, targets, {"cls_logits": cls,
                                                           "bbox_regression": reg}, anchors)
                (l["classification"] + l["bbox_regression"]).backward()
    base = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM (the peak) to the current RSS
        f.write("5")
    run()
    return (_status_kib("VmHWM") - base) / 1024.0


def memory_figures(args):
    out = {}
    for w in ("focal_16m", "retina_b2"):
        out[w] = {}
        for side in ("detloss", "torchvision"):
            cmd = [sys.executable, os.path.abspath(__file__), "--child-memory", side + ":" + w,
                   "--threads", str(args.threads)] + (["--small"] if args.small else [])
            # a fixed mmap threshold: large blocks are returned to the system when freed, so
            # freed input-building memory cannot hide the step's allocations
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
            r = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            out[w][side] = float(r.stdout.strip().splitlines()[-1])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(HERE)
    ap.add_argument("--detloss", default=os.path.join(root, "build", "detloss"))
    ap.add_argument("--library", default=None, help="libdetloss.so (default: DETLOSS_LIBRARY "
                    "or the package's search)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default=None)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--memory", action="store_true", help="also measure the extra peak RSS of "
                    "one value + backward per side, each in a fresh process")
    ap.add_argument("--child-memory", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_memory:
        if args.library:
            os.environ["DETLOSS_LIBRARY"] = os.path.abspath(args.library)
        side, w = args.child_memory.split(":")
        print("%.1f" % child_memory(side, w, args))
        return
    if args.library:
        os.environ["DETLOSS_LIBRARY"] = os.path.abspath(args.library)
    import detloss
    import detloss.ops as dlops
    import detloss.torch as dl
    from detloss import _lib
    torch.set_num_threads(args.threads)

    cli = {}
    if os.path.exists(args.detloss):
        known = subprocess.run([args.detloss, "bench", "--list"], check=True,
                               capture_output=True, text=True).stdout.split()
        want = [w for w in ("focal_16m", "match_fpn_g20", "match_fpn_g100", "rpn_fpn_b2",
                            "retina_b2") if w in known]
        cmd = [args.detloss, "bench", "--json", "--threads", str(args.threads), "--repeats",
               str(args.repeats), "--warmup", str(args.warmup), "--only", ",".join(want)]
        if args.small:
            cmd.append("--small")
        cli = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    else:
        print("note: %s not found: no c_cli column" % args.detloss, file=sys.stderr)

    work = {"focal_16m": lambda: w_focal(args, dl, _lib),
            "match_fpn_g20": lambda: w_match(args, 20, dlops, _lib),
            "match_fpn_g100": lambda: w_match(args, 100, dlops, _lib),
            "rpn_fpn_b2": lambda: w_head(args, False, dl, dlops, _lib),
            "retina_b2": lambda: w_head(args, True, dl, dlops, _lib)}
    only = args.only.split(",") if args.only else list(work)
    out = {"_meta": {"threads": args.threads, "library": detloss.library_path,
                     "torch": torch.__version__, "torchvision": torchvision.__version__,
                     "python": platform.python_version(), "small": args.small,
                     "cpu": cli.get("_meta", {}).get("cpu", platform.processor()),
                     "commit": cli.get("_meta", {}).get("commit")}}
    rows = []
    for w in only:
        res = work[w]()
        for stage, st in res.items():
            if stage.startswith("_"):
                continue
            c = cli.get(w, {}).get(stage, {}).get("median_ms")
            st = {k: (v["median_ms"] if isinstance(v, dict) else v) for k, v in st.items()}
            if c is not None:
                st["c_cli"] = c
            base = st.get("c_ctypes_alloc", st["c_ctypes"])
            st["overhead_ms"] = st["python"] - base
            res[stage] = st
            rows.append((w, stage, st.get("c_cli"), st["c_ctypes"], st.get("c_ctypes_alloc"),
                         st["python"], st["overhead_ms"], st.get("torchvision")))
        out[w] = res
    hdr = ("workload", "stage", "C (cli) ms", "C (ctypes) ms", "+alloc ms", "Python ms",
           "overhead ms", "torchvision ms", "tv / Python")

    def fmt(v):
        return "" if v is None else "%.2f" % v
    if args.markdown:
        print("| " + " | ".join(hdr) + " |")
        print("|---|---|" + "---:|" * (len(hdr) - 2))
    else:
        print("%-16s %-12s %11s %13s %10s %10s %12s %15s %11s" % hdr)
    for w, s, c, cc, ca, p, o, t in rows:
        sp = "%.1fx" % (t / p) if t else ""
        cells = (w, s, fmt(c), fmt(cc), fmt(ca), fmt(p), fmt(o), fmt(t), sp)
        if args.markdown:
            print("| " + " | ".join(cells) + " |")
        else:
            print("%-16s %-12s %11s %13s %10s %10s %12s %15s %11s" % cells)
    for w in only:
        print("# %s check: %s" % (w, json.dumps(out[w]["_check"])))
    if args.memory:
        out["_memory_peak_extra_mib"] = mem = memory_figures(args)
        for w, d in mem.items():
            print("# %s: extra peak RSS of one value + backward: detloss %.1f MiB, torchvision "
                  "%.1f MiB" % (w, d["detloss"], d["torchvision"]))
    m = out["_meta"]
    print("# %s, %d threads, torch %s, torchvision %s, commit %s" % (
        m["cpu"], args.threads, m["torch"], m["torchvision"], m["commit"]))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
