#!/usr/bin/env python3
"""Scaling study: detloss time versus gt boxes, anchors, classes and threads.

usage: python3 bench/scaling.py [--detloss build/detloss] [--out bench] [--repeats 5]

Runs `detloss bench` (no torchvision needed) with its size overrides:
  - matching (RPN matcher, FPN anchors) versus gt boxes 1..1000 at 268,569 anchors;
  - matching and the sigmoid focal loss versus anchors ~10k..2M (image scale);
  - the sigmoid focal loss (value + gradient) and its memory floor versus classes 1..1000;
each on 1 and 2 threads. Writes OUT/scaling.json, OUT/scaling.md (tables) and
OUT/scaling.svg (log-log plots). Standard library only.
"""
import argparse
import json
import math
import os
import subprocess


def bench(binary, only, threads, repeats, **over):
    cmd = [binary, "bench", "--json", "--only", only, "--threads", str(threads),
           "--repeats", str(repeats), "--warmup", "1"]
    for k, v in over.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return out[only], out["_meta"]


def sweep(binary, repeats):
    rows = {"gt": [], "anchors": [], "classes": []}
    meta = None
    for t in (1, 2):
        for g in (1, 3, 10, 30, 100, 300, 1000):
            r, meta = bench(binary, "match_fpn_g20", t, repeats, gt=g)
            rows["gt"].append({"threads": t, "gt": g, "anchors": int(r["_note"].split()[0]),
                               "match_ms": r["match"]["median_ms"],
                               "match_plain_ms": r["match_plain"]["median_ms"]})
        for s in (0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8):
            m, _ = bench(binary, "match_fpn_g20", t, repeats, image_scale=s)
            f, _ = bench(binary, "focal_16m", t, repeats, image_scale=s)
            rows["anchors"].append({"threads": t, "scale": s, "anchors": int(m["_note"].split()[0]),
                                    "match_ms": m["match"]["median_ms"],
                                    "match_plain_ms": m["match_plain"]["median_ms"],
                                    "focal_anchors": int(f["_note"].split()[0]),
                                    "focal_fwd_bwd_ms": f["fwd_bwd"]["median_ms"],
                                    "focal_floor_ms": f["floor"]["median_ms"]})
        for c in (1, 3, 10, 30, 80, 300, 1000):
            f, _ = bench(binary, "focal_16m", t, repeats, classes=c)
            rows["classes"].append({"threads": t, "classes": c, "logits": 201600 * c,
                                    "fwd_ms": f["fwd"]["median_ms"],
                                    "fwd_bwd_ms": f["fwd_bwd"]["median_ms"],
                                    "floor_ms": f["floor"]["median_ms"]})
    return rows, meta


def markdown(rows, meta):
    L = [f"Measured {meta['date']} on {meta['cpu']} (2 cores), commit {meta['commit']}; "
         "medians in ms.", "",
         "**Matching vs gt boxes** (268,569 FPN anchors, RPN matcher 0.7/0.3)", "",
         "| gt | grid 1 thr | grid 2 thr | plain 1 thr | plain 2 thr |", "|---:|---:|---:|---:|---:|"]
    by = {(r["threads"], r["gt"]): r for r in rows["gt"]}
    for g in sorted({r["gt"] for r in rows["gt"]}):
        a, b = by[(1, g)], by[(2, g)]
        L.append(f"| {g} | {a['match_ms']:.2f} | {b['match_ms']:.2f} | {a['match_plain_ms']:.2f} | "
                 f"{b['match_plain_ms']:.2f} |")
    L += ["", "**Matching (20 gt) and focal loss + gradient (80 classes) vs anchors**", "",
          "| anchors (match) | grid 1 thr | grid 2 thr | plain 2 thr | anchors (focal) | focal 1 thr | focal 2 thr | floor 2 thr | focal / floor |",
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    by = {(r["threads"], r["scale"]): r for r in rows["anchors"]}
    for s in sorted({r["scale"] for r in rows["anchors"]}):
        a, b = by[(1, s)], by[(2, s)]
        L.append(f"| {a['anchors']:,} | {a['match_ms']:.2f} | {b['match_ms']:.2f} | {b['match_plain_ms']:.2f} | "
                 f"{a['focal_anchors']:,} | {a['focal_fwd_bwd_ms']:.2f} | {b['focal_fwd_bwd_ms']:.2f} | "
                 f"{b['focal_floor_ms']:.2f} | {b['focal_fwd_bwd_ms'] / max(b['focal_floor_ms'], 1e-9):.1f}x |")
    L += ["", "**Sigmoid focal loss vs classes** (201,600 anchors)", "",
          "| classes | logits | fwd 2 thr | fwd+bwd 1 thr | fwd+bwd 2 thr | floor 2 thr | fwd+bwd / floor |",
          "|---:|---:|---:|---:|---:|---:|---:|"]
    by = {(r["threads"], r["classes"]): r for r in rows["classes"]}
    for c in sorted({r["classes"] for r in rows["classes"]}):
        a, b = by[(1, c)], by[(2, c)]
        L.append(f"| {c} | {a['logits']:,} | {b['fwd_ms']:.2f} | {a['fwd_bwd_ms']:.2f} | {b['fwd_bwd_ms']:.2f} | "
                 f"{b['floor_ms']:.2f} | {b['fwd_bwd_ms'] / max(b['floor_ms'], 1e-9):.1f}x |")
    return "\n".join(L) + "\n"


def svg(rows, meta):
    W, H, P = 330, 260, 48
    panels = [
        ("matching vs gt boxes", "gt boxes", [
            ("grid, 1 thread", "#1f77b4", "4", [(r["gt"], r["match_ms"]) for r in rows["gt"] if r["threads"] == 1]),
            ("grid, 2 threads", "#1f77b4", "", [(r["gt"], r["match_ms"]) for r in rows["gt"] if r["threads"] == 2]),
            ("plain, 2 threads", "#ff7f0e", "", [(r["gt"], r["match_plain_ms"]) for r in rows["gt"] if r["threads"] == 2])]),
        ("time vs anchors", "anchors", [
            ("match grid, 2 thr", "#1f77b4", "", [(r["anchors"], r["match_ms"]) for r in rows["anchors"] if r["threads"] == 2]),
            ("focal+grad, 1 thr", "#2ca02c", "4", [(r["focal_anchors"], r["focal_fwd_bwd_ms"]) for r in rows["anchors"] if r["threads"] == 1]),
            ("focal+grad, 2 thr", "#2ca02c", "", [(r["focal_anchors"], r["focal_fwd_bwd_ms"]) for r in rows["anchors"] if r["threads"] == 2]),
            ("memory floor, 2 thr", "#7f7f7f", "2", [(r["focal_anchors"], r["focal_floor_ms"]) for r in rows["anchors"] if r["threads"] == 2])]),
        ("focal loss vs classes", "classes (201,600 anchors)", [
            ("fwd+bwd, 1 thr", "#2ca02c", "4", [(r["classes"], r["fwd_bwd_ms"]) for r in rows["classes"] if r["threads"] == 1]),
            ("fwd+bwd, 2 thr", "#2ca02c", "", [(r["classes"], r["fwd_bwd_ms"]) for r in rows["classes"] if r["threads"] == 2]),
            ("memory floor, 2 thr", "#7f7f7f", "2", [(r["classes"], r["floor_ms"]) for r in rows["classes"] if r["threads"] == 2])]),
    ]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{3 * W}" height="{H + 40}" font-family="sans-serif" font-size="11">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="8" y="16" font-size="13" font-weight="bold">detloss scaling (median ms, log-log) — {meta["cpu"]}, commit {meta["commit"]}</text>']
    for k, (title, xlabel, series) in enumerate(panels):
        ox = k * W
        pts = [p for s in series for p in s[3] if p[1] > 0]
        x0, x1 = math.log10(min(p[0] for p in pts)), math.log10(max(p[0] for p in pts))
        y0, y1 = math.floor(math.log10(min(p[1] for p in pts))), math.ceil(math.log10(max(p[1] for p in pts)))
        fx = lambda x: ox + P + (math.log10(x) - x0) / max(x1 - x0, 1e-9) * (W - P - 12)
        fy = lambda y: 30 + (H - 40) - (math.log10(y) - y0) / max(y1 - y0, 1e-9) * (H - 50)
        out.append(f'<text x="{ox + P}" y="40" font-weight="bold">{title}</text>')
        out.append(f'<rect x="{ox + P}" y="{30 + 10}" width="{W - P - 12}" height="{H - 50}" fill="none" stroke="#bbb"/>')
        for e in range(int(y0), int(y1) + 1):
            y = fy(10 ** e)
            out.append(f'<line x1="{ox + P}" x2="{ox + W - 12}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{ox + P - 4}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
        xs = sorted({p[0] for p in pts})
        for x in (xs[0], xs[len(xs) // 2], xs[-1]):
            out.append(f'<text x="{fx(x):.1f}" y="{H + 4}" text-anchor="middle">{x:,}</text>')
        out.append(f'<text x="{ox + P + (W - P) / 2:.0f}" y="{H + 18}" text-anchor="middle">{xlabel}</text>')
        for j, (name, col, dash, data) in enumerate(series):
            d = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in sorted(data) if y > 0)
            out.append(f'<polyline points="{d}" fill="none" stroke="{col}" stroke-width="1.8"'
                       + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
            out.append(f'<text x="{ox + P + 6}" y="{56 + 13 * j}" fill="{col}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detloss", default=os.path.join(os.path.dirname(__file__), "..", "build", "detloss"))
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows, meta = sweep(args.detloss, args.repeats)
    with open(os.path.join(args.out, "scaling.json"), "w") as f:
        json.dump({"_meta": meta, **rows}, f, indent=1)
    with open(os.path.join(args.out, "scaling.md"), "w") as f:
        f.write(markdown(rows, meta))
    with open(os.path.join(args.out, "scaling.svg"), "w") as f:
        f.write(svg(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
