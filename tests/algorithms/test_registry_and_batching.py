import dataclasses

import pytest
import torch

import icsim.algorithms as A
from icsim.errors import InputError

from ._problems import problems

LINEAR_REGRESSION = [
    "averaging",
    "conjugate_gradient",
    "gradient_descent",
    "iterative_newton",
    "least_squares",
    "nearest_neighbours",
    "online_gradient_descent",
    "preconditioned_gradient_descent",
    "ridge",
    "zero",
]


def test_names_lists_the_linear_regression_algorithms():
    names = A.names()
    assert set(LINEAR_REGRESSION) <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", LINEAR_REGRESSION)
def test_every_hyperparameter_is_an_explicit_field_with_a_default(name):
    alg = A.get(name)
    assert dataclasses.is_dataclass(alg) and type(alg).__dataclass_params__.frozen
    for f in dataclasses.fields(alg):
        assert f.default is not dataclasses.MISSING, f"{name}.{f.name} has no default"
    assert type(alg).__doc__ and alg.name == name
    with pytest.raises(dataclasses.FrozenInstanceError):
        alg.name_of_anything = 1


def test_unknown_name_suggests_the_closest():
    with pytest.raises(InputError, match="unknown algorithm 'nope'"):
        A.get("nope")
    with pytest.raises(InputError, match="Did you mean 'iterative_newton'"):
        A.get("iterative_newtn")


def test_unknown_hyperparameter():
    with pytest.raises(InputError, match="'stepsize'.*Did you mean 'step_size'"):
        A.get("gradient_descent", stepsize=0.1)
    with pytest.raises(InputError, match="no parameter 'alpha'"):
        A.get("averaging", alpha=1.0)


@pytest.mark.parametrize("name", LINEAR_REGRESSION)
@pytest.mark.parametrize("kappa", [1.0, 100.0])
def test_batched_equals_per_problem_loop(name, kappa):
    p = problems(batch=6, n=10, m=3, kappa=kappa, noise=0.1, seed=11)
    alg = A.get(name)
    steps = 0 if alg.closed_form else 12
    traj = alg.run(p, steps=steps)
    assert traj.predictions.shape == (steps + 1, 6, 3)
    assert traj.iterates.shape[:2] == (steps + 1, 6)
    for b in range(6):
        one = dataclasses.replace(
            p,
            X=p.X[b : b + 1],
            y=p.y[b : b + 1],
            X_query=p.X_query[b : b + 1],
            y_query=p.y_query[b : b + 1],
        )
        single = alg.run(one, steps=steps)
        torch.testing.assert_close(single.iterates[:, 0], traj.iterates[:, b], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(
            single.predictions[:, 0], traj.predictions[:, b], rtol=1e-9, atol=1e-9
        )


@pytest.mark.parametrize("name", LINEAR_REGRESSION)
def test_float32_runs_and_keeps_dtype(name):
    p = problems(n=10, m=2)
    p32 = dataclasses.replace(
        p, X=p.X.float(), y=p.y.float(), X_query=p.X_query.float(), y_query=p.y_query.float()
    )
    traj = A.get(name).run(p32, steps=3)
    assert traj.predictions.dtype == torch.float32 and torch.isfinite(traj.predictions).all()


def test_run_splits_a_task_batch():
    import icsim.tasks

    batch = icsim.tasks.get("linear_regression", dim=4).sample(
        3, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    traj = A.get("least_squares").run(batch)
    assert traj.predictions.shape == (1, 3, 1)  # all but the last point is context
    torch.testing.assert_close(traj.predictions[0, :, 0], batch.ys[:, -1])  # noiseless, n > d
    traj = A.get("least_squares").run(batch, n_context=2)
    assert traj.predictions.shape == (1, 3, 7)


def _modules_after(code: str) -> set[str]:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m for m in out.split() if m.startswith("icsim")}


HEAVY = ("icsim.models", "icsim.constructions", "icsim.training", "icsim.experiments")


@pytest.mark.parametrize(
    "code",
    [
        "import icsim",
        "import icsim.tasks, icsim.algorithms",
        "import icsim; icsim.tasks.names(); icsim.algorithms.names()",
        "import icsim; icsim.algorithms.get('iterative_newton')",
    ],
)
def test_the_lower_floors_import_nothing_above_them(code):
    """Issue 14: `import icsim` is lazy and tasks/algorithms load no models, constructions,
    training or experiments (nor analysis), even once their registries are listed."""
    loaded = _modules_after(code)
    assert not {m for m in loaded if m.startswith((*HEAVY, "icsim.analysis"))}, loaded


def test_every_module_registers_without_being_imported_by_hand():
    """A registry imports its package on first lookup: ewml_transformer (models/ewml.py, which
    nothing in models/__init__ imports) and every construction and format are listed."""
    code = (
        "import icsim\n"
        "print(icsim.models.names(), icsim.models.FORMATS.names(), icsim.constructions.names())"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ewml_transformer" in out.stdout and "'newton_regression'" in out.stdout
    assert "'logistic_newton'" in out.stdout and "'deep_gd'" in out.stdout
