"""Golden positions: the worked examples of multimodal_ropes.md and an independent reference (tests/reference)."""

from __future__ import annotations

import random

import pytest
from conftest import random_rows, reference_layout
from reference import rope_reference as ref

import mmrope_hf
from mmrope_hf.testing import FAMILIES, build_inputs, tiny_model


def patched_positions(family, rows, scheme, padding_side="left", **options):
    model = mmrope_hf.patch_model(tiny_model(family), scheme, **options)
    inputs = build_inputs(family, rows, padding_side=padding_side)
    keys = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "attention_mask")
    return model.model.get_rope_index(inputs["input_ids"], **{k: inputs.get(k) for k in keys})


def tokens(positions, row=0):
    return [tuple(p) for p in positions[:, row].T.tolist()]


# (a): x0 x1 <vs> | 4x4 image (grid 1x8x8, merge 2) | <ve> x4
EXAMPLE_A = [[2, ("image", 1, 8, 8), 1]]
GRID_4x4 = [(r, c) for r in range(4) for c in range(4)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "scheme, image, tail, delta",
    [
        ("mrope", [(3, 3 + r, 3 + c) for r, c in GRID_4x4], [7, 8], -12),
        ("spatial-reset", [(3, r, c) for r, c in GRID_4x4], [7, 8], -12),
        ("mrope-i", [(3, r, c) for r, c in GRID_4x4], [7, 8], -12),
        ("vanilla", [(3 + 4 * r + c,) * 3 for r, c in GRID_4x4], [19, 20], 0),
    ],
)
def test_worked_example_a(family, scheme, image, tail, delta):
    positions, deltas = patched_positions(family, EXAMPLE_A, scheme)
    assert tokens(positions) == [(0, 0, 0), (1, 1, 1), (2, 2, 2), *image, *[(p, p, p) for p in tail]]
    assert deltas.tolist() == [[delta]]


# (b): x0 <vs> | video of 3 temporal groups of 2x2 (grid 3x4x4) | <ve> x3, one block (Qwen2-VL convention)
EXAMPLE_B = [[1, ("video", 3, 4, 4), 1]]
CUBE = [(g, r, c) for g in range(3) for r in range(2) for c in range(2)]


@pytest.mark.parametrize(
    "scheme, options, video, tail, delta",
    [
        ("mrope", {}, [(2 + g, 2 + r, 2 + c) for g, r, c in CUBE], [5, 6], -9),
        ("mrope", {"temporal_stride": 2}, [(2 + 2 * g, 2 + r, 2 + c) for g, r, c in CUBE], [7, 8], -7),
        ("spatial-reset", {}, [(2 + g, r, c) for g, r, c in CUBE], [5, 6], -9),
        ("mrope-i", {}, [(2 + g, r, c) for g, r, c in CUBE], [5, 6], -9),
        ("vanilla", {}, [(2 + 4 * g + 2 * r + c,) * 3 for g, r, c in CUBE], [14, 15], 0),
        ("mrope", {"vision_advance": "spatial"}, [(2 + g, 2 + r, 2 + c) for g, r, c in CUBE], [4, 5], -10),
    ],
)
def test_worked_example_b_qwen2_vl(scheme, options, video, tail, delta):
    positions, deltas = patched_positions("qwen2_vl", EXAMPLE_B, scheme, **options)
    assert tokens(positions) == [(0, 0, 0), (1, 1, 1), *video, *[(p, p, p) for p in tail]]
    assert deltas.tolist() == [[delta]]


def test_worked_example_b_qwen2_5_vl_absolute_time_and_paper_stride():
    # Qwen2.5-VL's own rule: tokens_per_second (2) x 1 s per group; MRoPE-I uses the paper's stride 1.
    positions, deltas = patched_positions("qwen2_5_vl", EXAMPLE_B, "spatial-reset")
    assert tokens(positions)[2:14] == [(2 + 2 * g, r, c) for g, r, c in CUBE]
    assert deltas.tolist() == [[-7]]
    positions, deltas = patched_positions("qwen2_5_vl", EXAMPLE_B, "mrope-i")
    assert tokens(positions)[2:14] == [(2 + g, r, c) for g, r, c in CUBE]
    assert deltas.tolist() == [[-9]]


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_vl_moe"])
@pytest.mark.parametrize("scheme, reset", [("mrope", False), ("spatial-reset", True), ("mrope-i", True)])
def test_worked_example_b_qwen3_per_frame(family, scheme, reset):
    # x0 x1, then per group <ts> <vs> 2x2 frame <ve>, then x: frames start at 4, 9, 14.
    positions, deltas = patched_positions(family, [[2, ("video", 3, 4, 4), 1]], scheme)
    got = tokens(positions)
    for g, start in enumerate((4, 9, 14)):
        frame = got[4 + 7 * g : 8 + 7 * g]
        offset = 0 if reset else start
        assert frame == [(start, offset + r, offset + c) for r in range(2) for c in range(2)]
    assert [got[i][0] for i in (8, 15, 22, 23)] == [6, 11, 16, 17]
    assert deltas.tolist() == [[-6]]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("design", ["mrope", "spatial-reset", "vanilla"])
@pytest.mark.parametrize("stride, advance", [(1.0, "max"), (0.5, "max"), (2.0, "max"), (1.0, "spatial")])
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_random_layouts_match_reference(family, design, stride, advance, padding_side):
    rows = random_rows(random.Random(f"{family}{design}{stride}{advance}"), 3)
    positions, deltas = patched_positions(
        family,
        rows,
        "mrope",
        padding_side=padding_side,
        position=design,
        temporal_stride=stride,
        vision_advance=advance,
    )
    layouts = [reference_layout(family, row) for row in rows]
    expected, expected_deltas = ref.batch_positions(
        layouts, pad_side=padding_side, design=design, stride=stride, advance=advance
    )
    assert [tokens(positions, b) for b in range(len(rows))] == [[tuple(p) for p in row] for row in expected]
    if advance == "max":  # with "spatial", transformers measures the delta from max(position) + 1 instead
        assert deltas[:, 0].tolist() == list(expected_deltas)
