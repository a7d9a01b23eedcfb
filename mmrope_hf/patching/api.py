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
from functools import partial
from typing import Any

from torch import nn

from mmrope_hf.adapters import ModelHandles
from mmrope_hf.compat import check_transformers_version
from mmrope_hf.config import NATIVE, MMRopeConfig, resolve_config
from mmrope_hf.frequencies.allocation import ALLOCATIONS, FrequencyPlan
from mmrope_hf.frequencies.apply import install_dispatcher
from mmrope_hf.frequencies.rotary import StackedCosSin, multimodal_rotary, probe_difference, rotary_tables
from mmrope_hf.patching.families import adapter_for
from mmrope_hf.patching.rope_index import install_packed_relay, install_rope_index
from mmrope_hf.patching.state import STATE_ATTR, PatchState, find_state
from mmrope_hf.patching.wrappers import unwrap_model
from mmrope_hf.positions.baselines import SPATIAL_FROM_T
from mmrope_hf.schedule import layer_schedule


def _native_plan(handles: ModelHandles, num_pairs: int, options: dict | None = None) -> FrequencyPlan:
    """The model's own allocation and section, used exactly as the model uses them."""
    allocation = ALLOCATIONS.get(handles.native_frequency)
    return allocation.plan(num_pairs, handles.num_kv_heads, handles.native_section, options or {}, strict=False)


def _frequency_plan(config: MMRopeConfig, handles: ModelHandles, num_pairs: int) -> FrequencyPlan:
    name = handles.native_frequency if config.frequency == NATIVE else config.frequency
    options = dict(config.options)
    if config.mrope_section is None and name == handles.native_frequency:
        return _native_plan(handles, num_pairs, options)
    return ALLOCATIONS.get(name).plan(num_pairs, handles.num_kv_heads, config.mrope_section, options)


def _check_native_rotary(handles: ModelHandles, native: FrequencyPlan) -> None:
    """The adapter's account of the stock rotary (pair map, section, channel pairing) must reproduce its cos/sin
    bit for bit on a probe, or patching stops: a wrong account would silently change every scheme."""
    stock = handles.rotary
    if any(table.inv_freq.device.type == "meta" for table in rotary_tables(stock).values()):
        return
    ours = multimodal_rotary(stock, native, pairing=handles.pairing, pair_order=handles.pair_order)
    difference = probe_difference(stock, ours)
    if difference is not None:
        raise RuntimeError(
            f"{type(stock).__name__} does not lay out its frequencies as the {handles.rope_owner.config.model_type} "
            f"adapter expects ({native.name} allocation, section {list(native.section)}, {handles.pairing} channel "
            f"pairing): {difference}; this model has changed in the installed transformers, and mmrope-hf would "
            f"give wrong results on it"
        )


def _layer_set_hook(index: int, module: nn.Module, args: tuple, kwargs: dict):
    embeddings = kwargs.get("position_embeddings")
    if isinstance(embeddings, StackedCosSin):
        kwargs["position_embeddings"] = embeddings.select(index)
        return args, kwargs
    return None


def patch_model(model: nn.Module, scheme: str | dict | MMRopeConfig = "mrope", **options: Any) -> nn.Module:
    """Install a multimodal RoPE scheme on ``model`` in place and return it.

    Args:
        model (`nn.Module`): a model of a supported type (``mmrope schemes --families``: Qwen-VL, Qwen3.5, GLM-4.xV,
            ERNIE-4.5-VL, PaddleOCR-VL, Cosmos3-Edge, LLaVA, Gemma 3, Idefics3, SmolVLM, InternVL, Mistral 3), the
            ``...ForConditionalGeneration`` or the inner ``...Model`` (on the 1D families ``generate`` needs the
            outer one).
        scheme (`str`, `dict` or `MMRopeConfig`): a preset name (see :func:`available_schemes`), a path to a
            YAML/JSON file, a dict with a ``scheme`` key, or a config.
        **options: overrides of the preset (``temporal_stride``, ``mrope_section``, ``spatial_reset``,
            ``frequency``, ``vision_advance``, ``layers``, ``position``).

    Patching a patched model replaces its scheme. ``model`` may be wrapped (a PEFT ``PeftModel``, DDP, FSDP2,
    ``torch.compile``, accelerate's ``prepare``): the transformers model inside is patched, and the wrapper returned.
    :func:`unpatch_model`, :func:`is_patched` and :func:`patch_info` see through the same wrappers.

    >>> from mmrope_hf.testing import tiny_model
    >>> model = patch_model(tiny_model("qwen2_5_vl"), scheme="mrope-i")
    >>> patch_info(model)["position"]
    'spatial-reset'
    """
    check_transformers_version()
    config = resolve_config(scheme, **options)
    wrapper, model = model, unwrap_model(model)
    adapter = adapter_for(model)
    unpatch_model(model)
    handles = adapter.locate(model)
    stock_rotary = handles.rotary
    tables = rotary_tables(stock_rotary).values()
    for rope_type in (table.rope_type for table in tables):
        if "dynamic" in rope_type or "longrope" in rope_type:
            raise ValueError(
                f"rope_type {rope_type!r} updates its frequencies per call; mmrope-hf supports static rope types"
            )
    schedule = layer_schedule(
        config.position, config.stagger_with, config.layers, len(handles.layers), handles.skipped_layers
    )
    pair_counts = {table.inv_freq.shape[-1] for table in tables}
    if len(pair_counts) != 1:
        raise ValueError(f"the layer types of {type(stock_rotary).__name__} rotate {sorted(pair_counts)} pairs")
    num_pairs = pair_counts.pop()
    _check_native_rotary(handles, _native_plan(handles, num_pairs))
    plan = _frequency_plan(config, handles, num_pairs)
    if dict(config.options).get("nope_heads"):
        warnings.warn(
            f"nope_heads={config.option('nope_heads')}: those KV heads get no rotation, so even text-only outputs "
            f"differ from the stock model",
            stacklevel=2,
        )
    state = PatchState(config, handles, schedule, plan)

    undo = state.undo
    undo.set_attr(handles.rope_owner, STATE_ATTR, state)
    undo.set_attr(
        handles.rotary_parent,
        handles.rotary_name,
        multimodal_rotary(
            stock_rotary,
            plan,
            num_sets=schedule.num_sets,
            spatial_from_t=[d in SPATIAL_FROM_T for d in schedule.designs],
            pairing=handles.pairing,
            pair_order=handles.pair_order,
        ),
    )
    if plan.head_axes is not None:  # released by unpatch_model, or when the model is garbage-collected
        undo.add_step(weakref.finalize(handles.rope_owner, install_dispatcher(*handles.rotary_apply)))
    (handles.install or install_rope_index)(state, undo)  # the family's position plumbing
    if schedule.num_sets > 1:
        for layer, index in zip(handles.layers, schedule.layer_sets, strict=True):
            undo.add_hook(layer.register_forward_pre_hook(partial(_layer_set_hook, index), with_kwargs=True))
        if handles.install is None:  # Qwen-VL: keep the (4, B, L) text-row contract (packed rows, varlen)
            install_packed_relay(handles.rotary_parent, handles.rotary, schedule.num_sets, undo)
    undo.set_attr(model.config, "mmrope", config.to_dict())
    return wrapper


def unpatch_model(model: nn.Module) -> nn.Module:
    """Restore the stock behaviour of a patched model (a no-op on an unpatched one) and return it.

    >>> from mmrope_hf.testing import tiny_model
    >>> model = patch_model(tiny_model("qwen2_vl"), "mrope-i")
    >>> is_patched(unpatch_model(model)), hasattr(model.config, "mmrope")
    (False, False)
    """
    state = find_state(model)
    if state is not None:
        state.undo.undo()
    return model


def is_patched(model: nn.Module) -> bool:
    """Whether ``patch_model`` installed a scheme on ``model``.

    >>> from mmrope_hf.testing import tiny_model
    >>> is_patched(tiny_model("qwen2_vl")), is_patched(patch_model(tiny_model("qwen2_vl"), "vanilla"))
    (False, True)
    """
    return find_state(model) is not None


def patch_info(model: nn.Module) -> dict[str, Any] | None:
    """The active scheme: its name, resolved options and what they became on this model; ``None`` if unpatched.

    >>> from mmrope_hf.testing import tiny_model
    >>> info = patch_info(patch_model(tiny_model("qwen2_5_vl"), "mhrope"))
    >>> info["resolved_frequency"], info["resolved_mrope_section"]  # 4 KV heads: [2, 1, 1]
    ('multi-head', [2, 1, 1])
    """
    state = find_state(model)
    return None if state is None else state.info()
