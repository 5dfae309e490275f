"""Playing policies on a batch of environments: `rollout` (one policy, optionally labelled by an
expert acting on the same history), `rollout_mixture` (histories from several behaviours at
given ratios) and `play_all` (many policies on the same environments and noise)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.environments.base import BanditBatch
from icsim.environments.policies import Policy, init_state, update_state
from icsim.errors import InputError


@dataclass
class Rollout:
    """T steps of B environments: actions [B, T], rewards [B, T], the policy's probs [B, T, K],
    the noise-free regret [B, T]; with an expert, its actions and probs on the same history."""

    actions: torch.Tensor
    rewards: torch.Tensor
    probs: torch.Tensor
    regret: torch.Tensor
    expert_actions: torch.Tensor | None = None
    expert_probs: torch.Tensor | None = None

    def cumulative_regret(self) -> torch.Tensor:
        """Σ_{s ≤ t} regret_s, [B, T]."""
        return self.regret.cumsum(-1)


def _generator(env: BanditBatch, generator, seed: int = 0) -> torch.Generator:
    device = env.features.device
    if generator is None:
        return torch.Generator(device=device).manual_seed(seed)
    if generator.device.type != device.type:
        raise InputError(
            f"generator is on {generator.device} but the environments are on {device}: create "
            f"it with torch.Generator(device={str(device)!r})."
        )
    return generator


def rollout(env: BanditBatch, policy: Policy, horizon: int | None = None, generator=None, *,
            expert: Policy | None = None) -> Rollout:  # fmt: skip
    """Play `policy` for `horizon` steps (default: the environments' T) in every environment at
    once. Each step draws the policy's random numbers, then the expert's, from `generator`
    (default: a generator on the environments' device seeded 0); rewards use the noise drawn with
    the environments. `expert` labels each step with its own choice on the played history (the
    labels of Algorithm Distillation from another behaviour) without acting."""
    T = env.horizon if horizon is None else V.positive_int("horizon", horizon)
    if T > env.horizon:
        raise InputError(
            f"horizon={T} exceeds the {env.horizon} steps of noise the environments were sampled "
            f"with; sample them with horizon >= {T}."
        )
    g = _generator(env, generator)
    state = init_state(env, T)
    carry = policy.start(env)
    e_carry = expert.start(env) if expert is not None else None
    probs, e_acts, e_probs = None, [], []
    for t in range(T):
        p, a = policy.act(env, state, t, policy.draw(env, g), carry)
        if probs is None:  # written step by step: ~2× cheaper than stacking T tensors on dim 1
            probs = p.new_empty(p.shape[0], T, p.shape[1])
        probs[:, t] = p
        if expert is not None:
            ep, ea = expert.act(env, state, t, expert.draw(env, g), e_carry)
            e_acts.append(ea)
            e_probs.append(ep)
        r = env.reward(t, a)
        state = update_state(state, env, t, a, r)
        carry = policy.advance(carry, env, state, t, a, r)
        if expert is not None:
            e_carry = expert.advance(e_carry, env, state, t, a, r)
    out = Rollout(state.actions, state.rewards, probs, env.regret(state.actions))
    if expert is not None:
        out.expert_actions, out.expert_probs = torch.stack(e_acts, 1), torch.stack(e_probs, 1)
    return out


def split_sizes(n: int, weights: Sequence[float]) -> list[int]:
    """n split in proportion to `weights` (rounded, summing to n)."""
    for w in weights:
        V.number("mixture weight", w, low=0)
    total = float(sum(weights))
    if total <= 0:
        raise InputError(f"mixture weights must not all be zero, got {list(weights)!r}.")
    edges = [round(n * sum(weights[: i + 1]) / total) for i in range(len(weights))]
    return [b - a for a, b in zip([0] + edges[:-1], edges)]


def rollout_mixture(
    env: BanditBatch,
    behaviours: Sequence[tuple[Policy, float]],
    horizon=None,
    generator=None,
    *,
    expert: Policy | None = None,
) -> Rollout:
    """Histories from several behaviours at ratios: the environments are split in proportion to
    the weights (rows 0.. to the first behaviour, ...; they are i.i.d.) and each part is played by
    its behaviour, labelled by `expert` (Lin et al.'s distribution-ratio experiment: ½ uniform +
    ½ Thompson sampling, or 9:1)."""
    g = _generator(env, generator)
    sizes = split_sizes(env.n_envs, [w for _, w in behaviours])
    parts, start = [], 0
    for (policy, _), n in zip(behaviours, sizes):
        if n:
            parts.append(rollout(env.rows(start, start + n), policy, horizon, g, expert=expert))
        start += n
    joined = {
        k: torch.cat([getattr(p, k) for p in parts]) if getattr(parts[0], k) is not None else None
        for k in Rollout.__dataclass_fields__
    }
    return Rollout(**joined)


def play_all(env: BanditBatch, policies: Mapping[str, Policy], horizon=None,
             seed: int = 0) -> dict[str, Rollout]:  # fmt: skip
    """Every policy on the same environments and reward noise, each with its own generator
    seeded `seed` (so policies that draw alike draw the same numbers)."""
    return {
        name: rollout(env, p, horizon, _generator(env, None, seed)) for name, p in policies.items()
    }
