"""The loop-free builder's two back ends: numpy on the host and torch (the accelerator path, run here on CPU tensors)
give the per-row reference's positions; the host path starts no intra-op parallel region."""

from __future__ import annotations

import random

import pytest
import torch
from test_vectorized import random_batch

import mmrope_hf
from mmrope_hf.positions import circle
from mmrope_hf.positions.batch import batch_positions
from mmrope_hf.positions.builder import position_options
from mmrope_hf.positions.layout import IMAGE, VIDEO, parse_layout, visual_items
from mmrope_hf.positions.registry import POSITION_DESIGNS
from mmrope_hf.positions.rows import build_positions

CASES = [
    ("mrope", {}),
    ("mrope-i", {"temporal_stride": 0.5}),
    ("vanilla", {}),
    ("circle", {}),
    ("circle", {"radius": "auto-2", "auto_radius": "l2", "move_to_positive": "auto"}),
    ("circle", {"method": "no_circle", "temporal_stride": 2.0}),
]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("scheme, options", CASES)
def test_numpy_and_torch_back_ends_equal_the_reference(seed, scheme, options):
    rng = random.Random(seed)
    tt, mask, images, videos, seconds = random_batch(seed, rng.randint(1, 5), rng.choice(["left", "right"]))
    intervals = (2 * seconds).tolist() if videos is not None else None
    items = [visual_items(IMAGE, images), visual_items(VIDEO, videos, intervals, split_frames=seed % 2 == 0)]
    config = mmrope_hf.resolve_config(scheme, layers="all", **options)
    designs, opts = config.designs, position_options(config)
    forms = [POSITION_DESIGNS.get(d).batch for d in designs]
    want = build_positions(designs, parse_layout(tt, mask, items, 2), opts, mask, tuple(tt.shape))
    for host in (True, False):
        got = batch_positions(designs, forms, tt, mask if seed % 3 else None, items, 2, opts, host=host)
        if seed % 3 == 0:  # without a mask every slot is real: compare against the mask-free reference
            want = build_positions(designs, parse_layout(tt, None, items, 2), opts, None, tuple(tt.shape))
        assert got is not None
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            torch.testing.assert_close(a, b, atol=2e-5 if a.is_floating_point() else 0, rtol=0)


# the sizes above which torch splits an op across its intra-op threads: at::vml (cos, sin) and GRAIN_SIZE
SERIAL_LIMIT = {"atan2": 32768, "hypot": 32768, "cos": 2048, "sin": 2048, "cumsum": 32768}


def test_host_path_keeps_torch_ops_below_the_grain_size(monkeypatch):
    """The trigonometry and the row sums of the numpy path run in torch (vectorised), on chunks below torch's grain
    sizes, so that no op reaches the intra-op thread pool (the busy-machine slow-down), even for 80,000 visual
    tokens."""
    sizes: dict[str, list[int]] = {name: [] for name in SERIAL_LIMIT}
    for name in SERIAL_LIMIT:
        real = getattr(torch, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            x = args[0]  # a cumulative sum runs one row per thread: one row is serial whatever its length
            sizes[_name].append(x.numel() if _name != "cumsum" or x.shape[0] > 1 else 0)
            return _real(*args, **kwargs)

        monkeypatch.setattr(torch, name, spy)
    tt = torch.zeros(3, 80002, dtype=torch.long)
    tt[:, 1:-1] = 1  # one (merged) 2 x 40000 image per row
    items = [visual_items(IMAGE, torch.tensor([[1, 4, 80000]] * 3)), visual_items(VIDEO, None)]
    circle.clear_ring_cache()
    opts = position_options(mmrope_hf.resolve_config("circle", layers="all", radius="auto", auto_radius="l2"))
    got = batch_positions(("circle",), [POSITION_DESIGNS.get("circle").batch], tt, None, items, 2, opts, host=True)
    assert got is not None
    for name, limit in SERIAL_LIMIT.items():
        assert sizes[name] and max(sizes[name]) <= limit, (name, sizes[name][:3])
    monkeypatch.undo()
    ref = build_positions(("circle",), parse_layout(tt, None, items, 2), opts, None, tuple(tt.shape))
    torch.testing.assert_close(got[0], ref[0], atol=2e-5, rtol=0)


@pytest.mark.parametrize(
    "first, second", [({"move_to_positive": False}, {"move_to_positive": 0.0}), ({}, {"radius": "auto"})]
)
def test_ring_cache_keeps_rings_of_different_options_apart(first, second):
    """The host path keeps one ring per (image shape, options): options that differ (even False vs 0.0, which
    compare equal) get their own rings, each equal to the per-row reference, cached or not."""
    tt = torch.tensor([[0, 0] + [1] * 6 + [0]])
    items = [visual_items(IMAGE, torch.tensor([[1, 4, 6]])), visual_items(VIDEO, None)]
    circle.clear_ring_cache()
    results = []
    for options in (first, second, first, second):  # the second pass reads the cache
        opts = position_options(mmrope_hf.resolve_config("circle", layers="all", **options))
        got = batch_positions(("circle",), [POSITION_DESIGNS.get("circle").batch], tt, None, items, 2, opts, host=True)
        want = build_positions(("circle",), parse_layout(tt, None, items, 2), opts, None, tuple(tt.shape))
        assert got is not None
        torch.testing.assert_close(got[0], want[0], atol=2e-5, rtol=0)
        torch.testing.assert_close(got[1], want[1], atol=2e-5, rtol=0)
        results.append(got[0])
    assert not torch.allclose(results[0], results[1])
