"""Iterative Newton for least squares: Newton–Schulz on S = XᵀX (Fu et al. 2024)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm
from icsim.algorithms.newton_schulz import newton_schulz_step
from icsim.errors import InputError
from icsim.tasks.base import Problem


@ALGORITHMS.register("iterative_newton")
@dataclass(frozen=True)
class IterativeNewton(Algorithm):
    """S = XᵀX, M_0 = αS, M_{k+1} = 2M_k − M_k S M_k, ŵ_k = M_k Xᵀy (Fu et al. 2024).

    The estimate is updated as ŵ_{k+1} = ŵ_k + M_k Xᵀ(y − Xŵ_k), equal to M_{k+1}Xᵀy in exact
    arithmetic (expand M_{k+1} = 2M_k − M_k S M_k) but computed from the residual, so ŵ reaches
    round-off against least squares even where M_k itself does not (e.g. 1e-13 relative at
    n = d = 20, κ = 100, cond(S) ≈ 3e8, where M_k Xᵀy stalls near 1e-8).
    The error E_k = I − M_k S obeys E_{k+1} = E_k² with E_0 = I − αS², so ŵ_k → S⁺Xᵀy
    (the minimum-norm least-squares solution) quadratically iff 0 < α < 2/λ_max(S)².
    alpha:
      "frobenius" (default): α = 1/‖SSᵀ‖_F per problem, as in Fu et al.'s code; always convergent.
      "spectral": α = 2/‖SSᵀ‖₂, the boundary value of the issue's formula: the top eigen-direction
        of E is −1 at k = 0 and 1 forever after, so that component of ŵ never converges. In
        floating point 1 is an unstable fixed point (rounding errors double every step): the
        direction stays stuck for about 30 steps in float64 and 15 in float32, then converges
        or diverges to inf/nan depending on the sign of the rounding error.
      a float > 0: a fixed α for every problem (what hand-built constructions use).
    A problem with S = 0 (no context, or all-zero inputs) gets M = 0 and predicts 0.
    State: (ŵ_k [B, d], M_k [B, d, d], S [B, d, d], Xᵀy [B, d]).
    """

    alpha: float | str = "frobenius"
    name = "iterative_newton"
    step_grid = tuple(range(24))  # Fu et al. 2024's Newton steps 0–23

    def __post_init__(self):
        if isinstance(self.alpha, str):
            V.choice("alpha", self.alpha, ("frobenius", "spectral"))
        else:
            try:
                V.number("alpha", self.alpha, low=0, low_open=True)
            except InputError as e:
                raise InputError(f"{e} Use a number > 0, 'frobenius' or 'spectral'.") from None

    def initial_scale(self, S: torch.Tensor) -> torch.Tensor:
        """α per problem, [B]."""
        if not isinstance(self.alpha, str):
            return S.new_full(S.shape[:1], float(self.alpha))
        SSt = S @ S.transpose(-1, -2)
        if self.alpha == "frobenius":
            norm, scale = torch.linalg.matrix_norm(SSt), 1.0
        else:
            norm, scale = torch.linalg.matrix_norm(SSt, ord=2), 2.0
        return torch.where(norm > 0, scale / torch.where(norm > 0, norm, 1), 0)

    def init(self, problem: Problem):
        X, y = problem.X, problem.y
        S = X.transpose(1, 2) @ X
        b = torch.einsum("bnd,bn->bd", X, y)
        M = self.initial_scale(S)[:, None, None] * S
        return torch.einsum("bij,bj->bi", M, b), M, S, b

    def step(self, problem: Problem, state):
        w, M, S, b = state
        residual = problem.y - torch.einsum("bnd,bd->bn", problem.X, w)
        w = w + torch.einsum("bij,bnj,bn->bi", M, problem.X, residual)  # = M_{k+1} Xᵀy
        return w, newton_schulz_step(S, M), S, b  # 2M − (MS)M
