"""The model classes the plugin registers: vLLM's own classes, serving the checkpoint's scheme when its config has
an ``mmrope`` key and running exactly vLLM's code when it has none.

vLLM imports them lazily by name (``mmrope_hf.integrations.vllm.models:<architecture>``), only in the processes that
build a model.
"""

from __future__ import annotations

import importlib
from typing import Any

from .rotary import install_rotary
from .serving import ServingScheme, serving_scheme

MROPE_FAMILIES = {
    "Qwen2VLForConditionalGeneration": "qwen2_vl",
    "Qwen2_5_VLForConditionalGeneration": "qwen2_5_vl",
    "Qwen3VLForConditionalGeneration": "qwen3_vl",
    "Qwen3VLMoeForConditionalGeneration": "qwen3_vl_moe",
}
"""Architectures whose vLLM model reads M-RoPE positions (``get_mrope_input_positions``) -> vLLM module."""
ONE_D_FAMILIES = {
    "LlavaForConditionalGeneration": "llava",
    "LlavaNextForConditionalGeneration": "llava_next",
    "LlavaOnevisionForConditionalGeneration": "llava_onevision",
}
"""Architectures whose vLLM model reads 1D positions -> vLLM module (1D schemes only)."""
ARCHITECTURES = {**MROPE_FAMILIES, **ONE_D_FAMILIES}


def _decoder_layers(language_model: Any) -> int:
    from vllm.model_executor.models.utils import PPMissingLayer

    return sum(not isinstance(layer, PPMissingLayer) for layer in language_model.model.layers)


class SchemeModel:
    """Mixed in before a vLLM model class: builds the serving scheme, then the stock model, then swaps the rotary."""

    takes_3d_positions = False
    _mmrope: ServingScheme | None

    def __init__(self, *, vllm_config: Any, prefix: str = "") -> None:
        scheme = serving_scheme(vllm_config.model_config.hf_config, self.takes_3d_positions)
        super().__init__(vllm_config=vllm_config, prefix=prefix)  # type: ignore[call-arg]
        self._mmrope = scheme
        if scheme is not None:
            language_model = self.language_model  # type: ignore[attr-defined]
            install_rotary(language_model, scheme.rotary, _decoder_layers(language_model))


class SchemeMRopeModel(SchemeModel):
    """An M-RoPE model: positions of every prompt from the scheme's patch state."""

    takes_3d_positions = True

    def get_mrope_input_positions(self, input_tokens: list[int], mm_features: list) -> tuple[Any, int]:
        if self._mmrope is None:
            return super().get_mrope_input_positions(input_tokens, mm_features)  # type: ignore[misc]
        return self._mmrope.positions(input_tokens, mm_features)


def served_class(architecture: str) -> type:
    """vLLM's class for ``architecture`` with the plugin mixed in."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; served: {', '.join(sorted(ARCHITECTURES))}")
    module = importlib.import_module(f"vllm.model_executor.models.{ARCHITECTURES[architecture]}")
    mixin = SchemeMRopeModel if architecture in MROPE_FAMILIES else SchemeModel
    return type(architecture, (mixin, getattr(module, architecture)), {"__module__": __name__})


def __getattr__(name: str) -> type:
    if name in ARCHITECTURES:
        cls = globals()[name] = served_class(name)
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
