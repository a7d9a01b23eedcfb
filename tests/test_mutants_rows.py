"""Tests that kill the mutants of mmrope_hf/positions/rows.py that survived the module's tests
(scripts/mutation.py rows; docs/mutation.md): the per-row builder (build_positions) against
tests/reference/rope_reference on random batches (the generator and the check are in tests/test_mutants_mrope.py)."""

from __future__ import annotations

import pytest
import test_mutants_mrope as common
import torch


@pytest.mark.parametrize("seed", range(100, 124))
@pytest.mark.parametrize("advance", ["max", "spatial"])
@pytest.mark.parametrize("temporal_stride", [None, 0.75])
def test_rows_equals_the_reference(seed, advance, temporal_stride):
    common.check_against_reference(
        seed, ("mrope", "spatial-reset", "vanilla"), temporal_stride, advance, paths=("rows",)
    )


def test_no_attention_mask_means_every_slot_is_a_token():
    """Two unpadded rows and no attention_mask: every slot gets the reference position."""
    from reference import rope_reference as ref

    from mmrope_hf.positions.design import PositionOptions
    from mmrope_hf.positions.layout import IMAGE, VIDEO, parse_layout, visual_items
    from mmrope_hf.positions.rows import build_positions

    layouts = [[("text", 2), ("image", 1, 2, 3), ("text", 1)], [("text", 1), ("image", 1, 3, 2), ("text", 2)]]
    tt = torch.tensor([[0, 0] + [IMAGE] * 6 + [0], [0] + [IMAGE] * 6 + [0, 0]])
    items = [visual_items(IMAGE, torch.tensor([[1, 4, 6], [1, 6, 4]])), visual_items(VIDEO, None)]
    designs = ("mrope", "spatial-reset", "vanilla")
    positions, deltas = build_positions(designs, parse_layout(tt, None, items, 2), PositionOptions(), None, (2, 9))
    assert positions.dtype == torch.long
    for k, design in enumerate(designs):
        for b, layout in enumerate(layouts):
            ids, nxt = ref.positions(layout, design)
            assert [tuple(p) for p in positions[3 * k : 3 * k + 3, b].T.tolist()] == ids
            assert deltas[b, k] == nxt - 9


def _custom_design(monkeypatch, name, positions, next_position):
    """Register a one-off design whose row function returns fixed positions / next position (any segments)."""
    from mmrope_hf.positions.design import PositionDesign, RowPositions
    from mmrope_hf.positions.registry import POSITION_DESIGNS

    def row(segments, options):
        return RowPositions(positions, next_position)

    monkeypatch.setitem(POSITION_DESIGNS._items, name, PositionDesign(row))


def _text_layout(n):
    return [[n]]


@pytest.mark.parametrize(
    "positions, next_position",
    [
        # int64 positions but a float next position (a fractional delta): the whole output is float32
        (torch.tensor([[0, 1, 2]] * 3), 3.5),
        # float positions and an int next position: float32 too, and the deltas as well
        (torch.tensor([[0.0, 1.5, 2.5]] * 3), 4),
    ],
)
def test_any_float_part_makes_every_set_float32(monkeypatch, positions, next_position):
    from mmrope_hf.positions.design import PositionOptions
    from mmrope_hf.positions.rows import build_positions

    _custom_design(monkeypatch, "test-fixed", positions, next_position)
    got, deltas = build_positions(("test-fixed",), _text_layout(3), PositionOptions(), None, (1, 3))
    assert got.dtype == deltas.dtype == torch.float32
    assert got.tolist() == [[[float(v) for v in positions[0].tolist()]]] * 3
    assert deltas.tolist() == [[next_position - 3]]


def test_padded_slots_are_zero_and_deltas_count_real_tokens():
    """Left padding of 2: the 3 text tokens sit at 0, 1, 2 after the padding; the delta is 3 - 3 = 0."""
    from mmrope_hf.positions.design import PositionOptions
    from mmrope_hf.positions.rows import build_positions

    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    got, deltas = build_positions(("mrope", "vanilla"), [[3], [5]], PositionOptions(), mask, (2, 5))
    assert got.tolist() == [[[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]] * 6
    assert deltas.tolist() == [[0, 0], [0, 0]]


def test_device_is_honoured():
    """The result goes to the given device (meta: a tensor left on the CPU shows)."""
    from mmrope_hf.positions.design import PositionOptions
    from mmrope_hf.positions.rows import build_positions

    got, deltas = build_positions(("mrope",), [[2]], PositionOptions(), None, (1, 2), device="meta")
    assert got.device.type == deltas.device.type == "meta"
    assert got.shape == (3, 1, 2) and deltas.shape == (1, 1)


def test_a_layout_with_fewer_rows_than_the_batch_is_refused():
    """One row of segments for a batch of two: the builder refuses it rather than return one row's deltas."""
    from mmrope_hf.positions.design import PositionOptions
    from mmrope_hf.positions.rows import build_positions

    with pytest.raises(ValueError, match=r"zip\(\) argument 2 is longer than argument 1"):
        build_positions(("mrope",), [[2]], PositionOptions(), None, (2, 2))
