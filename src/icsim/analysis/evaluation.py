"""Error against the number of in-context examples k, for a model and for algorithms on the
same prompts (Garg et al. 2022, Fig. 2)."""

from __future__ import annotations

import torch

import icsim
from icsim.analysis.metrics import normalised_squared_error
from icsim.analysis.report import Curve
from icsim.tasks.base import Problem, TaskBatch


def prefix_problem(batch: TaskBatch, k: int) -> Problem:
    """Context = the first k points, query = point k (0-based): predict y_k from k examples."""
    return Problem(batch.xs[:, :k], batch.ys[:, :k], batch.xs[:, k : k + 1], batch.ys[:, k : k + 1])


def in_chunks(fn, batch: TaskBatch, chunk: int, dim: int = 0) -> torch.Tensor:
    """`fn` applied to `chunk` prompts at a time, concatenated along `dim` (bounded memory)."""
    parts = [fn(batch.rows(i, i + chunk)) for i in range(0, batch.batch_size, chunk)]
    return torch.cat(parts, dim)


@torch.no_grad()
def model_prefix_predictions(model, fmt, batch: TaskBatch, chunk: int | None = None, ks=None):
    """[B, n]: the prediction for y_k from the first k examples and x_k, for every k (or
    [B, len(ks)]: for the k in `ks` only).

    One causal pass over interleaved tokens gives every prefix at once; other formats are
    run once per prefix asked for. `chunk`: at most that many prompts per pass (bounded memory).
    """
    if chunk is not None and batch.batch_size > chunk:
        return in_chunks(
            lambda part: model_prefix_predictions(model, fmt, part, ks=ks), batch, chunk
        )
    model.eval()
    if fmt.mask(batch.n_points) is None:
        pred = fmt.run(model, batch)
        return pred if ks is None else pred[:, list(ks)]
    ks = range(batch.n_points) if ks is None else ks
    # k = 0: no example to predict from, the prediction is 0
    cols = {k: fmt.run(model, batch.prefix(k + 1))[:, -1] for k in ks if k > 0}
    zero = (
        torch.zeros_like(next(iter(cols.values())))
        if cols
        else batch.ys.new_zeros(batch.ys.shape[0])
    )
    return torch.stack([cols.get(k, zero) for k in ks], dim=1)


@torch.no_grad()
def algorithm_prefix_predictions(algorithm, batch: TaskBatch, steps: int = 0) -> torch.Tensor:
    """[B, n]: the algorithm's prediction for y_k after `steps` steps on the first k examples."""
    cols = [
        algorithm.run(prefix_problem(batch, k), steps).predictions[-1, :, 0]
        for k in range(batch.n_points)
    ]
    return torch.stack(cols, dim=1)


def error_curve(pred: torch.Tensor, batch: TaskBatch, dim: int | None = None, generator=None):
    """Curve dict (DESIGN.md's metrics.json shape) of normalised squared error against k."""
    err = normalised_squared_error(pred.double(), batch.ys.double(), dim or batch.dim)
    return Curve.of_prompts(
        err, range(batch.n_points), "in-context examples k", "squared error / d", generator
    ).to_json()


def evaluate_against_baselines(batch: TaskBatch, predictors: dict, seed: int = 0) -> dict:
    """`predictors`: name -> [B, n] prefix predictions. Returns name -> curve."""
    g = torch.Generator(device=batch.xs.device).manual_seed(seed)
    return {name: error_curve(pred, batch, generator=g) for name, pred in predictors.items()}


def baseline_predictions(batch: TaskBatch, baselines: dict) -> dict:
    """`baselines`: curve name -> {"algorithm": registry name, "steps": int, "params": {...}}."""
    out = {}
    for curve, spec in baselines.items():
        alg = icsim.algorithms.get(spec.get("algorithm", curve), **spec.get("params", {}))
        out[curve] = algorithm_prefix_predictions(alg, batch, spec.get("steps", 0))
    return out
