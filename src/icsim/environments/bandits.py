"""Bandit families (Lin, Bai, Mei, ICLR 2024, §4 and their code; PAPERS.md §5): a stochastic
linear bandit with a fixed action set per environment and a Bernoulli multi-armed bandit."""

from __future__ import annotations

import torch

from icsim import _validate as V
from icsim.environments.base import (
    ENVIRONMENTS,
    BanditBatch,
    Environment,
    beta_from_draws,
    check_bandit,
    gamma_draws,
)

W_PRIORS = ("uniform", "gaussian")


@ENVIRONMENTS.register("linear_bandit")
class LinearBandit(Environment):
    """K actions a_k ~ U[−1, 1]^d fixed per environment, w* ~ U[0, 1]^d (`w_prior="uniform"`,
    the paper's) or N(0, I); reward ⟨a, w*⟩ + N(0, σ²) with σ = `noise_std` (1.5, the paper's)."""

    name = "linear_bandit"

    def __init__(self, dim: int = 5, n_actions: int = 10, horizon: int = 200,
                 noise_std: float = 1.5, w_prior: str = "uniform"):  # fmt: skip
        self.dim = V.positive_int("dim", dim)
        check_bandit(n_actions, horizon)
        self.n_actions, self.horizon = n_actions, horizon
        self.noise_std = V.number("noise_std", noise_std, low=0)
        self.w_prior = V.choice("w_prior", w_prior, W_PRIORS)

    def _sample(self, n_envs, generator, device, dtype):
        B, K, d, T = n_envs, self.n_actions, self.dim, self.horizon
        kw = dict(generator=generator, device=device, dtype=dtype)
        if self.w_prior == "uniform":
            w = torch.rand(B, d, **kw)
        else:
            w = torch.randn(B, d, **kw)
        features = 2 * torch.rand(B, K, d, **kw) - 1
        noise = self.noise_std * torch.randn(B, T, **kw)
        means = torch.einsum("bkd,bd->bk", features, w)
        return BanditBatch(features, means, noise, "gaussian", self.name, {"w_star": w})


@ENVIRONMENTS.register("bernoulli_bandit")
class BernoulliBandit(Environment):
    """K arms with means μ_k ~ Beta(α, β) (Beta(1, 1) = U[0, 1], the paper's) and rewards
    Bernoulli(μ_a); the arms are one-hot action vectors, so linear policies play it too."""

    name = "bernoulli_bandit"

    def __init__(self, n_actions: int = 5, horizon: int = 200, alpha: float = 1.0,
                 beta: float = 1.0):  # fmt: skip
        check_bandit(n_actions, horizon)
        self.n_actions, self.horizon = n_actions, horizon
        self.alpha = V.number("alpha", alpha, low=0, low_open=True)
        self.beta = V.number("beta", beta, low=0, low_open=True)

    @property
    def dim(self) -> int:
        return self.n_actions

    def _sample(self, n_envs, generator, device, dtype):
        B, K, T = n_envs, self.n_actions, self.horizon
        z, u = gamma_draws((B, K, 2), generator, device, dtype)
        ab = torch.tensor([self.alpha, self.beta], device=device, dtype=dtype).expand(B, K, 2)
        means = beta_from_draws(ab[..., 0], ab[..., 1], z, u)
        noise = torch.rand(B, T, generator=generator, device=device, dtype=dtype)
        features = torch.eye(K, device=device, dtype=dtype).expand(B, K, K).contiguous()
        return BanditBatch(features, means, noise, "bernoulli", self.name)
