"""Position plumbing of the families with a ``get_rope_index`` (Qwen-VL): the replaced ``get_rope_index``, input
checks, generation and multi-set decoding, and the 4-row packing relay."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
from torch import nn

from mmrope_hf.patching.state import PatchState
from mmrope_hf.patching.undo import UndoLog
from mmrope_hf.positions.builder import text_positions

_GRID_KEYS = ("image_grid_thw", "video_grid_thw")


def _rope_index_method(state: PatchState) -> Callable:
    names = state.handles.rope_index_args

    # Position building reads the token layout on the host (item counts, run lengths): under torch.compile it is
    # left out of the graph in one piece (one graph break, where the stock get_rope_index makes several).
    @torch.compiler.disable
    def get_rope_index(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if len(args) > len(names):
            raise TypeError(f"get_rope_index takes at most {len(names)} positional arguments ({', '.join(names)})")
        for name, value in zip(names, args, strict=False):
            if name in kwargs:
                raise TypeError(f"get_rope_index got multiple values for argument {name!r}")
            kwargs[name] = value
        return state.rope_index(**kwargs)

    get_rope_index.__doc__ = PatchState.rope_index.__doc__
    return get_rope_index


def _needs_token_types(kwargs: dict[str, Any], scheme: str) -> None:
    if any(kwargs.get(key) is not None for key in _GRID_KEYS) and kwargs.get("mm_token_type_ids") is None:
        raise ValueError(
            f"visual inputs (image_grid_thw/video_grid_thw) were passed without mm_token_type_ids, so the "
            f"{scheme} positions cannot be placed (stock transformers would silently use 1D positions); pass "
            f"the processor's mm_token_type_ids, or explicit position_ids"
        )


def _check_forward_inputs(scheme: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
    if kwargs.get("position_ids") is not None:
        return
    if kwargs.get("input_ids") is not None:
        _needs_token_types(kwargs, scheme)
    elif any(kwargs.get(key) is not None for key in _GRID_KEYS):
        raise ValueError(
            f"inputs_embeds without input_ids and with visual inputs: the {scheme} positions need the token layout "
            f"(stock transformers would silently use 1D positions); pass input_ids as well, or position_ids from "
            f"model.model.get_rope_index / mmrope_hf.build_position_ids"
        )


def _generation_positions(original: Callable, state: PatchState, inputs_tensor: torch.Tensor, model_kwargs: dict):
    _needs_token_types(model_kwargs, state.config.scheme)
    positions = original(inputs_tensor, model_kwargs)
    if state.schedule.num_sets > 1 and positions.shape[0] == 1:  # continuing from a cache: text + rope_deltas
        positions = state.expand_sets(positions)
    return positions


def _decoding_positions(original: Callable, state: PatchState, **kwargs: Any):
    """Stock ``compute_3d_position_ids``, for the new tokens only, in every position set, without host work while
    decoding.

    Decoding from a cache without ``position_ids`` and with a 2-D ``attention_mask`` over past + new tokens, the
    stock method counts the text positions over the whole mask and returns past + new columns; stock transformers
    5.23 then crashes (the rotary gives the one new token past + 1 positions). Here the new tokens are the mask's
    last columns, and a mask longer than the new tokens says that the cache holds a past: their positions are the
    unpadded token index + ``rope_deltas``, built from tensors only (the stock method reads the cache length,
    which a static cache keeps in a tensor: a host sync, and a graph break under torch.compile). ``generate``
    never gets here: it passes ``position_ids``.
    """
    embeds = kwargs.get("inputs_embeds")
    new = embeds.shape[1] if embeds is not None else kwargs["input_ids"].shape[1]
    mask, deltas = kwargs.get("attention_mask"), state.handles.rope_owner.rope_deltas
    decoding = kwargs.get("past_key_values") is not None and deltas is not None
    if decoding and isinstance(mask, torch.Tensor) and mask.ndim == 2 and mask.shape[-1] > new:
        index = text_positions(mask)[:, -new:]
        deltas = deltas.to(index.device).repeat_interleave(index.shape[0] // deltas.shape[0], dim=0)
        positions = (index + deltas)[None].expand(3, -1, -1)
    else:
        positions = original(**kwargs)
        if positions is None:
            return None
        if positions.shape[-1] > new:
            positions = positions[..., -new:]
    if state.schedule.num_sets > 1 and positions.shape[0] == 3:  # from rope_deltas
        positions = state.expand_sets(positions)
    return positions


def install_packed_relay(text_model: nn.Module, rotary: nn.Module, num_sets: int, undo: UndoLog) -> None:
    """K > 1 position sets keep transformers' 4-row packing contract.

    The Qwen-VL text models split off a text row (attention masks, packed-sequence and flash-attention varlen
    boundaries) only from a ``(4, B, L)`` tensor. A ``(3K + 1, B, L)`` tensor (text row + K sets, as the
    collator and ``generate`` pass it) goes on to the text model as ``[text row; set 0]`` (4 rows), and the
    rotary gets the K sets back from a pre-hook, within the same forward. A rotary call that does not carry this
    forward's positions raises: left alone, every layer would silently read set 0.
    """
    relay: list[torch.Tensor] = []

    def text_model_pre_hook(module: nn.Module, args: tuple, kwargs: dict):
        positions = kwargs.get("position_ids")
        relay.clear()
        if isinstance(positions, torch.Tensor) and positions.ndim == 3 and positions.shape[0] == 3 * num_sets + 1:
            relay.append(positions[1:])
            kwargs["position_ids"] = positions[:4]
            return args, kwargs
        return None

    def rotary_pre_hook(module: nn.Module, args: tuple, kwargs: dict):
        if not relay:
            return None
        sets = relay[0]  # kept for every rotary call of this forward; the text model's forward hook clears it
        if len(args) >= 2 and args[1].shape[1:] == sets.shape[1:]:
            return (args[0], sets, *args[2:]), kwargs
        if "position_ids" in kwargs and kwargs["position_ids"].shape[1:] == sets.shape[1:]:
            return args, {**kwargs, "position_ids": sets}
        raise RuntimeError(
            f"mmrope-hf: {type(module).__name__} was called without position_ids of shape (..., "
            f"{', '.join(map(str, sets.shape[1:]))}) in a forward given {num_sets} position sets, so it cannot be "
            "handed the sets; every layer would read set 0 (is this a transformers version whose text model calls "
            "its rotary differently?)"
        )

    undo.add_hook(text_model.register_forward_pre_hook(text_model_pre_hook, with_kwargs=True))
    undo.add_hook(text_model.register_forward_hook(lambda *_: relay.clear(), always_call=True))
    undo.add_hook(rotary.register_forward_pre_hook(rotary_pre_hook, with_kwargs=True))


def install_rope_index(state: PatchState, undo: UndoLog) -> None:
    """Qwen-VL position plumbing: ``get_rope_index``, the input checks, generation and decoding from a cache."""
    handles, owner = state.handles, state.handles.rope_owner
    undo.set_attr(owner, "get_rope_index", _rope_index_method(state))
    owner.rope_deltas = None  # deltas of the previous scheme would be stale
    undo.add_step(lambda: setattr(owner, "rope_deltas", None))  # and so would this scheme's, once unpatched
    undo.add_hook(
        owner.register_forward_pre_hook(partial(_check_forward_inputs, state.config.scheme), with_kwargs=True)
    )
    if handles.generation_owner is not None:
        original = handles.generation_owner._prepare_position_ids_for_generation
        undo.set_attr(
            handles.generation_owner,
            "_prepare_position_ids_for_generation",
            partial(_generation_positions, original, state),
        )
    original = owner.compute_3d_position_ids
    undo.set_attr(owner, "compute_3d_position_ids", partial(_decoding_positions, original, state))
