"""The collator: positions equal the patched model's own per sample; packed rows give each sample's logits alone."""

from __future__ import annotations

import pytest
import torch
from conftest import reference_layout
from oracle_forward import float32_atol, oracle_logits
from reference import baselines_reference

import mmrope_hf
from mmrope_hf.integrations.training import IGNORE_INDEX, MMRopeCollator, sample_boundaries
from mmrope_hf.testing import FAMILIES, build_inputs, has_video, tiny_model

PAPER = ("mrope-i-paper", "mhrope-paper", "circle-age")  # sections for head_dim 128 / 8 KV heads
SAMPLE_ROWS = [
    [3, ("image", 1, 4, 4), 2],
    [5, ("image", 1, 4, 6), 4, ("image", 1, 6, 4), 1],
    [6],
    [2, ("video", 2, 4, 4), 3],
]
KEYS = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "attention_mask", "second_per_grid_ts")


def samples_for(family: str, rows=SAMPLE_ROWS) -> list[dict]:
    if not has_video(family):
        rows = [row for row in rows if not any(isinstance(item, tuple) and item[0] == "video" for item in row)]
    return [build_inputs(family, [row], seed=i) for i, row in enumerate(rows)]


def own_positions(model, inputs: dict) -> torch.Tensor:
    return model.model.get_rope_index(inputs["input_ids"], **{k: inputs[k] for k in KEYS if k in inputs})[0]


def model_for(family: str, scheme: str, **overrides):
    if scheme in PAPER:
        if family not in ("qwen3_vl", "qwen3_vl_moe"):
            pytest.skip(f"{scheme} needs 64 rotary pairs: only the Qwen3-VL tiny configs take a head_dim override")
        overrides.update(head_dim=128, num_key_value_heads=8)
    return mmrope_hf.patch_model(tiny_model(family, **overrides), scheme)


@pytest.mark.parametrize("scheme", mmrope_hf.available_schemes())
def test_positions_equal_model_positions_per_sample(family, scheme):
    model = model_for(family, scheme)
    samples = samples_for(family)
    packed = MMRopeCollator(model, "packed", max_length=10_000)(samples)
    assert packed["position_ids"].shape[1] == 1
    owner = torch.tensor([i for i, s in enumerate(samples) for _ in range(s["input_ids"].shape[1])])
    assert torch.equal(sample_boundaries(packed["position_ids"])[0], owner)
    start = 0
    for sample in samples:
        n = sample["input_ids"].shape[1]
        expected = own_positions(model, sample)[:, 0]
        got = packed["position_ids"][1:, 0, start : start + n]
        torch.testing.assert_close(got, expected.to(got.dtype), atol=0, rtol=0)
        assert torch.equal(packed["position_ids"][0, 0, start : start + n], torch.arange(n, dtype=got.dtype))
        start += n
    for side in ("left", "right"):  # padded batches: the model's positions for the same padded batch
        batch = MMRopeCollator(model, "padded", padding_side=side)(samples)
        expected = own_positions(model, batch)
        torch.testing.assert_close(batch["position_ids"][1:], expected.to(batch["position_ids"].dtype), atol=0, rtol=0)
        real = batch["attention_mask"].bool()
        assert (batch["labels"][~real] == IGNORE_INDEX).all()


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("scheme", ["mrope-i", "circle", "ilrope"])
def test_scheme_collator_equals_model_collator(family, scheme):
    model = mmrope_hf.patch_model(tiny_model(family), scheme)
    samples = samples_for(family)
    extra = dict(tokens_per_second=2) if family == "qwen2_5_vl" else dict(split_video_frames=True)
    for mode in ("padded", "packed"):
        a = MMRopeCollator(model, mode)(samples)["position_ids"]
        b = MMRopeCollator(scheme, mode, num_layers=2, **extra)(samples)["position_ids"]
        torch.testing.assert_close(a, b, atol=0, rtol=0)


PACKED_CASES = [
    pytest.param("mrope-i", {}, id="mrope-i"),
    pytest.param("circle", {"layers": "alternate"}, id="circle-alternate"),
    pytest.param("mhrope", {}, id="mhrope"),
]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("scheme, options", PACKED_CASES)
def test_packed_logits_equal_each_sample_alone(family, attn, scheme, options):
    model = mmrope_hf.patch_model(tiny_model(family, attn_implementation=attn), scheme, **options)
    samples = samples_for(family)
    lengths = [s["input_ids"].shape[1] for s in samples]
    # two packed rows (the second padded on the right), so row packing and trailing padding are both exercised
    batch = MMRopeCollator(model, "packed", max_length=lengths[0] + lengths[1] + 1)(samples)
    assert batch["position_ids"].shape[:2] == (3 * model.model._mmrope.schedule.num_sets + 1, 2)
    assert "attention_mask" not in batch
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        placement = [(0, 0), (0, lengths[0]), (1, 0), (1, lengths[2])]
        rows = [
            r for r in SAMPLE_ROWS if has_video(family) or not any(isinstance(i, tuple) and i[0] == "video" for i in r)
        ]
        for sample, sample_row, (row, start) in zip(samples, rows, placement, strict=True):
            alone = model(**sample).logits[0]
            got = packed[row, start : start + alone.shape[0]]
            assert (got - alone).abs().max().item() <= 1e-5
            if attn == "eager":  # each sample alone is the oracle forward (tests/oracle_forward.py)
                want = oracle_logits(family, [sample_row], sample, scheme, **options)[0]
                torch.testing.assert_close(alone, want, atol=float32_atol(want), rtol=0)


def test_packed_loss_is_the_token_weighted_mean_of_sample_losses():
    model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl", attn_implementation="sdpa"), "circle")
    samples = samples_for("qwen2_5_vl")
    collator = MMRopeCollator(model, "packed", max_length=10_000)
    batch = collator(samples)
    starts = torch.tensor([0] + [s["input_ids"].shape[1] for s in samples]).cumsum(0)[:-1]
    assert (batch["labels"][0, starts] == IGNORE_INDEX).all()
    assert (batch["labels"][batch["mm_token_type_ids"] != 0] == IGNORE_INDEX).all()
    with torch.no_grad():
        packed = model(**batch).loss
        total, count = 0.0, 0
        for sample in samples:
            single = collator([sample])
            n = int((single["labels"][0, 1:] != IGNORE_INDEX).sum())
            total, count = total + model(**single).loss * n, count + n
    torch.testing.assert_close(packed, total / count, atol=1e-6, rtol=0)


def test_image_split_across_the_row_boundary_fails_clearly():
    samples = samples_for("qwen2_5_vl", [[3, ("image", 1, 4, 4), 2], [2, ("image", 1, 8, 8), 2]])
    collator = MMRopeCollator("mrope-i", "packed", max_length=12, truncate=True)
    with pytest.raises(ValueError, match="would split an image"):
        collator(samples)
    with pytest.raises(ValueError, match="more than max_length"):  # a cut in text, without truncate=True
        MMRopeCollator("mrope-i", "packed", max_length=10)(samples_for("qwen2_5_vl", [[3, ("image", 1, 4, 4), 2]]))


def test_mismatched_grids_fail_clearly():
    sample = build_inputs("qwen2_5_vl", [[3, ("image", 1, 4, 4), 2]])
    for mode in ("padded", "packed"):
        with pytest.raises(
            ValueError, match=r"sample 1: 4 image placeholder tokens but image_grid_thw \[\[1, 4, 6\]\]"
        ):
            MMRopeCollator("mrope-i", mode)([sample, {**sample, "image_grid_thw": torch.tensor([[1, 4, 6]])}])
    with pytest.raises(ValueError, match="pixel_values has 14 rows"):
        MMRopeCollator("mrope-i")([{**sample, "pixel_values": sample["pixel_values"][:-2]}])
    with pytest.raises(ValueError, match="no mm_token_type_ids"):
        MMRopeCollator("mrope-i")([{k: v for k, v in sample.items() if k != "mm_token_type_ids"}])


@pytest.mark.parametrize("family", FAMILIES)
def test_multi_set_relay_keeps_the_text_row_and_unpatches(family):
    """K > 1: the text model sees 4 rows (text + set 0); the rotary still gets every set (the collator's rows 1..3K,
    as given); unpatch removes it."""
    model = mmrope_hf.patch_model(tiny_model(family, attn_implementation="sdpa"), "circle")
    text_model = model.model.language_model
    seen = {}
    handles = [
        text_model.register_forward_pre_hook(
            lambda m, a, kw: seen.update(rows=kw["position_ids"].shape[0]), with_kwargs=True
        ),
        text_model.rotary_emb.register_forward_pre_hook(  # runs after the relay's hook: what the rotary reads
            lambda m, a, kw: seen.update(rotary=a[1] if len(a) > 1 else kw["position_ids"]), with_kwargs=True
        ),
    ]
    batch = MMRopeCollator(model, "packed", max_length=10_000)(samples_for(family)[:2])
    assert batch["position_ids"].shape[0] == 7  # text row + circle + mrope
    with torch.no_grad():
        model(**{k: v for k, v in batch.items() if k != "labels"})
    for handle in handles:
        handle.remove()
    assert seen["rows"] == 4
    assert torch.equal(seen["rotary"], batch["position_ids"][1:])
    mmrope_hf.unpatch_model(model)
    assert not text_model._forward_pre_hooks and not text_model._forward_hooks


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("scheme, options", PACKED_CASES)
def test_padded_batch_logits_equal_the_model_computing_its_own_positions(scheme, options, side):
    model = mmrope_hf.patch_model(tiny_model("qwen3_vl", attn_implementation="sdpa"), scheme, **options)
    batch = MMRopeCollator(model, "padded", padding_side=side)(samples_for("qwen3_vl"))
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "position_ids")}
    with torch.no_grad():
        given, own = model(**inputs, position_ids=batch["position_ids"]).logits, model(**inputs).logits
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(given[real], own[real], atol=1e-5, rtol=0)


def test_packed_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl", attn_implementation="sdpa"), "circle").train()
        if checkpointing:
            model.activation_checkpointing_enable({"use_reentrant": False})
        model(**MMRopeCollator(model, "packed", max_length=10_000)(samples_for("qwen2_5_vl"))).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_train_packed_example_runs():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "train_packed.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=120).stdout
    losses = [float(line.split("loss ")[1].split()[0]) for line in out.splitlines() if line.startswith("step ")]
    assert len(losses) == 6 and losses[-1] < losses[0] and "done" in out


def test_collator_follows_the_model_training_mode():
    """HoPE draws its temporal strides while training: the collator must draw them too, not hand the model its
    inference-mode positions (which would silently train with a fixed stride)."""
    model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), "hope")
    sample = build_inputs("qwen2_5_vl", [[2, ("video", 4, 4, 4), 2]])
    collator = MMRopeCollator(model, "padded")
    model.eval()
    fixed = collator([sample])["position_ids"]
    assert torch.equal(fixed, collator([sample])["position_ids"])
    model.train()
    drawn = [collator([sample])["position_ids"] for _ in range(4)]
    assert any(not torch.equal(d, fixed) for d in drawn)
    # The values: eval is the reference's HoPE at the fixed stride 1; training with one choice is HoPE at that stride
    layout = reference_layout("qwen2_5_vl", [2, ("video", 4, 4, 4), 2])
    assert [tuple(p) for p in fixed[1:, 0].T.tolist()] == baselines_reference.positions(layout, "hope", 1.0)[0]
    model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), "hope", temporal_stride_choices=[1.25]).train()
    trained = MMRopeCollator(model, "padded")([sample])["position_ids"]
    assert [tuple(p) for p in trained[1:, 0].T.tolist()] == baselines_reference.positions(layout, "hope", 1.25)[0]
