"""Peak memory of an MHRoPE forward against an MRoPE-I forward (and stock), same model, same inputs.

On CUDA it reads ``torch.cuda.max_memory_allocated`` above what is allocated before the forward; on CPU the
peak of live tensor bytes during the forward, from the torch profiler's memory timeline (the resident set
size of a process is too coarse: the allocator keeps freed pages). The target of the MHRoPE issue: MHRoPE
within 5% of MRoPE-I at 8k tokens.

    python benchmarks/memory_mhrope.py [--tokens 8192] [--device cpu|cuda] [--dtype float32|bfloat16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import torch
from bench_model import CONFIG, prompt_rows
from torch.profiler import ProfilerActivity, profile
from torch.profiler._memory_profiler import MemoryProfileTimeline

import mmrope_hf
from mmrope_hf.testing import build_inputs, tiny_model

SCHEMES = ("stock", "mrope-i", "mhrope")


def measure(scheme: str, tokens: int, device: str, dtype: str) -> dict:
    model = tiny_model("qwen2_5_vl", **CONFIG).to(device=device, dtype=getattr(torch, dtype))
    if scheme != "stock":
        mmrope_hf.patch_model(model, scheme)

    def prepared(rows: list) -> dict:
        inputs = {k: v.to(device) for k, v in build_inputs("qwen2_5_vl", rows).items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(getattr(torch, dtype))
        return inputs

    inputs = prepared(prompt_rows(tokens))
    with torch.no_grad():
        model(**prepared([[4, ("image", 1, 4, 4), 2]]))  # warm-up: lazy initialisation is not the scheme's cost
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            model(**inputs)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
        else:
            with profile(
                activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
            ) as prof:
                model(**inputs)
            _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
            peak = max(sum(s) for s in sizes)
    return {"scheme": scheme, "tokens": int(inputs["input_ids"].shape[1]), "peak_bytes": int(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = [measure(scheme, args.tokens, args.device, args.dtype) for scheme in SCHEMES]
    by = {r["scheme"]: r["peak_bytes"] for r in rows}
    print(
        f"peak memory of one forward, {rows[0]['tokens']} tokens, {args.device} {args.dtype} "
        f"(Qwen2.5-VL, 4 layers, hidden 512, 8 heads / 8 KV heads, sdpa)"
    )
    print(f"{'scheme':<10} {'peak MiB':>10} {'vs mrope-i':>11} {'vs stock':>9}")
    for r in rows:
        print(
            f"{r['scheme']:<10} {r['peak_bytes'] / 2**20:>10.1f} {r['peak_bytes'] / by['mrope-i']:>11.3f} "
            f"{r['peak_bytes'] / by['stock']:>9.3f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": args.device, "dtype": args.dtype, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
