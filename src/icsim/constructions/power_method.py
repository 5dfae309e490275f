"""The power method with deflation in a linear-attention + ReLU-MLP transformer (He, Cao, Chen,
Wu, Fan, Liu 2025, "Learning spectral methods by transformers", arXiv 2501.01312, the
power-method theorem; our own weights, following its plan).

Tokens (`power_method_tokens`): one per point, every token carrying the same copies of Σ, the k
vectors and the scratch, [x | Σ | v_1..v_k | u | w | s | r | λ_1..λ_k]. Attention is linear and
normalised by the number of tokens N, so a head whose key side reads x_j averages over points
and a head whose key side reads a copy (the same in every token) forms a product of per-token
quantities: both are exact. Only 1/‖Σv‖ is not a product: a ReLU MLP interpolates s ↦ s^(−1/2)
(s = ‖Σv‖²) piecewise-linearly on W intervals of a geometric grid over [a², b²].

Blocks (attention | MLP):
    1          Σ ← (1/N) Σ_i x_i x_iᵀ (d heads)                         | —
  for each vector j = 1..k:
    P          u ← Σv_j (d heads)                                        | —
    τ × X      s ← uᵀu (1 head), w ← Σu (d heads)                        | r ← r̂(s) ≈ s^(−1/2)
        Y      v_j ← r u, u ← r w (= Σv_j), w ← 0 (5 heads)               | s, r ← 0
    D1         λ_j ← v_jᵀu (1 head)                                      | —
    D2         Σ ← Σ − λ_j v_j v_jᵀ (d heads), u ← 0 (1 head)             | —
so L = 1 + k(2τ + 3) layers (the paper: 2τ + 4k + 1, τ counting every iteration, ours kτ),
max(d + 1, 5) heads of dimension d, width d² + d(k + 3) + k + 2, MLP hidden W + 5.

What is exact and what is not: v_j ← r̂(s)·Σv_j has exactly the direction of the power method's
iterate whatever r̂'s error, so vector 1's directions equal the algorithm's up to rounding; only
the norm is off: the interpolant of the convex s^(−1/2) lies above it by a relative error at most
ε_W = (3/32)(ρ − 1)²√ρ, ρ = (b/a)^(2/W) (linear interpolation error h²/8·max|f''| on an interval
[t, ρt]), so ‖v‖ ∈ [1, 1 + ε_W] while ‖Σv‖ ∈ [a, b]. Vectors after the first inherit it through
the deflation λ̂v̂v̂ᵀ = (1 + O(ε_W))λvvᵀ: their error is O(ε_W) and falls ~4× per doubling of W.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from icsim import _validate as V
from icsim.constructions.base import (
    CONSTRUCTIONS,
    TOLERANCE,
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
from icsim.constructions.verify import relative_errors
from icsim.errors import InputError
from icsim.models.spectral_formats import PowerMethodTokens, power_layout

HE = "He, Cao, Chen, Wu, Fan, Liu 2025, Learning spectral methods by transformers"
DEFAULT_PIECES = 256
DEFAULT_NORM_RANGE = (1e-2, 1e2)


@dataclass(frozen=True)
class PowerInfo(ConstructionInfo):
    """`ConstructionInfo` whose steps are not evenly spaced: the deflation blocks sit between the
    vectors (step t ≥ 1 of vector j = ⌈t/τ⌉ ends in block j(2τ + 3) + 2(t − 1 mod τ) + 4)."""

    iterations: int = 1

    def step_block(self, t: int) -> int:
        if t == 0:
            return 0
        j, t_in = divmod(t - 1, self.iterations)
        return j * (2 * self.iterations + 3) + 2 * t_in + 4


def normalisation_bound(pieces: int, norm_range=DEFAULT_NORM_RANGE) -> float:
    """ε_W: the largest relative error of the interpolated 1/‖Σv‖ while ‖Σv‖ ∈ [a, b]."""
    a, b = norm_range
    rho = (b / a) ** (2 / pieces)
    return 3 / 32 * (rho - 1) ** 2 * rho**0.5


class _Slots:
    def __init__(self, d: int, k: int):
        self.d, self.k, self.lay = d, k, power_layout(d, k)

    def idx(self, name: str, i: int = 0) -> int:
        return getattr(self.lay, name).start + i

    def forms(self, name: str, j: int | None = None, scale: float = 1.0) -> list[dict]:
        """One form per coordinate of vector `name` (of vector j of V)."""
        base = self.idx(name, 0 if j is None else j * self.d)
        return forms(range(base, base + self.d), scale)

    def row(self, p: int) -> list[dict]:
        return [{self.idx("S", p * self.d + m): 1.0} for m in range(self.d)]


def _covariance(b: BlockWriter, S: _Slots) -> None:
    for p in range(S.d):  # row p of Σ = mean_i x_ip x_i
        row = [{S.idx("S", p * S.d + m): 1.0} for m in range(S.d)]
        b.add_head([ONE], [{S.idx("x", p): 1.0}], S.forms("x"), row)


def _sigma_times(b: BlockWriter, S: _Slots, vec: list[dict], out: str) -> None:
    """out ← Σ·vec (d heads: query = vec, key = row p of Σ, value 1)."""
    for p in range(S.d):
        b.add_head(vec, S.row(p), [ONE], [{S.idx(out, p): 1.0}])


def _clear(b: BlockWriter, S: _Slots, name: str, j: int | None = None) -> None:
    b.add_head([ONE], [ONE], S.forms(name, j), S.forms(name, j, -1.0))


def _iteration(bx: BlockWriter, by: BlockWriter, S: _Slots, j: int, knots, values) -> None:
    """One power iteration in two blocks (module docstring: X, Y)."""
    bx.add_head(S.forms("u"), S.forms("u"), [ONE], [{S.idx("s"): 1.0}])
    _sigma_times(bx, S, S.forms("u"), "w")
    bx.add_interpolant({S.idx("s"): 1.0}, knots, values, S.idx("r"))
    r = [{S.idx("r"): 1.0}]
    by.add_head([ONE], r, S.forms("u"), S.forms("V", j))
    _clear(by, S, "V", j)
    by.add_head([ONE], r, S.forms("w"), S.forms("u"))
    _clear(by, S, "u")
    _clear(by, S, "w")
    by.add_clear([S.idx("s"), S.idx("r")])


def _deflate(b1: BlockWriter, b2: BlockWriter, S: _Slots, j: int) -> None:
    """λ_j ← v_jᵀu (u = Σv_j); Σ ← Σ − λ_j v_j v_jᵀ, u ← 0."""
    b1.add_head(S.forms("V", j), S.forms("u"), [ONE], [{S.idx("lam", j): 1.0}])
    for p in range(S.d):  # row p: −λ v_p v
        key = [{S.idx("V", j * S.d + p): 1.0}]
        out = [{S.idx("S", p * S.d + m): -1.0} for m in range(S.d)]
        b2.add_head([{S.idx("lam", j): 1.0}], key, S.forms("V", j), out)
    _clear(b2, S, "u")


@CONSTRUCTIONS.register("power_method", check=lambda: PowerCheck())  # defined below
def power_method(
    dim: int = 5,
    steps: int = 5,
    k: int = 2,
    pieces: int = DEFAULT_PIECES,
    norm_range: tuple = DEFAULT_NORM_RANGE,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
):
    """k eigenvectors by τ = `steps` power iterations each, with deflation, in 1 + k(2τ + 3)
    layers (He et al. 2025, power-method theorem; the module docstring gives the blocks).

    dim: d. steps: τ, iterations per vector. k: vectors (default 2). pieces: W, the ReLU pieces
    of the 1/‖Σv‖ interpolant (default 256). norm_range: (a, b), the range of ‖Σv‖ the
    interpolant covers (default (1e-2, 1e2); outside it r̂ is flat and the norm bound is void).
    seed: the start vectors' (the format's, = the algorithm's). dtype: of the returned model.
    Reference: algorithms `power_method(k, iterations=τ, seed)`; directions exact for vector 1,
    norms within `normalisation_bound(W, (a, b))`. Read-out (token 0): [v_1..v_k; λ_1..λ_k].
    """
    d, tau = V.positive_int("dim", dim), V.positive_int("steps", steps)
    k, W = V.positive_int("k", k), V.positive_int("pieces", pieces)
    if k > d:
        raise InputError(f"k must be <= dim={d}, got {k}.")
    if W < 2:
        raise InputError(f"pieces must be >= 2, got {pieces}.")
    a, b = (V.number("norm_range", float(x), low=0, low_open=True) for x in norm_range)
    if not a < b:
        raise InputError(f"norm_range must be (a, b) with 0 < a < b, got {tuple(norm_range)}.")
    S = _Slots(d, k)
    layers = 1 + k * (2 * tau + 3)
    model = empty_model(
        width=S.lay.width, layers=layers, heads=max(d + 1, 5), head_dim=d, n_out=d * k + k,
        normalize=True, mlp=True, mlp_hidden=W + 5, activation="relu", bias=True,
    )  # fmt: skip
    knots = a * a * (b * b / (a * a)) ** np.linspace(0.0, 1.0, W + 1)
    blocks = (BlockWriter(block) for block in model.blocks)
    _covariance(next(blocks), S)
    for j in range(k):
        _sigma_times(next(blocks), S, S.forms("V", j), "u")
        for _ in range(tau):
            _iteration(next(blocks), next(blocks), S, j, knots, knots**-0.5)
        _deflate(next(blocks), next(blocks), S, j)
    out = model.read_out.weight.data
    for i in range(d * k):
        out[i, S.idx("V", i)] = 1.0
    for j in range(k):
        out[d * k + j, S.idx("lam", j)] = 1.0
    info = PowerInfo(
        name="power_method",
        citation=HE + ", power-method theorem (L = 2τ + 4k + 1)",
        algorithm="power_method",
        hyperparameters={"k": k, "iterations": tau, "seed": seed},
        steps=k * tau,
        dim=d,
        layers=layers,
        heads=max(d + 1, 5),
        width=S.lay.width,
        head_dim=d,
        layers_per_step=2,
        block_offset=2,
        formulas={
            "layers": "1 + k(2τ + 3) (paper: 2τ' + 4k + 1 with τ' = kτ iterations in all)",
            "heads": "max(d + 1, 5)",
            "width": "d² + d(k + 3) + k + 2",
            "head_dim": "d",
            "mlp_hidden": "W + 5",
            "pieces": W,
            "norm_range": [a, b],
            "normalisation_bound": normalisation_bound(W, (a, b)),
        },
        iterations=tau,
    )
    model = finish(model, info).to(float_dtype(dtype))
    return model, PowerMethodTokens(d, k=k, seed=seed)


def hidden_states(model, fmt, batch) -> torch.Tensor:
    """[L+1, B, N, width] (no grad)."""
    with torch.no_grad():
        _, hidden = model(fmt.encode(batch), mask=None, return_hidden=True)
    return hidden


class PowerCheck(Check):
    """`pca` prompts (N = 10d points, top-k planted gap 1) against `power_method` from the same
    start. max_error: the relative error of the unit directions of all k vectors after every
    step. Criterion: vector 1 exact (≤ 1e-10 in float64), Σ and every u = Σv exact (the attention
    products, ≤ 1e-10), every ‖v_t‖ − 1 in [0, ε_W] with ‖Σv‖ inside the grid, and, for k > 1,
    the later vectors' error at most 1/2.5 of the same construction's at W/2 (O(W⁻²): ×4)."""

    task = "pca"
    fixed_task_params = ("dim", "k")
    defaults = {"steps": 5, "dim": 5, "n_problems": 256}  # a wide MLP in every block
    condition_numbers = (1,)  # the spectrum is the task's (gap, eigenvalues), not a κ
    factor_per_doubling = 2.5

    def sample(self, info, fmt, n_problems, *, generator, n_context=None, condition_number=1, **tp):
        task = self.make_task(info, k=info.hyperparameters["k"], **tp)
        n = 10 * info.dim if n_context is None else n_context
        return (task.sample(n_problems, n, generator=generator, dtype=torch.float64),)

    def reference(self, info, problems):
        from icsim.algorithms import get

        return get("power_method", **info.hyperparameters).run(problems[0]).iterates

    def model_steps(self, model, fmt, problems, dtype):
        hidden = hidden_states(in_dtype(model, dtype), fmt, problems[0].to(dtype=dtype))
        v = fmt.vectors(hidden[info_of(model).step_blocks])
        return v / v.norm(dim=-2, keepdim=True)

    def criterion(self, run) -> Criterion:
        info, (batch,) = info_of(run.model), run.problems[0]
        model, tol = in_dtype(run.model, run.dtype), TOLERANCE[run.dtype]
        exact = exactness(model, run.fmt, batch.to(dtype=run.dtype))
        k = info.hyperparameters["k"]
        mine = self.model_steps(model, run.fmt, run.problems[0], run.dtype)[..., :1]
        first = float(relative_errors(mine, run.references[0][..., :1]).max())
        eps = info.formulas["normalisation_bound"]
        holds = exact["products"] <= tol and first <= tol and exact["in_range"]
        holds = holds and exact["norm_min"] >= 1 - tol and exact["norm_max"] <= 1 + eps + tol
        text = (
            f"products Σ, Σv exact ({exact['products']:.1e} <= {tol:.0e}); vector 1 exact "
            f"({first:.1e}); ‖v‖ − 1 in [0, ε_W = {eps:.1e}] (measured {exact['norm_max'] - 1:.1e})"
        )
        bound = tol
        if k > 1:
            W = info.formulas["pieces"]
            half, _ = power_method(
                dim=info.dim, steps=info.hyperparameters["iterations"], k=k, pieces=W // 2,
                norm_range=tuple(info.formulas["norm_range"]), seed=info.hyperparameters["seed"],
            )  # fmt: skip
            bound = max(tol, run.max_error_of(half) / self.factor_per_doubling)
            text += (
                f"; vectors 2..{k} within 1/{self.factor_per_doubling:g} of their error at "
                f"W/2 = {W // 2} ({bound:.2e}; O(W⁻²))"
            )
        return Criterion(bound, text, holds=bool(holds))


def exactness(model, fmt, batch) -> dict:
    """What must hold whatever the interpolant: Σ = XᵀX/N and u = Σv after every iteration (the
    largest relative error), and the range of ‖v‖ after every iteration and of ‖Σv‖ fed to r̂."""
    info, L = info_of(model), fmt.layout
    d, k, tau = info.dim, info.hyperparameters["k"], info.iterations
    hidden = hidden_states(model, fmt, batch)[:, :, 0].double()  # token 0: [L+1, B, width]
    X = batch.xs.double()
    cov_true = X.transpose(1, 2) @ X / X.shape[1]
    errs = [_rel(hidden[1][:, L.S].reshape(-1, d, d), cov_true)]
    norms, lo, hi = [], float("inf"), 0.0
    for t in range(1, k * tau + 1):
        h = hidden[info.step_block(t)]
        cov, v = h[:, L.S].reshape(-1, d, d), fmt.vectors(h[:, None])
        j = (t - 1) // tau
        errs.append(_rel(h[:, L.u], (cov @ v[..., j : j + 1])[..., 0]))
        norms.append(v[..., j].norm(dim=-1))
        s = hidden[info.step_block(t) - 1][:, L.s]  # s fed to the MLP of block X
        lo, hi = min(lo, float(s.min()) ** 0.5), max(hi, float(s.max()) ** 0.5)
    a, b = info.formulas["norm_range"]
    norms = torch.stack(norms)
    return {
        "products": max(errs),
        "norm_min": float(norms.min()),
        "norm_max": float(norms.max()),
        "sigma_v_range": (lo, hi),
        "in_range": a <= lo and hi <= b,
    }


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    diff = (a - b).flatten(1).norm(dim=1)
    return float((diff / b.flatten(1).norm(dim=1).clamp(min=1e-300)).max())


def width_table(
    pieces=(16, 32, 64, 128, 256, 512),
    *,
    dim: int = 5,
    steps: int = 5,
    k: int = 2,
    n_problems: int = 128,
    seed: int = 0,
    path=None,
) -> dict:
    """The construction's error against the number W of ReLU pieces of its 1/‖Σv‖ interpolant,
    in float64 on `n_problems` `pca` prompts (N = 10d): per W the stated bound ε_W, the largest
    measured |‖v‖ − 1|, the largest direction error of vector 1 (exact) and of vectors 2..k, and
    the largest eigenvalue relative error against the algorithm. Writes a PNG to `path` if given.
    Returns {"pieces": [...], "bound": [...], "norm_error": [...], "first_vector_error": [...],
    "later_vector_error": [...], "eigenvalue_error": [...]}."""
    from icsim.algorithms import get
    from icsim.analysis.spectral_metrics import eigenvalue_relative_error
    from icsim.tasks import get as get_task

    gen = torch.Generator().manual_seed(seed)
    batch = get_task("pca", dim=dim, k=k).sample(
        n_problems, 10 * dim, generator=gen, dtype=torch.float64
    )
    ref = get("power_method", k=k, iterations=steps, seed=seed).run(batch)
    table = {n: [] for n in ("pieces", "bound", "norm_error", "first_vector_error")}
    table.update(later_vector_error=[], eigenvalue_error=[])
    for W in pieces:
        model, fmt = power_method(dim=dim, steps=steps, k=k, pieces=W, seed=seed)
        hidden = hidden_states(model, fmt, batch)
        v = fmt.vectors(hidden[model.construction.step_blocks])
        err = relative_errors(v / v.norm(dim=-2, keepdim=True), ref.iterates)
        first = relative_errors(
            v[..., :1] / v[..., :1].norm(dim=-2, keepdim=True), ref.iterates[..., :1]
        )
        later = err.max() if k > 1 else torch.tensor(0.0)
        lam = hidden[-1][:, 0, fmt.layout.lam]
        table["pieces"].append(W)
        table["bound"].append(model.construction.formulas["normalisation_bound"])
        table["norm_error"].append(float((v[-1].norm(dim=-2) - 1).abs().max()))
        table["first_vector_error"].append(float(first.max()))
        table["later_vector_error"].append(float(later))
        table["eigenvalue_error"].append(
            float(eigenvalue_relative_error(lam, ref.predictions[-1]).max())
        )
    if path is not None:
        from icsim.analysis.plots import plot_curves

        curves = {
            name: {"x": table["pieces"], "y": table[key], "x_label": "ReLU pieces W",
                   "y_label": "largest error (float64)"}
            for name, key in (("bound ε_W", "bound"), ("|‖v‖ − 1|", "norm_error"),
                              ("directions of vectors 2..k", "later_vector_error"),
                              ("eigenvalues", "eigenvalue_error"))
        }  # fmt: skip
        plot_curves(curves, path, logy=True, title="power-method construction vs W")
    return table
