"""Training: backward through a patched model, with and without gradient checkpointing."""

from __future__ import annotations

import pytest
import torch
from conftest import PROMPTS, SCHEMES, inputs_for
from oracle_forward import oracle_model

import mmrope_hf
from mmrope_hf.testing import tiny_model

SCHEDULES = [pytest.param(scheme, {}, id=scheme) for scheme in SCHEMES] + [
    pytest.param("mrope", {"layers": ["spatial-reset", "mrope"]}, id="two-position-sets")
]


def backward(model, family: str) -> tuple[float, dict]:
    inputs = inputs_for(family, "left_padded")
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    loss = model(**inputs, labels=labels).loss
    loss.backward()
    return loss.item(), {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


def gradients(family: str, scheme: str, options: dict, checkpointing: bool | str) -> tuple[float, dict]:
    model = mmrope_hf.patch_model(tiny_model(family), scheme, **options).train()
    if checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": checkpointing == "reentrant"})
    return backward(model, family)


@pytest.mark.parametrize("checkpointing", ["non-reentrant", "reentrant"])
@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_backward_with_and_without_gradient_checkpointing(family, scheme, options, checkpointing):
    loss, grads = gradients(family, scheme, options, checkpointing=False)
    loss_ckpt, grads_ckpt = gradients(family, scheme, options, checkpointing=checkpointing)
    assert any(g.abs().sum() > 0 for name, g in grads.items() if "q_proj" in name)
    assert loss == pytest.approx(loss_ckpt, abs=1e-6)
    assert grads.keys() == grads_ckpt.keys()
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_5"])  # a full-attention stack and a hybrid one
@pytest.mark.parametrize("scheme, options", SCHEDULES)
def test_loss_and_gradients_equal_the_oracle_models(family, scheme, options):
    """The patched model's loss and every gradient equal the stock model's fed the references' cos/sin
    (tests/oracle_forward.py) in training mode: the patch leaves the training graph as the maths says."""
    loss, grads = gradients(family, scheme, options, checkpointing=False)
    with oracle_model(family, PROMPTS["left_padded"], scheme, **options) as oracle:
        want_loss, want = backward(oracle.train(), family)
    assert loss == pytest.approx(want_loss, abs=1e-5)
    assert grads.keys() == want.keys()
    for name in grads:  # float32 angles against float64 maths, through two layers and the loss
        torch.testing.assert_close(grads[name], want[name], atol=1e-5, rtol=1e-3, msg=name)


def test_gradients_differ_between_schemes():
    """The patch reaches the training graph: MRoPE-I and stock MRoPE give different gradients on images."""
    _, stock = gradients("qwen2_5_vl", "mrope", {}, checkpointing=False)
    _, interleaved = gradients("qwen2_5_vl", "mrope-i", {}, checkpointing=False)
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert (stock[name] - interleaved[name]).abs().max() > 1e-6
