"""Which family adapter serves a model: ``config.model_type`` looked up in the adapters of ``patches/``."""

from __future__ import annotations

from torch import nn

from mmrope_hf.adapters import ModelAdapter
from mmrope_hf.patches import ADAPTERS


def adapter_for(model: nn.Module) -> ModelAdapter:
    """The adapter registered for ``model.config.model_type``, or a ``TypeError`` listing the supported types."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ADAPTERS:
        raise TypeError(
            f"mmrope-hf does not support model type {model_type!r} ({type(model).__name__}); "
            f"supported: {', '.join(ADAPTERS.names())}"
        )
    return ADAPTERS.get(model_type)
