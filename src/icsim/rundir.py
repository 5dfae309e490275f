"""Output directories: never silently overwritten, clear errors when they cannot be written."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from icsim.errors import InputError

MARKER = ".icsim"  # written into every directory icsim creates; --overwrite needs it


def check_out(out: str | Path | None, name: str = "--out") -> Path:
    """`out` as a Path; an empty one (which would mean the working directory) is refused."""
    if out is None or not str(out).strip():
        raise InputError(f"{name} must not be empty; name the directory for the run's files.")
    if "\x00" in str(out):
        raise InputError(
            f"{name} {str(out)!r} contains a NUL byte, which no file system allows in a path; "
            "choose a directory name without it."
        )
    return Path(out)


def made_by_icsim(out: Path) -> bool:
    return (Path(out) / MARKER).is_file()


def _check_replaceable(out: Path) -> None:
    if not made_by_icsim(out):
        raise InputError(
            f"output directory {out} was not created by icsim (it has no {MARKER} marker), so "
            "--overwrite will not delete it; move it away yourself or choose another --out."
        )


def prepare(out: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Create `out` for a new run. An existing non-empty directory is an error unless
    `overwrite` (which empties it, if icsim made it) or `resume` (which keeps it). A directory
    that cannot be written (read-only, full disk) is an InputError, and one this call made is
    removed again. The directory gets icsim's marker, so a later --overwrite may replace it."""
    out = check_out(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is not a directory; choose another --out.")
    if out.exists() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise InputError(
                f"output directory {out} already exists and is not empty; pass --overwrite to "
                "replace it, --resume to continue the run in it, or choose another --out."
            )
        _check_replaceable(out)
        try:
            shutil.rmtree(out)
        except OSError as e:
            raise _unwritable(out, e) from None
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        marker = out / MARKER
        if not marker.exists():
            marker.write_text(json.dumps({"created_by": "icsim"}) + "\n")
    except OSError as e:
        for p in missing:  # undo what this call created, innermost first
            with contextlib.suppress(OSError):
                (p / MARKER).unlink(missing_ok=True)
                p.rmdir()
        raise _unwritable(out, e) from None
    return out


@contextlib.contextmanager
def replacing(out: str | Path, *, overwrite: bool = False):
    """`prepare(out)` for a run that must start cleanly before an older run is lost: with
    `overwrite`, the old directory (icsim's only) is moved aside, and put back if the block
    fails (bad config, out of memory at allocation); it is deleted once the block succeeds. A
    directory this call created is removed again when the block fails."""
    out = check_out(out)
    old = None
    if overwrite and out.is_dir() and any(out.iterdir()):
        _check_replaceable(out)
        old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        try:
            os.rename(out, old)
        except OSError as e:
            raise _unwritable(out, e) from None
    created = not out.exists()
    try:
        yield prepare(out)
    except BaseException:
        if created or old is not None:
            shutil.rmtree(out, ignore_errors=True)
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
