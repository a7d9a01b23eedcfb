"""Offline factories of tiny, seeded Qwen-VL models and inputs for tests, examples and benchmarks.

Nothing here touches the network: configs are built from scratch, batches are built by hand and the
processor uses a local word-level tokenizer with the PIL image processor (no torchvision needed).
"""

from __future__ import annotations

import numpy as np
import torch
import transformers
from PIL import Image

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe")

# Token ids shared by every family (vocab 256). Random text ids are drawn from 2..199.
PAD, EOS = 0, 1
TEXT_IDS = (2, 200)
VISION_START, VISION_END, IMAGE_TOKEN, VIDEO_TOKEN = 250, 251, 252, 253
UNK, BOS = 254, 255
VOCAB_SIZE = 256
SPECIAL_TOKENS = {
    "<|endoftext|>": PAD, "<|im_end|>": EOS, "<|vision_start|>": VISION_START, "<|vision_end|>": VISION_END,
    "<|image_pad|>": IMAGE_TOKEN, "<|video_pad|>": VIDEO_TOKEN, "<unk>": UNK, "<|im_start|>": BOS,
}
_WORDS = ("user", "assistant", "system", "describe", "the", "a", "this", "image", "video", "what", "is", "in", "of")

# family -> (config class, model class, processor class, patch size, mrope_section)
_SPECS = {
    "qwen2_vl": ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor", 14, [4, 6, 6]),
    "qwen2_5_vl": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor", 14, [4, 6, 6]),
    "qwen3_vl": ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor", 16, [6, 5, 5]),
    "qwen3_vl_moe": ("Qwen3VLMoeConfig", "Qwen3VLMoeForConditionalGeneration", "Qwen3VLProcessor", 16, [6, 5, 5]),
}
MERGE, TEMPORAL_PATCH, CHANNELS = 2, 2, 3

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _spec(family: str) -> tuple:
    if family not in _SPECS:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return _SPECS[family]


def vision_patch_size(family: str) -> int:
    """Spatial patch size of the family's vision tower (14 for Qwen2/2.5-VL, 16 for Qwen3-VL)."""
    return _spec(family)[3]


def pixel_dim(family: str) -> int:
    """Width of one row of ``pixel_values``: channels * temporal_patch_size * patch * patch."""
    return CHANNELS * TEMPORAL_PATCH * vision_patch_size(family) ** 2


def tiny_config(family: str, **text_overrides) -> transformers.PreTrainedConfig:
    """Tiny top-level config: 2 text layers, hidden 256, 8 heads / 4 KV heads, head_dim 32, vocab 256.

    ``text_overrides`` update the text config (e.g. ``num_hidden_layers=4``).
    """
    config_cls, _, _, patch, section = _spec(family)
    qwen3 = family.startswith("qwen3")
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(section)}
    text = dict(
        vocab_size=VOCAB_SIZE, hidden_size=256, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=4096, rope_parameters=rope,
        pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, tie_word_embeddings=False,
    )
    if qwen3:  # Qwen2/2.5-VL text configs have no head_dim field: there it is hidden_size // heads = 32
        text["head_dim"] = 32
        rope["mrope_interleaved"] = True
    if family == "qwen3_vl_moe":
        text.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64)
    text.update(text_overrides)
    vision = dict(depth=1, num_heads=2, patch_size=patch, spatial_merge_size=MERGE,
                  temporal_patch_size=TEMPORAL_PATCH, in_channels=CHANNELS)
    if family == "qwen2_vl":
        vision.update(embed_dim=32, hidden_size=text["hidden_size"])
    else:
        vision.update(hidden_size=32, intermediate_size=64, out_hidden_size=text["hidden_size"])
    if family == "qwen2_5_vl":
        vision.update(tokens_per_second=2, window_size=56, fullatt_block_indexes=[])
    if qwen3:
        vision.update(num_position_embeddings=64, deepstack_visual_indexes=[0])
    return getattr(transformers, config_cls)(
        text_config=text, vision_config=vision, image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN,
        vision_start_token_id=VISION_START, vision_end_token_id=VISION_END, tie_word_embeddings=False,
    )


def tiny_model(family: str, seed: int = 0, attn_implementation: str = "eager", **text_overrides):
    """Seeded float32 ``...ForConditionalGeneration`` in eval mode, set up for offline greedy generate."""
    return _seeded(getattr(transformers, _spec(family)[1]), tiny_config(family, **text_overrides), seed,
                   attn_implementation)


def _seeded(model_cls, config, seed: int, attn_implementation: str):
    """``model_cls`` built from ``config`` under ``seed`` (global RNG untouched), eval mode, greedy offline."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls._from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    gen = model.generation_config
    gen.pad_token_id, gen.eos_token_id, gen.bos_token_id, gen.do_sample = PAD, EOS, BOS, False
    return model.eval()


def build_inputs(family: str, rows: list[list], padding_side: str = "left", seed: int = 0,
                 second_per_grid_ts: list[float] | None = None) -> dict:
    """Model-ready batch built by hand, laid out like the family's processor output.

    Each row is a list of items: ``n`` (n random text ids from 2..199), ``("image", t, h, w)`` or
    ``("video", t, h, w)``, where (t, h, w) is the grid in patches before the 2x2 merge (h, w even).
    Qwen3-VL videos get one block per temporal group, each preceded by a one-token timestamp.
    """
    _spec(family)
    gen = torch.Generator().manual_seed(seed)
    qwen3 = family.startswith("qwen3")
    grids = {"image": [], "video": []}
    seqs = []
    for row in rows:
        ids, types = [], []
        for item in row:
            if isinstance(item, int):
                ids += torch.randint(*TEXT_IDS, (item,), generator=gen).tolist()
                types += [0] * item
                continue
            kind, t, h, w = item
            if kind not in grids or h % MERGE or w % MERGE:
                raise ValueError(f"bad item {item!r}: kind must be image/video and h, w multiples of {MERGE}")
            grids[kind].append((t, h, w))
            token, type_id = (IMAGE_TOKEN, 1) if kind == "image" else (VIDEO_TOKEN, 2)
            per_frame = qwen3 and kind == "video"
            for _ in range(t if per_frame else 1):
                if per_frame:  # timestamp text token, e.g. "<0.5 seconds>" collapsed to one id
                    ids.append(int(torch.randint(*TEXT_IDS, (1,), generator=gen)))
                    types.append(0)
                n = (h * w if per_frame else t * h * w) // MERGE**2
                ids += [VISION_START] + [token] * n + [VISION_END]
                types += [0] + [type_id] * n + [0]
        seqs.append((ids, types))

    length = max(len(ids) for ids, _ in seqs)
    out = {"input_ids": [], "attention_mask": [], "mm_token_type_ids": []}
    for ids, types in seqs:
        pad = length - len(ids)
        for key, values, fill in (("input_ids", ids, PAD), ("attention_mask", [1] * len(ids), 0),
                                  ("mm_token_type_ids", types, 0)):
            out[key].append([fill] * pad + values if padding_side == "left" else values + [fill] * pad)
    out = {key: torch.tensor(value, dtype=torch.long) for key, value in out.items()}

    for kind, pixels_key in (("image", "pixel_values"), ("video", "pixel_values_videos")):
        if grids[kind]:
            grid = torch.tensor(grids[kind], dtype=torch.long)
            out[pixels_key] = torch.randn(int(grid.prod(-1).sum()), pixel_dim(family), generator=gen)
            out[f"{kind}_grid_thw"] = grid
    if second_per_grid_ts is not None:
        if family != "qwen2_5_vl" or len(second_per_grid_ts) != len(grids["video"]):
            raise ValueError("second_per_grid_ts needs qwen2_5_vl and one value per video")
        out["second_per_grid_ts"] = torch.tensor(second_per_grid_ts, dtype=torch.float32)
    return out


def offline_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """Word-level tokenizer over the 256-id vocab with the Qwen-VL special tokens; left padding."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    names = {i: f"w{i}" for i in range(VOCAB_SIZE)}
    names.update({TEXT_IDS[0] + k: word for k, word in enumerate(_WORDS)})
    names.update({i: token for token, i in SPECIAL_TOKENS.items()})
    tok = Tokenizer(models.WordLevel(vocab={t: i for i, t in names.items()}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>", bos_token="<|im_start|>",
        unk_token="<unk>", padding_side="left",
    )


def offline_processor(family: str):
    """The family's processor without torchvision: PIL image processor + :func:`offline_tokenizer`, no video."""
    base = getattr(transformers, _spec(family)[2])
    # Dropping the video slot skips ProcessorMixin's video-processor class check (it needs torchvision);
    # the stock __init__ already defaults video_processor=None.
    offline_cls = type(f"Offline{base.__name__}", (base,), {
        "get_attributes": classmethod(lambda cls: ["image_processor", "tokenizer"]),
    })
    factor = vision_patch_size(family) * MERGE
    image_processor = transformers.Qwen2VLImageProcessorPil(
        patch_size=vision_patch_size(family), merge_size=MERGE, temporal_patch_size=TEMPORAL_PATCH,
        min_pixels=4 * factor**2, max_pixels=128 * factor**2,
    )
    return offline_cls(image_processor=image_processor, tokenizer=offline_tokenizer(), chat_template=CHAT_TEMPLATE)


def synthetic_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Seeded RGB image: a random 4x4 colour grid, bilinearly upsampled to ``width`` x ``height``."""
    cells = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(cells, "RGB").resize((width, height), Image.BILINEAR)


# ---- LLaVA family ------------------------------------------------------------------------------------------------
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
    "llava": ("LlavaConfig", "LlavaForConditionalGeneration", "LlavaProcessor", "CLIPImageProcessorPil",
              "llama", "clip_vision_model", "default"),
    "llava_next": ("LlavaNextConfig", "LlavaNextForConditionalGeneration", "LlavaNextProcessor",
                   "LlavaNextImageProcessorPil", "mistral", "clip_vision_model", "default"),
    "llava_onevision": ("LlavaOnevisionConfig", "LlavaOnevisionForConditionalGeneration", "LlavaOnevisionProcessor",
                        "LlavaOnevisionImageProcessorPil", "qwen2", "siglip_vision_model", "full"),
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
    text = dict(
        model_type=text_model or default_text, vocab_size=VOCAB_SIZE, hidden_size=256, intermediate_size=256,
        num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4, head_dim=32, max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, pad_token_id=PAD, bos_token_id=BOS,
        eos_token_id=EOS, tie_word_embeddings=False,
    )
    vision = dict(model_type=vision_type, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=LLAVA_TILE, patch_size=LLAVA_PATCH)
    config = dict(text_config=text, vision_config=vision, image_token_index=IMAGE_TOKEN, tie_word_embeddings=False,
                  vision_feature_select_strategy=strategy)
    if family == "llava":
        config["image_seq_length"] = (LLAVA_TILE // LLAVA_PATCH) ** 2
    if family == "llava_next":
        config.update(image_grid_pinpoints=LLAVA_NEXT_PINPOINTS, image_seq_length=(LLAVA_TILE // LLAVA_PATCH) ** 2)
    if family == "llava_onevision":
        config.update(image_grid_pinpoints=LLAVA_ONEVISION_PINPOINTS, video_token_index=VIDEO_TOKEN,
                      vision_aspect_ratio=LLAVA_ONEVISION_ASPECT_RATIO)
    config.update(overrides)
    return getattr(transformers, config_cls)(**config)


def tiny_llava(family: str, seed: int = 0, attn_implementation: str = "eager", text_model: str | None = None,
               **overrides):
    """Seeded float32 ``Llava...ForConditionalGeneration`` in eval mode, set up for offline greedy generate."""
    return _seeded(getattr(transformers, _llava_spec(family)[1]), tiny_llava_config(family, text_model, **overrides),
                   seed, attn_implementation)


def offline_llava_processor(family: str, vision_feature_select_strategy: str | None = None,
                            vision_aspect_ratio: str = LLAVA_ONEVISION_ASPECT_RATIO):
    """The family's processor without the hub or torchvision: its PIL image processor (56 px tiles, the tiny
    pinpoints) and :func:`offline_tokenizer` (``<|image_pad|>`` / ``<|video_pad|>`` as the image / video token).
    Pass the model's select strategy and (OneVision) aspect ratio when they differ from the tiny defaults.
    OneVision gets no video processor (that one needs torchvision)."""
    _, _, processor_name, image_processor_name, _, _, strategy = _llava_spec(family)
    strategy = vision_feature_select_strategy or strategy
    tile = {"height": LLAVA_TILE, "width": LLAVA_TILE}
    image_kwargs = {"size": {"shortest_edge": LLAVA_TILE}, "crop_size": tile}
    if family == "llava_next":
        image_kwargs["image_grid_pinpoints"] = LLAVA_NEXT_PINPOINTS
    if family == "llava_onevision":
        image_kwargs = {"size": tile, "image_grid_pinpoints": LLAVA_ONEVISION_PINPOINTS}
    image_processor = getattr(transformers, image_processor_name)(**image_kwargs)
    base = getattr(transformers, processor_name)
    common = dict(image_processor=image_processor, tokenizer=offline_tokenizer(), image_token="<|image_pad|>",
                  vision_feature_select_strategy=strategy)
    if family == "llava_onevision":
        offline_cls = type(f"Offline{base.__name__}", (base,), {
            "get_attributes": classmethod(lambda cls: ["image_processor", "tokenizer"]),
        })
        return offline_cls(**common, video_token="<|video_pad|>", num_image_tokens=(LLAVA_TILE // LLAVA_PATCH) ** 2,
                           vision_aspect_ratio=vision_aspect_ratio)
    return base(**common, patch_size=LLAVA_PATCH, num_additional_image_tokens=1)  # CLIP: +1 for the CLS feature


def llava_placeholder_counts(family: str, rows: list[list], vision_feature_select_strategy: str | None = None,
                             vision_aspect_ratio: str = LLAVA_ONEVISION_ASPECT_RATIO) -> list[list[int]]:
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


def build_llava_inputs(family: str, rows: list[list], padding_side: str = "left", seed: int = 0,
                       vision_feature_select_strategy: str | None = None) -> dict:
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
    for row, row_counts in zip(rows, counts):
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
    out = {"input_ids": [], "attention_mask": []}
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
