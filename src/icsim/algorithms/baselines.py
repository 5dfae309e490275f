"""Garg et al. 2022's reference predictors: averaging, k nearest neighbours and zero."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm
from icsim.tasks.base import Problem


@ALGORITHMS.register("averaging")
@dataclass(frozen=True)
class Averaging(Algorithm):
    """ŵ = (1/n) Σ_i y_i x_i (Garg et al. 2022's averaging baseline); 0 with no context."""

    name = "averaging"
    closed_form = True

    def init(self, problem: Problem):
        X, y = problem.X, problem.y
        return torch.einsum("bnd,bn->bd", X, y) / max(X.shape[1], 1)


@ALGORITHMS.register("nearest_neighbours")
@dataclass(frozen=True)
class NearestNeighbours(Algorithm):
    """Each query predicts the mean y of its n_neighbors nearest context points in Euclidean
    distance (Garg et al. 2022's k-NN baseline, k = 3).

    n_neighbors: k (default 3). With fewer than k context points all are used; with none the
    prediction is 0. The state (and recorded iterate) is the predictions [B, m].
    """

    n_neighbors: int = 3
    name = "nearest_neighbours"
    closed_form = True

    def __post_init__(self):
        V.positive_int("n_neighbors", self.n_neighbors)

    def init(self, problem: Problem):
        X, y, Xq = problem.X, problem.y, problem.X_query
        B, n, _ = X.shape
        if n == 0:
            return Xq.new_zeros(B, Xq.shape[1])
        k = min(self.n_neighbors, n)
        dist = torch.cdist(Xq, X)  # [B, m, n]
        idx = dist.topk(k, dim=-1, largest=False).indices  # [B, m, k]
        neighbours = torch.gather(y.unsqueeze(1).expand(-1, Xq.shape[1], -1), 2, idx)
        return neighbours.mean(-1)

    def predict(self, problem: Problem, state) -> torch.Tensor:
        return state

    def weights(self, state):
        raise NotImplementedError("nearest_neighbours is not linear: it has no weights.")


@ALGORITHMS.register("zero")
@dataclass(frozen=True)
class Zero(Algorithm):
    """Predicts 0 for every query (ŵ = 0): the error of knowing nothing (Garg et al. 2022)."""

    name = "zero"
    closed_form = True

    def init(self, problem: Problem):
        X = problem.X
        return X.new_zeros(X.shape[0], X.shape[2])
