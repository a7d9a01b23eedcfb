"""The installed package carries its adapters and presets, and its console script runs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import mmrope_hf
from mmrope_hf.patches import ADAPTERS

ROOT = Path(__file__).resolve().parents[1]


def test_patches_and_configs_are_subpackages():
    patches = importlib.import_module("mmrope_hf.patches")
    assert Path(patches.__file__).parent == ROOT / "patches"
    names = sorted(f.name for f in resources.files("mmrope_hf.configs").iterdir() if f.name.endswith(".yaml"))
    assert names == sorted(f"{s}.yaml" for s in mmrope_hf.available_schemes())
    assert names == sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))


def test_every_supported_model_type_has_an_adapter():
    importlib.import_module("mmrope_hf.patches")
    assert set(ADAPTERS.names()) == {
        "qwen2_vl",
        "qwen2_5_vl",
        "qwen3_vl",
        "qwen3_vl_moe",
        "qwen3_5",
        "qwen3_5_moe",
        "glm4v",
        "glm4v_moe",
        "glm46v",
        "glm_ocr",
        "paddleocr_vl",
        "ernie4_5_vl_moe",
        "cosmos3_edge",
        "llava",
        "gemma3",
        "idefics3",
        "smolvlm",
        "internvl",
        "mistral3",
        "llava_next",
        "llava_onevision",
    }


@pytest.mark.slow
def test_console_script_and_module_entry_point():
    script = Path(sys.executable).with_name("mmrope")
    out = subprocess.run([str(script), "schemes"], capture_output=True, text=True, check=True).stdout
    assert "mrope-i" in out
    out = subprocess.run([sys.executable, "-m", "mmrope_hf", "--version"], capture_output=True, text=True, check=True)
    assert mmrope_hf.__version__ in out.stdout


WHEEL_SCRIPT = """
import sys
from pathlib import Path

import transformers

import mmrope_hf
import mmrope_hf.patches
from mmrope_hf.integrations.cli.cli import main
from mmrope_hf.testing import tiny_model

for module in (mmrope_hf, mmrope_hf.patches):  # the wheel's copy, not the editable checkout
    assert Path(module.__file__).is_relative_to(sys.prefix), module.__file__
print(" ".join(mmrope_hf.available_schemes()))
assert main(["resolve", "mrope-i"]) == 0
tiny_model("qwen2_5_vl").save_pretrained(sys.argv[1])
model = transformers.AutoModelForImageTextToText.from_pretrained(sys.argv[1], mmrope="mrope-i")
assert mmrope_hf.patch_info(model)["position"] == "spatial-reset"
"""


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_loads_presets_by_name(tmp_path, wheel_python):
    """The wheel, pip-installed into a new venv (``wheel_python`` in conftest.py), uses presets by name."""
    assert "from mmrope_hf.integrations.cli.cli import main" in wheel_python.with_name("mmrope").read_text()  # script
    script = [wheel_python, "-I", "-c", WHEEL_SCRIPT, tmp_path / "ck"]
    out = subprocess.run(script, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    assert '"scheme": "mrope-i"' in out.stdout
