"""Tests that kill the mutants of mmrope_hf/positions/mrope.py that survived the module's tests
(scripts/mutation.py mrope; docs/mutation.md), and the shared oracle check of the position builders used by
tests/test_mutants_rows.py and tests/test_mutants_batch.py: random batches (images, multi-group videos, asymmetric
grids, fractional temporal steps, both vision advances, both padding sides) against tests/reference/rope_reference,
which is written from multimodal_ropes.md, not from mmrope-hf. Each case checks the per-row path
(:func:`build_positions`) and the loop-free batch path (:func:`batch_positions`, numpy and torch) alike."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from reference import rope_reference as ref

from mmrope_hf.positions import mrope as mrope_module
from mmrope_hf.positions.batch import batch_positions
from mmrope_hf.positions.design import PositionOptions
from mmrope_hf.positions.layout import IMAGE, VIDEO, VisualBlock, parse_layout, visual_items
from mmrope_hf.positions.mrope import mrope, spatial_reset, vanilla
from mmrope_hf.positions.registry import POSITION_DESIGNS
from mmrope_hf.positions.rows import build_positions

MERGE = 2
STEPS = [0.5, 0.75, 1.0, 1.5, 2.0, 3.0]  # exact in float32: the product's truncation is the reference's


def random_case(seed: int):
    """A random batch: (mm_token_type_ids, attention_mask, items, reference layouts, per-item steps per row)."""
    rng = random.Random(seed)
    rows = rng.randint(1, 4)
    side = rng.choice(["left", "right"])
    split = rng.random() < 0.3
    seqs, layouts, steps, images, videos, intervals = [], [], [], [], [], []
    for _ in range(rows):
        types, layout, row_steps = [], [], []
        lead = rng.randint(0, 3)
        types += [0] * lead
        layout.append(("text", lead))
        for _ in range(rng.randint(0, 3)):
            video = rng.random() < 0.5
            t, h, w = (rng.randint(1, 4) if video else 1), rng.randint(1, 4), rng.randint(1, 4)
            step = rng.choice(STEPS) if video else 1.0
            if video:
                videos.append((t, MERGE * h, MERGE * w))
                intervals.append(step)
            else:
                images.append((t, MERGE * h, MERGE * w))
            types += [VIDEO if video else IMAGE] * (t * h * w)
            if video and split:
                layout += [("video", 1, h, w)] * t
                row_steps += [step] * t
            else:
                layout.append(("video" if video else "image", t, h, w))
                row_steps.append(step)
            gap = rng.randint(1, 3)
            types += [0] * gap
            layout.append(("text", gap))
        seqs.append(types)
        layouts.append(layout)
        steps.append(row_steps)
    length = max(1, max(map(len, seqs)) + rng.randint(0, 2))
    tt = torch.zeros(rows, length, dtype=torch.long)
    mask = torch.zeros(rows, length, dtype=torch.long)
    for b, types in enumerate(seqs):
        span = slice(length - len(types), length) if side == "left" else slice(0, len(types))
        tt[b, span] = torch.tensor(types, dtype=torch.long)
        mask[b, span] = 1
    items = [
        visual_items(IMAGE, torch.tensor(images) if images else None),
        visual_items(VIDEO, torch.tensor(videos) if videos else None, intervals, split_frames=split),
    ]
    return tt, mask, items, layouts, steps, side


def expected(layouts, steps, side, design, temporal_stride, advance, length):
    """The reference's positions (3, B, L) and deltas (B,) of one design, padding at position 0. The delta is
    measured from max(next position, max id + 1), as transformers does (they differ only under the "spatial"
    advance, where a multi-group video's t ids can pass the next position)."""
    batch = len(layouts)
    out = torch.zeros(3, batch, length, dtype=torch.long)
    deltas = []
    for b, (layout, row_steps) in enumerate(zip(layouts, steps, strict=True)):
        stride = [temporal_stride] * len(row_steps) if temporal_stride is not None else row_steps
        ids, nxt = ref.positions(layout, design, stride, advance)
        n = len(ids)
        span = slice(length - n, length) if side == "left" else slice(0, n)
        if n:
            out[:, b, span] = torch.tensor(ids, dtype=torch.long).T
        top = max((max(p) for p in ids), default=-1) + 1
        deltas.append(max(nxt, top) - n)
    return out, torch.tensor(deltas)


def check_against_reference(
    seed: int, designs, temporal_stride, advance, paths=("rows", "numpy", "torch"), batch_designs=None
):
    tt, mask, items, layouts, steps, side = random_case(seed)
    options = PositionOptions(temporal_stride=temporal_stride, vision_advance=advance)
    want = [expected(layouts, steps, side, d, temporal_stride, advance, tt.shape[1]) for d in designs]
    want_positions = torch.cat([w[0] for w in want])
    want_deltas = torch.stack([w[1] for w in want], dim=1)
    got = {}
    if "rows" in paths:
        got["rows"] = build_positions(designs, parse_layout(tt, mask, items, MERGE), options, mask, tuple(tt.shape))
    if batch_designs is None:
        batch_designs = [POSITION_DESIGNS.get(d).batch for d in designs]
    for host, name in ((True, "numpy"), (False, "torch")):
        if name in paths:
            got[name] = batch_positions(designs, batch_designs, tt, mask, items, MERGE, options, host=host)
    for name, (positions, deltas) in got.items():
        assert torch.equal(positions.long(), want_positions), (name, seed)
        assert torch.equal(deltas.long(), want_deltas), (name, seed)
        assert positions.dtype == deltas.dtype == torch.long, name


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("advance", ["max", "spatial"])
@pytest.mark.parametrize("temporal_stride", [None, 0.5, 2.0])
def test_designs_equal_the_reference(seed, advance, temporal_stride):
    check_against_reference(seed, ("mrope", "spatial-reset", "vanilla"), temporal_stride, advance)


def test_row_functions_on_a_worked_layout():
    """multimodal_ropes.md example (b) with an asymmetric grid and a fractional step: 1 text, a (3, 2, 3) video
    at step 1.5, 2 text."""
    block = VisualBlock(VIDEO, (3, 2, 3), 1.5)
    layout = [("text", 1), ("video", 3, 2, 3), ("text", 2)]
    for fn, design in ((mrope, "mrope"), (spatial_reset, "spatial-reset"), (vanilla, "vanilla")):
        for advance in ("max", "spatial"):
            got = fn([1, block, 2], PositionOptions(vision_advance=advance))
            ids, nxt = ref.positions(layout, design, 1.5, advance)
            assert [tuple(p) for p in got.positions.T.tolist()] == ids, (design, advance)
            # transformers measures deltas from max(position) + 1: the larger of the two
            top = max(max(p) for p in ids) + 1
            assert got.next_position == (nxt if design == "vanilla" else max(nxt, top)), (design, advance)


def test_empty_row():
    got = mrope([], PositionOptions())
    assert got.positions.shape == (3, 0) and got.next_position == 0


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("advance", ["max", "spatial"])
@pytest.mark.parametrize("temporal_stride", [None, 1.5])
def test_batch_designs_built_now_equal_the_reference(seed, advance, temporal_stride):
    """The registry's batch designs are built once, at import; build them again inside the test (so a change to
    the factory is seen) and check them against the reference."""
    designs = [mrope_module._batch_mrope(reset=False), mrope_module._batch_mrope(reset=True)]
    check_against_reference(
        seed, ("mrope", "spatial-reset"), temporal_stride, advance, paths=("numpy", "torch"), batch_designs=designs
    )


def _one_video_row(frames: int, step: float | None = None):
    """One row: 1 text token, a (frames, 1, 1) video (grid (frames, 2, 2) before the merge), 1 text token."""
    tt = torch.tensor([[0] + [VIDEO] * frames + [0]])
    items = [
        visual_items(IMAGE, None),
        visual_items(VIDEO, torch.tensor([[frames, MERGE, MERGE]]), [1.0 if step is None else step]),
    ]
    return tt, items


def _all_paths(designs, tt, items, options, mask=None):
    """Positions and deltas of the per-row path, the numpy and torch batch paths with the registry's designs, and
    both batch paths with the designs built now (so a change inside the factory is seen)."""
    layout = parse_layout(tt, mask, items, MERGE)
    got = {"rows": build_positions(designs, layout, options, mask, tuple(tt.shape))}
    fresh = {"mrope": mrope_module._batch_mrope(reset=False), "spatial-reset": mrope_module._batch_mrope(reset=True)}
    for host, name in ((True, "numpy"), (False, "torch")):
        registry = [POSITION_DESIGNS.get(d).batch for d in designs]
        got[name] = batch_positions(designs, registry, tt, mask, items, MERGE, options, host=host)
        if all(d in fresh for d in designs):
            built = [fresh[d] for d in designs]
            got[name + " built now"] = batch_positions(designs, built, tt, mask, items, MERGE, options, host=host)
    return got


@pytest.mark.parametrize("step, via_stride", [(0.7, True), (1.16, True), (0.7, False), (1.16, False)])
def test_temporal_offsets_are_a_float32_product_truncated(step, via_stride):
    """The stock quantisation of the temporal offset: int(float32(g) * float32(s)). For s = 0.7 and g = 10 it is
    7 (float32(0.7) * 10 in float64 is 6.99999988); for s = 1.16 and g = 25 it is 29 (25 * 1.16 in float64 is
    28.999999999999996). Every path, with the step as temporal_stride or as the video's own interval."""
    frames = 26
    tt, items = _one_video_row(frames, None if via_stride else step)
    options = PositionOptions(temporal_stride=step if via_stride else None)
    t = [int(np.float32(g) * np.float32(step)) for g in range(frames)]
    assert (t[10], t[25]) == ((7, 17) if step == 0.7 else (11, 29))
    after = 1 + max(t) + 1
    want = {
        "mrope": [[0] + [1 + v for v in t] + [after], [0] + [1] * frames + [after], [0] + [1] * frames + [after]],
        "spatial-reset": [
            [0] + [1 + v for v in t] + [after],
            [0] + [0] * frames + [after],
            [0] + [0] * frames + [after],
        ],
    }
    for name, (positions, deltas) in _all_paths(("mrope", "spatial-reset"), tt, items, options).items():
        assert positions[:3, 0].tolist() == want["mrope"], name
        assert positions[3:, 0].tolist() == want["spatial-reset"], name
        assert deltas.tolist() == [[after + 1 - (frames + 2)] * 2], name


def test_rope_deltas_count_a_video_that_outruns_the_spatial_advance():
    """vision_advance="spatial" after a (4, 1, 1) video at step 3: its t ids are 1, 4, 7, 10, but text resumes at
    1 + max(H, W) = 2, so the last token is at 2 and the largest position is 10: the delta is measured from 10 + 1
    (transformers' max(position) + 1) over 6 tokens, 11 - 6 = 5. Under "max" text resumes at 11: 12 - 6 = 6."""
    tt, items = _one_video_row(4, 3.0)
    for advance, text, delta in (("spatial", 2, 5), ("max", 11, 6)):
        options = PositionOptions(vision_advance=advance)
        for name, (positions, deltas) in _all_paths(("mrope", "spatial-reset"), tt, items, options).items():
            assert positions[0, 0].tolist() == [0, 1, 4, 7, 10, text], (advance, name)
            assert positions[1, 0].tolist() == [0, 1, 1, 1, 1, text], (advance, name)
            assert positions[4, 0].tolist() == [0, 0, 0, 0, 0, text], (advance, name)
            assert deltas.tolist() == [[delta, delta]], (advance, name)
