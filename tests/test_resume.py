"""Trainer resume on Qwen-VL in transformers 5.23: ``train(resume_from_checkpoint=...)`` loads no weights (stock
too), and the README's workaround, building the model from the checkpoint first, resumes exactly.

The expectation is an uninterrupted run: 4 steps in one go, against 2 steps, a checkpoint, and 2 resumed steps.
"""

from __future__ import annotations

import pytest
import torch
import transformers

import mmrope_hf
from mmrope_hf.testing import build_inputs, tiny_model

FAMILY = "qwen2_5_vl"
ROW = [3, ("image", 1, 4, 4), 4]


def samples() -> list[dict]:
    return [build_inputs(FAMILY, [ROW], seed=i) for i in range(8)]  # one shape: batches are concatenations


def collate(batch: list[dict]) -> dict:
    out = {key: torch.cat([sample[key] for sample in batch]) for key in batch[0]}
    out["labels"] = out["input_ids"].clone()
    return out


def train(model, output_dir, resume_from_checkpoint=None) -> dict[str, torch.Tensor]:
    """4 Adam steps (a checkpoint after 2) from ``model``, or from a checkpoint; the final weights."""
    args = transformers.TrainingArguments(
        output_dir=str(output_dir),
        max_steps=4,
        save_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        report_to="none",
        use_cpu=True,
        seed=0,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=samples(), data_collator=collate)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


def new_model(scheme: str | None):
    model = tiny_model(FAMILY, attn_implementation="sdpa")
    return model if scheme is None else mmrope_hf.patch_model(model, scheme)


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("scheme", [None, "mrope-i"], ids=["stock", "mrope-i"])
def test_resume_from_checkpoint_alone_loads_no_weights(tmp_path, scheme):
    """Known bug (transformers 5.23, huggingface/transformers#43701): save_pretrained writes the legacy key names,
    Trainer's resume loads the state dict non-strictly and keeps the model's own weights. When this test fails,
    transformers has fixed it: drop the README's workaround note."""
    uninterrupted = train(new_model(scheme), tmp_path / "run")
    resumed = train(new_model(scheme), tmp_path / "resumed", tmp_path / "run" / "checkpoint-2")
    assert max_difference(resumed, uninterrupted) > 1e-4


def test_building_the_model_from_the_checkpoint_resumes_exactly(tmp_path):
    uninterrupted = train(new_model("mrope-i"), tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoint-2"
    model = transformers.AutoModelForImageTextToText.from_pretrained(checkpoint, attn_implementation="sdpa")
    assert mmrope_hf.patch_info(model)["scheme"] == "mrope-i"  # the checkpoint's mmrope key
    resumed = train(model, tmp_path / "resumed", checkpoint)
    assert max_difference(resumed, uninterrupted) == 0
