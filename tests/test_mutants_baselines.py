"""Tests that kill the mutants of mmrope_hf/positions/baselines.py that survived the module's tests
(scripts/mutation.py baselines; docs/mutation.md): HoPE's training-time strides without the patch's generator are
decided by the ``seed`` option alone (``torch.Generator().manual_seed(seed)``, one draw per block among the
choices), positions against tests/reference/baselines_reference."""

from __future__ import annotations

import pytest
import torch
from reference import baselines_reference as bref

from mmrope_hf.positions.baselines import DEFAULT_STRIDE_CHOICES, DESIGNS, hope
from mmrope_hf.positions.design import PositionOptions
from mmrope_hf.positions.layout import VIDEO, VisualBlock

LAYOUT = [("text", 2), ("video", 3, 2, 2), ("text", 1), ("video", 2, 2, 3), ("text", 1), ("video", 2, 1, 2)]
SEGMENTS = [
    2,
    VisualBlock(VIDEO, (3, 2, 2), 1.0),
    1,
    VisualBlock(VIDEO, (2, 2, 3), 1.0),
    1,
    VisualBlock(VIDEO, (2, 1, 2), 1.0),
]


@pytest.mark.parametrize("seed", [0, 7, 123])
def test_hope_draws_from_the_seed_alone(seed):
    torch.manual_seed(999)  # the global generator must not matter
    generator = torch.Generator().manual_seed(seed)
    choices = DEFAULT_STRIDE_CHOICES
    strides = [choices[int(torch.randint(len(choices), (1,), generator=generator))] for _ in range(3)]
    got = hope(SEGMENTS, PositionOptions(training=True, design={"seed": seed}))
    ids, nxt = bref.positions(LAYOUT, "hope", strides)
    want = torch.tensor([[float(v) for v in p] for p in ids]).T
    torch.testing.assert_close(got.positions.double(), want.double(), atol=1e-5, rtol=0)
    assert float(got.next_position) == pytest.approx(float(nxt))


# --- dtypes, empty rows, option names, the spatial advance ------------------------------------------------------

FLOAT_DESIGNS = ("videorope", "hope", "v2pe")  # float32 positions, as the reference repo
INT_DESIGNS = ("text-spatial-reset", "modality-interval")  # int64, stock truncation of the temporal offsets


def exact(ids, design) -> torch.Tensor:
    """The reference's exact (Fraction) positions, as get_rope_index stores them, rounded once to the design's
    dtype."""
    dtype = torch.float32 if design in FLOAT_DESIGNS else torch.long
    return torch.tensor([[float(v) for v in p] for p in bref.stored(ids, design)], dtype=torch.float64).T.to(dtype)


@pytest.mark.parametrize("design", [*FLOAT_DESIGNS, *INT_DESIGNS])
def test_positions_have_the_designs_dtype_and_the_reference_values(design):
    stride = 0.75 if design != "v2pe" else 1.0  # fractional temporal offsets where the design has them
    options = PositionOptions(temporal_stride=stride)
    got = DESIGNS[design].row(SEGMENTS, options)
    ids, nxt = bref.positions(LAYOUT, design, stride)
    assert got.positions.dtype == exact(ids, design).dtype
    assert torch.equal(got.positions, exact(ids, design)) and float(got.next_position) == float(nxt)


@pytest.mark.parametrize("n", [3, 7, 9, 13])
def test_v2pe_fractional_positions_are_the_float32_of_the_exact_values(n):
    """Computed in float64, rounded once: float32 arithmetic (span * k / n + last) is off by an ulp for 1/7 etc."""
    layout, segments = [("text", 4999), ("image", 1, 1, n), ("text", 2)], [4999, VisualBlock(0, (1, 1, n), 1.0), 2]
    got = DESIGNS["v2pe"].row(segments, PositionOptions(design={"visual_stride": 16.0}))
    ids, nxt = bref.positions(layout, "v2pe", 1, 16)
    assert torch.equal(got.positions, exact(ids, "v2pe")) and float(got.next_position) == float(nxt)


@pytest.mark.parametrize("design", [*FLOAT_DESIGNS, *INT_DESIGNS])
def test_an_empty_row_has_no_positions_and_starts_at_zero(design):
    got = DESIGNS[design].row([], PositionOptions())
    dtype = torch.float32 if design in FLOAT_DESIGNS else torch.long
    assert got.positions.shape == (3, 0) and got.positions.dtype == dtype and float(got.next_position) == 0.0


def test_a_bad_design_option_names_itself():
    with pytest.raises(ValueError, match=r"^visual_stride must be a positive number"):
        DESIGNS["v2pe"].row(SEGMENTS, PositionOptions(design={"visual_stride": -2}))
    with pytest.raises(ValueError, match=r"^temporal_stride_choices must be a non-empty list"):
        hope(SEGMENTS, PositionOptions(training=True, design={"temporal_stride_choices": []}))


# a video of 3 groups (offsets 0, 2, 4 at a temporal step 2) of 2 x 2 tokens after 2 text tokens, then 1 text token
SPATIAL_SEGMENTS = [2, VisualBlock(VIDEO, (3, 2, 2), 2.0), 1]


@pytest.mark.parametrize(
    ("advance", "text_at", "following"),
    [("max", 7, 8), ("spatial", 4, 7)],  # spatial: text at 2 + max(H, W), the row ends past the last group (6)
)
def test_text_spatial_reset_under_each_vision_advance(advance, text_at, following):
    got = DESIGNS["text-spatial-reset"].row(SPATIAL_SEGMENTS, PositionOptions(vision_advance=advance))
    visual = [(2 + g, 2 + g + r, 2 + g + c) for g in (0, 2, 4) for r in (0, 1) for c in (0, 1)]
    want = [(0, 0, 0), (1, 1, 1), *visual, (text_at,) * 3]
    assert got.positions.T.tolist() == [list(p) for p in want] and got.next_position == following


@pytest.mark.parametrize("advance", ["max", "spatial"])
def test_text_spatial_reset_keeps_spatial_resets_t_rows_and_next_position(advance):
    """Its t row and next position are those of ``spatial-reset`` (positions/mrope.py) under both advances."""
    from mmrope_hf.positions.mrope import DESIGNS as MROPE_DESIGNS

    segments = [*SPATIAL_SEGMENTS, VisualBlock(0, (1, 3, 2), 1.0), 2, VisualBlock(VIDEO, (5, 1, 1), 3.0)]
    options = PositionOptions(vision_advance=advance)
    ours, stock = (
        DESIGNS["text-spatial-reset"].row(segments, options),
        MROPE_DESIGNS["spatial-reset"].row(segments, options),
    )
    assert torch.equal(ours.positions[0], stock.positions[0]) and ours.next_position == stock.next_position
