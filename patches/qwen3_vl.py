"""Qwen3-VL and Qwen3-VL-MoE: interleaved allocation; every temporal group of a video is its own block."""

from ._qwen_vl import QwenVLAdapter

_QWEN3_VL = QwenVLAdapter(
    native_frequency="interleaved",
    default_section=(24, 20, 20),
    split_video_frames=True,
    notes="interleaved; one block per video frame (timestamps between)",
)
ADAPTERS = {"qwen3_vl": _QWEN3_VL, "qwen3_vl_moe": _QWEN3_VL}
