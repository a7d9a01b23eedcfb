"""Qwen3-VL and Qwen3-VL-MoE: interleaved allocation; every temporal group of a video is its own block."""

from ._qwen_vl import QwenVLAdapter, register

register(
    QwenVLAdapter(native_frequency="interleaved", default_section=(24, 20, 20), split_video_frames=True),
    "qwen3_vl",
    "qwen3_vl_moe",
)
