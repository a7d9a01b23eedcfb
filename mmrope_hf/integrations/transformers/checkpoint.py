"""The ``mmrope`` key of a checkpoint's ``config.json``: read it, check it, write it atomically.

A checkpoint selects its scheme with a top-level ``mmrope`` key holding a scheme dict (what
:func:`~mmrope_hf.patch_model` writes to ``model.config.mmrope``) or a preset name (what a process without
mmrope-hf writes after ``from_pretrained(..., mmrope="mrope-i")``). The functions here never touch the weights.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
import transformers
from torch import nn

from mmrope_hf.config import available_schemes
from mmrope_hf.patching.api import patch_model

CONFIG_KEY = "mmrope"
CONFIG_FILE = "config.json"


def config_path(checkpoint: str | os.PathLike) -> Path:
    """``CHECKPOINT/config.json``; ``ValueError`` if it does not exist."""
    path = Path(checkpoint) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{checkpoint} is not a checkpoint directory: {path} does not exist")
    return path


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_scheme(checkpoint: str | os.PathLike) -> Any:
    """The raw value of the checkpoint's ``mmrope`` key, ``None`` when it has none (a stock checkpoint)."""
    return _read_config(config_path(checkpoint)).get(CONFIG_KEY)


def patch_from_key(model: nn.Module, value: Any, source: str) -> nn.Module:
    """Patch ``model`` with the value of an ``mmrope`` config key read from ``source`` (a file, for errors).

    The value is a scheme dict or a preset name. A path is refused (a checkpoint must not depend on the working
    directory), and so is anything else: the ``ValueError`` names ``source``, the key, the fault and the valid
    forms. A ``TypeError``/``ValueError`` of the scheme itself is re-raised the same way.
    """
    try:
        if isinstance(value, str):
            if value not in available_schemes():
                raise ValueError(f"{value!r} is not a preset name")
            value = {"scheme": value}
        elif not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping or a preset name, got {type(value).__name__} {value!r}")
        return patch_model(model, dict(value))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f'{source}: invalid "{CONFIG_KEY}" key: {error}. Valid forms: a scheme dict with a "scheme" key, as '
            f"save_pretrained and `mmrope apply` write it, or a preset name ({', '.join(available_schemes())}). "
            f"Fix it with `mmrope apply CHECKPOINT --scheme NAME`, or pass mmrope=None to from_pretrained to load "
            f"the stock model"
        ) from error


def meta_model(checkpoint: str | os.PathLike) -> nn.Module:
    """The checkpoint's image-text-to-text model built on the meta device: no weights read, no memory used.

    Patching it runs every check that loading runs, so the CLI can refuse a scheme that would not load.
    """
    config = transformers.AutoConfig.from_pretrained(config_path(checkpoint).parent)
    with torch.device("meta"):
        return transformers.AutoModelForImageTextToText.from_config(config)


def write_scheme(checkpoint: str | os.PathLike, scheme: Mapping[str, Any] | None) -> bool:
    """Set (or with ``None`` remove) the ``mmrope`` key of ``CHECKPOINT/config.json``; return whether it changed.

    Every other key keeps its value and its place; a file whose top-level keys are sorted (as
    ``save_pretrained`` writes them) stays sorted. The file is replaced atomically: the new text goes to a
    temporary file in the same directory, is flushed to disk, then renamed over the old one, so an
    interrupted write leaves the old file intact.
    """
    path = config_path(checkpoint)
    data = _read_config(path)
    sort_keys = list(data) == sorted(data)
    updated = {key: value for key, value in data.items() if key != CONFIG_KEY}
    if scheme is not None:
        updated = {**data, CONFIG_KEY: dict(scheme)}  # replaces in place, or appends
    if updated == data:
        return False
    _replace_atomically(path, json.dumps(updated, indent=2, sort_keys=sort_keys) + "\n")
    return True


def _replace_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
