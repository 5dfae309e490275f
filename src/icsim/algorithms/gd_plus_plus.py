"""GD++: gradient descent on inputs that every step also transforms by x ← (I − γ Σ̂) x
(von Oswald et al. 2023, §4, the algorithm their deeper trained linear transformers track)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm
from icsim.algorithms.gradient_descent import mean_gradient


@ALGORITHMS.register("gd_plus_plus")
@dataclass(frozen=True)
class GDPlusPlus(Algorithm):
    """Per step, on the current inputs x_i^(t) (context and queries alike) and residuals
    r_i = y_i − ŷ_i: r ← r − η (1/n) Σ_j (x_jᵀx) r_j, then x ← x − γ (1/n) Σ_j x_j x_jᵀ x
    (von Oswald et al. 2023, GD++; one linear self-attention layer per step).

    Convention: the curvature correction is normalised by the number n of context examples,
    as in the paper and as attention normalised by its number of keys computes it.

    Written in the original coordinates: with x^(t) = P_t x, P_0 = I,
      w_{t+1} = w_t − η P_tᵀP_t (1/n) Xᵀ(Xw_t − y),   P_{t+1} = (I − γ P_t S P_tᵀ) P_t,
    S = XᵀX/n, and the query prediction is w_tᵀx_q: GD preconditioned by P_tᵀP_t.
    γ = 0 is plain gradient descent.

    step_size: η (default 0.1). gamma: γ >= 0 (default 0.1; no paper default, trained values
    vary). State: (w_t [B, d], P_t [B, d, d]).
    """

    step_size: float = 0.1
    gamma: float = 0.1
    name = "gd_plus_plus"

    def __post_init__(self):
        V.number("step_size", self.step_size, low=0, low_open=True)
        V.number("gamma", self.gamma, low=0)

    def init(self, problem):
        X = problem.X
        B, _, d = X.shape
        eye = torch.eye(d, dtype=X.dtype, device=X.device)
        return X.new_zeros(B, d), eye.expand(B, d, d).clone()

    def step(self, problem, state):
        w, P = state
        X = problem.X
        n = max(X.shape[1], 1)
        g = mean_gradient(X, problem.y, w)
        w = w - self.step_size * torch.einsum("bji,bjk,bk->bi", P, P, g)
        XP = X @ P.transpose(1, 2)  # current inputs x_i^(t) = P_t x_i, as rows
        sigma = XP.transpose(1, 2) @ XP / n  # (1/n) Σ_j x_j^(t) x_j^(t)ᵀ
        P = P - self.gamma * sigma @ P
        return w, P
