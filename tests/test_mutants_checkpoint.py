"""Tests that kill the mutants of mmrope_hf/integrations/transformers/checkpoint.py that survived the module's tests
(scripts/mutation.py checkpoint; docs/mutation.md): the errors for a config.json that is not a JSON object, and
the non-ASCII round trip of the key (config.json is UTF-8 by the JSON standard, whatever the locale)."""

from __future__ import annotations

import json
import re

import pytest

from mmrope_hf.integrations.transformers.checkpoint import read_scheme, write_scheme


def test_invalid_json_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    path = re.escape(str(tmp_path / "config.json"))
    with pytest.raises(ValueError, match=rf"^{path} is not valid JSON: Expecting property name"):
        read_scheme(tmp_path)


def test_a_json_array_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]", encoding="utf-8")
    path = re.escape(str(tmp_path / "config.json"))
    with pytest.raises(ValueError, match=rf"^{path} must hold a JSON object, got list$"):
        read_scheme(tmp_path)


def test_the_key_round_trips_through_utf8(tmp_path):
    config = {"model_type": "qwen2_vl", "note": "Größe"}
    (tmp_path / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    write_scheme(tmp_path, {"scheme": "mrope-i"})
    saved = json.loads((tmp_path / "config.json").read_bytes().decode("utf-8"))
    assert saved["note"] == "Größe" and saved["mmrope"] == {"scheme": "mrope-i"}
    assert read_scheme(tmp_path) == {"scheme": "mrope-i"}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary file left behind


def test_write_scheme_reports_whether_the_file_changed(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}), encoding="utf-8")
    assert write_scheme(tmp_path, {"scheme": "mrope"}) is True
    before = (tmp_path / "config.json").read_bytes()
    assert write_scheme(tmp_path, {"scheme": "mrope"}) is False  # the same key again: untouched
    assert (tmp_path / "config.json").read_bytes() == before
    assert write_scheme(tmp_path, None) is True
    assert write_scheme(tmp_path, None) is False
    assert json.loads((tmp_path / "config.json").read_text(encoding="utf-8")) == {"model_type": "qwen2_vl"}
