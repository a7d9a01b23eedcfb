"""PEFT integration: adapters record the scheme they were trained with, and loading one applies it (see
:mod:`mmrope_hf.integrations.peft.adapters`). ``import mmrope_hf`` calls :func:`install`, which costs nothing until
peft is imported."""

from mmrope_hf.integrations.peft.adapters import install, is_installed, uninstall

__all__ = ["install", "is_installed", "uninstall"]
