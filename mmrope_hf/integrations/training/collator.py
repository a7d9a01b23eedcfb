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

from mmrope_hf.config import MMRopeConfig
from mmrope_hf.integrations.training.packing import packed_batch
from mmrope_hf.integrations.training.padding import padded_batch
from mmrope_hf.integrations.training.positions import model_positions, scheme_positions
from mmrope_hf.integrations.training.samples import parse_sample, truncate


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
        if isinstance(scheme_or_model, nn.Module):
            if options:
                raise TypeError(f"scheme options {sorted(options)} only apply when a scheme (not a model) is given")
            self._positions, self.spatial_merge_size, self.split_video_frames, self.temporal_merge = model_positions(
                scheme_or_model
            )
        else:
            self.spatial_merge_size, self.split_video_frames = spatial_merge_size, split_video_frames
            self.temporal_merge = 1
            self._positions = scheme_positions(
                scheme_or_model, spatial_merge_size, tokens_per_second, split_video_frames, num_layers, options
            )

    def positions(
        self,
        input_ids: torch.Tensor,
        mm_token_type_ids: torch.Tensor,
        image_grid_thw: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        second_per_grid_ts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The scheme's ``(3K, B, L)`` positions (what the patched model's ``get_rope_index`` returns). Given a model,
        they follow its training mode (HoPE draws its strides while training, from the patch's seeded generator;
        each DataLoader worker forks that generator, so reseed per worker if draws must differ across workers);
        given a scheme, they are the inference-mode positions."""
        return self._positions(
            input_ids, mm_token_type_ids, image_grid_thw, video_grid_thw, attention_mask, second_per_grid_ts
        )

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict:
        if not samples:
            raise ValueError("no samples to collate")
        parsed = [
            parse_sample(s, i, self.spatial_merge_size, self.mask_visual_labels, self.temporal_merge)
            for i, s in enumerate(samples)
        ]
        if self.mode == "padded":
            return padded_batch(parsed, self.positions, self.padding_side, self.pad_token_id)
        limit = self.max_length or max(len(s["input_ids"]) for s in parsed)
        parsed = [
            truncate(s, i, limit, self.truncate) if len(s["input_ids"]) > limit else s for i, s in enumerate(parsed)
        ]
        return packed_batch(parsed, self.positions, limit, self.pad_token_id)


def collate(samples: Sequence[Mapping[str, Any]], scheme_or_model: Any, mode: str = "padded", **kwargs: Any) -> dict:
    """One-shot form of :class:`MMRopeCollator`."""
    return MMRopeCollator(scheme_or_model, mode, **kwargs)(samples)
