"""The logistic_regression task: ‖a_i‖ ≤ 1, labels ±1 from w*, covariance of condition κ."""

import numpy as np
import pytest
import torch

import icsim.tasks
from icsim.errors import InputError


def sample(batch=64, n=27, seed=0, **params):
    task = icsim.tasks.get("logistic_regression", **params)
    g = torch.Generator().manual_seed(seed)
    return task.sample(batch, n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("x_distribution", ["ball", "gaussian_normalised", "gaussian"])
@pytest.mark.parametrize("kappa", [1.0, 50.0])
def test_shapes_norms_and_labels(x_distribution, kappa):
    b = sample(x_distribution=x_distribution, condition_number=kappa, dim=5)
    assert b.xs.shape == (64, 27, 5) and b.ys.shape == (64, 27)
    assert b.w_star.shape == (64, 5) and b.Sigma.shape == (64, 5, 5)
    assert b.xs.dtype == b.ys.dtype == torch.float64
    assert set(b.ys.unique().tolist()) == {-1.0, 1.0}
    norms = b.xs.norm(dim=-1)
    if x_distribution == "ball":
        assert norms.max() <= 1 + 1e-12
        assert (norms < 1 - 1e-6).float().mean() > 0.2  # a real ball, not only the sphere
        trace = torch.diagonal(b.Sigma, dim1=-2, dim2=-1).sum(-1)
        torch.testing.assert_close(trace, torch.ones(64, dtype=torch.float64))
    elif x_distribution == "gaussian_normalised":
        torch.testing.assert_close(norms, torch.ones_like(norms))
    else:
        assert norms.max() > 1.5  # their code's unnormalised features
    eig = torch.linalg.eigvalsh(b.Sigma)
    np.testing.assert_allclose((eig[:, -1] / eig[:, 0]).numpy(), kappa, rtol=1e-8)


def test_gaussian_features_have_covariance_sigma():
    b = sample(batch=4, n=40000, x_distribution="gaussian", condition_number=10.0, dim=3)
    emp = torch.einsum("bni,bnj->bij", b.xs, b.xs) / b.n_points
    np.testing.assert_allclose(emp.numpy(), b.Sigma.numpy(), atol=0.03)


def test_sign_labels_are_the_sign_of_the_margin():
    b = sample(label_model="sign", dim=4)
    margin = torch.einsum("bnd,bd->bn", b.xs, b.w_star)
    assert torch.equal(b.ys, torch.where(margin >= 0, 1.0, -1.0).double())


def test_bernoulli_labels_follow_the_logistic_model():
    b = sample(batch=400, n=200, label_model="bernoulli", dim=3, w_scale=2.0)
    p = torch.sigmoid(torch.einsum("bnd,bd->bn", b.xs, b.w_star)).flatten()
    positive = (b.ys.flatten() > 0).double()
    # calibration: in each probability bin the frequency of y = +1 is the bin's mean probability
    bins = torch.linspace(0, 1, 11, dtype=torch.float64)
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = (p >= lo) & (p < hi)
        if sel.sum() > 2000:
            assert abs(positive[sel].mean() - p[sel].mean()) < 0.02
    # and it is not the sign model: labels disagree with the margin's sign often enough
    assert ((positive - 0.5) * (p - 0.5) < 0).double().mean() > 0.1


def test_seeded_reproducible_and_active_dims():
    a, b = sample(seed=3, dim=5), sample(seed=3, dim=5)
    assert torch.equal(a.xs, b.xs) and torch.equal(a.ys, b.ys)
    assert not torch.equal(a.xs, sample(seed=4, dim=5).xs)
    task = icsim.tasks.get("logistic_regression", dim=5, x_distribution="gaussian_normalised")
    c = task.sample(8, 10, generator=torch.Generator().manual_seed(0), active_dims=2)
    assert c.xs.dtype == torch.float32
    assert (c.xs[..., 2:] == 0).all()
    torch.testing.assert_close(c.xs.norm(dim=-1), torch.ones(8, 10))


@pytest.mark.parametrize(
    "params",
    [
        {"x_distribution": "uniform"},
        {"label_model": "probit"},
        {"condition_number": 0.5},
        {"dim": 0},
        {"w_scale": -1.0},
        {"dim": 1, "condition_number": 10.0},
    ],
)
def test_bad_parameters(params):
    with pytest.raises(InputError):
        icsim.tasks.get("logistic_regression", **params)
