"""The package version (read by pyproject.toml and stamped into saved schemes)."""

__version__ = "0.1.0"
