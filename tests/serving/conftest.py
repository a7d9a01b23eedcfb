"""The serving tests run in the serving venv (scripts/setup_vllm_venv.sh); elsewhere they are not collected.

``.ci/run`` runs them there: ``.venv-vllm/bin/python -m pytest tests/serving``. Engines run in one process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``) unless a test asks for vLLM's default multi-process mode.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

if importlib.util.find_spec("vllm") is None:  # the main venv: vLLM pins another transformers
    collect_ignore_glob = ["test_*.py"]
else:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory):
    """``checkpoints(family, scheme=None, **options)`` -> a checkpoint dir (built once per family and scheme)."""
    from vllm_cases import build_checkpoint, with_scheme

    root = tmp_path_factory.mktemp("serving")
    made: dict[tuple, Path] = {}

    def get(family: str, scheme: str | None = None, **options) -> Path:
        if (family,) not in made:
            made[(family,)] = build_checkpoint(family, root / family)
        key = (family, scheme, tuple(sorted(options.items())))
        if key not in made:
            name = "-".join([family, scheme or "stock", *(f"{k}={v}" for k, v in sorted(options.items()))])
            made[key] = with_scheme(made[(family,)], root / name, scheme, **options)
        return made[key]

    return get
