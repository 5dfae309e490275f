"""Check a construction against its reference algorithm on many random problems.

`verify(name, steps=T)` builds the construction, draws `n_problems` problems for every condition
number κ (default 1, 10, 100), runs the model and the reference algorithm, and compares the
model's result after every algorithm step (read out of the hidden state that step ends in) with
the algorithm's. `error_growth` and `plot_error_growth` show how rounding error in float32 grows
with the number of steps; `format_report` prints a result.

Relative error of one problem at step t: ‖model − reference‖₂ / ‖reference‖₂, the norms over the
problem's outputs (its query predictions, or the entries of X_t); where the reference is exactly 0
(GD's step 0) the absolute error is used. NaN counts as infinite.
"""

from __future__ import annotations

from pathlib import Path

import torch

from icsim import _validate as V
from icsim.constructions.base import CHECKS, CONSTRUCTIONS, float_dtype, info_of
from icsim.errors import InputError

#: the default pass/fail threshold on the largest relative error, per dtype
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}


def _build(name: str, steps: int, params: dict):
    CONSTRUCTIONS.factory(name)  # unknown name: the registry's message lists the constructions
    check = CHECKS.get(name)
    if check is None:
        raise InputError(f"construction {name!r} has no verification; it cannot be verified.")
    params = {**check.default_params, **params}
    model, fmt = CONSTRUCTIONS.get(name, steps=steps, **params)
    return model, fmt, params


def relative_errors(model_steps: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """[T+1, B, ...] twice -> [T+1, B] relative errors (float64)."""
    diff = (model_steps.double() - reference.double()).flatten(2).norm(dim=-1)
    ref = reference.double().flatten(2).norm(dim=-1)
    rel = torch.where(ref > 0, diff / torch.where(ref > 0, ref, 1.0), diff)
    return torch.nan_to_num(rel, nan=float("inf"))


def step_errors(
    model,
    fmt,
    *,
    n_problems: int = 1000,
    dtype=torch.float64,
    condition_numbers=(1, 10, 100),
    seed: int = 0,
    n_context: int | None = None,
) -> dict[float, torch.Tensor]:
    """Relative errors [T+1, n_problems] of a built construction (e.g. one whose weights were
    changed) per condition number; the reference always runs in float64."""
    info = info_of(model)
    check = CHECKS[info.name]
    V.positive_int("n_problems", n_problems)
    dtype = float_dtype(dtype)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for kappa in condition_numbers:
        V.number("condition_number", kappa, low=1)
        problems = check.sample(info, fmt, n_problems, kappa, generator=gen, n_context=n_context)
        reference = check.reference(info, problems)
        out[kappa] = relative_errors(check.model_steps(model, fmt, problems, dtype), reference)
    return out


def verify_model(
    model,
    fmt,
    *,
    n_problems: int = 1000,
    dtype=torch.float64,
    condition_numbers=(1, 10, 100),
    seed: int = 0,
    n_context: int | None = None,
    tolerance: float | None = None,
) -> dict:
    """`verify` for an already built construction (see `verify`)."""
    dtype = float_dtype(dtype)
    tol = TOLERANCE[dtype] if tolerance is None else V.number("tolerance", tolerance, low=0)
    errors = step_errors(
        model,
        fmt,
        n_problems=n_problems,
        dtype=dtype,
        condition_numbers=condition_numbers,
        seed=seed,
        n_context=n_context,
    )
    per_kappa = {k: e.amax(dim=1) for k, e in errors.items()}
    per_step = torch.stack(list(per_kappa.values())).amax(dim=0)
    worst = float(per_step.max())
    return {
        **_describe(model),
        "dtype": str(dtype).removeprefix("torch."),
        "n_problems": n_problems * len(condition_numbers),
        "condition_numbers": list(condition_numbers),
        "seed": seed,
        "per_step": per_step.tolist(),
        "per_step_by_condition": {str(k): v.tolist() for k, v in per_kappa.items()},
        "max_relative_error": worst,
        "tolerance": tol,
        "passed": worst <= tol,
    }


def _describe(model) -> dict:
    info = info_of(model)
    return {
        "construction": info.name,
        "citation": info.citation,
        "algorithm": info.algorithm,
        "hyperparameters": dict(info.hyperparameters),
        "steps": info.steps,
        "dim": info.dim,
        "blocks": info.step_blocks,
        "model": {
            "layers": info.layers,
            "heads": info.heads,
            "width": info.width,
            "head_dim": info.head_dim,
            "parameters": model.num_parameters(),
            "layers_per_step": info.layers_per_step,
            "block_offset": info.block_offset,
            "formulas": dict(info.formulas),
        },
    }


def verify(
    name: str,
    *,
    steps: int,
    n_problems: int = 1000,
    dtype=torch.float64,
    condition_numbers=(1, 10, 100),
    seed: int = 0,
    n_context: int | None = None,
    tolerance: float | None = None,
    verify: bool = True,
    **params,
) -> dict:
    """Build construction `name` with `steps` and `params` and compare it with its reference
    algorithm on `n_problems` random problems per condition number (all κ ∈ condition_numbers).

    n_context: context examples per regression prompt (default 3·dim). tolerance: the pass
    threshold on the largest relative error (default 1e-10 in float64, 1e-4 in float32).
    verify=False only builds the model and describes it. Returns a JSON-ready dict: the model's
    size (layers, heads, width, parameters), the hidden-state block of every step, the largest
    relative error after every step (`per_step`, also per κ), `max_relative_error`,
    `tolerance` and `passed`.
    """
    V.positive_int("steps", steps)
    model, fmt, params = _build(name, steps, params)
    if not verify:
        return {**_describe(model), "params": params, "passed": None}
    result = verify_model(
        model,
        fmt,
        n_problems=n_problems,
        dtype=dtype,
        condition_numbers=condition_numbers,
        seed=seed,
        n_context=n_context,
        tolerance=tolerance,
    )
    return {**result, "params": params}


def error_growth(
    name: str,
    steps: int,
    condition_numbers=(1, 10, 100),
    dtype=torch.float32,
    *,
    n_problems: int = 1000,
    seed: int = 0,
    n_context: int | None = None,
    **params,
) -> dict:
    """Relative error of the construction run in `dtype` (reference in float64) against the
    algorithm step, one curve per κ: {"kappa=κ": {"x": steps, "y": median, "y_low": 10th and
    "y_high": 90th percentile, "y_max": max, "x_label", "y_label"}}."""
    V.positive_int("steps", steps)
    model, fmt, _ = _build(name, steps, params)
    errors = step_errors(
        model,
        fmt,
        n_problems=n_problems,
        dtype=dtype,
        condition_numbers=condition_numbers,
        seed=seed,
        n_context=n_context,
    )
    curves = {}
    for kappa, e in errors.items():
        qs = torch.quantile(e, torch.tensor([0.5, 0.1, 0.9], dtype=e.dtype), dim=1)
        curves[f"kappa={kappa:g}"] = {
            "x": list(range(steps + 1)),
            "y": qs[0].tolist(),
            "y_low": qs[1].tolist(),
            "y_high": qs[2].tolist(),
            "y_max": e.amax(dim=1).tolist(),
            "x_label": "algorithm step",
            "y_label": f"relative error ({str(float_dtype(dtype)).removeprefix('torch.')})",
        }
    return curves


def plot_error_growth(curves: dict, path: str | Path, *, title: str = "") -> Path:
    """PNG of `error_growth` curves: median with 10–90% band, max dashed, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def positive(values):  # log axes cannot show an exact 0
        return [v if v > 0 else float("nan") for v in values]

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, c in curves.items():
        (line,) = ax.plot(c["x"], positive(c["y"]), marker=".", label=f"{label} (median)")
        ax.fill_between(
            c["x"], positive(c["y_low"]), positive(c["y_high"]), alpha=0.2, color=line.get_color()
        )
        if "y_max" in c:
            ax.plot(c["x"], positive(c["y_max"]), linestyle="--", color=line.get_color(), lw=1)
    first = next(iter(curves.values()))
    ax.set_xlabel(first["x_label"])
    ax.set_ylabel(first["y_label"])
    ax.set_yscale("log")
    ax.set_title(title or "construction vs algorithm (dashed: max)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def format_report(result: dict) -> str:
    """A printable report of a `verify` result; the last line is the largest relative deviation."""
    m = result["model"]
    hp = ", ".join(f"{k}={v}" for k, v in result["hyperparameters"].items())
    lines = [
        f"construction {result['construction']} (dim={result['dim']}, steps={result['steps']})",
        f"  implements: {result['citation']}",
        f"  reference:  {result['algorithm']}({hp})",
        f"  model: {m['layers']} layers ({m['formulas'].get('layers', '?')}), "
        f"{m['heads']} heads, width {m['width']} ({m['formulas'].get('width', '?')}), "
        f"head dim {m['head_dim']}, {m['parameters']} parameters",
        f"  step t is read from hidden[{m['block_offset']} + {m['layers_per_step']}·t]",
    ]
    if result.get("passed") is None:
        lines.append("not verified (verify=False)")
        return "\n".join(lines)
    kappas = list(result["per_step_by_condition"])
    lines.append(
        f"  {result['n_problems']} problems ({result['dtype']}), κ ∈ {{{', '.join(kappas)}}}"
    )
    lines.append("  step  block  max rel. error  " + "  ".join(f"{'κ=' + k:>9}" for k in kappas))
    for t, (block, err) in enumerate(zip(result["blocks"], result["per_step"])):
        by_k = "  ".join(f"{result['per_step_by_condition'][k][t]:9.2e}" for k in kappas)
        lines.append(f"  {t:4d}  {block:5d}  {err:14.2e}  {by_k}")
    verdict = "PASS" if result["passed"] else "FAIL"
    lines.append(f"  tolerance {result['tolerance']:.0e}: {verdict}")
    lines.append(f"largest relative deviation: {result['max_relative_error']:.3e}")
    return "\n".join(lines)
