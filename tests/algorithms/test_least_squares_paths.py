"""The two paths of `least_squares_solve`: Cholesky (+ one refinement) where a bound certifies it
as accurate as the SVD, `pinv` for every other problem, chosen per problem in one batch."""

import numpy as np
import pytest
import torch

import icsim.algorithms as A
from icsim.algorithms.least_squares import least_squares_solve
from icsim.tasks.base import Problem

from ._problems import rel_err


def spectrum_matrices(n, d, kappas, seed=0):
    """X [B, n, d] = U diag(s) Vᵀ with singular values log-spaced from 1 to 1/κ_b (κ_b = inf:
    the last singular value is exactly 0, a rank-deficient problem)."""
    rng = np.random.default_rng(seed)
    k = min(n, d)
    out = []
    for kappa in kappas:
        U = np.linalg.qr(rng.standard_normal((n, n)))[0]
        V = np.linalg.qr(rng.standard_normal((d, d)))[0]
        s = np.logspace(0, -np.log10(kappa if np.isfinite(kappa) else 1e3), k)
        if not np.isfinite(kappa):
            s[-1] = 0.0
        S = np.zeros((n, d))
        S[:k, :k] = np.diag(s)
        out.append(U @ S @ V.T)
    return np.stack(out), rng.standard_normal((len(kappas), n))


def lstsq(X, y, rcond=None):
    return np.stack([np.linalg.lstsq(X[b], y[b], rcond=rcond)[0] for b in range(len(X))])


@pytest.mark.parametrize("n, d", [(40, 20), (20, 20), (10, 20)])  # over-, square, under (d > n)
def test_each_problem_takes_its_own_path_and_matches_lstsq(n, d):
    kappas = [1.0, 1e2, 1e6, np.inf, 10.0, 1e6]
    X, y = spectrum_matrices(n, d, kappas, seed=n)
    w, fast = least_squares_solve(torch.tensor(X), torch.tensor(y))
    # κ = 1e6 and rank deficiency go to the SVD; the well-conditioned ones stay on Cholesky
    assert fast.tolist() == [True, True, False, False, True, False]
    ref = lstsq(X, y)
    err = rel_err(w.numpy(), ref)
    kappa_u = np.where(np.isfinite(kappas), kappas, 1e3) * np.finfo(np.float64).eps
    assert (err <= 100 * kappa_u + 1e-13).all(), err  # the SVD's own accuracy, κu
    # the SVD path is pinv itself, bit for bit
    slow = ~fast.numpy()
    pinv = torch.linalg.pinv(torch.tensor(X[slow])) @ torch.tensor(y[slow]).unsqueeze(-1)
    assert torch.equal(w[~fast], pinv.squeeze(-1))


def test_kappa_1e6_batch_of_random_problems_matches_lstsq():
    X, y = spectrum_matrices(40, 20, [1e6] * 8, seed=3)
    X_t = torch.tensor(X)
    w = A.get("least_squares").init(Problem(X_t, torch.tensor(y), X_t[:, :1]))
    # the SVD's accuracy (~1e-10 here); Cholesky + refinement would give ~1e-9 at this κ
    assert rel_err(w.numpy(), lstsq(X, y)).max() < 3e-10


def test_under_determined_fast_path_is_the_minimum_norm_solution():
    X, y = spectrum_matrices(8, 20, [1.0, 30.0, 5.0], seed=1)
    w, fast = least_squares_solve(torch.tensor(X), torch.tensor(y))
    assert fast.all()
    np.testing.assert_allclose(w.numpy(), lstsq(X, y), rtol=1e-11, atol=1e-13)
    assert np.abs(np.einsum("bnd,bd->bn", X, w.numpy()) - y).max() < 1e-12


def test_zero_columns_of_the_curriculum_fall_back():
    X, y = spectrum_matrices(40, 20, [1.0, 1.0], seed=2)
    X[:, :, 15:] = 0.0  # only 15 active dimensions: XᵀX singular
    w, fast = least_squares_solve(torch.tensor(X), torch.tensor(y))
    assert not fast.any()
    np.testing.assert_allclose(w.numpy(), lstsq(X, y), atol=1e-12)
    assert (w[:, 15:] == 0).all()


def test_rcond_truncates_as_pinv_does():
    X, y = spectrum_matrices(40, 20, [1e3, 10.0], seed=4)
    w, fast = least_squares_solve(torch.tensor(X), torch.tensor(y), rcond=1e-2)
    assert fast.tolist() == [False, True]  # κ = 1e3 > 1/rcond: truncated by the SVD
    pinv = torch.linalg.pinv(torch.tensor(X), rtol=1e-2) @ torch.tensor(y).unsqueeze(-1)
    np.testing.assert_allclose(w.numpy(), pinv.squeeze(-1).numpy(), rtol=1e-10, atol=1e-12)


def test_float32_uses_float32_limits():
    X, y = spectrum_matrices(40, 20, [2.0, 1e3], seed=5)
    w, fast = least_squares_solve(torch.tensor(X, dtype=torch.float32), torch.tensor(y).float())
    assert fast.tolist() == [True, False]  # κ³u <= 1 holds up to κ ≈ 200 in float32
    assert rel_err(w.double().numpy(), lstsq(X, y))[0] < 1e-5
