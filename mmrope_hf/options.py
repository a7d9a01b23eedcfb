"""Options that a position design or a frequency allocation declares for itself.

A component registers ``{name: Option(default, check, help)}``; the config collects the options of the
components a scheme uses, fills in defaults, and runs each ``check`` (which returns the normalised value or
raises ``ValueError`` naming the value). New designs plug in without touching the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Option:
    """A named option: its default, a check that normalises a value, and one line of help."""

    default: Any
    check: Callable[[str, Any], Any]
    help: str


def number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive_number(name: str, value: Any) -> float:
    if number(name, value) <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def choice(*choices: Any) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(str, choices))}")
        return value

    return check


def int_triple(name: str, value: Any) -> tuple[int, int, int]:
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise ValueError(f"{name} must be three non-negative integers (t, h, w), got {value!r}")
    return tuple(value)
