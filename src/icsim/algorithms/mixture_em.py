"""Solvers for mixtures of linear regressions in context (PAPERS.md §6): EM with the closed-form
M-step, gradient EM (the M-step replaced by T gradient-ascent steps, the double loop Jin,
Balasubramanian, Lai 2024's transformer carries out), the symmetric two-component EM of
Balakrishnan, Wainwright, Yu 2017, the Bayes-optimal posterior mean over a known set of m
vectors (Pathak et al. 2024) and the oracle that knows the labels z.

Every EM variant knows σ (as the papers assume) and needs n > d context points for its
weighted least-squares M-step. Their query prediction is the mixture mean Σ_k π_k x_qᵀβ_k, the
Bayes prediction under the estimate: 0 for the symmetric model, where the estimate of β* (up to
sign, `error_up_to_sign`) and the label-aware predictor (`label_aware_predictions`) are what
carry information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm
from icsim.algorithms.mixture_steps import (
    EMDesign,
    SymmetricOperators,
    e_step,
    em_design,
    initial_betas,
    q_gradient,
    symmetric_operators,
    symmetric_weights,
    tanh_,
    weighted_least_squares,
)
from icsim.errors import InputError
from icsim.tasks.base import Problem, TaskBatch

FAMILY = "mixture_linear_regression"
INITIALIZATIONS = ("random", "spectral", "given")


@dataclass
class MixtureProblem(Problem):
    """A Problem that also carries the sampler's truth (what the oracle and the posterior mean
    may know): labels z of the context [B, n] and queries [B, m], components [B, K, d], π [B, K]."""

    labels: torch.Tensor | None = None
    labels_query: torch.Tensor | None = None
    components: torch.Tensor | None = None
    weights: torch.Tensor | None = None


def mixture_problem(batch: TaskBatch, n_context: int) -> MixtureProblem:
    """`batch.split(n_context)` with the labels, components and weights of the batch."""
    p = batch.split(n_context)
    return MixtureProblem(
        p.X, p.y, p.X_query, p.y_query, batch.labels[:, :n_context],
        batch.labels[:, n_context:], batch.components, batch.weights,
    )  # fmt: skip


class EMState(NamedTuple):
    betas: torch.Tensor  # [B, K, d]
    weights: torch.Tensor  # π [B, K]
    design: EMDesign | None = None  # None: rebuilt from the problem at the step


def error_up_to_sign(beta_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """min(‖β̂ − β‖, ‖β̂ + β‖)/‖β‖ in float64, [...] (the symmetric model identifies β* up to
    sign)."""
    b, t = beta_hat.double(), beta.double()
    err = torch.minimum((b - t).norm(dim=-1), (b + t).norm(dim=-1))
    return err / t.norm(dim=-1).clamp(min=1e-300)


def align_sign(beta_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """β̂ with the sign that brings it closer to β, [..., d]."""
    s = torch.where((beta_hat * beta).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(beta_hat.dtype)
    return beta_hat * s


def label_aware_predictions(beta_hat, X_query, labels_query) -> torch.Tensor:
    """x_qᵀβ̂_{z_q} [B, m] for a symmetric estimate β̂ [B, d] already aligned to β₁ = β*
    (`align_sign`): +x_qᵀβ̂ for z_q = 0, −x_qᵀβ̂ for z_q = 1 — the predictor that knows the
    query's label, the one a symmetric mixture can score (its Bayes prediction of y is 0)."""
    s = 1 - 2 * labels_query.to(beta_hat.dtype)
    return s * torch.einsum("bmd,bd->bm", X_query, beta_hat)


# -- the algorithms ------------------------------------------------------------------------------


class _Mixture(Algorithm):
    family = FAMILY

    def run(self, problem, steps=0, n_context=None):
        """As `Algorithm.run`; a TaskBatch is split with its truth (`mixture_problem`)."""
        if isinstance(problem, TaskBatch):
            problem = mixture_problem(
                problem, problem.n_points - 1 if n_context is None else n_context
            )
        return super().run(problem, steps)

    def _check_gradient(self):
        V.number("step_size", self.step_size, low=0, low_open=True)
        V.positive_int("inner_steps", self.inner_steps)

    def _check_em(self):
        V.number("noise_std", self.noise_std, low=0, low_open=True)
        V.choice("initialization", self.initialization, INITIALIZATIONS)
        V.seed("seed", self.seed)
        if self.initialization == "given" and self.initial is None:
            raise InputError("initialization='given' needs initial=[K, d] (or [B, K, d]) betas.")


@ALGORITHMS.register("mixture_em")
@dataclass(frozen=True, repr=False)
class MixtureEM(_Mixture):
    """EM for K linear regressions with known σ: r = `responsibilities`, then β_k by weighted
    least squares (closed form) and π_k = mean_i r_ik (Jin et al. 2024, §3; Pathak et al.'s batch
    EM baseline). Monotone in the likelihood; converges to a stationary point, which depends on
    the initialisation.

    n_components: K (default 2). noise_std: σ > 0 (default 1). update_weights: re-estimate π
    (default True; False keeps π uniform). initialization: "random" (default), "spectral" or
    "given" (`initial`); seed: the random draw's seed (default 0). State: `EMState`.
    """

    n_components: int = 2
    noise_std: float = 1.0
    update_weights: bool = True
    initialization: str = "random"
    initial: torch.Tensor | None = None
    seed: int = 0
    name = "mixture_em"

    def __post_init__(self):
        V.positive_int("n_components", self.n_components)
        self._check_em()

    def init(self, problem):
        K, X = self.n_components, problem.X
        betas = initial_betas(
            problem, K, self.initialization, self.initial, self.seed, self.noise_std
        )
        return EMState(betas, X.new_full((X.shape[0], K), 1.0 / K), self.design(problem))

    def design(self, problem) -> EMDesign:
        return em_design(problem.X, problem.y, self.n_components)

    def m_step(self, problem, r, betas, design):
        return weighted_least_squares(problem.X, problem.y, r, design)

    def step(self, problem, state):
        design = self.design(problem) if state.design is None else state.design
        r = e_step(design.Xt, problem.y, state.betas, state.weights, self.noise_std)
        betas = self.m_step(problem, r, state.betas, design)
        weights = r.mean(-1) if self.update_weights else state.weights
        return EMState(betas, weights, design)

    def predict(self, problem, state):
        return torch.einsum("bmd,bkd,bk->bm", problem.X_query, state.betas, state.weights)


@ALGORITHMS.register("mixture_gradient_em")
@dataclass(frozen=True, repr=False)
class MixtureGradientEM(MixtureEM):
    """EM whose M-step is T gradient-ascent steps β_k ← β_k + α (1/n) Σ_i r_ik (y_i − x_iᵀβ_k) x_i
    on Q(·|β_t), from β_t (Jin et al. 2024's gradient EM, the double loop their transformer
    implements). inner_steps: T >= 1 (default 1); step_size: α > 0 (default 1, which for
    x ~ N(0, I) is about one Newton step when r ≈ ½). Other parameters as `mixture_em`."""

    step_size: float = 1.0
    inner_steps: int = 1
    name = "mixture_gradient_em"

    def __post_init__(self):
        super().__post_init__()
        self._check_gradient()

    def design(self, problem) -> EMDesign:
        return em_design(problem.X, problem.y, self.n_components, moments=False)

    def m_step(self, problem, r, betas, design):
        for _ in range(self.inner_steps):
            grad = q_gradient(problem.X, problem.y, r, betas, design.Xt)
            betas = betas + self.step_size * grad
        return betas


@ALGORITHMS.register("symmetric_em")
@dataclass(frozen=True, repr=False)
class SymmetricEM(_Mixture):
    """EM for the symmetric two-component mixture β₂ = −β₁ = −β*, π = ½ (Balakrishnan,
    Wainwright, Yu 2017, §3.2): w_i = tanh(y_i⟨x_i, β⟩/σ²), β⁺ = (Σ x_ix_iᵀ)⁻¹ Σ w_i y_i x_i.
    Converges to ±β* up to statistical error from any β⁰ with ⟨β⁰, β*⟩ ≠ 0 when the SNR is
    large enough; from β⁰ = 0 it stays at 0. Parameters and defaults as `mixture_em` (K = 1
    vector). State: `SymmetricState` (β [B, d] and `SymmetricOperators`, fixed across steps, so
    a step is two batched mat-vecs and a sigmoid); predictions: 0 (the Bayes prediction)."""

    noise_std: float = 1.0
    initialization: str = "random"
    initial: torch.Tensor | None = None
    seed: int = 0
    name = "symmetric_em"

    def __post_init__(self):
        self._check_em()

    def initial_beta(self, problem):
        given = None if self.initial is None else torch.as_tensor(self.initial).unsqueeze(-2)
        how, seed = self.initialization, self.seed
        return initial_betas(problem, 1, how, given, seed, self.noise_std)[:, 0]

    def init(self, problem):
        ops = symmetric_operators(problem.X, problem.y, self.noise_std)
        return SymmetricState(self.initial_beta(problem), ops)

    def step(self, problem, state):
        ops = state.operators
        if ops is None:
            ops = symmetric_operators(problem.X, problem.y, self.noise_std)
        w = tanh_(torch.bmm(state.beta.unsqueeze(1), ops.score))  # [B, 1, n]
        return SymmetricState(torch.bmm(w, ops.update).squeeze(1), ops)

    def predict(self, problem, state):
        return problem.X_query.new_zeros(problem.X_query.shape[:2])


class SymmetricState(NamedTuple):
    beta: torch.Tensor  # [B, d]
    operators: SymmetricOperators | None  # the closed-form M-step's, or None (gradient M-step)


@ALGORITHMS.register("symmetric_gradient_em")
@dataclass(frozen=True, repr=False)
class SymmetricGradientEM(SymmetricEM):
    """Symmetric EM with the gradient M-step β ← β + α·(1/n) Σ_i (w_i y_i x_i − x_ix_iᵀβ), T times
    with w fixed at the E-step's (Jin et al. 2024; Balakrishnan et al. 2017, §3.3 for T = 1).
    step_size: α > 0 (default 1); inner_steps: T >= 1 (default 1)."""

    step_size: float = 1.0
    inner_steps: int = 1
    name = "symmetric_gradient_em"

    def __post_init__(self):
        super().__post_init__()
        self._check_gradient()

    def init(self, problem):
        return SymmetricState(self.initial_beta(problem), None)

    def step(self, problem, state):
        X, y, beta = problem.X, problem.y, state.beta
        wy = symmetric_weights(X, y, beta, self.noise_std) * y
        n = X.shape[1]
        for _ in range(self.inner_steps):
            grad = torch.einsum("bnd,bn->bd", X, wy - torch.einsum("bnd,bd->bn", X, beta)) / n
            beta = beta + self.step_size * grad
        return SymmetricState(beta, None)


class Posterior(NamedTuple):
    mean: torch.Tensor  # E[β | context] [B, d]
    probs: torch.Tensor  # P(z = j | context) [B, m]


@ALGORITHMS.register("mixture_posterior_mean")
@dataclass(frozen=True, repr=False)
class PosteriorMean(_Mixture):
    """The Bayes-optimal predictor when every prompt draws one of m known vectors (Pathak et al.
    2024): P(z = j | context) = softmax_j(log π_j − Σ_i (y_i − x_iᵀβ_j)²/2σ²), ŷ_q = x_qᵀ Σ_j
    P(j)β_j. σ = 0: the candidates of least residual share the posterior (by π).

    components: [m, d] or [B, m, d]; None (default) reads the problem's (`mixture_problem`).
    noise_std: σ >= 0 (default 1). prior: π (default: the problem's weights, else uniform)."""

    components: torch.Tensor | None = None
    noise_std: float = 1.0
    prior: tuple | None = None
    name = "mixture_posterior_mean"
    closed_form = True

    def __post_init__(self):
        V.number("noise_std", self.noise_std, low=0)

    def init(self, problem):
        X, y = problem.X, problem.y
        comp = (
            self.components if self.components is not None else getattr(problem, "components", None)
        )
        if comp is None:
            raise InputError("mixture_posterior_mean needs components=[m, d] (the candidate set).")
        comp = torch.as_tensor(comp).to(device=X.device, dtype=X.dtype)
        B, m = X.shape[0], comp.shape[-2]
        comp = comp.expand(B, m, X.shape[2])
        if self.prior is not None:
            pi = torch.as_tensor(self.prior, dtype=X.dtype, device=X.device).expand(B, m)
        elif getattr(problem, "weights", None) is not None:
            pi = problem.weights.to(X.dtype)
        else:
            pi = X.new_full((B, m), 1.0 / m)
        sse = (y.unsqueeze(-1) - torch.einsum("bnd,bkd->bnk", X, comp)).square().sum(1)
        if self.noise_std > 0:
            logits = pi.log() - sse / (2 * self.noise_std**2)
        else:  # the limit σ → 0: mass on the least residual, up to round-off of Σy²
            tol = 1e-8 * y.square().sum(1, keepdim=True) + torch.finfo(X.dtype).tiny
            best = sse <= sse.amin(-1, keepdim=True) + tol
            logits = torch.where(best, pi.log(), -math.inf)
        probs = torch.softmax(logits, -1)
        return Posterior(torch.einsum("bk,bkd->bd", probs, comp), probs)


@ALGORITHMS.register("mixture_oracle")
@dataclass(frozen=True, repr=False)
class MixtureOracle(_Mixture):
    """The oracle that knows the labels z (needs a `mixture_problem`).

    knows: "labels" (default): β̂_k = least squares (minimum norm) on the context points labelled
      k — pooled over both components with the sign flipped for the symmetric model (y_i s_i =
      x_iᵀβ* + noise, s_i = ±1), the oracle rate σ√(d/n) of Jin et al. 2024;
      "components": knows β_z itself (per-prompt mixing: its error is the noise σ² alone).
    symmetric: None (default) = whether the problem's components satisfy β₂ = −β₁ (K = 2).
    Predicts x_qᵀβ̂_{z_q} with the query's own label. State: β̂ [B, K, d]."""

    knows: str = "labels"
    symmetric: bool | None = None
    name = "mixture_oracle"
    closed_form = True

    def __post_init__(self):
        V.choice("knows", self.knows, ("labels", "components"))

    def init(self, problem):
        if getattr(problem, "labels", None) is None or problem.components is None:
            raise InputError(
                "mixture_oracle needs the labels: run it on a TaskBatch of "
                "mixture_linear_regression or a mixture_problem(batch, n_context)."
            )
        comp = problem.components.to(problem.X.dtype)
        if self.knows == "components":
            return comp
        X, y, K = problem.X, problem.y, comp.shape[1]
        sym = self.symmetric
        if sym is None:
            sym = K == 2 and torch.equal(comp[:, 1], -comp[:, 0])
        if sym:
            s = 1 - 2 * problem.labels.to(X.dtype)
            beta = (torch.linalg.pinv(X) @ (s * y).unsqueeze(-1)).squeeze(-1)
            return torch.stack([beta, -beta], 1)
        mask = torch.nn.functional.one_hot(problem.labels, K).to(X.dtype)  # [B, n, K]
        Xk = mask.transpose(1, 2).unsqueeze(-1) * X.unsqueeze(1)  # [B, K, n, d]
        yk = mask.transpose(1, 2) * y.unsqueeze(1)
        return (torch.linalg.pinv(Xk) @ yk.unsqueeze(-1)).squeeze(-1)

    def predict(self, problem, betas):
        idx = problem.labels_query[..., None].expand(-1, -1, betas.shape[-1])
        return (problem.X_query * torch.gather(betas, 1, idx)).sum(-1)
