"""Gemma 3: a 1D language model with one rotary table per layer type (sliding: local theta, full: global theta and
linear scaling); each image (and pan-and-scan crop) is a 16 x 16 pooled grid (:mod:`._tiles`)."""

from ._tiles import SquareTiles
from .llava import LlavaAdapter

ADAPTERS = {
    "gemma3": LlavaAdapter(
        SquareTiles.gemma3,
        notes="1D language model with a rotary table per layer type; each image or crop one pooled square grid",
    )
}
