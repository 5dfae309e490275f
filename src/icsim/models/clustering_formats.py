"""Token formats of clustering prompts (`gmm_clustering`): one token per point, an output per
point (He et al. 2025: the transformer labels every point of the prompt, no query).

`points`: tokens [x_i], every point attends to every real point (no causal mask, no positions:
the model is permutation-equivariant over points), the read-out at point i is its K logits.
`em_tokens`: the tokens of the hand-built EM transformer (`icsim.constructions.em_step`): the
points, then one token per centre carrying μ_k.
Prompts of varying length (the task's `mask`) get a [B, T, T] mask: padding is never a key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.models.construction_formats import Layout
from icsim.models.formats import FORMATS, TokenFormat
from icsim.tasks.base import TaskBatch


def point_mask(batch: TaskBatch) -> torch.Tensor:
    """[B, n] True at the real points (all points when the batch has no mask)."""
    mask = batch.truth.get("mask")
    if mask is None:
        return torch.ones(batch.xs.shape[:2], dtype=torch.bool, device=batch.xs.device)
    return mask.to(batch.xs.device)


@FORMATS.register("points")
@dataclass(frozen=True)
class PointTokens(TokenFormat):
    """Token i = x_i; predictions = the read-out at every point ([B, n, K] logits)."""

    dim: int

    def __post_init__(self):
        V.positive_int("dim", self.dim)

    @property
    def width(self) -> int:
        return self.dim

    def encode(self, batch):
        if batch.dim != self.dim:
            raise InputError(f"prompts have dimension {batch.dim}, the format expects {self.dim}.")
        return batch.xs

    def batch_mask(self, batch) -> torch.Tensor:
        """[B, n, n]: every point attends to every real point."""
        valid = point_mask(batch)
        return valid[:, None, :].expand(-1, batch.n_points, -1)

    def positions(self, n_points):
        return torch.arange(n_points)

    def targets(self, batch):
        return batch.truth["z"]

    def decode(self, out, n_points):
        return out

    def run(self, model, batch, return_hidden: bool = False, **kw):
        return model(
            self.encode(batch), mask=self.batch_mask(batch), return_hidden=return_hidden, **kw
        )


@FORMATS.register("em_tokens")
@dataclass(frozen=True)
class EMTokens(TokenFormat):
    """n point tokens, then K centre tokens, each [x; 1; γ; lse; μ; μ_new; c; b; e]:
      point i:  x = x_i, 1 (γ: its responsibilities, lse: its log-normaliser, written by the model)
      centre k: μ = μ_k⁽⁰⁾, b = σ² log π_k, e = e_k, 1 (c = −‖μ_k‖²/2 and μ_new: scratch)
    Mask (every layer): points attend to the centres, centres to the real points.
    `run(model, batch, centres0)` -> responsibilities [B, n, K] (the read-out of γ)."""

    dim: int
    n_clusters: int
    sigma: float = 1.0
    weights: tuple | None = None

    def __post_init__(self):
        V.positive_int("dim", self.dim)
        V.positive_int("n_clusters", self.n_clusters)
        V.number("sigma", self.sigma, low=0, low_open=True)

    @property
    def layout(self) -> Layout:
        d, K = self.dim, self.n_clusters
        return Layout(x=d, one=1, gamma=K, lse=1, mu=d, mu_new=d, c=1, b=1, e=K)

    @property
    def width(self) -> int:
        return self.layout.width

    def log_weights(self, dtype, device) -> torch.Tensor:
        K = self.n_clusters
        pi = torch.full((K,), 1.0 / K, dtype=torch.float64)
        if self.weights is not None:
            pi = torch.tensor(self.weights, dtype=torch.float64)
        return pi.to(dtype=dtype, device=device).log()

    def encode(self, batch: TaskBatch, centres0: torch.Tensor) -> torch.Tensor:
        B, n, d = batch.xs.shape
        K, L = self.n_clusters, self.layout
        if d != self.dim or centres0.shape != (B, K, d):
            raise InputError(
                f"the construction is for d = {self.dim}, K = {K}: got points of dimension {d} "
                f"and centres0 of shape {list(centres0.shape)} (expected [{B}, {K}, {d}])."
            )
        tokens = batch.xs.new_zeros(B, n + K, L.width)
        tokens[:, :n, L.x] = batch.xs
        tokens[..., L.one] = 1
        tokens[:, n:, L.mu] = centres0.to(batch.xs.dtype)
        tokens[:, n:, L.b] = (
            self.sigma**2 * self.log_weights(batch.xs.dtype, batch.xs.device)[:, None]
        )
        tokens[:, n:, L.e] = torch.eye(K, dtype=batch.xs.dtype, device=batch.xs.device)
        return tokens

    def batch_mask(self, batch: TaskBatch) -> torch.Tensor:
        n, K = batch.n_points, self.n_clusters
        valid = point_mask(batch)
        B = valid.shape[0]
        m = torch.zeros(B, n + K, n + K, dtype=torch.bool, device=valid.device)
        m[:, :n, n:] = True
        m[:, n:, :n] = valid[:, None, :]
        return m

    def positions(self, n_points):
        return torch.arange(n_points)

    def targets(self, batch):
        return batch.truth["z"]

    def decode(self, out, n_points):
        return out[:, :n_points]

    def centres(self, hidden: torch.Tensor, n_points: int) -> torch.Tensor:
        """μ from hidden states [..., B, T, D]: [..., B, K, d]."""
        return hidden[..., n_points:, self.layout.mu]

    def gamma(self, hidden: torch.Tensor, n_points: int) -> torch.Tensor:
        """γ from hidden states [..., B, T, D]: [..., B, n, K]."""
        return hidden[..., :n_points, self.layout.gamma]

    def run(self, model, batch, centres0, return_hidden: bool = False):
        res = model(
            self.encode(batch, centres0), mask=self.batch_mask(batch), return_hidden=return_hidden
        )
        if return_hidden:
            return self.decode(res[0], batch.n_points), res[1]
        return self.decode(res, batch.n_points)
