"""The paper's baselines and ablations (issue 12): VideoRoPE, HoPE, V2PE, text spatial-reset (IL-RoPE / Omni-RoPE),
the enlarged modality interval, their frequency maps and presets.

Worked examples (a) and (b) of multimodal_ropes.md section 6 through patched models, random layouts against the
independent reference (tests/reference/baselines_reference.py), frequency maps and cos/sin, text priors, cached
decoding and ``generate``, and HoPE's seeded training-time draws.
"""

from __future__ import annotations

import doctest
import random

import pytest
import torch
import transformers
from conftest import (
    assert_cached_decoding_with_positions,
    assert_decoding_from_rope_deltas,
    assert_generate_equals_teacher_forced,
    logits,
    random_rows,
    reference_layout,
)
from oracle_forward import float32_atol, oracle_logits
from reference import baselines_reference as ref

import mmrope_hf
from mmrope_hf.config import load_preset
from mmrope_hf.frequencies import allocation
from mmrope_hf.frequencies.allocation import ALLOCATIONS
from mmrope_hf.frequencies.rotary import MultimodalRotaryEmbedding
from mmrope_hf.positions import baselines
from mmrope_hf.testing import FAMILIES, build_inputs, tiny_model

NEW_PRESETS = [
    "videorope",
    "hope",
    "v2pe",
    "ilrope",
    "omnirope",
    "ablation-3d",
    "ablation-diagonal",
    "ablation-modality-interval",
    "ablation-text-spatial-reset",
    "ablation-scaled-base",
    "ablation-videorope-freq",
    "ablation-ilrope-freq",
]
BREAK_TEXT_PRIORS = {"hope", "ilrope", "omnirope", "ablation-text-spatial-reset", "ablation-scaled-base"}
KEYS = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "attention_mask")
ATOL = 1e-5


def rope_index(model, inputs):
    return model.model.get_rope_index(inputs["input_ids"], **{k: inputs.get(k) for k in KEYS})


def patched(family, scheme, **options):
    return mmrope_hf.patch_model(tiny_model(family), scheme, **options)


def effective(positions, design):
    """What the rotary reads: text-spatial-reset stores (t, t + h, t + w)."""
    if design != "text-spatial-reset":
        return positions
    return torch.cat([positions[:1], positions[1:] - positions[:1]])


def assert_tokens(positions, expected, atol=ATOL):
    """``positions`` (3, n) against a list of (t, h, w) (numbers or Fractions)."""
    want = torch.tensor([[float(v) for v in p] for p in expected], dtype=torch.float64).T
    assert positions.shape == want.shape
    torch.testing.assert_close(positions.double(), want, atol=atol, rtol=0)


def txt(*ps, reset=False):
    return [(p, 0, 0) if reset else (p, p, p) for p in ps]


# --- worked examples (multimodal_ropes.md section 6) -------------------------------------------------------------

EXAMPLE_A = [[2, ("image", 1, 8, 8), 1]]  # x0 x1 <vs> | 4x4 image | <ve> x4
GRID = [(r, c) for r in range(4) for c in range(4)]
EXAMPLE_B = [[1, ("video", 3, 4, 4), 1]]  # x0 <vs> | 3 groups of 2x2 | <ve> x3, one block (Qwen2-VL)
CUBE = [(g, r, c) for g in range(3) for r in range(2) for c in range(2)]

CASES_A = [  # scheme, options, design, tokens (effective), delta
    ("videorope", {}, "videorope", txt(0, 1, 2) + [(3, 2 + r, 2 + c) for r, c in GRID] + txt(4, 5), -15),
    ("ablation-diagonal", {}, "videorope", txt(0, 1, 2) + [(3, 2 + r, 2 + c) for r, c in GRID] + txt(4, 5), -15),
    ("hope", {}, "hope", txt(0, 1, 2) + [(3, 2 + r, 2 + c) for r, c in GRID] + txt(4, 5), -15),
    ("v2pe", {}, "v2pe", txt(0, 1, 2) + [(3 + 4 * r + c,) * 3 for r, c in GRID] + txt(19, 20), 0),
    (
        "v2pe",
        {"visual_stride": 1},
        "v2pe",
        txt(0, 1, 2) + [(2 + (k + 1) / 16,) * 3 for k in range(16)] + txt(4, 5),
        -15,
    ),
    (
        "ablation-text-spatial-reset",
        {},
        "text-spatial-reset",
        txt(0, 1, 2, reset=True) + [(3, r, c) for r, c in GRID] + txt(7, 8, reset=True),
        -12,
    ),
    (
        "ilrope",
        {},
        "text-spatial-reset",
        txt(0, 1, 2, reset=True) + [(3, r, c) for r, c in GRID] + txt(7, 8, reset=True),
        -12,
    ),
    (
        "ablation-modality-interval",
        {},
        "modality-interval",
        txt(0, 1, 2) + [(3, r, c) for r, c in GRID] + txt(19, 20),
        0,
    ),
    # the reference repo's ILRoPE / OmniRoPE keep text on the diagonal: spatial-reset numbers
    (
        "omnirope",
        {"position": "spatial-reset"},
        "spatial-reset",
        txt(0, 1, 2) + [(3, r, c) for r, c in GRID] + txt(7, 8),
        -12,
    ),
]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "scheme, options, design, expected, delta", CASES_A, ids=[f"{c[0]}{c[1] or ''}" for c in CASES_A]
)
def test_worked_example_a(family, scheme, options, design, expected, delta):
    positions, deltas = rope_index(patched(family, scheme, **options), build_inputs(family, EXAMPLE_A))
    assert_tokens(effective(positions[:, 0], design), expected)
    assert deltas.tolist() == [[delta]]
    floats = design in ("videorope", "hope", "v2pe")
    assert positions.dtype == (torch.float32 if floats else torch.long)


CASES_B = [
    (
        "videorope",
        {},
        "videorope",
        txt(0, 1) + [(2 + 2 * g, 2 + 2 * g + r, 2 + 2 * g + c) for g, r, c in CUBE] + txt(7, 8),
        -7,
    ),
    (
        "videorope",
        {"temporal_stride": 1},
        "videorope",
        txt(0, 1) + [(2 + g, 2 + g + r, 2 + g + c) for g, r, c in CUBE] + txt(5, 6),
        -9,
    ),
    (
        "hope",
        {"temporal_stride": 1.25},
        "hope",  # the spec's draw s = 1.25, here as the inference stride
        txt(0, 1) + [(2 + 1.25 * g, 2 + 1.25 * g + r, 2 + 1.25 * g + c) for g, r, c in CUBE] + txt(5.5, 6.5),
        -8.5,
    ),
    ("v2pe", {}, "v2pe", txt(0, 1) + [(1 + (k + 1) * 16 / 12,) * 3 for k in range(12)] + txt(18, 19), 4),
    (
        "ablation-text-spatial-reset",
        {},
        "text-spatial-reset",
        txt(0, 1, reset=True) + [(2 + g, r, c) for g, r, c in CUBE] + txt(5, 6, reset=True),
        -9,
    ),
    (
        "ablation-modality-interval",
        {},
        "modality-interval",
        txt(0, 1) + [(2 + g, r, c) for g, r, c in CUBE] + txt(14, 15),
        0,
    ),
]


@pytest.mark.parametrize(
    "scheme, options, design, expected, delta", CASES_B, ids=[f"{c[0]}{c[1] or ''}" for c in CASES_B]
)
def test_worked_example_b_qwen2_vl(scheme, options, design, expected, delta):
    positions, deltas = rope_index(patched("qwen2_vl", scheme, **options), build_inputs("qwen2_vl", EXAMPLE_B))
    assert_tokens(effective(positions[:, 0], design), expected)
    assert deltas.tolist() == [[delta]]


def test_text_spatial_reset_is_stored_relative_to_t():
    positions, _ = rope_index(patched("qwen2_vl", "ablation-text-spatial-reset"), build_inputs("qwen2_vl", EXAMPLE_A))
    assert_tokens(positions[:, 0], txt(0, 1, 2) + [(3, 3 + r, 3 + c) for r, c in GRID] + txt(7, 8))


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_text_spatial_reset_shares_t_rows_and_deltas_with_spatial_reset(family):
    rows = [[3, ("video", 3, 4, 4), 2, ("image", 1, 6, 4), 1], [1, ("image", 1, 2, 8), 5]]
    inputs = build_inputs(family, rows)
    ours, our_deltas = rope_index(patched(family, "ablation-text-spatial-reset"), inputs)
    stock, stock_deltas = rope_index(patched(family, "mrope-i"), inputs)
    mask = inputs["attention_mask"].bool()
    assert torch.equal(ours[0], stock[0]) and torch.equal(our_deltas, stock_deltas)
    visual = (inputs["mm_token_type_ids"] > 0) & mask
    assert torch.equal(effective(ours, "text-spatial-reset")[1:, visual], stock[1:, visual])
    assert (effective(ours, "text-spatial-reset")[1:, ~visual & mask] == 0).all()


# --- random layouts against the independent reference ------------------------------------------------------------


DESIGN_CASES = [
    ("videorope", {"temporal_stride": 2.0}),
    ("videorope", {"temporal_stride": 0.75}),
    ("hope", {"temporal_stride": 1.25}),
    ("v2pe", {"visual_stride": 16}),
    ("v2pe", {"visual_stride": 3}),
    ("text-spatial-reset", {"temporal_stride": 0.5}),
    ("text-spatial-reset", {"temporal_stride": 2.0}),
    ("modality-interval", {"temporal_stride": 1.0}),
    ("modality-interval", {"temporal_stride": 7.0}),
]


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
@pytest.mark.parametrize("design, options", DESIGN_CASES, ids=[f"{d}{o}" for d, o in DESIGN_CASES])
def test_random_layouts_match_reference(family, design, options):
    rows = random_rows(random.Random(f"{family}{design}{options}"), 3, max_width=4)
    model = patched(family, "mrope-i", position=design, **options)
    inputs = build_inputs(family, rows)
    positions, deltas = rope_index(model, inputs)
    stride = options.get("temporal_stride", 1.0)
    for b, row in enumerate(rows):
        ids, following = ref.positions(reference_layout(family, row), design, stride, options.get("visual_stride", 16))
        keep = inputs["attention_mask"][b].bool()
        assert_tokens(positions[:, b, keep], ref.stored(ids, design))
        assert (positions[:, b, ~keep] == 0).all()
        assert deltas[b, 0].item() == pytest.approx(float(following) - len(ids), abs=1e-5)


def test_module_doctests():
    for module in (baselines, allocation):
        assert doctest.testmod(module).failed == 0


# --- frequency maps --------------------------------------------------------------------------------------------------


def axes(name, pairs, section=None, **options):
    return list(ALLOCATIONS.get(name).plan(pairs, 8, section, options).pair_axes)


def test_videorope_maps_on_64_pairs():
    official = axes("videorope", 64)
    assert official == ref.videorope_official_axes(64, [16, 24, 24])
    assert official[:4] == [1, 2, 1, 2] and official[47:49] == [2, 0] and official[48:] == [0] * 16
    repo = axes("videorope", 64, videorope_layout="multimodal-ropes")
    assert repo == ref.videorope_repo_axes(64, [16, 24, 24])
    assert [repo.count(a) for a in range(3)] == [17, 24, 23] and repo[:3] == [0, 1, 2]
    assert axes("videorope", 64, temporal_nope=True) == ref.hope_axes(official)
    assert axes("videorope", 64, videorope_layout="multimodal-ropes", temporal_nope=True) == ref.hope_axes(repo)


def test_default_sections_scale_to_16_pairs():
    assert axes("videorope", 16) == ref.videorope_official_axes(16, [4, 6, 6])
    assert axes("interleaved-reserved-t", 16) == ref.reserved_t_axes(16, 4)
    assert axes("interleaved-reserved-t", 64) == ref.reserved_t_axes(64, 16)
    assert ALLOCATIONS.get("interleaved-reserved-t").default_section(64) == (32, 16, 16)
    assert axes("interleaved-scaled-base", 16) == axes("interleaved", 16)


def test_sections_that_do_not_fit_fail_clearly():
    with pytest.raises(ValueError, match=r"sums to 68, but the head has 64 rotary pairs.*\[16, 24, 24\]"):
        axes("videorope", 64, [16, 24, 28])
    assert [axes("videorope", 64, [16, 20, 28]).count(a) for a in range(3)] == [16, 20, 28]  # W takes the rest
    with pytest.raises(ValueError, match=r"sums to 60, but the head has 64 rotary pairs.*\[16, 24, 24\]"):
        axes("videorope", 64, [16, 24, 20], videorope_layout="multimodal-ropes")
    model = tiny_model("qwen2_vl")
    with pytest.raises(ValueError, match=r"\[32, 16, 16\] sums to 64, but the head has 16 rotary pairs"):
        mmrope_hf.patch_model(model, "ilrope", mrope_section=[32, 16, 16])
    assert not mmrope_hf.is_patched(model)


def stock_rotary(base=1e6):
    config = transformers.Qwen3VLTextConfig(
        hidden_size=1024,
        num_attention_heads=8,
        head_dim=128,
        rope_parameters={"rope_type": "default", "rope_theta": base, "mrope_section": [24, 20, 20]},
    )
    return transformers.models.qwen3_vl.modeling_qwen3_vl.Qwen3VLTextRotaryEmbedding(config)


@pytest.mark.parametrize(
    "name, options, spatial_base",
    [
        ("videorope", {"temporal_nope": True}, None),
        ("videorope", {"videorope_layout": "multimodal-ropes", "temporal_nope": True}, None),
        ("interleaved-reserved-t", {}, None),
        ("interleaved-scaled-base", {"spatial_base_scale": 0.01}, 1e4),
        ("interleaved-scaled-base", {"spatial_base_scale": 3.0}, 3e6),
    ],
)
@pytest.mark.parametrize("relative", [False, True])
def test_rotary_matches_reference(name, options, spatial_base, relative):
    plan = ALLOCATIONS.get(name).plan(64, 8, None, options)
    ours = MultimodalRotaryEmbedding(stock_rotary(), plan, spatial_from_t=[relative])
    gen = torch.Generator().manual_seed(0)
    positions = torch.randint(0, 60, (3, 1, 9), generator=gen).float() + torch.rand(3, 1, 9, generator=gen)
    cos, sin = ours(torch.zeros(1), positions)
    for j in range(9):
        t, h, w = positions[:, 0, j].double().tolist()
        pos = (t, h - t, w - t) if relative else (t, h, w)
        want_cos, want_sin = ref.cos_sin(pos, list(plan.pair_axes), 1e6, 128, spatial_base)
        torch.testing.assert_close(cos[0, j].double(), torch.tensor(want_cos, dtype=torch.float64), atol=2e-5, rtol=0)
        torch.testing.assert_close(sin[0, j].double(), torch.tensor(want_sin, dtype=torch.float64), atol=2e-5, rtol=0)


def test_nope_pairs_are_exactly_unrotated_and_the_rest_is_stock():
    stock = stock_rotary()
    plan = ALLOCATIONS.get("videorope").plan(64, 8, None, {"temporal_nope": True})
    positions = torch.arange(40).view(1, 1, 40).expand(3, 1, 40).clone()
    cos, sin = MultimodalRotaryEmbedding(stock, plan)(torch.zeros(1), positions)
    stock_cos, stock_sin = stock(torch.zeros(1), positions)  # text: every axis reads the same position
    nope = torch.tensor([a == allocation.NOPE for a in plan.pair_axes]).repeat(2)
    assert (cos[..., nope] == 1).all() and (sin[..., nope] == 0).all()
    assert torch.equal(cos[..., ~nope], stock_cos[..., ~nope]) and torch.equal(sin[..., ~nope], stock_sin[..., ~nope])


# --- presets: text priors, cached decoding, generate -------------------------------------------------------------


def test_presets_resolve_and_say_what_they_are():
    assert set(NEW_PRESETS) <= set(mmrope_hf.available_schemes())
    for name in NEW_PRESETS:
        assert len(load_preset(name)["description"]) > 100
        config = mmrope_hf.resolve_config(name)
        assert mmrope_hf.resolve_config(config.to_dict()) == config
    hope = mmrope_hf.resolve_config("hope")
    assert (hope.option("temporal_stride_choices"), hope.option("seed"), hope.option("temporal_nope")) == (
        (0.5, 0.75, 1.0, 1.25, 1.5),
        0,
        True,
    )


TEXT = [[64]]  # long enough for NoPE on the lowest-frequency pairs (HoPE) to show: about 6e-4 on the logits


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_text_only_logits_are_stock_exactly_when_the_scheme_keeps_text_priors(family):
    inputs = build_inputs(family, TEXT)
    stock = logits(tiny_model(family), inputs)
    for scheme in NEW_PRESETS:
        got = logits(patched(family, scheme), inputs)
        if scheme in BREAK_TEXT_PRIORS:  # and give what the references make of text: the oracle forward
            assert (got - stock).abs().max() > 1e-4, scheme
            want = oracle_logits(family, TEXT, inputs, scheme)
            torch.testing.assert_close(got, want, atol=float32_atol(want), rtol=0, msg=scheme)
        else:
            assert torch.equal(got, stock), scheme


def test_each_prior_breaking_piece_alone_changes_text():
    inputs = build_inputs("qwen2_5_vl", TEXT)
    stock = logits(tiny_model("qwen2_5_vl"), inputs)
    for scheme, options, same_as in [  # same_as: the preset of the same recipe on text, for the oracle
        ("videorope", {"temporal_nope": True}, "hope"),  # HoPE's allocation; text has no stride to differ by
        ("mrope-i", {"position": "text-spatial-reset"}, "ablation-text-spatial-reset"),
        ("mrope-i", {"frequency": "interleaved-scaled-base"}, "ablation-scaled-base"),
    ]:
        got = logits(patched("qwen2_5_vl", scheme, **options), inputs)
        assert (got - stock).abs().max() > 1e-4
        want = oracle_logits("qwen2_5_vl", TEXT, inputs, same_as)
        torch.testing.assert_close(got, want, atol=float32_atol(want), rtol=0, msg=f"{scheme} {options}")
    assert torch.equal(
        logits(patched("qwen2_5_vl", "mrope-i", frequency="interleaved-scaled-base", spatial_base_scale=1.0), inputs),
        stock,
    )


VIDEO_ROWS = [[3, ("video", 3, 4, 4), 2, ("image", 1, 4, 6), 2], [5, ("image", 1, 6, 4), 4]]
DECODING = [pytest.param(s, {}, id=s) for s in NEW_PRESETS] + [
    pytest.param("mrope", {"layers": ["text-spatial-reset", "videorope"]}, id="two-sets-text-reset-diagonal"),
]
QWEN3_DECODING = ("videorope", "hope", "v2pe", "ablation-text-spatial-reset", "ablation-modality-interval")


@pytest.mark.parametrize(
    "family, scheme, options",
    [pytest.param("qwen2_5_vl", *p.values, id=f"qwen2_5_vl-{p.id}") for p in DECODING]
    + [pytest.param("qwen3_vl", s, {}, id=f"qwen3_vl-{s}") for s in QWEN3_DECODING],
)
def test_prefill_then_cached_decoding_equals_full_forward(family, scheme, options):
    assert_cached_decoding_with_positions(patched(family, scheme, **options), build_inputs(family, VIDEO_ROWS))


@pytest.mark.parametrize(
    "family, scheme, options",
    [pytest.param("qwen2_5_vl", *p.values, id=f"qwen2_5_vl-{p.id}") for p in DECODING]
    + [pytest.param("qwen3_vl", s, {}, id=f"qwen3_vl-{s}") for s in QWEN3_DECODING],
)
def test_full_forward_equals_the_oracle(family, scheme, options):
    """The full forward the decoding tests compare with: the stock model fed cos/sin from baselines_reference's
    positions and pair maps (tests/oracle_forward.py), left-padded videos and images."""
    inputs = build_inputs(family, VIDEO_ROWS)
    real = inputs["attention_mask"].bool()
    want = oracle_logits(family, VIDEO_ROWS, inputs, scheme, **options)[real]
    got = logits(patched(family, scheme, **options), inputs)[real]
    torch.testing.assert_close(got, want, atol=float32_atol(want), rtol=0)


@pytest.mark.parametrize("scheme, options", DECODING)
def test_decoding_from_rope_deltas_equals_full_forward(scheme, options):
    """No position_ids: decoding adds the stored rope_deltas (float for the diagonal and V2PE designs)."""
    model = patched("qwen2_5_vl", scheme, **options)
    assert_decoding_from_rope_deltas(model, build_inputs("qwen2_5_vl", VIDEO_ROWS[:1]))


@pytest.mark.parametrize("scheme", ["ablation-text-spatial-reset", "hope", "v2pe", "videorope"])
def test_generate_equals_teacher_forced_forward(scheme):
    """generate adds 1 per token to every row: text-spatial-reset's generated text still reads (p, 0, 0)."""
    assert_generate_equals_teacher_forced(patched("qwen2_5_vl", scheme), build_inputs("qwen2_5_vl", VIDEO_ROWS))


# --- HoPE: seeded draws in training mode, fixed stride in eval mode -------------------------------------------------

HOPE_ROWS = [[2, ("video", 3, 4, 4), 1, ("video", 2, 4, 6), 1, ("video", 3, 2, 2), 1]]


def block_strides(positions, inputs):
    """The temporal step of every multi-group video block of row 0, read off the t row."""
    t, types = positions[0, 0], inputs["mm_token_type_ids"][0].tolist()
    starts = [i for i in range(len(types)) if types[i] == 2 and (i == 0 or types[i - 1] != 2)]
    frame_sizes = [h * w // 4 for _, h, w in inputs["video_grid_thw"].tolist()]  # tokens per group after the merge
    return [round(float(t[start + size] - t[start]), 4) for start, size in zip(starts, frame_sizes, strict=True)]


def hope_run(seed, calls=3):
    model = patched("qwen2_vl", "hope", seed=seed).train()
    inputs = build_inputs("qwen2_vl", HOPE_ROWS)
    return model, inputs, [rope_index(model, inputs) for _ in range(calls)]


def test_hope_training_draws_are_reproducible_under_a_seed():
    rng_state, py_state = torch.get_rng_state(), random.getstate()
    _, inputs, first = hope_run(seed=7)
    _, _, again = hope_run(seed=7)
    _, _, other = hope_run(seed=8)
    for (p, d), (q, e) in zip(first, again, strict=True):
        assert torch.equal(p, q) and torch.equal(d, e)
    draws = [block_strides(p, inputs) for p, _ in first]
    assert all(s in (0.5, 0.75, 1.0, 1.25, 1.5) for row in draws for s in row)
    assert len({tuple(row) for row in draws}) > 1  # a new draw at every call
    assert any(not torch.equal(p, q) for (p, _), (q, _) in zip(first, other, strict=True))
    assert torch.equal(torch.get_rng_state(), rng_state) and random.getstate() == py_state  # no global randomness


def test_hope_is_fixed_in_eval_mode_and_custom_choices_are_used():
    model, inputs, _ = hope_run(seed=7)
    model.eval()
    positions = [rope_index(model, inputs) for _ in range(3)]
    assert all(torch.equal(p, positions[0][0]) for p, _ in positions)
    assert block_strides(positions[0][0], inputs) == [1.0, 1.0, 1.0]
    assert torch.equal(positions[0][0], rope_index(patched("qwen2_vl", "videorope", temporal_stride=1.0), inputs)[0])
    model = patched("qwen2_vl", "hope", temporal_stride_choices=[3], temporal_stride=0.5).train()
    assert block_strides(rope_index(model, inputs)[0], inputs) == [3.0, 3.0, 3.0]
    assert block_strides(rope_index(model.eval(), inputs)[0], inputs) == [0.5, 0.5, 0.5]


def test_hope_training_forward_is_reproducible_and_reaches_the_logits():
    inputs = build_inputs("qwen2_vl", HOPE_ROWS)
    outs = {}
    for seed in (7, 7, 8):
        model = patched("qwen2_vl", "hope", seed=seed).train()
        with torch.no_grad():
            outs.setdefault(seed, []).append(model(**inputs).logits)
    assert torch.equal(outs[7][0], outs[7][1])
    assert not torch.equal(outs[7][0], outs[8][0])
    # With one choice the draw is known: the training forward is the oracle's HoPE at that stride.
    model = patched("qwen2_vl", "hope", temporal_stride_choices=[1.25]).train()
    with torch.no_grad():
        got = model(**inputs).logits
    want = oracle_logits("qwen2_vl", HOPE_ROWS, inputs, "hope", stride=1.25)
    torch.testing.assert_close(got, want, atol=float32_atol(want), rtol=0)


# --- options ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scheme, options, message",
    [
        (
            "hope",
            {"temporal_stride_choices": []},
            r"temporal_stride_choices must be a non-empty list of positive numbers",
        ),
        ("hope", {"temporal_stride_choices": [1, 0]}, r"temporal_stride_choices must be a positive number, got 0"),
        ("hope", {"temporal_stride_choices": "1.0"}, r"temporal_stride_choices must be a non-empty list"),
        ("hope", {"seed": -1}, r"seed must be a non-negative integer, got -1"),
        ("hope", {"seed": True}, r"seed must be a non-negative integer, got True"),
        ("v2pe", {"visual_stride": 0}, r"visual_stride must be a positive number, got 0"),
        (
            "videorope",
            {"videorope_layout": "jjjymmm"},
            r"unknown videorope_layout 'jjjymmm'; valid choices: official, multimodal-ropes",
        ),
        ("videorope", {"temporal_nope": "yes"}, r"temporal_nope must be true or false"),
        ("ablation-scaled-base", {"spatial_base_scale": 0}, r"spatial_base_scale must be a positive number"),
        ("videorope", {"seed": 1}, r"unknown option\(s\) seed for scheme 'videorope'"),
    ],
)
def test_bad_options_name_the_value(scheme, options, message):
    with pytest.raises(ValueError, match=message):
        mmrope_hf.resolve_config(scheme, **options)
