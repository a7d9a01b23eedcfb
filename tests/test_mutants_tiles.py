"""Unit tests of the tile and row-break layouts (patches/_tiles.py), written against hand-computed worked examples.

Gemma 3 / Idefics3 / InternVL: every placeholder run is a whole number of ``side x side`` tiles, each its own
(1, side, side) block; Mistral 3 (Pixtral): an image of (H, W) pixels is ``H // p`` rows of ``W // p`` placeholders,
each row ended by a break (the last by an end) token, one (1, rows, cols + 1) block. The expected segments below are
written out by hand from those rules; the models' configs are stand-ins (``SimpleNamespace``) holding only what the
adapters read, so these run in milliseconds.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch

from mmrope_hf.patches._tiles import RowBreaks, SquareTiles, _side
from mmrope_hf.positions.layout import IMAGE, VisualBlock

IMG, BRK, END, TXT = 7, 8, 9, 3  # placeholder, [IMG_BREAK], [IMG_END], some text token


def block(h: int, w: int) -> VisualBlock:
    return VisualBlock(IMAGE, (1, h, w), 1.0)


def ids(*rows: list[int]) -> torch.Tensor:
    return torch.tensor(rows)


# -- _side and the constructors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokens, side", [(1, 1), (4, 2), (16, 4), (256, 16), (729, 27)])
def test_side_of_a_square(tokens, side):
    assert _side(tokens, "x") == side


@pytest.mark.parametrize("tokens", [2, 15, 17, 255, 728])
def test_side_of_a_non_square_names_the_value(tokens):
    with pytest.raises(TypeError, match=rf"^image_seq_len is {tokens}, not a square grid of tokens$"):
        _side(tokens, "image_seq_len")


def test_gemma3_reads_mm_tokens_per_image():
    owner = SimpleNamespace(config=SimpleNamespace(mm_tokens_per_image=256, image_token_id=262144))
    tiles = SquareTiles.gemma3(owner)
    assert tiles == SquareTiles("gemma3", 16, 262144)
    assert (tiles.family, tiles.side, tiles.image_token_id, tiles.video_token_id) == ("gemma3", 16, 262144, None)
    owner.config.mm_tokens_per_image = 250
    with pytest.raises(TypeError, match=r"^mm_tokens_per_image is 250, not a square grid of tokens$"):
        SquareTiles.gemma3(owner)


@pytest.mark.parametrize("model_type", ["idefics3", "smolvlm"])
def test_idefics3_reads_image_seq_len_and_the_model_type(model_type):
    owner = SimpleNamespace(image_seq_len=64, config=SimpleNamespace(model_type=model_type, image_token_id=49190))
    tiles = SquareTiles.idefics3(owner)
    assert (tiles.family, tiles.side, tiles.image_token_id) == (model_type, 8, 49190)
    assert tiles.video_token_id is None
    owner.image_seq_len = 63
    with pytest.raises(TypeError, match=r"^image_seq_len is 63, not a square grid of tokens$"):
        SquareTiles.idefics3(owner)


def test_internvl_side_is_patches_per_tile_times_the_downsample_ratio():
    # 448 px tiles of 14 px patches = 32 patches a side, pixel shuffle 0.5 -> 16; the second entries differ on
    # purpose (224 / 8 = 28): only the first (height) entries are read
    vision = SimpleNamespace(image_size=[448, 224], patch_size=[14, 8])
    owner = SimpleNamespace(config=SimpleNamespace(vision_config=vision, downsample_ratio=0.5, image_token_id=151667))
    tiles = SquareTiles.internvl(owner)
    assert (tiles.family, tiles.side, tiles.image_token_id) == ("internvl", 16, 151667)
    assert type(tiles.side) is int
    owner.config.downsample_ratio = 0.25
    assert SquareTiles.internvl(owner).side == 8
    vision.image_size, vision.patch_size = (42, 42), (14, 14)  # 3 patches x 0.5 = 1.5 -> 1 (int truncates)
    owner.config.downsample_ratio = 0.5
    assert SquareTiles.internvl(owner).side == 1
    # the patch conv drops a remainder: 77 px of 14 px patches is 5 whole patches (not 5.5), x 0.75 = 3.75 -> 3
    vision.image_size, vision.patch_size = (77, 77), (14, 14)
    owner.config.downsample_ratio = 0.75
    assert SquareTiles.internvl(owner).side == 3


def test_mistral3_patch_is_pixels_per_token_side():
    owner = SimpleNamespace(
        config=SimpleNamespace(vision_config=SimpleNamespace(patch_size=14), spatial_merge_size=2, image_token_id=10)
    )
    breaks = RowBreaks.mistral3(owner)
    assert breaks == RowBreaks(28, 10)
    assert (breaks.patch, breaks.image_token_id, breaks.video_token_id) == (28, 10, None)
    owner.config.spatial_merge_size = 3
    assert RowBreaks.mistral3(owner).patch == 42


# -- SquareTiles.layout --------------------------------------------------------------------------------------------


def test_square_tiles_layout_worked_example():
    tiles = SquareTiles("gemma3", 2, IMG)
    # row 0: 2 text, two 2x2 tiles (8 placeholders), 1 text, one tile, 3 text
    row0 = [TXT] * 2 + [IMG] * 8 + [TXT] + [IMG] * 4 + [TXT] * 3
    # row 1, left-padded by 5: 1 text, one tile, 2 text (the padding holds placeholder ids: they are ignored)
    row1 = [IMG] * 5 + [TXT] + [IMG] * 4 + [TXT] * 2 + [TXT] * 6
    # row 1 is padded on both sides: 5 left, 6 right
    mask = ids([1] * 18, [0] * 5 + [1] * 7 + [0] * 6)
    got = tiles.layout(ids(row0, row1), mask, {})
    assert got == [[2, block(2, 2), block(2, 2), 1, block(2, 2), 3], [1, block(2, 2), 2]]
    assert all(type(s) is int or s.interval == 1.0 for row in got for s in row)


def test_square_tiles_layout_without_a_mask_and_a_leading_image():
    tiles = SquareTiles("internvl", 1, IMG)
    got = tiles.layout(ids([IMG, IMG, TXT, IMG]), None, {})
    assert got == [[block(1, 1), block(1, 1), 1, block(1, 1)]]


def test_square_tiles_layout_none_without_placeholders():
    tiles = SquareTiles("gemma3", 2, IMG)
    assert tiles.layout(ids([TXT] * 5), None, {}) is None
    # placeholders only under the padding do not count either
    assert tiles.layout(ids([IMG] * 4 + [TXT]), ids([0] * 4 + [1]), {}) is None


def test_square_tiles_run_that_is_not_whole_tiles_names_row_run_position_and_family():
    tiles = SquareTiles("idefics3", 2, IMG)
    good = [TXT] * 3 + [IMG] * 4 + [TXT]
    bad = [TXT] * 2 + [IMG] * 4 + [TXT] + [IMG] * 6 + [TXT]
    message = (
        "row 1 has a run of 6 image placeholder tokens at position 7, not a whole number of 2x2 tiles (4 tokens "
        "each) as idefics3 packs them"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        tiles.layout(ids(good + [TXT] * 6, bad), None, {})


# -- RowBreaks -----------------------------------------------------------------------------------------------------


def test_row_break_grids_from_image_sizes():
    breaks = RowBreaks(28, IMG)
    sizes = torch.tensor([[56, 84], [28, 28], [100, 60]])  # 100 // 28 = 3 rows, 60 // 28 = 2 columns
    assert breaks.grids({"image_sizes": sizes}) == [(2, 3), (1, 1), (3, 2)]
    assert breaks.grids({"image_sizes": [[[56, 84]], [[28, 56]]]}) == [(2, 3), (1, 2)]  # any (..., 2) nesting
    assert all(type(v) is int for grid in breaks.grids({"image_sizes": sizes}) for v in grid)


def test_row_break_grids_need_image_sizes():
    message = "the mistral3 layout needs image_sizes (one (height, width) per image)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RowBreaks(28, IMG).grids({})
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RowBreaks(28, IMG).grids({"image_sizes": None})


def image_tokens(rows: int, cols: int) -> list[int]:
    out = [t for _ in range(rows) for t in [IMG] * cols + [BRK]]
    out[-1] = END
    return out


def test_row_break_layout_worked_example():
    breaks = RowBreaks(28, IMG)
    # row 0: 3 text, a 2x3 image (2 rows of 3 + break), 2 text; row 1 (left-padded by 4): 2 text, a 1x2 image, a
    # 3x1 image right after it (no text between), 1 text
    row0 = [TXT] * 3 + image_tokens(2, 3) + [TXT] * 2
    row1 = [TXT] * 2 + image_tokens(1, 2) + image_tokens(3, 1) + [TXT]
    pad = len(row0) - len(row1)
    assert pad == 1
    mask = ids([1] * len(row0), [0] * pad + [1] * len(row1))
    sizes = torch.tensor([[56, 84], [28, 56], [84, 28]])
    got = breaks.layout(ids(row0, [IMG] * pad + row1), mask, {"image_sizes": sizes})
    assert got == [[3, block(2, 4), 2], [2, block(1, 3), block(3, 2), 1]]


def test_row_break_layout_image_at_the_start_and_the_end():
    breaks = RowBreaks(28, IMG)
    got = breaks.layout(
        ids(image_tokens(1, 1) + [TXT] + image_tokens(2, 2)), None, {"image_sizes": [[28, 28], [56, 56]]}
    )
    assert got == [[block(1, 2), 1, block(2, 3)]]


def test_row_break_layout_none_without_placeholders():
    breaks = RowBreaks(28, IMG)
    assert breaks.layout(ids([TXT, BRK, END]), None, {}) is None  # image_sizes is not even asked for
    assert breaks.layout(ids([IMG, IMG, TXT]), ids([0, 0, 1]), {}) is None


def test_row_break_layout_more_images_than_image_sizes():
    breaks = RowBreaks(28, IMG)
    row0 = [TXT] + image_tokens(1, 1) + [TXT]
    row1 = [TXT, TXT] + image_tokens(1, 1)
    message = "row 1 has more images at position 2 than image_sizes describes"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        breaks.layout(ids(row0, row1), None, {"image_sizes": [[28, 28]]})


@pytest.mark.parametrize("extra", [1, 2])
def test_row_break_layout_more_image_sizes_than_images(extra):
    breaks = RowBreaks(28, IMG)
    message = f"image_sizes describes {extra} image(s) more than the placeholder tokens hold"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        breaks.layout(ids([TXT] + image_tokens(1, 2)), None, {"image_sizes": [[28, 56]] * (1 + extra)})


def test_row_break_layout_mismatch_names_the_image_its_grid_and_the_position():
    breaks = RowBreaks(28, IMG)
    # image 1 is said to be 2 rows of 2 but its second row has 3 placeholders
    row = [TXT] + image_tokens(1, 1) + [TXT, TXT] + [IMG, IMG, BRK, IMG, IMG, IMG, END] + [TXT]
    message = (
        "image 1 (2 rows of 2 tokens from image_sizes) does not match row 0 at position 8: expected 2 image "
        "placeholder tokens and a break token (image features and placeholder tokens do not match)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        breaks.layout(ids(row), None, {"image_sizes": [[28, 28], [56, 56]]})


@pytest.mark.parametrize(
    "tokens, at",
    [
        ([IMG, IMG, IMG, BRK, IMG, IMG, END], 0),  # first row one placeholder too many (no break at column 2)
        ([IMG, BRK, IMG, IMG, END], 0),  # first row one short
        ([IMG, IMG, BRK, IMG, END], 3),  # second row one short, its end in a placeholder's place
        ([IMG, IMG, BRK, IMG, IMG], 3),  # the run stops before the last row's end token
    ],
)
def test_check_rows_reports_the_first_bad_row(tokens, at):
    kinds = [int(t == IMG) for t in tokens]
    with pytest.raises(
        ValueError,
        match=rf"^image 4 \(2 rows of 2 tokens from image_sizes\) does not match row 3 at "
        rf"position {at}: expected 2 image placeholder tokens and a break token",
    ):
        RowBreaks._check_rows(kinds, 3, 0, 4, 2, 2)


def test_check_rows_accepts_the_grid_and_reads_only_its_span():
    kinds = [0, 1, 1, 0, 1, 1, 0, 1]  # a 2x2 image from position 1, then an unrelated placeholder
    assert RowBreaks._check_rows(kinds, 0, 1, 0, 2, 2) is None
