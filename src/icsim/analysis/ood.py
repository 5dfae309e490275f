"""Garg et al. 2022's out-of-distribution evaluations (§4, Fig. 4): error against the number
of in-context examples k for a trained model and the baselines on the same prompts, for each
condition of `icsim.tasks.ood` (skewed covariance, half-subspace, orthogonal and overlapping
queries, in-context xs in one orthant, scaled x and y)."""

from __future__ import annotations

from pathlib import Path

import torch

import icsim
from icsim.analysis.evaluation import model_prefix_predictions
from icsim.analysis.metrics import normalised_squared_error
from icsim.analysis.report import Curve
from icsim.tasks.ood import CONDITIONS, OODBatch, check_condition, condition_seed, sample_ood

#: Garg et al.'s baselines for linear regression (their models.py): least squares, averaging,
#: 3-nearest neighbours; `ood_baselines` adds ridge at the Bayes-optimal λ for a noisy task
BASELINES = {
    "least_squares": {"algorithm": "least_squares"},
    "averaging": {"algorithm": "averaging"},
    "nearest_neighbours": {"algorithm": "nearest_neighbours", "params": {"n_neighbors": 3}},
}
MODEL = "transformer"  # the model's curve name, as in `icsim eval`'s metrics.json


def ood_baselines(task) -> dict:
    """BASELINES, with ridge (λ = σ²/s², the posterior mean for w* ~ N(0, s² I)) when the task
    has label noise σ > 0 (without noise ridge is least squares)."""
    out = dict(BASELINES)
    if getattr(task, "noise_std", 0) > 0:
        alpha = task.noise_std**2 / max(task.w_scale, 1e-12) ** 2
        out["ridge"] = {"algorithm": "ridge", "params": {"alpha": alpha}}
    return out


@torch.no_grad()
def ood_predictions(model, fmt, ood: OODBatch, baselines: dict, chunk: int | None = None):
    """name -> [B, len(ood.ks)]: the model's and each baseline's prediction for the query after
    k examples, for every k in `ood.ks`. Where the query is the next point one causal pass gives
    every k; else one pass per k over the k examples and the query."""
    if ood.queries is None:
        preds = {MODEL: model_prefix_predictions(model, fmt, ood.batch, chunk, ks=ood.ks)}
    else:
        cols = [model_prefix_predictions(model, fmt, ood.prompt(k), chunk, ks=[k]) for k in ood.ks]
        preds = {MODEL: torch.cat(cols, 1)}
    for curve, spec in baselines.items():
        alg = icsim.algorithms.get(spec.get("algorithm", curve), **spec.get("params", {}))
        steps = spec.get("steps", 0)
        cols = [alg.run(ood.problem(k), steps).predictions[-1, :, 0] for k in ood.ks]
        preds[curve] = torch.stack(cols, 1)
    return preds


def evaluate_ood(
    model,
    fmt,
    task,
    n_points: int,
    *,
    prompts: int = 1280,
    seed: int = 0,
    device="cpu",
    conditions=None,
    baselines: dict | None = None,
    chunk: int | None = 256,
) -> dict:
    """condition -> {"description", "curves": name -> curve (squared error / d against k)} for
    every condition (default: all of `CONDITIONS`), `prompts` prompts of `n_points` points each.
    Each condition draws its prompts from its own seed (`condition_seed`): the same seed gives
    the same numbers, whichever other conditions are run."""
    conditions = [check_condition(c) for c in (CONDITIONS if conditions is None else conditions)]
    baselines = ood_baselines(task) if baselines is None else baselines
    dtype = next(model.parameters()).dtype
    out = {}
    for name in conditions:
        g = torch.Generator(device=device).manual_seed(condition_seed(seed, name))
        ood = sample_ood(task, name, prompts, n_points, generator=g, device=device, dtype=dtype)
        preds = ood_predictions(model, fmt, ood, baselines, chunk)
        target = ood.targets().double()
        curves = {
            curve: Curve.of_prompts(
                normalised_squared_error(p.double(), target, task.dim), ood.ks,
                "in-context examples k", "squared error / d", g,
            ).to_json()
            for curve, p in preds.items()
        }  # fmt: skip
        out[name] = {"description": CONDITIONS[name], "curves": curves}
    return out


def figure_name(condition: str) -> str:
    """`ood_<condition>.png` with only letters, digits, '.', '_' (scale_x=0.5 -> scale_x_0.5)."""
    return f"ood_{condition.replace('=', '_')}.png"


def plot_ood(results: dict, out: str | Path, dim: int, title: str = "") -> list[Path]:
    """One figure per condition in `out` (analysis.plots: log axes where errors span decades)."""
    from icsim.analysis.plots import plot_curves

    paths = []
    for name, r in results.items():
        head = f"{name}: {r['description']}"
        paths.append(
            plot_curves(
                r["curves"], Path(out) / figure_name(name), vline=dim, vline_label="k = d",
                title=f"{head}\n{title}" if title else head,
            )
        )  # fmt: skip
    return paths


def summary_table(results: dict, dim: int) -> str:
    """A text table: one row per condition and k ∈ {d/2, d, the largest k}, one column per
    curve (mean squared error / d)."""
    names = list(next(iter(results.values()))["curves"])
    rows = [["condition", "k", *names]]
    for cond, r in results.items():
        xs = r["curves"][names[0]]["x"]
        show = sorted({k for k in (dim // 2, dim, xs[-1]) if k in xs})
        for k in show:
            i = xs.index(k)
            rows.append([cond, str(k), *(f"{r['curves'][n]['y'][i]:.3g}" for n in names)])
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = ["  ".join(v.rjust(w) if j else v.ljust(w) for j, (v, w) in enumerate(zip(r, widths)))
             for r in rows]  # fmt: skip
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
