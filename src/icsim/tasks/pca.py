"""Spectral tasks (He, Cao, Chen, Wu, Fan, Liu 2025, "Learning spectral methods by transformers",
arXiv 2501.01312): PCA of a planted spectrum and two-class spectral clustering."""

from __future__ import annotations

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.tasks.base import TASKS, Task, TaskBatch, haar_orthogonal


def planted_eigenvalues(dim: int, k: int, gap: float, device) -> torch.Tensor:
    """λ_j = 1 + gap·(k + 1 − j) for j ≤ k above a bulk λ_{k+1..d} spread evenly in (0, 1]: every
    gap λ_j − λ_{j+1} (j ≤ k) is at least `gap`."""
    top = 1.0 + gap * torch.arange(k, 0, -1, device=device, dtype=torch.float64)
    bulk = torch.arange(dim - k, 0, -1, device=device, dtype=torch.float64) / max(dim - k, 1)
    return torch.cat([top, bulk])


def sign_fixed(vectors: torch.Tensor) -> torch.Tensor:
    """Eigenvectors (columns of [..., d, k]) with the sign making the largest-|·| entry positive:
    a deterministic representative of ±v."""
    idx = vectors.abs().argmax(dim=-2, keepdim=True)
    return vectors * torch.where(torch.gather(vectors, -2, idx) < 0, -1.0, 1.0).to(vectors.dtype)


def top_eigenpairs(cov: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest eigenvalues [..., k] (descending) and their sign-fixed eigenvectors
    [..., d, k] of symmetric matrices [..., d, d] (torch.linalg.eigh, computed in float64)."""
    lam, vec = torch.linalg.eigh(cov.double())
    lam, vec = lam.flip(-1)[..., :k], vec.flip(-1)[..., :k]
    return lam.to(cov.dtype), sign_fixed(vec).to(cov.dtype)


@TASKS.register("pca")
class PCA(Task):
    """N points x_i = U diag(√λ) g_i + σ ε_i in R^d (g_i, ε_i ~ N(0, I)), U Haar-random per prompt
    (He et al. 2025, §PCA). Targets: the top-k eigenpairs of the *sample* covariance
    Σ̂ = (1/N) Σ_i x_i x_iᵀ (uncentred: the population mean is 0, as in the paper).

    Parameters
    - dim: d. k: eigenpairs asked for (k ≤ d).
    - eigenvalues: the population spectrum λ_1 ≥ … ≥ λ_d > 0 (d numbers), or None (default) for
      the planted spectrum `planted_eigenvalues(d, k, gap)`: λ_j = 1 + gap·(k + 1 − j), j ≤ k,
      above a bulk in (0, 1]. Given eigenvalues must leave λ_k > λ_{k+1} (the top-k subspace is
      then defined).
    - gap: > 0, the smallest planted gap among the top k + 1 eigenvalues (default 1).
    - noise_std: σ ≥ 0, isotropic noise added to every point (default 0, noise-free).

    TaskBatch: xs [B, N, d]; ys [B, N] zeros (no per-point label); truth: `eigenvectors`
    [B, d, k] (columns, sign-fixed: largest-|·| entry positive), `eigenvalues` [B, k],
    `sample_covariance` [B, d, d], `Sigma` [B, d, d] (population, noise included),
    `population_eigenvectors` [B, d, d] (U). The truth belongs to all N points (`prefix` does not
    recompute it).
    """

    name = "pca"

    def __init__(
        self,
        dim: int = 10,
        k: int = 3,
        eigenvalues: tuple | list | None = None,
        gap: float = 1.0,
        noise_std: float = 0.0,
    ):
        self.dim = V.positive_int("dim", dim)
        self.k = V.positive_int("k", k)
        if k > dim:
            raise InputError(f"k must be <= dim={dim} (eigenpairs of a d×d covariance), got {k}.")
        self.noise_std = V.number("noise_std", noise_std, low=0)
        if eigenvalues is None:
            try:
                self.gap = V.number("gap", gap, low=0, low_open=True)
            except InputError:
                raise InputError(
                    f"gap must be > 0, got {gap!r}: a zero gap makes the top-{k} eigenvectors "
                    "undefined (a degenerate spectrum); use gap > 0 or give `eigenvalues`."
                ) from None
            self.eigenvalues = None
        else:
            lam = [V.number("eigenvalues", v, low=0, low_open=True) for v in eigenvalues]
            if len(lam) != dim:
                raise InputError(f"eigenvalues must have dim={dim} entries, got {len(lam)}.")
            if any(a < b for a, b in zip(lam, lam[1:])):
                raise InputError(f"eigenvalues must be in descending order, got {lam}.")
            if k < dim and lam[k - 1] == lam[k]:
                raise InputError(
                    f"eigenvalues have λ_{k} = λ_{k + 1} = {lam[k]}: the top-{k} eigenvectors are "
                    "undefined (zero gap); separate them or change k."
                )
            self.eigenvalues, self.gap = tuple(lam), None

    def population_spectrum(self, device) -> torch.Tensor:
        if self.eigenvalues is not None:
            return torch.tensor(self.eigenvalues, device=device, dtype=torch.float64)
        return planted_eigenvalues(self.dim, self.k, self.gap, device)

    def _sample(self, batch_size, n_points, gen, device, dtype, active_dims):
        B, n, d = batch_size, n_points, self.dim
        lam = self.population_spectrum(device)
        u = haar_orthogonal(B, d, gen, device, torch.float64)
        g = torch.randn(B, n, d, generator=gen, device=device, dtype=dtype).double()
        xs = (g * lam.sqrt()) @ u.transpose(-1, -2)
        if self.noise_std > 0:
            eps = torch.randn(B, n, d, generator=gen, device=device, dtype=dtype).double()
            xs = xs + self.noise_std * eps
        if active_dims is not None and active_dims < d:
            xs[..., active_dims:] = 0
        cov = xs.transpose(1, 2) @ xs / n
        top_lam, top_vec = top_eigenpairs(cov, self.k)
        sigma = (u * lam) @ u.transpose(-1, -2) + self.noise_std**2 * torch.eye(
            d, device=device, dtype=torch.float64
        )
        truth = {
            "eigenvectors": top_vec,
            "eigenvalues": top_lam,
            "sample_covariance": cov,
            "Sigma": sigma,
            "population_eigenvectors": u,
        }
        return TaskBatch(
            xs=xs.to(dtype),
            ys=xs.new_zeros(B, n).to(dtype),
            task=self.name,
            truth={name: t.to(dtype) for name, t in truth.items()},
        )


@TASKS.register("spectral_clustering")
class SpectralClustering(Task):
    """Two-class mixture x_i = y_i μ + σ z_i, y_i = ±1 with probability ½, z_i ~ N(0, I_d)
    (He et al. 2025, §clustering). μ is a uniformly random direction per prompt scaled so the two
    centres ±μ are `separation` = ‖2μ‖ apart. The target is y up to a global sign.

    TaskBatch: xs [B, N, d]; ys [B, N] the labels ±1; truth: `mu` [B, d], `labels` [B, N].
    """

    name = "spectral_clustering"

    def __init__(self, dim: int = 10, separation: float = 4.0, noise_std: float = 1.0):
        self.dim = V.positive_int("dim", dim)
        self.separation = V.number("separation", separation, low=0)
        self.noise_std = V.number("noise_std", noise_std, low=0)

    def _sample(self, batch_size, n_points, gen, device, dtype, active_dims):
        B, n, d = batch_size, n_points, self.dim
        direction = torch.randn(B, d, generator=gen, device=device, dtype=dtype)
        mu = direction / direction.norm(dim=-1, keepdim=True) * (self.separation / 2)
        coins = torch.rand(B, n, generator=gen, device=device, dtype=dtype)
        y = torch.where(coins < 0.5, -1.0, 1.0).to(dtype)
        z = torch.randn(B, n, d, generator=gen, device=device, dtype=dtype)
        xs = y[..., None] * mu[:, None] + self.noise_std * z
        if active_dims is not None and active_dims < d:
            xs[..., active_dims:] = 0
        return TaskBatch(xs=xs, ys=y, task=self.name, truth={"mu": mu, "labels": y})
