"""Tests that kill the mutants of mmrope_hf/positions/rows.py that survived the module's tests
(scripts/mutation.py rows; docs/mutation.md): the per-row builder (build_positions) against
tests/reference/rope_reference on random batches (the generator and the check are in tests/test_mutants_mrope.py)."""

from __future__ import annotations

import pytest
import test_mutants_mrope as common
import torch


@pytest.mark.parametrize("seed", range(100, 124))
@pytest.mark.parametrize("advance", ["max", "spatial"])
@pytest.mark.parametrize("temporal_stride", [None, 0.75])
def test_rows_equals_the_reference(seed, advance, temporal_stride):
    common.check_against_reference(
        seed, ("mrope", "spatial-reset", "vanilla"), temporal_stride, advance, paths=("rows",)
    )


def test_no_attention_mask_means_every_slot_is_a_token():
    """Two unpadded rows and no attention_mask: every slot gets the reference position."""
    from reference import rope_reference as ref

    from mmrope_hf.positions.design import PositionOptions
    from mmrope_hf.positions.layout import IMAGE, VIDEO, parse_layout, visual_items
    from mmrope_hf.positions.rows import build_positions

    layouts = [[("text", 2), ("image", 1, 2, 3), ("text", 1)], [("text", 1), ("image", 1, 3, 2), ("text", 2)]]
    tt = torch.tensor([[0, 0] + [IMAGE] * 6 + [0], [0] + [IMAGE] * 6 + [0, 0]])
    items = [visual_items(IMAGE, torch.tensor([[1, 4, 6], [1, 6, 4]])), visual_items(VIDEO, None)]
    designs = ("mrope", "spatial-reset", "vanilla")
    positions, deltas = build_positions(designs, parse_layout(tt, None, items, 2), PositionOptions(), None, (2, 9))
    assert positions.dtype == torch.long
    for k, design in enumerate(designs):
        for b, layout in enumerate(layouts):
            ids, nxt = ref.positions(layout, design)
            assert [tuple(p) for p in positions[3 * k : 3 * k + 3, b].T.tolist()] == ids
            assert deltas[b, k] == nxt - 9
