"""Token formats: how a TaskBatch becomes tokens, which tokens may be attended to, and where
the predictions are read back out."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.registry import Registry
from icsim.tasks.base import TaskBatch

#: every token format, by name: `@FORMATS.register(name)` beside the class
FORMATS = Registry("token format", package="icsim.models")


class TokenFormat:
    width: int

    def encode(self, batch: TaskBatch) -> torch.Tensor:
        raise NotImplementedError

    def mask(self, n_points: int, device=None) -> torch.Tensor | None:
        """Attention mask [T, T] (True = may attend); None = the model's default (causal)."""
        return None

    def positions(self, n_points: int) -> torch.Tensor:
        """Token positions whose read-out is a prediction, one per target."""
        raise NotImplementedError

    def targets(self, batch: TaskBatch) -> torch.Tensor:
        """The labels the predictions at `positions` are compared with."""
        raise NotImplementedError

    def decode(self, out: torch.Tensor, n_points: int) -> torch.Tensor:
        """Model outputs [B, T, k] -> predictions [B, m] (or [B, m, k] when k > 1)."""
        pred = out[:, self.positions(n_points).to(out.device)]
        return pred[..., 0] if pred.shape[-1] == 1 else pred

    def run(self, model, batch: TaskBatch, return_hidden: bool = False, **kw):
        """Encode, forward with this format's mask, decode: predictions [B, m] (and hidden)."""
        tokens = self.encode(batch)
        res = model(
            tokens, mask=self.mask(batch.n_points, tokens.device), return_hidden=return_hidden, **kw
        )
        if return_hidden:
            out, hidden = res
            return self.decode(out, batch.n_points), hidden
        return self.decode(res, batch.n_points)


@FORMATS.register("interleaved")
@dataclass(frozen=True)
class Interleaved(TokenFormat):
    """x and y tokens alternate, [x_1; 0], [0; y_1], [x_2; 0], ... (Garg et al. 2022).

    The read-out at x_k's token predicts y_k from the k−1 examples before it and x_k, so one
    causal forward pass gives the prediction for every prefix.
    """

    dim: int

    def __post_init__(self):
        V.positive_int("dim", self.dim)

    @property
    def width(self) -> int:
        return self.dim + 1

    def encode(self, batch):
        B, n, d = batch.xs.shape
        tokens = batch.xs.new_zeros(B, n, 2, d + 1)
        tokens[:, :, 0, :d] = batch.xs
        tokens[:, :, 1, d] = batch.ys
        return tokens.reshape(B, 2 * n, d + 1)

    def positions(self, n_points):
        return torch.arange(0, 2 * n_points, 2)

    def targets(self, batch):
        return batch.ys


@FORMATS.register("stacked")
@dataclass(frozen=True)
class Stacked(TokenFormat):
    """One token per example [x_i; y_i; 0_scratch], queries [x_q; 0; 0_scratch] last
    (von Oswald et al. 2023; Bai et al. 2023; the constructions).

    Every token attends to the context tokens only: keys and values exclude the queries, as in
    von Oswald et al. `scratch` extra zero coordinates give a construction working room.
    """

    dim: int
    n_queries: int = 1
    scratch: int = 0

    def __post_init__(self):
        V.positive_int("dim", self.dim)
        V.positive_int("n_queries", self.n_queries)
        V.nonnegative_int("scratch", self.scratch)

    @property
    def width(self) -> int:
        return self.dim + 1 + self.scratch

    def _n_context(self, n_points):
        if n_points <= self.n_queries:
            raise V.InputError(
                f"a prompt of {n_points} points leaves no context for {self.n_queries} queries; "
                "sample more points or use fewer queries."
            )
        return n_points - self.n_queries

    def encode(self, batch):
        B, n, d = batch.xs.shape
        tokens = batch.xs.new_zeros(B, n, self.width)
        tokens[..., :d] = batch.xs
        tokens[:, : self._n_context(n), d] = batch.ys[:, : self._n_context(n)]
        return tokens

    def mask(self, n_points, device=None):
        m = torch.zeros(n_points, n_points, dtype=torch.bool, device=device)
        m[:, : self._n_context(n_points)] = True
        return m

    def positions(self, n_points):
        return torch.arange(self._n_context(n_points), n_points)

    def targets(self, batch):
        return batch.ys[:, self._n_context(batch.n_points) :]


def get_format(name: str, **params) -> TokenFormat:
    return FORMATS.get(name, **params)
