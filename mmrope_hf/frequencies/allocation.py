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

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from mmrope_hf.options import Option, boolean, choice, positive_number
from mmrope_hf.registry import Registry

T, H, W = 0, 1, 2
NOPE = -1


@dataclass(frozen=True)
class FrequencyPlan:
    """What the rotary needs: the allocation's name, its section, and a pair map or a KV-head map."""

    name: str
    section: tuple[int, ...]
    pair_axes: tuple[int, ...] | None = None  # a pair whose axis is NOPE gets no rotation (zero angle)
    head_axes: tuple[int, ...] | None = None
    pair_scale: tuple[float, ...] | None = None  # multiplies each pair's inv_freq (the scaled-base ablation)


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

    def plan(
        self,
        num_pairs: int,
        num_kv_heads: int,
        section: Sequence[int] | None,
        options: Mapping[str, Any],
        strict: bool = True,
    ) -> FrequencyPlan:
        """The plan for ``section`` (the default when ``None``). ``strict=False`` takes the model's own section
        exactly as the model code uses it; a user section must give exactly the requested pair counts."""
        section = tuple(section) if section is not None else self.default_section(num_pairs)
        if not strict:
            return FrequencyPlan(self.name, section, pair_axes=tuple(self.pair_axes_fn(num_pairs, section)))
        if sum(section) != num_pairs:
            raise ValueError(
                f"mrope_section {list(section)} sums to {sum(section)}, but the head has {num_pairs} rotary pairs "
                f"(head_dim {2 * num_pairs}); for the {self.name} allocation use e.g. "
                f"{list(self.default_section(num_pairs))}"
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
    options: Mapping[str, Option] = field(
        default_factory=lambda: {
            "nope_heads": Option(
                0, _non_negative_int, "trailing KV heads with no rotation (multi-head only; changes text-only outputs)"
            ),
        }
    )

    @staticmethod
    def default_section(num_heads: int) -> tuple[int, int, int]:
        return scaled_section(num_heads, 24)  # h = w = floor(3n/8): [2, 3, 3] for 8 KV heads

    def plan(
        self,
        num_pairs: int,
        num_kv_heads: int,
        section: Sequence[int] | None,
        options: Mapping[str, Any],
        strict: bool = True,
    ) -> FrequencyPlan:
        nope = options.get("nope_heads", 0)
        rotated = num_kv_heads - nope
        if section is None:
            if rotated < 3:
                raise ValueError(
                    f"the multi-head allocation (MHRoPE) needs at least 3 rotated KV heads, one per axis; this model "
                    f"has {num_kv_heads} KV head(s)"
                    + (f" and nope_heads={nope}" if nope else "")
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
        return FrequencyPlan(self.name, tuple(section), head_axes=tuple(heads))


Allocation = PairAllocation | HeadAllocation
ALLOCATIONS: Registry[Allocation] = Registry("frequency allocation")
ALLOCATIONS.add("chunked", PairAllocation("chunked", chunked_pair_axes, spatial_per_64=24))
ALLOCATIONS.add("interleaved", PairAllocation("interleaved", interleaved_pair_axes, spatial_per_64=20))
ALLOCATIONS.add("multi-head", HeadAllocation())


# --- the baselines and ablations of Huang et al. (ICLR 2026) ------------------------------------------------------
#
# - ``videorope`` (VideoRoPE, and HoPE with ``temporal_nope``): the spatial axes alternate over the high frequencies,
#   t takes the lowest ones. ``videorope_layout: official`` (Wiselnn570/VideoRoPE ``apply_m_modify_...``, and HoPE's
#   hybrid allocation): pairs [0, s_h + s_w) alternate H, W (H first), the last s_t pairs are T: [16, 24, 24] at
#   64 pairs gives pairs 0-47 H/W, 48-63 T; default section as ``chunked`` (h = w = floor(24 P / 64)), so 0-11 H/W
#   and 12-15 T at 16 pairs. ``videorope_layout: multimodal-ropes`` (JJJYmmm/Multimodal-RoPEs @ cd413b9): every
#   pair T, then H at odd i < 2 s_h and W at even 2 <= i < 2 s_w, i.e. the official pattern shifted by one pair:
#   T keeps pair 0 and W gets one pair less (17/24/23 for [16, 24, 24]); the counts are not checked against the
#   section, only its sum. ``temporal_nope: true`` (HoPE): the T pairs get no rotation at all, for every token
#   (text included; the reference zeroes the t row inside the embedding), so text-only outputs change.
# - ``interleaved-reserved-t`` (the paper's "IL-RoPE-like" allocation, Table 5, "interleaves but reserves the
#   lowest-frequency channels for t"; the exact map is not given, this one is our choice): t, h, w round robin
#   (the ``interleaved`` rule) over the high-frequency pairs, and a contiguous block of the lowest-frequency pairs
#   for t alone. Default section h = w = floor(16 P / 64), t = P - 2h: [32, 16, 16] at 64 pairs (THW x 16, then
#   16 T pairs, as many as VideoRoPE's temporal block), [8, 4, 4] at 16 pairs. It is the ``interleaved`` map with
#   that section (the 32:16:16 row of the paper's Table 8 under the reference interleave code).
# - ``interleaved-scaled-base`` (Table 4 "+scaling rotary base": "scaling the rotary base of the spatial axes, e.g.
#   from 1,000,000 to 10,000"): the ``interleaved`` map, and every H or W pair i rotates with base
#   ``spatial_base_scale`` x the model's base, keeping its exponent: inv_freq_i x spatial_base_scale ** (-i / P)
#   (= (0.01 base) ** (-2i / D) with the default 0.01, the paper's 1e6 -> 1e4). T pairs and any rope scaling of the
#   model (YaRN, linear) are kept. Text-only outputs change (text reads the H/W pairs too).


def videorope_pair_axes(num_pairs: int, section: Sequence[int]) -> list[int]:
    """Official VideoRoPE: pairs [0, s_h + s_w) alternate H, W (H first; with s_h != s_w the larger axis takes the
    pairs left once the other is used up), the last s_t pairs are T.

    >>> videorope_pair_axes(8, [2, 3, 3])
    [1, 2, 1, 2, 1, 2, 0, 0]
    """
    s_t, s_h, s_w = section
    axes, counts = [], {H: 0, W: 0}
    for i in range(max(num_pairs - s_t, 0)):
        axis = H if (i % 2 == 0 and counts[H] < s_h) or counts[W] >= s_w else W
        counts[axis] += 1
        axes.append(axis)
    return axes + [T] * (num_pairs - len(axes))


def multimodal_ropes_videorope_pair_axes(num_pairs: int, section: Sequence[int]) -> list[int]:
    """JJJYmmm/Multimodal-RoPEs' VideoRoPE map: all T, then H at odd i < 2 s_h, W at even 2 <= i < 2 s_w.

    >>> multimodal_ropes_videorope_pair_axes(8, [2, 3, 3])
    [0, 1, 2, 1, 2, 1, 0, 0]
    """
    _, s_h, s_w = section
    axes = [T] * num_pairs
    for i in range(1, min(2 * s_h, num_pairs), 2):
        axes[i] = H
    for i in range(2, min(2 * s_w, num_pairs), 2):
        axes[i] = W
    return axes


@dataclass(frozen=True)
class VideoRoPEAllocation(PairAllocation):
    """VideoRoPE's map in the official or the reference repo's layout, with HoPE's NoPE temporal pairs on request."""

    def plan(
        self,
        num_pairs: int,
        num_kv_heads: int,
        section: Sequence[int] | None,
        options: Mapping[str, Any],
        strict: bool = True,
    ) -> FrequencyPlan:
        if options.get("videorope_layout", "official") == "official":
            plan = super().plan(num_pairs, num_kv_heads, section, options, strict)
        else:
            section = tuple(section) if section is not None else self.default_section(num_pairs)
            if sum(section) != num_pairs:
                raise ValueError(
                    f"mrope_section {list(section)} sums to {sum(section)}, but the head has {num_pairs} rotary pairs "
                    f"(head_dim {2 * num_pairs}); for the {self.name} allocation use e.g. "
                    f"{list(self.default_section(num_pairs))}"
                )
            plan = FrequencyPlan(
                self.name, section, pair_axes=tuple(multimodal_ropes_videorope_pair_axes(num_pairs, section))
            )
        if options.get("temporal_nope", False):
            axes = plan.pair_axes or ()
            plan = replace(plan, pair_axes=tuple(NOPE if axis == T else axis for axis in axes))
        return plan


@dataclass(frozen=True)
class ScaledBaseAllocation(PairAllocation):
    """A pair map whose H and W pairs rotate with the model's base times ``spatial_base_scale``."""

    def plan(
        self,
        num_pairs: int,
        num_kv_heads: int,
        section: Sequence[int] | None,
        options: Mapping[str, Any],
        strict: bool = True,
    ) -> FrequencyPlan:
        plan = super().plan(num_pairs, num_kv_heads, section, options, strict)
        scale = options.get("spatial_base_scale", self.options["spatial_base_scale"].default)
        factors = tuple(
            scale ** (-i / num_pairs) if axis in (H, W) else 1.0 for i, axis in enumerate(plan.pair_axes or ())
        )
        return replace(plan, pair_scale=factors)


ALLOCATIONS.add(
    "videorope",
    VideoRoPEAllocation(
        "videorope",
        videorope_pair_axes,
        spatial_per_64=24,
        options={
            "videorope_layout": Option(
                "official",
                choice("official", "multimodal-ropes"),
                "VideoRoPE map: 'official' (H/W alternate, then T) or 'multimodal-ropes' (shifted by one pair)",
            ),
            "temporal_nope": Option(
                False, boolean, "HoPE: no rotation on the temporal pairs (changes text-only outputs)"
            ),
        },
    ),
)
ALLOCATIONS.add(
    "interleaved-reserved-t", PairAllocation("interleaved-reserved-t", interleaved_pair_axes, spatial_per_64=16)
)
ALLOCATIONS.add(
    "interleaved-scaled-base",
    ScaledBaseAllocation(
        "interleaved-scaled-base",
        interleaved_pair_axes,
        spatial_per_64=20,
        options={
            "spatial_base_scale": Option(
                0.01,
                positive_number,
                "factor on the rotary base of the h/w pairs (0.01: 1e6 -> 1e4; changes text-only outputs)",
            ),
        },
    ),
)
