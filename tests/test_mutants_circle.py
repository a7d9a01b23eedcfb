"""Tests that kill the mutants of mmrope_hf/positions/circle.py that survived the module's tests
(scripts/mutation.py circle; docs/mutation.md): the per-row and both loop-free batch paths (numpy, torch) against
tests/reference/circle_reference.py (float64 NumPy, written from circlerope.md) on random batches with asymmetric
grids, 1x1 blocks (a zero angle span), multi-group videos and every option."""

from __future__ import annotations

import pytest
import test_mutants_mrope as common
import torch
from reference import circle_reference as ref

import mmrope_hf
from mmrope_hf.positions.batch import batch_positions
from mmrope_hf.positions.builder import position_options
from mmrope_hf.positions.layout import parse_layout
from mmrope_hf.positions.registry import POSITION_DESIGNS
from mmrope_hf.positions.rows import build_positions

ATOL = 2e-5  # float32 positions of magnitude < 100


@pytest.fixture(autouse=True)
def _cold_ring_cache():
    """Every test computes its rings afresh (the host path caches them per grid and settings), so a mutation run
    forked from a warm process still exercises the code under test."""
    from mmrope_hf.positions import circle

    getattr(circle, "clear_ring_cache", lambda: None)()
    yield


def expected(layouts, steps, side, temporal_stride, length, options):
    out = torch.zeros(3, len(layouts), length, dtype=torch.float64)
    deltas = []
    for b, (layout, row_steps) in enumerate(zip(layouts, steps, strict=True)):
        stride = [temporal_stride] * len(row_steps) if temporal_stride is not None else row_steps
        ids, nxt = ref.positions(layout, stride, **options)
        n = len(ids)
        span = slice(length - n, length) if side == "left" else slice(0, n)
        if n:
            out[:, b, span] = torch.tensor(ids, dtype=torch.float64).T
        deltas.append(nxt - n)
    return out, torch.tensor(deltas, dtype=torch.float64)[:, None]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"radius": "auto"},
        {"radius": "auto", "auto_radius": "l2"},
        {"radius": "auto-2", "auto_radius": "l2", "alpha": 0.25},
        {"radius": 3.0, "alpha": 1.0, "dff_rate": 0.4},
        {"alpha": 0.0, "move_to_origin": False, "move_to_positive": "auto"},
        {"method": "no_circle", "move_to_positive": 1.5, "dff_rate": 1.0},
        {"method": "no_circle", "radius": "auto-2", "auto_radius": "l2"},
    ],
)
@pytest.mark.parametrize("temporal_stride", [None, 0.5])
def test_circle_paths_equal_the_reference(seed, options, temporal_stride):
    tt, mask, items, layouts, steps, side = common.random_case(seed)
    config = mmrope_hf.resolve_config("circle", layers="all", temporal_stride=temporal_stride, **options)
    popts = position_options(config)
    want = expected(layouts, steps, side, temporal_stride, tt.shape[1], options)
    got = {"rows": build_positions(("circle",), parse_layout(tt, mask, items, 2), popts, mask, tuple(tt.shape))}
    batch = [POSITION_DESIGNS.get("circle").batch]
    for host, name in ((True, "numpy"), (False, "torch")):
        got[name] = batch_positions(("circle",), batch, tt, mask, items, 2, popts, host=host)
    for name, (positions, deltas) in got.items():
        assert positions.dtype == torch.float32, name
        torch.testing.assert_close(positions.double(), want[0], atol=ATOL, rtol=0, msg=f"{name} seed {seed}")
        torch.testing.assert_close(deltas.double(), want[1], atol=ATOL, rtol=0, msg=f"{name} seed {seed}")


def test_one_by_one_block_has_no_angle_span():
    """A 1x1 image: theta's span is 0, the spatial angle is theta itself (reference frame_points)."""
    layout = [("text", 2), ("image", 1, 1, 1), ("text", 1)]
    tt = torch.tensor([[0, 0, 1, 0]])
    items = [
        mmrope_hf.positions.layout.visual_items(1, torch.tensor([[1, 2, 2]])),
        mmrope_hf.positions.layout.visual_items(2, None),
    ]
    for options in ({}, {"radius": "auto", "auto_radius": "l2"}, {"move_to_origin": False}):
        popts = position_options(mmrope_hf.resolve_config("circle", layers="all", **options))
        ids, _ = ref.positions(layout, 1.0, **options)
        want = torch.tensor(ids, dtype=torch.float64).T[:, None]
        for host in (True, False):
            got, _ = batch_positions(
                ("circle",), [POSITION_DESIGNS.get("circle").batch], tt, None, items, 2, popts, host=host
            )
            torch.testing.assert_close(got.double(), want, atol=ATOL, rtol=0)
