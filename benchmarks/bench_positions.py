"""Position building: stock transformers get_rope_index vs mmrope-hf, same inputs, one run.

Batches of B rows, each with N images (random sizes) and text between them, through
``Qwen2_5_VLModel.get_rope_index`` of an unpatched tiny model (stock transformers) and of the same model
patched with each scheme (mmrope-hf's loop-free builder). Prints a table of median times and the ratio
stock / mmrope-hf (higher is faster), optionally JSON.

    python benchmarks/bench_positions.py [--batches 1 8 32] [--images 1 4 16] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

import mmrope_hf
from mmrope_hf.testing import build_inputs, tiny_model

SCHEMES = ("mrope", "mrope-i", "spatial-reset", "circle")


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


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--images", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    stock = tiny_model("qwen2_5_vl")
    patched = {s: mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), s) for s in SCHEMES}
    rows = []
    print(f"{'batch':>5} {'images':>6} {'tokens':>7} {'stock ms':>9} " + " ".join(f"{s + ' x':>15}" for s in SCHEMES))
    for b in args.batches:
        for n in args.images:
            inputs = batch(b, n, seed=b * 100 + n)
            base = timed(lambda: stock.model.get_rope_index(**inputs), args.repeat)
            row = {"batch": b, "images": n, "tokens": int(inputs["input_ids"].numel()), "stock_ms": base * 1e3}
            for s, model in patched.items():
                row[f"{s}_ms"] = timed(lambda: model.model.get_rope_index(**inputs), args.repeat) * 1e3
            rows.append(row)
            ratios = " ".join(f"{row['stock_ms'] / row[f'{s}_ms']:>15.1f}" for s in SCHEMES)
            print(f"{b:>5} {n:>6} {row['tokens']:>7} {row['stock_ms']:>9.2f} {ratios}")
    print("(columns per scheme: stock time / mmrope-hf time; > 1 means mmrope-hf is faster)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
