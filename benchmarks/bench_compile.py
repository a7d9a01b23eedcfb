"""Graph breaks of the compiled forward, stock transformers against patched models, prefill and decode, one run.

For each family (tiny seeded models of ``mmrope_hf.testing``) and scheme, on the same left-padded batch of two
image prompts, ``torch._dynamo.explain`` counts the graph breaks of:

- ``prefill``: the whole forward over the prompts (vision tower, position building, language model);
- ``decode``: one cached step as ``generate`` makes it (a static cache, ``position_ids`` and the 2-D mask);
- ``loop``: one cached step of a hand-written decode loop (a static cache, the 2-D mask over past + new tokens, no
  ``position_ids``); stock transformers 5.23 crashes there ("crash").

Patched prefill breaks must not exceed stock's, and patched decode steps must have none (the script exits non-zero
otherwise). Prints one table, optionally JSON.

    python benchmarks/bench_compile.py [--families qwen2_5_vl llava] [--schemes mrope-i circle] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time

import torch
import torch._dynamo
from transformers import StaticCache

import mmrope_hf
from mmrope_hf.testing import (
    LLAVA_FAMILIES,
    MROPE_FAMILIES,
    TILE_FAMILIES,
    build_inputs,
    build_llava_inputs,
    build_tile_inputs,
    tiny_llava,
    tiny_model,
    tiny_tile_model,
)

SCHEMES = ("mrope", "mrope-i", "mhrope", "circle", "v2pe")
FAMILIES = (
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3_vl",
    "qwen3_5",
    "glm4v",
    "paddleocr_vl",
    "ernie4_5_vl_moe",
    "cosmos3_edge",
    "llava",
    "internvl",
    "gemma3",
)
QWEN_ROWS = [[3, ("image", 1, 4, 4), 2], [2, ("image", 1, 4, 4), 1, ("image", 1, 4, 6), 2]]
LLAVA_ROWS = [[3, ("image", 60, 80), 2], [2, ("image", 40, 40), 1, ("image", 30, 50), 3]]
TILE_ROWS = [[3, ("image", 112, 224), 2], [2, ("image", 56, 56), 1, ("image", 112, 112), 3]]


def model_and_inputs(family: str) -> tuple[torch.nn.Module, dict]:
    if family in LLAVA_FAMILIES:
        return tiny_llava(family), build_llava_inputs(family, LLAVA_ROWS)
    if family in TILE_FAMILIES:
        return tiny_tile_model(family), build_tile_inputs(family, TILE_ROWS)
    return tiny_model(family), build_inputs(family, QWEN_ROWS)


def breaks(fn, **kwargs) -> int | str:
    torch._dynamo.reset()
    try:
        with torch.no_grad():
            return torch._dynamo.explain(fn)(**kwargs).graph_break_count
    except Exception as error:  # stock transformers 5.23 crashes in a hand-written decode loop
        return f"crash ({type(error).__name__})"


def generation_positions(model, inputs: dict) -> torch.Tensor:
    """What generate passes to every step: its prompt positions (text row first), as built before the prefill."""
    return model._prepare_position_ids_for_generation(inputs["input_ids"], dict(inputs))


def counts(model, inputs: dict) -> dict[str, int | str]:
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    out = {"prefill": breaks(model, **inputs)}
    positions = generation_positions(model, inputs)
    step_positions = positions[..., -1:] + 1
    step_mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    for what in ("decode", "loop"):
        cache = StaticCache(config=model.config, max_cache_len=ids.shape[1] + 4)
        with torch.no_grad():
            model(**inputs, past_key_values=cache, use_cache=True, position_ids=positions)
        step = dict(input_ids=ids[:, -1:], attention_mask=step_mask, past_key_values=cache, use_cache=True)
        if what == "decode":
            step["position_ids"] = step_positions
        out[what] = breaks(model, **step)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    unknown = set(args.families) - set(MROPE_FAMILIES + LLAVA_FAMILIES + TILE_FAMILIES)
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}")
    torch.set_num_threads(1)
    rows, failures = [], []
    start = time.perf_counter()
    header = f"{'family':<16} {'scheme':<12} {'prefill':>8} {'decode':>8} {'loop':>22}"
    print(header)
    print("-" * len(header))
    for family in args.families:
        stock = None
        for scheme in ("stock", *args.schemes):
            gc.collect()  # an MHRoPE model collected mid-compile would swap apply_rotary_pos_emb under Dynamo's guards
            model, inputs = model_and_inputs(family)
            if scheme != "stock":
                mmrope_hf.patch_model(model, scheme)
            row = {"family": family, "scheme": scheme, **counts(model, inputs)}
            rows.append(row)
            print(f"{family:<16} {scheme:<12} {row['prefill']!s:>8} {row['decode']!s:>8} {row['loop']!s:>22}")
            if scheme == "stock":
                stock = row
                continue
            assert stock is not None
            if not isinstance(row["prefill"], int) or row["prefill"] > stock["prefill"]:
                failures.append(f"{family}/{scheme}: prefill {row['prefill']} breaks, stock {stock['prefill']}")
            for what in ("decode", "loop"):
                if row[what] != 0:
                    failures.append(f"{family}/{scheme}: {what} step {row[what]} breaks")
    elapsed = time.perf_counter() - start
    print("(graph breaks of torch._dynamo.explain; decode: a static-cache step as generate makes it; loop: the same")
    print(f" step without position_ids, as a hand-written loop makes it; {elapsed:.0f} s)")
    for failure in failures:
        print(f"MISSED: {failure}")
    print("done" if not failures else f"{len(failures)} goal(s) missed")
    if args.json:
        meta = {"torch": torch.__version__, "python": platform.python_version(), "seconds": round(elapsed, 1)}
        with open(args.json, "w") as f:
            json.dump({**meta, "rows": rows, "missed": failures}, f, indent=2)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
