"""What a position design is: a per-row function ``(segments, options) -> RowPositions`` with the options it
declares and, optionally, its loop-free batch form. The designs themselves live in :mod:`mrope`, :mod:`circle` and
:mod:`baselines`; :mod:`mmrope_hf.positions.registry` collects them by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from mmrope_hf.options import Option
from mmrope_hf.positions.batch import BatchDesign
from mmrope_hf.positions.layout import Segment


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
