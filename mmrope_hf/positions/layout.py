"""Split each row of a batch into text runs and visual blocks, checked against the grids.

Visual tokens are found from ``mm_token_type_ids`` (0 text, 1 image, 2 video), as transformers 5.x does;
grids are consumed in order over the whole batch, one per block. A run of placeholder tokens that holds
several items back to back consumes as many grids as it needs. Every mismatch between placeholders and
grids raises a ``ValueError`` naming the row, the item and both counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

IMAGE, VIDEO = 1, 2
_MODALITY_NAME = {IMAGE: "image", VIDEO: "video"}


@dataclass(frozen=True)
class VisualBlock:
    """One image, video or (split) video frame after the spatial merge: ``grid`` = (T, H, W) tokens."""

    modality: int
    grid: tuple[int, int, int]
    interval: float | torch.Tensor  # temporal step between the block's groups, before truncation

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w


Segment = Union[int, VisualBlock]  # an int is a run of that many text tokens


@dataclass(frozen=True)
class VisualItems:
    """The grids of one modality, in batch order, with what the model needs to lay them out."""

    modality: int
    grids: list[tuple[int, int, int]]  # (t, h, w) in patches, as in image_grid_thw / video_grid_thw
    intervals: Sequence[float | torch.Tensor]


def visual_items(
    modality: int,
    grid_thw: torch.Tensor | None,
    intervals: Sequence[float | torch.Tensor] | None = None,
    split_frames: bool = False,
    temporal_merge: int = 1,
) -> VisualItems:
    """Grids of one modality; ``split_frames`` turns a (T, h, w) video into T (1, h, w) items (Qwen3-VL);
    ``temporal_merge`` frames form one temporal group (ERNIE-4.5-VL: a (T, h, w) video has T // 2 groups)."""
    grids: list[tuple[int, int, int]] = (
        [] if grid_thw is None else [(int(t) // temporal_merge, int(h), int(w)) for t, h, w in grid_thw.tolist()]
    )
    intervals = list(intervals) if intervals is not None else [1.0] * len(grids)
    if len(intervals) != len(grids):
        raise ValueError(f"got {len(intervals)} temporal intervals for {len(grids)} {_MODALITY_NAME[modality]} grids")
    if split_frames:
        intervals = [i for g, i in zip(grids, intervals, strict=True) for _ in range(g[0])]
        grids = [(1, g[1], g[2]) for g in grids for _ in range(g[0])]
    return VisualItems(modality, grids, intervals)


def parse_layout(
    mm_token_type_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    items: Sequence[VisualItems],
    spatial_merge_size: int,
) -> list[list[Segment]]:
    """Segments of every row, over its unpadded tokens only.

    Args:
        mm_token_type_ids (`torch.Tensor` of shape `(B, L)`): 0 text, 1 image, 2 video.
        attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 for real tokens, 0 for padding.
        items: the grids per modality (see :func:`visual_items`).
        spatial_merge_size (`int`): patches merged per side by the vision tower.
    """
    merge = spatial_merge_size
    queues = {it.modality: (it, 0) for it in items}
    types = mm_token_type_ids.tolist()
    masks = attention_mask.bool().tolist() if attention_mask is not None else None
    layout: list[list[Segment]] = []
    for row, row_types in enumerate(types):
        if masks is not None:
            row_types = [t for t, keep in zip(row_types, masks[row], strict=True) if keep]
        segments: list[Segment] = []
        start = 0
        while start < len(row_types):
            kind = row_types[start]
            end = start
            while end < len(row_types) and row_types[end] == kind:
                end += 1
            if kind == 0:
                segments.append(end - start)
            elif kind in _MODALITY_NAME:
                segments.extend(_take_blocks(queues, kind, end - start, row, start, merge))
            else:
                raise ValueError(f"mm_token_type_ids holds {kind} in row {row}; valid values: 0 text, 1 image, 2 video")
            start = end
        layout.append(segments)
    for modality, (it, used) in queues.items():
        if used != len(it.grids):
            name = _MODALITY_NAME[modality]
            raise ValueError(
                f"{name}_grid_thw has {len(it.grids)} {name} item(s) but the input's {name} placeholder tokens "
                f"hold only {used}"
            )
    return layout


def _take_blocks(queues, modality: int, run_length: int, row: int, offset: int, merge: int) -> list[VisualBlock]:
    name = _MODALITY_NAME[modality]
    if modality not in queues:
        raise ValueError(
            f"row {row} holds {name} placeholder tokens at position {offset} but no {name}_grid_thw was given"
        )
    it, used = queues[modality]
    blocks = []
    left = run_length
    while left > 0:
        if used >= len(it.grids):
            raise ValueError(
                f"row {row} has more {name} placeholder tokens than {name}_grid_thw describes "
                f"({len(it.grids)} item(s)); {left} token(s) at position {offset + run_length - left} have no grid"
            )
        t, h, w = it.grids[used]
        if h % merge or w % merge:
            raise ValueError(f"{name} grid {used} = {(t, h, w)} is not divisible by spatial_merge_size {merge}")
        block = VisualBlock(modality, (t, h // merge, w // merge), it.intervals[used])
        if block.num_tokens > left:
            raise ValueError(
                f"{name} grid {used} = {(t, h, w)} needs {block.num_tokens} placeholder tokens, "
                f"but row {row} has a run "
                f"of {run_length} {name} token(s) at position {offset} with only {left} left for it"
            )
        blocks.append(block)
        left -= block.num_tokens
        used += 1
    queues[modality] = (it, used)
    return blocks
