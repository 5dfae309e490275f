"""Conjugate gradient on the normal equations (CGNR), batched over problems."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm
from icsim.tasks.base import Problem


@ALGORITHMS.register("conjugate_gradient")
@dataclass(frozen=True)
class ConjugateGradient(Algorithm):
    """CG on the normal equations XᵀX w = Xᵀy from w_0 = 0 (Hestenes & Stiefel 1952; CGNR):
    in exact arithmetic it reaches the minimum-norm least-squares solution in ≤ rank(X) ≤ d steps.

    Implemented as CGLS (Björck 1996, Numerical Methods for Least Squares Problems): the
    residual is kept in data space, s = y − Xw, and the step uses ‖Xp‖² rather than
    pᵀ(XᵀX)p, the stable way to run CGNR. In floating point, loss of orthogonality can add a
    few steps beyond rank(X) when X is ill-conditioned.
    tol: a problem whose normal-equation residual ‖Xᵀ(y − Xw)‖ ≤ tol·‖Xᵀy‖ has converged and
      stays put (no 0/0 after convergence). Default (None): 10 × the dtype's machine epsilon.
    State: (w [B, d], s [B, n], r = Xᵀs [B, d], p [B, d], ‖r‖² [B], threshold [B]).
    """

    tol: float | None = None
    name = "conjugate_gradient"

    def __post_init__(self):
        if self.tol is not None:
            V.number("tol", self.tol, low=0)

    def init(self, problem: Problem):
        X, y = problem.X, problem.y
        s = y.clone()
        r = torch.einsum("bnd,bn->bd", X, s)
        rr = (r * r).sum(-1)
        tol = 10 * torch.finfo(X.dtype).eps if self.tol is None else self.tol
        return torch.zeros_like(r), s, r, r.clone(), rr, tol**2 * rr

    def step(self, problem: Problem, state):
        w, s, r, p, rr, threshold = state
        X = problem.X
        q = torch.einsum("bnd,bd->bn", X, p)
        qq = (q * q).sum(-1)
        active = (rr > threshold) & (qq > 0)
        alpha = torch.where(active, rr / torch.where(active, qq, 1), 0)
        w = w + alpha[:, None] * p
        s = s - alpha[:, None] * q
        r = torch.where(active[:, None], torch.einsum("bnd,bn->bd", X, s), r)
        rr_new = (r * r).sum(-1)
        beta = torch.where(active, rr_new / torch.where(active, rr, 1), 0)
        p = torch.where(active[:, None], r + beta[:, None] * p, p)
        return w, s, r, p, rr_new, threshold
