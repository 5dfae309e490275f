"""gradient_em: ReLU attention carries out symmetric gradient EM's M-step exactly; the E-step's
tanh weight is a ReLU interpolant within its stated bound."""

import math

import numpy as np
import pytest
import torch

from icsim.cli import main
from icsim.constructions import build
from icsim.constructions import verify as V
from icsim.constructions.gradient_em import (
    GradientEMCheck,
    algorithm_betas,
    bound_check,
    knots,
    model_betas,
    weight_error_bound,
    with_exact_tanh,
)
from icsim.errors import InputError

SIGMA, ALPHA, T, L = 0.8, 0.4, 3, 3


def np_gradient_em(X, y, beta0, weight):
    """Per problem, float64 NumPy: w = weight(y⟨x, β⟩), then T steps β += α mean((w y − xᵀβ) x)."""
    out = []
    for Xb, yb, b in zip(X.numpy(), y.numpy(), beta0.numpy()):
        traj, n = [b], len(yb)
        for _ in range(L):
            w = weight(yb * (Xb @ b))
            for _ in range(T):
                b = b + ALPHA * Xb.T @ (w * yb - Xb @ b) / n
            traj.append(b)
        out.append(np.stack(traj))
    return torch.from_numpy(np.stack(out, 1))  # [L + 1, B, d]


def problems(kappa, n_problems=20, dim=3, seed=0):
    model, fmt = build("gradient_em", dim=dim, steps=L, inner_steps=T, step_size=ALPHA,
                       noise_std=SIGMA, pieces=64)  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    check = GradientEMCheck()
    X, y, b0 = check.sample(model.construction, fmt, n_problems, generator=gen,
                            condition_number=kappa, noise_std=SIGMA)  # fmt: skip
    return model, fmt, X, y, b0


def rel(a, b):
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())


@pytest.mark.parametrize("kappa", [1, 1e4])
def test_with_exact_tanh_it_is_gradient_em_to_1e_10(kappa):
    """The attention layers (E-step product, M-step sums) are exact: substitute the exact tanh for
    the MLP and the model is the algorithm, also on an ill-conditioned X (κ = 1e4)."""
    model, fmt, X, y, b0 = problems(kappa)
    ref = np_gradient_em(X, y, b0, lambda u: np.tanh(u / SIGMA**2))
    mine = model_betas(with_exact_tanh(model), fmt, X, y, b0)
    assert rel(mine, ref) <= 1e-10
    assert rel(algorithm_betas(model.construction, X, y, b0, L), ref) <= 1e-10
    s = torch.linalg.svdvals(X)
    assert kappa == 1 or float((s[:, 0] / s[:, -1]).square().min()) > 1e3  # truly ill-conditioned


@pytest.mark.parametrize("kappa", [1, 1e4])
def test_the_relu_model_is_gradient_em_with_its_own_interpolant(kappa):
    """The ReLU MLP is exactly the interpolant np.interp of tanh at the knots (flat outside)."""
    model, fmt, X, y, b0 = problems(kappa)
    info = model.construction
    t, v = knots(info.formulas["pieces"], info.formulas["radius"], SIGMA)
    ref = np_gradient_em(X, y, b0, lambda u: np.interp(u, t, v))
    assert rel(model_betas(model, fmt, X, y, b0), ref) <= 1e-10
    assert rel(model_betas(model, fmt, X, y, b0), algorithm_betas(info, X, y, b0, L)) > 1e-6


@pytest.mark.parametrize("pieces", [8, 32, 128])
def test_the_weight_error_is_within_its_stated_bound_and_close_to_it(pieces):
    R = 6 * SIGMA**2
    model, fmt = build("gradient_em", dim=2, steps=1, noise_std=SIGMA, pieces=pieces, radius=R)
    lay = fmt.layout
    u = torch.linspace(-3 * R, 3 * R, 200001, dtype=torch.float64)
    h = torch.zeros(len(u), lay.width, dtype=torch.float64)
    h[:, lay.u] = u[:, None]
    with torch.no_grad():
        phi = (h + model.blocks[0].mlp(h))[:, lay.phi.start]
    err = float((phi - torch.tanh(u / SIGMA**2)).abs().max())
    eps = weight_error_bound(pieces, R, SIGMA)
    stated = 2 * R * R / (3 * math.sqrt(3) * (pieces - 1) ** 2 * SIGMA**4)  # h²/8·max|f''|
    assert eps == pytest.approx(max(stated, 1 - math.tanh(6)), rel=1e-12)
    # nearly attained once h is small (measured 0.36, 0.97, 0.999 of ε: h²/8·max|f''| is sharp)
    assert (0.3 if pieces < 32 else 0.95) * eps <= err <= eps


def test_one_step_errors_within_the_bound_and_the_error_falls_with_pieces():
    _, _, X, y, b0 = problems(10, n_problems=50)
    errs = []
    for M in (16, 64, 256):
        model, fmt = build("gradient_em", dim=3, steps=L, inner_steps=T, step_size=ALPHA,
                           noise_std=SIGMA, pieces=M)  # fmt: skip
        c = bound_check(model, fmt, X, y, b0)
        assert (c["one_step"] <= c["one_step_bound"]).all() and (c["error"] <= c["bound"]).all()
        errs.append(float(c["one_step"].max()))
    assert errs[0] > 8 * errs[1] > 64 * errs[2]  # ~M⁻² (×16 per ×4)


def test_verify_and_the_cli(capsys):
    r = V.verify("gradient_em", steps=2, dim=3, n_problems=100, condition_numbers=(1, 100))
    assert r.passed and 1e-6 < r.max_error <= r.bound, r.summary()
    argv = ["construct", "gradient_em", "--verify", "--steps", "2", "--dim", "3"]
    argv += ["--problems", "40"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "M=1024" in out and "exact tanh substituted" in out


def test_a_wrong_sign_in_the_m_step_fails_verification():
    model, fmt = build("gradient_em", dim=3, steps=2)
    with torch.no_grad():  # the curvature heads (2, 3) of the first M-step: −α → +α
        model.blocks[1].attn.proj.weight.view(-1, 4, 3)[:, 2:] *= -1
    r = V.verify_model(model, fmt, n_problems=40, condition_numbers=(1,))
    assert not r.passed and r.max_error > 1e-2


@pytest.mark.parametrize(
    "params", [{"pieces": 1}, {"noise_std": 0.0}, {"steps": 0}, {"inner_steps": 0},
               {"step_size": -1.0}, {"radius": 0.0}, {"pieces": 2.5}],
)  # fmt: skip
def test_bad_input_is_an_input_error(params):
    with pytest.raises(InputError):
        build("gradient_em", **params)
    if "pieces" in params:
        assert main(["construct", "gradient_em", "--params", '{"pieces": 1}']) == 2
