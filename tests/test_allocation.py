"""Frequency maps and the rotary module, against the formulas (tests/reference) and the stock HF rotaries."""

from __future__ import annotations

import pytest
import torch
import transformers
from reference import rope_reference as ref

import mmrope_hf
from mmrope_hf.frequencies.allocation import ALLOCATIONS, chunked_pair_axes, interleaved_pair_axes
from mmrope_hf.frequencies.rotary import MultimodalRotaryEmbedding
from mmrope_hf.testing import tiny_model


def test_interleaved_24_20_20_on_64_pairs():
    axes = interleaved_pair_axes(64, [24, 20, 20])
    assert [axes.count(a) for a in range(3)] == [24, 20, 20]
    assert axes[60:] == [0, 0, 0, 0]
    assert axes[:6] == [0, 1, 2, 0, 1, 2]
    assert axes == ref.interleaved_axes(64, [24, 20, 20])


def test_chunked_16_24_24_on_64_pairs():
    axes = chunked_pair_axes(64, [16, 24, 24])
    assert axes == [0] * 16 + [1] * 24 + [2] * 24
    assert axes == ref.chunked_axes(64, [16, 24, 24])


def test_default_sections_scale_with_head_dim():
    assert ALLOCATIONS.get("interleaved").default_section(64) == (24, 20, 20)
    assert ALLOCATIONS.get("chunked").default_section(64) == (16, 24, 24)
    assert ALLOCATIONS.get("interleaved").default_section(16) == (6, 5, 5)
    assert ALLOCATIONS.get("chunked").default_section(16) == (4, 6, 6)
    for pairs in (8, 12, 16, 32, 48, 64, 80):  # every default fits exactly
        for name in ("chunked", "interleaved"):
            allocation = ALLOCATIONS.get(name)
            section = allocation.default_section(pairs)
            axes = list(allocation.plan(pairs, 8, section, {}).pair_axes)
            assert [axes.count(a) for a in range(3)] == list(section)


def test_sections_that_do_not_fit_fail_clearly():
    interleaved = ALLOCATIONS.get("interleaved")
    with pytest.raises(
        ValueError, match=r"\[16, 24, 24\] does not fit the interleaved allocation on 64 pairs.*\[22, 21, 21\]"
    ):
        interleaved.plan(64, 8, [16, 24, 24], {})
    with pytest.raises(ValueError, match=r"sums to 60, but the head has 64 rotary pairs \(head_dim 128\)"):
        ALLOCATIONS.get("chunked").plan(64, 8, [16, 24, 20], {})
    model = tiny_model("qwen2_vl")  # 16 pairs
    with pytest.raises(ValueError, match=r"\[24, 20, 20\] sums to 64, but the head has 16 rotary pairs"):
        mmrope_hf.patch_model(model, "mrope-i", mrope_section=[24, 20, 20])
    assert not mmrope_hf.is_patched(model)


def stock_rotary(cls_name: str, section):
    config = transformers.Qwen3VLTextConfig(
        hidden_size=1024,
        num_attention_heads=8,
        head_dim=128,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": list(section)},
    )
    return getattr(
        transformers.models.qwen3_vl.modeling_qwen3_vl
        if "Qwen3" in cls_name
        else transformers.models.qwen2_vl.modeling_qwen2_vl,
        cls_name,
    )(config)


@pytest.mark.parametrize(
    "cls_name, name, section",
    [("Qwen3VLTextRotaryEmbedding", "interleaved", (24, 20, 20)), ("Qwen2VLRotaryEmbedding", "chunked", (16, 24, 24))],
)
@pytest.mark.parametrize("dtype", [torch.long, torch.float32])
def test_rotary_equals_stock(cls_name, name, section, dtype):
    stock = stock_rotary(cls_name, section)
    ours = MultimodalRotaryEmbedding(stock, ALLOCATIONS.get(name).plan(64, 8, section, {}))
    gen = torch.Generator().manual_seed(0)
    positions = torch.randint(0, 5000, (3, 2, 37), generator=gen).to(dtype)
    if dtype == torch.float32:
        positions = positions + torch.rand(positions.shape, generator=gen) - 0.5
    x = torch.zeros(1, dtype=torch.float32)
    for got, want in zip(ours(x, positions), stock(x, positions), strict=True):
        assert torch.equal(got, want)


def test_rotary_float_positions_match_formula():
    stock = stock_rotary("Qwen3VLTextRotaryEmbedding", (24, 20, 20))
    plan = ALLOCATIONS.get("interleaved").plan(64, 8, (24, 20, 20), {})
    axes = list(plan.pair_axes)
    ours = MultimodalRotaryEmbedding(stock, plan)
    points = [(5.085, 8.794, -4.879), (3.0, 5.0, 4.0), (1.775, 2.552, 4.673)]
    positions = torch.tensor(points, dtype=torch.float32).T[:, None, :]
    cos, sin = ours(torch.zeros(1), positions)
    inv_freq = ref.inv_freq(128, 1e6)
    for i, point in enumerate(points):
        want_cos, want_sin = ref.cos_sin(point, axes, inv_freq)
        torch.testing.assert_close(cos[0, i].double(), torch.tensor(want_cos, dtype=torch.float64), atol=2e-6, rtol=0)
        torch.testing.assert_close(sin[0, i].double(), torch.tensor(want_sin, dtype=torch.float64), atol=2e-6, rtol=0)


def test_rotary_numeric_spot_check_of_the_spec():
    """multimodal_ropes.md section 6: image token r=2, c=1 of example (a), base 1e6, pairs 0-5."""
    stock = stock_rotary("Qwen3VLTextRotaryEmbedding", (24, 20, 20))
    ours = MultimodalRotaryEmbedding(stock, ALLOCATIONS.get("interleaved").plan(64, 8, (24, 20, 20), {}))
    for ids, angles in [
        ((3, 5, 4), [3.0, 4.029211, 2.597527, 1.569897, 2.108483, 1.359283]),
        ((3, 2, 1), [3.0, 1.611684, 0.649382, 1.569897, 0.843393, 0.339821]),
    ]:
        cos, sin = ours(torch.zeros(1), torch.tensor(ids).view(3, 1, 1))
        got = torch.atan2(sin[0, 0, :6], cos[0, 0, :6]).double()
        want = torch.remainder(torch.tensor(angles, dtype=torch.float64) + torch.pi, 2 * torch.pi) - torch.pi
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_rotary_keeps_activation_dtype_and_accepts_every_row_layout():
    stock = stock_rotary("Qwen2VLRotaryEmbedding", (16, 24, 24))
    ours = MultimodalRotaryEmbedding(stock, ALLOCATIONS.get("chunked").plan(64, 8, (16, 24, 24), {}))
    flat = torch.arange(6).view(1, 6)
    x = torch.zeros(1, dtype=torch.bfloat16)
    cos, _ = ours(x, flat)
    assert cos.dtype == torch.bfloat16 and cos.shape == (1, 6, 128)
    axes, inv_freq = ref.chunked_axes(64, [16, 24, 24]), ref.inv_freq(128, 1e6)
    want = torch.tensor([ref.cos_sin((p, p, p), axes, inv_freq)[0] for p in range(6)], dtype=torch.float64)
    atol = torch.finfo(torch.bfloat16).eps  # |cos| <= 1 rounded to bf16: half an eps, plus float32 angles
    torch.testing.assert_close(cos[0].double(), want, atol=atol, rtol=0)
    for layout in (flat[None], flat[None].expand(3, -1, -1), flat[None].expand(4, -1, -1)):
        assert torch.equal(ours(x, layout)[0], cos)
    with pytest.raises(ValueError, match="position_ids has 5 rows"):
        ours(x, flat[None].expand(5, -1, -1))
