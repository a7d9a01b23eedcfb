"""Circle-RoPE positions (worked example of circlerope.md section 7, independent reference) and the PTD metric."""

from __future__ import annotations

import doctest
import math
import random

import pytest
import torch
from conftest import left_pad_batch, logits, random_rows, reference_layout
from oracle_forward import float32_atol, oracle_logits
from reference import circle_reference as ref

import mmrope_hf
from mmrope_hf import metrics
from mmrope_hf.metrics import ptd
from mmrope_hf.positions import circle as circle_module
from mmrope_hf.positions.circle import circle
from mmrope_hf.positions.design import PositionOptions
from mmrope_hf.positions.layout import IMAGE, VIDEO, VisualBlock
from mmrope_hf.testing import FAMILIES, build_inputs, tiny_model

ATOL = 1e-5
KEYS = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "attention_mask")

# Section 7: x0 x1 <vs> | 4x4 image (grid 1x8x8, merge 2) | <ve> x4; the reference's float32 circle column.
EXAMPLE = [[2, ("image", 1, 8, 8), 1]]
EXAMPLE_POSITIONS = [
    (0, 0, 0),
    (1, 1, 1),
    (2, 2, 2),
    (5.0854435, 8.7938128, -4.8792562),
    (8.3401375, 5.6789675, -5.0191059),
    (10.7928143, 1.2140548, -3.0068684),
    (11.0713911, -2.1031599, 0.0317688),
    (8.7735023, 5.1132488, -4.8867512),
    (10.7223558, 1.4353240, -3.1576796),
    (9.0263195, -4.7841768, 4.7578564),
    (5.9950161, -5.0756855, 8.0806694),
    (-5.1649666, 7.0824833, 7.0824833),
    (-5.1493158, 6.6370554, 7.5122600),
    (-3.0263209, 1.2421443, 10.7841768),
    (-2.6738319, 0.7520638, 10.9217682),
    (-4.0566363, 10.0854111, 2.9712250),
    (-4.2973008, 9.8207245, 3.4765768),
    (-4.7928133, 9.0068693, 4.7859440),
    (-4.9286900, 8.6531057, 5.2755842),
    (12.0713911,) * 3,
    (13.0713911,) * 3,
]


def rope_index(model, inputs):
    return model.model.get_rope_index(inputs["input_ids"], **{k: inputs[k] for k in KEYS if k in inputs})


def circle_model(family, **options):
    return mmrope_hf.patch_model(tiny_model(family), "mrope", position="circle", **options)


def close(actual, expected, atol=ATOL):
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=torch.float64),
        torch.as_tensor(expected, dtype=torch.float64),
        atol=atol,
        rtol=1e-6,
    )


def design_row(layout, stride=1.0, temporal_stride=None, **options):
    """``circle`` on a reference layout; ``stride`` is each video's own interval."""
    segments = [
        item[1] if item[0] == "text" else VisualBlock(IMAGE if item[0] == "image" else VIDEO, item[1:], stride)
        for item in layout
    ]
    return circle(segments, PositionOptions(temporal_stride=temporal_stride, design=options))


def assert_matches_reference(layout, stride=1.0, temporal_stride=None, **options):
    row = design_row(layout, stride, temporal_stride, **options)
    expected, following = ref.positions(layout, temporal_stride or stride, **options)
    assert row.positions.dtype == torch.float32 and row.positions.shape == (3, len(expected))
    close(row.positions.T, expected)
    close(row.next_position, following, atol=1e-9)


# --- the worked example and the spec's golden variants ---------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_worked_example(family):
    inputs = build_inputs(family, EXAMPLE)
    model = circle_model(family)
    positions, deltas = model.model.get_rope_index(
        inputs["input_ids"],
        inputs["mm_token_type_ids"],
        inputs["image_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )
    assert positions.shape == (3, 1, 21) and positions.dtype == torch.float32
    close(positions[:, 0, 3], [5.0854435, 8.7938128, -4.8792562])
    close(positions[:, 0, 19], [12.0713911] * 3)
    close(deltas, [[-6.9286089]])
    close(positions[:, 0].T, EXAMPLE_POSITIONS)


SECTION_7 = [("text", 3), ("image", 1, 4, 4), ("text", 2)]


@pytest.mark.parametrize(
    "options, first, text_after, delta",
    [
        ({"dff_rate": 0.1}, (4.7544, 8.1696, -3.9240), 11.14178, -7.85822),
        ({"move_to_positive": "auto"}, (13.2504, 16.9588, 3.2857), 20.23636, None),
        ({"move_to_origin": False}, (3, 10.0711, -4.0711), 12.09511, None),
        ({"radius": "auto"}, None, None, -13.78929),
    ],
)
def test_worked_example_variants(options, first, text_after, delta):
    row = design_row(SECTION_7, **options)
    if first is not None:
        close(row.positions[:, 3], first, atol=1e-4)
        close(row.positions[:, 19], [text_after] * 3, atol=1e-5)
    if delta is not None:
        close(row.next_position - 21, delta)


@pytest.mark.parametrize(
    "radius, auto_radius, effective",
    [
        ("auto", "max-coordinate", 1.5),
        ("auto-2", "max-coordinate", 3.0),
        ("auto", "l2", math.hypot(1.5, 1.5)),
        ("auto-0.5", "l2", 0.5 * math.hypot(1.5, 1.5)),
        (7.0, "l2", 7.0),
    ],
)
def test_radius_rules(radius, auto_radius, effective):
    row = design_row(SECTION_7, radius=radius, auto_radius=auto_radius)
    ring = row.positions[:, 3:19].double() - 3
    close(ring.norm(dim=0), [effective] * 16)
    close(ring.sum(0), [0.0] * 16)


def test_two_images_centred_on_their_own_running_start():
    # The spec's example: two 2x2 images with <ve><vs> between them have ring centres 2 and 12.8868.
    row = design_row([("text", 2), ("image", 1, 2, 2), ("text", 2), ("image", 1, 2, 2), ("text", 1)])
    for block, centre in ((slice(2, 6), 2.0), (slice(8, 12), 12.8867513)):
        ring = row.positions[:, block].double() - centre
        close(ring.sum(0), [0.0] * 4)
        close(ring.norm(dim=0), [10.0] * 4)


def test_module_doctests():
    for module in (circle_module, metrics):
        assert doctest.testmod(module).failed == 0


# --- the design against the independent reference ---------------------------------------------------------------

OPTION_CASES = [
    {},
    {"radius": 3.5},
    {"radius": "auto"},
    {"radius": "auto-2"},
    {"radius": "auto-1.5", "auto_radius": "l2"},
    {"alpha": 0.0},
    {"alpha": 0.3, "radius": 5},
    {"alpha": 1.0},
    {"dff_rate": 0.1},
    {"dff_rate": 1.0},
    {"move_to_positive": "auto"},
    {"move_to_positive": 2.5},
    {"move_to_positive": 0},
    {"move_to_origin": False},
    {"move_to_origin": False, "radius": "auto"},
    {"method": "no_circle"},
    {"method": "no_circle", "dff_rate": 0.4, "move_to_origin": False},
]
GRIDS = [(1, 1), (1, 3), (3, 1), (2, 5), (3, 3), (4, 4), (5, 3), (7, 7)]


@pytest.mark.parametrize("options", OPTION_CASES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g[0]}x{g[1]}")
def test_image_matches_reference(grid, options):
    assert_matches_reference([("text", 3), ("image", 1, *grid), ("text", 2)], **options)


@pytest.mark.parametrize("options", [{}, {"radius": "auto"}, {"alpha": 0.7, "dff_rate": 0.2}])
def test_several_images_match_reference(options):
    layout = [("text", 2), ("image", 1, 2, 3), ("image", 1, 4, 4), ("text", 3), ("image", 1, 5, 2), ("text", 1)]
    assert_matches_reference(layout, **options)


@pytest.mark.parametrize("stride, temporal_stride", [(1.0, None), (2.0, None), (0.7, None), (2.0, 0.5)])
def test_multi_group_video_stacks_frame_rings_along_the_text_axis(stride, temporal_stride):
    layout = [("text", 2), ("video", 3, 2, 4), ("text", 2)]
    assert_matches_reference(layout, stride, temporal_stride)
    frames = design_row(layout, stride, temporal_stride).positions[:, 2:26].double().reshape(3, 3, 8)
    step = temporal_stride or stride
    close(frames - frames[:, :1], torch.arange(3.0)[None, :, None].expand(3, 3, 8) * step)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_patched_batches_match_reference(family, padding_side):
    """Left/right-padded batches of images and multi-group videos through a patched model; padded slots get 0."""
    rows = random_rows(random.Random(f"{family}{padding_side}"), 3)
    inputs = build_inputs(family, rows, padding_side=padding_side)
    positions, deltas = rope_index(circle_model(family), inputs)
    stride = 2.0 if family == "qwen2_5_vl" else 1.0  # tokens_per_second 2 x 1 s per group; Qwen3-VL has T = 1 blocks
    keep = inputs["attention_mask"].bool()
    for b, row in enumerate(rows):
        expected, following = ref.positions(reference_layout(family, row), stride)
        close(positions[:, b, keep[b]].T, expected)
        assert positions[:, b, ~keep[b]].eq(0).all()
        close(deltas[b, 0], following - len(expected))


def test_patched_temporal_stride_option():
    inputs = build_inputs("qwen2_5_vl", [[2, ("video", 3, 4, 4), 1]])
    positions, deltas = rope_index(circle_model("qwen2_5_vl", temporal_stride=0.5), inputs)
    expected, following = ref.positions(reference_layout("qwen2_5_vl", [2, ("video", 3, 4, 4), 1]), 0.5)
    close(positions[:, 0].T, expected)
    close(deltas[0, 0], following - len(expected))


def test_patched_design_options_reach_the_design():
    inputs = build_inputs("qwen2_vl", EXAMPLE)
    positions, deltas = rope_index(circle_model("qwen2_vl", radius="auto", alpha=0.3), inputs)
    expected, following = ref.positions(SECTION_7, radius="auto", alpha=0.3)
    close(positions[:, 0].T, expected)
    close(deltas[0, 0], following - 21)


# --- PTD ---------------------------------------------------------------------------------------------------------


def test_ptd_of_circle_blocks_is_zero():
    """Every image token of a block is at the same Euclidean distance from every text token (dff_rate 0)."""
    layout = [("text", 3), ("image", 1, 4, 4), ("text", 2), ("image", 1, 3, 5), ("text", 4)]
    for options in ({}, {"radius": "auto-2", "alpha": 0.2}, {"move_to_positive": "auto"}):
        positions = design_row(layout, **options).positions
        text = torch.tensor([True] * 3 + [False] * 16 + [True] * 2 + [False] * 15 + [True] * 4)
        for block in (slice(3, 19), slice(21, 36)):
            image = torch.zeros(40, dtype=torch.bool)
            image[block] = True
            distances = (positions[:, text, None] - positions[:, None, image]).double().norm(dim=0)
            assert (distances.max(1).values - distances.min(1).values).max() < 1e-5
            assert ptd(positions, image, text) < 1e-5


def test_ptd_of_the_worked_example():
    inputs = build_inputs("qwen2_5_vl", EXAMPLE)
    image = inputs["mm_token_type_ids"][0] == 1
    circle_positions, _ = rope_index(circle_model("qwen2_5_vl"), inputs)
    mrope_positions, _ = rope_index(mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), "mrope"), inputs)
    assert ptd(circle_positions[:, 0], image, ~image) < 1e-5
    assert ptd(mrope_positions[:, 0], image, ~image) == pytest.approx(0.7642394, abs=1e-6)  # section 4
    assert ptd(torch.arange(21)[None], image, ~image) == pytest.approx(4.0)


def test_ptd_of_the_paper_table_1_layouts():
    """N_img = 9 (3 x 3), N_txt = 5: hard (1D, one row) 20/9 for text before and after; 2D spatial 0.64."""
    image = torch.tensor([False] * 2 + [True] * 9 + [False] * 3)
    assert ptd(torch.arange(14)[None], image, ~image) == pytest.approx(20 / 9, abs=1e-12)
    spatial = torch.tensor([(10 + p, 10 + p) for p in range(5)] + [(h, w) for h in range(3) for w in range(3)]).T
    assert ptd(spatial, torch.arange(14) >= 5, torch.arange(14) < 5) == pytest.approx(0.6403, abs=1e-4)


@pytest.mark.parametrize("position", ["mrope", "spatial-reset"])
def test_ptd_of_3d_grid_layouts_is_positive(position):
    inputs = build_inputs("qwen2_vl", [[3, ("image", 1, 6, 6), 4]])
    positions, _ = rope_index(mmrope_hf.patch_model(tiny_model("qwen2_vl"), "mrope", position=position), inputs)
    image = inputs["mm_token_type_ids"][0] == 1
    assert ptd(positions[:, 0], image, ~image) > 0.1


def test_ptd_of_dff_blend_is_small_but_positive():
    positions = design_row([("text", 3), ("image", 1, 3, 3), ("text", 2)], dff_rate=0.1).positions
    image = torch.tensor([False] * 3 + [True] * 9 + [False] * 2)
    assert 0.02 < ptd(positions, image, ~image) < 0.04


def test_ptd_rejects_bad_shapes_and_empty_masks():
    image = torch.tensor([True, False])
    with pytest.raises(ValueError, match=r"shape \(3, L\)"):
        ptd(torch.zeros(3, 2), image, torch.tensor([False, True, True]))
    with pytest.raises(ValueError, match="at least one image and one text token"):
        ptd(torch.zeros(3, 2), image, torch.tensor([False, False]))


# --- options ---------------------------------------------------------------------------------------------------


def test_defaults_are_the_reference_config():
    config = mmrope_hf.resolve_config("mrope", position="circle")
    assert dict(config.options) == {
        "radius": 10.0,
        "auto_radius": "max-coordinate",
        "alpha": 0.5,
        "method": "circle",
        "move_to_origin": True,
        "move_to_positive": False,
        "dff_rate": 0.0,
    }
    config = mmrope_hf.resolve_config("mrope", position="circle", dff_rate=True, radius=4)
    assert config.option("dff_rate") == 1.0 and config.option("radius") == 4.0


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("radius", -1, "radius must be a number > 0, 'auto' or 'auto-k'.*got -1"),
        ("radius", 0, "got 0"),
        ("radius", "auto-0", "got 'auto-0'"),
        ("radius", "auto2", "got 'auto2'"),
        ("radius", "auto-x", "got 'auto-x'"),
        ("radius", True, "got True"),
        ("auto_radius", "l1", "unknown auto_radius 'l1'; valid choices: max-coordinate, l2"),
        ("alpha", 1.5, r"alpha must be a number in \[0, 1\], got 1.5"),
        ("alpha", "0.5", "got '0.5'"),
        ("alpha", True, "got True"),
        ("dff_rate", -0.1, r"dff_rate must be a number in \[0, 1\], got -0.1"),
        ("dff_rate", float("nan"), "got nan"),
        ("move_to_origin", "yes", "move_to_origin must be true or false, got 'yes'"),
        ("move_to_positive", True, "move_to_positive must be false, 'auto' or a number.*got True"),
        ("move_to_positive", "yes", "got 'yes'"),
        ("method", "square", "unknown method 'square'; valid choices: circle, no_circle"),
    ],
)
def test_bad_option_values_fail_clearly(name, value, message):
    with pytest.raises(ValueError, match=message):
        mmrope_hf.resolve_config("mrope", position="circle", **{name: value})


def test_circle_options_need_the_circle_design():
    with pytest.raises(ValueError, match="unknown option.*radius"):
        mmrope_hf.resolve_config("mrope", radius=10)


# --- models ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_text_only_logits_equal_the_stock_model(family):
    inputs = build_inputs(family, [[9], [5]])
    stock = logits(tiny_model(family), inputs)
    assert torch.equal(logits(circle_model(family), inputs), stock)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_generate_equals_teacher_forced_forward(family):
    model = circle_model(family)
    rows = [[3, ("image", 1, 8, 8), 2], [1, ("image", 1, 4, 6), 5, ("image", 1, 6, 4), 1]]
    singles = [build_inputs(family, [row], seed=b) for b, row in enumerate(rows)]
    inputs = left_pad_batch(singles)
    out = model.generate(**inputs, max_new_tokens=4, output_logits=True, return_dict_in_generate=True)
    length, new = inputs["input_ids"].shape[1], out.sequences.shape[1] - inputs["input_ids"].shape[1]
    ones, zeros = torch.ones(2, new, dtype=torch.long), torch.zeros(2, new, dtype=torch.long)
    forced = dict(
        inputs,
        input_ids=out.sequences,
        attention_mask=torch.cat([inputs["attention_mask"], ones], 1),
        mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"], zeros], 1),
    )
    full = logits(model, forced)
    # The full forward itself: the oracle with circle positions in every layer (mrope's schedule, circle design).
    want = oracle_logits(family, [[*row[:-1], row[-1] + new] for row in rows], forced, "circle", layers="all")
    real = forced["attention_mask"].bool()
    torch.testing.assert_close(full[real], want[real], atol=float32_atol(want[real]), rtol=0)
    assert len(out.logits) == new == 4
    for i, step in enumerate(out.logits):
        torch.testing.assert_close(step, full[:, length - 1 + i], atol=ATOL, rtol=0)
