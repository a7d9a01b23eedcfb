"""Positions for a batch: the loop-free path when every design has one, else the per-row reference.

The loop-free builder (:mod:`mmrope_hf.positions.batch`) runs in numpy for CPU tensors (no intra-op thread pool
to wake, ~1 us per op) and in torch on an accelerator, where the per-row path would read the token types back
to the host; both give the per-row reference's positions (the tests compare them).

:func:`build_position_ids` is the model-free entry point (data loaders, collators); patched models call
:func:`positions_for` with the same arguments from their ``get_rope_index``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from mmrope_hf.config import MMRopeConfig, resolve_config
from mmrope_hf.positions.batch import batch_positions
from mmrope_hf.positions.design import PositionOptions
from mmrope_hf.positions.layout import IMAGE, VIDEO, VisualItems, parse_layout, visual_items
from mmrope_hf.positions.registry import POSITION_DESIGNS
from mmrope_hf.positions.rows import build_positions
from mmrope_hf.schedule import layer_schedule


def positions_for(
    designs: Sequence[str],
    mm_token_type_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    items: Sequence[VisualItems],
    spatial_merge_size: int,
    options: PositionOptions,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positions (3K, B, L), rope_deltas (B, K))`` of K designs over a batch (see :func:`build_positions`)."""
    forms = [POSITION_DESIGNS.get(name).batch for name in designs]
    batch_forms = [form for form in forms if form is not None]
    if len(batch_forms) == len(forms):
        fast = batch_positions(
            designs, batch_forms, mm_token_type_ids, attention_mask, items, spatial_merge_size, options
        )
        if fast is not None:
            return fast
    layout = parse_layout(mm_token_type_ids, attention_mask, items, spatial_merge_size)
    return build_positions(
        designs,
        layout,
        options,
        attention_mask,
        (mm_token_type_ids.shape[0], mm_token_type_ids.shape[1]),
        mm_token_type_ids.device,
    )


def position_options(config: MMRopeConfig) -> PositionOptions:
    return PositionOptions(config.temporal_stride, config.vision_advance, dict(config.options))


def build_position_ids(
    scheme: str | Mapping[str, Any] | MMRopeConfig,
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    *,
    spatial_merge_size: int = 2,
    tokens_per_second: float | None = None,
    split_video_frames: bool = False,
    num_layers: int | None = None,
    **options: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of a scheme for a batch, without a model.

    Args:
        scheme: a preset name, YAML/JSON path, dict or :class:`MMRopeConfig`; ``**options`` override it.
        input_ids (`torch.Tensor` of shape `(B, L)`): only its shape and device are used.
        mm_token_type_ids (`torch.Tensor` of shape `(B, L)`): 0 text, 1 image, 2 video.
        image_grid_thw / video_grid_thw (`torch.Tensor` of shape `(N, 3)`): grids in patches, in batch order.
        attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): padded slots get position 0.
        second_per_grid_ts (`torch.Tensor` of shape `(num_videos,)`, *optional*): with ``tokens_per_second``,
            Qwen2.5-VL's temporal step ``tokens_per_second * second_per_grid_ts``.
        spatial_merge_size: ``config.vision_config.spatial_merge_size`` (2 on every Qwen-VL).
        tokens_per_second: Qwen2.5-VL's ``vision_config.tokens_per_second``; ``None``: one step per group.
        split_video_frames: Qwen3-VL lays out every temporal group of a video as its own block.
        num_layers: decoder depth, for a layer schedule (``None``: every design the schedule names).

    Returns:
        positions (`torch.Tensor` of shape `(3K, B, L)`): (t, h, w) rows of each of the K position sets.
        rope_deltas (`torch.Tensor` of shape `(B, K)`): per set, next position minus unpadded length.

    >>> ids = torch.zeros(1, 7, dtype=torch.long)
    >>> types = torch.tensor([[0, 1, 1, 1, 1, 0, 0]])
    >>> positions, deltas = build_position_ids("mrope-i", ids, types, image_grid_thw=torch.tensor([[1, 4, 4]]))
    >>> positions[:, 0].tolist(), deltas.tolist()
    ([[0, 1, 1, 1, 1, 3, 4], [0, 0, 0, 1, 1, 3, 4], [0, 0, 1, 0, 1, 3, 4]], [[-2]])
    """
    config = resolve_config(scheme, **options)
    designs = (
        layer_schedule(config.position, config.stagger_with, config.layers, num_layers).designs
        if num_layers is not None
        else config.designs
    )
    count = 0 if video_grid_thw is None else len(video_grid_thw)
    seconds = [1.0] * count if second_per_grid_ts is None else list(second_per_grid_ts)
    intervals = [tokens_per_second * s if tokens_per_second is not None else 1 for s in seconds]
    items = [
        visual_items(IMAGE, image_grid_thw),
        visual_items(VIDEO, video_grid_thw, intervals, split_frames=split_video_frames),
    ]
    if mm_token_type_ids.shape != input_ids.shape:
        raise ValueError(
            f"mm_token_type_ids has shape {tuple(mm_token_type_ids.shape)}, input_ids {tuple(input_ids.shape)}"
        )
    return positions_for(
        designs,
        mm_token_type_ids.to(input_ids.device),
        attention_mask,
        items,
        spatial_merge_size,
        position_options(config),
    )


def text_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Text row of a padded batch: 0, 1, 2, ... over the real tokens, 0 on padding."""
    return ((attention_mask.long().cumsum(-1) - 1) * attention_mask.long()).clamp(min=0)
