"""``from_pretrained`` integration: load a checkpoint patched with its ``mmrope`` key or an ``mmrope=`` argument.

``import mmrope_hf`` calls :func:`install` (so does the start-up hook ``_mmrope_hf_autoload`` on the first
``from_pretrained`` of a process that never imports mmrope_hf), which wraps ``from_pretrained`` once, in place, on
``transformers.PreTrainedModel`` (so on every concrete class, e.g. ``Qwen2_5_VLForConditionalGeneration``)
and on every Auto model class (each carries its own copy of the method). The wrapper:

1. pops the ``mmrope`` keyword before transformers sees it (transformers would pass an unknown keyword to the
   model constructor, a ``TypeError``, or let it overwrite the config key);
2. calls the original ``from_pretrained`` unchanged (dtype, ``device_map``, ``low_cpu_mem_usage``, quantisation
   and adapters all behave as without mmrope-hf);
3. patches the loaded instance with :func:`~mmrope_hf.patch_model`:

   - ``mmrope`` not given: the checkpoint's ``mmrope`` key, if any (a bad key raises a ``ValueError`` naming
     the config file and the key);
   - ``mmrope=<name, path, dict or MMRopeConfig>``: that scheme, overriding the checkpoint's; it is checked
     before any weight is read and written to ``model.config.mmrope``, so ``save_pretrained`` keeps it;
   - ``mmrope=None``: the stock model, whatever the checkpoint says (the key is dropped from ``model.config``).

Only the outermost call acts (an Auto class delegates to the concrete class). Nothing is written to the
checkpoint. transformers offers no post-load hook: ``monkey_patching.register_patch_mapping`` swaps classes
process-wide and cannot see per-call arguments, so a wrapper that keeps the originals is the smallest change;
:func:`uninstall` puts them back.
"""

from __future__ import annotations

import contextvars
import functools
import os
from typing import Any, Callable

import transformers.modeling_utils as modeling_utils
import transformers.models.auto.modeling_auto as modeling_auto  # defines every Auto model class
from transformers import PreTrainedConfig

import _mmrope_hf_autoload as autoload
from mmrope_hf.config import MMRopeConfig, resolve_config
from mmrope_hf.integrations.transformers.checkpoint import CONFIG_FILE, CONFIG_KEY, patch_from_key
from mmrope_hf.patching.api import patch_model

_NOT_GIVEN = object()
_LOADING = contextvars.ContextVar("mmrope_hf_loading", default=False)
_ORIGINALS: dict[type, classmethod] = {}

_DOC = """
        mmrope (`str`, `dict`, `MMRopeConfig` or `None`, *optional*): added by mmrope-hf. The multimodal RoPE
            scheme to patch the loaded model with (a preset name, a YAML/JSON path, a scheme dict or a config),
            overriding the checkpoint's ``mmrope`` config key; ``None`` loads the stock model. Without it the
            checkpoint's key, if any, is used.
"""


def _config_source(name_or_path: str | os.PathLike | None, kwargs: dict[str, Any]) -> str:
    """Where the config of this call comes from, for error messages."""
    config = kwargs.get("config")
    base = config if config is not None else name_or_path
    if isinstance(base, PreTrainedConfig) or base is None:
        return "the config passed to from_pretrained"
    base = os.fspath(base)
    return base if os.path.isfile(base) else os.path.join(base, kwargs.get("subfolder", ""), CONFIG_FILE)


def _patch_loaded(model: Any, scheme: MMRopeConfig | None | object, source: str) -> None:
    stored = getattr(model.config, CONFIG_KEY, None)
    if hasattr(model.config, CONFIG_KEY):  # dropped so that unpatch_model gives the stock model and config
        delattr(model.config, CONFIG_KEY)
    if isinstance(scheme, MMRopeConfig):
        patch_model(model, scheme)
    elif scheme is _NOT_GIVEN and stored is not None:
        patch_from_key(model, stored, source)


def _wrap(original: classmethod) -> classmethod:
    load: Callable[..., Any] = original.__func__

    @functools.wraps(load)
    def from_pretrained(
        cls: type, pretrained_model_name_or_path: str | os.PathLike | None, *model_args: Any, **kwargs: Any
    ) -> Any:
        if _LOADING.get():
            return load(cls, pretrained_model_name_or_path, *model_args, **kwargs)
        scheme = kwargs.pop(CONFIG_KEY, _NOT_GIVEN)
        if scheme is not None and scheme is not _NOT_GIVEN:
            scheme = resolve_config(scheme)  # fails before any weight is read
        source = _config_source(pretrained_model_name_or_path, kwargs)
        token = _LOADING.set(True)
        try:
            loaded = load(cls, pretrained_model_name_or_path, *model_args, **kwargs)
        finally:
            _LOADING.reset(token)
        _patch_loaded(loaded[0] if isinstance(loaded, tuple) else loaded, scheme, source)  # tuple: output_loading_info
        return loaded

    from_pretrained.__doc__ = (load.__doc__ or "") + _DOC
    return classmethod(from_pretrained)


def install() -> None:
    """Wrap ``from_pretrained`` on ``PreTrainedModel`` and the Auto model classes (idempotent; done on import).

    The start-up hook's trampolines, if any, are removed first (see ``_mmrope_hf_autoload``).
    """
    autoload.disarm()
    for cls in [*autoload.owners(modeling_utils), *autoload.owners(modeling_auto)]:
        if cls not in _ORIGINALS:
            _ORIGINALS[cls] = vars(cls)["from_pretrained"]
            cls.from_pretrained = _wrap(_ORIGINALS[cls])  # type: ignore[attr-defined]


def uninstall() -> None:
    """Restore the original ``from_pretrained`` methods; loading then ignores the ``mmrope`` key again."""
    while _ORIGINALS:
        cls, original = _ORIGINALS.popitem()
        cls.from_pretrained = original  # type: ignore[attr-defined]


def is_installed() -> bool:
    """Whether ``from_pretrained`` currently reads the ``mmrope`` key and keyword."""
    return bool(_ORIGINALS)
