"""The error table of `logistic_newton` (Giannou et al. 2025): its w_t against the exact
damped-Newton iterate and the optimum after every step, across MLP widths and Newton–Schulz
counts. A measurement of the construction (its check is `LogisticCheck`), kept beside it."""

from __future__ import annotations

from pathlib import Path

import torch

from icsim.constructions.logistic_newton import logistic_newton, weights_per_step


def error_table(
    widths=(32, 64, 128, 256),
    newton_schulz_steps=(None,),
    steps: int = 6,
    dim: int = 5,
    n_context: int = 26,
    mu: float = 0.1,
    n_problems: int = 64,
    condition_number: float = 1.0,
    inverse_init: str = "hessian",
    seed: int = 0,
    path: str | Path | None = None,
) -> dict:
    """Error of the construction's w_t against the exact damped-Newton iterate (and against the
    optimum w*_μ) after every step t = 0..T, for every width W and Newton–Schulz count k, in
    float64 on `n_problems` prompts of the `logistic_regression` task (seeded).

    Returns {"steps": [0..T], "damped_newton_to_optimum": mean ‖w_t − w*‖ of exact damped Newton,
    "rows": [{"width", "newton_schulz_steps", "layers", "error" (mean over prompts of
    ‖ŵ_t − w_t‖ per step), "max_error", "error_to_optimum", "floor" (mean ‖ŵ_T − w*‖)}, ...]}
    and, when `path` is given, writes the figure there (PNG).
    """
    from icsim.algorithms.logistic import LogisticDampedNewton
    from icsim.tasks import get as get_task

    task = get_task("logistic_regression", dim=dim, condition_number=condition_number)
    gen = torch.Generator().manual_seed(seed)
    batch = task.sample(n_problems, n_context + 1, generator=gen, dtype=torch.float64)
    problem = batch.split(n_context)
    exact = LogisticDampedNewton(mu=mu).run(problem, steps).iterates
    optimum = LogisticDampedNewton(mu=mu).run(problem, 60).iterates[-1]
    table = {
        "steps": list(range(steps + 1)),
        "damped_newton_to_optimum": (exact - optimum).norm(dim=-1).mean(1).tolist(),
        "rows": [],
    }
    for k in newton_schulz_steps:
        for W in widths:
            model, fmt = logistic_newton(
                dim=dim,
                steps=steps,
                mu=mu,
                newton_schulz_steps=k,
                width=W,
                inverse_init=inverse_init,
                dtype=torch.float64,
            )
            ws = weights_per_step(model, fmt, batch)
            err = (ws - exact).norm(dim=-1)
            to_opt = (ws - optimum).norm(dim=-1)
            table["rows"].append(
                {
                    "width": W,
                    "newton_schulz_steps": model.construction.hyperparameters[
                        "newton_schulz_steps"
                    ],
                    "layers": model.construction.layers,
                    "error": err.mean(1).tolist(),
                    "max_error": err.amax(1).tolist(),
                    "error_to_optimum": to_opt.mean(1).tolist(),
                    "floor": to_opt[-1].mean().item(),
                }
            )
    if path is not None:
        from icsim.analysis.construction_figures import plot_error_table

        plot_error_table(table, path)
    return table
