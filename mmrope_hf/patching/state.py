"""What ``patch_model`` installed on one model (``model.model._mmrope``): the scheme, the model's handles, the layer
schedule, the frequency plan, and the per-set decode deltas of the last prompt."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from mmrope_hf.adapters import ModelHandles
from mmrope_hf.config import MMRopeConfig
from mmrope_hf.frequencies.allocation import FrequencyPlan
from mmrope_hf.patching.undo import UndoLog
from mmrope_hf.patching.wrappers import unwrap_model
from mmrope_hf.positions.builder import position_options, positions_for
from mmrope_hf.positions.layout import IMAGE, VIDEO, visual_items
from mmrope_hf.positions.rows import build_positions
from mmrope_hf.schedule import LayerSchedule

STATE_ATTR = "_mmrope"


@dataclass
class PatchState:
    """What ``patch_model`` installed on a model (kept as ``model.model._mmrope``)."""

    config: MMRopeConfig
    handles: ModelHandles
    schedule: LayerSchedule
    plan: FrequencyPlan
    undo: UndoLog = field(default_factory=UndoLog)
    set_deltas: torch.Tensor | None = None  # (B, K) rope_deltas of every position set, from the last prompt
    returned_deltas: torch.Tensor | None = None  # the (B, 1) rope_deltas handed to transformers with them
    generator: torch.Generator = field(init=False, repr=False)  # training-time draws (HoPE), seeded by `seed`

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(dict(self.config.options).get("seed", 0))

    def __deepcopy__(self, memo: dict) -> PatchState:
        # The undo log and hooks point at this model's modules; a copy would unpatch (or read) the original.
        raise TypeError(
            f"copy.deepcopy of a model patched with {self.config.scheme!r} is not supported: unpatch_model(model), "
            f"copy it, then patch_model both copies (model.config.mmrope holds the scheme)"
        )

    def position_options(self):
        """The options the designs read, with the model's training mode and this patch's generator."""
        return replace(
            position_options(self.config), training=self.handles.rope_owner.training, generator=self.generator
        )

    def info(self) -> dict[str, Any]:
        return {
            **self.config.to_dict(),
            "spatial_reset": self.config.spatial_reset,
            "resolved_frequency": self.plan.name,
            "resolved_mrope_section": list(self.plan.section),
            "position_sets": list(self.schedule.designs),
            "layer_sets": list(self.schedule.layer_sets),
        }

    def rope_index(
        self,
        input_ids: torch.Tensor,
        mm_token_type_ids: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        second_per_grid_ts: torch.Tensor | None = None,
        **_: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scheme's ``(positions (3K, B, L), rope_deltas (B, 1))``; stock ``get_rope_index`` semantics.

        ``rope_deltas`` is set 0's; the deltas of every set are kept in ``set_deltas`` for decoding.
        """
        positions, deltas = self.positions_and_deltas(
            input_ids, mm_token_type_ids, image_grid_thw, video_grid_thw, attention_mask, second_per_grid_ts
        )
        self.set_deltas, self.returned_deltas = deltas, deltas[:, :1]
        return positions, self.returned_deltas

    def positions_and_deltas(
        self,
        input_ids: torch.Tensor,
        mm_token_type_ids: torch.Tensor | None,
        image_grid_thw: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        second_per_grid_ts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positions (3K, B, L), rope_deltas (B, K))`` of this patch for a batch, with the model's training mode
        (HoPE draws strides while training); no state is kept (collators call this)."""
        if mm_token_type_ids is None:
            raise ValueError(
                f"get_rope_index needs mm_token_type_ids (0 text, 1 image, 2 video) to place the "
                f"{self.config.scheme} positions; the Qwen processors return it with input_ids"
            )
        handles = self.handles
        items = [
            visual_items(IMAGE, image_grid_thw),
            visual_items(
                VIDEO,
                video_grid_thw,
                handles.video_intervals(video_grid_thw, second_per_grid_ts),
                split_frames=handles.split_video_frames,
                temporal_merge=handles.temporal_merge_size,
            ),
        ]
        return positions_for(
            self.schedule.designs,
            mm_token_type_ids.to(input_ids.device),
            attention_mask,
            items,
            handles.spatial_merge_size,
            self.position_options(),
        )

    def positions(
        self,
        layout: list,
        attention_mask: torch.Tensor | None,
        shape: tuple[int, int],
        device: torch.device | None = None,
    ) -> torch.Tensor:
        """The scheme's positions ``(3K, B, L)`` for a per-row segment layout (families that lay out their inputs
        themselves, e.g. LLaVA); the ``rope_deltas`` of every set are kept in ``set_deltas`` for decoding."""
        positions, self.set_deltas = build_positions(
            self.schedule.designs, layout, self.position_options(), attention_mask, shape, device
        )
        return positions

    def expand_sets(self, positions: torch.Tensor) -> torch.Tensor:
        """Set 0's decoding positions ``(1 or 3, B, L)`` (stock: text position + ``rope_deltas``) -> ``(3K, B, L)``,
        each set moved to its own end. ``set_deltas`` only count while ``rope_deltas`` is still the one they came
        with (text-only prompts get fresh zero deltas from transformers, and then every set agrees)."""
        sets = self.schedule.num_sets
        base = positions.expand(3, -1, -1)
        deltas = self.set_deltas
        if deltas is None or self.handles.rope_owner.rope_deltas is not self.returned_deltas:
            return base.repeat(sets, 1, 1)
        offsets = (deltas - deltas[:, :1]).repeat_interleave(base.shape[1] // deltas.shape[0], dim=0)
        offsets = offsets.to(device=base.device, dtype=torch.promote_types(base.dtype, offsets.dtype))
        return torch.cat([base + offsets[:, k].view(1, -1, 1) for k in range(sets)])


def find_state(model: nn.Module) -> PatchState | None:
    """The patch on ``model`` (seen through training wrappers: PEFT, DDP, torch.compile), ``None`` if unpatched."""
    model = unwrap_model(model)
    for candidate in (model, getattr(model, "model", None)):
        state = getattr(candidate, STATE_ATTR, None) if isinstance(candidate, nn.Module) else None
        if isinstance(state, PatchState):
            return state
    return None
