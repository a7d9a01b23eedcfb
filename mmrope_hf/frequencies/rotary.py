"""The rotary module that turns position sets into cos/sin under a frequency plan.

It wraps the model's own rotary module and reuses its ``inv_freq`` and ``attention_scaling`` (so static scaled
rope types such as YaRN keep working), computes in float32 with autocast off, accepts integer and float
positions, and returns cos/sin in the activation dtype:

- a pair allocation (chunked, interleaved): ``(B, L, rotary_dim)`` tensors, like the stock module;
- a head allocation (multi-head): :class:`~mmrope_hf.apply.AxisTables`, one ``(B, L, D)`` table per axis
  (never one per head), which the patched ``apply_rotary_pos_emb`` applies per KV-head group.

With several position sets (a layer schedule) it returns :class:`StackedCosSin`, one (cos, sin) per set, and
the per-layer hooks installed by the patcher hand each decoder layer its own set.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch
from torch import nn

from mmrope_hf.frequencies.allocation import NOPE, FrequencyPlan
from mmrope_hf.frequencies.apply import PAIRINGS, AxisTables


class StackedCosSin(tuple):
    """(cos, sin) for K position sets: tensors ``(K, B, L, D)`` or :class:`AxisTables` of ``(K, 3, B, L, D)``."""

    def select(self, index: int):
        return tuple(
            replace(part, tables=part.tables[index]) if isinstance(part, AxisTables) else part[index] for part in self
        )


def split_position_sets(position_ids: torch.Tensor, num_sets: int) -> torch.Tensor:
    """Bring any position layout the model may pass to shape ``(K, 3, B, L)``.

    Accepted: ``(B, L)`` and ``(1, B, L)`` 1D positions, ``(3, B, L)`` (broadcast to every set: text-only input
    and stock decoding, where all sets agree because :func:`build_positions` aligns them), ``(3K, B, L)``, and
    ``(3K + 1, B, L)`` with the text row first (what ``generate`` passes when K > 1).
    """
    if position_ids.ndim == 2:
        position_ids = position_ids[None]
    rows = position_ids.shape[0]
    if rows in (1, 3):
        return position_ids.expand(3, -1, -1)[None].expand(num_sets, -1, -1, -1)
    if rows == 3 * num_sets + 1:
        position_ids = position_ids[1:]
    elif rows != 3 * num_sets:
        raise ValueError(
            f"position_ids has {rows} rows; with {num_sets} position set(s) expected 1, 3, {3 * num_sets} or "
            f"{3 * num_sets + 1} (text row + 3 per set)"
        )
    return position_ids.reshape(num_sets, 3, *position_ids.shape[1:])


class MultimodalRotaryEmbedding(nn.Module):
    """cos/sin for one or more (t, h, w) position sets under a :class:`~mmrope_hf.allocation.FrequencyPlan`.

    Args:
        stock (`nn.Module`): the model's rotary module (kept, and put back by ``unpatch_model``).
        plan (`FrequencyPlan`): a pair map (axis of every rotary pair) or a head map (axis of every KV head). A pair
            mapped to ``NOPE`` gets no rotation; ``plan.pair_scale`` multiplies the inv_freq of each pair.
        num_sets (`int`): number of position sets the positions carry.
        spatial_from_t (`Sequence[bool]`, *optional*): per set, whether its design stores h and w relative to t
            (``text-spatial-reset``); such sets are read as ``(t, h - t, w - t)``.
        pairing (`str`, *optional*): the stock rotary's channel pairing, ``half`` (NeoX) or ``adjacent`` (GPT-J);
            see :data:`~mmrope_hf.frequencies.apply.PAIRINGS`.
        pair_order (`Sequence[int]`, *optional*): where the stock ``inv_freq`` keeps the frequency of each pair, when
            not in order (ERNIE-4.5-VL stores them permuted for its own allocation).
    """

    pair_axes: torch.Tensor
    pair_scale: torch.Tensor | None
    spatial_from_t: torch.Tensor | None
    pair_order: torch.Tensor | None

    def __init__(
        self,
        stock: Any,
        plan: FrequencyPlan,
        num_sets: int = 1,
        spatial_from_t: Sequence[bool] = (),
        pairing: str = "half",
        pair_order: Sequence[int] | None = None,
    ):
        super().__init__()
        if pairing not in PAIRINGS:
            raise ValueError(f"unknown pairing {pairing!r}; valid choices: {', '.join(PAIRINGS)}")
        num_pairs = stock.inv_freq.shape[-1]
        if plan.pair_axes is not None and len(plan.pair_axes) != num_pairs:
            raise ValueError(f"pair map covers {len(plan.pair_axes)} pairs, the rotary has {num_pairs}")
        self.stock = stock
        self.plan = plan
        self.num_sets = num_sets
        self.pairing = pairing
        axes = plan.pair_axes if plan.pair_axes is not None else ()
        self.register_buffer("pair_axes", torch.tensor([max(a, 0) for a in axes], dtype=torch.long), persistent=False)
        scale = [0.0 if a == NOPE else f for a, f in zip(axes, plan.pair_scale or [1.0] * len(axes), strict=True)]
        scaled = any(f != 1.0 for f in scale)  # None keeps the stock path (and its bits) for every other plan
        self.register_buffer("pair_scale", torch.tensor(scale) if scaled else None, persistent=False)
        relative = [[0, int(r), int(r)] for r in list(spatial_from_t) + [False] * (num_sets - len(spatial_from_t))]
        mask = torch.tensor(relative, dtype=torch.long).view(num_sets, 3, 1, 1) if any(spatial_from_t) else None
        self.register_buffer("spatial_from_t", mask, persistent=False)
        order = None if pair_order is None else torch.tensor(list(pair_order), dtype=torch.long)
        self.register_buffer("pair_order", order, persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor):
        """``x`` only gives dtype and device; ``position_ids`` as in :func:`split_position_sets`."""
        sets = split_position_sets(position_ids, self.num_sets).to(x.device)
        if self.spatial_from_t is not None:  # (t, t + h, t + w) -> (t, h, w) for the sets that store it so
            sets = sets - sets[:, :1] * self.spatial_from_t.to(x.device)
        stock: Any = self.stock
        inv_freq = stock.inv_freq.to(device=x.device, dtype=torch.float)
        if self.pair_order is not None:  # the stock module's storage order -> pair order
            inv_freq = inv_freq[..., self.pair_order.to(x.device)]
        if self.pair_scale is not None:  # NoPE pairs (0) and scaled-base pairs
            inv_freq = inv_freq * self.pair_scale.to(x.device)
        with torch.autocast(device_type=x.device.type, enabled=False):
            freqs = sets[..., None].float() * inv_freq  # (K, 3, B, L, P)
            cos = self._recompose(freqs.cos() * stock.attention_scaling).to(dtype=x.dtype)
            sin = self._recompose(freqs.sin() * stock.attention_scaling).to(dtype=x.dtype)
        if self.num_sets == 1:
            cos, sin = cos[0], sin[0]
        if self.plan.head_axes is not None:
            tables = (
                AxisTables(cos, self.plan.head_axes, self.pairing),
                AxisTables(sin, self.plan.head_axes, self.pairing),
            )
            return tables if self.num_sets == 1 else StackedCosSin(tables)
        return (cos, sin) if self.num_sets == 1 else StackedCosSin((cos, sin))

    def _recompose(self, values: torch.Tensor) -> torch.Tensor:
        """(K, 3, B, L, P) per-axis values -> (K, B, L, 2P) under a pair map, or (K, 3, B, L, 2P) for heads, each
        pair's value on its two channels as the stock rotary lays them (``pairing``)."""
        duplicate = PAIRINGS[self.pairing].duplicate
        if self.plan.head_axes is not None:
            return duplicate(values)
        k, _, b, length, p = values.shape
        index = self.pair_axes.to(values.device).view(1, 1, 1, 1, p).expand(k, 1, b, length, p)
        return duplicate(values.gather(1, index).squeeze(1))

    def extra_repr(self) -> str:
        return f"num_sets={self.num_sets}, pairing={self.pairing}, plan={self.plan}"


class RotaryTable:
    """One frequency table of a stock rotary module, as :class:`MultimodalRotaryEmbedding` reads it (``inv_freq``,
    ``attention_scaling``, ``rope_type``): the module itself, or one layer type of a layer-typed module (Gemma 3:
    ``{layer_type}_inv_freq`` etc., called as ``rotary(x, position_ids, layer_type)``). Read at every access, so it
    follows the module across devices."""

    def __init__(self, stock: Any, layer_type: str | None = None):
        self.stock, self.layer_type = stock, layer_type

    def _read(self, name: str) -> Any:
        if self.layer_type is None:
            return getattr(self.stock, name)
        if name == "rope_type":
            return self.stock.rope_type[self.layer_type]
        return getattr(self.stock, f"{self.layer_type}_{name}")

    @property
    def inv_freq(self) -> torch.Tensor:
        return self._read("inv_freq")

    @property
    def attention_scaling(self) -> float:
        return self._read("attention_scaling")

    @property
    def rope_type(self) -> str:
        return self._read("rope_type")

    def __call__(self, x: torch.Tensor, position_ids: torch.Tensor):
        if self.layer_type is None:
            return self.stock(x, position_ids)
        return self.stock(x, position_ids, self.layer_type)


def rotary_tables(stock: Any) -> dict[str | None, RotaryTable]:
    """The frequency tables of a stock rotary: ``{None: table}`` for one ``inv_freq``, ``{layer_type: table}`` for a
    layer-typed module (one ``{layer_type}_inv_freq`` per entry of its ``layer_types``)."""
    if hasattr(stock, "inv_freq") or not hasattr(stock, "layer_types"):
        return {None: RotaryTable(stock)}
    return {layer_type: RotaryTable(stock, layer_type) for layer_type in sorted(set(stock.layer_types))}


class LayerTypedRotaryEmbedding(nn.Module):
    """A :class:`MultimodalRotaryEmbedding` per layer type, for a stock module that keeps one frequency table per
    layer type (Gemma 3: local and global theta); called as the stock one, ``rotary(x, position_ids, layer_type)``.
    Every table uses the same plan and position sets."""

    def __init__(self, stock: Any, plan: FrequencyPlan, **options: Any):
        super().__init__()
        self.stock = stock
        self.layer_tables = nn.ModuleDict(
            {str(t): MultimodalRotaryEmbedding(table, plan, **options) for t, table in rotary_tables(stock).items()}
        )

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor, layer_type: str):
        return self.layer_tables[layer_type](x, position_ids)


def multimodal_rotary(stock: Any, plan: FrequencyPlan, **options: Any) -> nn.Module:
    """The module that replaces ``stock``: a :class:`MultimodalRotaryEmbedding`, or a
    :class:`LayerTypedRotaryEmbedding` when the stock module keeps one table per layer type (``options``: those of
    :class:`MultimodalRotaryEmbedding`)."""
    if set(rotary_tables(stock)) == {None}:
        return MultimodalRotaryEmbedding(stock, plan, **options)
    return LayerTypedRotaryEmbedding(stock, plan, **options)


def probe_difference(stock: Any, rotary: Any, length: int = 16) -> str | None:
    """How ``rotary`` (from :func:`multimodal_rotary`) differs from the ``stock`` module on probe positions (t, h and
    w apart where the stock module recomposes three axes, 1D positions otherwise), table by table; ``None`` when
    cos and sin are bit-identical."""
    for layer_type, table in rotary_tables(stock).items():
        ours = rotary if layer_type is None else rotary.layer_tables[layer_type]
        device = table.inv_freq.device
        steps = torch.arange(length, device=device)
        x = torch.zeros(1, device=device)
        if hasattr(stock, "recomposition_frequencies"):
            stock_positions = torch.stack([steps, 3 * steps + 1, 5 * steps + 2])[:, None]  # (3, 1, L)
        else:
            stock_positions = (7 * steps + 3)[None]  # (1, L)
        ours_positions = stock_positions.expand(3, -1, -1) if stock_positions.ndim == 2 else stock_positions
        where = "" if layer_type is None else f" ({layer_type} layers)"
        for name, want, got in zip(("cos", "sin"), table(x, stock_positions), ours(x, ours_positions), strict=True):
            if got.shape != want.shape:
                return f"{name}{where} has shape {tuple(got.shape)}, the stock module's {tuple(want.shape)}"
            if not torch.equal(got, want):
                return f"{name}{where} differs by up to {(got - want).abs().max().item():.3g}"
    return None
