"""The EWML layer/model and the deep_gd construction (Wu et al. 2025, Theorem 1) against
relu_network_gd, in float64 at small sizes."""

import math

import numpy as np
import pytest
import torch

import icsim.algorithms
import icsim.constructions
import icsim.tasks
from icsim.analysis.construction_figures import format_deep_gd as format_report
from icsim.constructions.deep_gd import (
    deep_gd,
    model_weights,
    relu_sum_interpolant,
    token_spread,
    verify_deep_gd,
)
from icsim.errors import InputError
from icsim.models import MODELS
from icsim.models.ewml import EWML, EWMLConfig, EWMLTransformer, LayerSpec
from icsim.tasks.relu_network import NetworkShape, network_forward


def _batch(B=4, n_context=10, d=3, depth=2, width=3, seed=0):
    task = icsim.tasks.get("relu_network_regression", dim=d, depth=depth, width=width)
    g = torch.Generator().manual_seed(seed)
    return task.sample(B, n_context + 1, generator=g, dtype=torch.float64)


def _gd(model, fmt, batch, **override):
    hp = {**model.construction.hyperparameters, **override}
    alg = icsim.algorithms.get("relu_network_gd", **hp, w0=fmt.initial_weights(batch))
    return alg.run(batch, model.construction.steps)


def _rel(a, b):
    return ((a - b).norm(dim=-1) / b.norm(dim=-1).clamp(min=1e-300)).max().item()


# ---- the EWML layer and the model ------------------------------------------------------------


def test_ewml_is_the_bilinear_residual_map():
    torch.manual_seed(0)
    layer = EWML(6, 4).double()
    h = torch.randn(2, 5, 6, dtype=torch.float64)
    A, B, P = (
        layer.a.weight.detach().numpy(),
        layer.b.weight.detach().numpy(),
        layer.proj.weight.detach().numpy(),
    )
    x = h.numpy()
    ref = x + ((x @ A.T) * (x @ B.T)) @ P.T
    np.testing.assert_allclose(layer(h).detach().numpy(), ref, rtol=1e-13, atol=1e-14)


def test_ewml_transformer_contract():
    assert "ewml_transformer" in MODELS.names()
    cfg = dict(
        n_embd=6,
        layers=[
            dict(kind="attention", n_head=2, head_dim=3),
            dict(kind="mlp", hidden=5),
            dict(kind="ewml", hidden=4),
        ],
        n_dims_out=2,
    )
    model = MODELS.get("ewml_transformer", config=cfg).double()
    tokens = torch.randn(3, 7, 6, dtype=torch.float64)
    out, hidden = model(tokens, return_hidden=True)
    assert out.shape == (3, 7, 2) and hidden.shape == (4, 3, 7, 6)
    assert torch.equal(hidden[0], tokens) and torch.allclose(model.read_out(hidden[-1]), out)
    # each layer is residual on its own input
    assert torch.allclose(hidden[3], model.layers[2](hidden[2]))
    with pytest.raises(InputError, match="width"):
        model(torch.randn(1, 2, 5, dtype=torch.float64))
    with pytest.raises(InputError):
        EWMLConfig(n_embd=4, layers=(LayerSpec("conv"),))
    with pytest.raises(InputError):
        EWMLTransformer(EWMLConfig(n_embd=4, layers=()))


# ---- building blocks ---------------------------------------------------------------------------


def test_relu_sum_interpolant_of_the_step_is_a_ramp_and_of_a_smooth_function_converges():
    step = lambda t: (t > 0).double()  # noqa: E731
    t, c, const = relu_sum_interpolant(step, 4.0, 33)
    h = 0.25
    assert const == 0 and 0.0 in t.tolist()
    nz = torch.nonzero(c).flatten()
    assert t[nz].tolist() == [0.0, h] and c[nz].tolist() == [1 / h, -1 / h]
    z = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    f_hat = const + (c * torch.relu(z[:, None] - t)).sum(-1)
    assert torch.allclose(f_hat, torch.clamp(z / h, 0, 1), atol=1e-13)
    errs = []
    for heads in (9, 33, 129):  # piecewise-linear interpolation: error <= h²/8 · max|f''|
        t, c, const = relu_sum_interpolant(torch.tanh, 3.0, heads)
        z = torch.linspace(-3, 3, 2001, dtype=torch.float64)
        err = (const + (c * torch.relu(z[:, None] - t)).sum(-1) - torch.tanh(z)).abs().max()
        hh = 6.0 / (heads - 1)
        assert err <= hh**2 / 8 * 0.77 + 1e-12
        errs.append(err.item())
    assert errs[0] > 10 * errs[-1]


def test_layer_count_and_token_layout():
    model, fmt = deep_gd(dim=3, depth=3, width=2, steps=2, heads=5, seed=4)
    N = 3
    assert model.n_layers == (2 * N + 4) * 2 + N
    assert model.construction.layers_per_step == 2 * N + 4
    kinds = [s.kind for s in model.cfg.layers[: 2 * N + 4]]
    assert kinds == ["attention"] * (N + 1) + ["mlp"] + ["ewml"] * N + ["attention", "mlp"]
    b = _batch(B=2, n_context=5, d=3, depth=3, width=2)
    tok = fmt.encode(b)
    lay, D_w = fmt.layout, fmt.shape.n_params
    assert tok.shape == (2, 6, lay.width) == (2, 6, fmt.width)
    assert torch.equal(tok[..., :3], b.xs)
    assert torch.equal(tok[:, :5, 3], b.ys[:, :5]) and (tok[:, 5, 3] == 0).all()
    w0 = icsim.algorithms.get("relu_network_gd", depth=3, width=2, seed=4).init(b.split(5))
    assert torch.equal(tok[..., lay.w : lay.w + D_w], w0[:, None].expand(2, 6, D_w))
    assert (tok[..., lay.scratch : lay.scratch_end] == 0).all()
    assert (tok[..., lay.one] == 1).all()
    assert tok[:, :5, lay.t].eq(1).all() and tok[:, 5, lay.t].eq(0).all()
    with pytest.raises(InputError, match="dim"):
        fmt.encode(_batch(d=4))


# ---- the construction against GD --------------------------------------------------------------


@pytest.mark.parametrize(
    "depth,width,radius,steps", [(1, 1, None, 3), (2, 3, None, 3), (3, 2, 0.7, 2), (3, 4, None, 2)]
)
def test_model_is_gd_with_its_own_ramp_derivative(depth, width, radius, steps):
    """Every layer but r̂′ is exact: the model equals GD whose r′ is the ramp clip(z/h, 0, 1)."""
    model, fmt = deep_gd(
        dim=3, depth=depth, width=width, steps=steps, radius=radius, heads=5, step_size=0.05
    )
    b = _batch(d=3, depth=depth, width=width, seed=1)
    ref = _gd(model, fmt, b)
    w = model_weights(model, fmt, b)
    assert _rel(w, ref.iterates) <= 1e-12
    with torch.no_grad():
        preds = fmt.run(model, b)
    assert torch.allclose(preds, ref.predictions[-1], rtol=1e-11, atol=1e-12)
    assert token_spread(model, fmt, b) <= 1e-13
    if depth > 1:  # h = 2 here, so the ramp is a real change from GD with the true r′
        exact = _gd(model, fmt, b, derivative_ramp=None)
        assert _rel(w[1:], exact.iterates[1:]) > 1e-4


def test_enough_heads_give_exact_gd():
    """Once the ramp is narrower than every positive pre-activation on the trajectory, the model
    is GD with the true r′ (to rounding)."""
    b = _batch(d=3, depth=3, width=3, seed=2)
    model, fmt = deep_gd(dim=3, depth=3, width=3, steps=3, heads=5, step_size=0.05)
    exact = _gd(model, fmt, b, derivative_ramp=None)
    shape, X = fmt.shape, b.xs[:, :-1]
    zs = [z for w in exact.iterates for z in network_forward(shape, w, X, True)[1][:-1]]
    z = torch.cat([z.flatten() for z in zs])
    z_min = z[z > 0].min().item()
    heads = 2 * math.ceil(4.0 / (0.5 * z_min)) + 1  # h = 8/(heads − 1) <= z_min/2
    model, fmt = deep_gd(
        dim=3, depth=3, width=3, steps=3, heads=heads, prune_heads=True, step_size=0.05
    )
    assert model.construction.hyperparameters["derivative_ramp"] < z_min
    w = model_weights(model, fmt, b)
    assert _rel(w, exact.iterates) <= 1e-10


def test_pruned_heads_compute_the_same_function():
    b = _batch(d=3, depth=3, width=2)
    full, fmt = deep_gd(dim=3, depth=3, width=2, steps=2, heads=9, radius=1.0)
    pruned, _ = deep_gd(dim=3, depth=3, width=2, steps=2, heads=9, radius=1.0, prune_heads=True)
    assert full.layers[3].attn.cfg.n_head == 9 * 2 * 2 and pruned.layers[3].attn.cfg.n_head == 8
    with torch.no_grad():
        hf = fmt.run(full, b, return_hidden=True)[1]
        hp = fmt.run(pruned, b, return_hidden=True)[1]
    assert torch.allclose(hf, hp, rtol=1e-13, atol=1e-13)


def test_a_broken_weight_is_detected():
    b = _batch(d=3, depth=2, width=3)
    model, fmt = deep_gd(dim=3, depth=2, width=3, steps=2, heads=5, step_size=0.05)
    ref = _gd(model, fmt, b).iterates
    assert _rel(model_weights(model, fmt, b), ref) <= 1e-12
    with torch.no_grad():
        model.layers[5].proj.weight.mul_(1.001)  # one EWML of the first step
    assert _rel(model_weights(model, fmt, b), ref) > 1e-6


def test_float32_model_tracks_float64_gd():
    b = _batch(d=3, depth=2, width=3)
    model, fmt = deep_gd(dim=3, depth=2, width=3, steps=3, heads=5, step_size=0.05)
    ref = _gd(model, fmt, b).iterates
    w32 = model_weights(model.float(), fmt, b.to(dtype=torch.float32))
    assert w32.dtype == torch.float32 and _rel(w32.double(), ref) <= 1e-5


@pytest.mark.parametrize(
    "kw", [dict(heads=1), dict(dtype="float16"), dict(step_size=0), dict(steps=0), dict(width=0)]
)
def test_bad_input(kw):
    with pytest.raises(InputError):
        deep_gd(**kw)


# ---- the verification entry points -------------------------------------------------------------


def test_verify_deep_gd_report_and_figure(tmp_path):
    r = verify_deep_gd(
        dim=3,
        depth=3,
        width=3,
        n_context=8,
        steps=2,
        heads=17,
        heads_sweep=(3, 17, 2**16 + 1),
        batch_size=4,
        figure=tmp_path / "deep_gd.png",
    )
    assert r["passed"] and r["exact_parts_ok"] and r["within_bound"]
    assert r["layers"] == 2 * 10 + 3 and len(r["distance_to_gd"]) == 3
    assert max(r["surrogate_deviation"]) <= 1e-12
    assert all(e <= bd * (1 + 1e-6) + 1e-12 for e, bd in zip(r["one_step_error"], r["bound"]))
    sweep = r["heads_sweep"]["max_distance_to_gd"]
    assert sweep[0] > 1e-3 and sweep[0] > 100 * sweep[-1]  # error falls as heads grow
    report = format_report(r)
    assert report.splitlines()[-1].startswith("largest deviation from GD")
    assert f"{max(r['distance_to_gd']):.3e}" in report.splitlines()[-1]
    assert (tmp_path / "deep_gd.png").read_bytes()[:4] == b"\x89PNG"
    assert set(r["scalars"]) >= {"max_distance_to_gd", "max_one_step_error", "epsilon"}


def test_verify_deep_gd_fails_a_target_the_heads_cannot_meet():
    r = verify_deep_gd(
        n_context=8, steps=2, heads=3, epsilon=1e-6, heads_sweep=(), batch_size=4, depth=2
    )
    assert r["exact_parts_ok"] and r["within_bound"]
    assert r["meets_target"] is False and r["passed"] is False
    assert "FAIL" in format_report(r)


def test_generic_verify_entry_point():
    from icsim.constructions import verify as V

    r = V.verify("deep_gd", steps=2, n_problems=6, dim=3, heads=9, depth=3, width=2, radius=1.0)
    assert r.passed and r.max_error <= 1e-10
    assert r.summary().splitlines()[-1].startswith("largest relative deviation")
    assert "Theorem 1's ηε" in r.criterion  # the one path checks the approximation's bound too


def test_generic_verify_honours_float32_and_refuses_float16():
    """`icsim construct deep_gd --dtype float32` runs a float32 model (it was silently float64)."""
    from icsim.constructions import verify as V

    r = V.verify("deep_gd", steps=1, n_problems=3, dim=2, heads=9, depth=2, width=2)
    r32 = V.verify("deep_gd", steps=1, n_problems=3, dim=2, heads=9, depth=2, width=2,
                   dtype="float32")  # fmt: skip
    assert r.passed and r32.passed and r32.dtype == "float32" and r32.bound == 1e-4
    assert 1e-9 < r32.max_error < 1e-4 and r.max_error < 1e-12
    with pytest.raises(InputError, match="dtype must be float64 or float32"):
        V.verify("deep_gd", steps=1, dtype="float16")
    model, fmt = icsim.constructions.build("deep_gd", dim=3, steps=1)
    assert model.construction.algorithm == "relu_network_gd"
    assert isinstance(fmt.shape, NetworkShape)
