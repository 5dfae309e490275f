"""Many seeds in one process: K copies of one model, each with its own seed, prompts and AdamW
state, trained together as one vectorised step (torch.func.stack_module_state + functional_call
+ vmap), so that K small models share one set of kernel launches instead of K. This is a mode
of `icsim.training.Trainer` (`Trainer(cfg, root, seeds=[...])`); `MultiSeedTrainer` names it.

Seed k's model, prompts and optimizer evolve as `Trainer(replace(cfg, seed=k))` would make
them (same initial weights, same prompt generator, same AdamW, clipping and schedule), up to
floating-point rounding: the vmapped kernels are not the one-model kernels, so a seed resumed
*alone* from a group checkpoint ends ~1e-6 away from the group's run. `Trainer.resume(root)`
resumes the whole group in the vectorised mode, bit-identically on a CPU.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from icsim.training.config import TrainConfig
from icsim.training.trainer import VECTORISABLE, Trainer, check_seeds


class MultiSeedTrainer(Trainer):
    """Train `len(seeds)` models of one config together: `MultiSeedTrainer(cfg, seeds).train()`.

    run_root: if given, seed s writes `run_root/seed_<s>/` (config.json, metrics.jsonl,
    checkpoints), the layout of a single `Trainer` run.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        seeds,
        run_root: str | Path | None = None,
        *,
        quiet=False,
        overwrite=False,
    ):
        super().__init__(
            cfg, run_root, seeds=seeds, quiet=quiet, overwrite=overwrite, vectorise=True
        )

    def model(self, k: int):
        """Seed k's model as an ordinary module (a copy of the current weights)."""
        return self.model_at(k)

    def seed_config(self, k: int) -> TrainConfig:
        return replace(self.cfg, seed=self.seeds[k])

    def save_checkpoints(self):
        return self.save_checkpoint()


__all__ = ["MultiSeedTrainer", "check_seeds", "VECTORISABLE"]
