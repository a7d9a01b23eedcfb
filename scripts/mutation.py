"""Mutation testing of the core modules with mutmut 3, one module at a time, with the tests that cover it.

    .venv/bin/python scripts/mutation.py                 # every module in MODULES, in order
    .venv/bin/python scripts/mutation.py allocation apply  # only these
    .venv/bin/python scripts/mutation.py --list            # the module -> tests map
    .venv/bin/python scripts/mutation.py --survivors allocation  # the surviving mutants' diffs (after a run)

Needs the ``dev`` extra (``pip install -e .[test,dev]``). Writes the score table of ``docs/mutation.md`` (between
its ``mutation-table`` markers; ``--table baseline`` writes the first-run table instead).

Why a staging tree: mutmut 3 mutates the files under ``source_paths`` into ``mutants/`` and names each mutant
after the file's path (``patches/_tiles.py`` -> ``patches._tiles``), while its trampolines compare that name with
the function's ``__module__`` at run time (``mmrope_hf.patches._tiles``: ``patches/`` is installed as
``mmrope_hf.patches`` through ``package-dir``). Mutants of the adapters would then never be switched on and
would all "survive". So each module gets a staging tree ``mutants/<module>/`` laid out as the installed package
(``mmrope_hf/``, ``mmrope_hf/patches/`` = ``patches/``, ``mmrope_hf/configs/`` = ``configs/``), plus ``tests/`` and
a copy of ``pyproject.toml`` with a ``[tool.mutmut]`` table (the project's own file stays free of it). mutmut runs
in that tree; it puts ``<tree>/mutants`` first on ``sys.path``, so ``import mmrope_hf`` finds the mutated copy
before the editable install's finder (which sits at the end of ``sys.meta_path``) is asked;
``check_import()`` verifies that. ``MMROPE_HF_AUTOLOAD=0``: the start-up hook is not under test here.

One worker (``--max-children 1``, ``OMP_NUM_THREADS=1``): the machine has 2 cores shared with others. Each run
resumes where the previous one stopped (mutmut keeps its results in ``mutants/<module>/mutants``); ``--fresh``
starts over.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "mutants"
DOC = ROOT / "docs" / "mutation.md"


@dataclass
class Module:
    source: str  # path in the installed layout (mmrope_hf/patches/... for patches/...)
    tests: list[str]  # test files (pytest node ids allowed) that cover it
    functions: list[str] = field(default_factory=list)  # fnmatch patterns of mutmut names; empty: the whole file
    note: str = ""
    # fork (mutmut's default) unless the module keeps module-level caches: a worker forked from the process that
    # ran the statistics inherits them, filled by the original code (circle.py's rings), and its mutant never runs
    isolation: str = "fork"


# The tests that cover each module: the unit tests of the module and the model-level tests that exercise it
# through a forward pass, minus the slow ones (fresh processes, DDP, wheels). tests/test_mutants_<name>.py is
# added automatically when it exists.
MODULES: dict[str, Module] = {
    "allocation": Module(
        "mmrope_hf/frequencies/allocation.py",
        ["tests/test_allocation.py", "tests/test_mhrope.py", "tests/test_baselines.py"],
    ),
    "apply": Module(
        "mmrope_hf/frequencies/apply.py",
        ["tests/test_allocation.py", "tests/test_mhrope.py", "tests/test_baselines.py"],
    ),
    "rotary": Module(
        "mmrope_hf/frequencies/rotary.py",
        ["tests/test_allocation.py", "tests/test_stagger.py"],
        note="test_mhrope.py and test_baselines.py also reach it, but make each mutant ~40 s on the loaded machine",
    ),
    "mrope": Module("mmrope_hf/positions/mrope.py", ["tests/test_positions.py", "tests/test_vectorized.py"]),
    "circle": Module(
        "mmrope_hf/positions/circle.py",
        ["tests/test_circle.py"],
        note="its first run used forkserver (see below); later runs fork, test_mutants_circle.py clears the ring cache",
    ),
    "baselines": Module("mmrope_hf/positions/baselines.py", ["tests/test_baselines.py"]),
    "layout": Module(
        "mmrope_hf/positions/layout.py",
        ["tests/test_positions.py", "tests/test_vectorized.py", "tests/test_qwen_vl_utils.py"],
    ),
    "rows": Module("mmrope_hf/positions/rows.py", ["tests/test_vectorized.py", "tests/test_positions.py"]),
    "batch": Module("mmrope_hf/positions/batch.py", ["tests/test_vectorized.py", "tests/test_positions.py"]),
    "builder": Module("mmrope_hf/positions/builder.py", ["tests/test_vectorized.py", "tests/test_positions.py"]),
    "rope_index": Module(
        "mmrope_hf/patching/rope_index.py",
        [
            "tests/test_known_bugs.py::test_text_only_prompt_after_an_image_prompt_decodes_like_stock",
            "tests/test_known_bugs.py::test_decoding_an_expanded_batch_keeps_each_rows_set_deltas",
            "tests/test_stagger.py::test_decoding_from_rope_deltas_continues_each_set_from_its_own_end",
            "tests/test_collate.py::test_multi_set_relay_keeps_the_text_row_and_unpatches",
        ],
        functions=[
            "*x__generation_positions__mutmut_*",
            "*x__decoding_positions__mutmut_*",
            "*x_install_packed_relay__mutmut_*",
        ],
        note="the decode-delta path (`_generation_positions`, `_decoding_positions`) and the packed relay of K > 1 "
        "sets (`install_packed_relay`); test_generate.py and test_patching.py also reach it, but their statistics "
        "pass alone outran a 9-minute budget",
    ),
    "collator": Module("mmrope_hf/integrations/training/collator.py", ["tests/test_collate.py"]),
    "checkpoint": Module("mmrope_hf/integrations/transformers/checkpoint.py", ["tests/test_loading.py"]),
    "llava_layout": Module(
        "mmrope_hf/patches/_llava_layout.py",
        [
            f"tests/test_llava.py::{test}"
            for test in (
                "test_newline_and_base_view_positions_golden",
                "test_layout_matches_the_processor_and_the_model_packing",
                "test_placeholder_mismatch_fails_with_a_clear_error",
                "test_a_tile_that_is_not_a_patch_grid_fails_clearly",
            )
        ],
        note="the layout tests of test_llava.py only: its patch/unpatch model tests make each mutant minutes long",
    ),
    "tiles": Module("mmrope_hf/patches/_tiles.py", ["tests/test_llava.py"]),
}

# Mutants that cannot be killed because the mutated program behaves as the original: one file per module,
# scripts/mutation_equivalents/<module>.py, holding EQUIVALENT = {mutmut name: why}.
EQUIVALENTS_DIR = ROOT / "scripts" / "mutation_equivalents"


def equivalents_of(name: str) -> dict[str, str]:
    """The module's equivalent mutants, short mutmut names -> why; empty when it has no file."""
    path = EQUIVALENTS_DIR / f"{name}.py"
    return runpy.run_path(str(path))["EQUIVALENT"] if path.exists() else {}


def equivalent(name: str) -> dict[str, str]:
    """The module's equivalent mutants under their full mutmut names."""
    prefix = MODULES[name].source[: -len(".py")].replace("/", ".") + "."
    return {prefix + key: why for key, why in equivalents_of(name).items()}


def tests_of(name: str) -> list[str]:
    return [*MODULES[name].tests, f"tests/test_mutants_{name}.py"]


def _sync(src: Path, dst: Path) -> None:
    """Copy a tree keeping mtimes (mutmut re-mutates a file only when its mtime moves); drop removed files."""
    for path in src.rglob("*"):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        target = dst / path.relative_to(src)
        if target.exists() and target.stat().st_mtime == path.stat().st_mtime:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for path in list(dst.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not (src / path.relative_to(dst)).exists():
            path.unlink()


def stage(name: str, fresh: bool) -> Path:
    module = MODULES[name]
    tree = STAGE / name
    if fresh and tree.exists():
        shutil.rmtree(tree)
    _sync(ROOT / "mmrope_hf", tree / "mmrope_hf")
    _sync(ROOT / "patches", tree / "mmrope_hf" / "patches")
    _sync(ROOT / "configs", tree / "mmrope_hf" / "configs")
    _sync(ROOT / "configs", tree / "configs")  # tests read the presets from the checkout's configs/ too
    _sync(ROOT / "tests", tree / "tests")
    shutil.rmtree(tree / "tests" / "serving", ignore_errors=True)
    # always select tests/test_mutants_<name>.py (an empty one until it exists): adding tests to it then keeps
    # mutmut's cached results (a changed test selection would reset them all)
    placeholder = tree / "tests" / f"test_mutants_{name}.py"
    if not placeholder.exists():
        placeholder.write_text('"""Placeholder: no tests written for the survivors of this module yet."""\n')
    config = {
        "source_paths": ["mmrope_hf"],
        "only_mutate": [module.source],
        "also_copy": ["configs"],
        "pytest_add_cli_args_test_selection": tests_of(name),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-m", "not slow", "-W", "ignore"],
        "use_git_change_detection": False,
        "process_isolation": module.isolation,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    text = (ROOT / "pyproject.toml").read_text()
    target = tree / "pyproject.toml"
    new = text + "\n".join(lines) + "\n"
    if not target.exists() or target.read_text() != new:
        target.write_text(new)
    return tree


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MMROPE_HF_AUTOLOAD="0", TOKENIZERS_PARALLELISM="false")
    env.pop("PYTHONPATH", None)
    return env


def mutmut(tree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(exe), *args], cwd=tree, env=environment(), check=check)


def mutmut_run(tree: Path, names: list[str], log: Path, budget_s: float | None) -> int | None:
    """``mutmut run``; past ``budget_s`` it gets SIGINT, which makes it stop its workers and keep the results
    so far (the mutants not reached stay "not checked" and the next run resumes there)."""
    exe = Path(sys.executable).with_name("mutmut")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(exe), "run", "--max-children", "1", *names], cwd=tree, env=environment(), stdout=out, stderr=out
        )
        try:
            return proc.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                return proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()


def meta(tree: Path, name: str) -> dict[str, int | None]:
    path = tree / "mutants" / (MODULES[name].source + ".meta")
    data = json.loads(path.read_text())
    codes: dict[str, int | None] = data["exit_code_by_key"]
    patterns = MODULES[name].functions
    if patterns:
        import fnmatch

        codes = {k: v for k, v in codes.items() if any(fnmatch.fnmatch(k, p) for p in patterns)}
    return codes


STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout", None: "not checked"}
for _code in (-24, 24, 152, 255):
    STATUS[_code] = "timeout"


def score(name: str, tree: Path) -> dict:
    counts: dict[str, int] = {}
    survivors, retry = [], []
    equivalents = equivalent(name)
    for key, code in meta(tree, name).items():
        status = STATUS.get(code, "suspicious")
        if status == "survived" and key in equivalents:
            status = "equivalent"
        counts[status] = counts.get(status, 0) + 1
        if status in ("survived", "no tests", "suspicious", "not checked"):
            survivors.append(key)
        if status in ("survived", "no tests", "suspicious"):
            retry.append(key)
    total = sum(counts.values())
    caught = counts.get("killed", 0) + counts.get("timeout", 0)
    n_eq = counts.get("equivalent", 0)
    checked = total - n_eq - counts.get("not checked", 0)
    return {
        "total": total,
        "counts": counts,
        "score": 100.0 * caught / total if total else 0.0,
        "score_eq": 100.0 * caught / (total - n_eq) if total - n_eq else 0.0,
        "score_checked": 100.0 * caught / checked if checked else 0.0,
        "survivors": sorted(survivors),
        "retry": sorted(retry),
    }


def check_import(tree: Path, name: str) -> None:
    """The tests must import the mutated copy, not the editable install: ask a fresh interpreter, set up as
    mutmut sets up its workers, where the module under test comes from and whether it holds trampolines."""
    dotted = MODULES[name].source[: -len(".py")].replace("/", ".")
    code = (
        "import sys, importlib; sys.path.insert(0, '.');"
        f"m = importlib.import_module({dotted!r});"
        "print(m.__file__); print('_mutmut_mutated' in vars(m) or 'MutantDict' in vars(m))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tree / "mutants", env=environment(), capture_output=True, text=True
    )
    lines = out.stdout.split()
    expected = str((tree / "mutants" / MODULES[name].source).resolve())
    if out.returncode or len(lines) < 2 or Path(lines[0]).resolve() != Path(expected) or lines[1] != "True":
        raise SystemExit(f"{name}: the tests would not import the mutated copy:\n{out.stdout}{out.stderr}")


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "mmrope_hf", "patches"], cwd=ROOT, capture_output=True, text=True
    )
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


START, END = "<!-- mutation-table:{}:start -->", "<!-- mutation-table:{}:end -->"
HEADER = (
    "| module | file | commit | date (UTC) | mutants | killed | timeout | survived | no tests | equivalent "
    "| not checked | score | score w/o equivalent | score of the checked | wall |\n"
    "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def write_row(table: str, name: str, result: dict, wall: float | None, at: str | None) -> None:
    """Write ``name``'s row; ``wall``/``at`` None keep the commit, date and wall of the row already there (a
    rescore with new equivalents, ``--rescore``)."""
    text = DOC.read_text() if DOC.exists() else ""
    start, end = START.format(table), END.format(table)
    if start not in text:
        text += f"\n{start}\n{HEADER}\n{end}\n"
    head, rest = text.split(start, 1)
    body, tail = rest.split(end, 1)
    rows = {}
    for line in body.strip().splitlines()[2:]:
        rows[line.split("|")[1].strip()] = line
    c = result["counts"]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    spent = "-" if wall is None else f"{wall / 60:.0f} min"
    if at is None and name in rows:
        old = [cell.strip() for cell in rows[name].split("|")]
        at, date, spent = old[3], old[4], old[-2]
    rows[name] = (
        f"| {name} | `{MODULES[name].source}` | {at} | {date} | {result['total']} | {c.get('killed', 0)} "
        f"| {c.get('timeout', 0)} | {c.get('survived', 0)} | {c.get('no tests', 0)} | {c.get('equivalent', 0)} "
        f"| {c.get('not checked', 0)} | {result['score']:.1f} % | {result['score_eq']:.1f} % "
        f"| {result['score_checked']:.1f} % | {spent} |"
    )
    order = [n for n in MODULES if n in rows]
    body = "\n".join([HEADER] + [rows[n] for n in order])
    DOC.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def write_section(marker: str, body: str) -> None:
    """Replace the text between ``<!-- mutation-<marker>:start/end -->`` in docs/mutation.md."""
    text = DOC.read_text()
    start, end = f"<!-- mutation-{marker}:start -->", f"<!-- mutation-{marker}:end -->"
    if start not in text:
        text += f"\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def write_static_sections() -> None:
    """The module -> tests map and the equivalent mutants, from MODULES and scripts/mutation_equivalents/."""
    rows = ["| module | file | tests | note |", "|---|---|---|---|"]
    for name, module in MODULES.items():
        tests = ", ".join(f"`{t}`" for t in tests_of(name))
        rows.append(f"| {name} | `{module.source}` | {tests} | {module.note} |")
    write_section("map", "\n".join(rows))
    lines = []
    for name in MODULES:
        for key, why in equivalents_of(name).items():
            lines.append(f"- {name}: `{key}`: {why}")
    write_section("equivalent", "\n".join(lines) or "(none)")


def run(name: str, args: argparse.Namespace) -> None:
    tree = stage(name, args.fresh)
    at = commit()
    started = time.monotonic()
    names = MODULES[name].functions
    if args.retry and (tree / "mutants" / (MODULES[name].source + ".meta")).exists():
        # mutmut keeps a cached verdict unless the mutant is named: name the ones not killed
        names = score(name, tree)["retry"] or names
    # generate the mutants, collect which tests cover which function, then test each mutant
    log = tree / "mutmut.log"
    print(f"{name}: mutmut run in {tree.relative_to(ROOT)} (output: {log.relative_to(ROOT)})", flush=True)
    budget = args.budget * 60 if args.budget else None
    returncode = mutmut_run(tree, names, log, budget)
    check_import(tree, name)
    wall = time.monotonic() - started
    if returncode not in (0, None):
        print(f"{name}: mutmut exited with {returncode}; see {log}", file=sys.stderr)
    res = score(name, tree)
    print(f"{name}: {res['counts']} score {res['score']:.1f} % ({res['score_eq']:.1f} % w/o equivalent)")
    for key in res["survivors"]:
        print("   ", key)
    if not args.no_doc:
        write_row(args.table, name, res, wall, at)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--list", action="store_true", help="print the module -> tests map")
    parser.add_argument("--doc", action="store_true", help="rewrite the map and equivalents of docs/mutation.md")
    parser.add_argument("--rescore", action="store_true", help="rewrite the rows from mutmut's cached results")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results of these modules")
    parser.add_argument("--survivors", action="store_true", help="print the diffs of the surviving mutants")
    parser.add_argument("--table", default="current", choices=["current", "baseline"])
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/mutation.md")
    parser.add_argument("--budget", type=float, help="minutes per module; then mutmut stops, keeping its results")
    parser.add_argument("--retry", action="store_true", help="rerun only the mutants that survived (after new tests)")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; known: {', '.join(MODULES)}")
    chosen = args.modules or list(MODULES)
    if args.doc:
        write_static_sections()
        return 0
    if args.rescore:
        for name in chosen:
            if (STAGE / name / "mutants" / (MODULES[name].source + ".meta")).exists():
                write_row(args.table, name, score(name, STAGE / name), None, None)
        return 0
    if args.list:
        for name in chosen:
            print(f"{name:13} {MODULES[name].source}: {' '.join(tests_of(name))}")
        return 0
    if args.survivors:
        for name in chosen:
            tree = STAGE / name
            for key in score(name, tree)["retry"]:
                mutmut(tree, "show", key, check=False)
        return 0
    for name in chosen:
        run(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
