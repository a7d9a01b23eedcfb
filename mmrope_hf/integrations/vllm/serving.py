"""A checkpoint's scheme as vLLM serves it, taken from the transformers patch itself, or refused.

The checkpoint's model is built on the meta device (no weights, no memory) and patched by
:func:`~mmrope_hf.integrations.transformers.checkpoint.patch_from_key`, exactly as ``from_pretrained`` patches it.
Its :class:`~mmrope_hf.patching.state.PatchState` then gives vLLM the positions of every prompt
(``positions_and_deltas``, the code behind the patched ``get_rope_index``) and its installed
:class:`~mmrope_hf.frequencies.rotary.MultimodalRotaryEmbedding` gives the frequencies: one source of truth.

vLLM 0.32's M-RoPE contract: ``get_mrope_input_positions`` returns int64 positions ``(3, L)`` and one integer
delta, decoding writes ``context_len + delta`` on every row, and every decoder layer reads the same positions.
What that cannot express is refused (:class:`SchemeRefused`) before the engine starts, naming the scheme, the
reason and what to do instead; the same checks run again when the model is built in the engine process.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from mmrope_hf.config import MMRopeConfig, resolve_config
from mmrope_hf.frequencies.rotary import MultimodalRotaryEmbedding
from mmrope_hf.integrations.transformers.checkpoint import CONFIG_KEY, patch_from_key
from mmrope_hf.patching.state import PatchState, find_state

FLOAT_DESIGNS = frozenset({"circle", "v2pe"})
"""Position designs whose positions are fractional (and, for ``circle``, negative) whatever the options."""
STRIDED_DESIGNS = frozenset({"videorope", "hope"})
"""Position designs that place frames at ``st + g * stride`` without truncation: integers only at integer strides."""
ONE_DIMENSIONAL = "vanilla"
"""The position design that is a 1D model's own positions (LLaVA)."""
INSTEAD = "serve it with transformers + mmrope-hf (model.generate), or choose a scheme with integer positions"
SOURCE = "the checkpoint's config.json"


class SchemeRefused(ValueError):
    """A checkpoint scheme that vLLM's position contract cannot express."""


def _refusal(config: MMRopeConfig, reasons: list[str], instead: str) -> SchemeRefused:
    return SchemeRefused(
        f"mmrope-hf cannot serve scheme {config.scheme!r} (position design {config.position!r}) with vLLM: "
        f"{'; and '.join(reasons)}. Instead, {instead}."
    )


def checkpoint_config(hf_config: Any) -> MMRopeConfig | None:
    """The checkpoint's ``mmrope`` key resolved, ``None`` for a stock checkpoint (a bad key raises ``ValueError``)."""
    value = getattr(hf_config, CONFIG_KEY, None)
    if value is None:
        return None
    try:
        return resolve_config(value if isinstance(value, str) else dict(value))
    except (TypeError, ValueError) as error:
        raise ValueError(f'{SOURCE}: invalid "{CONFIG_KEY}" key: {error}') from error


def check_servable(config: MMRopeConfig, takes_3d_positions: bool, unit_video_interval: bool) -> None:
    """Raise :class:`SchemeRefused` for what vLLM's contract (int64 positions, one position set, one integer
    decode delta) cannot express.

    Args:
        takes_3d_positions: vLLM's model of this family reads M-RoPE positions (Qwen-VL; not LLaVA).
        unit_video_interval: the family's videos advance one position per temporal group (not Qwen2.5-VL, whose
            interval is ``tokens_per_second * second_per_grid_ts``).
    """
    reasons, instead = [], INSTEAD
    if config.position in FLOAT_DESIGNS:
        reasons.append("its positions are fractional, and vLLM's positions are int64")
    if len(config.designs) > 1:
        reasons.append(
            f"its layer schedule (layers={config.layers!r}, stagger_with={config.stagger_with!r}) gives the decoder "
            f"layers different position sets {list(config.designs)}, and vLLM gives every layer one position set"
        )
    if config.position in STRIDED_DESIGNS:
        stride = config.temporal_stride
        if stride is None and not unit_video_interval:
            reasons.append(
                "temporal_stride null takes each video's own interval (tokens_per_second x second_per_grid_ts), "
                "fractional at most frame rates, and vLLM's positions are int64"
            )
            instead = "set an integer temporal_stride in the checkpoint's mmrope key, or " + INSTEAD
        elif stride is not None and stride != int(stride):
            reasons.append(f"temporal_stride {stride} puts frames at fractional positions, and vLLM's are int64")
            instead = "use an integer temporal_stride, or " + INSTEAD
    if not takes_3d_positions and config.position != ONE_DIMENSIONAL:
        reasons.append(
            "vLLM's models of this family take 1D positions (no M-RoPE), so 3D positions cannot reach their rotary"
        )
        instead = "serve this model with transformers + mmrope-hf, or serve a Qwen-VL model with this scheme"
    if reasons:
        raise _refusal(config, reasons, instead)


@dataclass
class ServingScheme:
    """The patched meta-device model of one checkpoint: its patch state and the rotary it installed."""

    state: PatchState
    image_token_id: int | None
    video_token_id: int | None

    @property
    def config(self) -> MMRopeConfig:
        return self.state.config

    @property
    def rotary(self) -> MultimodalRotaryEmbedding:
        rotary = self.state.handles.rotary
        assert isinstance(rotary, MultimodalRotaryEmbedding)
        return rotary

    def positions(self, input_tokens: Sequence[int], mm_features: Sequence[Any]) -> tuple[torch.Tensor, int]:
        """``(positions (3, L) int64, delta)`` of one prompt (vLLM's ``get_mrope_input_positions``).

        Token types come from the token ids, as the transformers processors make ``mm_token_type_ids``; grids
        and ``second_per_grid_ts`` from vLLM's processed items, in prompt order.
        """
        ids = torch.as_tensor(list(input_tokens), dtype=torch.long)
        types = torch.zeros_like(ids)
        for token, kind in ((self.image_token_id, 1), (self.video_token_id, 2)):
            if token is not None:
                types[ids == token] = kind
        features = sorted(mm_features, key=lambda f: f.mm_position.offset)
        unknown = sorted({f.modality for f in features} - {"image", "video"})
        if unknown:
            raise ValueError(f"scheme {self.config.scheme!r}: unsupported modality {unknown}; valid: image, video")
        images = [f.data["image_grid_thw"].data for f in features if f.modality == "image"]
        videos = [f.data for f in features if f.modality == "video"]
        seconds = [v["second_per_grid_ts"].data for v in videos if "second_per_grid_ts" in v]
        positions, deltas = self.state.positions_and_deltas(
            ids[None],
            types[None],
            torch.stack(images).reshape(-1, 3) if images else None,
            torch.stack([v["video_grid_thw"].data for v in videos]).reshape(-1, 3) if videos else None,
            None,
            torch.stack(seconds).reshape(-1) if videos and len(seconds) == len(videos) else None,
        )
        return integer_positions(self.config.scheme, positions[:, 0], deltas[0, 0])


def integer_positions(scheme: str, positions: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``positions`` as int64 and ``delta`` as an int; ``ValueError`` if either is fractional (never rounded)."""
    if positions.is_floating_point():
        fractional = positions != positions.round()
        if fractional.any():
            raise ValueError(
                f"scheme {scheme!r} placed a token at fractional position {positions[fractional][0].item()}; "
                f"vLLM's positions are int64"
            )
    if float(delta) != int(delta):
        raise ValueError(f"scheme {scheme!r} gave a fractional decode delta {float(delta)}; vLLM's is an integer")
    return positions.long(), int(delta)


def meta_model(hf_config: Any) -> nn.Module:
    """The image-text-to-text model of ``hf_config`` (copied) on the meta device: no weights, no memory."""
    import transformers

    with torch.device("meta"):
        return transformers.AutoModelForImageTextToText.from_config(copy.deepcopy(hf_config)).eval()


def _unit_video_interval(state: PatchState) -> bool:
    """Whether the family's videos advance one position per temporal group, probed with a 0.3 s group."""
    return all(i == 1 for i in state.handles.video_intervals(torch.tensor([[2, 2, 2]]), torch.tensor([0.3])))


def serving_scheme(hf_config: Any, takes_3d_positions: bool) -> ServingScheme | None:
    """The serving plan of a checkpoint, ``None`` without an ``mmrope`` key; raises what vLLM cannot serve."""
    config = checkpoint_config(hf_config)
    if config is None:
        return None
    check_servable(config, takes_3d_positions, unit_video_interval=True)
    model = meta_model(hf_config)
    patch_from_key(model, getattr(hf_config, CONFIG_KEY), SOURCE)
    state = find_state(model)
    assert state is not None
    check_servable(config, takes_3d_positions, _unit_video_interval(state))
    return ServingScheme(state, getattr(hf_config, "image_token_id", None), getattr(hf_config, "video_token_id", None))
