"""Idefics3 and SmolVLM: a 1D language model (``model.model.text_model``); every tile and the global view of an
image is one square grid (:mod:`._tiles`)."""

from ._tiles import SquareTiles
from .llava import LlavaAdapter

_IDEFICS3 = LlavaAdapter(
    SquareTiles.idefics3,
    text_attr="text_model",
    vision_attr="vision_model",
    notes="1D language model; every tile and the global view one square grid, in token order",
)
ADAPTERS = {"idefics3": _IDEFICS3, "smolvlm": _IDEFICS3}
