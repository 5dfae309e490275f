"""Logistic solvers against independent float64 references: SciPy's MINPACK root of ∇f = 0 and
scikit-learn's newton-cholesky on the same μ-regularised problem, plus convergence rates."""

import numpy as np
import pytest
import scipy.optimize
import torch
from sklearn.linear_model import LogisticRegression

import icsim.algorithms
import icsim.tasks
from icsim.algorithms.logistic import logistic_gradient, logistic_hessian, logistic_loss
from icsim.errors import InputError

MU = 0.1


def problems(batch, seed=0, d=5, n=26, **params):
    """A float64 Problem: a third of the prompts each with κ = 1, 10, 50; both label models."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for i, kappa in enumerate((1.0, 10.0, 50.0)):
        task = icsim.tasks.get(
            "logistic_regression",
            dim=d,
            condition_number=kappa,
            label_model=("bernoulli", "sign")[i % 2],
            **params,
        )
        parts.append(
            task.sample(batch // 3 + (i < batch % 3), n + 2, generator=g, dtype=torch.float64)
        )
    X = torch.cat([p.xs for p in parts])
    y = torch.cat([p.ys for p in parts])
    return icsim.tasks.TaskBatch(xs=X, ys=y, task="logistic_regression").split(n)


def np_grad_hess(w, A, y, mu):
    """Independent NumPy gradient and Hessian of (1/n) Σ log(1 + e^{−y aᵀw}) + μ/2 ‖w‖²."""
    n, d = A.shape
    s = 1 / (1 + np.exp(y * (A @ w)))  # σ(−y aᵀw)
    g = -(A * (y * s)[:, None]).mean(0) + mu * w
    p = 1 / (1 + np.exp(-(A @ w)))
    H = (A * (p * (1 - p))[:, None]).T @ A / n + mu * np.eye(d)
    return g, H


def scipy_optimum(A, y, mu):
    res = scipy.optimize.root(
        lambda w: np_grad_hess(w, A, y, mu)[0],
        np.zeros(A.shape[1]),
        jac=lambda w: np_grad_hess(w, A, y, mu)[1],
        method="hybr",
        options={"xtol": 1e-15},
    )
    return res.x


def numpy_damped_newton(A, y, mu, steps=40):
    """Vectorised over problems: A [B, n, d], y [B, n]."""
    B, n, d = A.shape
    w = np.zeros((B, d))
    for _ in range(steps):
        z = np.einsum("bnd,bd->bn", A, w)
        p = 1 / (1 + np.exp(-z))
        g = np.einsum("bnd,bn->bd", A, p - (1 + y) / 2) / n + mu * w
        H = np.einsum("bnd,bn,bne->bde", A, p * (1 - p), A) / n + mu * np.eye(d)
        delta = np.linalg.solve(H, g[..., None])[..., 0]
        lam = np.sqrt(np.maximum((g * delta).sum(-1), 0))
        w = w - (2 * np.sqrt(mu) / (2 * np.sqrt(mu) + lam))[:, None] * delta
    return w


@pytest.fixture(scope="module")
def thousand():
    """1000 random problems (d = 5, n = 26, the paper's logistic setting) and their optimum from
    SciPy (per problem), checked against a vectorised NumPy damped Newton."""
    p = problems(1000)
    A, y = p.X.numpy(), p.y.numpy()
    opt = np.stack([scipy_optimum(A[b], y[b], MU) for b in range(len(A))])
    np.testing.assert_allclose(numpy_damped_newton(A, y, MU), opt, atol=1e-12, rtol=0)
    return p, opt


@pytest.mark.parametrize("name", ["logistic_newton", "logistic_damped_newton"])
def test_newton_matches_scipy_on_1000_problems(thousand, name):
    p, opt = thousand
    traj = icsim.algorithms.get(name, mu=MU).run(p, steps=30)
    assert traj.iterates.shape == (31, 1000, 5) and traj.predictions.shape == (31, 1000, 2)
    err = np.abs(traj.iterates[-1].numpy() - opt).max()
    assert err < 1e-8, err
    torch.testing.assert_close(
        traj.predictions[-1], torch.einsum("bmd,bd->bm", p.X_query, traj.iterates[-1])
    )


def test_optimum_matches_sklearn(thousand):
    p, opt = thousand
    A, y = p.X.numpy(), p.y.numpy()
    n = A.shape[1]
    w = icsim.algorithms.get("logistic_damped_newton", mu=MU).run(p, steps=30).iterates[-1]
    for b in range(0, 1000, 10):  # 100 problems: sklearn's fit is per problem
        clf = LogisticRegression(
            C=1 / (n * MU), fit_intercept=False, solver="newton-cholesky", tol=1e-14, max_iter=100
        ).fit(A[b], y[b])
        np.testing.assert_allclose(w[b].numpy(), clf.coef_[0], atol=1e-8, rtol=0)
        np.testing.assert_allclose(opt[b], clf.coef_[0], atol=1e-8, rtol=0)


def test_gradient_and_hessian_against_autograd_and_numpy():
    p = problems(9, seed=1)
    w = torch.randn(9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w.requires_grad_(True)
    (g_auto,) = torch.autograd.grad(logistic_loss(p.X, p.y, w, MU).sum(), w)
    g = logistic_gradient(p.X, p.y, w.detach(), MU)
    torch.testing.assert_close(g, g_auto)
    H = logistic_hessian(p.X, w.detach(), MU)
    for b in range(9):
        g_np, H_np = np_grad_hess(w[b].detach().numpy(), p.X[b].numpy(), p.y[b].numpy(), MU)
        np.testing.assert_allclose(g[b].numpy(), g_np, atol=1e-14)
        np.testing.assert_allclose(H[b].numpy(), H_np, atol=1e-14)


def test_newton_converges_quadratically(thousand):
    """‖w⁺ − w*‖ <= (L₂/2μ)‖w − w*‖² for every w: the Hessian is L₂-Lipschitz with
    L₂ = max|σ''| max‖a‖³ = 1/(6√3) and >= μI. Checked at every step of 1000 problems."""
    p, opt = thousand
    its = icsim.algorithms.get("logistic_newton", mu=MU).run(p, steps=8).iterates.numpy()
    err = np.linalg.norm(its - opt, axis=-1)  # [9, B]
    C = 1 / (6 * np.sqrt(3)) / (2 * MU)
    assert (err[1:] <= C * err[:-1] ** 2 + 1e-13).all()
    assert np.median(err[1]) > 1e-3 and err[5].max() < 1e-12  # it is fast, not trivial


def test_gradient_descent_converges_linearly(thousand):
    """With η = 1/L, L = ‖A‖₂²/(4n) + μ: ‖w_{t+1} − w*‖ <= (1 − μ/L)‖w_t − w*‖ at every step, and
    no faster than linearly: the error ratio stays away from 0."""
    p, opt = thousand
    gd = icsim.algorithms.get("logistic_gradient_descent", mu=MU)
    its = gd.run(p, steps=60).iterates.numpy()
    err = np.linalg.norm(its - opt, axis=-1)
    rate = 1 - MU / gd.smoothness(p.X).numpy()
    assert (err[1:] <= rate * err[:-1] + 1e-14).all()
    live = err[12] > 1e-9  # still far above rounding at step 12
    assert live.mean() > 0.9
    ratio = err[5:13, live] / err[4:12, live]
    assert (ratio > 0.1).all() and (ratio < 0.99).all()
    assert (ratio[-1] > 0.8 * ratio[0]).all()  # the rate does not improve: linear, not superlinear
    newton = icsim.algorithms.get("logistic_damped_newton", mu=MU).run(p, steps=8).iterates
    assert np.median(err[8]) > 1e3 * np.linalg.norm(newton[8].numpy() - opt, axis=-1).max()


def test_gradient_descent_fixed_step():
    p = problems(6)
    its = (
        icsim.algorithms.get("logistic_gradient_descent", mu=0.0, step_size=0.5).run(p, 2).iterates
    )
    g0 = logistic_gradient(p.X, p.y, its[0], 0.0)
    torch.testing.assert_close(its[1], -0.5 * g0)


def test_damped_newton_decreases_the_loss(thousand):
    p, _ = thousand
    algo = icsim.algorithms.get("logistic_damped_newton", mu=MU)
    its = algo.run(p, steps=10).iterates
    loss = torch.stack([algo.loss(p, w) for w in its])
    assert (loss[1:] <= loss[:-1] + 1e-15).all()
    assert (loss[0] == np.log(2)).all()


@pytest.mark.parametrize("order", [2, 3])
def test_inexact_newton_with_many_newton_schulz_steps_is_damped_newton(thousand, order):
    p, _ = thousand
    exact = icsim.algorithms.get("logistic_damped_newton", mu=MU).run(p, steps=8).iterates
    inexact = icsim.algorithms.get(
        "logistic_inexact_newton", mu=MU, newton_schulz_steps=30, order=order
    ).run(p, steps=8)
    torch.testing.assert_close(inexact.iterates, exact, atol=1e-12, rtol=0)


@pytest.mark.parametrize("inverse_init", ["hessian", "identity", "warm"])
def test_inexact_newton_few_steps_differs_but_converges(thousand, inverse_init):
    p, opt = thousand
    exact = icsim.algorithms.get("logistic_damped_newton", mu=MU).run(p, steps=2).iterates
    algo = icsim.algorithms.get(
        "logistic_inexact_newton", mu=MU, newton_schulz_steps=2, inverse_init=inverse_init
    )
    traj = algo.run(p, steps=60)
    assert (traj.iterates[1] - exact[1]).norm(dim=-1).max() > 1e-3  # a different first step
    np.testing.assert_allclose(traj.iterates[-1].numpy(), opt, atol=1e-9, rtol=0)


def test_default_newton_schulz_steps_reach_damped_newton(thousand):
    p, _ = thousand
    algo = icsim.algorithms.get("logistic_inexact_newton", mu=MU)
    assert algo.k == 9
    exact = icsim.algorithms.get("logistic_damped_newton", mu=MU).run(p, steps=6).iterates
    torch.testing.assert_close(algo.run(p, steps=6).iterates, exact, atol=1e-9, rtol=0)


def test_no_context_and_float32():
    p = problems(3)
    p.X, p.y = p.X[:, :0], p.y[:, :0]
    traj = icsim.algorithms.get("logistic_damped_newton").run(p, steps=2)
    assert torch.equal(traj.iterates, torch.zeros(3, 3, 5, dtype=torch.float64))
    q = problems(3)
    q.X, q.y, q.X_query = q.X.float(), q.y.float(), q.X_query.float()
    for name in icsim.algorithms.names():
        if name.startswith("logistic_"):
            out = icsim.algorithms.get(name).run(q, steps=3)
            assert out.iterates.dtype == torch.float32 and torch.isfinite(out.iterates).all()


@pytest.mark.parametrize(
    "name, params",
    [
        ("logistic_damped_newton", {"mu": 0.0}),
        ("logistic_inexact_newton", {"mu": -1.0}),
        ("logistic_newton", {"mu": float("nan")}),
        ("logistic_gradient_descent", {"step_size": 0.0}),
        ("logistic_inexact_newton", {"inverse_init": "random"}),
        ("logistic_inexact_newton", {"order": 1}),
        ("logistic_inexact_newton", {"newton_schulz_steps": -1}),
    ],
)
def test_bad_hyperparameters(name, params):
    with pytest.raises(InputError):
        icsim.algorithms.get(name, **params)
