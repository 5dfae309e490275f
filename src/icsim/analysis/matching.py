"""Which algorithm step does each layer match? (Fu et al. 2024 §4: similarity of errors,
similarity of induced weights, best-matching step, and fits of matched step against layer.)"""

from __future__ import annotations

import math

import torch

import icsim
from icsim.analysis.metrics import cosine_similarity
from icsim.tasks.base import Problem, TaskBatch

MEASURES = ("error_cosine", "weight_cosine", "error")


def prefix_trajectory(algorithm, batch: TaskBatch, steps: int, record=None) -> torch.Tensor:
    """[len(record), B, n]: the prediction for y_k from the first k examples after each recorded
    step (all steps 0..steps by default), for every k = 0..n−1."""
    record = list(range(steps + 1)) if record is None else list(record)
    cols = []
    for k in range(batch.n_points):
        p = Problem(batch.xs[:, :k], batch.ys[:, :k], batch.xs[:, k : k + 1])
        traj = algorithm.run(p, steps)
        cols.append(traj.predictions[record, :, 0])
    return torch.stack(cols, dim=-1)


def error_cosine_per_prompt(pred_a: torch.Tensor, pred_b: torch.Tensor, target: torch.Tensor):
    """cos(ŷ_A − y, ŷ_B − y) over the query points of each prompt: [..., B, m] -> [..., B]."""
    return cosine_similarity(pred_a - target, pred_b - target, dim=-1)


def error_cosine(pred_a: torch.Tensor, pred_b: torch.Tensor, target: torch.Tensor):
    """Similarity of errors (Fu et al. 2024): cos(ŷ_A − y, ŷ_B − y) over the query points of a
    prompt, averaged over prompts. pred_* [..., B, m], target [B, m] -> [...]."""
    return error_cosine_per_prompt(pred_a, pred_b, target).mean(-1)


def fit_induced_weights(x_query: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Least-squares weights ŵ with pred ≈ x_queryᵀŵ (Fu et al. 2024's induced weights).
    x_query [B, Q, d], pred [..., B, Q] -> [..., B, d]."""
    pinv = torch.linalg.pinv(x_query.double())  # [B, d, Q]
    return torch.einsum("bdq,...bq->...bd", pinv, pred.double()).to(pred.dtype)


def similarity_matrix(
    a: torch.Tensor, b: torch.Tensor, target: torch.Tensor | None, measure: str = "error_cosine"
) -> torch.Tensor:
    """[La, Lb]: similarity of every layer/step of A with every one of B.

    error_cosine: a, b predictions [L, B, m] and target [B, m];
    weight_cosine: a, b induced weights [L, B, d], cos averaged over prompts;
    error: a, b predictions; −|log err_A − log err_B| of the mean squared errors (higher = closer).
    """
    if measure == "error_cosine":
        return error_cosine(a[:, None], b[None], target)
    if measure == "weight_cosine":
        return cosine_similarity(a[:, None], b[None], dim=-1).mean(-1)
    if measure == "error":
        ea = (a - target).square().mean((-1, -2)).clamp(min=1e-30).log()
        eb = (b - target).square().mean((-1, -2)).clamp(min=1e-30).log()
        return -(ea[:, None] - eb[None]).abs()
    raise icsim.InputError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}.")


def best_matching_step(sim: torch.Tensor, steps=None) -> list:
    """For each row (layer), the step of the column with the highest similarity."""
    idx = sim.argmax(dim=1).tolist()
    return idx if steps is None else [steps[i] for i in idx]


def fit_line(x, y) -> dict:
    """Least-squares line y ≈ a + b x and its R²."""
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    A = torch.stack([torch.ones_like(x), x], 1)
    coef = torch.linalg.lstsq(A, y.unsqueeze(1)).solution.squeeze(1)
    resid = y - A @ coef
    ss_tot = (y - y.mean()).square().sum()
    r2 = 1 - resid.square().sum() / ss_tot if ss_tot > 0 else torch.tensor(1.0)
    return {"intercept": coef[0].item(), "slope": coef[1].item(), "r2": r2.item()}


def fit_matched_steps(layers, matched) -> dict:
    """Linear fit (step ≈ a + b·ℓ) and exponential fit (log step ≈ a + b·ℓ) with their R²."""
    lin = fit_line(layers, matched)
    logs = [math.log(max(s, 1)) for s in matched]
    exp = fit_line(layers, logs)
    return {"linear": lin, "exponential": exp}


def match_layers(
    layer_preds: torch.Tensor,
    batch: TaskBatch,
    algorithms: dict,
    measure: str = "error_cosine",
    n_context: int | None = None,
) -> dict:
    """Match every layer against every algorithm at once.

    `algorithms`: curve name -> {"algorithm": registry name (default the curve name),
    "params": {...}, "steps": list of steps to compare}. Use `every_algorithm(...)` for all.
    `layer_preds` [L+1, B, n] predict every prefix, or with `n_context` [L+1, B, n − n_context]
    the queries after the first n_context points.
    Returns name -> {"steps", "similarity" [L+1, S], "matched_step" per layer, "fits"}.
    """
    target = batch.ys if n_context is None else batch.ys[:, n_context:]
    out = {}
    for name, spec in algorithms.items():
        alg = icsim.algorithms.get(spec.get("algorithm", name), **spec.get("params", {}))
        steps = list(spec["steps"])
        if n_context is None:
            traj = prefix_trajectory(alg, batch, max(steps), record=steps)
        else:
            traj = alg.run(batch.split(n_context), max(steps)).predictions[steps]
        traj = traj.to(layer_preds.dtype)
        sim = similarity_matrix(layer_preds, traj, target, measure)
        matched = best_matching_step(sim, steps)
        layers = list(range(layer_preds.shape[0]))
        out[name] = {
            "steps": steps,
            "similarity": sim,
            "matched_step": matched,
            "best_similarity": sim.max(dim=1).values.tolist(),
            "fits": fit_matched_steps(layers[1:], matched[1:]),
            "trajectory": traj,
        }
    return out


def every_algorithm(steps=tuple(range(21)), params=None, family="linear_regression") -> dict:
    """A match_layers spec comparing with every registered algorithm of a task family
    (closed-form ones at step 0, iterative ones at `steps`)."""
    params = params or {}
    spec = {}
    for name in icsim.algorithms.names():
        if icsim.algorithms.ALGORITHMS.factory(name).family != family:
            continue
        alg = icsim.algorithms.get(name, **params.get(name, {}))
        spec[name] = {
            "params": params.get(name, {}),
            "steps": [0] if getattr(alg, "closed_form", False) else list(steps),
        }
    return spec


@torch.no_grad()
def induced_weights(predict_layers, batch: TaskBatch, n_context: int) -> torch.Tensor:
    """Induced weights of a model for a fixed context (Fu et al. 2024): the first `n_context`
    points of every prompt are the context, each of the remaining Q ≫ d points is asked as the
    query of its own copy of the prompt, and ŵ is the least-squares fit of the predictions on the
    queries. `predict_layers(batch) -> [L+1, B', m]` (e.g. a `layer_predictions` partial).
    Returns [L+1, B, d]."""
    B, n, d = batch.xs.shape
    Q = n - n_context
    ctx_x = batch.xs[:, :n_context].unsqueeze(1).expand(B, Q, n_context, d)
    ctx_y = batch.ys[:, :n_context].unsqueeze(1).expand(B, Q, n_context)
    xq = batch.xs[:, n_context:]
    xs = torch.cat([ctx_x, xq.unsqueeze(2)], 2).reshape(B * Q, n_context + 1, d)
    ys = torch.cat([ctx_y, torch.zeros_like(ctx_y[..., :1])], 2).reshape(B * Q, n_context + 1)
    copies = TaskBatch(xs=xs, ys=ys, task=batch.task)
    pred = predict_layers(copies)[..., -1].reshape(-1, B, Q)  # the query is the last point
    return fit_induced_weights(xq, pred)


def algorithm_induced_weights(algorithm, batch: TaskBatch, n_context: int, steps) -> torch.Tensor:
    """[len(steps), B, d]: an algorithm's induced weights for the same context and queries."""
    steps = list(steps)
    traj = algorithm.run(batch.split(n_context), max(steps))
    return fit_induced_weights(batch.xs[:, n_context:], traj.predictions[steps])


def best_step_per_prompt(layer: torch.Tensor, match: dict, target: torch.Tensor | None):
    """[B]: one layer's similarity with an algorithm at that layer's best-matching step, prompt
    by prompt (its spread over prompts says how sure a comparison of two algorithms is).

    layer: predictions [B, m] (then `target` [B, m]) or induced weights [B, d] (target None);
    match: a `match_layers` entry, or any dict with "similarity" [L+1, S] and the algorithm's
    "trajectory" [S, B, m] (or induced weights [S, B, d]); the last layer is taken."""
    best = int(match["similarity"][-1].argmax())
    other = match["trajectory"][best]
    if target is None:
        return cosine_similarity(layer, other, dim=-1)
    return error_cosine_per_prompt(layer, other, target)


def match_induced_weights(weights: torch.Tensor, batch: TaskBatch, n_context: int, algorithms):
    """Match a model's induced weights [L+1, B, d] (from `induced_weights`) against every
    algorithm's for the same context and queries (Fu et al. 2024's second measure). `algorithms`
    as for `match_layers`. Returns name -> {"steps", "similarity" [L+1, S], "matched_step",
    "best_similarity", "trajectory" (the algorithm's induced weights [S, B, d])}."""
    out = {}
    for name, spec in algorithms.items():
        alg = icsim.algorithms.get(spec.get("algorithm", name), **spec.get("params", {}))
        steps = list(spec["steps"])
        w_alg = algorithm_induced_weights(alg, batch, n_context, steps).to(weights.dtype)
        sim = similarity_matrix(weights, w_alg, None, "weight_cosine")
        out[name] = {
            "steps": steps,
            "similarity": sim,
            "matched_step": best_matching_step(sim, steps),
            "best_similarity": sim.max(dim=1).values.tolist(),
            "trajectory": w_alg,
        }
    return out


def at_grid_end(matched: list, steps: list) -> list[bool]:
    """Which matched steps sit at the grid's last step: there the true match may lie beyond the
    grid, so the step is only a lower bound."""
    return [m == max(steps) for m in matched]


def match_curves(match: dict, step_label: str = "best-matching algorithm step"):
    """A `match_layers` entry as two curves against the layer (from 1): the best-matching step
    and the similarity at that step."""
    from icsim.analysis.report import Curve

    layers = list(range(1, len(match["matched_step"])))
    sim = "similarity of errors (best step)"
    return (
        Curve(layers, match["matched_step"][1:], "layer", step_label),
        Curve(layers, match["best_similarity"][1:], "layer", sim),
    )


def plot_match(match: dict, path, *, xlabel: str, title: str = "", ylabel: str = "layer"):
    """A `match_layers` entry as a heatmap: similarity of every layer (from 1) with every step."""
    from icsim.analysis.plots import plot_heatmap

    layers = list(range(1, len(match["matched_step"])))
    sim = match["similarity"][1:].double().cpu().numpy()
    return plot_heatmap(
        sim, path, xlabel=xlabel, ylabel=ylabel, title=title, xticks=match["steps"], yticks=layers
    )
