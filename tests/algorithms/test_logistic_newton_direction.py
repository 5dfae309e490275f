"""The fused Newton direction (one Xw for gradient and Hessian, Cholesky, LU where it fails)
against independent float64 NumPy, including the per-problem LU fallback."""

import numpy as np
import torch

from icsim.algorithms import logistic
from icsim.algorithms.logistic import newton_direction

from .test_logistic import np_grad_hess, problems


def numpy_direction(P, w, mu):
    out_g, out_d = [], []
    for b in range(P.X.shape[0]):
        g, H = np_grad_hess(w[b].numpy(), P.X[b].numpy(), P.y[b].numpy(), mu)
        out_g.append(g)
        out_d.append(np.linalg.solve(H, g))
    return np.stack(out_g), np.stack(out_d)


def test_direction_matches_numpy_including_ill_conditioned_and_mu_zero():
    P = problems(9, seed=11, d=6, n=30)  # κ = 1, 10, 50 features
    w = torch.randn(9, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for mu in (0.1, 0.0):
        g, delta = newton_direction(P.X, P.y, w, mu)
        g_ref, d_ref = numpy_direction(P, w, mu)
        np.testing.assert_allclose(g.numpy(), g_ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(delta.numpy(), d_ref, rtol=1e-9, atol=1e-12)


def test_problems_whose_cholesky_fails_are_solved_by_lu(monkeypatch):
    P = problems(6, seed=12, d=4, n=20)
    w = torch.zeros(6, 4, dtype=torch.float64)
    g_ref, d_ref = numpy_direction(P, w, 0.1)
    cholesky_ex = torch.linalg.cholesky_ex

    def failing_for_problem_2(H):
        L, info = cholesky_ex(H)
        L[2] = float("nan")  # as if the factorisation had broken down for that problem
        return L, info.index_fill(0, torch.tensor([2]), 1)

    monkeypatch.setattr(logistic.torch.linalg, "cholesky_ex", failing_for_problem_2)
    g, delta = newton_direction(P.X, P.y, w, 0.1)
    np.testing.assert_allclose(delta.numpy(), d_ref, rtol=1e-10, atol=1e-13)
