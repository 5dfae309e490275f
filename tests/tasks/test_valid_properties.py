"""Property tests over valid parameters (issue 8): every task family other than
`linear_regression` (tests/tasks covers it) and every batched solver, with hyper-parameters drawn
by hypothesis, gives the documented shapes, finite values, and the same output for the same seed.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import icsim

PROPS = settings(max_examples=60, deadline=None)


@st.composite
def task_and_params(draw):
    name = draw(
        st.sampled_from(
            [
                "sparse_linear_regression",
                "sparse_recovery",
                "logistic_regression",
                "relu_network_regression",
            ]
        )
    )
    d = draw(st.integers(1, 6))
    kappa = st.floats(1, 100) if d > 1 else st.just(1.0)
    if name == "sparse_linear_regression":
        p = {
            "sparsity": draw(st.integers(1, d)),
            "noise_std": draw(st.floats(0, 1)),
            "w_scale": draw(st.floats(0, 3)),
            "condition_number": draw(kappa),
        }
    elif name == "sparse_recovery":
        ensemble = draw(st.sampled_from(["gaussian", "correlated", "fixed"]))
        p = {
            "sparsity": draw(st.integers(1, d)),
            "noise_std": draw(st.floats(0, 1)),
            "beta_scale": draw(st.floats(0, 3)),
            "x_scale": draw(st.floats(0.01, 3)),
            "ensemble": ensemble,
            "supports": draw(st.sampled_from(["uniform", "shared"])),
            "n_supports": draw(st.integers(1, 4)),
            "support_seed": draw(st.integers(0, 99)),
        }
        if ensemble != "gaussian":
            p["rho"] = draw(st.floats(-0.9, 0.9))
        if ensemble == "fixed":
            p |= {
                "matrix_seed": draw(st.integers(0, 99)),
                "n_matrices": draw(st.integers(1, 3)),
                "perturbation": draw(st.floats(0, 1)),
                "fixed_rows": draw(st.none() | st.integers(0, 8)),
            }
    elif name == "logistic_regression":
        p = {
            "w_scale": draw(st.floats(0, 5)),
            "condition_number": draw(kappa),
            "x_distribution": draw(st.sampled_from(["ball", "gaussian_normalised", "gaussian"])),
            "label_model": draw(st.sampled_from(["bernoulli", "sign"])),
            "eigenvalue_spacing": draw(st.sampled_from(["geometric", "linear"])),
        }
    else:
        p = {
            "depth": draw(st.integers(1, 4)),
            "width": draw(st.integers(1, 6)),
            "weight_scale": draw(st.floats(0, 2)),
            "fan_in_scaling": draw(st.booleans()),
            "mixture": draw(st.tuples(st.floats(0, 1), st.floats(0.01, 1))),
            "mean_shift": draw(st.floats(-3, 3)),
            "noise_std": draw(st.floats(0, 1)),
        }
    return name, d, p


def tensors(batch):
    return {"xs": batch.xs, "ys": batch.ys, **batch.truth}


@PROPS
@given(
    task=task_and_params(),
    batch=st.integers(1, 4),
    n_points=st.integers(1, 8),
    double=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
    active=st.integers(0, 6),
)
def test_task_samples_have_shapes_are_finite_and_reproducible(
    task, batch, n_points, double, seed, active
):
    name, d, params = task
    t = icsim.tasks.get(name, dim=d, **params)
    dtype = torch.float64 if double else torch.float32
    active_dims = active if 1 <= active <= d else None

    def draw(s):
        g = torch.Generator().manual_seed(s)
        return t.sample(batch, n_points, generator=g, dtype=dtype, active_dims=active_dims)

    b, again, other = draw(seed), draw(seed), draw(seed + 1)
    assert b.xs.shape == (batch, n_points, d) and b.ys.shape == (batch, n_points)
    for key, v in tensors(b).items():
        assert v.shape[0] == batch, key
        assert torch.equal(v, tensors(again)[key]), key  # the same seed, the same prompts
        if v.is_floating_point():
            assert v.dtype == dtype and torch.isfinite(v).all(), key
    if active_dims is not None and name != "logistic_regression":
        assert (b.xs[..., active_dims:] == 0).all()
    assert any(not torch.equal(v, tensors(other)[k]) for k, v in tensors(b).items())


LINEAR = {  # solver -> hyper-parameters it accepts (strategies)
    "gradient_descent": {"step_size": st.floats(1e-4, 0.5)},
    "preconditioned_gradient_descent": {"step_size": st.floats(1e-4, 0.5)},
    "online_gradient_descent": {"step_size": st.floats(1e-4, 0.5), "cycle": st.booleans()},
    "gd_plus_plus": {"step_size": st.floats(1e-4, 0.5), "gamma": st.floats(0, 0.5)},
    "iterative_newton": {"alpha": st.sampled_from(["frobenius", "spectral"])},
    "conjugate_gradient": {"tol": st.none() | st.floats(1e-12, 1e-3)},
    "least_squares": {},
    "ridge": {"alpha": st.floats(1e-3, 10)},
    "averaging": {},
    "zero": {},
    "nearest_neighbours": {"n_neighbors": st.integers(1, 4)},
    "ista": {"lam": st.floats(0, 1)},
    "fista": {"lam": st.floats(0, 1)},
}
LOGISTIC = {
    "logistic_gradient_descent": {"mu": st.floats(0.01, 1)},
    "logistic_newton": {"mu": st.floats(0.01, 1)},
    "logistic_damped_newton": {"mu": st.floats(0.01, 1)},
    "logistic_inexact_newton": {"mu": st.floats(0.05, 1)},
}

MIXTURE = {"mixture_em", "mixture_gradient_em", "symmetric_em", "symmetric_gradient_em"}
MIXTURE |= {"mixture_posterior_mean", "mixture_oracle"}


def test_every_batched_solver_is_covered():
    # the solvers left out need a trained network or a network task: tests/algorithms
    # (LISTA, deep GD) covers them
    others = {"lasso", "lista", "lista_cp", "relu_network_gd", "relu_network_trained"}
    others |= {"lloyd", "soft_em"}  # clustering: tests/algorithms/test_clustering.py
    # spectral solvers (pca / spectral_clustering tasks): tests/algorithms/test_power_method.py
    others |= {"power_method", "subspace_iteration", "eigh", "spectral_clustering"}
    others |= MIXTURE  # tests/algorithms/test_mixture_em.py covers them
    assert set(LINEAR) | set(LOGISTIC) | others == set(icsim.algorithms.names())


@st.composite
def solver_and_problem(draw):
    name = draw(st.sampled_from(sorted(LINEAR) + sorted(LOGISTIC)))
    params = {k: draw(s) for k, s in {**LINEAR, **LOGISTIC}[name].items()}
    d = draw(st.integers(1, 5))
    if name in LOGISTIC:
        task = icsim.tasks.get("logistic_regression", dim=d)
    else:
        kappa = draw(st.floats(1, 1000)) if d > 1 else 1.0
        noise = draw(st.floats(0, 1))
        task = icsim.tasks.get("linear_regression", dim=d, condition_number=kappa, noise_std=noise)
    B, n, m = draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    batch = task.sample(B, n + m, generator=g, dtype=torch.float64)
    return name, params, batch.split(n), draw(st.integers(0, 6))


@PROPS
@given(solver_and_problem())
def test_solver_trajectories_have_shapes_are_finite_and_deterministic(case):
    name, params, problem, steps = case
    alg = icsim.algorithms.get(name, **params)
    traj = alg.run(problem, steps=steps)
    B, m = problem.X_query.shape[:2]
    assert traj.predictions.shape == (steps + 1, B, m)
    assert traj.iterates.shape[:2] == (steps + 1, B)
    assert traj.predictions.dtype == torch.float64
    assert torch.isfinite(traj.predictions).all() and torch.isfinite(traj.iterates).all()
    again = alg.run(problem, steps=steps)
    assert torch.equal(traj.predictions, again.predictions)
    assert torch.equal(traj.iterates, again.iterates)


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_solvers_reject_a_bad_hyperparameter_cleanly(name):
    from icsim.errors import InputError

    with pytest.raises(InputError, match="has no parameter 'bogus'"):
        icsim.algorithms.get(name, bogus=1)
