"""The registry of position designs, read by the builders, the config validation and the layer schedule.

A new design goes in a module of this folder that exposes ``DESIGNS = {name: PositionDesign(...)}``; add the module
to ``_MODULES`` below.
"""

from __future__ import annotations

from mmrope_hf.positions import baselines, circle, mrope
from mmrope_hf.positions.design import PositionDesign
from mmrope_hf.registry import Registry

_MODULES = (mrope, circle, baselines)

POSITION_DESIGNS: Registry[PositionDesign] = Registry("position design")
for _module in _MODULES:
    for _name, _design in _module.DESIGNS.items():
        POSITION_DESIGNS.add(_name, _design)
