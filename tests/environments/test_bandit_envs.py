"""Bandit environments: shapes, seeding, the noise-free regret, bad input, and the seeded
Marsaglia–Tsang Gamma/Beta draws against an independent per-element NumPy implementation."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import icsim.environments as E
from icsim.environments.base import beta_from_draws, gamma_draws, gamma_from_draws
from icsim.errors import InputError


def test_linear_bandit_shapes_seed_and_rewards():
    env = E.get("linear_bandit", dim=3, n_actions=4, horizon=7, noise_std=0.5)
    b = env.sample(6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    again = env.sample(6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert b.features.shape == (6, 4, 3) and b.noise.shape == (6, 7) and b.w_star.shape == (6, 3)
    assert torch.equal(b.features, again.features) and torch.equal(b.noise, again.noise)
    assert 0 <= b.w_star.min() and b.w_star.max() <= 1 and b.features.abs().max() <= 1
    f, w, noise = b.features.numpy(), b.truth["w_star"].numpy(), b.noise.numpy()
    acts = torch.tensor([0, 1, 2, 3, 0, 1])
    for i in range(6):  # reward ⟨a, w*⟩ + ε_t, regret max_k⟨a_k, w*⟩ − ⟨a, w*⟩ (noise-free)
        means = f[i] @ w[i]
        assert np.isclose(b.reward(2, acts)[i].item(), means[acts[i]] + noise[i, 2])
        assert np.isclose(b.regret(acts)[i].item(), means.max() - means[acts[i]])
    assert torch.equal(b.regret(b.optimal_action()), torch.zeros(6, dtype=torch.float64))
    long = E.get("linear_bandit", horizon=4000, noise_std=0.5).sample(2)
    assert 0.48 < long.noise.std().item() < 0.52


def test_bernoulli_bandit_rewards_are_bernoulli_of_the_means():
    b = E.get("bernoulli_bandit", n_actions=3, horizon=4000).sample(
        2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    assert torch.equal(b.features[0], torch.eye(3, dtype=torch.float64))
    arm = torch.tensor([1, 2])
    rewards = torch.stack([b.reward(t, arm) for t in range(4000)], 1)
    assert set(rewards.unique().tolist()) <= {0.0, 1.0}
    mu = b.means.gather(1, arm[:, None]).squeeze(1)
    assert torch.allclose(rewards.mean(1), mu, atol=0.03)


@pytest.mark.parametrize(
    "name, params",
    [
        ("linear_bandit", {"n_actions": 1}),
        ("linear_bandit", {"horizon": 0}),
        ("linear_bandit", {"noise_std": -0.1}),
        ("linear_bandit", {"w_prior": "laplace"}),
        ("bernoulli_bandit", {"n_actions": 1}),
        ("bernoulli_bandit", {"alpha": 0.0}),
        ("bandit", {}),
    ],
)
def test_bad_input_is_one_input_error(name, params):
    with pytest.raises(InputError):
        E.get(name, **params)


def test_generator_on_another_device_is_refused():
    g = torch.Generator(device="cpu")
    with pytest.raises(InputError, match="generator"):
        E.get("linear_bandit").sample(2, generator=g, device="meta")


def _gamma_numpy(alpha, z, u):
    """Marsaglia & Tsang (2000), one number at a time (α < 1 boosted by U^{1/α})."""
    a = alpha + 1 if alpha < 1 else alpha
    d = a - 1 / 3
    c = 1 / math.sqrt(9 * d)
    g = d
    for zr, ur in zip(z, u[:-1]):
        v = (1 + c * zr) ** 3
        if v > 0 and math.log(ur) < 0.5 * zr * zr + d - d * v + d * math.log(v):
            g = d * v
            break
    return g * u[-1] ** (1 / alpha) if alpha < 1 else g


def test_gamma_draws_match_numpy_and_their_distribution():
    g = torch.Generator().manual_seed(3)
    alpha = torch.tensor([0.3, 1.0, 2.5, 40.0], dtype=torch.float64).repeat(50)
    z, u = gamma_draws(alpha.shape, g, "cpu", torch.float64)
    ours = gamma_from_draws(alpha, z, u)
    ref = [_gamma_numpy(a, zz, uu) for a, zz, uu in zip(alpha.tolist(), z.numpy(), u.numpy())]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-12)
    z, u = gamma_draws((20000,), g, "cpu", torch.float64)
    for a in (0.5, 3.0):
        x = gamma_from_draws(torch.full((20000,), a, dtype=torch.float64), z, u)
        assert stats.kstest(x.numpy(), stats.gamma(a).cdf).pvalue > 1e-3
    ab = torch.tensor([2.0, 5.0], dtype=torch.float64).expand(20000, 2)
    zb, ub = gamma_draws((20000, 2), g, "cpu", torch.float64)
    x = beta_from_draws(ab[:, 0], ab[:, 1], zb, ub)
    assert stats.kstest(x.numpy(), stats.beta(2, 5).cdf).pvalue > 1e-3
