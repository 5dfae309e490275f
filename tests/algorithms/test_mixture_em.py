"""EM, gradient EM, symmetric EM, the posterior mean and the oracle against an independent
float64 per-problem NumPy implementation (≤ 1e-10 for every deterministic step), on
well- and ill-conditioned inputs."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax

import icsim
import icsim.algorithms as A
from icsim.algorithms.mixture_em import (
    align_sign,
    error_up_to_sign,
    label_aware_predictions,
    mixture_problem,
)
from icsim.errors import InputError

TOL = 1e-10


def batch(B=6, n=40, d=4, kappa=1.0, seed=0, **params):
    """A float64 mixture batch; with kappa > 1 the inputs are x ~ N(0, Σ), cond(Σ) = kappa."""
    task = icsim.tasks.get("mixture_linear_regression", dim=d, **params)
    b = task.sample(B, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if kappa > 1:
        scale = torch.tensor(np.geomspace(1, kappa**-0.5, d))
        coef = b.components[torch.arange(B)[:, None], b.labels]
        noise = b.ys - (b.xs * coef).sum(-1)
        xs = b.xs * scale
        b = dataclasses.replace(b, xs=xs, ys=(xs * coef).sum(-1) + noise)
    return b


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


# -- the independent NumPy reference: one problem at a time ----------------------------------


def np_em_step(X, y, betas, pi, sigma, gradient=None, update_weights=True):
    n, K = len(y), len(pi)
    logp = np.log(pi)[None, :] - (y[:, None] - X @ betas.T) ** 2 / (2 * sigma**2)
    r = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
    new = np.empty_like(betas)
    for k in range(K):
        if gradient is None:
            G = (X * r[:, k : k + 1]).T @ X
            new[k] = np.linalg.solve(G, X.T @ (r[:, k] * y))
        else:
            alpha, T = gradient
            b = betas[k].copy()
            for _ in range(T):
                b = b + alpha * X.T @ (r[:, k] * (y - X @ b)) / n
            new[k] = b
    return new, (r.mean(0) if update_weights else pi)


def np_symmetric_step(X, y, beta, sigma, gradient=None):
    w = np.tanh(y * (X @ beta) / sigma**2)
    if gradient is None:
        return np.linalg.solve(X.T @ X, X.T @ (w * y))
    alpha, T = gradient
    for _ in range(T):
        beta = beta + alpha * (X.T @ (w * y) - X.T @ (X @ beta)) / len(y)
    return beta


def np_spectral(X, y):
    M = (X * (y**2)[:, None]).T @ X / len(y)
    _, V = np.linalg.eigh(M)
    v = V[:, -1]
    return v * np.sign(v[np.argmax(np.abs(v))])


@pytest.mark.parametrize("kappa", [1.0, 1e3])
@pytest.mark.parametrize("gradient", [None, (0.7, 3)])
@pytest.mark.parametrize("update_weights", [True, False])
def test_em_and_gradient_em_equal_numpy(kappa, gradient, update_weights):
    b = batch(kappa=kappa, n_components=3, snr=2.0, seed=1)
    init = torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    common = dict(n_components=3, noise_std=1.0, initialization="given", initial=init)
    common["update_weights"] = update_weights
    if gradient is None:
        alg = A.get("mixture_em", **common)
    else:
        alg = A.get("mixture_gradient_em", step_size=gradient[0], inner_steps=gradient[1], **common)
    traj = alg.run(b, steps=4)
    p = b.split(b.n_points - 1)
    for i in range(6):
        X, y = p.X[i].numpy(), p.y[i].numpy()
        betas, pi = init[i].numpy(), np.full(3, 1 / 3)
        for t in range(1, 5):
            betas, pi = np_em_step(X, y, betas, pi, 1.0, gradient, update_weights)
            assert rel(traj.iterates[t, i], betas) <= TOL
        pred = p.X_query[i].numpy() @ betas.T @ pi
        assert rel(traj.predictions[-1, i], pred) <= TOL


@pytest.mark.parametrize("kappa", [1.0, 1e3])
@pytest.mark.parametrize("gradient", [None, (0.5, 4)])
def test_symmetric_em_equals_numpy_from_spectral_init(kappa, gradient):
    b = batch(kappa=kappa, snr=1.5, noise_std=0.7, seed=2)
    kw = {} if gradient is None else {"step_size": gradient[0], "inner_steps": gradient[1]}
    name = "symmetric_em" if gradient is None else "symmetric_gradient_em"
    traj = A.get(name, noise_std=0.7, initialization="spectral", **kw).run(b, steps=5)
    p = b.split(b.n_points - 1)
    for i in range(6):
        X, y = p.X[i].numpy(), p.y[i].numpy()
        scale = np.sqrt(max(np.mean(y**2) - 0.49, 0))
        beta = np_spectral(X, y) * scale
        assert rel(traj.iterates[0, i], beta) <= TOL
        for t in range(1, 6):
            beta = np_symmetric_step(X, y, beta, 0.7, gradient)
            assert rel(traj.iterates[t, i], beta) <= TOL
    assert (traj.predictions == 0).all()  # the symmetric model's Bayes prediction


def test_symmetric_gradient_step_is_the_tied_two_component_step():
    """w = r₁ − r₂ (π = ½, β₂ = −β₁), and the tied gradient is g₁ − g₂: one symmetric step of
    size α equals (β₁⁺ − β₂⁺)/2 of a K = 2 gradient step of size 2α from (β, −β)."""
    b = batch(seed=3, snr=2.0)
    beta0 = torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sym = A.get("symmetric_gradient_em", initialization="given", initial=beta0, step_size=0.3)
    full = A.get(
        "mixture_gradient_em",
        initialization="given",
        initial=torch.stack([beta0, -beta0], 1),
        step_size=0.6,
        update_weights=False,
    )
    s, f = sym.run(b, steps=1).iterates[1], full.run(b, steps=1).iterates[1]
    torch.testing.assert_close(s, (f[:, 0] - f[:, 1]) / 2, rtol=1e-12, atol=1e-12)


def test_gradient_m_step_converges_to_the_closed_form_m_step():
    b = batch(seed=4, n=60)
    beta0 = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    kw = dict(initialization="given", initial=beta0)
    em = A.get("symmetric_em", **kw).run(b, steps=1).iterates[1]
    gem = A.get("symmetric_gradient_em", step_size=0.5, inner_steps=300, **kw).run(b, steps=1)
    torch.testing.assert_close(gem.iterates[1], em, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_posterior_mean_equals_numpy(sigma):
    b = batch(B=8, n=7, n_components=5, mixing="per_prompt", noise_std=sigma, seed=5)
    alg = A.get("mixture_posterior_mean", noise_std=sigma)
    for k in (0, 1, 3, 6):
        traj = alg.run(b, n_context=k)
        comp = b.components[0].numpy()
        for i in range(8):
            X, y = b.xs[i, :k].numpy(), b.ys[i, :k].numpy()
            sse = ((y[:, None] - X @ comp.T) ** 2).sum(0)
            if sigma > 0:
                post = softmax(np.log(np.full(5, 0.2)) - sse / (2 * sigma**2))
            else:
                post = (sse <= sse.min() + 1e-8 * (y**2).sum() + 1e-300).astype(float)
                post /= post.sum()
            mean = post @ comp
            assert rel(traj.iterates[0, i], mean) <= TOL
            assert rel(traj.predictions[0, i], b.xs[i, k:].numpy() @ mean) <= TOL
    # noiseless, past a few points: the posterior puts all its mass on the true vector
    end = alg.run(b, n_context=6).iterates[0]
    torch.testing.assert_close(end, b.w_star) if sigma == 0 else None


def test_posterior_mean_beats_least_squares_and_oracle_is_the_floor():
    b = batch(B=2000, n=6, d=5, n_components=5, mixing="per_prompt", noise_std=1.0, seed=6)
    y = b.ys[:, -1:]
    mse = {
        name: (A.get(name, **kw).run(b).predictions[0] - y).square().mean().item()
        for name, kw in [
            ("mixture_posterior_mean", {}),
            ("least_squares", {}),
            ("mixture_oracle", {"knows": "components"}),
        ]
    }
    assert mse["mixture_oracle"] < mse["mixture_posterior_mean"] < mse["least_squares"]
    assert abs(mse["mixture_oracle"] - 1.0) < 0.1  # σ² alone


def test_oracle_equals_numpy_symmetric_and_general():
    b = batch(B=5, n=30, snr=2.0, seed=7)
    traj = A.get("mixture_oracle").run(b)
    p = mixture_problem(b, 29)
    for i in range(5):
        s = 1 - 2 * p.labels[i].numpy()
        beta = np.linalg.lstsq(p.X[i].numpy(), s * p.y[i].numpy(), rcond=None)[0]
        assert rel(traj.iterates[0, i, 0], beta) <= TOL
        q = (1 - 2 * p.labels_query[i].numpy()) * (p.X_query[i].numpy() @ beta)
        assert rel(traj.predictions[0, i], q) <= TOL
    g = batch(B=4, n=60, n_components=3, snr=2.0, seed=8)
    traj = A.get("mixture_oracle").run(g)
    p = mixture_problem(g, 59)
    for i in range(4):
        for k in range(3):
            on = p.labels[i].numpy() == k
            ref = np.linalg.lstsq(p.X[i].numpy()[on], p.y[i].numpy()[on], rcond=None)[0]
            assert rel(traj.iterates[0, i, k], ref) <= TOL


def test_batched_equals_per_problem_and_seeded_random_init():
    b = batch(B=5, n=30, seed=9)
    alg = A.get("mixture_em", seed=3)
    again = A.get("mixture_em", seed=3).run(b, steps=2)
    traj = alg.run(b, steps=2)
    torch.testing.assert_close(traj.iterates, again.iterates, rtol=0, atol=0)
    other = A.get("mixture_em", seed=4).run(b, steps=0)
    assert not torch.allclose(other.iterates[0], traj.iterates[0])
    given = A.get("mixture_em", initialization="given", initial=traj.iterates[0]).run(b, steps=2)
    for i in range(5):
        one = A.get("mixture_em", initialization="given", initial=traj.iterates[0, i : i + 1])
        single = one.run(b.rows(i, i + 1), steps=2)
        torch.testing.assert_close(single.iterates[:, 0], given.iterates[:, i], rtol=1e-12, atol=0)


def test_em_reaches_the_oracle_rate_at_high_snr_and_sign_helpers():
    b = batch(B=400, n=201, d=5, snr=4.0, seed=10)
    em = A.get("symmetric_em", initialization="spectral").run(b, steps=15).iterates[-1]
    oracle = A.get("mixture_oracle").run(b).iterates[0, :, 0]
    e_em, e_or = error_up_to_sign(em, b.w_star), error_up_to_sign(oracle, b.w_star)
    assert e_em.median() < 1.5 * e_or.median() and e_em.median() < 0.1
    ls = A.get("least_squares").run(b).iterates[0]
    assert error_up_to_sign(ls, b.w_star).median() > 0.5  # OLS averages the two components away
    p = mixture_problem(b, 200)
    pred = label_aware_predictions(align_sign(-em, b.w_star), p.X_query, p.labels_query)
    truth = label_aware_predictions(b.w_star, p.X_query, p.labels_query)
    assert (pred - truth).square().mean() < 0.05 * truth.square().mean()


@pytest.mark.parametrize(
    "name, params",
    [
        ("mixture_em", {"noise_std": 0.0}),
        ("mixture_em", {"n_components": 0}),
        ("mixture_em", {"initialization": "kmeans"}),
        ("mixture_em", {"initialization": "given"}),
        ("symmetric_em", {"seed": -1}),
        ("mixture_gradient_em", {"step_size": 0.0}),
        ("symmetric_gradient_em", {"inner_steps": 0}),
        ("mixture_posterior_mean", {"noise_std": -1.0}),
        ("mixture_oracle", {"knows": "everything"}),
    ],
)
def test_bad_hyperparameters_are_input_errors(name, params):
    with pytest.raises(InputError):
        A.get(name, **params)


def test_oracle_and_posterior_need_the_truth():
    p = batch(B=2, n=10).split(8)
    with pytest.raises(InputError, match="labels"):
        A.get("mixture_oracle").run(p)
    with pytest.raises(InputError, match="components"):
        A.get("mixture_posterior_mean").run(p)
    with pytest.raises(InputError, match="shape"):
        A.get("mixture_em", initialization="given", initial=torch.zeros(3, 4)).run(p)


@pytest.mark.parametrize("d, K", [(4, 3), (6, 1), (14, 2)])
def test_m_step_by_moments_and_by_weighted_x_equal_numpy(d, K):
    """The M-step's two routes (per-point moments where d <= 8K − 3, X weighted per step
    otherwise; `em_design`) give the same weighted least squares as NumPy, ill-conditioned X
    included."""
    from icsim.algorithms.mixture_steps import em_design, weighted_least_squares

    b = batch(B=3, n=40, d=d, kappa=1e3, n_components=K, seed=11)
    X, y = b.xs.double(), b.ys.double()
    r = torch.softmax(torch.randn(3, K, 40, generator=torch.Generator().manual_seed(0)), 1)
    r = r.double()
    by_moments = weighted_least_squares(X, y, r, em_design(X, y, K))
    by_x = weighted_least_squares(X, y, r, em_design(X, y, K, moments=False))
    assert (em_design(X, y, K).moments is None) == (d + 3 > 8 * K)
    for i in range(3):
        Xi, yi = X[i].numpy(), y[i].numpy()
        for k in range(K):
            rk = r[i, k].numpy()
            ref = np.linalg.solve((Xi * rk[:, None]).T @ Xi, Xi.T @ (rk * yi))
            assert rel(by_moments[i, k], ref) <= TOL and rel(by_x[i, k], ref) <= TOL
