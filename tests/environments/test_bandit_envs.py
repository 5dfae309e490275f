"""Bandit environments: shapes, seeding, rewards, the noise-free regret and bad input (the
seeded Gamma/Beta draws are tested with Bernoulli Thompson sampling, tests/algorithms)."""

import numpy as np
import pytest
import torch

import icsim.environments as E
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
