"""2-process DDP and FSDP2 (gloo, CPU) on a tiny patched Qwen2.5-VL: the patch survives wrapping (or is installed
through the wrapper), and training equals one process.

Each rank gets half of a global batch of packed rows built by the collator; DDP and FSDP average the gradients, so
the first-step gradients and the weights after ``STEPS`` SGD steps must equal one process on the whole batch with
the per-rank mean losses averaged. Every rank reports its rank and world size, and the test requires both ranks of
a world of two: a job that ran one process cannot pass.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile

import pytest
import torch
import torch.distributed as dist

import mmrope_hf
from mmrope_hf.integrations.training import MMRopeCollator
from mmrope_hf.testing import build_inputs, tiny_model

WORLD = 2
STEPS = 3
LR = 0.1
ROWS = [
    [3, ("image", 1, 4, 4), 2],
    [5, ("image", 1, 4, 6), 4],
    [6, ("image", 1, 4, 4), 1],
    [7],
    [2, ("image", 1, 6, 4), 3],
    [4, ("image", 1, 4, 4), 5],
    [9],
    [2, ("image", 1, 4, 4), 2],
]
SCHEMES = [("mrope-i", {}), ("circle", {"layers": "alternate"})]


def make_model(scheme: str, options: dict):
    return mmrope_hf.patch_model(tiny_model("qwen2_5_vl", attn_implementation="sdpa"), scheme, **options).train()


def rank_batches(model, rank: int, world: int, step: int) -> list[dict]:
    """The packed batch of ``rank`` at ``step`` (2 samples per packed row, 1 row per rank)."""
    samples = [build_inputs("qwen2_5_vl", [row], seed=100 * step + i) for i, row in enumerate(ROWS)]
    per_rank = len(samples) // world
    mine = samples[rank * per_rank : (rank + 1) * per_rank]
    return MMRopeCollator(model, "packed", max_length=10_000)(mine)


def grads(model) -> dict:
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def full(tensors: dict) -> dict:
    """FSDP2 shards are DTensors: the full tensors, gathered from every rank."""
    return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone() for k, v in tensors.items()}


def wrap(model, fsdp: bool):
    if not fsdp:
        return torch.nn.parallel.DistributedDataParallel(model)
    from torch.distributed.fsdp import fully_shard

    for layer in model.model.language_model.layers:
        fully_shard(layer)
    return fully_shard(model)  # the same object, its class changed in place


def _worker(rank: int, world: int, port: int, out: str, scheme: str, options: dict, fsdp: bool, order: str) -> None:
    # loopback only, and a bounded wait: a rank that cannot connect fails the job instead of hanging it
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        model = tiny_model("qwen2_5_vl", attn_implementation="sdpa").train()
        if order == "patch-then-wrap":
            wrapped = wrap(mmrope_hf.patch_model(model, scheme, **options), fsdp)
        else:
            wrapped = mmrope_hf.patch_model(wrap(model, fsdp), scheme, **options)
        patched = mmrope_hf.is_patched(wrapped) and mmrope_hf.patch_info(wrapped)["scheme"] == scheme
        optimizer = torch.optim.SGD(wrapped.parameters(), lr=LR)
        first, losses = None, []
        for step in range(STEPS):
            batch = rank_batches(model, rank, world, step)
            loss = wrapped(**batch).loss
            loss.backward()
            if step == 0:
                first = full(grads(model))
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.detach())
        weights = full(dict(model.named_parameters()))
        report = {"rank": dist.get_rank(), "world": dist.get_world_size(), "patched": patched, "weights": weights}
        torch.save({**report, "grads": first, "losses": losses}, f"{out}.rank{rank}")
    finally:
        dist.destroy_process_group()


def single_process(scheme: str, options: dict) -> tuple[dict, dict]:
    """First-step gradients and final weights of one process on the global batch (the mean of the ranks' losses,
    as DDP and FSDP average the gradients)."""
    model = make_model(scheme, options)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    first = None
    for step in range(STEPS):
        loss = sum(model(**rank_batches(model, r, WORLD, step)).loss for r in range(WORLD)) / WORLD
        loss.backward()
        if step == 0:
            first = grads(model)
        optimizer.step()
        optimizer.zero_grad()
    return first, {name: p.detach().clone() for name, p in model.named_parameters()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_world(scheme: str, options: dict, fsdp: bool, order: str, attempts: int = 2) -> list[dict]:
    """The reports of every rank of ``tests/ddp_job.py``, run in a fresh interpreter with a time limit (a normal run
    takes 10-20 s). Its output goes to a file, not a pipe: multiprocessing's helper processes inherit the output and
    can hold a pipe open after the job has ended. An attempt that still times out is retried once on a fresh port;
    a wrong weight fails the test either way."""
    with tempfile.TemporaryDirectory() as tmp:
        out, log = os.path.join(tmp, "report"), os.path.join(tmp, "job.log")
        job = [
            sys.executable,
            os.path.join(os.path.dirname(__file__), "ddp_job.py"),
            scheme,
            json.dumps(options),
            "1" if fsdp else "0",
            order,
            out,
        ]
        for attempt in range(attempts):
            with open(log, "w") as output:
                try:
                    result = subprocess.run(job, stdout=output, stderr=subprocess.STDOUT, timeout=180)
                except subprocess.TimeoutExpired:
                    if attempt + 1 == attempts:
                        raise
                    continue
            with open(log) as output:
                assert result.returncode == 0, f"the 2-process job failed:\n{output.read()[-3000:]}"
            reports = [torch.load(os.path.join(tmp, name)) for name in sorted(os.listdir(tmp)) if ".rank" in name]
            # two processes in one world of two, or the job did not run what it claims
            assert sorted((r["rank"], r["world"]) for r in reports) == [(0, WORLD), (1, WORLD)], reports
            return reports


def assert_world_matches_one_process(reports: list[dict], scheme: str, options: dict) -> None:
    first, weights = single_process(scheme, options)
    for report in reports:
        assert report["patched"], f"rank {report['rank']}: is_patched / patch_info false on the wrapped model"
        assert report["weights"].keys() == weights.keys()
        for name, weight in weights.items():
            torch.testing.assert_close(report["weights"][name], weight, atol=1e-6, rtol=0, msg=name)
        assert all(torch.isfinite(loss) for loss in report["losses"])
    rank0 = reports[0]["grads"]
    assert rank0.keys() == first.keys() and first
    for name, grad in first.items():
        torch.testing.assert_close(rank0[name], grad, atol=1e-6, rtol=0, msg=name)
    moved = max((weights[n] - p).abs().max().item() for n, p in make_model(scheme, options).named_parameters())
    assert moved > 1e-3  # the weights did train, so equal weights are not equal initial weights


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
@pytest.mark.parametrize(
    "scheme, options, order",
    [("mrope-i", {}, "patch-then-wrap"), ("circle", {"layers": "alternate"}, "wrap-then-patch")],
    ids=["mrope-i-patch-then-wrap", "circle-wrap-then-patch"],
)
@pytest.mark.slow
def test_ddp_trains_as_one_process(scheme, options, order):
    assert_world_matches_one_process(run_world(scheme, options, False, order), scheme, options)


@pytest.mark.skipif(sys.platform != "linux", reason="FSDP2 on CPU/gloo is exercised on Linux only")
@pytest.mark.slow
@pytest.mark.parametrize("order", ["patch-then-wrap", "wrap-then-patch"])
def test_fsdp2_trains_as_one_process(order):
    """FSDP2 (``fully_shard``) with gloo on CPU: the patch lives on submodules FSDP keeps, so it survives."""
    assert_world_matches_one_process(run_world("mrope-i", {}, True, order), "mrope-i", {})
