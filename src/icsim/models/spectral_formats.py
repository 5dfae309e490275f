"""Token formats of the spectral tasks (He et al. 2025): `pca_queries` for trained transformers
and `power_method_tokens` for the hand-built power-method construction."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.models.construction_formats import Layout
from icsim.models.formats import FORMATS, TokenFormat
from icsim.tasks.base import TaskBatch


def _check_dim(batch: TaskBatch, dim: int) -> None:
    if batch.dim != dim:
        raise InputError(
            f"prompts have dimension {batch.dim} but the format expects dim={dim}; build it with "
            "the prompts' dimension."
        )


@FORMATS.register("pca_queries")
@dataclass(frozen=True)
class PCAQueries(TokenFormat):
    """The N points as tokens [x_i; 0_k], then k query tokens [0_d; e_j], one per eigenpair
    (He et al. 2025 read the eigenpairs from extra tokens appended to X). Query j's read-out
    [v̂_j; λ̂_j] (width d + 1) estimates the j-th eigenvector and eigenvalue of the sample
    covariance. Every token attends to every token (use a non-causal model: no mask is given)."""

    dim: int
    k: int = 1

    def __post_init__(self):
        V.positive_int("dim", self.dim)
        V.positive_int("k", self.k)

    @property
    def width(self) -> int:
        return self.dim + self.k

    @property
    def n_out(self) -> int:
        return self.dim + 1

    def encode(self, batch: TaskBatch) -> torch.Tensor:
        _check_dim(batch, self.dim)
        B, n, d = batch.xs.shape
        tokens = batch.xs.new_zeros(B, n + self.k, self.width)
        tokens[:, :n, :d] = batch.xs
        tokens[:, n:, d:] = torch.eye(self.k, dtype=batch.xs.dtype, device=batch.xs.device)
        return tokens

    def mask(self, n_points: int, device=None):
        return None

    def positions(self, n_points: int) -> torch.Tensor:
        return torch.arange(n_points, n_points + self.k)

    def targets(self, batch: TaskBatch) -> torch.Tensor:
        """[B, k, d + 1]: the sign-fixed eigenvectors and the eigenvalues."""
        vec = batch.eigenvectors[..., : self.k].transpose(1, 2)
        return torch.cat([vec, batch.eigenvalues[..., : self.k, None]], dim=-1)


def power_layout(d: int, k: int) -> Layout:
    """[x | Σ (d², row-major) | V (d·k, vector j contiguous) | u = Σv | w = Σu | s = ‖u‖² |
    r ≈ 1/‖u‖ | λ (k)]."""
    return Layout(x=d, S=d * d, V=d * k, u=d, w=d, s=1, r=1, lam=k)


@FORMATS.register("power_method_tokens")
@dataclass(frozen=True)
class PowerMethodTokens(TokenFormat):
    """One token per point, [x_i; 0_Σ; v⁽⁰⁾; 0...] (`power_layout`), every token carrying the same
    unit start vectors v⁽⁰⁾ ([d, k] or [B, d, k] `start`, or the `power_method` algorithm's
    Gaussian start drawn from `seed`, so both start alike). Every token attends to every token.
    The read-out of token 0 is [v_1; …; v_k; λ_1..λ_k] (width dk + k)."""

    dim: int
    k: int = 1
    seed: int = 0
    start: torch.Tensor | None = field(default=None, compare=False)

    def __post_init__(self):
        V.positive_int("dim", self.dim)
        V.positive_int("k", self.k)
        if self.k > self.dim:
            raise InputError(f"k must be <= dim={self.dim}, got {self.k}.")

    @property
    def layout(self) -> Layout:
        return power_layout(self.dim, self.k)

    @property
    def width(self) -> int:
        return self.layout.width

    def start_vectors(self, batch: TaskBatch) -> torch.Tensor:
        from icsim.algorithms.power_method import start_vectors  # the algorithm's own start

        return start_vectors(batch.batch_size, self.dim, self.k, self.start, self.seed, batch.xs)

    def encode(self, batch: TaskBatch) -> torch.Tensor:
        _check_dim(batch, self.dim)
        L, (B, n, d) = self.layout, batch.xs.shape
        tokens = batch.xs.new_zeros(B, n, L.width)
        tokens[..., L.x] = batch.xs
        tokens[..., L.V] = self.start_vectors(batch).transpose(1, 2).reshape(B, 1, d * self.k)
        return tokens

    def mask(self, n_points: int, device=None):
        return None

    def positions(self, n_points: int) -> torch.Tensor:
        return torch.arange(1)

    def vectors(self, hidden: torch.Tensor) -> torch.Tensor:
        """The k vector slots of token 0: hidden [..., B, N, width] -> [..., B, d, k]."""
        v = hidden[..., 0, self.layout.V]
        return v.reshape(*v.shape[:-1], self.k, self.dim).transpose(-1, -2)

    def targets(self, batch: TaskBatch) -> torch.Tensor:
        return torch.cat([batch.eigenvectors.transpose(1, 2).flatten(1), batch.eigenvalues], -1)
