"""What users do that peers broke on: dtypes, decoding strategies, stale state, hygiene, fuzzed layouts."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from conftest import PROMPTS, SCHEMES, inputs_for, logits, reference_layout
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle_forward import float32_atol, oracle_logits, oracle_model
from reference import rope_reference as ref

import mmrope_hf
from mmrope_hf.metrics import ptd
from mmrope_hf.testing import FAMILIES, build_inputs, tiny_model


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_half_precision_forward_matches_float32_and_positions_stay_fp32(scheme, dtype):
    """Logits within 4 eps(dtype) x max |logit| of the float32 model's (measured: 1.1 eps); in float16 that is
    0.005, well under the 0.02-0.04 by which the schemes differ from stock, so a fall-back would show."""
    inputs = inputs_for("qwen2_5_vl", "left_padded")
    real = inputs["attention_mask"].bool()
    want = logits(mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), scheme), inputs)[real]
    model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl").to(dtype), scheme)
    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    seen = []
    model.model.language_model.rotary_emb.register_forward_pre_hook(lambda m, args: seen.append(args[1].dtype))
    got = logits(model, inputs)[real]
    assert got.dtype == dtype
    atol = 4 * torch.finfo(dtype).eps * want.abs().max().item()
    torch.testing.assert_close(got.float(), want, atol=atol, rtol=0)
    assert seen[0] in (torch.long, torch.float32)  # positions reach the rotary in int64/fp32, never in half


def teacher_forced_log_probs(model, inputs: dict, sequences: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the generated tokens of ``sequences`` (``generate``'s rows: each input row repeated
    ``len(sequences) // batch`` times) under full forwards over them, 0 after a row's end-of-sequence token."""
    batch, length = inputs["input_ids"].shape
    repeat, new = len(sequences) // batch, sequences.shape[1] - length
    generated = sequences[:, length:]
    out = torch.zeros(generated.shape)
    for replica in range(repeat):  # sequences replica, replica + repeat, ... share the input batch's visual inputs
        rows = slice(replica, None, repeat)
        forced = dict(
            inputs,
            input_ids=sequences[rows],
            attention_mask=torch.cat([inputs["attention_mask"], torch.ones(batch, new, dtype=torch.long)], 1),
            mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"], torch.zeros(batch, new, dtype=torch.long)], 1),
        )
        log_probs = logits(model, forced)[:, length - 1 : -1].log_softmax(-1)
        out[rows] = log_probs.gather(-1, generated[rows, :, None]).squeeze(-1)
    eos = (generated == model.generation_config.eos_token_id).long()
    return out.masked_fill(eos.cumsum(1) - eos > 0, 0.0)


@pytest.mark.parametrize("scheme", ["mrope-i", "mhrope", "circle"])
def test_beam_search_scores_equal_a_teacher_forced_forward(scheme):
    """Every returned beam's score is the sum of its tokens' log-probabilities under a full forward over it
    (length_penalty 0: no length normalisation)."""
    model = mmrope_hf.patch_model(tiny_model("qwen3_vl"), scheme)
    inputs = inputs_for("qwen3_vl", "left_padded")
    out = model.generate(
        **inputs,
        max_new_tokens=3,
        num_beams=3,
        num_return_sequences=2,
        length_penalty=0.0,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert out.sequences.shape[0] == 4
    scores = teacher_forced_log_probs(model, inputs, out.sequences).sum(-1)
    torch.testing.assert_close(out.sequences_scores, scores, atol=1e-4, rtol=0)


@pytest.mark.parametrize("scheme", ["mrope-i", "mhrope", "circle"])
def test_top_k_sampling_draws_from_the_teacher_forced_top_k(scheme):
    model = mmrope_hf.patch_model(tiny_model("qwen3_vl"), scheme)
    inputs = inputs_for("qwen3_vl", "left_padded")
    torch.manual_seed(0)
    sampled = model.generate(
        **inputs, max_new_tokens=3, do_sample=True, top_k=5, output_logits=True, return_dict_in_generate=True
    )
    length = inputs["input_ids"].shape[1]
    forced = dict(
        inputs,
        input_ids=sampled.sequences,
        attention_mask=torch.cat([inputs["attention_mask"], torch.ones(2, 3, dtype=torch.long)], 1),
        mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"], torch.zeros(2, 3, dtype=torch.long)], 1),
    )
    full = logits(model, forced)[:, length - 1 : -1]
    torch.testing.assert_close(torch.stack(sampled.logits, 1), full, atol=1e-5, rtol=0)
    top5 = full.topk(5, dim=-1).indices
    assert (top5 == sampled.sequences[:, length:, None]).any(-1).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_inputs_embeds_without_input_ids_and_with_grids_fails_clearly(family):
    model = mmrope_hf.patch_model(tiny_model(family), "mrope-i")
    inputs = inputs_for(family, "one_image")
    embeds = model.get_input_embeddings()(inputs.pop("input_ids"))
    with pytest.raises(ValueError, match="inputs_embeds without input_ids"):
        model(inputs_embeds=embeds, **inputs)


def test_explicit_position_ids_are_used_as_given():
    model = mmrope_hf.patch_model(tiny_model("qwen2_vl"), "mrope-i")
    inputs = inputs_for("qwen2_vl", "one_image")
    keys = ("mm_token_type_ids", "image_grid_thw", "attention_mask")
    positions, _ = model.model.get_rope_index(inputs["input_ids"], **{k: inputs[k] for k in keys})
    assert torch.equal(logits(model, {**inputs, "position_ids": positions}), logits(model, inputs))
    # Other positions given: the reference's vanilla ones (p, p, p), which every pair map reads alike.
    vanilla, _ = ref.positions(reference_layout("qwen2_vl", PROMPTS["one_image"][0]), "vanilla")
    given = torch.tensor(vanilla).T[:, None]
    want = oracle_logits("qwen2_vl", PROMPTS["one_image"], inputs, "vanilla")
    torch.testing.assert_close(logits(model, {**inputs, "position_ids": given}), want, atol=float32_atol(want), rtol=0)


def test_hygiene_to_half_compile_and_config_pickle():
    family = "qwen2_5_vl"
    inputs = inputs_for(family, "images")
    model = mmrope_hf.patch_model(tiny_model(family), "circle")
    expected = logits(model, inputs)
    want = oracle_logits(family, PROMPTS["images"], inputs, "circle")
    torch.testing.assert_close(expected, want, atol=float32_atol(want), rtol=0)
    model.to("cpu").half().float()
    assert mmrope_hf.is_patched(model)
    torch.testing.assert_close(logits(model, inputs), expected, atol=5e-3, rtol=0)
    assert pickle.loads(pickle.dumps(model.config)).mmrope == model.config.mmrope
    assert copy.deepcopy(model.config).mmrope["scheme"] == "circle"
    compiled = torch.compile(model.model.language_model.rotary_emb, backend="eager")
    positions = torch.arange(6).view(1, 1, 6).expand(6, 1, 6)
    for got, want in zip(
        compiled(torch.zeros(1), positions),
        model.model.language_model.rotary_emb(torch.zeros(1), positions),
        strict=True,
    ):
        assert torch.equal(got, want)
    # Text: one 1D table, from the inverse frequencies as .half() left them (rounded to float16, as on stock models).
    inv_freq = torch.tensor(ref.inv_freq(32, 10000.0)).half().double().tolist()
    text = [ref.cos_sin((p, p, p), [0] * 16, inv_freq) for p in range(6)]
    for got, want in zip(compiled(torch.zeros(1), positions), zip(*text, strict=True), strict=True):
        torch.testing.assert_close(got[0, 0].double(), torch.tensor(want, dtype=torch.float64), atol=1e-6, rtol=0)


def test_deepcopy_of_a_patched_model_fails_clearly_and_works_after_unpatch():
    model = mmrope_hf.patch_model(tiny_model("qwen2_vl"), "circle")
    with pytest.raises(TypeError, match="deepcopy of a model patched with 'circle' is not supported: unpatch_model"):
        copy.deepcopy(model)
    scheme = model.config.mmrope
    clone = copy.deepcopy(mmrope_hf.unpatch_model(model))
    for m in (model, clone):
        mmrope_hf.patch_model(m, scheme)
    inputs = inputs_for("qwen2_vl", "images")
    assert torch.equal(logits(model, inputs), logits(clone, inputs))
    want = oracle_logits("qwen2_vl", PROMPTS["images"], inputs, "circle")
    torch.testing.assert_close(logits(clone, inputs), want, atol=float32_atol(want), rtol=0)


def test_unpatch_after_generate_restores_stock_outputs():
    family = "qwen3_vl"
    inputs = inputs_for(family, "left_padded")
    model = tiny_model(family)
    stock = logits(model, inputs), model.generate(**inputs, max_new_tokens=3, do_sample=False)
    mmrope_hf.patch_model(model, "circle")
    model.generate(**inputs, max_new_tokens=3, do_sample=False)
    mmrope_hf.unpatch_model(model)
    assert torch.equal(logits(model, inputs), stock[0])
    assert torch.equal(model.generate(**inputs, max_new_tokens=3, do_sample=False), stock[1])


# Fuzzing: random layouts against the independent reference and each design's invariants -----------------

ITEM = st.one_of(
    st.integers(1, 4),
    st.tuples(
        st.just("image"), st.just(1), st.integers(1, 4).map(lambda n: 2 * n), st.integers(1, 4).map(lambda n: 2 * n)
    ),
    st.tuples(
        st.just("video"),
        st.integers(1, 3),
        st.integers(1, 3).map(lambda n: 2 * n),
        st.integers(1, 3).map(lambda n: 2 * n),
    ),
)
ROWS = st.lists(st.lists(ITEM, min_size=1, max_size=5), min_size=1, max_size=3)
MODELS = {}


def patched(family: str, scheme: str, **options):
    key = (family, scheme, tuple(sorted(options.items())))
    if key not in MODELS:
        MODELS[key] = mmrope_hf.patch_model(tiny_model(family), scheme, **options)
    return MODELS[key]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=ROWS,
    family=st.sampled_from(["qwen2_vl", "qwen3_vl"]),
    side=st.sampled_from(["left", "right"]),
    design=st.sampled_from(["mrope", "spatial-reset", "vanilla"]),
)
def test_fuzzed_layouts_match_the_reference(rows, family, side, design):
    inputs = build_inputs(family, rows, padding_side=side)
    keys = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "attention_mask")
    model = patched(family, "mrope", position=design, temporal_stride=1.0)
    positions, _ = model.model.get_rope_index(inputs["input_ids"], **{k: inputs.get(k) for k in keys})
    expected, _ = ref.batch_positions([reference_layout(family, r) for r in rows], pad_side=side, design=design)
    got = [[tuple(p) for p in positions[:, b].T.tolist()] for b in range(len(rows))]
    assert got == [[tuple(p) for p in row] for row in expected]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS)
def test_fuzzed_invariants(rows):
    family = "qwen2_vl"
    inputs = build_inputs(family, rows, padding_side="left")
    keys = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "attention_mask")
    text = (inputs["mm_token_type_ids"] == 0) & inputs["attention_mask"].bool()
    for scheme in ("spatial-reset", "circle"):
        positions, _ = patched(family, scheme).model.get_rope_index(
            inputs["input_ids"], **{k: inputs.get(k) for k in keys}
        )
        positions = positions[:3]
        assert torch.equal(positions[0][text], positions[1][text]) and torch.equal(
            positions[1][text], positions[2][text]
        )
        for b in range(len(rows)):
            visual = inputs["mm_token_type_ids"][b] > 0
            if visual.any() and scheme == "spatial-reset":
                assert positions[1, b][visual].min() == 0 and positions[2, b][visual].min() == 0
            if (
                visual.any()
                and text[b].any()
                and scheme == "circle"
                and "image_grid_thw" in inputs
                and "video_grid_thw" not in inputs
            ):
                single_image = [item for item in rows[b] if not isinstance(item, int)][:1]
                if len([i for i in rows[b] if not isinstance(i, int)]) == 1 and single_image[0][0] == "image":
                    assert ptd(positions[:, b], visual, text[b]) < 1e-4


def test_training_forward_after_generate_with_another_batch_size():
    """transformers#44873: rope_deltas of a batch-N generate must not leak into a batch-M training forward."""
    family = "qwen2_5_vl"
    used = mmrope_hf.patch_model(tiny_model(family), "circle")
    used.generate(**inputs_for(family, "left_padded"), max_new_tokens=2, do_sample=False)
    single = inputs_for(family, "images")
    fresh = mmrope_hf.patch_model(tiny_model(family), "circle")
    labels = single["input_ids"]
    assert torch.equal(used(**single, labels=labels).loss, fresh(**single, labels=labels).loss)
    with oracle_model(family, PROMPTS["images"], "circle") as oracle:
        want = oracle(**single, labels=labels).loss
    torch.testing.assert_close(used(**single, labels=labels).loss, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scheme", ["mrope", "mrope-i", "circle"])
def test_generate_keeps_the_video_timing(scheme):
    """transformers#41152: generate must pass second_per_grid_ts to the positions, as the forward does."""
    family = "qwen2_5_vl"
    model = mmrope_hf.patch_model(tiny_model(family), scheme)
    inputs = inputs_for(family, "video", second_per_grid_ts=[0.75])
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False, output_logits=True, return_dict_in_generate=True)
    length, new = inputs["input_ids"].shape[1], len(out.logits)
    forced = dict(
        inputs,
        input_ids=out.sequences,
        attention_mask=torch.ones_like(out.sequences),
        mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"], torch.zeros(1, new, dtype=torch.long)], 1),
    )
    full = logits(model, forced)
    for i, step in enumerate(out.logits):
        torch.testing.assert_close(step, full[:, length - 1 + i], atol=1e-5, rtol=0)
    # The full forward itself: the reference with a temporal step of tokens_per_second (2) x 0.75 s (own rule).
    ((pre, video, post),) = PROMPTS["video"]
    want = oracle_logits(family, [[pre, video, post + new]], forced, scheme, own=1.5)
    torch.testing.assert_close(full, want, atol=float32_atol(want), rtol=0)
