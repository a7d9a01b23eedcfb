"""The installed package carries its adapters and presets, and its console script runs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import resources
from pathlib import Path

import mmrope_hf
from mmrope_hf.adapters import ADAPTERS

ROOT = Path(__file__).resolve().parents[1]


def test_patches_and_configs_are_subpackages():
    patches = importlib.import_module("mmrope_hf.patches")
    assert Path(patches.__file__).parent == ROOT / "patches"
    names = sorted(f.name for f in resources.files("mmrope_hf.configs").iterdir() if f.name.endswith(".yaml"))
    assert names == sorted(f"{s}.yaml" for s in mmrope_hf.available_schemes())
    assert names == sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))


def test_every_qwen_model_type_has_an_adapter():
    importlib.import_module("mmrope_hf.patches")
    assert set(ADAPTERS.names()) == {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe"}


def test_console_script_and_module_entry_point():
    script = Path(sys.executable).with_name("mmrope")
    out = subprocess.run([str(script), "schemes"], capture_output=True, text=True, check=True).stdout
    assert "mrope-i" in out
    out = subprocess.run([sys.executable, "-m", "mmrope_hf", "--version"], capture_output=True, text=True, check=True)
    assert mmrope_hf.__version__ in out.stdout
