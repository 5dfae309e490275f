"""The gd_plus_plus algorithm (weights in the original coordinates) against a float64 NumPy
run of GD++ on transformed tokens (von Oswald et al. 2023)."""

import numpy as np
import pytest
import torch

import icsim
from icsim.errors import InputError


def _numpy_gd_plus_plus(X, y, Xq, eta, gamma, steps):
    """Residuals r and inputs x of context and queries, updated from the same old values."""
    n = X.shape[1]
    X, Xq, r, rq = X.copy(), Xq.copy(), y.copy(), np.zeros(Xq.shape[:2])
    preds = [-rq]
    for _ in range(steps):
        Sigma = np.einsum("bnd,bne->bde", X, X) / n
        r, rq = (
            r - eta / n * np.einsum("bnd,bmd,bm->bn", X, X, r),
            rq - eta / n * np.einsum("bqd,bmd,bm->bq", Xq, X, r),
        )
        X, Xq = X - gamma * X @ Sigma, Xq - gamma * Xq @ Sigma
        preds.append(-rq)
    return np.stack(preds)


@pytest.mark.parametrize("condition_number", [1.0, 100.0])
@pytest.mark.parametrize("gamma", [0.0, 0.3])
def test_gd_plus_plus_matches_token_space_numpy(condition_number, gamma):
    task = icsim.tasks.get("linear_regression", dim=5, condition_number=condition_number)
    batch = task.sample(500, 14, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    n = 10
    alg = icsim.algorithms.get("gd_plus_plus", step_size=0.4, gamma=gamma)
    traj = alg.run(batch, 6, n_context=n)
    xs, ys = batch.xs.numpy(), batch.ys.numpy()
    expected = _numpy_gd_plus_plus(xs[:, :n], ys[:, :n], xs[:, n:], 0.4, gamma, 6)
    np.testing.assert_allclose(traj.predictions.numpy(), expected, rtol=1e-9, atol=1e-12)
    assert traj.iterates.shape == (7, 500, 5)


def test_gamma_zero_is_gradient_descent_and_gamma_matters():
    task = icsim.tasks.get("linear_regression", dim=4, condition_number=10.0)
    batch = task.sample(200, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    gd = icsim.algorithms.get("gradient_descent", step_size=0.2).run(batch, 5)
    pp0 = icsim.algorithms.get("gd_plus_plus", step_size=0.2, gamma=0.0).run(batch, 5)
    pp = icsim.algorithms.get("gd_plus_plus", step_size=0.2, gamma=0.2).run(batch, 5)
    torch.testing.assert_close(pp0.predictions, gd.predictions, rtol=1e-12, atol=1e-12)
    assert (pp.predictions[2:] - gd.predictions[2:]).abs().max() > 1e-3
    # One step of GD++ is one step of GD (the transform acts from the second step on).
    torch.testing.assert_close(pp.predictions[:2], gd.predictions[:2], rtol=1e-12, atol=1e-12)


def test_bad_hyperparameters():
    with pytest.raises(InputError, match="gamma must be >= 0"):
        icsim.algorithms.get("gd_plus_plus", gamma=-1.0)
    with pytest.raises(InputError, match="step_size must be > 0"):
        icsim.algorithms.get("gd_plus_plus", step_size=0.0)
