"""Tests that kill the mutants of mmrope_hf/positions/mrope.py that survived the module's tests
(scripts/mutation.py mrope; docs/mutation.md), and the shared oracle check of the position builders used by
tests/test_mutants_rows.py and tests/test_mutants_batch.py: random batches (images, multi-group videos, asymmetric
grids, fractional temporal steps, both vision advances, both padding sides) against tests/reference/rope_reference,
which is written from multimodal_ropes.md, not from mmrope-hf. Each case checks the per-row path
(:func:`build_positions`) and the loop-free batch path (:func:`batch_positions`, numpy and torch) alike."""

from __future__ import annotations

import random

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
