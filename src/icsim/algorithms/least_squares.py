"""Closed-form least squares: minimum-norm (pseudo-inverse) and ridge."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm


@ALGORITHMS.register("least_squares")
@dataclass(frozen=True)
class LeastSquares(Algorithm):
    """Minimum-norm least squares ŵ = X⁺y (Garg et al. 2022's optimal baseline for noiseless data).

    rcond: singular values below rcond·σ_max are treated as zero (default: torch's, eps·max(n,d)).
    """

    rcond: float | None = None
    name = "least_squares"
    closed_form = True

    def init(self, problem):
        X, y = problem.X, problem.y
        if X.shape[1] == 0:
            return X.new_zeros(X.shape[0], X.shape[2])
        return (torch.linalg.pinv(X, rtol=self.rcond) @ y.unsqueeze(-1)).squeeze(-1)


@ALGORITHMS.register("ridge")
@dataclass(frozen=True)
class Ridge(Algorithm):
    """Ridge regression ŵ = (XᵀX + λI)⁻¹Xᵀy (λ = `alpha`, scikit-learn's convention; default 1)."""

    alpha: float = 1.0
    name = "ridge"
    closed_form = True

    def __post_init__(self):
        V.number("alpha", self.alpha, low=0)

    def init(self, problem):
        X, y = problem.X, problem.y
        d = X.shape[-1]
        A = X.transpose(1, 2) @ X + self.alpha * torch.eye(d, dtype=X.dtype, device=X.device)
        b = X.transpose(1, 2) @ y.unsqueeze(-1)
        if self.alpha == 0:
            return (torch.linalg.pinv(A, hermitian=True) @ b).squeeze(-1)
        return torch.linalg.solve(A, b).squeeze(-1)
