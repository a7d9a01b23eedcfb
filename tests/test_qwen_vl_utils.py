"""qwen-vl-utils' image path into a patched model: messages with images -> process_vision_info -> processor -> model.

Every release of qwen_vl_utils (0.0.1 to 0.0.14) imports torchvision at module level, and this project installs no
torchvision (the registry's build drags in another torch). Its image path is PIL only, so the test imports it with
stub torchvision modules in ``sys.modules``, removed again right after the import. Its video path does call
torchvision (or decord / torchcodec) and is not used.
"""

from __future__ import annotations

import importlib
import sys
import types

import torch
from conftest import assert_generate_equals_teacher_forced, logits
from oracle_forward import float32_atol, oracle_logits
from reference import rope_reference as ref

import mmrope_hf
from mmrope_hf.testing import IMAGE_TOKEN, offline_processor, synthetic_image, tiny_model

FAMILY = "qwen2_5_vl"
TORCHVISION_IMPORTS = ("torchvision", "torchvision.io", "torchvision.transforms")  # its module-level imports


def import_qwen_vl_utils() -> types.ModuleType:
    """``import qwen_vl_utils`` without torchvision: empty stand-ins for exactly the names its import reads."""
    if "qwen_vl_utils" in sys.modules:
        return sys.modules["qwen_vl_utils"]
    stubs = {name: types.ModuleType(name) for name in TORCHVISION_IMPORTS}
    stubs["torchvision"].io = stubs["torchvision.io"]  # type: ignore[attr-defined]
    stubs["torchvision"].transforms = stubs["torchvision.transforms"]  # type: ignore[attr-defined]
    stubs["torchvision.transforms"].InterpolationMode = None  # type: ignore[attr-defined]
    if set(stubs) & set(sys.modules):
        raise RuntimeError("torchvision is imported already: import qwen_vl_utils directly")
    sys.modules.update(stubs)
    try:
        return importlib.import_module("qwen_vl_utils")
    finally:
        for name in stubs:
            del sys.modules[name]


def layout_of(input_ids: list[int], grids: list[tuple[int, int]]) -> list:
    """The reference layout of a token row: text runs, and one image item per run of image tokens."""
    layout: list = []
    images = iter(grids)
    for token in input_ids:
        if token == IMAGE_TOKEN:
            if layout[-1][0] != "image":
                layout.append(("image", 1, *next(images)))
        elif layout and layout[-1][0] == "text":
            layout[-1] = ("text", layout[-1][1] + 1)
        else:
            layout.append(("text", 1))
    return layout


def test_process_vision_info_feeds_a_patched_model():
    qwen_vl_utils = import_qwen_vl_utils()
    assert "torchvision" not in sys.modules
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": synthetic_image(100, 70, seed=0)},
                {"type": "text", "text": "describe the image"},
                {"type": "image", "image": synthetic_image(60, 130, seed=1)},
                {"type": "text", "text": "what is in this"},
            ],
        }
    ]
    images, videos = qwen_vl_utils.process_vision_info(messages)
    assert videos is None
    # its resize: each side to the nearest multiple of 28 (Qwen2.5-VL: 14 px patches, 2 x 2 merge), within the
    # pixel bounds: 100 x 70 -> 112 x 56 (70 / 28 = 2.5 rounds to even), 60 x 130 -> 56 x 140
    assert [image.size for image in images] == [(112, 56), (56, 140)]

    processor = offline_processor(FAMILY)
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = dict(processor(text=[text], images=images, return_tensors="pt"))
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 8], [1, 10, 4]]  # patches: (56/14, 112/14), (140/14, 56/14)

    model = mmrope_hf.patch_model(tiny_model(FAMILY), "mrope-i")
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"],
        mm_token_type_ids=inputs["mm_token_type_ids"],
        image_grid_thw=inputs["image_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )
    layout = layout_of(inputs["input_ids"][0].tolist(), [(2, 4), (5, 2)])  # the grids after the 2 x 2 merge
    expected, _ = ref.positions(layout, "spatial-reset")
    assert [tuple(p) for p in positions[:, 0].T.tolist()] == expected
    stock = tiny_model(FAMILY)
    assert (logits(model, inputs) - logits(stock, inputs)).abs().max() > 1e-3
    want = oracle_logits(FAMILY, None, inputs, "mrope-i", layouts=[layout])  # the stock model, reference cos/sin
    torch.testing.assert_close(logits(model, inputs), want, atol=float32_atol(want), rtol=0)
    assert_generate_equals_teacher_forced(model, inputs)
