"""MHRoPE: each KV head encodes one axis over the full spectrum; query heads follow their KV group."""

from __future__ import annotations

import gc
import warnings

import pytest
import torch
from conftest import PROMPTS, inputs_for, logits, reference_layout
from oracle_forward import float32_atol, oracle_logits
from reference import rope_reference as ref

import mmrope_hf
from mmrope_hf.frequencies.allocation import ALLOCATIONS
from mmrope_hf.patching.state import find_state
from mmrope_hf.testing import FAMILIES, tiny_model

MULTI_HEAD = ALLOCATIONS.get("multi-head")


@pytest.mark.parametrize(
    "kv_heads, section", [(8, (2, 3, 3)), (4, (2, 1, 1)), (3, (1, 1, 1)), (6, (2, 2, 2)), (16, (4, 6, 6))]
)
def test_default_split(kv_heads, section):
    plan = MULTI_HEAD.plan(64, kv_heads, None, {})
    assert plan.section == section
    assert plan.head_axes == tuple(a for a, n in enumerate(section) for _ in range(n))


def test_qwen2_5_vl_7b_layout():
    """28 query heads / 4 KV heads: [2, 1, 1] puts KV heads on (T, T, H, W): queries 0-13 T, 14-20 H, 21-27 W."""
    plan = MULTI_HEAD.plan(64, 4, None, {})
    assert plan.head_axes == (0, 0, 1, 2)
    assert [plan.head_axes[q // 7] for q in range(28)] == [0] * 14 + [1] * 7 + [2] * 7


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("section", [[2, 1, 1], [1, 2, 1], [1, 1, 2], [4, 0, 0], [0, 0, 4]])
def test_text_only_equals_stock_for_every_split(family, section):
    model = tiny_model(family)
    inputs = inputs_for(family, "text")
    stock = logits(model, inputs)
    mmrope_hf.patch_model(model, "mhrope", mrope_section=section)
    assert torch.equal(logits(model, inputs), stock)


NOPE_AXIS = -1  # a KV head with no rotation


@pytest.mark.parametrize(
    "family, kv_heads, options, head_axes",
    [
        pytest.param("qwen2_5_vl", None, {}, [0, 0, 1, 2], id="default-2-1-1"),  # [2, 1, 1] on 4 KV heads
        pytest.param("qwen2_vl", 2, {"mrope_section": [0, 1, 1]}, [1, 2], id="explicit-0-1-1-on-2-heads"),
        pytest.param(
            "qwen2_vl", None, {"mrope_section": [1, 1, 1], "nope_heads": 1}, [0, 1, 2, NOPE_AXIS], id="nope-last"
        ),
    ],
)
def test_rotated_q_k_match_a_hand_rotation(monkeypatch, family, kv_heads, options, head_axes):
    """Each query and key head is rotated by its KV head's axis of the reference's spatial-reset positions over the
    full spectrum (or not at all, for a NoPE head), on an image prompt where t, h and w differ."""
    overrides = {} if kv_heads is None else {"num_key_value_heads": kv_heads}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "nope_heads=", UserWarning)
        model = mmrope_hf.patch_model(tiny_model(family, **overrides), "mhrope", **options)
    modeling, name = find_state(model).handles.rotary_apply
    dispatcher, seen = getattr(modeling, name), []

    def spy(q, k, cos, sin, *args, **kwargs):
        out = dispatcher(q, k, cos, sin, *args, **kwargs)
        seen.append((q, k, *out))
        return out

    monkeypatch.setattr(modeling, name, spy)
    inputs = inputs_for(family, "images")
    logits(model, inputs)
    ids, _ = ref.positions(reference_layout(family, PROMPTS["images"][0]), "spatial-reset")  # the reference's
    positions = torch.tensor(ids).T[:, None]
    q, k, q_rot, k_rot = seen[0]  # layer 0
    assert k.shape[1] == len(head_axes)
    group = q.shape[1] // k.shape[1]
    inv_freq = ref.inv_freq(q.shape[-1], model.config.text_config.rope_parameters["rope_theta"])
    max_err = 0.0
    for heads, rotated, per_kv in ((q, q_rot, group), (k, k_rot, 1)):
        for head in range(heads.shape[1]):
            axis = head_axes[head // per_kv]
            for token in range(heads.shape[2]):
                vector = heads[0, head, token].double().tolist()
                if axis == NOPE_AXIS:
                    want = vector
                else:
                    pos = positions[axis, 0, token].item()
                    want = ref.rotate(vector, *ref.cos_sin((pos, pos, pos), [0] * len(inv_freq), inv_freq))
                got = rotated[0, head, token].tolist()
                max_err = max(max_err, max(abs(a - b) for a, b in zip(want, got, strict=True)))
    assert max_err < 1e-5
    assert not torch.equal(positions[1], positions[0])  # the image really has distinct h and t ids
    assert not torch.equal(positions[2], positions[1])  # and distinct h and w ids
    monkeypatch.undo()  # the dispatcher back while the model still holds it (not after it is collected)


@pytest.mark.parametrize(
    "kv_heads, options, message",
    [
        (
            8,
            {"mrope_section": [3, 3, 3]},
            r"\[3, 3, 3\] counts KV heads per axis .* must sum to the 8 rotated KV heads",
        ),
        (4, {"mrope_section": [0, 0, 0]}, r"\[0, 0, 0\] counts KV heads .* sum to the 4 rotated KV heads"),
        (4, {"mrope_section": [2, 2]}, r"mrope_section must be three non-negative integers"),
        (4, {"mrope_section": [2, -1, 3]}, r"mrope_section must be three non-negative integers"),
        (
            2,
            {},
            r"needs at least 3 rotated KV heads, one per axis; this model has 2 KV head\(s\)\. "
            r"Use .*mrope-i, spatial-reset or mrope",
        ),
        (4, {"nope_heads": 2}, r"needs at least 3 rotated KV heads.* 4 KV head\(s\) and nope_heads=2"),
        (4, {"nope_heads": -1}, r"nope_heads must be a non-negative integer, got -1"),
    ],
)
def test_splits_that_do_not_fit_fail(kv_heads, options, message):
    model = tiny_model("qwen2_vl", num_key_value_heads=kv_heads)
    with pytest.raises(ValueError, match=message):
        mmrope_hf.patch_model(model, "mhrope", **options)
    assert not mmrope_hf.is_patched(model)


def test_two_kv_heads_work_with_an_explicit_split():
    model = tiny_model("qwen2_vl", num_key_value_heads=2)
    inputs = inputs_for("qwen2_vl", "text")
    stock = logits(model, inputs)
    mmrope_hf.patch_model(model, "mhrope", mrope_section=[0, 1, 1])
    assert torch.equal(logits(model, inputs), stock)


def test_nope_heads_are_opt_in_and_warn():
    model = tiny_model("qwen2_vl")
    inputs = inputs_for("qwen2_vl", "text")
    stock = logits(model, inputs)
    with pytest.warns(UserWarning, match="nope_heads=1: those KV heads get no rotation"):
        mmrope_hf.patch_model(model, "mhrope", mrope_section=[1, 1, 1], nope_heads=1)
    assert mmrope_hf.patch_info(model)["nope_heads"] == 1
    assert (logits(model, inputs) - stock).abs().max() > 1e-4


def test_nope_heads_only_with_multi_head():
    with pytest.raises(ValueError, match=r"unknown option\(s\) nope_heads for scheme 'mrope-i'"):
        mmrope_hf.resolve_config("mrope-i", nope_heads=1)


def test_dispatcher_is_shared_and_removed_with_the_last_model():
    gc.collect()  # patched models of earlier tests release the dispatcher when collected
    family = "qwen3_vl"
    inputs = inputs_for(family, "images")
    stock_model = tiny_model(family)
    stock = logits(stock_model, inputs)
    a = mmrope_hf.patch_model(tiny_model(family), "mhrope")
    modeling, name = find_state(a).handles.rotary_apply
    original = getattr(modeling, name).__wrapped__
    b = mmrope_hf.patch_model(tiny_model(family), "mhrope")
    expected = logits(b, inputs)
    oracle = oracle_logits(family, PROMPTS["images"], inputs, "mhrope")  # the stock model, reference per-head maths
    torch.testing.assert_close(expected, oracle, atol=float32_atol(oracle), rtol=0)
    assert torch.equal(logits(stock_model, inputs), stock)  # unpatched models in the process are unaffected
    mmrope_hf.unpatch_model(a)
    assert getattr(modeling, name) is not original and torch.equal(logits(b, inputs), expected)
    mmrope_hf.unpatch_model(b)
    assert getattr(modeling, name) is original
    c = mmrope_hf.patch_model(tiny_model(family), "mhrope")
    assert getattr(modeling, name) is not original
    del c
    gc.collect()
    assert getattr(modeling, name) is original


@pytest.mark.parametrize("family", FAMILIES)
def test_eager_and_sdpa_agree(family):
    """Both equal the oracle (the stock eager model fed the reference's per-axis tables, rotated per head by the
    test's own code), so they agree on the right tables, not on any shared wrong ones."""
    inputs = inputs_for(family, "left_padded")
    real = inputs["attention_mask"].bool()
    eager = logits(mmrope_hf.patch_model(tiny_model(family, attn_implementation="eager"), "mhrope"), inputs)
    sdpa = logits(mmrope_hf.patch_model(tiny_model(family, attn_implementation="sdpa"), "mhrope"), inputs)
    oracle = oracle_logits(family, PROMPTS["left_padded"], inputs, "mhrope")[real]  # tiny models default to eager
    torch.testing.assert_close(eager[real], oracle, atol=float32_atol(oracle), rtol=0)
    torch.testing.assert_close(sdpa[real], eager[real], atol=1e-5, rtol=1e-5)
