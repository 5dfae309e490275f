"""In-context sparse recovery: y_i = x_iᵀβ* + σε_i with an s-sparse β* (Liu, Zhou, Shen, Yang,
ICLR 2025, arXiv 2410.13981, "On the learn-to-optimize capabilities of transformers in in-context
sparse recovery"; PAPERS.md §9).

The paper's §6 settings, as far as this project could check them: PAPERS.md §9 records a GPT-2
backbone with 8 heads (the theory's construction uses 4 heads per layer), baselines ISTA, FISTA
and LISTA-type networks trained for one fixed X, and the three findings (generalisation to unseen
measurement matrices, to other numbers of demonstrations, and gains from a shared support
structure). The stored copies of the paper reachable from here (arXiv abstract/HTML front matter,
the OpenReview discussion) showed only the abstract and the reviewers' note on 8 vs 4 heads; the
dimension d, number of demonstrations N, sparsity s, noise level, λ and the number of training
steps of §6 could NOT be verified, so every default below is this project's choice
(d = 20, s = 3 as Garg et al.'s sparse regression, noiseless) and must be checked against the
paper's §6 before a reproduction reports a comparison.
"""

from __future__ import annotations

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.tasks.base import TASKS, Task, TaskBatch

ENSEMBLES = ("gaussian", "correlated", "fixed")
_BLOCK = 64  # fixed matrices are drawn 64 rows at a time, so the first n rows do not depend on n


def toeplitz_covariance(dim: int, rho: float, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """Σ_ij = ρ^|i−j|: the AR(1) (Toeplitz) covariance of the "correlated" ensemble."""
    idx = torch.arange(dim, device=device, dtype=dtype)
    return rho ** (idx[:, None] - idx[None, :]).abs()


@TASKS.register("sparse_recovery")
class SparseRecovery(Task):
    """Sparse recovery prompts: s-sparse β*, measurements y_i = x_iᵀβ* + σ ε_i (Liu et al. 2025).

    Parameters
    - dim: d (default 20).
    - sparsity: s, the number of non-zero entries of β* (default 3), each N(0, beta_scale²).
    - noise_std: σ >= 0 (default 0).
    - x_scale: standard deviation of every entry of x (default 1, i.e. x ~ N(0, I_d) as in
      `linear_regression`; x_scale = d**-0.5 gives the compressed-sensing N(0, 1/d) convention).
    - ensemble: how the rows x_i are drawn.
      "gaussian" (default): i.i.d. N(0, x_scale² I_d), fresh for every prompt.
      "correlated": i.i.d. N(0, x_scale² Σ_ρ), Σ_ρ = ρ^|i−j| (Toeplitz/AR(1)), fresh per prompt;
        `rho` in (−1, 1), default 0.5.
      "fixed": every prompt uses the same matrix, drawn once from `matrix_seed` (independent of
        the sampling generator), as classical LISTA needs. Rows ~ N(0, x_scale² Σ_ρ) (ρ = `rho`,
        default 0). The first n rows of the fixed matrix are the same whatever n is.
    - matrix_seed: seed of the fixed matrices (default 0); another seed = an unseen matrix.
    - n_matrices: "fixed" only: a family of this many fixed matrices (default 1); each prompt
      uses one, chosen uniformly (truth `matrix_index`).
    - perturbation: "fixed" only, δ in [0, 1]: X = √(1−δ²) X_fixed + δ G with G fresh per prompt
      from the same row distribution (δ = 0: the fixed matrix; δ = 1: a fresh Gaussian matrix) —
      a one-knob family for generalisation tests.
    - fixed_rows: "fixed" only: only the first `fixed_rows` rows come from the fixed matrix, the
      rest (e.g. the query) are fresh (default None: all rows fixed). For N demonstrations and
      one query use fixed_rows = N.
    - supports: "uniform" (default: the support is a uniformly random s-subset per prompt) or
      "shared": drawn uniformly from a fixed set of `n_supports` supports (default 4), itself
      drawn once from `support_seed` (default 0) — the paper's "shared structure" setting.

    Truth: `beta_star` (also `w_star`) [B, d], `support` bool [B, d], and for "fixed"
    `matrix_index` [B]. Sampling contract as `linear_regression` (generator, device, dtype,
    active_dims zeroes the coordinates of x from `active_dims` on).
    """

    name = "sparse_recovery"

    def __init__(
        self,
        dim: int = 20,
        sparsity: int = 3,
        noise_std: float = 0.0,
        beta_scale: float = 1.0,
        x_scale: float = 1.0,
        ensemble: str = "gaussian",
        rho: float | None = None,
        matrix_seed: int = 0,
        n_matrices: int = 1,
        perturbation: float = 0.0,
        fixed_rows: int | None = None,
        supports: str = "uniform",
        n_supports: int = 4,
        support_seed: int = 0,
    ):
        self.dim = V.positive_int("dim", dim)
        self.sparsity = V.positive_int("sparsity", sparsity)
        if sparsity > dim:
            raise InputError(f"sparsity must be <= dim={dim}, got {sparsity}.")
        self.noise_std = V.number("noise_std", noise_std, low=0)
        self.beta_scale = V.number("beta_scale", beta_scale, low=0)
        self.x_scale = V.number("x_scale", x_scale, low=0, low_open=True)
        self.ensemble = V.choice("ensemble", ensemble, ENSEMBLES)
        if rho is not None:
            V.number("rho", rho, low=-1, high=1, low_open=True, high_open=True)
            if ensemble == "gaussian":
                raise InputError(
                    "rho applies to ensemble='correlated' or 'fixed'; use "
                    "ensemble='correlated' for correlated Gaussian rows."
                )
        self.rho = float(rho) if rho is not None else (0.5 if ensemble == "correlated" else 0.0)
        self.matrix_seed = V.nonnegative_int("matrix_seed", matrix_seed)
        self.n_matrices = V.positive_int("n_matrices", n_matrices)
        self.perturbation = V.number("perturbation", perturbation, low=0, high=1)
        if fixed_rows is not None:
            V.nonnegative_int("fixed_rows", fixed_rows)
        self.fixed_rows = fixed_rows
        if ensemble != "fixed" and (n_matrices != 1 or perturbation != 0 or fixed_rows is not None):
            raise InputError(
                "n_matrices, perturbation and fixed_rows apply to ensemble='fixed' only; "
                f"drop them or use ensemble='fixed' (got ensemble={ensemble!r})."
            )
        self.supports = V.choice("supports", supports, ("uniform", "shared"))
        self.n_supports = V.positive_int("n_supports", n_supports)
        self.support_seed = V.nonnegative_int("support_seed", support_seed)
        self._matrix_cache: dict[int, torch.Tensor] = {}

    # -- fixed objects, drawn from their own seeds (never from the sampling generator) --------

    def _row_factor(self) -> torch.Tensor:
        """Rᵀ with x = x_scale · z Rᵀ ~ N(0, x_scale² Σ_ρ) (Cholesky factor, float64)."""
        return torch.linalg.cholesky(toeplitz_covariance(self.dim, self.rho)).T * self.x_scale

    def fixed_matrices(self, n_rows: int) -> torch.Tensor:
        """The family's fixed matrices [n_matrices, n_rows, d] (float64, CPU)."""
        n_blocks = -(-max(n_rows, 1) // _BLOCK)
        if n_blocks not in self._matrix_cache:
            g = torch.Generator().manual_seed(self.matrix_seed)
            # block-major order: block b of every matrix depends on the seed and b only
            shape = (n_blocks, self.n_matrices, _BLOCK, self.dim)
            z = torch.randn(shape, generator=g, dtype=torch.float64)
            z = z.permute(1, 0, 2, 3).reshape(self.n_matrices, n_blocks * _BLOCK, self.dim)
            self._matrix_cache = {n_blocks: z @ self._row_factor()}
        return self._matrix_cache[n_blocks][:, :n_rows]

    def support_set(self) -> torch.Tensor:
        """The shared supports, bool [n_supports, d], drawn once from `support_seed`."""
        g = torch.Generator().manual_seed(self.support_seed)
        keys = torch.rand(self.n_supports, self.dim, generator=g)
        idx = keys.argsort(dim=1)[:, : self.sparsity]
        return torch.zeros(self.n_supports, self.dim, dtype=torch.bool).scatter_(1, idx, True)

    # -- sampling -------------------------------------------------------------------------------

    def _rows(self, B, n, gen, device, dtype) -> torch.Tensor:
        z = torch.randn(B, n, self.dim, generator=gen, device=device, dtype=dtype)
        if self.rho == 0.0:
            return z * self.x_scale
        return z @ self._row_factor().to(device=device, dtype=dtype)

    def _sample(self, batch_size, n_points, gen, device, dtype, active_dims):
        B, n, d, s = batch_size, n_points, self.dim, self.sparsity
        truth = {}
        if self.supports == "shared":
            pick = torch.randint(self.n_supports, (B,), generator=gen, device=device)
            support = self.support_set().to(device)[pick]
        else:
            keys = torch.rand(B, d, generator=gen, device=device)
            idx = keys.argsort(dim=1)[:, :s]
            support = torch.zeros(B, d, dtype=torch.bool, device=device).scatter_(1, idx, True)
        beta = torch.randn(B, d, generator=gen, device=device, dtype=dtype) * self.beta_scale
        beta = torch.where(support, beta, torch.zeros_like(beta))  # exact +0 off the support

        if self.ensemble == "fixed":
            m = n if self.fixed_rows is None else min(self.fixed_rows, n)
            mats = self.fixed_matrices(m).to(device=device, dtype=dtype)
            index = torch.randint(self.n_matrices, (B,), generator=gen, device=device)
            xs = self._rows(B, n, gen, device, dtype)  # fresh rows: the rest / the perturbation
            fixed = mats[index]
            if self.perturbation > 0:
                delta = self.perturbation
                fixed = (1 - delta**2) ** 0.5 * fixed + delta * xs[:, :m]
            xs = torch.cat([fixed, xs[:, m:]], dim=1)
            truth["matrix_index"] = index
        else:
            xs = self._rows(B, n, gen, device, dtype)
        if active_dims is not None and active_dims < d:
            xs[..., active_dims:] = 0

        ys = torch.einsum("bnd,bd->bn", xs, beta)
        if self.noise_std > 0:
            ys = ys + self.noise_std * torch.randn(B, n, generator=gen, device=device, dtype=dtype)
        truth.update(beta_star=beta, w_star=beta, support=support)
        return TaskBatch(xs=xs, ys=ys, task=self.name, truth=truth)
