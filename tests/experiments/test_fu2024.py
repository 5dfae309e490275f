import json

import pytest

from icsim.experiments import reproduce
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


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    algorithms = {
        "iterative_newton": {"steps": list(range(8))},
        "gradient_descent": {"params": {"step_size": 0.01}, "steps": [0, 1, 4, 16, 64, 256]},
        "online_gradient_descent": {"params": {"step_size": 0.01}, "steps": [0, 1, 4, 16]},
    }
    cfg = FuConfig(
        transformer=tiny("transformer", 3),
        lstm=tiny("lstm", 2),
        eval_prompts=64,
        probe_prompts=256,
        algorithms=algorithms,
    )
    out = reproduce("fu2024-second-order", config=cfg, out=tmp_path_factory.mktemp("fu") / "r")
    return out, json.loads((out / "metrics.json").read_text())


def test_curves_named_in_the_issue(run):
    out, m = run
    c = m["curves"]
    assert len(c["matched_step_iterative_newton"]["y"]) == 3  # one per layer
    assert set(c["matched_step_iterative_newton"]["y"]) <= set(range(8))
    assert set(c["matched_step_gradient_descent"]["y"]) <= {0, 1, 4, 16, 64, 256}
    assert len(c["error_by_layer_transformer"]["y"]) == 4  # embedding + 3 layers
    assert len(c["error_by_layer_lstm"]["y"]) == 3
    assert 0 <= m["scalars"]["newton_match_linear_r2"] <= 1
    assert (out / "similarity_iterative_newton.png").exists() and (out / "report.md").exists()


def test_layer_errors_are_the_probes_errors(run):
    # the ridge read-out of the last layer is fitted on the same distribution the model was
    # trained for, so it is at least nearly as good as the model's own read-out
    s, c = run[1]["scalars"], run[1]["curves"]
    assert c["error_by_layer_transformer"]["y"][-1] <= 1.1 * s["final_layer_error"]
    assert -1 <= s["similarity_lstm_iterative_newton"] <= 1
