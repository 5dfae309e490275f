"""Closed-form least squares: minimum-norm (pseudo-inverse) and ridge."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm


def _gram_solver(G: torch.Tensor):
    """Cholesky G = LLᵀ [B, k, k] with its explicit inverse factor L⁻¹ and κ_F(L) = ‖L‖_F‖L⁻¹‖_F
    (>= κ₂(L), +inf where the factorisation fails), so that G⁻¹v = L⁻ᵀ(L⁻¹v)."""
    L, info = torch.linalg.cholesky_ex(G)
    eye = torch.eye(G.shape[-1], dtype=G.dtype, device=G.device).expand_as(G)
    L_inv = torch.linalg.solve_triangular(L, eye, upper=False)
    kappa = torch.linalg.matrix_norm(L) * torch.linalg.matrix_norm(L_inv)
    kappa = torch.where((info == 0) & torch.isfinite(kappa), kappa, torch.inf)
    return L_inv, kappa


def _apply(L_inv: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """G⁻¹v for v [B, k] given L⁻¹ of G = LLᵀ."""
    return (L_inv.mT @ (L_inv @ v.unsqueeze(-1))).squeeze(-1)


def least_squares_solve(X: torch.Tensor, y: torch.Tensor, rcond: float | None = None):
    """Minimum-norm ŵ = X⁺y [B, d] and the mask [B] of problems solved by the fast path.

    Fast path, batched: Cholesky of the normal equations XᵀX (n >= d; ŵ = (XᵀX)⁻¹Xᵀy) or of
    XXᵀ (n < d; ŵ = Xᵀ(XXᵀ)⁻¹y) plus one step of iterative refinement on the residual
    (corrected semi-normal equations, Björck 1996 §6.6.5): relative error ≈ κu + (κ²u)², so it
    matches the SVD's κu where κ³u <= 1 (κ = κ₂(X), u the unit round-off; κ <= 1.6e5 in
    float64, 2e2 in float32). It is kept where the bound κ_F(L) >= κ₂(X) certifies that, and
    where κ_F < 1/rcond (then the pseudo-inverse truncates nothing). Every other problem
    (rank-deficient, ill-conditioned, failed factorisation) is solved by `torch.linalg.pinv`
    (SVD), batched over those problems only.
    """
    B, n, d = X.shape
    if n == 0 or d == 0:
        return X.new_zeros(B, d), torch.ones(B, dtype=torch.bool, device=X.device)
    u = torch.finfo(X.dtype).eps / 2
    limit = u ** (-1 / 3) if rcond is None else min(u ** (-1 / 3), 1 / rcond)
    if n >= d:
        L_inv, kappa = _gram_solver(X.mT @ X)
        w = _apply(L_inv, (X.mT @ y.unsqueeze(-1)).squeeze(-1))
        r = y - (X @ w.unsqueeze(-1)).squeeze(-1)
        w = w + _apply(L_inv, (X.mT @ r.unsqueeze(-1)).squeeze(-1))
    else:
        L_inv, kappa = _gram_solver(X @ X.mT)
        w = (X.mT @ _apply(L_inv, y).unsqueeze(-1)).squeeze(-1)
        r = y - (X @ w.unsqueeze(-1)).squeeze(-1)
        w = w + (X.mT @ _apply(L_inv, r).unsqueeze(-1)).squeeze(-1)
    fast = kappa <= limit
    if not bool(fast.all()):
        slow = (~fast).nonzero().squeeze(-1)
        w_slow = torch.linalg.pinv(X[slow], rtol=rcond) @ y[slow].unsqueeze(-1)
        w = w.index_copy(0, slow, w_slow.squeeze(-1))
    return w, fast


@ALGORITHMS.register("least_squares")
@dataclass(frozen=True)
class LeastSquares(Algorithm):
    """Minimum-norm least squares ŵ = X⁺y (Garg et al. 2022's optimal baseline for noiseless data).

    rcond: singular values below rcond·σ_max are treated as zero (default: torch's, eps·max(n,d)).
    Well-conditioned problems are solved by Cholesky, the rest by the SVD (`least_squares_solve`).
    """

    rcond: float | None = None
    name = "least_squares"
    closed_form = True

    def init(self, problem):
        return least_squares_solve(problem.X, problem.y, self.rcond)[0]


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
        # A is SPD for alpha > 0: Cholesky, with LU where it fails (alpha below round-off)
        L, info = torch.linalg.cholesky_ex(A)
        w = torch.cholesky_solve(b, L).squeeze(-1)
        if bool((info != 0).any()):
            w = torch.where((info == 0).unsqueeze(-1), w, torch.linalg.solve(A, b).squeeze(-1))
        return w
