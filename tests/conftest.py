"""Shared prompts, model builders and helpers. Everything is offline and seeded."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from mmrope_hf.config import available_schemes
from mmrope_hf.testing import FAMILIES, LLAVA_FAMILIES, MROPE_FAMILIES, TILE_FAMILIES, build_inputs, tiny_model

# --- tiers -----------------------------------------------------------------------------------------------------------
# `pytest -q` is the fast tier, for the edit-test loop: every test, on one model type of each kind and the main
# schemes, without the tests marked slow (fresh processes, torchrun, wheel builds, mypy), the files of FULL_TIER_FILES
# (torch.compile and Trainer runs, about a second a test: a third of the fast tier's time) and the oracle's
# self-checks. `pytest -q --full` is what `.ci/run` runs: every test on every model type and preset, the oracle's
# self-checks counted apart.
FAST_FAMILIES = ("qwen2_5_vl", "qwen3_vl", "glm4v", "llava", "gemma3")
FAST_SCHEMES = ("mrope", "mrope-i", "mhrope", "spatial-reset", "vanilla", "circle", "circle-age")
FULL_ONLY = frozenset((*MROPE_FAMILIES, *LLAVA_FAMILIES, *TILE_FAMILIES, *FAMILIES, *available_schemes())) - {
    *FAST_FAMILIES,
    *FAST_SCHEMES,
}
FULL_TIER_FILES = frozenset({"test_compile.py", "test_resume.py", "test_trl.py"})
ORACLE_DIR = Path(__file__).resolve().parent / "reference"


def pytest_addoption(parser):
    parser.addoption(
        "--full", action="store_true", help="the full tier (what .ci/run runs): every model type, the slow tests"
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "oracle: a self-check of the independent reference in tests/reference")


def _in_fast_tier(item) -> bool:
    if item.get_closest_marker("slow") or item.get_closest_marker("oracle") or item.path.name in FULL_TIER_FILES:
        return False
    params = getattr(item, "callspec", None)
    values = params.params.values() if params else ()
    return not any(isinstance(v, str) and v in FULL_ONLY for v in values)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if ORACLE_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.oracle)
    named = config.args_source is not pytest.Config.ArgsSource.TESTPATHS
    if config.getoption("--full") or config.getoption("markexpr") or named:
        return  # the full tier, a -m selection, or tests named on the command line: run what was asked
    fast = {id(item): _in_fast_tier(item) for item in items}
    config.hook.pytest_deselected(items=[item for item in items if not fast[id(item)]])
    items[:] = [item for item in items if fast[id(item)]]


def pytest_terminal_summary(terminalreporter):
    """Count the product tests apart from the oracle's self-checks (the README quotes the product count)."""
    counts = {"product": {}, "oracle": {}}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if outcome == "passed" and report.when != "call":
                continue
            kind = "oracle" if "oracle" in report.keywords else "product"  # the marker collection gave it
            counts[kind][outcome] = counts[kind].get(outcome, 0) + 1
    for kind, label in (("product", "product tests"), ("oracle", "oracle self-checks (tests/reference)")):
        if counts[kind]:
            terminalreporter.write_line(f"{label}: " + ", ".join(f"{n} {o}" for o, n in counts[kind].items()))


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """accelerate keeps one process-wide state (a Trainer's bf16 mixed precision, say) that every later
    ``Accelerator()`` reuses; reset it after each test so that no test's result depends on the order."""
    yield
    state = sys.modules.get("accelerate.state")
    if state is not None:
        state.AcceleratorState._reset_state(reset_partial_state=True)


# The models are tiny: one thread avoids the thread pool's start-up and contention costs (several times faster
# on the 2-core CI machine); the benchmarks, not the tests, measure speed.
torch.set_num_threads(1)

SCHEMES = ("mrope", "mrope-i", "mhrope", "spatial-reset", "vanilla", "circle")

# Rows of build_inputs items: n text tokens, or (kind, t, h, w) grids in patches before the 2x2 merge.
PROMPTS = {
    "text": [[9]],
    "one_image": [[3, ("image", 1, 8, 8), 2]],
    "images": [[2, ("image", 1, 8, 8), 3, ("image", 1, 4, 6), 1, ("image", 1, 6, 4), 2]],
    "left_padded": [[3, ("image", 1, 8, 8), 2], [5, ("image", 1, 4, 6), 4, ("image", 1, 6, 4), 1]],
    "video_one_frame": [[3, ("video", 1, 4, 4), 2]],
    "video": [[3, ("video", 3, 4, 4), 2]],  # one block of 3 groups; per-frame blocks on Qwen3-VL
}


def reference_layout(family: str, row: list) -> list:
    """The tests/reference layout of one build_inputs row (vision start/end and timestamps are text)."""
    layout = []
    for item in row:
        if isinstance(item, int):
            layout.append(("text", item))
            continue
        kind, t, h, w = item
        if family.startswith("qwen3") and kind == "video":
            for _ in range(t):
                layout += [("text", 2), ("video", 1, h // 2, w // 2), ("text", 1)]
        else:
            layout += [("text", 1), (kind, t, h // 2, w // 2), ("text", 1)]
    return layout


def inputs_for(family: str, prompt: str, **kwargs) -> dict:
    return build_inputs(family, PROMPTS[prompt], **kwargs)


def logits(model, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


@pytest.fixture(params=MROPE_FAMILIES)
def family(request) -> str:
    """Every family with a ``get_rope_index`` (the Qwen-VL ones, Qwen3.5, GLM-4.xV, PaddleOCR-VL)."""
    return request.param


@pytest.fixture
def model(family):
    return tiny_model(family)


def left_pad_batch(singles: list[dict]) -> dict:
    """Left-pad and stack single-row inputs (as build_inputs makes them) into one batch."""
    length = max(s["input_ids"].shape[1] for s in singles)
    batch = {}
    for key, fill in (("input_ids", 0), ("attention_mask", 0), ("mm_token_type_ids", 0)):
        batch[key] = torch.cat(
            [torch.nn.functional.pad(s[key], (length - s[key].shape[1], 0), value=fill) for s in singles]
        )
    for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
        parts = [s[key] for s in singles if key in s]
        if parts:
            batch[key] = torch.cat(parts)
    return batch


def random_rows(rng: random.Random, n_rows: int, max_width: int = 3) -> list:
    """Random build_inputs rows: text runs between 1-3 images or videos of 1-3 groups, sides 2-6 (width up to
    ``2 * max_width``) patches."""
    rows = []
    for _ in range(n_rows):
        row = [rng.randint(1, 4)]
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(["image", "video"])
            t = 1 if kind == "image" else rng.randint(1, 3)
            row += [(kind, t, 2 * rng.randint(1, 3), 2 * rng.randint(1, max_width)), rng.randint(0, 3)]
        rows.append([item for item in row if item != 0])
    return rows


def text_row(attention_mask: torch.Tensor) -> torch.Tensor:
    """transformers' text position row: index among the unpadded tokens, 0 on padding."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def assert_prefill_then_decode(model, inputs: dict, positions: torch.Tensor | None = None, atol: float = 1e-5) -> None:
    """Prefill all but the last two tokens, then decode them one by one from the cache: every step's logits equal
    the full forward's (padded slots excluded). With ``positions`` (text row first) each call gets its slice as
    ``position_ids``; without, the model places the new tokens itself (from its stored rope_deltas)."""
    full = logits(model, inputs)
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    prefill = ids.shape[1] - 2
    sliced = lambda t, end: None if t is None else t[..., :end]  # noqa: E731
    prompt = {**inputs, "input_ids": ids[:, :prefill]}
    for key in ("attention_mask", "mm_token_type_ids"):
        if key in inputs:
            prompt[key] = inputs[key][:, :prefill]
    with torch.no_grad():
        out = model(**prompt, position_ids=sliced(positions, prefill), use_cache=True)
        real = mask[:, :prefill].bool() if mask is not None else torch.ones(ids.shape[0], prefill, dtype=torch.bool)
        torch.testing.assert_close(out.logits[real], full[:, :prefill][real], atol=atol, rtol=0)
        cache = out.past_key_values
        for i in range(prefill, ids.shape[1]):
            step = model(
                input_ids=ids[:, i : i + 1],
                attention_mask=sliced(mask, i + 1),
                past_key_values=cache,
                position_ids=None if positions is None else positions[..., i : i + 1],
                use_cache=True,
            )
            torch.testing.assert_close(step.logits[:, 0], full[:, i], atol=atol, rtol=0)
            cache = step.past_key_values


def assert_decoding_from_rope_deltas(model, inputs: dict, atol: float = 1e-5) -> None:
    """Decoding without position_ids on an unpadded batch of 1 (no mask): the model adds its stored rope_deltas."""
    assert_prefill_then_decode(model, {k: v for k, v in inputs.items() if k != "attention_mask"}, atol=atol)


def assert_cached_decoding_with_positions(model, inputs: dict, atol: float = 1e-5) -> None:
    """Decoding with the model's own positions (``get_rope_index``, text row first) passed explicitly."""
    keys = ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "attention_mask", "second_per_grid_ts")
    positions, _ = model.model.get_rope_index(inputs["input_ids"], **{k: inputs[k] for k in keys if k in inputs})
    positions = torch.cat([text_row(inputs["attention_mask"])[None].to(positions.dtype), positions])
    assert_prefill_then_decode(model, inputs, positions, atol=atol)


def greedy(model, inputs: dict, new_tokens: int = 4, **kwargs):
    """Greedy ``generate`` that also returns the logits of every step."""
    return model.generate(
        **inputs, max_new_tokens=new_tokens, do_sample=False, output_logits=True, return_dict_in_generate=True, **kwargs
    )


def assert_generate_equals_teacher_forced(model, inputs: dict, atol: float = 1e-5) -> None:
    """The logits of every greedy generate step equal a full forward over the generated sequence."""
    out = greedy(model, inputs)
    length = inputs["input_ids"].shape[1]
    batch, new = out.sequences.shape[0], out.sequences.shape[1] - length
    forced = dict(
        inputs,
        input_ids=out.sequences,
        attention_mask=torch.cat([inputs["attention_mask"], torch.ones(batch, new, dtype=torch.long)], 1),
        mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"], torch.zeros(batch, new, dtype=torch.long)], 1),
    )
    full = logits(model, forced)
    for i, step_logits in enumerate(out.logits):
        torch.testing.assert_close(step_logits, full[:, length - 1 + i], atol=atol, rtol=0)


def assert_batched_generate_equals_one_by_one(model, singles: list[dict], batch: dict, **kwargs) -> None:
    """Greedy generate on a left-padded batch gives each row's tokens, and logits within 1e-4, of generating it
    alone."""
    batched = greedy(model, batch, **kwargs)
    for b, inputs in enumerate(singles):
        single = greedy(model, inputs, **kwargs)
        assert torch.equal(batched.sequences[b, -len(batched.logits) :], single.sequences[0, -len(single.logits) :])
        for step_batched, step_single in zip(batched.logits, single.logits, strict=True):
            torch.testing.assert_close(step_batched[b], step_single[0], atol=1e-4, rtol=0)


# --- the project installed from its wheel ---------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
WHEEL_SOURCES = (
    "pyproject.toml",
    "README.md",
    "setup.py",
    "MANIFEST.in",
    "_mmrope_hf_autoload.py",
    "mmrope_hf_autoload.pth",
    "mmrope_hf",
    "patches",
    "configs",
)


@pytest.fixture(scope="session")
def wheel_python(tmp_path_factory) -> Path:
    """The python of a new venv with mmrope-hf pip-installed from its freshly built wheel (about 5 s, once).

    The wheel is built from a copy of the sources (setuptools writes build/ and *.egg-info next to them). The venv
    has no pip and reaches torch/transformers through .pth lines naming the folders this process finds them in; a
    .pth line does not run the .pth files of the folder it adds, so the editable install and its hook stay out.
    """
    root = tmp_path_factory.mktemp("wheel")
    (root / "src").mkdir()
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, root / "src" / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, root / "src")
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", root / "dist", root / "src"], check=True)
    (wheel,) = (root / "dist").glob("mmrope_hf-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    import transformers

    deps = {sysconfig.get_path("purelib"), *(str(Path(m.__file__).parents[1]) for m in (torch, transformers))}
    (site / "deps.pth").write_text("".join(f"{path}\n" for path in sorted(deps)))
    subprocess.run([*pip, "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", wheel], check=True)
    return venv / "bin" / "python"
