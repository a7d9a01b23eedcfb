"""A short fine-tuning loop with a patched model and activation (gradient) checkpointing.

Tiny random Qwen2.5-VL patched with MRoPE-I, a few AdamW steps on one fixed image + text batch: the loss goes
down. Offline, CPU, seconds.

    python examples/finetune.py [--scheme mrope-i] [--steps 12]
"""

from __future__ import annotations

import argparse

import torch

import mmrope_hf
from mmrope_hf.testing import build_inputs, tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="mrope-i")
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), scheme=args.scheme).train()
    model.activation_checkpointing_enable({"use_reentrant": False})
    batch = build_inputs("qwen2_5_vl", [[4, ("image", 1, 8, 8), 6], [2, ("image", 1, 4, 6), 9]])
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    labels = labels.masked_fill(batch["mm_token_type_ids"] != 0, -100)  # no loss on image placeholders
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for step in range(args.steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        print(f"step {step:2d}  loss {loss.item():.4f}")
    print(
        f"{args.scheme}: loss {losses[0]:.4f} -> {losses[-1]:.4f} ({'down' if losses[-1] < losses[0] else 'NOT down'})"
    )


if __name__ == "__main__":
    main()
