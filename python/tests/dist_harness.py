"""A small harness for checking a head loss under torch.distributed (gloo, CPU).

One process on the whole batch is compared with WORLD processes that each take a slice
of the batch, all-reduce the loss normalizer (e.g. the positives count) and compute
their part of the loss with it. A head is described by a HeadCase (see below); adding a
head is writing its three small functions.

What is compared, for each case:
  - the total loss: the sum over ranks of each rank's loss (all-reduced) against the
    single-process loss; and the all-reduced normalizer against the single one;
  - the per-image gradients: d loss / d prediction of every image, taken on the rank
    that holds the image, against the same rows of the single-process gradient;
  - the gradient that DistributedDataParallel leaves on a parameter: every prediction
    tensor of an image is routed through a module adding a zero parameter of its shape
    (x + b_key). DDP averages b's gradient over ranks, so each rank back-propagates
    WORLD * its loss (the loss with the all-reduced sum normalizer; equivalently the
    loss with the mean normalizer, mmdetection's reduce_mean); the result must be the
    single-process gradient of b, sum_i d loss / d prediction_i. WORLD = 2 makes the
    scaling exact in floating point, so the per-image gradients are this backward's
    divided by WORLD.

Processes: torch.multiprocessing "spawn" children (nothing inherited from the pytest
process: no OpenMP pool across fork), a file:// rendezvous in a private temporary
directory, gloo with a collective timeout, a deadline on the whole run after which the
children are terminated (then killed), and every child's traceback reported. Every case
makes exactly two collectives plus DDP's per rank, and a rank whose case raises still
takes part in them (with a failure flag), so a fault in one rank's case is reported as
that case's failure, never as a hang of the other rank.
"""
import datetime
import os
import signal
import tempfile
import time
import traceback
from typing import Callable, NamedTuple, Optional, Sequence

import torch

WORLD = 2
# Safety nets, far above the normal run (about 10 s on an idle 2-core machine, 20-30 s at
# load 12-16, almost all of it two children importing torch): the whole spawned run, and
# gloo's wait for a peer (the rendezvous included: under heavy load one child can reach
# it long after the other)
RUN_TIMEOUT_S = 240.0
COLLECTIVE_TIMEOUT_S = 180.0
GRACE_S = 30.0  # how long the other ranks may run on after one has exited


class HeadCase(NamedTuple):
    """One head loss under the harness. All functions are module-level (picklable).

    make_batch(seed) -> list of per-image dicts: the whole batch, the same for the
        same seed in any process. The entries named in grad_keys are float32 prediction
        tensors (the harness makes them require grad; do not), of one shape per key across
        the images (the DDP check adds one parameter of that shape per key).
    local_normalizer(images) -> float or sequence of floats: what this rank's slice
        contributes to the normalizer (summed over ranks by the all-reduce), e.g. its
        positives count, its target-score sum, its number of gt boxes.
    loss(images, z) -> scalar tensor: the loss of images given the all-reduced z (a
        float, or a tuple if local_normalizer returns a sequence); the loss of the whole
        batch is the sum over ranks.
    grad_keys: the per-image prediction keys whose gradients are compared.
    reference(images) -> scalar tensor, optional: the single-process loss of the whole
        batch computed without a caller normalizer (the head's own normalization), an
        independent check that loss(images, z) on the whole batch is the right value.
    """
    name: str
    make_batch: Callable
    local_normalizer: Callable
    loss: Callable
    grad_keys: Sequence[str]
    reference: Optional[Callable] = None


def gloo_skip_reason():
    """None when gloo can run here, else why not (for pytest.skip)."""
    import torch.distributed as dist
    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if not dist.is_gloo_available():
        return "torch.distributed has no gloo backend in this torch build"
    return None


def _as_vector(z):
    v = [float(z)] if isinstance(z, (int, float)) else [float(x) for x in z]
    return torch.tensor(v, dtype=torch.float64)


def _from_vector(v, like):
    return float(v[0]) if isinstance(like, (int, float)) else tuple(float(x) for x in v)


class _Shift(torch.nn.Module):
    """prediction -> prediction + b[key], b zero: the parameter DDP reduces."""

    def __init__(self, example, keys):
        super().__init__()
        self.keys = list(keys)
        self.b = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros_like(example[k], dtype=torch.float32))
             for k in self.keys])

    def forward(self, images):
        out = []
        for im in images:
            im = dict(im)
            for k, b in zip(self.keys, self.b):
                im[k] = im[k] + b
                im[k].retain_grad()
            out.append(im)
        return out


def _leaves(images, keys):
    out = []
    for im in images:
        im = dict(im)
        for k in keys:
            im[k] = im[k].detach().clone().requires_grad_()
        out.append(im)
    return out


def _step(case, images, reduce_sum, model, scale):
    """One training step of case on images: normalizer, loss, backward of scale * loss.
    reduce_sum(float64 vector) -> vector summed over ranks (identity in one process).
    Returns (dict of results or None, traceback text or None); the collectives run even
    when the case raises (flag in the last element of the reduced vectors)."""
    err = None
    try:
        zl = case.local_normalizer(images)
        zv = _as_vector(zl)
    except Exception:
        err, zl, zv = traceback.format_exc(), 0.0, torch.zeros(1, dtype=torch.float64)
    flag = torch.tensor([1.0 if err else 0.0], dtype=torch.float64)
    red = reduce_sum(torch.cat([zv, flag]))
    if red[-1] != 0:
        return None, err or "another rank failed in local_normalizer"
    z = _from_vector(red[:-1], zl)
    loss = None
    try:
        shifted = model(images)
        loss = case.loss(shifted, z)
        (loss * scale).backward()
    except Exception:
        err = traceback.format_exc()
    lv = torch.tensor([0.0 if err else float(loss.detach()), 1.0 if err else 0.0],
                      dtype=torch.float64)
    red = reduce_sum(lv)
    if red[-1] != 0:
        return None, err or "another rank failed in loss/backward"
    per_image = [{k: im[k].grad.detach() / scale for k in case.grad_keys} for im in shifted]
    inner = getattr(model, "module", model)
    return {"z": z, "loss": float(loss.detach()),
            "total": float(red[0]), "grads": per_image,
            "param_grads": [b.grad.detach().clone() for b in inner.b]}, None


def _split(n_images, world):
    """Contiguous slices, as even as they go (the first ranks take the extra images)."""
    q, r = divmod(n_images, world)
    bounds = [0]
    for rank in range(world):
        bounds.append(bounds[-1] + q + (rank < r))
    return bounds


def run_single(case, seed):
    """The whole batch in this process (world size 1, no process group)."""
    torch.manual_seed(0)
    images = _leaves(case.make_batch(seed), case.grad_keys)
    res, err = _step(case, images, lambda v: v, _Shift(images[0], case.grad_keys), 1.0)
    if err:
        raise AssertionError("case %s failed in one process:\n%s" % (case.name, err))
    if case.reference is not None:
        res["reference"] = float(case.reference(_leaves(case.make_batch(seed), ())).detach())
    return res


def _worker(rank, world, init_method, cases, seed, n_images, outdir, stack_after):
    import faulthandler
    import torch.distributed as dist
    torch.set_num_threads(1)  # 2 ranks on a small machine: no oversubscription
    # if this rank is still running shortly before the parent's deadline, or when the
    # parent terminates it, its Python stacks go to rank<r>.stack, which the parent reports
    stack_file = open(os.path.join(outdir, "rank%d.stack" % rank), "w")
    faulthandler.dump_traceback_later(stack_after, exit=False, file=stack_file)
    faulthandler.register(signal.SIGTERM, file=stack_file, chain=True)  # the parent's terminate
    results = {}
    try:
        dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))

        def reduce_sum(v):
            v = v.clone()
            dist.all_reduce(v, op=dist.ReduceOp.SUM)
            return v

        b = _split(n_images, world)
        for case in cases:
            images = _leaves(case.make_batch(seed)[b[rank]:b[rank + 1]], case.grad_keys)
            ddp = torch.nn.parallel.DistributedDataParallel(
                _Shift(images[0], case.grad_keys))
            res, err = _step(case, images, reduce_sum, ddp, float(world))
            results[case.name] = {"error": err} if err else res
    except BaseException:
        results["__error__"] = traceback.format_exc()
    finally:
        try:
            if dist.is_initialized():
                dist.destroy_process_group()
        finally:
            tmp = os.path.join(outdir, "rank%d.tmp" % rank)
            torch.save(results, tmp)
            os.replace(tmp, os.path.join(outdir, "rank%d.pt" % rank))
            faulthandler.cancel_dump_traceback_later()
            stack_file.close()


def _diagnostics(outdir, world):
    """What the ranks left behind: each one's error and, if it hung, its stacks."""
    out = []
    for r in range(world):
        path = os.path.join(outdir, "rank%d.pt" % r)
        if os.path.exists(path):
            res = torch.load(path)
            errs = {k: v.get("error") if isinstance(v, dict) else v for k, v in res.items()}
            out.append("rank %d finished: %s" % (r, {k: v for k, v in errs.items() if v} or "ok"))
        stack = os.path.join(outdir, "rank%d.stack" % r)
        if os.path.exists(stack) and os.path.getsize(stack):
            with open(stack) as f:
                out.append("rank %d stacks:\n%s" % (r, f.read()))
    return "\n".join(out)


def run_distributed(cases, seed, n_images, world=WORLD, timeout=RUN_TIMEOUT_S):
    """Each case on world spawned gloo ranks (contiguous slices of the batch of n_images).
    Returns {case name: [per-rank result dict]} (a dict with "error" for a case that
    raised). Raises RuntimeError when a rank failed outside a case or the run timed out;
    no child outlives the call."""
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="detloss-dist-") as tmp:
        init = "file://" + os.path.join(tmp, "rendezvous")
        procs = [ctx.Process(target=_worker, args=(r, world, init, list(cases), seed, n_images,
                                                   tmp, max(1.0, timeout - 10.0)), daemon=True)
                 for r in range(world)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        try:
            # once a rank has exited, the others have GRACE_S to follow: a rank that failed
            # before the rendezvous would otherwise leave its peer waiting there
            while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
                if any(not p.is_alive() for p in procs):
                    deadline = min(deadline, time.monotonic() + GRACE_S)
                    for p in procs:
                        p.join(max(0.0, deadline - time.monotonic()))
                    break
                procs[0].join(0.2)
        finally:
            hung = [p for p in procs if p.is_alive()]
            for p in hung:
                p.terminate()
            for p in hung:
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join(5)
        if hung:
            raise RuntimeError("distributed run: ranks %s still running after %.0f s (or %.0f s "
                               "after another rank exited), terminated\n%s"
                               % ([procs.index(p) for p in hung], timeout, GRACE_S,
                                  _diagnostics(tmp, world)))
        out = []
        for r, p in enumerate(procs):
            path = os.path.join(tmp, "rank%d.pt" % r)
            if not os.path.exists(path):
                raise RuntimeError("rank %d exited with code %s and no result\n%s"
                                   % (r, p.exitcode, _diagnostics(tmp, world)))
            res = torch.load(path)
            if "__error__" in res:
                raise RuntimeError("rank %d failed:\n%s" % (r, res["__error__"]))
            out.append(res)
    return {c.name: [o.get(c.name, {"error": "no result"}) for o in out] for c in cases}


def compare(case, single, ranks, rtol, atol_rel):
    """Assert the distributed results of case equal the single-process ones; returns the
    worst differences found (absolute, and relative to the largest magnitude)."""
    for r, res in enumerate(ranks):
        if "error" in res:
            raise AssertionError("case %s failed on rank %d:\n%s" % (case.name, r, res["error"]))
    worst = {}

    def close(what, got, ref):
        got, ref = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(ref,
                                                                              dtype=torch.float64)
        scale = float(ref.abs().max()) if ref.numel() else 0.0
        d = float((got - ref).abs().max()) if ref.numel() else 0.0
        worst[what] = max(worst.get(what, 0.0), d / scale if scale else d)
        torch.testing.assert_close(got, ref, rtol=rtol, atol=atol_rel * scale,
                                   msg=lambda m: "%s, %s: %s" % (case.name, what, m))

    close("normalizer", _as_vector(ranks[0]["z"]), _as_vector(single["z"]))
    for res in ranks[1:]:
        assert res["z"] == ranks[0]["z"] and res["total"] == ranks[0]["total"]
    close("loss", ranks[0]["total"], single["loss"])
    close("loss vs sum of rank losses", sum(r["loss"] for r in ranks), single["loss"])
    if "reference" in single:
        close("loss vs reference", single["loss"], single["reference"])
    grads = [g for res in ranks for g in res["grads"]]
    assert len(grads) == len(single["grads"])
    for i, (got, ref) in enumerate(zip(grads, single["grads"])):
        for k in case.grad_keys:
            close("per-image grad " + k, got[k], ref[k])
    for r, res in enumerate(ranks):
        for k, got, ref in zip(case.grad_keys, res["param_grads"], single["param_grads"]):
            close("DDP grad " + k, got, ref)
    return worst
