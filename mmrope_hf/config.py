"""`MMRopeConfig`: a validated description of one multimodal RoPE scheme, and the preset loader.

A scheme is a position design x a frequency allocation x a layer schedule (see README). Named schemes
are presets: one YAML file each in ``configs/`` (installed as ``mmrope_hf.configs``). Every preset field
can be overridden by keyword, and unknown keys or bad values raise a ``ValueError`` that names the valid
choices.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping

import yaml

from mmrope_hf.frequencies.allocation import ALLOCATIONS
from mmrope_hf.options import Option, int_triple, positive_number
from mmrope_hf.positions.registry import POSITION_DESIGNS
from mmrope_hf.schedule import check_layers
from mmrope_hf.version import __version__

NATIVE = "native"
VISION_ADVANCES = ("max", "spatial")
_PRESET_ONLY_KEYS = ("description",)
_OPTION_ALIASES = ("spatial_reset",)


@dataclass(frozen=True)
class MMRopeConfig:
    """A fully resolved scheme.

    Args:
        scheme (`str`): name of the preset it was resolved from (for display and saving).
        position (`str`): position design, one of ``mrope``, ``spatial-reset``, ``vanilla``.
        frequency (`str`): frequency allocation: ``native`` (the model's own), ``chunked`` or ``interleaved``.
        mrope_section (`tuple[int, int, int]`, *optional*): rotary pairs per axis (t, h, w). ``None`` means the
            model's own section when the allocation is native, else the paper default scaled to the head dim.
        temporal_stride (`float`, *optional*): temporal position step between frames/temporal groups. ``None``
            keeps the model's own rule (1 on Qwen2-VL, ``tokens_per_second * second_per_grid_ts`` on Qwen2.5-VL).
        vision_advance (`str`): where text resumes after a visual block: ``max`` (paper and transformers 4.x:
            ``st + max((T-1)s, H-1, W-1) + 1``) or ``spatial`` (transformers 5.23 Qwen2/2.5-VL: ``st + max(H, W)``).
            They differ only after a video with several temporal groups.
        layers (`str`, `tuple` or `dict`): layer schedule (see :mod:`mmrope_hf.schedule`): ``"all"``,
            ``"alternate"``, ``"lower"``, ``"upper"``, one entry per decoder layer (a design name, or ``True`` for
            ``position`` / ``False`` for ``stagger_with``), or ``{"repeat": [...]}``.
        stagger_with (`str`): the position design of the layers a schedule does not give to ``position``.
        options (`tuple[tuple[str, Any], ...]`): the options that the position design(s) and the frequency
            allocation declare for themselves (e.g. a ring radius), defaults filled in, sorted by name.

    >>> MMRopeConfig(scheme="mrope-i", position="spatial-reset", frequency="interleaved").spatial_reset
    True
    """

    scheme: str = "mrope"
    position: str = "mrope"
    frequency: str = NATIVE
    mrope_section: tuple[int, int, int] | None = None
    temporal_stride: float | None = None
    vision_advance: str = "max"
    layers: str | tuple | dict = "all"
    stagger_with: str = "mrope"
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        _check_choice("position", self.position, POSITION_DESIGNS.names())
        _check_choice("frequency", self.frequency, [NATIVE, *ALLOCATIONS.names()])
        _check_choice("vision_advance", self.vision_advance, VISION_ADVANCES)
        if self.mrope_section is not None:
            object.__setattr__(self, "mrope_section", int_triple("mrope_section", self.mrope_section))
        if self.temporal_stride is not None:
            object.__setattr__(self, "temporal_stride", positive_number("temporal_stride", self.temporal_stride))
        object.__setattr__(self, "layers", check_layers(self.layers))
        _check_choice("stagger_with", self.stagger_with, POSITION_DESIGNS.names())
        specs = self.option_specs()
        given = dict(self.options)
        unknown = sorted(set(given) - set(specs))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)} for scheme {self.scheme!r}; valid options: "
                f"{', '.join(option_names(self))}"
            )
        values = {
            name: spec.check(name, given[name]) if name in given else spec.default for name, spec in specs.items()
        }
        object.__setattr__(self, "options", tuple(sorted(values.items())))

    @property
    def designs(self) -> tuple[str, ...]:
        """The position designs this scheme may use: ``position`` first, then those its schedule names."""
        if self.layers == "all":
            return (self.position,)
        if isinstance(self.layers, str):
            return tuple(dict.fromkeys([self.position, self.stagger_with]))
        entries = self.layers["repeat"] if isinstance(self.layers, dict) else self.layers
        named = [self.position if e is True else self.stagger_with if e is False else e for e in entries]
        return tuple(dict.fromkeys([self.position, *named]))

    def option_specs(self) -> dict[str, Option]:
        """The options declared by this scheme's position designs and frequency allocation."""
        specs: dict[str, Option] = {}
        for design in self.designs:
            specs.update(POSITION_DESIGNS.get(design).options)
        if self.frequency != NATIVE:
            specs.update(ALLOCATIONS.get(self.frequency).options)
        return specs

    def option(self, name: str) -> Any:
        """The value of a design/allocation option."""
        return dict(self.options)[name]

    @property
    def spatial_reset(self) -> bool:
        """Whether h and w restart at 0 for each image/frame."""
        return self.position == "spatial-reset"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, stamped with the mmrope-hf version; inverse of :func:`resolve_config`."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "options"}
        out.update(self.options)
        out = {key: _jsonable(value) for key, value in out.items()}
        out["mmrope_hf_version"] = __version__
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _check_choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(str, choices))}")


def available_schemes() -> list[str]:
    """Names of the presets shipped in ``mmrope_hf.configs``.

    >>> "mrope-i" in available_schemes()
    True
    """
    return sorted(
        f.name[: -len(".yaml")] for f in resources.files("mmrope_hf.configs").iterdir() if f.name.endswith(".yaml")
    )


def load_preset(name: str) -> dict[str, Any]:
    """The raw dict of preset ``name`` (including its ``description``)."""
    if name not in available_schemes():
        raise ValueError(f"unknown scheme {name!r}; valid choices: {', '.join(available_schemes())}")
    text = resources.files("mmrope_hf.configs").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text)


_COMMON_OPTIONS = [f.name for f in dataclasses.fields(MMRopeConfig) if f.name not in ("scheme", "options")]


def option_names(config: MMRopeConfig | None = None) -> list[str]:
    """Options a scheme accepts: the common ones plus those its components declare (all of them without a config)."""
    if config is None:
        specific = [name for d in POSITION_DESIGNS for name in POSITION_DESIGNS.get(d).options]
        specific += [name for a in ALLOCATIONS for name in ALLOCATIONS.get(a).options]
    else:
        specific = list(config.option_specs())
    return sorted({*_COMMON_OPTIONS, *_OPTION_ALIASES, *specific})


def _read_file(path: str) -> dict[str, Any]:
    with open(path) as f:
        data = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of scheme options, got {type(data).__name__}")
    data.setdefault("scheme", os.path.splitext(os.path.basename(path))[0])
    for key in _PRESET_ONLY_KEYS:  # a copy of a preset file carries its description
        data.pop(key, None)
    return data


def resolve_config(scheme: str | Mapping[str, Any] | MMRopeConfig, **options: Any) -> MMRopeConfig:
    """Turn a preset name, a path to a YAML/JSON file, a dict or a config, plus overrides, into a config.

    Options override the preset. ``spatial_reset=True/False`` switches the position design between
    ``spatial-reset`` and ``mrope``.

    >>> resolve_config("mrope-i").position
    'spatial-reset'
    >>> resolve_config("mrope-i", spatial_reset=False).position
    'mrope'
    """
    if isinstance(scheme, MMRopeConfig):
        base = scheme.to_dict()
    elif isinstance(scheme, Mapping):
        base = dict(scheme)
        if "scheme" not in base:
            raise ValueError(f"a scheme dict needs a 'scheme' key; valid schemes: {', '.join(available_schemes())}")
    elif isinstance(scheme, str) and scheme.endswith((".yaml", ".yml", ".json")):
        if not os.path.isfile(scheme):
            raise ValueError(f"scheme file {scheme!r} does not exist")
        base = _read_file(scheme)
    elif isinstance(scheme, str):
        base = {"scheme": scheme}
    else:
        raise TypeError(f"scheme must be a name, a path, a dict or an MMRopeConfig, got {type(scheme).__name__}")

    version = base.pop("mmrope_hf_version", None)
    merged = {**base, **options}
    name = merged.pop("scheme")
    values = load_preset(name)
    for key in _PRESET_ONLY_KEYS:
        values.pop(key, None)
    values.update(merged)

    if "spatial_reset" in values:
        reset = values.pop("spatial_reset")
        if not isinstance(reset, bool):
            raise ValueError(f"spatial_reset must be true or false, got {reset!r}")
        if values.get("position", "mrope") not in ("mrope", "spatial-reset"):
            raise ValueError(
                f"spatial_reset applies to the mrope/spatial-reset position designs, not {values['position']!r}"
            )
        values["position"] = "spatial-reset" if reset else "mrope"
    common = {key: values.pop(key) for key in _COMMON_OPTIONS if key in values}
    options = values.pop("options", {})  # a saved config's to_dict() has them flattened; accept both
    try:
        return MMRopeConfig(scheme=name, **common, options=tuple({**dict(options), **values}.items()))
    except ValueError as error:
        if version and "unknown option" in str(error):
            raise ValueError(
                f"{error} (this config was written by mmrope-hf {version}; this is {__version__})"
            ) from None
        raise
