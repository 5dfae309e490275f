"""Progress a person can follow without a terminal (nohup, Slurm, Ray logs).

At a terminal the training loop shows a tqdm bar; otherwise `Lines` prints one line every
`ICSIM_PROGRESS_SECONDS` seconds (default 30; the first and last log rows always):

    icsim: train-transformer: step 1200/6000 (20%) loss 0.412, 12.3 steps/s, ETA 6.5 min

A reproduction announces its stages on the same stream (`reproduction`, `stage`): each model it
trains ("training model 1: train-transformer (6,000 steps)"), each stage an experiment names
("baselines", "figures"), the report at the end.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time


def _every_s() -> float:
    try:
        return max(0.0, float(os.environ.get("ICSIM_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):  # nan or inf: no rate yet
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Lines:
    """An `on_log` hook of `Trainer`: a progress line per log row, at most one every `every_s`
    seconds, when the stream is not a terminal (there the tqdm bar shows the same)."""

    def __init__(self, total: int, label: str = "", every_s: float | None = None, stream=None):
        self.total, self.label = total, label
        self.every_s = _every_s() if every_s is None else every_s
        self.stream = stream
        self._last_t: float | None = None
        self._last_step = -1
        training(label, total)

    def __call__(self, row: dict) -> None:
        stream = self.stream or sys.stderr
        step = row.get("step", 0)
        if step == self._last_step or _isatty(stream):  # several seeds log the same step
            return
        self._last_step = step
        now = time.monotonic()
        due = self._last_t is None or now - self._last_t >= self.every_s or step >= self.total
        if not due:
            return
        self._last_t = now
        rate = row.get("steps_per_s") or float("nan")
        left = (self.total - step) / rate if rate == rate and rate > 0 else float("nan")
        loss = row.get("loss")
        loss = f"{loss:.4g}" if isinstance(loss, float) else str(loss)
        who = f"{self.label}: " if self.label else ""
        print(
            f"icsim: {who}step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%) "
            f"loss {loss}, {rate:.3g} steps/s, ETA {eta(left)}",
            file=stream,
            flush=True,
        )


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a file
        return False


# -- a reproduction's stages ----------------------------------------------------------------
class _Reproduction:
    def __init__(self, name: str, quiet: bool, stream=None):
        self.name, self.quiet, self.stream, self.trained = name, quiet, stream, 0
        self.training_seconds = 0.0  # wall time inside Trainer.train, for the time breakdown

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(f"icsim: {self.name}: {msg}", file=self.stream or sys.stderr, flush=True)


_CURRENT: contextvars.ContextVar[_Reproduction | None] = contextvars.ContextVar(
    "icsim_reproduction", default=None
)


@contextlib.contextmanager
def reproduction(name: str, quiet: bool = False, stream=None):
    """Inside this block `stage(...)` and every Trainer's start are announced as `name`'s."""
    rep = _Reproduction(name, quiet, stream)
    token = _CURRENT.set(rep)
    t0 = time.perf_counter()
    rep.say("started")
    try:
        yield rep
        rep.say(f"done in {eta(time.perf_counter() - t0)}")
    finally:
        _CURRENT.reset(token)


def stage(msg: str) -> None:
    """Announce a stage of the reproduction in progress ("probes", "baselines", "figures");
    nothing outside a reproduction or when it is quiet."""
    rep = _CURRENT.get()
    if rep is not None:
        rep.say(msg)


def trained_for(seconds: float) -> None:
    """Add `seconds` spent in a Trainer's loop to the reproduction's training time."""
    rep = _CURRENT.get()
    if rep is not None:
        rep.training_seconds += seconds


def training(label: str, steps: int) -> None:
    """A model starts training inside a reproduction: "training model k: LABEL (N steps)"."""
    rep = _CURRENT.get()
    if rep is not None:
        rep.trained += 1
        rep.say(f"training model {rep.trained}: {label or 'a model'} ({steps:,} steps)")
