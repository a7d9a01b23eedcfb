"""The examples run offline, and the README's test command is the one CI runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_runs_and_shows_both_schemes():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"HF_HUB_OFFLINE": "1", "PATH": ""},
    ).stdout
    assert "mrope: mrope positions" in out and "mrope-i: spatial-reset positions" in out
    assert "first image tokens (t, h, w): [(3, 0, 0), (3, 0, 1)" in out
    assert "is_patched = False" in out


@pytest.mark.slow
def test_ptd_example_shows_circle_at_zero():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ptd.py")], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "hard (1D, one row)         2.2222" in out and "circle (t, h, w)           0.0000" in out


@pytest.mark.parametrize(
    "example, expected",
    [
        ("load_checkpoint.py", "logits identical to the saved model: True"),
        ("finetune.py", "(down)"),
        ("compare_schemes.py", "circle "),
    ],
)
@pytest.mark.slow
def test_examples_run(example, expected):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert expected in out


@pytest.mark.slow
def test_inspect_prints_the_table_and_draws(tmp_path):
    png = tmp_path / "schemes.png"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmrope_hf",
            "inspect",
            "--text",
            "3",
            "--image",
            "1x8x8",
            "--text",
            "2",
            "--scheme",
            "mrope-i",
            "--scheme",
            "mhrope",
            "--scheme",
            "circle",
            "--png",
            str(png),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "(5.085, 8.794, -4.879)" in out and "(3, 2, 1)" in out  # circle's and spatial-reset's worked examples
    assert "mhrope: multi-head: KV heads tthhhwww" in out
    assert png.stat().st_size > 10_000
    bad = subprocess.run(
        [sys.executable, "-m", "mmrope_hf", "inspect", "--image", "1x7x8"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "even H and W" in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", [[], ["schemes"], ["resolve"], ["apply"], ["show"], ["inspect"]])
def test_every_command_has_useful_help(command):
    out = subprocess.run(
        [sys.executable, "-m", "mmrope_hf", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "usage: mmrope" in out.stdout


def test_ci_runs_the_readme_test_command():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    [command] = [line for line in lines if line.startswith("python3 -m venv .venv ")]  # the main suite
    assert " -m pytest -q" in command
    assert f"```bash\n{command}\n```" in (ROOT / "README.md").read_text()


def run_train_packed(launcher: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *launcher, str(ROOT / "examples" / "train_packed.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )


@pytest.mark.slow
def test_train_packed_runs_two_processes_under_torchrun():
    run = run_train_packed(["torch.distributed.run", "--standalone", "--nproc_per_node", "2"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 process(es), DistributedType.MULTI_CPU" in run.stdout
    assert "scheme circle: position sets ['circle', 'mrope']" in run.stdout  # patch_info through accelerate's DDP
    losses = [float(line.split()[3]) for line in run.stdout.splitlines() if line.startswith("step ")]
    assert len(losses) == 6 and losses[-1] < losses[0] - 1


@pytest.mark.slow
def test_train_packed_refuses_the_one_process_of_accelerate_launch_on_cpu():
    """accelerate 1.15's `launch --cpu --num_processes 2` starts one process; the example must not train alone."""
    run = run_train_packed(["accelerate.commands.launch", "--cpu", "--num_processes", "2"])
    assert run.returncode != 0
    assert "accelerate launch started 1 process(es) and no distributed world" in run.stdout + run.stderr
