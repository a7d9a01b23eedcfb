"""Loop-free position building over a whole batch: the fast path behind ``get_rope_index``.

No Python loop over tokens, rows or visual items: every visual token finds its block and its (g, r, c) inside
it from cumulative sums and ``searchsorted``, and the running start position of every block comes from a
cumulative sum of per-block advances along each row. A design opts in by giving a :class:`BatchDesign`; the
per-row functions in :mod:`mmrope_hf.positions.design` stay the reference (the tests compare the two), and the
builder falls back to them for designs without a batch form and for inputs it cannot lay out (it then raises
the reference's detailed error).

Host reads: only the grid tables (a few numbers per image) and the validation flags; nothing of size L.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from mmrope_hf.positions.layout import VisualItems


@dataclass(frozen=True)
class Blocks:
    """Every visual block of the batch: ``grid`` (N, 3) merged (T, H, W), ``interval`` (N,) float32, and the flat
    (row * L + column) indices of its ``first`` and ``last`` tokens."""

    grid: torch.Tensor
    interval: torch.Tensor
    first: torch.Tensor
    last: torch.Tensor

    @property
    def size(self) -> torch.Tensor:
        return self.grid.prod(-1)


@dataclass(frozen=True)
class Tokens:
    """Every visual token: its flat ``index`` in the batch, its ``block``, its raster index ``j`` in the block,
    and (``g``, ``r``, ``c``) = (temporal group, row, column)."""

    index: torch.Tensor
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
) -> tuple[Blocks, Tokens] | None:
    """Blocks and visual tokens, or ``None`` when the placeholders do not match the grids one to one.

    Within a modality, tokens in batch order fill the grids in order, so token k of a modality belongs to the
    block whose cumulative size first exceeds k; a block must then be one unbroken run within one row.
    """
    device, length = types.device, types.shape[1]
    parts = []
    for it in items:
        index = (valid & (types == it.modality)).view(-1).nonzero().squeeze(1)
        if not it.grids:
            if index.numel():
                return None
            continue
        grid = torch.tensor(it.grids, dtype=torch.long, device=device)
        if bool((grid[:, 1:] % merge).any()):
            return None
        grid[:, 1:] //= merge
        size = grid.prod(-1)
        ends = size.cumsum(0)
        if index.numel() != int(ends[-1]):
            return None
        first, last = index[ends - size], index[ends - 1]
        interval = torch.tensor([float(i) for i in it.intervals], dtype=torch.float32, device=device)
        parts.append((grid, interval, first, last, size, index))
    if not parts:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return Blocks(empty.view(0, 3), empty.float(), empty, empty), Tokens(*[empty] * 6)
    grid, interval, first, last, size, index = (torch.cat(p) if len(p) > 1 else p[0] for p in zip(*parts, strict=True))
    if bool(((last - first + 1 != size) | (first // length != last // length)).any()):
        return None  # a block split by text, padding or a row end
    block = torch.repeat_interleave(torch.arange(len(size), device=device), size)
    j = torch.arange(len(index), device=device) - (size.cumsum(0) - size).repeat_interleave(size)
    _, h, w = grid[block].unbind(-1)
    rows = j // w  # rows counted over the whole block: g * h + r
    g = rows // h
    return Blocks(grid, interval, first, last), Tokens(index, block, j, g, rows - g * h, j - rows * w)


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
    blocks, tokens = table
    batch, length = types.shape
    compact = valid.long().cumsum(1) - 1
    counts = valid.sum(1)
    rows = blocks.first // length
    sets, deltas = [], []
    for design in batch_designs:
        advance = design.advance(blocks, tokens, options)
        extra = torch.zeros(batch * length, dtype=advance.dtype, device=types.device)
        extra[blocks.last] = advance - blocks.size.to(advance.dtype)
        extra = extra.view(batch, length)
        base = (compact.to(advance.dtype) + extra.cumsum(1) - extra).view(-1)  # + what finished blocks added
        start = base[tokens.index] - tokens.j.to(advance.dtype)
        visual = design.visual(start, tokens, blocks, options)
        out = base.to(visual.dtype).expand(3, -1).clone()
        out[:, tokens.index] = visual
        out = out.view(3, batch, length).masked_fill_(~valid, 0)
        block_top = base[blocks.first] + design.top(blocks, tokens, options).to(base.dtype)
        top = torch.zeros(batch, dtype=base.dtype, device=types.device).scatter_reduce(
            0, rows, block_top, "amax", include_self=False
        )
        following = counts.to(base.dtype) + extra.sum(1)
        deltas.append(torch.maximum(following, top) - counts.to(base.dtype))
        sets.append(out)
    dtype = torch.float32 if any(s.dtype.is_floating_point for s in sets) else torch.long
    positions = sets[0].to(dtype) if len(sets) == 1 else torch.cat([s.to(dtype) for s in sets])
    return positions, torch.stack(deltas, dim=1).to(dtype)
