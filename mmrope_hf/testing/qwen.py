"""Tiny seeded Qwen-VL models (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3-VL-MoE), hand-built batches laid out like the
processor's output, and the offline processor (PIL image processor, no torchvision)."""

from __future__ import annotations

from typing import Any

import torch
import transformers

from mmrope_hf.testing.offline import (
    BOS,
    CHAT_TEMPLATE,
    EOS,
    IMAGE_TOKEN,
    PAD,
    TEXT_IDS,
    VIDEO_TOKEN,
    VISION_END,
    VISION_START,
    VOCAB_SIZE,
    offline_tokenizer,
)

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe")

# family -> (config class, model class, processor class, patch size, mrope_section)
_SPECS = {
    "qwen2_vl": ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor", 14, [4, 6, 6]),
    "qwen2_5_vl": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor", 14, [4, 6, 6]),
    "qwen3_vl": ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor", 16, [6, 5, 5]),
    "qwen3_vl_moe": ("Qwen3VLMoeConfig", "Qwen3VLMoeForConditionalGeneration", "Qwen3VLProcessor", 16, [6, 5, 5]),
}
MERGE, TEMPORAL_PATCH, CHANNELS = 2, 2, 3


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
        vocab_size=VOCAB_SIZE,
        hidden_size=256,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        rope_parameters=rope,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        tie_word_embeddings=False,
    )
    if qwen3:  # Qwen2/2.5-VL text configs have no head_dim field: there it is hidden_size // heads = 32
        text["head_dim"] = 32
        rope["mrope_interleaved"] = True
    if family == "qwen3_vl_moe":
        text.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64)
    text.update(text_overrides)
    vision = dict(
        depth=1,
        num_heads=2,
        patch_size=patch,
        spatial_merge_size=MERGE,
        temporal_patch_size=TEMPORAL_PATCH,
        in_channels=CHANNELS,
    )
    if family == "qwen2_vl":
        vision.update(embed_dim=32, hidden_size=text["hidden_size"])
    else:
        vision.update(hidden_size=32, intermediate_size=64, out_hidden_size=text["hidden_size"])
    if family == "qwen2_5_vl":
        vision.update(tokens_per_second=2, window_size=56, fullatt_block_indexes=[])
    if qwen3:
        vision.update(num_position_embeddings=64, deepstack_visual_indexes=[0])
    return getattr(transformers, config_cls)(
        text_config=text,
        vision_config=vision,
        image_token_id=IMAGE_TOKEN,
        video_token_id=VIDEO_TOKEN,
        vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END,
        tie_word_embeddings=False,
    )


def tiny_model(family: str, seed: int = 0, attn_implementation: str = "eager", **text_overrides):
    """Seeded float32 ``...ForConditionalGeneration`` in eval mode, set up for offline greedy generate."""
    return seeded_model(
        getattr(transformers, _spec(family)[1]), tiny_config(family, **text_overrides), seed, attn_implementation
    )


def seeded_model(model_cls, config, seed: int, attn_implementation: str):
    """``model_cls`` built from ``config`` under ``seed`` (global RNG untouched), eval mode, greedy offline."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls._from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    gen = model.generation_config
    gen.pad_token_id, gen.eos_token_id, gen.bos_token_id, gen.do_sample = PAD, EOS, BOS, False
    return model.eval()


def build_inputs(
    family: str,
    rows: list[list],
    padding_side: str = "left",
    seed: int = 0,
    second_per_grid_ts: list[float] | None = None,
) -> dict:
    """Model-ready batch built by hand, laid out like the family's processor output.

    Each row is a list of items: ``n`` (n random text ids from 2..199), ``("image", t, h, w)`` or
    ``("video", t, h, w)``, where (t, h, w) is the grid in patches before the 2x2 merge (h, w even).
    Qwen3-VL videos get one block per temporal group, each preceded by a one-token timestamp.
    """
    _spec(family)
    gen = torch.Generator().manual_seed(seed)
    qwen3 = family.startswith("qwen3")
    grids: dict[str, list] = {"image": [], "video": []}
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
    out: dict[str, Any] = {"input_ids": [], "attention_mask": [], "mm_token_type_ids": []}
    for ids, types in seqs:
        pad = length - len(ids)
        for key, values, fill in (
            ("input_ids", ids, PAD),
            ("attention_mask", [1] * len(ids), 0),
            ("mm_token_type_ids", types, 0),
        ):
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


def offline_processor(family: str):
    """The family's processor without torchvision: PIL image processor + :func:`offline_tokenizer`, no video."""
    base = getattr(transformers, _spec(family)[2])
    # Dropping the video slot skips ProcessorMixin's video-processor class check (it needs torchvision);
    # the stock __init__ already defaults video_processor=None.
    offline_cls = type(
        f"Offline{base.__name__}",
        (base,),
        {
            "get_attributes": classmethod(lambda cls: ["image_processor", "tokenizer"]),
        },
    )
    factor = vision_patch_size(family) * MERGE
    image_processor = transformers.Qwen2VLImageProcessorPil(
        patch_size=vision_patch_size(family),
        merge_size=MERGE,
        temporal_patch_size=TEMPORAL_PATCH,
        min_pixels=4 * factor**2,
        max_pixels=128 * factor**2,
    )
    return offline_cls(image_processor=image_processor, tokenizer=offline_tokenizer(), chat_template=CHAT_TEMPLATE)
