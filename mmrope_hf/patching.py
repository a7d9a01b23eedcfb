"""``patch_model`` / ``unpatch_model``: install a scheme on one model instance, reversibly.

Only the instance changes (two models with different schemes can live in one process). Every change is
recorded in an undo log kept on the model, and ``unpatch_model`` replays it backwards, which restores the
stock behaviour exactly. What is installed:

- ``get_rope_index`` on the rope owner (``model.model``): the scheme's positions and ``rope_deltas``, with the
  stock signature, used by both ``forward`` and ``generate``;
- the text rotary module: :class:`~mmrope_hf.rotary.MultimodalRotaryEmbedding` with the scheme's pair map;
- with more than one position set, a pre-hook per decoder layer that hands the layer its set;
- input checks: a forward pre-hook and a wrapper of ``_prepare_position_ids_for_generation`` that refuse
  visual inputs without ``mm_token_type_ids`` (stock transformers silently falls back to 1D positions);
- ``model.config.mmrope``: the resolved scheme, so ``save_pretrained`` keeps it.

Families without ``get_rope_index`` (LLaVA) bring their own position plumbing (``ModelHandles.install``) in place
of the first item and the input checks; the rotary, the per-layer hooks and the config key are installed alike.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable

import torch
from torch import nn

from .adapters import ModelHandles, adapter_for
from .allocation import ALLOCATIONS, FrequencyPlan
from .apply import install_dispatcher
from .baselines import SPATIAL_FROM_T
from .compat import check_transformers_version
from .config import NATIVE, MMRopeConfig, resolve_config
from .builder import position_options, positions_for
from .layout import IMAGE, VIDEO, visual_items
from .positions import build_positions
from .rotary import MultimodalRotaryEmbedding, StackedCosSin
from .schedule import LayerSchedule, layer_schedule

_STATE = "_mmrope"
_GRID_KEYS = ("image_grid_thw", "video_grid_thw")


class UndoLog:
    """Reversible attribute changes and hooks."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def set_attr(self, obj: Any, name: str, value: Any) -> None:
        if isinstance(obj, nn.Module) and name in obj._modules:
            old = obj._modules[name]
            self._steps.append(lambda: setattr(obj, name, old))
        elif name in vars(obj):
            old = vars(obj)[name]
            self._steps.append(lambda: setattr(obj, name, old))
        else:
            self._steps.append(lambda: delattr(obj, name))
        setattr(obj, name, value)

    def add_hook(self, handle: torch.utils.hooks.RemovableHandle) -> None:
        self._steps.append(handle.remove)

    def add_step(self, undo: Callable[[], None]) -> None:
        self._steps.append(undo)

    def undo(self) -> None:
        while self._steps:
            self._steps.pop()()


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
        return replace(position_options(self.config), training=self.handles.rope_owner.training, generator=self.generator)

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
            ),
        ]
        return positions_for(
            self.schedule.designs, mm_token_type_ids.to(input_ids.device), attention_mask, items,
            handles.spatial_merge_size, self.position_options(),
        )

    def positions(
        self, layout: list, attention_mask: torch.Tensor | None, shape: tuple[int, int], device: torch.device | None = None
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


def _find_state(model: nn.Module) -> PatchState | None:
    for candidate in (model, getattr(model, "model", None)):
        state = getattr(candidate, _STATE, None) if isinstance(candidate, nn.Module) else None
        if isinstance(state, PatchState):
            return state
    return None


def _frequency_plan(config: MMRopeConfig, handles: ModelHandles, num_pairs: int) -> FrequencyPlan:
    name = handles.native_frequency if config.frequency == NATIVE else config.frequency
    allocation = ALLOCATIONS.get(name)
    options = dict(config.options)
    if config.mrope_section is None and name == handles.native_frequency:
        # the model's own section, used exactly as the model uses it
        return allocation.plan(num_pairs, handles.num_kv_heads, handles.native_section, options, strict=False)
    return allocation.plan(num_pairs, handles.num_kv_heads, config.mrope_section, options)


def _rope_index_method(state: PatchState) -> Callable:
    names = state.handles.rope_index_args

    def get_rope_index(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if len(args) > len(names):
            raise TypeError(f"get_rope_index takes at most {len(names)} positional arguments ({', '.join(names)})")
        for name, value in zip(names, args):
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


def _decoding_positions(original: Callable, state: PatchState, *args: Any, **kwargs: Any):
    positions = original(*args, **kwargs)
    if positions is not None and state.schedule.num_sets > 1 and positions.shape[0] == 3:  # from rope_deltas
        positions = state.expand_sets(positions)
    return positions


def _layer_set_hook(index: int, module: nn.Module, args: tuple, kwargs: dict):
    embeddings = kwargs.get("position_embeddings")
    if isinstance(embeddings, StackedCosSin):
        kwargs["position_embeddings"] = embeddings.select(index)
        return args, kwargs
    return None


def _install_packed_relay(text_model: nn.Module, rotary: nn.Module, num_sets: int, undo: UndoLog) -> None:
    """K > 1 position sets keep transformers' 4-row packing contract.

    The Qwen-VL text models split off a text row (attention masks, packed-sequence and flash-attention varlen
    boundaries) only from a ``(4, B, L)`` tensor. A ``(3K + 1, B, L)`` tensor (text row + K sets, as the
    collator and ``generate`` pass it) goes on to the text model as ``[text row; set 0]`` (4 rows), and the
    rotary gets the K sets back from a pre-hook, within the same forward.
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
        sets = relay.pop()
        if len(args) >= 2 and args[1].shape[1:] == sets.shape[1:]:
            return (args[0], sets, *args[2:]), kwargs
        if "position_ids" in kwargs and kwargs["position_ids"].shape[1:] == sets.shape[1:]:
            return args, {**kwargs, "position_ids": sets}
        return None

    undo.add_hook(text_model.register_forward_pre_hook(text_model_pre_hook, with_kwargs=True))
    undo.add_hook(text_model.register_forward_hook(lambda *_: relay.clear(), always_call=True))
    undo.add_hook(rotary.register_forward_pre_hook(rotary_pre_hook, with_kwargs=True))


def _install_rope_index(state: PatchState, undo: UndoLog) -> None:
    """Qwen-VL position plumbing: ``get_rope_index``, the input checks, generation and multi-set decoding."""
    handles, owner = state.handles, state.handles.rope_owner
    undo.set_attr(owner, "get_rope_index", _rope_index_method(state))
    owner.rope_deltas = None  # deltas of the previous scheme would be stale
    undo.add_step(lambda: setattr(owner, "rope_deltas", None))  # and so would this scheme's, once unpatched
    undo.add_hook(owner.register_forward_pre_hook(partial(_check_forward_inputs, state.config.scheme), with_kwargs=True))
    if handles.generation_owner is not None:
        original = handles.generation_owner._prepare_position_ids_for_generation
        undo.set_attr(handles.generation_owner, "_prepare_position_ids_for_generation", partial(_generation_positions, original, state))
    if state.schedule.num_sets > 1:
        original = owner.compute_3d_position_ids
        undo.set_attr(owner, "compute_3d_position_ids", partial(_decoding_positions, original, state))


def patch_model(model: nn.Module, scheme: str | dict | MMRopeConfig = "mrope", **options: Any) -> nn.Module:
    """Install a multimodal RoPE scheme on ``model`` in place and return it.

    Args:
        model (`nn.Module`): a Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3-VL-MoE, LLaVA, LLaVA-NeXT or LLaVA-OneVision
            model (``...ForConditionalGeneration``, or the inner ``...Model``; on LLaVA ``generate`` needs the outer one).
        scheme (`str`, `dict` or `MMRopeConfig`): a preset name (see :func:`available_schemes`), a path to a
            YAML/JSON file, a dict with a ``scheme`` key, or a config.
        **options: overrides of the preset (``temporal_stride``, ``mrope_section``, ``spatial_reset``,
            ``frequency``, ``vision_advance``, ``layers``, ``position``).

    Patching a patched model replaces its scheme.

    >>> from mmrope_hf.testing import tiny_model
    >>> model = patch_model(tiny_model("qwen2_5_vl"), scheme="mrope-i")
    >>> patch_info(model)["position"]
    'spatial-reset'
    """
    check_transformers_version()
    config = resolve_config(scheme, **options)
    adapter = adapter_for(model)
    unpatch_model(model)
    handles = adapter.locate(model)
    stock_rotary = handles.rotary
    if "dynamic" in stock_rotary.rope_type or "longrope" in stock_rotary.rope_type:
        raise ValueError(f"rope_type {stock_rotary.rope_type!r} updates its frequencies per call; mmrope-hf supports static rope types")
    schedule = layer_schedule(config.position, config.stagger_with, config.layers, len(handles.layers))
    plan = _frequency_plan(config, handles, stock_rotary.inv_freq.shape[-1])
    if dict(config.options).get("nope_heads"):
        warnings.warn(
            f"nope_heads={config.option('nope_heads')}: those KV heads get no rotation, so even text-only outputs "
            f"differ from the stock model", stacklevel=2,
        )
    state = PatchState(config, handles, schedule, plan)

    undo = state.undo
    undo.set_attr(handles.rope_owner, _STATE, state)
    undo.set_attr(handles.rotary_parent, handles.rotary_name, MultimodalRotaryEmbedding(
        stock_rotary, plan, schedule.num_sets, spatial_from_t=[d in SPATIAL_FROM_T for d in schedule.designs]))
    if plan.head_axes is not None:  # released by unpatch_model, or when the model is garbage-collected
        undo.add_step(weakref.finalize(handles.rope_owner, install_dispatcher(*handles.rotary_apply)))
    (handles.install or _install_rope_index)(state, undo)  # the family's position plumbing
    if schedule.num_sets > 1:
        for layer, index in zip(handles.layers, schedule.layer_sets):
            undo.add_hook(layer.register_forward_pre_hook(partial(_layer_set_hook, index), with_kwargs=True))
        if handles.install is None:  # Qwen-VL: keep the (4, B, L) text-row contract (packed rows, varlen)
            _install_packed_relay(handles.rotary_parent, handles.rotary, schedule.num_sets, undo)
    undo.set_attr(model.config, "mmrope", config.to_dict())
    return model


def unpatch_model(model: nn.Module) -> nn.Module:
    """Restore the stock behaviour of a patched model (a no-op on an unpatched one) and return it.

    >>> from mmrope_hf.testing import tiny_model
    >>> model = patch_model(tiny_model("qwen2_vl"), "mrope-i")
    >>> is_patched(unpatch_model(model)), hasattr(model.config, "mmrope")
    (False, False)
    """
    state = _find_state(model)
    if state is not None:
        state.undo.undo()
    return model


def is_patched(model: nn.Module) -> bool:
    """Whether ``patch_model`` installed a scheme on ``model``.

    >>> from mmrope_hf.testing import tiny_model
    >>> is_patched(tiny_model("qwen2_vl")), is_patched(patch_model(tiny_model("qwen2_vl"), "vanilla"))
    (False, True)
    """
    return _find_state(model) is not None


def patch_info(model: nn.Module) -> dict[str, Any] | None:
    """The active scheme: its name, resolved options and what they became on this model; ``None`` if unpatched.

    >>> from mmrope_hf.testing import tiny_model
    >>> info = patch_info(patch_model(tiny_model("qwen2_5_vl"), "mhrope"))
    >>> info["resolved_frequency"], info["resolved_mrope_section"]  # 4 KV heads: [2, 1, 1]
    ('multi-head', [2, 1, 1])
    """
    state = _find_state(model)
    return None if state is None else state.info()
