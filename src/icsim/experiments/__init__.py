"""Paper reproductions: `names()`, `reproduce(name, profile, out)`. One module per paper."""

from icsim.experiments.base import EXPERIMENTS, Experiment, Result, reproduce
from icsim.registry import import_submodules

import_submodules(__name__)

names = EXPERIMENTS.names
get = EXPERIMENTS.get

__all__ = ["EXPERIMENTS", "Experiment", "Result", "reproduce", "names", "get"]
