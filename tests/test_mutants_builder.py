"""Tests that kill the mutants of mmrope_hf/positions/builder.py that survived the module's tests
(scripts/mutation.py builder; docs/mutation.md): ``build_position_ids`` with Qwen2.5-VL's temporal step
``tokens_per_second * second_per_grid_ts`` and Qwen3-VL's split frames, against tests/reference/rope_reference on
random batches (the generator is in tests/test_mutants_mrope.py)."""

from __future__ import annotations

import pytest
import test_mutants_mrope as common
import torch

import mmrope_hf
from mmrope_hf.positions.builder import build_position_ids, positions_for
from mmrope_hf.positions.design import PositionOptions


@pytest.mark.parametrize("seed", range(200, 216))
@pytest.mark.parametrize(
    ("scheme", "design"), [("mrope", "mrope"), ("mrope-i", "spatial-reset"), ("vanilla", "vanilla")]
)
@pytest.mark.parametrize("advance", ["max", "spatial"])
def test_build_position_ids_equals_the_reference(seed, scheme, design, advance):
    tt, mask, _, layouts, steps, side = common.random_case(seed)
    video_grid = _video_grid(seed)
    seconds = None if video_grid is None else torch.tensor([s / 2 for s in _video_steps(seed)])
    positions, deltas = build_position_ids(
        scheme,
        torch.zeros_like(tt),
        tt,
        image_grid_thw=_image_grid(seed),
        video_grid_thw=video_grid,
        attention_mask=mask,
        second_per_grid_ts=seconds,
        tokens_per_second=2,
        split_video_frames=_split(seed),
        vision_advance=advance,
    )
    stride = mmrope_hf.resolve_config(scheme).temporal_stride  # mrope-i's preset fixes it at 1
    want, want_deltas = common.expected(layouts, steps, side, design, stride, advance, tt.shape[1])
    assert torch.equal(positions, want) and torch.equal(deltas[:, 0], want_deltas)


def _replay(seed):
    """The grids and steps random_case drew (it draws them in a fixed order from its seed)."""
    import random

    rng = random.Random(seed)
    rows = rng.randint(1, 4)
    rng.choice(["left", "right"])
    split = rng.random() < 0.3
    images, videos, video_steps = [], [], []
    for _ in range(rows):
        rng.randint(0, 3)
        for _ in range(rng.randint(0, 3)):
            video = rng.random() < 0.5
            t, h, w = (rng.randint(1, 4) if video else 1), rng.randint(1, 4), rng.randint(1, 4)
            step = rng.choice(common.STEPS) if video else 1.0
            (videos if video else images).append((t, common.MERGE * h, common.MERGE * w))
            if video:
                video_steps.append(step)
            rng.randint(1, 3)
    return images, videos, video_steps, split


def _image_grid(seed):
    images = _replay(seed)[0]
    return torch.tensor(images) if images else None


def _video_grid(seed):
    videos = _replay(seed)[1]
    return torch.tensor(videos) if videos else None


def _video_steps(seed):
    return _replay(seed)[2]


def _split(seed):
    return _replay(seed)[3]


def test_positions_for_falls_back_to_the_rows_on_a_mismatch():
    """A placeholder run that does not match its grid: the batch path declines, the per-row path names it."""
    tt = torch.tensor([[0, 1, 1, 1, 0]])
    items = [
        common.visual_items(common.IMAGE, torch.tensor([[1, 4, 4]])),
        common.visual_items(common.VIDEO, None),
    ]
    with pytest.raises(ValueError, match=r"needs 4 placeholder tokens, but row 0 has a run of 3 image"):
        positions_for(("mrope",), tt, None, items, 2, PositionOptions())


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"mm_token_type_ids has shape \(1, 3\), input_ids \(1, 4\)"):
        build_position_ids("mrope", torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))


def test_without_tokens_per_second_a_video_steps_one_per_group():
    """No ``tokens_per_second``: one temporal step per group (multimodal_ropes.md example (b))."""
    from reference import rope_reference as ref

    types = torch.tensor([[0, 0] + [2] * 12 + [0, 0]])
    positions, deltas = build_position_ids(
        "mrope", torch.zeros_like(types), types, video_grid_thw=torch.tensor([[3, 4, 4]])
    )
    ids, nxt = ref.positions([("text", 2), ("video", 3, 2, 2), ("text", 2)], "mrope", 1.0)
    assert [tuple(p) for p in positions[:, 0].T.tolist()] == ids and deltas.tolist() == [[nxt - 16]]
