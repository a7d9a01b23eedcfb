"""The README's code blocks run, so they cannot rot: Python blocks in order in one namespace (with a tiny
Qwen2.5-VL as ``model``), then the shell lines that call ``mmrope``, in a scratch directory."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from mmrope_hf.testing import tiny_model

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_code_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_scheme.yaml").write_text("scheme: mrope-i\ntemporal_stride: 1.0\n")
    (tmp_path / "docs").mkdir()
    namespace = {"model": tiny_model("qwen2_5_vl")}
    python = blocks("python")
    assert len(python) >= 3
    for code in python:
        exec(compile(code, str(README), "exec"), namespace)
    commands = [line.split("#")[0].strip() for code in blocks("bash") for line in code.splitlines()]
    commands = [c for c in commands if c.startswith("mmrope ")]
    assert len(commands) >= 5
    for command in commands:
        argv = [sys.executable, "-m", "mmrope_hf", *shlex.split(command)[1:]]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert (tmp_path / "docs" / "schemes.png").exists()
