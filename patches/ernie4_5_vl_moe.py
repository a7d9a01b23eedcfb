"""ERNIE-4.5-VL (MoE): Qwen2-VL's positions with videos merged over time, and a rotary of its own.

- A video of T frames has T // ``temporal_merge_size`` (2) temporal groups, one position apart, in one block
  (no per-frame blocks); images are not merged over time. Text resumes at ``max(H, W)`` after a video (the
  transformers rule: ``mrope`` is stock with ``vision_advance: spatial`` after a multi-group video).
- The rotary pairs adjacent channels (GPT-J) and its allocation is VideoRoPE's official map: the high-frequency
  pairs alternate h, w, the low-frequency tail is t. ``mrope_section`` lists [h, w, t]. It stores ``inv_freq``
  permuted (the even-indexed frequencies of the h/w pairs, then the odd ones, then t's), so that its
  recomposition puts frequency i on pair i; the adapter reads them back in order.
- Its attention rotates in float32 and casts back; the per-KV-head rotation of ``mhrope`` rotates in the
  activation dtype (identical in float32).
"""

from __future__ import annotations

import math
from typing import Sequence

from ._qwen_vl import QwenVLAdapter


def stored_frequency_order(section: Sequence[int], num_pairs: int) -> tuple[int, ...]:
    """Where ERNIE's ``inv_freq`` keeps the frequency of each pair: h/w pair i (i < h + w) at i // 2 when i is even,
    after the ceil((h + w) / 2) even ones when odd; the t pairs in place.

    >>> stored_frequency_order([2, 2, 2], 6)
    (0, 2, 1, 3, 4, 5)
    """
    spatial = section[0] + section[1]
    evens = math.ceil(spatial / 2)
    return tuple(i // 2 if i % 2 == 0 else evens + i // 2 for i in range(spatial)) + tuple(range(spatial, num_pairs))


ADAPTERS = {
    "ernie4_5_vl_moe": QwenVLAdapter(
        native_frequency="videorope",
        default_section=(22, 22, 20),
        pairing="adjacent",
        section_order=(2, 0, 1),
        pair_order=stored_frequency_order,
        temporal_merge="temporal_merge_size",
        notes="VideoRoPE's map (h/w alternating, then t), adjacent pairs; videos merged over 2 frames, one block; "
        "`mrope` is stock with `vision_advance: spatial` after a multi-group video",
    )
}
