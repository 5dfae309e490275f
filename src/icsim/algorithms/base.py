"""The Algorithm interface: an init/step pair of pure functions (optax style) plus a predictor.

Every algorithm is batched over problems: a state is a tensor (or a tuple of tensors) with the
batch as its leading dimension, and no method loops over problems in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from icsim import _validate as V
from icsim.registry import Registry
from icsim.tasks.base import Problem, TaskBatch

#: a step grid for slow solvers (GD-like): every step to 32, then powers of 2 to 4096
DENSE_THEN_LOG = tuple(range(33)) + tuple(2**i for i in range(6, 13))

#: every solver, by name: `@ALGORITHMS.register(name)` in the solver's own module
ALGORITHMS = Registry("algorithm", package="icsim.algorithms")


@dataclass
class Trajectory:
    """`iterates[t]` and `predictions[t]` after step t = 0..T (step 0 is the initialisation).

    iterates: [T+1, B, ...] (e.g. w_t [T+1, B, d]); predictions: [T+1, B, m] for m query points.
    """

    iterates: torch.Tensor
    predictions: torch.Tensor
    algorithm: str = ""

    @property
    def steps(self) -> int:
        return self.predictions.shape[0] - 1


class Algorithm:
    """Subclasses are frozen dataclasses whose fields are the hyper-parameters (with defaults).

    Implement `init(problem) -> state`, `step(problem, state) -> state` and
    `predict(problem, state) -> [B, m]`; `iterate(state)` picks what a Trajectory records
    (by default the state itself, or its first entry if the state is a tuple).
    """

    name: str = "algorithm"
    #: True for closed-form estimators: their trajectory is constant in t.
    closed_form: bool = False
    #: the task family whose problems it solves (analysis compares like with like)
    family: str = "linear_regression"
    #: the steps `icsim.analysis.atlas` compares a model's layers with (closed form: step 0)
    step_grid: ClassVar[tuple[int, ...]] = tuple(range(21))
    #: hyper-parameter values the atlas tries, each combination its own column
    param_grid: ClassVar[dict[str, tuple]] = {}

    def init(self, problem: Problem):
        raise NotImplementedError

    def step(self, problem: Problem, state):
        return state

    def predict(self, problem: Problem, state) -> torch.Tensor:
        return torch.einsum("bmd,bd->bm", problem.X_query, self.weights(state))

    def weights(self, state) -> torch.Tensor:
        return state[0] if isinstance(state, tuple) else state

    def iterate(self, state) -> torch.Tensor:
        return state[0] if isinstance(state, tuple) else state

    def run(
        self, problem: Problem | TaskBatch, steps: int = 0, n_context: int | None = None
    ) -> Trajectory:
        """Run `steps` steps. A TaskBatch is split into context (first `n_context` points,
        default all but the last) and queries."""
        V.nonnegative_int("steps", steps)
        if isinstance(problem, TaskBatch):
            problem = problem.split(problem.n_points - 1 if n_context is None else n_context)
        state = self.init(problem)
        iterates, preds = [self.iterate(state)], [self.predict(problem, state)]
        for _ in range(steps):
            state = self.step(problem, state)
            iterates.append(self.iterate(state))
            preds.append(self.predict(problem, state))
        return Trajectory(torch.stack(iterates), torch.stack(preds), self.name)

    def predictions_at(self, problem: Problem, steps) -> torch.Tensor:
        """[len(steps), B, m]: the predictions after each step count in `steps`, from one run
        that keeps only those (a grid up to 4096 steps need not hold 4097 iterates). Closed
        forms of a whole trajectory override this."""
        steps = [int(s) for s in steps]
        V.nonnegative_int("steps", max(steps))
        if type(self).run is not Algorithm.run:  # a solver with its own loop keeps it
            return self.run(problem, max(steps)).predictions[steps]
        want, state = set(steps), self.init(problem)
        kept = {0: self.predict(problem, state)} if 0 in want else {}
        for t in range(1, max(steps) + 1):
            state = self.step(problem, state)
            if t in want:
                kept[t] = self.predict(problem, state)
        return torch.stack([kept[s] for s in steps])

    def hyperparameters(self) -> dict:
        return (
            {f.name: getattr(self, f.name) for f in fields(self)}
            if hasattr(self, "__dataclass_fields__")
            else {}
        )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{self.name}({params})"
