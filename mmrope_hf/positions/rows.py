"""The per-row position builder: every row's segments through the registered designs, one loop per row. It is the
reference that the loop-free batch path (:mod:`mmrope_hf.positions.batch`) must match."""

from __future__ import annotations

from typing import Sequence

import torch

from mmrope_hf.positions.design import PositionOptions
from mmrope_hf.positions.layout import Segment
from mmrope_hf.positions.registry import POSITION_DESIGNS


def build_positions(
    designs: Sequence[str],
    layout: Sequence[Sequence[Segment]],
    options: PositionOptions,
    attention_mask: torch.Tensor | None,
    shape: tuple[int, int],
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of every set for a batch.

    Args:
        designs: one position design per position set (a layer schedule may use several).
        layout: segments of every row (see :func:`mmrope_hf.layout.parse_layout`).
        options: the options every design reads.
        attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): padded slots get position 0.
        shape: (B, L).

    Returns:
        positions (`torch.Tensor` of shape `(3 * len(designs), B, L)`): rows (t, h, w) of set 0, then set 1, ...;
            int64 unless a design needs float32 (then every set is float32).
        rope_deltas (`torch.Tensor` of shape `(B, len(designs))`): per set, the position of the token that would
            follow minus the number of unpadded tokens. Each set keeps its own: after the prompt, a layer reading
            set k continues from set k's end.
    """
    batch, length = shape
    keep = attention_mask.bool().cpu() if attention_mask is not None else torch.ones(batch, length, dtype=torch.bool)
    rows = [[POSITION_DESIGNS.get(name).row(segments, options) for name in designs] for segments in layout]
    lengths = [int(n) for n in keep.sum(-1).tolist()]
    is_float = any(r.positions.dtype != torch.long or isinstance(r.next_position, float) for row in rows for r in row)
    dtype = torch.float32 if is_float else torch.long
    positions = torch.zeros(len(designs), 3, batch, length, dtype=dtype)
    for b, row in enumerate(rows):
        for k, result in enumerate(row):
            positions[k, :, b, keep[b]] = result.positions.to(dtype)
    ends = [[r.next_position - n for r in row] for row, n in zip(rows, lengths, strict=True)]
    deltas = torch.tensor(ends, dtype=dtype)
    return positions.reshape(3 * len(designs), batch, length).to(device), deltas.to(device)
