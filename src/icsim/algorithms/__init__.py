"""Classical algorithms, batched over problems, run step by step.

`names()` lists them; `get(name, **hyperparameters)` builds one; `.run(batch, steps)` returns a
Trajectory. A solver family is one module that registers itself with `@ALGORITHMS.register`.
"""

from icsim.algorithms import least_squares  # noqa: F401  (registers)
from icsim.algorithms.base import Algorithm, Trajectory
from icsim.algorithms.registry import ALGORITHMS

names = ALGORITHMS.names
get = ALGORITHMS.get

__all__ = ["Algorithm", "Trajectory", "ALGORITHMS", "names", "get"]
