"""Spectral solvers against float64 NumPy: numpy.linalg.eigh and independent NumPy loops."""

import numpy as np
import pytest
import torch

import icsim.algorithms
import icsim.tasks
from icsim.analysis.spectral_metrics import abs_cosine, misclustering_up_to_sign
from icsim.errors import InputError


def pca_batch(batch=1000, n=200, seed=0, **params):
    g = torch.Generator().manual_seed(seed)
    return icsim.tasks.get("pca", **params).sample(batch, n, generator=g, dtype=torch.float64)


def numpy_power_method(X, start, tau):
    """Deflated power method, one problem, written from the textbook independently."""
    cov = X.T @ X / X.shape[0]
    V = start / np.linalg.norm(start, axis=0)
    out = [V.copy()]
    for j in range(V.shape[1]):
        for _ in range(tau):
            u = cov @ V[:, j]
            V[:, j] = u / np.linalg.norm(u)
            out.append(V.copy())
        lam = V[:, j] @ cov @ V[:, j]
        cov = cov - lam * np.outer(V[:, j], V[:, j])
    return np.stack(out)


def numpy_subspace_iteration(X, start, steps, ritz=False):
    cov = X.T @ X / X.shape[0]

    def orth(M):
        q, r = np.linalg.qr(M)
        return q * np.sign(np.diag(r))

    V = orth(start)
    out = [V]
    for _ in range(steps):
        V = orth(cov @ V)
        if ritz:  # rotate to the eigenvectors of VᵀΣV, descending, largest-|·| entry positive
            V = V @ np.linalg.eigh(V.T @ cov @ V)[1][:, ::-1]
            V = V * np.sign(V[np.abs(V).argmax(0), np.arange(V.shape[1])])
        out.append(V)
    return np.stack(out)


def test_converged_vectors_match_numpy_eigh_on_1000_problems():
    b = pca_batch(n=1000, dim=10, k=3, gap=2.0)
    lam = torch.linalg.eigvalsh(b.sample_covariance).flip(-1)
    assert (lam[:, 1:4] / lam[:, :3]).max() < 0.95  # every sample gap open: 250 steps suffice
    for algo in (
        icsim.algorithms.get("power_method", k=3, iterations=250),
        icsim.algorithms.get("subspace_iteration", k=3, iterations=250),
    ):
        traj = algo.run(b)
        lam, vec = np.linalg.eigh(b.xs.transpose(1, 2).numpy() @ b.xs.numpy() / b.n_points)
        ref = torch.tensor(vec[..., ::-1][..., :3].copy())
        cos = abs_cosine(traj.iterates[-1], ref)
        assert cos.min() >= 1 - 1e-10, (algo.name, cos.min())
        rel = (traj.predictions[-1] - torch.tensor(lam[..., ::-1][..., :3].copy())).abs()
        assert (rel / torch.tensor(lam[..., ::-1][..., :3].copy())).max() < 1e-10


SPECTRA = [
    {"dim": 6, "k": 3, "gap": 0.5},
    # ill-conditioned: eigenvalues over 12 orders of magnitude
    {"dim": 6, "k": 2, "eigenvalues": (1e4, 1e2, 1.0, 1e-2, 1e-5, 1e-8)},
    # small gap: λ₂/λ₁ = 0.999, slow convergence, iterates must still agree step by step
    {"dim": 5, "k": 2, "eigenvalues": (1.0, 0.999, 0.5, 0.2, 0.1)},
]


@pytest.mark.parametrize("params", SPECTRA)
def test_every_iterate_matches_an_independent_numpy_loop(params):
    b = pca_batch(batch=40, n=50, seed=1, **params)
    k, tau = params["k"], 7
    pm = icsim.algorithms.get("power_method", k=k, iterations=tau, seed=3).run(b)
    si = icsim.algorithms.get("subspace_iteration", k=k, iterations=tau, seed=3).run(b)
    assert pm.iterates.shape == (k * tau + 1, 40, params["dim"], k) and pm.steps == k * tau
    g = torch.Generator().manual_seed(3)
    start = torch.randn(40, params["dim"], k, generator=g, dtype=torch.float64).numpy()
    for i in range(0, 40, 7):
        X = b.xs[i].numpy()
        want = numpy_power_method(X, start[i], tau)
        np.testing.assert_allclose(pm.iterates[:, i].numpy(), want, atol=1e-12)
        want = numpy_subspace_iteration(X, start[i], tau)
        np.testing.assert_allclose(si.iterates[:, i].numpy(), want, atol=1e-12)


def test_small_gap_converges_at_the_predicted_rate():
    """tan θ_t between v_t and the top eigenvector falls as (λ₂/λ₁)^t (here of Σ̂ itself)."""
    b = pca_batch(batch=64, n=400, seed=2, dim=4, k=1, eigenvalues=(1.0, 0.9, 0.3, 0.1))
    traj = icsim.algorithms.get("power_method", k=1, iterations=30).run(b)
    lam = torch.linalg.eigvalsh(b.sample_covariance).flip(-1)
    cos = abs_cosine(traj.iterates[:, :, :, :1], b.eigenvectors)[..., 0]
    tan = (1 - cos.square()).clamp(min=0).sqrt() / cos
    rate = (tan[30] / tan[15]) ** (1 / 15)
    torch.testing.assert_close(rate, lam[:, 1] / lam[:, 0], rtol=0.02, atol=0)


def test_given_start_vectors_and_eigh_reference():
    b = pca_batch(batch=5, n=30, dim=4, k=2)
    start = torch.eye(4, 2, dtype=torch.float64)
    traj = icsim.algorithms.get("power_method", k=2, iterations=3, start=start).run(b, steps=0)
    torch.testing.assert_close(traj.iterates[0], start.expand(5, 4, 2))
    exact = icsim.algorithms.get("eigh", k=2).run(b)
    torch.testing.assert_close(exact.iterates[-1], b.eigenvectors)
    torch.testing.assert_close(exact.predictions[-1], b.eigenvalues)
    with pytest.raises(InputError, match="start"):
        icsim.algorithms.get("power_method", k=2, start=torch.ones(3, 2)).run(b)
    with pytest.raises(InputError, match="k must be"):
        icsim.algorithms.get("power_method", k=5).run(b)


def test_spectral_clustering_matches_the_gram_eigenvector():
    g = torch.Generator().manual_seed(0)
    task = icsim.tasks.get("spectral_clustering", dim=5, separation=6.0)
    b = task.sample(200, 60, generator=g, dtype=torch.float64)
    traj = icsim.algorithms.get("spectral_clustering", iterations=200).run(b)
    X = b.xs.numpy()
    _, vec = np.linalg.eigh(X @ X.transpose(0, 2, 1))
    lead = torch.tensor(np.sign(vec[..., -1]))
    assert misclustering_up_to_sign(traj.predictions[-1], lead).max() == 0
    err = misclustering_up_to_sign(traj.predictions[-1], b.labels)
    assert err.mean() < 0.02  # separation 6σ: Bayes error Φ(−3) ≈ 0.13%, plus estimation
    assert traj.predictions.shape == (201, 200, 60)


@pytest.mark.parametrize("params", SPECTRA)
def test_squaring_and_blocked_qr_give_the_step_by_step_iterates(params):
    """In exact arithmetic: the power method by squaring, step t of vector j = iterate 2^t of the
    step-by-step one; subspace iteration with one QR per m products (by m products or by Σ^m from
    squaring) = the every-step QR's iterate m·s. Rayleigh–Ritz matches an independent NumPy loop."""
    b = pca_batch(batch=40, n=50, seed=1, **params)
    k, tau = params["k"], 8
    step = icsim.algorithms.get("power_method", k=k, iterations=tau, seed=3).run(b).iterates
    sq = icsim.algorithms.get("power_method", k=k, iterations=tau, seed=3, squaring=True).run(b)
    n = 4  # log2(8) + 1 steps per vector
    assert sq.steps == k * n
    for j in range(k):
        for t in range(n):
            want = step[j * tau + 2**t]
            torch.testing.assert_close(sq.iterates[1 + j * n + t], want, atol=1e-10, rtol=0)
    m = 2 if "eigenvalues" in params and params["eigenvalues"][0] == 1e4 else 4  # (λ₁/λ₂)^m
    si = icsim.algorithms.get("subspace_iteration", k=k, iterations=tau, seed=3).run(b).iterates
    for squaring in (False, True):
        blocked = icsim.algorithms.get(
            "subspace_iteration", k=k, iterations=tau, every=m, squaring=squaring, seed=3
        ).run(b)
        assert blocked.steps == tau // m
        torch.testing.assert_close(blocked.iterates, si[::m], atol=1e-10, rtol=0)
    for ritz in (False, True):  # one step of τ products, a QR every m: the same iterates
        every_m = icsim.algorithms.get(
            "subspace_iteration", k=k, iterations=tau, every=m, squaring=True, ritz=ritz, seed=3
        ).run(b)
        one = icsim.algorithms.get(
            "subspace_iteration", k=k, iterations=tau, every=tau, qr_every=m, squaring=True,
            ritz=ritz, seed=3,
        ).run(b)  # fmt: skip
        torch.testing.assert_close(one.iterates, every_m.iterates[:: tau // m], atol=1e-10, rtol=0)
        torch.testing.assert_close(one.predictions[-1], every_m.predictions[-1], atol=1e-10, rtol=0)
    ritz = icsim.algorithms.get("subspace_iteration", k=k, iterations=tau, seed=3, ritz=True)
    traj = ritz.run(b)
    g = torch.Generator().manual_seed(3)
    start = torch.randn(40, params["dim"], k, generator=g, dtype=torch.float64).numpy()
    for i in range(0, 40, 7):
        want = numpy_subspace_iteration(b.xs[i].numpy(), start[i], tau, ritz=True)
        np.testing.assert_allclose(traj.iterates[:, i].numpy(), want, atol=1e-12)


def test_ritz_and_squaring_converge_where_the_top_gap_is_tiny():
    """λ₁/λ₂ = 0.9995 (population): plain iterations barely move in 64 steps, Rayleigh–Ritz
    converges at λ₃/λ₂ ≈ 0.5 (to numpy.linalg.eigh on 1000 problems); the power method by
    squaring reaches τ = 2^16 in 16 squarings."""
    b = pca_batch(n=1000, dim=6, k=2, eigenvalues=(2.0, 1.999, 1.0, 0.3, 0.2, 0.1))
    lam, vec = np.linalg.eigh(b.xs.transpose(1, 2).numpy() @ b.xs.numpy() / b.n_points)
    ref, lam = (
        torch.tensor(vec[..., ::-1][..., :2].copy()),
        torch.tensor(lam[..., ::-1][..., :2].copy()),
    )
    fast = icsim.algorithms.get(
        "subspace_iteration", k=2, iterations=64, every=8, squaring=True, ritz=True
    ).run(b)
    assert abs_cosine(fast.iterates[-1], ref).min() >= 1 - 1e-10
    assert ((fast.predictions[-1] - lam).abs() / lam).max() < 1e-12
    plain = icsim.algorithms.get("subspace_iteration", k=2, iterations=64, every=8).run(b)
    assert abs_cosine(plain.iterates[-1], ref).min() < 0.99  # the control: without Ritz
    pm = icsim.algorithms.get("power_method", k=2, iterations=2**16, squaring=True).run(b)
    gap = (lam[:, 0] - lam[:, 1]) / lam[:, 0]
    ok = gap > 1e-3  # (1 − 1e-3)^65536 ≈ 4e-29: converged wherever the sample gap is not tiny
    assert ok.float().mean() > 0.9
    assert abs_cosine(pm.iterates[-1], ref)[ok].min() >= 1 - 1e-10


def test_squaring_and_blocking_reject_bad_settings():
    with pytest.raises(InputError, match="power of 2"):
        icsim.algorithms.get("power_method", iterations=20, squaring=True)
    with pytest.raises(InputError, match="multiple of every"):
        icsim.algorithms.get("subspace_iteration", iterations=20, every=8)
    with pytest.raises(InputError, match="power of 2"):
        icsim.algorithms.get("subspace_iteration", iterations=24, every=6, squaring=True)
    with pytest.raises(InputError, match="multiple of qr_every"):
        icsim.algorithms.get("subspace_iteration", iterations=24, every=24, qr_every=5)
