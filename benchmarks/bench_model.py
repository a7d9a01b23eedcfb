"""Forward, training step and decode-step latency of patched models against stock transformers, one run.

A small Qwen2.5-VL (4 layers, hidden 512, 8 heads / 8 KV heads, head_dim 64, sdpa) on prompts of text and
32x32-token images; the same weights and inputs for stock and every scheme. Each measurement is the median of
``--repeat`` runs, taken round-robin over the models so that drift hits all of them alike. Prints a table of
times and ratios (scheme / stock; 1.00 = the same cost), optionally JSON and a PNG of cost vs length.

    python benchmarks/bench_model.py [--tokens 1024 2048 4096] [--repeat 3] [--json out.json] [--plot out.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import mmrope_hf
from mmrope_hf.testing import build_inputs, tiny_model

SCHEMES = ("mrope-i", "spatial-reset", "mhrope", "circle")
CONFIG = dict(
    attn_implementation="sdpa",
    hidden_size=512,
    intermediate_size=1024,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=8,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [8, 12, 12]},
)


def prompt_rows(tokens: int) -> list:
    """One row of about ``tokens`` tokens: text around 32x32-token images (grids of 1x64x64 patches)."""
    images = max(1, tokens // 1100)
    row = [8]
    for _ in range(images):
        row += [("image", 1, 64, 64), 40]
    row.append(max(8, tokens - images * (1024 + 2 + 40) - 8))
    return [row]


def prompt(tokens: int) -> dict:
    return build_inputs("qwen2_5_vl", prompt_rows(tokens))


def forward(model, inputs):
    with torch.no_grad():
        model(**inputs)


def train_step(model, inputs):
    model.zero_grad(set_to_none=True)
    model(**inputs, labels=inputs["input_ids"]).loss.backward()


def decode_step(model, inputs, steps: int = 8) -> float:
    """Seconds per cached decoding step: generate(steps + 1) minus generate(1), over ``steps``."""

    def run(n):
        start = time.perf_counter()
        model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        return time.perf_counter() - start

    return (run(steps + 1) - run(1)) / steps


def measure(models: dict, inputs: dict, what: str, repeat: int) -> dict:
    times = {name: [] for name in models}
    for model in models.values():  # warm-up
        model.train(what == "train")
        forward(model, inputs) if what != "train" else train_step(model, inputs)
    for _ in range(repeat):
        for name, model in models.items():
            model.train(what == "train")
            if what == "decode":
                times[name].append(decode_step(model, inputs))
                continue
            start = time.perf_counter()
            forward(model, inputs) if what == "forward" else train_step(model, inputs)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json")
    parser.add_argument("--plot")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {"stock": tiny_model("qwen2_5_vl", **CONFIG)}
    for scheme in SCHEMES:
        models[scheme] = mmrope_hf.patch_model(tiny_model("qwen2_5_vl", **CONFIG), scheme)
    rows = []
    header = f"{'what':<8} {'tokens':>6} {'stock ms':>9} " + " ".join(f"{s:>14}" for s in SCHEMES)
    print(header + "\n" + "-" * len(header))
    for tokens in args.tokens:
        inputs = prompt(tokens)
        for what in ("forward", "train", "decode"):
            result = measure(models, inputs, what, args.repeat)
            rows.append(
                {
                    "what": what,
                    "tokens": int(inputs["input_ids"].shape[1]),
                    **{f"{k}_ms": v * 1e3 for k, v in result.items()},
                }
            )
            ratios = " ".join(f"{result[s] / result['stock']:>14.3f}" for s in SCHEMES)
            print(f"{what:<8} {rows[-1]['tokens']:>6} {result['stock'] * 1e3:>9.1f} {ratios}")
    print("(per scheme: time / stock time; 1.000 = the same cost)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, f, indent=2)
    if args.plot:
        plot(rows, args.plot)


def plot(rows: list, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, what in zip(axes, ("forward", "train", "decode"), strict=True):
        data = [r for r in rows if r["what"] == what]
        for name in ("stock", *SCHEMES):
            ax.plot([r["tokens"] for r in data], [r[f"{name}_ms"] for r in data], marker="o", label=name)
        ax.set_title(f"{what} (ms)")
        ax.set_xlabel("prompt tokens")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
