"""Tests that kill the mutants of mmrope_hf/positions/builder.py that survived the module's tests
(scripts/mutation.py builder; docs/mutation.md): ``build_position_ids`` with Qwen2.5-VL's temporal step
``tokens_per_second * second_per_grid_ts`` and Qwen3-VL's split frames, against tests/reference/rope_reference on
random batches (the generator is in tests/test_mutants_mrope.py)."""

from __future__ import annotations

import pytest
import test_mutants_mrope as common
import torch
from reference import rope_reference as ref

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
    types = torch.tensor([[0, 0] + [2] * 12 + [0, 0]])
    positions, deltas = build_position_ids(
        "mrope", torch.zeros_like(types), types, video_grid_thw=torch.tensor([[3, 4, 4]])
    )
    ids, nxt = ref.positions([("text", 2), ("video", 3, 2, 2), ("text", 2)], "mrope", 1.0)
    assert [tuple(p) for p in positions[:, 0].T.tolist()] == ids and deltas.tolist() == [[nxt - 16]]


def test_text_positions_count_the_real_tokens_of_each_row():
    from mmrope_hf.positions.builder import text_positions

    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    want = torch.tensor([[0, 0, 0, 1, 2], [0, 1, 2, 0, 0], [0, 1, 2, 3, 4]])
    assert torch.equal(text_positions(mask), want) and text_positions(mask).dtype == torch.long
    assert text_positions(mask.bool()).tolist() == text_positions(mask).tolist()


def test_num_layers_keeps_only_the_designs_its_layers_use():
    """Circle staggered with MRoPE on alternate layers: one layer uses Circle only, so one position set."""
    types = torch.tensor([[0, 1, 1, 1, 1, 0, 0]])
    grid = torch.tensor([[1, 4, 4]])
    both, both_deltas = build_position_ids("circle", torch.zeros_like(types), types, image_grid_thw=grid)
    one, one_deltas = build_position_ids("circle", torch.zeros_like(types), types, image_grid_thw=grid, num_layers=1)
    assert both.shape[0] == 6 and torch.equal(one, both[:3]) and torch.equal(one_deltas, both_deltas[:, :1])


# two rows, the first left-padded, with an image and a video (3 groups of 1 x 2 after the merge)
ROWS = [
    [("text", 2), ("image", 1, 2, 2), ("text", 1)],
    [("text", 1), ("video", 3, 1, 2), ("text", 2), ("image", 1, 1, 1)],
]


def _rows_inputs():
    length = max(ref.num_tokens(row) for row in ROWS)
    types, mask = torch.zeros(len(ROWS), length, dtype=torch.long), torch.zeros(len(ROWS), length, dtype=torch.long)
    for b, row in enumerate(ROWS):
        tokens = [
            0 if it[0] == "text" else {"image": 1, "video": 2}[it[0]] for it in row for _ in range(ref.num_tokens([it]))
        ]
        types[b, length - len(tokens) :] = torch.tensor(tokens)
        mask[b, length - len(tokens) :] = 1
    images = [(1, 2 * it[2], 2 * it[3]) for r in ROWS for it in r if it[0] == "image"]
    videos = [(it[1], 2 * it[2], 2 * it[3]) for r in ROWS for it in r if it[0] == "video"]
    return types, mask, torch.tensor(images), torch.tensor(videos)


@pytest.mark.parametrize(("design", "options"), [("videorope", {}), ("v2pe", {"visual_stride": 2.0})])
def test_designs_without_a_batch_form_go_through_the_rows_with_their_options(design, options):
    """The baselines have no loop-free form: the per-row path, on a padded batch, with the design's options."""
    from reference import baselines_reference as bref

    types, mask, images, videos = _rows_inputs()
    positions, deltas = build_position_ids(
        "mrope-i", torch.zeros_like(types), types, images, videos, mask, position=design, **options
    )
    assert positions.shape == (3, *types.shape)
    for b, row in enumerate(ROWS):
        ids, nxt = bref.positions(row, design, 1, options.get("visual_stride", 16))
        keep = mask[b].bool()
        want = torch.tensor([[float(v) for v in p] for p in ids], dtype=torch.float64).T.to(torch.float32)
        assert torch.equal(positions[:, b, keep], want) and (positions[:, b, ~keep] == 0).all()
        assert deltas[b, 0].item() == pytest.approx(float(nxt) - len(ids))
