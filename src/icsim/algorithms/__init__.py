"""Classical algorithms, batched over problems, run step by step.

`names()` lists them; `get(name, **hyperparameters)` builds one; `.run(batch, steps)` returns a
Trajectory. A solver family is one module of this package that registers itself with
`@ALGORITHMS.register(name)` (`ALGORITHMS` lives beside the `Algorithm` base class; its first
lookup imports every solver module).
"""

from icsim.algorithms.base import ALGORITHMS, Algorithm, Trajectory

names = ALGORITHMS.names
get = ALGORITHMS.get

__all__ = ["Algorithm", "Trajectory", "ALGORITHMS", "names", "get"]
