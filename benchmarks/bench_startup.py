"""Start-up cost of the mmrope-hf start-up hook (``mmrope_hf_autoload.pth``), and what the first model load pays.

Two new venvs from the same interpreter, identical but for the hook: ``_mmrope_hf_autoload.py`` (compiled, as pip
does at install) and the ``.pth`` file copied into one of them. Runs ``python -c pass`` in each, interleaved, and
prints the median wall time without the hook, with it, and with it turned off (``MMROPE_HF_AUTOLOAD=0``). Then, in
this venv, the time of ``import mmrope_hf`` in a process that already imported torch and transformers' model
modules: what the first ``from_pretrained`` of a process that never imports mmrope_hf pays, once.

    python benchmarks/bench_startup.py [--runs 300] [--import-runs 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOOK_FILES = ("_mmrope_hf_autoload.py", "mmrope_hf_autoload.pth")
FIRST_LOAD = (
    "import time, torch, transformers.modeling_utils, transformers.models.auto.modeling_auto\n"
    "start = time.perf_counter()\n"
    "import mmrope_hf\n"
    "print(time.perf_counter() - start)\n"
)


def new_venv(path: Path, hook: bool) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", path], check=True)
    if hook:
        site = Path(sysconfig.get_path("purelib", vars={"base": str(path), "platbase": str(path)}))
        for name in HOOK_FILES:
            shutil.copy(ROOT / name, site)
        py_compile.compile(str(site / HOOK_FILES[0]), doraise=True)
    return path / "bin" / "python"


def import_time_us(python: Path, env: dict[str, str]) -> int:
    """Cumulative ``-X importtime`` of the hook module, in microseconds."""
    err = subprocess.run([python, "-X", "importtime", "-c", "pass"], env=env, capture_output=True, text=True).stderr
    (line,) = [line for line in err.splitlines() if line.rstrip().endswith(f" {HOOK_FILES[0][:-3]}")]
    return int(line.split("|")[1])


def wall_time(python: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--import-runs", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "MMROPE_HF_AUTOLOAD"}
    with tempfile.TemporaryDirectory() as tmp:
        without, with_hook = new_venv(Path(tmp, "without"), False), new_venv(Path(tmp, "with"), True)
        cases = {
            "without the hook": (without, env),
            "with the hook": (with_hook, env),
            "with the hook, MMROPE_HF_AUTOLOAD=0": (with_hook, {**env, "MMROPE_HF_AUTOLOAD": "0"}),
        }
        for python, case_env in cases.values():  # warm the page cache
            for _ in range(10):
                wall_time(python, case_env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, (python, case_env) in cases.items():
                times[name].append(wall_time(python, case_env))
        module_us = statistics.median(import_time_us(with_hook, env) for _ in range(20))
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    compiled = {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}  # as after an install
    run = [sys.executable, "-c", FIRST_LOAD]
    first_load = [
        float(subprocess.run(run, env=compiled, capture_output=True, text=True, check=True).stdout)
        for _ in range(args.import_runs + 1)
    ][1:]  # the first run writes the bytecode
    result = {
        "runs": args.runs,
        "python": sys.version.split()[0],
        "median_ms": {name: round(value, 2) for name, value in medians.items()},
        "added_ms": round(medians["with the hook"] - medians["without the hook"], 2),
        "hook_module_import_us": module_us,
        "first_from_pretrained_import_ms": round(statistics.median(first_load) * 1e3, 1),
    }
    print(f"python -c pass, median of {args.runs} runs each (interleaved), Python {result['python']}")
    for name, value in result["median_ms"].items():
        print(f"  {name:38s} {value:7.2f} ms")
    print(f"  added by the hook                      {result['added_ms']:7.2f} ms")
    print(f"  -X importtime of {HOOK_FILES[0][:-3]} {module_us / 1e3:12.2f} ms (median of 20)")
    print(
        f"first from_pretrained of a process without `import mmrope_hf`: import mmrope_hf "
        f"{result['first_from_pretrained_import_ms']:.1f} ms (median of {args.import_runs})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
