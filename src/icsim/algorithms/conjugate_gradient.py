"""Conjugate gradient on the normal equations (CGNR), batched over problems."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.algorithms.base import Algorithm
from icsim.algorithms.registry import ALGORITHMS
from icsim.tasks.base import Problem


def _normal_matvec(X: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """XᵀX p without forming XᵀX: [B, n, d], [B, d] -> [B, d]."""
    return torch.einsum("bnd,bn->bd", X, torch.einsum("bnd,bd->bn", X, p))


@ALGORITHMS.register("conjugate_gradient")
@dataclass(frozen=True)
class ConjugateGradient(Algorithm):
    """CG on XᵀX w = Xᵀy from w_0 = 0 (Hestenes & Stiefel 1952; CGNR): in exact arithmetic it
    reaches the minimum-norm least-squares solution in ≤ rank(X) ≤ d steps.

    tol: a problem whose normal-equation residual ‖Xᵀ(y − Xw)‖ ≤ tol·‖Xᵀy‖ has converged and
      stays put (no 0/0 after convergence). Default (None): 10 × the dtype's machine epsilon.
    State: (w, r, p, rᵀr, threshold) with r the normal residual and p the search direction.
    """

    tol: float | None = None
    name = "conjugate_gradient"

    def __post_init__(self):
        if self.tol is not None:
            V.number("tol", self.tol, low=0)

    def init(self, problem: Problem):
        X, y = problem.X, problem.y
        r = torch.einsum("bnd,bn->bd", X, y)  # b − A·0
        rr = (r * r).sum(-1)
        tol = 10 * torch.finfo(X.dtype).eps if self.tol is None else self.tol
        return torch.zeros_like(r), r, r.clone(), rr, tol**2 * rr

    def step(self, problem: Problem, state):
        w, r, p, rr, threshold = state
        Ap = _normal_matvec(problem.X, p)
        pAp = (p * Ap).sum(-1)
        active = (rr > threshold) & (pAp > 0)
        alpha = torch.where(active, rr / torch.where(active, pAp, 1), 0)
        w = w + alpha[:, None] * p
        r = r - alpha[:, None] * Ap
        rr_new = (r * r).sum(-1)
        beta = torch.where(active, rr_new / torch.where(active, rr, 1), 0)
        p = torch.where(active[:, None], r + beta[:, None] * p, p)
        return w, r, p, torch.where(active, rr_new, rr), threshold
