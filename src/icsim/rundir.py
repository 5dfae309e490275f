"""Output directories: never silently overwritten, clear errors when they cannot be written."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from icsim.errors import InputError


def prepare(out: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Create `out` for a new run. An existing non-empty directory is an error unless
    `overwrite` (which empties it) or `resume` (which keeps it). A directory that cannot be
    written (read-only, full disk) is an InputError, and one this call made is removed again."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is not a directory; choose another --out.")
    if out.exists() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise InputError(
                f"output directory {out} already exists and is not empty; pass --overwrite to "
                "replace it, --resume to continue the run in it, or choose another --out."
            )
        try:
            shutil.rmtree(out)
        except OSError as e:
            raise _unwritable(out, e) from None
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        for p in missing:  # undo what this call created, innermost first
            with contextlib.suppress(OSError):
                p.rmdir()
        raise _unwritable(out, e) from None
    return out


def _unwritable(out: Path, e: OSError) -> InputError:
    return InputError(
        f"cannot write to output directory {out}: {e.strerror or e}. "
        "Choose a writable location with free space."
    )


def write_text(path: Path, text: str) -> None:
    """Write a file atomically (temporary file, fsync, rename): a crash or a full disk leaves
    the previous file whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InputError(
            f"cannot write {path}: {e.strerror or e}. Free space or choose a writable location."
        ) from None


def write_json(path: Path, data) -> None:
    """Write JSON atomically (see `write_text`)."""
    write_text(path, json.dumps(data, indent=1, default=_jsonable))


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
