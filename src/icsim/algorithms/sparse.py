"""Sparse recovery solvers on the LASSO objective F(β) = (1/2n)‖Xβ − y‖² + λ‖β‖₁ (the
convention of scikit-learn's `Lasso(alpha=λ)`), batched over problems.

Classical: `ista`, `fista` (Beck & Teboulle 2009) and `lasso` (the minimiser to high accuracy).
The learning-to-optimize baselines (`LISTA`, `LISTACP`, their training `fit`) are in
`icsim.algorithms.lista` (importable from here too).

Default λ = 0.1 everywhere: this project's choice (the paper's λ could not be verified; see
`icsim.tasks.sparse_recovery`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, DENSE_THEN_LOG, Algorithm
from icsim.algorithms.gradient_descent import mean_gradient
from icsim.tasks.base import Problem

DEFAULT_LAM = 0.1


def soft_threshold(z: torch.Tensor, theta) -> torch.Tensor:
    """soft(z, θ) = sign(z)·max(|z| − θ, 0), the proximal map of θ‖·‖₁."""
    return torch.sign(z) * torch.clamp(z.abs() - theta, min=0)


def lasso_objective(X: torch.Tensor, y: torch.Tensor, beta: torch.Tensor, lam: float):
    """F(β) = (1/2n)‖Xβ − y‖² + λ‖β‖₁ per problem: X [..., n, d], y [..., n], β [..., d]."""
    n = max(X.shape[-2], 1)
    r = torch.einsum("...nd,...d->...n", X, beta) - y
    return (r * r).sum(-1) / (2 * n) + lam * beta.abs().sum(-1)


def lipschitz_constant(X: torch.Tensor) -> torch.Tensor:
    """L = λ_max(XᵀX/n) per problem [...]: the Lipschitz constant of ∇(1/2n)‖Xβ − y‖².

    1 where X is empty or zero (then the smooth part is constant and any step is exact)."""
    n = X.shape[-2]
    if n == 0:
        return X.new_ones(X.shape[:-2])
    gram = X.transpose(-1, -2) @ X / n
    L = torch.linalg.eigvalsh(gram)[..., -1]
    return torch.where(L > 0, L, torch.ones_like(L))


def _step_sizes(step_size, X) -> torch.Tensor:
    """η per problem [B]: the fixed `step_size`, or 1/L."""
    if step_size is None:
        return 1.0 / lipschitz_constant(X)
    return X.new_full(X.shape[:-2], float(step_size))


def ista_step(X, y, beta, eta, lam):
    """β ← soft(β − η (1/n)Xᵀ(Xβ − y), ηλ); η [B] (Beck & Teboulle 2009, eq. 1.4)."""
    eta = eta.unsqueeze(-1)
    return soft_threshold(beta - eta * mean_gradient(X, y, beta), eta * lam)


@dataclass(frozen=True)
class _ProximalGradient(Algorithm):
    """What ISTA and FISTA share: λ, the step size η (None: 1/L per problem) and the start
    (β_0 = 0 [B, d], η [B])."""

    lam: float = DEFAULT_LAM
    step_size: float | None = None
    step_grid = DENSE_THEN_LOG
    family = "sparse_recovery"

    def __post_init__(self):
        V.number("lam", self.lam, low=0)
        if self.step_size is not None:
            V.number("step_size", self.step_size, low=0, low_open=True)

    def _start(self, problem: Problem) -> tuple[torch.Tensor, torch.Tensor]:
        X = problem.X
        return X.new_zeros(X.shape[0], X.shape[2]), _step_sizes(self.step_size, X)


@ALGORITHMS.register("ista")
@dataclass(frozen=True)
class ISTA(_ProximalGradient):
    """ISTA, proximal gradient on the LASSO from β_0 = 0 (Beck & Teboulle 2009, eq. 1.4):
    β_{t+1} = soft(β_t − η (1/n)Xᵀ(Xβ_t − y), ηλ).

    lam: λ >= 0 (default 0.1).
    step_size: η. Default (None): η = 1/L per problem, L = λ_max(XᵀX/n); a fixed float gives the
      fixed-step ISTA a hand-built transformer carries out (`icsim.constructions.build("ista")`).
    State: (β [B, d], η [B]).
    """

    name = "ista"

    def init(self, problem: Problem):
        return self._start(problem)

    def step(self, problem: Problem, state):
        beta, eta = state
        return ista_step(problem.X, problem.y, beta, eta, self.lam), eta


@ALGORITHMS.register("fista")
@dataclass(frozen=True)
class FISTA(_ProximalGradient):
    """FISTA (Beck & Teboulle 2009, §4): β_k = soft(z_k − η∇f(z_k), ηλ),
    t_{k+1} = (1 + √(1 + 4t_k²))/2, z_{k+1} = β_k + ((t_k − 1)/t_{k+1})(β_k − β_{k−1}),
    from β_0 = z_1 = 0, t_1 = 1. F(β_k) − F* <= 2L‖β_0 − β*‖²/(k+1)² (their Thm. 4.4).

    lam: λ (default 0.1). step_size: η (default None: 1/L per problem, as `ista`).
    State: (β [B, d], z [B, d], t [], η [B]).
    """

    name = "fista"

    def init(self, problem: Problem):
        beta, eta = self._start(problem)
        return beta, beta.clone(), beta.new_ones(()), eta

    def step(self, problem: Problem, state):
        beta, z, t, eta = state
        new = ista_step(problem.X, problem.y, z, eta, self.lam)
        t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        z = new + ((t - 1) / t_next) * (new - beta)
        return new, z, t_next, eta


@ALGORITHMS.register("lasso")
@dataclass(frozen=True)
class Lasso(Algorithm):
    """The LASSO minimiser argmin (1/2n)‖Xβ − y‖² + λ‖β‖₁ (scikit-learn's `Lasso(alpha=λ,
    fit_intercept=False)` objective), to high accuracy, batched.

    FISTA with adaptive restart (O'Donoghue & Candès 2015) on the Gram matrix XᵀX/n (formed
    once), step 1/L̄ with L̄ = ‖G⁴‖_F^¼ = (Σλᵢ⁸)^⅛ >= λ_max(G) (no eigen-decomposition). Every
    `check_every` iterations each unfinished problem is polished on its current support: the KKT
    system (X_SᵀX_S/n) β_S = X_Sᵀy/n − λ sign(β_S) is solved exactly (Cholesky) and kept where
    its signs and the inactive coordinates' KKT conditions hold to round-off; such a problem is
    done (the support is usually found long before the iterates converge). A problem never
    certified runs until its iterate moves less than `tol` (or `max_iter`) and gets the final
    polish with the looser check λ(1 + 1e-8).

    lam: λ (default 0.1). tol: iterate change at which FISTA stops (default 1e-12).
    max_iter: FISTA iterations at most (default 100_000).
    """

    lam: float = DEFAULT_LAM
    tol: float = 1e-12
    max_iter: int = 100_000
    name = "lasso"
    family = "sparse_recovery"
    closed_form = True
    first_check, check_every = 10, 5  # polish after 10 iterations, then every 5

    def __post_init__(self):
        V.number("lam", self.lam, low=0)
        V.number("tol", self.tol, low=0, low_open=True)
        V.positive_int("max_iter", self.max_iter)

    def init(self, problem: Problem):
        X, y, lam = problem.X, problem.y, self.lam
        B, n, d = X.shape
        gram = X.mT @ X / max(n, 1)
        corr = (X.mT @ y.unsqueeze(-1)) / max(n, 1)  # [B, d, 1]
        g2 = gram @ gram
        bound = torch.linalg.matrix_norm(g2 @ g2) ** 0.25  # (Σ λ⁸)^⅛ >= λ_max, within ~5% here
        eta = torch.where(bound > 0, 1 / bound, torch.ones_like(bound))[:, None, None]
        # the step folded in once: z − η(Gz − c) = ηc − (ηG − I)z; soft(u, θ) = u − clamp(u, ±θ)
        step_gram = eta * gram - torch.eye(d, dtype=X.dtype, device=X.device)
        step_corr, theta = eta * corr, (eta * lam).expand(B, d, 1)
        out = X.new_zeros(B, d)
        todo = torch.arange(B, device=X.device)  # the problems not yet finished
        beta = X.new_zeros(B, d, 1)
        z, t = beta.clone(), X.new_ones(B, 1, 1)
        round_off = 1e3 * torch.finfo(X.dtype).eps * corr.abs().amax((-2, -1)).clamp(min=1)
        for it in range(1, self.max_iter + 1):
            u = torch.baddbmm(step_corr, step_gram, z, alpha=-1)
            new = u - torch.clamp(u, -theta, theta)
            diff = new - beta
            # restart where the momentum points uphill (gradient-mapping test)
            t = torch.where(((z - new) * diff).sum(-2, keepdim=True) > 0, 1.0, t)
            t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
            z = torch.addcmul(new, (t - 1) / t_next, diff)
            beta, t = new, t_next
            if (it < self.first_check or it % self.check_every) and it < self.max_iter:
                continue
            b = beta.squeeze(-1)
            sol, ok = self._polish(gram, corr.squeeze(-1), b, round_off)
            converged = diff.abs().amax((-2, -1)) <= self.tol * b.abs().amax(-1).clamp(min=1.0)
            if it == self.max_iter:
                converged = torch.ones_like(converged)
            if bool((converged & ~ok).any()):  # the old stopping rule, with the looser check
                loose, ok_loose = self._polish(gram, corr.squeeze(-1), b, lam * 1e-8 + 1e-12)
                sol = torch.where((converged & ~ok & ok_loose).unsqueeze(-1), loose, sol)
                sol = torch.where((converged & ~ok & ~ok_loose).unsqueeze(-1), b, sol)
            done = ok | converged
            out[todo[done]] = sol[done]
            if bool(done.all()):
                break
            keep = ~done
            todo, gram, corr, step_gram, step_corr = (
                v[keep] for v in (todo, gram, corr, step_gram, step_corr)
            )
            theta, beta, z, t, round_off = (v[keep] for v in (theta, beta, z, t, round_off))
        return out

    def _polish(self, gram, corr, beta, slack_tol):
        """The exact solution on β's support and whether the KKT conditions certify it [B]."""
        active = beta != 0
        sign = torch.sign(beta)
        m = active.to(gram.dtype)
        A = gram * (m.unsqueeze(1) * m.unsqueeze(2))  # the support's block, identity elsewhere
        A.diagonal(dim1=-2, dim2=-1).add_(1 - m)
        L, info = torch.linalg.cholesky_ex(A)
        b = m * (corr - self.lam * sign)
        sol = torch.cholesky_solve(b.unsqueeze(-1), L).squeeze(-1) * m
        slack = (corr - torch.einsum("bij,bj->bi", gram, sol)).abs()
        slack_tol = torch.as_tensor(slack_tol, dtype=gram.dtype, device=gram.device)
        ok = (
            (info == 0)
            & torch.isfinite(sol).all(-1)
            & ((torch.sign(sol) == sign) | ~active).all(-1)
            & ((slack <= self.lam + slack_tol.reshape(-1, 1)) | active).all(-1)
        )
        return sol, ok


def fista_bound(X: torch.Tensor, minimiser: torch.Tensor, k: int) -> torch.Tensor:
    """2L‖β_0 − β̂‖²/(k+1)² with β_0 = 0 and β̂ the LASSO minimiser: FISTA's bound on
    F(β_k) − F(β̂) (Beck & Teboulle 2009, Thm. 4.4), per problem."""
    return 2 * lipschitz_constant(X) * (minimiser * minimiser).sum(-1) / (k + 1) ** 2


def ista_bound(X: torch.Tensor, minimiser: torch.Tensor, k: int) -> torch.Tensor:
    """L‖β_0 − β̂‖²/(2k): ISTA's bound on F(β_k) − F(β̂) (Beck & Teboulle 2009, Thm. 3.1)."""
    return lipschitz_constant(X) * (minimiser * minimiser).sum(-1) / (2 * max(k, 1))


_IN_LISTA = ("LISTA", "LISTACP", "NETWORKS", "fit")


def __getattr__(name: str):
    """The learned-ISTA names, which lived here before `icsim.algorithms.lista` (PEP 562)."""
    if name in _IN_LISTA:
        import icsim.algorithms.lista as lista

        return getattr(lista, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "soft_threshold",
    "lasso_objective",
    "lipschitz_constant",
    "ista_step",
    "ISTA",
    "FISTA",
    "Lasso",
    "fista_bound",
    "ista_bound",
]
