"""Garg et al.'s out-of-distribution prompts: each condition against an independent NumPy
computation of its defining property."""

import numpy as np
import pytest
import torch

import icsim
from icsim.errors import InputError
from icsim.tasks.ood import CONDITIONS, SCALES, sample_ood


def draw(name, B=64, n=9, d=6, seed=0, task=None, **task_kw):
    task = task or icsim.tasks.get("linear_regression", dim=d, **task_kw)
    g = torch.Generator().manual_seed(seed)
    return sample_ood(task, name, B, n, generator=g, dtype=torch.float64)


def test_the_suite_is_garg_et_al_s():
    assert SCALES == (0.333, 0.5, 2.0, 3.0)
    assert {"skewed", "half_subspace", "orthogonal", "overlapping", "orthants"} <= set(CONDITIONS)
    assert len(CONDITIONS) == 5 + 2 * len(SCALES)


def test_skewed_covariance_has_eigenvalues_proportional_to_one_over_i_squared():
    d = 6
    ood = draw("skewed", B=4000, n=8, d=d)
    sigma = ood.batch.Sigma.numpy()
    assert np.allclose(sigma, sigma[0])  # one Σ for the whole evaluation
    lam = np.sort(np.linalg.eigvalsh(sigma[0]))[::-1]
    want = 1.0 / np.arange(1, d + 1) ** 2
    np.testing.assert_allclose(lam, d * want / want.sum(), rtol=1e-10, atol=1e-12)
    # the prompts follow it: empirical covariance of 32,000 xs within a few per cent
    x = ood.batch.xs.numpy().reshape(-1, d)
    emp = x.T @ x / len(x)
    assert np.abs(emp - sigma[0]).max() < 0.06 * np.abs(sigma[0]).max()


def test_half_subspace_prompts_have_rank_d_over_2_in_one_fixed_subspace():
    d = 6
    ood = draw("half_subspace", B=50, n=12, d=d, seed=3)
    x = ood.batch.xs.numpy().reshape(-1, d)
    assert np.linalg.matrix_rank(x, tol=1e-8) == d // 2
    lam = np.sort(np.linalg.eigvalsh(ood.batch.Sigma[0].numpy()))
    np.testing.assert_allclose(lam, [0, 0, 0, 2, 2, 2], atol=1e-10)  # tr Σ = d
    # y = w*ᵀx on the same prompts
    ys = np.einsum("bnd,bd->bn", ood.batch.xs.numpy(), ood.batch.w_star.numpy())
    np.testing.assert_allclose(ood.batch.ys.numpy(), ys, atol=1e-12)


def test_orthogonal_queries_are_orthogonal_to_the_context_and_keep_the_norm():
    d, n = 5, 9
    ood = draw("orthogonal", B=16, n=n, d=d, seed=1)
    xs, q = ood.batch.xs.numpy(), ood.queries.numpy()
    assert ood.ks == list(range(d))
    for b in range(16):
        for k in range(d):
            ctx, x = xs[b, :k], xs[b, k]
            resid = x - ctx.T @ np.linalg.lstsq(ctx.T, x, rcond=None)[0] if k else x
            want = resid * np.linalg.norm(x) / np.linalg.norm(resid)  # Garg et al.'s query
            np.testing.assert_allclose(q[b, k], want, atol=1e-10)
            assert np.abs(ctx @ q[b, k]).max(initial=0) <= 1e-10
    w = ood.batch.w_star.numpy()
    np.testing.assert_allclose(ood.query_ys.numpy(), np.einsum("bnd,bd->bn", q, w), atol=1e-12)


def test_overlapping_query_is_one_of_the_context_points_chosen_uniformly():
    n = 6
    ood = draw("overlapping", B=3000, n=n, d=3, seed=2)
    xs, q = ood.batch.xs.numpy(), ood.queries.numpy()
    np.testing.assert_array_equal(q[:, 0], xs[:, 0])
    for k in range(1, n):
        dist = np.linalg.norm(xs[:, :k] - q[:, k : k + 1], axis=-1)  # [B, k]
        assert (dist.min(1) == 0).all()
        counts = np.bincount(dist.argmin(1), minlength=k)
        assert np.abs(counts / 3000 - 1 / k).max() < 0.04  # uniform over the k examples
    prob = ood.problem(4)
    np.testing.assert_array_equal(prob.X_query.numpy()[:, 0], q[:, 4])


def test_orthants_context_shares_one_sign_pattern_and_the_query_is_drawn_as_usual():
    ood = draw("orthants", B=400, n=8, d=4, seed=5)
    xs, q = ood.batch.xs.numpy(), ood.queries.numpy()
    signs = np.sign(xs)
    assert (signs == signs[:, :1]).all()  # one orthant per prompt
    np.testing.assert_array_equal(np.abs(q), np.abs(xs))  # the same draw, its own signs
    assert abs((np.sign(q) == signs).mean() - 0.5) < 0.03  # the query's signs are fair coins
    assert abs((signs[:, 0] > 0).mean() - 0.5) < 0.05  # and so are the orthants


@pytest.mark.parametrize("axis", ["x", "y"])
def test_scaled_prompts_are_the_same_draws_scaled(axis):
    a, b = draw(f"scale_{axis}=0.5", seed=4), draw(f"scale_{axis}=3", seed=4)
    ratio_x = 6.0 if axis == "x" else 1.0
    np.testing.assert_allclose(b.batch.xs.numpy(), ratio_x * a.batch.xs.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.batch.ys.numpy(), 6.0 * a.batch.ys.numpy(), rtol=1e-10)


def test_same_generator_state_same_prompts_and_bad_inputs_refused():
    a, b = draw("skewed", seed=7), draw("skewed", seed=7)
    assert torch.equal(a.batch.xs, b.batch.xs) and torch.equal(a.batch.ys, b.batch.ys)
    with pytest.raises(InputError, match="linear regression"):
        draw("skewed", task=icsim.tasks.get("logistic_regression", dim=3))
    with pytest.raises(InputError, match="unknown out-of-distribution condition"):
        draw("skew")
