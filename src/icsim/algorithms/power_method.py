"""Spectral solvers, batched and step by step: the power method with deflation, subspace
(orthogonal) iteration, the exact `eigh` reference, and spectral clustering by the leading
eigenvector of the Gram matrix (He, Cao, Chen, Wu, Fan, Liu 2025, arXiv 2501.01312).

A PCA problem's context X [B, N, d] gives the (uncentred) sample covariance Σ̂ = XᵀX/N, as in the
`pca` task. Iterates are the k estimated eigenvectors as columns [B, d, k]; predictions are the
eigenvalue estimates [B, k] (a Trajectory's `iterates` [T+1, B, d, k], `predictions` [T+1, B, k]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm, Trajectory
from icsim.errors import InputError
from icsim.tasks.base import Problem, TaskBatch


def covariance(X: torch.Tensor) -> torch.Tensor:
    """Σ̂ = XᵀX/N per problem: [B, N, d] -> [B, d, d]."""
    return X.transpose(1, 2) @ X / X.shape[1]


def whole_context(problem: Problem | TaskBatch) -> Problem:
    """Every point is context (a spectral problem has no queries)."""
    if isinstance(problem, Problem):
        return problem
    return Problem(X=problem.xs, y=problem.ys, X_query=problem.xs[:, :0])


def normalise(v: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """v/‖v‖ along `dim`; a zero vector stays zero."""
    n = v.norm(dim=dim, keepdim=True)
    return v / torch.where(n > 0, n, 1)


def start_vectors(B, d, k, start, seed, like: torch.Tensor) -> torch.Tensor:
    """Unit starting vectors [B, d, k]: `start` ([d, k] or [B, d, k]) normalised, or Gaussian ones
    drawn from `seed` on `like`'s device (the same seed gives the same vectors on that device)."""
    if start is None:
        g = torch.Generator(device=like.device).manual_seed(seed)
        start = torch.randn(B, d, k, generator=g, device=like.device, dtype=torch.float64)
    start = torch.as_tensor(start, device=like.device).to(like.dtype)
    if start.shape not in ((d, k), (B, d, k)):
        raise InputError(
            f"start must have shape [{d}, {k}] or [{B}, {d}, {k}], got {list(start.shape)}."
        )
    return normalise(start.expand(B, d, k).clone())


class PowerState(NamedTuple):
    """vectors [B, d, k] (unit columns), eigenvalues [B, k] (Rayleigh quotients), cov [B, d, d]
    (deflated by the finished vectors), step (power iterations done), products = cov·vectors
    [B, d, k] (kept so that a step costs one matrix-vector product, as in the construction)."""

    vectors: torch.Tensor
    eigenvalues: torch.Tensor
    cov: torch.Tensor
    step: int
    products: torch.Tensor


class _Spectral(Algorithm):
    family = "pca"

    def predict(self, problem, state) -> torch.Tensor:
        return state.eigenvalues

    def iterate(self, state) -> torch.Tensor:
        return state.vectors

    def default_steps(self) -> int:
        return 0

    def run(self, problem, steps: int | None = None, n_context: int | None = None) -> Trajectory:
        """Run `steps` steps (default: the algorithm's own budget) on every point of a TaskBatch."""
        steps = self.default_steps() if steps is None else steps
        return super().run(whole_context(problem), steps)


@dataclass(frozen=True)
class _Iterative(_Spectral):
    """The hyper-parameters the power method and subspace iteration share."""

    k: int = 1
    iterations: int = 20
    seed: int = 0
    start: torch.Tensor | None = field(default=None, compare=False)

    def __post_init__(self):
        V.positive_int("k", self.k)
        V.positive_int("iterations", self.iterations)
        V.seed("seed", self.seed)

    def start_state(self, problem: Problem) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ̂ [B, d, d], unit start vectors [B, d, k])."""
        B, _, d = problem.X.shape
        if self.k > d:
            raise InputError(f"k must be <= the dimension d={d}, got {self.k}.")
        cov = covariance(problem.X)
        return cov, start_vectors(B, d, self.k, self.start, self.seed, cov)


@ALGORITHMS.register("power_method")
@dataclass(frozen=True)
class PowerMethod(_Iterative):
    """The power method with Hotelling deflation for the top k eigenvectors of Σ̂ (He et al. 2025,
    §3): for j = 1..k, τ iterations v_j ← Σ_j v_j/‖Σ_j v_j‖ from a unit start, then
    λ_j = v_jᵀΣ_j v_j and Σ_{j+1} = Σ_j − λ_j v_j v_jᵀ (Σ_1 = Σ̂). Step t (1..kτ) is one iteration
    of vector j = ⌈t/τ⌉; the deflation follows that vector's τ-th iteration.

    Convergence: v_j → ±(j-th eigenvector) at the rate |λ_{j+1}/λ_j|^τ when λ_j > λ_{j+1} and the
    start is not orthogonal to it; vectors after the first inherit the error of the deflations.
    k: vectors (default 1). iterations: τ per vector (default 20). start: unit starting vectors
    [d, k] or [B, d, k], or None (default) for Gaussian ones drawn from `seed` (default 0).
    """

    name = "power_method"

    def default_steps(self) -> int:
        return self.k * self.iterations

    def init(self, problem: Problem) -> PowerState:
        cov, v = self.start_state(problem)
        products = cov @ v
        return PowerState(v, (v * products).sum(-2), cov, 0, products)

    def step(self, problem: Problem, state: PowerState) -> PowerState:
        j, t = divmod(state.step, self.iterations)
        if j >= self.k:
            return state
        v, lam, prod = state.vectors.clone(), state.eigenvalues.clone(), state.products.clone()
        vj = normalise(prod[..., j : j + 1], dim=-2)  # Σ_j v / ‖Σ_j v‖
        v[..., j : j + 1] = vj
        prod[..., j : j + 1] = state.cov @ vj
        lam[:, j] = (vj * prod[..., j : j + 1]).sum((-2, -1))  # v_jᵀΣ_j v_j
        cov = state.cov
        if t == self.iterations - 1:  # vector j is done: Σ_{j+1} = Σ_j − λ_j v_j v_jᵀ
            cov = cov - lam[:, j, None, None] * (vj @ vj.transpose(-1, -2))
            if j + 1 < self.k:
                prod[..., j + 1 : j + 2] = cov @ v[..., j + 1 : j + 2]
        return PowerState(v, lam, cov, state.step + 1, prod)


@ALGORITHMS.register("subspace_iteration")
@dataclass(frozen=True)
class SubspaceIteration(_Iterative):
    """Orthogonal (subspace) iteration: V ← qr(Σ̂V) with R's diagonal made positive, eigenvalue
    estimates the Rayleigh quotients diag(VᵀΣ̂V) (Golub & Van Loan, §8.2.4). Converges to the top-k
    eigenvectors at the rate |λ_{k+1}/λ_k| for the subspace and |λ_{j+1}/λ_j| for column j.

    k, steps per call, start and seed as for `power_method` (the default budget is `iterations`).
    """

    name = "subspace_iteration"

    def default_steps(self) -> int:
        return self.iterations

    def init(self, problem: Problem) -> PowerState:
        cov, v = self.start_state(problem)
        v = orthonormal(v)
        products = cov @ v
        return PowerState(v, (v * products).sum(-2), cov, 0, products)

    def step(self, problem: Problem, state: PowerState) -> PowerState:
        v = orthonormal(state.products)
        products = state.cov @ v
        return PowerState(v, (v * products).sum(-2), state.cov, state.step + 1, products)


def orthonormal(v: torch.Tensor) -> torch.Tensor:
    """Q of v = QR with R's diagonal made non-negative (a unique, sign-stable basis)."""
    q, r = torch.linalg.qr(v)
    sign = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    return q * torch.where(sign == 0, 1, sign).unsqueeze(-2)


@ALGORITHMS.register("eigh")
@dataclass(frozen=True)
class Eigh(_Spectral):
    """The exact top-k eigenpairs of Σ̂ by `torch.linalg.eigh` (in float64), sign-fixed as the
    `pca` task's targets: the reference every iterative solver converges to."""

    k: int = 1
    name = "eigh"
    closed_form = True

    def __post_init__(self):
        V.positive_int("k", self.k)

    def init(self, problem: Problem) -> PowerState:
        from icsim.tasks.pca import top_eigenpairs

        if self.k > problem.X.shape[-1]:
            raise InputError(f"k must be <= the dimension d={problem.X.shape[-1]}, got {self.k}.")
        cov = covariance(problem.X)
        lam, vec = top_eigenpairs(cov, self.k)
        return PowerState(vec, lam, cov, 0, vec * lam[:, None])


class GramState(NamedTuple):
    """v [B, N]: the leading-eigenvector estimate of the Gram matrix G = XXᵀ [B, N, N]."""

    v: torch.Tensor
    gram: torch.Tensor


@ALGORITHMS.register("spectral_clustering")
@dataclass(frozen=True)
class SpectralClusteringPower(Algorithm):
    """Two-class spectral clustering (He et al. 2025, §clustering): labels sign(v), v the leading
    eigenvector of the Gram matrix G = XXᵀ, here by power iterations v ← Gv/‖Gv‖ from a Gaussian
    start drawn from `seed` (`iterations`: the default budget, 30). For x_i = y_iμ + z_i,
    G ≈ ‖μ‖² yyᵀ + noise, so sign(v) recovers y up to a global sign once ‖μ‖ is large enough.
    Iterates: v [T+1, B, N]; predictions: the labels ±1 [T+1, B, N] (a zero entry gets +1)."""

    iterations: int = 30
    seed: int = 0
    family = "spectral_clustering"
    name = "spectral_clustering"

    def __post_init__(self):
        V.positive_int("iterations", self.iterations)
        V.seed("seed", self.seed)

    def init(self, problem: Problem) -> GramState:
        X = problem.X
        gram = X @ X.transpose(1, 2)
        g = torch.Generator(device=X.device).manual_seed(self.seed)
        v = torch.randn(X.shape[0], X.shape[1], generator=g, device=X.device, dtype=torch.float64)
        return GramState(normalise(v.to(X.dtype), dim=-1), gram)

    def step(self, problem: Problem, state: GramState) -> GramState:
        v = torch.einsum("bij,bj->bi", state.gram, state.v)
        return GramState(normalise(v, dim=-1), state.gram)

    def predict(self, problem: Problem, state: GramState) -> torch.Tensor:
        return torch.where(state.v < 0, -1.0, 1.0).to(state.v.dtype)

    def iterate(self, state: GramState) -> torch.Tensor:
        return state.v

    def run(self, problem, steps: int | None = None, n_context: int | None = None) -> Trajectory:
        steps = self.iterations if steps is None else steps
        return super().run(whole_context(problem), steps)
