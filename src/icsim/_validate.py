"""Checks for hyper-parameters: each failure names the parameter, the value and what is allowed."""

from __future__ import annotations

import math

from icsim.errors import InputError


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer (>= 1), got {value!r}.")
    return value


def nonnegative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{name} must be a non-negative integer (>= 0), got {value!r}.")
    return value


def number(name: str, value, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """A finite real in [low, high] (bounds open where asked)."""
    if not _is_number(value) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}.")
    if low is not None and (value < low or (low_open and value == low)):
        raise InputError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}.")
    if high is not None and (value > high or (high_open and value == high)):
        raise InputError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}.")
    return float(value)


def choice(name: str, value, allowed) -> str:
    if value not in allowed:
        from icsim.errors import did_you_mean

        raise InputError(
            f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}."
            f"{did_you_mean(value, allowed)}"
        )
    return value
