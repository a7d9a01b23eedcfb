"""Tests that kill the mutants of mmrope_hf/frequencies/allocation.py that survived the module's tests
(scripts/mutation.py allocation; docs/mutation.md). Expectations: stock transformers' Qwen2-VL recomposition, the
oracle maps of tests/reference, and the rules stated in the module's docstring, written out by hand."""

from __future__ import annotations

import types

import pytest
import torch
from reference import baselines_reference as bref
from reference import rope_reference as ref
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRotaryEmbedding

from mmrope_hf.frequencies.allocation import (
    ALLOCATIONS,
    HeadAllocation,
    _non_negative_int,
    chunked_pair_axes,
    multimodal_ropes_videorope_pair_axes,
    videorope_pair_axes,
)


def stock_chunked_axes(section):
    """Stock Qwen2-VL: chunk i of the split reads axis i % 3 (recomposition_frequencies on a (3, P) tensor whose
    row a holds a)."""
    freq = torch.arange(3.0)[:, None].expand(3, sum(section))
    stock = Qwen2VLRotaryEmbedding.recomposition_frequencies(types.SimpleNamespace(mrope_section=list(section)), freq)
    return [int(a) for a in stock[: sum(section)]]


@pytest.mark.parametrize("section", [[2, 2, 2, 2], [1, 1, 1, 1, 1], [3, 2, 1]])
def test_chunked_matches_stock_for_any_number_of_chunks(section):
    assert chunked_pair_axes(sum(section), section) == stock_chunked_axes(section)


def test_chunked_error_names_the_section_and_the_counts():
    with pytest.raises(ValueError, match=r"chunked mrope_section \[2, 2\] covers 4 pairs, the head has 8"):
        chunked_pair_axes(8, [2, 2])


def test_non_negative_int():
    assert _non_negative_int("nope_heads", 0) == 0
    assert _non_negative_int("nope_heads", 2) == 2
    for bad in (True, False, -1, 1.0, "1"):
        with pytest.raises(ValueError, match="nope_heads must be a non-negative integer"):
            _non_negative_int("nope_heads", bad)


@pytest.mark.parametrize("section", [(2, 3, 1), (1, 1, 3), (4, 2, 0)])
def test_multimodal_ropes_videorope_asymmetric_matches_the_reference(section):
    assert multimodal_ropes_videorope_pair_axes(sum(section), section) == bref.videorope_repo_axes(
        sum(section), section
    )


def test_videorope_all_temporal():
    assert videorope_pair_axes(8, [8, 0, 0]) == bref.videorope_official_axes(8, [8, 0, 0]) == [0] * 8


def test_videorope_asymmetric_larger_axis_takes_the_rest():
    # the docstring's rule: H, W alternate (H first) until W's 1 pair is used, H takes the pairs left, then T
    assert videorope_pair_axes(6, [2, 3, 1]) == [1, 2, 1, 1, 0, 0]
    assert ALLOCATIONS.get("videorope").plan(6, 8, [2, 3, 1], {}).pair_axes == (1, 2, 1, 1, 0, 0)


def test_multi_head_default_section_is_floor_three_eighths():
    for n in (3, 4, 8, 16, 61, 64):
        h = 3 * n // 8
        assert HeadAllocation.default_section(n) == (n - 2 * h, h, h)


def test_multi_head_error_suggests_a_section_only_from_three_heads():
    heads = ALLOCATIONS.get("multi-head")
    with pytest.raises(ValueError) as three:
        heads.plan(64, 3, [1, 1, 2], {})
    assert str(three.value).endswith("(3 KV heads, nope_heads=0); e.g. [1, 1, 1]")
    with pytest.raises(ValueError) as two:
        heads.plan(64, 2, [1, 0, 0], {})
    assert str(two.value).endswith("(2 KV heads, nope_heads=0)")


@pytest.mark.parametrize("strict", [True, False])
def test_plans_carry_their_name_and_section(strict):
    for name, section in [("interleaved", (24, 20, 20)), ("chunked", (16, 24, 24)), ("videorope", (16, 24, 24))]:
        plan = ALLOCATIONS.get(name).plan(64, 8, section, {}, strict)
        assert (plan.name, plan.section) == (name, section)
    plan = ALLOCATIONS.get("multi-head").plan(64, 8, [2, 3, 3], {})
    assert (plan.name, plan.section, plan.head_axes) == ("multi-head", (2, 3, 3), (0, 0, 1, 1, 1, 2, 2, 2))
    layout = {"videorope_layout": "multimodal-ropes"}
    plan = ALLOCATIONS.get("videorope").plan(64, 8, (16, 24, 24), layout)
    assert (plan.name, plan.section) == ("videorope", (16, 24, 24))


def test_videorope_reference_layout_error_gives_the_head_dim():
    with pytest.raises(ValueError, match=r"sums to 9, but the head has 8 rotary pairs \(head_dim 16\)"):
        ALLOCATIONS.get("videorope").plan(8, 8, [3, 3, 3], {"videorope_layout": "multimodal-ropes"})


def test_videorope_non_strict_takes_a_section_that_does_not_sum():
    plan = ALLOCATIONS.get("videorope").plan(8, 8, [2, 3, 4], {}, strict=False)
    # pairs [0, 6) alternate H, W; s_t = 2 trailing T pairs
    assert plan.pair_axes == (1, 2, 1, 2, 1, 2, 0, 0)
    with pytest.raises(ValueError, match="sums to 9"):
        ALLOCATIONS.get("videorope").plan(8, 8, [2, 3, 4], {})


def test_scaled_base_checks_the_section_like_interleaved():
    scaled = ALLOCATIONS.get("interleaved-scaled-base")
    with pytest.raises(ValueError, match="does not fit the interleaved-scaled-base allocation"):
        scaled.plan(64, 8, [16, 24, 24], {})
    loose = scaled.plan(64, 8, [16, 24, 24], {}, strict=False)
    assert list(loose.pair_axes) == ref.interleaved_axes(64, [16, 24, 24])
    plan = scaled.plan(64, 8, [32, 16, 16], {})
    assert list(plan.pair_axes) == ref.interleaved_axes(64, [32, 16, 16])
    assert plan.section == (32, 16, 16)
