"""Bandit policies, batched over environments: one vectorised call per step (Lin, Bai, Mei, ICLR
2024, and their code's experts; PAPERS.md §5). `rollout(env, policy)` plays one.

A policy is a frozen dataclass of hyper-parameters (documented defaults) with, optax-like, pure
functions of a shared `BanditState` (the history's sufficient statistics and the history itself):

    draws = policy.draw(env, generator)                  # this step's random numbers
    probs, actions = policy.act(env, state, t, draws)    # [B, K] distribution, [B] arm indices
    state = update_state(state, env, t, actions, rewards)

`probs` is the distribution `actions` was drawn from given the history: one-hot for argmax
policies; for Thompson sampling the one-hot of the arm the posterior sample picked (its
marginal distribution has no closed form). Ties go to the first arm (torch and NumPy argmax).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch

from icsim import _validate as V
from icsim.environments.base import BanditBatch, beta_from_draws, gamma_draws
from icsim.registry import Registry

#: every policy, by name: `@POLICIES.register(name)` beside its class
POLICIES = Registry("policy", package="icsim.environments")


class BanditState(NamedTuple):
    """What was played up to step t: gram = Σ a aᵀ [B, d, d], xty = Σ a r [B, d], counts and
    reward sums per arm [B, K], and the actions [B, T] and rewards [B, T] themselves."""

    gram: torch.Tensor
    xty: torch.Tensor
    counts: torch.Tensor
    sums: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor


def init_state(env: BanditBatch, horizon: int | None = None) -> BanditState:
    B, K, d = env.features.shape
    T = env.horizon if horizon is None else horizon
    z = env.features.new_zeros
    return BanditState(
        z(B, d, d), z(B, d), z(B, K), z(B, K), torch.zeros(B, T, dtype=torch.long,
        device=env.features.device), z(B, T),
    )  # fmt: skip


def update_state(state: BanditState, env: BanditBatch, t: int, actions, rewards) -> BanditState:
    """The state after arms `actions` [B] paid `rewards` [B] at step t. The history buffers
    (actions, rewards [B, T]) are written in place at column t, so successive states share
    them (copying them every step would make a rollout quadratic in T)."""
    a = env.features.gather(1, actions.view(-1, 1, 1).expand(-1, 1, env.dim)).squeeze(1)
    onehot = torch.nn.functional.one_hot(actions, env.n_actions).to(env.features.dtype)
    state.actions[:, t], state.rewards[:, t] = actions, rewards
    return BanditState(
        state.gram + a.unsqueeze(2) * a.unsqueeze(1), state.xty + a * rewards.unsqueeze(1),
        state.counts + onehot, state.sums + onehot * rewards.unsqueeze(1), state.actions,
        state.rewards,
    )  # fmt: skip


def sample_from(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw: the arm k with F(k−1) ≤ u < F(k), F the cumulative of probs [B, K]
    (normalised), for uniforms u [B] in [0, 1)."""
    cdf = probs.cumsum(-1)
    cdf = cdf / cdf[:, -1:]
    return (cdf[:, :-1] <= u.unsqueeze(1)).sum(-1)


def one_hot(actions: torch.Tensor, K: int, dtype) -> torch.Tensor:
    return torch.nn.functional.one_hot(actions, K).to(dtype)


class Policy:
    """Subclasses implement `scores` (argmax policies, `stochastic = False`) or `probs`."""

    name: str = "policy"
    #: the environment family it is meant for ("any": every bandit here)
    family: str = "any"
    stochastic: bool = True

    def draw(self, env: BanditBatch, generator) -> tuple:
        """This step's random numbers: one uniform per environment by default."""
        f = env.features
        return (torch.rand(env.n_envs, generator=generator, device=f.device, dtype=f.dtype),)

    def act(self, env: BanditBatch, state: BanditState, t: int, draws: tuple):
        if not self.stochastic:
            actions = self.scores(env, state, t, draws).argmax(-1)
            return one_hot(actions, env.n_actions, env.features.dtype), actions
        p = self.probs(env, state, t)
        return p, sample_from(p, draws[0])

    def scores(self, env, state, t, draws) -> torch.Tensor:
        raise NotImplementedError

    def probs(self, env, state, t) -> torch.Tensor:
        raise NotImplementedError

    def hyperparameters(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} if hasattr(
            self, "__dataclass_fields__") else {}  # fmt: skip

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{self.name}({params})"


def uniform_probs(env: BanditBatch) -> torch.Tensor:
    return env.features.new_full((env.n_envs, env.n_actions), 1.0 / env.n_actions)


def ridge(env: BanditBatch, state: BanditState, lam: float):
    """(ŵ [B, d], A⁻¹a_k [B, K, d]) of the ridge problem A = λI + Σ a aᵀ, ŵ = A⁻¹ Σ a r.

    One batched inverse and two batched products: measured faster on a CPU, for the small d of
    bandits, than a batched solve with K + 1 right-hand sides or broadcast products."""
    eye = torch.eye(env.dim, device=env.features.device, dtype=env.features.dtype)
    ainv = torch.linalg.inv_ex(state.gram + lam * eye).inverse  # symmetric
    w = torch.einsum("bij,bj->bi", ainv, state.xty)
    return w, torch.einsum("bkd,bde->bke", env.features, ainv)


@POLICIES.register("linucb")
@dataclass(frozen=True)
class LinUCB(Policy):
    """score_k = ⟨a_k, ŵ⟩ + α √(a_kᵀ A⁻¹ a_k), A = λI + Σ a aᵀ (Lin et al. 2024, eq. 8; their
    code: λ = 1, α = 2). `temperature` τ = 0: argmax (hard, what their data use); τ > 0: soft
    LinUCB, softmax(score / τ) (the policy their theory imitates). `uniform_first`: step 0 is
    uniform, as in their code."""

    ridge: float = 1.0
    alpha: float = 2.0
    temperature: float = 0.0
    uniform_first: bool = True
    name = "linucb"

    def __post_init__(self):
        V.number("ridge", self.ridge, low=0, low_open=True)
        V.number("alpha", self.alpha, low=0)
        V.number("temperature", self.temperature, low=0)

    def ucb(self, env, state) -> torch.Tensor:
        w, ainv_a = ridge(env, state, self.ridge)
        mean = (env.features * w.unsqueeze(1)).sum(-1)
        return mean + self.alpha * (env.features * ainv_a).sum(-1).clamp(min=0).sqrt()

    def probs(self, env, state, t):
        if t == 0 and self.uniform_first:
            return uniform_probs(env)
        s = self.ucb(env, state)
        if self.temperature == 0:
            return one_hot(s.argmax(-1), env.n_actions, s.dtype)
        return torch.softmax(s / self.temperature, -1)


@POLICIES.register("soft_linucb")
def soft_linucb(ridge: float = 1.0, alpha: float = 2.0, temperature: float = 0.1,
                uniform_first: bool = False) -> LinUCB:  # fmt: skip
    """LinUCB sampling from softmax(score / τ), τ = 0.1 by default."""
    V.number("temperature", temperature, low=0, low_open=True)
    return LinUCB(ridge, alpha, temperature, uniform_first)


@POLICIES.register("greedy")
@dataclass(frozen=True)
class Greedy(Policy):
    """argmax_k ⟨a_k, ŵ⟩ of the ridge estimate (λ = 1): LinUCB without a bonus."""

    ridge: float = 1.0
    name = "greedy"
    stochastic = False

    def __post_init__(self):
        V.number("ridge", self.ridge, low=0, low_open=True)

    def scores(self, env, state, t, draws):
        w, _ = ridge(env, state, self.ridge)
        return (env.features * w.unsqueeze(1)).sum(-1)


@POLICIES.register("thompson")
@dataclass(frozen=True)
class LinearThompson(Policy):
    """Linear Thompson sampling: w̃ ~ N(μ_t, P_t⁻¹), P_t = I/v₀ + Σ a aᵀ/σ², μ_t = P_t⁻¹(m₀/v₀ +
    Σ a r/σ²), play argmax ⟨a_k, w̃⟩. Prior N(m₀·1, v₀ I): their code's is N(0, I) with σ = 1.5
    while w* ~ U[0, 1]^d (the matched prior is m₀ = 0.5, v₀ = 1/12). w̃ = μ_t + L⁻ᵀ z for
    P_t = L Lᵀ and z ~ N(0, I) (the draws)."""

    noise_std: float = 1.5
    prior_mean: float = 0.0
    prior_var: float = 1.0
    name = "thompson"
    stochastic = False

    def __post_init__(self):
        V.number("noise_std", self.noise_std, low=0, low_open=True)
        V.number("prior_mean", self.prior_mean)
        V.number("prior_var", self.prior_var, low=0, low_open=True)

    def draw(self, env, generator):
        f = env.features
        return (torch.randn(env.n_envs, env.dim, generator=generator, device=f.device,
                            dtype=f.dtype),)  # fmt: skip

    def scores(self, env, state, t, draws):
        s2, eye = self.noise_std**2, torch.eye(env.dim, device=env.features.device)
        P = eye.to(env.features.dtype) / self.prior_var + state.gram / s2
        L = torch.linalg.cholesky_ex(P).L
        rhs = (self.prior_mean / self.prior_var + state.xty / s2).unsqueeze(-1)
        # w̃ = L⁻ᵀ(L⁻¹ rhs + z): the posterior mean plus L⁻ᵀz, one back substitution
        y = torch.linalg.solve_triangular(L, rhs, upper=False) + draws[0].unsqueeze(-1)
        w = torch.linalg.solve_triangular(L.transpose(1, 2), y, upper=True).squeeze(-1)
        return (env.features * w.unsqueeze(1)).sum(-1)


@POLICIES.register("bernoulli_ucb")
@dataclass(frozen=True)
class BernoulliUCB(Policy):
    """score_k = S_k / (1 + N_k) + c / √(1 + N_k) (their code's UCB, c = 1)."""

    bonus: float = 1.0
    name = "bernoulli_ucb"
    family = "bernoulli_bandit"
    stochastic = False

    def __post_init__(self):
        V.number("bonus", self.bonus, low=0)

    def scores(self, env, state, t, draws):
        n1 = 1 + state.counts
        return state.sums / n1 + self.bonus / n1.sqrt()


@POLICIES.register("bernoulli_thompson")
@dataclass(frozen=True)
class BernoulliThompson(Policy):
    """θ_k ~ Beta(α₀ + S_k, β₀ + F_k) (F_k = N_k − S_k failures), play argmax θ_k; Beta(1, 1)
    prior as their code. The Beta draws are Marsaglia–Tsang Gammas of the step's draws."""

    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    name = "bernoulli_thompson"
    family = "bernoulli_bandit"
    stochastic = False

    def __post_init__(self):
        V.number("prior_alpha", self.prior_alpha, low=0, low_open=True)
        V.number("prior_beta", self.prior_beta, low=0, low_open=True)

    def draw(self, env, generator):
        f = env.features
        return gamma_draws((env.n_envs, env.n_actions, 2), generator, f.device, f.dtype)

    def scores(self, env, state, t, draws):
        a = self.prior_alpha + state.sums
        b = self.prior_beta + state.counts - state.sums
        return beta_from_draws(a, b, *draws)


@POLICIES.register("empirical_mean")
@dataclass(frozen=True)
class EmpiricalMean(Policy):
    """argmax_k S_k / N_k, every arm not yet played first (in index order): each arm once, then
    greedy on the arms' sample means (it ignores the shared w*)."""

    name = "empirical_mean"
    stochastic = False

    def scores(self, env, state, t, draws):
        mean = state.sums / state.counts.clamp(min=1)
        return torch.where(state.counts > 0, mean, torch.inf)


@POLICIES.register("uniform")
@dataclass(frozen=True)
class Uniform(Policy):
    """Every arm with probability 1/K."""

    name = "uniform"

    def probs(self, env, state, t):
        return uniform_probs(env)


@POLICIES.register("oracle")
@dataclass(frozen=True)
class Oracle(Policy):
    """The best arm, known (zero regret)."""

    name = "oracle"
    stochastic = False

    def scores(self, env, state, t, draws):
        return env.means


def get(name: str, **params) -> Policy:
    return POLICIES.get(name, **params)
