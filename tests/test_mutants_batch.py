"""Tests that kill the mutants of mmrope_hf/positions/batch.py that survived the module's tests
(scripts/mutation.py batch; docs/mutation.md): the loop-free batch builder (batch_positions, numpy and torch) against
tests/reference/rope_reference and tests/reference/circle_reference on random and worked batches (the generator and
the check are in tests/test_mutants_mrope.py), and each array operation of NumpyOps / TorchOps on worked examples:
values, dtypes, the device of what TorchOps makes (meta tensors: a tensor made on the CPU instead fails to mix with
them), and the chunking the host path promises (no torch call over the intra-op grain)."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import test_mutants_mrope as common
import torch
from reference import circle_reference as cref
from reference import rope_reference as ref

import mmrope_hf
from mmrope_hf.positions import batch as batch_module
from mmrope_hf.positions.batch import (
    HOST,
    BatchDesign,
    TorchOps,
    _serial_torch,
    batch_positions,
    block_tables,
    on_host,
)
from mmrope_hf.positions.builder import position_options
from mmrope_hf.positions.design import PositionOptions
from mmrope_hf.positions.layout import IMAGE, VIDEO, visual_items
from mmrope_hf.positions.registry import POSITION_DESIGNS

META = torch.device("meta")
GRAIN, VML_GRAIN = 32768, 2048  # at::internal::GRAIN_SIZE and at::vml's split size (the module's docstring)


@pytest.fixture(autouse=True)
def _cold_ring_cache():
    """Circle-RoPE's host path caches its rings per frame shape; a mutation run forked from a warm process would
    never compute them with the mutated ops. Start every test cold."""
    from mmrope_hf.positions import circle

    circle.clear_ring_cache()
    yield
    circle.clear_ring_cache()


@pytest.mark.parametrize("seed", range(100, 124))
@pytest.mark.parametrize("advance", ["max", "spatial"])
@pytest.mark.parametrize("temporal_stride", [None, 0.75])
def test_batch_equals_the_reference(seed, advance, temporal_stride):
    common.check_against_reference(
        seed, ("mrope", "spatial-reset", "vanilla"), temporal_stride, advance, paths=("numpy", "torch")
    )


# --- worked batches, end to end ------------------------------------------------------------------------------------

# one row: 2 text, a 1 x 2 x 3 image, 1 text, a 2-group 2 x 2 video at step 1.5, 1 text (grids after the merge)
LAYOUT = [("text", 2), ("image", 1, 2, 3), ("text", 1), ("video", 2, 2, 2), ("text", 1)]
TYPES = [0, 0] + [IMAGE] * 6 + [0] + [VIDEO] * 8 + [0]
ITEMS = [visual_items(IMAGE, torch.tensor([[1, 4, 6]])), visual_items(VIDEO, torch.tensor([[2, 4, 4]]), [1.5])]


def _mrope_rows(pad_left: int, pad_right: int, design="mrope", stride=1.5):
    """(3, n + pads) reference positions of LAYOUT, padding at 0, and the row's delta."""
    ids, nxt = ref.positions(LAYOUT, design, stride)
    top = max(max(p) for p in ids) + 1
    rows = [(0, 0, 0)] * pad_left + ids + [(0, 0, 0)] * pad_right
    return torch.tensor(rows, dtype=torch.long).T, max(nxt, top) - len(ids)


def _designs(*names):
    return names, [POSITION_DESIGNS.get(name).batch for name in names]


@pytest.mark.parametrize("host", [True, False, None])
def test_worked_batch_without_attention_mask(host):
    """Two equal rows, no mask (every slot real): positions and deltas of mrope and vanilla; int64, contiguous."""
    tt = torch.tensor([TYPES, TYPES])
    items = [
        visual_items(IMAGE, torch.tensor([[1, 4, 6], [1, 4, 6]])),
        visual_items(VIDEO, torch.tensor([[2, 4, 4], [2, 4, 4]]), [1.5, 1.5]),
    ]
    names, designs = _designs("mrope", "vanilla")
    positions, deltas = batch_positions(names, designs, tt, None, items, 2, PositionOptions(), host=host)
    want, delta = _mrope_rows(0, 0)
    vanilla = torch.arange(len(TYPES)).expand(3, -1)
    assert positions.dtype == deltas.dtype == torch.long
    assert positions.shape == (6, 2, len(TYPES)) and deltas.shape == (2, 2)
    for b in range(2):
        assert torch.equal(positions[:3, b], want) and torch.equal(positions[3:, b], vanilla)
    assert deltas.tolist() == [[delta, 0], [delta, 0]]
    assert positions.is_contiguous()
    if host is False:
        assert deltas.is_contiguous()
    _, one = batch_positions(names[:1], designs[:1], tt, None, items, 2, PositionOptions(), host=host)
    assert one.tolist() == [[delta], [delta]] and one.is_contiguous()


def test_host_deltas_of_several_designs_are_contiguous():
    """The host path transposes (K, B) deltas to (B, K): the copy it returns must be C-ordered."""
    tt = torch.tensor([TYPES, TYPES])
    items = [
        visual_items(IMAGE, torch.tensor([[1, 4, 6], [1, 4, 6]])),
        visual_items(VIDEO, torch.tensor([[2, 4, 4], [2, 4, 4]]), [1.5, 1.5]),
    ]
    names, designs = _designs("mrope", "vanilla")
    _, deltas = batch_positions(names, designs, tt, None, items, 2, PositionOptions(), host=True)
    assert deltas.is_contiguous()


@pytest.mark.parametrize("host", [True, False])
@pytest.mark.parametrize("mask_dtype", [torch.long, torch.bool, torch.float32])
def test_worked_batch_with_padding(host, mask_dtype):
    """Row 0 left-padded by 2, row 1 all real (an all-ones row), both under an attention mask of any dtype."""
    tt = torch.tensor([[0, 0, *TYPES], [0, 0, *TYPES]])
    mask = torch.tensor([[0, 0] + [1] * len(TYPES), [1] * (len(TYPES) + 2)]).to(mask_dtype)
    items = [
        visual_items(IMAGE, torch.tensor([[1, 4, 6], [1, 4, 6]])),
        visual_items(VIDEO, torch.tensor([[2, 4, 4], [2, 4, 4]]), [1.5, 1.5]),
    ]
    # row 1: the two leading slots are real text tokens, so LAYOUT gets 4 leading text tokens
    ids1, nxt1 = ref.positions([("text", 4), *LAYOUT[1:]], "mrope", 1.5)
    names, designs = _designs("mrope")
    positions, deltas = batch_positions(names, designs, tt, mask, items, 2, PositionOptions(), host=host)
    want0, delta0 = _mrope_rows(2, 0)
    assert torch.equal(positions[:, 0], want0)
    assert torch.equal(positions[:, 1], torch.tensor(ids1).T)
    top1 = max(max(p) for p in ids1) + 1
    assert deltas.tolist() == [[delta0], [max(nxt1, top1) - len(ids1)]]
    assert positions.dtype == deltas.dtype == torch.long


@pytest.mark.parametrize("host", [True, False])
def test_text_only_batch(host):
    """No visual block at all: text positions count the real tokens; deltas 0 (they count real tokens only)."""
    tt = torch.zeros(2, 4, dtype=torch.long)
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    items = [visual_items(IMAGE, None), visual_items(VIDEO, None)]
    names, designs = _designs("mrope", "circle")
    options = position_options(mmrope_hf.resolve_config("circle", layers="all"))
    positions, deltas = batch_positions(names, designs, tt, mask, items, 2, options, host=host)
    row0, row1 = [0, 0, 1, 2], [0, 1, 2, 3]
    assert positions.dtype == torch.float32  # a floating design makes the whole result float32
    for k in range(6):
        assert positions[k].tolist() == [row0, row1]
    assert deltas.tolist() == [[0.0, 0.0], [0.0, 0.0]] and deltas.dtype == torch.float32
    positions, deltas = batch_positions(names[:1], designs[:1], tt, None, items, 2, options, host=host)
    assert positions.dtype == deltas.dtype == torch.long
    assert positions.tolist() == [[[0, 1, 2, 3]] * 2] * 3 and deltas.tolist() == [[0], [0]]


@pytest.mark.parametrize("host", [True, False])
def test_empty_grid_lists_with_visual_types_fall_back(host):
    """Placeholder tokens without grids (or grids without tokens): the builder gives up (None)."""
    names, designs = _designs("mrope")
    tt = torch.tensor([[0, IMAGE, IMAGE, IMAGE, IMAGE, 0]])
    items = [visual_items(IMAGE, None), visual_items(VIDEO, None)]
    assert batch_positions(names, designs, tt, None, items, 2, PositionOptions(), host=host) is None
    items = [visual_items(IMAGE, torch.tensor([[1, 4, 4]])), visual_items(VIDEO, None)]
    assert (
        batch_positions(
            names, designs, torch.zeros(1, 6, dtype=torch.long), None, items, 2, PositionOptions(), host=host
        )
        is None
    )


@pytest.mark.parametrize("host", [True, False])
@pytest.mark.parametrize(
    "grid",
    [(1, 3, 4), (1, 4, 3), (0, 4, 4), (1, 0, 4), (1, 4, 0), (1, -2, 4)],
)
def test_grids_that_do_not_merge_fall_back(host, grid):
    """A grid whose H or W does not divide by the merge, or with a side <= 0: None (the reference path's error)."""
    names, designs = _designs("mrope")
    tt = torch.tensor([[0, IMAGE, IMAGE, IMAGE, IMAGE, IMAGE, IMAGE, 0]])
    items = [visual_items(IMAGE, torch.tensor([grid])), visual_items(VIDEO, None)]
    assert batch_positions(names, designs, tt, None, items, 2, PositionOptions(), host=host) is None


@pytest.mark.parametrize("host", [True, False])
def test_blocks_broken_by_text_padding_or_row_end_fall_back(host):
    names, designs = _designs("mrope")
    items = [visual_items(IMAGE, torch.tensor([[1, 4, 4]])), visual_items(VIDEO, None)]
    options = PositionOptions()
    # split by text
    tt = torch.tensor([[0, IMAGE, IMAGE, 0, IMAGE, IMAGE, 0]])
    assert batch_positions(names, designs, tt, None, items, 2, options, host=host) is None
    # split by padding (the padded slot's type is IMAGE, the mask says it is not a token)
    tt = torch.tensor([[0, IMAGE, IMAGE, IMAGE, IMAGE, IMAGE, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 1, 1, 1]])
    assert batch_positions(names, designs, tt, mask, items, 2, options, host=host) is None
    # split by a row end: 2 tokens at the end of row 0, 2 at the start of row 1
    tt = torch.tensor([[0, 0, IMAGE, IMAGE], [IMAGE, IMAGE, 0, 0]])
    assert batch_positions(names, designs, tt, None, items, 2, options, host=host) is None
    # the same four tokens in one run: built
    tt = torch.tensor([[0, IMAGE, IMAGE, IMAGE, IMAGE, 0]])
    positions, deltas = batch_positions(names, designs, tt, None, items, 2, options, host=host)
    assert positions[:, 0].T.tolist() == [[0, 0, 0], [1, 1, 1], [1, 1, 2], [1, 2, 1], [1, 2, 2], [3, 3, 3]]
    assert deltas.tolist() == [[-2]]


def test_on_host():
    assert on_host(torch.zeros(2, dtype=torch.long)) is True
    assert on_host(torch.zeros(2, dtype=torch.long, device=META)) is False


def test_default_path_on_cpu_is_numpy(monkeypatch):
    """host=None on CPU tensors takes the numpy path (HOST), outside torch.compile."""
    seen = []
    real = batch_module._build

    def spy(xp, *args):
        seen.append(xp)
        return real(xp, *args)

    monkeypatch.setattr(batch_module, "_build", spy)
    names, designs = _designs("mrope")
    tt = torch.tensor([[0, IMAGE, IMAGE, IMAGE, IMAGE, 0]])
    items = [visual_items(IMAGE, torch.tensor([[1, 4, 4]])), visual_items(VIDEO, None)]
    batch_positions(names, designs, tt, None, items, 2, PositionOptions())
    batch_positions(names, designs, tt, None, items, 2, PositionOptions(), host=False)
    assert seen[0] is HOST and isinstance(seen[1], TorchOps) and seen[1].device == torch.device("cpu")


# --- Circle-RoPE (a floating design, the host trigonometry) against circle_reference ---------------------------------


CIRCLE_OPTIONS = [
    {},
    {"radius": "auto", "auto_radius": "l2"},
    {"radius": "auto-2", "alpha": 0.25, "move_to_positive": "auto"},
    {"move_to_origin": False, "move_to_positive": 1.5, "dff_rate": 0.3},
]


@pytest.mark.parametrize("host", [True, False])
@pytest.mark.parametrize("options", CIRCLE_OPTIONS)
@pytest.mark.parametrize("pad", [0, 2])
def test_circle_worked_row(host, options, pad):
    ids, nxt = cref.positions(LAYOUT, 1.5, **options)
    tt = torch.tensor([[0] * pad + TYPES])
    mask = None if pad == 0 else torch.tensor([[0] * pad + [1] * len(TYPES)])
    config = mmrope_hf.resolve_config("circle", layers="all", **options)
    names, designs = _designs("circle")
    positions, deltas = batch_positions(names, designs, tt, mask, ITEMS, 2, position_options(config), host=host)
    want = torch.zeros(3, len(TYPES) + pad, dtype=torch.float64)
    want[:, pad:] = torch.tensor(ids, dtype=torch.float64).T
    assert positions.dtype == deltas.dtype == torch.float32
    torch.testing.assert_close(positions[:, 0].double(), want, atol=2e-5, rtol=0)
    torch.testing.assert_close(
        deltas.double(), torch.tensor([[nxt - len(ids)]], dtype=torch.float64), atol=2e-5, rtol=0
    )


# --- NumpyOps: worked examples -------------------------------------------------------------------------------------


def test_numpy_constructors():
    assert HOST.arange(4).tolist() == [0, 1, 2, 3] and HOST.arange(4).dtype == np.int64
    got = HOST.asarray([1.7, 2.2], np.int64)
    assert got.dtype == np.int64 and got.tolist() == [1, 2]
    got = HOST.asarray(np.array([1, 2]), np.float32)
    assert got.dtype == np.float32
    got = HOST.zeros((2, 3), np.int64)
    assert got.dtype == np.int64 and got.shape == (2, 3) and not got.any()
    assert HOST.zeros(3, np.float32).dtype == np.float32
    got = HOST.empty((2, 3), np.int64)
    assert got.dtype == np.int64 and got.shape == (2, 3)
    assert HOST.empty((4,), np.float32).dtype == np.float32
    got = HOST.full(3, 2, np.float64)
    assert got.dtype == np.float64 and got.tolist() == [2.0, 2.0, 2.0]
    got = HOST.full(2, 1.5, np.float32)
    assert got.dtype == np.float32 and got.tolist() == [1.5, 1.5]


def test_numpy_cast_copy_concat_owned():
    x = np.array([1.5, -2.5])
    got = HOST.cast(x, np.int64)
    assert got.dtype == np.int64 and got.tolist() == [1, -2]
    y = HOST.copy(x)
    y[0] = 9.0
    assert x[0] == 1.5
    assert HOST.concat([np.array([1]), np.array([2, 3])]).tolist() == [1, 2, 3]
    base = np.arange(12).reshape(3, 4)
    view = base[:, ::2]  # neither C- nor F-contiguous
    got = HOST.owned(view)
    assert got.flags.c_contiguous and got.flags.owndata and got.tolist() == view.tolist()
    got[0, 0] = 100
    assert base[0, 0] == 0
    readonly = np.arange(3)
    readonly.setflags(write=False)
    got = HOST.owned(readonly)
    assert got.flags.writeable and got.tolist() == [0, 1, 2]
    fine = np.arange(3)
    assert HOST.owned(fine) is fine


def test_numpy_stack_put_repeat_rows3():
    a, b = np.array([1, 2]), np.array([3, 4])
    assert HOST.stack([a, b]).tolist() == [[1, 2], [3, 4]]
    assert HOST.stack([a, b], axis=1).tolist() == [[1, 3], [2, 4]]
    assert HOST.stack([a, b], 0).tolist() == [[1, 2], [3, 4]]
    out = np.zeros((3, 5), dtype=np.int64)
    HOST.put(out, np.array([1, 3]), np.array([[1.9, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert out.tolist() == [[0, 1, 0, 2, 0], [0, 3, 0, 4, 0], [0, 5, 0, 6, 0]]
    assert HOST.repeat(np.array([7, 8, 9]), np.array([2, 0, 1]), 3).tolist() == [7, 7, 9]
    got = HOST.repeat(np.array([[1, 2], [3, 4]]), np.array([1, 2]), 3)
    assert got.tolist() == [[1, 2, 2], [3, 4, 4]]
    got = HOST.rows3(np.array([1, 2]))
    assert got.tolist() == [[1, 2]] * 3


def test_numpy_reductions():
    x = np.array([[1, 5, -3], [4, 2, 0]])
    assert HOST.amax0(x).tolist() == [4, 5, 0]
    assert HOST.amin0(x).tolist() == [1, 2, -3]
    blocks, tokens = block_tables(HOST, np.array([[1, 1, 2], [1, 1, 3]]), np.ones(2, dtype=np.float32))
    values = np.array([3.0, 1.0, 5.0, -2.0, 4.0])
    assert HOST.per_block(values, blocks, tokens, "amax").tolist() == [3.0, 5.0]
    assert HOST.per_block(values, blocks, tokens, "amin").tolist() == [1.0, -2.0]
    assert HOST.flat_nonzero(np.array([False, True, False, True])).tolist() == [1, 3]
    got = HOST.row_max(np.array([3, 7]), np.array([0, 0]), 1)
    assert got.tolist() == [7]
    got = HOST.row_max(np.array([3, 7, 2, 5]), np.array([2, 0, 0, 2]), 4)
    assert got.tolist() == [7, 0, 5, 0] and got.dtype == np.int64
    got = HOST.row_max(np.array([1.5, 0.5]), np.array([1, 1]), 2)
    assert got.tolist() == [0.0, 1.5] and got.dtype == np.float64


@pytest.mark.parametrize("shape", [(2, 5), (3, 2000), (40, 1000), (2, 40000)])
def test_numpy_cumsum(shape):
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, size=shape)
    got = HOST.cumsum(x, 1)
    want = np.array([list(itertools.accumulate(row)) for row in x.tolist()])
    assert got.dtype == x.dtype and np.array_equal(got, want)


def test_numpy_cumsum_keeps_each_torch_call_under_the_grain(monkeypatch):
    """The host cumsum of a large (B, L) array runs in blocks of rows of at most GRAIN elements (a row longer
    than that alone); a small one is numpy's own."""
    calls = []
    real = torch.cumsum

    def spy(x, dim, out=None):
        calls.append((tuple(x.shape), dim))
        return real(x, dim, out=out)

    monkeypatch.setattr(torch, "cumsum", spy)
    x = np.ones((40, 1000), dtype=np.int64)
    got = HOST.cumsum(x, 1)
    assert np.array_equal(got, np.tile(np.arange(1, 1001), (40, 1)))
    assert calls == [((32, 1000), 1), ((8, 1000), 1)]
    calls.clear()
    x = np.ones((3, 40000), dtype=np.int64)
    got = HOST.cumsum(x, 1)
    assert np.array_equal(got, np.tile(np.arange(1, 40001), (3, 1)))
    assert calls == [((1, 40000), 1)] * 3
    calls.clear()
    HOST.cumsum(np.ones((2, 2047), dtype=np.int64), 1)
    assert calls == []
    HOST.cumsum(np.ones((2, 2048), dtype=np.int64), 1)
    assert calls == [((2, 2048), 1)]


# --- the host trigonometry: _serial_torch ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [7, GRAIN, 2 * GRAIN + 5])
def test_numpy_trigonometry_values(n):
    rng = np.random.default_rng(n)
    y, x = rng.normal(size=n), rng.normal(size=n)
    for got, want in (
        (HOST.atan2(y, x), np.arctan2(y, x)),
        (HOST.hypot(x, y), np.hypot(x, y)),
        (HOST.cos(x), np.cos(x)),
        (HOST.sin(x), np.sin(x)),
    ):
        assert got.dtype == np.float64 and got.shape == (n,)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert HOST.atan2(np.array([1.0]), np.array([0.0]))[0] == pytest.approx(math.pi / 2)
    assert HOST.hypot(np.array([3.0]), np.array([4.0]))[0] == pytest.approx(5.0)


def _chunk_spy(monkeypatch, name):
    calls = []
    real = getattr(torch, name)

    def spy(*args, out=None):
        calls.append(args[0].shape[0])
        return real(*args) if out is None else real(*args, out=out)

    monkeypatch.setattr(torch, name, spy)
    return calls


@pytest.mark.parametrize(
    ("name", "grain"), [("atan2", GRAIN), ("hypot", GRAIN), ("cos", VML_GRAIN), ("sin", VML_GRAIN)]
)
def test_numpy_trigonometry_stays_under_the_grain(monkeypatch, name, grain):
    """Each torch call of the host path handles at most the grain (so it stays on the calling thread)."""
    calls = _chunk_spy(monkeypatch, name)
    n = 2 * grain + 3
    x = np.linspace(0.1, 3.0, n)
    args = (x, x[::-1].copy()) if name in ("atan2", "hypot") else (x,)
    got = getattr(HOST, name)(*args)
    want = {"atan2": np.arctan2, "hypot": np.hypot, "cos": np.cos, "sin": np.sin}[name](*args)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert calls == [grain, grain, 3]
    calls.clear()
    getattr(HOST, name)(*(a[:grain].copy() for a in args))
    assert calls == [grain]
    calls.clear()
    getattr(HOST, name)(*(a[: grain + 1].copy() for a in args))
    assert calls == [grain, 1]


def test_serial_torch_in_chunks():
    y, x = np.arange(1.0, 11.0), np.arange(10.0, 0.0, -1.0)
    calls = []

    def op(a, b, out=None):
        calls.append((a.tolist(), b.tolist(), out is None))
        if out is None:
            return a * 10 + b
        torch.mul(a, 10, out=out)
        out.add_(b)
        return out

    got = _serial_torch(op, y, x, grain=4)
    assert got.dtype == np.float64 and got.tolist() == [a * 10 + b for a, b in zip(y, x, strict=True)]
    assert [c[0] for c in calls] == [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0]]
    assert [c[1] for c in calls] == [[10.0, 9.0, 8.0, 7.0], [6.0, 5.0, 4.0, 3.0], [2.0, 1.0]]
    assert all(not c[2] for c in calls)
    calls.clear()
    got = _serial_torch(op, y[:4], x[:4], grain=4)
    assert got.tolist() == [20.0, 29.0, 38.0, 47.0] and calls == [(y[:4].tolist(), x[:4].tolist(), True)]
    # a 1-D array wider than its first axis is not: only shape[0] counts (a 2-D input is never given; check 1-D)
    got = _serial_torch(torch.neg, np.arange(9.0), grain=2)
    assert got.tolist() == [-float(i) for i in range(9)]


# --- TorchOps: values on the CPU, the device on meta ---------------------------------------------------------------


CPU = TorchOps(torch.device("cpu"))
ON_META = TorchOps(META)


def test_torch_constructors_values_and_dtypes():
    assert CPU.device == torch.device("cpu") and ON_META.device == META
    got = CPU.arange(4)
    assert got.tolist() == [0, 1, 2, 3] and got.dtype == torch.long
    got = CPU.asarray(np.array([1.7, 2.2]), torch.long)
    assert got.dtype == torch.long and got.tolist() == [1, 2]
    got = CPU.asarray(np.array([1, 2]), torch.float32)
    assert got.dtype == torch.float32 and got.tolist() == [1.0, 2.0]
    got = CPU.zeros((2, 3), torch.long)
    assert got.dtype == torch.long and got.shape == (2, 3) and not got.any()
    assert CPU.zeros(3, torch.float64).dtype == torch.float64
    got = CPU.empty((2, 3), torch.long)
    assert got.dtype == torch.long and got.shape == (2, 3)
    assert CPU.empty((4,), torch.float64).dtype == torch.float64
    got = CPU.full(3, 2, torch.float64)
    assert got.dtype == torch.float64 and got.tolist() == [2.0, 2.0, 2.0]
    got = CPU.full(2, 1.5, torch.float32)
    assert got.dtype == torch.float32 and got.tolist() == [1.5, 1.5]
    got = CPU.cast(torch.tensor([1.5, -2.5]), torch.long)
    assert got.dtype == torch.long and got.tolist() == [1, -2]


def test_torch_constructors_on_the_device():
    """Everything TorchOps makes lies on its device (meta here: a CPU tensor instead would not mix below)."""
    for got, dtype, shape in (
        (ON_META.arange(4), torch.long, (4,)),
        (ON_META.asarray(np.array([1.7, 2.2]), torch.long), torch.long, (2,)),
        (ON_META.asarray([1, 2, 3], torch.float32), torch.float32, (3,)),
        (ON_META.zeros((2, 3), torch.long), torch.long, (2, 3)),
        (ON_META.empty((2, 3), torch.float64), torch.float64, (2, 3)),
        (ON_META.full(3, 2.5, torch.float64), torch.float64, (3,)),
    ):
        assert got.device == META and got.dtype == dtype and tuple(got.shape) == shape


def test_torch_array_ops_values():
    x = torch.tensor([[1, 5, -3], [4, 2, 0]])
    assert CPU.cumsum(x, 1).tolist() == [[1, 6, 3], [4, 6, 6]]
    assert CPU.cumsum(x, 0).tolist() == [[1, 5, -3], [5, 7, -3]]
    y = CPU.copy(x)
    y[0, 0] = 9
    assert x[0, 0] == 1
    out = torch.zeros(3, 5, dtype=torch.long)
    CPU.put(out, torch.tensor([1, 3]), torch.tensor([[1.9, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert out.tolist() == [[0, 1, 0, 2, 0], [0, 3, 0, 4, 0], [0, 5, 0, 6, 0]]
    assert CPU.repeat(torch.tensor([7, 8, 9]), np.array([2, 0, 1]), 3).tolist() == [7, 7, 9]
    got = CPU.repeat(torch.tensor([[1, 2], [3, 4]]), np.array([1, 2]), 3)
    assert got.tolist() == [[1, 2, 2], [3, 4, 4]]
    assert CPU.rows3(torch.tensor([1, 2])).tolist() == [[1, 2]] * 3
    assert CPU.amax0(x).tolist() == [4, 5, 0] and CPU.amin0(x).tolist() == [1, 2, -3]
    mask = torch.tensor([[False, True], [False, True]])
    assert CPU.flat_nonzero(mask).tolist() == [1, 3]
    assert CPU.flat_nonzero(torch.tensor([True, False, True])).tolist() == [0, 2]
    assert CPU.concat([torch.tensor([1]), torch.tensor([2, 3])]).tolist() == [1, 2, 3]
    view = torch.arange(6).reshape(2, 3).T
    got = CPU.owned(view)
    assert got.is_contiguous() and got.tolist() == view.tolist()
    assert CPU.stack([torch.tensor([1, 2]), torch.tensor([3, 4])]).tolist() == [[1, 2], [3, 4]]


def test_torch_reductions_values():
    blocks, tokens = block_tables(CPU, np.array([[1, 1, 2], [1, 1, 3]]), np.ones(2, dtype=np.float32))
    values = torch.tensor([3.0, 1.0, 5.0, -2.0, 4.0])
    assert CPU.per_block(values, blocks, tokens, "amax").tolist() == [3.0, 5.0]
    assert CPU.per_block(values, blocks, tokens, "amin").tolist() == [1.0, -2.0]
    negative = torch.tensor([-3.0, -1.0, -5.0, -2.0, -4.0])
    assert CPU.per_block(negative, blocks, tokens, "amax").tolist() == [-1.0, -2.0]
    positive = torch.tensor([3.0, 1.0, 5.0, 2.0, 4.0])
    assert CPU.per_block(positive, blocks, tokens, "amin").tolist() == [1.0, 2.0]
    got = CPU.row_max(torch.tensor([3, 7, 2, 5]), torch.tensor([2, 0, 0, 2]), 4)
    assert got.tolist() == [7, 0, 5, 0] and got.dtype == torch.long
    got = CPU.row_max(torch.tensor([-1.5, -0.5]), torch.tensor([1, 1]), 2)
    assert got.tolist() == [0.0, -0.5] and got.dtype == torch.float32


def test_torch_array_ops_on_the_device():
    """The ops that make new tensors make them on the device of their inputs / of TorchOps (meta)."""
    blocks, tokens = block_tables(ON_META, np.array([[1, 1, 2], [2, 2, 3]]), np.ones(2, dtype=np.float32))
    assert blocks.grid.device == META and tokens.block.device == META and tokens.c.device == META
    values = torch.empty(14, dtype=torch.float64, device=META)
    for reduce in ("amax", "amin"):
        got = ON_META.per_block(values, blocks, tokens, reduce)
        assert got.device == META and got.dtype == torch.float64 and tuple(got.shape) == (2,)
    got = ON_META.row_max(
        torch.empty(2, dtype=torch.long, device=META), torch.zeros(2, dtype=torch.long, device=META), 3
    )
    assert got.device == META and got.dtype == torch.long and tuple(got.shape) == (3,)
    got = ON_META.repeat(torch.empty(2, 2, device=META), np.array([1, 2]), 3)
    assert got.device == META and tuple(got.shape) == (2, 3)
    got = ON_META.rows3(torch.empty(4, device=META))
    assert got.device == META and tuple(got.shape) == (3, 4)
    x = torch.empty(2, 3, dtype=torch.long, device=META)
    assert tuple(ON_META.amax0(x).shape) == (3,) and tuple(ON_META.amin0(x).shape) == (3,)
    got = ON_META.cast(x, torch.float64)
    assert got.device == META and got.dtype == torch.float64
    out = torch.empty(3, 5, dtype=torch.long, device=META)
    ON_META.put(out, torch.zeros(2, dtype=torch.long, device=META), torch.empty(3, 2, device=META))


def test_batch_design_defaults_to_integer():
    design = BatchDesign(advance=None, top=None, visual=None)
    assert design.floating is False


# --- inputs only the grid check or the mask catches; tables of host grids of another integer type ------------------


@pytest.mark.parametrize("host", [True, False])
@pytest.mark.parametrize("bad", [(0, 4, 4), (1, 0, 4), (1, 4, 0)])
@pytest.mark.parametrize("with_good", [False, True])
def test_grid_with_an_empty_side_and_no_tokens_falls_back(host, bad, with_good):
    """A grid holding no token (a side 0) matches zero placeholders; the builder still gives up (None)."""
    names, designs = _designs("mrope")
    grids = [(1, 4, 4), bad] if with_good else [bad]
    tt = torch.tensor([[0, IMAGE, IMAGE, IMAGE, IMAGE, 0]]) if with_good else torch.zeros(1, 6, dtype=torch.long)
    items = [visual_items(IMAGE, torch.tensor(grids)), visual_items(VIDEO, None)]
    assert batch_positions(names, designs, tt, None, items, 2, PositionOptions(), host=host) is None


@pytest.mark.parametrize("host", [True, False])
@pytest.mark.parametrize("grid", [(1, 3, 4), (1, 4, 3), (1, 5, 2)])
def test_grid_not_divisible_by_the_merge_falls_back_even_when_the_count_fits(host, grid):
    """(1, 3, 4) with merge 2 would give 1 x 2 = 2 tokens by floor division: still None."""
    names, designs = _designs("mrope")
    tt = torch.tensor([[0, IMAGE, IMAGE, 0]])
    items = [visual_items(IMAGE, torch.tensor([grid])), visual_items(VIDEO, None)]
    assert batch_positions(names, designs, tt, None, items, 2, PositionOptions(), host=host) is None


@pytest.mark.parametrize("host", [True, False])
def test_merge_one_with_single_row_and_column_grids(host):
    """spatial_merge_size 1: a 1 x 3 and a 2 x 1 image are valid grids."""
    layout = [("text", 1), ("image", 1, 1, 3), ("text", 1), ("image", 1, 2, 1)]
    tt = torch.tensor([[0, IMAGE, IMAGE, IMAGE, 0, IMAGE, IMAGE]])
    items = [visual_items(IMAGE, torch.tensor([[1, 1, 3], [1, 2, 1]])), visual_items(VIDEO, None)]
    names, designs = _designs("mrope")
    positions, deltas = batch_positions(names, designs, tt, None, items, 1, PositionOptions(), host=host)
    ids, nxt = ref.positions(layout, "mrope")
    assert positions[:, 0].T.tolist() == [list(p) for p in ids]
    assert deltas.tolist() == [[max(nxt, max(max(p) for p in ids) + 1) - len(ids)]]


@pytest.mark.parametrize("host", [True, False])
def test_padding_slots_typed_as_image_are_not_tokens(host):
    """The attention mask decides which slots are tokens: a padded slot whose type id is IMAGE is not one."""
    tt = torch.tensor([[IMAGE, IMAGE, 0, IMAGE, IMAGE, IMAGE, IMAGE, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]])
    items = [visual_items(IMAGE, torch.tensor([[1, 4, 4]])), visual_items(VIDEO, None)]
    names, designs = _designs("mrope")
    positions, deltas = batch_positions(names, designs, tt, mask, items, 2, PositionOptions(), host=host)
    ids, nxt = ref.positions([("text", 1), ("image", 1, 2, 2), ("text", 1)], "mrope")
    assert positions[:, 0].T.tolist() == [[0, 0, 0]] * 2 + [list(p) for p in ids]
    assert deltas.tolist() == [[nxt - len(ids)]]


@pytest.mark.parametrize("host", [True, False])
def test_floating_padding_is_positive_zero(host):
    """Padded slots of a float design hold 0.0 (not -0.0, which a multiply of the running position -1 gives)."""
    tt = torch.tensor([[0, 0, *TYPES]])
    mask = torch.tensor([[0, 0] + [1] * len(TYPES)])
    names, designs = _designs("circle")
    options = position_options(mmrope_hf.resolve_config("circle", layers="all"))
    positions, _ = batch_positions(names, designs, tt, mask, ITEMS, 2, options, host=host)
    assert positions[:, 0, :2].tolist() == [[0.0, 0.0]] * 3
    assert not torch.signbit(positions[:, 0, :2]).any()


@pytest.mark.parametrize("host", [True, False])
def test_design_top_gets_the_tokens(host):
    """A BatchDesign's ``top`` is called with the blocks, the tokens and the options (a design may read any)."""
    seen = []
    mr = POSITION_DESIGNS.get("mrope").batch

    def top(blocks, tokens, options):
        seen.append(tokens)
        return mr.top(blocks, tokens, options) + 0 * tokens.j[blocks.xp.asarray(blocks.offset, blocks.xp.i64)]

    design = BatchDesign(advance=mr.advance, top=top, visual=mr.visual)
    tt = torch.tensor([[0, IMAGE, IMAGE, IMAGE, IMAGE, 0]])
    items = [visual_items(IMAGE, torch.tensor([[1, 4, 4]])), visual_items(VIDEO, None)]
    positions, deltas = batch_positions(("mrope",), [design], tt, None, items, 2, PositionOptions(), host=host)
    assert deltas.tolist() == [[-2]] and seen and seen[0].j.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("default", [torch.bfloat16, torch.float64])
def test_torch_path_ignores_the_default_dtype(default):
    """transformers switches torch's default dtype while it loads a model: the torch path must not depend on it
    (bfloat16 is exact only up to 256, so a long text row shows any tensor made in the default dtype)."""
    tt = torch.tensor([[0] * 300 + TYPES])
    items = ITEMS
    ids, nxt = ref.positions([("text", 302), *LAYOUT[1:]], "mrope", 1.5)
    names, designs = _designs("mrope", "vanilla")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(default)
    try:
        positions, deltas = batch_positions(names, designs, tt, None, items, 2, PositionOptions(), host=False)
        text, text_deltas = batch_positions(
            names,
            designs,
            torch.zeros(2, 300, dtype=torch.long),
            torch.ones(2, 300),
            [visual_items(IMAGE, None), visual_items(VIDEO, None)],
            2,
            PositionOptions(),
            host=False,
        )
    finally:
        torch.set_default_dtype(previous)
    assert positions.dtype == deltas.dtype == torch.long
    assert positions[:3, 0].T.tolist() == [list(p) for p in ids]
    assert positions[3:, 0].tolist() == [list(range(len(ids)))] * 3
    assert deltas.tolist() == [[max(nxt, max(max(p) for p in ids) + 1) - len(ids), 0]]
    assert text.dtype == torch.long and text.tolist() == [[list(range(300))] * 2] * 6
    assert text_deltas.tolist() == [[0, 0], [0, 0]]


def test_block_tables_of_int32_grids_and_float64_intervals():
    """Blocks hold int64 grids and sizes and float32 intervals (what the designs compute with: mrope's float32
    multiply), whatever integer / float type the host tables came in."""
    for xp in (HOST, TorchOps(torch.device("cpu"))):
        blocks, tokens = block_tables(xp, np.array([[2, 1, 2]], dtype=np.int32), np.array([0.1], dtype=np.float64))
        assert str(blocks.grid.dtype).endswith("int64") and str(blocks.size.dtype).endswith("int64")
        assert str(blocks.interval.dtype).endswith("float32")
        assert blocks.grid.tolist() == [[2, 1, 2]] and blocks.size.tolist() == [4]
        assert tokens.g.tolist() == [0, 0, 1, 1] and tokens.c.tolist() == [0, 1, 0, 1]
        assert tokens.r.tolist() == [0, 0, 0, 0] and tokens.j.tolist() == [0, 1, 2, 3]
        assert blocks.temporal is True
        blocks, _ = block_tables(xp, np.array([[1, 2, 2]], dtype=np.int64), np.ones(1, dtype=np.float32))
        assert blocks.temporal is False


def test_host_cumsum_checks_its_axis():
    with pytest.raises(AssertionError):
        HOST.cumsum(np.ones((100, 100), dtype=np.int64), 0)


class _Stop(Exception):
    pass


def test_torch_path_builds_on_the_tensors_device(monkeypatch):
    """host=False: TorchOps on mm_token_type_ids' device, the mask moved there (meta tensors; the build is
    stopped before its first data-dependent op)."""
    seen = {}

    def spy(xp, batch_designs, types, valid, *args):
        seen.update(xp=xp, types=types, valid=valid)
        raise _Stop

    monkeypatch.setattr(batch_module, "_build", spy)
    names, designs = _designs("mrope")
    tt = torch.zeros(2, 3, dtype=torch.long, device=META)
    mask = torch.ones(2, 3, dtype=torch.long)
    with pytest.raises(_Stop):
        batch_positions(names, designs, tt, mask, ITEMS, 2, PositionOptions(), host=False)
    assert seen["xp"].device == META and seen["types"].device == META
    assert seen["valid"].device == META and seen["valid"].dtype == torch.bool and tuple(seen["valid"].shape) == (6,)


def test_host_chunks_write_in_place_without_warnings():
    """Each chunk is written into its slice of the output (a torch out= of the wrong size would be resized, with a
    UserWarning, into memory the caller never sees)."""
    n = 2 * GRAIN + 5
    x = np.linspace(0.1, 3.0, n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(HOST.atan2(x, x[::-1].copy()), np.arctan2(x, x[::-1]), rtol=1e-13)
        np.testing.assert_allclose(HOST.cos(x), np.cos(x), rtol=1e-13, atol=1e-15)
        got = HOST.cumsum(np.ones((40, 1000), dtype=np.int64), 1)
    assert np.array_equal(got, np.tile(np.arange(1, 1001), (40, 1)))
