"""Qwen2-VL: chunked allocation, one block per video, temporal groups one position apart."""

from ._qwen_vl import QwenVLAdapter, register

register(QwenVLAdapter(native_frequency="chunked", default_section=(16, 24, 24)), "qwen2_vl")
