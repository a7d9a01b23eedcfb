"""vLLM plugin cost: per-request positions against vLLM's own, and offline throughput against stock vLLM.

Run in the serving venv (scripts/setup_vllm_venv.sh):

    OMP_NUM_THREADS=1 .venv-vllm/bin/python benchmarks/bench_vllm.py

1. Positions: the plugin's ``get_mrope_input_positions`` (the scheme's patch state, mrope-i) against vLLM's own
   Qwen2.5-VL ``get_mrope_input_positions`` on the same prompts, 256 to 16k tokens, 1 to 16 images (half the
   tokens visual); median of repeats, ratio = plugin / vLLM.
2. Throughput: offline ``LLM.generate`` of the same batch (image prompts, greedy) on the tiny Qwen2.5-VL
   checkpoint of the serving tests, with its mrope-i key (plugin) and without (stock vLLM code), alternated;
   ratio = plugin tokens/s / stock tokens/s (goal >= 0.97).

Writes benchmarks/results_vllm_cpu.json and .txt.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "serving"))
from vllm_cases import ENGINE, build_checkpoint, image, with_scheme  # noqa: E402

IMAGE_PAD, VISION_START, VISION_END = 252, 250, 251


def request(total: int, images: int) -> tuple[list[int], list]:
    """Token ids of ``total`` tokens, half of them ``images`` images of equal square-ish grids, and the features."""
    per_image = max(4, total // 2 // images)
    side = max(1, int(per_image**0.5))
    h, w = side, per_image // side  # merged grid; patches 2h x 2w
    text = (total - images * (h * w + 2)) // (images + 1)
    ids: list[int] = []
    features = []
    for _ in range(images):
        ids += [7] * text + [VISION_START]
        grid = torch.tensor([1, 2 * h, 2 * w])
        features.append(
            SimpleNamespace(
                modality="image",
                mm_position=SimpleNamespace(offset=len(ids), length=h * w),
                data={"image_grid_thw": SimpleNamespace(data=grid)},
            )
        )
        ids += [IMAGE_PAD] * (h * w) + [VISION_END]
    ids += [7] * (total - len(ids))
    return ids, features


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def bench_positions(checkpoint: Path) -> list[dict]:
    import transformers
    from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration as Stock

    from mmrope_hf.integrations.vllm.serving import serving_scheme

    hf_config = transformers.AutoConfig.from_pretrained(checkpoint)
    scheme = serving_scheme(hf_config, takes_3d_positions=True)
    assert scheme is not None
    stock = Stock.__new__(Stock)
    nn.Module.__init__(stock)
    stock.config = hf_config
    rows = []
    for total in (256, 1024, 4096, 16384):
        for images in (1, 4, 16):
            ids, features = request(total, images)
            repeats = 20 if total <= 4096 else 5
            ours = median_ms(lambda i=ids, f=features: scheme.positions(i, f), repeats)
            theirs = median_ms(lambda i=ids, f=features: Stock.get_mrope_input_positions(stock, i, f), repeats)
            rows.append(
                {"tokens": total, "images": images, "plugin_ms": ours, "vllm_ms": theirs, "ratio": ours / theirs}
            )
            print(f"positions {total:6d} tokens {images:2d} images: plugin {ours:8.3f} ms, vLLM {theirs:8.3f} ms, "
                  f"ratio {ours / theirs:.2f}", flush=True)  # fmt: skip
    return rows


def throughput(checkpoint: Path, prompts: list, max_tokens: int) -> float:
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(checkpoint), **{**ENGINE, "max_num_seqs": 16})
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    llm.generate(prompts[:2], params, use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    tokens = sum(len(o.prompt_token_ids) + len(o.outputs[0].token_ids) for o in outputs)
    del llm
    gc.collect()
    return tokens / elapsed


def bench_throughput(base: Path, schemed: Path, rounds: int = 2) -> dict:
    text = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>describe this image<|im_end|>\n"
    prompts = [
        {"prompt": text + "<|im_start|>assistant\n", "multi_modal_data": {"image": image(i, 224, 168)}}
        for i in range(32)
    ]
    runs: dict[str, list[float]] = {"stock": [], "plugin": []}
    for _ in range(rounds):
        for name, path in (("stock", base), ("plugin", schemed)):
            runs[name].append(throughput(path, prompts, max_tokens=32))
            print(f"throughput {name}: {runs[name][-1]:.0f} tokens/s", flush=True)
    best = {name: max(values) for name, values in runs.items()}
    return {"runs_tokens_per_s": runs, "best": best, "ratio": best["plugin"] / best["stock"], "prompts": len(prompts)}


def main() -> None:
    import vllm

    with tempfile.TemporaryDirectory() as tmp:
        base = build_checkpoint("qwen2_5_vl", Path(tmp) / "stock")
        schemed = with_scheme(base, Path(tmp) / "mrope-i", "mrope-i")
        torch.set_num_threads(1)
        results = {
            "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, vllm {vllm.__version__}",
            "positions": bench_positions(schemed),
            "throughput": bench_throughput(base, schemed),
        }
    out = ROOT / "benchmarks" / "results_vllm_cpu"
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    lines = [results["machine"], "positions (plugin mrope-i vs vLLM's own Qwen2.5-VL get_mrope_input_positions):"]
    lines += [
        f"  {r['tokens']:6d} tokens {r['images']:2d} images: plugin {r['plugin_ms']:8.3f} ms"
        f"  vLLM {r['vllm_ms']:8.3f} ms  ratio {r['ratio']:.2f}"
        for r in results["positions"]
    ]
    t = results["throughput"]
    lines.append(
        f"offline throughput ({t['prompts']} image prompts, 32 new tokens): plugin {t['best']['plugin']:.0f} tokens/s, "
        f"stock {t['best']['stock']:.0f} tokens/s, ratio {t['ratio']:.3f}"
    )
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
