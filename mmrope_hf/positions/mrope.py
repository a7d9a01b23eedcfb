"""The MRoPE family of position designs: segments of a row -> (t, h, w) positions.

``st`` below is the position of the first token of a visual block (one past everything before it), a block
has T x H x W tokens after the spatial merge, in row-major (t, h, w) order, and ``s`` is the temporal step.

- ``mrope``: text (p, p, p); visual (st + floor(t*s), st + r, st + c).
- ``spatial-reset``: visual (st + floor(t*s), r, c): h and w restart at 0 for every block; text as ``mrope``.
- ``vanilla``: one counter over every token, copied to the three rows.

After a block, text resumes at ``st + max(floor((T-1)s), H-1, W-1) + 1`` (``vision_advance="max"``) or at
``st + max(H, W)`` (``"spatial"``, the transformers 5.23 Qwen2/2.5-VL rule).
"""

from __future__ import annotations

from typing import Sequence

import torch

from mmrope_hf.positions.batch import BatchDesign, Blocks, Tokens
from mmrope_hf.positions.design import PositionDesign, PositionOptions, RowPositions
from mmrope_hf.positions.layout import Segment, VisualBlock


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


def _batch_t_offsets(blocks: Blocks, g, interval, options: PositionOptions):
    xp = blocks.xp
    step = interval if options.temporal_stride is None else xp.full(len(interval), options.temporal_stride, xp.f32)
    return xp.cast(xp.cast(g, xp.f32) * step, xp.i64)  # the float32 multiply and truncation of the per-row path


def _batch_extent(blocks: Blocks, options: PositionOptions):
    key = ("mrope-extent", id(options))  # advance and top both read it
    if key not in blocks.memo:
        grid, xp = blocks.grid, blocks.xp
        spatial = xp.maximum(grid[:, 1], grid[:, 2]) - 1
        if blocks.temporal:
            spatial = xp.maximum(_batch_t_offsets(blocks, grid[:, 0] - 1, blocks.interval, options), spatial)
        blocks.memo[key] = spatial
    return blocks.memo[key]


def _batch_mrope(reset: bool) -> BatchDesign:
    def advance(blocks: Blocks, tokens: Tokens, options: PositionOptions):
        if options.vision_advance == "max":
            return _batch_extent(blocks, options) + 1
        return blocks.xp.maximum(blocks.grid[:, 1], blocks.grid[:, 2])

    def visual(start, tokens: Tokens, blocks: Blocks, options: PositionOptions):
        t = start
        if blocks.temporal:  # else every g is 0
            t = start + _batch_t_offsets(blocks, tokens.g, blocks.interval[tokens.block], options)
        if reset:
            return blocks.xp.stack([t, tokens.r, tokens.c])
        return blocks.xp.stack([t, start + tokens.r, start + tokens.c])

    return BatchDesign(advance, lambda blocks, tokens, options: _batch_extent(blocks, options) + 1, visual)


def mrope(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """Qwen2-VL MRoPE positions."""
    return _mrope_row(segments, options, reset=False)


def spatial_reset(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """MRoPE positions with h and w restarting at 0 for every image/frame (MRoPE-I, MHRoPE)."""
    return _mrope_row(segments, options, reset=True)


def vanilla(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """1D positions: one counter over every token."""
    n = sum(seg if isinstance(seg, int) else seg.num_tokens for seg in segments)
    return RowPositions(torch.arange(n).expand(3, -1), n)


_VANILLA_BATCH = BatchDesign(
    advance=lambda blocks, tokens, options: blocks.size,
    top=lambda blocks, tokens, options: blocks.size,
    visual=lambda start, tokens, blocks, options: blocks.xp.rows3(start + tokens.j),
)

DESIGNS = {
    "mrope": PositionDesign(mrope, batch=_batch_mrope(reset=False)),
    "spatial-reset": PositionDesign(spatial_reset, batch=_batch_mrope(reset=True)),
    "vanilla": PositionDesign(vanilla, batch=_VANILLA_BATCH),
}
