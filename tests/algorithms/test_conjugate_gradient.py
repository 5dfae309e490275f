import numpy as np
import pytest
import torch

import icsim.algorithms as A
from icsim.errors import InputError

from ._problems import as_np, problems, rel_err


def lstsq(X, y):
    return np.stack([np.linalg.lstsq(X[b], y[b], rcond=None)[0] for b in range(len(X))])


@pytest.mark.parametrize(
    "n, kappa, extra",
    # d = 8, rank = min(n, d). Exact arithmetic needs no extra step; in floating point the loss
    # of orthogonality costs a few when X is ill-conditioned (κ = 100, or square X whose
    # condition number reaches 1e3-1e5): 20 seeds × 12 problems needed at most 2 and 4.
    [(30, 1.0, 0), (5, 1.0, 0), (5, 100.0, 0), (30, 100.0, 2), (8, 1.0, 4), (8, 100.0, 4)],
)
def test_reaches_least_squares_within_rank_steps(n, kappa, extra):
    p = problems(n=n, kappa=kappa, noise=0.1, seed=n)
    wls = lstsq(as_np(p.X), as_np(p.y))
    rank = min(n, 8)
    traj = A.get("conjugate_gradient").run(p, steps=3 * 8)
    assert rel_err(as_np(traj.iterates[rank - 1]), wls).max() > 1e-6  # not done one step early
    assert rel_err(as_np(traj.iterates[rank + extra]), wls).max() < 1e-8
    # once converged a problem stays put: no 0/0 and no drift
    assert torch.isfinite(traj.iterates).all()
    assert torch.equal(traj.iterates[-1], traj.iterates[-2])
    assert rel_err(as_np(traj.iterates[-1]), wls).max() < 1e-8


def test_iterates_minimise_the_residual_over_the_krylov_space():
    """CGNR's w_k = argmin {‖Xw − y‖ : w ∈ span(b, Ab, …, A^{k−1}b)}, A = XᵀX, b = Xᵀy."""
    p = problems(n=20, kappa=100.0, noise=0.1, seed=7)
    X, y = as_np(p.X), as_np(p.y)
    traj = A.get("conjugate_gradient").run(p, steps=4)
    for b in range(len(X)):
        Amat, rhs = X[b].T @ X[b], X[b].T @ y[b]
        K = [rhs]
        for k in range(1, 5):
            Q, _ = np.linalg.qr(np.stack(K, axis=1))  # orthonormal basis of the Krylov space
            c = np.linalg.lstsq(X[b] @ Q, y[b], rcond=None)[0]
            np.testing.assert_allclose(as_np(traj.iterates[k, b]), Q @ c, rtol=1e-7, atol=1e-9)
            K.append(Amat @ K[-1])


def test_zero_labels_and_no_context_stay_at_zero():
    p = problems(n=10, seed=8)
    p.y[:3] = 0.0
    traj = A.get("conjugate_gradient").run(p, steps=12)
    assert torch.isfinite(traj.iterates).all()
    assert torch.equal(traj.iterates[:, :3], torch.zeros_like(traj.iterates[:, :3]))
    wls = lstsq(as_np(p.X[3:]), as_np(p.y[3:]))
    assert rel_err(as_np(traj.iterates[-1, 3:]), wls).max() < 1e-8
    traj = A.get("conjugate_gradient").run(problems(n=0), steps=3)
    assert torch.equal(traj.predictions, torch.zeros_like(traj.predictions))


def test_tol():
    p = problems(n=30, kappa=100.0, seed=9)
    wls = lstsq(as_np(p.X), as_np(p.y))
    loose = A.get("conjugate_gradient", tol=1e-2).run(p, steps=16)
    err = rel_err(as_np(loose.iterates[-1]), wls)
    assert torch.equal(loose.iterates[-1], loose.iterates[-4])  # stopped early ...
    assert err.max() > 1e-10 and err.max() < 1  # ... at a rough solution
    with pytest.raises(InputError, match="tol"):
        A.get("conjugate_gradient", tol=-1.0)
