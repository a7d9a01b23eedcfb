"""Each family's stock-equivalent scheme (`mrope`; `vanilla` on the 1D-RoPE families) reproduces stored outputs of
the unpatched models (tests/fixtures/make_reference.py).

A drift prints which family, prompt and tensor, and the largest error. Qwen2/2.5-VL and ERNIE are compared with
``vision_advance="spatial"``, the transformers 5.23 rule after multi-group videos (the default follows max + 1,
see README); on every other input the two rules agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import mmrope_hf
from mmrope_hf.patches import ADAPTERS
from mmrope_hf.positions.design import PositionDesign, RowPositions
from mmrope_hf.positions.registry import POSITION_DESIGNS
from mmrope_hf.testing import MROPE_FAMILIES

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from make_reference import ROPE_KEYS, pixel_checksum, sampled_logits  # noqa: E402
from reference_prompts import ONE_D_FAMILIES, prompts, tiny  # noqa: E402

LOGITS_ATOL = 1e-5


def load(family: str) -> tuple[dict, dict]:
    with safe_open(str(FIXTURES / f"stock_{family}.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def drift(family: str, model) -> list[str]:
    """Every difference between ``model`` and the stored stock outputs, as readable lines."""
    stored, meta = load(family)
    made_with = f"(fixtures made with transformers {meta['transformers']}, torch {meta['torch']})"
    problems = []
    for name, inputs in prompts(family).items():

        def check(tensor: str, got: torch.Tensor, exact: bool = True, name: str = name) -> None:
            want = stored[f"{name}/{tensor}"]
            if got.shape != want.shape:
                problems.append(f"{family}/{name}/{tensor}: shape {tuple(got.shape)} != stored {tuple(want.shape)}")
                return
            error = (got.double() - want.double()).abs().max().item() if got.numel() else 0.0
            if (exact and not torch.equal(got, want)) or error > LOGITS_ATOL:
                problems.append(f"{family}/{name}/{tensor}: max abs error {error:.3g} {made_with}")

        check("input_ids", inputs["input_ids"])
        check("pixel_checksum", pixel_checksum(inputs), exact=False)
        if f"{name}/positions" in stored:
            positions, deltas = model.model.get_rope_index(inputs["input_ids"], **{k: inputs.get(k) for k in ROPE_KEYS})
            check("positions", positions)
            check("rope_deltas", deltas)
        with torch.no_grad():
            check("logits", sampled_logits(model(**inputs).logits), exact=False)
        if f"{name}/generated" in stored:
            generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
            check("generated", generated[:, inputs["input_ids"].shape[1] :])
    return problems


def patched_stock_scheme(family: str):
    """The family's tiny model patched with the scheme the README's family table marks ``stock``."""
    advance = {"vision_advance": "spatial"} if family in ("qwen2_vl", "qwen2_5_vl", "ernie4_5_vl_moe") else {}
    return mmrope_hf.patch_model(tiny(family), ADAPTERS.get(family).stock_scheme, **advance)


@pytest.mark.parametrize("family", (*MROPE_FAMILIES, *ONE_D_FAMILIES))
def test_the_stock_scheme_matches_the_stored_stock_outputs(family):
    problems = drift(family, patched_stock_scheme(family))
    assert not problems, "the stock-equivalent scheme drifted from the stock fixtures:\n" + "\n".join(problems)


def test_a_broken_position_rule_fails_the_parity_check(monkeypatch):
    stock = POSITION_DESIGNS.get("mrope")

    def transposed(segments, options) -> RowPositions:  # h and w swapped: images read transposed
        row = stock.row(segments, options)
        return RowPositions(row.positions[[0, 2, 1]], row.next_position)

    monkeypatch.setitem(POSITION_DESIGNS._items, "mrope", PositionDesign(transposed))
    problems = drift("qwen2_vl", patched_stock_scheme("qwen2_vl"))
    assert any("qwen2_vl/one_image/positions" in p for p in problems)
    assert any("qwen2_vl/one_image/logits: max abs error" in p for p in problems)
