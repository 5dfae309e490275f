"""Where and how a training run writes, and what it does around the loop: run settings, the
random streams of a seed, the advisory lock on a run directory, stop-on-signal, the log files."""

from __future__ import annotations

import contextlib
import contextvars
import csv
import hashlib
import json
import math
import signal
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from icsim import _validate as V
from icsim import rundir
from icsim.errors import InputError


@dataclass(frozen=True)
class Run:
    """Where and how often a run writes: `dir` gets config.json, metrics.jsonl, checkpoints/ and
    metrics.csv (with several seeds, one `dir/seed_<s>/` each); None writes nothing."""

    dir: str | Path | None = None
    log_every: int = 100
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    quiet: bool = False
    overwrite: bool = False  # replace an existing run directory
    resume: bool = False  # continue from the newest intact checkpoint in `dir`
    log_file: str | Path | None = None  # metrics.jsonl somewhere else (one seed, no `dir`)

    def __post_init__(self):
        V.positive_fields(self, "log_every", "checkpoint_every", "keep_checkpoints")


_RESUMING: contextvars.ContextVar[Path | None] = contextvars.ContextVar("resuming", default=None)


@contextlib.contextmanager
def resuming(root: str | Path):
    """While active, every Trainer whose run directory lies under `root` and was already started
    there continues it from its newest intact checkpoint (a finished one loads its final
    checkpoint and trains no further) instead of starting again. This is how `icsim reproduce
    --resume` continues a killed reproduction with no resume code in the experiments."""
    token = _RESUMING.set(Path(root).resolve())
    try:
        yield
    finally:
        _RESUMING.reset(token)


def resumed(run: Run) -> Run:
    """`run` set to resume when a `resuming` block covers its directory and the run was started
    in it (its config.json, or its seeds' ones, exist); otherwise `run` unchanged (a stage the
    killed reproduction never reached starts afresh)."""
    root = _RESUMING.get()
    if root is None or run.dir is None or run.resume:
        return run
    d = Path(run.dir).resolve()
    if not d.is_relative_to(root):
        return run
    if not (d / "config.json").is_file() and not any(d.glob("seed_*/config.json")):
        # killed between creating the directory and writing its config.json: start it afresh
        empty = d.is_dir() and {p.name for p in d.iterdir()} <= {rundir.MARKER}
        return replace(run, overwrite=True) if empty else run
    return replace(run, resume=True, overwrite=False)


class Rng:
    """The random streams of one seed's batches, saved in its checkpoints: `device`, a generator
    on the training device, and `cpu`, a CPU generator for draws whose values must not depend on
    the device (made on first use); both seeded with the seed."""

    def __init__(self, seed: int, device: torch.device):
        self.seed = seed
        self.device = torch.Generator(device=device).manual_seed(seed)
        self._cpu: torch.Generator | None = None

    @property
    def cpu(self) -> torch.Generator:
        if self._cpu is None:
            self._cpu = torch.Generator().manual_seed(self.seed)
        return self._cpu

    def state(self) -> dict[str, torch.Tensor]:
        out = {"rng.generator": self.device.get_state().cpu()}
        if self._cpu is not None:
            out["rng.cpu"] = self._cpu.get_state()
        return out

    def load(self, tensors: dict) -> None:
        self.device.set_state(tensors["rng.generator"].to(torch.uint8))
        if "rng.cpu" in tensors:
            self.cpu.set_state(tensors["rng.cpu"].to(torch.uint8))


def lock(run_dir: Path):
    """An advisory lock (flock) on the run, or None where there is nothing to lock."""
    try:
        import fcntl
    except ImportError:  # not on this platform: no lock
        return None
    try:  # the run's config.json: written once at the start, never replaced afterwards
        f = open(run_dir / "config.json", "rb")
    except OSError:
        return None
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise InputError(
            f"run directory {run_dir} is in use by another icsim process (it holds a lock on "
            "its config.json); wait for that run to end or stop it, then resume."
        ) from None
    return f


def saved_run_id(run_dir: Path) -> str | None:
    """The run id in a run directory's config.json (None for runs from before run ids)."""
    try:
        rid = json.loads((run_dir / "config.json").read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return rid if isinstance(rid, str) else None


def digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def logged_step(line: str) -> float:
    """The step of a metrics.jsonl line; inf for a line torn by a kill (dropped on resume)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def write_csv(run_dir: Path) -> None:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    rows = [r for r in rows if "diverged" not in r]
    if rows:
        with open(run_dir / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


class _Stop:
    signum: int | None = None


@contextlib.contextmanager
def stop_on_signals():
    """While training: SIGTERM/SIGINT ask the loop to stop after the step in flight (a second
    SIGINT interrupts at once). Only the main thread can take signals; elsewhere, nothing."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.signum = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
