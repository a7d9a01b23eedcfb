"""One adapter for the Qwen-VL families; each family module declares only how it differs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from mmrope_hf.adapters import ModelHandles
from mmrope_hf.compat import missing_attribute

from ._locate import generation_owner, text_stack

ROPE_INDEX_ARGS = ("input_ids", "mm_token_type_ids", "image_grid_thw", "video_grid_thw", "attention_mask")


def unit_intervals(video_grid_thw: torch.Tensor | None, second_per_grid_ts: torch.Tensor | None) -> list:
    """Qwen2-VL and Qwen3-VL: temporal groups one position apart."""
    return [1] * (0 if video_grid_thw is None else len(video_grid_thw))


@dataclass(frozen=True)
class QwenVLAdapter:
    """Locates ``model.model.{get_rope_index, language_model.rotary_emb, language_model.layers}``.

    Attributes:
        native_frequency: ``chunked`` (Qwen2/2.5-VL) or ``interleaved`` (Qwen3-VL).
        default_section: the section the stock rotary falls back to when the config has none.
        split_video_frames: Qwen3-VL lays out every temporal group of a video as its own block.
        rope_index_args: stock positional order of ``get_rope_index``.
        video_intervals: per-video temporal interval, from the model config (bound in :meth:`locate`).
        pairing: the rotary's channel pairing, ``half`` (NeoX) or ``adjacent`` (GPT-J).
        section_order: where the config's ``mrope_section`` lists the t, h and w counts (ERNIE: [h, w, t]).
        pair_order: ``(mrope_section, num_pairs) -> where the stock inv_freq keeps each pair's frequency``, for a
            rotary that stores them permuted (ERNIE); ``None``: in order.
        temporal_merge: the ``vision_config`` attribute counting the video frames of one temporal group, if any.
        notes: what the family does differently, in a few words (the README's family table).
    """

    native_frequency: str
    default_section: tuple[int, int, int]
    split_video_frames: bool = False
    rope_index_args: tuple[str, ...] = ROPE_INDEX_ARGS
    video_intervals: Callable[[nn.Module], Callable] = lambda model: unit_intervals
    pairing: str = "half"
    section_order: tuple[int, int, int] = (0, 1, 2)
    pair_order: Callable[[Sequence[int], int], tuple[int, ...]] | None = None
    temporal_merge: str | None = None
    notes: str = ""
    stock_scheme: str = "mrope"

    def locate(self, model: nn.Module) -> ModelHandles:
        owner: Any = model if hasattr(model, "get_rope_index") else getattr(model, "model", None)
        for name in ("get_rope_index", "compute_3d_position_ids"):
            if owner is None or not callable(getattr(owner, name, None)):
                raise missing_attribute(f"{name} (on the model or model.model)", model)
        text = getattr(owner, "language_model", None)
        if text is None:
            raise missing_attribute("language_model", owner)
        stack = text_stack(owner, text, ("recomposition_frequencies",))
        vision: Any = getattr(owner.config, "vision_config", None)
        for attribute in ("spatial_merge_size", self.temporal_merge):
            if attribute is not None and not hasattr(vision, attribute):
                raise missing_attribute(f"config.vision_config.{attribute}", owner)
        section = text.config.rope_parameters.get("mrope_section") or self.default_section
        num_pairs = stack.rotary.inv_freq.shape[-1]
        return ModelHandles(
            rope_owner=owner,
            rope_index_args=self.rope_index_args,
            rotary_parent=text,
            rotary_name="rotary_emb",
            layers=stack.layers,
            num_kv_heads=text.config.num_key_value_heads,
            rotary_apply=(stack.modeling, "apply_rotary_pos_emb"),
            generation_owner=generation_owner(model, owner),
            native_frequency=self.native_frequency,
            native_section=tuple(section[i] for i in self.section_order),
            spatial_merge_size=vision.spatial_merge_size,
            split_video_frames=self.split_video_frames,
            video_intervals=self.video_intervals(owner),
            skipped_layers=stack.skipped_layers,
            temporal_merge_size=getattr(vision, self.temporal_merge) if self.temporal_merge else 1,
            pairing=self.pairing,
            pair_order=self.pair_order(section, num_pairs) if self.pair_order else None,
        )


@dataclass(frozen=True)
class TextModelAdapters:
    """A family whose text decoder is whatever ``text_config`` names (GLM-4.6V builds it with ``AutoModel``): the
    adapter of that text model type."""

    adapters: Mapping[str, QwenVLAdapter]
    stock_scheme: str = "mrope"

    @property
    def notes(self) -> str:
        return "as its text model: " + "; ".join(f"{t}: {a.notes}" for t, a in sorted(self.adapters.items()))

    def locate(self, model: nn.Module) -> ModelHandles:
        config: Any = model.config
        text_type: Any = getattr(getattr(config, "text_config", None), "model_type", None)
        if text_type not in self.adapters:
            raise TypeError(
                f"mmrope-hf does not support a {config.model_type} model with text model type {text_type!r}; "
                f"supported: {', '.join(sorted(self.adapters))}"
            )
        return self.adapters[text_type].locate(model)
