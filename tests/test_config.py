"""MMRopeConfig and the presets: resolution, overrides, round trips and errors."""

from __future__ import annotations

import json

import pytest

from mmrope_hf import MMRopeConfig, available_schemes, resolve_config
from mmrope_hf.config import load_preset
from mmrope_hf.integrations.cli.cli import main as cli


def test_every_preset_resolves_and_round_trips():
    assert {"mrope", "mrope-i", "mhrope", "spatial-reset", "vanilla"} <= set(available_schemes())
    for name in available_schemes():
        config = resolve_config(name)
        assert config.scheme == name
        assert load_preset(name)["description"]
        assert resolve_config(config.to_dict()) == config
        assert resolve_config(config) == config
        assert json.loads(json.dumps(config.to_dict()))["mmrope_hf_version"]


def test_presets_are_what_the_design_says():
    assert resolve_config("mrope") == MMRopeConfig(scheme="mrope", position="mrope", frequency="native")
    mrope_i = resolve_config("mrope-i")
    assert (mrope_i.position, mrope_i.frequency, mrope_i.temporal_stride) == ("spatial-reset", "interleaved", 1.0)
    reset = resolve_config("spatial-reset")
    assert (reset.position, reset.frequency, reset.temporal_stride) == ("spatial-reset", "native", None)
    assert resolve_config("vanilla").position == "vanilla"


def test_overrides():
    config = resolve_config("mrope-i", spatial_reset=False, mrope_section=[4, 6, 6], temporal_stride=2)
    assert config.position == "mrope" and config.mrope_section == (4, 6, 6) and config.temporal_stride == 2.0
    assert resolve_config({"scheme": "mrope", "spatial_reset": True}).position == "spatial-reset"
    assert resolve_config("mrope", layers=["mrope", "vanilla"]).layers == ("mrope", "vanilla")
    config = resolve_config("spatial-reset", layers={"repeat": [True, False, "vanilla"]})
    assert config.designs == ("spatial-reset", "mrope", "vanilla")
    assert config.to_dict()["layers"] == {"repeat": [True, False, "vanilla"]}
    assert resolve_config(config.to_dict()) == config


def test_files(tmp_path):
    (tmp_path / "mine.yaml").write_text("scheme: mrope-i\ntemporal_stride: 0.5\n")
    (tmp_path / "mine.json").write_text(json.dumps({"scheme": "vanilla"}))
    assert resolve_config(str(tmp_path / "mine.yaml")).temporal_stride == 0.5
    assert resolve_config(str(tmp_path / "mine.json")).position == "vanilla"
    with pytest.raises(ValueError, match="does not exist"):
        resolve_config(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"temporal_stride": 0}, r"temporal_stride must be a positive number, got 0"),
        ({"temporal_stride": "fast"}, r"temporal_stride must be a finite number, got 'fast'"),
        ({"mrope_section": [16, 24]}, r"mrope_section must be three non-negative integers \(t, h, w\), got \[16, 24\]"),
        ({"mrope_section": [16, -1, 24]}, r"mrope_section must be three non-negative integers"),
        ({"mrope_section": [16.0, 24, 24]}, r"mrope_section must be three non-negative integers"),
        ({"vision_advance": "min"}, r"unknown vision_advance 'min'; valid choices: max, spatial"),
        ({"position": "diagonal"}, r"unknown position 'diagonal'; valid choices: .*mrope, spatial-reset, .*vanilla"),
        ({"layers": "every-other"}, r"unknown layers 'every-other'; valid choices: all, alternate, lower, upper"),
        (
            {"layers": ["mrope", "diagonal"]},
            r"unknown layers entry 'diagonal'; valid: true, false, .*mrope, .*spatial-reset",
        ),
        ({"layers": []}, r"layers must be a non-empty list of position designs or true/false"),
        ({"layers": {"repeat": []}}, r"layers repeat must be a non-empty list"),
        ({"layers": {"pattern": ["mrope"]}}, r"a layers mapping takes exactly one key, 'repeat'"),
        ({"layers": "alternate", "stagger_with": "diagonal"}, r"unknown stagger_with 'diagonal'"),
        ({"spatial_reset": "yes"}, r"spatial_reset must be true or false, got 'yes'"),
        (
            {"position": "vanilla", "spatial_reset": True},
            r"spatial_reset applies to the mrope/spatial-reset position designs",
        ),
        ({"radius": 10}, r"unknown option\(s\) radius for scheme 'mrope'; valid options: frequency, layers"),
    ],
)
def test_bad_values_name_the_value_and_the_choices(options, message):
    with pytest.raises(ValueError, match=message):
        resolve_config("mrope", **options)


def test_config_from_a_newer_version_says_so():
    with pytest.raises(ValueError, match=r"unknown option\(s\) future_knob .* written by mmrope-hf 9.0.0"):
        resolve_config({"scheme": "mrope", "future_knob": 1, "mmrope_hf_version": "9.0.0"})


def test_bad_scheme_types():
    with pytest.raises(ValueError, match="needs a 'scheme' key"):
        resolve_config({"position": "mrope"})
    with pytest.raises(TypeError, match="scheme must be a name, a path, a dict or an MMRopeConfig"):
        resolve_config(3)


def test_cli(capsys):
    assert cli(["schemes"]) == 0
    out = capsys.readouterr().out
    assert "mrope-i" in out and "temporal_stride" in out
    assert cli(["resolve", "mrope-i", "--set", "temporal_stride=2"]) == 0
    assert json.loads(capsys.readouterr().out)["temporal_stride"] == 2.0
    assert cli(["resolve", "nope"]) == 2
    assert "unknown scheme 'nope'" in capsys.readouterr().err
