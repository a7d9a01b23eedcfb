"""Tiny seeded models of the families with a ``get_rope_index`` (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3-VL-MoE,
Qwen3.5, Qwen3.5-MoE, GLM-4.1V, GLM-4.5V, GLM-4.6V, GLM-OCR, PaddleOCR-VL), hand-built batches laid out like the
processor's output, and the offline Qwen processor (PIL image processor, no torchvision)."""

from __future__ import annotations

from dataclasses import dataclass, field
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

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe")  # the Qwen-VL families (offline processors)
MERGE, TEMPORAL_PATCH, CHANNELS = 2, 2, 3


def _rope(section: list[int], **extra: Any) -> dict:
    return {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section, **extra}


_TOWER = dict(depth=1, num_heads=2, spatial_merge_size=MERGE, temporal_patch_size=TEMPORAL_PATCH, in_channels=CHANNELS)
_QWEN3_VISION = dict(_TOWER, hidden_size=32, intermediate_size=64, num_position_embeddings=64)
_GLM_VISION = dict(_TOWER, hidden_size=32, intermediate_size=64, image_size=56)
_GLM_TOKENS = dict(image_start_token_id=VISION_START, image_end_token_id=VISION_END)
_GLM_TEXT = dict(rope_parameters=_rope([2, 3, 3], partial_rotary_factor=0.5))  # 8 of 16 pairs rotate
_GLM_MOE_TEXT = dict(_GLM_TEXT, head_dim=32, moe_intermediate_size=64, n_routed_experts=4, num_experts_per_tok=2)
# Qwen3.5: a quarter of the head rotates (here half of head_dim 32: 8 pairs), and Gated-DeltaNet linear-attention
# layers alternate with full-attention ones (layer_types [linear, full, linear, full]).
_QWEN3_5_TEXT = dict(
    head_dim=32,
    num_hidden_layers=4,
    full_attention_interval=2,
    rope_parameters=_rope([3, 3, 2], partial_rotary_factor=0.5, mrope_interleaved=True),
    linear_num_key_heads=2,
    linear_num_value_heads=4,
    linear_key_head_dim=16,
    linear_value_head_dim=16,
)


@dataclass(frozen=True)
class _Spec:
    """How to build one family's tiny model and lay out its inputs.

    ``top``: top-level config extras (special tokens, projector size). ``vision_out``: the vision-config key that
    must equal the text hidden size (the merger's output). ``pixels``: ``flat`` rows of ``channels * temporal_patch
    * patch * patch`` per patch (Qwen, GLM; ``temporal_patch`` 1 for Cosmos3-Edge's linear patch embedding), or
    ``patches`` of ``(channels, patch, patch)`` (PaddleOCR-VL's SigLIP embedding). ``per_frame``: every temporal
    group of a video is its own block behind a one-token timestamp (Qwen3-VL, Qwen3.5, GLM, Cosmos3-Edge).
    ``temporal_merge``: frames per temporal group of a video (ERNIE-4.5-VL: 2). ``video_token``: GLM marks video
    features with the image token (the token types still say video).
    """

    config: str
    model: str
    patch: int
    text: dict = field(default_factory=dict)
    vision: dict = field(default_factory=dict)
    top: dict = field(default_factory=lambda: dict(vision_start_token_id=VISION_START, vision_end_token_id=VISION_END))
    processor: str | None = None
    vision_out: str | None = "out_hidden_size"
    pixels: str = "flat"
    temporal_patch: int = TEMPORAL_PATCH
    per_frame: bool = False
    temporal_merge: int = 1
    video_token: int | None = VIDEO_TOKEN  # None: the family takes no video


_SPECS = {
    "qwen2_vl": _Spec(
        "Qwen2VLConfig",
        "Qwen2VLForConditionalGeneration",
        14,
        dict(rope_parameters=_rope([4, 6, 6])),
        dict(_TOWER, embed_dim=32),
        processor="Qwen2VLProcessor",
        vision_out="hidden_size",
    ),
    "qwen2_5_vl": _Spec(
        "Qwen2_5_VLConfig",
        "Qwen2_5_VLForConditionalGeneration",
        14,
        dict(rope_parameters=_rope([4, 6, 6])),
        dict(
            _TOWER, hidden_size=32, intermediate_size=64, tokens_per_second=2, window_size=56, fullatt_block_indexes=[]
        ),
        processor="Qwen2_5_VLProcessor",
    ),
    "qwen3_vl": _Spec(
        "Qwen3VLConfig",
        "Qwen3VLForConditionalGeneration",
        16,
        dict(head_dim=32, rope_parameters=_rope([6, 5, 5], mrope_interleaved=True)),
        dict(_QWEN3_VISION, deepstack_visual_indexes=[0]),
        processor="Qwen3VLProcessor",
        per_frame=True,
    ),
    "qwen3_vl_moe": _Spec(
        "Qwen3VLMoeConfig",
        "Qwen3VLMoeForConditionalGeneration",
        16,
        dict(
            head_dim=32,
            rope_parameters=_rope([6, 5, 5], mrope_interleaved=True),
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=64,
        ),
        dict(_QWEN3_VISION, deepstack_visual_indexes=[0]),
        processor="Qwen3VLProcessor",
        per_frame=True,
    ),
    "qwen3_5": _Spec(
        "Qwen3_5Config", "Qwen3_5ForConditionalGeneration", 16, _QWEN3_5_TEXT, _QWEN3_VISION, per_frame=True
    ),
    "qwen3_5_moe": _Spec(
        "Qwen3_5MoeConfig",
        "Qwen3_5MoeForConditionalGeneration",
        16,
        dict(
            _QWEN3_5_TEXT,
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=64,
            shared_expert_intermediate_size=64,
        ),
        _QWEN3_VISION,
        per_frame=True,
    ),
    "glm4v": _Spec(
        "Glm4vConfig",
        "Glm4vForConditionalGeneration",
        14,
        _GLM_TEXT,
        _GLM_VISION,
        _GLM_TOKENS,
        per_frame=True,
        video_token=IMAGE_TOKEN,
    ),
    "glm4v_moe": _Spec(
        "Glm4vMoeConfig",
        "Glm4vMoeForConditionalGeneration",
        14,
        _GLM_MOE_TEXT,
        _GLM_VISION,
        _GLM_TOKENS,
        per_frame=True,
        video_token=IMAGE_TOKEN,
    ),
    "glm46v": _Spec(  # the released GLM-4.6V: a GLM-4.5V (MoE) text model behind the AutoModel of text_config
        "Glm46VConfig",
        "Glm46VForConditionalGeneration",
        14,
        dict(_GLM_MOE_TEXT, model_type="glm4v_moe_text"),
        dict(_GLM_VISION, model_type="glm4v_moe_vision"),
        _GLM_TOKENS,
        per_frame=True,
        video_token=IMAGE_TOKEN,
    ),
    "glm_ocr": _Spec(
        "GlmOcrConfig",
        "GlmOcrForConditionalGeneration",
        14,
        dict(_GLM_TEXT, head_dim=32),
        _GLM_VISION,
        _GLM_TOKENS,
        per_frame=True,
        video_token=IMAGE_TOKEN,
    ),
    "paddleocr_vl": _Spec(
        "PaddleOCRVLConfig",
        "PaddleOCRVLForConditionalGeneration",
        14,
        dict(head_dim=32, rope_parameters=_rope([4, 6, 6])),
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            patch_size=14,
            image_size=56,
            spatial_merge_size=MERGE,
        ),
        vision_out=None,
        pixels="patches",
        video_token=None,
    ),
    "ernie4_5_vl_moe": _Spec(
        "Ernie4_5_VLMoeConfig",
        "Ernie4_5_VLMoeForConditionalGeneration",
        14,
        dict(
            head_dim=32,
            rope_parameters=_rope([6, 6, 4]),  # ERNIE lists [h, w, t]
            moe_intermediate_size=[64, 64],
            moe_k=2,
            moe_num_experts=4,
            moe_num_shared_experts=0,
        ),
        dict(
            depth=1, num_heads=2, spatial_merge_size=MERGE, temporal_merge_size=2, hidden_size=32, intermediate_size=64
        ),
        dict(_GLM_TOKENS, video_start_token_id=VISION_START, video_end_token_id=VISION_END),
        vision_out=None,
        temporal_merge=2,
        temporal_patch=1,
    ),
    "cosmos3_edge": _Spec(
        "Cosmos3EdgeConfig",
        "Cosmos3EdgeForConditionalGeneration",
        16,
        dict(head_dim=32, rope_parameters=_rope([6, 5, 5])),
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_patches=16,
            spatial_merge_size=MERGE,
        ),
        dict(vision_start_token_id=VISION_START, vision_end_token_id=VISION_END, projector_hidden_size=64),
        vision_out=None,
        per_frame=True,
        temporal_patch=1,
    ),
}
MROPE_FAMILIES = tuple(_SPECS)  # every family above: FAMILIES and the ones without an offline processor


def _spec(family: str) -> _Spec:
    if family not in _SPECS:
        raise ValueError(f"unknown family {family!r}; expected one of {MROPE_FAMILIES}")
    return _SPECS[family]


def vision_patch_size(family: str) -> int:
    """Spatial patch size of the family's vision tower (14 for Qwen2/2.5-VL, GLM, PaddleOCR-VL; 16 for Qwen3)."""
    return _spec(family).patch


def pixel_dim(family: str) -> int:
    """Width of one row of flat ``pixel_values``: channels * temporal_patch_size * patch * patch."""
    return CHANNELS * _spec(family).temporal_patch * vision_patch_size(family) ** 2


def has_video(family: str) -> bool:
    """Whether the family takes video input (PaddleOCR-VL does not)."""
    return _spec(family).video_token is not None


def tiny_config(family: str, **text_overrides) -> transformers.PreTrainedConfig:
    """Tiny top-level config: 2 text layers (Qwen3.5: 4, linear and full attention alternating), hidden 256,
    8 heads / 4 KV heads, head_dim 32, vocab 256; a 1-block vision tower of width 32.

    ``text_overrides`` update the text config (e.g. ``num_hidden_layers=4``).
    """
    spec = _spec(family)
    text = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=256,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=4,  # no head_dim on Qwen2/2.5-VL and GLM-4.1V: hidden_size // heads = 32
        max_position_embeddings=4096,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        tie_word_embeddings=False,
    )
    text.update(spec.text)
    text.update(text_overrides)
    vision = dict(spec.vision, patch_size=spec.patch)
    if spec.vision_out is not None:
        vision[spec.vision_out] = text["hidden_size"]
    return getattr(transformers, spec.config)(
        text_config=text,
        vision_config=vision,
        image_token_id=IMAGE_TOKEN,
        video_token_id=VIDEO_TOKEN,
        tie_word_embeddings=False,
        **spec.top,
    )


def tiny_model(family: str, seed: int = 0, attn_implementation: str = "eager", **text_overrides):
    """Seeded float32 ``...ForConditionalGeneration`` in eval mode, set up for offline greedy generate."""
    return seeded_model(
        getattr(transformers, _spec(family).model), tiny_config(family, **text_overrides), seed, attn_implementation
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
    Qwen3-VL, Qwen3.5 and GLM videos get one block per temporal group, each preceded by a one-token timestamp.
    """
    spec = _spec(family)
    gen = torch.Generator().manual_seed(seed)
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
            if kind == "video" and spec.video_token is None:
                raise ValueError(f"bad item {item!r}: {family} takes no video")
            grids[kind].append((t, h, w))
            token, type_id = (IMAGE_TOKEN, 1) if kind == "image" else (spec.video_token, 2)
            per_frame = spec.per_frame and kind == "video"
            for _ in range(t if per_frame else 1):
                if per_frame:  # timestamp text token, e.g. "<0.5 seconds>" collapsed to one id
                    ids.append(int(torch.randint(*TEXT_IDS, (1,), generator=gen)))
                    types.append(0)
                groups = 1 if per_frame else t // spec.temporal_merge if kind == "video" else t
                n = groups * h * w // MERGE**2
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
            patches = int(grid.prod(-1).sum())
            shape = (
                (patches, pixel_dim(family)) if spec.pixels == "flat" else (patches, CHANNELS, spec.patch, spec.patch)
            )
            out[pixels_key] = torch.randn(*shape, generator=gen)
            out[f"{kind}_grid_thw"] = grid
    if second_per_grid_ts is not None:
        if family != "qwen2_5_vl" or len(second_per_grid_ts) != len(grids["video"]):
            raise ValueError("second_per_grid_ts needs qwen2_5_vl and one value per video")
        out["second_per_grid_ts"] = torch.tensor(second_per_grid_ts, dtype=torch.float32)
    return out


def offline_processor(family: str):
    """The family's processor without torchvision: PIL image processor + :func:`offline_tokenizer`, no video (the
    Qwen-VL families of :data:`FAMILIES`)."""
    processor = _spec(family).processor
    if processor is None:
        raise ValueError(f"no offline processor for {family}; the Qwen-VL families have one: {FAMILIES}")
    base = getattr(transformers, processor)
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
