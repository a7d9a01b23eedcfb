"""torch.compile: the decode step of a patched model has no graph break and no host work, for every preset.

- A hand-written decode step (a static cache, a 2-D mask over past + new tokens, no ``position_ids``) compiles with
  ``fullgraph=True`` and gives the logits of a full uncompiled forward (for ``mrope``: of the stock model), with no
  recompilation from one step to the next.
- ``generate(cache_implementation="static", compile_config=CompileConfig(fullgraph=True))`` gives the tokens and
  scores of uncompiled generation (for ``mrope``: of stock transformers), in every family with a ``get_rope_index``.

The cheap ``eager`` backend is enough: what is checked is that Dynamo traces the step in one graph.
"""

from __future__ import annotations

import gc

import pytest
import torch
import torch._dynamo
from conftest import logits
from torch._dynamo.utils import counters
from transformers import CompileConfig, DynamicCache, StaticCache

import mmrope_hf
from mmrope_hf.testing import build_inputs, tiny_model

FAMILY = "qwen2_5_vl"
PAPER = ("mrope-i-paper", "mhrope-paper", "circle-age")  # sections for head_dim 128 / 8 KV heads
SCHEDULES = [pytest.param(scheme, {}, id=scheme) for scheme in mmrope_hf.available_schemes()] + [
    pytest.param("mrope", {"layers": ["vanilla", "spatial-reset"]}, id="two-position-sets"),
    pytest.param("circle", {"layers": "all"}, id="circle-all"),
]
# Left-padded rows whose decode deltas differ per row and per position set (a video: float and strided positions).
ROWS = [[3, ("image", 1, 4, 4), 2], [2, ("video", 2, 4, 4), 1, ("image", 1, 4, 6), 2]]
IMAGE_ROWS = [[3, ("image", 1, 4, 4), 2], [2, ("image", 1, 4, 4), 1, ("image", 1, 4, 6), 2]]
DECODED = 3  # tokens decoded from the cache: one eager step, then two compiled steps


@pytest.fixture(autouse=True)
def fresh_dynamo():
    gc.collect()  # an MHRoPE model of an earlier test, collected mid-compile, would swap apply_rotary_pos_emb back
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def stock(scheme: str, family: str = FAMILY):
    """The tiny model for ``scheme``: Qwen3-VL at head_dim 128 with 8 KV heads for the paper presets."""
    if scheme in PAPER:
        return tiny_model("qwen3_vl", head_dim=128, num_key_value_heads=8)
    return tiny_model(family)


def patched(scheme: str, options: dict, family: str = FAMILY):
    return mmrope_hf.patch_model(stock(scheme, family), scheme, **options)


def family_of(scheme: str) -> str:
    return "qwen3_vl" if scheme in PAPER else FAMILY


def compiled_graphs() -> int:
    return counters["stats"]["unique_graphs"]


@pytest.mark.parametrize(
    "scheme, options, cache_class",
    [pytest.param(*p.values, StaticCache, id=p.id) for p in SCHEDULES]
    + [pytest.param(s, {}, DynamicCache, id=f"{s}-dynamic-cache") for s in ("circle", "mhrope")],
)
def test_hand_written_decode_step_compiles_without_graph_breaks(scheme, options, cache_class):
    """Prefill into a cache, then decode without position_ids: every step equals the full forward."""
    model = patched(scheme, options)
    inputs = build_inputs(family_of(scheme), ROWS if scheme != "mrope" else IMAGE_ROWS)
    full = logits(stock(scheme) if scheme == "mrope" and not options else model, inputs)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    prefill = ids.shape[1] - DECODED
    prompt = dict(inputs, input_ids=ids[:, :prefill], attention_mask=mask[:, :prefill])
    prompt["mm_token_type_ids"] = inputs["mm_token_type_ids"][:, :prefill]
    size = {"max_cache_len": ids.shape[1] + 4} if cache_class is StaticCache else {}
    cache = cache_class(config=model.config, **size)
    step = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        model(**prompt, past_key_values=cache, use_cache=True)
        for i in range(prefill, ids.shape[1]):
            call = model if i == prefill else step
            step_mask = mask[:, : i + 1].contiguous()  # as a loop that appends a column makes it
            torch._dynamo.mark_dynamic(step_mask, 1)  # the mask grows by one column per step
            out = call(input_ids=ids[:, i : i + 1], attention_mask=step_mask, past_key_values=cache)
            torch.testing.assert_close(out.logits[:, 0], full[:, i], atol=1e-5, rtol=0)
    if cache_class is StaticCache:  # (a growing DynamicCache recompiles once, with dynamic shapes, as stock does)
        assert compiled_graphs() == 1  # the second compiled step reused the first one's graph


def static_generate(model, inputs: dict, compile_config: CompileConfig | None = None):
    return model.generate(
        **inputs,
        max_new_tokens=3,
        do_sample=False,
        cache_implementation="static",
        compile_config=compile_config,
        return_dict_in_generate=True,
        output_scores=True,
    )


def full_graph_config() -> CompileConfig:
    config = CompileConfig(fullgraph=True, backend="eager", mode=None)
    config._compile_all_devices = True  # generate compiles on accelerators only, unless asked
    return config


def assert_same_generation(got, want) -> None:
    assert torch.equal(got.sequences, want.sequences)
    assert len(got.scores) == len(want.scores)
    for a, b in zip(got.scores, want.scores, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def assert_compiled_generate_equals(model, inputs: dict, want) -> None:
    got = static_generate(model, inputs, full_graph_config())
    assert getattr(model, "_compiled_call", None) is not None, "generate did not compile the decode step"
    assert compiled_graphs() == 1  # every decode step ran the one full graph
    assert_same_generation(got, want)


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_static_cache_compiled_generate_equals_uncompiled(scheme, options):
    model = patched(scheme, options)
    inputs = build_inputs(family_of(scheme), ROWS if scheme != "mrope" else IMAGE_ROWS)
    want = static_generate(model, inputs)
    if scheme == "mrope" and not options:  # the stock model on images
        assert_same_generation(want, static_generate(stock(scheme), inputs))
    assert_compiled_generate_equals(model, inputs, want)


# Each family's own model code with the patched rotary, against stock transformers (mrope; the MoE twins and GLM-OCR
# share the attention and rotary code of a family here); Circle (two position sets: per-layer hooks, per-set decode
# deltas) and MHRoPE (per-head rotation) where the rotary differs most: adjacent pairs and partial rotary (GLM),
# hybrid linear attention (Qwen3.5).
FAMILY_SWEEP = ("qwen2_vl", "qwen3_vl", "qwen3_5", "glm4v", "paddleocr_vl", "ernie4_5_vl_moe", "cosmos3_edge")
FAMILY_CASES = [
    *[(family, "mrope") for family in FAMILY_SWEEP],
    *[(family, "circle") for family in ("glm4v", "qwen3_5")],
    ("glm4v", "mhrope"),
]


@pytest.mark.parametrize("family, scheme", FAMILY_CASES, ids=[f"{f}-{s}" for f, s in FAMILY_CASES])
def test_static_cache_compiled_generate_in_every_family(family, scheme):
    inputs = build_inputs(family, IMAGE_ROWS)
    model = patched(scheme, {}, family)
    want = static_generate(stock(scheme, family) if scheme == "mrope" else model, inputs)
    assert_compiled_generate_equals(model, inputs, want)


@pytest.mark.parametrize("scheme", ["mrope-i", "circle"])
def test_position_building_is_one_graph_break_where_stock_makes_more(scheme):
    """The prefill's position building (host work on the token layout) stays out of the graph in one piece."""
    inputs = build_inputs(FAMILY, ROWS)
    keys = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "attention_mask", "second_per_grid_ts")
    args = {key: inputs[key] for key in keys if key in inputs}

    def breaks(model) -> int:
        torch._dynamo.reset()
        build = lambda ids: model.model.get_rope_index(ids + 0, **args)[0] + 1  # noqa: E731 (ops around the call)
        return torch._dynamo.explain(build)(inputs["input_ids"]).graph_break_count

    stock_breaks, patched_breaks = breaks(stock(scheme)), breaks(patched(scheme, {}))
    assert patched_breaks == 1 and stock_breaks > 1
