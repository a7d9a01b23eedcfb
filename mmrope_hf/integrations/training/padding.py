"""Padded batches: one sample per row, left or right padding, positions of the padded batch."""

from __future__ import annotations

import torch

from mmrope_hf.integrations.training.positions import PositionFunction
from mmrope_hf.integrations.training.samples import IGNORE_INDEX, visual_fields
from mmrope_hf.positions.builder import text_positions


def padded_batch(samples: list[dict], positions: PositionFunction, padding_side: str, pad_token_id: int) -> dict:
    """Pad parsed samples to the longest and add ``position_ids`` ``(3K + 1, B, L)``: the text row, then the sets."""
    length = max(len(s["input_ids"]) for s in samples)
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], "mm_token_type_ids": [], "labels": []}
    for s in samples:
        n = len(s["input_ids"])
        fields = (
            ("input_ids", s["input_ids"], pad_token_id),
            ("attention_mask", torch.ones(n, dtype=torch.long), 0),
            ("mm_token_type_ids", s["mm_token_type_ids"], 0),
            ("labels", s["labels"], IGNORE_INDEX),
        )
        for key, values, fill in fields:
            pad = torch.full((length - n,), fill, dtype=torch.long)
            out[key].append(torch.cat([pad, values] if padding_side == "left" else [values, pad]))
    batch = {key: torch.stack(value) for key, value in out.items()}
    batch.update(visual_fields(samples))
    sets = positions(
        batch["input_ids"],
        batch["mm_token_type_ids"],
        batch.get("image_grid_thw"),
        batch.get("video_grid_thw"),
        batch["attention_mask"],
        batch.get("second_per_grid_ts"),
    )
    text = text_positions(batch["attention_mask"]).to(sets.dtype)
    batch["position_ids"] = torch.cat([text[None], sets])
    return batch
