"""Model-family adapters (shipped as ``mmrope_hf.patches``): where each family keeps what the patcher replaces.

A family module declares ``ADAPTERS = {model_type: adapter}``; add a new module to ``_FAMILIES`` below.
"""

from __future__ import annotations

from mmrope_hf.adapters import ModelAdapter
from mmrope_hf.registry import Registry

from . import (
    cosmos3_edge,
    ernie4_5_vl_moe,
    gemma3,
    glm4v,
    idefics3,
    internvl,
    llava,
    mistral3,
    paddleocr_vl,
    qwen2_5_vl,
    qwen2_vl,
    qwen3_5,
    qwen3_vl,
)

_FAMILIES = (
    qwen2_vl,
    qwen2_5_vl,
    qwen3_vl,
    qwen3_5,
    glm4v,
    paddleocr_vl,
    ernie4_5_vl_moe,
    cosmos3_edge,
    llava,
    gemma3,
    idefics3,
    internvl,
    mistral3,
)

ADAPTERS: Registry[ModelAdapter] = Registry("model type")
for _family in _FAMILIES:
    for _model_type, _adapter in _family.ADAPTERS.items():
        ADAPTERS.add(_model_type, _adapter)
