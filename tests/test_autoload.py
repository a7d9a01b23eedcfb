"""The start-up hook (``_mmrope_hf_autoload``): a process that never imports mmrope_hf loads a checkpoint's scheme.

The slow tests play an evaluation harness: ``harness_job.py`` runs in a fresh interpreter with a clean environment,
imports only torch and transformers, loads checkpoints saved under mrope-i, mhrope and circle (Auto class, concrete
class, ``pipeline``, and a stock checkpoint with ``mmrope="mrope-i"``) and generates; its logits and greedy tokens
must equal those of the model patched in this process, in the project's venv and in a venv installed from the
wheel. With ``MMROPE_HF_AUTOLOAD=0`` the same process gets the stock model.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import types
from pathlib import Path

import pytest
import torch
import transformers
from conftest import ROOT, inputs_for, logits

import _mmrope_hf_autoload as autoload
import mmrope_hf
from mmrope_hf.testing import offline_processor, tiny_model

FAMILY = "qwen2_5_vl"
SCHEMES = ("mrope-i", "mhrope", "circle")
AUTO, CONCRETE = "AutoModelForImageTextToText", "Qwen2_5_VLForConditionalGeneration"
NEW_TOKENS = 5
CLEAN_ENV = {"PATH": os.environ["PATH"], "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def fresh_python(python: str | Path, *args: str, cwd: Path | None = None, **env: str) -> str:
    """stdout of ``python *args`` with nothing of this process's environment but PATH (and ``env``)."""
    out = subprocess.run(
        [str(python), *args], env={**CLEAN_ENV, **env}, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout


# --- the hook itself --------------------------------------------------------------------------------------------------


def test_the_venv_has_the_start_up_file_and_module_of_this_checkout():
    pth = Path(sysconfig.get_path("purelib")) / "mmrope_hf_autoload.pth"
    assert pth.is_file(), f"{pth} is missing: reinstall the project (pip install -e .)"
    assert pth.read_text() == (ROOT / "mmrope_hf_autoload.pth").read_text()
    assert Path(autoload.__file__) == ROOT / "_mmrope_hf_autoload.py"


STARTUP_PROBE = (
    "import json, sys; print(json.dumps({'modules': sorted(sys.modules), "
    "'finders': sum(type(f).__module__ == '_mmrope_hf_autoload' for f in sys.meta_path)}))"
)


def test_start_up_arms_one_finder_and_imports_nothing():
    on = json.loads(fresh_python(sys.executable, "-c", STARTUP_PROBE))
    off = json.loads(fresh_python(sys.executable, "-c", STARTUP_PROBE, MMROPE_HF_AUTOLOAD="0"))
    assert (on["finders"], off["finders"]) == (1, 0)  # one, although Python 3.11 runs a venv's .pth files twice
    assert on["modules"] == off["modules"]  # start() imports nothing: both only ran the .pth's own import
    assert "_mmrope_hf_autoload" in on["modules"]
    assert not {"torch", "transformers", "mmrope_hf"} & set(on["modules"])


@pytest.mark.parametrize(
    "value, enabled",
    [(None, True), ("1", True), ("", True), ("0", False), ("Off", False), ("false", False), (" no ", False)],
)
def test_the_variable_turns_it_off(monkeypatch, value, enabled):
    if value is None:
        monkeypatch.delenv(autoload.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(autoload.ENV_VAR, value)
    assert autoload.enabled() is enabled


def fake_modeling_utils() -> tuple[types.ModuleType, type, list]:
    """A stand-in ``transformers.modeling_utils`` whose subclass overrides ``from_pretrained`` and calls super()."""
    calls: list = []

    class Base:
        @classmethod
        def from_pretrained(cls, path, **kwargs):
            calls.append((cls, path, kwargs))
            return cls

    class Sub(Base):
        @classmethod
        def from_pretrained(cls, path, **kwargs):
            calls.append("Sub")
            return super().from_pretrained(path, **kwargs)

    module = types.ModuleType(autoload.MODELING_UTILS)
    module.PreTrainedModel = Base  # type: ignore[attr-defined]
    return module, Sub, calls


def test_a_trampoline_installs_mmrope_hf_then_hands_over_as_super_would():
    module, sub, calls = fake_modeling_utils()
    base = module.PreTrainedModel
    original = vars(base)["from_pretrained"]
    autoload._arm(module)
    try:
        assert vars(base)["from_pretrained"] is not original
        assert inspect.signature(base.from_pretrained) == inspect.signature(original.__get__(None, base))
        assert sub.from_pretrained("ckpt", dtype="x") is sub
    finally:
        autoload.disarm()
    assert calls == ["Sub", (sub, "ckpt", {"dtype": "x"})]  # the override ran once, the original got cls=Sub
    assert vars(base)["from_pretrained"] is original  # loading.install() disarmed the trampoline


def test_start_after_the_import_arms_the_loaded_classes_and_loading_still_patches(tmp_path):
    """start() with transformers already imported arms at once; the first call restores mmrope-hf's wrappers."""
    wrapped = vars(transformers.AutoModelForImageTextToText)["from_pretrained"]
    mmrope_hf.patch_model(tiny_model(FAMILY), "mrope-i").save_pretrained(tmp_path)
    autoload.start()
    try:
        assert (
            transformers.PreTrainedModel in autoload._ARMED
            and transformers.AutoModelForImageTextToText in autoload._ARMED
        )
        model = transformers.AutoModelForImageTextToText.from_pretrained(tmp_path)
    finally:
        autoload.disarm()
    assert not autoload._ARMED
    assert vars(transformers.AutoModelForImageTextToText)["from_pretrained"] is wrapped
    assert mmrope_hf.patch_info(model)["scheme"] == "mrope-i"


# --- an evaluation harness's view ---------------------------------------------------------------------------------


def outputs(model, inputs: dict) -> dict:
    return {"logits": logits(model, inputs), "tokens": model.generate(**inputs, max_new_tokens=NEW_TOKENS)}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict]:
    """Checkpoints (stock and one per scheme; circle's with its tokenizer and image processor, for ``pipeline``),
    the inputs, and the outputs of the same models in this process."""
    root = tmp_path_factory.mktemp("harness")
    inputs = inputs_for(FAMILY, "one_image")
    torch.save(inputs, root / "inputs.pt")
    expected = {}
    for name in ("stock", *SCHEMES):
        model = tiny_model(FAMILY) if name == "stock" else mmrope_hf.patch_model(tiny_model(FAMILY), name)
        model.save_pretrained(root / name)
        expected[name] = outputs(model, inputs)
    processor = offline_processor(FAMILY)
    processor.tokenizer.save_pretrained(root / "circle")
    processor.image_processor.save_pretrained(root / "circle")
    return root, expected


def run_harness(python: str | Path, root: Path, loads: list[dict], **env: str) -> dict:
    """Run harness_job.py from a scratch folder (so that nothing of this checkout is on its sys.path)."""
    work = Path(root, f"job-{len(list(root.glob('job-*')))}")
    work.mkdir()
    shutil.copy(Path(__file__).with_name("harness_job.py"), work)
    job = {"inputs": str(root / "inputs.pt"), "out": str(work / "out.pt"), "new_tokens": NEW_TOKENS, "loads": loads}
    (work / "job.json").write_text(json.dumps(job))
    fresh_python(python, "harness_job.py", "job.json", cwd=work, **env)
    return torch.load(work / "out.pt")


def harness_loads(root: Path, first: str) -> dict[str, tuple[dict, str]]:
    """name -> (load spec, the scheme it must come out with); ``first`` is the class of the process's first load."""
    classes = (first, CONCRETE if first == AUTO else AUTO)
    # First: a keyword that overrides a checkpoint's key. Without the hook on the Auto classes, an Auto class
    # would let transformers write the path into the config key, which then fails to load.
    preset_file = str(ROOT / "configs" / "mrope-i.yaml")
    loads = {
        "keyword over a key": (
            {"path": str(root / "mhrope"), "class": first, "kwargs": {"mmrope": preset_file}},
            "mrope-i",
        )
    }
    loads.update({f"{s} {c}": ({"path": str(root / s), "class": c}, s) for c in classes for s in SCHEMES})
    loads["keyword"] = ({"path": str(root / "stock"), "class": AUTO, "kwargs": {"mmrope": "mrope-i"}}, "mrope-i")
    loads["pipeline"] = ({"path": str(root / "circle"), "class": "pipeline"}, "circle")
    return loads


def assert_outputs(results: dict, expected: dict, name: str, scheme: str) -> None:
    got, want = results[name], expected[scheme]
    torch.testing.assert_close(got["logits"], want["logits"], atol=1e-5, rtol=0, msg=name)
    assert torch.equal(got["tokens"], want["tokens"]), name
    if scheme != "stock":
        assert (got["logits"] - expected["stock"]["logits"]).abs().max() > 1e-3, f"{name} loaded stock"


@pytest.mark.slow
@pytest.mark.parametrize("install", ["editable", "wheel"])
def test_a_harness_that_never_imports_mmrope_hf_gets_each_scheme(request, saved, install):
    root, expected = saved
    python = sys.executable if install == "editable" else request.getfixturevalue("wheel_python")
    loads = harness_loads(root, first=AUTO if install == "editable" else CONCRETE)  # each trampoline goes first once
    out = run_harness(python, root, [{"name": name, **spec} for name, (spec, _) in loads.items()])
    assert out["modules"]["started_with"] == {"mmrope_hf": False, "_mmrope_hf_autoload": True}
    home = ROOT if install == "editable" else Path(python).parents[1]
    assert Path(out["modules"]["mmrope_hf_file"]).is_relative_to(home)  # imported by the first from_pretrained
    for name, (_, scheme) in loads.items():
        assert_outputs(out["results"], expected, name, scheme)


@pytest.mark.slow
def test_with_the_variable_off_the_harness_gets_stock_models_and_a_re_save_keeps_the_key(saved, tmp_path):
    root, expected = saved
    loads = [{"name": f"{s} {c}", "path": str(root / s), "class": c} for c in (AUTO, CONCRETE) for s in SCHEMES]
    loads[0]["save_to"] = str(tmp_path / "resaved")  # mrope-i, loaded and saved by a stock process
    out = run_harness(sys.executable, root, loads, MMROPE_HF_AUTOLOAD="0")
    assert out["modules"]["mmrope_hf_file"] is None
    for spec in loads:
        assert_outputs(out["results"], expected, spec["name"], "stock")

    key = json.loads((tmp_path / "resaved" / "config.json").read_text())["mmrope"]
    assert key == json.loads((root / "mrope-i" / "config.json").read_text())["mmrope"]
    reloaded = transformers.AutoModelForImageTextToText.from_pretrained(tmp_path / "resaved")
    assert_outputs({"resaved": outputs(reloaded, torch.load(root / "inputs.pt"))}, expected, "resaved", "mrope-i")
