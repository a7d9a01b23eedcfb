"""Tests that kill the mutants of mmrope_hf/integrations/training/collator.py that survived the module's tests
(scripts/mutation.py collator; docs/mutation.md). Expectation: tests/reference/rope_reference positions of the
sample's layout, with Qwen2.5-VL's temporal step ``tokens_per_second * second_per_grid_ts``."""

from __future__ import annotations

import pytest
import torch
from reference import rope_reference as ref
from torch import nn

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


# --- errors, defaults and the arguments __call__ passes on ----------------------------------------------------------


def test_constructor_and_call_errors_name_the_bad_value():
    with pytest.raises(ValueError, match=r"^mode must be 'padded' or 'packed', got 'pack'$"):
        MMRopeCollator("mrope", "pack")
    with pytest.raises(ValueError, match=r"^padding_side must be 'left' or 'right', got 'middle'$"):
        MMRopeCollator("mrope", padding_side="middle")
    with pytest.raises(
        TypeError, match=r"^scheme options \['layers', 'radius'\] only apply when a scheme \(not a model\) is given$"
    ):
        MMRopeCollator(nn.Linear(1, 1), radius=2, layers="alternate")
    with pytest.raises(ValueError, match=r"^no samples to collate$"):
        MMRopeCollator("mrope")([])


def text_sample(n: int) -> dict:
    ids = torch.arange(5, 5 + n)[None]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mm_token_type_ids": torch.zeros_like(ids)}


def test_padded_default_pad_token_and_left_padding():
    """Two text samples of 2 and 4 tokens: pad id 0 by default; left padding puts the pad (and -100 labels, mask 0)
    before the short sample."""
    right = MMRopeCollator("mrope")([text_sample(2), text_sample(4)])
    assert right["input_ids"].tolist() == [[5, 6, 0, 0], [5, 6, 7, 8]]
    left = MMRopeCollator("mrope", padding_side="left")([text_sample(2), text_sample(4)])
    assert left["input_ids"].tolist() == [[0, 0, 5, 6], [5, 6, 7, 8]]
    assert left["attention_mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert left["labels"].tolist() == [[-100, -100, 5, 6], [5, 6, 7, 8]]


def test_packed_truncates_a_long_text_sample_when_allowed():
    """max_length 3: the 4-token text sample is cut to its first 3 tokens (truncate=True), in a row of its own."""
    batch = MMRopeCollator("mrope", "packed", max_length=3, truncate=True)([text_sample(2), text_sample(4)])
    assert batch["input_ids"].tolist() == [[5, 6, 0], [5, 6, 7]]
    assert batch["position_ids"][0].tolist() == [[0, 1, 0], [0, 1, 2]]


def test_packed_errors_name_the_sample():
    with pytest.raises(ValueError, match=r"^sample 1 has 4 tokens, more than max_length=3; raise max_length"):
        MMRopeCollator("mrope", "packed", max_length=3)([text_sample(2), text_sample(4)])
    image = build_inputs("qwen2_5_vl", [[3, ("image", 1, 4, 4), 2]])
    with pytest.raises(ValueError, match=r"^sample 1 \(11 tokens\) does not fit a packed row of max_length=6"):
        MMRopeCollator("mrope", "packed", max_length=6, truncate=True)([text_sample(2), image])


def test_num_layers_selects_the_designs_the_schedule_uses():
    """Circle-RoPE alternating with M-RoPE: a 1-layer model only has the first (Circle) layer, so one position set,
    the schedule's first; without num_layers, both designs of the schedule (two sets, which differ)."""
    sample = build_inputs("qwen2_5_vl", [[3, ("image", 1, 4, 4), 2]])
    one = MMRopeCollator("circle", num_layers=1, layers="alternate")([sample])["position_ids"]
    every = MMRopeCollator("circle", layers="alternate")([sample])["position_ids"]
    assert one.shape == (4, 1, 11) and every.shape == (7, 1, 11)
    assert torch.equal(one, every[:4]) and not torch.equal(every[1:4], every[4:])
