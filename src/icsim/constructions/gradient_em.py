"""L steps of symmetric gradient EM in a ReLU-attention + ReLU-MLP transformer (Jin,
Balasubramanian, Lai 2024, arXiv 2410.14183: the transformer implements EM whose M-step is T
gradient-ascent steps; PAPERS.md §6). Our own weights, in Bai et al. 2023's ReLU attention.

The algorithm (`symmetric_gradient_em`): w_i = tanh(u_i/σ²), u_i = y_i⟨x_i, β⟩, then T times
β ← β + α·(1/n) Σ_i (w_i y_i x_i − x_i x_iᵀβ) with the w's fixed.

Tokens (`GradientEMTokens`), one per context point: [x_i | y_i | z_i = y_i x_i | β | u | φ].
β sits in every token: the M-step's update is a mean over keys whose query side is β or a
constant, the same in every token, so every token's β stays the same; and the E-step's
⟨z_i, β⟩, a product of two quantities of one token, is formed by attention with the *key's* copy
of β standing in for the query's (exact because every key holds the same β). z_i = y_i x_i is an
input feature: attention multiplies a query quantity by a key quantity averaged over keys, so no
layer of this model forms the per-token product y_i·x_i exactly (Bai et al.'s token is
[x; y; 0; 1; t]; y_i is carried, unused by the layers). Jin et al.'s own token and layer count
could not be checked: only their abstract was readable here.

Blocks (ReLU attention, normalised by the n keys | ReLU MLP), per EM step:
  E    u ← ReLU(⟨z_i, β⟩) − ReLU(−⟨z_i, β⟩) (2 heads: query ±z_i, key β, value 1)
       | φ ← φ̂(u), u ← 0 (φ̂: the interpolant below; the old φ cleared in the same MLP)
  M×T  β += α mean_j [ReLU(φ_j) − ReLU(−φ_j)] z_j − α mean_j [ReLU(⟨β, x_j⟩) − ReLU(−⟨β, x_j⟩)] x_j
       (4 heads: Bai et al.'s ReLU(a) − ReLU(−a) = a makes both sums linear, exactly) | —
so L(T + 1) layers, 4 heads of dim d, width 3d + 3, MLP hidden M + 4; hidden[t(T + 1)] holds β_t.

The one approximation: φ̂, the piecewise-linear interpolant of tanh(u/σ²) at M equally spaced
knots on [−R, R] (spacing h = 2R/(M − 1), flat outside; `BlockWriter.add_interpolant`, one ReLU
per knot). Its sup error (h²/8·max|f''|, max|f''| = 4/(3√3σ⁴); outside, the tail of tanh):
    ε(M, R, σ) = max(2R²/(3√3 (M − 1)² σ⁴), 1 − tanh(R/σ²))        (`weight_error_bound`).
Per EM step, from the same β: with S = XᵀX/n, A = I − αS, P = Σ_{k<T} A^k, ζ = mean_i ‖z_i‖,
    ‖β̂⁺ − β⁺‖ ≤ B = α‖P‖₂ ε ζ                                      (the one-step bound),
and since β ↦ β⁺ is Lipschitz with Λ = ‖A^T‖₂ + α‖P‖₂ ‖mean_i z_iz_iᵀ‖₂/σ² (|tanh'| ≤ 1),
    ‖β̂_t − β_t‖ ≤ E_t, E_0 = 0, E_{t+1} = Λ E_t + B                (the propagated bound).
`GradientEMCheck` (`icsim construct gradient_em --verify`) checks both per problem, and that
with the exact tanh substituted for the E-step MLP (`with_exact_tanh`) the model equals
`symmetric_gradient_em` to 1e-10; it prints the error against M.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from icsim import _validate as V
from icsim import algorithms
from icsim.constructions.base import (
    CONSTRUCTIONS,
    TOLERANCE,
    Check,
    ConstructionInfo,
    Criterion,
    conditioned,
    empty_model,
    finish,
    in_dtype,
    info_of,
)
from icsim.constructions.block_writer import ONE, BlockWriter, forms
from icsim.errors import InputError
from icsim.models.construction_formats import Layout
from icsim.tasks.base import Problem

JIN = (
    "Jin, Balasubramanian, Lai 2024, Provable in-context learning for mixture of linear regressions"
)
TABLE_PIECES = (16, 64, 256, 1024)


def token_layout(d: int) -> Layout:
    return Layout(x=d, y=1, z=d, beta=d, u=1, phi=1)


def weight_error_bound(pieces: int, radius: float, noise_std: float) -> float:
    """ε(M, R, σ): sup over u of |φ̂(u) − tanh(u/σ²)| (module docstring)."""
    s2, h = noise_std**2, 2 * radius / (pieces - 1)
    return max(h * h / (6 * math.sqrt(3) * s2 * s2), 1 - math.tanh(radius / s2))


def knots(pieces: int, radius: float, noise_std: float):
    """The interpolant's knots and values: (t, tanh(t/σ²))."""
    t = np.linspace(-radius, radius, pieces)
    return t, np.tanh(t / noise_std**2)


@dataclass(frozen=True)
class GradientEMTokens:
    """`encode(X, y, beta0)`: X [B, n, d], y [B, n], β⁰ [B, d] -> tokens [B, n, 3d + 3]; every
    token attends to every token (no mask); `betas(hidden)`: β of token 0, [..., d]."""

    dim: int

    @property
    def layout(self) -> Layout:
        return token_layout(self.dim)

    def encode(self, X, y, beta0) -> torch.Tensor:
        B, n, d = X.shape
        if d != self.dim or y.shape != (B, n) or beta0.shape != (B, d):
            raise InputError(
                f"need X [B, n, {self.dim}], y [B, n] and beta0 [B, {self.dim}], got "
                f"{tuple(X.shape)}, {tuple(y.shape)}, {tuple(beta0.shape)}."
            )
        L = self.layout
        tokens = X.new_zeros(B, n, L.width)
        tokens[..., L.x], tokens[..., L.y] = X, y[..., None]
        tokens[..., L.z] = y[..., None] * X
        tokens[..., L.beta] = beta0[:, None]
        return tokens

    def betas(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden[..., 0, self.layout.beta]


@CONSTRUCTIONS.register("gradient_em", check=lambda: GradientEMCheck())  # defined below
def gradient_em(
    dim: int = 5,
    steps: int = 3,
    inner_steps: int = 2,
    step_size: float = 0.5,
    noise_std: float = 1.0,
    pieces: int = 256,
    radius: float | None = None,
):
    """L = `steps` symmetric gradient-EM steps of T = `inner_steps` gradient steps of size α =
    `step_size` (default 0.5: |1 − αλ| < 1 for the eigenvalues λ ≲ 2.3 of XᵀX/n at n = 4d), σ =
    `noise_std`, in L(T + 1) layers (module docstring). pieces: M >= 2 ReLU knots of the tanh
    interpolant (default 256); radius: R, its range [−R, R] (default 8σ²). Returns (model,
    GradientEMTokens); reference: `symmetric_gradient_em(noise_std=σ, step_size=α,
    inner_steps=T)` from the same β⁰, within `weight_error_bound(M, R, σ)` per weight."""
    d, L = V.positive_int("dim", dim), V.positive_int("steps", steps)
    T = V.positive_int("inner_steps", inner_steps)
    alpha = V.number("step_size", step_size, low=0, low_open=True)
    sigma = V.number("noise_std", noise_std, low=0, low_open=True)
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 2:
        raise InputError(f"pieces must be an integer >= 2 (ReLU knots of tanh), got {pieces!r}.")
    R = 8 * sigma**2 if radius is None else V.number("radius", radius, low=0, low_open=True)
    lay = token_layout(d)
    model = empty_model(
        width=lay.width, layers=L * (T + 1), heads=4, head_dim=d, n_out=d, attention="relu",
        mlp=True, mlp_hidden=pieces + 4, activation="relu", bias=True,
    )  # fmt: skip
    t, values = knots(pieces, R, sigma)
    u, phi = lay.u.start, lay.phi.start
    for i, block in enumerate(model.blocks):
        b = BlockWriter(block)
        for s in (1.0, -1.0):
            if i % (T + 1) == 0:  # E-step: u = ⟨z_i, β⟩ from the key's copy of β
                b.add_head(forms(lay.z, s), forms(lay.beta), [ONE], [{u: s}])
            else:  # M-step: α mean_j φ_j z_j − α mean_j ⟨β, x_j⟩ x_j
                b.add_head([ONE], [{phi: s}], forms(lay.z), forms(lay.beta, alpha * s))
                b.add_head(
                    forms(lay.beta, s), forms(lay.x), forms(lay.x), forms(lay.beta, -alpha * s)
                )
        if i % (T + 1) == 0:
            b.add_interpolant({u: 1.0}, t, values, phi)
            b.add_clear([u, phi])
    model.read_out.weight.data[:, lay.beta] = torch.eye(d, dtype=torch.float64)
    eps = weight_error_bound(pieces, R, sigma)
    info = ConstructionInfo(
        name="gradient_em",
        citation=JIN + " (gradient EM, PAPERS.md §6; Bai et al. 2023's ReLU attention)",
        algorithm="symmetric_gradient_em",
        hyperparameters={"noise_std": sigma, "step_size": alpha, "inner_steps": T},
        steps=L,
        dim=d,
        layers=L * (T + 1),
        heads=4,
        width=lay.width,
        head_dim=d,
        layers_per_step=T + 1,
        formulas={
            "layers": "L(T + 1) (per step: E-step, T M-step layers)",
            "heads": "4",
            "width": "3d + 3",
            "head_dim": "d",
            "mlp_hidden": "M + 4",
            "pieces": pieces,
            "radius": R,
            "weight_error_bound": eps,
        },
    )
    return finish(model, info), GradientEMTokens(d)


class _ExactTanh(nn.Module):
    """What the E-step MLP approximates, exactly: φ ← tanh(u/σ²), u ← 0."""

    def __init__(self, lay: Layout, sigma: float):
        super().__init__()
        self.u, self.phi, self.s2 = lay.u.start, lay.phi.start, sigma**2

    def forward(self, h):
        delta = torch.zeros_like(h)
        delta[..., self.phi] = torch.tanh(h[..., self.u] / self.s2) - h[..., self.phi]
        delta[..., self.u] = -h[..., self.u]
        return delta


def with_exact_tanh(model):
    """A copy of the construction whose E-step MLPs compute tanh(u/σ²) exactly (the attention
    layers unchanged): it carries out `symmetric_gradient_em` itself, up to rounding."""
    info, exact = info_of(model), copy.deepcopy(model)
    lay = token_layout(info.dim)
    for i in range(0, info.layers, info.layers_per_step):
        exact.blocks[i].mlp = _ExactTanh(lay, info.hyperparameters["noise_std"])
    return exact


def model_betas(model, fmt, X, y, beta0, dtype=torch.float64) -> torch.Tensor:
    """β after steps 0..L read from the hidden states, [L + 1, B, d]."""
    model = in_dtype(model, dtype)
    with torch.no_grad():
        _, hidden = model(fmt.encode(X.to(dtype), y.to(dtype), beta0.to(dtype)), return_hidden=True)
    return fmt.betas(hidden[info_of(model).step_blocks])


def algorithm_betas(info, X, y, beta0, steps: int) -> torch.Tensor:
    """`symmetric_gradient_em` from β⁰ (float64), [steps + 1, B, d]."""
    alg = algorithms.get(
        info.algorithm, **info.hyperparameters, initialization="given", initial=beta0
    )
    return alg.run(Problem(X, y, X[:, :0], y[:, :0]), steps).iterates


def step_bounds(info, X, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Per problem [B]: the one-step bound B = α‖P‖ε ζ and the Lipschitz constant Λ."""
    hp, eps = info.hyperparameters, info.formulas["weight_error_bound"]
    alpha, T, n = hp["step_size"], hp["inner_steps"], X.shape[1]
    a = 1 - alpha * torch.linalg.eigvalsh(X.transpose(1, 2) @ X / n)  # eigenvalues of A
    P = (a[..., None] ** torch.arange(T, dtype=a.dtype, device=a.device)).sum(-1).abs().amax(-1)
    Z = y[..., None] * X
    G = torch.linalg.eigvalsh(Z.transpose(1, 2) @ Z / n)[..., -1]
    lip = a.abs().amax(-1) ** T + alpha * P * G / hp["noise_std"] ** 2
    return alpha * P * eps * Z.norm(dim=-1).mean(1), lip


def bound_check(model, fmt, X, y, beta0, dtype=torch.float64) -> dict:
    """The model's errors against the algorithm and the stated bounds, per problem: one-step
    errors (from the model's own β_t) and their bound B, trajectory errors and E_t, [L, B]."""
    info, tol = info_of(model), TOLERANCE[dtype]
    mine = model_betas(model, fmt, X, y, beta0, dtype).double()
    B, lip = step_bounds(info, X, y)
    one, traj, bound, E = [], [], [], torch.zeros_like(B)
    ref = algorithm_betas(info, X, y, beta0, info.steps)
    for t in range(info.steps):
        exact_step = algorithm_betas(info, X, y, mine[t], 1)[1]
        slack = tol * (1 + mine[t + 1].norm(dim=-1))  # rounding of the model's own arithmetic
        one.append(((mine[t + 1] - exact_step).norm(dim=-1), B + slack))
        E = lip * E + B
        traj.append((mine[t + 1] - ref[t + 1]).norm(dim=-1))
        bound.append(E + slack * (t + 1))
    one_err, one_bound = (torch.stack(v) for v in zip(*one))
    return {"one_step": one_err, "one_step_bound": one_bound, "error": torch.stack(traj),
            "bound": torch.stack(bound), "reference": ref}  # fmt: skip


def pieces_table(info, X, y, beta0, pieces=TABLE_PIECES) -> dict:
    """Error against M on the given problems: per M the bound ε, the largest relative error of
    β against the algorithm after L steps, and the largest one-step error over its bound."""
    hp = info.hyperparameters
    table = {"pieces": list(pieces), "epsilon": [], "error": [], "one_step_ratio": []}
    for M in pieces:
        model, fmt = gradient_em(dim=info.dim, steps=info.steps, inner_steps=hp["inner_steps"],
                                 step_size=hp["step_size"], noise_std=hp["noise_std"], pieces=M,
                                 radius=info.formulas["radius"])  # fmt: skip
        c = bound_check(model, fmt, X, y, beta0)
        table["epsilon"].append(model.construction.formulas["weight_error_bound"])
        table["error"].append(float((c["error"][-1] / c["reference"][-1].norm(dim=-1)).max()))
        table["one_step_ratio"].append(float((c["one_step"] / c["one_step_bound"]).max()))
    return table


class GradientEMCheck(Check):
    """`mixture_linear_regression` prompts (symmetric two components, n = 4d context points; κ > 1
    rescales x's coordinates to covariance condition κ, y recomputed with the same labels and
    noise), β⁰ random with ‖β⁰‖ = ‖β*‖; compared: β after every EM step against
    `symmetric_gradient_em`. Criterion: every problem's error within the propagated bound E_t
    and every one-step error within B; the exact-tanh model equal to the algorithm (1e-10)."""

    task = "mixture_linear_regression"
    defaults = {"steps": 3, "dim": 5, "n_problems": 300}

    def sample(self, info, fmt, n_problems, *, generator, n_context=None, condition_number=1, **tp):
        task = self.make_task(info, **tp)
        n = 4 * info.dim if n_context is None else n_context
        batch = task.sample(n_problems, n, generator=generator, dtype=torch.float64)
        X, y = batch.xs, batch.ys
        if condition_number != 1:  # ill-conditioned x, the same noise and labels
            coef = torch.gather(batch.components, 1, batch.labels[..., None].expand_as(X))
            Xk = conditioned(X, condition_number)
            X, y = Xk, y + (coef * (Xk - X)).sum(-1)
        start = torch.randn(n_problems, info.dim, generator=generator, dtype=torch.float64)
        start = start / start.norm(dim=-1, keepdim=True) * batch.w_star.norm(dim=-1, keepdim=True)
        return X, y, start

    def reference(self, info, problems):
        return algorithm_betas(info, *problems, info.steps)

    def model_steps(self, model, fmt, problems, dtype):
        return model_betas(model, fmt, *problems, dtype)

    def criterion(self, run):
        tol, holds, rel_bound, worst_one = TOLERANCE[run.dtype], True, 0.0, 0.0
        exact = with_exact_tanh(run.model)
        exact_err = max(float(e.max()) for e in run.errors_of(exact))
        for problems, ref in zip(run.problems, run.references):
            c = bound_check(run.model, run.fmt, *problems, run.dtype)
            norm = ref[1:].norm(dim=-1)
            rel, err = c["bound"] / norm, c["error"] / norm  # as relative errors
            holds &= bool((c["one_step"] <= c["one_step_bound"]).all() and (err <= rel).all())
            rel_bound = max(rel_bound, float(rel.max()))
            worst_one = max(worst_one, float((c["one_step"] / c["one_step_bound"]).max()))
        info = info_of(run.model)
        table = pieces_table(info, *(p[:200] for p in run.problems[0]))  # κ = first, ≤ 200
        holds &= max(table["one_step_ratio"]) <= 1
        cols = zip(*(table[k] for k in ("pieces", "error", "epsilon", "one_step_ratio")))
        rows = ", ".join(
            f"M={M}: {e:.1e} (ε {b:.1e}, one-step {r:.2f} of B)" for M, e, b, r in cols
        )
        text = (
            f"exact tanh substituted: {exact_err:.1e} <= {tol:.0e}; every one-step error <= "
            f"α‖P‖εζ (largest ratio {worst_one:.2f}, ε = {info.formulas['weight_error_bound']:.1e}"
            f"); every error <= the propagated E_t (largest {rel_bound:.1e} relative); error "
            f"after L steps vs M [{rows}]"
        )
        return Criterion(rel_bound, text, holds=holds and exact_err <= tol)
