"""Mistral 3 (Pixtral tower): a 1D language model; each image is one grid from ``image_sizes`` whose last column is
the row's ``[IMG_BREAK]`` / ``[IMG_END]`` token (:mod:`._tiles`)."""

from ._tiles import RowBreaks
from .llava import LlavaAdapter

ADAPTERS = {
    "mistral3": LlavaAdapter(
        RowBreaks.mistral3, notes="1D language model; each image one grid from image_sizes, row breaks as a last column"
    )
}
