"""Frequency allocations: which rotary pair reads which axis (0 = t, 1 = h, 2 = w).

Pair ``i`` is channels ``i`` and ``i + P`` of a head (NeoX half-split pairing), ``P = rotary_dim // 2``;
pair 0 has the highest frequency. Pure functions over Python ints; the rotary module turns the map into
an index tensor once at patch time.

Default sections for head dims other than 128 (P != 64) scale the paper's defaults by ``P / 64``:

- ``interleaved``: ``h = w = floor(20 * P / 64)``, ``t = P - 2h`` ([24, 20, 20] at P = 64, [6, 5, 5] at P = 16);
- ``chunked``: ``h = w = floor(24 * P / 64)``, ``t = P - 2h`` ([16, 24, 24] at P = 64, [4, 6, 6] at P = 16).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from .options import Option
from .registry import Registry

T, H, W = 0, 1, 2


def chunked_pair_axes(num_pairs: int, section: Sequence[int]) -> list[int]:
    """Qwen2-VL: contiguous chunks, chunk k on axis k % 3 (T gets the highest frequencies).

    >>> chunked_pair_axes(8, [2, 3, 3])
    [0, 0, 1, 1, 1, 2, 2, 2]
    """
    axes = [axis % 3 for axis, size in enumerate(section) for _ in range(size)]
    if len(axes) != num_pairs:
        raise ValueError(f"chunked mrope_section {list(section)} covers {len(axes)} pairs, the head has {num_pairs}")
    return axes


def interleaved_pair_axes(num_pairs: int, section: Sequence[int]) -> list[int]:
    """MRoPE-I / Qwen3-VL: pair i -> H if i % 3 == 1 and i < 3*s_h, W if i % 3 == 2 and i < 3*s_w, else T.

    ``section[0]`` is not read: T takes every pair left over, including the low-frequency tail.

    >>> interleaved_pair_axes(8, [4, 2, 2])
    [0, 1, 2, 0, 1, 2, 0, 0]
    """
    _, s_h, s_w = section
    return [H if i % 3 == 1 and i < 3 * s_h else W if i % 3 == 2 and i < 3 * s_w else T for i in range(num_pairs)]


def scaled_section(num_pairs: int, spatial_per_64: int) -> tuple[int, int, int]:
    spatial = spatial_per_64 * num_pairs // 64
    return (num_pairs - 2 * spatial, spatial, spatial)


@dataclass(frozen=True)
class PairAllocation:
    """A pair -> axis allocation with the paper's default section for 64 pairs."""

    name: str
    pair_axes_fn: Callable[[int, Sequence[int]], list[int]]
    spatial_per_64: int
    options: Mapping[str, Option] = field(default_factory=dict)

    def default_section(self, num_pairs: int) -> tuple[int, int, int]:
        return scaled_section(num_pairs, self.spatial_per_64)

    def pair_axes(self, num_pairs: int, section: Sequence[int]) -> list[int]:
        """The map, as the model code computes it (no strictness: used for the model's own section)."""
        return self.pair_axes_fn(num_pairs, section)

    def checked_pair_axes(self, num_pairs: int, section: Sequence[int]) -> list[int]:
        """The map for a user-given section, which must give exactly the requested pair counts."""
        if sum(section) != num_pairs:
            raise ValueError(
                f"mrope_section {list(section)} sums to {sum(section)}, but the head has {num_pairs} rotary pairs "
                f"(head_dim {2 * num_pairs}); for the {self.name} allocation use e.g. {list(self.default_section(num_pairs))}"
            )
        axes = self.pair_axes_fn(num_pairs, section)
        counts = [axes.count(axis) for axis in (T, H, W)]
        if counts != list(section):
            raise ValueError(
                f"mrope_section {list(section)} does not fit the {self.name} allocation on {num_pairs} pairs: it "
                f"gives t/h/w = {counts} (h and w get at most one pair in three); use e.g. "
                f"{list(self.default_section(num_pairs))}"
            )
        return axes


ALLOCATIONS: Registry[PairAllocation] = Registry("frequency allocation")
ALLOCATIONS.add("chunked", PairAllocation("chunked", chunked_pair_axes, spatial_per_64=24))
ALLOCATIONS.add("interleaved", PairAllocation("interleaved", interleaved_pair_axes, spatial_per_64=20))
