"""Qwen3.5 and Qwen3.5-MoE: Qwen3-VL's positions and interleaved allocation on a hybrid stack.

Only the full-attention layers rotate (the Gated-DeltaNet linear-attention layers carry no RoPE, so layer schedules
run over the full-attention layers), and only ``partial_rotary_factor`` of each head (a quarter in the released
models: 32 of the 128 pairs of head_dim 256); allocations see those rotary pairs only.
"""

from ._qwen_vl import QwenVLAdapter

_QWEN3_5 = QwenVLAdapter(
    native_frequency="interleaved",
    default_section=(11, 11, 10),
    split_video_frames=True,
    notes="interleaved over a quarter of each head; hybrid: only the full-attention layers rotate, and layer "
    "schedules count those; one block per video frame",
)
ADAPTERS = {"qwen3_5": _QWEN3_5, "qwen3_5_moe": _QWEN3_5}
