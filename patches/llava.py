"""LLaVA-1.5, LLaVA-NeXT and LLaVA-OneVision (any 1D-RoPE language model inside: Llama, Mistral, Qwen2, ...).

These models have no 3D positions of their own: the language model gets embeddings and 1D ``position_ids``. The
adapter lays out each prompt (:mod:`._llava_layout`), asks the core for the scheme's positions, and carries them
to the rotary:

1. a forward pre-hook on the LLaVA model (``model.model``), where ``input_ids`` are still visible, builds a
   ``(3K + 1, B, L)`` tensor ``[text; t; h; w; ...]`` (K position sets) when ``position_ids`` is not given and the
   batch holds placeholder tokens; with a non-empty cache (manual decoding) it continues from the prompt's
   ``rope_deltas`` instead (the unpadded token index, from the attention mask when given, + the deltas of each set);
2. ``_prepare_position_ids_for_generation`` on the outer model returns the same tensor for ``generate`` (its text row
   is the stock one, ``mask.cumsum - 1``), which then adds 1 to every row per step; continuing from a cache it adds
   the last prompt's deltas to the text row;
3. a forward pre-hook on ``language_model`` passes the text row on as its ``position_ids`` (masks, sliding windows
   and flash-attention packing see 1D positions, as in the stock model) and hands the other rows to the rotary
   (the core's :class:`~mmrope_hf.rotary.MultimodalRotaryEmbedding`, which reuses the LLM's ``inv_freq`` and
   ``attention_scaling``) through a pre-hook on the rotary.

Text-only batches, explicit 2D ``position_ids`` and ``inputs_embeds``-only calls keep the model's own 1D positions,
which every design reduces to for text. A scheme whose every position set is ``vanilla`` installs no position hook
at all: it *is* the model's 1D RoPE, so logits and generations are bit-identical to the stock model.

Frequencies: a 1D model has no 3D allocation of its own. ``native`` here is ``interleaved`` (MRoPE-I: every axis
spans the whole spectrum) with the default section scaled to the head dim (h = w = floor(20 P / 64), t the rest,
P = head_dim / 2: [24, 20, 20] at head_dim 128, [6, 5, 5] at head_dim 32; see :mod:`mmrope_hf.frequencies.allocation`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import torch
from torch import nn

from mmrope_hf.adapters import ModelHandles
from mmrope_hf.compat import missing_attribute
from mmrope_hf.frequencies.allocation import ALLOCATIONS
from mmrope_hf.frequencies.rotary import rotary_tables

from ._llava_layout import LlavaGeometry, TokenLayout
from ._locate import generation_owner, text_stack

NATIVE_FREQUENCY = "interleaved"
ONE_DIMENSIONAL = "vanilla"  # the position design that equals the model's own 1D positions


def _no_grids(video_grid_thw, second_per_grid_ts) -> list:  # Qwen-VL's get_rope_index input; unused here
    return []


@dataclass(frozen=True)
class LlavaAdapter:
    """Locates ``model.model.{<text_attr>.rotary_emb, <text_attr>.layers}`` and installs the plumbing above.

    Attributes:
        geometry: the family's token layout, read from the inner model (``model.model``).
        text_attr / vision_attr: the inner model's language model and vision tower (Idefics3: ``text_model``,
            ``vision_model``).
        notes: what the family does differently, in a few words (the README's family table).
    """

    geometry: Callable[[Any], TokenLayout]
    text_attr: str = "language_model"
    vision_attr: str = "vision_tower"
    notes: str = "1D language model: 3D positions laid out from the placeholders"
    stock_scheme: str = ONE_DIMENSIONAL

    def locate(self, model: nn.Module) -> ModelHandles:
        inner = getattr(model, "model", None)
        owner: Any = inner if isinstance(getattr(inner, self.text_attr, None), nn.Module) else model
        for name in (self.text_attr, self.vision_attr):
            if not isinstance(getattr(owner, name, None), nn.Module):
                raise missing_attribute(f"{name} (on the model or model.model)", model)
        text = getattr(owner, self.text_attr)
        stack = text_stack(owner, text, ())
        outer = generation_owner(model, owner)
        geometry = self.geometry(owner)
        num_pairs = next(iter(rotary_tables(stack.rotary).values())).inv_freq.shape[-1]
        return ModelHandles(
            rope_owner=owner,
            rope_index_args=(),
            rotary_parent=text,
            rotary_name="rotary_emb",
            layers=stack.layers,
            num_kv_heads=text.config.num_key_value_heads,
            rotary_apply=(stack.modeling, "apply_rotary_pos_emb"),
            generation_owner=outer,
            native_frequency=NATIVE_FREQUENCY,
            native_section=ALLOCATIONS.get(NATIVE_FREQUENCY).default_section(num_pairs),
            spatial_merge_size=1,
            split_video_frames=False,
            video_intervals=_no_grids,
            install=partial(install, geometry, owner, text, outer),
            skipped_layers=stack.skipped_layers,
        )


# -- plumbing ---------------------------------------------------------------------------------------------------


@dataclass
class _Carry:
    """The (t, h, w) rows of the current language-model call, from its pre-hook to its rotary calls."""

    rows: torch.Tensor | None = None


def install(
    geometry: TokenLayout,
    owner: nn.Module,
    text: nn.Module,
    generation_owner: nn.Module | None,
    state: Any,
    undo: Any,
) -> None:
    """Install the position plumbing (module docstring) on one model; every step is recorded in ``undo``."""
    if all(design == ONE_DIMENSIONAL for design in state.schedule.designs):
        return  # the model's own 1D positions are the vanilla design: nothing to carry
    carry = _Carry()
    undo.add_hook(owner.register_forward_pre_hook(partial(_owner_hook, geometry, state), with_kwargs=True))
    undo.add_hook(
        text.register_forward_pre_hook(partial(_split_hook, carry, state.schedule.num_sets), with_kwargs=True)
    )
    undo.add_hook(text.register_forward_hook(partial(_clear_carry, carry), always_call=True))
    undo.add_hook(state.handles.rotary.register_forward_pre_hook(partial(_rotary_hook, carry), with_kwargs=True))
    if generation_owner is not None:
        original = generation_owner._prepare_position_ids_for_generation
        undo.set_attr(
            generation_owner,
            "_prepare_position_ids_for_generation",
            partial(_generation_positions, original, geometry, state),
        )


def _named(module: nn.Module, args: tuple, kwargs: dict) -> dict:
    """The call's arguments by name (positional ones bound to the forward signature)."""
    if not args:
        return dict(kwargs)
    names = [p for p in inspect.signature(module.forward).parameters if p not in ("args", "kwargs")]
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _mask_2d(mask: Any) -> torch.Tensor | None:
    return mask if isinstance(mask, torch.Tensor) and mask.ndim == 2 else None


def _cache_length(cache: Any) -> int:
    return int(cache.get_seq_length()) if cache is not None else 0


_PLACEHOLDERS_AFTER_PROMPT = (
    "image/video placeholder tokens after the prompt (with a non-empty cache) cannot be placed from the prompt's "
    "rope_deltas; pass explicit position_ids, or the whole prompt without a cache"
)


def _no_placeholders_after_prompt(geometry: TokenLayout, new_ids: torch.Tensor) -> None:
    tokens = [t for t in (geometry.image_token_id, geometry.video_token_id) if t is not None]
    found = [(new_ids == t).any() for t in tokens]
    if torch.compiler.is_compiling():  # a compiled decode step reads no value on the host: the check is an op
        for placed in found:
            torch._assert_async(~placed, _PLACEHOLDERS_AFTER_PROMPT)
    elif any(found):
        raise ValueError(_PLACEHOLDERS_AFTER_PROMPT)


def _from_deltas(state: Any, index: torch.Tensor) -> torch.Tensor | None:
    """Positions ``(3K, B, L)`` continuing the last prompt: unpadded token ``index`` (B or 1, L) + each set's delta."""
    deltas = state.set_deltas
    if deltas is None:
        return None
    if index.shape[0] not in (1, deltas.shape[0]):
        raise ValueError(
            f"decoding a batch of {index.shape[0]} from a prompt batch of {deltas.shape[0]}: pass position_ids"
        )
    deltas = deltas.to(index.device)
    sets = index[None] + deltas.T[:, :, None]  # (K, B, L)
    return sets.repeat_interleave(3, dim=0)


def _with_text_row(text_row: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    text_row = text_row.expand(positions.shape[1], -1).to(positions.dtype)
    return torch.cat([text_row[None], positions])


@torch.compiler.disable  # host work on the token layout: out of a compiled graph in one piece (with the text row)
def _prompt_positions(geometry: TokenLayout, state: Any, input_ids: torch.Tensor, mask, inputs: dict):
    layout = geometry.layout(input_ids, mask, inputs)
    if layout is None:
        state.set_deltas = None  # a text-only prompt: 1D positions now and while decoding it
        return None
    positions = state.positions(layout, mask, tuple(input_ids.shape), input_ids.device)
    return _with_text_row(torch.arange(input_ids.shape[1], device=input_ids.device)[None], positions)


def _owner_hook(geometry: TokenLayout, state: Any, module: nn.Module, args: tuple, kwargs: dict):
    inputs = _named(module, args, kwargs)
    input_ids = inputs.get("input_ids")
    if inputs.get("position_ids") is not None or input_ids is None:
        return None  # explicit positions win; inputs_embeds alone keep the model's 1D positions
    mask = _mask_2d(inputs.get("attention_mask"))
    length = input_ids.shape[1]
    cache = inputs.get("past_key_values")
    if cache is not None and mask is not None and mask.shape[-1] > length:
        # Decoding, as the mask over past + new tokens says: tensors only (no read of the cache length, which a
        # static cache keeps in a tensor), so that a compiled decode step has no graph break.
        past = mask.shape[-1] - length
        _no_placeholders_after_prompt(geometry, input_ids)
        positions = _from_deltas(state, (mask.long().cumsum(-1) - 1)[:, -length:])
    elif (past := _cache_length(cache)) == 0:
        inputs["position_ids"] = _prompt_positions(geometry, state, input_ids, mask, inputs)
        return None if inputs["position_ids"] is None else ((), inputs)
    else:  # a cache without a mask over past + new tokens: the new tokens follow the cache's length
        _no_placeholders_after_prompt(geometry, input_ids)
        positions = _from_deltas(state, torch.arange(past, past + length, device=input_ids.device)[None])
    if positions is None:
        return None
    text_row = torch.arange(past, past + length, device=input_ids.device)[None]  # the stock language model's rule
    inputs["position_ids"] = _with_text_row(text_row, positions)
    return (), inputs


def _split_hook(carry: _Carry, num_sets: int, module: nn.Module, args: tuple, kwargs: dict):
    carry.rows = None
    inputs = _named(module, args, kwargs)
    positions = inputs.get("position_ids")
    if not isinstance(positions, torch.Tensor) or positions.ndim != 3 or positions.shape[0] == 1:
        return None
    rows = positions.shape[0]
    if rows == 3 * num_sets + 1:
        text_row, carry.rows = positions[0], positions[1:]
        inputs["position_ids"] = text_row.long() if text_row.is_floating_point() else text_row
    elif rows in (3, 3 * num_sets):
        carry.rows = positions
        inputs["position_ids"] = None  # the language model counts the text positions itself
    else:
        raise ValueError(
            f"position_ids has {rows} rows; with {num_sets} position set(s) the language model takes 2D positions, "
            f"or {3 * num_sets + 1} rows (text row + 3 per set) as mmrope-hf builds them"
        )
    return (), inputs


def _clear_carry(carry: _Carry, *_: Any) -> None:
    carry.rows = None


def _rotary_hook(carry: _Carry, module: nn.Module, args: tuple, kwargs: dict):
    """Every rotary call of the language-model call reads the carried rows (Gemma 3 calls it once per layer type);
    other arguments (``layer_type``) pass through."""
    if carry.rows is None:
        return None
    if len(args) >= 2:
        return (args[0], carry.rows, *args[2:]), kwargs
    x = args[0] if args else kwargs.pop("x")
    return (x,), {**kwargs, "position_ids": carry.rows}


def _generation_positions(original, geometry: TokenLayout, state: Any, inputs_tensor: torch.Tensor, model_kwargs: dict):
    text_row = original(inputs_tensor, model_kwargs)
    input_ids = model_kwargs.get("input_ids")
    if input_ids is None or input_ids.shape[1] == 0:
        input_ids = inputs_tensor
    if input_ids is None or input_ids.ndim != 2 or input_ids.is_floating_point():
        return text_row  # inputs_embeds only: the model's 1D positions
    mask = _mask_2d(model_kwargs.get("attention_mask"))
    past = _cache_length(model_kwargs.get("past_key_values"))
    if past == 0:
        layout = geometry.layout(input_ids, mask, model_kwargs)
        if layout is None:
            state.set_deltas = None
            return text_row
        positions = state.positions(layout, mask, tuple(input_ids.shape), input_ids.device)
    else:  # continuing from a cache: the new tokens follow the last prompt (stock Qwen-VL does the same)
        _no_placeholders_after_prompt(geometry, input_ids[:, past:])
        positions = _from_deltas(state, text_row)
        if positions is None:
            return text_row
    return _with_text_row(text_row, positions)


ADAPTERS = {
    family: LlavaAdapter(partial(LlavaGeometry.of, family)) for family in ("llava", "llava_next", "llava_onevision")
}
