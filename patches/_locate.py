"""Lookups every adapter makes: the text decoder's rotary, layers and attention module, checked to exist."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from torch import nn

from mmrope_hf.compat import missing_attribute
from mmrope_hf.frequencies.rotary import rotary_tables


@dataclass(frozen=True)
class TextStack:
    """The text decoder's rotary, its rotating layers (those with ``self_attn``; a hybrid stack's linear-attention
    layers have none and carry no RoPE), how many layers that leaves out, and their attention's modeling module."""

    rotary: Any
    layers: list[Any]
    skipped_layers: int
    modeling: ModuleType


def text_stack(owner: nn.Module, text: Any, rotary_attrs: tuple[str, ...]) -> TextStack:
    """The :class:`TextStack` of ``text`` (``text.rotary_emb``, ``text.layers``), or a version error."""
    rotary: Any = getattr(text, "rotary_emb", None)
    for name in rotary_attrs:
        if not hasattr(rotary, name):
            raise missing_attribute(f"language_model.rotary_emb.{name}", owner)
    for layer_type, table in rotary_tables(rotary).items():
        for name in ("inv_freq", "attention_scaling", "rope_type"):
            if not hasattr(table, name):
                prefix = "" if layer_type is None else f"{layer_type}_"
                raise missing_attribute(f"language_model.rotary_emb.{prefix}{name}", owner)
    layers: Any = getattr(text, "layers", None)
    rotating = [layer for layer in layers if hasattr(layer, "self_attn")] if isinstance(layers, nn.ModuleList) else []
    if not rotating:
        raise missing_attribute("language_model.layers[i].self_attn", owner)
    modeling = sys.modules[type(rotating[0].self_attn).__module__]
    if not callable(getattr(modeling, "apply_rotary_pos_emb", None)):
        raise missing_attribute(f"apply_rotary_pos_emb in {modeling.__name__}", owner)
    return TextStack(rotary, rotating, len(layers) - len(rotating), modeling)


def generation_owner(model: nn.Module, owner: nn.Module) -> Any:
    """The outer model whose ``_prepare_position_ids_for_generation`` generate calls, when one was passed."""
    if model is owner:
        return None
    if not hasattr(model, "_prepare_position_ids_for_generation"):
        raise missing_attribute("_prepare_position_ids_for_generation", model)
    return model
