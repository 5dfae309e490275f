"""Training: config, curriculum, trainer, checkpoints."""

from icsim.training.config import Curriculum, TrainConfig, from_dict
from icsim.training.trainer import Trainer, TrainingDiverged, load_trained

__all__ = ["Curriculum", "TrainConfig", "from_dict", "Trainer", "TrainingDiverged", "load_trained"]
