"""Tests that kill the mutants of mmrope_hf/integrations/training/collator.py that survived the module's tests
(scripts/mutation.py collator; docs/mutation.md). Expectation: tests/reference/rope_reference positions of the
sample's layout, with Qwen2.5-VL's temporal step ``tokens_per_second * second_per_grid_ts``."""

from __future__ import annotations

import torch
from reference import rope_reference as ref

from mmrope_hf.integrations.training.collator import MMRopeCollator, collate
from mmrope_hf.testing import build_inputs

# 1 text, <vs>, a video of 3 groups of 2x2 tokens after the merge (grid 3x4x4), <ve>, 1 text
LAYOUT = [("text", 2), ("video", 3, 2, 2), ("text", 2)]


def video_sample(seconds: float) -> dict:
    sample = build_inputs("qwen2_5_vl", [[1, ("video", 3, 4, 4), 1]])
    sample["second_per_grid_ts"] = torch.tensor([seconds])
    return sample


def rows(positions: torch.Tensor, b: int = 0) -> list[tuple[int, int, int]]:
    return [tuple(p) for p in positions[:, b].T.tolist()]


def test_positions_read_second_per_grid_ts():
    """tokens_per_second 2 x 0.75 s per grid = a temporal step of 1.5 (the issue's "second_per_grid_ts ignored")."""
    sample = video_sample(0.75)
    collator = MMRopeCollator("mrope", tokens_per_second=2)
    positions = collator.positions(
        sample["input_ids"],
        sample["mm_token_type_ids"],
        video_grid_thw=sample["video_grid_thw"],
        attention_mask=sample["attention_mask"],
        second_per_grid_ts=sample["second_per_grid_ts"],
    )
    ids, _ = ref.positions(LAYOUT, "mrope", 1.5)
    assert rows(positions) == ids


def test_collate_one_shot_padded_and_packed():
    sample = video_sample(0.75)
    ids, _ = ref.positions(LAYOUT, "mrope", 1.5)
    padded = collate([sample, sample], "mrope", tokens_per_second=2)  # default mode: padded
    assert "attention_mask" in padded and padded["position_ids"].shape == (4, 2, len(ids))
    assert rows(padded["position_ids"][1:], 0) == ids and rows(padded["position_ids"][1:], 1) == ids
    packed = collate([sample, sample], "mrope", "packed", tokens_per_second=2, max_length=2 * len(ids))
    assert "attention_mask" not in packed and packed["position_ids"].shape == (4, 1, 2 * len(ids))
    assert rows(packed["position_ids"][1:]) == ids + ids
