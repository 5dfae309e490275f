"""icsim: transformers as in-context algorithm simulators.

Subpackages load on first use (PEP 562), so `import icsim` is cheap and `icsim.tasks.get(...)`
imports only the tasks: tasks, algorithms, models, constructions, training, analysis,
experiments.
"""

from icsim.errors import InputError
from icsim.registry import lazy_submodules

__version__ = "0.1.0"

SUBPACKAGES = (
    "tasks",
    "algorithms",
    "models",
    "constructions",
    "training",
    "analysis",
    "experiments",
)
__getattr__ = lazy_submodules(__name__, SUBPACKAGES)
__all__ = ["InputError", "__version__", *SUBPACKAGES]
