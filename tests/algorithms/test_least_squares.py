import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge as SkRidge

import icsim.algorithms as A

from ._problems import as_np, problems, rel_err


@pytest.mark.parametrize("kappa", [1.0, 100.0])
@pytest.mark.parametrize("n", [30, 8, 5])  # over-, exactly and under-determined (d = 8)
def test_least_squares_matches_lstsq(n, kappa):
    p = problems(n=n, kappa=kappa, noise=0.1, seed=n)
    traj = A.get("least_squares").run(p)
    w = as_np(traj.iterates[0])
    X, y = as_np(p.X), as_np(p.y)
    ref = np.stack([np.linalg.lstsq(X[b], y[b], rcond=None)[0] for b in range(len(X))])
    assert rel_err(w, ref).max() < 1e-8
    np.testing.assert_allclose(
        as_np(traj.predictions[0]), np.einsum("bmd,bd->bm", as_np(p.X_query), ref), atol=1e-8
    )
    if n < 8:  # minimum norm: no component in the null space of X
        assert np.abs(np.einsum("bnd,bd->bn", X, w) - y).max() < 1e-8


@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("kappa", [1.0, 100.0])
def test_ridge_matches_closed_form_and_sklearn(alpha, kappa):
    p = problems(n=12, kappa=kappa, noise=0.5, seed=3)
    w = as_np(A.get("ridge", alpha=alpha).run(p).iterates[0])
    X, y = as_np(p.X), as_np(p.y)
    d = X.shape[-1]
    for b in range(len(X)):
        closed = np.linalg.solve(X[b].T @ X[b] + alpha * np.eye(d), X[b].T @ y[b])
        sk = SkRidge(alpha=alpha, fit_intercept=False, solver="cholesky").fit(X[b], y[b]).coef_
        np.testing.assert_allclose(w[b], closed, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(w[b], sk, rtol=1e-8, atol=1e-9)


def test_ridge_alpha_zero_is_least_squares():
    p = problems(n=20, kappa=100.0, seed=5)
    w0 = A.get("ridge", alpha=0.0).run(p).iterates[0]
    wls = A.get("least_squares").run(p).iterates[0]
    assert rel_err(as_np(w0), as_np(wls)).max() < 1e-8


@pytest.mark.parametrize("name", ["least_squares", "ridge"])
def test_no_context_predicts_zero(name):
    p = problems(n=0, m=3)
    traj = A.get(name).run(p, steps=2)
    assert traj.predictions.shape == (3, 12, 3)
    assert torch.equal(traj.predictions, torch.zeros_like(traj.predictions))


def test_closed_form_flag_and_constant_trajectory():
    p = problems(n=10)
    for name in ["least_squares", "ridge"]:
        alg = A.get(name)
        assert alg.closed_form
        traj = alg.run(p, steps=3)
        assert torch.equal(traj.iterates[0], traj.iterates[3])
