"""Packed training with precomputed positions: the collator + accelerate on a tiny patched Qwen2.5-VL.

Everything is offline: the model is built from a config with a fixed seed (random weights), every sample goes
through the real Qwen2.5-VL processor (synthetic images, a local tokenizer). The collator packs several samples
per row and precomputes the scheme's positions (``position_ids``: a text row that restarts at every sample, then
the position sets; Circle-RoPE with AGE staggering has two), so the forward does no position work and each sample
attends only to itself.

    python examples/train_packed.py                                # one process (CPU, or a GPU when there is one)
    torchrun --nproc_per_node 2 examples/train_packed.py           # 2-process DDP on CPU (gloo), same script
    accelerate launch --num_processes 2 examples/train_packed.py   # 2-process DDP on a 2-GPU machine

On CPU, ``accelerate launch --cpu --num_processes 2`` starts ONE process (accelerate 1.15: ``--cpu`` ignores
``--num_processes`` and sets no world; a ``MULTI_CPU`` config does the same), which would train a different run
without a word. So the script checks its world: it expects the ``WORLD_SIZE`` that torchrun sets (1 without
torchrun), or ``--processes N`` when given, and stops when ``accelerate launch`` started it without ``--processes``.
"""

from __future__ import annotations

import argparse
import os

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

import mmrope_hf
from mmrope_hf.integrations.training import MMRopeCollator
from mmrope_hf.testing import offline_processor, synthetic_image, tiny_model

SCHEME = "circle"  # Circle-RoPE, staggered with MRoPE per layer (two position sets)
STEPS, ROWS_PER_BATCH, MAX_LENGTH = 6, 2, 160


def make_samples(processor, count: int = 24) -> list[dict]:
    words = ["describe this image", "what is in the image", "the image", "a video of this"]
    samples = []
    for i in range(count):
        content = [{"type": "text", "text": words[i % len(words)]}]
        images = []
        if i % 3 != 2:  # every third sample is text only
            content.insert(0, {"type": "image"})
            images = [synthetic_image(56 * (1 + i % 3), 56 * (1 + (i // 3) % 2), seed=i)]
        messages = [
            {"role": "user", "content": content},
            {"role": "assistant", "content": " ".join(words[(i + 1) % len(words)].split()[::-1])},
        ]
        text = processor.apply_chat_template(messages)
        inputs = processor(text=[text], images=images or None, return_tensors="pt", return_mm_token_type_ids=True)
        samples.append(dict(inputs))
    return samples


def check_world(accelerator: Accelerator, processes: int | None) -> None:
    """Stop unless the run has the processes it was launched for (never train a different run silently)."""
    if processes is None:
        if any(name.startswith("ACCELERATE_") for name in os.environ) and "WORLD_SIZE" not in os.environ:
            raise SystemExit(
                f"accelerate launch started {accelerator.num_processes} process(es) and no distributed world (on CPU "
                f"it ignores --num_processes); run `torchrun --nproc_per_node N examples/train_packed.py`, or pass "
                f"--processes {accelerator.num_processes} to run this way on purpose"
            )
        processes = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != processes:
        raise SystemExit(
            f"expected {processes} process(es), got {accelerator.num_processes} ({accelerator.distributed_type}); "
            f"on CPU launch with `torchrun --nproc_per_node {processes} examples/train_packed.py`"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, help="the number of processes this run must have")
    args = parser.parse_args()
    torch.manual_seed(0)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    check_world(accelerator, args.processes)
    processor = offline_processor("qwen2_5_vl")
    model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl", attn_implementation="sdpa"), SCHEME).train()
    collator = MMRopeCollator(
        model, mode="packed", max_length=MAX_LENGTH, pad_token_id=processor.tokenizer.pad_token_id
    )
    samples = make_samples(processor)
    # each dataloader item is a list of samples that fill about ROWS_PER_BATCH packed rows
    loader = DataLoader(samples, batch_size=4 * ROWS_PER_BATCH, collate_fn=collator, shuffle=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    info = mmrope_hf.patch_info(model)  # seen through the DDP wrapper that prepare() puts on in a 2-process world
    accelerator.print(f"{accelerator.num_processes} process(es), {accelerator.distributed_type}")
    accelerator.print(f"scheme {info['scheme']}: position sets {info['position_sets']}, layers -> {info['layer_sets']}")
    step = 0
    while step < STEPS:
        for batch in loader:
            loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            rows, length = batch["input_ids"].shape
            accelerator.print(
                f"step {step}: loss {loss.item():.4f}  (packed rows {rows} x {length} tokens, "
                f"position_ids {tuple(batch['position_ids'].shape)})"
            )
            step += 1
            if step == STEPS:
                break
    accelerator.print("done")


if __name__ == "__main__":
    main()
