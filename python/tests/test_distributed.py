"""Distributed training with torch.distributed itself (gloo, 2 CPU processes): each rank
takes a slice of the batch, all-reduces the loss normalizer and computes its part of
the loss with the drop-in's caller normalizer (RetinaNet, FCOS, YOLOv8, DETR focal); the
total loss, every image's gradients and the gradient DistributedDataParallel leaves on a parameter must equal one process on
the whole batch. The harness is dist_harness.py; a head is one HeadCase in CASES.

Tolerance (float32): relative 1e-5 on the loss and the normalizer; gradients within
1e-5 relative, or 1e-6 of the largest entry of the compared tensor. The sums are formed
in a different order across ranks (a rank sums its images, the ranks' losses are then
added), so equality is to float32 rounding, not bitwise.

Adding a head: three module-level functions and a HeadCase appended to CASES (all cases
run in the same two spawned processes, so a case costs its compute, not another start):
make_batch(seed) -> the whole batch as a list of per-image dicts (predictions as float32
tensors named in grad_keys); local_normalizer(images) -> this rank's contribution (a
float, or a sequence of floats all-reduced together, e.g. FCOS's positives and
centerness-target sum); loss(images, z) -> the rank's loss with the all-reduced z passed
to the drop-in's normalizer keyword (DETR: num_boxes = max(z, 1), the number of gt boxes
of the batch; the reference divides by the world size because DDP averages, which the
harness accounts for by back-propagating world_size * loss)."""
import pytest

torch = pytest.importorskip("torch")

import dist_harness as dh  # noqa: E402
import detloss.torch as dt  # noqa: E402

SEED = 2026
N_IMAGES = 5  # split 3 / 2: the slices need not be equal
RTOL, ATOL_REL = 1e-5, 1e-6


# ----------------------------------------------------------------------- RetinaNet
# detloss.torch.retina_loss with normalizer="caller": the batch sums of the focal and box
# losses divided by the caller's normalizer. The rank's contribution is its positives
# count (torchvision's Matcher 0.5 / 0.4 with low-quality matches, the matching
# retina_loss does, here by detloss's fused Matcher.match_boxes); the all-reduced sum is
# clamped to >= 1 as mmdetection does after reduce_mean. Reference: the whole batch with
# normalizer "detectron2_ema" at momentum 0, i.e. detectron2's batch sums / max(1, P)
# with P counted inside the C call.
RETINA_A, RETINA_C = 360, 6


def retina_batch(seed):
    g = torch.Generator().manual_seed(seed)
    images = []
    for i in range(N_IMAGES):
        xy = torch.rand(RETINA_A, 2, generator=g, dtype=torch.float64) * 200
        wh = torch.rand(RETINA_A, 2, generator=g, dtype=torch.float64) * 60 + 4
        anchors = torch.cat([xy, xy + wh], 1).float()
        n_gt = 0 if i == 3 else 1 + i  # one image without gt: all anchors negative
        pick = torch.randperm(RETINA_A, generator=g)[:n_gt]
        gt = anchors[pick] + torch.randn(n_gt, 4, generator=g) * 2
        images.append({"anchors": anchors, "boxes": gt,
                       "labels": torch.randint(0, RETINA_C, (n_gt,), generator=g),
                       "cls": torch.randn(RETINA_A, RETINA_C, generator=g),
                       "reg": 0.1 * torch.randn(RETINA_A, 4, generator=g)})
    return images


def retina_positives(images):
    m = dt.Matcher(0.5, 0.4, True)
    return sum(int((m.match_boxes(im["boxes"], im["anchors"], num_threads=1) >= 0).sum())
               for im in images if im["boxes"].shape[0] > 0)


def _retina(images, **kw):
    lc, lb = dt.retina_loss([im["cls"] for im in images], [im["reg"] for im in images],
                            [im["anchors"] for im in images],
                            [{"boxes": im["boxes"], "labels": im["labels"]} for im in images],
                            box_loss="giou", num_threads=1, **kw)
    return lc + lb


def retina_loss(images, num_pos):
    return _retina(images, normalizer="caller", caller_normalizer=max(num_pos, 1.0))


def retina_reference(images):
    return _retina(images, normalizer="detectron2_ema", ema_momentum=0.0,
                   ema_state=torch.tensor([100.0]))


CASES = [
    dh.HeadCase("retinanet", retina_batch, retina_positives, retina_loss, ("cls", "reg"),
                retina_reference),
]


# ----------------------------------------------------------------------- FCOS (mmdet)
# detloss.torch_fcos.fcos_loss_torch with the caller's normalizers: mmdet reduce_means the
# positives count and the centerness-target sum over the ranks; here each rank passes the
# all-reduced sums (avg_num_pos = sum of positives, avg_centerness_sum = sum of targets),
# so the ranks' losses add up to the whole batch's (the harness back-propagates
# world_size * loss, as DDP's averaging of mmdet's mean-normalized loss does). The
# rank's contribution: num_pos and centerness_sum of detloss.fcos_loss on its slice.
# Reference: the whole batch with the op's own normalizers.
FCOS_FM, FCOS_STRIDES, FCOS_C = [[8, 8], [4, 4], [2, 2]], [8.0, 16.0, 32.0], 5
FCOS_RANGES = [[-1.0, 24.0], [24.0, 48.0], [48.0, 1e8]]
FCOS_P = 64 + 16 + 4


def fcos_batch(seed):
    g = torch.Generator().manual_seed(seed + 1)
    images = []
    for i in range(N_IMAGES):
        n_gt = 0 if i == 1 else 2 + i
        xy = torch.rand(n_gt, 2, generator=g) * 40
        wh = torch.rand(n_gt, 2, generator=g) * 50 + 8
        images.append({"boxes": torch.cat([xy, (xy + wh).clamp(max=63.0)], 1),
                       "labels": torch.randint(0, FCOS_C, (n_gt,), generator=g),
                       "cls": torch.randn(FCOS_P, FCOS_C, generator=g),
                       "bbox": torch.rand(FCOS_P, 4, generator=g) * 3 + 0.1,
                       "ctr": torch.randn(FCOS_P, generator=g)})
    return images


def _fcos_kw():
    return dict(strides=FCOS_STRIDES, regress_ranges=FCOS_RANGES, num_threads=1)


def fcos_local(images):
    import detloss
    r = detloss.fcos_loss(FCOS_FM, torch.stack([im["cls"] for im in images]).detach().numpy(),
                          torch.stack([im["bbox"] for im in images]).detach().numpy(),
                          torch.stack([im["ctr"] for im in images]).detach().numpy(),
                          [im["boxes"].numpy() for im in images],
                          [im["labels"].numpy() for im in images], **_fcos_kw())
    return (float(r["num_pos"]), float(r["centerness_sum"]))


def _fcos(images, **kw):
    from detloss.torch_fcos import fcos_loss_torch
    d = fcos_loss_torch(FCOS_FM, torch.stack([im["cls"] for im in images]),
                        torch.stack([im["bbox"] for im in images]),
                        torch.stack([im["ctr"] for im in images]),
                        [im["boxes"] for im in images], [im["labels"] for im in images],
                        **_fcos_kw(), **kw)
    return d["loss_cls"] + d["loss_bbox"] + d["loss_centerness"]


def fcos_loss(images, z):
    return _fcos(images, avg_num_pos=z[0], avg_centerness_sum=z[1])


def fcos_reference(images):
    return _fcos(images)


# ----------------------------------------------------------------------- YOLOv8
# detloss.torch_yolov8.V8DetectionLoss with target_score_sum: ultralytics divides by its
# own batch's target-score sum; a distributed caller all-reduces it and passes the sum.
# The rank's contribution: the drop-in's last_target_score_sum on its slice (one call
# without the keyword). The harness sums the ranks' losses, so the loss here is the
# 3-vector's sum (the item sum ultralytics reports), not that times the rank's batch size.
Y8_NC, Y8_SIZE = 4, 64  # strides 8, 16, 32: 8x8 + 4x4 + 2x2 = 84 anchors


def _y8_crit():
    from detloss.torch_yolov8 import V8DetectionLoss
    return V8DetectionLoss(nc=Y8_NC, reg_max=16, strides=(8, 16, 32), num_threads=1)


def y8_batch(seed):
    g = torch.Generator().manual_seed(seed + 2)
    images = []
    for i in range(N_IMAGES):
        n_gt = 0 if i == 2 else 1 + i
        cxcy = torch.rand(n_gt, 2, generator=g) * 0.6 + 0.2
        wh = torch.rand(n_gt, 2, generator=g) * 0.4 + 0.1
        images.append({"bboxes": torch.cat([cxcy, wh], 1),
                       "cls": torch.randint(0, Y8_NC, (n_gt, 1), generator=g).float(),
                       **{"p%d" % l: torch.randn(64 + Y8_NC, Y8_SIZE // s, Y8_SIZE // s,
                                                 generator=g)
                          for l, s in enumerate((8, 16, 32))}})
    return images


def _y8_call(images, **kw):
    feats = [torch.stack([im["p%d" % l] for im in images]) for l in range(3)]
    batch = {"batch_idx": torch.cat([torch.full((im["cls"].shape[0],), float(i))
                                     for i, im in enumerate(images)]),
             "cls": torch.cat([im["cls"] for im in images]),
             "bboxes": torch.cat([im["bboxes"] for im in images])}
    crit = _y8_crit()
    total, items = crit(feats, batch, **kw)
    return crit, total / len(images)


def y8_local(images):
    crit, _ = _y8_call([{k: v.detach() for k, v in im.items()} for im in images])
    return float(crit.last_target_score_sum)


def y8_loss(images, z):
    return _y8_call(images, target_score_sum=z)[1]


def y8_reference(images):
    return _y8_call(images)[1]


# ----------------------------------------------------------------------- DETR (focal)
# detloss.torch_detr.SetCriterion(cls_loss="focal") with num_boxes: DETR all-reduces the
# gt count and divides by the world size; here each rank passes the all-reduced count (the
# harness's world_size * loss stands for DDP's averaging). Deformable-DETR's focal class
# term is divided by num_boxes too, so every term splits over the ranks. (DETR's softmax
# loss_ce is a weighted mean over each rank's own queries, which no normalizer makes
# additive across ranks, in DETR as here: it is not part of this check.)
DETR_Q, DETR_C = 12, 5


def detr_batch(seed):
    g = torch.Generator().manual_seed(seed + 3)
    images = []
    for i in range(N_IMAGES):
        n_gt = 0 if i == 4 else 1 + 2 * i
        cxcy = torch.rand(n_gt, 2, generator=g) * 0.6 + 0.2
        wh = torch.rand(n_gt, 2, generator=g) * 0.3 + 0.05
        images.append({"labels": torch.randint(0, DETR_C, (n_gt,), generator=g),
                       "boxes": torch.cat([cxcy, wh], 1),
                       "logits": torch.randn(DETR_Q, DETR_C, generator=g),
                       "pboxes": torch.rand(DETR_Q, 4, generator=g) * 0.5 + 0.25})
    return images


def detr_local(images):
    return float(sum(im["labels"].shape[0] for im in images))


def _detr(images, **kw):
    from detloss.torch_detr import SetCriterion
    crit = SetCriterion(DETR_C, cls_loss="focal", losses=("labels", "boxes"), num_threads=1)
    out = {"pred_logits": torch.stack([im["logits"] for im in images]),
           "pred_boxes": torch.stack([im["pboxes"] for im in images])}
    d = crit(out, [{"labels": im["labels"], "boxes": im["boxes"]} for im in images], **kw)
    return sum(crit.weight_dict[k] * d[k] for k in ("loss_ce", "loss_bbox", "loss_giou"))


def detr_loss(images, z):
    return _detr(images, num_boxes=max(z, 1.0))


def detr_reference(images):
    return _detr(images)


CASES += [
    dh.HeadCase("fcos", fcos_batch, fcos_local, fcos_loss, ("cls", "bbox", "ctr"),
                fcos_reference),
    dh.HeadCase("yolov8", y8_batch, y8_local, y8_loss, ("p0", "p1", "p2"), y8_reference),
    dh.HeadCase("detr_focal", detr_batch, detr_local, detr_loss, ("logits", "pboxes"),
                detr_reference),
]


@pytest.fixture(scope="module")
def distributed_runs():
    reason = dh.gloo_skip_reason()
    if reason:
        pytest.skip(reason)
    return dh.run_distributed(CASES, SEED, N_IMAGES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_two_gloo_ranks_give_the_loss_and_gradients_of_one_process(case, distributed_runs):
    single = dh.run_single(case, SEED)
    worst = dh.compare(case, single, distributed_runs[case.name], RTOL, ATOL_REL)
    print("\n%s: worst relative differences %s" % (case.name, worst))


def test_the_retinanet_batch_has_positives_in_both_slices():
    # guards the case against a degenerate batch (a normalizer of 0 would be clamped)
    images = retina_batch(SEED)
    b = dh._split(N_IMAGES, dh.WORLD)
    assert b == [0, 3, 5]
    assert retina_positives(images[:3]) > 0 and retina_positives(images[3:]) > 0


def test_the_head_batches_have_positives_in_both_slices():
    # the FCOS and YOLOv8 cases check a normalizer that both ranks contribute to
    b = dh._split(N_IMAGES, dh.WORLD)
    f = fcos_batch(SEED)
    assert fcos_local(f[:b[1]])[0] > 0 and fcos_local(f[b[1]:])[0] > 0
    y = y8_batch(SEED)
    assert y8_local(y[:b[1]]) > 0 and y8_local(y[b[1]:]) > 0
    d = detr_batch(SEED)
    assert detr_local(d[:b[1]]) > 0 and detr_local(d[b[1]:]) > 0
