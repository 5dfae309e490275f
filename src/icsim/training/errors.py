"""How training stops early: a divergence, or a signal asking the process to end."""

from __future__ import annotations


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN/inf; the last good checkpoint is kept."""


class TrainingInterrupted(SystemExit):
    """SIGTERM or SIGINT arrived: the step in flight was finished and a checkpoint written.

    A SystemExit carrying the conventional exit code (128 + signal number: 143 for SIGTERM, 130
    for SIGINT), so a script that does not catch it exits with that code and no traceback."""

    def __init__(self, message: str, code: int):
        super().__init__(code)
        self.message = message

    def __str__(self) -> str:
        return self.message
