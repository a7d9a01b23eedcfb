"""Offline factories of tiny, seeded models and inputs, for users' tests, examples and benchmarks.

Nothing here touches the network: configs are built from scratch, batches are built by hand and the processors use
a local word-level tokenizer with the PIL image processors (no torchvision needed). Helpers that only this
project's tests use live in ``tests/`` (``conftest.py``, the independent references in ``tests/reference/``).
"""

from mmrope_hf.testing.llava import (
    LLAVA_FAMILIES,
    build_llava_inputs,
    llava_placeholder_counts,
    offline_llava_processor,
    tiny_llava,
    tiny_llava_config,
)
from mmrope_hf.testing.offline import IMAGE_TOKEN, VIDEO_TOKEN, offline_tokenizer, synthetic_image
from mmrope_hf.testing.qwen import (
    FAMILIES,
    MROPE_FAMILIES,
    build_inputs,
    has_video,
    offline_processor,
    pixel_dim,
    tiny_config,
    tiny_model,
    vision_patch_size,
)
from mmrope_hf.testing.tiles import TILE_FAMILIES, build_tile_inputs, tiny_tile_config, tiny_tile_model

__all__ = [
    "FAMILIES",
    "MROPE_FAMILIES",
    "IMAGE_TOKEN",
    "VIDEO_TOKEN",
    "LLAVA_FAMILIES",
    "TILE_FAMILIES",
    "build_inputs",
    "build_llava_inputs",
    "build_tile_inputs",
    "has_video",
    "llava_placeholder_counts",
    "offline_llava_processor",
    "offline_processor",
    "offline_tokenizer",
    "pixel_dim",
    "synthetic_image",
    "tiny_config",
    "tiny_llava",
    "tiny_llava_config",
    "tiny_model",
    "tiny_tile_config",
    "tiny_tile_model",
    "vision_patch_size",
]
