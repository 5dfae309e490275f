"""Paper reproductions: `names()`, `reproduce(name, profile, out)`. One module per paper, each
registering itself with `@EXPERIMENTS.register(name)` (the first lookup imports them all)."""

from icsim.experiments.base import EXPERIMENTS, Experiment, Result, reproduce

names = EXPERIMENTS.names
get = EXPERIMENTS.get

__all__ = ["EXPERIMENTS", "Experiment", "Result", "reproduce", "names", "get"]
