"""Spectral metrics against independent NumPy/SciPy/scikit-learn computations."""

import numpy as np
import scipy.linalg
import torch
from sklearn.metrics import adjusted_rand_score

from icsim.analysis.spectral_metrics import (
    abs_cosine,
    eigenvalue_relative_error,
    misclustering_up_to_sign,
    subspace_distance,
)


def test_abs_cosine_is_sign_free():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 4, 3))
    got = abs_cosine(torch.tensor(a), -torch.tensor(b)).numpy()
    want = np.abs((a * b).sum(1)) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_subspace_distance_against_scipy_principal_angles():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 7, 3)), rng.normal(size=(6, 7, 3))
    got = subspace_distance(torch.tensor(a), torch.tensor(b)).numpy()
    want = [np.sin(scipy.linalg.subspace_angles(a[i], b[i]).max()) for i in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    mixed = a @ rng.normal(size=(3, 3))  # same span, another basis
    np.testing.assert_allclose(
        subspace_distance(torch.tensor(mixed), torch.tensor(a)), 0, atol=1e-7
    )


def test_eigenvalue_relative_error():
    truth = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)
    got = eigenvalue_relative_error(torch.tensor([1.1, -2.0, 0.5], dtype=torch.float64), truth)
    np.testing.assert_allclose(got.numpy(), [0.1, 1.0, 0.5], rtol=1e-12)


def test_misclustering_up_to_sign_and_ari():
    rng = np.random.default_rng(2)
    truth = np.where(rng.random((50, 30)) < 0.5, -1.0, 1.0)
    flips = rng.random((50, 30)) < rng.random((50, 1)) * 0.6
    pred = np.where(flips, -truth, truth) * rng.choice([-1.0, 1.0], size=(50, 1))
    got = misclustering_up_to_sign(torch.tensor(pred), torch.tensor(truth)).numpy()
    want = [min(np.mean(p != t), np.mean(p != -t)) for p, t in zip(pred, truth)]
    np.testing.assert_allclose(got, want)
    # a labelling with no misclustering is a perfect one for scikit-learn's ARI too
    perfect = [i for i in range(50) if got[i] == 0]
    assert all(adjusted_rand_score(truth[i], pred[i]) == 1.0 for i in perfect)
