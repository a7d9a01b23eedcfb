"""Layer schedules: which position set each decoder layer reads."""

from __future__ import annotations

from dataclasses import dataclass

from .config import MMRopeConfig


@dataclass(frozen=True)
class LayerSchedule:
    """``designs[k]`` is the position design of set k; ``layer_sets[i]`` the set of decoder layer i."""

    designs: tuple[str, ...]
    layer_sets: tuple[int, ...]

    @property
    def num_sets(self) -> int:
        return len(self.designs)


def layer_schedule(config: MMRopeConfig, num_layers: int) -> LayerSchedule:
    """The schedule of ``config`` for a model with ``num_layers`` decoder layers.

    >>> layer_schedule(MMRopeConfig(layers=("mrope", "vanilla", "mrope")), 3)
    LayerSchedule(designs=('mrope', 'vanilla'), layer_sets=(0, 1, 0))
    """
    if config.layers is None or config.layers == "all":
        return LayerSchedule((config.position,), (0,) * num_layers)
    if len(config.layers) != num_layers:
        raise ValueError(f"layers lists {len(config.layers)} position designs, but the model has {num_layers} decoder layers")
    designs = tuple(dict.fromkeys(config.layers))
    return LayerSchedule(designs, tuple(designs.index(name) for name in config.layers))
