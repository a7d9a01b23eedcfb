"""Circle-RoPE position design ``circle`` (Wang et al., arXiv 2505.16416; code lose4578/CircleRoPE @ 063fb2c).

Text stays on the diagonal (p, p, p). The H x W tokens of an image go on a ring in the plane through
s (1, 1, 1) orthogonal to (1, 1, 1), where ``s`` is the running position (where MRoPE would put the image's
first token). For token (r, c), k = r W + c:

1. ``move_to_origin``: x = c - (W-1)/2, y = r - (H-1)/2 (else x = c, y = r).
2. phi = alpha SA + (1 - alpha) GA: SA = atan2(y, x) rescaled over the block from [min, max] to [0, 2 pi]
   (kept as is when min = max), GA = 2 pi k / (H W).
3. (a, b) = R (cos phi, sin phi); ``method="no_circle"`` takes (a, b) = (x, y); ``dff_rate`` d blends
   (1 - d)(a, b) + d (x, y).
4. rows (t, h, w) = (2b/sqrt6, a/sqrt2 - b/sqrt6, -a/sqrt2 - b/sqrt6): the basis u = (-1, 1, 0)/sqrt2,
   v = (-1, -1, 2)/sqrt6 of the plane, in (w, h, t) order. They sum to 0, so every text token is at the same
   Euclidean distance from all tokens of a ring (PTD = 0 when d = 0).
5. ``move_to_positive``: add |min over the three rows| (+ the offset, if a number) to every row; then add s.

Text after a block resumes at the block's maximum over all three rows + 1, a float (so are ``rope_deltas``);
the design ignores ``vision_advance``. Positions are computed in float64 and returned as float32.

Choices beyond the reference (which only handles single-frame blocks):

- Videos with T > 1 temporal groups (the reference crashes): every frame gets the same ring, frame g moved
  along (1, 1, 1) by g * stride, with stride = ``temporal_stride`` if set, else the block's own interval (1 on
  Qwen2-VL, tokens_per_second * second_per_grid_ts on Qwen2.5-VL), not truncated. Qwen3-VL splits videos
  into single-frame blocks, so there every frame is a block of its own.
- ``radius="auto"``/``"auto-k"``: k times the largest centred coordinate max(x, y) (``auto_radius=
  "max-coordinate"``, the code's rule, default) or k times the largest ||(x, y)||_2 (``"l2"``, the paper's
  Eq. 9). A 1 x 1 image gets R = 0 under both rules (one token, nothing to spread).
- Several images per prompt: each block's ring is centred on its own running position (the reference
  behaviour, not the paper's section 4.3 stride).
- ``dff_rate`` follows the convention after commit 063fb2c: d = 0 is the pure ring, d = 1 the rotated grid.
  ``true``/``false`` (the reference's booleans) read as 1 and 0. ``move_to_positive=0`` shifts by |min|
  (the reference treats 0 as off); ``true`` is refused (the reference reads it as the offset 1).

>>> from mmrope_hf.positions.layout import VisualBlock
>>> from mmrope_hf.positions.design import PositionOptions
>>> row = circle([3, VisualBlock(1, (1, 4, 4), 1.0), 2], PositionOptions())
>>> [round(v, 4) for v in row.positions[:, 3].tolist()], round(row.next_position, 4)
([5.0854, 8.7938, -4.8793], 14.0714)
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from mmrope_hf.options import Option, boolean, choice
from mmrope_hf.positions.batch import HOST, BatchDesign, Blocks, Tokens, block_tables
from mmrope_hf.positions.design import PositionDesign, PositionOptions, RowPositions
from mmrope_hf.positions.layout import Segment, VisualBlock

_SQRT2, _SQRT6 = math.sqrt(2.0), math.sqrt(6.0)


def _auto_scale(radius: Any) -> float | None:
    """k of ``"auto"`` (1) or ``"auto-k"`` (a finite k > 0); None for anything else."""
    if radius == "auto":
        return 1.0
    if not isinstance(radius, str) or not radius.startswith("auto-"):
        return None
    try:
        scale = float(radius[len("auto-") :])
    except ValueError:
        return None
    return scale if math.isfinite(scale) and scale > 0 else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_radius(name: str, value: Any) -> float | str:
    if _is_number(value) and value > 0:
        return float(value)
    if _auto_scale(value) is not None:
        return value
    raise ValueError(
        f"{name} must be a number > 0, 'auto' or 'auto-k' with a number k > 0 (e.g. 'auto-2'), got {value!r}"
    )


def _check_fraction(name: str, value: Any) -> float:
    if not _is_number(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_dff_rate(name: str, value: Any) -> float:
    return _check_fraction(name, float(value) if isinstance(value, bool) else value)  # the reference's true = 1


def _check_move_to_positive(name: str, value: Any) -> bool | str | float:
    if value is False or value == "auto":
        return value
    if _is_number(value):
        return float(value)
    raise ValueError(f"{name} must be false, 'auto' or a number (an offset added after the shift), got {value!r}")


CIRCLE_OPTIONS = {
    "radius": Option(10.0, _check_radius, "ring radius R: a number > 0, 'auto' or 'auto-k' (k times the grid extent)"),
    "auto_radius": Option(
        "max-coordinate",
        choice("max-coordinate", "l2"),
        "extent for an 'auto' radius: largest centred coordinate (code) or L2 norm (paper Eq. 9)",
    ),
    "alpha": Option(0.5, _check_fraction, "weight of the spatial angle vs the raster-order angle, in [0, 1]"),
    "move_to_origin": Option(True, boolean, "centre the grid before taking angles"),
    "move_to_positive": Option(False, _check_move_to_positive, "false, 'auto' (shift by |min|) or |min| + a number"),
    "dff_rate": Option(0.0, _check_dff_rate, "blend d in [0, 1]: (1-d) ring + d rotated grid (true = 1)"),
    "method": Option("circle", choice("circle", "no_circle"), "'circle' (ring) or 'no_circle' (rotated grid)"),
}


def _settings(options: PositionOptions) -> dict[str, Any]:
    """The design options with defaults filled in, checked."""
    given = options.design
    return {
        name: spec.check(name, given[name]) if name in given else spec.default for name, spec in CIRCLE_OPTIONS.items()
    }


def _ring(height: int, width: int, settings: Mapping[str, Any]) -> torch.Tensor:
    """Offsets (t, h, w) of one frame's tokens from s (1, 1, 1), raster order, shape (3, height * width), float64."""
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    x, y = cols.flatten(), rows.flatten()
    if settings["move_to_origin"]:
        x, y = x - (width - 1) / 2, y - (height - 1) / 2
    a, b = x, y
    if settings["method"] == "circle":
        theta = torch.atan2(y, x)
        span = theta.max() - theta.min()
        spatial = (theta - theta.min()) / span * (2 * math.pi) if span > 0 else theta
        raster = torch.arange(height * width, dtype=torch.float64) / (height * width) * (2 * math.pi)
        phi = settings["alpha"] * spatial + (1 - settings["alpha"]) * raster
        radius = _radius(x, y, settings)
        d = settings["dff_rate"]
        a, b = (1 - d) * radius * torch.cos(phi) + d * x, (1 - d) * radius * torch.sin(phi) + d * y
    offsets = torch.stack([2 * b / _SQRT6, a / _SQRT2 - b / _SQRT6, -a / _SQRT2 - b / _SQRT6])
    shift = settings["move_to_positive"]
    if shift is not False:
        offsets = offsets + offsets.min().abs() + (0.0 if shift == "auto" else shift)
    return offsets


def _radius(x: torch.Tensor, y: torch.Tensor, settings: Mapping[str, Any]) -> torch.Tensor | float:
    scale = _auto_scale(settings["radius"])
    if scale is None:
        return settings["radius"]
    if settings["auto_radius"] == "l2":
        return scale * torch.hypot(x, y).max()
    return scale * torch.maximum(x.max(), y.max())  # >= 0: the grid is centred or starts at 0


def _block(block: VisualBlock, start: float, settings: Mapping[str, Any], options: PositionOptions) -> torch.Tensor:
    frames, height, width = block.grid
    stride = float(block.interval if options.temporal_stride is None else options.temporal_stride)
    ring = _ring(height, width, settings)
    lift = torch.arange(frames, dtype=torch.float64) * stride
    return (start + ring[:, None, :] + lift[None, :, None]).reshape(3, -1)


def _batch_offsets(blocks: Blocks, tokens: Tokens, options: PositionOptions):
    """The same rings as :func:`_ring` and :func:`_block`, for every visual token of a batch at once, (3, M);
    computed once per build (advance, top and visual all read them)."""
    key = ("circle", id(options))
    if key not in blocks.memo:
        compute = _host_offsets if blocks.xp is HOST else _offsets
        blocks.memo[key] = compute(blocks, tokens, options)
    return blocks.memo[key]


_RINGS: dict[
    tuple, tuple[np.ndarray, float]
] = {}  # (H, W, settings) -> (ring of one frame (3, H W), read-only; its max)
_RINGS_BUDGET = 1 << 21  # elements kept (16 MB); the cache starts over beyond it
_ring_elements = 0


def clear_ring_cache() -> None:
    """Forget the rings of the host path (the benchmark's cold runs)."""
    global _ring_elements
    _RINGS.clear()
    _ring_elements = 0


def _host_offsets(blocks: Blocks, tokens: Tokens, options: PositionOptions) -> np.ndarray:
    """:func:`_offsets` on the host, from the rings of each frame shape: a ring depends only on (H, W) and the
    options, so each shape's ring is computed once (every shape missing from the cache in one vectorised pass)
    and kept; a batch then costs a concatenation (and the temporal lift for videos)."""
    global _ring_elements
    settings = _settings(options)  # once per build: _batch_offsets keeps what this returns
    key = (*settings.values(), type(settings["move_to_positive"]))  # False and 0.0 differ there
    shapes = list(zip(blocks.grid[:, 1].tolist(), blocks.grid[:, 2].tolist(), strict=True))
    rings = {shape: _RINGS.get((*shape, key)) for shape in shapes}
    missing = [shape for shape, cached in rings.items() if cached is None]
    if missing:
        grid = np.array([(1, h, w) for h, w in missing], dtype=np.int64)
        new_blocks, new_tokens = block_tables(HOST, grid, np.ones(len(missing), dtype=np.float32))
        fresh = np.split(_offsets(new_blocks, new_tokens, options), np.cumsum(new_blocks.counts)[:-1], axis=1)
        if _ring_elements > _RINGS_BUDGET:
            clear_ring_cache()
        for shape, ring in zip(missing, fresh, strict=True):
            ring.setflags(write=False)
            rings[shape] = _RINGS[(*shape, key)] = (ring, float(ring.max()))
            _ring_elements += ring.size
    parts = [rings[shape][0] for shape in shapes]  # type: ignore[index]
    if not blocks.temporal:  # the advance too: one past each ring's largest offset
        blocks.memo[("circle-advance", id(options))] = np.array([rings[s][1] for s in shapes]) + 1  # type: ignore[index]
    else:
        parts = [np.tile(r, (1, t)) if t > 1 else r for r, t in zip(parts, blocks.frames.tolist(), strict=True)]
    offsets = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    if not blocks.temporal:
        return offsets
    if options.temporal_stride is None:
        return offsets + tokens.g * blocks.interval.astype(np.float64)[tokens.block]
    return offsets + tokens.g * float(options.temporal_stride)


def _offsets(blocks: Blocks, tokens: Tokens, options: PositionOptions):
    settings = _settings(options)
    xp, block = blocks.xp, tokens.block

    def per_block(values, reduce: str):
        return xp.per_block(values, blocks, tokens, reduce)[block]

    height, width = xp.cast(blocks.grid[:, 1], xp.f64)[block], xp.cast(blocks.grid[:, 2], xp.f64)[block]
    x, y = xp.cast(tokens.c, xp.f64), xp.cast(tokens.r, xp.f64)
    if settings["move_to_origin"]:
        x, y = x - (width - 1) / 2, y - (height - 1) / 2
    a, b = x, y
    if settings["method"] == "circle":
        theta = xp.atan2(y, x)
        low, high = per_block(theta, "amin"), per_block(theta, "amax")
        span = high - low
        spatial = xp.where(span > 0, (theta - low) / xp.where(span > 0, span, 1.0) * (2 * math.pi), theta)
        raster = xp.cast(tokens.r * blocks.grid[block, 2] + tokens.c, xp.f64) / (height * width) * (2 * math.pi)
        phi = settings["alpha"] * spatial + (1 - settings["alpha"]) * raster
        scale = _auto_scale(settings["radius"])
        if scale is None:
            radius = settings["radius"]
        else:
            extent = xp.hypot(x, y) if settings["auto_radius"] == "l2" else xp.maximum(x, y)
            radius = scale * per_block(extent, "amax")
        d = settings["dff_rate"]
        a, b = (1 - d) * radius * xp.cos(phi) + d * x, (1 - d) * radius * xp.sin(phi) + d * y
    offsets = xp.stack([2 * b / _SQRT6, a / _SQRT2 - b / _SQRT6, -a / _SQRT2 - b / _SQRT6])
    shift = settings["move_to_positive"]
    if shift is not False:
        lowest = per_block(xp.amin0(offsets), "amin")
        offsets = offsets + abs(lowest) + (0.0 if shift == "auto" else shift)
    if not blocks.temporal:
        return offsets  # every g is 0
    stride = (
        xp.cast(blocks.interval, xp.f64)
        if options.temporal_stride is None
        else xp.full(len(blocks.interval), options.temporal_stride, xp.f64)
    )
    return offsets + xp.cast(tokens.g, xp.f64) * stride[block]


def _batch_advance(blocks: Blocks, tokens: Tokens, options: PositionOptions):
    key = ("circle-advance", id(options))
    if key not in blocks.memo:
        offsets = _batch_offsets(blocks, tokens, options)
        if key not in blocks.memo:  # (the host path knows it from its rings)
            blocks.memo[key] = blocks.xp.per_block(blocks.xp.amax0(offsets), blocks, tokens, "amax") + 1
    return blocks.memo[key]


_BATCH = BatchDesign(
    advance=_batch_advance,
    top=_batch_advance,
    visual=lambda start, tokens, blocks, options: (
        blocks.xp.cast(start, blocks.xp.f64) + _batch_offsets(blocks, tokens, options)
    ),
    floating=True,
)


def circle(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """Circle-RoPE positions: text on (p, p, p), each image/frame on a ring orthogonal to (1, 1, 1).

    >>> row = circle([2, VisualBlock(1, (1, 1, 1), 1.0)], PositionOptions(design={"radius": "auto"}))
    >>> row.positions.tolist(), row.next_position  # "auto" gives a 1 x 1 image R = 0: it sits at s (1, 1, 1)
    ([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], 3.0)
    """
    settings = _settings(options)
    parts, position = [], 0.0
    for seg in segments:
        if isinstance(seg, int):
            parts.append((position + torch.arange(seg, dtype=torch.float64)).expand(3, -1))
            position += seg
        else:
            parts.append(_block(seg, position, settings, options))
            position = float(parts[-1].max()) + 1
    positions = torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.float64)
    return RowPositions(positions.to(torch.float32), position)


DESIGNS = {"circle": PositionDesign(circle, CIRCLE_OPTIONS, _BATCH)}
