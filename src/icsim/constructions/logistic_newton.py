"""Damped, inexact Newton for regularised logistic regression in a linear-attention + ReLU-MLP
transformer (Giannou et al. 2025, "How Well Can Transformers Emulate In-context Newton's
Method?", Thm 5.1 and its lemmas; our own weights, following the theorem's plan).

Every Newton step on f(w) = (1/n) Σ log(1 + exp(−y_i wᵀa_i)) + (μ/2)‖w‖² is

    z_i = wᵀa_i,  g = ∇f = (1/n) Σ (σ(z_i) − (1 + y_i)/2) a_i + μw,
    H = (1/n) Σ σ'(z_i) a_i a_iᵀ + μI,  X ← k Newton–Schulz steps X(2I − HX) from X₀ = H/L²,
    Δ = Xg,  λ² = gᵀΔ,  w ← w − [2√μ/(2√μ + λ)] Δ,

i.e. the algorithm `logistic_inexact_newton`. Linear attention does every mean over the context
and every product of quantities that are the same in all tokens (w, g, H, X, Δ: each token keeps
a copy), exactly. ReLU MLPs do what attention cannot — non-linear functions of one token — by
piecewise-linear interpolation on grids of W = `width` intervals: σ(z), σ'(z), the damping
2√μ/(2√μ + √ℓ) of ℓ = λ², and the per-token products σ'(z_i)·a_i (H needs them: one attention
layer is at most quadratic in a token's coordinates and H's summand is cubic), written as
σ'a = ((4σ' + a)² − (4σ' − a)²)/16 with an interpolated square. Each interpolant's error is
O(W⁻²): the construction follows damped Newton until a floor, set by the error of σ̂ (the
fixed point solves ĝ(w) = 0), that falls about 4× each time the width doubles.

Token (the `Stacked` format; its scratch holds the rest), one per example, queries last:
    [a (d) | y (1) | w (d) | z, s = σ̂(z), s' = σ̂'(z) | g (d) | u = s'a (d) | H (d²) | X (d²) |
     Z (d²) | Δ (d) | ℓ = λ² | η],   width 3d² + 5d + 6.
Keys and values are the n context tokens only; attention is normalised by n (the 1/n of f).

Blocks (attention + MLP) of one Newton step, 6 + 2k in all (the paper counts 11 + 2k layers):
    1     attn z ← aᵀw (1 head)                           mlp s ← σ̂(z), s' ← σ̂'(z)
    2     attn g ← mean_j (s_j − (1+y_j)/2) a_j + μw (2)  mlp u ← ŝ'·a (d products)
    3     attn H ← μI + mean_j u_j a_jᵀ, X ← H/L² (d)     mlp —
    2k    attn Z ← I − HX (d²);  attn X ← X + XZ (d²)     mlp clears Z
    4     attn Δ ← Xg (d)                                 mlp —
    5     attn ℓ ← gᵀΔ (1)                                mlp η ← η̂(ℓ)
    6     attn w ← w − ηΔ (1)                             mlp clears the step's scratch
then one block whose attention writes the queries' margins z_q = a_qᵀw_T, the read-out.
Size: layers T(6 + 2k) + 1, heads d² (head dim d), width 3d² + 5d + 6, MLP hidden
max(2d(W + 1), 2(2d² + 3d + 5)). Theorem 5.1: depth T(11 + 2k) and width
O(d(1+μ)⁶/(ε⁴μ⁸)); here the MLP width for error ε is O(d/√ε).

Assumes ‖a_i‖ ≤ 1 (the paper's assumption), which bounds what the grids must cover along damped
Newton from w₀ = 0, where f(w_t) <= f(0) = ln 2: |z_i| <= ‖w‖ <= √(2 ln 2/μ); λ² from the
self-concordance of f (see `decrement_range`); H <= (1/4 + μ)I, so X₀ = H/(1/4 + μ)² converges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from icsim import _validate as V
from icsim.algorithms.logistic import default_newton_schulz_steps
from icsim.constructions.base import (
    CONSTRUCTIONS,
    Check,
    ConstructionInfo,
    Criterion,
    empty_model,
    finish,
    float_dtype,
    in_dtype,
    info_of,
)
from icsim.constructions.block_writer import ONE, BlockWriter, forms
from icsim.errors import InputError
from icsim.models import Stacked
from icsim.models.construction_formats import Layout

GIANNOU = "Giannou et al. 2025, How Well Can Transformers Emulate In-context Newton's Method?"
DEFAULT_WIDTH = 128
INVERSE_INITS = ("hessian", "identity", "warm")


def token_layout(d: int) -> Layout:
    return Layout(
        a=d, y=1, w=d, z=1, s=1, sp=1, g=d, u=d, H=d * d, X=d * d, Z=d * d, delta=d, lam2=1, eta=1
    )


def layers_per_step(k: int) -> int:
    return 6 + 2 * k


def margin_range(mu: float) -> float:
    """|wᵀa| <= ‖w‖ <= √(2 ln 2/μ) while f(w) <= f(0) = ln 2 (f >= μ‖w‖²/2) and ‖a‖ <= 1."""
    return math.sqrt(2 * math.log(2) / mu)


def decrement_range(mu: float) -> float:
    """λ² <= (2√μ t)² with ω(t) = t − ln(1 + t) = ln 2/(4μ): when ‖a_i‖ <= 1, f is
    self-concordant with constant M = 1/√μ, so f(w) − f* >= (4/M²) ω(Mλ(w)/2) (Nesterov 2004,
    §4.1), and f(w) − f* <= f(0) = ln 2 along damped Newton. (3.99 for μ = 0.1.)"""
    c, lo, hi = math.log(2) / (4 * mu), 0.0, 1.0
    while hi - math.log1p(hi) < c:
        hi *= 2
    for _ in range(100):  # bisection: ω increases on [0, ∞)
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mid - math.log1p(mid) < c else (lo, mid)
    return (2 * math.sqrt(mu) * hi) ** 2


def _slots(sl: slice) -> list[int]:
    return list(range(sl.start, sl.stop))


# --- the blocks of one Newton step (module docstring), in the order the model runs them -----


class _Slots:
    """Token coordinates of `token_layout(d)` as indices: vectors as lists, scalars as ints,
    `mat(M, p, q)` the coordinate of entry (p, q) of matrix M ∈ {H, X, Z}."""

    def __init__(self, d: int):
        lay = token_layout(d)
        self.d, self.width, self.lay = d, lay.width, lay
        self.a, self.w, self.g, self.u, self.dl = (
            _slots(sl) for sl in (lay.a, lay.w, lay.g, lay.u, lay.delta)
        )
        self.y, self.z, self.s, self.sp, self.lam2, self.eta = (
            sl.start for sl in (lay.y, lay.z, lay.s, lay.sp, lay.lam2, lay.eta)
        )

    def mat(self, name: str, p: int, q: int) -> int:
        return getattr(self.lay, name).start + p * self.d + q

    def row(self, name: str, p: int) -> list[dict]:
        """Forms reading row p of matrix `name`."""
        return [{self.mat(name, p, m): 1.0} for m in range(self.d)]

    def col(self, name: str, q: int) -> list[dict]:
        return [{self.mat(name, m, q): 1.0} for m in range(self.d)]

    def scratch(self, keep_inverse: bool) -> list[int]:
        """Coordinates cleared at the end of a step (X too, unless the next step starts from
        it: inverse_init="warm")."""
        out = [self.z, self.s, self.sp, *self.g, *self.u, *_slots(self.lay.H), *self.dl]
        out += [self.lam2, self.eta]
        return out if keep_inverse else out + _slots(self.lay.X)


@dataclass(frozen=True)
class _Grids:
    """The interpolation grids (W intervals) and the values interpolated on them."""

    z: np.ndarray  # margins z ∈ [−R, R]
    sigma: np.ndarray
    sq: np.ndarray  # 4σ' ± a ∈ [−1, 2] when |a| <= 1
    lam2: np.ndarray  # λ² ∈ [0, Λ], uniform in λ: the damping is steep at 0
    damping: np.ndarray

    @classmethod
    def build(cls, mu: float, W: int, R: float, Lam: float) -> _Grids:
        z = np.linspace(-R, R, W + 1)
        lam2 = Lam * np.linspace(0.0, 1.0, W + 1) ** 2
        return cls(
            z=z,
            sigma=1 / (1 + np.exp(-z)),
            sq=np.linspace(-1.0, 2.0, W + 1),
            lam2=lam2,
            damping=2 * math.sqrt(mu) / (2 * math.sqrt(mu) + np.sqrt(lam2)),
        )


def _margins(b: BlockWriter, S: _Slots, grids: _Grids) -> None:
    """Block 1: z ← aᵀw (attention); s ← σ̂(z), s' ← σ̂'(z) (MLP)."""
    b.add_head(forms(S.a), forms(S.w), [ONE], [{S.z: 1.0}])
    b.add_interpolant({S.z: 1.0}, grids.z, grids.sigma, S.s)
    b.add_interpolant({S.z: 1.0}, grids.z, grids.sigma * (1 - grids.sigma), S.sp)


def _gradient(b: BlockWriter, S: _Slots, grids: _Grids, mu: float) -> None:
    """Block 2: g ← mean_j (s_j − (1 + y_j)/2) a_j + μw (2 heads); u ← ŝ'·a by
    ((4s' + a)² − (4s' − a)²)/16 with an interpolated square (MLP)."""
    residual = {S.s: 1.0, S.y: -0.5, None: -0.5}  # σ(z_j) − (1 + y_j)/2
    b.add_head([ONE], [residual], forms(S.a), forms(S.g))
    b.add_head([ONE], [ONE], forms(S.w, mu), forms(S.g))
    for m in range(S.d):
        for sign in (1.0, -1.0):
            form = {S.sp: 4.0, S.a[m]: sign}
            b.add_interpolant(form, grids.sq, grids.sq**2, S.u[m], sign / 16)


def _hessian(b: BlockWriter, S: _Slots, mu: float, L: float, inverse_init: str | None) -> None:
    """Block 3: H ← μI + mean_j u_j a_jᵀ (d heads, one per row), and X₀ (H/L² for "hessian",
    I/L for "identity"; None keeps the previous step's X)."""
    for p in range(S.d):
        outs = [{S.mat("H", p, l): 1.0} for l in range(S.d)]
        if inverse_init == "hessian" or inverse_init == "warm":
            outs = [{**o, S.mat("X", p, l): 1 / L**2} for l, o in enumerate(outs)]
            b.bias(S.mat("X", p, p), mu / L**2)
        b.add_head([ONE], [{S.u[p]: 1.0}], forms(S.a), outs)
        b.bias(S.mat("H", p, p), mu)
        if inverse_init == "identity":
            b.bias(S.mat("X", p, p), 1 / L)


def _newton_schulz(b1: BlockWriter, b2: BlockWriter, S: _Slots) -> None:
    """One Newton–Schulz step in two blocks: Z ← I − HX (d² heads), then X ← X + XZ =
    X(2I − HX) (d² heads) and Z cleared (MLP)."""
    for p in range(S.d):
        for l in range(S.d):
            b1.add_head(S.row("H", p), S.col("X", l), [ONE], [{S.mat("Z", p, l): -1.0}])
        b1.bias(S.mat("Z", p, p), 1.0)
    for p in range(S.d):
        for l in range(S.d):
            b2.add_head(S.row("X", p), S.col("Z", l), [ONE], [{S.mat("X", p, l): 1.0}])
    b2.add_clear(_slots(S.lay.Z))


def _direction(b: BlockWriter, S: _Slots) -> None:
    """Block 4: the Newton direction Δ ← Xg (d heads)."""
    for p in range(S.d):
        b.add_head(S.row("X", p), forms(S.g), [ONE], [{S.dl[p]: 1.0}])


def _decrement(b: BlockWriter, S: _Slots, grids: _Grids) -> None:
    """Block 5: λ² ← gᵀΔ (attention) and the damping η ← η̂(λ²) (MLP)."""
    b.add_head(forms(S.g), forms(S.dl), [ONE], [{S.lam2: 1.0}])
    b.add_interpolant({S.lam2: 1.0}, grids.lam2, grids.damping, S.eta)


def _update(b: BlockWriter, S: _Slots, scratch: list[int]) -> None:
    """Block 6: w ← w − ηΔ (attention); the step's scratch cleared (MLP)."""
    b.add_head([ONE], [{S.eta: 1.0}], forms(S.dl), forms(S.w, -1.0))
    b.add_clear(scratch)


class LogisticCheck(Check):
    """Logistic prompts (‖a_i‖ <= 1, `logistic_regression` task) against the inexact damped
    Newton the construction runs; compared through w_t after every step.

    The construction is approximate, so its criterion is its documented bound, the interpolation
    floor: every interpolant's error is O(W⁻²), so the largest relative error at width W must be
    at most 1/2.5 of that of the same construction at width W/2 on the same problems. The W⁻²
    law predicts 1/4; the max over problems measured 1/3.2 to 1/5.5 (W = 32..128), and a
    broken interpolant does not fall at all."""

    task = "logistic_regression"
    defaults = {"steps": 3, "dim": 5, "n_problems": 32}  # d² heads, a wide MLP: slow on a CPU
    #: the error must fall at least this factor per width doubling (O(W⁻²): 4)
    factor_per_doubling = 2.5

    def sample(self, info, fmt, n_problems, *, generator, n_context=None, **task_params):
        n_ctx = 5 * info.dim + 1 if n_context is None else n_context
        return self.draw(self.make_task(info, **task_params), fmt, n_problems, n_ctx, generator)

    def reference(self, info, problems):
        return self.run_algorithm(info, problems).iterates

    def model_steps(self, model, fmt, problems, dtype):
        batch, _ = problems
        return weights_per_step(in_dtype(model, dtype), fmt, batch.to(dtype=dtype))

    def criterion(self, run):
        info = info_of(run.model)
        W, hp = info.formulas["grid_intervals"], info.hyperparameters
        if W < 4:
            raise InputError(f"the width check halves the width: width must be >= 4, got {W}.")
        half, _ = logistic_newton(
            dim=info.dim,
            steps=info.steps,
            width=W // 2,
            n_queries=run.fmt.n_queries,
            margin_bound=info.formulas["margin_bound"],
            decrement_bound=info.formulas["decrement_bound"],
            dtype=run.dtype,
            **hp,
        )
        bound = run.max_error_of(half) / self.factor_per_doubling
        return Criterion(
            bound,
            f"interpolation floor: largest relative error at width W = {W} <= 1/"
            f"{self.factor_per_doubling:g} of that at W/2 = {W // 2} ({bound:.2e}; "
            "O(W⁻²) interpolants fall ×4 per width doubling)",
        )


@CONSTRUCTIONS.register("logistic_newton", check=LogisticCheck)
def logistic_newton(
    dim: int = 5,
    steps: int = 3,
    mu: float = 0.1,
    newton_schulz_steps: int | None = None,
    width: int = DEFAULT_WIDTH,
    inverse_init: str = "hessian",
    n_queries: int = 1,
    margin_bound: float | None = None,
    decrement_bound: float | None = None,
    dtype: torch.dtype = torch.float32,
):
    """T damped Newton steps on the μ-regularised logistic loss, each inverting its Hessian by
    k Newton–Schulz steps in linear attention, with its scalar non-linearities interpolated by
    ReLU MLPs on W-interval grids (Giannou et al. 2025, Thm 5.1). The module docstring gives
    the token layout and the blocks.

    dim: d. steps: T. mu: μ > 0 (default 0.1, the paper's experiments; their code 0.01).
    newton_schulz_steps: k (default ⌈log₂(κ_f² ln 10¹⁰)⌉, κ_f = (1/4 + μ)/μ: 9 for μ = 0.1).
    width: W, grid intervals of every interpolated function (default 128).
    inverse_init: X₀ of each Newton step, L = 1/4 + μ: "hessian" (default; H/L², as Thm 4.2's
      εAᵀA), "identity" (I/L) or "warm" (the previous step's X; H/L² at the first).
    margin_bound, decrement_bound: the grids cover z ∈ [−R, R] and λ² ∈ [0, Λ] (defaults: the
      bounds `margin_range(μ)`, `decrement_range(μ)` that hold when ‖a_i‖ ≤ 1; smaller values
      sharpen the grids but lose the guarantee).
    dtype: of the returned model (float32 default; float64 to measure errors below 1e-6).
    Reference: `logistic_inexact_newton(mu, newton_schulz_steps=k, inverse_init=...)` up to the
    interpolation error; `logistic_damped_newton(mu)` up to that and the Newton–Schulz error.
    Read-out: the queries' margins a_qᵀw_T; `weights_per_step` reads w_0..w_T.
    """
    d = V.positive_int("dim", dim)
    T = V.nonnegative_int("steps", steps)
    mu = V.number("mu", mu, low=0, low_open=True)
    k = default_newton_schulz_steps(mu) if newton_schulz_steps is None else newton_schulz_steps
    V.nonnegative_int("newton_schulz_steps", k)
    W = V.positive_int("width", width)
    if W < 2:
        raise V.InputError(f"width must be >= 2 grid intervals, got {width}.")
    V.choice("inverse_init", inverse_init, INVERSE_INITS)
    V.positive_int("n_queries", n_queries)
    R = margin_range(mu) if margin_bound is None else margin_bound
    V.number("margin_bound", R, low=0, low_open=True)
    Lam = decrement_range(mu) if decrement_bound is None else decrement_bound
    V.number("decrement_bound", Lam, low=0, low_open=True)
    dtype = float_dtype(dtype)

    S = _Slots(d)
    L = 0.25 + mu  # >= λ_max(H) when ‖a_i‖ <= 1
    scratch = S.scratch(keep_inverse=inverse_init == "warm")
    P = layers_per_step(k)
    model = empty_model(
        width=S.width,
        layers=T * P + 1,
        heads=d * d,
        head_dim=d,
        normalize=True,
        mlp=True,
        mlp_hidden=max(2 * d * (W + 1), 2 * len(scratch)),
        activation="relu",
        bias=True,
    )
    grids = _Grids.build(mu, W, R, Lam)
    blocks = (BlockWriter(block) for block in model.blocks)
    for t in range(T):
        _margins(next(blocks), S, grids)
        _gradient(next(blocks), S, grids, mu)
        fresh = inverse_init != "warm" or t == 0
        _hessian(next(blocks), S, mu, L, inverse_init if fresh else None)
        for _ in range(k):
            _newton_schulz(next(blocks), next(blocks), S)
        _direction(next(blocks), S)
        _decrement(next(blocks), S, grids)
        _update(next(blocks), S, scratch)
    b = next(blocks)  # read-out block: the margins aᵀw_T
    b.add_head(forms(S.a), forms(S.w), [ONE], [{S.z: 1.0}])
    model.read_out.weight.data[0, S.z] = 1.0

    info = ConstructionInfo(
        name="logistic_newton",
        citation=GIANNOU + ", Thm 5.1",
        algorithm="logistic_inexact_newton",
        hyperparameters={"mu": mu, "newton_schulz_steps": k, "inverse_init": inverse_init},
        steps=T,
        dim=d,
        layers=T * P + 1,
        heads=d * d,
        width=S.width,
        head_dim=d,
        layers_per_step=P,
        formulas={
            "layers": "T(6 + 2k) + 1 (paper: T(11 + 2k))",
            "heads": "d²",
            "width": "3d² + 5d + 6",
            "head_dim": "d",
            "mlp_hidden": "max(2d(W + 1), 2(2d² + 3d + 5)) (paper: O(d(1+μ)⁶/(ε⁴μ⁸)))",
            "grid_intervals": W,
            "margin_bound": R,
            "decrement_bound": Lam,
        },
    )
    model = finish(model, info).to(dtype)
    return model, Stacked(d, n_queries=n_queries, scratch=S.width - d - 1)


def weights_per_step(model, fmt: Stacked, batch) -> torch.Tensor:
    """w_0..w_T [T+1, B, d] as the model holds them (w-slot of the first token after each step)."""
    info = info_of(model)
    S = token_layout(info.dim)
    with torch.no_grad():
        _, hidden = fmt.run(model, batch, return_hidden=True)
    return torch.stack([hidden[b][:, 0, S.w] for b in info.step_blocks])


def __getattr__(name: str):
    """`error_table`, which lives in `icsim.constructions.logistic_newton_table` (PEP 562)."""
    if name == "error_table":
        from icsim.constructions.logistic_newton_table import error_table

        return error_table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
