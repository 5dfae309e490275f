import numpy as np
import pytest
import torch

import icsim.algorithms as A
from icsim.errors import InputError

from ._problems import as_np, problems


def test_averaging_matches_numpy():
    p = problems(n=9, kappa=100.0, noise=0.1, seed=1)
    X, y, Xq = as_np(p.X), as_np(p.y), as_np(p.X_query)
    traj = A.get("averaging").run(p, steps=2)
    for b in range(len(X)):
        w = sum(y[b][i] * X[b][i] for i in range(len(y[b]))) / len(y[b])
        np.testing.assert_allclose(as_np(traj.iterates[2, b]), w, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(as_np(traj.predictions[0, b]), Xq[b] @ w, rtol=1e-12)


def np_knn(X, y, Xq, k):
    out = np.zeros(Xq.shape[:2])
    for b in range(len(X)):
        for j, q in enumerate(Xq[b]):
            if len(X[b]) == 0:
                continue
            dist = np.sqrt(((X[b] - q) ** 2).sum(1))
            out[b, j] = y[b][np.argsort(dist)[:k]].mean()
    return out


@pytest.mark.parametrize("n, k", [(20, 3), (20, 1), (2, 3), (3, 3), (0, 3)])
def test_nearest_neighbours_matches_numpy(n, k):
    p = problems(n=n, m=6, kappa=100.0, seed=n + k)
    ref = np_knn(as_np(p.X), as_np(p.y), as_np(p.X_query), k)
    traj = A.get("nearest_neighbours", n_neighbors=k).run(p)
    np.testing.assert_allclose(as_np(traj.predictions[0]), ref, rtol=1e-12, atol=1e-14)
    if n == 0:
        assert not ref.any()


def test_nearest_neighbours_has_no_weights():
    with pytest.raises(NotImplementedError):
        A.get("nearest_neighbours").weights(torch.zeros(1, 1))
    with pytest.raises(InputError, match="n_neighbors"):
        A.get("nearest_neighbours", n_neighbors=0)


def test_zero_predicts_zero():
    p = problems(n=5)
    traj = A.get("zero").run(p, steps=1)
    assert traj.iterates.shape == (2, 12, 8)
    assert torch.equal(traj.predictions, torch.zeros(2, 12, 4, dtype=torch.float64))


@pytest.mark.parametrize("name", ["averaging", "nearest_neighbours", "zero"])
def test_closed_form_and_no_context(name):
    alg = A.get(name)
    assert alg.closed_form
    traj = alg.run(problems(n=0, m=2), steps=2)
    assert torch.equal(traj.predictions, torch.zeros_like(traj.predictions))
    traj = alg.run(problems(n=7), steps=2)
    assert torch.equal(traj.predictions[0], traj.predictions[2])
