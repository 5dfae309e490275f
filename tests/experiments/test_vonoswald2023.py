import json

import pytest

from icsim.experiments import reproduce
from icsim.experiments.vonoswald2023 import VonOswaldConfig, lsa_train_config


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    cfg = VonOswaldConfig(
        dim=4,
        n_context=6,
        depths=(1, 2),
        train=lsa_train_config(
            4, 6, 1.0, steps=300, lr=1e-2, batch_size=256, log_every=50, checkpoint_every=300
        ),
        eval_tasks=2000,
        growth_steps=3,
        growth_problems=50,
        gd_plus_plus_gammas=(0.0, 0.5),
    )
    out = reproduce("vonoswald2023-gd", config=cfg, out=tmp_path_factory.mktemp("vo") / "run")
    return out, json.loads((out / "metrics.json").read_text())


def test_outputs_have_the_shared_shape(metrics):
    out, m = metrics
    assert {"experiment", "profile", "wall_seconds", "git_commit", "curves", "scalars"} <= set(m)
    for c in m["curves"].values():
        assert len(c["x"]) == len(c["y"]) > 0
    assert (out / "report.md").exists() and (out / "training_loss.png").exists()
    assert (out / "float32_error_growth_iterative_newton_regression.png").exists()


def test_a_trained_layer_is_one_gd_step_and_the_construction_is_gd(metrics):
    s = metrics[1]["scalars"]
    # a tiny training run: within 5% of the best one-step GD, sensitivities aligned
    assert s["loss_trained_1layer"] < 1.05 * s["loss_gd_1step"]
    assert s["model_cos_1layer"] > 0.97
    # the hand-built model at the same η is GD to rounding; GD++ (γ = 0 is GD) is no worse
    for k in (1, 2):
        assert s[f"loss_construction_{k}layer"] == pytest.approx(s[f"loss_gd_{k}step"], rel=1e-5)
    assert s["loss_gd_plus_plus_2step"] <= s["loss_gd_2step"] * (1 + 1e-6)
    assert s["loss_gd_2step"] < s["loss_gd_1step"] < s["loss_zero"]
