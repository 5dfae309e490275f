"""Classical algorithms, batched over problems, run step by step.

`names()` lists them; `get(name, **hyperparameters)` builds one; `.run(batch, steps)` returns a
Trajectory. A solver family is one module of this package that registers itself with
`@ALGORITHMS.register(name)`.
"""

from icsim.algorithms.base import Algorithm, Trajectory
from icsim.algorithms.registry import ALGORITHMS
from icsim.registry import import_submodules

import_submodules(__name__)

names = ALGORITHMS.names
get = ALGORITHMS.get

__all__ = ["Algorithm", "Trajectory", "ALGORITHMS", "names", "get"]
