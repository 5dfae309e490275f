import json
from types import SimpleNamespace

import pytest
import torch

import icsim
from icsim.experiments import fu2024, reproduce
from icsim.experiments.fu2024 import FuConfig
from icsim.training import Curriculum, TrainConfig


def tiny(model, n_layer):
    return TrainConfig(
        model=model,
        dim=3,
        n_layer=n_layer,
        n_head=2,
        n_embd=16,
        steps=150,
        batch_size=32,
        lr=3e-3,
        log_every=50,
        checkpoint_every=150,
        curriculum=Curriculum(
            enabled=False, dims_start=3, dims_end=3, points_start=8, points_end=8
        ),
    )


ALGORITHMS = {
    "iterative_newton": {"steps": list(range(8))},
    "gradient_descent": {"params": {"step_size": 0.01}, "steps": [0, 1, 4, 16, 64, 256]},
    "online_gradient_descent": {"params": {"step_size": 0.01}, "steps": [0, 1, 4, 16]},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = FuConfig(
        transformer=tiny("transformer", 3),
        lstm=tiny("lstm", 2),
        eval_prompts=64,
        probe_prompts=256,
        algorithms=ALGORITHMS,
    )
    out = reproduce("fu2024-second-order", config=cfg, out=tmp_path_factory.mktemp("fu") / "r")
    return out, json.loads((out / "metrics.json").read_text())


def test_curves_named_in_the_issue(run):
    out, m = run
    c, s = m["curves"], m["scalars"]
    assert len(c["matched_step_iterative_newton"]["y"]) == 3  # one per layer
    assert len(c["error_by_layer_transformer"]["y"]) == 4  # embedding + 3 layers
    assert len(c["error_by_layer_lstm"]["y"]) == 3
    # the scalars are read off the curves they summarise, and bounds are flagged as bounds
    newton, gd = c["matched_step_iterative_newton"]["y"], c["matched_step_gradient_descent"]["y"]
    assert s["matched_step_last_layer_iterative_newton"] == newton[-1]
    assert s["matched_step_last_layer_gradient_descent"] == gd[-1]
    assert s["gd_over_newton_steps_last_layer"] == pytest.approx(gd[-1] / max(newton[-1], 1))
    assert s["newton_match_non_decreasing"] == float(newton == sorted(newton))
    assert s["matched_step_at_grid_end_gradient_descent"] == float(gd[-1] == 256)
    assert s["layers_at_grid_end_gradient_descent"] == sum(v == 256 for v in gd)
    for key in ("", "_low", "_high"):  # the margin and its interval are measured
        assert key == "" or f"similarity_margin_newton_minus_gd{key}" in s
    assert s["similarity_margin_newton_minus_gd_low"] <= s["similarity_margin_newton_minus_gd"]
    assert s["similarity_margin_newton_minus_gd"] <= s["similarity_margin_newton_minus_gd_high"]
    # the margin is Newton's similarity minus GD's, prompt by prompt (its mean is the difference
    # of the two means)
    assert s["similarity_margin_newton_minus_gd"] == pytest.approx(
        s["similarity_transformer_iterative_newton"] - s["similarity_transformer_gradient_descent"],
        abs=1e-5,
    )
    assert "similarity_induced_weights_transformer_iterative_newton" in s
    report = (out / "report.md").read_text()
    assert "## The paper's findings, judged from our numbers" in report
    assert (out / "similarity_iterative_newton.png").exists()


def test_layer_errors_are_the_probes_errors(run):
    # the ridge read-out of the last layer is fitted on the same distribution the model was
    # trained for, so it is at least nearly as good as the model's own read-out
    s, c = run[1]["scalars"], run[1]["curves"]
    assert c["error_by_layer_transformer"]["y"][-1] <= 1.1 * s["final_layer_error"]


def test_induced_weights_of_a_gd_construction_are_gd():
    """Fu et al.'s induced weights through the experiment's own code path, on a model whose
    layers are known: the T-layer GD construction's last layer is T steps of GD, exactly."""
    d, T, eta = 3, 4, 0.3
    model, _ = icsim.constructions.build("gd", dim=d, steps=T, step_size=eta, n_queries=1)
    model = model.float()  # as a trained model: prompts are float32
    task = icsim.tasks.get("linear_regression", dim=d)
    trainer = SimpleNamespace(
        model=model, fmt=icsim.models.Stacked(d, n_queries=1), task=task, cfg=SimpleNamespace(dim=d)
    )
    algorithms = {
        "iterative_newton": {"steps": list(range(8))},
        "gradient_descent": {"params": {"step_size": eta}, "steps": list(range(8))},
    }
    cfg = FuConfig(eval_prompts=200, algorithms=algorithms)
    boot = torch.Generator().manual_seed(0)
    w, last = fu2024.weights_matches(trainer, None, cfg, "cpu")
    assert w["gradient_descent"]["best_similarity"][-1] == pytest.approx(1, abs=1e-5)
    assert w["gradient_descent"]["matched_step"][-1] == T
    assert w["iterative_newton"]["best_similarity"][-1] < 0.999
    s = fu2024.margins(w, last, None, "margin", "", boot)
    assert s["margin_high"] < 0  # GD, not Newton, is what this model runs
    assert s["margin_low"] <= s["margin"] <= s["margin_high"]


def test_a_match_at_the_grids_end_is_flagged_a_bound():
    from icsim.analysis.matching import at_grid_end

    assert at_grid_end([0, 4, 16, 16], [0, 1, 4, 16]) == [False, False, True, True]
    assert at_grid_end([1, 2], [0, 1, 2, 4]) == [False, False]


@pytest.mark.parametrize("d", [4, 5])
def test_fu_covariance_option_is_two_level(d):
    """Fu et al.'s κ = 100: their scale matrix has √κ = 10 on d/2 directions, so Σ has two
    eigenvalues, λ_max on ⌊d/2⌋ directions and λ_max/κ on the rest (the default of the Fu
    experiment; "geometric" spreads them over all d)."""
    import numpy as np

    task = icsim.tasks.get(
        "linear_regression", dim=d, condition_number=100.0, eigenvalue_spacing="two_level"
    )
    g = torch.Generator().manual_seed(0)
    b = task.sample(3, 20000, generator=g, dtype=torch.float64)
    expected = np.sort([1.0] * (d // 2) + [0.01] * (d - d // 2))
    for i in range(3):
        np.testing.assert_allclose(np.linalg.eigvalsh(b.Sigma[i].numpy()), expected, atol=1e-12)
        emp = np.cov(b.xs[i].numpy().T)  # x ~ N(0, Σ): the drawn points have covariance Σ
        np.testing.assert_allclose(emp, b.Sigma[i].numpy(), atol=0.05)
    assert FuConfig().eigenvalue_spacing == "two_level"
