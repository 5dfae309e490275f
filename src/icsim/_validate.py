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


def positive_fields(obj, *names: str) -> None:
    """`positive_int` on each named field of `obj` (a settings dataclass's own check)."""
    for name in names:
        positive_int(name, getattr(obj, name))


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


# torch.Generator.manual_seed takes seeds in [0, 2**64 - 1]
SEED_MAX = 2**64 - 1


def seed(name: str, value) -> int:
    nonnegative_int(name, value)
    if value > SEED_MAX:
        raise InputError(
            f"{name} must be at most 2**64 - 1 = {SEED_MAX} (the random generator's range), "
            f"got {value}."
        )
    return value


DEVICE_TYPES = ("cpu", "cuda")


def device(value: str) -> str:
    """'cpu', 'cuda' or 'cuda:N': the device types icsim runs on (not meta, mps, xpu, ...)."""
    kind, _, index = str(value).partition(":")
    if kind not in DEVICE_TYPES or (index and not (index.isdigit() and kind == "cuda")):
        raise InputError(
            f"device {value!r} is not supported; use 'cpu', 'cuda' or 'cuda:N' (N a GPU index)."
        )
    return value


def free_memory(device_name: str) -> int:
    """Bytes free on `device_name`: the GPU's free memory, or the machine's available memory."""
    if device_name.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(torch.device(device_name))[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(needed: int, device_name: str, what: str, fix: str) -> None:
    """Refuse, before allocating, what cannot fit: the estimate and the free memory in one line."""
    free = free_memory(device_name)
    if needed > free:
        raise InputError(
            f"{what} needs about {_gib(needed)} of memory, and {device_name} has {_gib(free)} "
            f"free; {fix}."
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"
