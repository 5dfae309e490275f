"""The spectral tasks against independent NumPy computations."""

import numpy as np
import pytest
import torch

import icsim.tasks
from icsim.errors import InputError


def sample(name="pca", batch=6, n=40, seed=0, dtype=torch.float64, **params):
    g = torch.Generator().manual_seed(seed)
    return icsim.tasks.get(name, **params).sample(batch, n, generator=g, dtype=dtype)


@pytest.mark.parametrize("params", [{}, {"noise_std": 0.3}, {"gap": 0.05, "k": 2}])
def test_pca_targets_are_top_eigenpairs_of_the_sample_covariance(params):
    b = sample(dim=6, **params)
    k = b.eigenvectors.shape[-1]
    for i in range(b.batch_size):
        x = b.xs[i].numpy()
        cov = x.T @ x / x.shape[0]
        lam, vec = np.linalg.eigh(cov)
        np.testing.assert_allclose(b.sample_covariance[i].numpy(), cov, atol=1e-12)
        np.testing.assert_allclose(b.eigenvalues[i].numpy(), lam[::-1][:k], rtol=1e-10)
        cos = np.abs(np.sum(b.eigenvectors[i].numpy() * vec[:, ::-1][:, :k], axis=0))
        np.testing.assert_allclose(cos, 1.0, atol=1e-8)
        # sign convention: the largest-|.| entry of every eigenvector is positive
        v = b.eigenvectors[i].numpy()
        assert np.all(v[np.abs(v).argmax(0), np.arange(k)] > 0)


def test_pca_planted_spectrum_population_and_sample_converge():
    b = sample(batch=2, n=20000, dim=4, k=2, gap=2.0)
    lam = np.linalg.eigvalsh(b.Sigma[0].numpy())[::-1]
    np.testing.assert_allclose(lam, [5.0, 3.0, 1.0, 0.5], rtol=1e-10)
    np.testing.assert_allclose(b.eigenvalues[0].numpy(), [5.0, 3.0], rtol=0.05)
    u = b.population_eigenvectors[0].numpy()
    np.testing.assert_allclose(u.T @ u, np.eye(4), atol=1e-12)


def test_pca_given_eigenvalues_and_reproducible():
    a = sample(dim=3, k=1, eigenvalues=(3.0, 1.0, 1.0), seed=5)
    b = sample(dim=3, k=1, eigenvalues=(3.0, 1.0, 1.0), seed=5)
    assert torch.equal(a.xs, b.xs) and a.xs.shape == (6, 40, 3) and a.ys.shape == (6, 40)
    f = sample(dim=3, k=1, dtype=torch.float32)
    assert f.xs.dtype == f.eigenvectors.dtype == torch.float32


@pytest.mark.parametrize(
    "params",
    [
        {"dim": 3, "k": 4},
        {"gap": 0.0},
        {"dim": 3, "k": 1, "eigenvalues": (1.0, 1.0, 0.5)},
        {"dim": 3, "k": 1, "eigenvalues": (1.0, 2.0, 0.5)},
        {"dim": 3, "eigenvalues": (1.0, 0.5)},
        {"noise_std": -1.0},
    ],
)
def test_pca_bad_input(params):
    with pytest.raises(InputError):
        icsim.tasks.get("pca", **params)


def test_pca_needs_points():
    with pytest.raises(InputError, match="n_points"):
        icsim.tasks.get("pca").sample(2, 0)


def test_spectral_clustering_mixture():
    b = sample("spectral_clustering", batch=4, n=5000, dim=3, separation=6.0, noise_std=0.5)
    assert set(b.ys.unique().tolist()) == {-1.0, 1.0}
    np.testing.assert_allclose(2 * b.mu.norm(dim=-1).numpy(), 6.0, rtol=1e-12)
    resid = b.xs - b.ys[..., None] * b.mu[:, None]
    assert abs(resid.std().item() - 0.5) < 0.02
    assert abs(b.ys.mean().item()) < 0.05
