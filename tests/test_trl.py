"""TRL's SFTTrainer on a patched model, the way VLMs are fine-tuned: TRL's own VLM path with padded batches, and
packing through MMRopeCollator(mode="packed") with TRL's dataset preparation skipped (TRL refuses packing for
vision datasets). The loss falls, and the positions the text model receives in every training step are the patched
get_rope_index's for that batch (padded) or for each packed sample alone, and differ from the stock model's.
"""

from __future__ import annotations

import json

import torch
from datasets import Dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer

import mmrope_hf
from mmrope_hf.integrations.training import MMRopeCollator, sample_boundaries
from mmrope_hf.testing import offline_processor, synthetic_image, tiny_model

FAMILY, SCHEME, STEPS = "qwen2_5_vl", "mrope-i", 6
WORDS = ["describe this image", "what is in the image", "the image", "a picture of this"]
GRID_KEYS = ("mm_token_type_ids", "image_grid_thw", "attention_mask")


def messages(i: int) -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": WORDS[i % len(WORDS)]}]},
        {"role": "assistant", "content": [{"type": "text", "text": WORDS[(i + 1) % len(WORDS)]}]},
    ]


def image(i: int):
    return synthetic_image(56 * (1 + i % 2), 56 * (1 + (i // 2) % 2), seed=i)


def config(tmp_path, **overrides) -> SFTConfig:
    """A few fast steps on CPU, a loss logged every step, nothing saved."""
    defaults = dict(
        max_steps=STEPS,
        per_device_train_batch_size=2,
        learning_rate=5e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        gradient_checkpointing=False,
        max_length=None,
        seed=0,
    )
    return SFTConfig(output_dir=str(tmp_path), **{**defaults, **overrides})


class Recorder:
    """The batches the model is called with and the position_ids its text model receives, step by step."""

    def __init__(self, model) -> None:
        self.batches: list[dict] = []
        self.positions: list[torch.Tensor] = []
        model.register_forward_pre_hook(self.batch, with_kwargs=True)
        model.model.language_model.register_forward_pre_hook(self.text, with_kwargs=True)

    def batch(self, module, args, kwargs) -> None:
        self.batches.append({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})

    def text(self, module, args, kwargs) -> None:
        self.positions.append(kwargs["position_ids"].detach().clone())


def losses(trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def get_rope_index(model, inputs: dict) -> torch.Tensor:
    return model.model.get_rope_index(inputs["input_ids"], **{k: inputs[k] for k in GRID_KEYS if k in inputs})[0]


def vlm_dataset() -> Dataset:
    return Dataset.from_list([{"messages": messages(i), "images": [image(i)]} for i in range(8)])


def test_sft_trainer_vlm_path_padded(tmp_path):
    processor = offline_processor(FAMILY)
    model = mmrope_hf.patch_model(tiny_model(FAMILY, attn_implementation="sdpa"), SCHEME)
    recorder = Recorder(model)
    trainer = SFTTrainer(model=model, args=config(tmp_path), train_dataset=vlm_dataset(), processing_class=processor)
    trainer.train()
    assert mmrope_hf.is_patched(trainer.model)
    first, last = losses(trainer)[0], losses(trainer)[-1]
    assert len(losses(trainer)) == STEPS and last < first - 0.5, losses(trainer)
    stock = tiny_model(FAMILY)
    assert len(recorder.batches) == STEPS
    for batch, positions in zip(recorder.batches, recorder.positions, strict=True):
        assert "position_ids" not in batch  # TRL's collator leaves them to the model
        expected = get_rope_index(model, batch)
        torch.testing.assert_close(positions[-3:], expected, atol=0, rtol=0)
        assert not torch.equal(expected, get_rope_index(stock, batch))  # mrope-i's, not the stock positions


def test_sft_trainer_packed_through_the_collator(tmp_path):
    processor = offline_processor(FAMILY)
    model = mmrope_hf.patch_model(tiny_model(FAMILY, attn_implementation="sdpa"), SCHEME)
    samples = []
    for i in range(16):
        text = processor.apply_chat_template(messages(i))
        inputs = processor(text=[text], images=[image(i)], return_tensors="pt", return_mm_token_type_ids=True)
        samples.append(dict(inputs))
    collator = MMRopeCollator(model, mode="packed", max_length=400, pad_token_id=processor.tokenizer.pad_token_id)
    # 4 samples per step, packed by the collator into rows of up to 400 tokens; TRL's preparation skipped
    args = config(
        tmp_path,
        per_device_train_batch_size=4,
        dataset_kwargs={"skip_prepare_dataset": True},
        remove_unused_columns=False,
    )
    recorder = Recorder(model)
    dataset = Dataset.from_list(samples).with_format("torch")  # pre-processed: tensors, as the processor gave them
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=processor
    )
    trainer.train()
    first, last = losses(trainer)[0], losses(trainer)[-1]
    assert len(losses(trainer)) == STEPS and last < first - 0.5, losses(trainer)
    stock = tiny_model(FAMILY)
    by_tokens = {tuple(sample["input_ids"][0].tolist()): sample for sample in samples}
    found = 0
    for batch, positions in zip(recorder.batches, recorder.positions, strict=True):
        assert positions.shape[1] < 4  # packed: fewer rows than samples
        torch.testing.assert_close(positions, batch["position_ids"], atol=0, rtol=0)
        owners = sample_boundaries(batch["position_ids"])
        for row, owner in {(r, o) for r in range(owners.shape[0]) for o in owners[r].tolist()}:
            span = (owners[row] == owner).nonzero().flatten()
            sample = by_tokens.get(tuple(batch["input_ids"][row, span].tolist()))
            if sample is None:
                continue  # row padding
            torch.testing.assert_close(positions[1:, row, span], get_rope_index(model, sample)[:, 0], atol=0, rtol=0)
            assert not torch.equal(positions[1:, row, span], get_rope_index(stock, sample)[:, 0])
            found += 1
    assert found == 4 * STEPS  # every sample of every step, each placed as alone


def test_sft_trainer_with_a_peft_config_sees_the_scheme_and_saves_it(tmp_path):
    """SFTTrainer(peft_config=...) wraps the patched model in a PeftModel: still patched, and the saved adapter
    records the scheme (tests/test_peft.py loads such adapters)."""
    model = mmrope_hf.patch_model(tiny_model(FAMILY, attn_implementation="sdpa"), SCHEME)
    trainer = SFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=2),
        train_dataset=vlm_dataset(),
        processing_class=offline_processor(FAMILY),
        peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"]),
    )
    assert type(trainer.model).__name__ == "PeftModel" and mmrope_hf.patch_info(trainer.model)["scheme"] == SCHEME
    trainer.train()
    trainer.save_model(str(tmp_path / "adapter"))
    recorded = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["mmrope"]
    assert recorded == model.config.mmrope
