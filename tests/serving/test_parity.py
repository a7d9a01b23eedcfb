"""vLLM + plugin serves each integer scheme as transformers + mmrope-hf does, and not as the stock model.

Per family and scheme, one engine (one process) serves a text prompt, one image, two images and a video (the
same fps on both sides) in one batch: prompt logprobs within 1e-4 of transformers + mmrope-hf, the same greedy
tokens (and their logprobs), and on every visual prompt more than 1e-2 away from stock vLLM on the same weights,
unless the scheme is the family's stock model by construction (then within 1e-4 of stock). Without the plugin
vLLM serves the stock model, so these tests fail.
"""

from __future__ import annotations

import gc

import pytest
from vllm_cases import ENGINE, REQUESTS, VISUAL, max_diff, run_transformers, run_vllm

TOLERANCE = 1e-4
FAMILIES = ("qwen2_5_vl", "qwen3_vl")
SERVABLE = [
    ("mrope", {}),
    ("mrope-i", {}),
    ("spatial-reset", {}),
    ("vanilla", {}),
    ("mhrope", {}),
    ("mhrope", {"nope_heads": 1}),  # GQA (8 query / 4 KV heads) with a NoPE head: [1, 1, 1] + 1 unrotated
    ("videorope", {}),  # integer temporal stride 2
    ("hope", {}),  # eval mode: fixed stride 1, NoPE temporal pairs
    ("ablation-3d", {}),
    ("ablation-diagonal", {}),
    ("ablation-ilrope-freq", {}),
    ("ablation-modality-interval", {}),
    ("ablation-scaled-base", {}),
    ("ablation-text-spatial-reset", {}),
    ("ablation-videorope-freq", {}),
    ("ilrope", {}),
    ("omnirope", {}),
]
STOCK_BY_CONSTRUCTION = {("qwen2_5_vl", "mrope"), ("qwen3_vl", "mrope"), ("qwen3_vl", "ablation-3d")}


def serve(checkpoint):
    from vllm import LLM

    llm = LLM(model=str(checkpoint), **ENGINE)
    try:
        return run_vllm(llm)
    finally:
        del llm
        gc.collect()


@pytest.fixture(scope="module")
def stock_vllm(checkpoints):
    cache: dict[str, dict] = {}

    def get(family: str) -> dict:
        if family not in cache:
            cache[family] = serve(checkpoints(family))
        return cache[family]

    return get


def assert_parity(served: dict, reference: dict) -> None:
    for name in REQUESTS:
        got, want = served[name], reference[name]
        assert got["ids"] == want["ids"], f"{name}: vLLM and the transformers processor tokenised differently"
        assert max_diff(got["prompt_lp"], want["prompt_lp"]) <= TOLERANCE, name
        assert got["tokens"] == want["tokens"], name
        assert max_diff(got["gen_lp"], want["gen_lp"]) <= TOLERANCE, name


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "scheme, options", SERVABLE, ids=[s + "".join(f"-{k}={v}" for k, v in o.items()) for s, o in SERVABLE]
)
def test_scheme_matches_transformers(checkpoints, stock_vllm, family, scheme, options):
    checkpoint = checkpoints(family, scheme, **options)
    served = serve(checkpoint)
    assert_parity(served, run_transformers(checkpoint))
    stock = stock_vllm(family)
    for name in VISUAL:
        away = max_diff(served[name]["prompt_lp"], stock[name]["prompt_lp"])
        if (family, scheme) in STOCK_BY_CONSTRUCTION:
            assert away <= TOLERANCE, f"{name}: {scheme} is the stock {family} model, but differs by {away}"
        else:
            assert away > 1e-2, f"{name}: {scheme} served within {away} of the stock model"
