"""Layer schedules (Circle-RoPE's staggering): each layer reads its own position set, each set its own end."""

from __future__ import annotations

import pytest
import torch
from conftest import PROMPTS, inputs_for, logits, reference_layout
from oracle_forward import float32_atol, layer_tables, oracle_logits
from reference import circle_reference, rope_reference

import mmrope_hf
from mmrope_hf.frequencies.rotary import StackedCosSin
from mmrope_hf.schedule import layer_schedule
from mmrope_hf.testing import tiny_model


@pytest.mark.parametrize(
    "layers, depth, expected",
    [
        ("all", 4, (0, 0, 0, 0)),
        ("alternate", 5, (0, 1, 0, 1, 0)),  # 1-based odd layers read the primary design
        ("lower", 5, (0, 0, 0, 1, 1)),
        ("upper", 5, (1, 1, 0, 0, 0)),
        ("lower", 36, (0,) * 18 + (1,) * 18),  # the reference's strategy_2 on Qwen2.5-VL-3B
        ((True, False, False, True), 4, (0, 1, 1, 0)),
        ({"repeat": (True, True, False)}, 7, (0, 0, 1, 0, 0, 1, 0)),
    ],
)
def test_schedules(layers, depth, expected):
    assert layer_schedule("circle", "mrope", layers, depth).layer_sets == expected


def test_schedules_stagger_any_designs():
    schedule = layer_schedule("circle", "spatial-reset", {"repeat": (True, False, "vanilla")}, 6)
    assert schedule.designs == ("circle", "spatial-reset", "vanilla")
    assert schedule.layer_sets == (0, 1, 2, 0, 1, 2)
    assert layer_schedule("circle", "mrope", ("mrope", "mrope"), 2).designs == ("mrope",)


@pytest.mark.parametrize("depth", [4, 28])
def test_any_depth(depth):
    model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl", num_hidden_layers=depth), "circle")
    assert mmrope_hf.patch_info(model)["layer_sets"] == [i % 2 for i in range(depth)]
    inputs = inputs_for("qwen2_5_vl", "one_image")
    stock = tiny_model("qwen2_5_vl", num_hidden_layers=depth)
    want = oracle_logits("qwen2_5_vl", PROMPTS["one_image"], inputs, "circle", model=stock)  # circle, mrope, ...
    torch.testing.assert_close(logits(model, inputs), want, atol=float32_atol(want), rtol=0)


def test_a_bad_schedule_fails():
    with pytest.raises(ValueError, match=r"layers lists 3 entries, but the model has 2 decoder layers"):
        mmrope_hf.patch_model(tiny_model("qwen2_vl"), "circle", layers=[True, False, True])
    with pytest.raises(ValueError, match=r"unknown layers repeat entry 'cirle'; valid: true, false, circle"):
        mmrope_hf.patch_model(tiny_model("qwen2_vl"), "circle", layers={"repeat": ["cirle"]})


COS_ATOL = 1e-5  # float32 angles of up to ~50 rad against float64 maths: 50 eps(float32) = 6e-6


def layer_cos_during_generate(model, inputs, new_tokens=3):
    """cos handed to every decoder layer at every step of greedy generate: {layer: [cos per step]}."""
    seen = {i: [] for i in range(len(model.model.language_model.layers))}
    for i, layer in enumerate(model.model.language_model.layers):
        layer.register_forward_pre_hook(
            lambda m, a, kw, i=i: seen[i].append(kw["position_embeddings"][0].clone()), with_kwargs=True
        )
    model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)
    return seen


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_5"])
@pytest.mark.parametrize("prompt", ["left_padded", "video"])
def test_each_layer_sees_exactly_its_design_through_generate(family, prompt):
    """The first rotating layer (circle) sees what an all-circle model sees; the second (mrope) what an mrope model
    sees, prompt and generated tokens alike: each set continues from its own end (the reference reuses the circle
    delta). On Qwen3.5 (linear, full, linear, full) ``alternate`` runs over the full-attention layers 1 and 3."""
    inputs = inputs_for(family, prompt)
    model = mmrope_hf.patch_model(tiny_model(family), "circle")
    first, second = [i for i, layer in enumerate(model.model.language_model.layers) if hasattr(layer, "self_attn")]
    staggered = layer_cos_during_generate(model, inputs)
    # The references' tables over the prompt and 2 generated tokens, which continue from each set's next position.
    circle, mrope = [cos for cos, _ in layer_tables(family, PROMPTS[prompt], "circle", extra=2)]
    length = inputs["input_ids"].shape[1]
    assert len(staggered[first]) == 3  # prefill + 2 cached steps
    for step, columns in enumerate((slice(0, length), slice(length, length + 1), slice(length + 1, length + 2))):
        torch.testing.assert_close(staggered[first][step], circle[:, columns], atol=COS_ATOL, rtol=0)
        torch.testing.assert_close(staggered[second][step], mrope[:, columns], atol=COS_ATOL, rtol=0)
    assert (circle - mrope).abs().max() > 0.1


def test_a_hybrid_stack_schedules_its_full_attention_layers_only():
    model = mmrope_hf.patch_model(tiny_model("qwen3_5"), "circle", layers=[False, True])
    assert mmrope_hf.patch_info(model)["layer_sets"] == [1, 0]  # decoder layers 1 and 3: mrope (set 1), circle
    with pytest.raises(
        ValueError,
        match=r"layers lists 4 entries, but the model has 2 rotating \(full-attention\) decoder layers; its 2 "
        r"linear-attention layers carry no RoPE",
    ):
        mmrope_hf.patch_model(tiny_model("qwen3_5"), "circle", layers=[True, False, True, False])


def test_decoding_from_rope_deltas_continues_each_set_from_its_own_end():
    family = "qwen2_5_vl"
    inputs = inputs_for(family, "images")
    inputs.pop("attention_mask")
    prefill = inputs["input_ids"].shape[1] - 1
    cos = {}
    for name in ("circle", "mrope"):
        model = mmrope_hf.patch_model(tiny_model(family), name)
        layer = model.model.language_model.layers[1]
        layer.register_forward_pre_hook(
            lambda m, a, kw, n=name: cos.update({n: kw["position_embeddings"][0]}), with_kwargs=True
        )
        with torch.no_grad():
            out = model(
                **{
                    **inputs,
                    "input_ids": inputs["input_ids"][:, :prefill],
                    "mm_token_type_ids": inputs["mm_token_type_ids"][:, :prefill],
                },
                use_cache=True,
            )
            model(input_ids=inputs["input_ids"][:, prefill:], past_key_values=out.past_key_values, use_cache=True)
    # The decoded token is the prompt's last: its mrope position from the reference, not the circle set's end.
    (_, _), (mrope, _) = layer_tables(family, PROMPTS["images"], "circle")
    for name in ("circle", "mrope"):
        torch.testing.assert_close(cos[name], mrope[:, -1:], atol=COS_ATOL, rtol=0)
    assert torch.equal(cos["circle"], cos["mrope"])


def test_one_cos_sin_per_position_set_per_forward():
    model = mmrope_hf.patch_model(
        tiny_model("qwen2_vl", num_hidden_layers=6), "circle", layers={"repeat": [True, False, "vanilla"]}
    )
    calls = []
    model.model.language_model.rotary_emb.register_forward_hook(lambda m, a, out: calls.append(out))
    logits(model, inputs_for("qwen2_vl", "images"))
    assert len(calls) == 1 and isinstance(calls[0], StackedCosSin) and calls[0][0].shape[0] == 3
    designs = ["circle", "mrope", "vanilla"]  # repeat: true -> circle, false -> stagger_with (mrope), vanilla
    per_layer = layer_tables("qwen2_vl", PROMPTS["images"], "circle", layers=designs)[:3]
    for k, (cos, sin) in enumerate(per_layer):
        torch.testing.assert_close(calls[0][0][k], cos, atol=COS_ATOL, rtol=0)
        torch.testing.assert_close(calls[0][1][k], sin, atol=COS_ATOL, rtol=0)


def test_rope_deltas_are_the_primary_sets():
    model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), "circle")
    inputs = inputs_for("qwen2_5_vl", "one_image")
    keys = ("mm_token_type_ids", "image_grid_thw")
    positions, deltas = model.model.get_rope_index(inputs["input_ids"], **{k: inputs[k] for k in keys})
    alone, alone_deltas = mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), "circle", layers="all").model.get_rope_index(
        inputs["input_ids"], **{k: inputs[k] for k in keys}
    )
    assert positions.shape[0] == 6 and torch.equal(positions[:3], alone) and torch.equal(deltas, alone_deltas)
    layout = reference_layout("qwen2_5_vl", PROMPTS["one_image"][0])
    circle, following = circle_reference.positions(layout)
    torch.testing.assert_close(
        positions[:3, 0].T.double(), torch.tensor(circle, dtype=torch.float64), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(deltas.double(), torch.tensor([[following - len(circle)]], dtype=torch.float64))
    mrope, _ = rope_reference.positions(layout, "mrope")
    assert positions[3:, 0].T.tolist() == [list(p) for p in mrope]
