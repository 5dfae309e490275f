"""Training: one loop (`Trainer`) whose batches and loss are arguments, its optimiser settings
(`Optim`), run settings (`Run`), losses, checkpoints, and `icsim train`'s flat preset
(`TrainConfig`, `Curriculum`)."""

from icsim.training.config import Curriculum, TrainConfig, from_dict
from icsim.training.errors import TrainingDiverged, TrainingInterrupted
from icsim.training.optim import Optim
from icsim.training.trainer import Rng, Run, Trainer, load_trained

__all__ = [
    "Curriculum",
    "TrainConfig",
    "from_dict",
    "Optim",
    "Run",
    "Rng",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "load_trained",
]
