"""Bandit policies against an independent per-environment float64 NumPy implementation fed the
same random draws: identical actions (and probabilities) for every policy, ill-conditioned
action sets included; rollouts, mixtures and bad input."""

import math

import numpy as np
import pytest
import scipy.linalg as sla
import torch
from scipy import stats

import icsim.environments as E
from icsim.environments.base import BanditBatch, beta_from_draws, gamma_draws, gamma_from_draws
from icsim.environments.policies import get
from icsim.environments.rollout import play_all, rollout, rollout_mixture, split_sizes
from icsim.errors import InputError

T = 25


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


def _sample(p, u):
    """The first arm whose cumulative probability exceeds u."""
    cdf = np.cumsum(p) / np.sum(p)
    return int(min(np.searchsorted(cdf, u, side="right"), len(p) - 1))


def _choose(name, params, f, t, X, r, acts, draw):
    """One environment's choice at step t from its history X [t, d], r [t], acts [t]:
    (probs [K], action)."""
    K, d = f.shape
    counts = np.bincount(acts, minlength=K).astype(float)
    sums = np.bincount(acts, weights=r, minlength=K) if t else np.zeros(K)
    if name in ("linucb", "soft_linucb", "greedy"):
        lam = params.get("ridge", 1.0)
        alpha = 0.0 if name == "greedy" else params.get("alpha", 2.0)
        tau = params.get("temperature", 0.1 if name == "soft_linucb" else 0.0)
        first = params.get("uniform_first", name == "linucb")
        A = lam * np.eye(d) + X.T @ X
        w = np.linalg.solve(A, X.T @ r)
        bonus = np.sqrt(np.maximum(np.einsum("kd,kd->k", f, np.linalg.solve(A, f.T).T), 0))
        ucb = f @ w + alpha * bonus
        if name == "greedy":
            p = np.eye(K)[np.argmax(ucb)]
            return p, int(np.argmax(ucb))
        if t == 0 and first:
            p = np.full(K, 1 / K)
        elif tau == 0:
            p = np.eye(K)[np.argmax(ucb)]
        else:
            e = np.exp((ucb - ucb.max()) / tau)
            p = e / e.sum()
        return p, _sample(p, draw[0])
    if name == "thompson":
        s2, m0, v0 = params.get("noise_std", 1.5) ** 2, params.get("prior_mean", 0.0), 1.0
        v0 = params.get("prior_var", 1.0)
        P = np.eye(d) / v0 + X.T @ X / s2
        mu = np.linalg.solve(P, m0 / v0 + X.T @ r / s2)
        L = np.linalg.cholesky(P)
        w = mu + sla.solve_triangular(L.T, draw[0], lower=False)
        k = int(np.argmax(f @ w))
        return np.eye(K)[k], k
    if name == "bernoulli_ucb":
        s = sums / (1 + counts) + 1.0 / np.sqrt(1 + counts)
    elif name == "bernoulli_thompson":
        z, u = draw
        ga = [_gamma_numpy(1 + sums[k], z[k, 0], u[k, 0]) for k in range(K)]
        gb = [_gamma_numpy(1 + counts[k] - sums[k], z[k, 1], u[k, 1]) for k in range(K)]
        s = np.array(ga) / (np.array(ga) + np.array(gb))
    elif name == "empirical_mean":
        s = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    elif name == "oracle":
        s = params["means"]
    else:  # uniform
        p = np.full(K, 1 / K)
        return p, _sample(p, draw[0])
    k = int(np.argmax(s))
    return np.eye(K)[k], k


def _numpy_rollout(env, name, params, draws):
    B, K, _ = env.features.shape
    f_all, means, noise = env.features.numpy(), env.means.numpy(), env.noise.numpy()
    actions, probs = np.zeros((B, T), int), np.zeros((B, T, K))
    for b in range(B):
        X, r, acts = np.zeros((0, env.dim)), np.zeros(0), np.zeros(0, int)
        for t in range(T):
            draw = [x[b].numpy() for x in draws[t]]
            p, k = _choose(name, {**params, "means": means[b]}, f_all[b], t, X, r, acts, draw)
            rew = means[b, k] + noise[b, t] if env.kind == "gaussian" else float(
                noise[b, t] < means[b, k])  # fmt: skip
            X, r, acts = np.vstack([X, f_all[b, k]]), np.append(r, rew), np.append(acts, k)
            actions[b, t], probs[b, t] = k, p
    return actions, probs


def _ill_conditioned(B=6, K=6, d=4):
    """Actions nearly on a line (condition number of Σ a aᵀ ~ 1e8), one w* per environment."""
    g = torch.Generator().manual_seed(5)
    base = torch.randn(B, 1, d, generator=g, dtype=torch.float64)
    scale = torch.linspace(-1, 1, K, dtype=torch.float64).view(1, K, 1)
    f = base * scale + 1e-4 * torch.randn(B, K, d, generator=g, dtype=torch.float64)
    w = torch.rand(B, d, generator=g, dtype=torch.float64)
    noise = 1.5 * torch.randn(B, T, generator=g, dtype=torch.float64)
    return BanditBatch(f, torch.einsum("bkd,bd->bk", f, w), noise, "gaussian", "linear_bandit")


LINEAR = [("linucb", {}), ("linucb", {"ridge": 1e-3, "alpha": 0.5}), ("soft_linucb", {}),
          ("soft_linucb", {"temperature": 0.5, "uniform_first": True}), ("greedy", {}),
          ("thompson", {}), ("thompson", {"prior_mean": 0.5, "prior_var": 1 / 12,
                                          "noise_std": 0.3}),
          ("empirical_mean", {}), ("uniform", {}), ("oracle", {})]  # fmt: skip
ARMS = [("bernoulli_ucb", {}), ("bernoulli_thompson", {}), ("empirical_mean", {}),
        ("linucb", {})]  # fmt: skip


@pytest.mark.parametrize("env_kind", ["linear", "ill_conditioned", "bernoulli"])
def test_policies_match_numpy_per_environment_with_the_same_draws(env_kind):
    g = torch.Generator().manual_seed(0)
    if env_kind == "bernoulli":
        env = E.get("bernoulli_bandit", n_actions=4, horizon=T).sample(
            6, generator=g, dtype=torch.float64
        )
    elif env_kind == "linear":
        env = E.get("linear_bandit", dim=3, n_actions=5, horizon=T).sample(
            6, generator=g, dtype=torch.float64)  # fmt: skip
    else:
        env = _ill_conditioned()
    for name, params in ARMS if env_kind == "bernoulli" else LINEAR:
        policy = get(name, **params)
        out = rollout(env, policy, generator=torch.Generator().manual_seed(7))
        g2 = torch.Generator().manual_seed(7)  # replay the draws the rollout consumed
        draws = [policy.draw(env, g2) for _ in range(T)]
        actions, probs = _numpy_rollout(env, name, params, draws)
        assert np.array_equal(out.actions.numpy(), actions), (env_kind, name, params)
        np.testing.assert_allclose(out.probs.numpy(), probs, atol=1e-9, err_msg=name)
        regret = env.means.max(1).values[:, None] - env.means.gather(1, out.actions)
        assert torch.allclose(out.regret, regret)


def test_a_wrong_bonus_is_caught_by_the_reference():
    """The comparison can fail: LinUCB with α = 1 does not play LinUCB's (α = 2) actions."""
    env = E.get("linear_bandit", dim=3, n_actions=5, horizon=T).sample(
        6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # fmt: skip
    out = rollout(env, get("linucb", alpha=1.0), generator=torch.Generator().manual_seed(7))
    draws = [get("linucb").draw(env, torch.Generator().manual_seed(7)) for _ in range(T)]
    actions, _ = _numpy_rollout(env, "linucb", {}, draws)
    assert not np.array_equal(out.actions.numpy(), actions)


def test_regret_ordering_on_the_papers_linear_bandit():
    """LinUCB < Thompson sampling, empirical mean < uniform on d = 5, K = 10, T = 100."""
    g = torch.Generator().manual_seed(1)
    env = E.get("linear_bandit", horizon=100).sample(300, generator=g)
    names = ["linucb", "thompson", "empirical_mean", "uniform", "oracle"]
    runs = play_all(env, {n: get(n) for n in names})
    final = {n: r.cumulative_regret()[:, -1].mean().item() for n, r in runs.items()}
    assert final["oracle"] == 0
    assert final["linucb"] < min(final["thompson"], final["empirical_mean"]) < final["uniform"]


def test_mixture_splits_environments_and_labels_with_the_expert():
    g = torch.Generator().manual_seed(0)
    env = E.get("bernoulli_bandit", horizon=10).sample(10, generator=g)
    ts = get("bernoulli_thompson")
    mix = rollout_mixture(env, [(get("uniform"), 9), (ts, 1)], expert=ts)
    assert mix.actions.shape == (10, 10) and mix.expert_probs.shape == (10, 10, 5)
    assert split_sizes(10, [9, 1]) == [9, 1] and split_sizes(7, [1, 1, 1]) == [2, 3, 2]
    # the uniform part is played first, from the same generator, labelled by Thompson sampling
    part = rollout(env.rows(0, 9), get("uniform"), generator=torch.Generator().manual_seed(0),
                   expert=ts)  # fmt: skip
    assert torch.equal(part.actions, mix.actions[:9])
    assert torch.equal(part.expert_actions, mix.expert_actions[:9])
    with pytest.raises(InputError):
        split_sizes(4, [0, 0])


@pytest.mark.parametrize(
    "name, params",
    [("linucb", {"ridge": 0}), ("linucb", {"alpha": -1}), ("thompson", {"noise_std": 0}),
     ("soft_linucb", {"temperature": 0}), ("ucb", {}), ("linucb", {"lam": 1})],
)  # fmt: skip
def test_bad_policy_input_is_one_input_error(name, params):
    with pytest.raises(InputError):
        get(name, **params)


def test_rollout_longer_than_the_sampled_noise_is_refused():
    env = E.get("linear_bandit", horizon=5).sample(2)
    with pytest.raises(InputError, match="horizon"):
        rollout(env, get("uniform"), horizon=6)


def test_rank_one_carry_matches_the_exact_solve_over_200_steps(monkeypatch):
    """Sherman–Morrison carries with no periodic re-solve choose what one batched inverse of
    λI + Σ a aᵀ per step chooses (probabilities to 1e-8), LinUCB, soft LinUCB and TS alike."""
    import icsim.environments.policies as P

    monkeypatch.setattr(P, "RESOLVE_EVERY", 10**9)
    env = E.get("linear_bandit", horizon=200).sample(
        64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)  # fmt: skip
    for name in ("linucb", "soft_linucb", "thompson"):
        policy = get(name)
        out = rollout(env, policy, generator=torch.Generator().manual_seed(1))
        g, state = torch.Generator().manual_seed(1), P.init_state(env)
        for t in range(env.horizon):
            p, a = policy.act(env, state, t, policy.draw(env, g))  # no carry: exact inverse
            assert torch.equal(a, out.actions[:, t]), (name, t)
            assert torch.allclose(p, out.probs[:, t], atol=1e-8), (name, t)
            state = P.update_state(state, env, t, a, env.reward(t, a))
