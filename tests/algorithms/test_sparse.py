"""ISTA, FISTA and the LASSO solver against independent NumPy loops and scikit-learn's Lasso,
FISTA's O(1/k²) rate, batching and input errors."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso as SkLasso

import icsim.algorithms
import icsim.tasks
from icsim.algorithms.sparse import (
    fista_bound,
    ista_bound,
    lasso_objective,
    lipschitz_constant,
    soft_threshold,
)
from icsim.errors import InputError
from icsim.tasks.base import Problem

LAM = 0.1


def problems(batch, n, d, s=3, noise=0.1, seed=0, **params):
    task = icsim.tasks.get("sparse_recovery", dim=d, sparsity=s, noise_std=noise, **params)
    b = task.sample(
        batch, n + 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    return b.split(n)


def sklearn_lasso(P, lam):
    X, y = P.X.numpy(), P.y.numpy()
    fit = [
        SkLasso(alpha=lam, fit_intercept=False, tol=1e-14, max_iter=10**6).fit(X[i], y[i]).coef_
        for i in range(len(X))
    ]
    return np.stack(fit)


# -- independent NumPy references ------------------------------------------------------------


def np_soft(z, t):
    return np.where(z > t, z - t, np.where(z < -t, z + t, 0.0))


def np_ista(X, y, lam, steps, eta=None):
    n, d = X.shape
    eta = 1 / np.linalg.eigvalsh(X.T @ X / n).max() if eta is None else eta
    b, out = np.zeros(d), [np.zeros(d)]
    for _ in range(steps):
        b = np_soft(b - eta * X.T @ (X @ b - y) / n, eta * lam)
        out.append(b)
    return np.stack(out)


def np_fista(X, y, lam, steps):
    n, d = X.shape
    eta = 1 / np.linalg.eigvalsh(X.T @ X / n).max()
    b, z, t, out = np.zeros(d), np.zeros(d), 1.0, [np.zeros(d)]
    for _ in range(steps):
        new = np_soft(z - eta * X.T @ (X @ z - y) / n, eta * lam)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = new + (t - 1) / t_next * (new - b)
        b, t = new, t_next
        out.append(b)
    return np.stack(out)


# -- pieces -----------------------------------------------------------------------------------


def test_soft_threshold_lasso_objective_lipschitz_match_numpy():
    z = torch.randn(50, 7, dtype=torch.float64)
    np.testing.assert_array_equal(soft_threshold(z, 0.3).numpy(), np_soft(z.numpy(), 0.3))
    P = problems(20, 15, 8, ensemble="correlated", rho=0.95)
    beta = torch.randn(20, 8, dtype=torch.float64)
    X, y, b = P.X.numpy(), P.y.numpy(), beta.numpy()
    ref = ((np.einsum("bnd,bd->bn", X, b) - y) ** 2).sum(1) / 30 + 0.2 * np.abs(b).sum(1)
    np.testing.assert_allclose(lasso_objective(P.X, P.y, beta, 0.2).numpy(), ref, rtol=1e-13)
    L = np.linalg.eigvalsh(np.einsum("bnd,bne->bde", X, X) / 15)[:, -1]
    np.testing.assert_allclose(lipschitz_constant(P.X).numpy(), L, rtol=1e-12)


@pytest.mark.parametrize("params", [{}, {"ensemble": "correlated", "rho": 0.95}])
@pytest.mark.parametrize("n,d", [(20, 10), (8, 16)])
def test_ista_and_fista_trajectories_match_numpy(params, n, d):
    P = problems(6, n, d, **params)
    ista = icsim.algorithms.get("ista", lam=LAM).run(P, 40)
    fista = icsim.algorithms.get("fista", lam=LAM).run(P, 40)
    fixed = icsim.algorithms.get("ista", lam=0.3, step_size=0.05).run(P, 40)
    for i in range(6):
        X, y = P.X[i].numpy(), P.y[i].numpy()
        np.testing.assert_allclose(ista.iterates[:, i].numpy(), np_ista(X, y, LAM, 40), atol=1e-12)
        np.testing.assert_allclose(
            fista.iterates[:, i].numpy(), np_fista(X, y, LAM, 40), atol=1e-11
        )
        np.testing.assert_allclose(
            fixed.iterates[:, i].numpy(), np_ista(X, y, 0.3, 40, eta=0.05), atol=1e-12
        )
    # predictions are x_qᵀβ_t
    np.testing.assert_allclose(
        ista.predictions.numpy(),
        np.einsum("bmd,tbd->tbm", P.X_query.numpy(), ista.iterates.numpy()),
        atol=1e-12,
    )


# -- against scikit-learn at convergence --------------------------------------------------------


def test_ista_fista_lasso_match_sklearn_on_1000_problems():
    P = problems(1000, 20, 10, seed=1)
    ref = sklearn_lasso(P, LAM)
    ista = icsim.algorithms.get("ista", lam=LAM).run(P, 1000).iterates[-1].numpy()
    fista = icsim.algorithms.get("fista", lam=LAM).run(P, 1000).iterates[-1].numpy()
    lasso = icsim.algorithms.get("lasso", lam=LAM).run(P).iterates[-1].numpy()
    assert np.abs(ista - ref).max() < 1e-6
    assert np.abs(fista - ref).max() < 1e-6
    assert np.abs(lasso - ref).max() < 1e-9
    assert (ref == 0).any()  # the regime is sparse: some coordinates are exactly zero


@pytest.mark.parametrize(
    "n,d,params",
    [(20, 10, {"ensemble": "correlated", "rho": 0.95}), (10, 20, {})],
    ids=["ill-conditioned", "underdetermined"],
)
def test_lasso_matches_sklearn_and_kkt(n, d, params):
    P = problems(300, n, d, seed=2, **params)
    lasso = icsim.algorithms.get("lasso", lam=0.05).run(P).iterates[-1]
    np.testing.assert_allclose(lasso.numpy(), sklearn_lasso(P, 0.05), atol=1e-7)
    # KKT: Xᵀ(y − Xβ)/n = λ sign(β) on the support, |·| <= λ off it
    X, y, b = P.X.numpy(), P.y.numpy(), lasso.numpy()
    c = np.einsum("bnd,bn->bd", X, y - np.einsum("bnd,bd->bn", X, b)) / n
    on = b != 0
    np.testing.assert_allclose(c[on], 0.05 * np.sign(b[on]), atol=1e-10)
    assert np.abs(c[~on]).max() <= 0.05 + 1e-10


# -- rates ------------------------------------------------------------------------------------


def test_fista_gap_is_order_one_over_k_squared_and_beats_ista():
    P = problems(200, 20, 40, s=4, noise=0.05, seed=3)  # d > n: not strongly convex
    lam = 0.02
    opt = icsim.algorithms.get("lasso", lam=lam).run(P).iterates[-1]
    f_star = lasso_objective(P.X, P.y, opt, lam)
    K = 300
    fi = icsim.algorithms.get("fista", lam=lam).run(P, K).iterates
    it = icsim.algorithms.get("ista", lam=lam).run(P, K).iterates
    gap_f = lasso_objective(P.X, P.y, fi, lam) - f_star  # [K+1, B]
    gap_i = lasso_objective(P.X, P.y, it, lam) - f_star
    assert (gap_f > -1e-12).all() and (gap_i > -1e-12).all()
    # Beck & Teboulle: gap_k <= 2L‖β̂‖²/(k+1)² (FISTA, Thm. 4.4), <= L‖β̂‖²/(2k) (ISTA, Thm. 3.1)
    k = torch.arange(1, K + 1, dtype=torch.float64).unsqueeze(1)
    c_fista, c_ista = fista_bound(P.X, opt, 0), ista_bound(P.X, opt, 1)  # the constants
    assert (gap_f[1:] * (k + 1) ** 2 <= c_fista * (1 + 1e-9)).all()
    assert (gap_i[1:] * k <= c_ista * (1 + 1e-9)).all()
    torch.testing.assert_close(c_fista, 2 * lipschitz_constant(P.X) * (opt**2).sum(-1))
    # FISTA is far ahead of ISTA after the first steps
    for k in (50, 100, 300):
        assert gap_f[k].mean() < 0.2 * gap_i[k].mean(), k


# -- batching, edge cases, errors -------------------------------------------------------------


@pytest.mark.parametrize("name", ["ista", "fista", "lasso"])
def test_batched_equals_one_by_one(name):
    P = problems(5, 12, 6, seed=4)
    alg = icsim.algorithms.get(name, lam=LAM)
    full = alg.run(P, 30).iterates
    for i in (0, 3):
        one = Problem(P.X[i : i + 1], P.y[i : i + 1], P.X_query[i : i + 1])
        torch.testing.assert_close(alg.run(one, 30).iterates[:, 0], full[:, i], atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["ista", "fista", "lasso"])
def test_no_context_gives_zero(name):
    P = problems(3, 4, 5)
    empty = Problem(P.X[:, :0], P.y[:, :0], P.X_query)
    traj = icsim.algorithms.get(name).run(empty, 5)
    assert torch.isfinite(traj.iterates).all() and (traj.iterates == 0).all()


def test_large_lambda_gives_zero_and_zero_lambda_is_least_squares():
    P = problems(50, 20, 6, seed=5)
    big = icsim.algorithms.get("lasso", lam=1e3).run(P).iterates[-1]
    assert (big == 0).all()
    ls = torch.linalg.lstsq(P.X, P.y.unsqueeze(-1)).solution.squeeze(-1)
    zero = icsim.algorithms.get("lasso", lam=0.0).run(P).iterates[-1]
    torch.testing.assert_close(zero, ls, atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    "name,params",
    [
        ("ista", {"lam": -1}),
        ("ista", {"step_size": 0}),
        ("fista", {"step_size": -0.1}),
        ("lasso", {"tol": 0}),
        ("lasso", {"max_iter": 0}),
        ("lasso", {"step_size": 0.1}),
        ("lista", {}),
        ("lista_cp", {"network": "net"}),
    ],
)
def test_bad_hyperparameters_raise_input_error(name, params):
    with pytest.raises(InputError):
        icsim.algorithms.get(name, **params)
