"""The examples in the package's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import mmrope_hf

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(mmrope_hf.__path__, "mmrope_hf.") if not name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_public_api_is_documented_with_examples():
    for name in mmrope_hf.__all__:
        obj = getattr(mmrope_hf, name)
        if callable(obj):
            assert obj.__doc__ and ">>>" in obj.__doc__, f"mmrope_hf.{name} has no docstring example"
