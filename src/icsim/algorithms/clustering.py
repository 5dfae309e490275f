"""Clustering in context: Lloyd's algorithm (k-means) and soft EM for an isotropic Gaussian
mixture, batched over prompts, step by step (He et al. 2025 compare trained transformers with
both; PAPERS.md §7).

A problem is a `ClusteringProblem` (points, mask, K, and what an initialisation may use);
`run(batch_or_problem, steps)` returns a `ClusteringTrajectory`: the centres after every step
(`iterates` [T+1, B, K, d]), the hard labels (`predictions` [T+1, B, n], −1 at padding) and the
responsibilities (`responsibilities` [T+1, B, n, K]; one-hot for Lloyd). Step 0 is the
initialisation. Both match scikit-learn step for step (tests): `KMeans(init=centres, n_init=1,
max_iter=T, tol=0)` and `GaussianMixture(covariance_type="spherical", max_iter=T, tol=0)` with
the same initial weights, means and precisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm, Trajectory
from icsim.algorithms.clustering_ops import (
    argmin_onehot,
    argmin_rows,
    augmented,
    kmeans_plus_plus,
    max_rows,
    nearest_scores,
    random_points,
    scores,
)
from icsim.errors import InputError
from icsim.tasks.base import TaskBatch

INITS = ("random", "kmeans++", "perturbed_truth", "given")


class ClusteringProblem(NamedTuple):
    """X [B, n, d], mask [B, n] (True = a real point), K; `mu` (true centres, for
    initialization="perturbed_truth"), `sigma` [B] (known σ), `centres0` [B, K, d]
    (initialization="given"), `weights` [B, K] (known mixing weights; None = uniform)."""

    X: torch.Tensor
    mask: torch.Tensor
    n_clusters: int
    mu: torch.Tensor | None = None
    sigma: torch.Tensor | None = None
    centres0: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    aug: torch.Tensor | None = None  # `augmented(X, mask)`, cached by `clustering_problem`

    def rows(self, index) -> ClusteringProblem:
        """The problems `index` picks (a slice or an index tensor along the batch)."""
        return ClusteringProblem(*(f if f is None or type(f) is int else f[index] for f in self))


def features(problem: ClusteringProblem) -> torch.Tensor:
    """The problem's `augmented` rows, from its cache when it has one."""
    return augmented(problem.X, problem.mask) if problem.aug is None else problem.aug


def clustering_problem(batch: TaskBatch, centres0=None, n_clusters: int | None = None):
    """The ClusteringProblem of a `gmm_clustering` batch (every point, its mask and truth)."""
    truth = batch.truth
    mu = truth.get("mu")
    K = n_clusters or (mu.shape[1] if mu is not None else None)
    if K is None:
        raise InputError("n_clusters is needed for a batch without true centres `mu`.")
    mask = truth.get("mask")
    if mask is None:
        mask = torch.ones(batch.xs.shape[:2], dtype=torch.bool, device=batch.xs.device)
    X = batch.xs
    return ClusteringProblem(
        X, mask, K, mu, truth.get("sigma"), centres0, truth.get("weights"), augmented(X, mask)
    )


@dataclass
class ClusteringTrajectory(Trajectory):
    """`iterates` = centres [T+1, B, K, d], `predictions` = labels [T+1, B, n],
    `responsibilities` [T+1, B, n, K]."""

    responsibilities: torch.Tensor | None = None


class LloydState(NamedTuple):
    centres: torch.Tensor  # [B, K, d]


class EMState(NamedTuple):
    centres: torch.Tensor  # [B, K, d]
    weights: torch.Tensor  # [B, K] mixing weights π
    variances: torch.Tensor  # [B, K] σ_k² (all equal unless per-component)


class _Clustering(Algorithm):
    """What Lloyd and EM share: the initialisation, the run loop and the trajectory.

    initialization: "kmeans++" (default), "random" (K distinct points), "perturbed_truth" (μ_k +
    perturbation · Δ · ξ_k, ξ_k ~ N(0, I_d/d), Δ the prompt's minimum centre separation: a
    start at a relative distance `perturbation` from the truth), or "given"
    (`problem.centres0`). seed: the initialisation's random draws (a torch.Generator on the
    problem's device)."""

    family = "gmm_clustering"

    def _check_init(self):
        V.choice("initialization", self.initialization, INITS)
        V.seed("seed", self.seed)
        V.number("perturbation", self.perturbation, low=0)

    def initial_centres(self, problem: ClusteringProblem) -> torch.Tensor:
        X, mask, K = problem.X, problem.mask, problem.n_clusters
        if K < 2 or bool((mask.sum(1) < K).any()):
            raise InputError(
                f"every prompt needs at least K = {K} >= 2 real points to start {K} clusters; "
                "sample more points or use fewer clusters."
            )
        gen = torch.Generator(device=X.device).manual_seed(self.seed)
        if self.initialization == "given":
            if problem.centres0 is None or problem.centres0.shape != (X.shape[0], K, X.shape[2]):
                raise InputError(
                    f"initialization='given' needs problem.centres0 of shape [{X.shape[0]}, {K}, "
                    f"{X.shape[2]}]; pass centres0= to clustering_problem."
                )
            return problem.centres0.to(X.dtype)
        if self.initialization == "random":
            idx = random_points(X, mask, K, gen)
            return torch.gather(X, 1, idx[..., None].expand(-1, -1, X.shape[2]))
        if self.initialization == "kmeans++":
            return kmeans_plus_plus(X, mask, K, gen)
        if problem.mu is None:
            raise InputError(
                "initialization='perturbed_truth' needs the true centres (problem.mu)."
            )
        mu = problem.mu.to(X.dtype)
        dist = torch.cdist(mu, mu) + torch.diag(mu.new_full((K,), float("inf")))
        delta = dist.flatten(1).amin(1)[:, None, None]
        xi = torch.randn(mu.shape, generator=gen, device=X.device, dtype=X.dtype)
        return mu + self.perturbation * delta * xi / math.sqrt(X.shape[2])

    def responsibilities(self, problem, state) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, problem, state) -> torch.Tensor:
        labels = self.responsibilities(problem, state).argmax(-1)
        return torch.where(problem.mask, labels, -1)

    def iterate(self, state) -> torch.Tensor:
        return state.centres

    def _problem(self, problem) -> ClusteringProblem:
        if isinstance(problem, TaskBatch):
            return clustering_problem(problem, n_clusters=getattr(self, "n_clusters", None))
        return problem

    def run(self, problem, steps: int = 0, n_context=None) -> ClusteringTrajectory:
        """`steps` steps from the initialisation on a ClusteringProblem or a gmm batch."""
        V.nonnegative_int("steps", steps)
        problem = self._problem(problem)
        state = self.init(problem)
        cs, labels, resp = [], [], []
        for t in range(steps + 1):
            if t:
                state = self.step(problem, state)
            r = self.responsibilities(problem, state)
            cs.append(state.centres)
            resp.append(r)
            labels.append(torch.where(problem.mask, r.argmax(-1), -1))
        return ClusteringTrajectory(
            torch.stack(cs), torch.stack(labels), self.name, torch.stack(resp)
        )

    def fit(self, problem, steps: int, block: int | None = None):
        """The state after `steps` steps from the initialisation, no trajectory kept: the same
        numbers as `steps` calls of `step`, computed `block` problems at a time (default 256 on
        a CPU, where a block's points then stay in cache across the steps; the whole batch on
        a GPU). A problem whose state a step leaves unchanged is at a fixed point (every later
        step returns it as it is; scikit-learn's KMeans stops there too) and leaves the block."""
        V.nonnegative_int("steps", steps)
        problem = self._problem(problem)
        state = self.init(problem)
        B = problem.X.shape[0]
        if block is None:
            block = 256 if problem.X.device.type == "cpu" else B
        V.positive_int("block", block)
        out = [t.clone() for t in state]
        for start in range(0, B, block):
            idx = slice(start, start + block)  # views; an index tensor once some leave
            part, s = problem.rows(idx), type(state)(*(t[idx] for t in state))
            for _ in range(steps):
                new = self.step(part, s)
                moving = torch.stack([(a != b).flatten(1).any(1) for a, b in zip(new, s)]).any(0)
                s = new
                if 2 * int(moving.sum()) <= len(moving):  # half at fixed points: drop them
                    for o, t in zip(out, s):
                        o[idx] = t
                    if isinstance(idx, slice):
                        idx = torch.arange(start, start + len(moving), device=moving.device)
                    idx, part = idx[moving], part.rows(moving)
                    s = type(state)(*(t[moving] for t in s))
                    if not len(idx):
                        break
            for o, t in zip(out, s):
                o[idx] = t
        return type(state)(*out)


@ALGORITHMS.register("lloyd")
@dataclass(frozen=True)
class Lloyd(_Clustering):
    """Lloyd's algorithm (k-means): z_i = argmin_k ‖x_i − μ_k‖², μ_k = mean of its points
    (the σ → 0 limit of soft EM with known σ; He et al. 2025's baseline).

    Empty clusters: a centre with no point keeps its position (scikit-learn instead moves it to
    the point farthest from its centre; the two agree whenever no cluster empties).
    Hyper-parameters: see `_Clustering` (initialization, seed, perturbation)."""

    initialization: str = "kmeans++"
    seed: int = 0
    perturbation: float = 0.5
    name = "lloyd"

    def __post_init__(self):
        self._check_init()

    def init(self, problem):
        return LloydState(self.initial_centres(problem))

    def labels(self, problem, state) -> torch.Tensor:
        """[B, n] nearest centre of every point, K at padding."""
        z = argmin_rows(nearest_scores(features(problem), state.centres))
        return z.masked_fill(~problem.mask, problem.n_clusters)

    def responsibilities(self, problem, state):
        ks = torch.arange(problem.n_clusters, device=problem.X.device)
        return (self.labels(problem, state)[..., None] == ks).to(problem.X.dtype)

    def step(self, problem, state):
        aug = features(problem)
        onehot = argmin_onehot(nearest_scores(aug, state.centres))  # [B, K, n]
        sums = torch.bmm(onehot, aug)  # [B, K, d + 2]: Σ x_i, Σ ‖x_i‖², count (padding: 0)
        counts = sums[..., -1:]
        new = sums[..., :-2] / counts.clamp(min=1)
        return LloydState(torch.where(counts > 0, new, state.centres))


VARIANCES = ("known", "shared", "per_component")


@ALGORITHMS.register("soft_em")
@dataclass(frozen=True)
class SoftEM(_Clustering):
    """Soft EM for a mixture of spherical Gaussians (Dempster, Laird, Rubin 1977; PAPERS.md §7):
    E-step γ_ik = softmax_k(log π_k − ‖x_i − μ_k‖²/2σ_k² − (d/2) log σ_k²),
    M-step N_k = Σ_i γ_ik, μ_k = Σ_i γ_ik x_i / N_k (and π_k = N_k/Σ N, σ_k² if learned).

    variance: "known" (default: σ fixed to `sigma`, or the prompt's true σ when sigma is
      None), "shared" (one σ² per prompt, re-estimated) or "per_component" (σ_k², as
      scikit-learn's covariance_type="spherical").
    learn_weights: re-estimate π (default False: π fixed to the problem's `weights`, uniform
      when it has none).
    reg_covar: added to estimated variances (scikit-learn's default 1e-6).
    min_mass: added to N_k (scikit-learn adds 10ε, its guard against empty components; pass
      min_mass=10 * torch.finfo(torch.float64).eps to reproduce it). With the default 0 the
      weights γ_ik / N_k are a softmax over points of log γ_ik, defined even for a component
      whose every γ_ik underflows to 0 (the em_step construction computes exactly this).
    Estimated variances start at the mean of min_k ‖x_i − μ_k‖²/d over the points.
    Hyper-parameters of the start: see `_Clustering` (initialization, seed, perturbation)."""

    initialization: str = "kmeans++"
    seed: int = 0
    perturbation: float = 0.5
    variance: str = "known"
    sigma: float | None = None
    learn_weights: bool = False
    reg_covar: float = 1e-6
    min_mass: float = 0.0
    name = "soft_em"

    def __post_init__(self):
        self._check_init()
        V.choice("variance", self.variance, VARIANCES)
        if self.sigma is not None:
            V.number("sigma", self.sigma, low=0, low_open=True)
        V.number("reg_covar", self.reg_covar, low=0)
        V.number("min_mass", self.min_mass, low=0)

    def init(self, problem):
        X, K = problem.X, problem.n_clusters
        centres = self.initial_centres(problem)
        B = X.shape[0]
        if problem.weights is not None and not self.learn_weights:
            weights = problem.weights.to(X.dtype)
        else:
            weights = X.new_full((B, K), 1.0 / K)
        if self.variance == "known":
            if self.sigma is None and problem.sigma is None:
                raise InputError("variance='known' needs sigma= or a problem with its true σ.")
            sigma = X.new_full((B,), self.sigma) if self.sigma else problem.sigma.to(X.dtype)
            var = sigma.square()[:, None].expand(B, K)
        else:
            aug = features(problem)  # min_k ‖x_i − μ_k‖² = min_k (‖μ_k‖² − 2μ_kᵀx_i) + ‖x_i‖²
            low = max_rows(nearest_scores(aug, centres), torch.minimum)[:, 0]
            near = (low + aug[..., -2]).clamp(min=0) * problem.mask
            var = (near.sum(1) / (problem.mask.sum(1) * X.shape[2]))[:, None].expand(B, K)
            var = var.clamp(min=torch.finfo(X.dtype).tiny)
        return EMState(centres, weights, var.contiguous())

    def log_density(self, problem, state) -> torch.Tensor:
        """[B, K, n] log π_k + log N(x_i; μ_k, σ_k² I) in one matmul: the coefficients of
        (x_i, ‖x_i‖², 1) are μ_k/σ_k², −1/2σ_k² and log π_k − ‖μ_k‖²/2σ_k² − (d/2) log 2πσ_k²
        (scikit-learn's expansion for spherical Gaussians)."""
        mu, pi, var = state
        prec, v = var.reciprocal()[..., None], var[..., None]
        const = pi.log()[..., None] - 0.5 * (
            (mu * mu).sum(-1, keepdim=True) * prec + mu.shape[-1] * (2 * math.pi * v).log()
        )
        return scores(features(problem), torch.cat([mu * prec, -0.5 * prec, const], -1))

    def _gamma(self, problem, state) -> torch.Tensor:
        """[B, K, n] γ_ik (1/K at padding, whose row of `features` is 0)."""
        e = self.log_density(problem, state)  # in place from here: one buffer stays in cache
        e.sub_(max_rows(e)).exp_()
        return e.div_(e.sum(1, keepdim=True))

    def _log_resp(self, problem, state) -> torch.Tensor:
        """[B, K, n] log γ (−inf at padding)."""
        logp = self.log_density(problem, state)
        logp = logp - max_rows(logp)
        log_r = logp - logp.exp().sum(1, keepdim=True).log()
        return log_r.masked_fill(~problem.mask[:, None, :], float("-inf"))

    def log_responsibilities(self, problem, state) -> torch.Tensor:
        """[B, n, K] log γ_ik (scikit-learn's _estimate_log_prob_resp for spherical Gaussians)."""
        return self._log_resp(problem, state).transpose(1, 2)

    def responsibilities(self, problem, state):
        gamma = self._gamma(problem, state).masked_fill(~problem.mask[:, None, :], 0)
        return gamma.transpose(1, 2)

    def step(self, problem, state):
        aug = features(problem)
        d = aug.shape[-1] - 2
        if self.min_mass > 0:  # scikit-learn's γ / (N_k + 10ε)
            sums = torch.bmm(self._gamma(problem, state), aug)  # Σ_i γ_ik (x_i, ‖x_i‖², 1)
            nk = sums[..., -1] + self.min_mass
            means = sums / nk[..., None]
        else:  # γ_ik / Σ_j γ_jk in log space: defined even when every γ_jk underflows
            log_r = self._log_resp(problem, state)
            means = torch.bmm(torch.softmax(log_r, dim=-1), aug)
            nk = log_r.exp().sum(-1)
        mu = means[..., :d]
        # Σ_i w_ik ‖x_i − μ_k‖² (w = γ/N_k): scikit-learn's avg_X2 − 2 avg_X_means + avg_means2
        spread = means[..., d] - (mu * mu).sum(-1)
        pi = nk / nk.sum(1, keepdim=True) if self.learn_weights else state.weights
        var = state.variances
        if self.variance == "per_component":  # scikit-learn's spherical: the mean over d
            var = spread / d + self.reg_covar
        elif self.variance == "shared":
            n = problem.mask.sum(1).to(aug.dtype)
            pooled = (nk * spread).sum(1).clamp(min=0) / (n * d)
            var = (pooled + self.reg_covar)[:, None].expand_as(nk).contiguous()
        return EMState(mu, pi, var)
