"""The transformers versions this plugin patches, and the check that runs before any patch."""

from __future__ import annotations

import transformers
from packaging.version import Version

MIN_TRANSFORMERS = "5.17"
MAX_TRANSFORMERS = "5.24"  # exclusive
SUPPORTED_RANGE = f"transformers>={MIN_TRANSFORMERS},<{MAX_TRANSFORMERS}"


def check_transformers_version(version: str | None = None) -> None:
    """Raise ``RuntimeError`` when the installed transformers is outside the supported range."""
    version = version or transformers.__version__
    if not Version(MIN_TRANSFORMERS) <= Version(version) < Version(MAX_TRANSFORMERS):
        raise RuntimeError(
            f"mmrope-hf supports {SUPPORTED_RANGE} (tested with 5.23), but transformers {version} is installed; "
            f"install a supported release, e.g. pip install 'transformers==5.23.*'"
        )


def missing_attribute(what: str, owner: object) -> AttributeError:
    """The error an adapter raises when the model lacks something it patches."""
    return AttributeError(
        f"{type(owner).__name__} has no {what}; this model does not have the layout mmrope-hf patches "
        f"({SUPPORTED_RANGE}, installed: transformers {transformers.__version__})"
    )
