"""The examples run offline, and the README's test command is the one CI runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_and_shows_both_schemes():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], capture_output=True, text=True,
                         check=True, timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": ""}).stdout
    assert "mrope: mrope positions" in out and "mrope-i: spatial-reset positions" in out
    assert "first image tokens (t, h, w): [(3, 0, 0), (3, 0, 1)" in out
    assert "is_patched = False" in out


def test_ptd_example_shows_circle_at_zero():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "ptd.py")], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert "hard (1D, one row)         2.2222" in out and "circle (t, h, w)           0.0000" in out


def test_ci_runs_the_readme_test_command():
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert command.endswith("-m pytest -q")
    assert f"```bash\n{command}\n```" in (ROOT / "README.md").read_text()
