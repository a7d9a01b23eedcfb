"""Every scheme on the 1D-RoPE VLMs: LLaVA-1.5 (Llama), LLaVA-NeXT (Mistral), LLaVA-OneVision (Qwen2), Gemma 3,
Idefics3, SmolVLM, InternVL and Mistral 3.

The expected layouts below are written by hand from the documented decisions (patches/_llava_layout.py,
patches/_tiles.py): the base view and the high-resolution grid are two consecutive blocks, the row newlines are an
extra column of the high-resolution grid, and a lone newline (OneVision multi-image, video) or a CLS feature is
placed like a text token; every Gemma 3 image, Idefics3 / InternVL tile and global view is its own 4 x 4 block and
the start, end and marker tokens around them are text; a Mistral 3 image is one block whose last column holds the
row break / end tokens. Positions then come from the independent references in tests/reference/.
"""

from __future__ import annotations

import functools
import sys

import pytest
import torch
import transformers
from conftest import SCHEMES, assert_batched_generate_equals_one_by_one, assert_prefill_then_decode, logits
from oracle_forward import float32_atol, oracle_logits
from reference import circle_reference, rope_reference

import mmrope_hf
from mmrope_hf.patches._llava_layout import LlavaGeometry
from mmrope_hf.testing import (
    IMAGE_TOKEN,
    LLAVA_FAMILIES,
    TILE_FAMILIES,
    VIDEO_TOKEN,
    build_llava_inputs,
    build_tile_inputs,
    llava_placeholder_counts,
    offline_llava_processor,
    synthetic_image,
    tiny_llava,
    tiny_tile_model,
)

ATOL = 1e-5
SCHEDULES = [pytest.param(scheme, {}, id=scheme) for scheme in SCHEMES] + [
    pytest.param("mrope", {"layers": ["vanilla", "spatial-reset"]}, id="two-position-sets"),
    pytest.param("circle", {"layers": "all"}, id="circle-all"),
]
SUPPRESS = [IMAGE_TOKEN, VIDEO_TOKEN]  # a random model must not generate placeholders (teacher forcing re-reads them)
ONE_D_FAMILIES = LLAVA_FAMILIES + TILE_FAMILIES

# Rows: n random text tokens, ("image", height, width) in pixels, ("video", frames). Both rows end in 2+ text tokens.
PROMPTS = {
    "llava": [[3, ("image", 60, 80), 2], [2, ("image", 40, 40), 1, ("image", 30, 50), 3]],
    # 112x112: 2x2 tiles -> 8x8; 60x120: 1x2 tiles -> 4x8; 30x112: 1x2 tiles, rows cropped by unpad -> 2x8
    "llava_next": [[3, ("image", 112, 112), 2], [2, ("image", 60, 120), 1, ("image", 30, 112), 3]],
    # 112x168: 2x3 tiles -> 8x12, anyres_max_4 downsamples to 6x9; row 1 has two images: base views only
    "llava_onevision": [
        [3, ("image", 112, 168), 2, ("video", 2), 2],
        [2, ("image", 60, 120), 1, ("image", 30, 112), 3],
    ],
}
# Tile families: (height, width) pixels; 112 px tiles of 4 x 4 tokens (Mistral 3: 28 px per token, rows x cols).
_TILED = [[3, ("image", 112, 224), 2], [2, ("image", 56, 56), 1, ("image", 112, 112), 3]]
PROMPTS.update({family: _TILED for family in ("gemma3", "idefics3", "smolvlm", "internvl")})
PROMPTS["mistral3"] = [[3, ("image", 56, 84), 2], [2, ("image", 28, 28), 1, ("image", 84, 56), 3]]
BASE = ("image", 1, 4, 4)  # one 56 px tile of 14 px patches (and one 4 x 4 tile of the tile families)
REFERENCE_LAYOUTS = {  # (kind, T, H, W) blocks; a newline column is part of W
    "llava": [[("text", 3), BASE, ("text", 2)], [("text", 2), BASE, ("text", 1), BASE, ("text", 3)]],
    "llava_next": [
        [("text", 3), BASE, ("image", 1, 8, 9), ("text", 2)],
        [("text", 2), BASE, ("image", 1, 4, 9), ("text", 1), BASE, ("image", 1, 2, 9), ("text", 3)],
    ],
    "llava_onevision": [
        [("text", 3), BASE, ("image", 1, 6, 10), ("text", 2), ("video", 2, 2, 2), ("text", 1), ("text", 2)],
        [("text", 2), BASE, ("text", 1), ("text", 1), BASE, ("text", 1), ("text", 3)],
    ],
    # <start_of_image> 4x4 <end_of_image>
    "gemma3": [[("text", 4), BASE, ("text", 3)], [("text", 3), BASE, ("text", 3), BASE, ("text", 4)]],
    # 112x224: 1x2 tiles (<fake><row_col> tile each, a newline) + <fake><global> global view <fake>; smaller: global
    "idefics3": [
        [("text", 5), BASE, ("text", 2), BASE, ("text", 4), BASE, ("text", 3)],
        [("text", 4), BASE, ("text", 4), BASE, ("text", 4)],
    ],
    # <img> tiles + thumbnail </img>
    "internvl": [[("text", 4), BASE, BASE, BASE, ("text", 3)], [("text", 3), BASE, ("text", 3), BASE, ("text", 4)]],
    # rows of [IMG] x cols + [IMG_BREAK] (the last [IMG_END]): the break is column `cols`
    "mistral3": [
        [("text", 3), ("image", 1, 2, 4), ("text", 2)],
        [("text", 2), ("image", 1, 1, 2), ("text", 1), ("image", 1, 3, 3), ("text", 3)],
    ],
}
REFERENCE_LAYOUTS["smolvlm"] = REFERENCE_LAYOUTS["idefics3"]
# What the real processors write for test_offline_processor_output_runs_patched's prompts (images 120x60, then
# 40x100 and 150x300 px, width x height), worked out by hand from the tiny settings: 56 px tiles of 14 px patches,
# the pinpoints of mmrope_hf.testing.llava, the default strategy (no CLS feature).
PROCESSOR_LAYOUTS = {
    "llava": [[("text", 2), BASE, ("text", 1)], [("text", 3), BASE, ("text", 1), BASE, ("text", 1)]],
    # 120x60 fits pinpoint 56x112 (h x w) best: 1x2 tiles, 4x8 features and a newline column; 40x100 and 150x300
    # fit 112x56: 2x1 tiles, 8x4 (unpad: 40 px wide gives round(40 * 8 / 100) = 3 columns, padding (4 - 3) // 2 = 0)
    "llava_next": [
        [("text", 2), BASE, ("image", 1, 4, 9), ("text", 1)],
        [("text", 3), BASE, ("image", 1, 8, 5), ("text", 1), BASE, ("image", 1, 8, 5), ("text", 1)],
    ],
    # 120x60 fits pinpoint 112x168 best (its effective resolution is the image's 7,200 px): 2x3 tiles, 8x12
    # features; unpad keeps round(60 * 12 / 120) = 6 rows; 72 tokens is under anyres_max_4's 64 x 1.1^2, so no
    # downsampling; a newline column. Row 1 has two images: base views, each followed by one newline token
    "llava_onevision": [
        [("text", 2), BASE, ("image", 1, 6, 13), ("text", 1)],
        [("text", 3), BASE, ("text", 1), ("text", 1), BASE, ("text", 1), ("text", 1)],
    ],
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine their spinning costs 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=ONE_D_FAMILIES)
def family(request) -> str:  # overrides conftest's Qwen families in this module
    return request.param


def tiny(family: str, **overrides):
    return tiny_llava(family, **overrides) if family in LLAVA_FAMILIES else tiny_tile_model(family, **overrides)


@pytest.fixture
def model(family):
    return tiny(family)


def text_model(model):
    """The language model inside (``text_model`` on Idefics3 and SmolVLM)."""
    return getattr(model.model, "language_model", None) or model.model.text_model


def inputs_for(family: str, rows: list | None = None, **kwargs) -> dict:
    build = build_llava_inputs if family in LLAVA_FAMILIES else build_tile_inputs
    return build(family, PROMPTS[family] if rows is None else rows, **kwargs)


def generation_positions(model, inputs: dict) -> torch.Tensor:
    """What generate builds for the prompt: (3K + 1, B, L) [text; t; h; w; ...], or the stock 2D positions."""
    return model._prepare_position_ids_for_generation(inputs["input_ids"], dict(inputs))


def generate(model, inputs: dict, new_tokens: int = 4):
    return model.generate(
        **inputs,
        max_new_tokens=new_tokens,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
        suppress_tokens=SUPPRESS,
    )


def reference_positions(design: str, layout: list) -> tuple[list, float]:
    if design == "circle":
        ids, next_position = circle_reference.positions(layout)
        return [tuple(float(v) for v in p) for p in ids], next_position
    return rope_reference.positions(layout, design)


def left_pad(singles: list[dict]) -> dict:
    """Left-pad single-row LLaVA inputs into one batch (tiles zero-padded to the batch maximum)."""
    length = max(s["input_ids"].shape[1] for s in singles)
    batch = {
        key: torch.cat([torch.nn.functional.pad(s[key], (length - s[key].shape[1], 0)) for s in singles])
        for key in ("input_ids", "attention_mask", "token_type_ids")
        if key in singles[0]
    }
    for key in ("pixel_values", "image_sizes", "batch_num_images", "pixel_values_videos"):
        parts = [s[key] for s in singles if key in s]
        if key == "pixel_values" and parts and parts[0].ndim == 5:
            tiles = max(p.shape[1] for p in parts)
            parts = [torch.nn.functional.pad(p, (0, 0, 0, 0, 0, 0, 0, tiles - p.shape[1])) for p in parts]
        if key == "pixel_values" and parts and parts[0].ndim == 4:  # Mistral 3: images zero-padded to the largest
            height, width = max(p.shape[2] for p in parts), max(p.shape[3] for p in parts)
            parts = [torch.nn.functional.pad(p, (0, width - p.shape[3], 0, height - p.shape[2])) for p in parts]
        if parts:
            batch[key] = torch.cat(parts)
    return batch


# -- the stock model -----------------------------------------------------------------------------------------------


def test_vanilla_is_bit_identical_to_stock(family, model):
    inputs = inputs_for(family)
    stock_logits, stock = logits(model, inputs), generate(model, inputs)
    mmrope_hf.patch_model(model, "vanilla")
    assert torch.equal(logits(model, inputs), stock_logits)
    out = generate(model, inputs)
    assert torch.equal(out.sequences, stock.sequences)
    assert all(torch.equal(a, b) for a, b in zip(out.logits, stock.logits, strict=True))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_text_only_logits_and_generations_equal_stock(family, model, scheme):
    inputs = inputs_for(family, [[9], [4]])
    stock_logits, stock = logits(model, inputs), generate(model, inputs, 3)
    mmrope_hf.patch_model(model, scheme)
    assert torch.equal(logits(model, inputs), stock_logits)
    assert torch.equal(generate(model, inputs, 3).sequences, stock.sequences)


@pytest.mark.parametrize("scheme", ["mhrope", "circle"])
def test_3d_schemes_change_image_logits_and_unpatch_restores_stock(family, model, scheme):
    inputs = inputs_for(family)
    stock_logits, stock = logits(model, inputs), generate(model, inputs)
    owner_attrs, hooks = set(vars(model.model)), sum(len(m._forward_pre_hooks) for m in model.modules())
    stock_rotary = text_model(model).rotary_emb
    modeling = sys.modules[type(text_model(model).layers[0].self_attn).__module__]
    stock_apply = modeling.apply_rotary_pos_emb
    mmrope_hf.patch_model(model, scheme)
    assert (logits(model, inputs) - stock_logits).abs().max() > 1e-3
    generate(model, inputs)
    assert mmrope_hf.unpatch_model(model) is model
    assert text_model(model).rotary_emb is stock_rotary and modeling.apply_rotary_pos_emb is stock_apply
    assert set(vars(model.model)) == owner_attrs and "_prepare_position_ids_for_generation" not in vars(model)
    assert sum(len(m._forward_pre_hooks) for m in model.modules()) == hooks
    assert not hasattr(model.config, "mmrope") and not mmrope_hf.is_patched(model)
    assert torch.equal(logits(model, inputs), stock_logits)
    assert torch.equal(generate(model, inputs).sequences, stock.sequences)


def test_native_frequency_is_interleaved_with_the_scaled_default_section(family, model):
    info = mmrope_hf.patch_info(mmrope_hf.patch_model(model, "mrope"))
    assert info["resolved_frequency"] == "interleaved" and info["resolved_mrope_section"] == [6, 5, 5]  # head_dim 32
    info = mmrope_hf.patch_info(mmrope_hf.patch_model(model, "mhrope"))
    assert info["resolved_frequency"] == "multi-head" and info["resolved_mrope_section"] == [2, 1, 1]  # 4 KV heads


# -- positions -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_image_positions_match_the_reference(family, model, scheme, options):
    mmrope_hf.patch_model(model, scheme, **options)
    inputs = inputs_for(family)
    designs = mmrope_hf.patch_info(model)["position_sets"]
    positions = generation_positions(model, inputs)
    mask = inputs["attention_mask"].bool()
    if designs == ["vanilla"]:  # the model's own 1D positions: nothing rebuilt
        assert positions.ndim == 2
        positions = positions.expand(4, -1, -1)
    assert positions.shape[0] == 3 * len(designs) + 1
    assert torch.equal(positions[0].long(), (mask.long().cumsum(-1) - 1).clamp(min=0))
    for row, layout in enumerate(REFERENCE_LAYOUTS[family]):
        assert rope_reference.num_tokens(layout) == int(mask[row].sum())
        assert not positions[:, row, ~mask[row]].any()  # padded slots: 0
        for k, design in enumerate(designs):
            expected, _ = reference_positions(design, layout)
            got = positions[1 + 3 * k : 4 + 3 * k, row, mask[row]].T.tolist()
            if design == "circle":
                torch.testing.assert_close(torch.tensor(got), torch.tensor(expected, dtype=torch.float32))
            else:
                assert [tuple(p) for p in got] == expected


@functools.cache
def shared_models(family: str) -> tuple:
    """(stock model for the oracle, model to patch and unpatch), built once per family: building costs the most."""
    return tiny(family), tiny(family)


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_every_scheme_equals_the_oracle_forward(family, scheme, options):
    """The logits equal the stock model fed cos/sin computed from the hand-written layouts above and tests/reference
    (tests/oracle_forward.py: interleaved with the scaled default section, Gemma 3's two tables), within 32 eps of
    float32: the full forward that the decoding, generate and batching tests below compare with."""
    inputs = inputs_for(family)
    real = inputs["attention_mask"].bool()
    stock, target = shared_models(family)
    want = oracle_logits(family, None, inputs, scheme, model=stock, layouts=REFERENCE_LAYOUTS[family], **options)
    try:
        got = logits(mmrope_hf.patch_model(target, scheme, **options), inputs)
    finally:
        mmrope_hf.unpatch_model(target)
    torch.testing.assert_close(got[real], want[real], atol=float32_atol(want[real]), rtol=0)


def test_gemma3_rotates_both_layer_types_with_the_scheme():
    """Gemma 3 computes cos/sin once per layer type (sliding layers: theta 1e4; full attention: theta 1e6 with linear
    scaling x8): the layers of both types get the scheme's positions under their own table (reference maths)."""
    model = mmrope_hf.patch_model(tiny("gemma3"), "mrope-i")
    inputs = inputs_for("gemma3")
    seen: dict[int, torch.Tensor] = {}
    for i, layer in enumerate(text_model(model).layers):
        layer.register_forward_pre_hook(
            lambda m, a, kw, i=i: seen.update({i: kw["position_embeddings"][0]}), with_kwargs=True
        )
    logits(model, inputs)
    positions = generation_positions(model, inputs)[1:4, 0]  # row 0: text 0-3, the image 4-19, text after
    stock = text_model(model).rotary_emb.stock
    axes = rope_reference.interleaved_axes(16, [6, 5, 5])
    for i, layer_type in enumerate(text_model(model).config.layer_types):
        inv_freq = getattr(stock, f"{layer_type}_inv_freq").double().tolist()
        for token in (2, 9, 19, 22):
            expected, _ = rope_reference.cos_sin(positions[:, token].tolist(), axes, inv_freq)
            want = torch.tensor(expected, dtype=torch.float64)
            torch.testing.assert_close(seen[i][0, token].double(), want, atol=1e-6, rtol=0)
    assert not torch.equal(seen[0], seen[1])  # two tables


def test_newline_and_base_view_positions_golden():
    """NeXT, one 112x112 image after 3 text tokens, mrope: base view 4x4 at st = 3, then the 8x8 grid + newline
    column at st = 3 + 4 = 7, newline of row r at (7, 7 + r, 7 + 8); text resumes at 7 + 9 = 16."""
    model = mmrope_hf.patch_model(tiny_llava("llava_next"), "mrope")
    inputs = inputs_for("llava_next", [[3, ("image", 112, 112), 2]])
    positions = generation_positions(model, inputs)[1:4, 0].T.tolist()
    assert positions[3] == [3, 3, 3] and positions[3 + 15] == [3, 6, 6]  # base view corners
    first_newline, last_newline = 3 + 16 + 8, 3 + 16 + 8 * 9 - 1
    assert positions[first_newline] == [7, 7, 15] and positions[last_newline] == [7, 14, 15]
    assert positions[3 + 16 + 72] == [16, 16, 16]
    mmrope_hf.patch_model(model, "spatial-reset")
    positions = generation_positions(model, inputs)[1:4, 0].T.tolist()
    assert positions[first_newline] == [7, 0, 8] and positions[3 + 16 + 72] == [16, 16, 16]


def test_llava_full_strategy_places_cls_like_a_text_token():
    model = mmrope_hf.patch_model(tiny_llava("llava", vision_feature_select_strategy="full"), "mrope")
    inputs = inputs_for("llava", [[3, ("image", 60, 80), 2]], vision_feature_select_strategy="full")
    assert int((inputs["input_ids"] == IMAGE_TOKEN).sum()) == 17
    expected, _ = rope_reference.positions([("text", 4), BASE, ("text", 2)], "mrope")
    assert [tuple(p) for p in generation_positions(model, inputs)[1:4, 0].T.tolist()] == expected
    # The model packs CLS + grid into the same 17 slots: the logits are the oracle's on that layout.
    stock = tiny_llava("llava", vision_feature_select_strategy="full")
    want = oracle_logits("llava", None, inputs, "mrope", model=stock, layouts=[[("text", 4), BASE, ("text", 2)]])
    torch.testing.assert_close(logits(model, inputs), want, atol=float32_atol(want), rtol=0)


@pytest.mark.parametrize(
    "family, aspect_ratio",
    [("llava_next", None), ("llava_onevision", "anyres_max_4"), ("llava_onevision", "anyres_max_9")],
)
def test_layout_matches_the_processor_and_the_model_packing(family, aspect_ratio):
    overrides = {"vision_aspect_ratio": aspect_ratio} if aspect_ratio else {}
    model = tiny_llava(family, **overrides)
    geometry = LlavaGeometry.of(family, model.model)
    sizes = [(h, w) for h in (20, 56, 60, 100, 113, 168, 300) for w in (30, 56, 112, 150, 400)]
    counts = llava_placeholder_counts(family, [[("image", h, w)] for h, w in sizes], **overrides)
    strategy = model.config.vision_feature_select_strategy
    assert [geometry.image(0, size, strategy).num_tokens for size in sizes] == [c[0] for c in counts]
    if aspect_ratio != "anyres_max_9":  # the packing itself, for a few sizes (downsampled or not, cropped, square)
        inputs = build_llava_inputs(family, [[("image", 300, 400)], [("image", 20, 150)], [("image", 56, 56)]])
        with torch.no_grad():
            packed = model.model.get_image_features(inputs["pixel_values"], inputs["image_sizes"]).pooler_output
        assert [len(p) for p in packed] == [
            geometry.image(0, s, strategy).num_tokens for s in ((300, 400), (20, 150), (56, 56))
        ]


# -- decoding and generation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_prefill_then_cached_decoding_equals_full_forward(family, model, scheme, options):
    mmrope_hf.patch_model(model, scheme, **options)
    inputs = inputs_for(family)
    assert_prefill_then_decode(model, inputs, generation_positions(model, inputs), atol=ATOL)


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_decoding_without_position_ids_continues_from_the_prompt(family, model, scheme, options):
    """Manual decoding with only a mask and the cache: the unpadded index + the prompt's rope_deltas per set."""
    mmrope_hf.patch_model(model, scheme, **options)
    assert_prefill_then_decode(model, inputs_for(family), atol=ATOL)


@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_generate_equals_teacher_forced_forward(family, model, scheme, options):
    mmrope_hf.patch_model(model, scheme, **options)
    inputs = inputs_for(family)
    out = generate(model, inputs)
    length, new = inputs["input_ids"].shape[1], out.sequences.shape[1] - inputs["input_ids"].shape[1]
    forced = dict(
        inputs,
        input_ids=out.sequences,
        attention_mask=torch.cat([inputs["attention_mask"], torch.ones(2, new, dtype=torch.long)], 1),
    )
    full = logits(model, forced)
    for i, step_logits in enumerate(out.logits):
        torch.testing.assert_close(step_logits, full[:, length - 1 + i], atol=ATOL, rtol=0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_batched_left_padded_generate_equals_one_by_one(family, model, scheme):
    mmrope_hf.patch_model(model, scheme)
    rows = [*PROMPTS[family], [8]]
    singles = [inputs_for(family, [row], seed=b) for b, row in enumerate(rows)]
    assert_batched_generate_equals_one_by_one(model, singles, left_pad(singles), suppress_tokens=SUPPRESS)


def test_second_generate_starts_fresh(family):
    first = inputs_for(family, seed=1)
    second = inputs_for(family, [[4, ("image", 112, 56), 3]], seed=2)
    used = mmrope_hf.patch_model(tiny(family), "mrope-i")
    generate(used, first)
    generate(used, inputs_for(family, [[6]]))  # a text-only prompt in between
    again = generate(used, second)
    fresh = generate(mmrope_hf.patch_model(tiny(family), "mrope-i"), second)
    assert torch.equal(again.sequences, fresh.sequences)


def test_static_cache_and_continuing_from_a_cache():
    """generate with a static cache equals the dynamic one; a second turn continued from the first turn's cache (no
    pixels passed again) equals generating the whole conversation from scratch."""
    model = mmrope_hf.patch_model(tiny_llava("llava_next"), "mrope-i")
    inputs = inputs_for("llava_next")
    first = generate(model, inputs, 3)
    static = model.generate(
        **inputs, max_new_tokens=3, do_sample=False, cache_implementation="static", suppress_tokens=SUPPRESS
    )
    assert torch.equal(static, first.sequences)
    turn = torch.randint(2, 200, (2, 2), generator=torch.Generator().manual_seed(3))
    ids = torch.cat([first.sequences, turn], 1)
    mask = torch.cat([inputs["attention_mask"], torch.ones_like(ids[:, inputs["input_ids"].shape[1] :])], 1)
    continued = model.generate(
        input_ids=ids,
        attention_mask=mask,
        past_key_values=first.past_key_values,
        max_new_tokens=3,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
        suppress_tokens=SUPPRESS,
    )
    fresh = generate(model, dict(inputs, input_ids=ids, attention_mask=mask), 3)
    assert torch.equal(continued.sequences, fresh.sequences)
    for a, b in zip(continued.logits, fresh.logits, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


# -- errors, processors, other language models, training -----------------------------------------------------------


@pytest.mark.parametrize("family", LLAVA_FAMILIES)
def test_placeholder_mismatch_fails_with_a_clear_error(family, model):
    mmrope_hf.patch_model(model, "mrope-i")
    one, two = inputs_for(family, [[3, ("image", 112, 112), 2]]), inputs_for(family, [[3, ("image", 112, 112), 2]] * 2)
    keep = torch.ones(one["input_ids"].shape[1], dtype=torch.bool)
    keep[3] = False  # one placeholder token fewer than the image's features
    short = dict(one, input_ids=one["input_ids"][:, keep], attention_mask=one["attention_mask"][:, keep])
    for call in (lambda: model(**short), lambda: generate(model, short)):
        with pytest.raises(
            ValueError, match=r"image 0 .*needs \d+ image placeholder tokens, but row 0 has a run of \d+"
        ):
            call()
    extra = {**two, "input_ids": one["input_ids"], "attention_mask": one["attention_mask"]}  # two images, one slot
    with pytest.raises(ValueError, match=r"2 image\(s\) were given but the image placeholder tokens hold only 1"):
        model(**extra)
    if family != "llava":
        with pytest.raises(ValueError, match="needs image_sizes"):
            model(**dict(one, image_sizes=None))


@pytest.mark.parametrize(
    "family, message",
    [
        ("gemma3", r"row 0 has a run of 15 image placeholder tokens at position 4, not a whole number of 4x4 tiles"),
        ("internvl", r"row 0 has a run of 15 image placeholder tokens at position 4, not a whole number of 4x4"),
        ("mistral3", r"image 0 \(2 rows of 3 tokens from image_sizes\) does not match row 0 at position 3"),
    ],
)
def test_tiles_that_do_not_match_the_placeholders_fail_clearly(family, message):
    model = mmrope_hf.patch_model(tiny(family), "mrope-i")
    inputs = inputs_for(family, [[3, ("image", 56, 84) if family == "mistral3" else ("image", 112, 112), 2]])
    keep = torch.ones(inputs["input_ids"].shape[1], dtype=torch.bool)
    keep[4] = False  # one placeholder token fewer than the image's features
    short = {k: v[:, keep] if k in ("input_ids", "attention_mask", "token_type_ids") else v for k, v in inputs.items()}
    for call in (lambda: model(**short), lambda: generate(model, short)):
        with pytest.raises(ValueError, match=message):
            call()


def test_a_tile_that_is_not_a_patch_grid_fails_clearly():
    """NeXT with a CLIP tower and the "full" strategy keeps the CLS feature in every tile: no grid to lay out (the
    stock model cannot pack it either)."""
    model = mmrope_hf.patch_model(tiny_llava("llava_next"), "mrope")
    inputs = inputs_for("llava_next", [[3, ("image", 112, 112), 2]])
    with pytest.raises(ValueError, match=r"strategy='full' a tile gives 17 features, not the 4x4 patch grid"):
        model(**inputs, vision_feature_select_strategy="full")


@pytest.mark.parametrize("family", LLAVA_FAMILIES)
def test_offline_processor_output_runs_patched(family):
    """The family's processor (PIL image processor, offline tokenizer) lays out exactly what the adapter expects:
    the patched logits equal the oracle forward on the layouts worked out by hand (PROCESSOR_LAYOUTS), and
    generate equals the teacher-forced forward."""
    processor = offline_llava_processor(family)
    images = [[synthetic_image(120, 60, seed=1)], [synthetic_image(40, 100, seed=2), synthetic_image(150, 300, seed=3)]]
    text = ["describe this <|image_pad|> image", "what is in <|image_pad|> the <|image_pad|> image"]
    if family != "llava_onevision":
        images = [image for row in images for image in row]
    inputs = dict(processor(images=images, text=text, padding=True, return_tensors="pt"))
    real = inputs["attention_mask"].bool()
    stock_model = tiny_llava(family)
    stock = logits(stock_model, inputs)
    want = oracle_logits(family, None, inputs, "mrope-i", model=stock_model, layouts=PROCESSOR_LAYOUTS[family])
    model = mmrope_hf.patch_model(tiny_llava(family), "mrope-i")
    got = logits(model, inputs)
    assert (got - stock).abs().max() > 1e-3
    torch.testing.assert_close(got[real], want[real], atol=float32_atol(want[real]), rtol=0)
    out = generate(model, inputs, 3)
    forced = dict(
        inputs,
        input_ids=out.sequences,
        attention_mask=torch.cat([inputs["attention_mask"], torch.ones(2, 3, dtype=torch.long)], 1),
    )
    torch.testing.assert_close(out.logits[-1], logits(model, forced)[:, -2], atol=ATOL, rtol=0)


@pytest.mark.parametrize("family, text_model", [("llava", "qwen2"), ("llava_onevision", "mistral")])
def test_other_language_models_inside(family, text_model):
    model = tiny_llava(family, text_model=text_model)
    text, images = inputs_for(family, [[7]]), inputs_for(family)
    stock_text, stock_images = logits(model, text), logits(model, images)
    oracle = tiny_llava(family, text_model=text_model)
    want = oracle_logits(family, None, images, "mhrope", model=oracle, layouts=REFERENCE_LAYOUTS[family])
    mmrope_hf.patch_model(model, "mhrope")
    assert torch.equal(logits(model, text), stock_text)
    assert (logits(model, images) - stock_images).abs().max() > 1e-3
    real = images["attention_mask"].bool()
    torch.testing.assert_close(logits(model, images)[real], want[real], atol=float32_atol(want[real]), rtol=0)
    out = generate(model, images)
    forced = dict(
        images,
        input_ids=out.sequences,
        attention_mask=torch.cat(
            [
                images["attention_mask"],
                torch.ones(2, out.sequences.shape[1] - images["input_ids"].shape[1], dtype=torch.long),
            ],
            1,
        ),
    )
    torch.testing.assert_close(out.logits[-1], logits(model, forced)[:, -2], atol=ATOL, rtol=0)


def test_save_and_load_round_trips_the_scheme(family, tmp_path):
    """Saved patched, loaded through the auto class: the same scheme on the loaded weights (the expectation is the
    same file loaded stock, then patched)."""
    patched = mmrope_hf.patch_model(tiny(family), "mrope-i")
    patched.save_pretrained(tmp_path)
    auto = transformers.AutoModelForImageTextToText
    loaded = auto.from_pretrained(tmp_path, attn_implementation="eager")
    stock = auto.from_pretrained(tmp_path, attn_implementation="eager", mmrope=None)
    assert type(loaded) is type(patched) and not mmrope_hf.is_patched(stock)
    assert mmrope_hf.patch_info(loaded) == mmrope_hf.patch_info(patched)
    inputs = inputs_for(family)
    stock_logits = logits(stock, inputs)
    assert torch.equal(logits(loaded, inputs), logits(mmrope_hf.patch_model(stock, "mrope-i"), inputs))
    assert not torch.equal(logits(loaded, inputs), stock_logits)


@pytest.mark.parametrize("family", ["llava_next", *TILE_FAMILIES])
@pytest.mark.parametrize("checkpointing", ["non-reentrant", "reentrant"])
def test_backward_with_and_without_gradient_checkpointing(family, checkpointing):
    inputs = inputs_for(family)
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    results = []
    for enabled in (False, True):
        model = mmrope_hf.patch_model(tiny(family), "circle").train()  # two position sets
        if enabled:
            model.activation_checkpointing_enable({"use_reentrant": checkpointing == "reentrant"})
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        results.append((loss.item(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (loss, grads), (loss_ckpt, grads_ckpt) = results
    assert loss == pytest.approx(loss_ckpt, abs=1e-6) and grads.keys() == grads_ckpt.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ckpt[name], atol=1e-5, rtol=0)
