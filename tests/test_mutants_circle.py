"""Tests that kill the mutants of mmrope_hf/positions/circle.py that survived the module's tests
(scripts/mutation.py circle; docs/mutation.md): the per-row and both loop-free batch paths (numpy, torch) against
tests/reference/circle_reference.py (float64 NumPy, written from circlerope.md) on random batches with asymmetric
grids, 1x1 blocks (a zero angle span), multi-group videos and every option."""

from __future__ import annotations

import re

import pytest
import test_mutants_mrope as common
import torch
from reference import circle_reference as ref

import mmrope_hf
from mmrope_hf.positions import circle as circle_module
from mmrope_hf.positions.batch import HOST, batch_positions
from mmrope_hf.positions.builder import position_options
from mmrope_hf.positions.design import PositionOptions
from mmrope_hf.positions.layout import IMAGE, VIDEO, VisualBlock, parse_layout, visual_items
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


# --- the per-row function in float64 -------------------------------------------------------------------------------


def _segments(layout, stride):
    """circle()'s segments of a reference layout; every visual item gets the temporal step ``stride``."""
    out = []
    for item in layout:
        if item[0] == "text":
            out.append(item[1])
        else:
            out.append(VisualBlock(IMAGE if item[0] == "image" else VIDEO, tuple(item[1:]), stride))
    return out


@pytest.mark.parametrize(
    "layout, stride, options",
    [
        # a 4-group video at step 0.1: its lift (3 * 0.1 on the last frame) is a float64 product
        ([("text", 2), ("video", 4, 2, 3), ("text", 1)], 0.1, {}),
        ([("text", 1), ("video", 3, 3, 2), ("text", 2)], 0.1, {"alpha": 0.0}),
        # images: the raster angle 2 pi k / (H W) is taken in float64
        ([("text", 3), ("image", 1, 3, 5), ("text", 2)], 1.0, {}),
        ([("image", 1, 7, 3), ("text", 1)], 1.0, {"alpha": 0.0, "radius": 12.5}),
        ([("text", 1), ("image", 1, 5, 5), ("text", 1), ("image", 1, 2, 7)], 1.0, {"alpha": 0.3}),
    ],
)
def test_row_next_position_is_the_float64_reference(layout, stride, options):
    """The per-row path works in float64 (only the positions are returned as float32): its next position is the
    reference's max + 1 to float64 accuracy, and its positions are the float32 rounding of the reference's."""
    row = circle_module.circle(_segments(layout, stride), PositionOptions(design=options))
    ids, nxt = ref.positions(layout, stride, **options)
    assert isinstance(row.next_position, float)
    assert abs(row.next_position - nxt) < 1e-10, (row.next_position, nxt)
    assert row.positions.dtype == torch.float32
    torch.testing.assert_close(row.positions, torch.tensor(ids, dtype=torch.float64).T.float(), atol=1e-5, rtol=0)


def test_text_after_a_ring_is_rounded_once():
    """Text after a block resumes at the float64 position p = max + 1; token j is float32(p + j), summed in float64
    (a float32 sum of float32(p) and j rounds twice, which shows once the values pass a power of two)."""
    layout = [("text", 3), ("image", 1, 3, 5), ("text", 60)]
    row = circle_module.circle(_segments(layout, 1.0), PositionOptions())
    ids, _ = ref.positions(layout)
    want = torch.tensor(ids, dtype=torch.float64).T.float()
    assert torch.equal(row.positions[:, -60:], want[:, -60:])


def test_empty_row():
    row = circle_module.circle([], PositionOptions())
    assert row.positions.tolist() == [[], [], []]
    assert row.positions.dtype == torch.float32 and row.next_position == 0.0


# --- options ---------------------------------------------------------------------------------------------------------


def test_a_radius_below_one_is_a_radius():
    """Any radius > 0 is valid, 0.5 included: the ring has radius 0.5 (reference)."""
    layout = [("text", 1), ("image", 1, 2, 3), ("text", 1)]
    for radius in (0.5, 1):
        assert circle_module._check_radius("radius", radius) == float(radius)
        row = circle_module.circle(_segments(layout, 1.0), PositionOptions(design={"radius": radius}))
        ids, nxt = ref.positions(layout, radius=float(radius))
        torch.testing.assert_close(row.positions, torch.tensor(ids, dtype=torch.float64).T.float(), atol=1e-6, rtol=0)
        assert abs(row.next_position - nxt) < 1e-10


@pytest.mark.parametrize("value", ["0.5", "1", None, [0.5]])
def test_dff_rate_must_be_a_number(value):
    """Only numbers in [0, 1] and the reference's booleans: a string that float() would read is refused too."""
    with pytest.raises(ValueError, match=rf"^dff_rate must be a number in \[0, 1\], got {re.escape(repr(value))}$"):
        circle_module.circle([1], PositionOptions(design={"dff_rate": value}))


def test_dff_rate_booleans_read_as_one_and_zero():
    assert circle_module._check_dff_rate("dff_rate", True) == 1.0
    assert circle_module._check_dff_rate("dff_rate", False) == 0.0
    assert circle_module._check_dff_rate("dff_rate", 0.25) == 0.25


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("radius", -1.0, r"^radius must be a number > 0, 'auto' or 'auto-k'"),
        ("radius", "auto-0", r"^radius must be a number > 0, .*got 'auto-0'$"),
        ("alpha", 1.5, r"^alpha must be a number in \[0, 1\], got 1\.5$"),
        ("move_to_positive", True, r"^move_to_positive must be false, 'auto' or a number .*got True$"),
    ],
)
def test_option_errors_name_the_option(name, value, message):
    with pytest.raises(ValueError, match=message):
        circle_module.circle([1, VisualBlock(IMAGE, (1, 2, 2), 1.0)], PositionOptions(design={name: value}))


# --- the host path's ring cache --------------------------------------------------------------------------------------


def _host_images(grids, options, rows=2):
    """A host build of one image per grid (merged (H, W)), spread over ``rows`` rows with text around each."""
    per_row = [[] for _ in range(rows)]
    for i, grid in enumerate(grids):
        per_row[i % rows].append(grid)
    seqs, layouts = [], []
    for row in per_row:
        types, layout = [0], [("text", 1)]
        for h, w in row:
            types += [IMAGE] * (h * w) + [0, 0]
            layout += [("image", 1, h, w), ("text", 2)]
        seqs.append(types)
        layouts.append(layout)
    length = max(map(len, seqs))
    tt = torch.zeros(rows, length, dtype=torch.long)
    mask = torch.zeros(rows, length, dtype=torch.long)
    for b, types in enumerate(seqs):
        tt[b, : len(types)] = torch.tensor(types)
        mask[b, : len(types)] = 1
    items = [
        visual_items(IMAGE, torch.tensor([[1, 2 * h, 2 * w] for row in per_row for h, w in row])),  # batch order
        visual_items(VIDEO, None),
    ]
    got = batch_positions(
        ("circle",),
        [POSITION_DESIGNS.get("circle").batch],
        tt,
        mask,
        items,
        2,
        PositionOptions(design=options),
        host=True,
    )
    want = expected(layouts, [[1.0] * len(r) for r in per_row], "right", None, length, options)
    return got, want


def _check(got, want):
    torch.testing.assert_close(got[0].double(), want[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(got[1].double(), want[1], atol=ATOL, rtol=0)


def _cached_shapes():
    return sorted({key[:2] for key in circle_module._RINGS})


def test_a_warm_host_build_reads_the_cached_rings(monkeypatch):
    """The first host build computes each (H, W) ring once and keeps it, with its maximum; a second build of the
    same shapes then does no per-block reduction at all: positions and advances come from the cache."""
    grids = [(2, 3), (3, 2), (1, 4), (2, 3)]
    _check(*_host_images(grids, {}))
    assert _cached_shapes() == [(1, 4), (2, 3), (3, 2)]
    calls = []

    def spy(values, blocks, tokens, reduce):
        calls.append(reduce)
        return type(HOST).per_block(HOST, values, blocks, tokens, reduce)

    monkeypatch.setattr(HOST, "per_block", spy)
    _check(*_host_images(grids, {}))
    assert calls == []
    _check(*_host_images([(2, 3), (2, 2)], {}))  # one new shape: only its ring is computed
    assert calls and _cached_shapes() == [(1, 4), (2, 2), (2, 3), (3, 2)]


@pytest.mark.parametrize("first, second", [(False, 0), (0, False), ("auto", 0), (0, 1.5)])
def test_move_to_positive_false_and_zero_keep_separate_rings(first, second):
    """False (no shift) == 0 in Python, but 0 shifts by |min|: the cache must not hand one the other's ring."""
    grids = [(2, 3), (1, 4)]
    _check(*_host_images(grids, {"move_to_positive": first}))
    _check(*_host_images(grids, {"move_to_positive": second}))
    _check(*_host_images(grids, {"move_to_positive": first}))


def test_cached_rings_are_read_only_and_counted():
    _host_images([(2, 3), (1, 4), (3, 3)], {})
    _host_images([(2, 3), (5, 1)], {"alpha": 0.25})
    assert len(circle_module._RINGS) == 5
    assert all(not ring.flags.writeable for ring, _ in circle_module._RINGS.values())
    assert circle_module._ring_elements == 3 * (6 + 4 + 9 + 6 + 5)
    circle_module.clear_ring_cache()
    assert circle_module._RINGS == {} and circle_module._ring_elements == 0


def test_the_cache_starts_over_past_its_budget():
    """Past _RINGS_BUDGET elements (not at it) the cache is cleared before the new rings go in."""
    try:
        _host_images([(2, 3)], {})
        circle_module._ring_elements = circle_module._RINGS_BUDGET  # at the budget: kept
        _check(*_host_images([(1, 4)], {}))
        assert _cached_shapes() == [(1, 4), (2, 3)]
        assert circle_module._ring_elements == circle_module._RINGS_BUDGET + 12
        _check(*_host_images([(3, 3), (2, 2)], {}))  # past it: cleared, then the two new rings
        assert _cached_shapes() == [(2, 2), (3, 3)]
        assert circle_module._ring_elements == 3 * (9 + 4)
    finally:
        circle_module.clear_ring_cache()


# --- the torch path's temporal lift ----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", [False, True])
def test_temporal_stride_lift_is_float64(host):
    """A 1x1 video of 600 groups at temporal_stride 0.1 (no exact float32): the t row of group g is
    2 + g * 0.1 (the ring's t offset is 0 for one token), summed in float64, rounded to float32 once."""
    frames = 600
    tt = torch.tensor([[0, 0] + [VIDEO] * frames + [0]])
    items = [visual_items(IMAGE, None), visual_items(VIDEO, torch.tensor([[frames, 2, 2]]), [1.0])]
    options = PositionOptions(temporal_stride=0.1)
    got, _ = batch_positions(
        ("circle",), [POSITION_DESIGNS.get("circle").batch], tt, None, items, 2, options, host=host
    )
    want = torch.tensor([2 + g * 0.1 for g in range(frames)], dtype=torch.float64).float()
    assert torch.equal(got[0, 0, 2 : 2 + frames], want)
