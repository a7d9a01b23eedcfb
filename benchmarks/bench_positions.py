"""Position building: stock transformers get_rope_index vs mmrope-hf, same inputs, one run, idle or under load.

Batches of B rows, each with N images (random sizes) and text between them, through
``Qwen2_5_VLModel.get_rope_index`` of an unpatched tiny model (stock transformers) and of the same model
patched with each scheme (mmrope-hf's loop-free builder). Stock and every scheme are timed in turn within each
repeat (so that they see the same load); the table gives the median times and the ratio stock / mmrope-hf
(higher is faster). ``circle`` is the Circle-RoPE preset (two position sets: circle and mrope, staggered);
``circle cold`` forgets its cached rings before every call (every image shape new). ``torch ops`` is mrope-i's
loop-free builder through torch ops on the CPU (its accelerator path; the CPU path before numpy): the column
that shows what the load does to many small torch ops.

``--load N`` starts N processes beside the benchmark that never sleep, as vLLM's CPU engines do: each runs
small torch matmuls in a loop with its own OpenMP threads spinning between parallel regions
(``OMP_WAIT_POLICY=ACTIVE``), and stops them at the end. With more runnable threads than cores, every intra-op
parallel region of torch waits until the scheduler runs its worker threads; this is the load under which the
torch batch builder was 50x slower than with one thread. Thread settings are torch's defaults (the point of the
benchmark) unless ``--threads`` is given.

    python benchmarks/bench_positions.py [--batches 1 8 32] [--images 1 4 16] [--repeat 15] [--rounds 3]
        [--load 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch
from timing import interleaved

import mmrope_hf
from mmrope_hf.positions import circle
from mmrope_hf.positions.batch import batch_positions
from mmrope_hf.positions.layout import IMAGE, VIDEO, visual_items
from mmrope_hf.positions.registry import POSITION_DESIGNS
from mmrope_hf.testing import build_inputs, tiny_model

SCHEMES = ("mrope", "mrope-i", "spatial-reset", "circle")
COLUMNS = (*SCHEMES, "circle cold", "torch ops")
LOAD_SOURCE = """
import torch
a = torch.randn(192, 192)
while True:
    for _ in range(100):
        a @ a
"""


def batch(rows: int, images: int, seed: int) -> dict:
    rng = random.Random(seed)
    layout = []
    for _ in range(rows):
        row = [rng.randint(8, 64)]
        for _ in range(images):
            row += [("image", 1, 2 * rng.randint(4, 16), 2 * rng.randint(4, 16)), rng.randint(8, 64)]
        layout.append(row)
    inputs = build_inputs("qwen2_5_vl", layout, seed=seed)
    return {k: inputs[k] for k in ("input_ids", "mm_token_type_ids", "image_grid_thw", "attention_mask")}


def start_load(count: int) -> list[subprocess.Popen]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    procs = [subprocess.Popen([sys.executable, "-c", LOAD_SOURCE], env=env) for _ in range(count)]
    if procs:
        time.sleep(3.0)  # imports done, loops running
    return procs


def stop_load(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait()


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def cold(fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        circle.clear_ring_cache()
        return fn()

    return run


def run(batches: list[int], images: list[int], repeat: int, rounds: int) -> list[dict]:
    """Every (batch, images) cell measured ``rounds`` times, rounds apart (the load changes); per cell the median
    over rounds of each time and ratio, and every round's ratios."""
    stock = tiny_model("qwen2_5_vl")
    patched = {s: mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), s) for s in SCHEMES}
    cells = [(b, n) for b in batches for n in images]
    measured: dict[tuple[int, int], list[dict]] = {cell: [] for cell in cells}
    for round_ in range(rounds):
        for b, n in cells:
            measured[(b, n)].append(measure(stock, patched, b, n, repeat, seed=round_))
    print(f"{'batch':>5} {'images':>6} {'tokens':>7} {'stock ms':>9} " + " ".join(f"{c + ' x':>13}" for c in COLUMNS))
    rows = []
    for b, n in cells:
        per_round = measured[(b, n)]
        row = {key: statistics.median(r[key] for r in per_round) for key in per_round[0]}
        row.update(batch=b, images=n, tokens=per_round[0]["tokens"])
        row["rounds"] = [{c: r[f"{c}_ratio"] for c in COLUMNS} for r in per_round]
        rows.append(row)
        ratios = " ".join(f"{row[f'{c}_ratio']:>13.1f}" for c in COLUMNS)
        print(f"{b:>5} {n:>6} {row['tokens']:>7} {row['stock_ms']:>9.2f} {ratios}", flush=True)
    return rows


def torch_ops(model, inputs: dict) -> Callable[[], object]:
    state = model.model._mmrope
    designs, options = state.schedule.designs, state.position_options()
    forms = [POSITION_DESIGNS.get(name).batch for name in designs]
    items = [visual_items(IMAGE, inputs["image_grid_thw"]), visual_items(VIDEO, None)]
    types, mask = inputs["mm_token_type_ids"], inputs["attention_mask"]
    return lambda: batch_positions(designs, forms, types, mask, items, 2, options, host=False)


def measure(stock, patched: dict, b: int, n: int, repeat: int, seed: int) -> dict:
    """Median ms of stock and of every column on one batch, and the ratios stock / column."""
    inputs = batch(b, n, seed=b * 100 + n)
    fns: dict[str, Callable[[], object]] = {"stock": lambda: stock.model.get_rope_index(**inputs)}
    for s, model in patched.items():
        fns[s] = lambda model=model: model.model.get_rope_index(**inputs)
    fns["circle cold"] = cold(fns["circle"])
    fns["torch ops"] = torch_ops(patched["mrope-i"], inputs)
    medians = interleaved(fns, repeat, seed)
    row = {"batch": b, "images": n, "tokens": int(inputs["input_ids"].numel())}
    row.update({f"{name}_ms": seconds * 1e3 for name, seconds in medians.items()})
    row.update({f"{c}_ratio": medians["stock"] / medians[c] for c in COLUMNS})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--images", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per function and cell, per round")
    parser.add_argument("--rounds", type=int, default=3, help="passes over all cells; medians over rounds")
    parser.add_argument("--load", type=int, default=0, help="busy processes to start beside the benchmark")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own setting)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    procs = start_load(args.load)
    try:
        before = load_average()
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, {os.cpu_count()} cores; "
            f"load: {args.load} busy processes started here; load average before: {before}",
            flush=True,
        )
        rows = run(args.batches, args.images, args.repeat, args.rounds)
        after = load_average()
    finally:
        stop_load(procs)
    print(
        f"(stock time / mmrope-hf time: per round the median of {args.repeat} calls, then the median of "
        f"{args.rounds} rounds; > 1: mmrope-hf is faster) load average after: {after}"
    )
    if args.json:
        meta = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cores": os.cpu_count(),
            "load_processes": args.load,
            "load_average_before": before,
            "load_average_after": after,
            "repeat": args.repeat,
            "rounds": args.rounds,
        }
        with open(args.json, "w") as f:
            json.dump({**meta, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
