"""The `ista` construction: K layers carry out K fixed-step ISTA steps exactly (float64, <= 1e-10
relative), the read-out layer predicts x_qᵀβ_K, on well- and ill-conditioned prompts."""

import numpy as np
import pytest
import torch

import icsim.algorithms
import icsim.constructions
import icsim.tasks
from icsim.constructions.ista import read_beta, read_predictions
from icsim.errors import InputError


def batch(d, n, seed=0, n_queries=1, **params):
    task = icsim.tasks.get("sparse_recovery", dim=d, sparsity=min(3, d), **params)
    g = torch.Generator().manual_seed(seed)
    return task.sample(64, n + n_queries, generator=g, dtype=torch.float64)


def rel(a, b):
    return ((a - b).norm(dim=-1) / b.norm(dim=-1).clamp(min=1e-300)).max().item()


CASES = [
    # dim, n context, steps, lam, step size, task params
    (8, 20, 12, 0.05, 0.08, {"noise_std": 0.1}),
    (8, 20, 12, 0.05, 0.08, {"ensemble": "correlated", "rho": 0.95}),  # κ in the hundreds
    (10, 6, 6, 0.2, 0.05, {"ensemble": "fixed"}),  # d > n
    (5, 15, 4, 0.0, 0.1, {}),  # λ = 0: plain gradient descent
    (5, 15, 4, 50.0, 0.1, {}),  # λ so large that every step returns 0
]


@pytest.mark.parametrize("d,n,K,lam,eta,params", CASES)
@torch.no_grad()
def test_every_layer_is_one_ista_step(d, n, K, lam, eta, params):
    model, fmt = icsim.constructions.build(
        "ista", dim=d, steps=K, lam=lam, step_size=eta, dtype=torch.float64
    )
    b = batch(d, n, **params)
    pred, hidden = fmt.run(model, b, return_hidden=True)
    ref = icsim.algorithms.get("ista", lam=lam, step_size=eta).run(b, K)
    est = read_beta(hidden)  # [K+2, B, d]
    assert est.shape == (K + 2, 64, d)
    assert (est[0] == 0).all()
    nonzero = ref.iterates[1:].norm(dim=-1) > 0
    if nonzero.any():
        assert rel(est[1 : K + 1][nonzero], ref.iterates[1:][nonzero]) <= 1e-10
    else:  # λ large: ISTA stays at 0 and so must the construction
        assert (est == 0).all()
    torch.testing.assert_close(est[K + 1], est[K], atol=0, rtol=0)  # read-out keeps β
    # the query's output is x_qᵀβ_K
    torch.testing.assert_close(pred, ref.predictions[-1], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(
        read_predictions(hidden)[: K + 1], ref.predictions, atol=1e-10, rtol=1e-10
    )


@torch.no_grad()
def test_against_an_independent_numpy_ista():
    d, n, K, lam, eta = 6, 12, 8, 0.1, 0.07
    model, fmt = icsim.constructions.build(
        "ista", dim=d, steps=K, lam=lam, step_size=eta, dtype=torch.float64
    )
    b = batch(d, n, seed=1, ensemble="correlated", rho=0.9, noise_std=0.2)
    _, hidden = fmt.run(model, b, return_hidden=True)
    X, y = b.xs[:, :n].numpy(), b.ys[:, :n].numpy()
    beta = np.zeros((64, d))
    for k in range(1, K + 1):
        z = beta - eta * np.einsum("bnd,bn->bd", X, np.einsum("bnd,bd->bn", X, beta) - y) / n
        beta = np.sign(z) * np.maximum(np.abs(z) - eta * lam, 0)
        np.testing.assert_allclose(read_beta(hidden[k]).numpy(), beta, rtol=1e-10, atol=1e-13)


@torch.no_grad()
def test_every_token_carries_the_same_beta_and_several_queries():
    d, n, K = 6, 10, 5
    model, fmt = icsim.constructions.build(
        "ista", dim=d, steps=K, n_queries=3, step_size=0.05, dtype=torch.float64
    )
    b = batch(d, n, n_queries=3)
    pred, hidden = fmt.run(model, b, return_hidden=True)
    betas = hidden[1 : K + 1, :, :, d + 1 :]  # [K, B, T, d]
    torch.testing.assert_close(betas, betas[:, :, -1:].expand_as(betas), atol=1e-13, rtol=0)
    ref = icsim.algorithms.get("ista", lam=0.1, step_size=0.05).run(b, K, n_context=n)
    assert pred.shape == (64, 3)
    torch.testing.assert_close(pred, ref.predictions[-1], atol=1e-10, rtol=1e-10)


def test_shape_and_config():
    model, fmt = icsim.constructions.build("ista", dim=7, steps=4)
    cfg = model.cfg
    assert "ista" in icsim.constructions.names()
    assert (cfg.n_layer, cfg.n_head, cfg.d_head, cfg.n_embd) == (5, 1, 8, 15)
    assert cfg.attention == "linear" and cfg.normalize_attention and cfg.mlp
    assert cfg.activation == "relu" and cfg.mlp_hidden == 28
    assert not cfg.layer_norm and not cfg.read_in and not cfg.positional
    assert fmt.width == 15 and fmt.scratch == 7
    assert next(model.parameters()).dtype == torch.float32


@torch.no_grad()
def test_float32_build_is_close_to_float64():
    model, fmt = icsim.constructions.build("ista", dim=8, steps=6, step_size=0.08)
    b = batch(8, 20).to(dtype=torch.float32)
    pred = fmt.run(model, b)
    ref = icsim.algorithms.get("ista", lam=0.1, step_size=0.08).run(b.to(dtype=torch.float64), 6)
    torch.testing.assert_close(pred.double(), ref.predictions[-1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "params",
    [
        {"dim": 0},
        {"steps": -1},
        {"lam": -0.1},
        {"step_size": 0},
        {"n_queries": 0},
        {"dtype": torch.float16},
        {"stepsize": 0.1},
    ],
)
def test_bad_parameters_raise_input_error(params):
    with pytest.raises(InputError):
        icsim.constructions.build("ista", **params)


def test_verify_passes_in_float64_and_catches_a_perturbed_weight():
    """`icsim construct ista --verify`: β_k and x_qᵀβ_k against fixed-step ISTA on κ = 1, 10, 100;
    one weight off by 1e-6 (an ISTA step's threshold, or the read-out layer) fails."""
    from icsim.constructions import verify as V

    r = V.verify("ista", steps=4, dim=6, n_problems=300)
    assert r.passed and r.max_error <= 1e-12, r.summary()
    assert r.info.algorithm == "ista" and len(r.per_step) == 5
    assert (r.info.layers, r.info.width) == (5, 13)

    for where in ("threshold", "read_out_layer"):
        model, fmt = icsim.constructions.build("ista", dim=6, steps=4, dtype=torch.float64)
        with torch.no_grad():
            if where == "threshold":
                model.blocks[1].mlp.fc.bias[0] *= 1 + 1e-6
            else:
                model.blocks[-1].attn.v.bias[0] *= 1 + 1e-6
        bad = V.verify_model(model, fmt, n_problems=300)
        assert not bad.passed and bad.max_error > 1e-9, where
