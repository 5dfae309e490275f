"""The giannou2025-newton reproduction (Giannou et al. 2025): a tiny config end to end, and the
helpers it measures with."""

import json
import math

import pytest
import torch

import icsim
from icsim.algorithms.logistic import logistic_gradient
from icsim.errors import InputError
from icsim.experiments import reproduce
from icsim.experiments.giannou2025 import (
    ConstructionSettings,
    GiannouConfig,
    TrainingSettings,
    matched_steps,
    newton_solution,
)

TINY = GiannouConfig(
    eval_prompts=32,
    gd_steps=20,
    newton_steps=4,
    construction=ConstructionSettings(
        widths=(64, 128),
        steps=5,
        prompts=8,
        newton_schulz_steps=(1, None),
        table_steps=2,
        table_prompts=16,
    ),
    training=TrainingSettings(depths=(1, 2), steps=20, batch_size=16, log_every=10),
)


def test_tiny_reproduction_writes_the_table_and_figures(tmp_path):
    out = reproduce("giannou2025-newton", "quick", tmp_path / "run", config=TINY, quiet=True)
    m = json.loads((out / "metrics.json").read_text())
    assert {"experiment", "profile", "wall_seconds", "curves", "scalars", "paper"} <= set(m)
    s, curves = m["scalars"], m["curves"]
    # (a) the construction follows damped Newton to 1e-3 for T = 3 at the default width ...
    assert s["construction_max_error_T3_width"] == 128
    assert 1e-7 < s["construction_max_error_T3"] <= 1e-3
    # ... and its floor falls when the width doubles (O(W^-2): about 4x)
    assert s["construction_floor_W128"] < s["construction_floor_W64"] / 2.5
    assert s["construction_layers_per_step_k1"] == 8 and s["construction_layers_per_step_k9"] == 24
    # (b) the depth-vs-Newton-steps table: one row per trained depth
    matched = curves["transformer_newton_steps_matched_cond1"]
    assert matched["x"] == [1, 2] and len(matched["y"]) == 2
    newton = curves["damped_newton_w_error_cond1"]["y"]
    assert newton[0] > 1e-2 and newton[-1] < 1e-8  # damped Newton converges to w_N
    for depth, t in zip(matched["x"], matched["y"], strict=True):
        err = s[f"cond1_depth{depth}_w_error"]
        assert err == curves["transformer_w_error_cond1"]["y"][matched["x"].index(depth)]
        # the matched step brackets the model's error on Newton's curve
        assert newton[math.ceil(t)] <= err * (1 + 1e-9)
        assert t == 0 or newton[math.floor(t)] >= err * (1 - 1e-9)
    for name in ("construction_vs_damped_newton", "depth_vs_newton_cond1", "training_loss"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "depth-vs-Newton-steps table" in report and "| 2 | " in report
    assert "not reported" in report  # no invented paper numbers for the trained models


def test_matched_steps_interpolates_on_a_log_scale():
    errors = [1.0, 1e-1, 1e-3]
    assert matched_steps(errors, 2.0) == 0.0
    assert matched_steps(errors, 1e-1) == 1.0
    assert matched_steps(errors, 10**-0.5) == pytest.approx(0.5)
    assert matched_steps(errors, 1e-2) == pytest.approx(1.5)
    assert matched_steps(errors, 1e-4) is None


def test_newton_solution_is_the_regularised_optimum():
    task = icsim.tasks.get("logistic_regression", dim=5, condition_number=10.0)
    batch = task.sample(64, 26, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    p = batch.split(25)
    w = newton_solution(p, mu=0.1)
    assert logistic_gradient(p.X, p.y, w, 0.1).norm(dim=-1).max() < 1e-10


def test_bad_config_is_rejected():
    with pytest.raises(InputError, match="construction.steps"):
        GiannouConfig(construction=ConstructionSettings(steps=2))
    with pytest.raises(InputError, match="depths"):
        GiannouConfig(training=TrainingSettings(depths=()))
