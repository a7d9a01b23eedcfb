"""Qwen2-VL: chunked allocation, one block per video, temporal groups one position apart."""

from ._qwen_vl import QwenVLAdapter

ADAPTERS = {
    "qwen2_vl": QwenVLAdapter(
        native_frequency="chunked",
        default_section=(16, 24, 24),
        notes="chunked; one block per video; `mrope` is stock with `vision_advance: spatial` after a multi-group video",
    )
}
