"""One verification path for every construction, exact and approximate alike.

`verify(name)` builds the construction, draws `n_problems` problems for every condition number
κ (default 1, 10, 100; a `condition_number` task parameter picks one), runs the model and the
reference algorithm, compares the model's result after every algorithm step (read out of the
hidden state that step ends in) with the algorithm's, and judges the largest relative error by
the construction's own check (`Check.criterion`: 1e-10 in float64 for an exact construction,
the interpolation floor for `logistic_newton`, Theorem 1's ηε as well for `deep_gd`).

Relative error of one problem at step t: ‖model − reference‖₂ / ‖reference‖₂, the norms over the
problem's outputs (its query predictions, or the entries of X_t, or w_t); where the reference is
exactly 0 (GD's step 0) the absolute error is used. NaN counts as infinite.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

from icsim import _validate as V
from icsim.constructions.base import (
    CONSTRUCTIONS,
    TOLERANCE,
    Check,
    ConstructionInfo,
    float_dtype,
    in_dtype,
    info_of,
)
from icsim.errors import InputError, did_you_mean

__all__ = ["TOLERANCE", "Run", "Verification", "describe", "error_growth", "verify"]
__all__ += ["relative_errors", "step_errors", "verify_model"]


def relative_errors(model_steps: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """[T+1, B, ...] twice -> [T+1, B] relative errors (float64)."""
    diff = (model_steps.double() - reference.double()).flatten(2).norm(dim=-1)
    ref = reference.double().flatten(2).norm(dim=-1)
    rel = torch.where(ref > 0, diff / torch.where(ref > 0, ref, 1.0), diff)
    return torch.nan_to_num(rel, nan=float("inf"))


@dataclass
class Run:
    """What a check's criterion sees: the built model, the problems drawn per κ and the errors
    [T+1, B] per κ; `max_error_of(other)` measures another model on the same problems."""

    check: Check
    model: torch.nn.Module
    fmt: object
    params: dict  # the build parameters (rebuild with `CONSTRUCTIONS.factory(name)(**params)`)
    dtype: torch.dtype
    tolerance: float | None
    problems: list  # one entry per condition number
    references: list
    errors: dict = field(default_factory=dict)  # κ -> [T+1, B]
    n_problems: int = 0  # per κ
    condition_numbers: tuple = ()
    seed: int = 0  # of the problems' generator
    task_params: dict = field(default_factory=dict)  # the task's parameters they were drawn with

    @property
    def max_error(self) -> float:
        return max(float(e.max()) for e in self.errors.values())

    def errors_of(self, model) -> list[torch.Tensor]:
        return [
            relative_errors(self.check.model_steps(model, self.fmt, p, self.dtype), ref)
            for p, ref in zip(self.problems, self.references)
        ]

    def max_error_of(self, model) -> float:
        return max(float(e.max()) for e in self.errors_of(model))


def _draw(check, info, fmt, n_problems, condition_numbers, seed, n_context, task_params):
    """Problems and their float64 references per κ, from one generator (κ in order)."""
    gen = torch.Generator().manual_seed(seed)
    problems, references = [], []
    for kappa in condition_numbers:
        V.number("condition_number", kappa, low=1)
        p = check.sample(
            info, fmt, n_problems, generator=gen, n_context=n_context,
            condition_number=kappa, **task_params,
        )  # fmt: skip
        problems.append(p)
        references.append(check.reference(info, p))
    return problems, references


def _check_of(name: str) -> Check:
    return CONSTRUCTIONS.meta(name)["check"]()


def verify_model(
    model, fmt, *, tolerance: float | None = None, params: dict | None = None, **problems
) -> Verification:
    """`verify` for an already built construction (e.g. one whose weights were changed), on the
    `problems` `step_errors` draws (n_problems, dtype, condition_numbers, seed, n_context, task
    parameters). `params`: its build parameters, for checks that rebuild it (logistic_newton's)."""
    if tolerance is not None:
        V.number("tolerance", tolerance, low=0)
    run = _run(model, fmt, **problems)
    run.params, run.tolerance = dict(params or {}), tolerance
    info, dtype, crit = info_of(model), run.dtype, run.check.criterion(run)
    condition_numbers = list(run.condition_numbers)
    per_kappa = {f"{k:g}": e.amax(dim=1).tolist() for k, e in run.errors.items()}
    per_step = torch.stack([e.amax(dim=1) for e in run.errors.values()]).amax(dim=0)
    worst = run.max_error
    return Verification(
        name=info.name,
        info=info,
        params=run.params,
        task_params=dict(run.task_params),
        dtype=str(dtype).removeprefix("torch."),
        n_problems=run.n_problems * len(condition_numbers),
        condition_numbers=condition_numbers,
        seed=run.seed,
        per_step=per_step.tolist(),
        per_step_by_condition=per_kappa,
        max_error=worst,
        bound=crit.bound,
        criterion=crit.text,
        passed=bool(worst <= crit.bound and crit.holds is not False),
        n_parameters=model.num_parameters(),
    )


@dataclass
class Verification:
    """The verdict of `verify`: `.passed`, `.criterion` (the bound checked, in words with its
    number), `.summary()` (the lines to print), `.to_dict()` (JSON-ready)."""

    name: str
    info: ConstructionInfo
    params: dict
    task_params: dict
    dtype: str
    n_problems: int
    condition_numbers: list
    seed: int
    per_step: list  # largest relative error after every step (max over κ and problems)
    per_step_by_condition: dict  # "κ" -> the same, per κ
    max_error: float
    bound: float
    criterion: str
    passed: bool
    n_parameters: int

    def summary(self) -> str:
        from icsim.analysis.construction_figures import format_verification

        return format_verification(self)

    def to_dict(self) -> dict:
        return {
            "construction": self.name,
            **{k: v for k, v in self.info.to_dict().items() if k != "name"},
            "params": {
                k: str(v) if isinstance(v, torch.dtype) else v for k, v in self.params.items()
            },
            "task_params": self.task_params,
            "dtype": self.dtype,
            "n_problems": self.n_problems,
            "condition_numbers": self.condition_numbers,
            "seed": self.seed,
            "per_step": self.per_step,
            "per_step_by_condition": self.per_step_by_condition,
            "max_relative_error": self.max_error,
            "bound": self.bound,
            "criterion": self.criterion,
            "passed": self.passed,
            "parameters": self.n_parameters,
        }


def _plain(value):
    return str(value).removeprefix("torch.") if isinstance(value, torch.dtype) else value


def _resolve(name: str, steps, dim, dtype, kwargs: dict):
    """(check, build params, task params, torch dtype): defaults from the check, every key of
    kwargs sorted into the construction's parameters or the check's task's, else an InputError."""
    factory = CONSTRUCTIONS.factory(name)  # unknown name: the registry's message lists them
    check = _check_of(name)
    d = check.defaults
    steps = V.positive_int("steps", d["steps"] if steps is None else steps)
    dim = V.positive_int("dim", d["dim"] if dim is None else dim)
    dtype = float_dtype("float64" if dtype is None else dtype)
    build_names = [n for n in inspect.signature(factory).parameters if n not in ("steps", "dim")]
    task_names = check.task_parameters()
    build, task = {}, {}
    for key, value in kwargs.items():
        if key in build_names and key != "dtype":
            build[key] = value
        elif key in task_names:
            task[key] = value
        else:
            allowed = build_names + task_names
            raise InputError(
                f"construction {name!r} has no parameter {key!r}.{did_you_mean(key, allowed)} "
                f"Construction parameters: {', '.join(n for n in build_names if n != 'dtype')}; "
                f"task parameters ({check.task or 'its own sampler'}): {', '.join(task_names)}."
            )
    params = {**check.default_params, **build, "steps": steps, "dim": dim}
    if "dtype" in build_names:  # the construction builds its weights in the dtype it runs in
        params["dtype"] = dtype
    return check, params, task, dtype


def verify(
    name: str,
    *,
    steps: int | None = None,
    dim: int | None = None,
    n_problems: int | None = None,
    dtype: str | None = None,
    seed: int = 0,
    condition_numbers=None,
    n_context: int | None = None,
    tolerance: float | None = None,
    **task_params,
) -> Verification:
    """Build construction `name` and check it against its reference algorithm by its own
    criterion. steps, dim, n_problems (per κ): the check's defaults when None (3, 5, 1000 for
    most). dtype: "float64" (default) or "float32", the dtype the model runs in (and is built
    in, where the construction takes a dtype). task_params: the construction's own parameters
    (e.g. step_size, width) and the task's (e.g. condition_number, which replaces the default
    κ ∈ {1, 10, 100}); anything else is an InputError. n_context: context examples per prompt.
    tolerance: overrides an exact construction's tolerance."""
    check, params, task, dt = _resolve(name, steps, dim, dtype, task_params)
    n_problems = check.defaults["n_problems"] if n_problems is None else n_problems
    if "condition_number" in task:
        if condition_numbers is not None:
            raise InputError("give condition_number or condition_numbers, not both.")
        condition_numbers = (task.pop("condition_number"),)
    kappas = tuple(check.condition_numbers if condition_numbers is None else condition_numbers)
    model, fmt = CONSTRUCTIONS.factory(name)(**params)
    return verify_model(
        model,
        fmt,
        n_problems=n_problems,
        dtype=dt,
        condition_numbers=kappas,
        seed=seed,
        n_context=n_context,
        tolerance=tolerance,
        params=params,
        **task,
    )


def describe(name: str, *, steps: int | None = None, dim: int | None = None, dtype=None, **params):
    """Build `name` without verifying it: (model, fmt, the lines describing its size)."""
    from icsim.analysis.construction_figures import format_construction

    _, params, _, _ = _resolve(name, steps, dim, dtype, params)
    model, fmt = CONSTRUCTIONS.factory(name)(**params)
    return model, fmt, format_construction(info_of(model), model.num_parameters())


def step_errors(model, fmt, **problems) -> dict[float, torch.Tensor]:
    """Relative errors [T+1, n_problems] of a built construction per condition number on the
    `problems` `_run` draws; the reference always runs in float64."""
    return _run(model, fmt, **problems).errors


def _run(
    model,
    fmt,
    *,
    n_problems: int = 1000,
    dtype=torch.float64,
    condition_numbers=(1, 10, 100),
    seed: int = 0,
    n_context: int | None = None,
    **task_params,
) -> Run:
    """Draw `n_problems` problems per κ (and their references) from `seed` and run the model on
    them in `dtype` (`.errors`: κ -> relative errors [T+1, n_problems])."""
    info = info_of(model)
    check = _check_of(info.name)
    V.positive_int("n_problems", n_problems)
    dtype = float_dtype(dtype)
    problems, refs = _draw(
        check, info, fmt, n_problems, condition_numbers, seed, n_context, task_params
    )
    run = Run(check, model, fmt, {}, dtype, None, problems, refs, n_problems=n_problems,
              condition_numbers=tuple(condition_numbers), seed=seed,
              task_params=task_params)  # fmt: skip
    run.errors = dict(zip(condition_numbers, run.errors_of(in_dtype(model, dtype))))
    return run


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
    check = _check_of(name)
    model, fmt = CONSTRUCTIONS.get(name, steps=steps, **{**check.default_params, **params})
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
