"""benchmarks/gpu_check.py without a GPU: it says that it needs one (exit 3); its dry run on the CPU runs the same
measurements on tiny models; its goals are judged as the issue states them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
sys.path.insert(0, str(SCRIPT.parent))

import gpu_check  # noqa: E402


def run_script(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout
    )


@pytest.mark.slow
@pytest.mark.parametrize("args", [(), ("--device", "cpu")], ids=["cuda", "cpu-without-dry-run"])
def test_without_a_gpu_it_says_it_needs_one(args):
    result = run_script(*args)
    assert result.returncode == gpu_check.EXIT_NEEDS_GPU == 3
    assert "gpu_check needs a CUDA GPU" in result.stderr and "torch.cuda.is_available() is False" in result.stderr
    assert "MISSED" not in result.stdout


@pytest.mark.slow
def test_dry_run_on_the_cpu_measures_every_column(tmp_path):
    out = tmp_path / "check.json"
    schemes = ("mrope-i", "circle", "mhrope-paper", "videorope")
    result = run_script(
        "--device", "cpu", "--dry-run", "--schemes", *schemes, "--compile-schemes", "circle", "--json", str(out)
    )
    assert result.returncode == gpu_check.EXIT_OK, result.stdout + result.stderr
    assert "dry run: timings are not judged" in result.stdout
    rows = {r["scheme"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"(stock)", *schemes}
    for scheme in schemes:
        assert rows[scheme]["forward"] > 0 and rows[scheme]["decode"] > 0, rows[scheme]
        assert rows[scheme]["syncs"] is None  # counted on CUDA only
    assert rows["mhrope-paper"]["family"] == "qwen3_vl" and rows["circle"]["family"] == "qwen2_5_vl"
    assert rows["circle"]["compiled_equal"] is True and rows["circle"]["compiled_speedup"] > 0
    assert rows["(stock)"]["compiled_equal"] is True and rows["mrope-i"]["compiled_equal"] is None


def settings(dry_run: bool) -> gpu_check.Settings:
    return gpu_check.Settings("cuda", dry_run, 2048, 10, 8, 1.05)


@pytest.mark.parametrize(
    "row, dry_run, missed",
    [
        (gpu_check.Row("mrope-i", "qwen2_5_vl", forward=1.02, decode=1.3, syncs=0, compiled_equal=True), False, 0),
        (gpu_check.Row("mrope-i", "qwen2_5_vl", forward=1.02, syncs=1), False, 1),  # a sync in decode
        (gpu_check.Row("mrope-i", "qwen2_5_vl", forward=1.06, syncs=0), False, 1),  # forward over 1.05
        (gpu_check.Row("mrope-i", "qwen2_5_vl", forward=1.06), True, 0),  # not judged on a dry run
        (gpu_check.Row("circle", "qwen2_5_vl", compiled_equal=False, stock_compiled_equal=True), False, 1),
        (gpu_check.Row("circle", "qwen2_5_vl", compiled_equal=False, stock_compiled_equal=False), False, 0),  # bf16
        (gpu_check.Row("circle", "qwen2_5_vl", forward=1.2, syncs=2, compiled_equal=False), False, 3),
    ],
)
def test_goals(row, dry_run, missed):
    assert len(gpu_check.missed_goals([row], settings(dry_run))) == missed
