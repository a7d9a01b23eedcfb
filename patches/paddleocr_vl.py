"""PaddleOCR-VL: Qwen2-VL's positions and chunked allocation (images only; the model takes no video)."""

from ._qwen_vl import QwenVLAdapter

ADAPTERS = {
    "paddleocr_vl": QwenVLAdapter(
        native_frequency="chunked", default_section=(16, 24, 24), notes="chunked; images only"
    )
}
