"""Re-do the break checks of docs/testing.md ("Tests for the bugs of issue 20"): place each hand-made bug in the
product code, run tests/test_known_bugs.py (and, with --other, the test files docs/mutation.md maps to the broken
module), print what failed, then put the file back.

Run it in a CLONE, never in a checkout others are working in (it edits product files while the tests run):

    git clone -q <repo> /tmp/breaks && cd /tmp/breaks && <make .venv as in the README>
    .venv/bin/python scripts/known_bug_breaks.py            # every break, test_known_bugs.py only
    .venv/bin/python scripts/known_bug_breaks.py --other 08_v2pe_no_ceil
    .venv/bin/python scripts/known_bug_breaks.py --list

Each break is an exact string replacement that must occur once in its file; the file's text is restored after
each break (also on errors). A line per break: the tests that failed, then the pytest summary.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
A = "mmrope_hf/frequencies/allocation.py"
S = "mmrope_hf/patching/state.py"
R = "mmrope_hf/frequencies/rotary.py"
C = "mmrope_hf/integrations/transformers/checkpoint.py"
SCALE = [
    (R, "cos = self._recompose(freqs.cos() * stock.attention_scaling)", "cos = self._recompose(freqs.cos())"),
    (R, "sin = self._recompose(freqs.sin() * stock.attention_scaling)", "sin = self._recompose(freqs.sin())"),
]
BREAKS: dict[str, list[tuple[str, str, str]]] = {
    "01_interleaved_h_reads_w": [(A, "if i % 3 == 1 and i < 3 * s_h else", "if i % 3 == 1 and i < 3 * s_w else")],
    "01b_interleaved_w_reads_h": [
        (A, "else W if i % 3 == 2 and i < 3 * s_w else", "else W if i % 3 == 2 and i < 3 * s_h else")
    ],
    "02_mhrope_nope_first": [
        (
            A,
            "heads = [axis for axis, count in enumerate(section) for _ in range(count)] + [NOPE] * nope",
            "heads = [NOPE] * nope + [axis for axis, count in enumerate(section) for _ in range(count)]",
        )
    ],
    "03_set_deltas_reused": [
        (
            S,
            "if deltas is None or self.handles.rope_owner.rope_deltas is not self.returned_deltas:",
            "if deltas is None:",
        )
    ],
    "04_set_deltas_tiled": [
        (
            S,
            "offsets = (deltas - deltas[:, :1]).repeat_interleave(base.shape[1] // deltas.shape[0], dim=0)",
            "offsets = (deltas - deltas[:, :1]).repeat(base.shape[1] // deltas.shape[0], 1)",
        )
    ],
    "05a_builder_ignores_seconds": [
        (
            "mmrope_hf/positions/builder.py",
            "seconds = [1.0] * count if second_per_grid_ts is None else list(second_per_grid_ts)",
            "seconds = [1.0] * count",
        )
    ],
    "05b_collator_ignores_seconds": [
        (
            "mmrope_hf/integrations/training/samples.py",
            'if raw.get("second_per_grid_ts") is not None:',
            'if False and raw.get("second_per_grid_ts") is not None:',
        )
    ],
    "05c_model_path_ignores_seconds": [
        (
            S,
            "handles.video_intervals(video_grid_thw, second_per_grid_ts),",
            "handles.video_intervals(video_grid_thw, None),",
        )
    ],
    "06_angles_in_bf16": [
        (R, "freqs = sets[..., None].float() * inv_freq", "freqs = sets[..., None].to(x.dtype) * inv_freq.to(x.dtype)")
    ],
    "07_attention_scaling_dropped": SCALE,
    "07b_attention_scaling_dropped_probe_off": [
        *SCALE,
        ("mmrope_hf/patching/api.py", "    _check_native_rotary(handles, _native_plan(handles, num_pairs))\n", ""),
    ],
    "08_v2pe_no_ceil": [
        ("mmrope_hf/positions/baselines.py", "last = float(math.ceil(float(visual[-1])))", "last = float(visual[-1])")
    ],
    "09a_apply_loses_mode": [(C, "        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))\n", "")],
    "09b_apply_moves_key": [
        (C, "updated = {**data, CONFIG_KEY: dict(scheme)}", "updated = {**updated, CONFIG_KEY: dict(scheme)}")
    ],
    "09c_apply_sorts_keys": [(C, "sort_keys = list(data) == sorted(data)", "sort_keys = True")],
    "10_split_block_accepted": [
        (
            "mmrope_hf/positions/batch.py",
            "bad = (last - first + 1 != xp.asarray(size, xp.i64)) | (first // length != last // length)",
            "bad = last - first + 1 != xp.asarray(size, xp.i64)",
        )
    ],
}
OTHER = {
    "01": "test_allocation.py test_mutants_allocation.py",
    "01b": "test_allocation.py",
    "02": "test_mhrope.py test_mutants_allocation.py",
    "03": "test_generate.py test_stagger.py",
    "04": "test_generate.py test_stagger.py",
    "05a": "test_vectorized.py test_positions.py test_mutants_builder.py",
    "05b": "test_collate.py",
    "05c": "test_collate.py",
    "06": "test_allocation.py test_mutants_rotary.py",
    "07": "test_allocation.py test_mutants_rotary.py",
    "07b": "test_allocation.py",
    "08": "test_baselines.py",
    "09a": "test_loading.py",
    "09b": "test_loading.py",
    "09c": "test_loading.py",
    "10": "test_vectorized.py test_positions.py test_mutants_batch.py",
}


def pytest(root: Path, files: list[str], tb: str) -> str:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", f"--tb={tb}", *files]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=env)
    return done.stdout + done.stderr


def summary(log: str) -> str:
    failed = [line[7:].split(" - ")[0] for line in log.splitlines() if line.startswith("FAILED ")]
    totals = [line.strip("= ") for line in log.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return f"{totals[-1] if totals else '(no summary)'}; failed: {', '.join(failed) or 'none'}"


def check(root: Path, name: str, other: bool) -> None:
    originals: dict[Path, str] = {}
    try:
        for file, old, new in BREAKS[name]:
            path = root / file
            text = path.read_text()
            originals.setdefault(path, text)
            if text.count(old) != 1:
                raise SystemExit(f"{name}: {old!r} occurs {text.count(old)} times in {file}, not once")
            path.write_text(text.replace(old, new))
        print(f"{name}\n  test_known_bugs: {summary(pytest(root, ['tests/test_known_bugs.py'], 'short'))}", flush=True)
        if other:
            files = [f"tests/{f}" for f in OTHER[name.split("_")[0]].split() if (root / "tests" / f).exists()]
            print(f"  {' '.join(files)}: {summary(pytest(root, ['-m', 'not slow', *files], 'line'))}", flush=True)
    finally:
        for path, text in originals.items():
            path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="breaks to check (default: all)")
    parser.add_argument("--other", action="store_true", help="also run the module's other test files")
    parser.add_argument("--list", action="store_true", help="list the breaks and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(BREAKS))
        return
    for name in args.names or list(BREAKS):
        check(ROOT, name, args.other)


if __name__ == "__main__":
    main()
