"""Cosmos3-Edge: Qwen3-VL's positions and interleaved allocation (generate's positions have no text row)."""

from ._qwen_vl import QwenVLAdapter

ADAPTERS = {
    "cosmos3_edge": QwenVLAdapter(
        native_frequency="interleaved",
        default_section=(24, 20, 20),
        split_video_frames=True,
        notes="interleaved; one block per video frame",
    )
}
