"""Layer schedules: which position set each decoder layer reads (Circle-RoPE's staggering, AGE).

``layers`` takes:

- ``"all"``: ``position`` in every layer;
- ``"alternate"``: ``position`` in 1-based odd layers (0-based even), ``stagger_with`` in the others (the
  Circle-RoPE reference's ``strategy_4``);
- ``"lower"`` / ``"upper"``: ``position`` in the lower / upper ceil(n/2) layers, ``stagger_with`` in the rest;
- a list with one entry per decoder layer: a position design name, or ``true`` (``position``) / ``false``
  (``stagger_with``);
- ``{"repeat": [...]}``: such entries repeated from layer 0 over any depth.

Every distinct design is one position set, computed once per forward; set 0 is ``position``.

On a hybrid stack (Qwen3.5: Gated-DeltaNet linear-attention layers with no RoPE between full-attention layers)
the schedule runs over the **rotating layers only**, in order: layer ``i`` above is the i-th full-attention layer,
a list has one entry per full-attention layer, and the linear-attention layers read no positions at all. On
Qwen3.5-27B (64 layers, every 4th full attention) ``alternate`` therefore alternates over its 16 full-attention
layers (decoder layers 3, 11, 19, ... read ``position``; 7, 15, 23, ... ``stagger_with``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from mmrope_hf.positions.registry import POSITION_DESIGNS

NAMED = ("all", "alternate", "lower", "upper")


@dataclass(frozen=True)
class LayerSchedule:
    """``designs[k]`` is the position design of set k; ``layer_sets[i]`` the set of decoder layer i."""

    designs: tuple[str, ...]
    layer_sets: tuple[int, ...]

    @property
    def num_sets(self) -> int:
        return len(self.designs)


def _check_entries(entries: Any, what: str) -> tuple:
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence) or not entries:
        raise ValueError(f"{what} must be a non-empty list of position designs or true/false, got {entries!r}")
    for entry in entries:
        if not isinstance(entry, bool) and entry not in POSITION_DESIGNS:
            raise ValueError(
                f"unknown {what} entry {entry!r}; valid: true, false, {', '.join(POSITION_DESIGNS.names())}"
            )
    return tuple(entries)


def check_layers(layers: Any) -> str | tuple | dict:
    """Normalise a ``layers`` value (see the module docstring) or raise ``ValueError`` naming the choices."""
    if layers is None:
        return "all"
    if isinstance(layers, str):
        if layers not in NAMED:
            raise ValueError(
                f"unknown layers {layers!r}; valid choices: {', '.join(NAMED)}, a list with one entry per layer, "
                f"or {{'repeat': [...]}}"
            )
        return layers
    if isinstance(layers, Mapping):
        if set(layers) != {"repeat"}:
            raise ValueError(f"a layers mapping takes exactly one key, 'repeat', got {sorted(layers)}")
        return {"repeat": _check_entries(layers["repeat"], "layers repeat")}
    return _check_entries(layers, "layers")


def _entries(layers: str | tuple | dict, num_layers: int, skipped: int) -> Sequence[Any]:
    if layers == "all":
        return [True] * num_layers
    if layers == "alternate":
        return [i % 2 == 0 for i in range(num_layers)]
    if layers == "lower":
        return [i < (num_layers + 1) // 2 for i in range(num_layers)]
    if layers == "upper":
        return [i >= num_layers // 2 for i in range(num_layers)]
    if isinstance(layers, dict):
        pattern = layers["repeat"]
        return [pattern[i % len(pattern)] for i in range(num_layers)]
    if len(layers) != num_layers:
        what = (
            f"{num_layers} rotating (full-attention) decoder layers; its {skipped} linear-attention layers carry no "
            f"RoPE and take no entry"
            if skipped
            else f"{num_layers} decoder layers"
        )
        raise ValueError(f"layers lists {len(layers)} entries, but the model has {what}")
    return layers


def layer_schedule(
    position: str, stagger_with: str, layers: str | tuple | dict, num_layers: int, skipped: int = 0
) -> LayerSchedule:
    """The schedule for a model with ``num_layers`` rotating decoder layers (and ``skipped`` layers without RoPE).

    >>> layer_schedule("circle", "mrope", "alternate", 4)
    LayerSchedule(designs=('circle', 'mrope'), layer_sets=(0, 1, 0, 1))
    >>> layer_schedule("circle", "mrope", "all", 3)
    LayerSchedule(designs=('circle',), layer_sets=(0, 0, 0))
    """
    names = [
        position if entry is True else stagger_with if entry is False else entry
        for entry in _entries(layers, num_layers, skipped)
    ]
    designs = tuple(dict.fromkeys([position, *names]))
    used = [d for d in designs if d in names] if names else [position]
    return LayerSchedule(tuple(used), tuple(used.index(name) for name in names))
