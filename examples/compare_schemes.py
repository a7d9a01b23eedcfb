"""Compare schemes on one prompt: positions of the image tokens, PTD, and how attention changes.

One tiny random Qwen2.5-VL (eager attention) and one prompt (4 text tokens, a 4x4-token image, 4 text tokens).
For every scheme: the (t, h, w) of the image's first row, the Per-Token Distance between text and image
positions, and the mean absolute change of layer-0 attention probabilities from the last text token to the image
tokens, relative to the stock model (MRoPE).

    python examples/compare_schemes.py
"""

from __future__ import annotations

import torch

import mmrope_hf
from mmrope_hf.metrics import ptd
from mmrope_hf.testing import build_inputs, tiny_model

SCHEMES = ("mrope", "spatial-reset", "mrope-i", "mhrope", "vanilla", "circle", "videorope", "v2pe")


def attention_to_image(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        attentions = model(**inputs, output_attentions=True).attentions[0]  # (B, heads, L, L)
    image = inputs["mm_token_type_ids"][0] == 1
    return attentions[0, :, -1, image]


def main() -> None:
    inputs = build_inputs("qwen2_5_vl", [[3, ("image", 1, 8, 8), 3]])
    image = inputs["mm_token_type_ids"][0] == 1
    text = ~image
    stock = tiny_model("qwen2_5_vl", attn_implementation="eager", initializer_range=0.2)
    baseline = attention_to_image(stock, inputs)
    print(f"{'scheme':<14} {'first image row (t, h, w)':<44} {'PTD':>6} {'attention change':>17}")
    for scheme in SCHEMES:
        model = mmrope_hf.patch_model(
            tiny_model("qwen2_5_vl", attn_implementation="eager", initializer_range=0.2), scheme
        )
        positions, _ = model.model.get_rope_index(
            inputs["input_ids"], inputs["mm_token_type_ids"], inputs["image_grid_thw"]
        )
        first_row = [tuple(round(v, 1) for v in p) for p in positions[:3, 0, image][:, :3].T.tolist()]
        change = (attention_to_image(model, inputs) - baseline).abs().mean().item()
        print(f"{scheme:<14} {str(first_row):<44} {ptd(positions[:3, 0].float(), image, text):>6.3f} {change:>17.5f}")


if __name__ == "__main__":
    main()
