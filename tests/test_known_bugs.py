"""Behaviours that realistic hand-placed bugs broke without any test failing (issue 20). Each test compares with an
independent expectation (a worked example, the reference in tests/reference, the stock model, or float64 maths) and
was seen failing on the broken code; docs/testing.md says how each was broken."""

from __future__ import annotations

import json
import math
import os
import stat

import pytest
import torch
from conftest import greedy, logits, reference_layout
from reference import rope_reference as ref

import mmrope_hf
from mmrope_hf.frequencies.allocation import ALLOCATIONS, NOPE, interleaved_pair_axes
from mmrope_hf.frequencies.apply import AxisTables, apply_per_head_axis
from mmrope_hf.integrations.cli.cli import main as cli
from mmrope_hf.integrations.training import MMRopeCollator
from mmrope_hf.patching.state import find_state
from mmrope_hf.positions.baselines import v2pe
from mmrope_hf.positions.design import PositionOptions
from mmrope_hf.positions.layout import VisualBlock
from mmrope_hf.testing import build_inputs, tiny_config, tiny_model

T, H, W = 0, 1, 2
TWO_SETS = {"layers": ["vanilla", "spatial-reset"]}  # K = 2 position sets whose decode deltas differ per row


# --- frequency maps -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, expected",
    [  # 16 pairs; H at i % 3 == 1 and i < 3 s_h, W at i % 3 == 2 and i < 3 s_w, T elsewhere (worked by hand)
        ((9, 5, 2), [T, H, W, T, H, W, T, H, T, T, H, T, T, H, T, T]),
        ((9, 2, 5), [T, H, W, T, H, W, T, T, W, T, T, W, T, T, W, T]),
    ],
)
def test_interleaved_map_reads_each_axis_limit_from_its_own_section(section, expected):
    assert interleaved_pair_axes(16, section) == expected
    assert ALLOCATIONS.get("interleaved").plan(16, 4, section, {}).pair_axes == tuple(expected)


def test_mhrope_nope_heads_are_the_last_kv_heads():
    plan = ALLOCATIONS.get("multi-head").plan(16, 4, (1, 1, 1), {"nope_heads": 1})
    assert plan.head_axes == (T, H, W, NOPE)
    # Applied: KV head 3 and its query heads 6, 7 pass through; head j rotates with axis j's angles (float64 maths).
    positions = torch.tensor([[5, 9], [40, 2], [700, 31]])  # (t, h, w) of 2 tokens, every axis apart
    inv = torch.tensor(ref.inv_freq(8, 10000.0), dtype=torch.float64)
    angles = torch.cat([positions[..., None] * inv] * 2, dim=-1)  # (3, L, 8)
    tables = [AxisTables(f(angles)[:, None].float(), plan.head_axes) for f in (torch.cos, torch.sin)]
    q = torch.randn(1, 8, 2, 8, generator=torch.Generator().manual_seed(0))
    k = torch.randn(1, 4, 2, 8, generator=torch.Generator().manual_seed(1))
    q_out, k_out = apply_per_head_axis(q, k, *tables)
    for head, axis in enumerate(plan.head_axes):
        for x, out in ((k[0, head], k_out[0, head]), (q[0, 2 * head], q_out[0, 2 * head])):
            want = x.double() if axis == NOPE else x.double() * angles[axis].cos() + ref_rotate(x) * angles[axis].sin()
            torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=0)


def ref_rotate(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor([ref.rotate_half(row) for row in x.double().tolist()], dtype=torch.float64)


# --- the rotary ---------------------------------------------------------------------------------------------------


def test_rotary_angles_are_float32_under_bf16_activations():
    """cos/sin of large, distinct (t, h, w) positions within bf16 rounding of float64 maths (bf16 angles are off by
    whole radians there: bf16 spaces numbers near 4000 by 16)."""
    model = mmrope_hf.patch_model(tiny_model("qwen3_vl"), "mrope-i")
    rotary, section = model.model.language_model.rotary_emb, (6, 5, 5)
    steps = torch.arange(4)
    positions = torch.stack([4000 + 7 * steps, 2500 + 3 * steps, 1200 + 5 * steps])[:, None]  # (3, 1, L)
    cos, sin = rotary(torch.zeros(1, dtype=torch.bfloat16), positions)
    assert cos.dtype == torch.bfloat16
    axes, inv = ref.interleaved_axes(16, section), ref.inv_freq(32, 10000.0)
    want = torch.tensor([ref.cos_sin(ids, axes, inv) for ids in positions[:, 0].T.tolist()], dtype=torch.float64)
    atol = torch.finfo(torch.bfloat16).eps / 2 + 4000 * torch.finfo(torch.float32).eps  # bf16 output, fp32 angle
    torch.testing.assert_close(cos[0].double(), want[:, 0], atol=atol, rtol=0)
    torch.testing.assert_close(sin[0].double(), want[:, 1], atol=atol, rtol=0)


def test_patched_rotary_keeps_yarn_attention_scaling():
    rope = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024, "rope_theta": 10000.0}
    model = tiny_model("qwen2_vl", rope_parameters={**rope, "mrope_section": [4, 6, 6]})
    stock = model.model.language_model.rotary_emb
    assert stock.attention_scaling == pytest.approx(0.1 * math.log(4.0) + 1)  # YaRN's mscale
    inputs = build_inputs("qwen2_vl", [[9]])
    with torch.no_grad():
        want = model(**inputs).logits
        positions = torch.arange(12).view(1, 1, 12).expand(3, 1, 12)
        stock_cos, stock_sin = stock(torch.zeros(1), positions)
        mmrope_hf.patch_model(model, "mrope-i")
        cos, sin = model.model.language_model.rotary_emb(torch.zeros(1), positions)
        torch.testing.assert_close(cos, stock_cos, atol=1e-6, rtol=0)
        torch.testing.assert_close(sin, stock_sin, atol=1e-6, rtol=0)
        torch.testing.assert_close(model(**inputs).logits, want, atol=1e-5, rtol=0)


# --- position designs and builders ----------------------------------------------------------------------------------


def test_v2pe_text_rounds_up_after_a_fractional_block():
    """2 text, a block of 2 tokens spanning 2.5 after position 1 (1 + 1.25, 1 + 2.5), then text at ceil(3.5) + 1."""
    row = v2pe([2, VisualBlock(1, (1, 1, 2), 1.0), 2], PositionOptions(design={"visual_stride": 2.5}))
    assert row.positions[0].tolist() == [0.0, 1.0, 2.25, 3.5, 5.0, 6.0]
    assert row.next_position == 7.0
    ids = torch.zeros(1, 6, dtype=torch.long)
    types = torch.tensor([[0, 0, 1, 1, 0, 0]])
    positions, deltas = mmrope_hf.build_position_ids(
        "v2pe", ids, types, image_grid_thw=torch.tensor([[1, 2, 4]]), visual_stride=2.5
    )
    assert positions[:, 0].tolist() == [[0.0, 1.0, 2.25, 3.5, 5.0, 6.0]] * 3
    assert deltas.tolist() == [[1.0]]


VIDEOS = [[2, ("video", 3, 4, 4), 1], [1, ("video", 2, 2, 4), 2, ("video", 3, 2, 2), 1, ("video", 2, 4, 2), 1]]
SECONDS = [1.5, 0.5, 1.0, 2.0]  # x tokens_per_second 2: temporal steps 3, 1, 2, 4


def reference_positions(rows: list, design: str, strides: list[float], padded: int) -> tuple[list, list]:
    """Left-padded reference rows (t, h, w lists) and next-position deltas of Qwen2.5-VL rows."""
    layouts = [reference_layout("qwen2_5_vl", row) for row in rows]
    per_row, deltas, used = [], [], 0
    for layout in layouts:
        count = sum(1 for item in layout if item[0] != "text")
        ids, following = ref.positions(layout, design, strides[used : used + count])
        used += count
        per_row.append([[0, 0, 0]] * (padded - len(ids)) + [list(p) for p in ids])
        deltas.append(following - len(ids))
    return [list(map(list, zip(*row, strict=True))) for row in per_row], deltas


@pytest.mark.parametrize("rows", [VIDEOS[:1], VIDEOS], ids=["per-row path", "loop-free path"])
def test_batch_builder_reads_second_per_grid_ts(rows):
    seconds = SECONDS[: sum(1 for row in rows for item in row if not isinstance(item, int))]
    inputs = build_inputs("qwen2_5_vl", rows, second_per_grid_ts=seconds)
    positions, deltas = mmrope_hf.build_position_ids(
        "mrope",
        inputs["input_ids"],
        inputs["mm_token_type_ids"],
        video_grid_thw=inputs["video_grid_thw"],
        attention_mask=inputs["attention_mask"],
        second_per_grid_ts=inputs["second_per_grid_ts"],
        tokens_per_second=2,
    )
    want, want_deltas = reference_positions(rows, "mrope", [2 * s for s in seconds], inputs["input_ids"].shape[1])
    assert positions.permute(1, 0, 2).tolist() == want
    assert deltas[:, 0].tolist() == want_deltas


def samples(rows: list, seconds: list[float]) -> list[dict]:
    out, used = [], 0
    for b, row in enumerate(rows):
        count = sum(1 for item in row if not isinstance(item, int))
        out.append(build_inputs("qwen2_5_vl", [row], seed=b, second_per_grid_ts=seconds[used : used + count]))
        used += count
    return out


@pytest.mark.parametrize("source", ["scheme", "model"])
@pytest.mark.parametrize("mode", ["padded", "packed"])
def test_collator_reads_second_per_grid_ts(source, mode):
    """Qwen2.5-VL's temporal step tokens_per_second x second_per_grid_ts (2 x s here) reaches the collated positions."""
    scheme = (
        dict(scheme_or_model="mrope", tokens_per_second=2)
        if source == "scheme"
        else dict(scheme_or_model=mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), "mrope"))
    )
    batch = MMRopeCollator(mode=mode, padding_side="left", **scheme)(samples(VIDEOS, SECONDS))
    got = batch["position_ids"][1:]
    if mode == "padded":
        want, _ = reference_positions(VIDEOS, "mrope", [2 * s for s in SECONDS], got.shape[-1])
        assert got.permute(1, 0, 2).tolist() == want
    else:  # one row per sample at max_length = the longest; every sample starts at 0
        first, _ = reference_positions(VIDEOS[:1], "mrope", [3.0], 0)
        second, _ = reference_positions(VIDEOS[1:], "mrope", [1.0, 2.0, 4.0], 0)
        flat = got.reshape(3, -1)
        assert flat[:, : len(first[0][0])].tolist() == first[0]
        assert flat[:, -len(second[0][0]) :].tolist() == second[0]


def test_batch_builder_refuses_a_visual_block_split_across_a_row_end():
    """Four images (the loop-free path); the third (4 tokens) starts at the end of row 0 and ends in row 1."""
    types = torch.tensor([[0, 1, 0, 1, 0, 1, 1], [1, 1, 0, 1, 0, 0, 0]])
    grids = torch.tensor([[1, 2, 2], [1, 2, 2], [1, 4, 4], [1, 2, 2]])
    for scheme in ("mrope", "mrope-i", "vanilla", "circle"):
        with pytest.raises(ValueError, match=r"image grid 2 = \(1, 4, 4\) needs 4 placeholder tokens, but row 0"):
            mmrope_hf.build_position_ids(scheme, torch.zeros_like(types), types, image_grid_thw=grids)


# --- decoding: per-set deltas ------------------------------------------------------------------------------------


def continue_from_the_cache(model, inputs: dict) -> torch.Tensor:
    """Greedy generate, then one more step by hand from generate's cache (positions from ``rope_deltas``)."""
    out = greedy(model, inputs, new_tokens=2)
    with torch.no_grad():
        step = model(input_ids=out.sequences[:, -1:], past_key_values=out.past_key_values, use_cache=True)
    return torch.cat([*out.logits, step.logits[:, -1]])


def test_text_only_prompt_after_an_image_prompt_decodes_like_stock():
    """Two position sets: the per-set decode deltas of an image prompt must not shift the decoding of a later
    text-only prompt (generate gives it fresh zero ``rope_deltas`` without calling ``get_rope_index``)."""
    family = "qwen2_vl"
    text = build_inputs(family, [[9]], seed=3)
    want = continue_from_the_cache(tiny_model(family), text)
    model = mmrope_hf.patch_model(tiny_model(family), "mrope", **TWO_SETS)
    greedy(model, build_inputs(family, [[3, ("image", 1, 8, 8), 2]]))
    assert find_state(model).set_deltas[0].tolist() == [0, -12]  # the image prompt left distinct per-set deltas
    torch.testing.assert_close(continue_from_the_cache(model, text), want, atol=1e-5, rtol=0)


def test_decoding_an_expanded_batch_keeps_each_rows_set_deltas():
    """Two rows with their own per-set deltas, expanded to (b0, b0, b1, b1) as ``generate`` expands a batch for 2
    beams, decode their last token from the expanded cache (positions from ``rope_deltas``; equal-length rows, no
    mask): each copy's logits equal its row's full forward."""
    family = "qwen2_vl"
    model = mmrope_hf.patch_model(tiny_model(family), "mrope", **TWO_SETS)
    rows = [[3, ("image", 1, 8, 8), 2], [1, ("image", 1, 4, 6), 10, ("image", 1, 2, 2), 1]]  # 23 tokens each
    inputs = {k: v for k, v in build_inputs(family, rows).items() if k != "attention_mask"}
    full = logits(model, inputs)
    prompt = {k: v[:, :-1] if k in ("input_ids", "mm_token_type_ids") else v for k, v in inputs.items()}
    with torch.no_grad():
        cache = model(**prompt, use_cache=True).past_key_values
        deltas = find_state(model).set_deltas
        assert deltas[:, 1].unique().numel() == 2  # the rows' second sets end at different places
        cache.batch_repeat_interleave(2)
        step = model(input_ids=inputs["input_ids"][:, -1:].repeat_interleave(2, 0), past_key_values=cache)
    torch.testing.assert_close(step.logits[:, -1], full[:, -1].repeat_interleave(2, 0), atol=1e-5, rtol=0)


# --- mmrope apply ---------------------------------------------------------------------------------------------------


def test_cli_apply_keeps_the_file_mode_and_the_key_in_place(tmp_path):
    tiny_config("qwen2_5_vl").save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    config = json.loads(path.read_text())
    keys = list(config)
    middle = len(keys) // 2
    unsorted = {**{k: config[k] for k in reversed(keys[middle:])}, "mmrope": {"scheme": "vanilla"}}
    unsorted.update({k: config[k] for k in reversed(keys[:middle])})
    path.write_text(json.dumps(unsorted, indent=2))
    os.chmod(path, 0o640)
    assert cli(["apply", str(tmp_path), "--scheme", "mrope-i"]) == 0
    written = json.loads(path.read_text())
    assert list(written) == list(unsorted)  # the key replaced where it was, nothing reordered
    assert written["mmrope"]["scheme"] == "mrope-i"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
