"""InternVL: a 1D language model; every dynamic tile and the thumbnail of an image is one square grid
(:mod:`._tiles`)."""

from ._tiles import SquareTiles
from .llava import LlavaAdapter

ADAPTERS = {
    "internvl": LlavaAdapter(
        SquareTiles.internvl, notes="1D language model; every tile and the thumbnail one square grid, in token order"
    )
}
