"""GPU check: patched / stock cost in bf16 for every preset, host syncs of a patched decode step, compiled generation.

On one CUDA device, in under 5 minutes (a time budget guards the compiled part), for every preset of
``mmrope_hf.available_schemes()`` (the MRoPE family, MHRoPE, Circle-RoPE, the baselines; the ``-paper`` presets and
``circle-age`` on a Qwen3-VL of head_dim 128, the others on a Qwen2.5-VL of head_dim 64; 4 layers, sdpa, bf16):

- ``forward``: a prompt of text and images (about ``--tokens`` tokens), patched time / stock time;
- ``decode``: one cached decoding step (static cache): the patched model as a hand-written loop calls it (a 2-D
  mask over past + new tokens, no ``position_ids``), stock given its position ids (its own path crashes there in
  transformers 5.23); patched time / stock time;
- ``syncs``: host synchronisations in one patched decode step, counted with
  ``torch.cuda.set_sync_debug_mode("warn")``;
- ``compiled``: ``generate(cache_implementation="static")`` with the decode step compiled (fullgraph), for
  ``--compile-schemes``: whether it gives the tokens of uncompiled generation, and ms per new token compiled /
  uncompiled.

It prints one table and exits 1 when a goal is missed: a patched decode step syncs, a forward ratio is over
``--max-forward-ratio`` (1.05), or compiled generation gives other tokens than uncompiled generation (while the
stock model's do not differ). Without a CUDA device it exits 3 and says so (:data:`NEEDS_GPU`).
``--device cpu --dry-run`` runs the same measurements on tiny models on the CPU (the compiled part with the
``eager`` backend), skips the sync count and judges no timing (CPU timings of tiny models say nothing of a GPU):
a check that the script works, for machines without a GPU.

    python benchmarks/gpu_check.py [--json out.json] [--schemes mrope-i circle] [--tokens 2048]
    python benchmarks/gpu_check.py --device cpu --dry-run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from timing import interleaved

import mmrope_hf
from mmrope_hf.testing import build_inputs, tiny_model

EXIT_OK, EXIT_MISSED, EXIT_NEEDS_GPU = 0, 1, 3
NEEDS_GPU = (
    "gpu_check needs a CUDA GPU: torch.cuda.is_available() is False here (torch {torch}). Run it on a machine with "
    "an NVIDIA GPU and a CUDA build of torch; `--device cpu --dry-run` only checks that the script works."
)
PAPER = ("mrope-i-paper", "mhrope-paper", "circle-age")  # frequency sections for head_dim 128 / 8 KV heads
COMPILE_SCHEMES = ("mrope-i", "circle")  # one set, two sets (per-layer hooks, per-set decode deltas)
BUDGET_S = 200.0  # the compiled part stops (rows marked "skipped: time") once the whole check has run this long
GPU_TEXT = dict(attn_implementation="sdpa", hidden_size=512, intermediate_size=1024, num_hidden_layers=4)
GPU_QWEN25 = dict(
    GPU_TEXT,
    num_attention_heads=8,
    num_key_value_heads=8,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [8, 12, 12]},
)
GPU_QWEN3 = dict(GPU_TEXT, num_attention_heads=8, num_key_value_heads=8, head_dim=128)
TINY_QWEN3 = dict(head_dim=128, num_key_value_heads=8)


@dataclass
class Row:
    scheme: str
    family: str
    forward: float | None = None  # patched / stock
    decode: float | None = None
    syncs: int | None = None
    compiled_equal: bool | None = None
    compiled_speedup: float | None = None  # uncompiled ms per token / compiled ms per token
    stock_compiled_equal: bool | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Settings:
    device: str
    dry_run: bool
    tokens: int
    repeat: int
    steps: int
    max_forward_ratio: float
    dtype: torch.dtype = torch.bfloat16


def family_of(scheme: str) -> str:
    return "qwen3_vl" if scheme in PAPER else "qwen2_5_vl"


def make_model(family: str, settings: Settings):
    if settings.dry_run:
        overrides = TINY_QWEN3 if family == "qwen3_vl" else {}
        model = tiny_model(family, attn_implementation="sdpa", **overrides)
    else:
        overrides = GPU_QWEN3 if family == "qwen3_vl" else GPU_QWEN25
        model = tiny_model(family, **overrides)
    return model.to(settings.device, dtype=settings.dtype)


def prompt(family: str, settings: Settings) -> dict:
    """One row of about ``settings.tokens`` tokens: text around images of 16 x 16 (GPU) or 2 x 2 (dry run) tokens."""
    side = 4 if settings.dry_run else 32  # patches per side before the 2 x 2 merge
    per_image = (side // 2) ** 2 + 24
    row: list = [8]
    for _ in range(max(1, settings.tokens // (2 * per_image))):
        row += [("image", 1, side, side), 24]
    row.append(max(4, settings.tokens - sum(x if isinstance(x, int) else per_image - 24 for x in row)))
    inputs = build_inputs(family, [row])
    return {k: v.to(settings.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fns: dict[str, Callable[[], object]], settings: Settings) -> dict[str, float]:
    """Median seconds of each function, timed in turn (in the given order), the device synchronised around each."""
    return interleaved(fns, settings.repeat, sync=lambda: synchronize(settings.device))


class Decoder:
    """Prefill into a static cache, then one decoding step per call (the same token, the mask one column longer;
    the cache is rewound so that every call decodes at the same place)."""

    def __init__(self, model, inputs: dict, explicit_positions: bool, settings: Settings) -> None:
        from transformers import StaticCache

        self.model, self.settings = model, settings
        length = inputs["input_ids"].shape[1]
        self.cache = StaticCache(config=model.config, max_cache_len=length + 2)
        with torch.no_grad():
            out = model(**inputs, past_key_values=self.cache, use_cache=True)
        self.token = out.logits[:, -1:].argmax(-1)
        ones = torch.ones_like(self.token)
        self.mask = torch.cat([inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])), ones], dim=1)
        self.position = None
        if explicit_positions:  # text after the prompt: index + rope_deltas, on every row of (3, B, 1)
            deltas = model.model.rope_deltas
            self.position = (self.mask.sum(-1, keepdim=True) - 1 + deltas.to(self.mask.device))[None].expand(3, -1, -1)
        self.cache_position = torch.tensor([length], device=settings.device)

    def step(self):
        kwargs = {"position_ids": self.position} if self.position is not None else {}
        with torch.no_grad():
            out = self.model(
                input_ids=self.token,
                attention_mask=self.mask,
                past_key_values=self.cache,
                cache_position=self.cache_position,
                use_cache=True,
                **kwargs,
            )
        for layer in self.cache.layers:  # rewind (on the device: no sync)
            if hasattr(layer, "cumulative_length"):
                layer.cumulative_length.sub_(1)
        return out


def count_syncs(fn: Callable[[], object]) -> int:
    """Host synchronisations during ``fn()``: torch warns once per synchronising call in "warn" mode."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
            torch.cuda.synchronize()  # (outside the mode below; this one is ours and not counted)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum(1 for w in caught if "synchroniz" in str(w.message).lower())


def generate_static(model, inputs: dict, settings: Settings, compiled: bool):
    from transformers import CompileConfig

    config = None
    if compiled:
        backend = "eager" if settings.dry_run else "inductor"
        config = CompileConfig(fullgraph=True, backend=backend, mode=None if settings.dry_run else "reduce-overhead")
        config._compile_all_devices = True  # generate compiles on accelerators only, unless asked
    model.generation_config.disable_compile = not compiled
    start = time.perf_counter()
    out = model.generate(
        **inputs,
        max_new_tokens=settings.steps,
        min_new_tokens=settings.steps,
        do_sample=False,
        cache_implementation="static",
        compile_config=config,
        return_dict_in_generate=True,
    )
    synchronize(settings.device)
    return out.sequences, (time.perf_counter() - start) / settings.steps


def compiled_generation(model, inputs: dict, settings: Settings) -> tuple[bool, float]:
    """(compiled tokens == uncompiled tokens, uncompiled s per token / compiled s per token)."""
    import torch._dynamo

    torch._dynamo.reset()
    want, _ = generate_static(model, inputs, settings, compiled=False)
    _, eager_s = generate_static(model, inputs, settings, compiled=False)
    generate_static(model, inputs, settings, compiled=True)  # compiles
    got, compiled_s = generate_static(model, inputs, settings, compiled=True)
    return torch.equal(got, want), eager_s / compiled_s


def check_scheme(scheme: str, stock, inputs: dict, settings: Settings, compile_it: bool, started: float) -> Row:
    family = family_of(scheme)
    row = Row(scheme, family)
    try:
        patched = mmrope_hf.patch_model(make_model(family, settings), scheme)
    except ValueError as error:  # a preset that does not fit this model
        row.notes.append(f"skipped: {error}")
        return row
    with torch.no_grad():
        times = timed({"stock": lambda: stock(**inputs), "patched": lambda: patched(**inputs)}, settings)
    row.forward = times["patched"] / times["stock"]
    stock_step = Decoder(stock, inputs, explicit_positions=True, settings=settings)
    patched_step = Decoder(patched, inputs, explicit_positions=False, settings=settings)
    times = timed({"stock": stock_step.step, "patched": patched_step.step}, settings)
    row.decode = times["patched"] / times["stock"]
    if settings.device == "cuda" and not settings.dry_run:
        patched_step.step()  # warm (lazy initialisation is not a decode step's work)
        row.syncs = count_syncs(patched_step.step)
    if compile_it:
        if time.perf_counter() - started > BUDGET_S:
            row.notes.append("compiled: skipped: time")
        else:
            row.compiled_equal, row.compiled_speedup = compiled_generation(patched, inputs, settings)
    return row


def missed_goals(rows: list[Row], settings: Settings) -> list[str]:
    """The goals each row misses, in words (timings are not judged on a dry run)."""
    missed = []
    for row in rows:
        if row.syncs:
            missed.append(f"{row.scheme}: {row.syncs} host sync(s) in a decode step (goal 0)")
        if not settings.dry_run and row.forward is not None and row.forward > settings.max_forward_ratio:
            missed.append(f"{row.scheme}: forward {row.forward:.3f}x stock (goal <= {settings.max_forward_ratio})")
        if row.compiled_equal is False and row.stock_compiled_equal is not False:
            missed.append(f"{row.scheme}: compiled static-cache generation gives other tokens than uncompiled")
    return missed


def table(rows: list[Row]) -> str:
    def cell(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    lines = [
        f"{'scheme':<28} {'family':<11} {'forward x':>9} {'decode x':>8} {'syncs':>5} {'compiled':>9} {'speedup':>7}"
        "  notes"
    ]
    for r in rows:
        equal = None if r.compiled_equal is None else ("same" if r.compiled_equal else "DIFFERS")
        lines.append(
            f"{r.scheme:<28} {r.family:<11} {cell(r.forward, '.3f'):>9} {cell(r.decode, '.3f'):>8} "
            f"{cell(r.syncs, 'd'):>5} {cell(equal, 's'):>9} {cell(r.compiled_speedup, '.2f'):>7}  {'; '.join(r.notes)}"
        )
    return "\n".join(lines)


def run(settings: Settings, schemes: list[str], compile_schemes: list[str]) -> list[Row]:
    started = time.perf_counter()
    rows, stocks, inputs = [], {}, {}
    for family in dict.fromkeys(family_of(s) for s in schemes):
        stocks[family] = make_model(family, settings)
        inputs[family] = prompt(family, settings)
    for family, stock in stocks.items():  # the control: does compiling change stock's tokens (bf16 numerics)?
        if any(family_of(s) == family for s in compile_schemes):
            stock_row = Row("(stock)", family)
            stock_row.compiled_equal, stock_row.compiled_speedup = compiled_generation(stock, inputs[family], settings)
            stock_row.stock_compiled_equal = stock_row.compiled_equal
            rows.append(stock_row)
    for scheme in schemes:
        family = family_of(scheme)
        row = check_scheme(scheme, stocks[family], inputs[family], settings, scheme in compile_schemes, started)
        row.stock_compiled_equal = next(
            (r.compiled_equal for r in rows if r.scheme == "(stock)" and r.family == family), None
        )
        rows.append(row)
        print(table([row]).splitlines()[1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="tiny models, no sync count, no timing goals")
    parser.add_argument("--schemes", nargs="+", help="presets (default: every preset)")
    parser.add_argument("--compile-schemes", nargs="*", default=list(COMPILE_SCHEMES))
    parser.add_argument("--tokens", type=int, help="prompt length (default 2048; dry run 48)")
    parser.add_argument("--repeat", type=int, help="timed repeats (default 10; dry run 2)")
    parser.add_argument("--steps", type=int, default=8, help="new tokens of the compiled generation")
    parser.add_argument("--max-forward-ratio", type=float, default=1.05)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(NEEDS_GPU.format(torch=torch.__version__), file=sys.stderr)
        return EXIT_NEEDS_GPU
    if args.device == "cpu" and not args.dry_run:
        print(NEEDS_GPU.format(torch=torch.__version__) + " (--device cpu needs --dry-run)", file=sys.stderr)
        return EXIT_NEEDS_GPU
    settings = Settings(
        device=args.device,
        dry_run=args.dry_run,
        tokens=args.tokens or (48 if args.dry_run else 2048),
        repeat=args.repeat or (2 if args.dry_run else 10),
        steps=args.steps if not args.dry_run else min(args.steps, 3),
        max_forward_ratio=args.max_forward_ratio,
    )
    schemes = args.schemes or mmrope_hf.available_schemes()
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (dry run)"
    print(f"gpu_check on {device_name}, torch {torch.__version__}, bf16, {settings.tokens} tokens", flush=True)
    started = time.perf_counter()
    rows = run(settings, schemes, [s for s in args.compile_schemes if s in schemes])
    print("\n" + table(rows))
    print(
        "(forward x / decode x: patched time / stock time; syncs: host syncs in one patched decode step; compiled: "
        "static-cache generation with the decode step compiled gives the uncompiled tokens; speedup: uncompiled / "
        f"compiled time per token) {time.perf_counter() - started:.0f} s"
    )
    missed = missed_goals(rows, settings)
    for line in missed:
        print("MISSED:", line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": device_name,
                    "torch": torch.__version__,
                    "rows": [asdict(r) for r in rows],
                    "missed": missed,
                },
                f,
                indent=2,
            )
    if settings.dry_run:
        print("dry run: timings are not judged; no sync count (it needs CUDA)")
    return EXIT_MISSED if missed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
