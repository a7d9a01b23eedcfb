"""patch_model / unpatch_model: instance-only, idempotent, exactly reversible, with clear errors."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
import transformers
from conftest import PROMPTS, inputs_for, logits
from oracle_forward import float32_atol, layer_tables, oracle_logits

import mmrope_hf
from mmrope_hf.patches import ADAPTERS
from mmrope_hf.testing import build_inputs, tiny_model


def hook_count(model) -> int:
    return sum(len(m._forward_pre_hooks) for m in model.modules())


def test_unpatch_restores_the_exact_stock_model(family, model):
    inputs = inputs_for(family, "images")
    stock_logits = logits(model, inputs)
    stock_rotary = model.model.language_model.rotary_emb
    stock_keys = list(model.state_dict())
    hooks = hook_count(model)

    mmrope_hf.patch_model(model, "mrope-i")
    assert list(model.state_dict()) == stock_keys
    assert model.config.mmrope["scheme"] == "mrope-i"
    assert not torch.equal(logits(model, inputs), stock_logits)

    assert mmrope_hf.unpatch_model(model) is model
    assert model.model.language_model.rotary_emb is stock_rotary
    assert "get_rope_index" not in vars(model.model)
    assert "_prepare_position_ids_for_generation" not in vars(model)
    assert not hasattr(model.config, "mmrope")
    assert hook_count(model) == hooks
    assert not mmrope_hf.is_patched(model) and mmrope_hf.patch_info(model) is None
    assert torch.equal(logits(model, inputs), stock_logits)
    mmrope_hf.unpatch_model(model)  # a no-op on a stock model


def test_patch_is_idempotent_and_repatching_replaces_the_scheme(family):
    inputs = inputs_for(family, "images")
    once = mmrope_hf.patch_model(tiny_model(family), "spatial-reset")
    twice = mmrope_hf.patch_model(mmrope_hf.patch_model(tiny_model(family), "spatial-reset"), "spatial-reset")
    want = oracle_logits(family, PROMPTS["images"], inputs, "spatial-reset")
    torch.testing.assert_close(logits(once, inputs), want, atol=float32_atol(want), rtol=0)
    assert torch.equal(logits(once, inputs), logits(twice, inputs))
    assert type(twice.model.language_model.rotary_emb.stock).__name__.endswith("RotaryEmbedding")
    assert hook_count(twice) == hook_count(once)

    mmrope_hf.patch_model(twice, "vanilla")
    want = oracle_logits(family, PROMPTS["images"], inputs, "vanilla")
    torch.testing.assert_close(logits(twice, inputs), want, atol=float32_atol(want), rtol=0)
    assert mmrope_hf.patch_info(twice)["scheme"] == "vanilla"


def test_two_models_with_different_schemes_in_one_process(family):
    inputs = inputs_for(family, "images")
    expected = {s: oracle_logits(family, PROMPTS["images"], inputs, s) for s in ("mrope-i", "vanilla")}
    a = mmrope_hf.patch_model(tiny_model(family), "mrope-i")
    b = mmrope_hf.patch_model(tiny_model(family), "vanilla")
    stock = tiny_model(family)
    for model, scheme in ((a, "mrope-i"), (b, "vanilla"), (a, "mrope-i")):
        want = expected[scheme]
        torch.testing.assert_close(logits(model, inputs), want, atol=float32_atol(want), rtol=0)
    assert not mmrope_hf.is_patched(stock)
    assert not torch.equal(logits(stock, inputs), expected["vanilla"])


def test_patching_the_inner_model_works(family):
    inputs = inputs_for(family, "images")
    model = tiny_model(family)
    mmrope_hf.patch_model(model.model, "mrope-i")
    assert mmrope_hf.is_patched(model) and mmrope_hf.is_patched(model.model)
    want = oracle_logits(family, PROMPTS["images"], inputs, "mrope-i")
    torch.testing.assert_close(logits(model, inputs), want, atol=float32_atol(want), rtol=0)


def test_patch_info_reports_resolved_options():
    model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), "mrope-i")
    info = mmrope_hf.patch_info(model)
    assert info["scheme"] == "mrope-i" and info["position"] == "spatial-reset" and info["spatial_reset"] is True
    assert info["frequency"] == "interleaved" and info["resolved_mrope_section"] == [6, 5, 5]
    assert info["temporal_stride"] == 1.0 and info["position_sets"] == ["spatial-reset"]
    info = mmrope_hf.patch_info(mmrope_hf.patch_model(model, "mrope"))
    assert info["resolved_frequency"] == "chunked" and info["resolved_mrope_section"] == [4, 6, 6]


def test_each_layer_reads_its_own_position_set():
    family = "qwen2_vl"
    inputs = inputs_for(family, "images")

    def layer_cos(model):
        seen = []
        for layer in model.model.language_model.layers:
            layer.register_forward_pre_hook(
                lambda m, a, kw: seen.append(kw["position_embeddings"][0].clone()), with_kwargs=True
            )
        logits(model, inputs)
        return seen

    staggered = layer_cos(mmrope_hf.patch_model(tiny_model(family), "mrope", layers=["spatial-reset", "mrope"]))
    stock = layer_cos(tiny_model(family))  # the stock model: its own mrope tables
    (reset, _), (mrope, _) = layer_tables(family, PROMPTS["images"], "mrope", layers=["spatial-reset", "mrope"])
    torch.testing.assert_close(staggered[0], reset, atol=1e-6, rtol=0)  # reference cos, float64 maths
    torch.testing.assert_close(staggered[1], mrope, atol=1e-6, rtol=0)
    assert torch.equal(staggered[1], stock[1])
    assert (reset - mrope).abs().max() > 0.1


# Errors --------------------------------------------------------------------------------------------------


def test_unknown_scheme_and_option_fail_with_the_valid_choices():
    model = tiny_model("qwen2_vl")
    with pytest.raises(
        ValueError, match=r"unknown scheme 'mrope-x'; valid choices: .*mhrope, .*mrope-i, .*spatial-reset, .*vanilla"
    ):
        mmrope_hf.patch_model(model, "mrope-x")
    with pytest.raises(ValueError, match=r"unknown option\(s\) radius .* valid options: .*temporal_stride"):
        mmrope_hf.patch_model(model, "mrope-i", radius=10)
    with pytest.raises(ValueError, match=r"unknown frequency 'chunky'; valid choices: native, chunked, interleaved"):
        mmrope_hf.patch_model(model, "mrope", frequency="chunky")
    with pytest.raises(ValueError, match=r"layers lists 3 entries, but the model has 2 decoder layers"):
        mmrope_hf.patch_model(model, "mrope", layers=["mrope", "vanilla", "mrope"])
    assert not mmrope_hf.is_patched(model)


def test_unsupported_model_type_fails():
    config = transformers.LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    with pytest.raises(
        TypeError,
        match=r"does not support model type 'llama'.*supported: .*glm4v, .*llava, "
        r".*qwen2_5_vl, qwen2_vl, qwen3_5, .*qwen3_vl_moe",
    ):
        mmrope_hf.patch_model(transformers.LlamaForCausalLM(config), "mrope")


@pytest.mark.parametrize("version", ["4.57.6", "5.16.0", "5.24.0"])
def test_transformers_outside_the_supported_range_fails(monkeypatch, version):
    # the module object compat read: importing some model modules directly (gptj, llama) swaps sys.modules'
    monkeypatch.setattr(mmrope_hf.compat.transformers, "__version__", version)
    with pytest.raises(
        RuntimeError, match=rf"supports transformers>=5.17,<5.24 .* transformers {version} is installed"
    ):
        mmrope_hf.patch_model(tiny_model("qwen2_vl"), "mrope")


def test_missing_attribute_fails_naming_the_supported_range():
    model = tiny_model("qwen3_vl")
    del model.model.language_model.rotary_emb.attention_scaling
    with pytest.raises(
        AttributeError, match=r"no language_model.rotary_emb.attention_scaling.*transformers>=5.17,<5.24"
    ):
        mmrope_hf.patch_model(model, "mrope")


@pytest.mark.parametrize(
    "family, wrong", [("glm4v", {"pairing": "half"}), ("qwen3_5", {"native_frequency": "chunked"})]
)
def test_an_adapter_that_misdescribes_the_stock_rotary_fails_at_patch_time(monkeypatch, family, wrong):
    """The adapter's pair map and channel pairing are checked against the stock rotary's cos/sin when patching."""
    monkeypatch.setitem(ADAPTERS._items, family, dataclasses.replace(ADAPTERS.get(family), **wrong))
    model = tiny_model(family)
    with pytest.raises(
        RuntimeError, match=r"does not lay out its frequencies as the .* adapter expects .*: cos differs"
    ):
        mmrope_hf.patch_model(model, "mrope-i")
    assert not mmrope_hf.is_patched(model)


def test_visual_inputs_without_token_types_fail_in_forward_and_generate(family):
    model = mmrope_hf.patch_model(tiny_model(family), "mrope-i")
    inputs = inputs_for(family, "one_image")
    inputs.pop("mm_token_type_ids")
    with pytest.raises(ValueError, match="without mm_token_type_ids"):
        model(**inputs)
    with pytest.raises(ValueError, match="without mm_token_type_ids"):
        model.generate(**inputs, max_new_tokens=2)


@pytest.mark.parametrize(
    "grids, message",
    [
        (
            [[1, 8, 8], [1, 4, 4]],
            r"image_grid_thw has 2 image item\(s\) but the input's image placeholder tokens hold only 1",
        ),
        ([[1, 8, 10]], r"image grid 0 = \(1, 8, 10\) needs 20 placeholder tokens, but row 0 has a run of 16 image"),
        (
            [[1, 8, 6]],
            r"row 0 has more image placeholder tokens than image_grid_thw describes \(1 item\(s\)\); 4 token",
        ),
        (
            [[1, 4, 4]],
            r"row 0 has more image placeholder tokens than image_grid_thw describes \(1 item\(s\)\); 12 token",
        ),
        ([[1, 8, 7]], r"image grid 0 = \(1, 8, 7\) is not divisible by spatial_merge_size 2"),
    ],
)
def test_grids_that_do_not_match_the_placeholders_fail(family, grids, message):
    model = mmrope_hf.patch_model(tiny_model(family), "mrope")
    inputs = inputs_for(family, "one_image")
    with pytest.raises(ValueError, match=message):
        model.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"], torch.tensor(grids))


def test_qwen2_5_second_per_grid_ts_must_match_the_videos():
    model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), "mrope")
    inputs = build_inputs("qwen2_5_vl", [[2, ("video", 2, 4, 4), 1]], second_per_grid_ts=[1.0])
    inputs["second_per_grid_ts"] = torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match=r"got 2 temporal intervals for 1 video grids"):
        model(**inputs)


HEAD_128 = dict(
    hidden_size=1024,
    num_attention_heads=8,
    num_key_value_heads=8,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
)
IMAGE_AND_VIDEO = [[3, ("image", 1, 8, 8), 2, ("video", 3, 4, 4), 2]]


@functools.cache
def head_128_models() -> tuple:
    """(stock model for the oracle, model to patch and unpatch), built once: building costs the most."""
    return tiny_model("qwen2_5_vl", **HEAD_128), tiny_model("qwen2_5_vl", **HEAD_128)


@pytest.mark.parametrize("scheme", mmrope_hf.available_schemes())
def test_every_preset_patches_a_head_dim_128_model_with_8_kv_heads(scheme):
    """The paper presets name sections for head_dim 128 and 8 KV heads (e.g. Qwen3-VL-8B): each gives the logits of
    the oracle forward (tests/oracle_forward.py: the preset's recipe from configs/ and the papers, positions and
    pair maps from tests/reference) on an image and a multi-group video."""
    stock, model = head_128_models()
    inputs = build_inputs("qwen2_5_vl", IMAGE_AND_VIDEO)
    want = oracle_logits("qwen2_5_vl", IMAGE_AND_VIDEO, inputs, scheme, model=stock)
    try:
        mmrope_hf.patch_model(model, scheme)
        assert mmrope_hf.patch_info(model)["scheme"] == scheme
        got = logits(model, inputs)
    finally:
        mmrope_hf.unpatch_model(model)
    torch.testing.assert_close(got, want, atol=float32_atol(want), rtol=0)
