"""Unit tests of the LLaVA token layouts (patches/_llava_layout.py), against hand-computed worked examples.

The geometry is the tiny test models' (56 px tiles of 14 px patches: a 4 x 4 grid per tile; NeXT pinpoints up to
1 x 3 / 2 x 2 tiles, OneVision up to 3 x 3 with ``anyres_max_4``) built directly or from stand-in owners
(``SimpleNamespace``), so no model is built. The grids below are worked out by hand from LLaVA-NeXT's any-resolution
rules: ``select_best_resolution`` picks the pinpoint that keeps the most of the image (then wastes the least), the
tiles are re-assembled into one grid and ``unpad_image`` crops the padding rows / columns, each row ends with a
newline (one more column); OneVision downsamples a grid of more than ``max`` tiles of tokens (ratio
``sqrt(H W / (max side^2)) > 1.1``) to ``int(H // ratio) x int(W // ratio)``, keeps only the base view (+ one newline)
of images in multi-image samples, and a video is ``frames x ceil(side/2)^2`` pooled tokens + one newline.
"""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace

import pytest
import torch
from transformers.models.llava_next import modeling_llava_next
from transformers.models.llava_onevision import modeling_llava_onevision

from mmrope_hf.patches._llava_layout import (
    LLAVA,
    NEXT,
    ONEVISION,
    Item,
    LlavaGeometry,
    _Queue,
    placeholder_kinds,
    runs,
)
from mmrope_hf.positions.layout import IMAGE, VIDEO, VisualBlock

IMG, VID, TXT = 5, 6, 3
NEXT_PINPOINTS = ((56, 112), (112, 56), (112, 112), (56, 168), (168, 56))
ONEVISION_PINPOINTS = tuple((56 * i, 56 * j) for i in range(1, 4) for j in range(1, 4))


def geometry(family: str, cls_tokens: int = 1, side: int = 4, **overrides) -> LlavaGeometry:
    fields = dict(
        family=family,
        side=side,
        tile_size=14 * side,
        cls_tokens=cls_tokens,
        image_token_id=IMG,
        video_token_id=VID if family == ONEVISION else None,
        select_strategy="default" if cls_tokens else "full",
        pinpoints={LLAVA: None, NEXT: NEXT_PINPOINTS, ONEVISION: ONEVISION_PINPOINTS}[family],
        aspect_ratio="anyres_max_4" if family == ONEVISION else None,
        modeling=modeling_llava_onevision if family == ONEVISION else modeling_llava_next,
    )
    fields.update(overrides)
    return LlavaGeometry(**fields)


def block(h: int, w: int, t: int = 1, modality: int = IMAGE) -> VisualBlock:
    return VisualBlock(modality, (t, h, w), 1.0)


BASE = block(4, 4)


def batch(*rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (input_ids, attention_mask); the padding holds placeholder ids, which must be ignored."""
    length = max(map(len, rows))
    input_ids = torch.tensor([[IMG] * (length - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (length - len(r)) + [1] * len(r) for r in rows])
    return input_ids, mask


def message(text: str) -> str:
    return f"^{re.escape(text)}$"


# -- Item, tile_tokens, the LLaVA-1.5 image ------------------------------------------------------------------------


def test_item_num_tokens_counts_text_and_blocks():
    assert Item((3, block(2, 3, 2), 1), "x").num_tokens == 3 + 12 + 1
    assert Item((BASE,), "x").num_tokens == 16
    assert Item((), "x").num_tokens == 0


@pytest.mark.parametrize(
    "cls_tokens, strategy, tokens", [(1, "default", 16), (1, "full", 17), (0, "default", 15), (0, "full", 16)]
)
def test_tile_tokens(cls_tokens, strategy, tokens):
    assert geometry(LLAVA, cls_tokens).tile_tokens(strategy) == tokens


def test_llava_image_is_the_grid_or_cls_then_grid():
    clip = geometry(LLAVA, cls_tokens=1)
    assert clip.image(2, None, "default") == Item((BASE,), "image 2 (4x4 grid)")
    assert clip.image(2, None, "full") == Item((1, BASE), "image 2 (CLS + 4x4 grid)")
    siglip = geometry(LLAVA, cls_tokens=0, side=3)
    assert siglip.image(0, None, "full") == Item((block(3, 3),), "image 0 (3x3 grid)")
    assert clip.image(1, (100, 300), "default").segments == (BASE,)  # LLaVA-1.5 ignores the size
    with pytest.raises(
        ValueError,
        match=message(
            "image 5: vision_feature_select_strategy='default' leaves 8 features of the 3x3 patch grid, which is "
            "not a grid"
        ),
    ):
        siglip.image(5, None, "default")


# -- NeXT / OneVision images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, grid",
    [
        ((112, 112), (8, 8)),  # 2x2 tiles, nothing cropped
        ((60, 120), (4, 8)),  # 56x112 and 112x112 both keep 112x56 px of it, 56x112 wastes less: 1x2 tiles
        ((30, 112), (2, 8)),  # 1x2 tiles; height 30 / 112 x 8 = 2.1 -> 2 rows, (4 - 2) // 2 = 1 cropped above
        ((112, 30), (8, 2)),  # 112x56: 2x1 tiles; width 2 of 4, one column cropped on the left
        ((56, 56), (4, 4)),  # every pinpoint keeps it whole, 56x112 (listed first) wastes the least: 4x8, crop 2+2
        ((20, 150), (2, 12)),  # only 56x168 keeps it whole: 1x3 tiles; height int(1.6) = 1, (4 - 1) // 2 = 1 above
    ],
)
def test_next_hires_grid_worked_examples(size, grid):
    got = geometry(NEXT).hires_grid(size)
    assert got == grid and all(type(v) is int for v in got)
    assert geometry(NEXT).hires_grid(torch.tensor(size)) == grid  # image_sizes rows are tensors


@pytest.mark.parametrize(
    "aspect_ratio, size, grid",
    [
        ("anyres_max_4", (112, 168), (6, 9)),  # 2x3 tiles: 8x12, ratio sqrt(96 / 64) = 1.225: 8 // r, 12 // r
        ("anyres_max_4", (112, 112), (8, 8)),  # ratio 1: kept
        ("anyres_max_3", (112, 112), (6, 6)),  # ratio sqrt(64 / 48) = 1.155 > 1.1: 8 // 1.155 = 6
        ("anyres_max_4", (112, 140), (7, 8)),  # 2x3 tiles, 10 of 12 columns kept: 8x10, ratio 1.118: 7.16, 8.94
        ("anyres_max_9", (168, 168), (12, 12)),  # 3x3 tiles, ratio 1
        ("anyres_max_2", (168, 168), (5, 5)),  # ratio sqrt(144 / 32) = 2.12: 12 // 2.12 = 5.66 -> 5
        ("anyres_max_4", (60, 120), (6, 12)),  # only 112x168 keeps it whole: 8x12, 6 rows kept; ratio 1.06: kept
    ],
)
def test_onevision_hires_grid_worked_examples(aspect_ratio, size, grid):
    got = geometry(ONEVISION, aspect_ratio=aspect_ratio).hires_grid(size)
    assert got == grid and all(type(v) is int for v in got)


def test_next_never_downsamples():
    # 168x168 fits no NeXT pinpoint whole; 112x112 (2x2) keeps the most: 8x8 -- and a NeXT geometry that (wrongly)
    # carried an aspect ratio still keeps its grid: only OneVision downsamples
    assert geometry(NEXT).hires_grid((168, 168)) == (8, 8)
    assert geometry(NEXT, aspect_ratio="anyres_max_1").hires_grid((112, 112)) == (8, 8)


def test_hires_grid_uses_the_tile_size_in_pixels():
    # side 4 from 28 px tiles of 7 px patches: the 112x112 pinpoint is 4x4 tiles of 4x4 -> 16x16
    pinpoints = ((56, 56), (112, 112))
    assert geometry(NEXT, tile_size=28, pinpoints=pinpoints).hires_grid((112, 112)) == (16, 16)
    assert geometry(NEXT, tile_size=28, pinpoints=pinpoints).hires_grid((50, 50)) == (8, 8)


def test_next_image_is_base_view_then_hires_grid_with_newline_column():
    g = geometry(NEXT)
    item = g.image(3, [112, 112], "default")
    assert item == Item((BASE, block(8, 9)), "image 3 (image_sizes (112, 112)), base 4x4 + 8x8 grid + 8 newlines")
    assert item.num_tokens == 16 + 8 * 9
    item = g.image(0, (30, 112), "default")
    assert item == Item((BASE, block(2, 9)), "image 0 (image_sizes (30, 112)), base 4x4 + 2x8 grid + 2 newlines")
    assert g.image(1, (30, 112), "default", patched=False) == Item(
        (BASE, 1), "image 1 (image_sizes (30, 112)), base view + newline"
    )


def test_onevision_image_with_a_siglip_tower():
    g = geometry(ONEVISION, cls_tokens=0)
    item = g.image(0, (112, 168), "full")
    assert item == Item((BASE, block(6, 10)), "image 0 (image_sizes (112, 168)), base 4x4 + 6x9 grid + 6 newlines")
    assert item.num_tokens == 76


def test_next_image_needs_its_size():
    with pytest.raises(
        ValueError, match=message("image 3: the llava_next layout needs image_sizes (one (height, width) per image)")
    ):
        geometry(NEXT).image(3, None, "default")
    with pytest.raises(ValueError, match=r"^image 0: the llava_onevision layout needs image_sizes"):
        geometry(ONEVISION).image(0, None, "default", patched=False)


@pytest.mark.parametrize("patched", [True, False])
def test_a_tile_that_is_not_the_patch_grid_fails_naming_the_strategy(patched):
    text = (
        "image 2 (image_sizes (112, 112)): with vision_feature_select_strategy='full' a tile gives 17 features, not "
        "the 4x4 patch grid the llava_next model packs"
    )
    with pytest.raises(ValueError, match=message(text)):
        geometry(NEXT, cls_tokens=1).image(2, (112, 112), "full", patched)
    text = (
        "image 0 (image_sizes (56, 56)): with vision_feature_select_strategy='default' a tile gives 15 features, not "
        "the 4x4 patch grid the llava_onevision model packs"
    )
    with pytest.raises(ValueError, match=message(text)):
        geometry(ONEVISION, cls_tokens=0).image(0, (56, 56), "default", patched)


@pytest.mark.parametrize("side, pooled", [(4, 2), (5, 3), (27, 14)])
def test_video_is_pooled_frames_then_a_newline(side, pooled):
    g = geometry(ONEVISION, cls_tokens=0, side=side)
    item = g.video(1, 3, "full")
    assert item == Item(
        (block(pooled, pooled, 3, VIDEO), 1), f"video 1 (3 frames), {pooled}x{pooled} per frame + newline"
    )
    assert item.num_tokens == 3 * pooled**2 + 1
    with pytest.raises(
        ValueError,
        match=message(
            f"video 1 (3 frames): with vision_feature_select_strategy='default' a tile gives {side**2 - 1} features, "
            f"not the {side}x{side} patch grid the llava_onevision model packs"
        ),
    ):
        g.video(1, 3, "default")


# -- LlavaGeometry.of ----------------------------------------------------------------------------------------------


class Owner:
    """A stand-in for the model's inner module: its class's module is what ``of`` records as the modeling."""

    def __init__(self, config, vision_tower):
        self.config, self.vision_tower = config, vision_tower


class PixtralTower:
    pass


def config(**overrides):
    vision = SimpleNamespace(image_size=56, patch_size=14, model_type="clip_vision_model")
    fields = dict(
        vision_config=vision,
        image_token_id=IMG,
        video_token_id=VID,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=[[56, 112], [112, 112]],
        vision_aspect_ratio="anyres_max_9",
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


CLIP = SimpleNamespace(vision_model=SimpleNamespace(embeddings=SimpleNamespace(class_embedding=torch.zeros(2))))
SIGLIP = SimpleNamespace(vision_model=SimpleNamespace(embeddings=SimpleNamespace(patch_embedding=None)))


def test_of_reads_a_llava_owner():
    g = LlavaGeometry.of(LLAVA, Owner(config(), CLIP))
    assert g == LlavaGeometry(
        family=LLAVA,
        side=4,
        tile_size=56,
        cls_tokens=1,
        image_token_id=IMG,
        video_token_id=None,
        select_strategy="default",
        pinpoints=None,
        aspect_ratio=None,
        modeling=sys.modules[__name__],
    )


def test_of_reads_a_next_owner():
    g = LlavaGeometry.of(NEXT, Owner(config(vision_feature_select_strategy="full"), CLIP))
    assert (g.family, g.side, g.tile_size, g.cls_tokens) == (NEXT, 4, 56, 1)
    assert g.pinpoints == ((56, 112), (112, 112)) and type(g.pinpoints[0]) is tuple
    assert (g.video_token_id, g.aspect_ratio, g.select_strategy) == (None, None, "full")  # no video on NeXT
    assert g.modeling is sys.modules[__name__]


def test_of_reads_a_onevision_owner():
    vision = SimpleNamespace(image_size=384, patch_size=14, model_type="siglip_vision_model")
    g = LlavaGeometry.of(ONEVISION, Owner(config(vision_config=vision), SIGLIP))
    assert (g.family, g.side, g.tile_size, g.cls_tokens) == (ONEVISION, 27, 384, 0)
    assert (g.image_token_id, g.video_token_id, g.aspect_ratio) == (IMG, VID, "anyres_max_9")
    assert g.pinpoints == ((56, 112), (112, 112))
    bare = config()
    del bare.video_token_id, bare.vision_aspect_ratio
    g = LlavaGeometry.of(ONEVISION, Owner(bare, SIGLIP))
    assert (g.video_token_id, g.aspect_ratio) == (None, None)


def test_of_takes_a_tower_without_a_vision_model_wrapper():
    tower = SimpleNamespace(embeddings=SimpleNamespace(class_embedding=None))
    assert LlavaGeometry.of(LLAVA, Owner(config(), tower)).cls_tokens == 1
    assert LlavaGeometry.of(LLAVA, Owner(config(), SimpleNamespace(embeddings=SimpleNamespace()))).cls_tokens == 0


def test_of_rejects_a_tower_without_a_fixed_patch_grid():
    text = (
        "the llava_next adapter supports vision towers with one fixed square patch grid per tile (CLIP, SigLIP); "
        "PixtralTower (pixtral) has none"
    )
    pixtral = SimpleNamespace(model_type="pixtral", patch_size=14)
    with pytest.raises(TypeError, match=message(text)):
        LlavaGeometry.of(NEXT, Owner(config(vision_config=pixtral), PixtralTower()))
    # embeddings but no image_size, or no patch_size
    tower = SimpleNamespace(embeddings=SimpleNamespace())
    for vision in (
        SimpleNamespace(model_type="pixtral", patch_size=14),
        SimpleNamespace(model_type="pixtral", image_size=56),
    ):
        with pytest.raises(TypeError, match=r"^the llava adapter supports .*SimpleNamespace \(pixtral\) has none$"):
            LlavaGeometry.of(LLAVA, Owner(config(vision_config=vision), tower))


# -- placeholder_kinds, runs ---------------------------------------------------------------------------------------


def test_placeholder_kinds_per_unpadded_token():
    input_ids = torch.tensor([[IMG, TXT, IMG, VID, TXT], [TXT, VID, VID, IMG, TXT]])
    mask = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert placeholder_kinds(input_ids, mask, {IMAGE: IMG, VIDEO: VID}) == [[0, 1, 2, 0], [0, 2, 2, 1]]
    assert placeholder_kinds(input_ids, None, {IMAGE: IMG}) == [[1, 0, 1, 0, 0], [0, 0, 0, 1, 0]]
    assert placeholder_kinds(input_ids, mask.bool(), {VIDEO: VID}) == [[0, 0, 2, 0], [0, 2, 2, 0]]


def test_placeholder_kinds_none_without_an_unpadded_placeholder():
    input_ids = torch.tensor([[IMG, TXT, TXT], [VID, TXT, TXT]])
    mask = torch.tensor([[0, 1, 1], [0, 1, 1]])
    assert placeholder_kinds(input_ids, mask, {IMAGE: IMG, VIDEO: VID}) is None
    assert placeholder_kinds(input_ids, None, {IMAGE: 99}) is None
    assert placeholder_kinds(input_ids, None, {VIDEO: VID}) == [[0, 0, 0], [2, 0, 0]]  # a video alone counts


def test_runs():
    assert list(runs([])) == []
    assert list(runs([1])) == [(1, 0, 1)]
    assert list(runs([0, 0, 1, 1, 1, 2, 0])) == [(0, 0, 2), (1, 2, 5), (2, 5, 6), (0, 6, 7)]


# -- items ---------------------------------------------------------------------------------------------------------


def test_llava_items_from_pixel_values():
    g = geometry(LLAVA)
    assert g.items({}) == {IMAGE: None}
    assert g.items({"pixel_values": None}) == {IMAGE: None}
    items = g.items({"pixel_values": torch.zeros(2, 3, 56, 56)})
    assert items == {IMAGE: [Item((BASE,), "image 0 (4x4 grid)"), Item((BASE,), "image 1 (4x4 grid)")]}
    full = g.items({"pixel_values": torch.zeros(1, 3, 56, 56), "vision_feature_select_strategy": "full"})
    assert full == {IMAGE: [Item((1, BASE), "image 0 (CLS + 4x4 grid)")]}


def test_llava_items_reject_image_sizes():
    text = "the llava adapter lays out fixed square grids; image_sizes (Pixtral-style towers) are not supported"
    with pytest.raises(ValueError, match=message(text)):
        geometry(LLAVA).items({"image_sizes": torch.tensor([[56, 56]]), "pixel_values": torch.zeros(1, 3, 56, 56)})
    assert geometry(LLAVA).items({"image_sizes": None}) == {IMAGE: None}


def test_next_items_from_image_sizes():
    g = geometry(NEXT)
    assert g.items({}) == {IMAGE: None}  # no VIDEO queue on NeXT
    sizes = torch.tensor([[112, 112], [30, 112]])
    items = g.items({"image_sizes": sizes, "pixel_values": torch.zeros(2, 5, 3, 56, 56)})
    assert list(items) == [IMAGE]
    assert [i.segments for i in items[IMAGE]] == [(BASE, block(8, 9)), (BASE, block(2, 9))]
    assert items[IMAGE][1].description.startswith("image 1 (image_sizes (30, 112))")
    assert g.items({"image_sizes": sizes}) == items  # pixel_values are not needed
    # NeXT has no multi-image rule: batch_num_images is ignored
    assert g.items({"image_sizes": sizes, "batch_num_images": torch.tensor([2])}) == items
    # the forward's strategy wins over the config's
    with pytest.raises(ValueError, match=r"^image 0 \(image_sizes \(112, 112\)\): with vision_feature_select_strat"):
        g.items({"image_sizes": sizes, "vision_feature_select_strategy": "full"})


def test_items_count_pixel_values_against_image_sizes():
    with pytest.raises(ValueError, match=message("pixel_values holds 3 image(s) but image_sizes 2")):
        geometry(NEXT).items({"image_sizes": [[56, 56], [56, 56]], "pixel_values": torch.zeros(3, 5, 3, 56, 56)})


def test_onevision_items_multi_image_samples_keep_the_base_view():
    g = geometry(ONEVISION)
    sizes = torch.tensor([[112, 168], [60, 120], [30, 112]])
    items = g.items({"image_sizes": sizes, "batch_num_images": torch.tensor([1, 2])})
    assert items == {
        IMAGE: [
            Item((BASE, block(6, 10)), "image 0 (image_sizes (112, 168)), base 4x4 + 6x9 grid + 6 newlines"),
            Item((BASE, 1), "image 1 (image_sizes (60, 120)), base view + newline"),
            Item((BASE, 1), "image 2 (image_sizes (30, 112)), base view + newline"),
        ],
        VIDEO: None,
    }
    two_singles = g.items({"image_sizes": sizes[:2], "batch_num_images": [1, 1]})[IMAGE]
    assert [i.segments for i in two_singles] == [(BASE, block(6, 10)), (BASE, block(6, 13))]
    without = g.items({"image_sizes": sizes[:2]})[IMAGE]  # no batch_num_images: every image is patched
    assert without == two_singles


def test_onevision_items_check_batch_num_images():
    text = "batch_num_images [1, 1] counts 2 image(s), image_sizes 3"
    with pytest.raises(ValueError, match=message(text)):
        geometry(ONEVISION).items({"image_sizes": [[56, 56]] * 3, "batch_num_images": torch.tensor([[1], [1]])})


def test_onevision_items_videos_from_their_frames():
    g = geometry(ONEVISION, cls_tokens=0)
    videos = torch.zeros(2, 3, 3, 56, 56)  # 2 videos of 3 frames
    items = g.items({"pixel_values_videos": videos})
    assert items == {
        IMAGE: None,
        VIDEO: [
            Item((block(2, 2, 3, VIDEO), 1), "video 0 (3 frames), 2x2 per frame + newline"),
            Item((block(2, 2, 3, VIDEO), 1), "video 1 (3 frames), 2x2 per frame + newline"),
        ],
    }
    with pytest.raises(ValueError, match=r"^video 0 \(3 frames\): with vision_feature_select_strategy='default'"):
        g.items({"pixel_values_videos": videos, "vision_feature_select_strategy": "default"})


# -- layout --------------------------------------------------------------------------------------------------------


def test_llava_layout_worked_example():
    g = geometry(LLAVA)
    # row 0: 3 text, an image, 2 text; row 1: 2 text, two images back to back (one run of 32), 1 text
    input_ids, mask = batch([TXT] * 3 + [IMG] * 16 + [TXT] * 2, [TXT] * 2 + [IMG] * 32 + [TXT])
    assert g.layout(input_ids, mask, {"pixel_values": torch.zeros(3, 3, 56, 56)}) == [
        [3, BASE, 2],
        [2, BASE, BASE, 1],
    ]
    # without pixel_values every run is cut into as many images as it holds
    assert g.layout(input_ids, mask, {}) == [[3, BASE, 2], [2, BASE, BASE, 1]]
    text = (
        "image 0 (CLS + 4x4 grid) needs 17 image placeholder tokens, but row 0 has a run of 16 at position 3 with "
        "only 16 left for it (image features and placeholder tokens do not match)"
    )
    with pytest.raises(ValueError, match=message(text)):  # the "full" strategy needs CLS + grid: 17 tokens
        g.layout(input_ids, mask, {"vision_feature_select_strategy": "full"})


def test_llava_layout_full_strategy_places_cls_like_a_text_token():
    g = geometry(LLAVA)
    input_ids = torch.tensor([[TXT] * 3 + [IMG] * 17 + [TXT] * 2])
    assert g.layout(input_ids, None, {"vision_feature_select_strategy": "full"}) == [[3, 1, BASE, 2]]


def test_next_layout_worked_example():
    g = geometry(NEXT)
    # 112x112: base 16 + 8x9 = 88 tokens; 60x120: 16 + 4x9 = 52; 30x112: 16 + 2x9 = 34
    row0 = [TXT] * 3 + [IMG] * 88 + [TXT] * 2
    row1 = [TXT] * 2 + [IMG] * 52 + [TXT] + [IMG] * 34 + [TXT] * 3
    input_ids, mask = batch(row0, row1)
    inputs = {"image_sizes": torch.tensor([[112, 112], [60, 120], [30, 112]])}
    assert g.layout(input_ids, mask, inputs) == [
        [3, BASE, block(8, 9), 2],
        [2, BASE, block(4, 9), 1, BASE, block(2, 9), 3],
    ]
    assert g.layout(*batch([TXT] * 4), {}) is None  # text only: image_sizes not needed


def test_onevision_layout_worked_example():
    g = geometry(ONEVISION, cls_tokens=0)
    # row 0: one image (112x168: 16 + 6x10 = 76), a video of 2 frames (2 x 2x2 + newline = 9); row 1: two images,
    # base views + newline (17 each)
    row0 = [TXT] * 3 + [IMG] * 76 + [TXT] * 2 + [VID] * 9 + [TXT] * 2
    row1 = [TXT] * 2 + [IMG] * 17 + [TXT] + [IMG] * 17 + [TXT] * 3
    input_ids, mask = batch(row0, row1)
    inputs = {
        "image_sizes": torch.tensor([[112, 168], [60, 120], [30, 112]]),
        "batch_num_images": torch.tensor([1, 2]),
        "pixel_values_videos": torch.zeros(1, 2, 3, 56, 56),
    }
    assert g.layout(input_ids, mask, inputs) == [
        [3, BASE, block(6, 10), 2, block(2, 2, 2, VIDEO), 1, 2],
        [2, BASE, 1, 1, BASE, 1, 3],
    ]
    # without pixel_values_videos the video's frames follow from its run: (9 - 1) / 4 = 2
    del inputs["pixel_values_videos"]
    assert g.layout(input_ids, mask, inputs)[0][4:6] == [block(2, 2, 2, VIDEO), 1]
    # a video alone (no image) is laid out too
    only_video = torch.tensor([[TXT] + [VID] * 13 + [TXT]])  # 3 frames
    assert g.layout(only_video, None, {}) == [[1, block(2, 2, 3, VIDEO), 1, 1]]


def test_layout_errors_name_the_row_and_the_tokens():
    g = geometry(NEXT)
    sizes = {"image_sizes": torch.tensor([[112, 112]])}
    short = torch.tensor([[TXT] * 3 + [IMG] * 87 + [TXT] * 2])
    text = (
        "image 0 (image_sizes (112, 112)), base 4x4 + 8x8 grid + 8 newlines needs 88 image placeholder tokens, but "
        "row 0 has a run of 87 at position 3 with only 87 left for it (image features and placeholder tokens do "
        "not match)"
    )
    with pytest.raises(ValueError, match=message(text)):
        g.layout(short, None, sizes)
    long = torch.tensor([[TXT] * 3 + [IMG] * 90 + [TXT] * 2])
    text = (
        "row 0 has more image placeholder tokens than the 1 image(s) given describe: 2 token(s) at position 91 "
        "have no image"
    )
    with pytest.raises(ValueError, match=message(text)):
        g.layout(long, None, sizes)
    two = torch.tensor([[TXT] * 3 + [IMG] * 88 + [TXT], [TXT] * 2 + [IMG] * 88 + [TXT] * 2])
    text = (
        "row 1 has more image placeholder tokens than the 1 image(s) given describe: 88 token(s) at position 2 "
        "have no image"
    )
    with pytest.raises(ValueError, match=message(text)):
        g.layout(two, None, sizes)
    unused = {"image_sizes": torch.tensor([[112, 112], [56, 56]])}
    text = (
        "2 image(s) were given but the image placeholder tokens hold only 1 (image features and placeholder tokens "
        "do not match)"
    )
    with pytest.raises(ValueError, match=message(text)):
        g.layout(torch.tensor([[TXT] + [IMG] * 88]), None, unused)
    with pytest.raises(ValueError, match=r"^image 0: the llava_next layout needs image_sizes"):
        g.layout(short, None, {})


def test_layout_errors_of_videos():
    g = geometry(ONEVISION, cls_tokens=0)
    video = torch.tensor([[TXT] + [VID] * 8 + [TXT]])  # 2 frames but no newline
    text = "a run of 8 video placeholder token(s) is not frames x 4 pooled tokens + 1 newline; pass pixel_values_videos"
    with pytest.raises(ValueError, match=message(text)):
        g.layout(video, None, {})
    with pytest.raises(ValueError, match=r"^a run of 1 video placeholder token\(s\) is not frames x 4"):
        g.layout(torch.tensor([[TXT, VID, TXT]]), None, {})  # a newline without frames
    text = (
        "video 1 (1 frames), 2x2 per frame + newline needs 5 video placeholder tokens, but row 0 has a run of 8 at "
        "position 1 with only 3 left for it (image features and placeholder tokens do not match)"
    )
    with pytest.raises(ValueError, match=message(text)):
        g.layout(video, None, {"pixel_values_videos": torch.zeros(2, 1, 3, 56, 56)})
    text = (
        "2 video(s) were given but the video placeholder tokens hold only 1 (image features and placeholder tokens "
        "do not match)"
    )
    with pytest.raises(ValueError, match=message(text)):
        g.layout(torch.tensor([[TXT] + [VID] * 9]), None, {"pixel_values_videos": torch.zeros(2, 2, 3, 56, 56)})
    text = (
        "row 0 has more video placeholder tokens than the 0 video(s) given describe: 9 token(s) at position 1 "
        "have no video"
    )
    with pytest.raises(ValueError, match=message(text)):
        g.layout(torch.tensor([[TXT] + [VID] * 9]), None, {"pixel_values_videos": torch.zeros(0, 2, 3, 56, 56)})


def test_queue_counts_items_across_rows():
    g = geometry(LLAVA)
    queue = _Queue(IMAGE, None, g, {})
    assert queue.take(32, 0, 5) == [BASE, BASE] and queue.used == 2
    assert queue.take(16, 1, 0) == [BASE] and queue.used == 3
    queue.check_used()  # nothing given: nothing to check
    given = _Queue(IMAGE, [Item((BASE,), "a"), Item((1, BASE), "b")], g, {})
    assert given.take(16, 0, 0) == [BASE]
    assert given.take(17, 1, 4) == [1, BASE] and given.used == 2
    given.check_used()


class StubModeling:
    """Stands in for the modeling module: records what ``hires_grid`` asks of HF's any-resolution helpers (their
    signatures: ``get_anyres_image_grid_shape(image_size, grid_pinpoints: list, patch_size) -> (rows, cols)`` of
    tiles, ``unpad_image(tensor (C, H, W), original_size) -> cropped``) and answers with chosen grids."""

    def __init__(self, tiles: tuple[int, int], unpadded: tuple[int, int]):
        self.tiles, self.unpadded, self.calls = tiles, unpadded, []

    def get_anyres_image_grid_shape(self, image_size, grid_pinpoints, patch_size):
        self.calls.append(("grid", image_size, grid_pinpoints, patch_size))
        return self.tiles

    def unpad_image(self, tensor, original_size):
        self.calls.append(("unpad", tuple(tensor.shape[1:]), original_size))
        return torch.empty(tensor.shape[0], *self.unpadded)


def test_hires_grid_passes_the_model_what_pack_image_features_passes():
    stub = StubModeling((2, 3), (10, 13))
    g = geometry(NEXT, side=5, tile_size=70, modeling=stub, pinpoints=((70, 140), (140, 210)))
    assert g.hires_grid(torch.tensor([130, 200])) == (10, 13)
    assert stub.calls == [("grid", [130, 200], [[70, 140], [140, 210]], 70), ("unpad", (10, 15), [130, 200])]
    assert all(type(v) is int for v in stub.calls[0][1])


@pytest.mark.parametrize("unpadded, grid", [((11, 11), (11, 11)), ((11, 12), (9, 10))])
def test_onevision_downsamples_only_above_a_ratio_of_1_1(unpadded, grid):
    # side 5, anyres_max_4: 100 tokens; 11 x 11 = 121 gives ratio sqrt(1.21) = 1.1 exactly: kept (the model's
    # `ratio > 1.1`); 11 x 12 gives sqrt(1.32) = 1.149: 11 // 1.149 = 9, 12 // 1.149 = 10
    g = geometry(ONEVISION, side=5, tile_size=70, modeling=StubModeling((3, 3), unpadded))
    assert g.hires_grid((150, 150)) == grid


def test_a_one_frame_video_without_pixel_values_videos():
    g = geometry(ONEVISION, cls_tokens=0)
    assert g.layout(torch.tensor([[TXT] + [VID] * 5 + [TXT]]), None, {}) == [[1, block(2, 2, 1, VIDEO), 1, 1]]
    assert g.layout(torch.tensor([[VID] * 9, [VID] * 5 + [TXT] * 4]), None, {}) == [
        [block(2, 2, 2, VIDEO), 1],
        [block(2, 2, 1, VIDEO), 1, 4],
    ]


@pytest.mark.parametrize("mask", [torch.ones(1, 4, dtype=torch.long), torch.ones(2, 1, dtype=torch.long)])
def test_placeholder_kinds_rejects_a_mask_that_only_broadcasts(mask):
    # a (1, L) or (B, 1) mask broadcasts against (B, L) ids, but pairing its rows / tokens with the ids' must not
    # silently drop rows or tokens
    input_ids = torch.tensor([[TXT, IMG, IMG, TXT], [IMG, TXT, TXT, TXT]])
    with pytest.raises(ValueError, match="zip"):
        placeholder_kinds(input_ids, mask, {IMAGE: IMG})


def test_onevision_downsampled_size_is_a_floor_division_as_the_models():
    # side 10, anyres_max_1: 100 tokens; 13 x 13 gives ratio sqrt(1.69) = 1.3 (the float just above 13 / 10): the
    # model's `int(13 // 1.3)` is 9 (true division rounds to 10.0)
    g = geometry(
        ONEVISION, side=10, tile_size=140, aspect_ratio="anyres_max_1", modeling=StubModeling((2, 2), (13, 13))
    )
    assert g.hires_grid((280, 280)) == (9, 9)


@pytest.mark.parametrize("side, pooled", [(5, 9), (27, 196)])
def test_video_frames_from_the_run_with_an_odd_side(side, pooled):
    # ceil(5 / 2)^2 = 9 and ceil(27 / 2)^2 = 196 pooled tokens a frame (SigLIP-384: 27 patches a side)
    g = geometry(ONEVISION, cls_tokens=0, side=side)
    run = torch.tensor([[TXT] + [VID] * (2 * pooled + 1)])
    assert g.layout(run, None, {}) == [[1, block(-(-side // 2), -(-side // 2), 2, VIDEO), 1]]
    with pytest.raises(
        ValueError, match=rf"^a run of {pooled + 2} video placeholder token\(s\) is not frames x {pooled}"
    ):
        g.layout(torch.tensor([[TXT] + [VID] * (pooled + 2)]), None, {})


def test_video_from_its_run_is_named_by_its_batch_index():
    g = geometry(ONEVISION, cls_tokens=0)
    runs_ = torch.tensor([[TXT] + [VID] * 9 + [TXT] + [VID] * 13])
    with pytest.raises(ValueError, match=r"^video 0 \(2 frames\): with vision_feature_select_strategy='default'"):
        g.layout(runs_, None, {"vision_feature_select_strategy": "default"})
    queue = _Queue(VIDEO, None, g, {"vision_feature_select_strategy": "default"})
    queue.used = 1
    with pytest.raises(ValueError, match=r"^video 1 \(3 frames\): with vision_feature_select_strategy='default'"):
        queue.take(13, 0, 11)


def test_video_frames_from_the_run_with_one_pooled_token_a_frame():
    # side 2: ceil(2 / 2)^2 = 1 pooled token a frame, so a run of 3 is 2 frames + the newline
    g = geometry(ONEVISION, cls_tokens=0, side=2)
    assert g.layout(torch.tensor([[TXT] + [VID] * 3]), None, {}) == [[1, block(1, 1, 2, VIDEO), 1]]
