"""Position designs: segments of a row -> (t, h, w) positions, and the batch builder.

A design is a function ``(segments, options) -> RowPositions`` registered in ``POSITION_DESIGNS``.
``st`` below is the position of the first token of a visual block (one past everything before it), a block
has T x H x W tokens after the spatial merge, in row-major (t, h, w) order, and ``s`` is the temporal step.

- ``mrope``: text (p, p, p); visual (st + floor(t*s), st + r, st + c).
- ``spatial-reset``: visual (st + floor(t*s), r, c): h and w restart at 0 for every block; text as ``mrope``.
- ``vanilla``: one counter over every token, copied to the three rows.

After a block, text resumes at ``st + max(floor((T-1)s), H-1, W-1) + 1`` (``vision_advance="max"``) or at
``st + max(H, W)`` (``"spatial"``, the transformers 5.23 Qwen2/2.5-VL rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from .layout import Segment, VisualBlock
from .options import Option
from .registry import Registry
from .vectorized import BatchDesign, Blocks, Tokens


@dataclass(frozen=True)
class PositionOptions:
    """Options every design reads (``temporal_stride=None`` keeps each block's own interval), plus the
    options the design declares for itself in ``design`` (e.g. a radius)."""

    temporal_stride: float | None = None
    vision_advance: str = "max"
    design: Mapping[str, Any] = field(default_factory=dict)
    training: bool = False  # the model is in training mode (HoPE draws its temporal stride only then)
    generator: torch.Generator | None = None  # the patched model's seeded generator, for designs that draw at random


@dataclass(frozen=True)
class RowPositions:
    """Positions of one row's unpadded tokens, shape (3, n), and the position of the token that would follow."""

    positions: torch.Tensor
    next_position: float


RowFunction = Callable[[Sequence[Segment], PositionOptions], RowPositions]


@dataclass(frozen=True)
class PositionDesign:
    """A registered design: the per-row function (the reference), the options it declares, and optionally its
    loop-free batch form (:class:`~mmrope_hf.vectorized.BatchDesign`), which must give the same positions."""

    row: RowFunction
    options: Mapping[str, Option] = field(default_factory=dict)
    batch: BatchDesign | None = None


POSITION_DESIGNS: Registry[PositionDesign] = Registry("position design")


def register_design(
    name: str, options: Mapping[str, Option] | None = None, batch: BatchDesign | None = None
) -> Callable[[RowFunction], RowFunction]:
    """Register a row function as position design ``name``, with the options it reads from ``options.design``
    and, optionally, its batch form."""

    def decorate(row: RowFunction) -> RowFunction:
        POSITION_DESIGNS.add(name, PositionDesign(row, dict(options or {}), batch))
        return row

    return decorate


def _temporal_offsets(block: VisualBlock, options: PositionOptions) -> torch.Tensor:
    interval = block.interval if options.temporal_stride is None else options.temporal_stride
    return (torch.arange(block.grid[0]) * interval).long()  # the stock quantisation: truncate after the multiply


def _grid_rows(block: VisualBlock, t: torch.Tensor, h0: int, w0: int) -> torch.Tensor:
    _, n_h, n_w = block.grid
    tt, hh, ww = torch.meshgrid(t, torch.arange(n_h) + h0, torch.arange(n_w) + w0, indexing="ij")
    return torch.stack([tt, hh, ww]).reshape(3, -1)


def _mrope_row(segments: Sequence[Segment], options: PositionOptions, reset: bool) -> RowPositions:
    parts, pos, top = [], 0, -1
    for seg in segments:
        if isinstance(seg, int):
            parts.append(torch.arange(pos, pos + seg).expand(3, -1))
            pos += seg
            top = max(top, pos - 1)
            continue
        t = _temporal_offsets(seg, options)
        _, n_h, n_w = seg.grid
        extent = max(int(t[-1]), n_h - 1, n_w - 1)
        spatial_start = 0 if reset else pos
        parts.append(_grid_rows(seg, t + pos, spatial_start, spatial_start))
        top = max(top, pos + extent)
        pos = pos + extent + 1 if options.vision_advance == "max" else pos + max(n_h, n_w)
    positions = torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)
    # transformers measures rope_deltas from max(position) + 1; with "max" that is where text resumes anyway.
    return RowPositions(positions, max(pos, top + 1))


def _batch_t_offsets(g: torch.Tensor, interval: torch.Tensor, options: PositionOptions) -> torch.Tensor:
    step = interval if options.temporal_stride is None else torch.full_like(interval, options.temporal_stride)
    return (g * step).long()  # the same float32 multiply and truncation as the per-row path and transformers


def _batch_extent(blocks: Blocks, options: PositionOptions) -> torch.Tensor:
    t, h, w = blocks.grid.unbind(-1)
    return torch.maximum(_batch_t_offsets(t - 1, blocks.interval, options), torch.maximum(h, w) - 1)


def _batch_mrope(reset: bool) -> BatchDesign:
    def advance(blocks: Blocks, tokens: Tokens, options: PositionOptions) -> torch.Tensor:
        if options.vision_advance == "max":
            return _batch_extent(blocks, options) + 1
        return blocks.grid[:, 1:].amax(-1)

    def visual(start: torch.Tensor, tokens: Tokens, blocks: Blocks, options: PositionOptions) -> torch.Tensor:
        t = start + _batch_t_offsets(tokens.g, blocks.interval[tokens.block], options)
        spatial = 0 if reset else start
        return torch.stack([t, spatial + tokens.r, spatial + tokens.c])

    return BatchDesign(advance, lambda blocks, tokens, options: _batch_extent(blocks, options) + 1, visual)


@register_design("mrope", batch=_batch_mrope(reset=False))
def mrope(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """Qwen2-VL MRoPE positions."""
    return _mrope_row(segments, options, reset=False)


@register_design("spatial-reset", batch=_batch_mrope(reset=True))
def spatial_reset(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """MRoPE positions with h and w restarting at 0 for every image/frame (MRoPE-I, MHRoPE)."""
    return _mrope_row(segments, options, reset=True)


@register_design("vanilla", batch=BatchDesign(
    advance=lambda blocks, tokens, options: blocks.size,
    top=lambda blocks, tokens, options: blocks.size,
    visual=lambda start, tokens, blocks, options: (start + tokens.j).expand(3, -1),
))
def vanilla(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """1D positions: one counter over every token."""
    n = sum(seg if isinstance(seg, int) else seg.num_tokens for seg in segments)
    return RowPositions(torch.arange(n).expand(3, -1), n)


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
    deltas = torch.tensor([[r.next_position - n for r in row] for row, n in zip(rows, lengths)], dtype=dtype)
    return positions.reshape(3 * len(designs), batch, length).to(device), deltas.to(device)


from . import circle  # noqa: E402,F401  (registers the circle design)
from . import baselines  # noqa: E402,F401  (registers videorope, hope, v2pe, text-spatial-reset, modality-interval)
