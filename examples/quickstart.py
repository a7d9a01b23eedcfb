"""Quickstart: patch a tiny Qwen2.5-VL with MRoPE-I in one line, run a forward and generate.

Everything is offline: the model is built from a config with a fixed seed (random weights), the prompt goes
through the real Qwen2.5-VL processor with a synthetic image and a local tokenizer.

    python examples/quickstart.py
"""

from __future__ import annotations

import torch

import mmrope_hf
from mmrope_hf.testing import offline_processor, synthetic_image, tiny_model


def first_image_positions(model, inputs, count: int = 6) -> list[tuple[int, int, int]]:
    """(t, h, w) of the first ``count`` image tokens of row 0, from the model's own get_rope_index."""
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"],
        inputs["mm_token_type_ids"],
        inputs["image_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )
    image = inputs["mm_token_type_ids"][0] == 1
    return [tuple(p) for p in positions[:, 0, image][:, :count].T.tolist()]


def main() -> None:
    processor = offline_processor("qwen2_5_vl")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "describe this image"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[synthetic_image(112, 84)], return_tensors="pt")
    print(
        f"prompt: {inputs['input_ids'].shape[1]} tokens, image grid (t, h, w) = {inputs['image_grid_thw'][0].tolist()}"
    )

    model = tiny_model("qwen2_5_vl")
    for scheme in ("mrope", "mrope-i"):
        mmrope_hf.patch_model(model, scheme=scheme)  # the one line
        with torch.no_grad():
            logits = model(**inputs).logits
        generated = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        new_tokens = generated[0, inputs["input_ids"].shape[1] :].tolist()
        print(
            f"\n{scheme}: {mmrope_hf.patch_info(model)['position']} positions, "
            f"{mmrope_hf.patch_info(model)['resolved_frequency']} frequencies "
            f"{mmrope_hf.patch_info(model)['resolved_mrope_section']}"
        )
        print(f"  first image tokens (t, h, w): {first_image_positions(model, inputs)}")
        print(f"  rope_deltas: {model.model.rope_deltas.tolist()}, last logit mean {logits[0, -1].mean():+.5f}")
        print(f"  generated token ids: {new_tokens}")
    mmrope_hf.unpatch_model(model)
    print(f"\nunpatched again: is_patched = {mmrope_hf.is_patched(model)}")


if __name__ == "__main__":
    main()
