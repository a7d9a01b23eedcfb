"""Tests that kill the mutants of mmrope_hf/positions/layout.py that survived the module's tests
(scripts/mutation.py layout; docs/mutation.md): the layout parsing under both builders (parse_layout, the
block tables) against tests/reference/rope_reference on random batches (the generator and the check are in
tests/test_mutants_mrope.py)."""

from __future__ import annotations

import pytest
import test_mutants_mrope as common
import torch


@pytest.mark.parametrize("seed", range(100, 124))
@pytest.mark.parametrize("advance", ["max", "spatial"])
@pytest.mark.parametrize("temporal_stride", [None, 0.75])
def test_layout_equals_the_reference(seed, advance, temporal_stride):
    common.check_against_reference(
        seed, ("mrope", "spatial-reset", "vanilla"), temporal_stride, advance, paths=("rows", "numpy", "torch")
    )


def _items(images=None, videos=None):
    from mmrope_hf.positions.layout import IMAGE, VIDEO, visual_items

    return [visual_items(IMAGE, images), visual_items(VIDEO, videos)]


def test_blocks_carry_their_modality_and_merged_grid():
    from mmrope_hf.positions.layout import IMAGE, VIDEO, VisualBlock, parse_layout

    tt = torch.tensor([[0, 1, 1, 0, 2, 2, 0]])
    layout = parse_layout(tt, None, _items(torch.tensor([[1, 2, 4]]), torch.tensor([[2, 2, 2]])), 2)
    assert layout == [[1, VisualBlock(IMAGE, (1, 1, 2), 1.0), 1, VisualBlock(VIDEO, (2, 1, 1), 1.0), 1]]


def test_layout_errors_name_the_row_the_item_and_the_position():
    from mmrope_hf.positions.layout import IMAGE, parse_layout, visual_items

    tt = torch.tensor([[0, 0, 1, 1, 1, 0]])
    with pytest.raises(ValueError, match=r"^row 0 holds image placeholder tokens at position 2 but no image_grid_thw"):
        parse_layout(tt, None, [], 2)
    with pytest.raises(
        ValueError,
        match=r"^row 0 has more image placeholder tokens than image_grid_thw describes \(1 item\(s\)\); "
        r"2 token\(s\) at position 3 have no grid$",
    ):
        parse_layout(tt, None, _items(torch.tensor([[1, 2, 2]])), 2)
    for grid in ([1, 3, 2], [1, 2, 3]):  # either side not divisible
        with pytest.raises(
            ValueError, match=r"^image grid 0 = \(1, \d, \d\) is not divisible by spatial_merge_size 2$"
        ):
            parse_layout(tt, None, [visual_items(IMAGE, torch.tensor([grid]))], 2)
