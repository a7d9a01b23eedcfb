"""The loop-free batch builder gives exactly the per-row reference positions, and falls back when it must."""

from __future__ import annotations

import random

import pytest
import torch

import mmrope_hf
from mmrope_hf.positions.batch import batch_positions
from mmrope_hf.positions.builder import build_position_ids, position_options
from mmrope_hf.positions.layout import IMAGE, VIDEO, parse_layout, visual_items
from mmrope_hf.positions.registry import POSITION_DESIGNS
from mmrope_hf.positions.rows import build_positions


def random_batch(seed: int, rows: int, padding_side: str, back_to_back: bool = False):
    """mm_token_type_ids, attention_mask and grids of a random batch of images and multi-group videos."""
    rng = random.Random(seed)
    seqs, images, videos, seconds = [], [], [], []
    for _ in range(rows):
        types = [0] * rng.randint(0, 3)
        for _ in range(rng.randint(0, 4)):
            video = rng.random() < 0.4
            t, h, w = (rng.randint(1, 4) if video else 1), 2 * rng.randint(1, 4), 2 * rng.randint(1, 4)
            (videos if video else images).append((t, h, w))
            if video:
                seconds.append(rng.choice([0.5, 0.75, 1.0, 2.0]))
            types += [2 if video else 1] * (t * h * w // 4)
            if not back_to_back or rng.random() < 0.5:
                types += [0] * rng.randint(1, 3)
        seqs.append(types)
    length = max(map(len, seqs)) + 1
    tt = torch.zeros(rows, length, dtype=torch.long)
    mask = torch.zeros(rows, length, dtype=torch.long)
    for b, types in enumerate(seqs):
        span = slice(length - len(types), length) if padding_side == "left" else slice(0, len(types))
        tt[b, span], mask[b, span] = torch.tensor(types, dtype=torch.long), 1

    def grid(g):
        return torch.tensor(g, dtype=torch.long) if g else None

    return tt, mask, grid(images), grid(videos), torch.tensor(seconds)


def both_paths(designs, tt, mask, items, options):
    fast = batch_positions(designs, [POSITION_DESIGNS.get(d).batch for d in designs], tt, mask, items, 2, options)
    layout = parse_layout(tt, mask, items, 2)
    return fast, build_positions(designs, layout, options, mask, tuple(tt.shape))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    "designs", [("mrope",), ("spatial-reset",), ("vanilla",), ("mrope", "spatial-reset", "vanilla")]
)
def test_batch_builder_equals_the_reference(seed, designs):
    rng = random.Random(seed)
    tt, mask, images, videos, seconds = random_batch(
        seed, rng.randint(1, 5), rng.choice(["left", "right"]), seed % 3 == 0
    )
    split = seed % 2 == 0
    intervals = (2 * seconds).tolist() if videos is not None else None  # tokens_per_second 2
    items = [visual_items(IMAGE, images), visual_items(VIDEO, videos, intervals, split_frames=split)]
    options = position_options(
        mmrope_hf.resolve_config(
            "mrope", temporal_stride=rng.choice([None, 0.5, 1.0, 2.0]), vision_advance=rng.choice(["max", "spatial"])
        )
    )
    fast, reference = both_paths(designs, tt, mask, items, options)
    assert fast is not None
    assert fast[0].dtype == reference[0].dtype and torch.equal(fast[0], reference[0])
    assert fast[1].dtype == reference[1].dtype and torch.equal(fast[1], reference[1])


def test_text_only_and_empty_rows():
    tt = torch.zeros(2, 5, dtype=torch.long)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    items = [visual_items(IMAGE, torch.tensor([[1, 2, 2]])), visual_items(VIDEO, None)]
    tt[1, 1] = 1
    fast, reference = both_paths(
        ("mrope", "vanilla"), tt, mask, items, position_options(mmrope_hf.resolve_config("mrope"))
    )
    assert torch.equal(fast[0], reference[0]) and torch.equal(fast[1], reference[1])


def test_mismatches_fall_back_to_the_reference_error():
    tt = torch.tensor([[0, 1, 1, 1, 0]])
    items = [visual_items(IMAGE, torch.tensor([[1, 4, 4]])), visual_items(VIDEO, None)]
    options = position_options(mmrope_hf.resolve_config("mrope"))
    assert batch_positions(("mrope",), [POSITION_DESIGNS.get("mrope").batch], tt, None, items, 2, options) is None
    with pytest.raises(ValueError, match=r"needs 4 placeholder tokens, but row 0 has a run of 3 image"):
        build_position_ids("mrope", tt, tt, image_grid_thw=torch.tensor([[1, 4, 4]]))


def test_build_position_ids_matches_the_patched_model():
    from conftest import inputs_for

    from mmrope_hf.testing import tiny_model

    for family, facts in [("qwen2_5_vl", {"tokens_per_second": 2}), ("qwen3_vl", {"split_video_frames": True})]:
        inputs = inputs_for(family, "video")
        model = mmrope_hf.patch_model(tiny_model(family), "circle")
        expected, deltas = model.model.get_rope_index(
            inputs["input_ids"], inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"]
        )
        got, got_deltas = build_position_ids(
            "circle",
            inputs["input_ids"],
            inputs["mm_token_type_ids"],
            video_grid_thw=inputs["video_grid_thw"],
            num_layers=2,
            **facts,
        )
        assert torch.equal(got, expected) and torch.equal(got_deltas[:, :1], deltas)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"radius": "auto"},
        {"radius": "auto-2", "auto_radius": "l2"},
        {"alpha": 0.0, "dff_rate": 0.3},
        {"move_to_origin": False, "move_to_positive": "auto"},
        {"method": "no_circle", "move_to_positive": 1.5},
        {"temporal_stride": 0.5},
    ],
)
def test_batch_circle_equals_the_reference(seed, options):
    rng = random.Random(seed)
    tt, mask, images, videos, seconds = random_batch(
        seed, rng.randint(1, 4), rng.choice(["left", "right"]), seed % 3 == 0
    )
    intervals = (2 * seconds).tolist() if videos is not None else None
    items = [visual_items(IMAGE, images), visual_items(VIDEO, videos, intervals, split_frames=seed % 2 == 0)]
    config = mmrope_hf.resolve_config("circle", layers="all", **options)
    fast, reference = both_paths(("circle", "mrope"), tt, mask, items, position_options(config))
    assert fast is not None and fast[0].dtype == reference[0].dtype == torch.float32
    torch.testing.assert_close(fast[0], reference[0], atol=2e-5, rtol=0)
    torch.testing.assert_close(fast[1], reference[1], atol=2e-5, rtol=0)
