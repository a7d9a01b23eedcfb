"""Tiny seeded LLaVA-1.5 / LLaVA-NeXT / LLaVA-OneVision models, their offline processors and hand-built batches."""

from __future__ import annotations

from typing import Any

import torch
import transformers

from mmrope_hf.testing.offline import IMAGE_TOKEN, PAD, TEXT_IDS, TINY_TEXT, VIDEO_TOKEN, offline_tokenizer
from mmrope_hf.testing.qwen import CHANNELS, seeded_model

# Tiny LLaVA-1.5 / LLaVA-NeXT / LLaVA-OneVision models on the same 256-id vocab: the <|image_pad|> and <|video_pad|>
# ids above are the image and video placeholder tokens. Tiles are 56 px with 14 px patches, so every tile is a
# 4 x 4 patch grid (16 features), and a OneVision video frame is pooled to 2 x 2. OneVision uses anyres_max_4 (the
# released checkpoints: anyres_max_9), so that an image of only 2 x 3 tiles is already downsampled.

LLAVA_FAMILIES = ("llava", "llava_next", "llava_onevision")
LLAVA_TILE, LLAVA_PATCH = 56, 14
LLAVA_NEXT_PINPOINTS = [[56, 112], [112, 56], [112, 112], [56, 168], [168, 56]]
LLAVA_ONEVISION_PINPOINTS = [[56 * i, 56 * j] for i in range(1, 4) for j in range(1, 4)]  # up to 3 x 3 tiles
LLAVA_ONEVISION_ASPECT_RATIO = "anyres_max_4"

# family -> (config class, model class, processor class, image processor class, default language model,
#            vision tower type, default select strategy)
_LLAVA_SPECS = {
    "llava": (
        "LlavaConfig",
        "LlavaForConditionalGeneration",
        "LlavaProcessor",
        "CLIPImageProcessorPil",
        "llama",
        "clip_vision_model",
        "default",
    ),
    "llava_next": (
        "LlavaNextConfig",
        "LlavaNextForConditionalGeneration",
        "LlavaNextProcessor",
        "LlavaNextImageProcessorPil",
        "mistral",
        "clip_vision_model",
        "default",
    ),
    "llava_onevision": (
        "LlavaOnevisionConfig",
        "LlavaOnevisionForConditionalGeneration",
        "LlavaOnevisionProcessor",
        "LlavaOnevisionImageProcessorPil",
        "qwen2",
        "siglip_vision_model",
        "full",
    ),
}


def _llava_spec(family: str) -> tuple:
    if family not in _LLAVA_SPECS:
        raise ValueError(f"unknown LLaVA family {family!r}; expected one of {LLAVA_FAMILIES}")
    return _LLAVA_SPECS[family]


def tiny_llava_config(family: str, text_model: str | None = None, **overrides) -> transformers.PreTrainedConfig:
    """Tiny LLaVA config: the language model as :func:`tiny_config`'s (2 layers, hidden 256, 8 heads / 4 KV heads,
    head_dim 32, 1D RoPE) and a 2-layer CLIP (LLaVA-1.5, NeXT) or SigLIP (OneVision) tower over 56 px tiles.

    ``text_model`` picks the language model (``llama``, ``mistral`` or ``qwen2``; default: Llama in LLaVA-1.5,
    Mistral in NeXT, Qwen2 in OneVision); ``overrides`` update the top-level config (e.g.
    ``vision_feature_select_strategy="full"``, ``image_grid_pinpoints=[...]``).
    """
    config_cls, _, _, _, default_text, vision_type, strategy = _llava_spec(family)
    text = dict(TINY_TEXT, model_type=text_model or default_text)
    vision = dict(
        model_type=vision_type,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=LLAVA_TILE,
        patch_size=LLAVA_PATCH,
    )
    config = dict(
        text_config=text,
        vision_config=vision,
        image_token_index=IMAGE_TOKEN,
        tie_word_embeddings=False,
        vision_feature_select_strategy=strategy,
    )
    if family == "llava":
        config["image_seq_length"] = (LLAVA_TILE // LLAVA_PATCH) ** 2
    if family == "llava_next":
        config.update(image_grid_pinpoints=LLAVA_NEXT_PINPOINTS, image_seq_length=(LLAVA_TILE // LLAVA_PATCH) ** 2)
    if family == "llava_onevision":
        config.update(
            image_grid_pinpoints=LLAVA_ONEVISION_PINPOINTS,
            video_token_index=VIDEO_TOKEN,
            vision_aspect_ratio=LLAVA_ONEVISION_ASPECT_RATIO,
        )
    config.update(overrides)
    return getattr(transformers, config_cls)(**config)


def tiny_llava(
    family: str, seed: int = 0, attn_implementation: str = "eager", text_model: str | None = None, **overrides
):
    """Seeded float32 ``Llava...ForConditionalGeneration`` in eval mode, set up for offline greedy generate."""
    return seeded_model(
        getattr(transformers, _llava_spec(family)[1]),
        tiny_llava_config(family, text_model, **overrides),
        seed,
        attn_implementation,
    )


def offline_llava_processor(
    family: str,
    vision_feature_select_strategy: str | None = None,
    vision_aspect_ratio: str = LLAVA_ONEVISION_ASPECT_RATIO,
):
    """The family's processor without the hub or torchvision: its PIL image processor (56 px tiles, the tiny
    pinpoints) and :func:`offline_tokenizer` (``<|image_pad|>`` / ``<|video_pad|>`` as the image / video token).
    Pass the model's select strategy and (OneVision) aspect ratio when they differ from the tiny defaults.
    OneVision gets no video processor (that one needs torchvision)."""
    _, _, processor_name, image_processor_name, _, _, strategy = _llava_spec(family)
    strategy = vision_feature_select_strategy or strategy
    tile = {"height": LLAVA_TILE, "width": LLAVA_TILE}
    image_kwargs: dict[str, Any] = {"size": {"shortest_edge": LLAVA_TILE}, "crop_size": tile}
    if family == "llava_next":
        image_kwargs["image_grid_pinpoints"] = LLAVA_NEXT_PINPOINTS
    if family == "llava_onevision":
        image_kwargs = {"size": tile, "image_grid_pinpoints": LLAVA_ONEVISION_PINPOINTS}
    image_processor = getattr(transformers, image_processor_name)(**image_kwargs)
    base = getattr(transformers, processor_name)
    common = dict(
        image_processor=image_processor,
        tokenizer=offline_tokenizer(),
        image_token="<|image_pad|>",
        vision_feature_select_strategy=strategy,
    )
    if family == "llava_onevision":
        offline_cls = type(
            f"Offline{base.__name__}",
            (base,),
            {
                "get_attributes": classmethod(lambda cls: ["image_processor", "tokenizer"]),
            },
        )
        return offline_cls(
            **common,
            video_token="<|video_pad|>",
            num_image_tokens=(LLAVA_TILE // LLAVA_PATCH) ** 2,
            vision_aspect_ratio=vision_aspect_ratio,
        )
    return base(**common, patch_size=LLAVA_PATCH, num_additional_image_tokens=1)  # CLIP: +1 for the CLS feature


def llava_placeholder_counts(
    family: str,
    rows: list[list],
    vision_feature_select_strategy: str | None = None,
    vision_aspect_ratio: str = LLAVA_ONEVISION_ASPECT_RATIO,
) -> list[list[int]]:
    """Placeholder tokens of every image/video of every row, as the family's transformers processor counts them."""
    processor = offline_llava_processor(family, vision_feature_select_strategy, vision_aspect_ratio)
    default = processor.vision_feature_select_strategy == "default"
    counts = []
    for row in rows:
        visual = [item for item in row if not isinstance(item, int)]
        images = sum(1 for item in visual if item[0] == "image")
        row_counts = []
        for item in visual:
            if item[0] == "video":
                data = processor._get_num_multimodal_tokens(video_sizes=[(item[1], LLAVA_TILE, LLAVA_TILE)])
                row_counts.append(data.num_video_tokens[0])
            elif family == "llava_onevision" and images > 1:  # processor.replace_image_token, multi-image branch
                row_counts.append(processor.num_image_tokens + 1 - default)
            else:
                row_counts.append(processor._get_num_multimodal_tokens(image_sizes=[item[1:]]).num_image_tokens[0])
        counts.append(row_counts)
    return counts


def build_llava_inputs(
    family: str,
    rows: list[list],
    padding_side: str = "left",
    seed: int = 0,
    vision_feature_select_strategy: str | None = None,
) -> dict:
    """Model-ready LLaVA batch built by hand, laid out like the family's processor output.

    Each row is a list of items: ``n`` (n random text ids from 2..199), ``("image", height, width)`` (pixels of the
    original image: NeXT/OneVision lay it out from ``image_sizes``; LLaVA-1.5 always sees one tile) or, on OneVision,
    ``("video", frames)``. Placeholder counts come from the transformers processor
    (:func:`llava_placeholder_counts`), ``pixel_values`` are random tiles (NeXT/OneVision: as many as the model
    reads for the image, zero-padded to the batch maximum, as the processor pads them).
    """
    _llava_spec(family)
    gen = torch.Generator().manual_seed(seed)
    counts = llava_placeholder_counts(family, rows, vision_feature_select_strategy)
    images, frames, seqs, per_row = [], [], [], []
    for row, row_counts in zip(rows, counts, strict=True):
        ids, visual = [], iter(row_counts)
        for item in row:
            if isinstance(item, int):
                ids += torch.randint(*TEXT_IDS, (item,), generator=gen).tolist()
                continue
            if item[0] == "video" and family == "llava_onevision":
                frames.append(item[1])
                ids += [VIDEO_TOKEN] * next(visual)
            elif item[0] == "image":
                images.append(tuple(item[1:]))
                ids += [IMAGE_TOKEN] * next(visual)
            else:
                raise ValueError(f"bad item {item!r} for {family}")
        per_row.append(sum(1 for item in row if not isinstance(item, int) and item[0] == "image"))
        seqs.append(ids)

    length = max(len(ids) for ids in seqs)
    out: dict[str, Any] = {"input_ids": [], "attention_mask": []}
    for ids in seqs:
        pad = length - len(ids)
        for key, values, fill in (("input_ids", ids, PAD), ("attention_mask", [1] * len(ids), 0)):
            out[key].append([fill] * pad + values if padding_side == "left" else values + [fill] * pad)
    out = {key: torch.tensor(value, dtype=torch.long) for key, value in out.items()}

    tile = (CHANNELS, LLAVA_TILE, LLAVA_TILE)
    if images and family == "llava":
        out["pixel_values"] = torch.randn(len(images), *tile, generator=gen)
    elif images:
        from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

        pinpoints = LLAVA_NEXT_PINPOINTS if family == "llava_next" else LLAVA_ONEVISION_PINPOINTS
        patches = [image_size_to_num_patches(size, pinpoints, LLAVA_TILE) for size in images]
        pixels = torch.zeros(len(images), max(patches), *tile)
        for k, n in enumerate(patches):
            pixels[k, :n] = torch.randn(n, *tile, generator=gen)
        out["pixel_values"] = pixels
        out["image_sizes"] = torch.tensor(images, dtype=torch.long)
        if family == "llava_onevision":
            out["batch_num_images"] = torch.tensor([n for n in per_row if n], dtype=torch.long)
    if frames:
        if len(set(frames)) != 1:
            raise ValueError(f"every video of a batch needs the same number of frames, got {frames}")
        out["pixel_values_videos"] = torch.randn(len(frames), frames[0], *tile, generator=gen)
    return out
