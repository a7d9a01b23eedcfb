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


def test_an_unknown_token_type_is_named_with_its_row():
    from mmrope_hf.positions.layout import parse_layout

    tt = torch.tensor([[0, 0, 0], [0, 3, 0]])
    with pytest.raises(
        ValueError, match=r"^mm_token_type_ids holds 3 in row 1; valid values: 0 text, 1 image, 2 video$"
    ):
        parse_layout(tt, None, _items(), 2)


def test_unused_grids_are_named_with_both_counts():
    """Two video grids but placeholders for one: the error names the modality and both counts."""
    from mmrope_hf.positions.layout import parse_layout

    tt = torch.tensor([[0, 2, 2, 0]])
    with pytest.raises(
        ValueError,
        match=r"^video_grid_thw has 2 video item\(s\) but the input's video placeholder tokens hold only 1$",
    ):
        parse_layout(tt, None, _items(None, torch.tensor([[2, 2, 2], [1, 2, 2]])), 2)


def test_interval_count_must_match_the_grids():
    from mmrope_hf.positions.layout import VIDEO, visual_items

    with pytest.raises(ValueError, match=r"^got 1 temporal intervals for 2 video grids$"):
        visual_items(VIDEO, torch.tensor([[2, 2, 2], [1, 2, 2]]), [0.5])


def test_split_frames_repeat_each_interval_once_per_frame():
    """A (3, 4, 2) video at step 0.5 and a (2, 2, 6) one at step 2: five single-frame items, the frames of each
    video carrying its step (T copies, not H)."""
    from mmrope_hf.positions.layout import VIDEO, visual_items

    got = visual_items(VIDEO, torch.tensor([[3, 4, 2], [2, 2, 6]]), [0.5, 2.0], split_frames=True)
    assert got.grids == [(1, 4, 2)] * 3 + [(1, 2, 6)] * 2
    assert list(got.intervals) == [0.5, 0.5, 0.5, 2.0, 2.0]
    merged = visual_items(VIDEO, torch.tensor([[4, 2, 2]]), [1.5], temporal_merge=2)
    assert merged.grids == [(2, 2, 2)] and list(merged.intervals) == [1.5]
