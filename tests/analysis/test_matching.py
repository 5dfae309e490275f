from dataclasses import replace

import numpy as np
import pytest
import torch

import icsim
from icsim.analysis.matching import (
    algorithm_induced_weights,
    best_matching_step,
    error_cosine,
    every_algorithm,
    fit_induced_weights,
    fit_matched_steps,
    induced_weights,
    match_layers,
    prefix_trajectory,
    similarity_matrix,
)
from icsim.analysis.probes import fit_probes, layer_predictions


def batch(n=12, d=4, B=64, kappa=1.0, seed=0):
    task = icsim.tasks.get("linear_regression", dim=d, condition_number=kappa)
    return task.sample(B, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("kappa", [1.0, 100.0])
def test_gd_construction_matches_gd_step_for_step(kappa):
    T, eta = 5, 0.3
    model, fmt = icsim.constructions.build("gd", dim=4, steps=T, step_size=eta, n_queries=4)
    model = model.double()
    b = batch(kappa=kappa)
    layers = layer_predictions(model, fmt, b)  # own read-out: [T+1, B, 4]
    traj = icsim.algorithms.get("gradient_descent", step_size=eta).run(b, T, n_context=8)
    sim = similarity_matrix(layers, traj.predictions, fmt.targets(b), "error_cosine")
    assert best_matching_step(sim) == list(range(T + 1))
    assert torch.allclose(sim.diagonal()[1:], torch.ones(T, dtype=sim.dtype), atol=1e-12)
    # weights: every layer's induced weights are GD's iterate
    w_layers = induced_weights(lambda bb: layer_predictions(model, fmt_for(bb, fmt), bb), b, 4)
    w_alg = algorithm_induced_weights(
        icsim.algorithms.get("gradient_descent", step_size=eta), b, 4, range(T + 1)
    )
    assert torch.allclose(w_layers, w_alg, atol=1e-10)
    wsim = similarity_matrix(w_layers[1:], w_alg[1:], None, "weight_cosine")
    assert best_matching_step(wsim) == list(range(T))


def fmt_for(bb, fmt):
    # copies for induced weights hold one query each
    return icsim.models.Stacked(fmt.dim, n_queries=1)


def newton_construction_layers(T=6, d=4, n_context=10, n_queries=6, kappa=10.0):
    """Per-layer predictions of Giannou et al.'s iterative-Newton construction, whose layer
    ℓ ≥ 2 is known to hold Newton step ℓ − 2 (block_offset 2), on prompts scaled to ‖A‖₂ = 1."""
    model, fmt = icsim.constructions.build(
        "iterative_newton_regression", dim=d, steps=T, n_queries=n_queries
    )
    model = model.double()
    b = batch(n=n_context + n_queries, d=d, B=128, kappa=kappa)
    norm = torch.linalg.matrix_norm(b.xs[:, :n_context], ord=2)
    b = replace(b, xs=b.xs / norm[:, None, None], ys=b.ys / norm[:, None])
    return layer_predictions(model, fmt, b), fmt.targets(b), b, n_context


def test_matching_recovers_the_newton_steps_a_construction_runs():
    T = 6
    layers, target, b, n_context = newton_construction_layers(T)
    newton = icsim.algorithms.get("iterative_newton", alpha=1.0)
    traj = newton.run(b, T, n_context=n_context).predictions  # [T+1, B, Q]
    sim = similarity_matrix(layers[2:], traj, target, "error_cosine")
    steps = list(range(T + 1))
    assert best_matching_step(sim, steps) == steps  # layer ℓ = Newton step ℓ − 2
    fit = fit_matched_steps(list(range(2, T + 3)), best_matching_step(sim, steps))
    assert fit["linear"]["slope"] == pytest.approx(1.0) and fit["linear"]["r2"] == pytest.approx(1)
    # GD (any step on a long grid) matches the Newton layers worse than Newton does
    grid = [0] + [2**i for i in range(12)]
    gd = icsim.algorithms.get("gradient_descent", step_size=0.5).run(
        b, max(grid), n_context=n_context
    )
    gd_sim = similarity_matrix(layers[2:], gd.predictions[grid], target, "error_cosine")
    best_newton, best_gd = sim.max(1).values, gd_sim.max(1).values
    assert (best_newton[1:] > best_gd[1:] + 1e-3).all()


def test_matching_tells_a_shifted_algorithm_by_its_shift():
    # layer ℓ of a fake model runs 3ℓ Newton steps: matching must find 3ℓ, not ℓ
    b = batch(kappa=10.0)
    newton = icsim.algorithms.get("iterative_newton")
    traj = prefix_trajectory(newton, b, 12)
    layers = traj[[0, 3, 6, 9, 12]]
    out = match_layers(layers, b, {"iterative_newton": {"steps": list(range(13))}})
    assert out["iterative_newton"]["matched_step"] == [0, 3, 6, 9, 12]
    assert out["iterative_newton"]["fits"]["linear"]["slope"] == pytest.approx(3.0)


def test_prefix_trajectory_equals_per_prefix_numpy_gd():
    b = batch(n=6, d=3, B=5)
    eta, T = 0.2, 4
    got = prefix_trajectory(icsim.algorithms.get("gradient_descent", step_size=eta), b, T)
    X, y = b.xs.numpy(), b.ys.numpy()
    for i in range(5):
        for k in range(6):
            w = np.zeros(3)
            for t in range(T + 1):
                if k:
                    expected = X[i, k] @ w
                else:
                    expected = 0.0
                np.testing.assert_allclose(got[t, i, k].item(), expected, atol=1e-12)
                if k:
                    w = w - eta * X[i, :k].T @ (X[i, :k] @ w - y[i, :k]) / k


def test_error_cosine_is_cosine_of_residuals():
    g = torch.Generator().manual_seed(1)
    a, c, y = (torch.randn(7, 9, generator=g, dtype=torch.float64) for _ in range(3))
    a_, c_, y_ = a.numpy(), c.numpy(), y.numpy()
    ea, ec = a_ - y_, c_ - y_
    ref = np.mean([ea[i] @ ec[i] / np.linalg.norm(ea[i]) / np.linalg.norm(ec[i]) for i in range(7)])
    assert error_cosine(a, c, y).item() == pytest.approx(ref, rel=1e-12)


def test_fits_tell_linear_from_exponential():
    layers = list(range(1, 11))
    lin = fit_matched_steps(layers, [3 * i for i in layers])
    assert lin["linear"]["r2"] == pytest.approx(1.0) and lin["linear"]["slope"] == pytest.approx(3)
    exp = fit_matched_steps(layers, [2**i for i in layers])
    assert exp["exponential"]["r2"] == pytest.approx(1.0)
    assert exp["exponential"]["slope"] == pytest.approx(np.log(2))
    assert exp["linear"]["r2"] < 0.9


def test_fit_induced_weights_recovers_linear_map():
    g = torch.Generator().manual_seed(2)
    xq = torch.randn(3, 40, 5, generator=g, dtype=torch.float64)
    w = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    pred = torch.einsum("bqd,lbd->lbq", xq, w)
    assert torch.allclose(fit_induced_weights(xq, pred), w, atol=1e-10)


def test_probes_recover_a_linear_readout():
    # the probe of the last layer of a model whose read-out is linear finds that read-out
    torch.manual_seed(0)
    model = icsim.models.Transformer(n_dims_in=4, n_layer=2, n_head=2, n_embd=16, layer_norm=False)
    fmt = icsim.models.Interleaved(3)
    task = icsim.tasks.get("linear_regression", dim=3)
    with torch.no_grad():  # make the model's output the target's best linear read-out
        model.read_out.bias.zero_()
    b = task.sample(256, 7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        target_out = fmt.run(model, b)
        b.ys = target_out.clone()

    # fit probes against a task whose labels are the model's own output: refit via a wrapper
    class Own(icsim.tasks.Task):
        dim = 3

        def _sample(self, B, n, gen, device, dtype, active_dims):
            bb = task.sample(B, n, generator=gen, device=device, dtype=dtype)
            with torch.no_grad():
                bb.ys = fmt.run(model, bb)
            return bb

    probes = fit_probes(
        model,
        fmt,
        Own(),
        n_prompts=512,
        n_points=7,
        generator=torch.Generator().manual_seed(4),
        ridge=1e-10,
    )
    pred = layer_predictions(model, fmt, b, probes)
    assert torch.allclose(pred[-1], target_out, atol=1e-4)


def test_every_algorithm_covers_the_registry():
    spec = every_algorithm(steps=range(3))
    linear = {
        n
        for n in icsim.algorithms.names()
        if icsim.algorithms.ALGORITHMS.factory(n).family == "linear_regression"
    }
    assert set(spec) == linear
    assert {"least_squares", "gradient_descent", "iterative_newton"} <= linear
    assert "ista" not in spec
    assert spec["least_squares"]["steps"] == [0]
    assert spec["gradient_descent"]["steps"] == [0, 1, 2]
