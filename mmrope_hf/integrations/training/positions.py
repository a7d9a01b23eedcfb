"""Positions of training batches: the scheme's ``(3K, B, L)`` sets, from a patched model or from a scheme alone, and
the text row that transformers reads for masks and packed-sequence boundaries."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

from mmrope_hf.config import MMRopeConfig
from mmrope_hf.positions.builder import build_position_ids

PositionFunction = Callable[..., torch.Tensor]
"""``(input_ids, mm_token_type_ids, image_grid_thw, video_grid_thw, attention_mask, second_per_grid_ts)`` ->
``(3K, B, L)`` positions."""


def model_positions(model: nn.Module) -> tuple[PositionFunction, int, bool, int]:
    """The position function of a patched model (its scheme, schedule, video timing and training mode), with its
    spatial merge size, frame splitting and temporal merge (frames per temporal group of a video)."""
    from mmrope_hf.patching.state import find_state

    state = find_state(model)
    if state is None:
        raise ValueError(
            "the model is not patched: call mmrope_hf.patch_model(model, scheme) first, "
            "or pass a scheme name to the collator"
        )

    def positions(input_ids, mm_token_type_ids, image_grid_thw, video_grid_thw, attention_mask, second_per_grid_ts):
        return state.positions_and_deltas(
            input_ids, mm_token_type_ids, image_grid_thw, video_grid_thw, attention_mask, second_per_grid_ts
        )[0]

    handles = state.handles
    return positions, handles.spatial_merge_size, handles.split_video_frames, handles.temporal_merge_size


def scheme_positions(
    scheme: str | Mapping[str, Any] | MMRopeConfig,
    spatial_merge_size: int,
    tokens_per_second: float | None,
    split_video_frames: bool,
    num_layers: int | None,
    options: Mapping[str, Any],
) -> PositionFunction:
    """The inference-mode position function of a scheme, as :func:`~mmrope_hf.build_position_ids`."""

    def positions(input_ids, mm_token_type_ids, image_grid_thw, video_grid_thw, attention_mask, second_per_grid_ts):
        return build_position_ids(
            scheme,
            input_ids,
            mm_token_type_ids,
            image_grid_thw,
            video_grid_thw,
            attention_mask,
            second_per_grid_ts,
            spatial_merge_size=spatial_merge_size,
            tokens_per_second=tokens_per_second,
            split_video_frames=split_video_frames,
            num_layers=num_layers,
            **options,
        )[0]

    return positions


def sample_boundaries(position_ids: torch.Tensor) -> torch.Tensor:
    """Sample index of every token of packed rows, from the text row only (``position_ids[0]`` of a
    ``(3K + 1, B, L)`` tensor, or a ``(B, L)`` text row): a new sample starts wherever the text position does not
    go up by exactly 1 (transformers' rule)."""
    text = position_ids[0] if position_ids.ndim == 3 else position_ids
    diff = torch.diff(text, prepend=text[:, :1] - 1, dim=-1)
    return (diff != 1).cumsum(-1)
