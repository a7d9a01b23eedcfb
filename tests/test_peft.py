"""A LoRA adapter trained on a patched model records its scheme; loading it applies the scheme to a stock base.

The expectation is the trained model's own logits (a stock base + the adapter must reproduce them), and the stock
model's (they must differ from those).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import inputs_for, logits
from peft import LoraConfig, PeftModel, get_peft_model

import mmrope_hf
from mmrope_hf.integrations import peft as peft_hooks
from mmrope_hf.testing import tiny_model

FAMILY, SCHEME = "qwen2_5_vl", "mrope-i"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A LoRA adapter trained for a few steps on the tiny model patched with mrope-i, saved; its logits."""
    inputs = inputs_for(FAMILY, "images")
    model = get_peft_model(
        mmrope_hf.patch_model(tiny_model(FAMILY), SCHEME), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    labels = inputs["input_ids"].clone()
    for _ in range(3):
        model(**inputs, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    adapter = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(adapter)
    return adapter, inputs, logits(model.eval(), inputs)


def test_the_adapter_config_records_the_scheme(trained):
    adapter, _, _ = trained
    recorded = json.loads((adapter / "adapter_config.json").read_text())["mmrope"]
    assert recorded == mmrope_hf.patch_model(tiny_model(FAMILY), SCHEME).config.mmrope


@pytest.mark.parametrize("route", ["PeftModel.from_pretrained", "model.load_adapter"])
def test_a_stock_base_gets_the_scheme_and_reproduces_the_trained_logits(trained, route):
    adapter, inputs, expected = trained
    base = tiny_model(FAMILY)
    stock = logits(base, inputs)
    if route == "PeftModel.from_pretrained":
        model = PeftModel.from_pretrained(base, adapter)
    else:
        base.load_adapter(str(adapter))
        model = base
    assert mmrope_hf.patch_info(model)["scheme"] == SCHEME
    torch.testing.assert_close(logits(model, inputs), expected, atol=1e-5, rtol=0)
    assert not torch.allclose(expected, stock, atol=1e-3)


def test_a_base_patched_with_the_same_scheme_is_left_alone(trained):
    adapter, inputs, expected = trained
    base = mmrope_hf.patch_model(tiny_model(FAMILY), SCHEME)
    state = base.model._mmrope
    model = PeftModel.from_pretrained(base, adapter)
    assert base.model._mmrope is state  # not re-patched
    torch.testing.assert_close(logits(model, inputs), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("route", ["PeftModel.from_pretrained", "model.load_adapter"])
def test_a_base_patched_with_another_scheme_is_refused(trained, route):
    adapter, _, _ = trained
    base = mmrope_hf.patch_model(tiny_model(FAMILY), "circle")
    load = (
        (lambda: PeftModel.from_pretrained(base, adapter))
        if route.startswith("Peft")
        else (lambda: base.load_adapter(str(adapter)))
    )
    match = rf"{adapter / 'adapter_config.json'}: this adapter was trained with the 'mrope-i' scheme, .* 'circle'"
    with pytest.raises(ValueError, match=match):
        load()
    assert not any("lora" in name for name, _ in base.named_modules())  # refused before any layer was injected
    assert mmrope_hf.patch_info(base)["scheme"] == "circle"


def test_an_adapter_attached_by_transformers_records_the_scheme_too(tmp_path):
    model = mmrope_hf.patch_model(tiny_model(FAMILY), "mhrope")
    model.add_adapter(LoraConfig(r=4, target_modules=["q_proj"]))
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["mmrope"]["scheme"] == "mhrope"


def test_an_unpatched_model_records_nothing(tmp_path):
    get_peft_model(tiny_model(FAMILY), LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(tmp_path)
    assert "mmrope" not in json.loads((tmp_path / "adapter_config.json").read_text())


def test_a_malformed_key_names_the_file(trained, tmp_path):
    adapter, _, _ = trained
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["mmrope"] = {"scheme": "no-such-scheme"}
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    (tmp_path / "adapter_model.safetensors").write_bytes((adapter / "adapter_model.safetensors").read_bytes())
    with pytest.raises(ValueError, match=rf'{tmp_path / "adapter_config.json"}: invalid "mmrope" key .*no-such'):
        PeftModel.from_pretrained(tiny_model(FAMILY), tmp_path)


def test_without_the_hooks_peft_warns_about_the_key_and_loads_stock(trained):
    adapter, _, _ = trained
    peft_hooks.uninstall()
    try:
        with pytest.warns(UserWarning, match=r"Unexpected keyword arguments \['mmrope'\]"):
            model = PeftModel.from_pretrained(tiny_model(FAMILY), adapter)
        assert not mmrope_hf.is_patched(model)
    finally:
        peft_hooks.install()
    assert peft_hooks.is_installed()


FRESH = """
import sys, torch, transformers, peft
{import_line}
base = transformers.AutoModelForImageTextToText.from_pretrained(sys.argv[1])
model = peft.PeftModel.from_pretrained(base, sys.argv[2])
with torch.no_grad():
    torch.save(model(**torch.load(sys.argv[3])).logits, sys.argv[4])
"""


@pytest.mark.slow
@pytest.mark.parametrize("import_line", ["import mmrope_hf", ""], ids=["import", "no-import (start-up hook)"])
def test_a_fresh_process_loads_a_stock_base_and_the_adapter(trained, tmp_path, import_line):
    adapter, inputs, expected = trained
    stock = tmp_path / "stock"
    tiny_model(FAMILY).save_pretrained(stock)
    torch.save(inputs, tmp_path / "inputs.pt")
    script = textwrap.dedent(FRESH.format(import_line=import_line))
    env = {"PATH": os.environ.get("PATH", ""), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", script, str(stock), str(adapter), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, atol=1e-5, rtol=0)
