"""GLM-4.1V, GLM-4.5V, GLM-4.6V and GLM-OCR: Qwen3-VL's positions, chunked allocation over half of each head.

Every video frame is its own block between ``<|begin_of_image|>`` / ``<|end_of_image|>`` and followed by its
timestamp text, inside ``<|begin_of_video|>`` ... ``<|end_of_video|>``; those tokens are text (token type 0), and the
video placeholders are the image token with token type 2, so only ``mm_token_type_ids`` and the grids are read.
The rotary of GLM-4.1V and GLM-OCR pairs adjacent channels (GPT-J: ``repeat_interleave(2)``, ``rotate_half_llm``);
GLM-4.5V's (MoE) pairs the two halves (NeoX). GLM-4.6V builds its text model from ``text_config`` (the released
checkpoints: GLM-4.5V's), so its adapter is the one of that text model.
"""

from ._qwen_vl import QwenVLAdapter, TextModelAdapters

_GLM4V = QwenVLAdapter(
    native_frequency="chunked",
    default_section=(8, 12, 12),
    split_video_frames=True,
    pairing="adjacent",
    notes="chunked over half of each head, adjacent (GPT-J) channel pairs; one block per video frame",
)
_GLM4V_MOE = QwenVLAdapter(
    native_frequency="chunked",
    default_section=(8, 12, 12),
    split_video_frames=True,
    notes="chunked over half of each head; one block per video frame",
)
ADAPTERS = {
    "glm4v": _GLM4V,
    "glm4v_moe": _GLM4V_MOE,
    "glm46v": TextModelAdapters({"glm4v_text": _GLM4V, "glm4v_moe_text": _GLM4V_MOE}),
    "glm_ocr": _GLM4V,
}
