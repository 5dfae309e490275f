"""Output directories: never silently overwritten, clear errors when they cannot be written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from icsim.errors import InputError


def prepare(out: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Create `out` for a new run. An existing non-empty directory is an error unless
    `overwrite` (which empties it) or `resume` (which keeps it)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is not a directory; choose another --out.")
    if out.exists() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise InputError(
                f"output directory {out} already exists and is not empty; pass --overwrite to "
                "replace it, --resume to continue the run in it, or choose another --out."
            )
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise InputError(
            f"cannot write to output directory {out}: {e.strerror}. "
            "Choose a writable location with free space."
        ) from None
    return out


def write_json(path: Path, data) -> None:
    """Write JSON atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, default=_jsonable)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}.") from None


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
