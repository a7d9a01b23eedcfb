"""torch.compile: the decode step of a patched model has no graph break and no host work, for every preset.

- A hand-written decode step (a static cache, a 2-D mask over past + new tokens, no ``position_ids``) gives the
  logits of a full uncompiled forward (for ``mrope``: of the stock model), and compiles with ``fullgraph=True``, with
  no recompilation from one step to the next (a preset of each decode behaviour).
- ``generate(cache_implementation="static", compile_config=CompileConfig(fullgraph=True))`` gives the tokens and
  scores of uncompiled generation (for ``mrope``: of stock transformers), in every family with a ``get_rope_index``.

An eager backend that keeps the graphs is enough: what is checked is that Dynamo traces the step in one graph and
that no node of it reads tensor values on the host.
"""

from __future__ import annotations

import gc
from typing import Callable

import pytest
import torch
import torch._dynamo
from conftest import logits
from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols
from transformers import CompileConfig, StaticCache

import mmrope_hf
from mmrope_hf.frequencies.apply import _INSTALLED
from mmrope_hf.testing import (
    LLAVA_FAMILIES,
    build_inputs,
    build_llava_inputs,
    build_tile_inputs,
    tiny_llava,
    tiny_model,
    tiny_tile_model,
)

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
# Compiled hand-written steps: a preset of each decode behaviour (stock, K = 1 and K = 2 position sets, per-head
# rotation, float positions, spatial-from-t rows, scaled and NoPE pairs); generate's compiled steps cover every one.
COMPILED = (
    "mrope",
    "mrope-i",
    "mhrope",
    "circle",
    "two-position-sets",
    "v2pe",
    "videorope",
    "omnirope",
    "hope",
)


@pytest.fixture(autouse=True, scope="module")
def reset_dynamo_after_module():
    yield
    torch._dynamo.reset()


@pytest.fixture(autouse=True)
def fresh_dynamo():
    if _INSTALLED:  # an MHRoPE model of an earlier test, collected mid-compile, would swap apply_rotary_pos_emb back
        gc.collect()
    torch._dynamo.reset()
    GRAPHS.clear()
    yield


def stock(scheme: str, family: str = FAMILY):
    """The tiny model for ``scheme``: Qwen3-VL at head_dim 128 with 8 KV heads for the paper presets."""
    if scheme in PAPER:
        return tiny_model("qwen3_vl", head_dim=128, num_key_value_heads=8)
    return tiny_model(family)


def patched(scheme: str, options: dict, family: str = FAMILY):
    return mmrope_hf.patch_model(stock(scheme, family), scheme, **options)


def family_of(scheme: str) -> str:
    return "qwen3_vl" if scheme in PAPER else FAMILY


GRAPHS: list[torch.fx.GraphModule] = []


def recording_backend(graph: torch.fx.GraphModule, example_inputs: list) -> Callable:
    """The eager backend, keeping every graph Dynamo hands it."""
    GRAPHS.append(graph)
    return graph.forward


def compiled_graphs() -> int:
    return len(GRAPHS)


def assert_no_host_work() -> None:
    """No node of the compiled graphs reads a tensor's values on the host or makes a data-dependent shape. With
    ``fullgraph=True`` Dynamo captures ``.item()``, ``int(tensor)`` and ``nonzero`` rather than breaking the graph, so
    a clean compile alone would not show them; they leave ``item`` calls or unbacked symbols behind."""
    found = [
        f"{node.op} {node.target} ({node.stack_trace.strip().splitlines()[-2] if node.stack_trace else '?'})"
        for graph in GRAPHS
        for node in graph.graph.nodes
        if (node.op == "call_method" and node.target in ("item", "tolist"))
        or free_unbacked_symbols(node.meta.get("example_value"))
    ]
    assert GRAPHS and not found, found


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_hand_written_decode_equals_full_forward(scheme, options):
    """Prefill into a static cache, then decode without position_ids (eager): every step equals the full forward."""
    model, inputs, full = hand_written_case(scheme, options)
    assert_hand_written_decode(model, inputs, full, compiled=False)


@pytest.mark.parametrize("scheme, options", [pytest.param(*p.values, id=p.id) for p in SCHEDULES if p.id in COMPILED])
def test_hand_written_decode_step_compiles_without_graph_breaks(scheme, options):
    """The same steps compiled with fullgraph=True (generate's steps: every preset, below)."""
    model, inputs, full = hand_written_case(scheme, options)
    assert_hand_written_decode(model, inputs, full)


def hand_written_case(scheme: str, options: dict):
    model = patched(scheme, options)
    inputs = build_inputs(family_of(scheme), ROWS if scheme != "mrope" else IMAGE_ROWS)
    return model, inputs, logits(stock(scheme) if scheme == "mrope" and not options else model, inputs)


def assert_hand_written_decode(model, inputs: dict, full: torch.Tensor, compiled: bool = True) -> None:
    """Prefill all but the last DECODED tokens, one eager decode step, then compiled (fullgraph) steps, each given
    the new token and the 2-D mask over past + new tokens only: the logits of ``full`` at every step."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    prefill = ids.shape[1] - DECODED
    prompt = dict(inputs)
    for key in ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids"):
        if key in inputs:
            prompt[key] = inputs[key][:, :prefill]
    cache = StaticCache(config=model.config, max_cache_len=ids.shape[1] + 4)
    step = torch.compile(model, fullgraph=True, backend=recording_backend)
    with torch.no_grad():
        model(**prompt, past_key_values=cache, use_cache=True)
        for i in range(prefill, ids.shape[1]):
            call = step if compiled and i > prefill else model
            step_mask = mask[:, : i + 1].contiguous()  # as a loop that appends a column makes it
            torch._dynamo.mark_dynamic(step_mask, 1)  # the mask grows by one column per step
            out = call(input_ids=ids[:, i : i + 1], attention_mask=step_mask, past_key_values=cache)
            torch.testing.assert_close(out.logits[:, 0], full[:, i], atol=1e-5, rtol=0)
    if compiled:
        assert_no_host_work()
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
    config = CompileConfig(fullgraph=True, backend=recording_backend, mode=None)
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
    assert_no_host_work()
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
# deltas) and MHRoPE (per-head rotation) where the rotary differs most: adjacent pairs and partial rotary (GLM).
FAMILY_SWEEP = ("qwen2_vl", "qwen3_vl", "qwen3_5", "glm4v", "paddleocr_vl", "ernie4_5_vl_moe", "cosmos3_edge")
FAMILY_CASES = [
    *[(family, "mrope") for family in FAMILY_SWEEP],
    ("glm4v", "circle"),
    ("glm4v", "mhrope"),
]


@pytest.mark.parametrize("family, scheme", FAMILY_CASES, ids=[f"{f}-{s}" for f, s in FAMILY_CASES])
def test_static_cache_compiled_generate_in_every_family(family, scheme):
    inputs = build_inputs(family, IMAGE_ROWS)
    model = patched(scheme, {}, family)
    want = static_generate(stock(scheme, family) if scheme == "mrope" else model, inputs)
    assert_compiled_generate_equals(model, inputs, want)


# The 1D families lay out their prompts in the adapter (patches/llava.py): LLaVA, and a tile family (InternVL). Gemma 3
# is left out: its stock sliding-window cache layers guard on their length (an int), one compile per step.
ONE_D_CASES = [("llava", "circle"), ("internvl", "mrope-i")]
ONE_D_ROWS = {
    "llava": [[3, ("image", 60, 80), 4], [2, ("image", 40, 40), 1, ("image", 30, 50), 4]],
    "internvl": [[3, ("image", 112, 224), 4], [2, ("image", 56, 56), 1, ("image", 112, 112), 4]],
}


def one_d(family: str, scheme: str):
    model = tiny_llava(family) if family in LLAVA_FAMILIES else tiny_tile_model(family)
    inputs = (build_llava_inputs if family in LLAVA_FAMILIES else build_tile_inputs)(family, ONE_D_ROWS[family])
    return mmrope_hf.patch_model(model, scheme), inputs


@pytest.mark.parametrize("family, scheme", ONE_D_CASES, ids=[f"{f}-{s}" for f, s in ONE_D_CASES])
def test_hand_written_decode_step_compiles_without_graph_breaks_in_1d_families(family, scheme):
    model, inputs = one_d(family, scheme)
    assert_hand_written_decode(model, inputs, logits(model, inputs))


@pytest.mark.parametrize("family, scheme", ONE_D_CASES, ids=[f"{f}-{s}" for f, s in ONE_D_CASES])
def test_static_cache_compiled_generate_in_1d_families(family, scheme):
    model, inputs = one_d(family, scheme)
    assert_compiled_generate_equals(model, inputs, static_generate(model, inputs))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_a_placeholder_token_while_decoding_fails_loudly_in_1d_families(compiled):
    """An image token among the decoded tokens cannot be placed from the prompt's deltas: the step refuses it, in a
    compiled (fullgraph) step too, where the check is a device-side assert rather than a host read."""
    model, inputs = one_d("llava", "circle")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    cache = StaticCache(config=model.config, max_cache_len=ids.shape[1] + 4)
    step = torch.compile(model, fullgraph=True, backend=recording_backend) if compiled else model
    image = torch.full((ids.shape[0], 1), model.config.image_token_id)
    step_mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    with torch.no_grad():
        model(**inputs, past_key_values=cache, use_cache=True)
        with pytest.raises((ValueError, RuntimeError), match="placeholder tokens after the prompt"):
            step(input_ids=image, attention_mask=step_mask, past_key_values=cache)


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
