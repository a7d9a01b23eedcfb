"""PEFT adapters carry the scheme of the model they were trained on, in an ``mmrope`` key of ``adapter_config.json``.

Saving: ``PeftModel.save_pretrained`` (what Trainer and TRL call) and, for adapters attached with transformers'
``add_adapter`` / ``load_adapter``, ``PreTrainedModel.save_pretrained`` note the model being saved; when PEFT has
written an ``adapter_config.json`` for it, the scheme of that model, if patched, is added as ``"mmrope": {...}``
(the dict ``model.config.mmrope`` holds).

Loading: every PEFT route that attaches a saved adapter to a model (``PeftModel.from_pretrained``,
``PeftModel.load_adapter``, transformers' ``model.load_adapter``, an Auto class given an adapter folder) reads the
config through ``PeftConfig.from_json_file`` and ``from_peft_type`` (the key is taken out there, so PEFT never sees
an unknown field) and injects the layers through ``BaseTuner.inject_adapter``. Before the injection:

- a stock base is patched with the adapter's scheme;
- a base patched with the same scheme is left alone;
- a base patched with another scheme raises a ``ValueError`` naming the adapter file and what differs.

A process without mmrope-hf warns that ``mmrope`` is an unexpected key of the adapter config and ignores it.
The hooks wrap those methods in place and keep the originals (:func:`uninstall` puts them back); PEFT has no
hook of its own for either step.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import sys
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from mmrope_hf.config import MMRopeConfig, resolve_config
from mmrope_hf.patching.api import patch_model
from mmrope_hf.patching.state import find_state

KEY = "mmrope"
ADAPTER_CONFIG = "adapter_config.json"
_ATTR = "_mmrope"  # on a PeftConfig read from a file: the AdapterScheme of its key
_SAVING: contextvars.ContextVar[nn.Module | None] = contextvars.ContextVar("mmrope_hf_saving", default=None)
_ORIGINALS: dict[tuple[type, str], Any] = {}


@dataclass(frozen=True)
class AdapterScheme:
    """The ``mmrope`` key of an adapter config and the file it came from (for errors)."""

    value: Any
    source: str

    def resolve(self) -> MMRopeConfig:
        try:
            if not isinstance(self.value, Mapping):
                raise TypeError(f"expected a scheme dict, as mmrope-hf writes it, got {type(self.value).__name__}")
            return resolve_config(dict(self.value))
        except (TypeError, ValueError) as error:
            raise ValueError(f'{self.source}: invalid "{KEY}" key {self.value!r}: {error}') from error


def apply_adapter_scheme(model: nn.Module, scheme: AdapterScheme) -> None:
    """Patch a stock ``model`` with the adapter's scheme; accept one patched with it; refuse any other."""
    wanted = scheme.resolve()
    state = find_state(model)
    if state is None:
        patch_model(model, wanted)
        return
    if state.config != wanted:
        ours, theirs = wanted.to_dict(), state.config.to_dict()
        differ = ", ".join(
            f"{key} {ours.get(key)!r} (base: {theirs.get(key)!r})"
            for key in sorted(ours.keys() | theirs.keys())
            if key != "mmrope_hf_version" and ours.get(key) != theirs.get(key)
        )
        raise ValueError(
            f"{scheme.source}: this adapter was trained with the {wanted.scheme!r} scheme, but the base model is "
            f"patched with {state.config.scheme!r} ({differ}); load it on a stock base (it is patched for you) or "
            f"on one patched with the adapter's scheme"
        )


def _record_scheme(directory: str) -> None:
    """Add the scheme of the model being saved, if patched, to ``directory/adapter_config.json``."""
    model = _SAVING.get()
    state = find_state(model) if model is not None else None
    path = os.path.join(directory, ADAPTER_CONFIG)
    if state is None or not os.path.isfile(path):
        return
    with open(path) as file:
        data = json.load(file)
    data[KEY] = state.config.to_dict()
    with open(path, "w") as file:
        file.write(json.dumps(data, indent=2, sort_keys=True))  # as PEFT writes it


def _wrap_saving(save: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(save)
    def save_pretrained(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        token = _SAVING.set(self)
        try:
            return save(self, *args, **kwargs)
        finally:
            _SAVING.reset(token)

    return save_pretrained


def _wrap_config_save(save: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(save)
    def save_pretrained(self: Any, save_directory: str, **kwargs: Any) -> None:
        save(self, save_directory, **kwargs)
        _record_scheme(save_directory)

    return save_pretrained


def _wrap_from_json_file(read: classmethod) -> classmethod:
    @functools.wraps(read.__func__)
    def from_json_file(cls: type, path_json_file: str, **kwargs: Any) -> dict:
        data = read.__func__(cls, path_json_file, **kwargs)
        if KEY in data:
            data[KEY] = AdapterScheme(data[KEY], os.fspath(path_json_file))
        return data

    return classmethod(from_json_file)


def _wrap_from_peft_type(build: classmethod) -> classmethod:
    @functools.wraps(build.__func__)
    def from_peft_type(cls: type, **kwargs: Any) -> Any:
        scheme = kwargs.pop(KEY, None)
        config = build.__func__(cls, **kwargs)
        if scheme is not None:
            if not isinstance(scheme, AdapterScheme):
                scheme = AdapterScheme(scheme, f"the {KEY!r} entry of a {type(config).__name__}")
            setattr(config, _ATTR, scheme)
        return config

    return classmethod(from_peft_type)


def _wrap_inject(inject: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(inject)
    def inject_adapter(self: Any, model: nn.Module, adapter_name: str, *args: Any, **kwargs: Any) -> Any:
        scheme = getattr(self.peft_config.get(adapter_name), _ATTR, None)
        if scheme is not None:
            apply_adapter_scheme(model, scheme)
        return inject(self, model, adapter_name, *args, **kwargs)

    return inject_adapter


def _install_hooks() -> None:
    from peft.config import PeftConfigMixin
    from peft.peft_model import PeftModel
    from peft.tuners.tuners_utils import BaseTuner
    from transformers.modeling_utils import PreTrainedModel

    for owner, name, wrap in (
        (PeftModel, "save_pretrained", _wrap_saving),
        (PreTrainedModel, "save_pretrained", _wrap_saving),
        (PeftConfigMixin, "save_pretrained", _wrap_config_save),
        (PeftConfigMixin, "from_json_file", _wrap_from_json_file),
        (PeftConfigMixin, "from_peft_type", _wrap_from_peft_type),
        (BaseTuner, "inject_adapter", _wrap_inject),
    ):
        if (owner, name) not in _ORIGINALS:
            _ORIGINALS[owner, name] = vars(owner)[name]
            setattr(owner, name, wrap(vars(owner)[name]))


class _AfterImport:
    """A ``sys.meta_path`` entry that finds nothing itself: once ``peft`` has been imported, it installs the hooks."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != "peft":
            return None
        sys.meta_path.remove(self)
        spec: ModuleSpec | None = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        if spec is None or spec.loader is None:
            return None
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _install_hooks()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Install the PEFT hooks: now if peft has been imported, else right after its import (idempotent; imports
    neither peft nor anything else)."""
    if _ORIGINALS or any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        return
    if "peft" in sys.modules:
        _install_hooks()
    else:
        sys.meta_path.insert(0, _AfterImport())


def uninstall() -> None:
    """Put PEFT's and transformers' original methods back and stop waiting for peft's import."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _AfterImport)]
    while _ORIGINALS:
        (owner, name), original = _ORIGINALS.popitem()
        setattr(owner, name, original)


def is_installed() -> bool:
    """Whether the hooks are in place (False while they still wait for peft's import)."""
    return bool(_ORIGINALS)
