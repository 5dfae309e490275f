"""Gradient descent on the least-squares loss: full-batch, preconditioned and online (one example
per step), plus a batched grid search for the step size.

Convention (von Oswald et al. 2023, the one their one-layer LSA construction implements):
L(w) = 1/(2n) Σ_i (wᵀx_i − y_i)², so one step is w ← w − η (1/n) Xᵀ(Xw − y).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, DENSE_THEN_LOG, Algorithm
from icsim.errors import InputError
from icsim.tasks.base import Problem, Task, TaskBatch


def mean_gradient(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """∇L(w) = (1/n) Xᵀ(Xw − y) for X [..., n, d], y [..., n], w [..., d]; 0 when n = 0."""
    n = max(X.shape[-2], 1)  # an empty sum is 0: with no context the gradient vanishes
    residual = torch.einsum("...nd,...d->...n", X, w) - y
    return torch.einsum("...nd,...n->...d", X, residual) / n


def _initial_weights(w0, X: torch.Tensor) -> torch.Tensor:
    B, _, d = X.shape
    if w0 is None:
        return X.new_zeros(B, d)
    w0 = torch.as_tensor(w0, dtype=X.dtype, device=X.device)
    if w0.shape not in ((d,), (B, d)):
        raise InputError(
            f"w0 must have shape [d]=[{d}] or [B, d]=[{B}, {d}], got {list(w0.shape)}."
        )
    return w0.expand(B, d).clone()


@ALGORITHMS.register("gradient_descent")
@dataclass(frozen=True)
class GradientDescent(Algorithm):
    """w_{t+1} = w_t − η (1/n) Xᵀ(Xw_t − y) from w_0 = 0 (von Oswald et al. 2023, Prop. 1).

    step_size: η (default 0.01, the GD learning rate Fu et al. 2024 compare transformers with;
      a fixed float so hand-built constructions can match it; `tune_step_size` grid-searches one).
    w0: initial weights, [d] or [B, d] (default zeros).
    """

    step_size: float = 0.01
    w0: torch.Tensor | None = field(default=None, compare=False)
    name = "gradient_descent"
    step_grid = DENSE_THEN_LOG
    param_grid = {"step_size": (0.01, 0.03, 0.1)}  # Fu et al.'s 0.01 and the gd construction's 0.1

    def __post_init__(self):
        V.number("step_size", self.step_size, low=0, low_open=True)

    def init(self, problem: Problem):
        return _initial_weights(self.w0, problem.X)

    def step(self, problem: Problem, w):
        return w - self.step_size * mean_gradient(problem.X, problem.y, w)

    def predictions_at(self, problem: Problem, steps) -> torch.Tensor:
        """[len(steps), B, m] for every step count at once, in closed form: with S = XᵀX/n =
        U diag(λ) Uᵀ and b = Xᵀy/n, w_t = U[(1 − ηλ)^t ⊙ Uᵀw_0 + g_t(λ) ⊙ Uᵀb] where
        g_t(λ) = (1 − (1 − ηλ)^t)/λ (ηt at λ = 0), so 4096 steps cost one eigendecomposition.
        Computed in float64 (expm1/log1p where 0 ≤ ηλ < 1, so ηλt ≪ 1 loses nothing)."""
        X, y = problem.X.double(), problem.y.double()
        n = max(X.shape[1], 1)
        lam, U = torch.linalg.eigh(X.transpose(1, 2) @ X / n)  # [B, d], [B, d, d]
        c = torch.einsum("bdi,bd->bi", U, torch.einsum("bnd,bn->bd", X, y) / n)
        t = torch.as_tensor([int(s) for s in steps], dtype=X.dtype, device=X.device)
        t = t[:, None, None]
        V.nonnegative_int("steps", int(t.max()) if t.numel() else 0)
        eta_lam = self.step_size * lam
        small = (eta_lam >= 0) & (eta_lam < 1)
        # (1 − ηλ)^t, and 1 − (1 − ηλ)^t without cancellation where 0 ≤ ηλ < 1
        log_r = torch.log1p(-torch.where(small, eta_lam, 0))
        power = torch.where(small, torch.exp(t * log_r), torch.pow(1 - eta_lam, t))
        one_minus = torch.where(small, -torch.expm1(t * log_r), 1 - power)
        safe = torch.where(lam == 0, 1, lam)
        g = torch.where(lam == 0, self.step_size * t, one_minus / safe)  # [S, B, d]
        z = g * c
        if self.w0 is not None:
            w0 = _initial_weights(self.w0, X)
            z = z + power * torch.einsum("bdi,bd->bi", U, w0)
        P = problem.X_query.double() @ U  # [B, m, d]
        return torch.einsum("bmi,sbi->sbm", P, z).to(problem.X.dtype)


@ALGORITHMS.register("preconditioned_gradient_descent")
@dataclass(frozen=True)
class PreconditionedGradientDescent(Algorithm):
    """w ← w − η P (1/n) Xᵀ(Xw − y) (preconditioned GD, as trained linear attention implements:
    Ahn et al. 2023; von Oswald et al. 2023's GD++ is one such P).

    step_size: η (default 0.01, as `gradient_descent`).
    preconditioner: P, [d, d] or [B, d, d]. Default (None): per problem the Jacobi
      preconditioner P = diag(XᵀX/n)⁻¹ (a zero diagonal entry, e.g. an inactive coordinate,
      gets 0). With it the preconditioned Hessian has unit diagonal, so η < 2/d always converges.
    w0: initial weights, [d] or [B, d] (default zeros).
    State: (w, P [B, d, d]).
    """

    step_size: float = 0.01
    preconditioner: torch.Tensor | None = field(default=None, compare=False)
    w0: torch.Tensor | None = field(default=None, compare=False)
    name = "preconditioned_gradient_descent"

    def __post_init__(self):
        V.number("step_size", self.step_size, low=0, low_open=True)

    def init(self, problem: Problem):
        X = problem.X
        B, n, d = X.shape
        if self.preconditioner is None:
            diag = (X * X).sum(1) / max(n, 1)  # diag(XᵀX/n), [B, d]
            inv = torch.where(diag > 0, 1 / torch.where(diag > 0, diag, 1), 0)
            P = torch.diag_embed(inv)
        else:
            P = torch.as_tensor(self.preconditioner, dtype=X.dtype, device=X.device)
            if P.shape not in ((d, d), (B, d, d)):
                raise InputError(
                    f"preconditioner must have shape [d, d]=[{d}, {d}] or [B, d, d]="
                    f"[{B}, {d}, {d}], got {list(P.shape)}."
                )
            P = P.expand(B, d, d)
        return _initial_weights(self.w0, X), P

    def step(self, problem: Problem, state):
        w, P = state
        g = mean_gradient(problem.X, problem.y, w)
        return w - self.step_size * torch.einsum("bij,bj->bi", P, g), P


@ALGORITHMS.register("online_gradient_descent")
@dataclass(frozen=True)
class OnlineGradientDescent(Algorithm):
    """One example per step, in context order: w_t = w_{t−1} − η (w_{t−1}ᵀx_t − y_t) x_t
    (the online GD Fu et al. 2024 compare transformers and LSTMs with).

    step_size: η (default 0.01, as `gradient_descent`; each step is stable when
      η < 2/‖x_t‖², ≈ 2/d for x ~ N(0, I_d)).
    cycle: what a step beyond the n context examples does. False (default): one pass, as Fu et
      al.; later steps leave w unchanged. True: start another pass over the examples.
    w0: initial weights, [d] or [B, d] (default zeros).
    State: (w, t) with t the number of steps taken (a Python int; steps = examples seen).
    """

    step_size: float = 0.01
    cycle: bool = False
    w0: torch.Tensor | None = field(default=None, compare=False)
    name = "online_gradient_descent"
    step_grid = tuple(range(65))  # one pass: a step is an example seen
    param_grid = {"step_size": (0.01, 0.1)}

    def __post_init__(self):
        V.number("step_size", self.step_size, low=0, low_open=True)
        if not isinstance(self.cycle, bool):
            raise InputError(f"cycle must be True or False, got {self.cycle!r}.")

    def init(self, problem: Problem):
        return _initial_weights(self.w0, problem.X), 0

    def step(self, problem: Problem, state):
        w, t = state
        n = problem.X.shape[1]
        if n == 0 or (t >= n and not self.cycle):
            return w, t + 1
        x, y = problem.X[:, t % n], problem.y[:, t % n]
        residual = (w * x).sum(-1) - y
        return w - self.step_size * residual.unsqueeze(-1) * x, t + 1


def step_size_losses(
    problem: Problem | TaskBatch,
    steps: int,
    grid,
    *,
    max_elements: int = 1 << 24,
) -> torch.Tensor:
    """Query loss mean (ŷ − y)² after `steps` steps of `gradient_descent` for each η in `grid`.

    Batched over problems and over grid values (in chunks of at most `max_elements` numbers);
    a divergent η gets loss inf. Returns a float64 tensor [len(grid)].
    """
    if isinstance(problem, TaskBatch):
        problem = problem.split(problem.n_points - 1)
    V.nonnegative_int("steps", steps)
    X, y, Xq, yq = problem.X, problem.y, problem.X_query, problem.y_query
    if yq is None:
        raise InputError("step_size_losses needs the queries' labels (problem.y_query).")
    etas = torch.as_tensor(grid, dtype=X.dtype, device=X.device).reshape(-1)
    B, n, d = X.shape
    chunk = max(1, max_elements // (B * (n + d + Xq.shape[1])))
    losses = []
    for eta in etas.split(chunk):  # a loop over grid chunks, not over problems
        # W [B, d, g]: one column per step size, so every product is a batched matmul
        W = X.new_zeros(B, d, len(eta))
        for _ in range(steps):
            residual = X @ W - y.unsqueeze(-1)  # [B, n, g]
            W = W - eta * (X.transpose(1, 2) @ residual) / max(n, 1)
        err = Xq @ W - yq.unsqueeze(-1)  # [B, m, g]
        losses.append((err**2).mean(dim=(0, 1)).double())
    out = torch.cat(losses)
    return torch.nan_to_num(out, nan=float("inf"))


def tune_step_size(
    task: Task,
    *,
    n_points: int,
    steps: int,
    grid=None,
    n_problems: int = 10_000,
    generator: torch.Generator | None = None,
    device="cpu",
    dtype=torch.float32,
) -> float:
    """The η in `grid` whose `steps`-step GD has the least query loss on `n_problems` fresh
    prompts of `task` (von Oswald et al. 2023's grid search: η ∈ arange(0.001, 25, 0.1) on 10k
    tasks, the default grid).

    Each prompt has `n_points` points: the first n_points − 1 are the context, the last the query
    (as `Algorithm.run` splits a batch). Ties go to the smallest η.
    """
    V.positive_int("n_problems", n_problems)
    V.positive_int("n_points", n_points)
    if n_points < 2:
        raise InputError(f"n_points must be >= 2 (context + one query), got {n_points!r}.")
    if grid is None:
        grid = torch.arange(0.001, 25, 0.1, dtype=torch.float64)
    grid = torch.as_tensor(grid, dtype=torch.float64).reshape(-1)
    if grid.numel() == 0 or not torch.isfinite(grid).all() or (grid <= 0).any():
        raise InputError("grid must be a non-empty sequence of finite step sizes > 0.")
    batch = task.sample(n_problems, n_points, generator=generator, device=device, dtype=dtype)
    losses = step_size_losses(batch, steps, grid.to(dtype))
    return float(grid[int(torch.argmin(losses))])
