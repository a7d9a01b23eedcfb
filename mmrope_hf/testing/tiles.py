"""Tiny seeded Gemma 3, Idefics3, SmolVLM, InternVL and Mistral 3 models (1D-RoPE language models, images as square
tiles or rows with break tokens) and hand-built batches laid out like their processors' output.

Every tile is 112 px: 8 x 8 patches of 14 px, pooled (Gemma 3), pixel-shuffled (Idefics3, SmolVLM, InternVL) or
merged (Mistral 3) to 4 x 4 tokens. The language models are :func:`~mmrope_hf.testing.tiny_config`'s (2 layers,
hidden 256, 8 heads / 4 KV heads, head_dim 32) on the shared 256-id vocabulary; ``<|image_pad|>`` is the
placeholder, ``<|vision_start|>`` / ``<|vision_end|>`` stand for the start / end (Idefics3: fake-around-image,
Mistral 3: break / end) tokens, and one text id stands for every other marker (row / col, global image, newline).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import transformers

from mmrope_hf.testing.offline import (
    IMAGE_TOKEN,
    PAD,
    TEXT_IDS,
    TINY_TEXT,
    VISION_END,
    VISION_START,
)
from mmrope_hf.testing.qwen import CHANNELS, seeded_model

TILE_FAMILIES = ("gemma3", "idefics3", "smolvlm", "internvl", "mistral3")
TILE, PATCH, SIDE = 112, 14, 4  # tile pixels, patch pixels, tokens per tile side
MARKER = TEXT_IDS[0]  # the row/col, global-image and newline markers (text for the positions)


_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
_MODELS = {
    "gemma3": "Gemma3ForConditionalGeneration",
    "idefics3": "Idefics3ForConditionalGeneration",
    "smolvlm": "SmolVLMForConditionalGeneration",
    "internvl": "InternVLForConditionalGeneration",
    "mistral3": "Mistral3ForConditionalGeneration",
}


def _check(family: str) -> None:
    if family not in _MODELS:
        raise ValueError(f"unknown tile family {family!r}; expected one of {TILE_FAMILIES}")


def tiny_tile_config(family: str, **text_overrides) -> transformers.PreTrainedConfig:
    """Tiny config of ``family``; ``text_overrides`` update the text config. Gemma 3 alternates a sliding-window
    layer (theta 1e4) and a full-attention layer (theta 1e6, linear scaling x8), as the released models do."""
    _check(family)
    text = dict(TINY_TEXT, **text_overrides)
    if family == "gemma3":
        text.update(
            model_type="gemma3_text",
            layer_types=["sliding_attention", "full_attention"],
            sliding_window=16,
            query_pre_attn_scalar=32,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
            },
        )
        text.update(text_overrides)
        vision = dict(_VISION, model_type="siglip_vision_model", image_size=2 * TILE, patch_size=PATCH)
        return transformers.Gemma3Config(
            text_config=text,
            vision_config=vision,
            mm_tokens_per_image=SIDE**2,
            boi_token_index=VISION_START,
            eoi_token_index=VISION_END,
            image_token_index=IMAGE_TOKEN,
            tie_word_embeddings=False,
        )
    if family in ("idefics3", "smolvlm"):
        config_cls = transformers.Idefics3Config if family == "idefics3" else transformers.SmolVLMConfig
        return config_cls(
            text_config=dict(text, model_type="llama"),
            vision_config=dict(_VISION, image_size=TILE, patch_size=PATCH),
            image_token_id=IMAGE_TOKEN,
            scale_factor=2,
            tie_word_embeddings=False,
        )
    if family == "internvl":
        vision = dict(_VISION, image_size=[TILE, TILE], patch_size=[PATCH, PATCH])
        return transformers.InternVLConfig(
            text_config=dict(text, model_type="qwen2"),
            vision_config=vision,
            image_token_id=IMAGE_TOKEN,
            image_seq_length=SIDE**2,
            downsample_ratio=0.5,
            tie_word_embeddings=False,
        )
    vision = dict(_VISION, model_type="pixtral", head_dim=16, image_size=4 * TILE, patch_size=PATCH)
    return transformers.Mistral3Config(
        text_config=dict(text, model_type="mistral"),
        vision_config=vision,
        image_token_index=IMAGE_TOKEN,
        spatial_merge_size=2,
        tie_word_embeddings=False,
    )


def tiny_tile_model(family: str, seed: int = 0, attn_implementation: str = "eager", **text_overrides):
    """Seeded float32 ``...ForConditionalGeneration`` in eval mode, set up for offline greedy generate."""
    return seeded_model(
        getattr(transformers, _MODELS[family]), tiny_tile_config(family, **text_overrides), seed, attn_implementation
    )


def _image_tokens(family: str, height: int, width: int) -> tuple[list[int], list[int], int]:
    """(token ids, token types (1: placeholder), tiles) of one image of ``height`` x ``width`` pixels."""
    image = [IMAGE_TOKEN] * SIDE**2
    if family == "gemma3":  # one pooled grid, no pan-and-scan
        ids = [VISION_START, *image, VISION_END]
        return ids, [int(i == IMAGE_TOKEN) for i in ids], 1
    if family == "mistral3":  # rows of [IMG] x cols + [IMG_BREAK], the last break an [IMG_END]
        rows, cols = height // (2 * PATCH), width // (2 * PATCH)
        ids = [t for _ in range(rows) for t in [IMAGE_TOKEN] * cols + [VISION_START]]
        ids[-1] = VISION_END
        return ids, [int(i == IMAGE_TOKEN) for i in ids], 1
    rows, cols = math.ceil(height / TILE), math.ceil(width / TILE)
    tiles = rows * cols + (rows * cols > 1)  # the global view / thumbnail when split
    if family == "internvl":
        ids = [VISION_START, *image * tiles, VISION_END]
    elif tiles == 1:  # Idefics3 / SmolVLM, one tile: the global view only
        ids = [VISION_START, MARKER, *image, VISION_START]
    else:
        ids = []
        for _ in range(rows):
            for _ in range(cols):
                ids += [VISION_START, MARKER, *image]
            ids.append(MARKER)  # the newline after a row of tiles
        ids += [MARKER, VISION_START, MARKER, *image, VISION_START]
    return ids, [int(i == IMAGE_TOKEN) for i in ids], tiles


def build_tile_inputs(family: str, rows: list[list], padding_side: str = "left", seed: int = 0) -> dict:
    """Model-ready batch: each row a list of ``n`` (n random text ids) or ``("image", height, width)`` (pixels; on
    Mistral 3 multiples of 28, the token grid's side). Tiles hold random pixels."""
    _check(family)
    gen = torch.Generator().manual_seed(seed)
    seqs, tiles, sizes = [], [], []
    for row in rows:
        ids: list[int] = []
        types: list[int] = []
        row_tiles = 0
        for item in row:
            if isinstance(item, int):
                ids += torch.randint(*TEXT_IDS, (item,), generator=gen).tolist()
                types += [0] * item
                continue
            if item[0] != "image":
                raise ValueError(f"bad item {item!r}: {family} rows take text counts and ('image', height, width)")
            image_ids, image_types, n = _image_tokens(family, *item[1:])
            ids, types, row_tiles = ids + image_ids, types + image_types, row_tiles + n
            sizes.append(tuple(item[1:]))
        seqs.append((ids, types))
        tiles.append(row_tiles)
    length = max(len(ids) for ids, _ in seqs)
    out: dict[str, Any] = {"input_ids": [], "attention_mask": [], "token_type_ids": []}
    for ids, types in seqs:
        pad = length - len(ids)
        for key, values in (("input_ids", ids), ("attention_mask", [1] * len(ids)), ("token_type_ids", types)):
            fill = PAD if key == "input_ids" else 0
            out[key].append([fill] * pad + values if padding_side == "left" else values + [fill] * pad)
    out = {key: torch.tensor(value, dtype=torch.long) for key, value in out.items()}
    if family != "gemma3":
        del out["token_type_ids"]  # only Gemma 3's processor returns them (its bidirectional image attention)
    if sizes:
        out.update(_pixels(family, tiles, sizes, gen))
    return out


def _pixels(family: str, tiles: list[int], sizes: list[tuple[int, int]], gen: torch.Generator) -> dict:
    if family == "gemma3":
        return {"pixel_values": torch.randn(len(sizes), CHANNELS, 2 * TILE, 2 * TILE, generator=gen)}
    if family == "internvl":
        return {"pixel_values": torch.randn(sum(tiles), CHANNELS, TILE, TILE, generator=gen)}
    if family == "mistral3":
        height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
        pixels = torch.zeros(len(sizes), CHANNELS, height, width)
        for k, (h, w) in enumerate(sizes):
            pixels[k, :, :h, :w] = torch.randn(CHANNELS, h, w, generator=gen)
        return {"pixel_values": pixels, "image_sizes": torch.tensor(sizes, dtype=torch.long)}
    pixels = torch.zeros(len(tiles), max(tiles), CHANNELS, TILE, TILE)  # Idefics3: all-zero tiles are padding
    for row, n in enumerate(tiles):
        pixels[row, :n] = torch.randn(n, CHANNELS, TILE, TILE, generator=gen)
    return {"pixel_values": pixels}
