"""Frequency allocations: which axis (0 = t, 1 = h, 2 = w) each rotary pair, or each KV head, reads.

Pair ``i`` is channels ``i`` and ``i + P`` of a head (NeoX half-split pairing), ``P = rotary_dim // 2``;
pair 0 has the highest frequency. The maps are pure functions over Python ints; an allocation turns a
section into a :class:`FrequencyPlan` once, at patch time.

- ``chunked`` (Qwen2/2.5-VL) and ``interleaved`` (MRoPE-I, Qwen3-VL) give every pair one axis, and every head
  the same map. Default sections for head dims other than 128 (P != 64) scale the paper's defaults by P / 64:
  ``interleaved`` ``h = w = floor(20 P / 64)``, ``t = P - 2h`` ([24, 20, 20] at P = 64, [6, 5, 5] at P = 16);
  ``chunked`` ``h = w = floor(24 P / 64)``, ``t = P - 2h`` ([16, 24, 24] at P = 64, [4, 6, 6] at P = 16).
- ``multi-head`` (MHRoPE) gives every KV head one axis over the full spectrum; ``mrope_section`` counts KV
  heads per axis, in order (t heads first, then h, then w), and query heads follow their KV group as in
  transformers' ``repeat_kv``. Default for n KV heads: ``h = w = floor(3n / 8)``, ``t = n - 2h`` (the paper's
  [2, 3, 3] for 8, [2, 1, 1] for 4, [1, 1, 1] for 3, [4, 6, 6] for 16); a model with fewer than 3 KV heads
  has no default and needs an explicit section (e.g. [2, 0, 0]). A section may hold zeros (an axis without
  heads) but must sum to the rotated KV heads. ``nope_heads`` trailing KV heads get no rotation at all
  (opt-in: text-only outputs then differ from the stock model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .options import Option
from .registry import Registry

T, H, W = 0, 1, 2
NOPE = -1


@dataclass(frozen=True)
class FrequencyPlan:
    """What the rotary needs: the allocation's name, its section, and a pair map or a KV-head map."""

    name: str
    section: tuple[int, ...]
    pair_axes: tuple[int, ...] | None = None
    head_axes: tuple[int, ...] | None = None


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


def scaled_section(count: int, spatial_per_64: int) -> tuple[int, int, int]:
    spatial = spatial_per_64 * count // 64
    return (count - 2 * spatial, spatial, spatial)


@dataclass(frozen=True)
class PairAllocation:
    """A pair -> axis allocation with the paper's default section for 64 pairs."""

    name: str
    pair_axes_fn: Callable[[int, Sequence[int]], list[int]]
    spatial_per_64: int
    options: Mapping[str, Option] = field(default_factory=dict)

    def default_section(self, num_pairs: int) -> tuple[int, int, int]:
        return scaled_section(num_pairs, self.spatial_per_64)

    def plan(self, num_pairs: int, num_kv_heads: int, section: Sequence[int] | None, options: Mapping[str, Any],
             strict: bool = True) -> FrequencyPlan:
        """The plan for ``section`` (the default when ``None``). ``strict=False`` takes the model's own section
        exactly as the model code uses it; a user section must give exactly the requested pair counts."""
        section = tuple(section) if section is not None else self.default_section(num_pairs)
        if not strict:
            return FrequencyPlan(self.name, section, pair_axes=tuple(self.pair_axes_fn(num_pairs, section)))
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
        return FrequencyPlan(self.name, section, pair_axes=tuple(axes))


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


@dataclass(frozen=True)
class HeadAllocation:
    """MHRoPE: every KV head reads one axis over the full spectrum; ``section`` counts KV heads per axis."""

    name: str = "multi-head"
    options: Mapping[str, Option] = field(default_factory=lambda: {
        "nope_heads": Option(0, _non_negative_int, "trailing KV heads with no rotation (multi-head only; changes text-only outputs)"),
    })

    @staticmethod
    def default_section(num_heads: int) -> tuple[int, int, int]:
        return scaled_section(num_heads, 24)  # h = w = floor(3n/8): [2, 3, 3] for 8 KV heads

    def plan(self, num_pairs: int, num_kv_heads: int, section: Sequence[int] | None, options: Mapping[str, Any],
             strict: bool = True) -> FrequencyPlan:
        nope = options.get("nope_heads", 0)
        rotated = num_kv_heads - nope
        if section is None:
            if rotated < 3:
                raise ValueError(
                    f"the multi-head allocation (MHRoPE) needs at least 3 rotated KV heads, one per axis; this model "
                    f"has {num_kv_heads} KV head(s)" + (f" and nope_heads={nope}" if nope else "")
                    + ". Use a scheme with a per-pair allocation instead: mrope-i, spatial-reset or mrope"
                )
            section = self.default_section(rotated)
        if sum(section) != rotated:
            raise ValueError(
                f"mrope_section {list(section)} counts KV heads per axis for the multi-head allocation and must sum "
                f"to the {rotated} rotated KV heads ({num_kv_heads} KV heads, nope_heads={nope})"
                + (f"; e.g. {list(self.default_section(rotated))}" if rotated >= 3 else "")
            )
        heads = [axis for axis, count in enumerate(section) for _ in range(count)] + [NOPE] * nope
        return FrequencyPlan(self.name, section, head_axes=tuple(heads))


Allocation = PairAllocation | HeadAllocation
ALLOCATIONS: Registry[Allocation] = Registry("frequency allocation")
ALLOCATIONS.add("chunked", PairAllocation("chunked", chunked_pair_axes, spatial_per_64=24))
ALLOCATIONS.add("interleaved", PairAllocation("interleaved", interleaved_pair_axes, spatial_per_64=20))
ALLOCATIONS.add("multi-head", HeadAllocation())
