"""One training sample: a processor output checked and reduced to its unpadded tokens, labels and visual inputs."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from mmrope_hf.positions.layout import IMAGE, VIDEO

IGNORE_INDEX = -100
_VISUAL = (
    ("image", "pixel_values", "image_grid_thw", IMAGE),
    ("video", "pixel_values_videos", "video_grid_thw", VIDEO),
)


def _row(value: Any, key: str, index: int) -> torch.Tensor:
    tensor = torch.as_tensor(value)
    if tensor.ndim == 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 1:
        raise ValueError(
            f"sample {index}: {key} must be one sequence (shape (L,) or (1, L)), got {tuple(tensor.shape)}"
        )
    return tensor.long()


def parse_sample(
    raw: Mapping[str, Any], index: int, spatial_merge_size: int, mask_visual_labels: bool, temporal_merge: int = 1
) -> dict:
    """One processor output -> unpadded ``input_ids``, ``mm_token_type_ids``, ``labels`` and its visual fields, with
    the grids checked against the placeholder tokens (a video's frames merge ``temporal_merge`` to a group)."""
    if "mm_token_type_ids" not in raw:
        raise ValueError(
            f"sample {index} has no mm_token_type_ids (0 text, 1 image, 2 video): the positions cannot "
            f"be placed; ask the processor for them (return_mm_token_type_ids=True)"
        )
    ids = _row(raw["input_ids"], "input_ids", index)
    types = _row(raw["mm_token_type_ids"], "mm_token_type_ids", index)
    if "attention_mask" in raw and raw["attention_mask"] is not None:
        keep = _row(raw["attention_mask"], "attention_mask", index).bool()
        ids, types = ids[keep], types[keep]
    else:
        keep = None
    if ids.shape != types.shape:
        raise ValueError(
            f"sample {index}: input_ids {tuple(ids.shape)} and mm_token_type_ids {tuple(types.shape)} differ"
        )
    if "labels" in raw and raw["labels"] is not None:
        labels = _row(raw["labels"], "labels", index)
        labels = labels[keep] if keep is not None and labels.shape == keep.shape else labels
    else:
        labels = ids.clone()
        if mask_visual_labels:
            labels[types != 0] = IGNORE_INDEX
    sample = {"input_ids": ids, "mm_token_type_ids": types, "labels": labels}
    merge = spatial_merge_size**2
    for name, pixels, grid_key, type_id in _VISUAL:
        grid = raw.get(grid_key)
        grid = None if grid is None else torch.as_tensor(grid).long().reshape(-1, 3)
        tokens = int((types == type_id).sum())
        groups = temporal_merge if type_id == VIDEO else 1  # frames per temporal group (ERNIE-4.5-VL videos: 2)
        expected = 0 if grid is None else int((grid[:, 0] // groups * grid[:, 1:].prod(-1)).sum()) // merge
        if tokens != expected:
            t = "t" if groups == 1 else f"(t//{groups})"
            raise ValueError(
                f"sample {index}: {tokens} {name} placeholder tokens but {grid_key} "
                f"{[] if grid is None else grid.tolist()} gives {expected} ({t}*h*w/{merge} per {name}); the grids "
                f"do not match the token layout (a processor mismatch, or a truncated sample)"
            )
        if grid is not None and len(grid):
            sample[grid_key] = grid
            if raw.get(pixels) is not None:
                values = torch.as_tensor(raw[pixels])
                if values.shape[0] != int(grid.prod(-1).sum()):
                    raise ValueError(
                        f"sample {index}: {pixels} has {values.shape[0]} rows, {grid_key} "
                        f"{grid.tolist()} needs {int(grid.prod(-1).sum())}"
                    )
                sample[pixels] = values
    if raw.get("second_per_grid_ts") is not None:
        sample["second_per_grid_ts"] = torch.as_tensor(raw["second_per_grid_ts"]).reshape(-1)
    return sample


def truncate(sample: dict, index: int, length: int, allowed: bool) -> dict:
    """``sample`` cut to ``length`` tokens; only a cut in text is allowed, and only if ``allowed``."""
    types = sample["mm_token_type_ids"]
    if types[length - 1] != 0 and types[length] == types[length - 1]:
        kind = "an image" if int(types[length - 1]) == IMAGE else "a video"
        first = length - 1
        while first > 0 and types[first - 1] == types[length - 1]:
            first -= 1
        raise ValueError(
            f"sample {index} ({len(types)} tokens) does not fit a packed row of max_length={length}: the row "
            f"boundary at token {length} would split {kind} (its placeholder tokens start at {first} and go on past "
            f"the boundary); a visual block cannot be split across rows: raise max_length or drop the sample"
        )
    if not allowed:
        raise ValueError(
            f"sample {index} has {len(types)} tokens, more than max_length={length}; raise max_length "
            f"or pass truncate=True (only cuts in text are allowed)"
        )
    return {**sample, **{key: sample[key][:length] for key in ("input_ids", "mm_token_type_ids", "labels")}}


def visual_fields(ordered: Sequence[dict]) -> dict:
    """The visual inputs of ``ordered`` samples, concatenated in that order."""
    out = {}
    for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts"):
        parts = [s[key] for s in ordered if key in s]
        if parts:
            out[key] = torch.cat(parts)
    return out
