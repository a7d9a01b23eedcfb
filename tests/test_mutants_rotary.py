"""Tests that kill the mutants of mmrope_hf/frequencies/rotary.py that survived the module's tests
(scripts/mutation.py rotary; docs/mutation.md). Expectation: cos/sin written out per token and pair in float64
from the definition (angle = position on the pair's axis x inv_freq, times attention_scaling; NeoX or GPT-J channel
layout), as in tests/reference/rope_reference.py, and the layouts that ``split_position_sets`` documents."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from reference import rope_reference as ref
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from mmrope_hf.frequencies.allocation import NOPE, FrequencyPlan
from mmrope_hf.frequencies.apply import AxisTables
from mmrope_hf.frequencies.rotary import (
    LayerTypedRotaryEmbedding,
    MultimodalRotaryEmbedding,
    StackedCosSin,
    multimodal_rotary,
    probe_difference,
    rotary_tables,
    split_position_sets,
)

P = 4
INV_FREQ = [10000.0 ** (-2 * i / (2 * P)) for i in range(P)]


class Stock(nn.Module):
    """A 1D stock rotary: inv_freq, attention_scaling, rope_type, and cos/sin of (1, B, L) positions."""

    def __init__(self, inv_freq=INV_FREQ, scaling=1.0):
        super().__init__()
        self.register_buffer("inv_freq", torch.tensor(inv_freq, dtype=torch.float32), persistent=False)
        self.attention_scaling, self.rope_type = scaling, "default"

    def forward(self, x, position_ids):
        pos = position_ids if position_ids.ndim == 2 else position_ids[0]  # (B, L) as Llama's, or (1, B, L)
        freqs = pos[..., None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.attention_scaling).to(x.dtype), (emb.sin() * self.attention_scaling).to(x.dtype)


class LayerTypedStock(nn.Module):
    """Gemma 3's layout: one table per layer type, ``{type}_inv_freq``, a rope_type dict, called with the type."""

    def __init__(self):
        super().__init__()
        self.layer_types = ["sliding", "full", "sliding"]
        self.register_buffer("sliding_inv_freq", torch.tensor(INV_FREQ), persistent=False)
        self.register_buffer("full_inv_freq", torch.tensor([f / 4 for f in INV_FREQ]), persistent=False)
        self.sliding_attention_scaling, self.full_attention_scaling = 1.0, 0.5
        self.rope_type = {"sliding": "default", "full": "linear"}

    def forward(self, x, position_ids, layer_type):
        inv = getattr(self, f"{layer_type}_inv_freq")
        scaling = getattr(self, f"{layer_type}_attention_scaling")
        pos = position_ids if position_ids.ndim == 2 else position_ids[0]
        freqs = pos[..., None].float() * inv
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * scaling).to(x.dtype), (emb.sin() * scaling).to(x.dtype)


def oracle(pos_thw, axes, inv_freq=INV_FREQ, scaling=1.0, pair_scale=None, pairing="half"):
    """cos and sin lists (2P) of one token, float64."""
    angles = []
    for i, a in enumerate(axes):
        if a == NOPE:
            angles.append(0.0)
            continue
        angles.append(pos_thw[a] * inv_freq[i] * (pair_scale[i] if pair_scale else 1.0))
    if pairing == "half":
        emb = angles + angles
    else:
        emb = [a for a in angles for _ in range(2)]
    return [math.cos(a) * scaling for a in emb], [math.sin(a) * scaling for a in emb]


POSITIONS = torch.tensor([[[0, 3, 7, 2]], [[1, 5, 2, 9]], [[4, 0, 6, 3]]])  # (3, B=1, L=4), t, h, w apart


def assert_tables(cos, sin, positions, axes, atol=1e-6, **kw):
    for token in range(positions.shape[-1]):
        pos = positions[:, 0, token].tolist()
        want_cos, want_sin = oracle(pos, axes, **kw)
        torch.testing.assert_close(
            cos[0, token].double(), torch.tensor(want_cos, dtype=torch.float64), atol=atol, rtol=0
        )
        torch.testing.assert_close(
            sin[0, token].double(), torch.tensor(want_sin, dtype=torch.float64), atol=atol, rtol=0
        )


def test_split_position_sets_layouts():
    flat = torch.arange(6).view(2, 3)
    for given in (flat, flat[None]):
        out = split_position_sets(given, 2)
        assert out.shape == (2, 3, 2, 3) and all(torch.equal(out[k, a], flat) for k in range(2) for a in range(3))
    thw = torch.arange(18).view(3, 2, 3)
    out = split_position_sets(thw, 2)
    assert out.shape == (2, 3, 2, 3) and torch.equal(out[0], thw) and torch.equal(out[1], thw)
    sets = torch.arange(36).view(6, 2, 3)
    assert torch.equal(split_position_sets(sets, 2), sets.view(2, 3, 2, 3))
    with_text = torch.cat((torch.full((1, 2, 3), -1), sets))
    assert torch.equal(split_position_sets(with_text, 2), sets.view(2, 3, 2, 3))
    with pytest.raises(ValueError, match=r"position_ids has 5 rows; with 2 position set\(s\) expected 1, 3, 6 or 7"):
        split_position_sets(torch.zeros(5, 2, 3), 2)


def test_pair_plan_matches_the_definition_with_scaling_nope_and_pair_scale():
    axes = (0, 1, 2, NOPE)
    scale = (1.0, 0.5, 0.25, 1.0)
    rotary = MultimodalRotaryEmbedding(
        Stock(scaling=0.8), FrequencyPlan("x", (1, 1, 1), pair_axes=axes, pair_scale=scale)
    )
    cos, sin = rotary(torch.zeros(1), POSITIONS)
    assert cos.dtype == torch.float32 and cos.shape == (1, 4, 2 * P)
    assert_tables(cos, sin, POSITIONS, axes, scaling=0.8, pair_scale=scale)


def test_bf16_activations_get_float32_angles():
    """Angles in float32, then cast: positions large enough that bf16 angles would be far off."""
    axes = (0, 1, 2, 0)
    rotary = MultimodalRotaryEmbedding(Stock(), FrequencyPlan("x", (2, 1, 1), pair_axes=axes))
    positions = POSITIONS * 97 + 300
    cos, sin = rotary(torch.zeros(1, dtype=torch.bfloat16), positions)
    assert cos.dtype == sin.dtype == torch.bfloat16
    assert_tables(cos, sin, positions, axes, atol=2**-8)  # one bf16 rounding of a value in [-1, 1]


def test_float_positions():
    axes = (0, 1, 2, 0)
    rotary = MultimodalRotaryEmbedding(Stock(), FrequencyPlan("x", (2, 1, 1), pair_axes=axes))
    positions = POSITIONS.float() * 0.75
    cos, sin = rotary(torch.zeros(1), positions)
    assert_tables(cos, sin, positions, axes)


def test_adjacent_pairing():
    axes = (0, 1, 2, 0)
    rotary = MultimodalRotaryEmbedding(Stock(), FrequencyPlan("x", (2, 1, 1), pair_axes=axes), pairing="adjacent")
    cos, sin = rotary(torch.zeros(1), POSITIONS)
    assert_tables(cos, sin, POSITIONS, axes, pairing="adjacent")


def test_pair_order_reads_the_stock_storage_order():
    axes = (0, 1, 2, 0)
    order = (2, 0, 3, 1)  # pair i's frequency is stored at inv_freq[order[i]]
    stored = [0.0] * P
    for i, at in enumerate(order):
        stored[at] = INV_FREQ[i]
    rotary = MultimodalRotaryEmbedding(Stock(stored), FrequencyPlan("x", (2, 1, 1), pair_axes=axes), pair_order=order)
    cos, sin = rotary(torch.zeros(1), POSITIONS)
    assert_tables(cos, sin, POSITIONS, axes)


def test_spatial_from_t_reads_h_and_w_relative_to_t():
    axes = (0, 1, 2, 0)
    plan = FrequencyPlan("x", (2, 1, 1), pair_axes=axes)
    rotary = MultimodalRotaryEmbedding(Stock(), plan, num_sets=2, spatial_from_t=(False, True))
    stored = torch.cat((POSITIONS, POSITIONS + POSITIONS[:1] * torch.tensor([0, 1, 1]).view(3, 1, 1)))
    out = rotary(torch.zeros(1), stored)
    assert isinstance(out, StackedCosSin)
    for k in range(2):
        cos, sin = out.select(k)
        assert_tables(cos, sin, POSITIONS, axes)


def test_head_plan_gives_axis_tables_per_set():
    plan = FrequencyPlan("multi-head", (1, 1, 1), head_axes=(0, 1, 2))
    single = MultimodalRotaryEmbedding(Stock(scaling=0.9), plan)
    cos, sin = single(torch.zeros(1), POSITIONS)
    assert isinstance(cos, AxisTables) and cos.head_axes == (0, 1, 2) and cos.pairing == "half"
    for axis in range(3):
        assert_tables(cos.tables[axis], sin.tables[axis], POSITIONS, (axis,) * P, scaling=0.9)
    stacked = MultimodalRotaryEmbedding(Stock(), plan, num_sets=2, pairing="adjacent")
    shifted = torch.cat((POSITIONS, POSITIONS + 5))
    out = stacked(torch.zeros(1), shifted)
    assert isinstance(out, StackedCosSin)
    for k in range(2):
        cos, sin = out.select(k)
        assert isinstance(sin, AxisTables) and sin.pairing == "adjacent" and cos.tables.shape == (3, 1, 4, 2 * P)
        for axis in range(3):
            assert_tables(cos.tables[axis], sin.tables[axis], POSITIONS + 5 * k, (axis,) * P, pairing="adjacent")


def test_pair_plan_stacked_select():
    axes = (0, 1, 2, 0)
    rotary = MultimodalRotaryEmbedding(Stock(), FrequencyPlan("x", (2, 1, 1), pair_axes=axes), num_sets=2)
    out = rotary(torch.zeros(1), torch.cat((POSITIONS, POSITIONS * 2)))
    assert isinstance(out, StackedCosSin) and out[0].shape == (2, 1, 4, 2 * P)
    for k in range(2):
        cos, sin = out.select(k)
        assert_tables(cos, sin, POSITIONS * (k + 1), axes)


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"unknown pairing 'gptj'; valid choices: half, adjacent"):
        MultimodalRotaryEmbedding(Stock(), FrequencyPlan("x", (2, 1, 1), pair_axes=(0, 1, 2, 0)), pairing="gptj")
    with pytest.raises(ValueError, match=r"pair map covers 3 pairs, the rotary has 4"):
        MultimodalRotaryEmbedding(Stock(), FrequencyPlan("x", (1, 1, 1), pair_axes=(0, 1, 2)))


def test_layer_typed_tables():
    stock = LayerTypedStock()
    tables = rotary_tables(stock)
    assert list(tables) == ["full", "sliding"]
    assert torch.equal(tables["full"].inv_freq, stock.full_inv_freq)
    assert tables["full"].attention_scaling == 0.5 and tables["full"].rope_type == "linear"
    assert tables["sliding"].rope_type == "default"
    x, pos = torch.zeros(1), torch.arange(3).view(1, 1, 3)
    for name in ("full", "sliding"):
        for got, want in zip(tables[name](x, pos), stock(x, pos, name), strict=True):
            assert torch.equal(got, want)
    plain = rotary_tables(Stock())
    assert list(plain) == [None] and plain[None].rope_type == "default" and plain[None].attention_scaling == 1.0
    axes = (0, 1, 2, 0)
    rotary = multimodal_rotary(stock, FrequencyPlan("x", (2, 1, 1), pair_axes=axes))
    assert isinstance(rotary, LayerTypedRotaryEmbedding)
    cos, sin = rotary(x, POSITIONS, "full")
    assert_tables(cos, sin, POSITIONS, axes, inv_freq=[f / 4 for f in INV_FREQ], scaling=0.5)
    assert isinstance(
        multimodal_rotary(Stock(), FrequencyPlan("x", (2, 1, 1), pair_axes=axes)), MultimodalRotaryEmbedding
    )


def test_probe_difference():
    same = multimodal_rotary(Stock(), FrequencyPlan("x", (P, 0, 0), pair_axes=(0,) * P))
    assert probe_difference(Stock(), same) is None
    other = multimodal_rotary(Stock(), FrequencyPlan("x", (P, 0, 0), pair_axes=(0, 0, 0, NOPE)))
    message = probe_difference(Stock(), other)
    # probe positions 7 s + 3 for s < 16: the NoPE pair's cos differs from cos(p * inv_freq[3]) by up to this
    worst = max(abs(1 - math.cos((7 * s + 3) * INV_FREQ[3])) for s in range(16))
    assert message.startswith("cos differs by up to ")
    assert float(message.rsplit(" ", 1)[1]) == pytest.approx(worst, rel=1e-2)
    typed = multimodal_rotary(LayerTypedStock(), FrequencyPlan("x", (P, 0, 0), pair_axes=(0, 0, 0, NOPE)))
    assert probe_difference(LayerTypedStock(), typed).startswith("cos (full layers) differs by up to ")
    same_typed = multimodal_rotary(LayerTypedStock(), FrequencyPlan("x", (P, 0, 0), pair_axes=(0,) * P))
    assert probe_difference(LayerTypedStock(), same_typed) is None


def test_reference_cos_sin_agrees_with_the_oracle():
    """The oracle of this file is the reference's cos_sin for a pair map."""
    cos, sin = oracle([3, 5, 7], [0, 1, 2, 0])
    want_cos, want_sin = ref.cos_sin((3, 5, 7), [0, 1, 2, 0], INV_FREQ)
    assert cos == pytest.approx(want_cos) and sin == pytest.approx(want_sin)


def test_probe_difference_on_a_three_axis_stock_uses_distinct_t_h_w():
    """On a stock module that recomposes three axes (Qwen2-VL), a plan that only moves pairs between axes changes
    nothing for 1D positions (t = h = w): the probe must use distinct t, h and w to see it."""
    from mmrope_hf.frequencies.allocation import ALLOCATIONS
    from mmrope_hf.testing import tiny_model

    stock = tiny_model("qwen2_vl").model.language_model.rotary_emb
    pairs = stock.inv_freq.shape[-1]
    section = list(stock.mrope_section)
    own = multimodal_rotary(stock, ALLOCATIONS.get("chunked").plan(pairs, 1, section, {}, strict=False))
    assert probe_difference(stock, own) is None
    moved = multimodal_rotary(stock, ALLOCATIONS.get("interleaved").plan(pairs, 1, section, {}, strict=False))
    steps = torch.arange(16.0)
    same_1d = moved(torch.zeros(1), steps[None, None].expand(3, 1, -1))
    stock_1d = stock(torch.zeros(1), steps[None, None].expand(3, 1, -1))
    assert torch.equal(same_1d[0], stock_1d[0])  # indistinguishable on 1D positions
    assert probe_difference(stock, moved).startswith("cos differs by up to ")


# --- devices: a dispatch mode that refuses an op mixing devices (as a GPU op refuses a CPU operand) -------------


class OneDevice(TorchDispatchMode):
    """Every op must get its (non-scalar) tensors on one device, as on a GPU, where a CPU index or operand makes the
    op fail; the meta device (no data) stands in for the accelerator. ``aten.equal`` has no meta kernel: on meta
    tensors it is answered with True (same shape, no values to compare)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves = pytree.tree_leaves((args, kwargs))
        devices = {t.device for t in leaves if isinstance(t, torch.Tensor) and t.ndim > 0}
        if len(devices) > 1:
            raise RuntimeError(f"{func} mixes devices {sorted(map(str, devices))}")
        if func is torch.ops.aten.equal.default and devices == {torch.device("meta")}:
            return True
        return func(*args, **kwargs)


@pytest.fixture
def meta_autocast(monkeypatch):
    """torch.autocast refuses the meta device; the rotary only switches it off, so a no-op context stands in."""
    monkeypatch.setattr(torch, "autocast", lambda device_type, enabled=True, **kw: contextlib.nullcontext())


def test_forward_follows_the_activations_device_not_the_buffers(meta_autocast):
    """The stock module (and x) on the accelerator, our buffers (pair map, scale, order, relative mask) left on the
    CPU: every one is moved to x's device before use, and the tables come out there."""
    axes = (0, 1, 2, NOPE)
    plan = FrequencyPlan("x", (1, 1, 1), pair_axes=axes, pair_scale=(1.0, 0.5, 1.0, 1.0))
    rotary = MultimodalRotaryEmbedding(Stock(), plan, num_sets=2, spatial_from_t=(False, True), pair_order=(0, 1, 2, 3))
    rotary.stock.to("meta")
    assert rotary.pair_axes.device.type == "cpu" and rotary.pair_scale.device.type == "cpu"
    x = torch.zeros(1, device="meta", dtype=torch.bfloat16)
    with OneDevice():
        out = rotary(x, torch.cat((POSITIONS, POSITIONS)))
    cos, sin = out.select(1)
    assert cos.device.type == sin.device.type == "meta" and cos.dtype == torch.bfloat16


def test_probe_runs_on_the_stock_modules_device(meta_autocast):
    """The probe positions and x are made on the stock table's device (here meta), not the default (CPU) one."""
    stock = Stock()
    rotary = multimodal_rotary(stock, FrequencyPlan("x", (P, 0, 0), pair_axes=(0,) * P)).to("meta")
    assert stock.inv_freq.device.type == "meta"
    with OneDevice():
        assert probe_difference(stock, rotary) is None


def test_the_one_device_mode_refuses_a_cpu_operand():
    """Self-check of the mode: a CPU index into meta values, which torch itself lets through on meta."""
    with OneDevice(), pytest.raises(RuntimeError, match=r"mixes devices \['cpu', 'meta'\]"):
        torch.zeros(1, 3, 4, device="meta").gather(1, torch.zeros(1, 1, 4, dtype=torch.long))


# --- buffers -----------------------------------------------------------------------------------------------------


def test_no_buffer_reaches_the_state_dict():
    """Patching must not add keys to the model's state dict (save_pretrained would write them, from_pretrained would
    report them missing on a stock checkpoint): the state dict is the stock module's, under ``stock.``."""
    stock = Stock()
    stock.register_buffer("kept", torch.ones(2))  # a persistent stock buffer, to see it is the only key
    plan = FrequencyPlan("x", (1, 1, 1), pair_axes=(0, 1, 2, NOPE), pair_scale=(1.0, 0.5, 1.0, 1.0))
    rotary = MultimodalRotaryEmbedding(stock, plan, num_sets=2, spatial_from_t=(False, True), pair_order=(1, 0, 2, 3))
    assert all(b is not None for b in (rotary.pair_axes, rotary.pair_scale, rotary.spatial_from_t, rotary.pair_order))
    assert list(rotary.state_dict()) == ["stock.kept"]


def test_no_relative_set_keeps_no_mask_and_the_pair_map_is_an_index():
    """Without a relative set there is no mask to apply (the buffer is None); the pair map is an integer index
    buffer for every plan, the head plan's empty one included (``module.to(dtype)`` casts float buffers)."""
    plan = FrequencyPlan("x", (2, 1, 1), pair_axes=(0, 1, 2, 0))
    for relative in ((), (False,), (False, False)):
        rotary = MultimodalRotaryEmbedding(Stock(), plan, num_sets=2, spatial_from_t=relative)
        assert rotary.spatial_from_t is None
        assert rotary.pair_axes.dtype == torch.long and rotary.pair_axes.tolist() == [0, 1, 2, 0]
    heads = MultimodalRotaryEmbedding(Stock(), FrequencyPlan("multi-head", (1, 1, 1), head_axes=(0, 1, 2)))
    assert heads.pair_axes.dtype == torch.long and heads.pair_axes.numel() == 0
    assert heads.pair_scale is None and heads.spatial_from_t is None and heads.pair_order is None


def test_a_short_spatial_from_t_leaves_the_other_sets_absolute():
    axes = (0, 1, 2, 0)
    rotary = MultimodalRotaryEmbedding(Stock(), FrequencyPlan("x", (2, 1, 1), pair_axes=axes), 2, (True,))
    relative = POSITIONS + POSITIONS[:1] * torch.tensor([0, 1, 1]).view(3, 1, 1)
    out = rotary(torch.zeros(1), torch.cat((relative, POSITIONS)))
    for k in range(2):
        cos, sin = out.select(k)
        assert_tables(cos, sin, POSITIONS, axes)


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_every_pair_scaled_by_the_same_factor(factor):
    """No pair keeps 1.0: the scale must still be applied."""
    axes = (0, 1, 2, 0)
    scale = (factor,) * P
    rotary = MultimodalRotaryEmbedding(Stock(), FrequencyPlan("x", (2, 1, 1), pair_axes=axes, pair_scale=scale))
    cos, sin = rotary(torch.zeros(1), POSITIONS)
    assert_tables(cos, sin, POSITIONS, axes, pair_scale=scale)


def test_all_pairs_nope():
    axes = (NOPE,) * P
    rotary = MultimodalRotaryEmbedding(Stock(), FrequencyPlan("x", (0, 0, 0), pair_axes=axes))
    cos, sin = rotary(torch.zeros(1), POSITIONS)
    assert torch.equal(cos, torch.ones(1, 4, 2 * P)) and torch.equal(sin, torch.zeros(1, 4, 2 * P))


def test_a_pair_scale_of_the_wrong_length_is_refused():
    plan = FrequencyPlan("x", (2, 1, 1), pair_axes=(0, 1, 2, 0), pair_scale=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"zip\(\) argument 2 is shorter than argument 1"):
        MultimodalRotaryEmbedding(Stock(), plan)


# --- layer-typed and plain tables ---------------------------------------------------------------------------------


def test_layer_typed_rotary_passes_its_options_and_keeps_the_stock():
    stock = LayerTypedStock()
    axes = (0, 1, 2, 0)
    rotary = multimodal_rotary(stock, FrequencyPlan("x", (2, 1, 1), pair_axes=axes), pairing="adjacent", num_sets=2)
    assert isinstance(rotary, LayerTypedRotaryEmbedding) and rotary.stock is stock
    out = rotary(torch.zeros(1), torch.cat((POSITIONS, POSITIONS + 1)), "full")
    assert isinstance(out, StackedCosSin)
    for k in range(2):
        cos, sin = out.select(k)
        assert_tables(
            cos, sin, POSITIONS + k, axes, inv_freq=[f / 4 for f in INV_FREQ], scaling=0.5, pairing="adjacent"
        )


def test_one_inv_freq_is_one_table_even_with_layer_types():
    """A rotary with one ``inv_freq`` on a config that has ``layer_types`` (sliding/full attention, one theta) is one
    table; so is a module with neither."""
    stock = Stock()
    stock.layer_types = ["sliding_attention", "full_attention"]
    tables = rotary_tables(stock)
    assert list(tables) == [None] and tables[None].stock is stock and tables[None].layer_type is None
    assert isinstance(
        multimodal_rotary(stock, FrequencyPlan("x", (2, 1, 1), pair_axes=(0, 1, 2, 0))), MultimodalRotaryEmbedding
    )
    bare = object()
    assert list(rotary_tables(bare)) == [None]


# --- probe_difference ---------------------------------------------------------------------------------------------

SMALL = [0.004, 0.003, 0.002, 0.001]  # angles below 0.31 rad at the probe positions: no cos wraps around


class ThreeAxisStock(nn.Module):
    """A stock module that recomposes three axes (the marker Qwen2-VL's has): pair i reads axis ``axes[i]``."""

    def __init__(self, axes, inv_freq=SMALL):
        super().__init__()
        self.register_buffer("inv_freq", torch.tensor(inv_freq), persistent=False)
        self.attention_scaling, self.rope_type, self.axes = 1.0, "default", axes
        self.recomposition_frequencies = None

    def forward(self, x, position_ids):
        freqs = position_ids[..., None].float() * self.inv_freq  # (3, B, L, P)
        picked = torch.stack([freqs[a, ..., i] for i, a in enumerate(self.axes)], dim=-1)
        emb = torch.cat((picked, picked), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


@pytest.mark.parametrize("moved_to", [1, 2])
def test_probe_positions_on_a_three_axis_stock(moved_to):
    """Probe t = s, h = 3 s + 1, w = 5 s + 2 (s < 16). The stock reads t for every pair; ours moves the last pair to
    h (or w): the worst cos difference is that pair's max |cos(p_axis f) - cos(t f)|, in float64 here."""
    stock = ThreeAxisStock((0, 0, 0, 0))
    ours = multimodal_rotary(stock, FrequencyPlan("x", (3, 0, 0), pair_axes=(0, 0, 0, moved_to)))
    probe = [(s, 3 * s + 1, 5 * s + 2) for s in range(16)]
    worst = max(abs(math.cos(p[moved_to] * SMALL[3]) - math.cos(p[0] * SMALL[3])) for p in probe)
    message = probe_difference(stock, ours)
    assert message.startswith("cos differs by up to ")
    assert float(message.rsplit(" ", 1)[1]) == pytest.approx(worst, rel=2e-3)


def _sin_flipped(stock):
    def rotary(x, position_ids):
        cos, sin = stock(x, position_ids)
        return cos, -sin

    return rotary


def test_probe_names_sin_when_only_sin_differs():
    stock = Stock()
    worst = max(2 * abs(math.sin((7 * s + 3) * f)) for s in range(16) for f in INV_FREQ)
    message = probe_difference(stock, _sin_flipped(stock))
    assert message.startswith("sin differs by up to ")
    assert float(message.rsplit(" ", 1)[1]) == pytest.approx(worst, rel=2e-3)


def test_probe_names_both_shapes_when_they_differ():
    stock = Stock()

    def narrow(x, position_ids):
        return tuple(t[..., :P] for t in stock(x, position_ids))

    assert probe_difference(stock, narrow) == f"cos has shape (1, 16, {P}), the stock module's (1, 16, {2 * P})"


def test_probe_refuses_a_rotary_that_returns_more_than_cos_and_sin():
    stock = Stock()

    def three(x, position_ids):
        cos, sin = stock(x, position_ids)
        return cos, sin, sin

    with pytest.raises(ValueError, match=r"zip\(\) argument 3 is longer than arguments 1-2"):
        probe_difference(stock, three)
