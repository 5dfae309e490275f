"""icsim: transformers as in-context algorithm simulators."""

__version__ = "0.1.0"

from icsim import algorithms, constructions, models, tasks  # noqa: E402,F401
from icsim.errors import InputError  # noqa: E402,F401
