"""See through the wrappers that training puts around a transformers model, to the model the scheme lives on.

Seen through: PEFT (``PeftModel``, its tuner such as ``LoraModel``, ``PeftMixedModel``), ``DistributedDataParallel``
and ``DataParallel`` (``.module``), and ``torch.compile``'s ``OptimizedModule`` (``._orig_mod``); ``accelerate``'s
``prepare`` returns the model itself or one of these. FSDP2's ``fully_shard`` is no wrapper: it changes the class of
the model in place (``FSDPQwen2_5_VLForConditionalGeneration``), which stays a transformers model.

peft and torch._dynamo are optional here: their classes are looked up in ``sys.modules`` only, since an instance
of one can exist only once its module has been imported.
"""

from __future__ import annotations

import sys

from torch import nn

SEEN_THROUGH = "PeftModel, DistributedDataParallel, DataParallel, torch.compile, FSDP2 (fully_shard), accelerate"
_MAX_DEPTH = 16  # wrappers of wrappers; more would mean a cycle


def _loaded_class(module: str, name: str) -> type | None:
    """``module.name`` if ``module`` has been imported, else ``None`` (then no instance of it can exist)."""
    return getattr(sys.modules.get(module), name, None)


def _inner(model: nn.Module) -> nn.Module | None:
    """The module one wrapper holds, or ``None`` if ``model`` is not a wrapper this module knows."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    for module, name, attribute in (
        ("torch._dynamo.eval_frame", "OptimizedModule", "_orig_mod"),
        ("peft.peft_model", "PeftModel", "base_model"),
        ("peft.mixed_model", "PeftMixedModel", "base_model"),
        ("peft.tuners.tuners_utils", "BaseTuner", "model"),
    ):
        cls = _loaded_class(module, name)
        if cls is not None and isinstance(model, cls):
            return getattr(model, attribute)
    return None


def is_transformers_model(model: object) -> bool:
    """A transformers ``PreTrainedModel`` keeps its config as an instance attribute; wrappers that forward attribute
    look-ups (``OptimizedModule``, ``PeftModel``, FSDP1) only appear to have one."""
    return isinstance(model, nn.Module) and hasattr(vars(model).get("config"), "model_type")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The transformers model inside ``model`` (``model`` itself when it is one, or nothing like one).

    A module that is neither a transformers model nor a known wrapper but holds a transformers model (a wrapper
    this module does not know) is refused with a ``TypeError`` that names it and the model to pass instead, so
    that a patch is never installed on, or looked up in, the wrong module.
    """
    for _ in range(_MAX_DEPTH):
        inner = _inner(model)
        if inner is None:
            break
        model = inner
    if isinstance(model, nn.Module) and not is_transformers_model(model):
        for name, sub in model.named_modules():
            if name and is_transformers_model(sub):
                raise TypeError(
                    f"mmrope-hf does not see through {type(model).__name__}: pass the transformers model it holds, "
                    f"`.{name}` ({type(sub).__name__}), or the model before wrapping; it sees through {SEEN_THROUGH}"
                )
    return model
