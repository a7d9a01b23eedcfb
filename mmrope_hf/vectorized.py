"""Loop-free position building over a whole batch: the fast path behind ``get_rope_index``.

No Python loop over tokens, rows or visual items: every visual token finds its block and its (g, r, c) inside
it from cumulative sums and ``searchsorted``, and the running start position of every block comes from a
cumulative sum of per-block advances along each row. A design opts in by giving a :class:`BatchDesign`; the
per-row functions in :mod:`mmrope_hf.positions` stay the reference (the tests compare the two), and the
builder falls back to them for designs without a batch form and for inputs it cannot lay out (it then raises
the reference's detailed error).

Host reads: only the grid tables (a few numbers per image) and the validation flags; nothing of size L.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .layout import VisualItems


@dataclass(frozen=True)
class Blocks:
    """Every visual block of the batch: ``grid`` (N, 3) merged (T, H, W), ``interval`` (N,) float32, ``row`` (N,)."""

    grid: torch.Tensor
    interval: torch.Tensor
    row: torch.Tensor

    @property
    def size(self) -> torch.Tensor:
        return self.grid.prod(-1)


@dataclass(frozen=True)
class Tokens:
    """Every visual token in batch order: its ``block``, its raster index ``j`` in the block, and (g, r, c)."""

    block: torch.Tensor
    j: torch.Tensor
    g: torch.Tensor
    r: torch.Tensor
    c: torch.Tensor


@dataclass(frozen=True)
class BatchDesign:
    """A position design in batch form.

    Attributes:
        advance: ``(blocks, tokens, options) -> (N,)`` how far the running position moves over each block.
        top: ``(blocks, tokens, options) -> (N,)`` one past the block's largest position, relative to its start
            (used for ``rope_deltas``, which transformers takes from max(position) + 1).
        visual: ``(start (M,), tokens, blocks, options) -> (3, M)`` positions of the visual tokens, given the
            start position of each token's block.
    """

    advance: Callable
    top: Callable
    visual: Callable


def _block_table(
    types: torch.Tensor, valid: torch.Tensor, items: Sequence[VisualItems], merge: int
) -> tuple[Blocks, Tokens, torch.Tensor] | None:
    """Blocks and visual tokens, or ``None`` when the placeholders do not match the grids one to one."""
    device = types.device
    flat_types, flat_valid = types.reshape(-1), valid.reshape(-1)
    grids, intervals, block_of, local, masks = [], [], [], [], []
    offset = 0
    for it in items:
        is_m = flat_valid & (flat_types == it.modality)
        if not it.grids:
            if bool(is_m.any()):
                return None
            continue
        grid = torch.tensor(it.grids, dtype=torch.long, device=device)
        if bool((grid[:, 1:] % merge != 0).any()):
            return None
        grid = torch.cat([grid[:, :1], grid[:, 1:] // merge], dim=1)
        size = grid.prod(-1)
        ends = size.cumsum(0)
        rank = is_m.long().cumsum(0) - 1
        if int(rank[-1]) + 1 != int(ends[-1]):
            return None
        item = torch.searchsorted(ends, rank[is_m], right=True)
        grids.append(grid)
        intervals.append(torch.tensor([float(i) for i in it.intervals], dtype=torch.float32, device=device))
        block_of.append(item + offset)
        local.append(rank[is_m] - (ends - size)[item])
        masks.append(is_m)
        offset += len(it.grids)
    empty = torch.zeros(0, dtype=torch.long, device=device)
    is_visual = torch.stack(masks).any(0) if masks else torch.zeros_like(flat_valid)
    order = torch.cat([empty, *[m.nonzero().squeeze(1) for m in masks]]).argsort()  # tokens back in batch order
    block = torch.cat([empty, *block_of])[order]
    j = torch.cat([empty, *local])[order]
    grid = torch.cat([empty.view(0, 3), *grids])
    flat_index = is_visual.nonzero().squeeze(1)
    first = torch.zeros(len(grid), dtype=torch.long, device=device).scatter_reduce(0, block, flat_index, "amin", include_self=False)
    last = torch.zeros(len(grid), dtype=torch.long, device=device).scatter_reduce(0, block, flat_index, "amax", include_self=False)
    length = types.shape[1]
    if bool((last - first + 1 != grid.prod(-1)).any() | (first // length != last // length).any()):
        return None  # a block split by text, padding or a row end
    _, h, w = grid[block].unbind(-1)
    tokens = Tokens(block, j, j // (h * w), (j // w) % h, j % w)
    interval = torch.cat([empty.float(), *intervals])
    return Blocks(grid, interval, first // length), tokens, is_visual.view_as(types)


def batch_positions(
    designs: Sequence[str],
    batch_designs: Sequence[BatchDesign],
    mm_token_type_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    items: Sequence[VisualItems],
    spatial_merge_size: int,
    options,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Positions ``(3K, B, L)`` and ``rope_deltas`` ``(B, K)`` of K designs, as :func:`~mmrope_hf.positions.
    build_positions` computes them, or ``None`` when the input needs the reference path."""
    types = mm_token_type_ids
    valid = attention_mask.bool() if attention_mask is not None else torch.ones_like(types, dtype=torch.bool)
    table = _block_table(types, valid, items, spatial_merge_size)
    if table is None:
        return None
    blocks, tokens, is_visual = table
    batch, length = types.shape
    compact = valid.long().cumsum(1) - 1
    counts = valid.sum(1)
    flat_visual = is_visual.reshape(-1)
    size = blocks.size
    last_index = torch.zeros(len(size), dtype=torch.long, device=types.device).scatter_reduce(
        0, tokens.block, flat_visual.nonzero().squeeze(1), "amax"
    )
    sets, deltas = [], []
    for design in batch_designs:
        advance = design.advance(blocks, tokens, options)
        extra = torch.zeros(batch * length, dtype=advance.dtype, device=types.device)
        extra[last_index] = advance - size.to(advance.dtype)
        extra = extra.view(batch, length)
        done = extra.cumsum(1) - extra  # what finished blocks before each token added beyond their size
        base = compact.to(advance.dtype) + done
        flat_base = base.reshape(-1)
        start = flat_base[flat_visual] - tokens.j.to(advance.dtype)
        visual = design.visual(start, tokens, blocks, options)
        out = flat_base.expand(3, -1).clone().to(visual.dtype)
        out[:, flat_visual] = visual
        out = torch.where(valid.reshape(-1), out, torch.zeros_like(out)).view(3, batch, length)
        block_start = torch.zeros(len(size), dtype=start.dtype, device=types.device).scatter_reduce(0, tokens.block, start, "amin", include_self=False)
        top = torch.zeros(batch, dtype=start.dtype, device=types.device).scatter_reduce(
            0, blocks.row, block_start + design.top(blocks, tokens, options).to(start.dtype), "amax", include_self=False
        )
        following = counts.to(advance.dtype) + extra.sum(1)
        deltas.append(torch.maximum(following, top.to(following.dtype)) - counts.to(following.dtype))
        sets.append(out)
    dtype = torch.float32 if any(s.dtype.is_floating_point for s in sets) else torch.long
    positions = torch.cat([s.to(dtype) for s in sets])
    return positions, torch.stack(deltas, dim=1).to(dtype)
