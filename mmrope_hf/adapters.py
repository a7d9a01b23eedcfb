"""Model adapters: where a model family keeps what the patcher replaces. No RoPE maths here.

An adapter is registered for one or more ``config.model_type`` values and turns a model into
:class:`ModelHandles`, checking that every attribute it hands out exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class ModelHandles:
    """Everything the patcher needs from one model instance.

    Attributes:
        rope_owner: the module that keeps the patch state (``model.model``); on Qwen-VL its ``get_rope_index`` is
            replaced.
        rope_index_args: the stock positional parameter order of ``get_rope_index``.
        rotary_parent / rotary_name: ``getattr(rotary_parent, rotary_name)`` is the text rotary module.
        layers: the decoder layers that rotate, in order: on a hybrid stack (Qwen3.5: Gated-DeltaNet
            linear-attention layers between full-attention ones) only the layers with a ``self_attn``; layer
            schedules count these.
        skipped_layers: decoder layers without RoPE (linear attention), not in ``layers``.
        num_kv_heads: key/value heads of the text attention.
        rotary_apply: (modeling module, function name) of the ``apply_rotary_pos_emb`` text attention calls.
        generation_owner: the module with ``_prepare_position_ids_for_generation``, if any.
        native_frequency / native_section: the model's own allocation and ``mrope_section``.
        spatial_merge_size: patches merged per side by the vision tower.
        split_video_frames: whether each temporal group of a video is its own block (Qwen3-VL).
        temporal_merge_size: video frames merged into one temporal group by the vision tower (ERNIE-4.5-VL: 2).
        pairing: the rotary's channel pairing, ``half`` (NeoX) or ``adjacent`` (GPT-J: GLM-4.1V, GLM-OCR, ERNIE).
        pair_order: where the stock rotary keeps the frequency of each rotary pair in its ``inv_freq``, when not in
            order (ERNIE-4.5-VL stores them pre-permuted for its own allocation); ``None``: in order.
        video_intervals: ``(video_grid_thw, second_per_grid_ts) -> one temporal interval per video``.
        install: ``(state, undo) -> None``, the family's own position plumbing (hooks, recorded in ``undo``), for
            models without ``get_rope_index`` (LLaVA); ``None`` (Qwen-VL) replaces ``rope_owner.get_rope_index``.
            The patcher installs the rotary, the MHRoPE dispatcher and the per-layer hooks either way.
    """

    rope_owner: Any  # an nn.Module with family-specific attributes (get_rope_index, rope_deltas, ...)
    rope_index_args: tuple[str, ...]
    rotary_parent: Any
    rotary_name: str
    layers: Sequence[nn.Module]
    num_kv_heads: int
    rotary_apply: tuple[ModuleType, str]
    generation_owner: Any
    native_frequency: str
    native_section: tuple[int, ...]
    spatial_merge_size: int
    split_video_frames: bool
    video_intervals: Callable[[torch.Tensor | None, torch.Tensor | None], list]
    install: Callable[[Any, Any], None] | None = None
    skipped_layers: int = 0
    temporal_merge_size: int = 1
    pairing: str = "half"
    pair_order: tuple[int, ...] | None = None

    @property
    def rotary(self) -> Any:
        return getattr(self.rotary_parent, self.rotary_name)


class ModelAdapter(Protocol):
    """Where one family keeps its parts. ``stock_scheme`` is the named scheme that is the stock model on it
    (``mrope`` where the model has 3D positions, ``vanilla`` on a 1D model); ``notes`` says in a few words what the
    family does differently (the README's family table is generated from both)."""

    stock_scheme: str
    notes: str

    def locate(self, model: nn.Module) -> ModelHandles: ...
