"""The undo log of a patch: every attribute change and hook, replayed backwards by ``unpatch_model``."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn


class UndoLog:
    """Reversible attribute changes and hooks."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def set_attr(self, obj: Any, name: str, value: Any) -> None:
        if isinstance(obj, nn.Module) and name in obj._modules:
            old = obj._modules[name]
            self._steps.append(lambda: setattr(obj, name, old))
        elif name in vars(obj):
            old = vars(obj)[name]
            self._steps.append(lambda: setattr(obj, name, old))
        else:
            self._steps.append(lambda: delattr(obj, name))
        setattr(obj, name, value)

    def add_hook(self, handle: torch.utils.hooks.RemovableHandle) -> None:
        self._steps.append(handle.remove)

    def add_step(self, undo: Callable[[], None]) -> None:
        self._steps.append(undo)

    def undo(self) -> None:
        while self._steps:
            self._steps.pop()()
