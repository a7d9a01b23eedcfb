"""Loading a checkpoint patched from its `mmrope` config key or the `mmrope=` keyword, and `mmrope apply/show`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from conftest import inputs_for, logits

import mmrope_hf
from mmrope_hf.config import load_preset
from mmrope_hf.integrations.cli.cli import main as cli
from mmrope_hf.integrations.transformers import loading
from mmrope_hf.testing import MROPE_FAMILIES, tiny_model

FAMILY = "qwen2_5_vl"
CONCRETE, AUTO = "Qwen2_5_VLForConditionalGeneration", "AutoModelForImageTextToText"
PAPER_HEADS = dict(
    hidden_size=1024,
    num_attention_heads=8,
    num_key_value_heads=8,
    intermediate_size=64,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
)
PRESET_FILE = str(Path(__file__).resolve().parents[1] / "configs" / "mrope-i.yaml")


def load(cls, path, **kwargs):
    return cls.from_pretrained(path, attn_implementation="eager", **kwargs)  # tiny_model is eager


def save(model, path: Path) -> Path:
    model.save_pretrained(path)
    return path


def snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every file of a checkpoint."""
    return {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in sorted(path.iterdir())}


def set_key(path: Path, value) -> None:
    config = json.loads((path / "config.json").read_text())
    config["mmrope"] = value
    (path / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


@pytest.fixture(params=[CONCRETE, AUTO])
def cls(request):
    """Looked up at run time: in transformers 5.23 the first access to a model class replaces
    ``sys.modules["transformers"]``, and doing that at collection would split the module between test files."""
    return getattr(transformers, request.param)


@pytest.fixture(scope="module")
def inputs():
    return inputs_for(FAMILY, "one_image")


@pytest.fixture
def stock_checkpoint(tmp_path):
    return save(tiny_model(FAMILY), tmp_path / "stock")


@pytest.fixture
def reset_checkpoint(tmp_path):
    """A checkpoint saved with the spatial-reset scheme."""
    return save(mmrope_hf.patch_model(tiny_model(FAMILY), "spatial-reset"), tmp_path / "reset")


# --- the checkpoint's key ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", mmrope_hf.available_schemes())
def test_round_trip_gives_the_in_memory_patched_model(tmp_path, inputs, cls, scheme):
    fixed_section = "mrope_section" in load_preset(scheme)  # the papers' set-ups: head_dim 128, 8 KV heads
    patched = mmrope_hf.patch_model(tiny_model(FAMILY, **(PAPER_HEADS if fixed_section else {})), scheme)
    path = save(patched, tmp_path / scheme)
    before = snapshot(path)
    loaded = load(cls, path)
    assert type(loaded) is type(patched)
    assert mmrope_hf.patch_info(loaded) == mmrope_hf.patch_info(patched)
    assert torch.equal(logits(loaded, inputs), logits(patched, inputs))
    assert snapshot(path) == before  # loading never writes to the checkpoint


@pytest.mark.parametrize("family", [family for family in MROPE_FAMILIES if family != FAMILY])
def test_every_family_round_trips_its_scheme(tmp_path, family):
    """A patched model of each family, saved and loaded through the auto class, is the loaded weights under the same
    scheme (the expectation is built from the same file: transformers' weight conversion of Qwen3.5-MoE experts
    alone moves logits by ~5e-7)."""
    patched = mmrope_hf.patch_model(tiny_model(family), "mrope-i")
    path = save(patched, tmp_path / family)
    loaded = load(transformers.AutoModelForImageTextToText, path)
    stock = load(transformers.AutoModelForImageTextToText, path, mmrope=None)
    assert type(loaded) is type(patched) and not mmrope_hf.is_patched(stock)
    assert mmrope_hf.patch_info(loaded) == mmrope_hf.patch_info(patched)
    family_inputs = inputs_for(family, "one_image")
    stock_logits = logits(stock, family_inputs)
    assert torch.equal(logits(loaded, family_inputs), logits(mmrope_hf.patch_model(stock, "mrope-i"), family_inputs))
    assert not torch.equal(logits(loaded, family_inputs), stock_logits)


def test_inner_model_through_auto_model(reset_checkpoint):
    loaded = load(transformers.AutoModel, reset_checkpoint)
    assert type(loaded) is transformers.Qwen2_5_VLModel
    assert mmrope_hf.patch_info(loaded)["scheme"] == "spatial-reset"


def test_stock_checkpoint_loads_stock(stock_checkpoint, cls):
    loaded = load(cls, stock_checkpoint)
    assert not mmrope_hf.is_patched(loaded)
    assert not hasattr(loaded.config, "mmrope")


def test_unpatching_a_loaded_model_gives_the_stock_model_and_config(reset_checkpoint, inputs):
    loaded = mmrope_hf.unpatch_model(load(transformers.Qwen2_5_VLForConditionalGeneration, reset_checkpoint))
    assert not hasattr(loaded.config, "mmrope")
    assert torch.equal(logits(loaded, inputs), logits(tiny_model(FAMILY), inputs))


BAD_KEYS = {
    "unknown scheme": ({"scheme": "nope"}, "unknown scheme 'nope'"),
    "no scheme": ({"position": "mrope"}, "needs a 'scheme' key"),
    "unknown option": ({"scheme": "mrope", "radius_typo": 3}, "unknown option"),
    "bad option value": ({"scheme": "mrope-i", "temporal_stride": -1}, "temporal_stride"),
    "section that does not fit": ({"scheme": "mrope-i", "mrope_section": [8, 8, 8]}, "sums to 24"),
    "a path instead of a name": (PRESET_FILE, "is not a preset name"),
    "an unknown name": ("mrope-j", "'mrope-j' is not a preset name"),
    "wrong type": (5, "expected a mapping or a preset name, got int 5"),
}
VALID_FORMS = 'Valid forms: a scheme dict with a "scheme" key'


@pytest.mark.parametrize("case", BAD_KEYS)
def test_a_bad_key_fails_at_load_naming_the_file_and_the_key(stock_checkpoint, cls, case):
    value, reason = BAD_KEYS[case]
    set_key(stock_checkpoint, value)
    before = snapshot(stock_checkpoint)
    with pytest.raises(ValueError) as error:
        load(cls, stock_checkpoint)
    message = str(error.value)
    assert message.startswith(f'{stock_checkpoint / "config.json"}: invalid "mmrope" key')
    assert reason in message
    assert VALID_FORMS in message and ", ".join(mmrope_hf.available_schemes()) in message
    assert snapshot(stock_checkpoint) == before
    assert not mmrope_hf.is_patched(load(cls, stock_checkpoint, mmrope=None))  # the documented way out


def test_a_preset_name_in_the_key_as_a_stock_process_writes_it_loads_that_preset(
    tmp_path, reset_checkpoint, inputs, cls
):
    loading.uninstall()  # stock transformers takes the keyword as an override of the config's key
    try:
        stock = load(transformers.AutoModelForImageTextToText, reset_checkpoint, mmrope="mrope-i")
    finally:
        loading.install()
    assert stock.config.mmrope == "mrope-i" and not mmrope_hf.is_patched(stock)
    written = save(stock, tmp_path / "written_by_stock")
    assert json.loads((written / "config.json").read_text())["mmrope"] == "mrope-i"

    loaded = load(cls, written)
    expected = mmrope_hf.patch_model(tiny_model(FAMILY), "mrope-i")
    assert mmrope_hf.patch_info(loaded) == mmrope_hf.patch_info(expected)
    assert torch.equal(logits(loaded, inputs), logits(expected, inputs))
    resaved = json.loads((save(loaded, tmp_path / "resaved") / "config.json").read_text())
    assert resaved["mmrope"] == mmrope_hf.resolve_config("mrope-i").to_dict()  # the full dict from now on


# --- the mmrope= keyword --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, scheme",
    [
        ("mrope-i", "mrope-i"),
        ({"scheme": "vanilla"}, "vanilla"),
        (PRESET_FILE, "mrope-i"),
        (mmrope_hf.resolve_config("mrope", temporal_stride=2.0), "mrope"),
    ],
    ids=["name", "dict", "yaml", "config"],
)
def test_keyword_overrides_the_checkpoint_and_is_saved(tmp_path, reset_checkpoint, inputs, cls, value, scheme):
    before = snapshot(reset_checkpoint)
    loaded = load(cls, reset_checkpoint, mmrope=value)
    expected = mmrope_hf.patch_model(tiny_model(FAMILY), value)
    assert mmrope_hf.patch_info(loaded) == mmrope_hf.patch_info(expected)
    assert mmrope_hf.patch_info(loaded)["scheme"] == scheme
    assert torch.equal(logits(loaded, inputs), logits(expected, inputs))
    assert snapshot(reset_checkpoint) == before
    reloaded = load(cls, save(loaded, tmp_path / "resaved"))
    assert mmrope_hf.patch_info(reloaded) == mmrope_hf.patch_info(expected)


def test_keyword_none_loads_stock_and_saves_stock(tmp_path, reset_checkpoint, inputs, cls):
    loaded = load(cls, reset_checkpoint, mmrope=None)
    assert not mmrope_hf.is_patched(loaded)
    assert not hasattr(loaded.config, "mmrope")
    assert torch.equal(logits(loaded, inputs), logits(tiny_model(FAMILY), inputs))
    assert "mmrope" not in json.loads((save(loaded, tmp_path / "resaved") / "config.json").read_text())


def test_a_bad_keyword_fails_before_loading(stock_checkpoint, cls, monkeypatch):
    monkeypatch.setattr(transformers.PreTrainedModel, "_load_pretrained_model", None)  # must not be reached
    with pytest.raises(ValueError, match="unknown scheme 'nope'"):
        cls.from_pretrained(stock_checkpoint, mmrope="nope")
    with pytest.raises(TypeError, match="scheme must be"):
        cls.from_pretrained(stock_checkpoint, mmrope=5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dtype": torch.bfloat16},
        {"torch_dtype": torch.bfloat16},
        {"low_cpu_mem_usage": True},
        {"device_map": "cpu"},
        {"device_map": "auto", "dtype": torch.bfloat16},
        {"output_loading_info": True},
    ],
    ids=["dtype", "torch_dtype", "low_cpu_mem_usage", "device_map_cpu", "device_map_auto", "loading_info"],
)
def test_loading_options_load_then_patch(reset_checkpoint, inputs, cls, kwargs):
    """Loading with the key equals loading stock with the same options and patching afterwards."""
    loaded = load(cls, reset_checkpoint, **kwargs)
    stock = load(cls, reset_checkpoint, mmrope=None, **kwargs)
    if kwargs.get("output_loading_info"):
        (loaded, info), (stock, _) = loaded, stock
        assert not info["missing_keys"] and not info["unexpected_keys"]
    expected = mmrope_hf.patch_model(stock, "spatial-reset")
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype", torch.float32))
    assert loaded.dtype == dtype and loaded.device.type == "cpu"
    assert mmrope_hf.patch_info(loaded) == mmrope_hf.patch_info(expected)
    assert torch.equal(logits(loaded, inputs), logits(expected, inputs))


def test_disk_offload_keeps_accelerate_hooks_working(tmp_path, reset_checkpoint, inputs):
    offload = dict(device_map="auto", max_memory={"cpu": 0}, offload_folder=str(tmp_path / "offload"))
    loaded = load(transformers.AutoModelForImageTextToText, reset_checkpoint, **offload)
    assert set(loaded.hf_device_map.values()) == {"disk"}
    assert any(hasattr(module, "_hf_hook") for module in loaded.modules())
    expected = mmrope_hf.patch_model(tiny_model(FAMILY), "spatial-reset")
    assert torch.equal(logits(loaded, inputs), logits(expected, inputs))


# --- the hook itself ------------------------------------------------------------------------------------------------


def test_uninstall_restores_the_original_methods(reset_checkpoint, stock_checkpoint):
    originals = dict(loading._ORIGINALS)
    assert transformers.PreTrainedModel in originals and transformers.AutoModelForImageTextToText in originals
    loading.uninstall()
    try:
        assert not loading.is_installed()
        for cls, original in originals.items():
            assert vars(cls)["from_pretrained"] is original
        assert not mmrope_hf.is_patched(load(transformers.AutoModelForImageTextToText, reset_checkpoint))
        with pytest.raises(TypeError, match="mmrope"):  # stock transformers: the keyword reaches __init__
            load(transformers.Qwen2_5_VLForConditionalGeneration, stock_checkpoint, mmrope="mrope-i")
    finally:
        loading.install()
    loading.install()  # idempotent: wraps each original once
    assert loading._ORIGINALS == originals
    assert all(vars(cls)["from_pretrained"].__func__.__wrapped__ is orig.__func__ for cls, orig in originals.items())
    assert mmrope_hf.is_patched(load(transformers.AutoModelForImageTextToText, reset_checkpoint))


@pytest.mark.slow
def test_with_the_start_up_hook_off_and_no_import_transformers_ignores_the_key(reset_checkpoint):
    script = (
        "import sys, transformers\n"
        f"model = transformers.AutoModelForImageTextToText.from_pretrained({str(reset_checkpoint)!r})\n"
        "assert 'mmrope_hf' not in sys.modules\n"
        "assert model.config.mmrope['scheme'] == 'spatial-reset'\n"
        "assert not hasattr(model.model, '_mmrope')\n"
        "assert type(model.model.language_model.rotary_emb).__module__.startswith('transformers.')\n"
        "print('stock')\n"
    )
    env = {**os.environ, "MMROPE_HF_AUTOLOAD": "0"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=reset_checkpoint, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "stock"


# --- mmrope apply / show --------------------------------------------------------------------------------------------


def test_cli_apply_show_remove_edit_only_the_key(stock_checkpoint, capsys):
    original = (stock_checkpoint / "config.json").read_bytes()
    weights = stock_checkpoint / "model.safetensors"
    weights_before = (weights.read_bytes(), weights.stat().st_mtime_ns)

    assert cli(["show", str(stock_checkpoint)]) == 0
    assert capsys.readouterr().out == "stock\n"
    assert cli(["apply", str(stock_checkpoint), "--scheme", "mrope-i", "--set", "temporal_stride=2"]) == 0
    config = json.loads((stock_checkpoint / "config.json").read_text())
    stock_config = json.loads(original)
    assert {key: value for key, value in config.items() if key != "mmrope"} == stock_config
    assert list(config) == sorted([*stock_config, "mmrope"])  # save_pretrained's sorted order is kept
    assert config["mmrope"] == mmrope_hf.resolve_config("mrope-i", temporal_stride=2).to_dict()

    capsys.readouterr()
    assert cli(["show", str(stock_checkpoint)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["scheme"] == "mrope-i" and shown["temporal_stride"] == 2.0
    assert shown == mmrope_hf.patch_info(load(transformers.AutoModelForImageTextToText, stock_checkpoint))

    assert cli(["apply", str(stock_checkpoint), "--config", PRESET_FILE]) == 0
    assert json.loads((stock_checkpoint / "config.json").read_text())["mmrope"]["temporal_stride"] == 1.0
    assert cli(["apply", str(stock_checkpoint), "--remove"]) == 0
    assert (stock_checkpoint / "config.json").read_bytes() == original
    assert (weights.read_bytes(), weights.stat().st_mtime_ns) == weights_before
    assert {p.name for p in stock_checkpoint.iterdir()} == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
    }


def test_cli_apply_keeps_an_unsorted_key_order(stock_checkpoint):
    path = stock_checkpoint / "config.json"
    config = dict(reversed(json.loads(path.read_text()).items()))
    path.write_text(json.dumps(config, indent=4))
    assert cli(["apply", str(stock_checkpoint), "--scheme", "vanilla"]) == 0
    assert list(json.loads(path.read_text())) == [*config, "mmrope"]
    assert cli(["apply", str(stock_checkpoint), "--scheme", "mrope"]) == 0  # replaced in place
    assert list(json.loads(path.read_text())) == [*config, "mmrope"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["apply", "{ck}", "--scheme", "nope"], "unknown scheme 'nope'"),
        (["apply", "{ck}", "--scheme", "mrope-i", "--set", "temporal_stride"], "--set expects key=value"),
        (["apply", "{ck}", "--scheme", "mrope-i", "--set", "mrope_section=[8,8,8]"], "sums to 24"),
        (["apply", "{ck}", "--remove", "--set", "temporal_stride=2"], "cannot be combined"),
        (["apply", "{ck}/missing", "--scheme", "mrope"], "is not a checkpoint directory"),
        (["show", "{ck}/missing"], "is not a checkpoint directory"),
    ],
)
def test_cli_errors_exit_2_and_leave_the_checkpoint_alone(stock_checkpoint, capsys, args, message):
    before = snapshot(stock_checkpoint)
    assert cli([arg.format(ck=stock_checkpoint) for arg in args]) == 2
    assert message in capsys.readouterr().err
    assert snapshot(stock_checkpoint) == before


def test_cli_show_names_the_file_and_key_of_a_bad_key(stock_checkpoint, capsys):
    set_key(stock_checkpoint, {"scheme": "nope"})
    assert cli(["show", str(stock_checkpoint)]) == 2
    assert f'{stock_checkpoint / "config.json"}: invalid "mmrope" key' in capsys.readouterr().err


def test_an_interrupted_write_leaves_the_old_file(stock_checkpoint, monkeypatch, capsys):
    before = snapshot(stock_checkpoint)

    def crash(src, dst):
        raise OSError("disk unplugged")

    monkeypatch.setattr(os, "replace", crash)
    assert cli(["apply", str(stock_checkpoint), "--scheme", "mrope-i"]) == 2
    assert "disk unplugged" in capsys.readouterr().err
    assert snapshot(stock_checkpoint) == before  # no temporary file left behind either
