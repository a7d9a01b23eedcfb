"""`mrope` through the plugin is the stock model; text-only input is the stock model for every scheme."""

from __future__ import annotations

import functools

import pytest
import torch
import transformers
from conftest import PROMPTS, SCHEMES, inputs_for, logits, reference_layout
from oracle_forward import float32_atol, oracle_logits
from reference import rope_reference as ref

import mmrope_hf
from mmrope_hf.testing import MROPE_FAMILIES, has_video, tiny_config, tiny_model
from mmrope_hf.testing.qwen import seeded_model

STOCK_PROMPTS = ("text", "one_image", "images", "left_padded", "video_one_frame")


def rope_index(model, inputs):
    keys = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "attention_mask", "second_per_grid_ts")
    return model.model.get_rope_index(inputs["input_ids"], **{k: inputs.get(k) for k in keys})


@pytest.mark.parametrize("prompt", STOCK_PROMPTS)
def test_mrope_is_bit_identical_to_stock(family, model, prompt):
    if "video" in prompt and not has_video(family):
        pytest.skip(f"{family} takes no video")
    if prompt == "video_one_frame" and family == "ernie4_5_vl_moe":
        pytest.skip("ERNIE-4.5-VL merges frame pairs: a one-frame video has no temporal group (stock fails too)")
    inputs = inputs_for(family, prompt)
    stock_positions, stock_deltas = rope_index(model, inputs)
    stock_logits = logits(model, inputs)
    mmrope_hf.patch_model(model, "mrope")
    positions, deltas = rope_index(model, inputs)
    assert torch.equal(positions, stock_positions)
    assert positions.dtype == stock_positions.dtype
    assert torch.equal(deltas, stock_deltas)
    assert torch.equal(logits(model, inputs), stock_logits)


def test_glm46v_takes_the_adapter_of_its_text_model():
    """GLM-4.6V builds its text model from text_config: with GLM-4.1V's (adjacent channel pairs; the tiny glm46v has
    GLM-4.5V's) ``mrope`` is still the stock model; any other text model type fails naming the supported ones."""
    glm4v = tiny_config("glm4v")
    tokens = {
        k: getattr(glm4v, k) for k in ("image_token_id", "video_token_id", "image_start_token_id", "image_end_token_id")
    }
    config = transformers.Glm46VConfig(
        text_config=glm4v.text_config.to_dict(), vision_config=glm4v.vision_config.to_dict(), **tokens
    )
    model = seeded_model(transformers.Glm46VForConditionalGeneration, config, 0, "eager")
    inputs = inputs_for("glm4v", "images")
    stock = logits(model, inputs)
    mmrope_hf.patch_model(model, "mrope")
    assert torch.equal(logits(model, inputs), stock)
    mmrope_hf.unpatch_model(model).config.text_config.model_type = "llama"
    with pytest.raises(
        TypeError, match=r"glm46v model with text model type 'llama'; supported: glm4v_moe_text, glm4v_text"
    ):
        mmrope_hf.patch_model(model, "mrope")


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_vl_moe"])
def test_mrope_on_qwen3_per_frame_video_is_stock(family):
    model = tiny_model(family)
    inputs = inputs_for(family, "video")
    stock = rope_index(model, inputs), logits(model, inputs)
    mmrope_hf.patch_model(model, "mrope")
    positions, deltas = rope_index(model, inputs)
    assert torch.equal(positions, stock[0][0]) and torch.equal(deltas, stock[0][1])
    assert torch.equal(logits(model, inputs), stock[1])


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_multi_group_video_follows_max_plus_one_and_spatial_gives_stock(family):
    """Qwen2/2.5-VL in transformers 5.23 resume text at st + max(H, W) after a video; we default to max + 1."""
    model = tiny_model(family)
    inputs = inputs_for(family, "video")
    stock_positions, stock_deltas = rope_index(model, inputs)
    stock_logits = logits(model, inputs)
    interval = 2.0 if family == "qwen2_5_vl" else 1.0  # tokens_per_second (2) * 1 s per group on Qwen2.5-VL
    layout = reference_layout(family, PROMPTS["video"][0])

    mmrope_hf.patch_model(model, "mrope")
    positions, deltas = rope_index(model, inputs)
    expected, next_position = ref.positions(layout, "mrope", stride=interval, advance="max")
    assert positions[:, 0].T.tolist() == [list(p) for p in expected]
    assert deltas.item() == next_position - len(expected)
    assert not torch.equal(positions, stock_positions)  # the text after the video moved

    mmrope_hf.patch_model(model, "mrope", vision_advance="spatial")
    positions, deltas = rope_index(model, inputs)
    assert torch.equal(positions, stock_positions) and torch.equal(deltas, stock_deltas)
    assert torch.equal(logits(model, inputs), stock_logits)


def test_qwen2_5_absolute_time_video_is_stock_with_the_5_23_advance():
    """tokens_per_second (2) x 0.75 s = 1.5 per group, truncated after the multiply: t offsets 0, 1, 3."""
    model = tiny_model("qwen2_5_vl")
    inputs = inputs_for("qwen2_5_vl", "video", second_per_grid_ts=[0.75])
    stock_positions, stock_deltas = rope_index(model, inputs)
    stock_logits = logits(model, inputs)
    mmrope_hf.patch_model(model, "mrope", vision_advance="spatial")
    positions, deltas = rope_index(model, inputs)
    assert torch.equal(positions, stock_positions) and torch.equal(deltas, stock_deltas)
    assert torch.equal(logits(model, inputs), stock_logits)
    assert sorted(set(positions[0, 0, 4:16].tolist())) == [4, 5, 7]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_text_only_logits_equal_stock(family, model, scheme):
    inputs = inputs_for(family, "text")
    stock = logits(model, inputs)
    mmrope_hf.patch_model(model, scheme)
    assert torch.equal(logits(model, inputs), stock)


@pytest.mark.parametrize("scheme", ["mrope-i", "mhrope", "spatial-reset", "vanilla"])
def test_other_schemes_change_image_logits_and_unpatch_restores(family, model, scheme):
    inputs = inputs_for(family, "images")
    stock = logits(model, inputs)
    mmrope_hf.patch_model(model, scheme)
    patched = logits(model, inputs)
    assert (patched - stock).abs().max() > 1e-3
    mmrope_hf.unpatch_model(model)
    assert torch.equal(logits(model, inputs), stock)


# --- every scheme against the oracle forward --------------------------------------------------------------------

ORACLE_SCHEDULES = [pytest.param(scheme, {}, id=scheme) for scheme in SCHEMES] + [
    pytest.param("mrope", {"layers": ["vanilla", "spatial-reset"]}, id="two-position-sets"),
    pytest.param("circle", {"layers": "all"}, id="circle-all"),
]
ORACLE_CASES = [(family, prompt) for family in MROPE_FAMILIES for prompt in ("left_padded", "images")]


@functools.cache
def shared_models(family: str) -> tuple:
    """(stock model for the oracle, model to patch and unpatch), built once per family: building costs the most."""
    return tiny_model(family), tiny_model(family)


@pytest.mark.parametrize("family, prompt", ORACLE_CASES)
@pytest.mark.parametrize("scheme, options", ORACLE_SCHEDULES)
def test_every_scheme_equals_the_oracle_forward(family, prompt, scheme, options):
    """The patched model's logits equal the stock model run with cos/sin built from tests/reference alone (positions
    from the papers' formulas, the family's pair layout, float64 maths; tests/oracle_forward.py), within 32 eps of
    float32 (measured: under 8 eps; the schemes differ from each other by 1e-2 and more). This pins the full forward
    that the cache, generate, batching and training tests compare with, for the same schedules and prompts."""
    inputs = inputs_for(family, prompt)
    real = inputs["attention_mask"].bool()
    stock, target = shared_models(family)
    want = oracle_logits(family, PROMPTS[prompt], inputs, scheme, model=stock, **options)[real]
    try:
        got = logits(mmrope_hf.patch_model(target, scheme, **options), inputs)[real]
    finally:
        mmrope_hf.unpatch_model(target)
    torch.testing.assert_close(got, want, atol=float32_atol(want), rtol=0)
    if scheme == "mrope" and not options:  # the oracle itself: the stock scheme through it is the stock model
        torch.testing.assert_close(logits(stock, inputs)[real], want, atol=float32_atol(want), rtol=0)
