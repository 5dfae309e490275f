"""Sequential decision environments: a `BanditBatch` of thousands of bandits stepped at once, the
`Environment` interface every family implements, and the seeded samplers they share.

Every random draw of an environment is made when it is sampled (the arms and the reward noise of
all T steps), so any number of policies played on one `BanditBatch` meet the same environments
and the same noise (common random numbers), and regret is recorded without the noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.registry import Registry

#: every environment family, by name: `@ENVIRONMENTS.register(name)` in the family's module
ENVIRONMENTS = Registry("environment", package="icsim.environments")

NOISE_KINDS = ("gaussian", "bernoulli")


@dataclass
class BanditBatch:
    """B bandits with K arms each, for a horizon of T steps, every draw already made.

    features [B, K, d]: the action vectors a_k (one-hot arms, d = K, for a multi-armed bandit);
    means [B, K]: the expected reward of every arm (⟨a_k, w*⟩, or the Bernoulli mean);
    noise [B, T]: step t's draw, the same whichever arm is played — Gaussian noise ε_t added to
    the mean, or a uniform u_t with reward 1[u_t < μ_a] (kind "bernoulli");
    truth: what else the sampler drew (`w_star`).
    """

    features: torch.Tensor
    means: torch.Tensor
    noise: torch.Tensor
    kind: str
    env: str
    truth: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getattr__(self, name):
        truth = self.__dict__.get("truth", {})
        if name in truth:
            return truth[name]
        raise AttributeError(f"BanditBatch of {self.__dict__.get('env')!r} has no {name!r}")

    @property
    def n_envs(self) -> int:
        return self.features.shape[0]

    @property
    def n_actions(self) -> int:
        return self.features.shape[1]

    @property
    def dim(self) -> int:
        return self.features.shape[2]

    @property
    def horizon(self) -> int:
        return self.noise.shape[1]

    def reward(self, t: int, actions: torch.Tensor) -> torch.Tensor:
        """Rewards [B] of playing `actions` [B] (arm indices) at step t."""
        mu = self.means.gather(1, actions.long().unsqueeze(1)).squeeze(1)
        if self.kind == "gaussian":
            return mu + self.noise[:, t]
        return (self.noise[:, t] < mu).to(self.means.dtype)

    def regret(self, actions: torch.Tensor) -> torch.Tensor:
        """Expected (noise-free) regret max_k μ_k − μ_a of `actions` [B] or [B, T]."""
        acts = actions.long().reshape(self.n_envs, -1)
        best = self.means.max(-1, keepdim=True).values
        return (best - self.means.gather(1, acts)).reshape(actions.shape)

    def optimal_action(self) -> torch.Tensor:
        """The best arm [B] (the first of equal ones)."""
        return self.means.argmax(-1)

    def rows(self, start: int, stop: int) -> BanditBatch:
        """Environments start..stop−1."""
        cut = {k: v[start:stop] for k, v in self.truth.items()}
        return replace(
            self,
            features=self.features[start:stop],
            means=self.means[start:stop],
            noise=self.noise[start:stop],
            truth=cut,
        )

    def to(self, dtype: torch.dtype) -> BanditBatch:
        """The same environments and noise in another floating dtype (e.g. float32 rollouts of
        environments sampled in float64)."""
        return replace(
            self, features=self.features.to(dtype), means=self.means.to(dtype),
            noise=self.noise.to(dtype), truth={k: v.to(dtype) for k, v in self.truth.items()},
        )  # fmt: skip


class Environment:
    """A family of bandits. Subclasses set `name`, `n_actions`, `horizon` and `_sample`."""

    name: str = "environment"
    n_actions: int
    horizon: int

    def sample(
        self, n_envs: int, *, generator: torch.Generator | None = None, device="cpu",
        dtype=torch.float32,
    ) -> BanditBatch:  # fmt: skip
        """Draw `n_envs` environments (arms and all T steps' noise) on `device` from `generator`;
        the same generator state gives the same environments on the same device and dtype."""
        V.positive_int("n_envs", n_envs)
        if dtype not in (torch.float32, torch.float64):
            raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}.")
        device = torch.device(device)
        if generator is not None and generator.device.type != device.type:
            raise InputError(
                f"generator is on {generator.device} but environments were asked on {device}: "
                f"create it with torch.Generator(device={str(device)!r})."
            )
        return self._sample(n_envs, generator, device, dtype)

    def _sample(self, n_envs, generator, device, dtype) -> BanditBatch:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def check_bandit(n_actions, horizon) -> None:
    """What every bandit family checks: K ≥ 2 arms and a horizon T ≥ 1."""
    if isinstance(n_actions, bool) or not isinstance(n_actions, int) or n_actions < 2:
        raise InputError(
            f"n_actions must be an integer >= 2 (a bandit needs two arms to choose from), "
            f"got {n_actions!r}."
        )
    V.positive_int("horizon", horizon)


# -- seeded Gamma and Beta draws --------------------------------------------------------------
# torch's Gamma/Beta samplers take no generator, so they cannot be seeded per device. These are
# Marsaglia & Tsang (2000)'s method as a pure function of given normal and uniform draws, with R
# candidates tried at once (acceptance ≥ 0.95 each for α ≥ 1, so all R fail with probability
# ≤ 0.05^R; then the mode-like d = α − 1/3 is returned).

GAMMA_CANDIDATES = 8


def gamma_draws(shape, generator, device, dtype, candidates: int = GAMMA_CANDIDATES):
    """The (normals [*shape, R], uniforms [*shape, R + 1]) `gamma_from_draws` consumes."""
    z = torch.randn(*shape, candidates, generator=generator, device=device, dtype=dtype)
    u = torch.rand(*shape, candidates + 1, generator=generator, device=device, dtype=dtype)
    return z, u


def gamma_from_draws(alpha: torch.Tensor, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Gamma(α, 1) samples [...] from normals z [..., R] and uniforms u [..., R + 1] (Marsaglia
    & Tsang 2000; α < 1 by Gamma(α) = Gamma(α + 1)·U^{1/α}, the last uniform)."""
    a = torch.where(alpha < 1, alpha + 1, alpha)
    d = (a - 1.0 / 3.0).unsqueeze(-1)
    c = 1.0 / torch.sqrt(9.0 * d)
    v = (1.0 + c * z) ** 3
    vpos = v.clamp(min=torch.finfo(v.dtype).tiny)
    ok = (v > 0) & (torch.log(u[..., :-1]) < 0.5 * z**2 + d - d * vpos + d * torch.log(vpos))
    first = torch.where(ok.any(-1), ok.to(torch.int8).argmax(-1), -1)
    pick = (d * vpos).gather(-1, first.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    g = torch.where(first >= 0, pick, d.squeeze(-1))
    boost = u[..., -1].clamp(min=torch.finfo(u.dtype).tiny) ** (1.0 / alpha)
    return torch.where(alpha < 1, g * boost, g)


def beta_from_draws(a: torch.Tensor, b: torch.Tensor, z: torch.Tensor, u: torch.Tensor):
    """Beta(a, b) = G_a / (G_a + G_b) from draws [..., 2, R] and [..., 2, R + 1]."""
    ga = gamma_from_draws(a, z[..., 0, :], u[..., 0, :])
    gb = gamma_from_draws(b, z[..., 1, :], u[..., 1, :])
    return ga / (ga + gb)
