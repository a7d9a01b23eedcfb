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

    def copy(self, x: Any) -> Any:
        raise NotImplementedError

    def put(self, out: Any, index: Any, values: Any) -> None:
        """``out[:, index] = values`` (cast to out's dtype)."""
        raise NotImplementedError

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
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


_GRAIN = 32768  # at::internal::GRAIN_SIZE: TensorIterator ops (atan2, hypot, cumsum rows) over fewer run serially
_VML_GRAIN = 2048  # cos and sin go through at::vml, which splits anything over 2048 elements across threads


def _serial_torch(op: Callable, *arrays: np.ndarray, grain: int = _GRAIN) -> np.ndarray:
    """A torch elementwise op on numpy float64 arrays, without copies, in chunks of at most ``grain`` elements so
    that it stays on the calling thread. torch's float64 trigonometry is vectorised (SLEEF), ~10x faster than
    numpy's; the ring cache of Circle-RoPE's host path computes it once per image shape anyway."""
    n = arrays[0].shape[0]
    if n <= grain:
        return op(*(torch.from_numpy(a) for a in arrays)).numpy()
    out = np.empty(n, dtype=np.float64)
    result = torch.from_numpy(out)
    for lo in range(0, n, grain):
        op(*(torch.from_numpy(a[lo : lo + grain]) for a in arrays), out=result[lo : lo + grain])
    return out


class NumpyOps(ArrayOps):
    """numpy, with the array methods where numpy's functions of the same name cost 2-4x more per call."""

    f32, f64, i64 = np.float32, np.float64, np.int64
    maximum, minimum, where = np.maximum, np.minimum, staticmethod(np.where)

    @staticmethod
    def stack(arrays, axis=0):
        return np.array(arrays) if axis == 0 else np.stack(arrays, axis)  # equal 1-D shapes: np.array stacks

    @staticmethod
    def atan2(y, x):
        return _serial_torch(torch.atan2, y, x)

    @staticmethod
    def hypot(x, y):
        return _serial_torch(torch.hypot, x, y)

    @staticmethod
    def cos(x):
        return _serial_torch(torch.cos, x, grain=_VML_GRAIN)

    @staticmethod
    def sin(x):
        return _serial_torch(torch.sin, x, grain=_VML_GRAIN)

    def arange(self, n):
        return np.arange(n, dtype=np.int64)

    def asarray(self, data, dtype):
        return np.asarray(data, dtype=dtype)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def full(self, n, value, dtype):
        return np.full(n, value, dtype=dtype)

    def cast(self, x, dtype):
        return x.astype(dtype, copy=False)

    def cumsum(self, x, axis):
        """Along the rows of a 2-D array, in torch (~4x faster than numpy's scalar loop), a block of rows at a time
        so that no call reaches torch's intra-op pool."""
        if x.size < 4096:
            return x.cumsum(axis)
        assert axis == 1 and x.ndim == 2
        out = np.empty_like(x)
        rows = max(1, _GRAIN // max(1, x.shape[1]))
        source, target = torch.from_numpy(x), torch.from_numpy(out)
        for lo in range(0, x.shape[0], rows):
            torch.cumsum(source[lo : lo + rows], 1, out=target[lo : lo + rows])
        return out

    def copy(self, x):
        return x.copy()

    def put(self, out, index, values):
        for k in range(len(out)):  # row by row: 2x faster than one 2-D fancy assignment
            out[k, index] = values[k]

    def repeat(self, x, counts, total):
        return x.repeat(counts, axis=x.ndim - 1)

    def rows3(self, x):
        return np.array((x, x, x))

    def amax0(self, x):
        return x.max(0)

    def amin0(self, x):
        return x.min(0)

    def per_block(self, values, blocks, tokens, reduce):
        ufunc = np.maximum if reduce == "amax" else np.minimum
        return ufunc.reduceat(values, blocks.offset)  # every block is one run of >= 1 tokens, in block order

    def flat_nonzero(self, mask):
        return mask.nonzero()[0]  # mask is 1-D here

    def concat(self, arrays):
        return np.concatenate(arrays)

    def owned(self, x):
        return x if x.flags.c_contiguous and x.flags.writeable else np.array(x, order="C")

    def row_max(self, values, rows, batch):
        if batch == 1:
            return values.max(keepdims=True)  # every block is in row 0 (values >= 1 > the empty row's 0)
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

    def empty(self, shape, dtype):
        return torch.empty(shape, dtype=dtype, device=self.device)

    def full(self, n, value, dtype):
        return torch.full((n,), value, dtype=dtype, device=self.device)

    def cast(self, x, dtype):
        return x.to(dtype)

    def cumsum(self, x, axis):
        return x.cumsum(axis)

    def copy(self, x):
        return x.clone()

    def put(self, out, index, values):
        out[:, index] = values.to(out.dtype)

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
    temporal: bool  # a block has more than one temporal group (else every token's g is 0)
    xp: ArrayOps
    memo: dict = field(default_factory=dict)  # what a design computes once per build (keyed by its name)


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
    if any(t <= 0 or h <= 0 or w <= 0 or h % merge or w % merge for t, h, w in grids):
        return None
    grid = np.array([(t, h // merge, w // merge) for t, h, w in grids], dtype=np.int64).reshape(-1, 3)
    size = grid.prod(-1)
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
        count = sum(t * (h // merge) * (w // merge) for t, h, w in it.grids)
        if index.shape[0] != count:
            return None
        indices.append(index)
        used += len(it.grids)
    nonempty = [i for i in indices if i.shape[0]]
    ends = size.cumsum()
    offset = ends - size
    if not nonempty:
        index = xp.zeros(0, xp.i64)
    else:
        index = nonempty[0] if len(nonempty) == 1 else xp.concat(nonempty)
    first, last = index[xp.asarray(offset, xp.i64)], index[xp.asarray(ends - 1, xp.i64)]
    bad = (last - first + 1 != xp.asarray(size, xp.i64)) | (first // length != last // length)
    if bad.sum():
        return None  # a block split by text, padding or a row end
    return block_tables(xp, grid, interval, index, first, last)


def block_tables(
    xp: ArrayOps, grid: np.ndarray, interval: np.ndarray, index: Any = None, first: Any = None, last: Any = None
) -> tuple[Blocks, Tokens]:
    """:class:`Blocks` and :class:`Tokens` of merged host grids (N, 3) with their host intervals (N,); ``index``,
    ``first`` and ``last`` are the tokens' places in the batch (``None``: not needed by the caller)."""
    frames, height, width = grid[:, 0], grid[:, 1], grid[:, 2]
    nrows = frames * height
    size = nrows * width
    ends = size.cumsum()
    total = int(ends[-1]) if len(ends) else 0
    # rows of blocks (one per temporal group and row: g * H + r), then tokens from the rows
    row_block = np.arange(len(grid)).repeat(nrows)
    rho = np.arange(len(row_block)) - (nrows.cumsum() - nrows).repeat(nrows)
    row_h, row_w = height[row_block], width[row_block]
    row_g = rho // row_h if int(frames.max(initial=1)) > 1 else np.zeros_like(rho)
    table = np.array((row_block, row_w.cumsum() - row_w, rho - row_g * row_h, row_g, rho * row_w))
    block, first_of_row, r, g, j_of_row = xp.repeat(xp.asarray(table, xp.i64), row_w, total)
    c = xp.arange(total) - first_of_row
    blocks = Blocks(
        xp.asarray(grid, xp.i64),
        xp.asarray(interval, xp.f32),
        first,
        last,
        xp.asarray(size, xp.i64),
        ends - size,
        size,
        frames,
        int(frames.max(initial=1)) > 1,
        xp,
    )
    return blocks, Tokens(index, block, j_of_row + c, g, r, c)


def _host_arrays(mm_token_type_ids: torch.Tensor, attention_mask: torch.Tensor | None):
    types = mm_token_type_ids.detach().numpy()
    valid = None if attention_mask is None else attention_mask.detach().cpu().numpy() != 0
    if valid is not None and np.count_nonzero(valid) == valid.size:
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
    any_blocks = len(blocks.counts) > 0
    dtype = xp.f32 if any(design.floating for design in batch_designs) else xp.i64  # what the reference returns
    positions = xp.empty((3 * len(batch_designs), batch * length), dtype)  # every row is written below
    # lead[b, p]: 1 for a real token at p, plus (per design) what the block that ended at p - 1 adds beyond its
    # size; its cumulative sum is the position of every token (minus 1), its last column the position that follows
    lead = xp.zeros((batch, length + 1), xp.i64)
    if valid is None:
        lead[:, :length] = 1
        counts = xp.full(batch, length, xp.i64)
    else:
        lead[:, :length] = xp.cast(valid, xp.i64).reshape(batch, length)
        counts = lead.sum(1)
    rows = blocks.first // length
    ends = blocks.last + rows + 1  # the column after each block's last token, in lead's flat layout
    deltas = []
    for k, design in enumerate(batch_designs):
        own = lead
        if any_blocks:
            advance = design.advance(blocks, tokens, options)
            own = xp.cast(lead, advance.dtype) if advance.dtype != lead.dtype else xp.copy(lead)
            own.reshape(-1)[ends] += advance - xp.cast(blocks.size, advance.dtype)
        elif design.floating:
            own = xp.cast(lead, xp.f64)
        running = xp.cumsum(own, 1)
        base = running[:, :length].reshape(-1) - 1
        following = running[:, length]
        if valid is not None:  # padded slots get 0
            base = base * valid if base.dtype == xp.i64 else xp.where(valid, base, 0.0)
        out = positions[3 * k : 3 * k + 3]
        out[:] = base
        if not any_blocks:
            deltas.append(following - counts)
            continue
        start = base[blocks.first]
        xp.put(
            out,
            tokens.index,
            design.visual(xp.repeat(start, blocks.counts, len(tokens.index)), tokens, blocks, options),
        )
        block_top = start + xp.cast(design.top(blocks, tokens, options), start.dtype)
        deltas.append(xp.maximum(following, xp.row_max(block_top, rows, batch)) - counts)
    return positions.reshape(-1, batch, length), xp.owned(xp.cast(xp.stack(deltas), dtype).T)
