"""User-facing errors. The CLI turns an `InputError` into one line and exit code 2."""

from __future__ import annotations

import difflib


class InputError(ValueError):
    """Bad input from the user: an unknown name, an out-of-range value, a corrupt file.

    The message names the bad value, what is allowed and how to fix it.
    """


def did_you_mean(value: str, allowed) -> str:
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name(kind: str, value, allowed) -> InputError:
    allowed = sorted(allowed)
    return InputError(
        f"unknown {kind} {value!r}.{did_you_mean(value, allowed)} Allowed: {', '.join(allowed)}."
    )
