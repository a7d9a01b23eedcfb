"""Packed batches: samples concatenated into rows, every sample's positions computed alone."""

from __future__ import annotations

import torch

from mmrope_hf.integrations.training.positions import PositionFunction
from mmrope_hf.integrations.training.samples import IGNORE_INDEX, visual_fields


def pack_rows(samples: list[dict], limit: int) -> list[list[dict]]:
    """Samples in order into rows of at most ``limit`` tokens; a new row starts when the next sample does not fit."""
    rows: list[list[dict]] = [[]]
    used = 0
    for s in samples:
        n = len(s["input_ids"])
        if used + n > limit and rows[-1]:
            rows.append([])
            used = 0
        rows[-1].append(s)
        used += n
    return rows


def _alone(s: dict, positions: PositionFunction) -> torch.Tensor:
    """The ``(3K, n)`` positions of one sample alone: every set restarts at its boundary."""
    return positions(
        s["input_ids"][None],
        s["mm_token_type_ids"][None],
        s.get("image_grid_thw"),
        s.get("video_grid_thw"),
        None,
        s.get("second_per_grid_ts"),
    )[:, 0]


def _row(row: list[dict], sets: list[torch.Tensor], length: int, dtype: torch.dtype, pad_token_id: int) -> tuple:
    """One packed row: ids, token types, labels (each sample's first token masked), ``(3K + 1, length)`` positions."""
    ids, types, labels, pos = [], [], [], []
    for s, s_sets in zip(row, sets, strict=True):
        lab = s["labels"].clone()
        lab[0] = IGNORE_INDEX  # the previous sample's last token must not predict this one's first
        ids.append(s["input_ids"])
        types.append(s["mm_token_type_ids"])
        labels.append(lab)
        pos.append(torch.cat([torch.arange(len(s["input_ids"]), dtype=dtype)[None], s_sets.to(dtype)]))
    pad = length - sum(len(s["input_ids"]) for s in row)
    if pad:  # trailing padding: its own block of text positions, never a loss target
        ids.append(torch.full((pad,), pad_token_id, dtype=torch.long))
        types.append(torch.zeros(pad, dtype=torch.long))
        labels.append(torch.full((pad,), IGNORE_INDEX, dtype=torch.long))
        pos.append(torch.arange(pad, dtype=dtype)[None].expand(sets[0].shape[0] + 1, -1))
    return torch.cat(ids), torch.cat(types), torch.cat(labels), torch.cat(pos, dim=1)


def packed_batch(samples: list[dict], positions: PositionFunction, limit: int, pad_token_id: int) -> dict:
    """Pack parsed samples (each at most ``limit`` tokens) into rows; no attention mask, ``use_cache=False``."""
    rows = pack_rows(samples, limit)
    length = max(sum(len(s["input_ids"]) for s in row) for row in rows)
    alone = [_alone(s, positions) for s in samples]
    dtype = alone[0].dtype
    for p in alone:
        dtype = torch.promote_types(dtype, p.dtype)
    built, start = [], 0
    for row in rows:
        built.append(_row(row, alone[start : start + len(row)], length, dtype, pad_token_id))
        start += len(row)
    ids, types, labels, pos = zip(*built, strict=True)
    batch = {
        "input_ids": torch.stack(ids),
        "mm_token_type_ids": torch.stack(types),
        "labels": torch.stack(labels),
        "position_ids": torch.stack(pos, dim=1),
        "use_cache": False,
    }
    batch.update(visual_fields(samples))
    return batch
