"""Position designs of the baselines and ablations in Huang et al. (ICLR 2026, arXiv 2510.23095): VideoRoPE, HoPE,
V2PE, the paper's text spatial-reset (IL-RoPE / Omni-RoPE) and the enlarged modality interval (Table 4).

``st`` is the position of a visual block's first token (one past the token before it), the block has T x H x W
tokens after the spatial merge (row-major over (t, h, w)), and ``s`` is the temporal step: ``temporal_stride``,
or the block's own interval when it is ``null`` (1 on Qwen2-VL, ``tokens_per_second * second_per_grid_ts`` on
Qwen2.5-VL). Qwen3-VL lays every temporal group of a video out as a block of its own (T = 1).

- ``videorope`` (VideoRoPE's diagonal layout, ``get_t_scale_rope_index`` of Wiselnn570/VideoRoPE): visual token
  (g, r, c) -> (T, T + r - floor((H-1)/2), T + c - floor((W-1)/2)) with T = st + g s, not truncated (float
  positions, as the reference). The next token follows the **t row only**: st + (T-1) s + 1, so an image takes one
  t step while its h/w range reaches past it and later text ids overlap the image's h/w ids (the paper's
  "modality confusion"). ``rope_deltas`` come from the t row.
- ``hope`` (HoPE's dynamic temporal scaling): the ``videorope`` layout, with a temporal stride drawn per visual
  block from ``temporal_stride_choices`` while the model is in training mode (``model.train()``), from the
  patched model's generator seeded by the option ``seed`` (never from unseeded global randomness); in eval mode
  (and in the model-free :func:`~mmrope_hf.builder.build_position_ids`) the stride is fixed: ``temporal_stride``
  (the ``hope`` preset: 1.0; HoPE leaves the inference scale to the user), or the block's own interval if null.
  (JJJYmmm/Multimodal-RoPEs draws with Python's unseeded ``random.choice`` at every call, inference included;
  the HoPE paper and code fix the scale at inference, as here.)
- ``v2pe`` (V2PE, the reference code's rule): 1D; a visual block of N tokens (per frame on Qwen3-VL) advances
  ``visual_stride / N`` per token: token k sits at ``last + visual_stride (k+1) / N`` where ``last`` is the
  position of the token before, and text resumes at ``ceil(last visual position) + 1``. ``visual_stride`` is the
  **total span of a block** (the reference's ``rope_pos_id_stride``; default 16), not the paper's per-token step
  delta in {1, 1/2, ..., 1/256}: a block of N tokens gets delta = visual_stride / N, so the paper's delta is
  ``visual_stride = delta * N`` and a block with fewer tokens than ``visual_stride`` gets a step > 1. All rows equal.
- ``text-spatial-reset`` (the paper's IL-RoPE / Omni-RoPE layout, Table 4 "+text spatial-reset", Fig. 1e): visual
  tokens as ``spatial-reset`` (st + floor(g s), r, c), and **text at (p, 0, 0)**; t rows, where text resumes
  (``vision_advance``) and ``rope_deltas`` are exactly those of ``spatial-reset`` (the offsets are our choice; the
  paper gives none). Storage: transformers decodes text at ``text position + rope_deltas`` on every row and
  ``generate`` adds 1 per token to every row, which cannot keep h = w = 0. So the design **stores h and w
  relative to t**, ``(t, t + h, t + w)`` (text (p, p, p), visual (T, T + r, T + c)), and the rotary of a patched
  model reads ``(t, h - t, w - t)`` for every set whose design is in :data:`SPATIAL_FROM_T`. Prompts, cached
  decoding, ``generate`` and text-only input (which never reaches ``get_rope_index``) all get text at (p, 0, 0).
  Anything that reads ``get_rope_index``'s output directly (e.g. :func:`mmrope_hf.metrics.ptd`) must undo this
  first: ``h - t``, ``w - t``.
- ``modality-interval`` (Table 4 "+modality interval", "enlarging the modality interval to match that of vanilla
  RoPE, similar to RoPE-Tie"; the exact rule is our choice): visual tokens as ``spatial-reset`` (st + floor(g s),
  r, c), and text after a block resumes where vanilla RoPE would put it: st + max(T H W, floor((T-1) s) + 1) (the max
  keeps a long strided video from overlapping the text after it; H - 1 and W - 1 never reach T H W).

``videorope``, ``hope`` and ``v2pe`` return float32 positions (as the reference repo); ``text-spatial-reset`` and
``modality-interval`` return int64 with the stock truncation of the temporal offsets. The 1D/3D designs here ignore
``vision_advance`` except ``text-spatial-reset``.

>>> from mmrope_hf.positions.layout import VisualBlock
>>> row = videorope([3, VisualBlock(1, (1, 4, 4), 1.0), 2], PositionOptions())
>>> row.positions[:, 3].tolist(), row.next_position  # image token (0, 0): (3, 2, 2); text resumes at 4
([3.0, 2.0, 2.0], 6.0)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch

from mmrope_hf.options import Option, positive_number
from mmrope_hf.positions.design import PositionDesign, PositionOptions, RowPositions
from mmrope_hf.positions.layout import Segment, VisualBlock

SPATIAL_FROM_T = frozenset({"text-spatial-reset"})
"""Designs that store h and w relative to t: the patched rotary reads ``(t, h - t, w - t)`` for their sets."""

DEFAULT_STRIDE_CHOICES = (0.5, 0.75, 1.0, 1.25, 1.5)  # HoPE's scale_factors and the reference's temporal_stride_lst


def _stride_choices(name: str, value: Any) -> tuple[float, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty list of positive numbers, got {value!r}")
    return tuple(positive_number(name, v) for v in value)


def _seed(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


HOPE_OPTIONS = {
    "temporal_stride_choices": Option(
        DEFAULT_STRIDE_CHOICES, _stride_choices, "training-time temporal strides, one drawn per visual block (HoPE)"
    ),
    "seed": Option(0, _seed, "seed of the patched model's generator for the training-time draws"),
}
V2PE_OPTIONS = {
    "visual_stride": Option(
        16.0, positive_number, "total position span of one visual block; per-token step = visual_stride / tokens"
    ),
}


def _setting(options: PositionOptions, specs: Mapping[str, Option], name: str) -> Any:
    given = options.design
    return specs[name].check(name, given[name]) if name in given else specs[name].default


def _interval(block: VisualBlock, options: PositionOptions) -> float | torch.Tensor:
    return block.interval if options.temporal_stride is None else options.temporal_stride


def _truncated_offsets(block: VisualBlock, options: PositionOptions) -> torch.Tensor:
    """Integer temporal offsets floor(g s) of the block's groups, truncated after the multiply like transformers."""
    return (torch.arange(block.grid[0]) * _interval(block, options)).long()


def _text(start: float, count: int, dtype: torch.dtype) -> torch.Tensor:
    return (start + torch.arange(count, dtype=dtype)).expand(3, -1)


# --- the diagonal layout: videorope and hope ---------------------------------------------------------------------


def _diagonal_row(segments: Sequence[Segment], strides: Callable[[VisualBlock], float]) -> RowPositions:
    parts, position = [], 0.0
    for seg in segments:
        if isinstance(seg, int):
            parts.append(_text(position, seg, torch.float64))
            position += seg
            continue
        frames, height, width = seg.grid
        t = position + torch.arange(frames, dtype=torch.float64) * strides(seg)
        r = torch.arange(height, dtype=torch.float64) - (height - 1) // 2
        c = torch.arange(width, dtype=torch.float64) - (width - 1) // 2
        tt, rr, cc = torch.meshgrid(t, r, c, indexing="ij")
        parts.append(torch.stack([tt, tt + rr, tt + cc]).reshape(3, -1))
        position = float(t[-1]) + 1  # the t row only
    positions = torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.float64)
    return RowPositions(positions.to(torch.float32), position)


def videorope(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """VideoRoPE's diagonal layout: (T, T + r - floor((H-1)/2), T + c - floor((W-1)/2)), next = last T + 1."""
    return _diagonal_row(segments, lambda block: float(_interval(block, options)))


def _drawn_strides(options: PositionOptions) -> Callable[[VisualBlock], float]:
    choices = _setting(options, HOPE_OPTIONS, "temporal_stride_choices")
    generator = options.generator
    if generator is None:  # e.g. a PositionOptions built by hand: the seed alone decides
        generator = torch.Generator().manual_seed(_setting(options, HOPE_OPTIONS, "seed"))
    return lambda block: choices[int(torch.randint(len(choices), (1,), generator=generator))]


def hope(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """HoPE: the diagonal layout with a temporal stride drawn per block in training mode, fixed in eval mode."""
    if options.training:
        return _diagonal_row(segments, _drawn_strides(options))
    return videorope(segments, options)


# --- v2pe ---------------------------------------------------------------------------------------------------------


def v2pe(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """V2PE: 1D, a block of N visual tokens spans ``visual_stride`` (step visual_stride / N); text resumes at
    ceil + 1."""
    span = _setting(options, V2PE_OPTIONS, "visual_stride")
    parts, last = [], -1.0  # position of the token before
    for seg in segments:
        if isinstance(seg, int):
            parts.append(_text(last + 1, seg, torch.float64))
            last += seg
            continue
        n = seg.num_tokens
        visual = last + span * torch.arange(1, n + 1, dtype=torch.float64) / n  # exact at k = n: last + span
        parts.append(visual.expand(3, -1))
        last = float(math.ceil(float(visual[-1])))
    positions = torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.float64)
    return RowPositions(positions.to(torch.float32), last + 1)


# --- spatial-reset variants: text-spatial-reset and modality-interval ----------------------------------------------


def text_spatial_reset(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """The paper's IL-RoPE / Omni-RoPE layout, text at (p, 0, 0), **stored relative to t** (see the module docstring):
    text (p, p, p), visual (T, T + r, T + c) with T = st + floor(g s); t rows and ``rope_deltas`` as
    ``spatial-reset``."""
    parts, position, end = [], 0, 0  # end: the largest st + extent + 1 of the blocks (text never passes `position`)
    for seg in segments:
        if isinstance(seg, int):
            parts.append(_text(position, seg, torch.long))
            position += seg
            continue
        offsets = _truncated_offsets(seg, options)
        _, height, width = seg.grid
        t, r, c = torch.meshgrid(offsets + position, torch.arange(height), torch.arange(width), indexing="ij")
        parts.append(torch.stack([t, t + r, t + c]).reshape(3, -1))
        extent = max(int(offsets[-1]), height - 1, width - 1)
        end = max(end, position + extent + 1)
        position = position + extent + 1 if options.vision_advance == "max" else position + max(height, width)
    positions = torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)
    return RowPositions(positions, max(position, end))  # spatial-reset's rule (see mrope._mrope_row)


def modality_interval(segments: Sequence[Segment], options: PositionOptions) -> RowPositions:
    """Spatial-reset visual tokens (st + floor(g s), r, c); text after a block resumes where vanilla RoPE puts it."""
    parts, position = [], 0
    for seg in segments:
        if isinstance(seg, int):
            parts.append(_text(position, seg, torch.long))
            position += seg
            continue
        offsets = _truncated_offsets(seg, options)
        _, height, width = seg.grid
        t, r, c = torch.meshgrid(offsets + position, torch.arange(height), torch.arange(width), indexing="ij")
        parts.append(torch.stack([t, r, c]).reshape(3, -1))
        position += max(seg.num_tokens, int(offsets[-1]) + 1)  # H - 1 and W - 1 never reach T H W
    positions = torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)
    return RowPositions(positions, position)


DESIGNS = {
    "videorope": PositionDesign(videorope),
    "hope": PositionDesign(hope, HOPE_OPTIONS),
    "v2pe": PositionDesign(v2pe, V2PE_OPTIONS),
    "text-spatial-reset": PositionDesign(text_spatial_reset),
    "modality-interval": PositionDesign(modality_interval),
}
