"""2-process DDP (gloo, CPU) on a tiny patched Qwen2.5-VL: the patch survives wrapping, gradients equal one process.

Each rank gets half of a global batch of packed rows built by the collator; DDP averages the gradients, so after
one step they must equal the gradients of one process on the whole batch with the per-rank mean losses averaged.
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
    model = tiny_model("qwen2_5_vl", attn_implementation="sdpa")
    return mmrope_hf.patch_model(model, scheme, **options).train()


def rank_batches(model, rank: int, world: int, step: int) -> list[dict]:
    """The packed batch of ``rank`` at ``step`` (2 samples per packed row, 1 row per rank)."""
    samples = [build_inputs("qwen2_5_vl", [row], seed=100 * step + i) for i, row in enumerate(ROWS)]
    per_rank = len(samples) // world
    mine = samples[rank * per_rank : (rank + 1) * per_rank]
    return MMRopeCollator(model, "packed", max_length=10_000)(mine)


def grads(model) -> dict:
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, world: int, port: int, out: str, scheme: str, options: dict, fsdp: bool) -> None:
    # loopback only, and a bounded wait: a rank that cannot connect fails the job instead of hanging it
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        model = make_model(scheme, options)
        if fsdp:
            from torch.distributed.fsdp import fully_shard

            for layer in model.model.language_model.layers:
                fully_shard(layer)
            wrapped = fully_shard(model)
        else:
            wrapped = torch.nn.parallel.DistributedDataParallel(model)
        assert mmrope_hf.is_patched(model) and mmrope_hf.patch_info(model)["scheme"] == scheme
        optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.1)
        first, losses = None, []
        for step in range(STEPS):
            batch = rank_batches(model, rank, world, step)
            loss = wrapped(**batch).loss
            loss.backward()
            if step == 0:
                first = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in grads(model).items()}
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.detach())
        if rank == 0:
            torch.save({"grads": first, "losses": losses}, out)
    finally:
        dist.destroy_process_group()


def single_process_grads(scheme: str, options: dict) -> dict:
    model = make_model(scheme, options)
    loss = sum(model(**rank_batches(model, r, WORLD, 0)).loss for r in range(WORLD)) / WORLD
    loss.backward()
    return grads(model)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_world(scheme: str, options: dict, fsdp: bool = False, attempts: int = 2) -> dict:
    """Rank 0's results of ``tests/ddp_job.py``, run in a fresh interpreter with a time limit (a normal run takes
    about 10 s). Its output goes to a file, not a pipe: multiprocessing's helper processes inherit the output and
    can hold a pipe open after the job has ended. An attempt that still times out is retried once on a fresh port;
    a wrong gradient fails the test either way."""
    with tempfile.TemporaryDirectory() as tmp:
        out, log = os.path.join(tmp, "rank0.pt"), os.path.join(tmp, "job.log")
        job = [
            sys.executable,
            os.path.join(os.path.dirname(__file__), "ddp_job.py"),
            scheme,
            json.dumps(options),
            "1" if fsdp else "0",
            out,
        ]
        for attempt in range(attempts):
            with open(log, "w") as output:
                try:
                    result = subprocess.run(job, stdout=output, stderr=subprocess.STDOUT, timeout=120)
                except subprocess.TimeoutExpired:
                    if attempt + 1 == attempts:
                        raise
                    continue
            with open(log) as output:
                assert result.returncode == 0, f"the 2-process job failed:\n{output.read()[-3000:]}"
            return torch.load(out)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
@pytest.mark.parametrize("scheme, options", SCHEMES, ids=[s for s, _ in SCHEMES])
def test_ddp_gradients_equal_single_process(scheme, options):
    result = run_world(scheme, options)
    expected = single_process_grads(scheme, options)
    assert result["grads"].keys() == expected.keys() and expected
    for name, grad in expected.items():
        torch.testing.assert_close(result["grads"][name], grad, atol=1e-6, rtol=0, msg=name)
    assert all(torch.isfinite(loss) for loss in result["losses"])


@pytest.mark.skipif(sys.platform != "linux", reason="FSDP2 on CPU/gloo is exercised on Linux only")
def test_fsdp2_gradients_equal_single_process():
    """FSDP2 (``fully_shard``) with gloo on CPU: the patch lives on submodules FSDP keeps, so it survives."""
    result = run_world("mrope-i", {}, fsdp=True)
    expected = single_process_grads("mrope-i", {})
    assert result["grads"].keys() == expected.keys() and expected
    for name, grad in expected.items():
        torch.testing.assert_close(result["grads"][name], grad, atol=1e-6, rtol=0, msg=name)
