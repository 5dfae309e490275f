"""Every construction against its registered algorithm: exact in float64, sensitive to its
weights, and the size its docstring states."""

import math

import pytest
import torch

import icsim
from icsim.analysis.construction_figures import plot_error_growth
from icsim.constructions import verify as V
from icsim.constructions.base import ConstructionInfo
from icsim.errors import InputError

# (name, extra params); d = 4 and 3 steps keep each verification to a fraction of a second.
CASES = [
    ("gd", {"step_size": 0.3}),
    ("gd_plus_plus", {"step_size": 0.3, "gamma": 0.2}),
    ("newton_schulz", {}),
    ("newton_schulz", {"symmetric": True}),
    ("iterative_newton_regression", {"epsilon": 1.0}),
]
IDS = ["gd", "gd++", "ns", "ns-symmetric", "newton-regression"]


@pytest.mark.parametrize("name,params", CASES, ids=IDS)
def test_construction_matches_its_algorithm_to_1e_10_in_float64(name, params):
    result = V.verify(name, steps=3, dim=4, n_problems=1000, **params)
    assert result.passed, result.summary()
    assert result.bound == 1e-10 and "<= 1e-10" in result.criterion
    assert result.max_error <= 1e-12  # measured ~1e-15; 1e-10 is the bar
    assert result.n_problems == 3000
    assert set(result.per_step_by_condition) == {"1", "10", "100"}
    assert len(result.per_step) == 4 and len(result.info.step_blocks) == 4
    assert max(result.per_step_by_condition["100"]) <= 1e-12
    assert result.info.algorithm in icsim.algorithms.names() or result.info.algorithm == (
        "newton_schulz"
    )


def test_more_steps_and_context_sizes_stay_exact():
    """GD's 1/n comes from the attention normalisation: exact for any context size."""
    for n_context in (1, 2, 9):
        r = V.verify("gd", steps=2, dim=3, n_problems=200, n_context=n_context)
        assert r.passed, r.summary()
    r = V.verify("iterative_newton_regression", steps=8, dim=3, n_problems=300, n_context=5)
    assert r.passed, r.summary()
    r = V.verify("newton_schulz", steps=8, dim=5, n_problems=300)
    assert r.passed, r.summary()


def _first_nonzero(weight):
    idx = weight.abs().flatten().argmax()
    return weight.view(-1), idx


@pytest.mark.parametrize("name,params", CASES, ids=IDS)
@pytest.mark.parametrize("where", ["query", "value", "read_out"])
def test_perturbing_one_weight_fails_verification(name, params, where):
    queries = {} if name == "newton_schulz" else {"n_queries": 8}
    model, fmt = icsim.constructions.build(name, dim=4, steps=3, **params, **queries)
    ok = V.verify_model(model, fmt, n_problems=200)
    assert ok.passed
    weight = {
        "query": model.blocks[-1].attn.q.weight,
        "value": model.blocks[0].attn.v.weight,
        "read_out": model.read_out.weight,
    }[where]
    flat, idx = _first_nonzero(weight.data)
    with torch.no_grad():
        flat[idx] *= 1 + 1e-6
    bad = V.verify_model(model, fmt, n_problems=200)
    assert not bad.passed
    assert bad.max_error > 1e-8


def _expected_size(name, d, T, symmetric=False):
    """layers, heads, width, head_dim as each construction's docstring states them."""
    if name == "gd":
        return T, 1, d + 1, d
    if name == "gd_plus_plus":
        return T, 1, d + 1, d + 1
    if name == "newton_schulz":
        return (T, 1, 3 * d, 2 * d) if symmetric else (2 * T, 2, 4 * d, d)
    if name == "iterative_newton_regression":
        return T + 2, 2, 4 * d + 3, 2 * d
    raise AssertionError(name)


@pytest.mark.parametrize("name,params", CASES, ids=IDS)
@pytest.mark.parametrize("d,T", [(1, 1), (3, 2), (6, 5)])
def test_size_equals_the_documented_formulas(name, params, d, T):
    model, fmt = icsim.constructions.build(name, dim=d, steps=T, **params)
    info = model.construction
    assert isinstance(info, ConstructionInfo)
    layers, heads, width, head_dim = _expected_size(name, d, T, params.get("symmetric", False))
    cfg = model.cfg
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.d_head) == (layers, heads, width, head_dim)
    assert (info.layers, info.heads, info.width, info.head_dim) == (layers, heads, width, head_dim)
    assert fmt.width == width
    # The formula strings evaluate to the same numbers.
    for key, value in (("layers", layers), ("heads", heads), ("width", width)):
        expr = info.formulas[key].replace("2T", "2*T").replace("4d", "4*d").replace("3d", "3*d")
        assert eval(expr, {"T": T, "d": d}) == value, (key, info.formulas[key])
    # Plain linear attention, tokens are the hidden state, no MLP/LayerNorm/positions.
    assert cfg.attention == "linear" and not cfg.mlp and not cfg.layer_norm
    assert not cfg.positional and not cfg.read_in
    # Every step is readable from a hidden state that exists; the last one is the output.
    assert info.step_blocks[-1] == layers
    assert all(0 <= b <= layers for b in info.step_blocks)
    assert info.layers_per_step * T + info.block_offset == layers
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


def test_verify_report_and_api():
    r = V.verify("gd", steps=2, dim=3, n_problems=100, dtype="float64")
    report = r.summary()
    last = report.splitlines()[-1]
    assert last.startswith("largest relative deviation: ")
    assert math.isclose(float(last.split(": ")[1]), r.max_error, rel_tol=1e-3)
    assert "PASS" in report and "gradient_descent(step_size=0.1)" in report
    assert r.criterion in report
    assert r.n_parameters > 0 and r.info.layers == 2
    assert r.to_dict()["passed"] is True and r.to_dict()["max_relative_error"] == r.max_error

    model, _, lines = V.describe("gd", steps=2, dim=3)
    assert lines[0] == "construction gd (dim=3, steps=2)" and model.construction.layers == 2

    with pytest.raises(InputError, match="unknown construction 'gdd'"):
        V.verify("gdd", steps=1)
    with pytest.raises(InputError, match="dtype must be float64 or float32"):
        V.verify("gd", steps=1, dtype="float16")
    with pytest.raises(InputError, match="has no parameter 'eta'"):
        V.verify("gd", steps=1, eta=0.1)
    with pytest.raises(InputError, match="steps must be a positive integer"):
        V.verify("gd", steps=0)
    with pytest.raises(InputError, match="has no parameter 'kappa'.*condition_number"):
        V.verify("gd", steps=1, kappa=10)


def test_task_parameters_reach_the_task():
    """condition_number picks one κ; another task parameter (noise) changes the prompts."""
    r = V.verify("gd", steps=2, dim=3, n_problems=50, condition_number=30)
    assert r.passed and list(r.per_step_by_condition) == ["30"] and r.n_problems == 50
    noisy = V.verify("gd", steps=2, dim=3, n_problems=50, condition_number=30, noise_std=1.0)
    assert noisy.task_params == {"noise_std": 1.0} and noisy.passed
    assert noisy.per_step != r.per_step


def test_float32_run_is_close_but_not_exact():
    r = V.verify("newton_schulz", steps=3, dim=4, n_problems=200, dtype=torch.float32)
    assert r.bound == 1e-4 and r.passed and "float32" in r.criterion
    assert 1e-9 < r.max_error < 1e-4


def test_error_growth_curves_and_figure(tmp_path):
    curves = V.error_growth("gd", 3, n_problems=100, dim=3)
    assert list(curves) == ["kappa=1", "kappa=10", "kappa=100"]
    for c in curves.values():
        assert c["x"] == [0, 1, 2, 3]
        assert all(lo <= mid <= hi <= mx for lo, mid, hi, mx in zip(
            c["y_low"], c["y"], c["y_high"], c["y_max"]))  # fmt: skip
        assert 1e-9 < max(c["y"][1:]) < 1e-4  # float32 rounding, not float64's
    path = plot_error_growth(curves, tmp_path / "growth.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("gd", {"dim": 0}, "dim must be a positive integer"),
        ("gd", {"step_size": -1.0}, "step_size must be > 0"),
        ("gd_plus_plus", {"gamma": -0.1}, "gamma must be >= 0"),
        ("newton_schulz", {"symmetric": "yes"}, "symmetric must be True or False"),
        ("iterative_newton_regression", {"epsilon": 0.0}, "epsilon must be > 0"),
        ("iterative_newton_regression", {"steps": 0}, "steps must be a positive integer"),
    ],
)
def test_bad_parameters_raise_input_error(name, params, message):
    with pytest.raises(InputError, match=message):
        icsim.constructions.build(name, **params)


def test_building_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    icsim.constructions.build("iterative_newton_regression", dim=3, steps=2)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
