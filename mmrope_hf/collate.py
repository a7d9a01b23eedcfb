"""Training batches with precomputed positions: padded batches and packed rows.

:class:`MMRopeCollator` turns per-sample processor outputs (``input_ids``, ``attention_mask``,
``mm_token_type_ids``, ``pixel_values`` / ``image_grid_thw``, ``pixel_values_videos`` / ``video_grid_thw`` /
``second_per_grid_ts``, optional ``labels``) into one batch whose ``position_ids`` already hold the scheme's
positions, so the model's forward does no position work (``get_rope_index`` is skipped when ``position_ids`` is
passed).

``position_ids`` has shape ``(3K + 1, B, L)``: a text row first, then the (t, h, w) rows of each of the K position
sets of the scheme (K > 1 for layer schedules such as Circle-RoPE with ``layers: alternate``).

- ``mode="padded"``: one sample per row, left or right padding, ``attention_mask`` marks the real tokens. The
  positions are the ones the patched model computes for the padded batch.
- ``mode="packed"``: samples are concatenated into rows of at most ``max_length`` tokens (in order; a new row
  starts when the next sample does not fit). No ``attention_mask`` is returned: the text row restarts at 0 for
  every sample (and for the trailing padding), and transformers builds the block-diagonal mask (sdpa / eager) or
  the varlen boundaries (flash-attention) from that row alone, never from spatial-reset or Circle rows. Every
  position set of every sample equals that sample's positions alone. The batch carries ``use_cache=False``:
  transformers only looks for packed sequences when no cache is passed.

Labels: taken from the sample's ``labels`` if present, else ``input_ids`` with image/video placeholders masked.
Padding gets ``-100``, and in packed rows the first token of each sample gets ``-100`` too, so no loss crosses a
sample boundary (the model shifts labels by one inside the row).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .builder import build_position_ids
from .config import MMRopeConfig
from .layout import IMAGE, VIDEO

IGNORE_INDEX = -100
_VISUAL = (("image", "pixel_values", "image_grid_thw", IMAGE), ("video", "pixel_values_videos", "video_grid_thw", VIDEO))


def _row(value: Any, key: str, index: int) -> torch.Tensor:
    tensor = torch.as_tensor(value)
    if tensor.ndim == 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 1:
        raise ValueError(f"sample {index}: {key} must be one sequence (shape (L,) or (1, L)), got {tuple(tensor.shape)}")
    return tensor.long()


def text_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Text row of a padded batch: 0, 1, 2, ... over the real tokens, 0 on padding."""
    return ((attention_mask.long().cumsum(-1) - 1) * attention_mask.long()).clamp(min=0)


class MMRopeCollator:
    """Collate processor outputs into a batch with the scheme's ``position_ids``.

    Args:
        scheme_or_model: a patched model (its scheme, layer schedule, merge size, video timing and
            Qwen3-VL frame splitting are used), or a scheme (preset name, path, dict, :class:`MMRopeConfig`).
        mode: ``"padded"`` or ``"packed"``.
        padding_side: ``"right"`` or ``"left"`` (padded mode; packed rows pad on the right).
        max_length: packed mode: tokens per row (default: the longest sample). A sample longer than a row is
            truncated if the cut falls in text and ``truncate=True``; a cut through an image or video raises.
        pad_token_id: id used for padding.
        mask_visual_labels: when labels are derived from ``input_ids``, set image/video placeholders to -100.
        spatial_merge_size, tokens_per_second, split_video_frames, num_layers, **options: scheme mode only,
            as in :func:`~mmrope_hf.build_position_ids` (pass ``num_layers`` = decoder depth for layer schedules).

    >>> from mmrope_hf.testing import build_inputs
    >>> sample = build_inputs("qwen2_5_vl", [[3, ("image", 1, 4, 4), 2]])
    >>> batch = MMRopeCollator("mrope-i", mode="packed", max_length=24)([sample, sample])
    >>> batch["position_ids"].shape, batch["position_ids"][0, 0].tolist()
    (torch.Size([4, 1, 22]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    """

    def __init__(
        self,
        scheme_or_model: str | Mapping[str, Any] | MMRopeConfig | nn.Module,
        mode: str = "padded",
        *,
        padding_side: str = "right",
        max_length: int | None = None,
        truncate: bool = False,
        pad_token_id: int = 0,
        mask_visual_labels: bool = True,
        spatial_merge_size: int = 2,
        tokens_per_second: float | None = None,
        split_video_frames: bool = False,
        num_layers: int | None = None,
        **options: Any,
    ) -> None:
        if mode not in ("padded", "packed"):
            raise ValueError(f"mode must be 'padded' or 'packed', got {mode!r}")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.mode, self.padding_side, self.max_length, self.truncate = mode, padding_side, max_length, truncate
        self.pad_token_id, self.mask_visual_labels = pad_token_id, mask_visual_labels
        self.state = None
        if isinstance(scheme_or_model, nn.Module):
            from .patching import _find_state

            self.state = _find_state(scheme_or_model)
            if self.state is None:
                raise ValueError("the model is not patched: call mmrope_hf.patch_model(model, scheme) first, "
                                 "or pass a scheme name to the collator")
            if options:
                raise TypeError(f"scheme options {sorted(options)} only apply when a scheme (not a model) is given")
            self.spatial_merge_size = self.state.handles.spatial_merge_size
            self.split_video_frames = self.state.handles.split_video_frames
        else:
            self.scheme, self.options = scheme_or_model, options
            self.spatial_merge_size, self.split_video_frames = spatial_merge_size, split_video_frames
            self.tokens_per_second, self.num_layers = tokens_per_second, num_layers

    # ---- positions -------------------------------------------------------------------------------------------

    def positions(self, input_ids, mm_token_type_ids, image_grid_thw=None, video_grid_thw=None, attention_mask=None,
                  second_per_grid_ts=None) -> torch.Tensor:
        """The scheme's ``(3K, B, L)`` positions (what the patched model's ``get_rope_index`` returns). Given a model,
        they follow its training mode (HoPE draws its strides while training, from the patch's seeded generator;
        each DataLoader worker forks that generator, so reseed per worker if draws must differ across workers);
        given a scheme, they are the inference-mode positions."""
        if self.state is None:
            return build_position_ids(
                self.scheme, input_ids, mm_token_type_ids, image_grid_thw, video_grid_thw, attention_mask,
                second_per_grid_ts, spatial_merge_size=self.spatial_merge_size, tokens_per_second=self.tokens_per_second,
                split_video_frames=self.split_video_frames, num_layers=self.num_layers, **self.options,
            )[0]
        return self.state.positions_and_deltas(input_ids, mm_token_type_ids, image_grid_thw, video_grid_thw,
                                               attention_mask, second_per_grid_ts)[0]

    # ---- samples ---------------------------------------------------------------------------------------------

    def _sample(self, raw: Mapping[str, Any], index: int) -> dict:
        if "mm_token_type_ids" not in raw:
            raise ValueError(f"sample {index} has no mm_token_type_ids (0 text, 1 image, 2 video): the positions cannot "
                             f"be placed; ask the processor for them (return_mm_token_type_ids=True)")
        ids = _row(raw["input_ids"], "input_ids", index)
        types = _row(raw["mm_token_type_ids"], "mm_token_type_ids", index)
        if "attention_mask" in raw and raw["attention_mask"] is not None:
            keep = _row(raw["attention_mask"], "attention_mask", index).bool()
            ids, types = ids[keep], types[keep]
        else:
            keep = None
        if ids.shape != types.shape:
            raise ValueError(f"sample {index}: input_ids {tuple(ids.shape)} and mm_token_type_ids {tuple(types.shape)} differ")
        if "labels" in raw and raw["labels"] is not None:
            labels = _row(raw["labels"], "labels", index)
            labels = labels[keep] if keep is not None and labels.shape == keep.shape else labels
        else:
            labels = ids.clone()
            if self.mask_visual_labels:
                labels[types != 0] = IGNORE_INDEX
        sample = {"input_ids": ids, "mm_token_type_ids": types, "labels": labels}
        merge = self.spatial_merge_size**2
        for name, pixels, grid_key, type_id in _VISUAL:
            grid = raw.get(grid_key)
            grid = None if grid is None else torch.as_tensor(grid).long().reshape(-1, 3)
            tokens = int((types == type_id).sum())
            expected = 0 if grid is None else int(grid.prod(-1).sum()) // merge
            if tokens != expected:
                raise ValueError(
                    f"sample {index}: {tokens} {name} placeholder tokens but {grid_key} "
                    f"{[] if grid is None else grid.tolist()} gives {expected} (t*h*w/{merge} per {name}); the grids do "
                    f"not match the token layout (a processor mismatch, or a truncated sample)"
                )
            if grid is not None and len(grid):
                sample[grid_key] = grid
                if raw.get(pixels) is not None:
                    values = torch.as_tensor(raw[pixels])
                    if values.shape[0] != int(grid.prod(-1).sum()):
                        raise ValueError(f"sample {index}: {pixels} has {values.shape[0]} rows, {grid_key} "
                                         f"{grid.tolist()} needs {int(grid.prod(-1).sum())}")
                    sample[pixels] = values
        if raw.get("second_per_grid_ts") is not None:
            sample["second_per_grid_ts"] = torch.as_tensor(raw["second_per_grid_ts"]).reshape(-1)
        return sample

    def _truncate(self, sample: dict, index: int, length: int) -> dict:
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
        if not self.truncate:
            raise ValueError(f"sample {index} has {len(types)} tokens, more than max_length={length}; raise max_length "
                             f"or pass truncate=True (only cuts in text are allowed)")
        return {**sample, **{key: sample[key][:length] for key in ("input_ids", "mm_token_type_ids", "labels")}}

    # ---- batches ---------------------------------------------------------------------------------------------

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict:
        if not samples:
            raise ValueError("no samples to collate")
        parsed = [self._sample(s, i) for i, s in enumerate(samples)]
        if self.mode == "padded":
            return self._padded(parsed)
        return self._packed(parsed)

    def _visual_fields(self, ordered: Sequence[dict]) -> dict:
        out = {}
        for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts"):
            parts = [s[key] for s in ordered if key in s]
            if parts:
                out[key] = torch.cat(parts)
        return out

    def _padded(self, samples: list[dict]) -> dict:
        length = max(len(s["input_ids"]) for s in samples)
        out: dict[str, list] = {"input_ids": [], "attention_mask": [], "mm_token_type_ids": [], "labels": []}
        for s in samples:
            n = len(s["input_ids"])
            for key, values, fill in (("input_ids", s["input_ids"], self.pad_token_id),
                                      ("attention_mask", torch.ones(n, dtype=torch.long), 0),
                                      ("mm_token_type_ids", s["mm_token_type_ids"], 0), ("labels", s["labels"], IGNORE_INDEX)):
                pad = torch.full((length - n,), fill, dtype=torch.long)
                out[key].append(torch.cat([pad, values] if self.padding_side == "left" else [values, pad]))
        batch = {key: torch.stack(value) for key, value in out.items()}
        batch.update(self._visual_fields(samples))
        positions = self.positions(batch["input_ids"], batch["mm_token_type_ids"], batch.get("image_grid_thw"),
                                   batch.get("video_grid_thw"), batch["attention_mask"], batch.get("second_per_grid_ts"))
        text = text_positions(batch["attention_mask"]).to(positions.dtype)
        batch["position_ids"] = torch.cat([text[None], positions])
        return batch

    def _packed(self, samples: list[dict]) -> dict:
        limit = self.max_length or max(len(s["input_ids"]) for s in samples)
        samples = [self._truncate(s, i, limit) if len(s["input_ids"]) > limit else s for i, s in enumerate(samples)]
        rows: list[list[dict]] = [[]]
        used = 0
        for s in samples:
            n = len(s["input_ids"])
            if used + n > limit and rows[-1]:
                rows.append([])
                used = 0
            rows[-1].append(s)
            used += n
        length = max(sum(len(s["input_ids"]) for s in row) for row in rows)
        per_sample = []
        for s in samples:  # every sample alone: its positions reset every set at its boundary
            grids = {key: s.get(key) for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts")}
            per_sample.append(self.positions(s["input_ids"][None], s["mm_token_type_ids"][None], grids["image_grid_thw"],
                                             grids["video_grid_thw"], None, grids["second_per_grid_ts"])[:, 0])
        dtype = per_sample[0].dtype
        for p in per_sample:
            dtype = torch.promote_types(dtype, p.dtype)
        num_rows = per_sample[0].shape[0]
        ids, types, labels, positions = [], [], [], []
        index = 0
        for row in rows:
            parts: dict[str, list] = {"ids": [], "types": [], "labels": [], "pos": []}
            for s in row:
                n = len(s["input_ids"])
                lab = s["labels"].clone()
                lab[0] = IGNORE_INDEX  # the previous sample's last token must not predict this one's first
                sets = per_sample[index].to(dtype)
                index += 1
                parts["ids"].append(s["input_ids"])
                parts["types"].append(s["mm_token_type_ids"])
                parts["labels"].append(lab)
                parts["pos"].append(torch.cat([torch.arange(n, dtype=dtype)[None], sets]))
            pad = length - sum(len(s["input_ids"]) for s in row)
            if pad:  # trailing padding: its own block of text positions, never a loss target
                parts["ids"].append(torch.full((pad,), self.pad_token_id, dtype=torch.long))
                parts["types"].append(torch.zeros(pad, dtype=torch.long))
                parts["labels"].append(torch.full((pad,), IGNORE_INDEX, dtype=torch.long))
                parts["pos"].append(torch.arange(pad, dtype=dtype)[None].expand(num_rows + 1, -1))
            ids.append(torch.cat(parts["ids"]))
            types.append(torch.cat(parts["types"]))
            labels.append(torch.cat(parts["labels"]))
            positions.append(torch.cat(parts["pos"], dim=1))
        batch = {"input_ids": torch.stack(ids), "mm_token_type_ids": torch.stack(types), "labels": torch.stack(labels),
                 "position_ids": torch.stack(positions, dim=1), "use_cache": False}
        batch.update(self._visual_fields(samples))
        return batch


def collate(samples: Sequence[Mapping[str, Any]], scheme_or_model: Any, mode: str = "padded", **kwargs: Any) -> dict:
    """One-shot form of :class:`MMRopeCollator`."""
    return MMRopeCollator(scheme_or_model, mode, **kwargs)(samples)


def sample_boundaries(position_ids: torch.Tensor) -> torch.Tensor:
    """Sample index of every token of packed rows, from the text row only (``position_ids[0]`` of a
    ``(3K + 1, B, L)`` tensor, or a ``(B, L)`` text row): a new sample starts wherever the text position does not
    go up by exactly 1 (transformers' rule)."""
    text = position_ids[0] if position_ids.ndim == 3 else position_ids
    diff = torch.diff(text, prepend=text[:, :1] - 1, dim=-1)
    return (diff != 1).cumsum(-1)
