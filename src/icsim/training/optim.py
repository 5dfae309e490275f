"""The optimiser settings of every training run: one frozen dataclass, its learning-rate
schedule, and the torch optimiser it builds."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from icsim import _validate as V
from icsim._fused import fused_adam_devices as _fused_devices


@dataclass(frozen=True, kw_only=True)
class OptimSettings:
    """The settings an experiment's training settings share with `Optim` (all but `steps` and
    `kind`): inherit them instead of repeating them; `Optim.like` reads them back."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | cosine | linear | exponential (decay after warm-up)
    min_lr_ratio: float = 0.1  # final lr / lr for cosine and linear decay
    # AdamW's fused kernel where the device has one; False: torch's per-parameter loop, as runs
    # before 2026-12-02 used (the rounding differs, and a chaotic run's numbers with it)
    fused: bool = True


@dataclass(frozen=True)
class Optim(OptimSettings):
    """AdamW (or Adam) for `steps` steps: linear warm-up, then a constant, cosine or linear
    decay to lr * min_lr_ratio; gradients clipped to a global norm of `grad_clip` (0 = off)."""

    steps: int
    kind: str = "adamw"  # adamw | adam (Adam: L2 penalty instead of decoupled decay)

    def __post_init__(self):
        V.positive_int("steps", self.steps)
        V.nonnegative_int("warmup_steps", self.warmup_steps)
        V.number("lr", self.lr, low=0, low_open=True)
        V.number("weight_decay", self.weight_decay, low=0)
        V.number("grad_clip", self.grad_clip, low=0)
        V.number("min_lr_ratio", self.min_lr_ratio, low=0, high=1)
        V.choice("schedule", self.schedule, ("constant", "cosine", "linear", "exponential"))
        V.choice("kind", self.kind, ("adamw", "adam"))
        if not isinstance(self.fused, bool):
            raise V.InputError(f"fused must be True or False, got {self.fused!r}.")
        for b in self.betas:
            V.number("betas", b, low=0, high=1, high_open=True)

    @classmethod
    def like(cls, settings, **changes) -> Optim:
        """The Optim of a flat settings object that names its fields as Optim does (TrainConfig,
        an experiment's training settings); fields it lacks keep Optim's defaults."""
        names = [f.name for f in fields(cls)]
        return cls(**{n: getattr(settings, n) for n in names if hasattr(settings, n)}, **changes)

    def lr_at(self, step: int) -> float:
        """Learning rate of step `step` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        frac = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        if self.schedule == "exponential":  # lr · γ^step with γ = min_lr_ratio^(1/steps)
            return self.lr * self.min_lr_ratio**frac
        shape = 0.5 * (1 + math.cos(math.pi * frac)) if self.schedule == "cosine" else 1 - frac
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * shape)

    def build(self, params, device: torch.device) -> torch.optim.Optimizer:
        """The torch optimiser over `params`: the fused kernel (one call per step instead of a
        Python loop over parameters) on every device that has it, the CPU included, where it
        measured faster (benchmarks/RESULTS.md). A checkpoint records the choice in its param
        groups, so a run resumes with the implementation it started with, bit-identically."""
        params = list(params)
        cls = torch.optim.AdamW if self.kind == "adamw" else torch.optim.Adam
        fused = (
            self.fused
            and torch.device(device).type in _fused_devices()
            and all(p.is_floating_point() for p in params)
        )
        return cls(
            params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, fused=fused
        )
