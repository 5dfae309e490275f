"""Training: one loop (`Trainer`) whose batches and loss are arguments, its optimiser settings
(`Optim`), run settings (`Run`), losses, checkpoints, and `icsim train`'s flat preset
(`TrainConfig`, `Curriculum`).

Names load on first use (PEP 562): `from icsim.training import TrainConfig` imports no torch,
so `icsim train --help` starts at once."""

import importlib

_WHERE = {
    "Curriculum": "config",
    "TrainConfig": "config",
    "from_dict": "config",
    "TrainingDiverged": "errors",
    "TrainingInterrupted": "errors",
    "Optim": "optim",
    "Run": "trainer",
    "Rng": "trainer",
    "Trainer": "trainer",
    "load_trained": "trainer",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    try:  # a submodule (icsim.training.checkpoint) reached as an attribute
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = list(_WHERE)
