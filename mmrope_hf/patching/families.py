"""Which family adapter serves a model (``config.model_type`` looked up in the adapters of ``patches/``), and the
family x scheme table of the README, generated from the same registry."""

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


TABLE_SCHEMES = ("mrope", "mrope-i", "mhrope", "spatial-reset", "circle", "vanilla")


def family_table(schemes: tuple[str, ...] = TABLE_SCHEMES) -> str:
    """The supported model types x ``schemes`` as a markdown table: ``stock`` where the scheme is the unpatched
    model, ``yes`` elsewhere, and what each family does differently (``mmrope schemes --families`` prints it)."""
    header = ["Model type", *(f"`{scheme}`" for scheme in schemes), "What differs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model_type in ADAPTERS.names():
        adapter = ADAPTERS.get(model_type)
        cells = ["stock" if scheme == adapter.stock_scheme else "yes" for scheme in schemes]
        lines.append("| " + " | ".join([f"`{model_type}`", *cells, adapter.notes]) + " |")
    return "\n".join(lines) + "\n"
