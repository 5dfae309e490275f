"""Solvers for regularised logistic regression in context (Giannou et al. 2025, §5):

    f(w) = (1/n) Σ_i log(1 + exp(−y_i wᵀa_i)) + (μ/2)‖w‖²,   y_i ∈ {−1, +1}.

Gradient descent, Newton, damped Newton and the inexact (Newton–Schulz) damped Newton that the
`logistic_newton` construction carries out. All start from w₀ = 0 (their code draws
w₀ ~ N(0, 0.01 I); zero keeps trajectories deterministic) and predict the margin wᵀa_q for every
query (its sign is the predicted label ±1; sigmoid(margin) the predicted P(y_q = 1)).

μ (`mu`) defaults to 0.1, the paper's experiments; their code uses 0.01.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, DENSE_THEN_LOG, Algorithm
from icsim.algorithms.newton_schulz import newton_schulz_step
from icsim.tasks.base import Problem


def logistic_loss(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, mu: float) -> torch.Tensor:
    """f(w) [B] for X [B, n, d], y [B, n] in {−1, +1}, w [B, d] (0-term data loss when n = 0)."""
    margins = y * torch.einsum("bnd,bd->bn", X, w)
    data = torch.nn.functional.softplus(-margins).sum(-1) / max(X.shape[1], 1)
    return data + 0.5 * mu * (w * w).sum(-1)


def logistic_gradient(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, mu: float):
    """∇f(w) = (1/n) Σ_i (σ(wᵀa_i) − (1 + y_i)/2) a_i + μw   (= −(1/n) Σ y_i σ(−y_i wᵀa_i) a_i)."""
    r = torch.sigmoid(torch.einsum("bnd,bd->bn", X, w)) - (1 + y) / 2
    return torch.einsum("bnd,bn->bd", X, r) / max(X.shape[1], 1) + mu * w


def logistic_hessian(X: torch.Tensor, w: torch.Tensor, mu: float) -> torch.Tensor:
    """∇²f(w) = (1/n) Σ_i σ'(wᵀa_i) a_i a_iᵀ + μI with σ' = σ(1 − σ) (no dependence on y)."""
    p = torch.sigmoid(torch.einsum("bnd,bd->bn", X, w))
    D = p * (1 - p) / max(X.shape[1], 1)
    eye = torch.eye(X.shape[-1], dtype=X.dtype, device=X.device)
    return torch.einsum("bnd,bn,bne->bde", X, D, X) + mu * eye


def newton_direction(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, mu: float):
    """(∇f(w), H⁻¹∇f(w)) [B, d] each, from one product Xw shared by the gradient and the Hessian
    (= `logistic_gradient`, `logistic_hessian`); H⁻¹ by Cholesky (H is SPD for μ > 0), LU for
    the problems where the factorisation fails."""
    n = max(X.shape[1], 1)
    p = torch.sigmoid(torch.einsum("bnd,bd->bn", X, w))
    g = torch.einsum("bnd,bn->bd", X, p - (1 + y) / 2) / n + mu * w
    H = (X * (p * (1 - p) / n).unsqueeze(-1)).mT @ X
    H.diagonal(dim1=-2, dim2=-1).add_(mu)
    L, info = torch.linalg.cholesky_ex(H)
    delta = torch.cholesky_solve(g.unsqueeze(-1), L).squeeze(-1)
    if bool((info != 0).any()):
        bad = (info != 0).nonzero().squeeze(-1)
        delta = delta.index_copy(0, bad, torch.linalg.solve(H[bad], g[bad]))
    return g, delta


def hessian_bound(X: torch.Tensor, mu: float) -> torch.Tensor:
    """L [B] >= λ_max(∇²f) for every w: max(1, max_i ‖a_i‖²)/4 + μ, i.e. 1/4 + μ under the
    paper's ‖a_i‖ ≤ 1 (then fixed, as a construction needs it), and still safe when violated."""
    sq = (X * X).sum(-1)
    top = sq.amax(-1) if X.shape[1] else X.new_zeros(X.shape[0])
    return top.clamp(min=1.0) / 4 + mu


def damping(lam: torch.Tensor, mu: float) -> torch.Tensor:
    """2√μ / (2√μ + λ(w)) (Giannou et al. 2025, §5: damped Newton for the self-concordant f)."""
    return 2 * math.sqrt(mu) / (2 * math.sqrt(mu) + lam)


def default_newton_schulz_steps(mu: float, tol: float = 1e-10) -> int:
    """k with (1 − 1/κ_f²)^(2^k) <= tol for X₀ = H/L², κ_f = (1/4 + μ)/μ:
    k = ⌈log₂(κ_f² ln(1/tol))⌉ ≈ 2 log κ_f + log log(1/ε) (Giannou et al. 2025, Thm 5.1)."""
    kappa = (0.25 + mu) / mu
    return max(1, math.ceil(math.log2(kappa**2 * math.log(1 / tol))))


class _Logistic(Algorithm):
    """Shared by every logistic solver: w₀ = 0; predictions = margins X_query w."""

    family = "logistic_regression"

    def init(self, problem: Problem):
        B, _, d = problem.X.shape
        return problem.X.new_zeros(B, d)

    def loss(self, problem: Problem, w: torch.Tensor) -> torch.Tensor:
        return logistic_loss(problem.X, problem.y, w, self.mu)


@ALGORITHMS.register("logistic_gradient_descent")
@dataclass(frozen=True)
class LogisticGradientDescent(_Logistic):
    """w ← w − η ∇f(w), the first-order baseline for Giannou et al. 2025's damped Newton.

    mu: μ >= 0 (default 0.1). step_size: η > 0, or None (default) for η = 1/L per problem with
    L = ‖A‖₂²/(4n) + μ the smoothness constant of f, so ‖w_t − w*‖ <= (1 − μ/L)^t ‖w_0 − w*‖.
    """

    mu: float = 0.1
    step_size: float | None = None
    name = "logistic_gradient_descent"
    step_grid = DENSE_THEN_LOG

    def __post_init__(self):
        V.number("mu", self.mu, low=0)
        if self.step_size is not None:
            V.number("step_size", self.step_size, low=0, low_open=True)

    def smoothness(self, X: torch.Tensor) -> torch.Tensor:
        """L [B] = ‖A‖₂²/(4n) + μ."""
        if X.shape[1] == 0:
            return X.new_full((X.shape[0],), self.mu)
        return torch.linalg.matrix_norm(X, ord=2) ** 2 / (4 * X.shape[1]) + self.mu

    def step(self, problem, w):
        g = logistic_gradient(problem.X, problem.y, w, self.mu)
        if self.step_size is not None:
            return w - self.step_size * g
        L = self.smoothness(problem.X).clamp(min=torch.finfo(w.dtype).tiny)
        return w - g / L[:, None]


@ALGORITHMS.register("logistic_newton")
@dataclass(frozen=True)
class LogisticNewton(_Logistic):
    """w ← w − H⁻¹∇f(w) with H = ∇²f(w): pure Newton, locally quadratic (Giannou et al. 2025, §5).

    mu: μ >= 0 (default 0.1; with μ = 0 on separable data H can become singular).
    Not globally convergent in general: `logistic_damped_newton` is.
    """

    mu: float = 0.1
    name = "logistic_newton"

    def __post_init__(self):
        V.number("mu", self.mu, low=0)

    def step(self, problem, w):
        return w - newton_direction(problem.X, problem.y, w, self.mu)[1]


@ALGORITHMS.register("logistic_damped_newton")
@dataclass(frozen=True)
class LogisticDampedNewton(_Logistic):
    """w ← w − [2√μ/(2√μ + λ(w))] H⁻¹∇f, λ(w)² = ∇fᵀH⁻¹∇f (Giannou et al. 2025, §5).

    mu: μ > 0 (default 0.1). f is self-concordant with constant 1/√μ when ‖a_i‖ ≤ 1, so this
    step decreases f from any w₀ and converges quadratically once λ(w) is small.
    """

    mu: float = 0.1
    name = "logistic_damped_newton"

    def __post_init__(self):
        V.number("mu", self.mu, low=0, low_open=True)

    def step(self, problem, w):
        g, delta = newton_direction(problem.X, problem.y, w, self.mu)
        lam = (g * delta).sum(-1).clamp(min=0).sqrt()
        return w - damping(lam, self.mu)[:, None] * delta


def newton_solution(problem, mu: float, max_steps: int = 30, tol: float = 1e-12) -> torch.Tensor:
    """w_N [B, d]: damped Newton from w₀ = 0 until no coordinate of any problem moves by more
    than `tol`, at most `max_steps` steps (Giannou et al. 2025's training target, their code).
    Pass a float64 problem."""
    newton = LogisticDampedNewton(mu=mu)
    w = newton.init(problem)
    for _ in range(max_steps):
        w_next = newton.step(problem, w)
        done = (w_next - w).abs().max() <= tol
        w = w_next
        if done:
            break
    return w


@ALGORITHMS.register("logistic_inexact_newton")
@dataclass(frozen=True)
class LogisticInexactNewton(_Logistic):
    """Damped Newton with H⁻¹ replaced by k Newton–Schulz steps X ← X Σ_{i<p}(I − HX)^i, the
    iteration the `logistic_newton` construction runs (Giannou et al. 2025, Lemma 4.1, Thm 5.1):
    Δ = X_k ∇f, λ̃² = ∇fᵀΔ, w ← w − [2√μ/(2√μ + λ̃)] Δ.

    mu: μ > 0 (default 0.1).
    newton_schulz_steps: k (default None: ⌈log₂(κ_f² ln 10¹⁰)⌉, κ_f = (1/4 + μ)/μ; 9 for μ = 0.1).
    order: p of the Newton–Schulz step (default 2: X(2I − HX)).
    inverse_init: the initial X₀ of every Newton step, with L = `hessian_bound(X, μ)`
      (= 1/4 + μ when ‖a_i‖ ≤ 1) so that I − X₀H has eigenvalues in [0, 1):
      "hessian" (default): X₀ = H/L², as Theorem 4.2's X₀ = εAᵀA; error (1 − 1/κ²)^(2^k);
      "identity": X₀ = I/L; error (1 − 1/κ)^(2^k);
      "warm": X₀ = the previous Newton step's X_k (H/L² at the first step); no guarantee, since
        ‖I − H_{t+1}X_k‖ < 1 is not assured, but usually fine because H changes little.
    State: (w [B, d], X_k [B, d, d]).
    """

    mu: float = 0.1
    newton_schulz_steps: int | None = None
    order: int = 2
    inverse_init: str = "hessian"
    name = "logistic_inexact_newton"

    def __post_init__(self):
        V.number("mu", self.mu, low=0, low_open=True)
        if self.newton_schulz_steps is not None:
            V.nonnegative_int("newton_schulz_steps", self.newton_schulz_steps)
        V.positive_int("order", self.order)
        if self.order < 2:
            raise V.InputError(f"order must be >= 2 (order 1 never updates X), got {self.order}.")
        V.choice("inverse_init", self.inverse_init, ("hessian", "identity", "warm"))

    @property
    def k(self) -> int:
        if self.newton_schulz_steps is None:
            return default_newton_schulz_steps(self.mu)
        return self.newton_schulz_steps

    def initial_inverse(self, X: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        L = hessian_bound(X, self.mu)[:, None, None]
        if self.inverse_init == "identity":
            return torch.eye(H.shape[-1], dtype=H.dtype, device=H.device) / L
        return H / L**2

    def init(self, problem):
        w = super().init(problem)
        return w, self.initial_inverse(problem.X, logistic_hessian(problem.X, w, self.mu))

    def step(self, problem, state):
        w, X_prev = state
        g = logistic_gradient(problem.X, problem.y, w, self.mu)
        H = logistic_hessian(problem.X, w, self.mu)
        X_inv = X_prev if self.inverse_init == "warm" else self.initial_inverse(problem.X, H)
        for _ in range(self.k):
            X_inv = newton_schulz_step(H, X_inv, self.order)
        delta = (X_inv @ g.unsqueeze(-1)).squeeze(-1)
        lam = (g * delta).sum(-1).clamp(min=0).sqrt()
        return w - damping(lam, self.mu)[:, None] * delta, X_inv
