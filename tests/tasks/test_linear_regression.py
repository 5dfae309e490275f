"""The linear-regression samplers against independent NumPy statistics."""

import numpy as np
import pytest
import torch

import icsim.tasks
from icsim.errors import InputError


def sample(batch=8, n=16, seed=0, dtype=torch.float64, active_dims=None, **params):
    task = icsim.tasks.get("linear_regression", **params)
    g = torch.Generator().manual_seed(seed)
    return task.sample(batch, n, generator=g, dtype=dtype, active_dims=active_dims)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kappa", [1.0, 100.0])
def test_shapes_dtype_device(dtype, kappa):
    b = sample(batch=5, n=7, dim=4, condition_number=kappa, dtype=dtype)
    assert b.xs.shape == (5, 7, 4) and b.ys.shape == (5, 7)
    assert b.w_star.shape == (5, 4) and b.Sigma.shape == (5, 4, 4)
    for t in (b.xs, b.ys, b.w_star, b.Sigma):
        assert t.dtype == dtype and t.device.type == "cpu"
    assert (b.batch_size, b.n_points, b.dim, b.task) == (5, 7, 4, "linear_regression")
    # noiseless labels are exactly w*ᵀx
    torch.testing.assert_close(b.ys, torch.einsum("bnd,bd->bn", b.xs, b.w_star))


@pytest.mark.parametrize("params", [{}, {"condition_number": 100.0}, {"noise_std": 0.5}])
def test_same_seed_same_batch_different_seed_different(params):
    a, b, c = sample(seed=3, **params), sample(seed=3, **params), sample(seed=4, **params)
    for name in ("xs", "ys", "w_star", "Sigma"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.xs, c.xs) and not torch.equal(a.w_star, c.w_star)
    if params.get("condition_number"):
        assert not torch.equal(a.Sigma, c.Sigma)


@pytest.mark.parametrize("kappa", [1.0, 100.0])
def test_empirical_covariance_matches_sigma(kappa):
    """Whitened sample covariance Σ^{-1/2}(XᵀX/n)Σ^{-1/2} of n = 20000 points is the sample
    covariance of N(0, I): its entries have standard deviation <= sqrt(2/n) = 0.01, so 0.06
    is 6 standard deviations (whitening makes the check as strict on the λ_max/κ directions
    as on the top ones)."""
    n = 20_000
    b = sample(batch=4, n=n, dim=5, condition_number=kappa, max_eigenvalue=2.0)
    X, Sigma = b.xs.numpy(), b.Sigma.numpy()
    for i in range(4):
        lam, U = np.linalg.eigh(Sigma[i])
        inv_sqrt = U @ np.diag(lam**-0.5) @ U.T
        C = X[i].T @ X[i] / n
        np.testing.assert_allclose(inv_sqrt @ C @ inv_sqrt, np.eye(5), atol=0.06)
        assert np.abs(C - Sigma[i]).max() > 1e-4  # a real sample, not Σ itself


@pytest.mark.parametrize("spacing", ["geometric", "linear"])
@pytest.mark.parametrize("kappa", [1.0, 10.0, 100.0])
def test_condition_number_and_spectrum(kappa, spacing):
    b = sample(
        batch=6, dim=7, condition_number=kappa, max_eigenvalue=3.0, eigenvalue_spacing=spacing
    )
    Sigma = b.Sigma.numpy()
    np.testing.assert_allclose(Sigma, Sigma.transpose(0, 2, 1), atol=1e-12)
    np.testing.assert_allclose(np.linalg.cond(Sigma), kappa, rtol=1e-8)
    lam = np.linalg.eigvalsh(Sigma)[:, ::-1]  # descending
    t = np.linspace(0, 1, 7)
    expected = 3.0 * kappa**-t if spacing == "geometric" else np.linspace(3.0, 3.0 / kappa, 7)
    np.testing.assert_allclose(lam, np.broadcast_to(expected, lam.shape), rtol=1e-8)
    if kappa > 1:  # a fresh Haar rotation per prompt (per sequence, as the paper)
        assert np.abs(Sigma[0] - Sigma[1]).max() > 1e-3


@pytest.mark.parametrize("s", [1, 3, 10])
def test_sparse_w_star_has_exactly_s_nonzeros(s):
    b = sample(batch=50, dim=10, sparsity=s)
    nnz = (b.w_star != 0).sum(1)
    assert torch.equal(nnz, torch.full_like(nnz, s))
    assert torch.equal(b.support, b.w_star != 0)
    # the support varies across prompts (uniform choice), unless it is everything
    assert s == 10 or len({tuple(m.tolist()) for m in b.support}) > 1


def test_sparse_linear_regression_task():
    task = icsim.tasks.get("sparse_linear_regression", dim=8, sparsity=2)
    b = task.sample(20, 5, generator=torch.Generator().manual_seed(0))
    assert b.task == "sparse_linear_regression"
    assert ((b.w_star != 0).sum(1) == 2).all()


def test_noise_std_and_w_scale_recovered():
    """64 × 1000 residuals: the sample std's relative standard error is 1/sqrt(2N) ≈ 0.003,
    so 2% is ~7 standard errors; w*'s 64 × 50 entries: ≈ 0.0125, so 6% is ~5."""
    b = sample(batch=64, n=1000, dim=50, noise_std=0.5, w_scale=2.0)
    resid = (b.ys - torch.einsum("bnd,bd->bn", b.xs, b.w_star)).numpy()
    assert resid.std() == pytest.approx(0.5, rel=0.02)
    assert abs(resid.mean()) < 0.01
    assert b.w_star.numpy().std() == pytest.approx(2.0, rel=0.06)


@pytest.mark.parametrize("r", [0.5, 1.0, 3.0])
def test_uniform_x_within_range(r):
    b = sample(batch=20, n=500, dim=6, x_distribution="uniform", x_range=r)
    x = b.xs.numpy()
    assert np.abs(x).max() <= r and np.abs(x).max() > 0.99 * r
    assert x.var() == pytest.approx(r**2 / 3, rel=0.03)  # 60k draws: relative s.e. ≈ 0.004
    torch.testing.assert_close(
        b.Sigma, torch.eye(6, dtype=torch.float64).expand(20, 6, 6) * r**2 / 3
    )
    torch.testing.assert_close(b.ys, torch.einsum("bnd,bd->bn", b.xs, b.w_star))


@pytest.mark.parametrize("kappa", [1.0, 100.0])
def test_active_dims_zeroes_the_rest(kappa):
    b = sample(batch=6, n=9, dim=8, condition_number=kappa, active_dims=3)
    assert torch.equal(b.xs[..., 3:], torch.zeros_like(b.xs[..., 3:]))
    assert (b.xs[..., :3] != 0).all()
    torch.testing.assert_close(b.ys, torch.einsum("bnd,bd->bn", b.xs[..., :3], b.w_star[:, :3]))
    full = sample(batch=6, n=9, dim=8, condition_number=kappa, active_dims=8)
    assert (full.xs != 0).all()


def test_default_generator_and_float32_default():
    task = icsim.tasks.get("linear_regression", dim=3)
    b = task.sample(2, 4)
    assert b.xs.dtype == torch.float32 and torch.isfinite(b.xs).all()


def _message(excinfo):
    return str(excinfo.value)


@pytest.mark.parametrize(
    "params, names",
    [
        ({"dim": 0}, ["dim", "0"]),
        ({"dim": -3}, ["dim", "-3"]),
        ({"dim": 2.5}, ["dim", "2.5"]),
        ({"condition_number": 0.5}, ["condition_number", "0.5"]),
        ({"noise_std": -1.0}, ["noise_std", "-1.0"]),
        ({"w_scale": float("nan")}, ["w_scale", "nan"]),
        ({"max_eigenvalue": 0.0}, ["max_eigenvalue", "0.0"]),
        ({"x_distribution": "laplace"}, ["x_distribution", "laplace", "gaussian"]),
        ({"eigenvalue_spacing": "cubic"}, ["eigenvalue_spacing", "cubic"]),
        ({"x_range": -1.0}, ["x_range", "-1.0"]),
        ({"sparsity": 0}, ["sparsity", "0"]),
        ({"dim": 4, "sparsity": 5}, ["sparsity", "5"]),
        ({"x_distribution": "uniform", "condition_number": 10.0}, ["condition_number"]),
        ({"noise": 0.1}, ["noise", "noise_std"]),  # unknown parameter, with a suggestion
    ],
)
def test_bad_task_parameters(params, names):
    with pytest.raises(InputError) as e:
        icsim.tasks.get("linear_regression", **params)
    for name in names:
        assert name in _message(e)


def test_unknown_task_name():
    with pytest.raises(InputError) as e:
        icsim.tasks.get("linear_regresion")
    assert "linear_regresion" in _message(e) and "Did you mean 'linear_regression'" in _message(e)


@pytest.mark.parametrize(
    "kwargs, names",
    [
        ({"batch_size": 0}, ["batch_size", "0"]),
        ({"batch_size": -2}, ["batch_size", "-2"]),
        ({"n_points": 0}, ["n_points", "0"]),
        ({"active_dims": 0}, ["active_dims", "0"]),
        ({"active_dims": 5}, ["active_dims", "5"]),
        ({"dtype": torch.float16}, ["dtype", "float16"]),
    ],
)
def test_bad_sample_arguments(kwargs, names):
    task = icsim.tasks.get("linear_regression", dim=4)
    args = {"batch_size": 2, "n_points": 3} | kwargs
    with pytest.raises(InputError) as e:
        task.sample(args.pop("batch_size"), args.pop("n_points"), **args)
    for name in names:
        assert name in _message(e)
