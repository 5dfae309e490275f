"""The sparse_recovery task: sparsity, measurements, ensembles (gaussian, correlated, fixed),
shared supports, reproducibility and input errors."""

import numpy as np
import pytest
import scipy.linalg
import torch

import icsim.tasks
from icsim.errors import InputError


def sample(batch=64, n=12, seed=0, dtype=torch.float64, **params):
    task = icsim.tasks.get("sparse_recovery", **params)
    return task, task.sample(batch, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_registered_and_truth():
    assert "sparse_recovery" in icsim.tasks.names()
    _, b = sample(dim=15, sparsity=4)
    assert b.xs.shape == (64, 12, 15) and b.ys.shape == (64, 12)
    assert b.beta_star is b.w_star
    assert b.support.dtype == torch.bool and (b.support.sum(1) == 4).all()
    assert (b.beta_star[~b.support] == 0).all() and (b.beta_star[b.support] != 0).all()
    # noiseless: y = Xβ*, checked in NumPy
    xs, beta = b.xs.numpy(), b.beta_star.numpy()
    np.testing.assert_allclose(b.ys.numpy(), np.einsum("bnd,bd->bn", xs, beta), atol=1e-12)


def test_noise_and_scales():
    _, b = sample(batch=400, n=200, dim=10, sparsity=2, noise_std=0.3, x_scale=0.5, beta_scale=2)
    resid = b.ys - torch.einsum("bnd,bd->bn", b.xs, b.beta_star)
    assert abs(resid.std().item() - 0.3) < 0.01
    assert abs(b.xs.std().item() - 0.5) < 0.01
    assert abs(b.beta_star[b.support].std().item() - 2.0) < 0.15


def test_reproducible_by_seed():
    _, a = sample(seed=3, ensemble="correlated")
    _, b = sample(seed=3, ensemble="correlated")
    _, c = sample(seed=4, ensemble="correlated")
    assert torch.equal(a.xs, b.xs) and torch.equal(a.ys, b.ys)
    assert not torch.equal(a.xs, c.xs)


def test_uniform_support_marginals():
    _, b = sample(batch=20000, n=2, dim=10, sparsity=3)
    freq = b.support.double().mean(0)
    assert (freq - 0.3).abs().max() < 0.02


def test_correlated_rows_have_toeplitz_covariance():
    d, rho = 6, 0.8
    _, b = sample(batch=2000, n=100, dim=d, ensemble="correlated", rho=rho)
    rows = b.xs.reshape(-1, d).numpy()
    emp = rows.T @ rows / len(rows)
    np.testing.assert_allclose(emp, scipy.linalg.toeplitz(rho ** np.arange(d)), atol=0.02)


def test_fixed_matrix_shared_across_prompts_calls_and_lengths():
    task, a = sample(batch=8, n=10, seed=0, ensemble="fixed", matrix_seed=5)
    _, b = sample(batch=8, n=30, seed=1, ensemble="fixed", matrix_seed=5)
    assert (a.xs == a.xs[:1]).all()  # one matrix for every prompt
    assert torch.equal(a.xs[0], b.xs[0, :10])  # the same matrix whatever the seed and n
    assert torch.equal(task.fixed_matrices(10)[0], task.fixed_matrices(100)[0, :10])
    _, other = sample(batch=8, n=10, ensemble="fixed", matrix_seed=6)
    assert not torch.allclose(a.xs[0], other.xs[0])
    assert (a.matrix_index == 0).all()
    # float32 prompts hold the same matrix, rounded
    _, f = sample(batch=8, n=10, ensemble="fixed", matrix_seed=5, dtype=torch.float32)
    assert torch.equal(f.xs[0], a.xs[0].float())


def test_fixed_rows_leave_the_query_fresh():
    _, b = sample(batch=8, n=11, ensemble="fixed", fixed_rows=10)
    assert (b.xs[:, :10] == b.xs[:1, :10]).all()
    assert not torch.allclose(b.xs[0, 10], b.xs[1, 10])


def test_family_of_matrices_and_perturbation():
    task, b = sample(batch=300, n=8, ensemble="fixed", n_matrices=3, dim=5)
    mats = task.fixed_matrices(8).to(b.xs.dtype)
    assert set(b.matrix_index.tolist()) == {0, 1, 2}
    assert torch.equal(b.xs, mats[b.matrix_index])
    delta = 0.6
    task, b = sample(batch=500, n=50, ensemble="fixed", perturbation=delta, dim=5)
    base = task.fixed_matrices(50)[0]
    fresh = (b.xs - (1 - delta**2) ** 0.5 * base) / delta
    assert abs(fresh.std().item() - 1.0) < 0.02 and abs(fresh.mean().item()) < 0.02
    assert abs(b.xs.var(0).mean().item() - delta**2) < 0.02  # spread across prompts = δ²


def test_fixed_with_correlated_rows():
    task = icsim.tasks.get("sparse_recovery", dim=4, ensemble="fixed", rho=0.7, n_matrices=500)
    rows = task.fixed_matrices(200).reshape(-1, 4).numpy()
    np.testing.assert_allclose(
        rows.T @ rows / len(rows), scipy.linalg.toeplitz(0.7 ** np.arange(4)), atol=0.02
    )


def test_shared_supports_come_from_a_fixed_set():
    task, b = sample(batch=400, dim=12, sparsity=3, supports="shared", n_supports=5)
    allowed = {tuple(s.tolist()) for s in task.support_set()}
    seen = {tuple(s.tolist()) for s in b.support}
    assert seen == allowed and len(allowed) == 5
    _, c = sample(batch=400, dim=12, sparsity=3, supports="shared", n_supports=5, seed=9)
    assert {tuple(s.tolist()) for s in c.support} == allowed  # fixed by support_seed


def test_active_dims_zero_trailing_coordinates():
    task = icsim.tasks.get("sparse_recovery", dim=8)
    b = task.sample(4, 5, generator=torch.Generator().manual_seed(0), active_dims=3)
    assert (b.xs[..., 3:] == 0).all() and (b.xs[..., :3] != 0).all()


@pytest.mark.parametrize(
    "params",
    [
        {"sparsity": 30, "dim": 20},
        {"sparsity": 0},
        {"rho": 0.5},  # gaussian takes no rho
        {"ensemble": "correlated", "rho": 1.0},
        {"n_matrices": 2},
        {"perturbation": 0.5},
        {"ensemble": "fixed", "perturbation": 1.5},
        {"fixed_rows": 3},
        {"ensemble": "orthogonal"},
        {"supports": "blocks"},
        {"noise_std": -1},
        {"x_scale": 0},
        {"matrix_seed": -1},
    ],
)
def test_bad_parameters_raise_input_error(params):
    with pytest.raises(InputError):
        icsim.tasks.get("sparse_recovery", **params)


def test_unknown_parameter_is_named():
    with pytest.raises(InputError, match="matrix_sed"):
        icsim.tasks.get("sparse_recovery", matrix_sed=1)
