"""KV-cache decoding equals the full forward; generate refreshes rope_deltas; batching equals one-by-one."""

from __future__ import annotations

import pytest
import torch
from conftest import (
    SCHEMES, assert_cached_decoding_with_positions, assert_decoding_from_rope_deltas, inputs_for, left_pad_batch, logits,
)

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


def generate(model, inputs, new_tokens=4):
    return model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False, output_logits=True,
                          return_dict_in_generate=True)


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_generate_equals_teacher_forced_forward(family, model, scheme, options):
    mmrope_hf.patch_model(model, scheme, **options)
    inputs = inputs_for(family, "left_padded")
    out = generate(model, inputs)
    length = inputs["input_ids"].shape[1]
    new = out.sequences.shape[1] - length
    forced = dict(inputs, input_ids=out.sequences,
                  attention_mask=torch.cat([inputs["attention_mask"], torch.ones(2, new, dtype=torch.long)], 1),
                  mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"], torch.zeros(2, new, dtype=torch.long)], 1))
    full = logits(model, forced)
    for i, step_logits in enumerate(out.logits):
        torch.testing.assert_close(step_logits, full[:, length - 1 + i], atol=ATOL, rtol=0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_second_generate_uses_fresh_rope_deltas(family, scheme):
    first = build_inputs(family, [[3, ("image", 1, 8, 8), 2], [1, ("image", 1, 4, 4), 6]], seed=1)
    second = build_inputs(family, [[6, ("image", 1, 6, 4), 1, ("image", 1, 2, 4), 3]], seed=2)
    used = mmrope_hf.patch_model(tiny_model(family), scheme)
    generate(used, first)
    again = generate(used, second)
    assert used.model.rope_deltas.shape == (1, 1)
    fresh = generate(mmrope_hf.patch_model(tiny_model(family), scheme), second)
    assert torch.equal(again.sequences, fresh.sequences)
    for a, b in zip(again.logits, fresh.logits):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_batched_left_padded_generate_equals_one_by_one(family, model, scheme):
    mmrope_hf.patch_model(model, scheme)
    rows = [[3, ("image", 1, 8, 8), 2], [1, ("image", 1, 4, 6), 5, ("image", 1, 2, 2), 1], [8]]
    singles = [build_inputs(family, [row], seed=b) for b, row in enumerate(rows)]
    batched = generate(model, left_pad_batch(singles))
    for b, inputs in enumerate(singles):
        single = generate(model, inputs)
        assert torch.equal(batched.sequences[b, -len(batched.logits):], single.sequences[0, -len(single.logits):])
        for step_batched, step_single in zip(batched.logits, single.logits):
            torch.testing.assert_close(step_batched[b], step_single[0], atol=1e-4, rtol=0)
