"""The training settings an experiment declares, inherited instead of repeated: `RunSettings` (the
optimiser settings, steps, batch size, log interval) and `TransformerSettings` (with the
transformer's shape, its seed and the GPU fast paths). Each checks its fields once, builds the
`Optim` and `Run` the one `Trainer` takes, and is cut alike by a `--smoke` run
(`icsim.experiments.base.smoke_cuts`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from icsim import _validate as V
from icsim.training.optim import Optim, OptimSettings
from icsim.training.run import Run


@dataclass(frozen=True, kw_only=True)
class RunSettings(OptimSettings):
    """A training run: `steps` optimiser steps on batches of `batch_size` prompts, a log row every
    `log_every` steps; the optimiser settings are `OptimSettings`' (lr, schedule, ...). Defaults:
    Garg et al. 2022's run (as `TrainConfig`'s). Inherit it, adding fields and changing
    defaults."""

    steps: int = 500_000
    batch_size: int = 64
    log_every: int = 100

    def __post_init__(self):
        V.positive_fields(self, "steps", "batch_size", "log_every")
        self.optim()  # checks lr, betas, schedule, ... as every training run does

    def optim(self, **changes) -> Optim:
        """The run's optimiser (`changes`: fields of `Optim` set otherwise)."""
        return Optim.like(self, **changes)

    def run(self, dir: str | Path | None, **changes) -> Run:
        """Where the run writes: a log row every `log_every` steps and one checkpoint kept, written
        every ten log rows (the trained model, or where a killed run resumes)."""
        every = min(self.steps, 10 * self.log_every)
        return Run(**{"dir": dir, "log_every": self.log_every, "checkpoint_every": every,
                      "keep_checkpoints": 1, **changes})  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TransformerSettings(RunSettings):
    """A transformer (`n_layer` blocks of `n_head` heads, width `n_embd`, built after
    `torch.manual_seed(seed)`) and its training run; defaults: Garg et al. 2022's GPT-2."""

    n_layer: int = 12
    n_head: int = 8
    n_embd: int = 256
    seed: int = 0
    amp: bool = False  # bf16 autocast, GPU only
    compile: bool = False  # torch.compile, GPU only

    def __post_init__(self):
        V.positive_fields(self, "n_layer", "n_head", "n_embd")
        V.nonnegative_int("seed", self.seed)
        super().__post_init__()
