"""Applying per-KV-head rotations (MHRoPE), and the dispatcher that lets attention code reach them.

Stock attention calls its modeling module's ``apply_rotary_pos_emb(q, k, cos, sin)``, which broadcasts one
(B, L, D) cos/sin over every head. For a multi-head allocation the rotary module instead returns
:class:`AxisTables` (cos or sin of each axis over the full spectrum, plus each KV head's axis), and the
dispatcher installed in that modeling module routes them to :func:`apply_per_head_axis`. Plain tensors go to
the original function untouched, so other models in the process are not affected; the dispatcher is
reference-counted and the original is put back when the last model using it is unpatched.

Two details of the model's own rotary are kept (see :data:`PAIRINGS`): which channels form a rotary pair
(``half``: channel c with c + D/2, NeoX / Llama / Qwen; ``adjacent``: channels 2i and 2i + 1, GPT-J / GLM /
ERNIE), and partial rotary: tables narrower than the head rotate its first channels and pass the rest through
(Qwen3.5, GLM-4.xV rotate a quarter or half of each head).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import torch

from mmrope_hf.frequencies.allocation import NOPE


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """NeoX pairing: channel c rotates with channel c + D/2."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate_adjacent(x: torch.Tensor) -> torch.Tensor:
    """GPT-J pairing: channel 2i rotates with channel 2i + 1."""
    return torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)


@dataclass(frozen=True)
class Pairing:
    """How a rotary lays its P pairs over 2P channels: ``duplicate`` spreads per-pair values (..., P) over the
    channels, ``rotate`` is the matching ``rotate_half``."""

    duplicate: Callable[[torch.Tensor], torch.Tensor]
    rotate: Callable[[torch.Tensor], torch.Tensor]


PAIRINGS = {
    "half": Pairing(lambda v: torch.cat((v, v), dim=-1), rotate_half),
    "adjacent": Pairing(lambda v: v.repeat_interleave(2, dim=-1), rotate_adjacent),
}


@dataclass(frozen=True)
class AxisTables:
    """cos or sin of every axis, shape ``(3, B, L, D)``, the axis of every KV head (-1: not rotated) and the
    rotary's channel pairing (a key of :data:`PAIRINGS`)."""

    tables: torch.Tensor
    head_axes: tuple[int, ...]
    pairing: str = "half"

    def runs(self) -> list[tuple[int, int, int]]:
        """(axis, first KV head, end KV head) of each run of consecutive heads on one axis."""
        runs: list[tuple[int, int, int]] = []
        for head, axis in enumerate(self.head_axes):
            if runs and runs[-1][0] == axis:
                runs[-1] = (axis, runs[-1][1], head + 1)
            else:
                runs.append((axis, head, head + 1))
        return runs


def _rotate_heads(x: torch.Tensor, cos: AxisTables, sin: AxisTables, heads_per_kv: int) -> torch.Tensor:
    rotate, width = PAIRINGS[cos.pairing].rotate, cos.tables.shape[-1]
    parts = []
    for axis, start, end in cos.runs():
        chunk = x[:, start * heads_per_kv : end * heads_per_kv]
        if axis == NOPE:
            parts.append(chunk)
            continue
        c, s = cos.tables[axis].unsqueeze(1), sin.tables[axis].unsqueeze(1)
        rotated, passed = chunk[..., :width], chunk[..., width:]  # partial rotary: the rest passes through
        parts.append(torch.cat((rotated * c + rotate(rotated) * s, passed), dim=-1))
    return torch.cat(parts, dim=1)


def apply_per_head_axis(
    q: torch.Tensor, k: torch.Tensor, cos: AxisTables, sin: AxisTables
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q ``(B, H, L, D)`` and k ``(B, KV, L, D)``: KV head j and query heads ``j*H/KV ... (j+1)*H/KV - 1``
    (transformers' ``repeat_kv`` grouping) use the tables of axis ``head_axes[j]``. No per-head cos/sin is built:
    heads of one axis are a contiguous slice rotated with that axis's (B, L, R) table, over the first R channels
    of each head (R < D: partial rotary)."""
    if q.shape[1] % k.shape[1] or k.shape[1] != len(cos.head_axes):
        raise ValueError(
            f"the multi-head plan has {len(cos.head_axes)} KV heads, attention has {k.shape[1]} KV / "
            f"{q.shape[1]} query heads"
        )
    return _rotate_heads(q, cos, sin, q.shape[1] // k.shape[1]), _rotate_heads(k, cos, sin, 1)


_INSTALLED: dict[tuple[ModuleType, str], list] = {}  # (module, name) -> [original, dispatcher, users]


def install_dispatcher(module: ModuleType, name: str) -> Callable[[], None]:
    """Make ``module.<name>`` route :class:`AxisTables` to :func:`apply_per_head_axis`; returns the undo.

    Other code may swap the same function for a while (profilers, ``monkeypatch``, test helpers) and put back what it
    saw, and the last undo runs when a model is garbage-collected, at any time. So: the undo puts the original back
    only if the dispatcher is still in place (it never clobbers someone else's function); an install finds the
    original under a stale dispatcher of ours, and puts the dispatcher back where the original was restored under
    a live one."""
    key = (module, name)
    if key not in _INSTALLED:
        original = getattr(module, name)
        while getattr(original, "_mmrope_dispatcher", False):  # a stale one, put back by someone who had saved it
            original = original.__wrapped__

        def apply_rotary_pos_emb(q, k, cos, sin, *args, **kwargs):
            if isinstance(cos, AxisTables):
                return apply_per_head_axis(q, k, cos, sin)
            return original(q, k, cos, sin, *args, **kwargs)

        apply_rotary_pos_emb.__wrapped__ = original  # type: ignore[attr-defined]
        apply_rotary_pos_emb._mmrope_dispatcher = True  # type: ignore[attr-defined]
        _INSTALLED[key] = [original, apply_rotary_pos_emb, 0]
        setattr(module, name, apply_rotary_pos_emb)
    entry = _INSTALLED[key]
    if getattr(module, name) is entry[0]:  # the original restored under a live dispatcher
        setattr(module, name, entry[1])
    entry[2] += 1

    def undo() -> None:
        entry[2] -= 1
        if entry[2] == 0:
            if getattr(module, name) is entry[1]:
                setattr(module, name, entry[0])
            del _INSTALLED[key]

    return undo
