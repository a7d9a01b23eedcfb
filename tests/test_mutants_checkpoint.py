"""Tests that kill the mutants of mmrope_hf/integrations/transformers/checkpoint.py that survived the module's tests
(scripts/mutation.py checkpoint; docs/mutation.md): the errors for a config.json that is not a JSON object, and
the non-ASCII round trip of the key (config.json is UTF-8 by the JSON standard, whatever the locale)."""

from __future__ import annotations

import json
import locale
import os
import re
import stat
import tempfile
from pathlib import Path

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


# --- the atomic replace: recorded syscalls ------------------------------------------------------------------------


def _config(tmp_path, mode=0o640):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "qwen2_vl"}), encoding="utf-8")
    os.chmod(path, mode)
    return path


def _open_fds():
    return sorted(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


def test_the_temporary_file_is_a_hidden_sibling_renamed_over_the_config(tmp_path, monkeypatch):
    """The new text goes to a hidden ``.config.json.*.tmp`` in the checkpoint's own directory (a rename across
    directories, /tmp included, is not atomic), is complete and flushed to disk before the rename, and already
    has the config's permissions when it replaces it."""
    path = _config(tmp_path, 0o640)
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        events.append(("fsync", stat.S_ISDIR(info.st_mode), info.st_ino, info.st_size))
        return real_fsync(fd)

    def replace(src, dst):
        src, dst = Path(src), Path(dst)
        events.append(("replace", src.parent, src.name, dst, stat.S_IMODE(src.stat().st_mode), src.read_text()))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    assert write_scheme(tmp_path, {"scheme": "mrope-i"}) is True
    want = '{\n  "mmrope": {\n    "scheme": "mrope-i"\n  },\n  "model_type": "qwen2_vl"\n}\n'  # sorted, as it was
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    _, is_dir, _, size = events[0]
    assert not is_dir and size == len(want.encode())  # the file's full text was flushed before its fsync
    _, parent, name, dst, mode, text = events[1]
    assert parent == tmp_path and dst == path
    assert name.startswith(".config.json.") and name.endswith(".tmp") and len(name) > len(".config.json..tmp")
    assert mode == 0o640 and text == want
    _, is_dir, inode, _ = events[2]  # then the directory itself, so the rename is durable
    assert is_dir and inode == tmp_path.stat().st_ino
    assert path.read_text(encoding="utf-8") == want
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o604])
def test_the_config_keeps_its_permissions(tmp_path, mode):
    path = _config(tmp_path, mode)
    write_scheme(tmp_path, {"scheme": "mrope"})
    assert stat.S_IMODE(path.stat().st_mode) == mode
    write_scheme(tmp_path, None)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_the_temporary_file_is_made_in_the_checkpoint_directory(tmp_path, monkeypatch):
    """Observed through tempfile: whatever the default temporary directory, the file is made next to the config."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    _config(checkpoint)
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    made = []
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        made.append(Path(name))
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    write_scheme(checkpoint, {"scheme": "mrope"})
    assert len(made) == 1 and made[0].parent == checkpoint
    assert made[0].name.startswith(".config.json.") and made[0].name.endswith(".tmp")
    assert list(elsewhere.iterdir()) == [] and [p.name for p in checkpoint.iterdir()] == ["config.json"]


def test_the_directory_is_opened_as_a_directory_and_closed(tmp_path, monkeypatch):
    _config(tmp_path)
    opened, closed = [], []
    real_open, real_close = os.open, os.close

    def fake_open(file, flags, *args, **kwargs):
        fd = real_open(file, flags, *args, **kwargs)
        opened.append((Path(file), flags, fd))
        return fd

    def fake_close(fd):
        closed.append(fd)
        return real_close(fd)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "close", fake_close)
    before = _open_fds()
    write_scheme(tmp_path, {"scheme": "mrope"})
    directory = [entry for entry in opened if entry[0] == tmp_path]
    assert len(directory) == 1
    _, flags, fd = directory[0]
    assert flags & os.O_DIRECTORY and flags & os.O_ACCMODE == os.O_RDONLY
    assert fd in closed
    assert _open_fds() == before  # nothing left open


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt("stop")])
@pytest.mark.parametrize("where", ["replace", "fsync", "chmod"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch, where, error):
    path = _config(tmp_path, 0o644)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(os, where, fail)
    with pytest.raises(type(error), match=str(error)):
        write_scheme(tmp_path, {"scheme": "mrope"})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


@pytest.fixture
def ascii_locale():
    """The C locale, whose encoding is ASCII: what a file opened without an encoding would be decoded with."""
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        if locale.getencoding().lower() not in ("ascii", "ansi_x3.4-1968", "us-ascii"):
            pytest.skip(f"the C locale's encoding is {locale.getencoding()} here")
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


def test_config_json_is_read_as_utf8_whatever_the_locale(tmp_path, ascii_locale):
    config = {"model_type": "qwen2_vl", "note": "Größe", "mmrope": {"scheme": "mrope"}}
    (tmp_path / "config.json").write_bytes(json.dumps(config, ensure_ascii=False).encode("utf-8"))
    assert read_scheme(tmp_path) == {"scheme": "mrope"}
    assert write_scheme(tmp_path, {"scheme": "mrope-i"}) is True
    saved = json.loads((tmp_path / "config.json").read_bytes().decode("utf-8"))
    assert saved == {"model_type": "qwen2_vl", "note": "Größe", "mmrope": {"scheme": "mrope-i"}}
