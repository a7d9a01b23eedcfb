"""KV-cache decoding equals the full forward; generate refreshes rope_deltas; batching equals one-by-one."""

from __future__ import annotations

import pytest
import torch
from conftest import (
    SCHEMES,
    assert_batched_generate_equals_one_by_one,
    assert_cached_decoding_with_positions,
    assert_decoding_from_rope_deltas,
    assert_generate_equals_teacher_forced,
    assert_prefill_then_decode,
    greedy,
    inputs_for,
    left_pad_batch,
    reference_layout,
)
from oracle_forward import SCHEMES as RECIPES
from oracle_forward import next_position
from reference import rope_reference

import mmrope_hf
from mmrope_hf.testing import build_inputs, tiny_model

ATOL = 1e-5
SCHEDULES = [pytest.param(scheme, {}, id=scheme) for scheme in SCHEMES] + [
    pytest.param("mrope", {"layers": ["vanilla", "spatial-reset"]}, id="two-position-sets"),
    pytest.param("circle", {"layers": "all"}, id="circle-all"),
]


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_prefill_then_cached_decoding_equals_full_forward(family, model, scheme, options):
    mmrope_hf.patch_model(model, scheme, **options)
    assert_cached_decoding_with_positions(model, inputs_for(family, "left_padded"))


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_decoding_from_rope_deltas_equals_full_forward(family, model, scheme, options):
    """Manual decoding without position_ids: the model adds its stored rope_deltas (unpadded batch of 1)."""
    mmrope_hf.patch_model(model, scheme, **options)
    assert_decoding_from_rope_deltas(model, inputs_for(family, "images"))


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_decoding_with_a_mask_without_position_ids_equals_full_forward(family, model, scheme, options):
    """A hand-written decode loop: the cache, a 2-D mask over past + new tokens, no position_ids (left-padded)."""
    mmrope_hf.patch_model(model, scheme, **options)
    assert_prefill_then_decode(model, inputs_for(family, "left_padded"))


def test_stock_decoding_with_a_mask_without_position_ids_still_crashes(family, model):
    """transformers 5.23 counts the new token's position over the whole mask (past + 1 columns) and fails; the
    patch fixes this for patched models only. When this starts passing upstream, the slicing can go."""
    with pytest.raises(RuntimeError, match="(?i)size"):
        assert_prefill_then_decode(model, inputs_for(family, "left_padded"))
    mmrope_hf.unpatch_model(mmrope_hf.patch_model(model, "mrope-i"))
    with pytest.raises(RuntimeError, match="(?i)size"):
        assert_prefill_then_decode(model, inputs_for(family, "left_padded"))


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_generate_equals_teacher_forced_forward(family, model, scheme, options):
    mmrope_hf.patch_model(model, scheme, **options)
    assert_generate_equals_teacher_forced(model, inputs_for(family, "left_padded"))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_second_generate_uses_fresh_rope_deltas(family, scheme):
    first = build_inputs(family, [[3, ("image", 1, 8, 8), 2], [1, ("image", 1, 4, 4), 6]], seed=1)
    second = build_inputs(family, [[6, ("image", 1, 6, 4), 1, ("image", 1, 2, 4), 3]], seed=2)
    used = mmrope_hf.patch_model(tiny_model(family), scheme)
    greedy(used, first)
    again = greedy(used, second)
    layout = reference_layout(family, [6, ("image", 1, 6, 4), 1, ("image", 1, 2, 4), 3])
    design = RECIPES[scheme][0][0]  # rope_deltas: the primary position set's
    delta = next_position(design, layout, 1.0) - rope_reference.num_tokens(layout)  # images only: no stride read
    assert used.model.rope_deltas.shape == (1, 1)
    assert used.model.rope_deltas.item() == pytest.approx(delta, abs=1e-5)
    fresh = greedy(mmrope_hf.patch_model(tiny_model(family), scheme), second)
    assert torch.equal(again.sequences, fresh.sequences)
    for a, b in zip(again.logits, fresh.logits, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_batched_left_padded_generate_equals_one_by_one(family, model, scheme):
    mmrope_hf.patch_model(model, scheme)
    rows = [[3, ("image", 1, 8, 8), 2], [1, ("image", 1, 4, 6), 5, ("image", 1, 2, 2), 1], [8]]
    singles = [build_inputs(family, [row], seed=b) for b, row in enumerate(rows)]
    assert_batched_generate_equals_one_by_one(model, singles, left_pad_batch(singles))
