#!/usr/bin/env python3
"""A torchvision RetinaNet training step with detloss's losses swapped in.

usage: DETLOSS_LIBRARY=build/libdetloss.so PYTHONPATH=python \\
           /usr/bin/python3 examples/train_step_torch.py [--steps 3] [--threads 2]

1. The one-line swap for the losses themselves:
       from torchvision.ops import sigmoid_focal_loss, generalized_box_iou_loss
   becomes
       from detloss.torch import sigmoid_focal_loss, generalized_box_iou_loss
2. The whole detector loss: detloss.torch.patch_retinanet(model) makes
   model.compute_loss (matching + focal loss + box loss, forward and backward) run
   in detloss; nothing else in the training loop changes.

The script builds a small, randomly initialised RetinaNet (no downloads), computes
one step's losses and gradients with torchvision and then with detloss on the very
same batch (they agree to float32 rounding), and trains a few steps with detloss.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import detloss.torch as dt  # noqa: E402
from torchvision.models.detection import retinanet_resnet50_fpn  # noqa: E402
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss  # noqa: E402


def synthetic_batch(g, n=2, size=256, classes=4):
    images = [torch.rand(3, size, size, generator=g) for _ in range(n)]
    targets = []
    for _ in range(n):
        xy = torch.rand(3, 2, generator=g) * size * 0.6
        wh = 16 + torch.rand(3, 2, generator=g) * size * 0.35
        targets.append({"boxes": torch.cat([xy, xy + wh], 1),
                        "labels": torch.randint(1, classes, (3,), generator=g)})
    return images, targets


def step(model, opt, images, targets):
    opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    losses = model(images, targets)
    loss = sum(losses.values())
    loss.backward()
    opt.step()
    return {k: round(v.item(), 6) for k, v in losses.items()}, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    # 1. the losses: same values, same gradients
    x = torch.randn(1000, 80, requires_grad=True)
    y = (torch.rand(1000, 80) < 0.01).float()
    a = sigmoid_focal_loss(x, y, reduction="sum")
    b = dt.sigmoid_focal_loss(x, y, reduction="sum")
    ga, = torch.autograd.grad(a, x)
    gb, = torch.autograd.grad(b, x)
    print("focal loss   torchvision %.6f  detloss %.6f  max |grad diff| %.2e"
          % (a.item(), b.item(), (ga - gb).abs().max().item()))
    p = torch.tensor([[10.0, 10, 50, 60]], requires_grad=True)
    t = torch.tensor([[12.0, 8, 55, 58]])
    print("GIoU loss    torchvision %.6f  detloss %.6f"
          % (generalized_box_iou_loss(p, t).item(), dt.generalized_box_iou_loss(p, t).item()))

    # 2. a RetinaNet training step
    torch.manual_seed(0)
    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4,
                                   min_size=256, max_size=256).train()
    g = torch.Generator().manual_seed(0)
    images, targets = synthetic_batch(g)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: both steps see the same weights
    ref, t_ref = step(model, opt, images, targets)
    head_grad_ref = model.head.classification_head.cls_logits.weight.grad.clone()

    dt.patch_retinanet(model, num_threads=args.threads)  # <- the swap
    got, t_got = step(model, opt, images, targets)
    head_grad = model.head.classification_head.cls_logits.weight.grad
    print("RetinaNet    torchvision %s (%.2fs)" % (ref, t_ref))
    print("             detloss     %s (%.2fs)" % (got, t_got))
    print("             max |d cls_logits.weight| diff %.2e"
          % (head_grad - head_grad_ref).abs().max().item())

    for group in opt.param_groups:
        group["lr"] = 0.01
    for i in range(args.steps):
        images, targets = synthetic_batch(g)
        losses, secs = step(model, opt, images, targets)
        print("step %d  %s  (%.2fs)" % (i + 1, losses, secs))


if __name__ == "__main__":
    main()
