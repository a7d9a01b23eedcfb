"""Token layouts of the 1D-RoPE VLMs whose images are square tiles (Gemma 3, Idefics3 / SmolVLM, InternVL) or rows
ended by break tokens (Mistral 3 / Pixtral): which placeholder tokens form which (T, H, W) grid. No RoPE maths here.

What one image is in the token stream (the transformers 5.23 processors), and the blocks laid on it:

- **Gemma 3** (``gemma3``): ``<start_of_image>`` + ``mm_tokens_per_image`` (256) placeholders + ``<end_of_image>``.
  The SigLIP patch grid (64 x 64) is average-pooled to a row-major ``s x s`` grid (16 x 16): one (1, s, s) block.
  Pan-and-scan crops are further images of the same size after the original, each its own block.
- **Idefics3 / SmolVLM** (``idefics3``, ``smolvlm``): an image is split into rows x cols tiles plus a global view;
  every tile is ``<fake_token_around_image><row_r_col_c>`` + ``image_seq_len`` placeholders, each row of tiles
  ends with a newline and the global view comes last. Pixel shuffle keeps each tile a row-major ``s x s`` grid
  (``s = sqrt(image_seq_len)``). The model is never told rows and cols (only the tokenizer's ids of the row/col
  markers carry them), so each tile and the global view is its own (1, s, s) block, in token order; SmolVLM video
  frames are images.
- **InternVL** (``internvl``): ``<img>`` + n x ``image_seq_length`` placeholders + ``</img>``: n dynamic tiles and
  a thumbnail, each a row-major ``s x s`` grid after pixel shuffle (``s`` = tile side in patches x
  ``downsample_ratio``); the tile arrangement is not in the model inputs either: n (1, s, s) blocks.
- **Mistral 3** (``mistral3``, Pixtral tower): an image of ``image_sizes`` (H, W) pixels is ``H // (patch x
  merge)`` rows of ``W // (patch x merge)`` ``[IMG]`` placeholders, each row followed by ``[IMG_BREAK]``, the last
  one by ``[IMG_END]``: one (1, rows, cols + 1) block spanning the break tokens, which sit at column ``cols`` of
  their row (as LLaVA-NeXT's newline column).

Consecutive blocks are placed as consecutive images by every position design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from mmrope_hf.positions.layout import IMAGE, Segment, VisualBlock

from ._llava_layout import placeholder_kinds, runs


def _side(tokens: int, what: str) -> int:
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise TypeError(f"{what} is {tokens}, not a square grid of tokens")
    return side


@dataclass(frozen=True)
class SquareTiles:
    """Every run of placeholder tokens is a whole number of ``side x side`` tiles, each one (1, side, side) block.

    Attributes:
        family: the model type, for messages.
        side: tokens per side of one tile.
        image_token_id: the placeholder token.
    """

    family: str
    side: int
    image_token_id: int
    video_token_id = None  # videos are images (frames) on these families

    @classmethod
    def gemma3(cls, owner: nn.Module) -> SquareTiles:
        config: Any = owner.config
        return cls("gemma3", _side(config.mm_tokens_per_image, "mm_tokens_per_image"), config.image_token_id)

    @classmethod
    def idefics3(cls, owner: nn.Module) -> SquareTiles:
        model: Any = owner
        return cls(model.config.model_type, _side(model.image_seq_len, "image_seq_len"), model.config.image_token_id)

    @classmethod
    def internvl(cls, owner: nn.Module) -> SquareTiles:
        config: Any = owner.config
        vision = config.vision_config
        patches = int(vision.image_size[0]) // int(vision.patch_size[0])
        return cls("internvl", int(patches * config.downsample_ratio), config.image_token_id)

    def layout(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, inputs: Mapping[str, Any]
    ) -> list[list[Segment]] | None:
        """Segments of every row over its unpadded tokens; ``None`` when the batch holds no placeholder token."""
        rows = placeholder_kinds(input_ids, attention_mask, {IMAGE: self.image_token_id})
        if rows is None:
            return None
        tile = self.side**2
        layout = []
        for row, kinds in enumerate(rows):
            segments: list[Segment] = []
            for kind, start, end in runs(kinds):
                if kind == 0:
                    segments.append(end - start)
                    continue
                if (end - start) % tile:
                    raise ValueError(
                        f"row {row} has a run of {end - start} image placeholder tokens at position {start}, not a "
                        f"whole number of {self.side}x{self.side} tiles ({tile} tokens each) as {self.family} packs "
                        f"them"
                    )
                segments += [VisualBlock(IMAGE, (1, self.side, self.side), 1.0)] * ((end - start) // tile)
            layout.append(segments)
        return layout


@dataclass(frozen=True)
class RowBreaks:
    """Each image is ``rows`` runs of ``cols`` placeholders, each followed by one break (the last by an end) token:
    one (1, rows, cols + 1) block, its grid from ``image_sizes`` (Pixtral).

    Attributes:
        patch: pixels per patch side times the spatial merge (pixels per token side).
        image_token_id: the placeholder token.
    """

    patch: int
    image_token_id: int
    video_token_id = None

    @classmethod
    def mistral3(cls, owner: nn.Module) -> RowBreaks:
        config: Any = owner.config
        return cls(config.vision_config.patch_size * config.spatial_merge_size, config.image_token_id)

    def grids(self, inputs: Mapping[str, Any]) -> list[tuple[int, int]]:
        """(rows, cols) of every image of the batch, in order, from ``image_sizes``."""
        sizes = inputs.get("image_sizes")
        if sizes is None:
            raise ValueError("the mistral3 layout needs image_sizes (one (height, width) per image)")
        return [(int(h) // self.patch, int(w) // self.patch) for h, w in torch.as_tensor(sizes).reshape(-1, 2).tolist()]

    def layout(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, inputs: Mapping[str, Any]
    ) -> list[list[Segment]] | None:
        """Segments of every row over its unpadded tokens; ``None`` when the batch holds no placeholder token."""
        rows = placeholder_kinds(input_ids, attention_mask, {IMAGE: self.image_token_id})
        if rows is None:
            return None
        grids = iter(enumerate(self.grids(inputs)))
        layout = []
        for row, kinds in enumerate(rows):
            segments: list[Segment] = []
            position = 0
            while position < len(kinds):
                if kinds[position] == 0:
                    text = next((i for i in range(position, len(kinds)) if kinds[i]), len(kinds)) - position
                    segments.append(text)
                    position += text
                    continue
                index, (height, width) = next(grids, (None, (0, 0)))
                if index is None:
                    raise ValueError(f"row {row} has more images at position {position} than image_sizes describes")
                self._check_rows(kinds, row, position, index, height, width)
                segments.append(VisualBlock(IMAGE, (1, height, width + 1), 1.0))
                position += height * (width + 1)
            layout.append(segments)
        left = sum(1 for _ in grids)
        if left:
            raise ValueError(f"image_sizes describes {left} image(s) more than the placeholder tokens hold")
        return layout

    @staticmethod
    def _check_rows(kinds: list[int], row: int, start: int, index: int, height: int, width: int) -> None:
        expected = [IMAGE] * width + [0]
        for r in range(height):
            at = start + r * (width + 1)
            if kinds[at : at + width + 1] != expected:
                raise ValueError(
                    f"image {index} ({height} rows of {width} tokens from image_sizes) does not match row {row} at "
                    f"position {at}: expected {width} image placeholder tokens and a break token (image features "
                    f"and placeholder tokens do not match)"
                )
