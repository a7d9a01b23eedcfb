"""Loop-free position building over a whole batch: the fast path behind ``get_rope_index``.

No Python loop over tokens, rows or visual items: every visual token gets its block and its (g, r, c) from
``repeat`` over per-block and per-row tables, and the running start position of every block comes from one
cumulative sum along each row. A design opts in by giving a :class:`BatchDesign`; the per-row functions in
:mod:`mmrope_hf.positions.design` stay the reference (the tests compare the two), and the builder falls back to
them for designs without a batch form and for inputs it cannot lay out (it then raises the reference's detailed
error).

The same code runs on two array libraries, through :class:`ArrayOps`:

- **numpy on the host** (:data:`HOST`), for CPU tensors: numpy has no intra-op thread pool. torch splits any op
  over more than ~32k elements across its OpenMP threads, and on a machine whose cores are busy each such
  parallel region waits until the scheduler runs every worker thread: a few microseconds on an idle machine, a
  scheduler time slice (4-40 ms measured) when other processes hold the cores, so a builder of a few dozen ops
  became 50x slower beside vLLM's CPU engines. numpy's per-op overhead is also ~5x lower than torch's (~1 us).
- **torch on the tensors' device** (:class:`TorchOps`) for accelerators, and while ``torch.compile`` traces.

Host reads: only the grid tables (a few numbers per image) and the validation flags; nothing of size L.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from mmrope_hf.positions.layout import VisualItems


class ArrayOps:
    """The array operations the batch builder and the :class:`BatchDesign` forms use, for numpy or torch."""

    f32: Any
    f64: Any
    i64: Any
    stack: Callable
    maximum: Callable
    minimum: Callable
    where: Callable
    atan2: Callable
    hypot: Callable
    cos: Callable
    sin: Callable

    def arange(self, n: int) -> Any:
        raise NotImplementedError

    def asarray(self, data: Any, dtype: Any) -> Any:
        """A host numpy array (the grid tables) or list, on this library's device."""
        raise NotImplementedError

    def zeros(self, shape: int | tuple[int, ...], dtype: Any) -> Any:
        raise NotImplementedError

    def full(self, n: int, value: float, dtype: Any) -> Any:
        raise NotImplementedError

    def cast(self, x: Any, dtype: Any) -> Any:
        raise NotImplementedError

    def cumsum(self, x: Any, axis: int) -> Any:
        raise NotImplementedError

    def repeat(self, x: Any, counts: Any, total: int) -> Any:
        """Each column of ``x`` (1-D or 2-D) repeated ``counts`` (host numpy) times; ``total`` = counts.sum()."""
        raise NotImplementedError

    def rows3(self, x: Any) -> Any:
        """``x`` (M,) as three equal rows (3, M), a view."""
        raise NotImplementedError

    def amax0(self, x: Any) -> Any:
        raise NotImplementedError

    def amin0(self, x: Any) -> Any:
        raise NotImplementedError

    def per_block(self, values: Any, blocks: Blocks, tokens: Tokens, reduce: str) -> Any:
        """``reduce`` ("amax" / "amin") of per-token ``values`` over each block, shape (N,)."""
        raise NotImplementedError

    def flat_nonzero(self, mask: Any) -> Any:
        raise NotImplementedError

    def concat(self, arrays: list) -> Any:
        raise NotImplementedError

    def owned(self, x: Any) -> Any:
        """``x`` as a contiguous array that owns its memory (what the builder returns)."""
        raise NotImplementedError

    def row_max(self, values: Any, rows: Any, batch: int) -> Any:
        """Per row of the batch, the largest of ``values`` whose ``rows`` entry is that row, else 0; (B,)."""
        raise NotImplementedError


_GRAIN = 32768  # torch runs an elementwise op over fewer elements than at::internal::GRAIN_SIZE on one thread


def _serial_torch(op: Callable, *arrays: np.ndarray) -> np.ndarray:
    """A torch elementwise op on numpy float64 arrays, without copies, in chunks small enough to stay on the
    calling thread. torch's float64 trigonometry is vectorised (SLEEF), ~10x faster than numpy's."""
    n = arrays[0].shape[0]
    if n <= _GRAIN:
        return op(*(torch.from_numpy(a) for a in arrays)).numpy()
    out = np.empty(n, dtype=np.float64)
    result = torch.from_numpy(out)
    for lo in range(0, n, _GRAIN):
        op(*(torch.from_numpy(a[lo : lo + _GRAIN]) for a in arrays), out=result[lo : lo + _GRAIN])
    return out


class NumpyOps(ArrayOps):
    f32, f64, i64 = np.float32, np.float64, np.int64
    stack, maximum, minimum, where = staticmethod(np.stack), np.maximum, np.minimum, staticmethod(np.where)

    @staticmethod
    def atan2(y, x):
        return _serial_torch(torch.atan2, y, x)

    @staticmethod
    def hypot(x, y):
        return _serial_torch(torch.hypot, x, y)

    @staticmethod
    def cos(x):
        return _serial_torch(torch.cos, x)

    @staticmethod
    def sin(x):
        return _serial_torch(torch.sin, x)

    def arange(self, n):
        return np.arange(n, dtype=np.int64)

    def asarray(self, data, dtype):
        return np.asarray(data, dtype=dtype)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def full(self, n, value, dtype):
        return np.full(n, value, dtype=dtype)

    def cast(self, x, dtype):
        return x.astype(dtype, copy=False)

    def cumsum(self, x, axis):
        return np.cumsum(x, axis=axis)

    def repeat(self, x, counts, total):
        return np.repeat(x, counts, axis=-1)

    def rows3(self, x):
        return np.broadcast_to(x, (3, x.shape[-1]))

    def amax0(self, x):
        return x.max(0)

    def amin0(self, x):
        return x.min(0)

    def per_block(self, values, blocks, tokens, reduce):
        ufunc = np.maximum if reduce == "amax" else np.minimum
        return ufunc.reduceat(values, blocks.offset)  # every block is one run of >= 1 tokens, in block order

    def flat_nonzero(self, mask):
        return np.flatnonzero(mask)

    def concat(self, arrays):
        return np.concatenate(arrays)

    def owned(self, x):
        return x if x.flags.c_contiguous and x.flags.writeable else np.array(x)

    def row_max(self, values, rows, batch):
        out = np.zeros(batch, dtype=values.dtype)
        np.maximum.at(out, rows, values)  # values >= 1 here (a block's top lies past its start >= 0)
        return out


class TorchOps(ArrayOps):
    f32, f64, i64 = torch.float32, torch.float64, torch.long
    stack, maximum, minimum, where = staticmethod(torch.stack), torch.maximum, torch.minimum, staticmethod(torch.where)
    atan2, hypot, cos, sin = torch.atan2, torch.hypot, torch.cos, torch.sin

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def arange(self, n):
        return torch.arange(n, device=self.device)

    def asarray(self, data, dtype):
        return torch.as_tensor(data, dtype=dtype).to(self.device, non_blocking=True)

    def zeros(self, shape, dtype):
        return torch.zeros(shape, dtype=dtype, device=self.device)

    def full(self, n, value, dtype):
        return torch.full((n,), value, dtype=dtype, device=self.device)

    def cast(self, x, dtype):
        return x.to(dtype)

    def cumsum(self, x, axis):
        return x.cumsum(axis)

    def repeat(self, x, counts, total):
        counts = self.asarray(counts, torch.long)
        return torch.repeat_interleave(x, counts, dim=x.ndim - 1, output_size=total)

    def rows3(self, x):
        return x.expand(3, -1)

    def amax0(self, x):
        return x.amax(0)

    def amin0(self, x):
        return x.amin(0)

    def per_block(self, values, blocks, tokens, reduce):
        return torch.zeros(len(blocks.grid), dtype=values.dtype, device=values.device).scatter_reduce(
            0, tokens.block, values, reduce, include_self=False
        )

    def flat_nonzero(self, mask):
        return mask.reshape(-1).nonzero().squeeze(1)

    def concat(self, arrays):
        return torch.cat(arrays)

    def owned(self, x):
        return x.contiguous()

    def row_max(self, values, rows, batch):
        out = torch.zeros(batch, dtype=values.dtype, device=values.device)
        return out.scatter_reduce(0, rows, values, "amax", include_self=False)


HOST = NumpyOps()


@dataclass(frozen=True)
class Blocks:
    """Every visual block of the batch: ``grid`` (N, 3) merged (T, H, W), ``interval`` (N,) float32, the flat
    (row * L + column) indices of its ``first`` and ``last`` tokens, and ``size`` (its token count); ``xp`` the
    array operations of these arrays. ``offset`` (where each block starts in the list of visual tokens) and
    ``counts`` (= size) are host numpy arrays."""

    grid: Any
    interval: Any
    first: Any
    last: Any
    size: Any
    offset: np.ndarray
    counts: np.ndarray
    frames: np.ndarray
    xp: ArrayOps
    memo: dict = field(default_factory=dict)  # what a design computes once per build (keyed by its name)

    @property
    def temporal(self) -> bool:
        """Whether a block has more than one temporal group (else every token's g is 0)."""
        return bool((self.frames > 1).any())


@dataclass(frozen=True)
class Tokens:
    """Every visual token: its flat ``index`` in the batch, its ``block``, its raster index ``j`` in the block,
    and (``g``, ``r``, ``c``) = (temporal group, row, column)."""

    index: Any
    block: Any
    j: Any
    g: Any
    r: Any
    c: Any


@dataclass(frozen=True)
class BatchDesign:
    """A position design in batch form, written against ``blocks.xp`` (numpy or torch).

    Attributes:
        advance: ``(blocks, tokens, options) -> (N,)`` how far the running position moves over each block.
        top: ``(blocks, tokens, options) -> (N,)`` one past the block's largest position, relative to its start
            (used for ``rope_deltas``, which transformers takes from max(position) + 1).
        visual: ``(start (M,), tokens, blocks, options) -> (3, M)`` positions of the visual tokens, given the
            start position of each token's block.
        floating: the design's positions are floats (float64 in the batch form, float32 once built).
    """

    advance: Callable
    top: Callable
    visual: Callable
    floating: bool = False


def _grid_table(items: Sequence[VisualItems], merge: int):
    """Host tables of the blocks, in token order (modality after modality): merged grids (N, 3), intervals and
    sizes, or ``None`` when a grid does not divide by the merge or holds no token."""
    grids = [g for it in items for g in it.grids]
    grid = np.array(grids, dtype=np.int64).reshape(-1, 3)
    if (grid[:, 1:] % merge).any():
        return None
    grid[:, 1:] //= merge
    size = grid.prod(-1)
    if (size <= 0).any():
        return None
    interval = np.array([float(i) for it in items for i in it.intervals], dtype=np.float32)
    return grid, interval, size


def _block_table(
    xp: ArrayOps, types: Any, valid: Any | None, items: Sequence[VisualItems], merge: int, length: int
) -> tuple[Blocks, Tokens] | None:
    """Blocks and visual tokens, or ``None`` when the placeholders do not match the grids one to one.

    Within a modality, tokens in batch order fill the grids in order, so token k of a modality belongs to the
    block whose cumulative size first exceeds k; a block must then be one unbroken run within one row.
    """
    host = _grid_table(items, merge)
    if host is None:
        return None
    grid, interval, size = host
    indices, used = [], 0
    for it in items:
        mask = types == it.modality
        index = xp.flat_nonzero(mask if valid is None else mask & valid)
        count = int(size[used : used + len(it.grids)].sum())
        if index.shape[0] != count:
            return None
        indices.append(index)
        used += len(it.grids)
    nonempty = [i for i in indices if i.shape[0]]
    ends = np.cumsum(size)
    offset, total = ends - size, int(ends[-1]) if len(ends) else 0
    if not nonempty:
        index = xp.zeros(0, xp.i64)
    else:
        index = nonempty[0] if len(nonempty) == 1 else xp.concat(nonempty)
    first, last = index[xp.asarray(offset, xp.i64)], index[xp.asarray(ends - 1, xp.i64)]
    bad = (last - first + 1 != xp.asarray(size, xp.i64)) | (first // length != last // length)
    if bool(bad.any()):
        return None  # a block split by text, padding or a row end
    # rows of blocks (one per temporal group and row: g * H + r), then tokens from the rows
    frames, height, width = grid[:, 0], grid[:, 1], grid[:, 2]
    nrows = frames * height
    row_block = np.repeat(np.arange(len(grid)), nrows)
    row_start = np.cumsum(nrows) - nrows
    rho = np.arange(int(nrows.sum())) - np.repeat(row_start, nrows)
    row_h, row_w = height[row_block], width[row_block]
    row_g = rho // row_h
    table = np.stack([row_block, np.cumsum(row_w) - row_w, rho - row_g * row_h, row_g, rho * row_w])
    block, first_of_row, r, g, j_of_row = xp.repeat(xp.asarray(table, xp.i64), row_w, total)
    c = xp.arange(total) - first_of_row
    blocks = Blocks(
        xp.asarray(grid, xp.i64),
        xp.asarray(interval, xp.f32),
        first,
        last,
        xp.asarray(size, xp.i64),
        offset,
        size,
        frames,
        xp,
    )
    return blocks, Tokens(index, block, j_of_row + c, g, r, c)


def _host_arrays(mm_token_type_ids: torch.Tensor, attention_mask: torch.Tensor | None):
    types = mm_token_type_ids.detach().numpy()
    valid = None if attention_mask is None else attention_mask.detach().cpu().numpy() != 0
    if valid is not None and valid.all():
        valid = None
    return types.reshape(-1), None if valid is None else valid.reshape(-1)


def on_host(mm_token_type_ids: torch.Tensor) -> bool:
    """Whether the numpy path applies: CPU tensors, outside ``torch.compile`` tracing."""
    return mm_token_type_ids.device.type == "cpu" and not torch.compiler.is_compiling()


def batch_positions(
    designs: Sequence[str],
    batch_designs: Sequence[BatchDesign],
    mm_token_type_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    items: Sequence[VisualItems],
    spatial_merge_size: int,
    options,
    *,
    host: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Positions ``(3K, B, L)`` and ``rope_deltas`` ``(B, K)`` of K designs, as :func:`~mmrope_hf.positions.
    build_positions` computes them, or ``None`` when the input needs the reference path.

    ``host``: build with numpy (``True``) or torch on the tensors' device (``False``); default :func:`on_host`.
    """
    batch, length = mm_token_type_ids.shape
    if host is None:
        host = on_host(mm_token_type_ids)
    if host:
        types, valid = _host_arrays(mm_token_type_ids, attention_mask)
        xp: ArrayOps = HOST
    else:
        device = mm_token_type_ids.device
        types = mm_token_type_ids.reshape(-1)
        valid = None if attention_mask is None else attention_mask.reshape(-1).to(device).bool()
        xp = TorchOps(device)
    built = _build(xp, batch_designs, types, valid, items, spatial_merge_size, options, batch, length)
    if built is None:
        return None
    positions, deltas = built
    if host:
        return torch.from_numpy(positions), torch.from_numpy(deltas)
    return positions, deltas


def _build(xp: ArrayOps, batch_designs, types, valid, items, merge, options, batch: int, length: int):
    table = _block_table(xp, types, valid, items, merge, length)
    if table is None:
        return None
    blocks, tokens = table
    steps = xp.cast(valid, xp.i64) if valid is not None else None
    rows = blocks.first // length
    sets, deltas = [], []
    for design in batch_designs:
        if len(blocks.size):
            advance = design.advance(blocks, tokens, options)
            dtype = advance.dtype
        else:  # text only: the design's dtype without calling it (it reduces over blocks)
            advance, dtype = None, xp.f64 if design.floating else xp.i64
        # lead[b, p]: 1 for a real token at p, plus what the block that ended at p - 1 adds beyond its size; its
        # cumulative sum is the position of every token (minus 1), and its last column the position that follows
        lead = xp.zeros((batch, length + 1), dtype)
        lead[:, :length] = 1 if steps is None else xp.cast(steps, dtype).reshape(batch, length)
        flat = lead.reshape(-1)
        if advance is not None:
            flat[blocks.last + rows + 1] += advance - xp.cast(blocks.size, dtype)
        running = xp.cumsum(lead, 1)
        base = (running[:, :length] - 1).reshape(-1)
        following = running[:, length]
        counts = xp.full(batch, length, dtype) if steps is None else xp.cast(steps.reshape(batch, length).sum(1), dtype)
        if steps is not None:
            base = xp.where(valid, base, 0)
        if advance is None:
            sets.append(xp.rows3(base).reshape(3, batch, length))
            deltas.append(following - counts)
            continue
        start = base[blocks.first]
        visual = design.visual(xp.repeat(start, blocks.counts, len(tokens.index)), tokens, blocks, options)
        out = xp.zeros((3, batch * length), visual.dtype)
        out[:] = base
        out[:, tokens.index] = visual
        block_top = start + xp.cast(design.top(blocks, tokens, options), dtype)
        top = xp.row_max(block_top, rows, batch)
        deltas.append(xp.maximum(following, top) - counts)
        sets.append(out.reshape(3, batch, length))
    dtype = xp.i64 if all(s.dtype == xp.i64 for s in sets) else xp.f32
    positions = xp.cast(sets[0], dtype) if len(sets) == 1 else xp.concat([xp.cast(s, dtype) for s in sets])
    return xp.owned(positions), xp.owned(xp.cast(xp.stack(deltas, 1), dtype))
