"""The algorithm atlas on models with known answers: the `gd` construction is GD(η) at step t in
layer t, the iterative-Newton construction is Newton(α = ε) at step t in layer t + 2; which
algorithms it compares with comes from the registry (`family`, `step_grid`, `param_grid`)."""

from dataclasses import dataclass

import pytest
import torch

import icsim
from icsim.algorithms.base import ALGORITHMS, Algorithm
from icsim.analysis.atlas import applicable, atlas
from icsim.errors import InputError
from icsim.report_site.sources import construction_source

SMALL = {"eval_prompts": 24, "weight_prompts": 6, "max_step": 8}


def run(spec, **kw):
    src = construction_source(spec)
    return atlas(
        src.model, src.fmt, src.task, n_points=src.n_points, extra=src.extra, sample=src.sample,
        **{**SMALL, **kw},
    )  # fmt: skip


def test_gd_construction_matches_gd_at_step_t_in_layer_t(tmp_path):
    a = run("gd:dim=3,steps=4,step_size=0.1")
    for layer in range(1, 5):
        best = a.best[layer]
        assert (best["algorithm"], best["params"], best["step"]) == (
            "gradient_descent", {"step_size": 0.1}, layer,
        )  # fmt: skip
        assert best["similarity"] > 1 - 1e-9 and best["weight_similarity"] > 1 - 1e-9
    assert a.best[0]["step"] == 0
    assert "layer 3 ≈ 3 gradient_descent(step_size=0.1) steps" in a.verdicts[3]
    assert "needs" in a.verdicts[3]  # the runner-up of another algorithm
    rate = a.to_json()["rates"]["gradient_descent(step_size=0.1)"]  # Fu et al.'s linear fit
    assert rate["steps"] == [1, 2, 3, 4] and rate["slope"] == pytest.approx(1)
    assert rate["linear_r2"] == pytest.approx(1)
    paths = a.write(tmp_path, "gd")
    assert all(p.stat().st_size > 0 for p in paths.values())
    assert "| layer |" in paths["markdown"].read_text()


def test_newton_construction_matches_its_own_alpha_two_layers_late():
    a = run("iterative_newton_regression:dim=3,steps=3")
    for layer in range(2, 6):
        best = a.best[layer]
        assert (best["algorithm"], best["params"], best["step"]) == (
            "iterative_newton", {"alpha": 1.0}, layer - 2,
        )  # fmt: skip
    # the Fu default (α = 1/‖SSᵀ‖_F) is a column of its own, never an exact match here
    col = next(i for i, c in enumerate(a.columns) if c["name"] == "iterative_newton")
    assert max(a.error_cosine[layer][col] for layer in range(2, 6)) < 1 - 1e-6


def test_a_perturbed_layer_is_no_longer_an_exact_gd_step():
    src = construction_source("gd:dim=3,steps=3")
    with torch.no_grad():  # layer 2 now takes a 30% larger step
        src.model.blocks[1].attn.proj.weight.mul_(1.3)
    a = atlas(src.model, src.fmt, src.task, n_points=src.n_points, sample=src.sample, **SMALL)
    assert a.best[1]["similarity"] > 1 - 1e-9
    assert a.best[2]["similarity"] < 1 - 1e-6


@dataclass(frozen=True)
class _Toy(Algorithm):
    scale: float = 1.0
    name = "toy_average"
    family = "toy_family"
    closed_form = True
    param_grid = {"scale": (0.5, 1.0), "shift": (0.0,)}

    def init(self, problem):
        return problem.X.new_zeros(problem.X.shape[0], problem.X.shape[2])


def test_a_newly_registered_family_is_picked_up_from_the_registry():
    ALGORITHMS.register("toy_average")(_Toy)
    try:
        cols = applicable("toy_family")
        assert [c["params"] for c in cols] == [
            {"scale": 0.5, "shift": 0.0}, {"scale": 1.0, "shift": 0.0}
        ]  # fmt: skip
        assert all(c["steps"] == [0] for c in cols)
    finally:
        del ALGORITHMS._factories["toy_average"], ALGORITHMS._meta["toy_average"]


def test_a_task_no_algorithm_applies_to_is_one_input_error():
    src = construction_source("gd:dim=3,steps=1")
    src.task.name = "no_such_family"
    with pytest.raises(InputError, match="no registered algorithm applies to task"):
        atlas(src.model, src.fmt, src.task, n_points=src.n_points, sample=src.sample, **SMALL)


def test_a_trained_style_model_gets_probes_for_every_prefix():
    from icsim.models import Interleaved, ModelConfig, Transformer

    task = icsim.tasks.get("linear_regression", dim=3)
    fmt = Interleaved(3)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_dims_in=fmt.width, n_layer=2, n_head=2, n_embd=16)).eval()
    a = atlas(model, fmt, task, n_points=8, probe_prompts=64, **SMALL)
    assert a.read_out == "probes" and a.settings["prefixes"] and len(a.verdicts) == 3
    names = {c["algorithm"] for c in a.columns}
    assert {"least_squares", "gradient_descent", "iterative_newton"} <= names
    assert not names & {"ista", "logistic_newton"}  # other families stay out
