"""Bandit policies, batched over environments: one vectorised call per step (Lin, Bai, Mei, ICLR
2024, and their code's experts; PAPERS.md §5). `rollout(env, policy)` plays one.

A policy is a frozen dataclass of hyper-parameters (documented defaults) with, optax-like, pure
functions of a shared `BanditState` (the history's sufficient statistics and the history itself):

    draws = policy.draw(env, generator)                  # this step's random numbers
    carry = policy.start(env)                            # the policy's own running statistics
    probs, actions = policy.act(env, state, t, draws, carry)  # [B, K] distribution, [B] arms
    state = update_state(state, env, t, actions, rewards)
    carry = policy.advance(carry, env, state, t, actions, rewards)

`carry` (None for most policies) lets LinUCB and linear Thompson sampling keep A⁻¹ by
Sherman–Morrison rank-1 updates instead of inverting A every step; without it they compute the
same quantities from `state` (one batched inverse or Cholesky), so `act(env, state, t, draws)`
alone stays valid.

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
    """What was played up to step t: the pulls and reward sums per arm [B, K], and the actions
    [B, T] and rewards [B, T] themselves. A linear policy's statistics follow from the per-arm
    ones, the action set being fixed: Σ a aᵀ = Fᵀ diag(counts) F, Σ a r = Fᵀ sums
    (`linear_statistics`), so a step updates two [B, K] tensors and no [B, d, d] one."""

    counts: torch.Tensor
    sums: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor


def init_state(env: BanditBatch, horizon: int | None = None) -> BanditState:
    B, K, _ = env.features.shape
    T = env.horizon if horizon is None else horizon
    z = env.features.new_zeros
    return BanditState(z(B, K), z(B, K), torch.zeros(B, T, dtype=torch.long,
                       device=env.features.device), z(B, T))  # fmt: skip


def linear_statistics(state: BanditState, env: BanditBatch):
    """(Σ a aᵀ [B, d, d], Σ a r [B, d]) of the history, from the per-arm counts and sums."""
    f = env.features
    return torch.einsum("bk,bki,bkj->bij", state.counts, f, f), torch.einsum(
        "bk,bkd->bd", state.sums, f)  # fmt: skip


def at_arm(x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """x[b, actions[b]] for x [B, K, ...]: rows of the flattened tensor (index_select of whole
    rows is ~6× faster on a CPU than `gather` with an expanded index)."""
    flat = torch.arange(x.shape[0], device=x.device) * x.shape[1] + actions
    return x.flatten(0, 1).index_select(0, flat)


def update_state(state: BanditState, env: BanditBatch, t: int, actions, rewards) -> BanditState:
    """The state after arms `actions` [B] paid `rewards` [B] at step t. The history buffers
    (actions, rewards [B, T]) are written in place at column t, so successive states share
    them (copying them every step would make a rollout quadratic in T)."""
    idx = actions.view(-1, 1)
    state.actions[:, t], state.rewards[:, t] = actions, rewards
    r = rewards.view(-1, 1)
    return BanditState(state.counts.scatter_add(1, idx, torch.ones_like(r)),
                       state.sums.scatter_add(1, idx, r), state.actions, state.rewards)  # fmt: skip


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

    def start(self, env: BanditBatch):
        """The policy's running statistics before step 0 (None: it reads `BanditState` only)."""
        return None

    def advance(self, carry, env: BanditBatch, state: BanditState, t: int, actions, rewards):
        """`carry` after step t (`state` already holds it)."""
        return carry

    def act(self, env: BanditBatch, state: BanditState, t: int, draws: tuple, carry=None):
        if not self.stochastic:
            actions = self.scores(env, state, t, draws, carry).argmax(-1)
            return one_hot(actions, env.n_actions, env.features.dtype), actions
        p = self.probs(env, state, t, carry)
        return p, sample_from(p, draws[0])

    def scores(self, env, state, t, draws, carry=None) -> torch.Tensor:
        raise NotImplementedError

    def probs(self, env, state, t, carry=None) -> torch.Tensor:
        raise NotImplementedError

    def hyperparameters(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} if hasattr(
            self, "__dataclass_fields__") else {}  # fmt: skip

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{self.name}({params})"


def uniform_probs(env: BanditBatch) -> torch.Tensor:
    return env.features.new_full((env.n_envs, env.n_actions), 1.0 / env.n_actions)


#: the Sherman–Morrison carries are recomputed exactly from the Gram matrix every this many steps
#: (float64 rounding of rank-1 downdates grows with the condition number of A)
RESOLVE_EVERY = 25


class Ridge(NamedTuple):
    """Recursive least squares for A = λI + Σ a aᵀ, b = Σ a r (LinUCB's carry): G = F A⁻¹
    [B, K, d] (A⁻¹a_k for every arm), q_k = a_kᵀA⁻¹a_k [B, K], mean_k = ⟨a_k, A⁻¹b⟩ [B, K]."""

    G: torch.Tensor
    q: torch.Tensor
    mean: torch.Tensor


class Posterior(NamedTuple):
    """Thompson sampling's carry, batch last so that every elementwise op runs over B contiguous
    numbers (a [B, d, d] op broadcast over d = 5 runs ~5–10× slower on a CPU): the upper-
    triangular root R [d, d, B] with A⁻¹ = R Rᵀ (R = L⁻ᵀ for A = L Lᵀ), w = A⁻¹b [d, B] and the
    action set [K, d, B]."""

    root: torch.Tensor
    w: torch.Tensor
    features: torch.Tensor


def batch_last(x: torch.Tensor) -> torch.Tensor:
    return x.permute(*range(1, x.dim()), 0).contiguous()


def ridge_exact(env: BanditBatch, gram, b, lam: float, full: bool = False) -> Ridge | Posterior:
    """The carry computed from A = λI + gram and b by one batched inverse (`full`: the
    `Posterior`, R from one Cholesky of the order-reversed A⁻¹: J R J is the lower Cholesky
    factor of J A⁻¹ J, J the order reversal)."""
    eye = torch.eye(env.dim, device=env.features.device, dtype=env.features.dtype)
    ainv = torch.linalg.inv_ex(gram + lam * eye).inverse  # symmetric
    w = torch.einsum("bij,bj->bi", ainv, b)
    if full:
        root = torch.linalg.cholesky_ex(ainv.flip(1, 2)).L.flip(1, 2)
        return Posterior(batch_last(root), batch_last(w), batch_last(env.features))
    G = torch.einsum("bkd,bde->bke", env.features, ainv)
    return Ridge(G, (G * env.features).sum(-1), (env.features * w.unsqueeze(1)).sum(-1))


def root_update(R: torch.Tensor, a: torch.Tensor):
    """(R', g = A⁻¹a, c = 1/(1 + aᵀA⁻¹a)) for A' = A + a aᵀ, A⁻¹ = R Rᵀ, R upper triangular
    (batch last: R [d, d, B], a [d, B]). A'⁻¹ = R (I − c v vᵀ) Rᵀ with v = Rᵀa, and
    I − c v vᵀ = N Nᵀ for the upper-triangular N with, writing Q_j = 1 + Σ_{i≤j} v_i²
    (Q_{−1} = 1), N_jj = √(Q_{j−1}/Q_j) and N_ij = −v_i v_j/√(Q_{j−1}Q_j) for i < j (the
    rank-1 Cholesky modification of Gill, Golub, Murray, Saunders 1974, order reversed). So
    R'_{:,j} = R_{:,j} √(Q_j/Q_{j−1}) − C_{:,j} v_j/√(Q_{j−1}Q_j), C_{:,j} = Σ_{i≤j} R_{:,i} v_i:
    O(d²) per environment, no factorisation, the same unique factor (positive diagonal) as a
    Cholesky of A'⁻¹; C's last column is g = R v, and c = 1/Q_{d−1}."""
    v = (R * a.unsqueeze(1)).sum(0)  # Rᵀa [d, B]
    Q = torch.cumsum(v * v, 0).add_(1.0)
    h = torch.cat([torch.ones_like(Q[:1]), Q[:-1]]).mul_(Q).rsqrt_()  # 1/√(Q_{j−1}Q_j)
    diag, off = Q * h, v * h
    out, C = torch.empty_like(R), torch.zeros_like(v)
    for j in range(R.shape[1]):  # column by column: ~2.5× faster than a cumsum over dim 1
        C.addcmul_(R[:, j], v[j])
        torch.mul(R[:, j], diag[j], out=out[:, j])
        out[:, j].addcmul_(C, off[j], value=-1)
    return out, C, Q[-1:].reciprocal()


def ridge_update(c: Ridge | Posterior, env: BanditBatch, actions, rewards) -> Ridge | Posterior:
    """The carry after arm a_t paid r_t: with g = A⁻¹a_t and δ = 1 + a_tᵀA⁻¹a_t (Sherman–Morrison),
    w ← w + g e with e = (r_t − ⟨a_t, w⟩)/δ and R by `root_update` (`Posterior`), or for every
    arm (c_k = a_kᵀg) G_k ← G_k − c_k gᵀ/δ, q_k ← q_k − c_k²/δ, mean_k ← mean_k + c_k e
    (`Ridge`): O(K d) or O(d²) per environment and step instead of a d × d inverse. addcmul: one
    fused pass and allocation per statistic."""
    if isinstance(c, Posterior):
        _, d, B = c.features.shape
        a = c.features.gather(0, actions.view(1, 1, B).expand(1, d, B)).squeeze(0)  # [d, B]
        root, g, inv_delta = root_update(c.root, a)
        e = (rewards.view(1, -1) - (a * c.w).sum(0, keepdim=True)) * inv_delta
        return Posterior(root, torch.addcmul(c.w, g, e), c.features)
    r, idx = rewards.view(-1, 1), actions.view(-1, 1)
    g = at_arm(c.G, actions)  # A⁻¹a_t [B, d]
    inv_delta = 1.0 / (1.0 + c.q.gather(1, idx))  # [B, 1]
    e = (r - c.mean.gather(1, idx)) * inv_delta  # [B, 1]
    ck = torch.einsum("bkd,bd->bk", env.features, g)  # a_kᵀA⁻¹a_t [B, K]
    scaled = ck * inv_delta
    return Ridge(
        torch.addcmul(c.G, scaled.unsqueeze(2), g.unsqueeze(1), value=-1),
        torch.addcmul(c.q, scaled, ck, value=-1), torch.addcmul(c.mean, ck, e),
    )  # fmt: skip


class RidgePolicy(Policy):
    """A policy reading the ridge solution of A = λI + Σ a aᵀ, b = b₀ + Σ a r, kept in a `Ridge`
    carry by rank-1 updates (re-solved exactly every `RESOLVE_EVERY` steps)."""

    full_carry = False

    def _ridge(self) -> tuple[float, float]:
        """(λ, b₀): the ridge and the prior term of b (one value for every coordinate)."""
        raise NotImplementedError

    def _exact(self, env, state) -> Ridge:
        lam, b0 = self._ridge()
        gram, xty = linear_statistics(state, env)
        return ridge_exact(env, gram, xty + b0, lam, self.full_carry)

    def start(self, env):
        return self._exact(env, init_state(env, 1))

    def advance(self, carry, env, state, t, actions, rewards):
        if (t + 1) % RESOLVE_EVERY == 0:
            return self._exact(env, state)
        return ridge_update(carry, env, actions, rewards)


@POLICIES.register("linucb")
@dataclass(frozen=True)
class LinUCB(RidgePolicy):
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

    def _ridge(self):
        return self.ridge, 0.0

    def ucb(self, env, state, carry=None) -> torch.Tensor:
        c = self._exact(env, state) if carry is None else carry
        return c.mean + self.alpha * c.q.clamp(min=0).sqrt()

    def act(self, env, state, t, draws, carry=None):
        if self.temperature == 0 and not (t == 0 and self.uniform_first):
            actions = self.ucb(env, state, carry).argmax(-1)  # no inverse-CDF draw needed
            return one_hot(actions, env.n_actions, env.features.dtype), actions
        return super().act(env, state, t, draws, carry)

    def probs(self, env, state, t, carry=None):
        if t == 0 and self.uniform_first:
            return uniform_probs(env)
        s = self.ucb(env, state, carry)
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
class Greedy(RidgePolicy):
    """argmax_k ⟨a_k, ŵ⟩ of the ridge estimate (λ = 1): LinUCB without a bonus."""

    ridge: float = 1.0
    name = "greedy"
    stochastic = False

    def __post_init__(self):
        V.number("ridge", self.ridge, low=0, low_open=True)

    def _ridge(self):
        return self.ridge, 0.0

    def scores(self, env, state, t, draws, carry=None):
        return (self._exact(env, state) if carry is None else carry).mean


@POLICIES.register("thompson")
@dataclass(frozen=True)
class LinearThompson(RidgePolicy):
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

    full_carry = True

    def _ridge(self):
        # P_t = A/σ² for A = (σ²/v₀) I + Σ a aᵀ, and μ_t = A⁻¹(σ² m₀/v₀ + Σ a r)
        s2 = self.noise_std**2
        return s2 / self.prior_var, s2 * self.prior_mean / self.prior_var

    def scores(self, env, state, t, draws, carry=None):
        return self._scores_batch_last(env, state, draws, carry).t()

    def _scores_batch_last(self, env, state, draws, carry):
        """⟨a_k, w̃⟩ [K, B], w̃ = w + σ R z: P⁻¹ = σ² A⁻¹ = (σR)(σR)ᵀ, σR = L_P⁻ᵀ."""
        c = self._exact(env, state) if carry is None else carry
        w = c.w + self.noise_std * (c.root * draws[0].t().unsqueeze(0)).sum(1)
        return (c.features * w.unsqueeze(0)).sum(1)

    def act(self, env, state, t, draws, carry=None):
        # max over the leading K: its indices are the first maximal one's, as argmax's, and on a
        # CPU ~5× faster than argmax over a leading dim
        actions = self._scores_batch_last(env, state, draws, carry).max(0).indices
        return one_hot(actions, env.n_actions, env.features.dtype), actions


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

    def scores(self, env, state, t, draws, carry=None):
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

    def scores(self, env, state, t, draws, carry=None):
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

    def scores(self, env, state, t, draws, carry=None):
        mean = state.sums / state.counts.clamp(min=1)
        return torch.where(state.counts > 0, mean, torch.inf)


@POLICIES.register("uniform")
@dataclass(frozen=True)
class Uniform(Policy):
    """Every arm with probability 1/K."""

    name = "uniform"

    def probs(self, env, state, t, carry=None):
        return uniform_probs(env)


@POLICIES.register("oracle")
@dataclass(frozen=True)
class Oracle(Policy):
    """The best arm, known (zero regret)."""

    name = "oracle"
    stochastic = False

    def scores(self, env, state, t, draws, carry=None):
        return env.means


def get(name: str, **params) -> Policy:
    return POLICIES.get(name, **params)
