"""Distributed training with torch.distributed itself (gloo, 2 CPU processes): each rank
takes a slice of the batch, all-reduces the loss normalizer and computes its part of
the loss with the drop-in's caller normalizer; the total loss, every image's gradients
and the gradient DistributedDataParallel leaves on a parameter must equal one process on
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
