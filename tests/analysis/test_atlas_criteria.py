"""What makes the atlas fast and what its verdict says: every grid step from one pass
(`predictions_at`; gradient descent in closed form) against an independent float64 loop, and the
verdict's criterion (Fu et al. 2024: among columns the similarity of errors cannot tell apart,
the one needing fewest steps) on numbers shaped like the quick Fu run's."""

import importlib

import numpy as np
import pytest
import torch

import icsim
from icsim.analysis.atlas_outputs import verdicts
from icsim.tasks.base import Problem

A = importlib.import_module("icsim.analysis.atlas")
STEPS = [0, 1, 2, 7, 64, 512, 4096]


def numpy_gd(X, y, Xq, eta, steps, w0=None):
    """Plain float64 loop: w ← w − η (1/n) Xᵀ(Xw − y), predictions at `steps`."""
    B, n, d = X.shape
    w = np.zeros((B, d)) if w0 is None else np.broadcast_to(w0, (B, d)).copy()
    out, t = [], 0
    for s in steps:
        for _ in range(s - t):
            w = w - eta * np.einsum("bnd,bn->bd", X, np.einsum("bnd,bd->bn", X, w) - y) / max(n, 1)
        t = s
        out.append(np.einsum("bmd,bd->bm", Xq, w))
    return np.stack(out)


@pytest.mark.parametrize("n", [0, 3, 8, 40])
def test_gd_closed_form_matches_the_loop_at_every_grid_step(n):
    rng = np.random.default_rng(n)
    B, d = 16, 8
    X = rng.standard_normal((B, n, d)) * np.logspace(0, -3, d)  # κ(XᵀX) up to 1e6
    y, Xq, w0 = rng.standard_normal((B, n)), rng.standard_normal((B, 3, d)), rng.standard_normal(d)
    p = Problem(*(torch.tensor(a) for a in (X, y, Xq)))
    for eta, start in [(0.01, None), (0.3, None), (0.1, w0)]:
        gd = icsim.algorithms.get("gradient_descent", step_size=eta)
        if start is not None:
            gd = type(gd)(step_size=eta, w0=torch.tensor(start))
        got = gd.predictions_at(p, STEPS).numpy()
        want = numpy_gd(X, y, Xq, eta, STEPS, start)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_predictions_at_keeps_the_loops_steps_for_any_iterative_solver():
    torch.manual_seed(0)
    p = Problem(torch.randn(5, 6, 4, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64),
                torch.randn(5, 2, 4, dtype=torch.float64))  # fmt: skip
    newton = icsim.algorithms.get("iterative_newton")
    steps = [3, 0, 9]
    full = newton.run(p, 9).predictions
    torch.testing.assert_close(newton.predictions_at(p, steps), full[steps], rtol=0, atol=0)


def fu_like(resolution_gap: float = 0.003) -> A.Atlas:
    """Two layers; columns GD (η = 0.1), Newton, least squares. Layer 1: GD is best at 256 steps,
    Newton `resolution_gap` below at 11 (the quick Fu run: 0.953 vs 0.949), least squares far
    below. Layer 0: an exact GD match at step 3 beside a near Newton one at step 1."""
    cols = [
        {"name": "gd", "algorithm": "gradient_descent", "params": {}, "steps": [0, 1, 3, 256]},
        {"name": "newton", "algorithm": "iterative_newton", "params": {}, "steps": list(range(24))},
        {"name": "ls", "algorithm": "least_squares", "params": {}, "steps": [0]},
    ]
    ec = [[1.0, 0.995, 0.90], [0.9525, 0.9525 - resolution_gap, 0.901]]
    steps = [[3, 1, 0], [256, 11, 0]]
    end = [[False, False, True], [True, False, True]]
    return A.Atlas("linear_regression", cols, ec, steps, end, None, None, ec, steps, [1, 0.2],
                   "probes", {})  # fmt: skip


def test_verdict_names_the_fewer_steps_among_columns_similarity_cannot_tell_apart():
    best, texts = verdicts(fu_like())
    assert (best[1]["algorithm"], best[1]["step"]) == ("iterative_newton", 11)
    assert best[1]["runner_up"]["tied"] and "named for fewer steps" in texts[1]
    assert "gd needs ≥ 256 steps" in texts[1]
    # an exact match is never traded for a near one with fewer steps
    assert (best[0]["algorithm"], best[0]["step"]) == ("gradient_descent", 3)
    # a gap beyond the resolution (Newton's distance 1.3× GD's): the similarity decides
    assert verdicts(fu_like(0.015))[0][1]["algorithm"] == "gradient_descent"


def test_without_the_resolution_the_verdict_flips_to_the_highest_similarity(monkeypatch):
    """Break the criterion (resolution 0: only exact ties) and the verdict is GD's again."""
    import icsim.analysis.atlas_outputs as O

    monkeypatch.setattr(O, "RESOLUTION", 0.0)
    assert verdicts(fu_like())[0][1]["algorithm"] == "gradient_descent"


def test_queries_sharing_one_context_equal_one_copy_per_query():
    """The induced weights' fast path (one context, queries masked from one another) gives what
    Q separate copies of the prompt give (`matching.induced_weights`)."""
    from icsim.analysis.matching import induced_weights
    from icsim.analysis.probes import layer_predictions
    from icsim.models import Interleaved, ModelConfig, Transformer

    d, n_ctx = 3, 4
    fmt, task = Interleaved(d), icsim.tasks.get("linear_regression", dim=d)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_dims_in=fmt.width, n_layer=2, n_head=2, n_embd=16)).eval()
    batch = task.sample(5, n_ctx + 7, generator=torch.Generator().manual_seed(1))
    assert A._shares_context(model, fmt)
    fast = A._model_weights(model, fmt, None, batch, n_ctx, 0)
    copies = induced_weights(lambda b: layer_predictions(model, fmt, b), batch, n_ctx)
    torch.testing.assert_close(fast, copies, rtol=1e-4, atol=1e-5)


def test_solvers_run_on_one_thread_and_the_setting_is_restored(monkeypatch):
    from icsim.report_site.sources import construction_source

    seen, real = [], A._trajectory
    monkeypatch.setattr(
        A, "_trajectory", lambda *a: seen.append(torch.get_num_threads()) or real(*a)
    )
    src = construction_source("gd:dim=2,steps=1")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        A.atlas(src.model, src.fmt, src.task, n_points=src.n_points, sample=src.sample,
                eval_prompts=4, weight_prompts=0, max_step=2)  # fmt: skip
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
