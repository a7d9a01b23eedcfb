"""LLaVA token layouts: which placeholder tokens form which (T, H, W) grid, rebuilt from the config and the inputs.

LLaVA models mark every visual slot with the same placeholder token (``image_token_id``, ``video_token_id``), so
the grid of each image is recomputed here exactly as the model packs its features, and each row of the batch
is cut into text runs (ints) and :class:`~mmrope_hf.layout.VisualBlock` s in row-major order, the layout the
core's position designs take. No RoPE maths here.

Per image or video, with ``side = vision_config.image_size // vision_config.patch_size`` (patches per side of
one tile; 24 for CLIP-L/336, 27 for SigLIP/384):

- **LLaVA-1.5** (``llava``): one ``side x side`` block. With ``vision_feature_select_strategy="full"`` on a tower
  with a CLS token (CLIP) the CLS feature comes first and is placed like **one text token** before the block.
- **LLaVA-NeXT** (``llava_next``), any-resolution: the **base (global) view**, a ``side x side`` block, followed by
  the **high-resolution grid** as a second block: the tiles chosen for ``image_sizes`` re-assembled into one
  ``(nph side) x (npw side)`` grid, with the padding rows or columns cropped (``unpad_image``), **plus one column**:
  the ``image_newline`` token that ends every row sits at column ``W`` of its row, i.e. (h, w) = (r, W). The two
  blocks follow each other like two images (the hi-res grid starts where text would resume after the base view);
  every design places them as it places consecutive images.
- **LLaVA-OneVision** (``llava_onevision``): as NeXT, and the hi-res grid is downsampled (bilinear, to
  ``int(H // ratio) x int(W // ratio)``) when it holds more than ~``max`` tiles of tokens (``anyres_max_<max>``,
  ratio > 1.1). An image of a sample with several images (``batch_num_images`` > 1) keeps only its base view,
  followed by one newline token placed like **one text token**. A video is one block of ``frames`` temporal groups
  (t = frame) of ``ceil(side/2) x ceil(side/2)`` pooled tokens, followed by one newline token placed like **one
  text token**.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Protocol, Sequence

import torch

from mmrope_hf.positions.layout import IMAGE, VIDEO, Segment, VisualBlock

LLAVA, NEXT, ONEVISION = "llava", "llava_next", "llava_onevision"


@dataclass(frozen=True)
class Item:
    """One image or video: its segments (in token order) and what to call it in errors."""

    segments: tuple[Segment, ...]
    description: str

    @property
    def num_tokens(self) -> int:
        return sum(s if isinstance(s, int) else s.num_tokens for s in self.segments)


@dataclass(frozen=True)
class LlavaGeometry:
    """What the model's packing depends on, read from the model at patch time.

    Attributes:
        family: ``llava``, ``llava_next`` or ``llava_onevision``.
        side: patches per side of one tile.
        tile_size: ``vision_config.image_size`` in pixels.
        cls_tokens: features the vision tower emits before its patch grid (1 for CLIP, 0 for SigLIP).
        image_token_id / video_token_id: the placeholder tokens (no video on LLaVA-1.5 / NeXT).
        select_strategy: the config's ``vision_feature_select_strategy`` (a forward argument overrides it).
        pinpoints: ``image_grid_pinpoints`` (NeXT, OneVision).
        aspect_ratio: ``vision_aspect_ratio`` (OneVision; the model always reads it from the config).
        modeling: the model's modeling module (its ``get_anyres_image_grid_shape`` and ``unpad_image`` are used).
    """

    family: str
    side: int
    tile_size: int
    cls_tokens: int
    image_token_id: int
    video_token_id: int | None
    select_strategy: str
    pinpoints: tuple | None
    aspect_ratio: str | None
    modeling: Any

    @classmethod
    def of(cls, family: str, owner: Any) -> "LlavaGeometry":
        config, vision = owner.config, owner.config.vision_config
        embeddings = getattr(getattr(owner.vision_tower, "vision_model", owner.vision_tower), "embeddings", None)
        if embeddings is None or not hasattr(vision, "image_size") or not hasattr(vision, "patch_size"):
            raise TypeError(
                f"the {family} adapter supports vision towers with one fixed square patch grid per tile "
                f"(CLIP, SigLIP); "
                f"{type(owner.vision_tower).__name__} ({vision.model_type}) has none"
            )
        return cls(
            family=family,
            side=vision.image_size // vision.patch_size,
            tile_size=vision.image_size,
            cls_tokens=1 if hasattr(embeddings, "class_embedding") else 0,
            image_token_id=config.image_token_id,
            video_token_id=getattr(config, "video_token_id", None) if family == ONEVISION else None,
            select_strategy=config.vision_feature_select_strategy,
            pinpoints=None if family == LLAVA else tuple(map(tuple, config.image_grid_pinpoints)),
            aspect_ratio=getattr(config, "vision_aspect_ratio", None) if family == ONEVISION else None,
            modeling=sys.modules[type(owner).__module__],
        )

    # -- one item ---------------------------------------------------------------------------------------------

    def tile_tokens(self, strategy: str) -> int:
        """Features one tile leaves after the select strategy (``default`` drops the first one)."""
        return self.side**2 + self.cls_tokens - (1 if strategy == "default" else 0)

    def _grid_tile(self, strategy: str, what: str) -> None:
        if self.tile_tokens(strategy) != self.side**2:
            raise ValueError(
                f"{what}: with vision_feature_select_strategy={strategy!r} a tile gives {self.tile_tokens(strategy)} "
                f"features, not the {self.side}x{self.side} patch grid the {self.family} model packs"
            )

    def image(self, index: int, image_size: Sequence[int] | None, strategy: str, patched: bool = True) -> Item:
        """Image ``index`` (batch order) of ``image_size`` (h, w) pixels; ``patched=False``: base view only (OneVision
        multi-image samples)."""
        base = VisualBlock(IMAGE, (1, self.side, self.side), 1.0)
        if self.family == LLAVA:
            tokens = self.tile_tokens(strategy)
            if tokens == self.side**2:
                return Item((base,), f"image {index} ({self.side}x{self.side} grid)")
            if tokens == self.side**2 + 1:
                return Item((1, base), f"image {index} (CLS + {self.side}x{self.side} grid)")
            raise ValueError(
                f"image {index}: vision_feature_select_strategy={strategy!r} leaves {tokens} features of the "
                f"{self.side}x{self.side} patch grid, which is not a grid"
            )
        if image_size is None:
            raise ValueError(
                f"image {index}: the {self.family} layout needs image_sizes (one (height, width) per image)"
            )
        what = f"image {index} (image_sizes {tuple(image_size)})"
        self._grid_tile(strategy, what)
        if not patched:
            return Item((base, 1), f"{what}, base view + newline")
        height, width = self.hires_grid(image_size)
        hires = VisualBlock(IMAGE, (1, height, width + 1), 1.0)
        return Item((base, hires), f"{what}, base {self.side}x{self.side} + {height}x{width} grid + {height} newlines")

    def hires_grid(self, image_size: Sequence[int]) -> tuple[int, int]:
        """(rows, columns) of the high-resolution grid, newlines excluded, as the model's ``pack_image_features``."""
        size = [int(v) for v in image_size]
        tiles_h, tiles_w = self.modeling.get_anyres_image_grid_shape(
            size, [list(p) for p in self.pinpoints or ()], self.tile_size
        )
        padded = torch.empty(0, tiles_h * self.side, tiles_w * self.side)  # no data: only unpad_image's crop is read
        height, width = self.modeling.unpad_image(padded, size).shape[1:]
        if self.family == ONEVISION:
            # the model's own parsing of "anyres_max_9"
            max_tiles = int(str(self.aspect_ratio).strip("anyres_max_"))  # noqa: B005
            ratio = math.sqrt(height * width / (max_tiles * self.side**2))
            if ratio > 1.1:
                height, width = int(height // ratio), int(width // ratio)
        return height, width

    def video(self, index: int, frames: int, strategy: str) -> Item:
        """Video ``index`` of ``frames`` frames (OneVision): pooled frames as t, then one newline."""
        what = f"video {index} ({frames} frames)"
        self._grid_tile(strategy, what)
        pooled = math.ceil(self.side / 2)
        return Item(
            (VisualBlock(VIDEO, (frames, pooled, pooled), 1.0), 1), f"{what}, {pooled}x{pooled} per frame + newline"
        )

    # -- a batch ----------------------------------------------------------------------------------------------

    def items(self, inputs: Mapping[str, Any]) -> dict[int, list[Item] | None]:
        """The images and videos of a batch, in order; ``None`` for LLaVA-1.5 images without ``pixel_values`` (their
        count then follows from the placeholders, every image having the same layout)."""
        strategy = inputs.get("vision_feature_select_strategy") or self.select_strategy
        out: dict[int, list[Item] | None] = {}
        if self.family == LLAVA:
            if inputs.get("image_sizes") is not None:
                raise ValueError(
                    "the llava adapter lays out fixed square grids; image_sizes (Pixtral-style towers) "
                    "are not supported"
                )
            pixels = inputs.get("pixel_values")
            count = None if pixels is None else int(pixels.shape[0])
            out[IMAGE] = None if count is None else [self.image(k, None, strategy) for k in range(count)]
            return out
        sizes = inputs.get("image_sizes")
        if sizes is None:
            out[IMAGE] = None  # fine without image placeholders; with them, _Queue asks for image_sizes
        else:
            sizes = [list(map(int, s)) for s in torch.as_tensor(sizes).reshape(-1, 2).tolist()]
            pixels = inputs.get("pixel_values")
            if pixels is not None and int(pixels.shape[0]) != len(sizes):
                raise ValueError(f"pixel_values holds {int(pixels.shape[0])} image(s) but image_sizes {len(sizes)}")
            patched = [True] * len(sizes)
            per_sample = inputs.get("batch_num_images") if self.family == ONEVISION else None
            if per_sample is not None:  # OneVision: images of multi-image samples keep their base view only
                per_sample = [int(n) for n in torch.as_tensor(per_sample).reshape(-1).tolist()]
                if sum(per_sample) != len(sizes):
                    raise ValueError(
                        f"batch_num_images {per_sample} counts {sum(per_sample)} image(s), image_sizes {len(sizes)}"
                    )
                patched = [n == 1 for n in per_sample for _ in range(n)]
            pairs = enumerate(zip(sizes, patched, strict=True))
            out[IMAGE] = [self.image(k, size, strategy, p) for k, (size, p) in pairs]
        if self.video_token_id is not None:
            videos = inputs.get("pixel_values_videos")
            out[VIDEO] = (
                None
                if videos is None
                else [self.video(k, int(videos.shape[1]), strategy) for k in range(int(videos.shape[0]))]
            )
        return out

    def layout(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, inputs: Mapping[str, Any]
    ) -> list[list[Segment]] | None:
        """Segments of every row over its unpadded tokens; ``None`` when the batch holds no placeholder token."""
        tokens = {IMAGE: self.image_token_id}
        if self.video_token_id is not None:
            tokens[VIDEO] = self.video_token_id
        rows = placeholder_kinds(input_ids, attention_mask, tokens)
        if rows is None:
            return None
        queues = {modality: _Queue(modality, items, self, inputs) for modality, items in self.items(inputs).items()}
        layout = []
        for row, row_kinds in enumerate(rows):
            segments: list[Segment] = []
            for kind, start, end in runs(row_kinds):
                if kind == 0:
                    segments.append(end - start)
                else:
                    segments.extend(queues[kind].take(end - start, row, start))
            layout.append(segments)
        for queue in queues.values():
            queue.check_used()
        return layout


class TokenLayout(Protocol):
    """What the LLaVA-style plumbing needs of a family's layout: its placeholder tokens and the segments of a batch
    (:class:`LlavaGeometry`; the tile and row-break layouts of :mod:`._tiles`)."""

    @property
    def image_token_id(self) -> int: ...

    @property
    def video_token_id(self) -> int | None: ...

    def layout(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, inputs: Mapping[str, Any]
    ) -> list[list[Segment]] | None: ...


def placeholder_kinds(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, tokens: Mapping[int, int]
) -> list[list[int]] | None:
    """Per row, the kind of every unpadded token (0 text, or the modality whose placeholder it is, from ``tokens``:
    modality -> token id); ``None`` when the batch holds no placeholder token."""
    keep = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
    if not any(((input_ids == token) & keep).any() for token in tokens.values()):
        return None
    kinds = torch.zeros_like(input_ids)
    for modality, token in tokens.items():
        kinds[input_ids == token] = modality
    return [
        [k for k, kept in zip(row_kinds, row_keep, strict=True) if kept]
        for row_kinds, row_keep in zip(kinds.tolist(), keep.tolist(), strict=True)
    ]


def runs(kinds: Sequence[int]) -> Iterator[tuple[int, int, int]]:
    """``(kind, start, end)`` of every run of equal kinds, in order."""
    start = 0
    while start < len(kinds):
        end = start
        while end < len(kinds) and kinds[end] == kinds[start]:
            end += 1
        yield kinds[start], start, end
        start = end


_NAMES = {IMAGE: "image", VIDEO: "video"}


class _Queue:
    """The items of one modality, consumed in batch order by the runs of placeholder tokens."""

    def __init__(self, modality: int, items: list[Item] | None, geometry: LlavaGeometry, inputs: Mapping[str, Any]):
        self.modality, self.items, self.geometry, self.inputs = modality, items, geometry, inputs
        self.used = 0

    def _next(self, left: int) -> Item | None:
        if self.items is not None:
            return self.items[self.used] if self.used < len(self.items) else None
        strategy = self.inputs.get("vision_feature_select_strategy") or self.geometry.select_strategy
        if self.modality == IMAGE:  # LLaVA-1.5 without pixel_values: every image has the same layout
            return self.geometry.image(self.used, None, strategy)  # (NeXT, OneVision: raises, asking for image_sizes)
        # a OneVision video without pixel_values_videos: one video per run, frames from its length
        pooled = math.ceil(self.geometry.side / 2) ** 2
        if (left - 1) % pooled or left < 1 + pooled:
            raise ValueError(
                f"a run of {left} video placeholder token(s) is not frames x {pooled} pooled tokens + 1 newline; pass "
                f"pixel_values_videos"
            )
        return self.geometry.video(self.used, (left - 1) // pooled, strategy)

    def take(self, run: int, row: int, offset: int) -> list[Segment]:
        name = _NAMES[self.modality]
        segments: list[Segment] = []
        left = run
        while left > 0:
            item = self._next(left)
            if item is None:
                raise ValueError(
                    f"row {row} has more {name} placeholder tokens than the {len(self.items or ())} {name}(s) "
                    f"given describe: "
                    f"{left} token(s) at position {offset + run - left} have no {name}"
                )
            if item.num_tokens > left:
                raise ValueError(
                    f"{item.description} needs {item.num_tokens} {name} placeholder tokens, but row {row} has a run of "
                    f"{run} at position {offset} with only {left} left for it (image features and placeholder tokens "
                    f"do not match)"
                )
            segments.extend(item.segments)
            left -= item.num_tokens
            self.used += 1
        return segments

    def check_used(self) -> None:
        if self.items is not None and self.used != len(self.items):
            name = _NAMES[self.modality]
            raise ValueError(
                f"{len(self.items)} {name}(s) were given but the {name} placeholder tokens hold only {self.used} "
                f"(image features and placeholder tokens do not match)"
            )
